use super::*;
use crate::base::FastRng;

// ---- state machine -------------------------------------------------------------------------

#[test]
fn endpoints_start_healthy_and_flip_after_thresholds() {
    let mut s = HealthState::with_thresholds(2, 3, 2);
    assert!(s.is_healthy(0) && s.is_healthy(1));
    assert_eq!(s.report(0, false), None);
    assert_eq!(s.report(0, false), None);
    assert_eq!(s.report(0, true), None); // streak broken
    assert_eq!(s.report(0, false), None);
    assert_eq!(s.report(0, false), None);
    assert_eq!(s.report(0, false), Some(false));
    assert_eq!(s.unavailable(), &[true, false]);
    assert_eq!(s.report(0, false), None);
    assert_eq!(s.report(0, true), None);
    assert_eq!(s.report(0, false), None); // streak broken
    assert_eq!(s.report(0, true), None);
    assert_eq!(s.report(0, true), Some(true));
    assert_eq!(s.unhealthy_count(), 0);
    assert_eq!((s.went_unhealthy_count(), s.went_healthy_count()), (1, 1));
}

#[test]
fn zero_thresholds_act_as_one_and_bad_indices_are_ignored() {
    let mut s = HealthState::with_thresholds(0, 0, 1);
    assert_eq!(s.report(0, false), Some(false));
    assert_eq!(s.report(0, true), Some(true));
    assert_eq!(s.report(5, false), None);
    s.set_healthy(5, false);
    assert!(s.is_healthy(5));
}

#[test]
fn set_healthy_applies_broadcasts_idempotently() {
    let mut s = HealthState::with_thresholds(1, 1, 3);
    s.set_healthy(1, false);
    s.set_healthy(1, false);
    assert_eq!(s.unhealthy_count(), 1);
    assert_eq!(s.unavailable(), &[false, true, false]);
    s.update_endpoints(2);
    assert_eq!(s.unavailable(), &[false, false]);
    assert_eq!(s.unhealthy_count(), 0);
}

#[test]
fn random_reports_keep_the_count_consistent() {
    let mut rng = FastRng::new(4);
    let mut s = HealthState::with_thresholds(3, 2, 7);
    for _ in 0..10_000 {
        let i = rng.below_usize(8); // includes an unknown index
        if rng.below(10) == 0 {
            s.set_healthy(i, rng.coin());
        } else {
            s.report(i, rng.coin());
        }
        let down = s.unavailable().iter().filter(|&&u| u).count();
        assert_eq!(down, s.unhealthy_count());
    }
}

// ---- merge ---------------------------------------------------------------------------------

type MergeCase = (
    &'static [bool],
    &'static [bool],
    AllUnhealthy,
    &'static [bool],
    Availability,
);

#[test]
fn merge_table() {
    use AllUnhealthy::*;
    #[rustfmt::skip]
    let table: &[MergeCase] = &[
        (&[], &[], Reject, &[], Availability::Some),
        (&[false, true], &[], Reject, &[false, true], Availability::Some),
        (&[], &[true, false], Reject, &[true, false], Availability::Some),
        (&[true, false], &[false, true], Reject, &[true, true], Availability::AllDown),
        (&[true, false], &[false, true], FailOpen, &[false, false], Availability::AllDownFailOpen),
        (&[true], &[false, false], Reject, &[true, false], Availability::Some),
        (&[true, true], &[], FailOpen, &[false, false], Availability::AllDownFailOpen),
    ];
    let mut out = Vec::new();
    for &(h, e, when, want, avail) in table {
        assert_eq!(
            merge_unavailable(h, e, &mut out, when),
            avail,
            "{h:?} {e:?}"
        );
        assert_eq!(out, want);
    }
}

#[test]
fn merge_reuses_the_output_vec() {
    let mut out = Vec::with_capacity(8);
    let ptr = out.as_ptr();
    for _ in 0..10 {
        merge_unavailable(&[false; 8], &[true; 4], &mut out, AllUnhealthy::Reject);
    }
    assert_eq!(out.as_ptr(), ptr);
}
