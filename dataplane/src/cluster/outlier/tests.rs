use std::time::{Duration, Instant};

use super::*;
use crate::base::FastRng;

fn cfg(c5xx: u32, cgw: u32, max_percent: u32) -> OutlierDetection {
    OutlierDetection {
        consecutive_5xx: c5xx,
        consecutive_gateway_failure: cgw,
        base_ejection_time: Duration::from_secs(30),
        max_ejection_time: Duration::from_secs(300),
        max_ejection_percent: max_percent,
    }
}

fn secs(t0: Instant, s: u64) -> Instant {
    t0 + Duration::from_secs(s)
}

#[test]
fn consecutive_5xx_ejects_and_success_resets() {
    let t0 = Instant::now();
    let mut d = OutlierDetector::new(cfg(3, 0, 100), 4);
    d.record(1, Outcome::Status5xx(500), t0);
    d.record(1, Outcome::Status5xx(500), t0);
    d.record(1, Outcome::Success, t0);
    d.record(1, Outcome::Status5xx(500), t0);
    assert_eq!(d.record(1, Outcome::Status5xx(500), t0), None);
    assert_eq!(
        d.record(1, Outcome::Status5xx(501), t0),
        Some(EjectReason::Consecutive5xx)
    );
    assert_eq!(d.unavailable(t0), &[false, true, false, false]);
    assert_eq!(d.ejections(EjectReason::Consecutive5xx), 1);
    assert_eq!(d.ejected_count(), 1);
}

#[test]
fn gateway_failures_count_both_and_other_5xx_reset_the_gateway_counter() {
    let t0 = Instant::now();
    let mut d = OutlierDetector::new(cfg(0, 3, 100), 2);
    d.record(0, Outcome::GatewayFailure, t0);
    d.record(0, Outcome::Status5xx(503), t0);
    d.record(0, Outcome::Status5xx(500), t0); // resets the gateway streak
    d.record(0, Outcome::Status5xx(502), t0);
    d.record(0, Outcome::Status5xx(504), t0);
    assert!(!d.is_ejected(0));
    assert_eq!(
        d.record(0, Outcome::GatewayFailure, t0),
        Some(EjectReason::ConsecutiveGatewayFailure)
    );
    // With only the 5xx detector on, gateway failures count as 5xx.
    let mut d = OutlierDetector::new(cfg(2, 0, 100), 1);
    d.record(0, Outcome::GatewayFailure, t0);
    assert_eq!(
        d.record(0, Outcome::GatewayFailure, t0),
        Some(EjectReason::Consecutive5xx)
    );
}

#[test]
fn disabled_detectors_never_eject() {
    let t0 = Instant::now();
    let mut d = OutlierDetector::new(cfg(0, 0, 100), 2);
    for _ in 0..100 {
        assert_eq!(d.record(0, Outcome::GatewayFailure, t0), None);
    }
    assert_eq!(d.ejections_total(), 0);
}

#[test]
fn ejection_time_grows_with_each_ejection_up_to_the_max() {
    let t0 = Instant::now();
    let mut d = OutlierDetector::new(cfg(1, 0, 100), 2);
    let mut now = t0;
    for n in 1..=12u64 {
        assert!(d.record(0, Outcome::Status5xx(500), now).is_some());
        let dur = (30 * n).min(300);
        assert!(d.unavailable(now + Duration::from_secs(dur) - Duration::from_millis(1))[0]);
        now += Duration::from_secs(dur);
        assert!(!d.unavailable(now)[0], "ejection {n} lasts {dur}s");
    }
}

#[test]
fn ejection_multiplier_decays_while_healthy() {
    let t0 = Instant::now();
    let mut d = OutlierDetector::new(cfg(1, 0, 100), 2);
    d.record(0, Outcome::Status5xx(500), t0); // 30 s
    assert!(!d.unavailable(secs(t0, 30))[0]);
    d.record(0, Outcome::Status5xx(500), secs(t0, 30)); // 60 s, until 90
    assert!(!d.unavailable(secs(t0, 90))[0]);
    // Healthy for 60 s (two bases): n decays 2 -> 0, the next ejection is 30 s again.
    d.record(0, Outcome::Status5xx(500), secs(t0, 150));
    assert!(d.unavailable(secs(t0, 179))[0]);
    assert!(!d.unavailable(secs(t0, 180))[0]);
}

#[test]
fn max_ejection_percent_caps_ejections_and_zero_room_ejects_nothing() {
    let t0 = Instant::now();
    let mut d = OutlierDetector::new(cfg(1, 0, 50), 5); // at most 2 of 5
    for i in 0..5 {
        d.record(i, Outcome::Status5xx(500), t0);
    }
    assert_eq!(d.ejected_count(), 2);
    assert_eq!(d.overflow_count(), 3);
    // When room frees up, a still-failing endpoint is ejected on its next failure.
    let later = secs(t0, 31);
    assert_eq!(d.unavailable(later), &[false; 5]);
    assert!(d.record(4, Outcome::Status5xx(500), later).is_some());

    let mut one = OutlierDetector::new(cfg(1, 1, 50), 1);
    for _ in 0..10 {
        assert_eq!(one.record(0, Outcome::GatewayFailure, t0), None);
    }
    assert_eq!(one.unavailable(t0), &[false]);
}

#[test]
fn ejected_endpoints_ignore_outcomes_and_bad_indices_are_ignored() {
    let t0 = Instant::now();
    let mut d = OutlierDetector::new(cfg(1, 0, 100), 2);
    d.record(0, Outcome::Status5xx(500), t0);
    assert_eq!(d.record(0, Outcome::Status5xx(500), t0), None);
    assert_eq!(d.record(7, Outcome::Status5xx(500), t0), None);
    assert_eq!(d.ejections_total(), 1);
}

#[test]
fn update_endpoints_resets_state_and_resizes_the_mask() {
    let t0 = Instant::now();
    let mut d = OutlierDetector::new(cfg(1, 0, 100), 2);
    d.record(0, Outcome::Status5xx(500), t0);
    d.update_endpoints(3);
    assert_eq!(d.unavailable(t0), &[false; 3]);
    assert_eq!(d.ejected_count(), 0);
    assert_eq!(d.ejections_total(), 1);
    assert_eq!(d.len(), 3);
}

#[test]
fn random_outcomes_keep_the_mask_consistent() {
    // Property: under random outcomes and time, the count of ejected endpoints always
    // matches the mask and never exceeds the cap.
    let t0 = Instant::now();
    let mut rng = FastRng::new(99);
    for (n, pct) in [(1usize, 100u32), (3, 34), (10, 50), (20, 10)] {
        let mut d = OutlierDetector::new(cfg(2, 3, pct), n);
        let mut now = t0;
        let cap = n * pct as usize / 100;
        for _ in 0..20_000 {
            now += Duration::from_millis(rng.below(200));
            let outcome = match rng.below(4) {
                0 => Outcome::Success,
                1 => Outcome::Status5xx(500),
                2 => Outcome::Status5xx(503),
                _ => Outcome::GatewayFailure,
            };
            d.record(rng.below_usize(n), outcome, now);
            let mask = d.unavailable(now);
            let count = mask.iter().filter(|&&b| b).count();
            assert_eq!(count, d.ejected_count());
            assert!(count <= cap);
        }
        if cap > 0 {
            assert!(d.ejections_total() > 0);
        }
    }
}
