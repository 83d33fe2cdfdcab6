//! The one way to reach an upstream endpoint, shared by the HTTP request path, mirroring,
//! health checks and L4 relays.
//!
//! ```text
//!  pick(cluster, request)      health ∪ ejection mask ─▶ balancer (or the connection's
//!     │                        original destination) ─▶ Endpoint (in flight until dropped)
//!     ▼
//!  checkout(key) ── miss ──▶ connect(cluster, key): breaker slots, connect timeout,
//!     │                      transport of the cluster, PROXY header, metrics
//!     ▼
//!  … the caller's exchange …
//!     ▼
//!  endpoint.record(outcome)    outlier detection (+ metrics)
//!  checkin(key, conn)          pool, if reusable and under the cluster's limits
//! ```
//!
//! - [`Cluster`]: a cluster of the current view with its config, per-core state and index.
//! - [`Endpoint`]: one picked endpoint; its in-flight count ends when it is dropped.
//! - `health`: the active health checker, whose probes connect through [`open`].
//!
//! Invariants: every picked endpoint's in-flight count is released exactly once (by drop);
//! every fresh connection holds the breaker's `max_connections` slot until it closes;
//! nothing here allocates per request.

pub mod health;

use std::io;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Instant;

use crate::cluster::breaker::{BreakerLimit, Overload};
use crate::cluster::{ClusterState, Outcome, Pick};
use crate::config::ClusterConfig;
use crate::pool::{PoolKey, TransportId, UpstreamConn};
use crate::telemetry::PolicyEvent;
use crate::transport::{self, Stream};
use crate::uring::{self, Driver};
use crate::worker::{View, Worker};

/// A cluster of a view: its config, this worker's state of it, and its index.
#[derive(Clone, Copy)]
pub struct Cluster<'a> {
    pub index: usize,
    pub config: &'a ClusterConfig,
    pub state: &'a ClusterState,
}

impl<'a> Cluster<'a> {
    /// Cluster `index` of `view`, if it exists.
    pub fn of(view: &'a View, index: usize) -> Option<Cluster<'a>> {
        Some(Cluster {
            index,
            config: view.config.clusters.get(index)?,
            state: view.clusters.get(index)?,
        })
    }

    /// The pool key of a connection to `addr` made with this cluster's transport.
    pub fn pool_key(&self, addr: SocketAddr) -> PoolKey {
        PoolKey {
            addr,
            transport: TransportId::PLAINTEXT,
            proxied: None,
        }
    }
}

/// Why no connection to an upstream could be had.
#[derive(Debug)]
pub enum ConnectError {
    /// The connection was refused, reset or unreachable.
    Refused(io::Error),
    /// No connection within the cluster's `connect_timeout`.
    Timeout,
    /// A circuit-breaker limit refused a new connection or pending request.
    Overloaded(Overload),
}

/// The policy event that counts a breaker refusal.
pub fn breaker_event(o: &Overload) -> PolicyEvent {
    match o.limit {
        BreakerLimit::Requests => PolicyEvent::BreakerRejectedMaxRequests,
        BreakerLimit::PendingRequests => PolicyEvent::BreakerRejectedMaxPending,
        BreakerLimit::Connections => PolicyEvent::BreakerRejectedMaxConnections,
    }
}

/// What a pick needs to know of the request.
#[derive(Debug, Clone, Copy, Default)]
pub struct PickRequest {
    /// ring_hash key of the request (0 for other balancers).
    pub hash: u64,
    /// An endpoint index to avoid (the one a retry is moving away from).
    pub exclude: Option<usize>,
}

/// One endpoint picked for one try. Counted in flight by the balancer until dropped.
pub struct Endpoint<'a> {
    cluster: Cluster<'a>,
    pick: Pick,
}

impl Endpoint<'_> {
    pub fn addr(&self) -> SocketAddr {
        self.pick.addr
    }

    /// Index of the endpoint in its cluster.
    pub fn index(&self) -> usize {
        self.pick.index
    }

    /// How the try went, for outlier detection (an ejection is counted).
    pub fn record(&self, w: &Worker, outcome: Outcome) {
        if self.cluster.state.record(self.pick.index, outcome) {
            w.metrics
                .policy_event(Some(self.cluster.index), PolicyEvent::OutlierEjection);
        }
    }
}

impl Drop for Endpoint<'_> {
    fn drop(&mut self) {
        self.cluster.state.end(&self.pick);
    }
}

/// Picks an endpoint of `cluster` for `req` (`None`: no healthy endpoint).
pub fn pick<'a>(cluster: Cluster<'a>, req: &PickRequest) -> Option<Endpoint<'a>> {
    let pick = cluster
        .state
        .pick(
            cluster.config.resilience.when_all_unhealthy,
            req.hash,
            req.exclude,
        )
        .ok()?;
    Some(Endpoint { cluster, pick })
}

/// A stream to `addr` with the cluster's transport (plaintext TCP), without a deadline.
pub async fn open(driver: &Rc<Driver>, addr: SocketAddr) -> io::Result<Stream> {
    transport::connect_tcp(driver, addr).await
}

/// An idle pooled connection for `key`, if the pool has a live one (counted as a reuse).
pub fn checkout(w: &Worker, cluster: Cluster<'_>, key: &PoolKey) -> Option<UpstreamConn> {
    let up = w.pools.borrow_mut().checkout(key, Instant::now())?;
    w.metrics.upstream_pool_reuse(cluster.index);
    Some(up)
}

/// A new connection for `key` within the cluster's connect timeout, holding the breaker's
/// `max_connections` slot for its lifetime (a `max_pending_requests` slot while connecting).
pub async fn connect(
    w: &Worker,
    cluster: Cluster<'_>,
    key: &PoolKey,
) -> Result<UpstreamConn, ConnectError> {
    let refused = |o: Overload| {
        w.metrics
            .policy_event(Some(cluster.index), breaker_event(&o));
        ConnectError::Overloaded(o)
    };
    let (_pending, slot) = match &cluster.state.breaker {
        Some(b) => (
            Some(b.try_start_pending().map_err(refused)?),
            Some(b.try_open_connection().map_err(refused)?),
        ),
        None => (None, None),
    };
    let connected = uring::timeout(
        &w.driver,
        cluster.config.connect_timeout,
        open(&w.driver, key.addr),
    )
    .await;
    match connected {
        Ok(Ok(stream)) => {
            w.metrics.upstream_connect(cluster.index, true);
            Ok(UpstreamConn::new(stream, slot))
        }
        Ok(Err(e)) => {
            w.metrics.upstream_connect(cluster.index, false);
            Err(ConnectError::Refused(e))
        }
        Err(_) => {
            w.metrics.upstream_connect(cluster.index, false);
            Err(ConnectError::Timeout)
        }
    }
}

/// Returns `up` to the pool when it may serve another request (`reusable`, under the
/// cluster's `max_requests_per_connection`); otherwise it closes here.
pub fn checkin(
    w: &Worker,
    cluster: Cluster<'_>,
    key: PoolKey,
    mut up: UpstreamConn,
    reusable: bool,
) {
    up.uses += 1;
    let pool = &cluster.config.pool;
    let max_uses = pool.max_requests_per_connection;
    if reusable && up.inb.is_empty() && (max_uses == 0 || up.uses < max_uses) {
        w.pools
            .borrow_mut()
            .checkin(key, up, pool.max_idle, pool.idle_timeout, Instant::now());
    }
}
