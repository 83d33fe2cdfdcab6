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

pub mod exchange;
pub mod inbuf;

use std::cell::Cell;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Duration;

use crate::http::{self, BodyFraming, Parsed, RequestHead, ResponseHead};
use crate::route::{Action, RequestView, Selection};
use crate::runtime::worker::{View, Worker};
use crate::telemetry::ErrorKind;
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
    /// Status, metrics kind, and the reason sent as the body.
    Error(u16, ErrorKind, String),
}

/// Serves one downstream connection until it closes.
pub async fn serve(w: Rc<Worker>, listener: usize, conn: Conn, peer: SocketAddr) {
    w.conn_opened();
    w.metrics.connection_opened(listener);
    let mut ds = Downstream {
        conn,
        peer,
        inb: InBuf::default(),
        head: RequestHead::default(),
        resp: ResponseHead::default(),
        added: Vec::with_capacity(256),
        segs: Vec::with_capacity(16),
        out: Vec::with_capacity(256),
    };
    serve_requests(&w, listener, &mut ds).await;
    w.metrics.connection_closed(listener);
    w.conn_closed();
}

async fn serve_requests(w: &Rc<Worker>, listener: usize, ds: &mut Downstream) {
    loop {
        let view = w.view();
        let Some(lcfg) = view.config.listeners.get(listener) else {
            return;
        };
        let limits = lcfg.limits.clone();
        let outcome = read_head(w, &view, listener, ds, &limits).await;
        let head_len = match outcome {
            HeadOutcome::Ready(n) => n,
            HeadOutcome::Closed => return,
            HeadOutcome::Error(status, kind, reason) => {
                w.metrics.proxy_error(kind);
                w.metrics.request_done(listener, None, status, None);
                respond(ds, status, reason.as_bytes(), true).await;
                return;
            }
        };
        // Body size limit known up front (RFC 9112 §6.3: Content-Length).
        if let BodyFraming::Length(n) = ds.head.framing {
            if limits.max_request_body_bytes > 0 && n > limits.max_request_body_bytes {
                w.metrics.proxy_error(ErrorKind::BadRequest);
                w.metrics.request_done(listener, None, 413, None);
                respond(ds, 413, b"request body too large", true).await;
                return;
            }
        }
        let draining = w.draining.get();
        let selection = {
            let lv = &view.listeners[listener];
            let hv = HeadView {
                head: &ds.head,
                buf: ds.inb.bytes(),
            };
            match lv.routes.resolve(&hv) {
                Selection::Route(r) => match &r.action {
                    Action::Cluster(c) => Target::Cluster(c.0 as usize, r.timeout),
                    Action::Split(s) => {
                        let c = s.pick_cluster(&mut w.rng.borrow_mut());
                        Target::Cluster(c.0 as usize, r.timeout)
                    }
                    Action::Direct(d) => Target::Direct(d.status, d.body.clone()),
                },
                Selection::Default(c) => Target::Cluster(c.0 as usize, None),
                Selection::NotFound => Target::NotFound,
            }
        };
        let has_body = ds.head.framing != BodyFraming::None;
        match selection {
            Target::NotFound => {
                w.metrics.proxy_error(ErrorKind::NoRoute);
                w.metrics.request_done(listener, None, 404, None);
                let close = has_body || !ds.head.keep_alive || draining;
                respond(ds, 404, b"no route", close).await;
                if close {
                    return;
                }
                ds.inb.consume(head_len);
            }
            Target::Direct(status, body) => {
                w.metrics.request_done(listener, None, status, None);
                let close = has_body || !ds.head.keep_alive || draining;
                respond(ds, status, &body, close).await;
                if close {
                    return;
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
                let fut = exchange::run(w, &view, listener, cluster, ds, head_len, &started);
                let result = match route_timeout {
                    Some(t) => match timeout(&w.driver, t, fut).await {
                        Ok(r) => r,
                        Err(_) => Err(exchange::Failure::Timeout),
                    },
                    None => fut.await,
                };
                match result {
                    Ok(keep) => {
                        if !keep || w.draining.get() {
                            return;
                        }
                    }
                    Err(f) => {
                        let (status, kind) = f.status();
                        w.metrics.proxy_error(kind);
                        w.metrics
                            .request_done(listener, Some(cluster), status, None);
                        if !started.get() && status != 0 {
                            respond(ds, status, f.body(), true).await;
                        }
                        return;
                    }
                }
            }
        }
    }
}

enum Target {
    NotFound,
    Direct(u16, bytes::Bytes),
    Cluster(usize, Option<Duration>),
}

/// How often a connection idle between requests checks for a drain.
const IDLE_SLICE: Duration = Duration::from_millis(250);
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
    // Wait for the first byte of the next request (keep-alive idle).
    // Waited in slices so a drain closes idle keep-alive connections promptly; `recv` is
    // cancel-safe (the multishot receive lives in the connection, not in the future).
    if ds.inb.is_empty() {
        let idle_deadline = std::time::Instant::now() + limits.idle_timeout;
        loop {
            if w.draining.get() {
                return HeadOutcome::Closed;
            }
            let left = idle_deadline.saturating_duration_since(std::time::Instant::now());
            if left.is_zero() {
                return HeadOutcome::Closed;
            }
            match timeout(&w.driver, left.min(IDLE_SLICE), ds.conn.recv()).await {
                Ok(Ok(Some(b))) => {
                    w.metrics.bytes_received(listener, b.len() as u64);
                    ds.inb.push(b);
                    break;
                }
                Ok(_) => return HeadOutcome::Closed,
                Err(_) => continue,
            }
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
    let mut out = std::mem::take(&mut ds.out);
    http::write_simple_response(status, body, close, &mut out);
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
