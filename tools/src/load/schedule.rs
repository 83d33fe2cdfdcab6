//! The open-loop timeline of one connection (wrk2's constant throughput): request `k` of
//! global connection `g` out of `C` is due at `start + (g + k·C) / rate`, so the requests of
//! all connections interleave evenly at exactly `rate` per second.
//!
//! Invariant: due times are computed from `k` each time (no accumulated rounding drift) and
//! never decrease as `k` grows.

/// One connection's timeline, in nanoseconds on the run's clock.
#[derive(Debug, Clone, Copy)]
pub struct Schedule {
    start_ns: u64,
    phase_ns: f64,
    interval_ns: f64,
    /// Index of the next request not yet taken.
    next: u64,
}

impl Schedule {
    /// Connection `global` of `connections`, sharing `rate` requests per second.
    pub fn new(start_ns: u64, rate: f64, global: usize, connections: usize) -> Schedule {
        let per_request_ns = 1e9 / rate;
        Schedule {
            start_ns,
            phase_ns: global as f64 * per_request_ns,
            interval_ns: connections as f64 * per_request_ns,
            next: 0,
        }
    }

    /// Due time of request `k`.
    pub fn due(&self, k: u64) -> u64 {
        let off = self.phase_ns + k as f64 * self.interval_ns;
        self.start_ns
            .saturating_add(off.min(u64::MAX as f64) as u64)
    }

    /// Due time of the next request not yet taken.
    pub fn next_due(&self) -> u64 {
        self.due(self.next)
    }

    /// Takes the next request if it is due at `now` and before `end`: its intended time.
    pub fn take(&mut self, now: u64, end: u64) -> Option<u64> {
        let due = self.next_due();
        if due <= now && due < end {
            self.next += 1;
            Some(due)
        } else {
            None
        }
    }

    /// Requests due before `end` that were never taken.
    pub fn untaken_before(&self, end: u64) -> u64 {
        if end <= self.start_ns {
            return 0;
        }
        let span = (end - self.start_ns) as f64 - self.phase_ns;
        if span <= 0.0 {
            return 0;
        }
        // Slots k with phase + k·interval < span.
        let total = (span / self.interval_ns).ceil() as u64;
        total.saturating_sub(self.next)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connections_interleave_at_the_total_rate() {
        // 1000 req/s over 4 connections: one request every ms overall.
        let mut dues: Vec<u64> = (0..4)
            .flat_map(|g| {
                let s = Schedule::new(0, 1000.0, g, 4);
                (0..3).map(move |k| s.due(k))
            })
            .collect();
        dues.sort_unstable();
        let want: Vec<u64> = (0..12).map(|i| i * 1_000_000).collect();
        assert_eq!(dues, want);
    }

    #[test]
    fn takes_only_due_requests_before_the_end() {
        let mut s = Schedule::new(100, 10.0, 0, 1); // every 100 ms from t=100ns
        assert_eq!(s.take(99, u64::MAX), None);
        assert_eq!(s.take(100, u64::MAX), Some(100));
        assert_eq!(s.take(100, u64::MAX), None);
        assert_eq!(s.take(1_000_000_000, 200_000_000), Some(100_000_100));
        assert_eq!(s.take(1_000_000_000, 200_000_000), None);
        // Due before 1 s + 100 ns: k = 0..=9, two taken.
        assert_eq!(s.untaken_before(1_000_000_100), 8);
    }

    #[test]
    fn untaken_counts_nothing_before_the_first_slot() {
        let s = Schedule::new(1000, 1.0, 3, 4);
        assert_eq!(s.untaken_before(500), 0);
        assert_eq!(s.untaken_before(1000 + 3_000_000_000), 0);
        assert_eq!(s.untaken_before(1001 + 3_000_000_000), 1);
    }
}
