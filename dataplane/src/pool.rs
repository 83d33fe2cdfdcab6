//! Per-core keep-alive pools of upstream connections, one stack per [`PoolKey`].
//!
//! A key is the endpoint address plus everything that makes two connections to it not
//! interchangeable: the transport settings (plaintext, or a TLS identity and SNI, as a
//! [`TransportId`]) and, when the cluster sends a PROXY protocol header, the downstream
//! addresses that header announced.
//!
//! Invariants: owned by one worker (no sharing); an idle connection keeps a receive armed, so
//! an upstream close (or stray bytes) is visible as pending data and the connection is
//! discarded at checkout instead of failing a request; LIFO reuse keeps the warmest connection
//! busy and lets the rest expire after their cluster's `idle_timeout`; checkout, checkin and
//! sweep allocate nothing once a key's stack has grown.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use rustc_hash::FxHashMap;

use crate::cluster::breaker::ConnectionGuard;
use crate::transport::{InBuf, OwnMark, Stream};

/// Which transport settings a connection was made with: 0 is plaintext TCP; other values
/// name a cluster's TLS settings (identity, SNI) on this worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct TransportId(pub u32);

impl TransportId {
    pub const PLAINTEXT: TransportId = TransportId(0);

    /// The transport of connections to `cluster`'s endpoints: plaintext, or a value (never 0)
    /// that differs between clusters and between TLS settings.
    pub fn of_cluster(cluster: &crate::config::ClusterConfig) -> TransportId {
        use std::hash::{Hash, Hasher};
        let Some(tls) = &cluster.tls else {
            return TransportId::PLAINTEXT;
        };
        let mut h = rustc_hash::FxHasher::default();
        cluster.name.hash(&mut h);
        format!("{tls:?}").hash(&mut h);
        TransportId((h.finish() as u32) | 1)
    }
}

/// What makes pooled connections interchangeable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PoolKey {
    pub addr: SocketAddr,
    pub transport: TransportId,
    /// (source, destination) of the PROXY protocol header the connection began with.
    pub proxied: Option<(SocketAddr, SocketAddr)>,
}

impl PoolKey {
    /// A plaintext connection to `addr` without a PROXY protocol header.
    pub fn plain(addr: SocketAddr) -> PoolKey {
        PoolKey {
            addr,
            transport: TransportId::PLAINTEXT,
            proxied: None,
        }
    }
}

/// An upstream connection checked out for one exchange.
pub struct UpstreamConn {
    pub stream: Stream,
    pub inb: InBuf,
    /// Requests already sent on this connection.
    pub uses: u64,
    /// The cluster circuit breaker's `max_connections` slot, released when the connection
    /// closes (pooled idle connections count too).
    pub breaker_slot: Option<ConnectionGuard>,
    /// For connections to original destinations: our mark in the redirect-loop guard.
    pub own: Option<OwnMark>,
}

impl UpstreamConn {
    pub fn new(stream: Stream, breaker_slot: Option<ConnectionGuard>) -> UpstreamConn {
        UpstreamConn {
            stream,
            inb: InBuf::default(),
            uses: 0,
            breaker_slot,
            own: None,
        }
    }
}

struct Idle {
    up: UpstreamConn,
    since: Instant,
    idle_timeout: Duration,
}

impl Idle {
    fn usable(&self, now: Instant) -> bool {
        now.duration_since(self.since) < self.idle_timeout && !self.up.stream.has_pending()
    }
}

/// Keys whose stacks are kept when empty (see [`Pools::sweep`]).
pub const MAX_EMPTY_KEYS: usize = 256;

#[derive(Default)]
pub struct Pools {
    /// Fx hashing (no per-request SipHash): keys are endpoint addresses of the configuration,
    /// or original destinations the intercepted application itself connected to.
    by_key: FxHashMap<PoolKey, Vec<Idle>>,
}

impl Pools {
    /// The most recently used live idle connection for `key`, if any.
    pub fn checkout(&mut self, key: &PoolKey, now: Instant) -> Option<UpstreamConn> {
        let stack = self.by_key.get_mut(key)?;
        while let Some(idle) = stack.pop() {
            if idle.usable(now) {
                return Some(idle.up);
            }
            // expired, closed by the upstream, or sent stray bytes: dropped (closed)
        }
        None
    }

    /// Keeps `up` for reuse (at most `max_idle` per key, each for `idle_timeout`).
    pub fn checkin(
        &mut self,
        key: PoolKey,
        mut up: UpstreamConn,
        max_idle: usize,
        idle_timeout: Duration,
        now: Instant,
    ) {
        if max_idle == 0 || !up.inb.is_empty() || up.stream.is_eof() {
            return;
        }
        let stack = self.by_key.entry(key).or_default();
        if stack.len() >= max_idle {
            return;
        }
        up.stream.start_recv();
        stack.push(Idle {
            up,
            since: now,
            idle_timeout,
        });
    }

    /// Closes idle connections past their idle timeout or closed by the upstream (called
    /// periodically). Empty stacks are kept (their capacity serves the next checkin without
    /// allocating) unless there are more than [`MAX_EMPTY_KEYS`] keys, as with an
    /// `original_destination` cluster that reaches many addresses: then they are forgotten.
    pub fn sweep(&mut self, now: Instant) {
        for stack in self.by_key.values_mut() {
            stack.retain(|i| i.usable(now));
        }
        if self.by_key.len() > MAX_EMPTY_KEYS {
            self.by_key.retain(|_, stack| !stack.is_empty());
        }
    }

    /// Drops the pools of endpoints for which `keep` is false (after a reload or DNS change).
    pub fn retain_endpoints(&mut self, keep: impl Fn(&PoolKey) -> bool) {
        self.by_key.retain(|k, _| keep(k));
    }

    /// Idle connections held, all keys.
    pub fn idle_count(&self) -> usize {
        self.by_key.values().map(Vec::len).sum()
    }

    /// Drops every idle connection.
    pub fn clear(&mut self) {
        self.by_key.clear();
    }
}

impl Pools {
    /// Idle connections held for `addr` (any transport): the admin's `/clusters`.
    pub fn idle_for(&self, addr: SocketAddr) -> usize {
        self.by_key
            .iter()
            .filter(|(k, _)| k.addr == addr)
            .map(|(_, v)| v.len())
            .sum()
    }
}
