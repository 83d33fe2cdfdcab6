//! [`hit`]: a Bernoulli draw against a [`Percent`] (parts per million), the one random
//! decision behind mirroring, fault injection and access-log and span sampling.
//!
//! Invariants: `Percent(0)` never hits and never draws; `Percent::ALL` (or more) always hits
//! and never draws, so a 0%/100% policy does not disturb the generator's stream.

use crate::base::FastRng;
use crate::config::Percent;

/// True for a `p.0 / 1_000_000` share of calls.
#[inline]
pub fn hit(p: Percent, rng: &mut FastRng) -> bool {
    if p.0 == 0 {
        return false;
    }
    if p.0 >= Percent::MILLION {
        return true;
    }
    rng.below(u64::from(Percent::MILLION)) < u64::from(p.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_never_hits_and_all_always_hits() {
        let mut rng = FastRng::new(1);
        for _ in 0..10_000 {
            assert!(!hit(Percent(0), &mut rng));
            assert!(hit(Percent::ALL, &mut rng));
            assert!(hit(Percent(u32::MAX), &mut rng));
        }
    }

    #[test]
    fn hit_rate_converges_to_the_percentage() {
        let mut rng = FastRng::new(9);
        for ppm in [1_000u32, 100_000, 250_000, 500_000, 990_000] {
            let n = 200_000u32;
            let hits = (0..n).filter(|_| hit(Percent(ppm), &mut rng)).count() as f64;
            let expect = f64::from(n) * f64::from(ppm) / 1e6;
            let sd = (expect * (1.0 - f64::from(ppm) / 1e6)).sqrt();
            assert!(
                (hits - expect).abs() < 5.0 * sd + 1.0,
                "ppm {ppm}: {hits} vs {expect}"
            );
        }
    }

    #[test]
    fn extremes_do_not_consume_randomness() {
        let (mut a, mut b) = (FastRng::new(3), FastRng::new(3));
        hit(Percent(0), &mut a);
        hit(Percent::ALL, &mut a);
        assert_eq!(a.next_u64(), b.next_u64());
    }
}
