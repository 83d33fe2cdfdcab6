//! One try of an exchange against one endpoint, up to a complete response head:
//!
//! ```text
//!  checkout (pooled) or connect ─▶ send head (+ body bytes that came with it)
//!     │   a reused connection that fails before answering: once more on a fresh one
//!     ▼   (idempotent, body-less requests only)
//!  stream the rest of the body (if not held whole) ─▶ read the response head
//!                                                     (interim 1xx skipped)
//! ```
//!
//! Every wait ends at the try's deadline (`per_try_timeout`), the route's deadline or the idle
//! timeout, whichever is first; the try's deadline ends with the response head. What comes
//! back on success is the connection with the head (and any body bytes) in its buffer.

use std::time::{Duration, Instant};

use crate::http::{self, BodyFraming, HeadLimits, Parsed};
use crate::policy::retry::TryOutcome;
use crate::pool::{PoolKey, UpstreamConn};
use crate::transport::SendError;
use crate::upstream::{self, ConnectError};
use crate::uring;

use super::super::downstream::{Downstream, OutHead};
use super::request::{stream_body, BodyPlan};
use super::{Exchange, Failure, RequestState, TryFail, Waited};

/// Limits applied to upstream response heads.
const RESPONSE_LIMITS: HeadLimits = HeadLimits {
    max_head_bytes: 64 * 1024,
    max_target_bytes: 64 * 1024,
    max_headers: http::MAX_HEADERS_CAP,
};

/// A try that got a complete response head (in `ds.resp`, its bytes at the start of
/// `up.inb`).
pub(super) struct Attempt {
    pub up: UpstreamConn,
    pub resp_len: usize,
    /// Head sent (or connection asked for) to response head received.
    pub latency: Duration,
}

fn timed_out() -> TryFail {
    TryFail::Retryable(TryOutcome::Timeout, Failure::Timeout)
}

fn reset() -> TryFail {
    TryFail::Retryable(TryOutcome::Reset, Failure::UpstreamReset)
}

/// A connection for `key`: a pooled one unless `fresh_only`, else a new one (bounded by the
/// cluster's connect timeout and by `until`). Returns whether it was reused.
async fn connection(
    ex: &Exchange<'_>,
    key: &PoolKey,
    fresh_only: bool,
    until: Instant,
) -> Result<(UpstreamConn, bool), TryFail> {
    if !fresh_only {
        if let Some(up) = upstream::checkout(ex.w, ex.cluster, key) {
            return Ok((up, true));
        }
    }
    let left = until.saturating_duration_since(Instant::now());
    match uring::timeout(&ex.w.driver, left, upstream::connect(ex.w, ex.cluster, key)).await {
        Ok(Ok(mut up)) => {
            // Large bodies stay in the socket until the exchange decides to splice them.
            up.stream.receive_on_demand();
            Ok((up, false))
        }
        Ok(Err(e @ (ConnectError::Refused(_) | ConnectError::Timeout))) => Err(TryFail::Retryable(
            TryOutcome::ConnectFailure,
            Failure::from(e),
        )),
        Ok(Err(e @ ConnectError::Overloaded(_))) => Err(TryFail::Fatal(Failure::from(e))),
        Err(_) => Err(timed_out()),
    }
}

/// An interim response (102, 103 Early Hints, ...) goes on to an HTTP/1.1 client at once
/// (RFC 9110 §15.2: a proxy MUST forward 1xx responses); `100 Continue` is not forwarded (the
/// proxy answers `Expect: 100-continue` itself), and HTTP/1.0 clients get none (§15.2: MUST
/// NOT). Once one is forwarded the response has started: no retry, no error answer.
async fn forward_interim(
    ex: &Exchange<'_>,
    ds: &mut Downstream,
    up: &mut UpstreamConn,
    head_len: usize,
) -> Result<(), TryFail> {
    if ds.resp.status == 100 || ds.head.version_minor == 0 {
        return Ok(());
    }
    let mut scratch = std::mem::take(&mut ds.scratch);
    http::response_segments(
        &ds.resp,
        &http::ResponseExtras::default(),
        &mut scratch.added,
        &mut scratch.segs,
    );
    let head = OutHead::new(std::mem::take(&mut up.inb), scratch, head_len, 0);
    ex.mark_started();
    let (sent, head) = ds.stream.send(head, Some(ex.wait_end(None))).await;
    up.inb = head.inb;
    ds.scratch = head.scratch;
    sent.map_err(|_| TryFail::Fatal(Failure::Downstream))
}

/// One try against the endpoint of `key`.
pub(super) async fn run(
    ex: &Exchange<'_>,
    ds: &mut Downstream,
    body: &mut BodyPlan,
    key: &PoolKey,
    head_len: usize,
    try_deadline: Option<Instant>,
) -> Result<Attempt, TryFail> {
    let method = ds.head.method;
    let dead_pool_retry = method.is_idempotent() && ds.head.framing == BodyFraming::None;
    let mut fresh_only = false;
    let t0 = Instant::now();
    let tail = body.tail;

    let mut up = loop {
        let (mut up, reused) = connection(ex, key, fresh_only, ex.wait_end(try_deadline)).await?;
        let head = ds.lend_head(head_len, tail);
        let (sent, head) = up.stream.send(head, Some(ex.wait_end(try_deadline))).await;
        ds.restore(head);
        match sent {
            Ok(()) => {}
            Err(SendError::TimedOut) => return Err(timed_out()),
            Err(SendError::Io(_)) if reused && dead_pool_retry && !fresh_only => {
                fresh_only = true;
                continue;
            }
            Err(SendError::Io(_)) => return Err(reset()),
        }
        if !reused || !dead_pool_retry || fresh_only {
            break up;
        }
        // A reused connection: make sure it answers before trusting it (retry if it died).
        match ex
            .recv_until(&mut up.stream, ex.wait_end(try_deadline))
            .await
        {
            Ok(Some(b)) => {
                up.inb.push(b);
                break up;
            }
            Ok(None) | Err(Waited::Failed) => fresh_only = true,
            Err(Waited::Expired) => return Err(timed_out()),
        }
    };
    if !body.replayable {
        // Streaming: the bytes sent are gone from the buffer.
        ds.inb.consume(head_len + tail);
        ex.set_request_state(RequestState::Streaming);
        stream_body(ex, ds, &mut up, body).await?;
        ex.set_request_state(RequestState::Streamed);
    }

    // Response head (skipping interim responses: the proxy answered 100-continue itself).
    let resp_len = loop {
        match http::parse_response_head(up.inb.bytes(), &RESPONSE_LIMITS, method, &mut ds.resp) {
            Ok(Parsed::Complete(n)) => {
                if ds.resp.is_interim() {
                    forward_interim(ex, ds, &mut up, n).await?;
                    up.inb.consume(n);
                    continue;
                }
                break n;
            }
            Ok(Parsed::Partial) => {}
            Err(_) => return Err(TryFail::Fatal(Failure::BadResponse)),
        }
        match ex
            .recv_until(&mut up.stream, ex.wait_end(try_deadline))
            .await
        {
            Ok(Some(b)) => up.inb.push(b),
            Ok(None) | Err(Waited::Failed) if up.inb.is_empty() => return Err(reset()),
            Ok(None) | Err(Waited::Failed) => return Err(TryFail::Fatal(Failure::UpstreamReset)),
            Err(Waited::Expired) => return Err(timed_out()),
        }
    };
    Ok(Attempt {
        up,
        resp_len,
        latency: t0.elapsed(),
    })
}
