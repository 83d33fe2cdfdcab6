//! The route's policy phases before any upstream work, in order: rate limit (429 with
//! `retry-after`), fault injection (delay, abort), retry-budget deposit, mirroring. An
//! unconfigured route passes through one branch per phase.

use std::rc::Rc;

use crate::base::decimal::{decimal_buf, fmt_u64};
use crate::http::BodyFraming;
use crate::telemetry::{ErrorKind, PolicyEvent};
use crate::worker::{View, Worker};

use super::downstream::{respond, respond_with, Downstream};
use super::exchange::RouteCtx;
use super::mirror::mirror_request;

/// Result of the route's policy phases.
pub enum Phase {
    Continue,
    /// The proxy answered (rate limited, injected abort).
    Answered {
        status: u16,
        close: bool,
        error: Option<ErrorKind>,
    },
}

/// Runs the phases of the route in `ctx` for the request whose head is `ds.inb[..head_len]`.
pub async fn run(
    w: &Rc<Worker>,
    view: &View,
    ds: &mut Downstream,
    head_len: usize,
    ctx: RouteCtx<'_>,
    cluster: Option<usize>,
) -> Phase {
    let (Some(policy), Some(state)) = (ctx.policy, ctx.state) else {
        return Phase::Continue;
    };
    let now = std::time::Instant::now();
    if policy.rate_limit.is_some() {
        let admitted = state.borrow_mut().admit(now);
        if let Err(wait) = admitted {
            w.metrics.policy_event(cluster, PolicyEvent::RateLimited);
            let mut secs = decimal_buf();
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
            return Phase::Answered {
                status: 429,
                close,
                error: Some(ErrorKind::RateLimited),
            };
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
            return Phase::Answered {
                status,
                close,
                error: None,
            };
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
