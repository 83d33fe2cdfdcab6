use std::time::{Duration, Instant};

use super::*;
use crate::config::{FaultPolicy, Percent, RateLimit, RetryOn, RetryPolicy};

#[test]
fn unconfigured_route_admits_everything_and_injects_nothing() {
    let now = Instant::now();
    let mut s = RouteState::new(&RoutePolicy::default(), 4, now);
    let mut rng = FastRng::new(1);
    for _ in 0..1000 {
        assert_eq!(s.admit(now), Ok(()));
        assert_eq!(s.fault(&mut rng), FaultAction::None);
        s.record_request(now);
    }
    assert!(s.rate_limit.is_none() && s.retry_budget.is_none() && s.fault.is_none());
}

#[test]
fn configured_route_builds_each_piece() {
    let now = Instant::now();
    let policy = RoutePolicy {
        rate_limit: Some(RateLimit {
            requests_per_second: 2,
            burst: 2,
        }),
        retry: Some(RetryPolicy {
            retry_on: RetryOn::default(),
            retriable_status_codes: vec![],
            attempts: 2,
            backoff_base: Duration::from_millis(25),
            backoff_max: Duration::from_millis(250),
            replay_buffer_bytes: 0,
            budget_percent: 20,
            min_retries_per_second: 0,
            budget_window: Duration::from_secs(10),
        }),
        fault: Some(FaultPolicy {
            abort_status: Some(418),
            abort_percent: Percent::ALL,
            ..FaultPolicy::default()
        }),
        ..RoutePolicy::default()
    };
    let mut s = RouteState::new(&policy, 1, now);
    let mut rng = FastRng::new(1);
    assert!(s.admit(now).is_ok());
    assert!(s.admit(now).is_ok());
    assert!(s.admit(now).is_err());
    assert_eq!(s.fault(&mut rng), FaultAction::Abort(418));
    for _ in 0..5 {
        s.record_request(now);
    }
    let budget = s.retry_budget.as_mut().unwrap();
    assert_eq!(budget.requests_in_window(), 5);
    assert!(budget.try_retry(now));
    assert!(!budget.try_retry(now));
}
