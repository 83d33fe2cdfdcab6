//! One upstream exchange, as a sequence of tries: admit through the cluster's circuit breaker,
//! pick an endpoint (skipping unhealthy and ejected ones), check out or open a connection,
//! send the request head (original bytes plus added lines) and body, read the response head,
//! relay the response.
//!
//! ```text
//!  breaker ─▶ ┌─ pick(exclude last) ─▶ conn ─▶ send ─▶ response head ─┐
//!             │                                                      ├─ retryable & allowed
//!             └──────────── backoff ◀── retry policy + budget ◀──────┘   (not yet forwarded)
//!                                                                     └─▶ relay to client
//! ```
//!
//! Retry rules: a try is retried only if the route's `retry` policy covers its outcome, tries
//! remain, the route's retry budget allows it, nothing of the response reached the client, and
//! the request can be replayed (no body, or a body held whole in the connection's buffer — up
//! to `replay_buffer_bytes` — or nothing was sent yet: a connect failure). Independently of any
//! policy, an idempotent body-less request whose *reused* pooled connection turns out dead
//! before any response byte is re-sent once on a fresh connection. Every failure maps to one
//! status in [`Failure::status`].

use std::cell::Cell;
use std::io;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::{Duration, Instant};

use crate::cluster::balancer::PickContext;
use crate::cluster::breaker::{ConnectionGuard, Overload};
use crate::cluster::health::{merge_unavailable, Availability};
use crate::cluster::outlier::Outcome;
use crate::config::{HeaderPolicy, LbPolicy, RoutePolicy};
use crate::http::{
    self, rewrite, BodyFraming, ChunkedDecoder, HeadLimits, Parsed, RequestExtras, ResponseExtras,
    ResponseFraming,
};
use crate::policy::retry::{GiveUp, RetryDecision, TryOutcome};
use crate::policy::{RetryState, RouteState};
use crate::pool::UpstreamConn;
use crate::runtime::worker::{ClusterView, View, Worker};
use crate::telemetry::{ErrorKind, PolicyEvent};
use crate::uring::{self, send_all, timeout, Conn, IoVecs, RecvBuf};

use super::inbuf::{Chain, HeadOut, InBuf, Window};
use super::splice::{self, SPLICE_MIN_BYTES};
use super::{Downstream, HeadView};

/// Limits applied to upstream response heads.
const RESPONSE_LIMITS: HeadLimits = HeadLimits {
    max_head_bytes: 64 * 1024,
    max_target_bytes: 64 * 1024,
    max_headers: http::MAX_HEADERS_CAP,
};

/// Why an exchange failed.
#[derive(Debug)]
pub enum Failure {
    NoEndpoint,
    Connect(io::Error),
    ConnectTimeout,
    /// The upstream closed or reset before a complete response head.
    UpstreamReset,
    BadResponse,
    /// No upstream progress for the idle timeout, or the route's or a try's timeout fired.
    Timeout,
    /// The response had started; the only option left is closing the client connection.
    AfterResponseStarted,
    /// The client went away or sent a broken body.
    Downstream,
    BadRequestBody,
    BodyTooLarge,
    /// A circuit breaker limit (its config key).
    Overloaded(&'static str),
}

impl Failure {
    /// (status to answer, or 0 for none; metrics kind).
    pub fn status(&self) -> (u16, ErrorKind) {
        match self {
            Failure::NoEndpoint => (503, ErrorKind::NoHealthyEndpoint),
            Failure::Connect(_) => (502, ErrorKind::UpstreamConnect),
            Failure::ConnectTimeout => (504, ErrorKind::UpstreamConnect),
            Failure::UpstreamReset => (502, ErrorKind::UpstreamReset),
            Failure::BadResponse => (502, ErrorKind::BadResponse),
            Failure::Timeout => (504, ErrorKind::UpstreamTimeout),
            Failure::AfterResponseStarted => (0, ErrorKind::UpstreamReset),
            Failure::Downstream => (0, ErrorKind::DownstreamReset),
            Failure::BadRequestBody => (400, ErrorKind::BadRequest),
            Failure::BodyTooLarge => (413, ErrorKind::BadRequest),
            Failure::Overloaded(_) => (503, ErrorKind::Overloaded),
        }
    }

    pub fn body(&self) -> &'static [u8] {
        match self {
            Failure::NoEndpoint => b"no healthy upstream\n",
            Failure::Connect(_) => b"upstream connect error\n",
            Failure::ConnectTimeout => b"upstream connect timeout\n",
            Failure::UpstreamReset => b"upstream closed the connection\n",
            Failure::BadResponse => b"upstream sent a malformed response\n",
            Failure::Timeout => b"upstream timeout\n",
            Failure::BadRequestBody => b"malformed request body\n",
            Failure::BodyTooLarge => b"request body too large\n",
            Failure::Overloaded(_) => b"upstream overloaded (circuit breaker)\n",
            Failure::AfterResponseStarted | Failure::Downstream => b"",
        }
    }

    /// Extra header of the error response (the breaker limit that refused the request).
    pub fn header(&self) -> Option<(&'static str, &'static str)> {
        match self {
            Failure::Overloaded(which) => Some(("x-ringway-overloaded", which)),
            _ => None,
        }
    }
}

impl From<Overload> for Failure {
    fn from(o: Overload) -> Failure {
        Failure::Overloaded(o.which)
    }
}

/// The route's policy as the exchange sees it.
#[derive(Clone, Copy, Default)]
pub struct RouteCtx<'a> {
    pub policy: Option<&'a RoutePolicy>,
    pub state: Option<&'a std::cell::RefCell<RouteState>>,
    /// The route's `match.path_prefix` (for `path_prefix_rewrite`).
    pub path_prefix: Option<&'a str>,
}

impl RouteCtx<'_> {
    fn headers(&self) -> Option<&HeaderPolicy> {
        self.policy.and_then(|p| p.headers.as_ref())
    }
}

/// Releases the balancer's in-flight count when a try ends, however it ends.
struct InFlight<'a> {
    cv: &'a ClusterView,
    idx: usize,
    generation: u64,
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.cv
            .balancer
            .borrow_mut()
            .on_request_end_in(self.idx, self.generation);
    }
}

/// A request id: `<8 hex prefix>-<worker>-<16 hex sequence>`, formatted on the stack.
fn request_id(w: &Worker, out: &mut [u8; 32]) -> usize {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let seq = w.request_seq.get().wrapping_add(1);
    w.request_seq.set(seq);
    let mut n = 0;
    for i in (0..8).rev() {
        out[n] = HEX[((w.id_prefix >> (i * 4)) & 0xf) as usize];
        n += 1;
    }
    out[n] = b'-';
    out[n + 1] = HEX[w.id % 16];
    out[n + 2] = b'-';
    n += 3;
    for i in (0..16).rev() {
        out[n] = HEX[((seq >> (i * 4)) & 0xf) as usize];
        n += 1;
    }
    n
}

async fn recv_into(
    driver: &Rc<crate::uring::Driver>,
    conn: &mut Conn,
    idle: Duration,
) -> Result<Option<RecvBuf>, Failure> {
    match timeout(driver, idle, conn.recv()).await {
        Ok(Ok(b)) => Ok(b),
        Ok(Err(_)) => Err(Failure::UpstreamReset),
        Err(_) => Err(Failure::Timeout),
    }
}

/// Outcome of a send bounded by the idle timeout.
enum Sent<T> {
    Done(T),
    /// The peer reset or closed; the buffers come back.
    Failed(T),
    /// No progress within the idle timeout (a peer that stopped reading).
    TimedOut,
}

impl<T> Sent<T> {
    fn or_fail(self, failed: Failure, timed_out: Failure) -> Result<T, Failure> {
        match self {
            Sent::Done(t) => Ok(t),
            Sent::Failed(_) => Err(failed),
            Sent::TimedOut => Err(timed_out),
        }
    }
}

/// Sends all of `bufs` on `fd`, giving up after `idle` without completion.
async fn send_timed<T: IoVecs>(
    driver: &Rc<crate::uring::Driver>,
    fd: std::os::fd::RawFd,
    idle: Duration,
    bufs: T,
) -> Sent<T> {
    match timeout(driver, idle, send_all(driver, fd, bufs)).await {
        Ok((Ok(()), b)) => Sent::Done(b),
        Ok((Err(_), b)) => Sent::Failed(b),
        Err(_) => Sent::TimedOut,
    }
}

/// Sends the first `take` bytes of `inb` and consumes them (a bounded send, see
/// [`send_timed`]); on failure the buffered bytes are gone with the connection.
async fn send_window(
    driver: &Rc<crate::uring::Driver>,
    fd: std::os::fd::RawFd,
    idle: Duration,
    inb: &mut InBuf,
    take: usize,
    failed: Failure,
    timed_out: Failure,
) -> Result<(), Failure> {
    let win = Window {
        inb: std::mem::take(inb),
        len: take,
    };
    let win = send_timed(driver, fd, idle, win)
        .await
        .or_fail(failed, timed_out)?;
    *inb = win.inb;
    inb.consume(take);
    Ok(())
}

/// Where a relayed response body ends (RFC 9112 §6.3): fed the bytes as they arrive, it says
/// how many belong to the body and whether the body ends within them.
struct BodyCursor {
    framing: ResponseFraming,
    /// Content-Length bytes still due.
    remaining: u64,
    dec: ChunkedDecoder,
}

impl BodyCursor {
    fn new(framing: ResponseFraming) -> BodyCursor {
        BodyCursor {
            framing,
            remaining: match framing {
                ResponseFraming::Length(n) => n,
                _ => 0,
            },
            dec: ChunkedDecoder::new(),
        }
    }

    /// (bytes of `input` that belong to the body, whether the body ends there).
    fn take(&mut self, input: &[u8]) -> Result<(usize, bool), http::ChunkedError> {
        match self.framing {
            ResponseFraming::None => Ok((0, true)),
            ResponseFraming::Length(_) => {
                let t = self.remaining.min(input.len() as u64);
                self.remaining -= t;
                Ok((t as usize, self.remaining == 0))
            }
            ResponseFraming::Chunked => {
                let t = self.dec.feed(input)?;
                Ok((t, self.dec.is_done()))
            }
            ResponseFraming::CloseDelimited => Ok((input.len(), false)),
        }
    }
}

impl BodyCursor {
    /// Content-Length bytes still due (0 for other framings: only those are spliced).
    fn splice_len(&self) -> u64 {
        match self.framing {
            ResponseFraming::Length(_) => self.remaining,
            _ => 0,
        }
    }

    /// The remaining Content-Length bytes were relayed without passing through `take`.
    fn spliced(&mut self) {
        self.remaining = 0;
    }
}

/// Relays the rest of a Content-Length body with `splice`: pauses the upstream receive, sends
/// what it had already delivered, then splices the remainder. Returns (body done, bytes past
/// the body were received). Failures are fatal for the try: the response has started.
async fn relay_by_splice(
    w: &Rc<Worker>,
    ds: &mut Downstream,
    up: &mut UpstreamConn,
    cursor: &mut BodyCursor,
    idle: Duration,
) -> Result<(bool, bool), TryFail> {
    let fatal = TryFail::Fatal;
    up.conn.pause_recv().await;
    let mut stray = false;
    let mut chain = Chain::default();
    loop {
        let b = match up.conn.take_queued() {
            Ok(Some(b)) => b,
            Ok(None) => break,
            Err(_) => return Err(fatal(Failure::AfterResponseStarted)),
        };
        let (take, done) = cursor
            .take(b.bytes())
            .map_err(|_| fatal(Failure::AfterResponseStarted))?;
        stray |= take < b.len();
        chain.push(b, take);
        if chain.is_full() || done {
            let full = std::mem::take(&mut chain);
            send_timed(&w.driver, ds.conn.fd(), idle, full)
                .await
                .or_fail(Failure::Downstream, Failure::Downstream)
                .map_err(fatal)?;
        }
        if done {
            // Anything still queued is past the body: the connection is not reusable.
            stray |= matches!(up.conn.take_queued(), Ok(Some(_)) | Err(_));
            return Ok((true, stray));
        }
    }
    if !chain.is_empty() {
        send_timed(&w.driver, ds.conn.fd(), idle, chain)
            .await
            .or_fail(Failure::Downstream, Failure::Downstream)
            .map_err(fatal)?;
    }
    let left = cursor.splice_len();
    if left == 0 {
        return Ok((true, stray));
    }
    match splice::relay(&w.driver, &w.pipes, up.conn.fd(), ds.conn.fd(), left, idle).await {
        Ok(()) => {
            cursor.spliced();
            // Exactly the body was read: anything already behind it (an upstream that sent more
            // than its Content-Length, or closed) makes the connection unfit for reuse.
            Ok((true, stray || splice::socket_has_bytes_or_eof(up.conn.fd())))
        }
        // No pipe: nothing moved, the receive path carries on (it re-arms the receive).
        Err(splice::SpliceError::NoPipe) => Ok((false, stray)),
        Err(splice::SpliceError::Upstream) => Err(fatal(Failure::AfterResponseStarted)),
        Err(splice::SpliceError::Downstream) => Err(fatal(Failure::Downstream)),
    }
}

/// How the request body is sent on each try.
struct BodyPlan {
    /// Body bytes held in `ds.inb` right after the head (all of it when `replayable`).
    tail: usize,
    /// Bytes still to stream from the client after `tail` (Content-Length bodies).
    remaining: u64,
    /// Chunked bodies: the decoder state after `tail`.
    decoder: ChunkedDecoder,
    /// The whole body is in `ds.inb`: every try can send it again.
    replayable: bool,
}

/// How one try ended, when it did not complete.
enum TryFail {
    /// May be retried with this outcome (the response, if any, was not forwarded).
    Retryable(TryOutcome, Failure),
    /// A status response held back because the retry policy takes it: retry after `backoff`.
    RetryStatus(u16, Duration),
    Fatal(Failure),
}

/// Runs the exchange; `Ok(true)` if the client connection may serve another request.
#[allow(clippy::too_many_arguments)]
pub async fn run(
    w: &Rc<Worker>,
    view: &View,
    listener: usize,
    cluster: usize,
    ds: &mut Downstream,
    head_len: usize,
    started: &Cell<bool>,
    ctx: RouteCtx<'_>,
) -> Result<bool, Failure> {
    let ccfg = view
        .config
        .clusters
        .get(cluster)
        .ok_or(Failure::NoEndpoint)?;
    let cv = view.clusters.get(cluster).ok_or(Failure::NoEndpoint)?;
    let limits = &view.config.listeners[listener].limits;
    let _request_slot = match &cv.breaker {
        Some(b) => Some(b.try_start_request().inspect_err(|o| {
            w.metrics.policy_event(Some(cluster), breaker_event(o));
        })?),
        None => None,
    };
    let hash = if ccfg.lb == LbPolicy::RingHash {
        let hv = HeadView {
            head: &ds.head,
            buf: ds.inb.bytes(),
        };
        crate::cluster::hash_key(&ccfg.hash_key, ds.peer.ip(), &hv)
    } else {
        0
    };
    build_request_head(w, ds, ctx);
    let mut body = plan_body(w, ds, head_len, limits, ctx).await?;
    let per_try = ctx.policy.and_then(|p| p.per_try_timeout);
    let mut tries = RetryState::new();
    let mut exclude = None;
    // A status the retry policy takes is decided inside the try, before anything is forwarded.
    let replayable = body.replayable;
    let may_retry = |s: u16, tries: &mut RetryState| -> Option<Duration> {
        if !replayable {
            return None;
        }
        retry_backoff(w, cluster, ctx, tries, TryOutcome::Status(s))
    };
    loop {
        let (idx, generation) = pick(cv, ccfg.resilience.when_all_unhealthy, hash, exclude)?;
        let addr = *cv.endpoints.get(idx).ok_or(Failure::NoEndpoint)?;
        let inflight = InFlight {
            cv,
            idx,
            generation,
        };
        let attempt = try_once(
            w, view, listener, cluster, ds, head_len, started, &mut body, addr, &mut tries,
            &may_retry, ctx,
        );
        let result = match uring::timeout_opt(&w.driver, per_try, attempt).await {
            Ok(r) => r,
            Err(_) if started.get() => Err(TryFail::Fatal(Failure::AfterResponseStarted)),
            Err(_) => Err(TryFail::Retryable(TryOutcome::Timeout, Failure::Timeout)),
        };
        drop(inflight);
        let (outcome, failure, backoff) = match result {
            Ok((keep, status)) => {
                record_outlier(w, cv, cluster, idx, Outcome::from_status(status));
                return Ok(keep);
            }
            Err(TryFail::Fatal(f)) => {
                if matches!(f, Failure::BadResponse | Failure::AfterResponseStarted) {
                    record_outlier(w, cv, cluster, idx, Outcome::GatewayFailure);
                }
                return Err(f);
            }
            Err(TryFail::RetryStatus(s, backoff)) => {
                record_outlier(w, cv, cluster, idx, Outcome::from_status(s));
                (TryOutcome::Status(s), None, Some(backoff))
            }
            Err(TryFail::Retryable(o, f)) => {
                record_outlier(w, cv, cluster, idx, Outcome::GatewayFailure);
                (o, Some(f), None)
            }
        };
        let backoff = match (backoff, failure) {
            (Some(b), _) => b,
            (None, Some(f)) => {
                // Nothing reached the client. Replay needs the whole body, except after a
                // connect failure (nothing was sent).
                let sendable = body.replayable || outcome == TryOutcome::ConnectFailure;
                let backoff = if sendable && !started.get() {
                    retry_backoff(w, cluster, ctx, &mut tries, outcome)
                } else {
                    None
                };
                match backoff {
                    Some(b) => b,
                    None => return Err(f),
                }
            }
            (None, None) => return Err(Failure::Timeout),
        };
        w.metrics.policy_event(Some(cluster), PolicyEvent::Retry);
        if !backoff.is_zero() {
            uring::sleep(&w.driver, backoff).await;
        }
        exclude = Some(idx);
    }
}

/// Whether the route's retry policy and budget take another try after `outcome` (the caller
/// checks that the request can be sent again and nothing reached the client). Counts budget
/// exhaustion.
fn retry_backoff(
    w: &Worker,
    cluster: usize,
    ctx: RouteCtx<'_>,
    tries: &mut RetryState,
    outcome: TryOutcome,
) -> Option<Duration> {
    let rp = ctx.policy.and_then(|p| p.retry.as_ref())?;
    let state = ctx.state?;
    let mut st = state.borrow_mut();
    let mut rng = w.rng.borrow_mut();
    match tries.on_failure(
        rp,
        outcome,
        st.retry_budget.as_mut(),
        Instant::now(),
        &mut rng,
    ) {
        RetryDecision::Retry { backoff } => Some(backoff),
        RetryDecision::GiveUp(GiveUp::BudgetExhausted) => {
            w.metrics
                .policy_event(Some(cluster), PolicyEvent::RetryBudgetExhausted);
            None
        }
        RetryDecision::GiveUp(_) => None,
    }
}

fn breaker_event(o: &Overload) -> PolicyEvent {
    use crate::cluster::breaker::BreakerLimit;
    match o.limit {
        BreakerLimit::Requests => PolicyEvent::BreakerRejectedMaxRequests,
        BreakerLimit::PendingRequests => PolicyEvent::BreakerRejectedMaxPending,
        BreakerLimit::Connections => PolicyEvent::BreakerRejectedMaxConnections,
    }
}

fn record_outlier(w: &Worker, cv: &ClusterView, cluster: usize, idx: usize, outcome: Outcome) {
    if let Some(o) = &cv.outlier {
        if o.borrow_mut()
            .record(idx, outcome, Instant::now())
            .is_some()
        {
            w.metrics
                .policy_event(Some(cluster), PolicyEvent::OutlierEjection);
        }
    }
}

/// Picks an endpoint that is neither unhealthy nor ejected (unless all are and the cluster
/// fails open), preferring one other than `exclude`.
fn pick(
    cv: &ClusterView,
    when_all: crate::config::AllUnhealthy,
    hash: u64,
    exclude: Option<usize>,
) -> Result<(usize, u64), Failure> {
    let mut unavailable = cv.unavailable.borrow_mut();
    let availability = match &cv.outlier {
        Some(o) => {
            let mut o = o.borrow_mut();
            let ejected = o.unavailable(Instant::now());
            merge_unavailable(
                &cv.health_down.borrow(),
                ejected,
                &mut unavailable,
                when_all,
            )
        }
        None => merge_unavailable(&cv.health_down.borrow(), &[], &mut unavailable, when_all),
    };
    if availability == Availability::AllDown {
        return Err(Failure::NoEndpoint);
    }
    let mut b = cv.balancer.borrow_mut();
    let idx = b
        .pick(&PickContext {
            hash,
            exclude,
            unavailable: &unavailable,
        })
        .ok_or(Failure::NoEndpoint)?;
    b.on_request_start(idx);
    Ok((idx, b.generation()))
}

/// Builds the outgoing head segments in `ds.added` / `ds.segs` (once per request; every try
/// sends the same head).
fn build_request_head(w: &Worker, ds: &mut Downstream, ctx: RouteCtx<'_>) {
    let hp = ctx.headers();
    if let Some(hp) = hp {
        let names = hp
            .request_remove
            .iter()
            .map(String::as_str)
            .chain(hp.request_set.iter().map(|(n, _)| n.as_str()));
        rewrite::suppress(&mut ds.head.headers, ds.inb.bytes(), names);
    }
    let mut idbuf = [0u8; 32];
    let idlen = request_id(w, &mut idbuf);
    let mut added = std::mem::take(&mut ds.added);
    let mut segs = std::mem::take(&mut ds.segs);
    http::request_segments(
        &ds.head,
        &RequestExtras {
            client_ip: ds.peer.ip(),
            proto: "http",
            request_id: Some(&idbuf[..idlen]),
        },
        &mut added,
        &mut segs,
    );
    if let Some(hp) = hp {
        let lines = hp
            .request_set
            .iter()
            .chain(hp.request_add.iter())
            .map(|(n, v)| (n.as_str(), v.as_str()));
        rewrite::append_fields(lines, &mut added, &mut segs);
        if let (Some(new), Some(prefix)) = (&hp.path_prefix_rewrite, ctx.path_prefix) {
            rewrite::rewrite_path_prefix(
                &ds.head,
                ds.inb.bytes(),
                prefix,
                new,
                &mut added,
                &mut segs,
            );
        }
    }
    ds.added = added;
    ds.segs = segs;
}

/// Decides how the body goes out; with a retry policy, gathers a small enough body whole
/// (up to `replay_buffer_bytes`) so that every try can send it.
async fn plan_body(
    w: &Worker,
    ds: &mut Downstream,
    head_len: usize,
    limits: &crate::config::Limits,
    ctx: RouteCtx<'_>,
) -> Result<BodyPlan, Failure> {
    let max_body = limits.max_request_body_bytes;
    let replay_max = ctx
        .policy
        .and_then(|p| p.retry.as_ref())
        .map_or(0, |r| r.replay_buffer_bytes);
    let mut decoder = ChunkedDecoder::new();
    match ds.head.framing {
        BodyFraming::None => Ok(BodyPlan {
            tail: 0,
            remaining: 0,
            decoder,
            replayable: true,
        }),
        BodyFraming::Length(n) => {
            // Gather the whole body when it is small enough to replay.
            if n <= replay_max {
                while ((ds.inb.len() - head_len) as u64) < n {
                    match timeout(&w.driver, limits.idle_timeout, ds.conn.recv()).await {
                        Ok(Ok(Some(b))) => ds.inb.push(b),
                        _ => return Err(Failure::Downstream),
                    }
                }
            }
            let avail = (ds.inb.len() - head_len) as u64;
            let tail = n.min(avail);
            Ok(BodyPlan {
                tail: tail as usize,
                remaining: n - tail,
                decoder,
                replayable: tail == n,
            })
        }
        BodyFraming::Chunked => {
            let mut fed = 0usize;
            loop {
                let body = ds.inb.bytes().get(head_len + fed..).unwrap_or(&[]);
                fed += decoder.feed(body).map_err(|_| Failure::BadRequestBody)?;
                if max_body > 0 && decoder.data_bytes() > max_body {
                    return Err(Failure::BodyTooLarge);
                }
                if decoder.is_done() || (fed as u64) >= replay_max {
                    break;
                }
                match timeout(&w.driver, limits.idle_timeout, ds.conn.recv()).await {
                    Ok(Ok(Some(b))) => ds.inb.push(b),
                    _ => return Err(Failure::Downstream),
                }
            }
            let replayable = decoder.is_done();
            Ok(BodyPlan {
                tail: fed,
                remaining: 0,
                decoder,
                replayable,
            })
        }
    }
}

/// One try against `addr`. `Ok((keep_client, status))` once the response was relayed.
#[allow(clippy::too_many_arguments)]
async fn try_once(
    w: &Rc<Worker>,
    view: &View,
    listener: usize,
    cluster: usize,
    ds: &mut Downstream,
    head_len: usize,
    started: &Cell<bool>,
    body: &mut BodyPlan,
    addr: SocketAddr,
    tries: &mut RetryState,
    may_retry: &dyn Fn(u16, &mut RetryState) -> Option<Duration>,
    ctx: RouteCtx<'_>,
) -> Result<(bool, u16), TryFail> {
    let ccfg = &view.config.clusters[cluster];
    let limits = &view.config.listeners[listener].limits;
    let idle = limits.idle_timeout;
    let method = ds.head.method;
    let dead_pool_retry = method.is_idempotent() && ds.head.framing == BodyFraming::None;
    let mut fresh_only = false;
    let t0 = Instant::now();
    let tail = body.tail;

    let mut up = loop {
        let mut up = get_conn(w, view, cluster, addr, fresh_only).await?;
        let reused = up.uses > 0;
        let hout = HeadOut {
            inb: std::mem::take(&mut ds.inb),
            added: std::mem::take(&mut ds.added),
            segs: std::mem::take(&mut ds.segs),
            tail_at: head_len,
            tail,
        };
        let (ok, hout) = match send_timed(&w.driver, up.conn.fd(), idle, hout).await {
            Sent::Done(h) => (true, h),
            Sent::Failed(h) => (false, h),
            Sent::TimedOut => {
                return Err(TryFail::Retryable(TryOutcome::Timeout, Failure::Timeout));
            }
        };
        ds.inb = hout.inb;
        ds.added = hout.added;
        ds.segs = hout.segs;
        if !ok {
            if reused && dead_pool_retry && !fresh_only {
                fresh_only = true;
                continue;
            }
            return Err(TryFail::Retryable(
                TryOutcome::Reset,
                Failure::UpstreamReset,
            ));
        }
        if !reused || !dead_pool_retry || fresh_only {
            break up;
        }
        // A reused connection: make sure it answers before trusting it (retry if it died).
        match recv_into(&w.driver, &mut up.conn, idle).await {
            Ok(Some(b)) => {
                up.inb.push(b);
                break up;
            }
            Ok(None) | Err(Failure::UpstreamReset) => {
                fresh_only = true;
                continue;
            }
            Err(e) => return Err(TryFail::Retryable(TryOutcome::Timeout, e)),
        }
    };
    if !body.replayable {
        // Streaming: the bytes sent are gone from the buffer.
        ds.inb.consume(head_len + tail);
        stream_request_body(w, ds, &mut up, body, limits).await?;
    }

    // Response head (skipping interim responses: the proxy answered 100-continue itself).
    let resp = &mut ds.resp;
    let resp_len = loop {
        match http::parse_response_head(up.inb.bytes(), &RESPONSE_LIMITS, method, resp) {
            Ok(Parsed::Complete(n)) => {
                if resp.is_interim() {
                    up.inb.consume(n);
                    continue;
                }
                break n;
            }
            Ok(Parsed::Partial) => {}
            Err(_) => return Err(TryFail::Fatal(Failure::BadResponse)),
        }
        match recv_into(&w.driver, &mut up.conn, idle).await {
            Ok(Some(b)) => up.inb.push(b),
            Ok(None) if up.inb.is_empty() => {
                return Err(TryFail::Retryable(
                    TryOutcome::Reset,
                    Failure::UpstreamReset,
                ));
            }
            Ok(None) => return Err(TryFail::Fatal(Failure::UpstreamReset)),
            Err(Failure::UpstreamReset) if up.inb.is_empty() => {
                return Err(TryFail::Retryable(
                    TryOutcome::Reset,
                    Failure::UpstreamReset,
                ));
            }
            Err(Failure::Timeout) => {
                return Err(TryFail::Retryable(TryOutcome::Timeout, Failure::Timeout));
            }
            Err(e) => return Err(TryFail::Fatal(e)),
        }
    };
    let latency = t0.elapsed();
    let status = resp.status;
    // A status the retry policy takes: hold the response back and retry (never forwarded).
    if let Some(backoff) = may_retry(status, tries) {
        return Err(TryFail::RetryStatus(status, backoff));
    }
    if body.replayable {
        ds.inb.consume(head_len + tail);
    }
    if resp.is_upgrade() && !ds.head.websocket_upgrade {
        return Err(TryFail::Fatal(Failure::BadResponse));
    }
    let upgrade = resp.is_upgrade();
    let close = !ds.head.keep_alive
        || resp.framing == ResponseFraming::CloseDelimited
        || w.draining.get()
        || upgrade;
    let extras = ResponseExtras {
        close: close && !upgrade,
        keep_alive_http10: ds.head.version_minor == 0 && !close,
    };
    let hp = ctx.headers();
    if let Some(hp) = hp {
        let names = hp
            .response_remove
            .iter()
            .map(String::as_str)
            .chain(hp.response_set.iter().map(|(n, _)| n.as_str()));
        rewrite::suppress(&mut resp.headers, up.inb.bytes(), names);
    }
    let mut added = std::mem::take(&mut ds.added);
    let mut segs = std::mem::take(&mut ds.segs);
    http::response_segments(resp, &extras, &mut added, &mut segs);
    if let Some(hp) = hp {
        let lines = hp
            .response_set
            .iter()
            .chain(hp.response_add.iter())
            .map(|(n, v)| (n.as_str(), v.as_str()));
        rewrite::append_fields(lines, &mut added, &mut segs);
    }

    let framing = resp.framing;
    let mut cursor = BodyCursor::new(framing);
    let (rtail, mut done) = cursor
        .take(up.inb.bytes().get(resp_len..).unwrap_or(&[]))
        .map_err(|_| TryFail::Fatal(Failure::BadResponse))?;
    let keep_alive = resp.keep_alive;
    started.set(true);
    // A large body will be spliced: stop receiving now, before the body lands in receive
    // buffers (what already arrived is kept and sent first, see `relay_by_splice`).
    if !upgrade && cursor.splice_len() >= SPLICE_MIN_BYTES {
        up.conn.pause_recv().await;
    }
    let fatal = TryFail::Fatal;
    let hout = HeadOut {
        inb: std::mem::take(&mut up.inb),
        added,
        segs,
        tail_at: resp_len,
        tail: rtail,
    };
    let hout = send_timed(&w.driver, ds.conn.fd(), idle, hout)
        .await
        .or_fail(Failure::Downstream, Failure::Downstream)
        .map_err(fatal)?;
    up.inb = hout.inb;
    ds.added = hout.added;
    ds.segs = hout.segs;
    up.inb.consume(resp_len + rtail);

    if upgrade {
        tunnel(w, ds, &mut up, idle).await;
        w.metrics
            .request_done(listener, Some(cluster), status, Some(latency));
        return Ok((false, status));
    }

    // Rest of the response body, streamed. Bytes already buffered go first; after that,
    // every receive buffer that is already queued joins one vectored send. A large
    // Content-Length remainder is spliced instead (see `splice`), once.
    let mut stray = false;
    let mut splice_tried = false;
    while !done {
        if up.inb.is_empty() && !splice_tried && cursor.splice_len() >= SPLICE_MIN_BYTES {
            splice_tried = true;
            let (d, s) = relay_by_splice(w, ds, &mut up, &mut cursor, idle).await?;
            done = d;
            stray |= s;
            continue;
        }
        if !up.inb.is_empty() {
            let (take, d) = cursor
                .take(up.inb.bytes())
                .map_err(|_| fatal(Failure::AfterResponseStarted))?;
            done = d;
            send_window(
                &w.driver,
                ds.conn.fd(),
                idle,
                &mut up.inb,
                take,
                Failure::Downstream,
                Failure::Downstream,
            )
            .await
            .map_err(fatal)?;
            continue;
        }
        let mut chain = Chain::default();
        let mut eof = false;
        let mut next = recv_into(&w.driver, &mut up.conn, idle).await;
        loop {
            let b = match next {
                Ok(Some(b)) => b,
                Ok(None) if framing == ResponseFraming::CloseDelimited => {
                    eof = true;
                    break;
                }
                _ => return Err(fatal(Failure::AfterResponseStarted)),
            };
            let (take, d) = cursor
                .take(b.bytes())
                .map_err(|_| fatal(Failure::AfterResponseStarted))?;
            done = d;
            // Bytes past the end of the response: the connection is not reusable.
            stray |= take < b.len();
            chain.push(b, take);
            if done || chain.is_full() || !up.conn.has_pending() {
                break;
            }
            next = recv_into(&w.driver, &mut up.conn, idle).await;
        }
        if !done && !eof {
            // Receive the next part while this one is being sent (single-shot receives would
            // otherwise alternate receive and send).
            up.conn.start_recv();
        }
        send_timed(&w.driver, ds.conn.fd(), idle, chain)
            .await
            .or_fail(Failure::Downstream, Failure::Downstream)
            .map_err(fatal)?;
        if eof {
            break;
        }
    }
    w.metrics
        .request_done(listener, Some(cluster), status, Some(latency));

    // Keep the upstream connection if it is clean and reusable.
    up.uses += 1;
    let max_uses = ccfg.pool.max_requests_per_connection;
    if keep_alive
        && !stray
        && framing != ResponseFraming::CloseDelimited
        && up.inb.is_empty()
        && (max_uses == 0 || up.uses < max_uses)
    {
        w.pools
            .borrow_mut()
            .checkin(addr, up, ccfg.pool.max_idle, Instant::now());
    }
    Ok((!close, status))
}

/// Streams the rest of a request body that is not held whole (Content-Length or chunked).
async fn stream_request_body(
    w: &Rc<Worker>,
    ds: &mut Downstream,
    up: &mut UpstreamConn,
    body: &mut BodyPlan,
    limits: &crate::config::Limits,
) -> Result<(), TryFail> {
    let idle = limits.idle_timeout;
    let max_body = limits.max_request_body_bytes;
    let fatal = TryFail::Fatal;
    let chunked = ds.head.framing == BodyFraming::Chunked;
    loop {
        if (chunked && body.decoder.is_done()) || (!chunked && body.remaining == 0) {
            return Ok(());
        }
        if ds.inb.is_empty() {
            match timeout(&w.driver, idle, ds.conn.recv()).await {
                Ok(Ok(Some(b))) => ds.inb.push(b),
                _ => return Err(fatal(Failure::Downstream)),
            }
        }
        let take = if chunked {
            let t = body
                .decoder
                .feed(ds.inb.bytes())
                .map_err(|_| fatal(Failure::BadRequestBody))?;
            if max_body > 0 && body.decoder.data_bytes() > max_body {
                return Err(fatal(Failure::BodyTooLarge));
            }
            t
        } else {
            let t = (body.remaining.min(ds.inb.len() as u64)) as usize;
            body.remaining -= t as u64;
            t
        };
        send_window(
            &w.driver,
            up.conn.fd(),
            idle,
            &mut ds.inb,
            take,
            Failure::UpstreamReset,
            Failure::Timeout,
        )
        .await
        .map_err(fatal)?;
    }
}

/// A pooled connection to `addr`, or a new one within the connect timeout (counted by the
/// cluster's circuit breaker).
async fn get_conn(
    w: &Rc<Worker>,
    view: &View,
    cluster: usize,
    addr: SocketAddr,
    fresh_only: bool,
) -> Result<UpstreamConn, TryFail> {
    let ccfg = &view.config.clusters[cluster];
    let cv = &view.clusters[cluster];
    if !fresh_only {
        let pooled = w
            .pools
            .borrow_mut()
            .checkout(addr, ccfg.pool.idle_timeout, Instant::now());
        if let Some(up) = pooled {
            w.metrics.upstream_pool_reuse(cluster);
            return Ok(up);
        }
    }
    let refused = |o: Overload| {
        w.metrics.policy_event(Some(cluster), breaker_event(&o));
        TryFail::Fatal(o.into())
    };
    let (_pending, slot): (_, Option<ConnectionGuard>) = match &cv.breaker {
        Some(b) => (
            Some(b.try_start_pending().map_err(refused)?),
            Some(b.try_open_connection().map_err(refused)?),
        ),
        None => (None, None),
    };
    match timeout(
        &w.driver,
        ccfg.connect_timeout,
        uring::connect(&w.driver, addr),
    )
    .await
    {
        Ok(Ok(mut conn)) => {
            w.metrics.upstream_connect(cluster, true);
            // Large bodies stay in the socket until the exchange decides to splice them.
            conn.set_single_shot();
            Ok(UpstreamConn {
                conn,
                inb: InBuf::default(),
                uses: 0,
                breaker_slot: slot,
            })
        }
        Ok(Err(e)) => {
            w.metrics.upstream_connect(cluster, false);
            Err(TryFail::Retryable(
                TryOutcome::ConnectFailure,
                Failure::Connect(e),
            ))
        }
        Err(_) => {
            w.metrics.upstream_connect(cluster, false);
            Err(TryFail::Retryable(
                TryOutcome::ConnectFailure,
                Failure::ConnectTimeout,
            ))
        }
    }
}

/// After a 101 to a WebSocket upgrade: copy bytes both ways until either side closes or is
/// idle for `idle`.
async fn tunnel(w: &Rc<Worker>, ds: &mut Downstream, up: &mut UpstreamConn, idle: Duration) {
    let driver = w.driver.clone();
    let (cfd, ufd) = (ds.conn.fd(), up.conn.fd());
    // Bytes already buffered on either side go first.
    if !ds.inb.is_empty() {
        let win = Window {
            len: ds.inb.len(),
            inb: std::mem::take(&mut ds.inb),
        };
        let (_, mut win) = send_all(&driver, ufd, win).await;
        win.inb.clear();
    }
    if !up.inb.is_empty() {
        let win = Window {
            len: up.inb.len(),
            inb: std::mem::take(&mut up.inb),
        };
        let (_, mut win) = send_all(&driver, cfd, win).await;
        win.inb.clear();
    }
    let d1 = driver.clone();
    let client_to_up = async {
        while let Ok(Ok(Some(b))) = timeout(&d1, idle, ds.conn.recv()).await {
            if send_all(&d1, ufd, b).await.0.is_err() {
                break;
            }
        }
    };
    let d2 = driver.clone();
    let up_to_client = async {
        while let Ok(Ok(Some(b))) = timeout(&d2, idle, up.conn.recv()).await {
            if send_all(&d2, cfd, b).await.0.is_err() {
                break;
            }
        }
    };
    futures_lite::future::or(client_to_up, up_to_client).await;
}
