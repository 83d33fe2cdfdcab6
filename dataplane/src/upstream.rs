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
use crate::config::{ClusterConfig, ClusterKind};
use crate::pool::{PoolKey, TransportId, UpstreamConn};
use crate::telemetry::PolicyEvent;
use crate::tls::ClusterTlsCore;
use crate::transport::{self, proxy_protocol, ConnInfo, SendError, Stream};
use crate::uring::{self, Driver};
use crate::worker::{View, Worker};

/// A cluster of a view: its config, this worker's state of it, and its index.
#[derive(Clone, Copy)]
pub struct Cluster<'a> {
    pub index: usize,
    pub config: &'a ClusterConfig,
    pub state: &'a ClusterState,
    /// The pool key part of its connections (plaintext, or its TLS settings).
    pub transport: TransportId,
}

impl<'a> Cluster<'a> {
    /// Cluster `index` of `view`, if it exists.
    pub fn of(view: &'a View, index: usize) -> Option<Cluster<'a>> {
        Some(Cluster {
            index,
            config: view.config.clusters.get(index)?,
            state: view.clusters.get(index)?.as_ref(),
            transport: *view.transports.get(index)?,
        })
    }

    /// The pool key of a connection to `addr` made with this cluster's transport, for a
    /// request or connection from the downstream `conn` (whose addresses a PROXY protocol
    /// header announces, when the cluster sends one).
    pub fn pool_key(&self, addr: SocketAddr, conn: Option<&ConnInfo>) -> PoolKey {
        let proxied = match (self.config.proxy_protocol, conn) {
            (Some(_), Some(c)) => Some((c.peer, c.original_dst.unwrap_or(c.local))),
            _ => None,
        };
        PoolKey {
            addr,
            transport: self.transport,
            proxied,
        }
    }

    pub fn is_original_destination(&self) -> bool {
        self.config.kind == ClusterKind::OriginalDestination
    }
}

/// Why an intercepted connection cannot go to its original destination.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OriginalDestinationError {
    /// The listener does not intercept (no original destination is known).
    Unknown,
    /// The original destination is this proxy (a listener of ours, or our own connection
    /// redirected back to us): relaying would loop.
    Loop,
}

/// Where an intercepted connection was going, unless going there would reach this proxy
/// again: a listener address of ours (a client connecting to the listener directly), or one
/// of our own upstream connections redirected back by iptables ([`OwnConnections`]).
pub fn original_destination(
    w: &Worker,
    conn: &ConnInfo,
) -> Result<SocketAddr, OriginalDestinationError> {
    let dst = conn.original_dst.ok_or(OriginalDestinationError::Unknown)?;
    let view = w.view();
    let local_ip = |ip: std::net::IpAddr| ip.is_loopback() || ip == conn.local.ip();
    let is_listener = view.config.listeners.iter().any(|l| {
        l.bind.port() == dst.port()
            && (l.bind.ip() == dst.ip() || (l.bind.ip().is_unspecified() && local_ip(dst.ip())))
    });
    if is_listener || w.shared.own_connections.is_own(conn.peer, dst) {
        return Err(OriginalDestinationError::Loop);
    }
    Ok(dst)
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
    /// For an `original_destination` cluster: where the connection goes (see
    /// [`original_destination`]).
    pub original_dst: Option<SocketAddr>,
}

/// One endpoint picked for one try. Counted in flight by the balancer until dropped.
pub struct Endpoint<'a> {
    cluster: Cluster<'a>,
    /// `None` for an original destination (no balancer, no outlier state).
    pick: Option<Pick>,
    addr: SocketAddr,
}

impl Endpoint<'_> {
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Index of the endpoint in its cluster (0 for an original destination).
    pub fn index(&self) -> usize {
        self.pick.map_or(0, |p| p.index)
    }

    /// How the try went, for outlier detection (an ejection is counted).
    pub fn record(&self, w: &Worker, outcome: Outcome) {
        let Some(p) = &self.pick else { return };
        if let Some(until) = self.cluster.state.record(p.index, outcome) {
            w.metrics
                .policy_event(Some(self.cluster.index), PolicyEvent::OutlierEjection);
            // Every core stops sending to it, not just the one that saw it fail.
            for (i, peer) in w.peers.iter().enumerate() {
                if i != w.id {
                    let _ = peer.send(crate::worker::Control::Ejected {
                        cluster: self.cluster.config.name.clone(),
                        addr: p.addr,
                        until,
                    });
                }
            }
        }
    }
}

impl Drop for Endpoint<'_> {
    fn drop(&mut self) {
        if let Some(p) = &self.pick {
            self.cluster.state.end(p);
        }
    }
}

/// Picks an endpoint of `cluster` for `req` (`None`: no healthy endpoint, or no original
/// destination for an `original_destination` cluster).
pub fn pick<'a>(cluster: Cluster<'a>, req: &PickRequest) -> Option<Endpoint<'a>> {
    if cluster.is_original_destination() {
        return req.original_dst.map(|addr| Endpoint {
            cluster,
            pick: None,
            addr,
        });
    }
    let pick = cluster
        .state
        .pick(
            cluster.config.resilience.when_all_unhealthy,
            req.hash,
            req.exclude,
        )
        .ok()?;
    Some(Endpoint {
        cluster,
        addr: pick.addr,
        pick: Some(pick),
    })
}

/// A stream to `addr` with the cluster's transport (plaintext TCP, or TLS with `tls`, the
/// handshake done), without a deadline.
pub async fn open(
    driver: &Rc<Driver>,
    addr: SocketAddr,
    tls: Option<&ClusterTlsCore>,
) -> io::Result<Stream> {
    let stream = transport::connect_tcp(driver, addr).await?;
    match tls {
        None => Ok(stream),
        Some(t) => start_tls(stream, addr, t).await,
    }
}

/// TLS over the connected `stream` to `addr` (after any PROXY protocol header).
async fn start_tls(stream: Stream, addr: SocketAddr, t: &ClusterTlsCore) -> io::Result<Stream> {
    let conn = rustls::ClientConnection::new(t.client.clone(), t.server_name_for(addr))
        .map_err(io::Error::other)?;
    let mut stream = stream.into_tls(conn.into(), &[])?;
    stream.handshake().await?;
    Ok(stream)
}

/// Opens the stream, sends the cluster's PROXY protocol header if it has one, then starts
/// TLS if the cluster originates it.
async fn open_with_preamble(w: &Worker, cluster: Cluster<'_>, key: &PoolKey) -> io::Result<Stream> {
    let tls = w.view().tls();
    let tls = tls.cluster(cluster.index);
    let mut stream = transport::connect_tcp(&w.driver, key.addr).await?;
    if let (Some(version), Some((src, dst))) = (cluster.config.proxy_protocol, key.proxied) {
        let mut header = Vec::with_capacity(64);
        proxy_protocol::encode(version, src, dst, &mut header);
        let (sent, _) = stream.send(header, None).await;
        sent.map_err(|e| match e {
            SendError::Io(e) => e,
            SendError::TimedOut => io::ErrorKind::TimedOut.into(),
        })?;
    }
    match tls {
        None => Ok(stream),
        Some(t) => match start_tls(stream, key.addr, t).await {
            Ok(s) => {
                w.metrics.upstream_tls(cluster.index, "ok");
                Ok(s)
            }
            Err(e) => {
                let why = tls_failure(&e);
                tracing::debug!(cluster = %cluster.config.name, endpoint = %key.addr, error = %e, "upstream TLS handshake failed");
                w.metrics.upstream_tls(cluster.index, why);
                Err(e)
            }
        },
    }
}

/// The `result` label of a failed upstream TLS handshake.
fn tls_failure(e: &io::Error) -> &'static str {
    match e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()) {
        Some(rustls::Error::InvalidCertificate(
            rustls::CertificateError::ApplicationVerificationFailure,
        )) => "identity_rejected",
        Some(rustls::Error::InvalidCertificate(_)) => "certificate_rejected",
        Some(rustls::Error::AlertReceived(_)) => "alert_received",
        Some(_) => "failed",
        None => "io_error",
    }
}

/// An idle pooled connection for `key`, if the pool has a live one (counted as a reuse).
pub fn checkout(w: &Worker, cluster: Cluster<'_>, key: &PoolKey) -> Option<UpstreamConn> {
    let up = w.pools.borrow_mut().checkout(key, Instant::now())?;
    w.metrics.upstream_pool_reuse(cluster.index);
    Some(up)
}

/// A new connection for `key` within the cluster's connect timeout, holding the breaker's
/// `max_connections` slot for its lifetime (a `max_pending_requests` slot while connecting).
/// It begins with the PROXY protocol header of `key.proxied` when the cluster sends one;
/// a connection to an original destination is marked in the redirect-loop guard.
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
        open_with_preamble(w, cluster, key),
    )
    .await;
    match connected {
        Ok(Ok(stream)) => {
            w.metrics.upstream_connect(cluster.index, true);
            let mut up = UpstreamConn::new(stream, slot);
            if cluster.is_original_destination() {
                let port = up.stream.local_addr().port();
                up.own = Some(w.shared.own_connections.mark(port, key.addr));
            }
            Ok(up)
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
