//! One upstream exchange, as a sequence of tries: admit through the cluster's circuit breaker,
//! pick an endpoint, then per try (`attempt`) get a connection, send the head and body and
//! read the response head; then relay the response (`relay`).
//!
//! ```text
//!  breaker ─▶ ┌─ pick(exclude last) ─▶ attempt: conn ─▶ send ─▶ response head ─┐
//!             │                          (per-try deadline ends here)          ├─ retryable & allowed
//!             └──────────── backoff ◀── retry policy + budget ◀─────────────────┘   (not yet forwarded)
//!                                                                                └─▶ relay to client
//! ```
//!
//! - `request`: the outgoing head (built once, sent by every try) and how the body is sent.
//! - `attempt`: one try, up to a complete response head.
//! - `relay`: the response to the client (head, body by copy or splice, WebSocket tunnel).
//!
//! Timeouts are deadlines, never a dropped future: every wait of an exchange ends at the
//! earliest of the idle timeout (no progress), the try's deadline (`per_try_timeout`, until the
//! response head) and the route's deadline (`timeout`, the whole exchange). So a send that
//! times out still hands its buffers back, and a retry sends the same head again.
//!
//! Retry rules: a try is retried only if the route's `retry` policy covers its outcome, tries
//! remain, the route's retry budget allows it, nothing of the response reached the client, and
//! the request can be replayed (no body, or a body held whole in the connection's buffer — up
//! to `replay_buffer_bytes` — or nothing was sent yet: a connect failure). Independently of any
//! policy, an idempotent body-less request whose *reused* pooled connection turns out dead
//! before any response byte is re-sent once on a fresh connection (`attempt`).

mod attempt;
mod relay;
mod request;

use std::rc::Rc;
use std::time::{Duration, Instant};

use crate::cluster::Outcome;
use crate::config::{
    ForwardClientCert, HeaderPolicy, LbPolicy, Limits, ListenerConfig, RoutePolicy,
};
use crate::http::HeadView;
use crate::policy::retry::{GiveUp, RetryDecision, TryOutcome};
use crate::policy::{RetryState, RouteState};
use crate::telemetry::PolicyEvent;
use crate::transport::{RecvBuf, Stream};
use crate::upstream::{self, breaker_event, Cluster, OriginalDestinationError, PickRequest};
use crate::uring;
use crate::worker::Worker;

use super::downstream::Downstream;
use super::failure::Failure;
use attempt::Attempt;

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

/// Everything one exchange needs besides the client connection: who, where to, under which
/// policy and until when; and what happened so far.
pub struct Exchange<'a> {
    pub w: &'a Rc<Worker>,
    pub listener: usize,
    pub limits: &'a Limits,
    /// The listener's `forward_client_cert` (`None`: not a TLS listener).
    pub forward_client_cert: Option<ForwardClientCert>,
    pub cluster: Cluster<'a>,
    pub route: RouteCtx<'a>,
    /// The route's `timeout`: the whole exchange ends here.
    pub deadline: Option<Instant>,
    /// Bytes of the response (an interim 1xx, or the final head) reached the client: no
    /// retry and no error answer any more.
    started: std::cell::Cell<bool>,
    /// Request sent to response head received, of the try whose response was relayed.
    pub latency: Option<Duration>,
    /// The endpoint of the latest try.
    pub upstream: Option<std::net::SocketAddr>,
    /// Where the client's request stands in `ds.inb` (for keeping the connection after a
    /// failure).
    request: std::cell::Cell<RequestState>,
}

/// Where the client's request stands in the connection's buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestState {
    /// Unconsumed at the start of `ds.inb` (its body may not all be there).
    Buffered,
    /// Being streamed: part of it is gone, the rest not yet read.
    Streaming,
    /// Streamed whole: `ds.inb` starts after it.
    Streamed,
}

/// A completed exchange.
#[derive(Debug, Clone, Copy)]
pub struct Done {
    pub status: u16,
    /// The client connection may serve another request.
    pub keep_client: bool,
}

/// How a wait for the peer ended when it did not deliver.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Waited {
    /// The peer closed, reset or failed.
    Failed,
    /// A deadline or the idle timeout passed.
    Expired,
}

impl<'a> Exchange<'a> {
    /// A new exchange of `listener`'s request with `cluster` under `route`, ending at the
    /// route's timeout from now.
    pub fn new(
        w: &'a Rc<Worker>,
        listener: usize,
        lcfg: &'a ListenerConfig,
        cluster: Cluster<'a>,
        route: RouteCtx<'a>,
        route_timeout: Option<Duration>,
    ) -> Exchange<'a> {
        Exchange {
            w,
            listener,
            limits: &lcfg.limits,
            forward_client_cert: lcfg.tls.as_ref().map(|t| t.forward_client_cert),
            cluster,
            route,
            deadline: route_timeout.map(|t| Instant::now() + t),
            started: std::cell::Cell::new(false),
            latency: None,
            upstream: None,
            request: std::cell::Cell::new(RequestState::Buffered),
        }
    }

    /// Whether response bytes reached the client.
    pub fn started(&self) -> bool {
        self.started.get()
    }

    fn mark_started(&self) {
        self.started.set(true);
    }

    /// Where the client's request stands (see [`RequestState`]).
    pub fn request_state(&self) -> RequestState {
        self.request.get()
    }

    fn set_request_state(&self, s: RequestState) {
        self.request.set(s);
    }

    /// The failure a wait that expired stands for: the route's timeout, or the stream idle
    /// timeout.
    fn expiry(&self) -> Failure {
        if self.expired() {
            Failure::Timeout
        } else {
            Failure::StreamIdle
        }
    }

    /// When a wait that starts now gives up: the stream idle timeout, the route deadline or
    /// `also`, whichever comes first.
    fn wait_end(&self, also: Option<Instant>) -> Instant {
        let mut end = Instant::now() + self.limits.stream_idle_timeout;
        for d in [self.deadline, also].into_iter().flatten() {
            end = end.min(d);
        }
        end
    }

    /// The route's deadline has passed: no further try.
    fn expired(&self) -> bool {
        self.deadline.is_some_and(|d| Instant::now() >= d)
    }

    /// Receives from `stream` until `until`.
    async fn recv_until(
        &self,
        stream: &mut Stream,
        until: Instant,
    ) -> Result<Option<RecvBuf>, Waited> {
        match uring::timeout_at(&self.w.driver, until, stream.recv()).await {
            Ok(Ok(b)) => Ok(b),
            Ok(Err(_)) => Err(Waited::Failed),
            Err(_) => Err(Waited::Expired),
        }
    }
}

/// How one try ended, when it did not complete.
enum TryFail {
    /// May be retried with this outcome (the response, if any, was not forwarded).
    Retryable(TryOutcome, Failure),
    Fatal(Failure),
}

/// Runs the exchange for the request whose head is `ds.inb[..head_len]`.
pub async fn run(
    ex: &mut Exchange<'_>,
    ds: &mut Downstream,
    head_len: usize,
) -> Result<Done, Failure> {
    let (w, cluster) = (ex.w, ex.cluster);
    let _request_slot = match &cluster.state.breaker {
        Some(b) => Some(b.try_start_request().inspect_err(|o| {
            w.metrics
                .policy_event(Some(cluster.index), breaker_event(o));
        })?),
        None => None,
    };
    let hash = if cluster.config.lb == LbPolicy::RingHash {
        let hv = HeadView {
            head: &ds.head,
            buf: ds.inb.bytes(),
        };
        crate::cluster::hash_key(&cluster.config.hash_key, ds.info.peer.ip(), &hv)
    } else {
        0
    };
    let original_dst = if cluster.is_original_destination() {
        match upstream::original_destination(w, &ds.info) {
            Ok(dst) => Some(dst),
            Err(OriginalDestinationError::Loop) => return Err(Failure::RedirectLoop),
            Err(OriginalDestinationError::Unknown) => return Err(Failure::NoEndpoint),
        }
    } else {
        None
    };
    request::build_head(ex, ds);
    let mut body = request::plan_body(ex, ds, head_len).await?;
    let per_try = ex.route.policy.and_then(|p| p.per_try_timeout);
    let mut tries = RetryState::new();
    let mut exclude = None;
    loop {
        let req = PickRequest {
            hash,
            exclude,
            original_dst,
        };
        let endpoint = upstream::pick(cluster, &req).ok_or(Failure::NoEndpoint)?;
        let key = cluster.pool_key(endpoint.addr(), Some(&ds.info));
        ex.upstream = Some(endpoint.addr());
        let try_deadline = per_try.map(|d| Instant::now() + d);
        let outcome = attempt::run(ex, ds, &mut body, &key, head_len, try_deadline).await;
        let (outcome, failure) = match outcome {
            Ok(Attempt {
                up,
                resp_len,
                latency,
            }) => {
                let status = ds.resp.status;
                // A status the retry policy takes: hold the response back (never forwarded).
                if body.replayable {
                    if let Some(backoff) = retry_backoff(ex, &mut tries, TryOutcome::Status(status))
                    {
                        endpoint.record(w, Outcome::from_status(status));
                        drop(up); // the held-back response is not read: the connection closes
                        retry_wait(ex, backoff).await?;
                        exclude = Some(endpoint.index());
                        continue;
                    }
                }
                if body.replayable {
                    ds.inb.consume(head_len + body.tail);
                }
                ex.latency = Some(latency);
                let relayed = relay::run(ex, ds, up, resp_len, &key).await;
                match &relayed {
                    Ok(_) => endpoint.record(w, Outcome::from_status(status)),
                    Err(Failure::AfterResponseStarted | Failure::BadResponse) => {
                        endpoint.record(w, Outcome::GatewayFailure)
                    }
                    Err(_) => {}
                }
                return relayed;
            }
            Err(TryFail::Fatal(f)) => {
                if matches!(f, Failure::BadResponse | Failure::AfterResponseStarted) {
                    endpoint.record(w, Outcome::GatewayFailure);
                }
                return Err(f);
            }
            Err(TryFail::Retryable(o, f)) => {
                endpoint.record(w, Outcome::GatewayFailure);
                (o, f)
            }
        };
        // Nothing reached the client. Replay needs the whole body, except after a connect
        // failure (nothing was sent).
        let sendable = body.replayable || outcome == TryOutcome::ConnectFailure;
        let backoff = if sendable && !ex.started() && !ex.expired() {
            retry_backoff(ex, &mut tries, outcome)
        } else {
            None
        };
        let Some(backoff) = backoff else {
            return Err(failure);
        };
        retry_wait(ex, backoff).await?;
        exclude = Some(endpoint.index());
    }
}

/// Counts a retry and waits its backoff (never past the route's deadline).
async fn retry_wait(ex: &Exchange<'_>, backoff: Duration) -> Result<(), Failure> {
    ex.w.metrics
        .policy_event(Some(ex.cluster.index), PolicyEvent::Retry);
    if backoff.is_zero() {
        return Ok(());
    }
    let until = ex.wait_end(Some(Instant::now() + backoff));
    uring::sleep(
        &ex.w.driver,
        until.saturating_duration_since(Instant::now()),
    )
    .await;
    if ex.expired() {
        return Err(Failure::Timeout);
    }
    Ok(())
}

/// Whether the route's retry policy and budget take another try after `outcome` (the caller
/// checks that the request can be sent again and nothing reached the client). Counts budget
/// exhaustion.
fn retry_backoff(
    ex: &Exchange<'_>,
    tries: &mut RetryState,
    outcome: TryOutcome,
) -> Option<Duration> {
    let rp = ex.route.policy.and_then(|p| p.retry.as_ref())?;
    let state = ex.route.state?;
    let mut st = state.borrow_mut();
    let mut rng = ex.w.rng.borrow_mut();
    match tries.on_failure(
        rp,
        outcome,
        st.retry_budget.as_mut(),
        Instant::now(),
        &mut rng,
    ) {
        RetryDecision::Retry { backoff } => Some(backoff),
        RetryDecision::GiveUp(GiveUp::BudgetExhausted) => {
            ex.w.metrics
                .policy_event(Some(ex.cluster.index), PolicyEvent::RetryBudgetExhausted);
            None
        }
        RetryDecision::GiveUp(_) => None,
    }
}
