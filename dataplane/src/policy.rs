//! Per-route traffic policies: the building blocks the proxy calls at fixed phases of an
//! exchange. Each is a plain struct or function owned by one worker (`&mut self`, no atomics,
//! no locks) that never allocates after construction.
//!
//! - `sample`: [`sample::hit`], a ppm coin flip shared by mirroring and fault injection.
//! - `rate_limit`: [`TokenBucket`], this core's share of a route's rate limit.
//! - `fault`: [`FaultInjector`] / [`fault::decide`], chaos delays and aborts.
//! - `retry`: [`retry::is_retryable`], [`retry::backoff`], [`RetryState`] (one request's
//!   tries) and [`RetryBudget`] (one route's retry allowance on this core).
//! - `authz`: [`authz::evaluate`], Istio-style allow/deny rules over the client's identity,
//!   address and the request (listener rules before routing, route rules after).
//!
//! Cluster-side resilience (circuit breaker, outlier detection, health checks) lives in
//! `cluster`.
//!
//! # Phases (how the proxy drives them; `RouteState` holds one route's per-core state)
//! ```text
//! after route match   RouteState::admit(now)            Err(retry_after) -> 429 (+ Retry-After)
//!                     RouteState::fault(rng)            Delay -> sleep; Abort(s) -> answer s
//!                     RouteState::record_request(now)   deposit into the retry budget
//!                     sample::hit(mirror.percent, rng)  shadow the request
//! per try             retry::is_retryable / RetryState::on_failure(outcome, budget, now, rng)
//!                     Retry(backoff) -> sleep(backoff), pick again with `exclude`
//! ```
//! An unconfigured route (`RoutePolicy::default()`) builds a `RouteState` of `None`s: each
//! phase is one branch.

pub mod authz;
pub mod fault;
pub mod rate_limit;
pub mod retry;
pub mod sample;

#[cfg(test)]
mod tests;

use std::time::{Duration, Instant};

pub use fault::{FaultAction, FaultInjector};
pub use rate_limit::TokenBucket;
pub use retry::{RetryBudget, RetryDecision, RetryState, TryOutcome};

use crate::base::FastRng;
use crate::config::RoutePolicy;

/// One route's per-core policy state (rate limiter, retry budget, fault counters). Built
/// with the worker's view of the config (allocates; between requests), then used per request
/// without allocating.
#[derive(Debug, Clone)]
pub struct RouteState {
    pub rate_limit: Option<TokenBucket>,
    pub retry_budget: Option<RetryBudget>,
    pub fault: Option<FaultInjector>,
}

impl RouteState {
    /// State for `policy` on one of `workers` workers (process-wide limits are divided).
    pub fn new(policy: &RoutePolicy, workers: usize, now: Instant) -> RouteState {
        RouteState {
            rate_limit: policy
                .rate_limit
                .as_ref()
                .map(|rl| TokenBucket::new(rl, workers, now)),
            retry_budget: policy
                .retry
                .as_ref()
                .map(|r| RetryBudget::new(r, workers, now)),
            fault: policy.fault.map(FaultInjector::new),
        }
    }

    /// Rate-limit phase: `Err(retry_after)` means answer 429.
    #[inline]
    pub fn admit(&mut self, now: Instant) -> Result<(), Duration> {
        match &mut self.rate_limit {
            Some(bucket) => bucket.try_take(now),
            None => Ok(()),
        }
    }

    /// Fault phase: what to inject into this request.
    #[inline]
    pub fn fault(&mut self, rng: &mut FastRng) -> FaultAction {
        match &mut self.fault {
            Some(f) => f.decide(rng),
            None => FaultAction::None,
        }
    }

    /// Deposit one request into the retry budget (once per downstream request, not per try).
    #[inline]
    pub fn record_request(&mut self, now: Instant) {
        if let Some(b) = &mut self.retry_budget {
            b.record_request(now);
        }
    }
}
