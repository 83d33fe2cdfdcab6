//! What crosses threads: [`Shared`] (atomics every thread may read, off the hot path) and the
//! [`Control`] messages the control thread, the admin executor and other workers send to a
//! worker.
//!
//! Invariant: a worker reads its control channel between requests only; nothing on the
//! request path touches a channel or an atomic that another core writes per request.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use crate::config::Config;
use crate::telemetry::MetricsSnapshot;
use crate::tls::TlsSet;
use crate::transport::OwnConnections;

/// Resolved endpoint addresses, indexed like `Config::clusters`.
pub type Endpoints = Arc<Vec<Vec<SocketAddr>>>;

/// State every thread may read: readiness and drain flags, per-worker gauges.
#[derive(Debug)]
pub struct Shared {
    pub workers: usize,
    pub ready_workers: AtomicUsize,
    pub draining: AtomicBool,
    /// The listening sockets were handed to a successor (see `runtime::handover`).
    pub handed_over: AtomicBool,
    /// Open downstream connections per worker (written once per connection, not per request).
    pub active: Vec<AtomicUsize>,
    pub stopped_workers: AtomicUsize,
    /// Our own connections to original destinations (the redirect-loop guard).
    pub own_connections: Arc<OwnConnections>,
}

impl Shared {
    /// Shared state for `workers` workers, none ready yet.
    pub fn new(workers: usize) -> Shared {
        Shared {
            workers,
            ready_workers: AtomicUsize::new(0),
            draining: AtomicBool::new(false),
            handed_over: AtomicBool::new(false),
            active: (0..workers).map(|_| AtomicUsize::new(0)).collect(),
            stopped_workers: AtomicUsize::new(0),
            own_connections: Arc::default(),
        }
    }

    pub fn ready(&self) -> bool {
        self.ready_workers.load(Ordering::Acquire) == self.workers
            && !self.draining.load(Ordering::Acquire)
    }

    pub fn active_connections(&self) -> usize {
        self.active.iter().map(|a| a.load(Ordering::Relaxed)).sum()
    }
}

/// Messages from the control thread / admin executor / other workers to a worker.
pub enum Control {
    /// Reply with this worker's metrics.
    Scrape(flume::Sender<MetricsSnapshot>),
    /// Send back this worker's view of every cluster's endpoints (`/clusters`).
    Clusters(flume::Sender<Vec<crate::cluster::status::ClusterStatus>>),
    /// Swap to a new validated configuration, its resolved endpoints (per cluster) and its
    /// TLS material.
    Reload(Arc<Config>, Endpoints, Arc<TlsSet>),
    /// New TLS material (certificate rotation) for the current configuration.
    Tls(Arc<TlsSet>),
    /// New resolved endpoints (DNS refresh), per cluster of the current configuration.
    Endpoints(Endpoints),
    /// The endpoints of `cluster` (by name) that fail active health checks now; every other
    /// endpoint of it is healthy. Sent by the worker that runs the checks.
    Health {
        cluster: String,
        unhealthy: Vec<SocketAddr>,
    },
    /// Stop accepting; close idle keep-alive connections; finish in-flight requests.
    Drain {
        /// Close idle keep-alive connections at once (SIGTERM); `false` after a handover to a
        /// successor: each idle connection is closed only after answering its next request
        /// with `connection: close` (or at its idle deadline / the drain timeout), so that no
        /// client sees a request it just sent meet a close.
        close_idle: bool,
    },
    /// Another core's outlier detection ejected `addr` of `cluster` until `until`.
    Ejected {
        cluster: String,
        addr: SocketAddr,
        until: std::time::Instant,
    },
    /// Exit now.
    Stop,
}
