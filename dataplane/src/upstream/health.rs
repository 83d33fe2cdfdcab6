//! Active health checks over the upstream path: probes, the checking loop of one cluster,
//! and the glue that runs one loop per checked cluster on worker 0 and broadcasts results.
//!
//! - [`probe`]: one HTTP/1.1 `GET` over a stream opened with [`super::open`] (the cluster's
//!   transport): send `GET <path> HTTP/1.1\r\nHost: <host>\r\nUser-Agent: ringway-health\r\n
//!   Connection: close`, read the response head; healthy iff the status is 200..=399, all
//!   within `timeout`.
//! - [`run_checks`]: every `interval` (±10% jitter) probe all endpoints concurrently, feed a
//!   [`HealthState`], report transitions.
//! - [`run_checker`]: worker 0 runs one [`run_checks`] per cluster that has
//!   `[clusters.health_check]` and broadcasts the set of unhealthy endpoints of that cluster to
//!   every worker (itself included) whenever it changes; each worker applies it to its own
//!   view (`ClusterState::set_unhealthy`), and the pick skips those endpoints.
//!
//! Invariants: one loop per cluster name at a time; a loop ends when its cluster disappears or
//! loses its health check (after a reload), and a new one starts within a second for a
//! cluster that gains one. Probes allocate a little (request bytes, response buffer) — once
//! per endpoint per interval, off the request path.

#[cfg(test)]
mod tests;

use std::cell::RefCell;
use std::collections::HashSet;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::rc::Rc;
use std::task::Poll;
use std::time::Duration;

use crate::base::FastRng;
use crate::cluster::HealthState;
use crate::config::HealthCheck;
use crate::http::{parse_response_head, HeadLimits, Method, Parsed, ResponseHead};
use crate::telemetry::PolicyEvent;
use crate::tls::per_core::ClusterTlsHandle;
use crate::tls::ClusterTlsCore;
use crate::transport::SendError;
use crate::uring::{self, Driver};
use crate::worker::{Control, Worker};

/// Shortest probe interval honoured (guards against a zero `interval` busy loop).
pub const MIN_INTERVAL: Duration = Duration::from_millis(100);
/// Largest response head a probe reads.
pub const MAX_PROBE_HEAD_BYTES: usize = 16 * 1024;

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

fn send_errno(e: &SendError) -> i32 {
    match e {
        SendError::Io(e) => errno(e),
        SendError::TimedOut => libc::ETIMEDOUT,
    }
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
    tls: Option<&ClusterTlsCore>,
    path: &str,
    host: &str,
    timeout: Duration,
) -> Result<u16, ProbeError> {
    let req = probe_request(path, host);
    match uring::timeout(driver, timeout, exchange(driver, addr, tls, req)).await {
        Ok(r) => r,
        Err(uring::Elapsed) => Err(ProbeError::Timeout),
    }
}

async fn exchange(
    driver: &Rc<Driver>,
    addr: SocketAddr,
    tls: Option<&ClusterTlsCore>,
    req: Vec<u8>,
) -> Result<u16, ProbeError> {
    let mut conn = super::open(driver, addr, tls)
        .await
        .map_err(|e| ProbeError::Connect(errno(&e)))?;
    conn.start_recv();
    let (sent, _) = conn.send(req, None).await;
    sent.map_err(|e| ProbeError::Send(send_errno(&e)))?;
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
pub async fn probe(
    driver: &Rc<Driver>,
    addr: SocketAddr,
    tls: Option<&ClusterTlsCore>,
    hc: &HealthCheck,
    host: &str,
) -> bool {
    is_healthy_status(check(driver, addr, tls, &hc.path, host, hc.timeout).await)
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
    tls: Option<&ClusterTlsCore>,
    hc: &HealthCheck,
    host: &str,
    results: &mut Vec<bool>,
) {
    type Probe<'a> = Pin<Box<dyn Future<Output = bool> + 'a>>;
    let mut probes: Vec<Option<Probe<'_>>> = addrs
        .iter()
        .map(|&a| Some(Box::pin(probe(driver, a, tls, hc, host)) as Probe<'_>))
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
/// `endpoints` also returns the cluster's current TLS settings (`None`: plaintext), so that a
/// rotated client certificate is used from the next round on.
pub async fn run_checks(
    driver: &Rc<Driver>,
    mut endpoints: impl FnMut(&mut Vec<SocketAddr>) -> Option<Option<ClusterTlsHandle>>,
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
        let Some(tls) = endpoints(&mut addrs) else {
            return;
        };
        if addrs != last {
            state.update_endpoints(addrs.len());
            last.clone_from(&addrs);
        }
        let tls = tls.as_ref().and_then(ClusterTlsHandle::get);
        probe_all(driver, &addrs, tls, hc, host, &mut results).await;
        for (i, (&ok, &addr)) in results.iter().zip(addrs.iter()).enumerate() {
            if let Some(healthy) = state.report(i, ok) {
                on_change(i, addr, healthy);
            }
        }
        uring::sleep(driver, jittered(hc.interval, &mut rng)).await;
    }
}

/// Starts and stops per-cluster checking loops as the configuration changes.
pub async fn run_checker(w: Rc<Worker>) {
    let running: Rc<RefCell<HashSet<String>>> = Rc::default();
    loop {
        let view = w.view();
        for c in &view.config.clusters {
            if c.resilience.health_check.is_none() || running.borrow().contains(&c.name) {
                continue;
            }
            running.borrow_mut().insert(c.name.clone());
            glommio::spawn_local(check_cluster(w.clone(), c.name.clone(), running.clone()))
                .detach();
        }
        drop(view);
        crate::uring::sleep(&w.driver, Duration::from_secs(1)).await;
    }
}

async fn check_cluster(w: Rc<Worker>, name: String, running: Rc<RefCell<HashSet<String>>>) {
    let view = w.view();
    let Some(cfg) = view.config.clusters.iter().find(|c| c.name == name) else {
        running.borrow_mut().remove(&name);
        return;
    };
    let Some(hc) = cfg.resilience.health_check.clone() else {
        running.borrow_mut().remove(&name);
        return;
    };
    drop(view);
    let host = hc.host.clone().unwrap_or_else(|| name.clone());
    let unhealthy: RefCell<Vec<SocketAddr>> = RefCell::default();
    let endpoints = |out: &mut Vec<SocketAddr>| {
        let view = w.view();
        let i = view.config.clusters.iter().position(|c| c.name == name)?;
        if view.config.clusters[i].resilience.health_check.as_ref() != Some(&hc) {
            return None; // removed or changed: a new loop picks up the new settings
        }
        out.extend_from_slice(&view.clusters[i].endpoints);
        // Forget endpoints that left the cluster.
        unhealthy.borrow_mut().retain(|a| out.contains(a));
        Some(Some(ClusterTlsHandle::new(view.tls(), i)))
    };
    let on_change = |_: usize, addr: SocketAddr, healthy: bool| {
        {
            let mut u = unhealthy.borrow_mut();
            u.retain(|a| *a != addr);
            if !healthy {
                u.push(addr);
            }
        }
        let view = w.view();
        let idx = view.config.clusters.iter().position(|c| c.name == name);
        if !healthy {
            w.metrics.policy_event(idx, PolicyEvent::EndpointUnhealthy);
        }
        tracing::info!(cluster = %name, endpoint = %addr, healthy, "health check state changed");
        for p in &w.peers {
            let _ = p.send(Control::Health {
                cluster: name.clone(),
                unhealthy: unhealthy.borrow().clone(),
            });
        }
    };
    run_checks(
        &w.driver,
        endpoints,
        &hc,
        &host,
        w.id as u64 ^ 0x5eed,
        on_change,
    )
    .await;
    running.borrow_mut().remove(&name);
}
