//! Figures of a run: per-thread [`Stats`] (latency histogram, counters) recorded by the
//! workers and merged by the driver, plus the derived figures (rates, error fraction).
//!
//! Invariants: the histogram holds microseconds, 1 µs..60 s at 3 significant digits
//! (values above the top are clamped to it); only completions at or after the start of
//! measurement are recorded; counters only grow.

use hdrhistogram::Histogram;

/// Highest trackable latency, µs (60 s).
pub const HIST_MAX_US: u64 = 60_000_000;

/// Socket-level failures by kind. Each counts the requests the failure lost (at least one
/// per failure, so a refused connect with nothing written still counts).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SocketErrors {
    pub connect: u64,
    pub read: u64,
    pub write: u64,
    pub timeout: u64,
    /// Unparsable responses (malformed head, bad framing, truncated body).
    pub parse: u64,
}

impl SocketErrors {
    pub fn total(&self) -> u64 {
        self.connect + self.read + self.write + self.timeout + self.parse
    }

    fn add(&mut self, o: &SocketErrors) {
        self.connect += o.connect;
        self.read += o.read;
        self.write += o.write;
        self.timeout += o.timeout;
        self.parse += o.parse;
    }
}

/// What one worker thread measured.
#[derive(Debug, Clone)]
pub struct Stats {
    /// Latency of every measured response, µs.
    pub latency: Histogram<u64>,
    /// Open loop only: how late each request left against its intended time, µs (the
    /// generator's own lag: timer wake-ups, a full pipeline, a slow connect).
    pub send_lag: Histogram<u64>,
    /// Responses completed (any status).
    pub responses: u64,
    /// Response counts by status class: index 1..=5 for 1xx..5xx, 0 for anything else.
    pub status_classes: [u64; 6],
    /// Bytes read from sockets.
    pub bytes_read: u64,
    /// Bytes written to sockets.
    pub bytes_written: u64,
    pub errors: SocketErrors,
    /// Connections closed by the server after a complete response (`Connection: close`,
    /// idle close) and opened again; not errors.
    pub reconnects: u64,
    /// Open loop only: requests the schedule owed before the end that were never sent
    /// (the target or the generator could not keep up).
    pub unsent: u64,
}

impl Default for Stats {
    fn default() -> Self {
        Self::new()
    }
}

impl Stats {
    pub fn new() -> Self {
        Stats {
            latency: new_histogram(),
            send_lag: new_histogram(),
            responses: 0,
            status_classes: [0; 6],
            bytes_read: 0,
            bytes_written: 0,
            errors: SocketErrors::default(),
            reconnects: 0,
            unsent: 0,
        }
    }

    /// Records one measured response.
    pub fn record(&mut self, status: u16, latency_us: u64) {
        self.responses += 1;
        let class = usize::from(status / 100);
        let slot = if (1..=5).contains(&class) { class } else { 0 };
        if let Some(c) = self.status_classes.get_mut(slot) {
            *c += 1;
        }
        self.latency.saturating_record(latency_us);
    }

    /// Responses outside 2xx.
    pub fn non_2xx(&self) -> u64 {
        self.responses - self.status_classes[2]
    }

    /// Adds another thread's figures.
    pub fn merge(&mut self, o: &Stats) {
        // Same bounds on both sides: addition cannot fail.
        let _ = self.latency.add(&o.latency);
        let _ = self.send_lag.add(&o.send_lag);
        self.responses += o.responses;
        for (a, b) in self.status_classes.iter_mut().zip(o.status_classes) {
            *a += b;
        }
        self.bytes_read += o.bytes_read;
        self.bytes_written += o.bytes_written;
        self.errors.add(&o.errors);
        self.reconnects += o.reconnects;
        self.unsent += o.unsent;
    }

    /// (socket errors + non-2xx) / (responses + socket errors); 1.0 when nothing ended.
    pub fn error_fraction(&self) -> f64 {
        let bad = self.errors.total() + self.non_2xx();
        let ended = self.responses + self.errors.total();
        if ended == 0 {
            1.0
        } else {
            bad as f64 / ended as f64
        }
    }

    /// The run's verdict against `--max-error-rate`: fails without any response, or when
    /// the error fraction exceeds `max`.
    pub fn passes(&self, max: f64) -> bool {
        self.responses > 0 && self.error_fraction() <= max
    }
}

/// The histogram every worker records into (1 µs..60 s, 3 significant digits).
pub fn new_histogram() -> Histogram<u64> {
    // Constant bounds that hdrhistogram accepts (low >= 1, high >= 2 * low, sigfig <= 5).
    Histogram::new_with_bounds(1, HIST_MAX_US, 3).expect("constant histogram bounds are valid")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_by_status_class_and_merges() {
        let mut a = Stats::new();
        a.record(200, 100);
        a.record(503, 200);
        a.record(99, 50);
        let mut b = Stats::new();
        b.record(204, 70_000_000);
        b.errors.timeout = 2;
        a.merge(&b);
        assert_eq!(a.responses, 4);
        assert_eq!(a.status_classes, [1, 0, 2, 0, 0, 1]);
        assert_eq!(a.non_2xx(), 2);
        assert_eq!(a.latency.len(), 4);
        assert!(a.latency.max() >= HIST_MAX_US - HIST_MAX_US / 1000);
        assert!((a.error_fraction() - 4.0 / 6.0).abs() < 1e-9);
    }

    #[test]
    fn verdict_fails_without_responses_or_above_the_threshold() {
        let mut s = Stats::new();
        assert!(!s.passes(1.0));
        s.record(200, 1);
        assert!(s.passes(0.0));
        s.errors.connect = 1;
        assert!(!s.passes(0.0));
        assert!(s.passes(0.5));
    }
}
