//! L4 (TCP) proxying: a `protocol = "tcp"` listener relays the bytes of each connection, both
//! ways, to an endpoint of its cluster.
//!
//! ```text
//!  accepted (PROXY header read by the listener if required; TLS terminated if configured)
//!    ─▶ authorization (`from`, ports): denied → closed, counted by rule
//!    ─▶ sni_routes (passthrough): the ClientHello's server name picks the cluster
//!    ─▶ pick (balancer, health, ejections; or the original destination, loop-guarded)
//!    ─▶ connect (connect_timeout, breaker; PROXY header sent if the cluster says so)
//!         failed: next endpoint, up to the listener's connect_attempts
//!    ─▶ relay (relay): half-close passed through, idle timeout, splice for bulk
//!    ─▶ outcome: outlier detection, bytes and connection metrics
//! ```
//!
//! Invariants: a connection that cannot reach an upstream is closed (nothing is sent to the
//! client: L4 has no error message), counted by kind; both streams are closed when the relay
//! ends; nothing is buffered beyond one batch per direction.

pub mod passthrough;
pub mod relay;

use std::rc::Rc;

use crate::base::ConnTask;
use crate::cluster::Outcome;
use crate::policy::authz::{self, AuthzInput, Decision};
use crate::telemetry::access_log::Entry;
use crate::telemetry::istio::{response_flags, Peer, TcpEvent};
use crate::telemetry::{ErrorKind, SecurityFamily};
use crate::transport::{ConnInfo, InBuf, Stream};
use crate::upstream::{self, Cluster, ConnectError, OriginalDestinationError, PickRequest};
use crate::worker::{View, Worker};

use relay::{Direction, RelayEnd};

/// Serves one accepted connection of a `tcp` listener until both sides are done. The
/// connection was counted open by the listener; it is counted closed here. Its state lives in
/// a block of the worker's connection slab (as HTTP connections' do), not in the task.
pub fn serve(
    w: Rc<Worker>,
    listener: usize,
    client: Stream,
    info: ConnInfo,
    inb: InBuf,
) -> ConnTask<impl std::future::Future<Output = ()>> {
    let slab = w.conn_slab.clone();
    ConnTask::new(&slab, connection(w, listener, client, info, inb))
}

async fn connection(
    w: Rc<Worker>,
    listener: usize,
    mut client: Stream,
    info: ConnInfo,
    inb: InBuf,
) {
    relay_connection(&w, listener, &mut client, &info, inb).await;
    drop(client);
    w.metrics.connection_closed(listener);
    w.conn_closed();
}

async fn relay_connection(
    w: &Rc<Worker>,
    listener: usize,
    client: &mut Stream,
    info: &ConnInfo,
    mut inb: InBuf,
) {
    let view = w.view();
    let Some(lcfg) = view.config.listeners.get(listener) else {
        return;
    };
    if !lcfg.authz.is_empty() {
        let peer = client.peer();
        let input = AuthzInput {
            principal: peer.and_then(|p| p.identity.as_deref()),
            namespace: peer.and_then(|p| p.namespace.as_deref()),
            source_ip: info.peer.ip(),
            port: info.original_dst.unwrap_or(info.local).port(),
            http: None,
        };
        let lv = &view.listeners[listener];
        if let Decision::Deny(rule) = authz::evaluate(&lcfg.authz, &lv.authz_name, &input) {
            w.metrics
                .security_event(SecurityFamily::AuthzDenied, listener, rule);
            tracing::debug!(peer = %info.peer, rule, "connection denied by authorization policy");
            return;
        }
    }
    let mut cluster_id = lcfg.cluster;
    if !lcfg.sni_routes.is_empty() {
        match passthrough::route(w, client, &mut inb, lcfg).await {
            Ok((Some(c), result)) => {
                cluster_id = Some(c);
                w.metrics
                    .security_event(SecurityFamily::Passthrough, listener, result);
            }
            Ok((None, result)) => {
                w.metrics
                    .security_event(SecurityFamily::Passthrough, listener, result);
            }
            Err(result) => {
                w.metrics
                    .security_event(SecurityFamily::Passthrough, listener, result);
                return;
            }
        }
    }
    let Some(cluster) = cluster_id.and_then(|c| Cluster::of(&view, c.0 as usize)) else {
        return;
    };
    let original_dst = if cluster.is_original_destination() {
        match upstream::original_destination(w, info) {
            Ok(dst) => Some(dst),
            Err(OriginalDestinationError::Loop) => {
                w.metrics.proxy_error(ErrorKind::RedirectLoop);
                tracing::debug!(peer = %info.peer, dst = ?info.original_dst, "redirect loop refused");
                return;
            }
            Err(OriginalDestinationError::Unknown) => {
                w.metrics.proxy_error(ErrorKind::NoHealthyEndpoint);
                return;
            }
        }
    } else {
        None
    };
    let hash = crate::cluster::hash::hash_ip(info.peer.ip());
    let mut exclude = None;
    let mut connected = None;
    for _ in 0..lcfg.connect_attempts.max(1) {
        let req = PickRequest {
            hash,
            exclude,
            original_dst,
        };
        let Some(endpoint) = upstream::pick(cluster, &req) else {
            w.metrics.proxy_error(ErrorKind::NoHealthyEndpoint);
            return;
        };
        let key = cluster.pool_key(endpoint.addr(), Some(info));
        match upstream::connect(w, cluster, &key).await {
            Ok(up) => {
                connected = Some((endpoint, up));
                break;
            }
            Err(e) => {
                endpoint.record(w, Outcome::GatewayFailure);
                w.metrics.proxy_error(match e {
                    ConnectError::Overloaded(_) => ErrorKind::Overloaded,
                    _ => ErrorKind::UpstreamConnect,
                });
                if matches!(e, ConnectError::Overloaded(_)) {
                    return;
                }
                exclude = Some(endpoint.index());
            }
        }
    }
    let Some((endpoint, mut up)) = connected else {
        return;
    };
    let c = cluster.index;
    let started = std::time::Instant::now();
    let peer_id = client.peer().and_then(|p| p.identity.clone());
    let peer = Peer {
        identity: peer_id.as_deref(),
    };
    if let Some(labels) = &view.istio {
        w.metrics
            .istio
            .tcp(labels, listener, Some(c), peer, TcpEvent::Opened);
    }
    let (moved_up, moved_down) = (std::cell::Cell::new(0u64), std::cell::Cell::new(0u64));
    let on_moved = |dir: Direction, n: u64| match dir {
        Direction::ToUpstream => {
            moved_up.set(moved_up.get() + n);
            w.metrics.bytes_received(listener, n);
            w.metrics.upstream_bytes(c, n, 0);
            if let Some(labels) = &view.istio {
                let e = TcpEvent::Received(n);
                w.metrics.istio.tcp(labels, listener, Some(c), peer, e);
            }
        }
        Direction::ToClient => {
            moved_down.set(moved_down.get() + n);
            w.metrics.bytes_sent(listener, n);
            w.metrics.upstream_bytes(c, 0, n);
            if let Some(labels) = &view.istio {
                let e = TcpEvent::Sent(n);
                w.metrics.istio.tcp(labels, listener, Some(c), peer, e);
            }
        }
    };
    let end = relay::run(
        &w.driver,
        &w.pipes,
        client,
        inb,
        &mut up.stream,
        lcfg.limits.idle_timeout,
        &on_moved,
    )
    .await;
    match end {
        RelayEnd::Closed | RelayEnd::Idle => endpoint.record(w, Outcome::Success),
        RelayEnd::Client => w.metrics.proxy_error(ErrorKind::DownstreamReset),
        RelayEnd::Upstream => {
            endpoint.record(w, Outcome::GatewayFailure);
            w.metrics.proxy_error(ErrorKind::UpstreamReset);
        }
    }
    if end == RelayEnd::Idle {
        tracing::debug!(peer = %info.peer, "tcp connection idle; closed");
    }
    let (received, sent) = (moved_up.get(), moved_down.get());
    if let Some(labels) = &view.istio {
        w.metrics
            .istio
            .tcp(labels, listener, Some(c), peer, TcpEvent::Closed);
    }
    let error = match end {
        RelayEnd::Client => Some(ErrorKind::DownstreamReset),
        RelayEnd::Upstream => Some(ErrorKind::UpstreamReset),
        RelayEnd::Closed | RelayEnd::Idle => None,
    };
    let closed = TcpClosed {
        listener,
        cluster: c,
        upstream: endpoint.addr(),
        peer: peer.identity,
        received,
        sent,
        duration: started.elapsed(),
        error,
    };
    log_connection(w, &view, info, &closed);
}

/// What an access-log line says about a finished TCP connection.
struct TcpClosed<'a> {
    listener: usize,
    cluster: usize,
    upstream: std::net::SocketAddr,
    peer: Option<&'a str>,
    received: u64,
    sent: u64,
    duration: std::time::Duration,
    error: Option<ErrorKind>,
}

/// The access-log line of a finished TCP connection (if the listener logs and samples it in).
fn log_connection(w: &Worker, view: &View, info: &ConnInfo, c: &TcpClosed<'_>) {
    let Some(Some(log)) = view.access_logs.get(c.listener) else {
        return;
    };
    if !crate::policy::sample::hit(log.sample, &mut w.rng.borrow_mut()) {
        return;
    }
    let Some(core) = w.core_log() else { return };
    let duration_us = crate::telemetry::duration_to_us(c.duration);
    let now_us = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, crate::telemetry::duration_to_us);
    let entry = Entry {
        start_unix_us: now_us.saturating_sub(duration_us),
        protocol: "TCP",
        status: 0,
        flags: response_flags(c.error),
        bytes_received: c.received,
        bytes_sent: c.sent,
        duration_us,
        upstream_us: None,
        upstream_host: Some(c.upstream),
        cluster: view.config.clusters.get(c.cluster).map(|c| c.name.as_str()),
        listener: view
            .config
            .listeners
            .get(c.listener)
            .map_or("", |l| l.name.as_str()),
        downstream: info.peer,
        peer: c.peer,
        trace_id: &[],
        headers: &[],
    };
    let mut line = w.log_line.borrow_mut();
    log.line(&entry, &mut line);
    core.push(log.sink, log.buffer_bytes, &line);
}
