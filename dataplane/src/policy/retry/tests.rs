use std::time::{Duration, Instant};

use super::*;
use crate::config::RetryOn;

fn policy(retry_on: RetryOn) -> RetryPolicy {
    RetryPolicy {
        retry_on,
        retriable_status_codes: vec![409, 503],
        attempts: 3,
        backoff_base: Duration::from_millis(25),
        backoff_max: Duration::from_millis(250),
        replay_buffer_bytes: 65536,
        budget_percent: 20,
        min_retries_per_second: 10,
        budget_window: Duration::from_secs(10),
    }
}

const NONE: RetryOn = RetryOn {
    connect_failure: false,
    reset: false,
    gateway_error: false,
    server_error: false,
    retriable_status_codes: false,
};

#[test]
fn classification_table() {
    use TryOutcome::*;
    let cf = RetryOn {
        connect_failure: true,
        ..NONE
    };
    let rs = RetryOn {
        reset: true,
        ..NONE
    };
    let gw = RetryOn {
        gateway_error: true,
        ..NONE
    };
    let sx = RetryOn {
        server_error: true,
        ..NONE
    };
    let rc = RetryOn {
        retriable_status_codes: true,
        ..NONE
    };
    #[rustfmt::skip]
    let table: &[(RetryOn, TryOutcome, bool)] = &[
        (NONE, ConnectFailure, false), (NONE, Reset, false), (NONE, Timeout, false),
        (NONE, Status(503), false),
        (cf, ConnectFailure, true), (cf, Reset, false), (cf, Timeout, false), (cf, Status(502), false),
        (rs, Reset, true), (rs, ConnectFailure, false), (rs, Status(500), false),
        (gw, Status(502), true), (gw, Status(503), true), (gw, Status(504), true),
        (gw, Status(500), false), (gw, Status(501), false), (gw, Status(505), false),
        (gw, Timeout, true), (gw, ConnectFailure, false), (gw, Reset, false),
        (sx, Status(500), true), (sx, Status(599), true), (sx, Status(503), true),
        (sx, Status(499), false), (sx, Status(600), false), (sx, Status(200), false),
        (sx, Timeout, true), (sx, Reset, false),
        (rc, Status(409), true), (rc, Status(503), true), (rc, Status(500), false),
        (rc, Timeout, false), (rc, ConnectFailure, false),
    ];
    for &(on, outcome, want) in table {
        assert_eq!(
            is_retryable(&policy(on), outcome),
            want,
            "{on:?} {outcome:?}"
        );
    }
    // Listed codes are ignored unless retriable-status-codes is on.
    assert!(!is_retryable(&policy(cf), Status(409)));
}

#[test]
fn backoff_is_jittered_below_an_exponential_capped_ceiling() {
    let p = policy(NONE);
    let mut rng = FastRng::new(5);
    for (retry, cap_ms) in [
        (0u32, 25u64),
        (1, 25),
        (2, 50),
        (3, 100),
        (4, 200),
        (5, 250),
        (40, 250),
        (u32::MAX, 250),
    ] {
        let mut max = Duration::ZERO;
        let mut sum = 0.0;
        for _ in 0..5000 {
            let d = backoff(&p, retry, &mut rng);
            assert!(d <= Duration::from_millis(cap_ms), "retry {retry}: {d:?}");
            max = max.max(d);
            sum += d.as_secs_f64();
        }
        // Full jitter: uniform over [0, cap], mean ≈ cap/2, max close to cap.
        let mean_ms = sum / 5000.0 * 1000.0;
        assert!(
            (mean_ms - cap_ms as f64 / 2.0).abs() < cap_ms as f64 * 0.05,
            "{mean_ms}"
        );
        assert!(max >= Duration::from_millis(cap_ms * 95 / 100));
    }
    let zero = RetryPolicy {
        backoff_base: Duration::ZERO,
        ..policy(NONE)
    };
    assert_eq!(backoff(&zero, 3, &mut rng), Duration::ZERO);
    let huge = RetryPolicy {
        backoff_base: Duration::MAX,
        backoff_max: Duration::MAX,
        ..policy(NONE)
    };
    let _ = backoff(&huge, 30, &mut rng); // no overflow panic
}

#[test]
fn retry_state_stops_at_attempts_and_on_unretryable() {
    let p = policy(RetryOn {
        gateway_error: true,
        ..NONE
    });
    let now = Instant::now();
    let mut rng = FastRng::new(1);
    let mut s = RetryState::new();
    assert!(matches!(
        s.on_failure(&p, TryOutcome::Status(503), None, now, &mut rng),
        RetryDecision::Retry { .. }
    ));
    assert!(matches!(
        s.on_failure(&p, TryOutcome::Timeout, None, now, &mut rng),
        RetryDecision::Retry { .. }
    ));
    assert_eq!(s.tries(), 3);
    assert_eq!(
        s.on_failure(&p, TryOutcome::Status(503), None, now, &mut rng),
        RetryDecision::GiveUp(GiveUp::AttemptsExhausted)
    );
    let mut s = RetryState::new();
    assert_eq!(
        s.on_failure(&p, TryOutcome::Reset, None, now, &mut rng),
        RetryDecision::GiveUp(GiveUp::NotRetryable)
    );
    assert_eq!(s.retries(), 0);
}

#[test]
fn budget_refusal_gives_up_and_is_counted_but_unretryable_does_not_touch_it() {
    let p = policy(RetryOn {
        reset: true,
        ..NONE
    });
    let now = Instant::now();
    let mut rng = FastRng::new(1);
    let mut budget = RetryBudget::with_params(0, 0, 10, 1, now);
    let mut s = RetryState::new();
    assert_eq!(
        s.on_failure(
            &p,
            TryOutcome::Status(500),
            Some(&mut budget),
            now,
            &mut rng
        ),
        RetryDecision::GiveUp(GiveUp::NotRetryable)
    );
    assert_eq!(budget.exhausted_count(), 0);
    assert_eq!(
        s.on_failure(&p, TryOutcome::Reset, Some(&mut budget), now, &mut rng),
        RetryDecision::GiveUp(GiveUp::BudgetExhausted)
    );
    assert_eq!(budget.exhausted_count(), 1);
}

#[test]
fn budget_allows_percent_of_requests_plus_reserve() {
    let t0 = Instant::now();
    // 20% of requests, 1 retry/s reserve over 10 s = 10 reserve retries.
    let mut b = RetryBudget::with_params(20, 1, 10, 1, t0);
    for _ in 0..100 {
        b.record_request(t0);
    }
    let allowed = (0..100).filter(|_| b.try_retry(t0)).count();
    assert_eq!(allowed, 20 + 10);
    assert_eq!(b.exhausted_count(), 70);
    assert_eq!(b.retries_in_window(), 30);
    // Ten more requests: two more retries.
    for _ in 0..10 {
        b.record_request(t0 + Duration::from_millis(500));
    }
    let allowed = (0..10).filter(|_| b.try_retry(t0)).count();
    assert_eq!(allowed, 2);
}

#[test]
fn budget_reserve_is_divided_between_workers_rounding_up() {
    let t0 = Instant::now();
    let mut b = RetryBudget::with_params(0, 10, 10, 3, t0); // 100 / 3 -> 34
    assert_eq!((0..100).filter(|_| b.try_retry(t0)).count(), 34);
    let mut b = RetryBudget::with_params(0, 0, 10, 0, t0);
    assert!(!b.try_retry(t0));
}

#[test]
fn old_seconds_fall_out_of_the_window() {
    let t0 = Instant::now();
    let mut b = RetryBudget::with_params(50, 0, 3, 1, t0);
    for _ in 0..10 {
        b.record_request(t0);
    }
    assert_eq!((0..10).filter(|_| b.try_retry(t0)).count(), 5);
    let s = |n: u64| t0 + Duration::from_secs(n);
    // Seconds 1 and 2: still inside the 3 s window.
    b.record_request(s(2));
    assert_eq!(b.requests_in_window(), 11);
    assert!(!b.try_retry(s(2)));
    // Second 3: second 0 drops out: 1 request, 0 retries.
    b.record_request(s(3));
    assert_eq!(b.requests_in_window(), 2);
    assert_eq!(b.retries_in_window(), 0);
    assert!(b.try_retry(s(3)));
    assert!(!b.try_retry(s(3)));
    // A long gap empties everything.
    b.record_request(s(1000));
    assert_eq!(b.requests_in_window(), 1);
    assert_eq!(b.retries_in_window(), 0);
    assert_eq!(b.retries_total(), 6);
}

#[test]
fn budget_holds_its_ratio_over_random_traffic() {
    // Property: with random arrivals over a minute, retries in any window never exceed the
    // allowance computed from requests in that window.
    let t0 = Instant::now();
    let mut rng = FastRng::new(21);
    for (percent, min, window) in [(20u32, 0u32, 10u64), (10, 2, 5), (50, 1, 1)] {
        let mut b = RetryBudget::with_params(percent, min, window, 1, t0);
        let mut ms = 0u64;
        while ms < 60_000 {
            ms += rng.below(20);
            let now = t0 + Duration::from_millis(ms);
            b.record_request(now);
            if rng.below(2) == 0 && b.try_retry(now) {
                // Checked when the retry is admitted (later slides may drop more requests
                // than retries).
                let limit =
                    b.requests_in_window() * u64::from(percent) + u64::from(min) * window * 100;
                assert!(b.retries_in_window() * 100 <= limit);
            }
        }
        assert!(b.exhausted_count() > 0);
        assert!(b.retries_total() > 0);
    }
}

#[test]
fn window_is_rounded_up_and_clamped() {
    let t0 = Instant::now();
    let mut p = policy(NONE);
    p.budget_window = Duration::from_millis(1500);
    assert_eq!(RetryBudget::new(&p, 1, t0).window_secs(), 2);
    p.budget_window = Duration::ZERO;
    assert_eq!(RetryBudget::new(&p, 1, t0).window_secs(), 1);
    p.budget_window = Duration::from_secs(1 << 40);
    assert_eq!(
        RetryBudget::new(&p, 1, t0).window_secs(),
        MAX_BUDGET_WINDOW_SECS
    );
}
