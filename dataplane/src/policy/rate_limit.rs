//! [`TokenBucket`]: this core's share of a route's rate limit (`[listeners.routes.rate_limit]`).
//!
//! The configured rate and burst are for the whole process; with N workers each worker's
//! bucket refills at `rate / N` tokens per second and holds at most `max(burst / N, 1)` tokens
//! (at least one, so a small limit spread over many cores still admits requests; the process
//! can then burst up to N). Nothing is shared between cores: with SO_REUSEPORT spreading
//! connections evenly this approximates one process-wide bucket (as Envoy's local rate limit).
//!
//! Refill is lazy: each [`TokenBucket::try_take`] adds `elapsed × rate` tokens (capped at the
//! burst) before taking one. A refused request gets the time until the next token, for a
//! `Retry-After` header ([`retry_after_secs`]). Phase: after route match, before anything
//! else; a refusal is answered 429 without contacting the upstream.
//!
//! Invariants: `0 <= tokens <= burst`; `last` never goes backwards (an earlier `now` refills
//! nothing). No allocation.

use std::time::{Duration, Instant};

use crate::config::RateLimit;

/// One core's token bucket.
#[derive(Debug, Clone)]
pub struct TokenBucket {
    /// Tokens per second (≥ 0).
    rate: f64,
    /// INVARIANT: `>= 1.0`.
    burst: f64,
    /// INVARIANT: `0.0 <= tokens <= burst`.
    tokens: f64,
    last: Instant,
    limited: u64,
}

impl TokenBucket {
    /// This worker's share (one of `workers`, 0 is treated as 1) of `limit`; starts full.
    pub fn new(limit: &RateLimit, workers: usize, now: Instant) -> TokenBucket {
        let n = workers.max(1) as f64;
        TokenBucket::with_rate(
            f64::from(limit.requests_per_second) / n,
            f64::from(limit.burst) / n,
            now,
        )
    }

    /// A bucket refilling at `rate_per_sec` and holding `burst` tokens (raised to at least 1;
    /// negative or NaN rates are 0). Starts full.
    pub fn with_rate(rate_per_sec: f64, burst: f64, now: Instant) -> TokenBucket {
        let rate = if rate_per_sec.is_finite() && rate_per_sec > 0.0 {
            rate_per_sec
        } else {
            0.0
        };
        let burst = if burst.is_finite() {
            burst.max(1.0)
        } else {
            1.0
        };
        TokenBucket {
            rate,
            burst,
            tokens: burst,
            last: now,
            limited: 0,
        }
    }

    /// Takes one token. `Err(wait)`: refused; a token will be available after `wait`
    /// (`Duration::MAX` when the rate is 0).
    #[inline]
    pub fn try_take(&mut self, now: Instant) -> Result<(), Duration> {
        if now > self.last {
            let elapsed = now.duration_since(self.last).as_secs_f64();
            self.tokens = (self.tokens + elapsed * self.rate).min(self.burst);
            self.last = now;
        }
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            return Ok(());
        }
        self.limited += 1;
        if self.rate <= 0.0 {
            return Err(Duration::MAX);
        }
        let secs = (1.0 - self.tokens) / self.rate;
        Err(Duration::try_from_secs_f64(secs).unwrap_or(Duration::MAX))
    }

    /// Requests refused so far on this core.
    pub fn limited_count(&self) -> u64 {
        self.limited
    }

    /// Tokens currently held (as of the last call).
    pub fn tokens(&self) -> f64 {
        self.tokens
    }
}

/// `Retry-After` seconds for a refusal: the wait rounded up, at least 1.
#[inline]
pub fn retry_after_secs(wait: Duration) -> u64 {
    let s = wait
        .as_secs()
        .saturating_add(u64::from(wait.subsec_nanos() > 0));
    s.max(1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::base::FastRng;

    #[test]
    fn starts_full_then_refuses_with_time_to_next_token() {
        let t0 = Instant::now();
        let mut b = TokenBucket::with_rate(10.0, 3.0, t0);
        for _ in 0..3 {
            assert_eq!(b.try_take(t0), Ok(()));
        }
        let wait = b.try_take(t0).unwrap_err();
        assert!((wait.as_secs_f64() - 0.1).abs() < 1e-6, "{wait:?}");
        assert_eq!(b.try_take(t0 + Duration::from_millis(100)), Ok(()));
        assert_eq!(b.limited_count(), 1);
    }

    #[test]
    fn refill_is_capped_at_burst() {
        let t0 = Instant::now();
        let mut b = TokenBucket::with_rate(100.0, 5.0, t0);
        let later = t0 + Duration::from_secs(3600);
        let admitted = (0..100).filter(|_| b.try_take(later).is_ok()).count();
        assert_eq!(admitted, 5);
    }

    #[test]
    fn shares_rate_and_burst_between_workers() {
        let t0 = Instant::now();
        let limit = RateLimit {
            requests_per_second: 100,
            burst: 40,
        };
        let mut b = TokenBucket::new(&limit, 4, t0);
        let admitted = (0..100).filter(|_| b.try_take(t0).is_ok()).count();
        assert_eq!(admitted, 10);
        // 25/s per worker: one token every 40 ms.
        assert!(b.try_take(t0 + Duration::from_millis(39)).is_err());
        assert!(b.try_take(t0 + Duration::from_millis(41)).is_ok());
    }

    #[test]
    fn tiny_share_still_admits_one_and_zero_rate_never_refills() {
        let t0 = Instant::now();
        let limit = RateLimit {
            requests_per_second: 1,
            burst: 1,
        };
        let mut b = TokenBucket::new(&limit, 8, t0);
        assert!(b.try_take(t0).is_ok());
        assert!(b.try_take(t0).is_err());
        let mut z = TokenBucket::with_rate(0.0, 0.0, t0);
        assert!(z.try_take(t0).is_ok());
        assert_eq!(
            z.try_take(t0 + Duration::from_secs(100)),
            Err(Duration::MAX)
        );
        let mut nan = TokenBucket::with_rate(f64::NAN, f64::INFINITY, t0);
        assert!(nan.try_take(t0).is_ok());
        assert!(nan.try_take(t0).is_err());
    }

    #[test]
    fn time_going_backwards_refills_nothing() {
        let t0 = Instant::now() + Duration::from_secs(10);
        let mut b = TokenBucket::with_rate(1000.0, 1.0, t0);
        assert!(b.try_take(t0).is_ok());
        assert!(b.try_take(t0 - Duration::from_secs(5)).is_err());
        assert!(b.try_take(t0).is_err());
    }

    #[test]
    fn admits_rate_times_duration_plus_burst_under_overload() {
        // Property: over a simulated 10 s at 3× the rate, with random arrival times,
        // admitted ≈ rate × 10 + burst, for several rates and bursts.
        let mut rng = FastRng::new(11);
        for (rate, burst) in [(100.0, 100.0), (50.0, 10.0), (1000.0, 50.0), (7.5, 30.0)] {
            let t0 = Instant::now();
            let mut b = TokenBucket::with_rate(rate, burst, t0);
            let arrivals = (rate * 3.0 * 10.0) as u64;
            let mut times: Vec<u64> = (0..arrivals).map(|_| rng.below(10_000_000_000)).collect();
            times.sort_unstable();
            let admitted = times
                .iter()
                .filter(|&&ns| b.try_take(t0 + Duration::from_nanos(ns)).is_ok())
                .count() as f64;
            let expect = rate * 10.0 + burst;
            assert!(
                (admitted - expect).abs() <= expect * 0.03 + 2.0,
                "rate {rate} burst {burst}: admitted {admitted}, expected {expect}"
            );
            assert_eq!(b.limited_count() as f64 + admitted, arrivals as f64);
        }
    }

    #[test]
    fn evenly_spaced_overload_with_burst_one_admits_the_rate() {
        let t0 = Instant::now();
        let mut b = TokenBucket::with_rate(1000.0, 1.0, t0);
        // 4000 arrivals per second for 10 s, one every 250 µs. (With a capacity of one token,
        // arrivals not aligned to the refill lose the excess over one token, as any bucket.)
        let admitted = (1..=40_000u64)
            .filter(|i| b.try_take(t0 + Duration::from_micros(i * 250)).is_ok())
            .count();
        assert!((9_990..=10_001).contains(&admitted), "{admitted}");
    }

    #[test]
    fn retry_after_rounds_up_to_whole_seconds() {
        assert_eq!(retry_after_secs(Duration::ZERO), 1);
        assert_eq!(retry_after_secs(Duration::from_millis(10)), 1);
        assert_eq!(retry_after_secs(Duration::from_secs(2)), 2);
        assert_eq!(retry_after_secs(Duration::from_millis(2001)), 3);
        assert_eq!(retry_after_secs(Duration::MAX), u64::MAX);
    }
}
