//! The HTTP/1.1 connection state machine: read a request head, route it, run the route's
//! policy phases, exchange it with an upstream, relay the response, repeat while keep-alive.
//!
//! ```text
//!  ┌─▶ AwaitHead ──(idle a slice)──▶ park (transport::ParkingLot) ──(readable)──┐
//!  │      │ head complete (request_head_timeout → 408; bad → 4xx + close)       │
//!  │      ▼                                                                      │
//!  │   Route ──▶ authz 403 / direct / 404 / policy answer (429, fault) ──────┐   │
//!  │      ▼                                                                  │   │
//!  │   Exchange (exchange): pick → conn → send head+body → relay response    │   │
//!  │      │  (route timeout → 504 or close; errors → 502/503/504)             │   │
//!  └──────┴── keep-alive ◀── outcome recorded once (outcome) ◀───────────────┘ ◀─┘
//! ```
//!
//! - `downstream`: the client connection's buffers, proxy-generated responses.
//! - `authz`: the listener's and route's authorization rules (403 when denied).
//! - `phases`: the route's policy phases before any upstream work.
//! - `exchange`: the upstream exchange (tries, retries, relay).
//! - `outcome`: the one place a request's result is recorded.
//! - `mirror`: shadow copies and their sender tasks. `park`: the parking-lot task.
//!
//! Invariants: a request is forwarded only after its head passed every check of the codec;
//! a request with an error is answered with the status of [`failure::Failure`] and the
//! connection closes; nothing per request allocates once the connection's buffers have grown.
//! The proxy never touches a descriptor: all I/O goes through `transport::Stream`.

mod authz;
pub mod downstream;
pub mod exchange;
pub mod failure;
pub mod fuzz_logic;
pub mod mirror;
mod outcome;
pub mod park;
mod phases;

use std::rc::Rc;
use std::time::{Duration, Instant};

use crate::base::ConnTask;
use crate::config::HostMismatch;
use crate::http::{self, BodyFraming, HeadView, Parsed};
use crate::route::{Action, Selection};
use crate::telemetry::{ErrorKind, SecurityFamily};
use crate::transport::{ConnInfo, InBuf, Stream};
use crate::upstream::Cluster;
use crate::uring::timeout;
use crate::worker::{View, Worker};

use downstream::{respond, respond_with, Downstream};
use exchange::{Exchange, RequestState, RouteCtx};
use outcome::RequestOutcome;
use phases::Phase;

enum HeadOutcome {
    Ready(usize),
    Closed,
    /// Idle for [`IDLE_SLICE`] with nothing buffered: hand the stream to the parking lot
    /// (the connection's keep-alive idle deadline travels with it).
    Park(Instant),
    /// Status, metrics kind, and the reason sent as the body.
    Error(u16, ErrorKind, String),
}

/// Why the connection task ended.
enum Exit {
    /// Closed after complete responses (TLS: with close_notify).
    Closed,
    /// Closed in the middle of a response: the client must see a truncation (TLS: no
    /// close_notify, so the end of stream cannot pass for the end of the body).
    Truncated,
    Park(Instant),
}

/// What serves a routed request.
enum Target {
    NotFound,
    Direct(u16, bytes::Bytes),
    Cluster(usize, Option<Duration>),
}

/// How often a connection idle between requests checks for a drain; a connection idle for a
/// whole slice parks (see [`park`]).
const IDLE_SLICE: Duration = Duration::from_millis(100);
const HEAD_TIMEOUT_BODY: &str = "request head not received in time\n";

/// Serves one downstream connection until it closes (or parks). The listener counted it
/// open; its first bytes may already be in `inb`.
pub fn serve(
    w: Rc<Worker>,
    listener: usize,
    stream: Stream,
    info: ConnInfo,
    inb: InBuf,
) -> ConnTask<impl std::future::Future<Output = ()>> {
    run(w, listener, Downstream::with_input(stream, info, inb))
}

/// Gives a parked connection that became readable a full connection task again.
pub(crate) fn resume(w: Rc<Worker>, listener: usize, stream: Stream, info: ConnInfo) {
    glommio::spawn_local(run(w, listener, Downstream::new(stream, info))).detach();
}

/// The full connection task: requests until the connection closes or idles long enough to
/// park. Parking ends this task (and frees its state, ≈ 10 KB) in favour of an entry in the
/// worker's parking lot. The state lives in a block of the worker's connection slab
/// (`base::conn_slab`), whose pages go back to the kernel once the connection parks.
fn run(
    w: Rc<Worker>,
    listener: usize,
    ds: Downstream,
) -> ConnTask<impl std::future::Future<Output = ()>> {
    let slab = w.conn_slab.clone();
    ConnTask::new(&slab, connection(w, listener, ds))
}

async fn connection(w: Rc<Worker>, listener: usize, mut ds: Downstream) {
    loop {
        match serve_requests(&w, listener, &mut ds).await {
            Exit::Closed => {
                ds.stream.close_notify();
                break;
            }
            Exit::Truncated => break,
            Exit::Park(deadline) => {
                // Bytes that raced with the decision stay queued: serve them instead.
                if ds.stream.quiesce().await {
                    outcome::record_bytes(&w, listener, &ds);
                    let Downstream { stream, info, .. } = ds;
                    w.lot.park(stream, info, listener, deadline);
                    return;
                }
            }
        }
    }
    outcome::record_bytes(&w, listener, &ds);
    w.metrics.connection_closed(listener);
    w.conn_closed();
}

/// Serves requests until the connection closes or should park.
async fn serve_requests(w: &Rc<Worker>, listener: usize, ds: &mut Downstream) -> Exit {
    loop {
        let view = w.view();
        let Some(lcfg) = view.config.listeners.get(listener) else {
            return Exit::Closed;
        };
        let head_len = match read_head(w, &view, listener, ds).await {
            HeadOutcome::Ready(n) => n,
            HeadOutcome::Closed => return Exit::Closed,
            HeadOutcome::Park(deadline) => return Exit::Park(deadline),
            HeadOutcome::Error(status, kind, reason) => {
                outcome::begin_unparsed(w, &view, listener, ds);
                outcome::record(w, listener, ds, &RequestOutcome::error(status, kind, None));
                respond(ds, status, reason.as_bytes(), true).await;
                return Exit::Closed;
            }
        };
        outcome::begin(w, &view, listener, ds);
        if lcfg.host_mismatch == HostMismatch::Reject
            && !http::authority_matches_host(&ds.head, ds.inb.bytes())
        {
            let e = http::HeadError::HostMismatch;
            outcome::record(
                w,
                listener,
                ds,
                &RequestOutcome::error(400, ErrorKind::BadRequest, None),
            );
            respond(ds, 400, format!("{e}\n").as_bytes(), true).await;
            return Exit::Closed;
        }
        // Body size limit known up front (RFC 9112 §6.3: Content-Length).
        let limits = &lcfg.limits;
        if let BodyFraming::Length(n) = ds.head.framing {
            if limits.max_request_body_bytes > 0 && n > limits.max_request_body_bytes {
                let o = RequestOutcome::error(413, ErrorKind::BadRequest, None);
                outcome::record(w, listener, ds, &o);
                respond(ds, 413, b"request body too large", true).await;
                return Exit::Closed;
            }
        }
        let (target, route_index) = select(w, &view, listener, ds);
        let route_cfg = route_index.and_then(|i| lcfg.routes.get(i));
        let lv = &view.listeners[listener];
        // Answered by the proxy without reading a body: the connection may go on.
        let reusable = ds.head.framing == BodyFraming::None && ds.head.keep_alive;
        if let Some(rule) = authz::denied(lcfg, lv, route_index.zip(route_cfg), ds) {
            w.metrics
                .security_event(SecurityFamily::AuthzDenied, listener, rule);
            tracing::debug!(peer = %ds.info.peer, rule, "request denied by authorization policy");
            let close = !reusable || w.draining.get();
            respond(ds, 403, authz::DENIED_BODY, close).await;
            outcome::record(w, listener, ds, &RequestOutcome::answered(403, None, None));
            if close {
                return Exit::Closed;
            }
            ds.inb.consume(head_len);
            continue;
        }
        let ctx = RouteCtx {
            policy: route_cfg.map(|r| &r.policy),
            state: route_index
                .and_then(|i| lv.route_states.get(i))
                .map(|s| &**s),
            path_prefix: route_cfg.and_then(|r| r.matcher.path_prefix.as_deref()),
        };
        let target_cluster = match target {
            Target::Cluster(c, _) => Some(c),
            _ => None,
        };
        let mut consumed = false;
        let (result, close) = match phases::run(w, &view, ds, head_len, ctx, target_cluster).await {
            Phase::Answered {
                status,
                close,
                error,
            } => {
                let close = close || !reusable;
                (
                    RequestOutcome::answered(status, target_cluster, error),
                    close,
                )
            }
            Phase::Continue => match target {
                Target::NotFound => {
                    let close = !reusable || w.draining.get();
                    respond(ds, 404, b"no route", close).await;
                    (RequestOutcome::error(404, ErrorKind::NoRoute, None), close)
                }
                Target::Direct(status, body) => {
                    let close = !reusable || w.draining.get();
                    direct(ds, ctx, status, &body, close).await;
                    (RequestOutcome::answered(status, None, None), close)
                }
                Target::Cluster(cluster, route_timeout) => {
                    let Some(cluster) = Cluster::of(&view, cluster) else {
                        return Exit::Closed;
                    };
                    let mut ex = Exchange::new(w, listener, lcfg, cluster, ctx, route_timeout);
                    match upstream_exchange(&mut ex, ds, head_len).await {
                        Ok((o, keep)) => {
                            consumed = true;
                            (o, !keep || w.draining.get())
                        }
                        Err(o) => (o, true),
                    }
                }
            },
        };
        outcome::record(w, listener, ds, &result);
        if close {
            return if result.status == 0 {
                Exit::Truncated
            } else {
                Exit::Closed
            };
        }
        if consumed {
            continue;
        }
        ds.inb.consume(head_len);
    }
}

/// Routes the request: what serves it, and the index of the route that matched.
fn select(w: &Worker, view: &View, listener: usize, ds: &Downstream) -> (Target, Option<usize>) {
    let lv = &view.listeners[listener];
    let hv = HeadView {
        head: &ds.head,
        buf: ds.inb.bytes(),
    };
    let hv = http::WithPrincipal {
        request: &hv,
        principal: ds.stream.peer().and_then(|p| p.identity.as_deref()),
    };
    match lv.routes.resolve(&hv) {
        Selection::Route(r) => (
            match &r.action {
                Action::Cluster(c) => Target::Cluster(c.0 as usize, r.timeout),
                Action::Split(s) => {
                    let c = s.pick_cluster(&mut w.rng.borrow_mut());
                    Target::Cluster(c.0 as usize, r.timeout)
                }
                Action::Direct(d) => Target::Direct(d.status, d.body.clone()),
            },
            Some(r.index),
        ),
        Selection::Default(c) => (Target::Cluster(c.0 as usize, None), None),
        Selection::NotFound => (Target::NotFound, None),
    }
}

/// A direct route's answer; its `response_set` / `response_add` apply to it.
async fn direct(ds: &mut Downstream, ctx: RouteCtx<'_>, status: u16, body: &[u8], close: bool) {
    match ctx.policy.and_then(|p| p.headers.as_ref()) {
        Some(hp) if !hp.response_set.is_empty() || !hp.response_add.is_empty() => {
            let extra = hp
                .response_set
                .iter()
                .chain(hp.response_add.iter())
                .map(|(n, v)| (n.as_str(), v.as_str()));
            respond_with(ds, status, extra, body, close).await;
        }
        _ => respond(ds, status, body, close).await,
    }
}

/// The request goes upstream. `Ok((outcome, keep))` when the request's bytes are consumed
/// (the exchange completed, or failed with an answer after which the connection may serve the
/// next request); `Err(outcome)` when the connection must close.
///
/// A gateway error (502/503/504/508) keeps the client connection whenever the whole request
/// had been read and no response byte was sent, as nginx, HAProxy and Envoy do: closing every
/// client of a failing dependency would add a reconnect storm to the outage.
async fn upstream_exchange(
    ex: &mut Exchange<'_>,
    ds: &mut Downstream,
    head_len: usize,
) -> Result<(RequestOutcome, bool), RequestOutcome> {
    // The proxy answers `Expect: 100-continue` itself, once the request passed every check
    // that could refuse it, and only if the body is not already here.
    if ds.head.expect_continue && ds.head.framing != BodyFraming::None && ds.inb.len() == head_len {
        let deadline = Instant::now() + ex.limits.stream_idle_timeout;
        let _ = ds.stream.send(http::CONTINUE_100, Some(deadline)).await;
    }
    let cluster = ex.cluster.index;
    match exchange::run(ex, ds, head_len).await {
        Ok(done) => {
            let mut o = RequestOutcome::relayed(done.status, cluster, ex.latency);
            o.upstream = ex.upstream;
            Ok((o, done.keep_client))
        }
        Err(f) => {
            let (status, kind) = f.status();
            if ex.started() || status == 0 {
                let mut o = RequestOutcome::error(0, kind, Some(cluster));
                o.upstream = ex.upstream;
                return Err(o);
            }
            // Keep the connection if the request is consumed whole.
            let keep = ds.head.keep_alive
                && !ex.w.draining.get()
                && f.leaves_request_intact()
                && match ex.request_state() {
                    RequestState::Streamed => true,
                    RequestState::Streaming => false,
                    RequestState::Buffered => match buffered_request_len(ds, head_len) {
                        Some(n) => {
                            ds.inb.consume(n);
                            true
                        }
                        None => false,
                    },
                };
            match f.header() {
                Some(h) => respond_with(ds, status, std::iter::once(h), f.body(), !keep).await,
                None => respond(ds, status, f.body(), !keep).await,
            }
            let mut o = RequestOutcome::error(status, kind, Some(cluster));
            o.upstream = ex.upstream;
            if keep {
                Ok((o, true))
            } else {
                Err(o)
            }
        }
    }
}

/// The length of the request at the start of `ds.inb` (head and body) if all of it is there.
fn buffered_request_len(ds: &Downstream, head_len: usize) -> Option<usize> {
    let buf = ds.inb.bytes();
    match ds.head.framing {
        BodyFraming::None => Some(head_len),
        BodyFraming::Length(n) => {
            let end = head_len.checked_add(usize::try_from(n).ok()?)?;
            (end <= buf.len()).then_some(end)
        }
        BodyFraming::Chunked => {
            let mut d = http::ChunkedDecoder::new();
            let n = d.feed(buf.get(head_len..)?).ok()?;
            d.is_done().then_some(head_len + n)
        }
    }
}

/// Reads until a complete, valid request head is buffered.
async fn read_head(
    w: &Rc<Worker>,
    view: &View,
    listener: usize,
    ds: &mut Downstream,
) -> HeadOutcome {
    let lv = &view.listeners[listener];
    let limits = &view.config.listeners[listener].limits;
    // Wait for the first byte of the next request (keep-alive idle) for one slice; `recv` is
    // cancel-safe (the receive lives in the stream, not in the future).
    if ds.inb.is_empty() {
        let idle_deadline = Instant::now() + limits.idle_timeout;
        if w.closing_idle() {
            return HeadOutcome::Closed;
        }
        // Idle for a whole slice: park (see `park`), which also watches drain and the deadline.
        let slice = limits.idle_timeout.min(IDLE_SLICE);
        match timeout(&w.driver, slice, ds.stream.recv()).await {
            Ok(Ok(Some(b))) => ds.inb.push(b),
            Ok(_) => return HeadOutcome::Closed,
            Err(_) => return HeadOutcome::Park(idle_deadline),
        }
    }
    let deadline = Instant::now() + limits.request_head_timeout;
    loop {
        match http::parse_request_head(ds.inb.bytes(), &lv.head_limits, &mut ds.head) {
            Ok(Parsed::Complete(n)) => return HeadOutcome::Ready(n),
            Ok(Parsed::Partial) => {}
            // The error path may allocate: the reason tells the client what to fix.
            Err(e) => {
                return HeadOutcome::Error(e.status(), ErrorKind::BadRequest, format!("{e}\n"))
            }
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return HeadOutcome::Error(408, ErrorKind::HeadTimeout, HEAD_TIMEOUT_BODY.into());
        }
        match timeout(&w.driver, left, ds.stream.recv()).await {
            Ok(Ok(Some(b))) => ds.inb.push(b),
            Ok(Ok(None)) | Ok(Err(_)) => return HeadOutcome::Closed,
            Err(_) => {
                return HeadOutcome::Error(408, ErrorKind::HeadTimeout, HEAD_TIMEOUT_BODY.into())
            }
        }
    }
}
