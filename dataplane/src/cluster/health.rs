//! Active health checking (`[clusters.health_check]`) and the per-cluster availability mask.
//!
//! - [`HealthState`]: per-endpoint state machine. Endpoints start healthy.
//!   ```text
//!   healthy   --(unhealthy_threshold consecutive failed probes)-->  unhealthy
//!   unhealthy --(healthy_threshold consecutive good probes)------->  healthy
//!   ```
//!   A result that agrees with the current state resets the opposite streak.
//! - [`probe`]: one HTTP/1.1 `GET` over the worker's ring: connect, send
//!   `GET <path> HTTP/1.1\r\nHost: <host>\r\nUser-Agent: ringway-health\r\nConnection: close`,
//!   read the response head; healthy iff the status is 200..=399, all within `timeout`.
//! - [`run_checks`]: the checking loop of one cluster: every `interval` (±10% jitter) probe all
//!   endpoints concurrently, feed a `HealthState`, report transitions.
//! - [`merge_unavailable`]: health mask + outlier ejection mask → the balancer's
//!   `PickContext::unavailable`, applying `when_all_unhealthy`.
//!
//! # Integration
//! ```text
//! one worker per cluster   spawn run_checks(driver, endpoints, hc, host, seed,
//!                              |idx, addr, healthy| broadcast to every worker)
//! every worker             on message: if addrs[idx] == addr { health.set_healthy(idx, healthy) }
//! before pick              match merge_unavailable(health.unavailable(), outlier.unavailable(now),
//!                                                  &mut mask, policy.when_all_unhealthy) {
//!                              Availability::AllDown => 503,
//!                              _ => balancer.pick(&PickContext { unavailable: &mask, .. }) }
//! endpoint set changes     health.update_endpoints(n) (all healthy again; so does run_checks)
//! ```
//! Invariants: per core (`&mut self`, no sharing); masks are indexed like the endpoints;
//! `report`, `set_healthy`, `unavailable` and `merge_unavailable` never allocate (once the
//! output `Vec` has grown). Probes allocate a little (request bytes, response buffer) — once
//! per endpoint per interval, off the request path.

#[cfg(test)]
mod tests;

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::rc::Rc;
use std::task::Poll;
use std::time::Duration;

use crate::cluster::FastRng;
use crate::config::{AllUnhealthy, HealthCheck};
use crate::http::{parse_response_head, HeadLimits, Method, Parsed, ResponseHead};
use crate::uring::{self, Driver};

/// Shortest probe interval honoured (guards against a zero `interval` busy loop).
pub const MIN_INTERVAL: Duration = Duration::from_millis(100);
/// Largest response head a probe reads.
pub const MAX_PROBE_HEAD_BYTES: usize = 16 * 1024;

/// The health of one cluster's endpoints as seen by one worker.
#[derive(Debug, Clone)]
pub struct HealthState {
    /// INVARIANT: `>= 1`.
    healthy_threshold: u32,
    /// INVARIANT: `>= 1`.
    unhealthy_threshold: u32,
    /// Consecutive results contradicting the current state. INVARIANT: `len() == n`.
    streak: Vec<u32>,
    /// `true` = unhealthy. INVARIANT: `len() == n`.
    unavailable: Vec<bool>,
    /// INVARIANT: number of `true` in `unavailable`.
    unhealthy: usize,
    went_unhealthy: u64,
    went_healthy: u64,
}

impl HealthState {
    /// `n` healthy endpoints with `hc`'s thresholds.
    pub fn new(hc: &HealthCheck, n: usize) -> HealthState {
        HealthState::with_thresholds(hc.healthy_threshold, hc.unhealthy_threshold, n)
    }

    /// `n` healthy endpoints; thresholds of 0 count as 1.
    pub fn with_thresholds(healthy: u32, unhealthy: u32, n: usize) -> HealthState {
        HealthState {
            healthy_threshold: healthy.max(1),
            unhealthy_threshold: unhealthy.max(1),
            streak: vec![0; n],
            unavailable: vec![false; n],
            unhealthy: 0,
            went_unhealthy: 0,
            went_healthy: 0,
        }
    }

    /// The endpoint set changed to `n` endpoints: all healthy, streaks cleared.
    pub fn update_endpoints(&mut self, n: usize) {
        self.streak.clear();
        self.streak.resize(n, 0);
        self.unavailable.clear();
        self.unavailable.resize(n, false);
        self.unhealthy = 0;
    }

    /// One probe result for endpoint `idx`; `Some(healthy)` when the endpoint changed state.
    /// Unknown indices are ignored.
    pub fn report(&mut self, idx: usize, ok: bool) -> Option<bool> {
        let healthy = !*self.unavailable.get(idx)?;
        let streak = self.streak.get_mut(idx)?;
        if ok == healthy {
            *streak = 0;
            return None;
        }
        *streak = streak.saturating_add(1);
        let threshold = if healthy {
            self.unhealthy_threshold
        } else {
            self.healthy_threshold
        };
        if *streak < threshold {
            return None;
        }
        self.set_healthy(idx, ok);
        Some(ok)
    }

    /// Sets endpoint `idx`'s state (a transition broadcast by the checking worker).
    pub fn set_healthy(&mut self, idx: usize, healthy: bool) {
        let (Some(u), Some(s)) = (self.unavailable.get_mut(idx), self.streak.get_mut(idx)) else {
            return;
        };
        *s = 0;
        let unavailable = !healthy;
        if *u == unavailable {
            return;
        }
        *u = unavailable;
        if healthy {
            self.unhealthy = self.unhealthy.saturating_sub(1);
            self.went_healthy += 1;
        } else {
            self.unhealthy += 1;
            self.went_unhealthy += 1;
        }
    }

    /// Whether endpoint `idx` is healthy (unknown indices are).
    pub fn is_healthy(&self, idx: usize) -> bool {
        !self.unavailable.get(idx).copied().unwrap_or(false)
    }

    /// `true` = unhealthy, indexed like the endpoints.
    pub fn unavailable(&self) -> &[bool] {
        &self.unavailable
    }

    /// Endpoints unhealthy right now.
    pub fn unhealthy_count(&self) -> usize {
        self.unhealthy
    }

    /// Transitions to unhealthy so far on this core.
    pub fn went_unhealthy_count(&self) -> u64 {
        self.went_unhealthy
    }

    /// Transitions to healthy so far on this core.
    pub fn went_healthy_count(&self) -> u64 {
        self.went_healthy
    }

    pub fn len(&self) -> usize {
        self.unavailable.len()
    }

    pub fn is_empty(&self) -> bool {
        self.unavailable.is_empty()
    }
}

/// Whether a request can be sent to the cluster at all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Availability {
    /// Pick among the endpoints not marked in the mask.
    Some,
    /// Every endpoint is down but `fail_open`: the mask marks none (Envoy's panic mode).
    AllDownFailOpen,
    /// Every endpoint is down and `reject`: answer 503.
    AllDown,
}

/// `out[i] = health[i] || ejected[i]` (missing entries count as available; `out` is as long
/// as the longer input). When every endpoint is down, `FailOpen` clears `out` to all
/// available and `Reject` reports [`Availability::AllDown`]. An empty cluster is
/// `Availability::Some` (the balancer then finds nothing). No allocation once `out` has grown.
#[inline]
pub fn merge_unavailable(
    health: &[bool],
    ejected: &[bool],
    out: &mut Vec<bool>,
    when_all_unhealthy: AllUnhealthy,
) -> Availability {
    out.clear();
    let n = health.len().max(ejected.len());
    if n == 0 {
        return Availability::Some;
    }
    let (long, short) = if health.len() >= ejected.len() {
        (health, ejected)
    } else {
        (ejected, health)
    };
    out.extend_from_slice(long);
    for (o, &s) in out.iter_mut().zip(short) {
        *o |= s;
    }
    let down = out.iter().filter(|&&u| u).count();
    if down < n {
        return Availability::Some;
    }
    match when_all_unhealthy {
        AllUnhealthy::FailOpen => {
            out.fill(false);
            Availability::AllDownFailOpen
        }
        AllUnhealthy::Reject => Availability::AllDown,
    }
}

/// Why a probe failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ProbeError {
    #[error("connect failed (errno {0})")]
    Connect(i32),
    #[error("send failed (errno {0})")]
    Send(i32),
    #[error("receive failed (errno {0})")]
    Recv(i32),
    #[error("connection closed before a complete response head")]
    Closed,
    #[error("malformed response head")]
    Malformed,
    #[error("timed out")]
    Timeout,
}

fn errno(e: &io::Error) -> i32 {
    e.raw_os_error().unwrap_or(0)
}

/// The probe request for `path` and `host`.
pub fn probe_request(path: &str, host: &str) -> Vec<u8> {
    let mut req = Vec::with_capacity(80 + path.len() + host.len());
    req.extend_from_slice(b"GET ");
    req.extend_from_slice(path.as_bytes());
    req.extend_from_slice(b" HTTP/1.1\r\nHost: ");
    req.extend_from_slice(host.as_bytes());
    req.extend_from_slice(b"\r\nUser-Agent: ringway-health\r\nConnection: close\r\n\r\n");
    req
}

/// One probe: the response status, or why there is none, within `timeout`.
pub async fn check(
    driver: &Rc<Driver>,
    addr: SocketAddr,
    path: &str,
    host: &str,
    timeout: Duration,
) -> Result<u16, ProbeError> {
    let req = probe_request(path, host);
    match uring::timeout(driver, timeout, exchange(driver, addr, req)).await {
        Ok(r) => r,
        Err(uring::Elapsed) => Err(ProbeError::Timeout),
    }
}

async fn exchange(driver: &Rc<Driver>, addr: SocketAddr, req: Vec<u8>) -> Result<u16, ProbeError> {
    let mut conn = uring::connect(driver, addr)
        .await
        .map_err(|e| ProbeError::Connect(errno(&e)))?;
    conn.start_recv();
    let (sent, _) = conn.send_all(req).await;
    sent.map_err(|e| ProbeError::Send(errno(&e)))?;
    let limits = HeadLimits {
        max_head_bytes: MAX_PROBE_HEAD_BYTES,
        ..HeadLimits::default()
    };
    let mut buf = Vec::new();
    let mut head = ResponseHead::default();
    loop {
        let Some(chunk) = conn.recv().await.map_err(|e| ProbeError::Recv(errno(&e)))? else {
            return Err(ProbeError::Closed);
        };
        buf.extend_from_slice(chunk.bytes());
        drop(chunk);
        match parse_response_head(&buf, &limits, Method::Get, &mut head) {
            Ok(Parsed::Complete(_)) => return Ok(head.status),
            Ok(Parsed::Partial) => {}
            Err(_) => return Err(ProbeError::Malformed),
        }
    }
}

/// Whether `addr` answers `hc`'s probe with 200..=399 within `hc.timeout`.
pub async fn probe(driver: &Rc<Driver>, addr: SocketAddr, hc: &HealthCheck, host: &str) -> bool {
    is_healthy_status(check(driver, addr, &hc.path, host, hc.timeout).await)
}

fn is_healthy_status(r: Result<u16, ProbeError>) -> bool {
    matches!(r, Ok(200..=399))
}

/// `interval` ± 10%, at least [`MIN_INTERVAL`].
pub fn jittered(interval: Duration, rng: &mut FastRng) -> Duration {
    let base = u64::try_from(interval.max(MIN_INTERVAL).as_nanos()).unwrap_or(u64::MAX / 2);
    let tenth = base / 10;
    Duration::from_nanos(base - tenth + rng.below(tenth.saturating_mul(2).saturating_add(1)))
}

/// Probes `addrs` concurrently; `results[i]` = probe of `addrs[i]`.
async fn probe_all(
    driver: &Rc<Driver>,
    addrs: &[SocketAddr],
    hc: &HealthCheck,
    host: &str,
    results: &mut Vec<bool>,
) {
    type Probe<'a> = Pin<Box<dyn Future<Output = bool> + 'a>>;
    let mut probes: Vec<Option<Probe<'_>>> = addrs
        .iter()
        .map(|&a| Some(Box::pin(probe(driver, a, hc, host)) as Probe<'_>))
        .collect();
    results.clear();
    results.resize(addrs.len(), false);
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (slot, out) in probes.iter_mut().zip(results.iter_mut()) {
            if let Some(f) = slot {
                match f.as_mut().poll(cx) {
                    Poll::Ready(ok) => {
                        *out = ok;
                        *slot = None;
                    }
                    Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            Poll::Pending
        } else {
            Poll::Ready(())
        }
    })
    .await;
}

/// The health-checking loop of one cluster; run it on one worker per cluster.
///
/// Every round: `endpoints` fills the current addresses (return `false` to stop the loop);
/// when they differ from the last round every endpoint starts healthy again (no transition
/// is reported for that reset: each worker resets its own `HealthState` when it applies the
/// new endpoint set); all endpoints are probed concurrently; each state change is reported as
/// `on_change(idx, addr, healthy)` (check `addr` against your endpoint list before applying,
/// in case the set changed meanwhile). Then it sleeps `interval` ± 10%. Cancel-safe: dropping
/// the future cancels the probes in flight.
pub async fn run_checks(
    driver: &Rc<Driver>,
    mut endpoints: impl FnMut(&mut Vec<SocketAddr>) -> bool,
    hc: &HealthCheck,
    host: &str,
    seed: u64,
    mut on_change: impl FnMut(usize, SocketAddr, bool),
) {
    let mut rng = FastRng::new(seed);
    let mut state = HealthState::new(hc, 0);
    let mut addrs = Vec::new();
    let mut last: Vec<SocketAddr> = Vec::new();
    let mut results = Vec::new();
    loop {
        addrs.clear();
        if !endpoints(&mut addrs) {
            return;
        }
        if addrs != last {
            state.update_endpoints(addrs.len());
            last.clone_from(&addrs);
        }
        probe_all(driver, &addrs, hc, host, &mut results).await;
        for (i, (&ok, &addr)) in results.iter().zip(addrs.iter()).enumerate() {
            if let Some(healthy) = state.report(i, ok) {
                on_change(i, addr, healthy);
            }
        }
        uring::sleep(driver, jittered(hc.interval, &mut rng)).await;
    }
}
