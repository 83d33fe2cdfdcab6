//! Retries (`[listeners.routes.retry]`): which failed tries may be retried
//! ([`is_retryable`]), how long to wait before the next try ([`backoff`]), one request's tries
//! ([`RetryState`]) and one route's per-core retry allowance ([`RetryBudget`]).
//!
//! # Classification (`retry_on`, see `config::RetryOn`)
//! | outcome of a try                        | retried when `retry_on` has                 |
//! |-----------------------------------------|---------------------------------------------|
//! | [`TryOutcome::ConnectFailure`]          | `connect-failure`                           |
//! | [`TryOutcome::Reset`] (no response byte)| `reset`                                     |
//! | [`TryOutcome::Timeout`] (per try)       | `gateway-error` or `5xx`                    |
//! | `Status(502 / 503 / 504)`               | `gateway-error`, `5xx`, or listed           |
//! | `Status(other 5xx)`                     | `5xx`, or listed                            |
//! | `Status(s)` in `retriable_status_codes` | `retriable-status-codes`                    |
//!
//! # Phase (per try, in the proxy's exchange loop)
//! ```text
//! budget.record_request(now)                       once per downstream request
//! let mut tries = RetryState::new();               the first try is in flight
//! loop {
//!     outcome = try upstream (per_try_timeout)
//!     success / response already forwarded / body not replayable -> done
//!     match tries.on_failure(&policy, outcome, Some(&mut budget), now, rng) {
//!         RetryDecision::Retry { backoff } => sleep(backoff) (if it fits the route timeout),
//!                                             pick again with `exclude: Some(last)`
//!         RetryDecision::GiveUp(_) => forward the last response / 502 / 503 / 504
//!     }
//! }
//! ```
//! Only a try whose response head has not been forwarded can be retried; a status outcome is
//! a complete head the proxy holds back until it decides.
//!
//! # Budget
//! Linkerd style: retries in the last `budget_window` may be at most `budget_percent`% of
//! the requests in that window plus `min_retries_per_second × window` (that reserve divided
//! between workers, rounded up). Kept in one bucket per whole second in a ring sized at
//! construction (window rounded up to whole seconds, 1..=[`MAX_BUDGET_WINDOW_SECS`]); buckets
//! that fall out of the window are subtracted from running totals as time advances, so every
//! call is O(1) amortised and nothing allocates after construction.

use std::time::{Duration, Instant};

use crate::base::FastRng;
use crate::config::RetryPolicy;

/// Longest budget window honoured, in seconds (bounds the bucket ring).
pub const MAX_BUDGET_WINDOW_SECS: u64 = 3600;

/// How one try failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TryOutcome {
    /// The connection could not be opened (refused, connect timeout, unreachable).
    ConnectFailure,
    /// The upstream closed or reset the connection before any response byte.
    Reset,
    /// The per-try timeout passed before the response head arrived.
    Timeout,
    /// A complete response head with this status (held back, not yet forwarded).
    Status(u16),
}

/// Whether `policy` retries a try that ended with `outcome`.
#[inline]
pub fn is_retryable(policy: &RetryPolicy, outcome: TryOutcome) -> bool {
    let on = &policy.retry_on;
    match outcome {
        TryOutcome::ConnectFailure => on.connect_failure,
        TryOutcome::Reset => on.reset,
        TryOutcome::Timeout => on.gateway_error || on.server_error,
        TryOutcome::Status(s) => {
            (on.server_error && (500..=599).contains(&s))
                || (on.gateway_error && (502..=504).contains(&s))
                || (on.retriable_status_codes && policy.retriable_status_codes.contains(&s))
        }
    }
}

/// Wait before retry number `retry` (1 = the first retry): uniform in
/// `[0, min(backoff_max, backoff_base × 2^(retry-1))]` (exponential backoff, full jitter).
#[inline]
pub fn backoff(policy: &RetryPolicy, retry: u32, rng: &mut FastRng) -> Duration {
    let shift = retry.saturating_sub(1).min(31);
    let cap = policy
        .backoff_base
        .saturating_mul(1u32 << shift)
        .min(policy.backoff_max);
    let nanos = u64::try_from(cap.as_nanos()).unwrap_or(u64::MAX);
    Duration::from_nanos(rng.below(nanos.saturating_add(1)))
}

/// Why no further try is made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GiveUp {
    /// `retry_on` does not cover the outcome.
    NotRetryable,
    /// `attempts` tries have been made.
    AttemptsExhausted,
    /// The route's retry budget refused.
    BudgetExhausted,
}

/// What to do after a failed try.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryDecision {
    /// Wait `backoff`, then try again (preferably on another endpoint).
    Retry {
        backoff: Duration,
    },
    GiveUp(GiveUp),
}

/// One request's tries. Lives on the request's stack; no allocation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryState {
    /// Tries started, including the one in flight. INVARIANT: `>= 1`.
    tries: u32,
}

impl Default for RetryState {
    fn default() -> Self {
        RetryState::new()
    }
}

impl RetryState {
    /// The first try is in flight.
    pub const fn new() -> RetryState {
        RetryState { tries: 1 }
    }

    /// Tries started so far (1 = no retry yet).
    pub fn tries(&self) -> u32 {
        self.tries
    }

    /// Retries made so far.
    pub fn retries(&self) -> u32 {
        self.tries - 1
    }

    /// The current try failed with `outcome`: retry (counting the next try and drawing its
    /// backoff) or give up. The budget is consulted last, so a retry it allows is recorded
    /// in it and one refused for another reason does not touch it.
    pub fn on_failure(
        &mut self,
        policy: &RetryPolicy,
        outcome: TryOutcome,
        budget: Option<&mut RetryBudget>,
        now: Instant,
        rng: &mut FastRng,
    ) -> RetryDecision {
        if !is_retryable(policy, outcome) {
            return RetryDecision::GiveUp(GiveUp::NotRetryable);
        }
        if self.tries >= policy.attempts {
            return RetryDecision::GiveUp(GiveUp::AttemptsExhausted);
        }
        if let Some(b) = budget {
            if !b.try_retry(now) {
                return RetryDecision::GiveUp(GiveUp::BudgetExhausted);
            }
        }
        self.tries += 1;
        RetryDecision::Retry {
            backoff: backoff(policy, self.tries - 1, rng),
        }
    }
}

#[derive(Debug, Clone, Copy, Default)]
struct Bucket {
    requests: u32,
    retries: u32,
}

/// One route's retry budget on one core.
#[derive(Debug, Clone)]
pub struct RetryBudget {
    start: Instant,
    /// One bucket per second; second `s` lives at `s % len`. INVARIANT: `len() >= 1`.
    buckets: Box<[Bucket]>,
    /// The newest second recorded (seconds since `start`).
    head: u64,
    /// INVARIANT: the sums over `buckets`.
    requests: u64,
    retries: u64,
    percent: u64,
    /// Retries always allowed per window on this core.
    reserve: u64,
    exhausted: u64,
    retries_total: u64,
}

impl RetryBudget {
    /// The budget of `policy` on one of `workers` workers (0 is treated as 1). Allocates the
    /// bucket ring.
    pub fn new(policy: &RetryPolicy, workers: usize, now: Instant) -> RetryBudget {
        let window =
            policy.budget_window.as_secs() + u64::from(policy.budget_window.subsec_nanos() > 0);
        RetryBudget::with_params(
            policy.budget_percent,
            policy.min_retries_per_second,
            window,
            workers,
            now,
        )
    }

    /// A budget of `percent`% of requests plus `min_per_second` × `window_secs` retries
    /// (divided between `workers`, rounded up) over a window of `window_secs` seconds
    /// (clamped to 1..=[`MAX_BUDGET_WINDOW_SECS`]).
    pub fn with_params(
        percent: u32,
        min_per_second: u32,
        window_secs: u64,
        workers: usize,
        now: Instant,
    ) -> RetryBudget {
        let window = window_secs.clamp(1, MAX_BUDGET_WINDOW_SECS);
        let workers = (workers.max(1)) as u64;
        let reserve = (u64::from(min_per_second) * window).div_ceil(workers);
        RetryBudget {
            start: now,
            buckets: vec![Bucket::default(); window as usize].into_boxed_slice(),
            head: 0,
            requests: 0,
            retries: 0,
            percent: u64::from(percent),
            reserve,
            exhausted: 0,
            retries_total: 0,
        }
    }

    /// Moves the window to `now`, dropping buckets that fell out; returns the bucket of `now`.
    #[inline]
    fn advance(&mut self, now: Instant) -> usize {
        let len = self.buckets.len() as u64;
        let sec = now.saturating_duration_since(self.start).as_secs();
        if sec > self.head {
            let steps = (sec - self.head).min(len);
            for s in 1..=steps {
                let i = ((self.head + s) % len) as usize;
                if let Some(b) = self.buckets.get_mut(i) {
                    self.requests -= u64::from(b.requests);
                    self.retries -= u64::from(b.retries);
                    *b = Bucket::default();
                }
            }
            self.head = sec;
        }
        (self.head % len) as usize
    }

    /// One downstream request (not a retry) was seen.
    #[inline]
    pub fn record_request(&mut self, now: Instant) {
        let i = self.advance(now);
        if let Some(b) = self.buckets.get_mut(i) {
            if b.requests < u32::MAX {
                b.requests += 1;
                self.requests += 1;
            }
        }
    }

    /// Whether one more retry fits the budget; if so it is recorded.
    #[inline]
    pub fn try_retry(&mut self, now: Instant) -> bool {
        let i = self.advance(now);
        let allowed = (self.retries + 1).saturating_mul(100)
            <= self
                .percent
                .saturating_mul(self.requests)
                .saturating_add(self.reserve.saturating_mul(100));
        match self.buckets.get_mut(i) {
            Some(b) if allowed && b.retries < u32::MAX => {
                b.retries += 1;
                self.retries += 1;
                self.retries_total += 1;
                true
            }
            _ => {
                self.exhausted += 1;
                false
            }
        }
    }

    /// Retries refused by the budget so far on this core.
    pub fn exhausted_count(&self) -> u64 {
        self.exhausted
    }

    /// Retries allowed so far on this core.
    pub fn retries_total(&self) -> u64 {
        self.retries_total
    }

    /// Requests in the current window (as of the last call).
    pub fn requests_in_window(&self) -> u64 {
        self.requests
    }

    /// Retries in the current window (as of the last call).
    pub fn retries_in_window(&self) -> u64 {
        self.retries
    }

    /// The window length in whole seconds.
    pub fn window_secs(&self) -> u64 {
        self.buckets.len() as u64
    }
}

#[cfg(test)]
mod tests;
