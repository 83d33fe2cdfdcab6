//! Name resolution for cluster endpoints: [`resolve`] (blocking, once at load/reload) and
//! [`DnsRefresher`], one std thread that re-resolves clusters containing names every
//! `dns_refresh` and reports changed address sets.
//!
//! Invariants: this is the only module allowed to call `ToSocketAddrs::to_socket_addrs`
//! (`.clippy.toml` bans it elsewhere): resolution blocks for as long as the system resolver
//! likes, so it never runs on a worker thread — call [`resolve`] from the control thread and
//! hand the result to workers with the snapshot. Address sets are deduplicated and in a
//! stable order (endpoints in config order; the addresses of one name sorted), so DNS
//! round-robin rotation is not a change and indices stay put. A failed or empty lookup keeps
//! the last good set. Workers own their per-core copies of the endpoints; the refresher owns
//! its state on its own thread and shares nothing but the callback it calls.

#[cfg(test)]
mod tests;

use std::io;
use std::net::SocketAddr;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::config::{ClusterId, Config, EndpointAddr};

/// Resolves `(host, port)` to addresses. [`system_resolver`] in production; tests inject
/// their own.
pub type Resolver = Box<dyn FnMut(&str, u16) -> io::Result<Vec<SocketAddr>> + Send>;
/// Called on the refresher thread with a cluster's new, changed address set.
pub type OnChange = Box<dyn Fn(ClusterId, Vec<SocketAddr>) + Send>;

/// Shortest refresh interval honoured (guards against a zero `dns_refresh` busy loop).
pub const MIN_REFRESH: Duration = Duration::from_millis(100);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DnsError {
    #[error("cannot resolve {host}:{port}: {reason}")]
    Lookup {
        host: Box<str>,
        port: u16,
        reason: Box<str>,
    },
    #[error("{host}:{port} resolved to no addresses")]
    NoAddresses { host: Box<str>, port: u16 },
}

/// The system resolver (`getaddrinfo` through std). Blocking.
pub fn system_resolver(host: &str, port: u16) -> io::Result<Vec<SocketAddr>> {
    use std::net::ToSocketAddrs;
    #[allow(clippy::disallowed_methods)] // the one sanctioned blocking lookup
    let addrs = (host, port).to_socket_addrs()?;
    Ok(addrs.collect())
}

/// Resolves a cluster's endpoints with the system resolver. Blocking: never call it on a
/// worker thread. IP endpoints are kept as they are; a name yields all its addresses.
pub fn resolve(endpoints: &[EndpointAddr]) -> Result<Vec<SocketAddr>, DnsError> {
    resolve_with(endpoints, &mut system_resolver)
}

/// [`resolve`] with an injected resolver. Fails if any name fails or resolves to nothing.
pub fn resolve_with(
    endpoints: &[EndpointAddr],
    resolver: &mut dyn FnMut(&str, u16) -> io::Result<Vec<SocketAddr>>,
) -> Result<Vec<SocketAddr>, DnsError> {
    let mut out: Vec<SocketAddr> = Vec::with_capacity(endpoints.len());
    for endpoint in endpoints {
        match endpoint {
            EndpointAddr::Ip(addr) => push_unique(&mut out, *addr),
            EndpointAddr::Dns { host, port } => {
                let mut addrs = resolver(host, *port).map_err(|e| DnsError::Lookup {
                    host: host.as_str().into(),
                    port: *port,
                    reason: e.to_string().into(),
                })?;
                if addrs.is_empty() {
                    return Err(DnsError::NoAddresses {
                        host: host.as_str().into(),
                        port: *port,
                    });
                }
                addrs.sort_unstable();
                for addr in addrs {
                    push_unique(&mut out, addr);
                }
            }
        }
    }
    Ok(out)
}

fn push_unique(out: &mut Vec<SocketAddr>, addr: SocketAddr) {
    if !out.contains(&addr) {
        out.push(addr);
    }
}

/// One cluster the refresher watches.
#[derive(Debug, Clone)]
pub struct DnsTarget {
    pub cluster: ClusterId,
    pub endpoints: Vec<EndpointAddr>,
    pub refresh: Duration,
    /// The last good address set (what workers currently use); changes are relative to it.
    pub current: Vec<SocketAddr>,
}

impl DnsTarget {
    /// The clusters of `config` that contain at least one name. `resolved[i]` is the set
    /// cluster `i` was loaded with (missing = empty, so the first good lookup is a change).
    pub fn from_config(config: &Config, resolved: &[Vec<SocketAddr>]) -> Vec<DnsTarget> {
        config
            .clusters
            .iter()
            .enumerate()
            .filter(|(_, c)| {
                c.endpoints
                    .iter()
                    .any(|e| matches!(e, EndpointAddr::Dns { .. }))
            })
            .filter_map(|(i, c)| {
                Some(DnsTarget {
                    cluster: ClusterId(u32::try_from(i).ok()?),
                    endpoints: c.endpoints.clone(),
                    refresh: c.dns_refresh,
                    current: resolved.get(i).cloned().unwrap_or_default(),
                })
            })
            .collect()
    }
}

/// Background re-resolution. Dropping it (or [`stop`](Self::stop)) stops and joins the
/// thread; that takes at most as long as one lookup already in progress.
#[derive(Debug)]
pub struct DnsRefresher {
    stop: Option<mpsc::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl DnsRefresher {
    /// Starts the refresher with the system resolver. With no targets no thread is started.
    pub fn spawn(targets: Vec<DnsTarget>, on_change: OnChange) -> io::Result<DnsRefresher> {
        DnsRefresher::spawn_with(targets, Box::new(system_resolver), on_change)
    }

    /// [`spawn`](Self::spawn) with an injected resolver.
    pub fn spawn_with(
        targets: Vec<DnsTarget>,
        resolver: Resolver,
        on_change: OnChange,
    ) -> io::Result<DnsRefresher> {
        if targets.is_empty() {
            return Ok(DnsRefresher {
                stop: None,
                thread: None,
            });
        }
        let (stop, stopped) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("ringway-dns".into())
            .spawn(move || refresh_loop(targets, resolver, on_change, stopped))?;
        Ok(DnsRefresher {
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    /// Whether a refresher thread is running.
    pub fn is_running(&self) -> bool {
        self.thread.is_some()
    }

    /// Stops and joins the thread.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        // Dropping the sender wakes the thread with `Disconnected`.
        self.stop.take();
        if let Some(thread) = self.thread.take() {
            if thread.join().is_err() {
                tracing::error!("dns refresher thread panicked");
            }
        }
    }
}

impl Drop for DnsRefresher {
    fn drop(&mut self) {
        self.shutdown();
    }
}

fn refresh_loop(
    mut targets: Vec<DnsTarget>,
    mut resolver: Resolver,
    on_change: OnChange,
    stopped: mpsc::Receiver<()>,
) {
    let interval = |t: &DnsTarget| t.refresh.max(MIN_REFRESH);
    let start = Instant::now();
    let mut due: Vec<Instant> = targets.iter().map(|t| start + interval(t)).collect();
    loop {
        let Some(next) = due.iter().min().copied() else {
            return;
        };
        match stopped.recv_timeout(next.saturating_duration_since(Instant::now())) {
            Err(RecvTimeoutError::Timeout) => {}
            Ok(()) | Err(RecvTimeoutError::Disconnected) => return,
        }
        for (target, due) in targets.iter_mut().zip(due.iter_mut()) {
            if *due > Instant::now() {
                continue;
            }
            if !matches!(stopped.try_recv(), Err(mpsc::TryRecvError::Empty)) {
                return;
            }
            refresh_one(target, &mut resolver, &on_change);
            *due = Instant::now() + interval(target);
        }
    }
}

fn refresh_one(target: &mut DnsTarget, resolver: &mut Resolver, on_change: &OnChange) {
    match resolve_with(&target.endpoints, resolver) {
        Ok(addrs) if addrs != target.current => {
            tracing::info!(
                cluster = target.cluster.0,
                endpoints = addrs.len(),
                "dns: endpoints changed"
            );
            target.current.clone_from(&addrs);
            on_change(target.cluster, addrs);
        }
        Ok(_) => {}
        Err(error) => tracing::warn!(
            cluster = target.cluster.0,
            %error,
            "dns refresh failed; keeping the last good endpoints"
        ),
    }
}
