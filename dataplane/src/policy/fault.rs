//! Fault injection (`[listeners.routes.fault]`): [`decide`] draws, independently, whether a
//! request is delayed (`delay_percent`) and whether it is aborted (`abort_percent`);
//! [`FaultInjector`] wraps it with counters for metrics.
//!
//! Phase: after route match and rate limiting, before picking an endpoint. The proxy sleeps
//! for a delay (with the driver's `sleep`, bounded by the route timeout), then answers an
//! abort status itself without contacting the upstream. A delay is drawn only when `delay` is
//! set, an abort only when `abort_status` is set; both draws use [`sample::hit`], so 0% and
//! 100% consume no randomness.

use std::time::Duration;

use super::sample;
use crate::base::FastRng;
use crate::config::FaultPolicy;

/// What to do to one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultAction {
    None,
    Delay(Duration),
    /// Answer this status without contacting the upstream.
    Abort(u16),
    DelayThenAbort(Duration, u16),
}

impl FaultAction {
    /// The delay to apply first, if any.
    #[inline]
    pub fn delay(self) -> Option<Duration> {
        match self {
            FaultAction::Delay(d) | FaultAction::DelayThenAbort(d, _) => Some(d),
            _ => None,
        }
    }

    /// The status to answer (after the delay), if any.
    #[inline]
    pub fn abort(self) -> Option<u16> {
        match self {
            FaultAction::Abort(s) | FaultAction::DelayThenAbort(_, s) => Some(s),
            _ => None,
        }
    }
}

/// One independent draw for the delay and one for the abort.
#[inline]
pub fn decide(policy: &FaultPolicy, rng: &mut FastRng) -> FaultAction {
    let delay = match policy.delay {
        Some(d) if sample::hit(policy.delay_percent, rng) => Some(d),
        _ => None,
    };
    let abort = match policy.abort_status {
        Some(s) if sample::hit(policy.abort_percent, rng) => Some(s),
        _ => None,
    };
    match (delay, abort) {
        (None, None) => FaultAction::None,
        (Some(d), None) => FaultAction::Delay(d),
        (None, Some(s)) => FaultAction::Abort(s),
        (Some(d), Some(s)) => FaultAction::DelayThenAbort(d, s),
    }
}

/// A route's fault policy on one core, counting what it injected.
#[derive(Debug, Clone)]
pub struct FaultInjector {
    policy: FaultPolicy,
    delays: u64,
    aborts: u64,
}

impl FaultInjector {
    pub fn new(policy: FaultPolicy) -> FaultInjector {
        FaultInjector {
            policy,
            delays: 0,
            aborts: 0,
        }
    }

    /// [`decide`], counted.
    #[inline]
    pub fn decide(&mut self, rng: &mut FastRng) -> FaultAction {
        let action = decide(&self.policy, rng);
        if action.delay().is_some() {
            self.delays += 1;
        }
        if action.abort().is_some() {
            self.aborts += 1;
        }
        action
    }

    /// Requests delayed so far on this core.
    pub fn delays_injected(&self) -> u64 {
        self.delays
    }

    /// Requests aborted so far on this core.
    pub fn aborts_injected(&self) -> u64 {
        self.aborts
    }

    pub fn policy(&self) -> &FaultPolicy {
        &self.policy
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Percent;

    fn policy(delay_ppm: u32, abort_ppm: u32) -> FaultPolicy {
        FaultPolicy {
            delay: Some(Duration::from_millis(50)),
            delay_percent: Percent(delay_ppm),
            abort_status: Some(503),
            abort_percent: Percent(abort_ppm),
        }
    }

    #[test]
    fn table_of_certain_outcomes() {
        let d = Duration::from_millis(50);
        let cases = [
            (policy(0, 0), FaultAction::None),
            (policy(1_000_000, 0), FaultAction::Delay(d)),
            (policy(0, 1_000_000), FaultAction::Abort(503)),
            (
                policy(1_000_000, 1_000_000),
                FaultAction::DelayThenAbort(d, 503),
            ),
            (FaultPolicy::default(), FaultAction::None),
            (
                FaultPolicy {
                    delay: None,
                    delay_percent: Percent::ALL,
                    abort_status: None,
                    abort_percent: Percent::ALL,
                },
                FaultAction::None,
            ),
        ];
        let mut rng = FastRng::new(1);
        for (p, want) in cases {
            for _ in 0..100 {
                assert_eq!(decide(&p, &mut rng), want, "{p:?}");
            }
        }
    }

    #[test]
    fn percentages_converge_and_draws_are_independent() {
        let mut f = FaultInjector::new(policy(300_000, 100_000));
        let mut rng = FastRng::new(77);
        let n = 200_000u64;
        let mut both = 0u64;
        for _ in 0..n {
            if let FaultAction::DelayThenAbort(..) = f.decide(&mut rng) {
                both += 1;
            }
        }
        let share = |x: u64| x as f64 / n as f64;
        assert!((share(f.delays_injected()) - 0.30).abs() < 0.01);
        assert!((share(f.aborts_injected()) - 0.10).abs() < 0.005);
        // Independence: P(both) ≈ 0.3 × 0.1.
        assert!((share(both) - 0.03).abs() < 0.003, "{}", share(both));
    }

    #[test]
    fn accessors_split_the_action() {
        let d = Duration::from_secs(1);
        assert_eq!(FaultAction::DelayThenAbort(d, 500).delay(), Some(d));
        assert_eq!(FaultAction::DelayThenAbort(d, 500).abort(), Some(500));
        assert_eq!(FaultAction::Delay(d).abort(), None);
        assert_eq!(FaultAction::Abort(429).delay(), None);
        assert_eq!(FaultAction::None.delay(), None);
    }
}
