//! The per-connection state machine: read a request head, route it, pick an endpoint, get an
//! upstream connection, forward head and body, relay the response, repeat while keep-alive.
//!
//! ```text
//!  ┌─▶ AwaitHead ──(idle_timeout, no byte)──▶ close
//!  │      │ head complete (request_head_timeout → 408; bad → 4xx + close)
//!  │      ▼
//!  │   Route ──▶ direct / 404 ──────────────────────────────┐
//!  │      ▼                                                  │
//!  │   Exchange: checkout/connect → send head+body → relay   │
//!  │      │  (route timeout → 504 or close; errors → 502/504)│
//!  └──────┴── keep-alive ◀───────────────────────────────────┘
//! ```
//!
//! Invariants: a request is forwarded only after its head passed every check of the codec;
//! a request with an error is answered with the status of `error::ProxyError` and the
//! connection closes; nothing per request allocates once the connection's buffers have grown.

pub mod conn_slab;
pub mod exchange;
pub mod health;
pub mod inbuf;
pub mod mirror;
pub mod park;
pub mod splice;

use std::cell::Cell;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Duration;

use crate::http::{self, BodyFraming, Parsed, RequestHead, ResponseHead};
use crate::route::{Action, RequestView, Selection};
use crate::runtime::worker::{View, Worker};
use crate::telemetry::{ErrorKind, PolicyEvent};
use crate::uring::{timeout, Conn};

use inbuf::InBuf;

/// Per-connection buffers reused by every request on it.
pub struct Downstream {
    pub conn: Conn,
    pub peer: SocketAddr,
    pub inb: InBuf,
    pub head: RequestHead,
    /// Response head of the current exchange (reused: its header list keeps its capacity).
    pub resp: ResponseHead,
    /// Scratch for added header lines and proxy-generated responses.
    pub added: Vec<u8>,
    pub segs: Vec<http::Segment>,
    pub out: Vec<u8>,
}

/// Request head as seen by the router.
pub struct HeadView<'a> {
    pub head: &'a RequestHead,
    pub buf: &'a [u8],
}

impl RequestView for HeadView<'_> {
    fn host(&self) -> Option<&[u8]> {
        match self.head.authority {
            Some(a) => Some(a.get(self.buf)),
            None => self.head.host.map(|h| h.get(self.buf)),
        }
    }
    fn path(&self) -> &[u8] {
        self.head.target.get(self.buf)
    }
    fn header(&self, lowercase_name: &str) -> Option<&[u8]> {
        self.head.header(self.buf, lowercase_name)
    }
}

enum HeadOutcome {
    Ready(usize),
    Closed,
    /// Idle for [`PARK_AFTER`] with nothing buffered: hand the socket to a small parked task
    /// (the connection's keep-alive idle deadline travels with it).
    Park(std::time::Instant),
    /// Status, metrics kind, and the reason sent as the body.
    Error(u16, ErrorKind, String),
}

/// Why the connection task ended.
enum Exit {
    Closed,
    Park(std::time::Instant),
}

/// Serves one downstream connection until it closes.
pub async fn serve(w: Rc<Worker>, listener: usize, conn: Conn, peer: SocketAddr) {
    w.conn_opened();
    w.metrics.connection_opened(listener);
    run(w, listener, Downstream::new(conn, peer)).await;
}

impl Downstream {
    fn new(conn: Conn, peer: SocketAddr) -> Downstream {
        Downstream {
            conn,
            peer,
            inb: InBuf::default(),
            head: RequestHead::default(),
            resp: ResponseHead::default(),
            added: Vec::with_capacity(256),
            segs: Vec::with_capacity(16),
            out: Vec::with_capacity(256),
        }
    }
}

/// The full connection task: requests until the connection closes or idles long enough to
/// park. Parking ends this task (and frees its state, ≈ 10 KB) in favour of an entry in the
/// worker's parking lot ([`park`]). The state lives in a block of the worker's connection
/// slab ([`conn_slab`]), whose pages go back to the kernel once the connection parks.
fn run(
    w: Rc<Worker>,
    listener: usize,
    ds: Downstream,
) -> conn_slab::ConnTask<impl std::future::Future<Output = ()>> {
    let slab = w.conn_slab.clone();
    let task = conn_slab::ConnTask::new(&slab, connection(w, listener, ds));
    if matches!(task, conn_slab::ConnTask::Heap(_)) {
        static WARNED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
        if !WARNED.swap(true, std::sync::atomic::Ordering::Relaxed) {
            tracing::warn!(
                bytes = conn_slab::connection_state_bytes(&task),
                "connection state does not fit a slab block; using the heap"
            );
        }
    }
    task
}

async fn connection(w: Rc<Worker>, listener: usize, mut ds: Downstream) {
    loop {
        match serve_requests(&w, listener, &mut ds).await {
            Exit::Closed => break,
            Exit::Park(deadline) => {
                // Bytes that raced with the decision stay queued: serve them instead.
                if ds.conn.stop_recv().await {
                    let Downstream { conn, peer, .. } = ds;
                    w.lot.park(conn, peer, listener, deadline);
                    return;
                }
            }
        }
    }
    w.metrics.connection_closed(listener);
    w.conn_closed();
}

/// Gives a parked connection that became readable a full connection task again.
pub(crate) fn resume(w: Rc<Worker>, listener: usize, conn: Conn, peer: SocketAddr) {
    glommio::spawn_local(run(w, listener, Downstream::new(conn, peer))).detach();
}

async fn serve_requests(w: &Rc<Worker>, listener: usize, ds: &mut Downstream) -> Exit {
    loop {
        let view = w.view();
        let Some(lcfg) = view.config.listeners.get(listener) else {
            return Exit::Closed;
        };
        let limits = lcfg.limits.clone();
        let outcome = read_head(w, &view, listener, ds, &limits).await;
        let head_len = match outcome {
            HeadOutcome::Ready(n) => n,
            HeadOutcome::Closed => return Exit::Closed,
            HeadOutcome::Park(deadline) => return Exit::Park(deadline),
            HeadOutcome::Error(status, kind, reason) => {
                w.metrics.proxy_error(kind);
                w.metrics.request_done(listener, None, status, None);
                respond(ds, status, reason.as_bytes(), true).await;
                return Exit::Closed;
            }
        };
        // Body size limit known up front (RFC 9112 §6.3: Content-Length).
        if let BodyFraming::Length(n) = ds.head.framing {
            if limits.max_request_body_bytes > 0 && n > limits.max_request_body_bytes {
                w.metrics.proxy_error(ErrorKind::BadRequest);
                w.metrics.request_done(listener, None, 413, None);
                respond(ds, 413, b"request body too large", true).await;
                return Exit::Closed;
            }
        }
        let draining = w.draining.get();
        let (selection, route_index) = {
            let lv = &view.listeners[listener];
            let hv = HeadView {
                head: &ds.head,
                buf: ds.inb.bytes(),
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
        };
        let route_cfg = route_index.and_then(|i| lcfg.routes.get(i));
        let ctx = exchange::RouteCtx {
            policy: route_cfg.map(|r| &r.policy),
            state: route_index.and_then(|i| view.listeners[listener].route_states.get(i)),
            path_prefix: route_cfg.and_then(|r| r.matcher.path_prefix.as_deref()),
        };
        let target_cluster = match selection {
            Target::Cluster(c, _) => Some(c),
            _ => None,
        };
        match route_phases(w, &view, ds, head_len, ctx, target_cluster).await {
            Phase::Continue => {}
            Phase::Answered { status, close } => {
                w.metrics
                    .request_done(listener, target_cluster, status, None);
                if close || ds.head.framing != BodyFraming::None || !ds.head.keep_alive {
                    return Exit::Closed;
                }
                ds.inb.consume(head_len);
                continue;
            }
        }
        let has_body = ds.head.framing != BodyFraming::None;
        match selection {
            Target::NotFound => {
                w.metrics.proxy_error(ErrorKind::NoRoute);
                w.metrics.request_done(listener, None, 404, None);
                let close = has_body || !ds.head.keep_alive || draining;
                respond(ds, 404, b"no route", close).await;
                if close {
                    return Exit::Closed;
                }
                ds.inb.consume(head_len);
            }
            Target::Direct(status, body) => {
                w.metrics.request_done(listener, None, status, None);
                let close = has_body || !ds.head.keep_alive || draining;
                // A direct route's `response_set` / `response_add` apply to its answer.
                let hp = ctx.policy.and_then(|p| p.headers.as_ref());
                match hp {
                    Some(hp) if !hp.response_set.is_empty() || !hp.response_add.is_empty() => {
                        let extra = hp
                            .response_set
                            .iter()
                            .chain(hp.response_add.iter())
                            .map(|(n, v)| (n.as_str(), v.as_str()));
                        respond_with(ds, status, extra, &body, close).await;
                    }
                    _ => respond(ds, status, &body, close).await,
                }
                if close {
                    return Exit::Closed;
                }
                ds.inb.consume(head_len);
            }
            Target::Cluster(cluster, route_timeout) => {
                // The proxy answers `Expect: 100-continue` itself, once the request passed
                // every check that could refuse it, and only if the body is not already here.
                if ds.head.expect_continue
                    && ds.head.framing != BodyFraming::None
                    && ds.inb.len() == head_len
                {
                    let (_, _) = ds.conn.send_all(http::CONTINUE_100).await;
                }
                let started = Cell::new(false);
                let fut = exchange::run(w, &view, listener, cluster, ds, head_len, &started, ctx);
                let result = crate::uring::timeout_opt(&w.driver, route_timeout, fut)
                    .await
                    .unwrap_or(Err(exchange::Failure::Timeout));
                match result {
                    Ok(keep) => {
                        if !keep || w.draining.get() {
                            return Exit::Closed;
                        }
                    }
                    Err(f) => {
                        let (status, kind) = f.status();
                        w.metrics.proxy_error(kind);
                        w.metrics
                            .request_done(listener, Some(cluster), status, None);
                        if !started.get() && status != 0 {
                            match f.header() {
                                Some(h) => {
                                    respond_with(ds, status, std::iter::once(h), f.body(), true)
                                        .await
                                }
                                None => respond(ds, status, f.body(), true).await,
                            }
                        }
                        return Exit::Closed;
                    }
                }
            }
        }
    }
}

/// Result of the route's policy phases before any upstream work.
enum Phase {
    Continue,
    /// The proxy answered (rate limited, injected abort).
    Answered {
        status: u16,
        close: bool,
    },
}

/// Route phases, in order: rate limit (429), fault injection (delay, abort), retry-budget
/// deposit, mirroring. An unconfigured route passes through one branch per phase.
async fn route_phases(
    w: &Rc<Worker>,
    view: &View,
    ds: &mut Downstream,
    head_len: usize,
    ctx: exchange::RouteCtx<'_>,
    cluster: Option<usize>,
) -> Phase {
    let (Some(policy), Some(state)) = (ctx.policy, ctx.state) else {
        return Phase::Continue;
    };
    let now = std::time::Instant::now();
    if policy.rate_limit.is_some() {
        let admitted = state.borrow_mut().admit(now);
        if let Err(wait) = admitted {
            w.metrics.proxy_error(ErrorKind::RateLimited);
            w.metrics.policy_event(cluster, PolicyEvent::RateLimited);
            let mut secs = itoa_buf();
            let retry_after = fmt_u64(&mut secs, crate::policy::rate_limit::retry_after_secs(wait));
            let close = ds.head.framing != BodyFraming::None;
            respond_with(
                ds,
                429,
                std::iter::once(("retry-after", retry_after)),
                b"rate limited\n",
                close,
            )
            .await;
            return Phase::Answered { status: 429, close };
        }
    }
    if policy.fault.is_some() {
        let action = state.borrow_mut().fault(&mut w.rng.borrow_mut());
        if let Some(d) = action.delay() {
            w.metrics
                .policy_event(cluster, PolicyEvent::FaultDelayInjected);
            crate::uring::sleep(&w.driver, d).await;
        }
        if let Some(status) = action.abort() {
            w.metrics
                .policy_event(cluster, PolicyEvent::FaultAbortInjected);
            let close = ds.head.framing != BodyFraming::None;
            respond(ds, status, b"fault injected\n", close).await;
            return Phase::Answered { status, close };
        }
    }
    state.borrow_mut().record_request(now);
    if let Some(m) = &policy.mirror {
        if crate::policy::sample::hit(m.percent, &mut w.rng.borrow_mut()) {
            mirror_request(w, view, ds, head_len, m.cluster.0 as usize);
        }
    }
    Phase::Continue
}

/// Queues a copy of the request for the shadow cluster if its body is already here.
fn mirror_request(w: &Worker, view: &View, ds: &Downstream, head_len: usize, cluster: usize) {
    let buf = ds.inb.bytes();
    let body = match ds.head.framing {
        BodyFraming::None => &[][..],
        BodyFraming::Length(n) => match buf.get(head_len..head_len + n as usize) {
            Some(b) => b,
            None => {
                w.metrics
                    .policy_event(Some(cluster), PolicyEvent::MirrorFailed);
                return;
            }
        },
        BodyFraming::Chunked => {
            let mut d = http::ChunkedDecoder::new();
            let rest = buf.get(head_len..).unwrap_or(&[]);
            match d.feed(rest) {
                Ok(n) if d.is_done() => &rest[..n],
                _ => {
                    w.metrics
                        .policy_event(Some(cluster), PolicyEvent::MirrorFailed);
                    return;
                }
            }
        }
    };
    if view.clusters.get(cluster).is_none() {
        return;
    }
    let mut copy = w.mirror.buffer();
    mirror::build_copy(&ds.head, buf, body, &mut copy);
    if !w.mirror.push(mirror::MirrorJob {
        cluster,
        bytes: copy,
    }) {
        w.metrics
            .policy_event(Some(cluster), PolicyEvent::MirrorFailed);
    }
}

/// A stack buffer for formatting a number without allocating.
fn itoa_buf() -> [u8; 20] {
    [0u8; 20]
}

fn fmt_u64(buf: &mut [u8; 20], mut v: u64) -> &str {
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    std::str::from_utf8(&buf[i..]).unwrap_or("1")
}

enum Target {
    NotFound,
    Direct(u16, bytes::Bytes),
    Cluster(usize, Option<Duration>),
}

/// How often a connection idle between requests checks for a drain; a connection idle for a
/// whole slice parks (see [`park`]).
const IDLE_SLICE: Duration = Duration::from_millis(100);
const HEAD_TIMEOUT_BODY: &str = "request head not received in time\n";
/// Most bytes read and discarded after an error response before closing.
const LINGER_BYTES: usize = 1 << 20;
/// Longest time spent discarding after an error response.
const LINGER_TIME: Duration = Duration::from_secs(1);

/// Reads until a complete, valid request head is buffered.
async fn read_head(
    w: &Rc<Worker>,
    view: &View,
    listener: usize,
    ds: &mut Downstream,
    limits: &crate::config::Limits,
) -> HeadOutcome {
    let hl = &view.listeners[listener].head_limits;
    // Wait for the first byte of the next request (keep-alive idle) for one slice; `recv` is
    // cancel-safe (the multishot receive lives in the connection, not in the future).
    if ds.inb.is_empty() {
        let idle_deadline = std::time::Instant::now() + limits.idle_timeout;
        if w.draining.get() {
            return HeadOutcome::Closed;
        }
        // Idle for a whole slice: park (see `park`), which also watches drain and the deadline.
        let slice = limits.idle_timeout.min(IDLE_SLICE);
        match timeout(&w.driver, slice, ds.conn.recv()).await {
            Ok(Ok(Some(b))) => {
                w.metrics.bytes_received(listener, b.len() as u64);
                ds.inb.push(b);
            }
            Ok(_) => return HeadOutcome::Closed,
            Err(_) => return HeadOutcome::Park(idle_deadline),
        }
    }
    let deadline = std::time::Instant::now() + limits.request_head_timeout;
    loop {
        match http::parse_request_head(ds.inb.bytes(), hl, &mut ds.head) {
            Ok(Parsed::Complete(n)) => return HeadOutcome::Ready(n),
            Ok(Parsed::Partial) => {}
            // The error path may allocate: the reason tells the client what to fix.
            Err(e) => {
                return HeadOutcome::Error(e.status(), ErrorKind::BadRequest, format!("{e}\n"))
            }
        }
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        if left.is_zero() {
            return HeadOutcome::Error(408, ErrorKind::HeadTimeout, HEAD_TIMEOUT_BODY.into());
        }
        match timeout(&w.driver, left, ds.conn.recv()).await {
            Ok(Ok(Some(b))) => {
                w.metrics.bytes_received(listener, b.len() as u64);
                ds.inb.push(b);
            }
            Ok(Ok(None)) | Ok(Err(_)) => return HeadOutcome::Closed,
            Err(_) => {
                return HeadOutcome::Error(408, ErrorKind::HeadTimeout, HEAD_TIMEOUT_BODY.into())
            }
        }
    }
}

/// Sends a response the proxy produces itself.
pub(crate) async fn respond(ds: &mut Downstream, status: u16, body: &[u8], close: bool) {
    respond_with(ds, status, std::iter::empty(), body, close).await
}

/// [`respond`] with extra header lines.
pub(crate) async fn respond_with<'a>(
    ds: &mut Downstream,
    status: u16,
    headers: impl Iterator<Item = (&'a str, &'a str)>,
    body: &[u8],
    close: bool,
) {
    let mut out = std::mem::take(&mut ds.out);
    http::write_simple_response_with(status, headers, body, close, &mut out);
    let (r, out) = ds.conn.send_all(out).await;
    ds.out = out;
    if close && r.is_ok() {
        linger_close(ds).await;
    }
}

/// Half-closes, then reads and discards what the client still sends (bounded in bytes and
/// time), so that closing with unread input does not reset the connection before the client
/// has read our response.
async fn linger_close(ds: &mut Downstream) {
    ds.conn.shutdown_write();
    ds.inb.clear();
    let driver = ds.conn.driver().clone();
    let deadline = std::time::Instant::now() + LINGER_TIME;
    let mut seen = 0usize;
    while seen < LINGER_BYTES {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        if left.is_zero() {
            break;
        }
        match timeout(&driver, left, ds.conn.recv()).await {
            Ok(Ok(Some(b))) => seen += b.len(),
            _ => break,
        }
    }
}
