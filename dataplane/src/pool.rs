//! Per-core keep-alive pools of upstream connections, one stack per endpoint address.
//!
//! Invariants: owned by one worker (no sharing); an idle connection keeps a multishot receive
//! armed, so an upstream close (or stray bytes) is visible as pending data and the connection
//! is discarded at checkout instead of failing a request; LIFO reuse keeps the warmest
//! connection busy and lets the rest expire after `idle_timeout`.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::proxy::inbuf::InBuf;
use crate::uring::Conn;

/// An upstream connection checked out for one exchange.
pub struct UpstreamConn {
    pub conn: Conn,
    pub inb: InBuf,
    /// Requests already sent on this connection.
    pub uses: u64,
    /// The cluster circuit breaker's `max_connections` slot, released when the connection
    /// closes (pooled idle connections count too).
    pub breaker_slot: Option<crate::cluster::breaker::ConnectionGuard>,
}

struct Idle {
    up: UpstreamConn,
    since: Instant,
}

#[derive(Default)]
pub struct Pools {
    by_addr: HashMap<SocketAddr, Vec<Idle>>,
}

impl Pools {
    /// The most recently used live idle connection to `addr`, if any.
    pub fn checkout(
        &mut self,
        addr: SocketAddr,
        idle_timeout: Duration,
        now: Instant,
    ) -> Option<UpstreamConn> {
        let stack = self.by_addr.get_mut(&addr)?;
        while let Some(idle) = stack.pop() {
            if now.duration_since(idle.since) >= idle_timeout || idle.up.conn.has_pending() {
                continue; // expired, closed by the upstream, or sent stray bytes
            }
            return Some(idle.up);
        }
        None
    }

    /// Keeps `up` for reuse unless the pool for `addr` already holds `max_idle`.
    pub fn checkin(
        &mut self,
        addr: SocketAddr,
        mut up: UpstreamConn,
        max_idle: usize,
        now: Instant,
    ) {
        if max_idle == 0 || !up.inb.is_empty() || up.conn.is_eof() {
            return;
        }
        let stack = self.by_addr.entry(addr).or_default();
        if stack.len() >= max_idle {
            return;
        }
        up.conn.start_recv();
        stack.push(Idle { up, since: now });
    }

    /// Closes `addr`'s idle connections older than `idle_timeout` or closed by the upstream
    /// (called periodically; allocates nothing).
    pub fn sweep(&mut self, addr: SocketAddr, idle_timeout: Duration, now: Instant) {
        if let Some(stack) = self.by_addr.get_mut(&addr) {
            stack
                .retain(|i| now.duration_since(i.since) < idle_timeout && !i.up.conn.has_pending());
        }
    }

    /// Drops the pools of endpoints for which `keep` is false (after a reload or DNS change).
    pub fn retain_endpoints(&mut self, keep: impl Fn(SocketAddr) -> bool) {
        self.by_addr.retain(|a, _| keep(*a));
    }

    /// Idle connections held, all endpoints.
    pub fn idle_count(&self) -> usize {
        self.by_addr.values().map(Vec::len).sum()
    }

    /// Drops every idle connection.
    pub fn clear(&mut self) {
        self.by_addr.clear();
    }
}
