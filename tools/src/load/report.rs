//! Presenting a run: the banner, the wrk2-style text report, the `--json` object and the
//! full percentile spectrum written by `--latency-out`.
//!
//! Invariant: text and JSON show the same figures (both read [`Report`] only); latencies
//! are µs in JSON and scaled for humans in text.

use std::fmt::Write as _;
use std::time::Duration;

use hdrhistogram::Histogram;
use serde_json::json;

use super::options::Plan;
use super::stats::Stats;

/// Percentiles printed and exported, with their JSON keys.
pub const PERCENTILES: [(f64, &str); 6] = [
    (50.0, "p50"),
    (75.0, "p75"),
    (90.0, "p90"),
    (99.0, "p99"),
    (99.9, "p99_9"),
    (99.99, "p99_99"),
];

/// Merged figures of a finished run.
#[derive(Debug, Clone)]
pub struct Report {
    pub stats: Stats,
    /// From the end of warmup to the last worker's end (drain included).
    pub elapsed: Duration,
}

/// `Running 10s test @ URL` and the shape of the run.
pub fn banner(plan: &Plan) -> String {
    let mode = match plan.rate {
        Some(r) => format!("open loop at {r} req/s"),
        None => "closed loop (max rate)".to_owned(),
    };
    let warmup = if plan.warmup.is_zero() {
        String::new()
    } else {
        format!(", warmup {}", human_duration(plan.warmup))
    };
    format!(
        "Running {} test @ {}\n  {} threads and {} connections, pipeline {}, {mode}{warmup}",
        human_duration(plan.duration),
        plan.url,
        plan.threads,
        plan.connections,
        plan.pipeline,
    )
}

fn human_duration(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s >= 1.0 {
        format!("{}s", trim_float(s))
    } else {
        format!("{}ms", trim_float(s * 1000.0))
    }
}

fn trim_float(v: f64) -> String {
    let s = format!("{v:.3}");
    s.trim_end_matches('0').trim_end_matches('.').to_owned()
}

/// Microseconds as `123.00us`, `1.23ms` or `1.23s`.
pub fn human_us(us: f64) -> String {
    if us < 1000.0 {
        format!("{us:.2}us")
    } else if us < 1_000_000.0 {
        format!("{:.2}ms", us / 1000.0)
    } else {
        format!("{:.2}s", us / 1_000_000.0)
    }
}

/// Bytes as `512.00B`, `1.23KB`, `4.56MB`, `7.89GB` (powers of 1024, as wrk).
pub fn human_bytes(b: f64) -> String {
    const UNITS: [&str; 5] = ["B", "KB", "MB", "GB", "TB"];
    let mut v = b;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    format!("{v:.2}{}", UNITS.get(unit).unwrap_or(&"B"))
}

impl Report {
    fn secs(&self) -> f64 {
        self.elapsed.as_secs_f64().max(1e-9)
    }

    pub fn requests_per_sec(&self) -> f64 {
        self.stats.responses as f64 / self.secs()
    }

    pub fn bytes_per_sec(&self) -> f64 {
        self.stats.bytes_read as f64 / self.secs()
    }

    /// The wrk2-style report (after the banner).
    pub fn text(&self, plan: &Plan) -> String {
        let s = &self.stats;
        let h = &s.latency;
        let mut o = String::new();
        let _ = writeln!(o, "  Latency        Mean       Stdev         Max");
        let _ = writeln!(
            o,
            "             {:>9}   {:>9}   {:>9}",
            human_us(h.mean()),
            human_us(h.stdev()),
            human_us(h.max() as f64)
        );
        let origin = if plan.rate.is_some() {
            "from intended send time"
        } else {
            "from actual send time"
        };
        let _ = writeln!(o, "  Latency Distribution ({origin})");
        for (p, _) in PERCENTILES {
            let _ = writeln!(
                o,
                "   {:>7.3}%   {:>9}",
                p,
                human_us(h.value_at_percentile(p) as f64)
            );
        }
        let _ = writeln!(o, "   100.000%   {:>9}", human_us(h.max() as f64));
        let _ = writeln!(
            o,
            "  {} requests in {:.2}s, {} read",
            s.responses,
            self.elapsed.as_secs_f64(),
            human_bytes(s.bytes_read as f64)
        );
        let e = &s.errors;
        if e.total() > 0 {
            let _ = writeln!(
                o,
                "  Socket errors: connect {}, read {}, write {}, timeout {}, parse {}",
                e.connect, e.read, e.write, e.timeout, e.parse
            );
        }
        if s.non_2xx() > 0 {
            let c = &s.status_classes;
            let _ = writeln!(
                o,
                "  Non-2xx responses: {} (1xx {}, 3xx {}, 4xx {}, 5xx {}, other {})",
                s.non_2xx(),
                c[1],
                c[3],
                c[4],
                c[5],
                c[0]
            );
        }
        if s.reconnects > 0 {
            let _ = writeln!(o, "  Reconnects (server closed): {}", s.reconnects);
        }
        if plan.rate.is_some() && !s.send_lag.is_empty() {
            let l = &s.send_lag;
            let _ = writeln!(
                o,
                "  Send lag behind schedule: p50 {}, p99 {}, max {}",
                human_us(l.value_at_percentile(50.0) as f64),
                human_us(l.value_at_percentile(99.0) as f64),
                human_us(l.max() as f64)
            );
        }
        if s.unsent > 0 {
            let _ = writeln!(o, "  Unsent (behind schedule at the end): {}", s.unsent);
        }
        let _ = writeln!(o, "Requests/sec: {:>12.2}", self.requests_per_sec());
        let _ = writeln!(o, "Transfer/sec: {:>12}", human_bytes(self.bytes_per_sec()));
        o
    }

    /// Every figure as one JSON object (latencies in µs).
    pub fn json(&self, plan: &Plan) -> serde_json::Value {
        let s = &self.stats;
        let h = &s.latency;
        let mut latency = serde_json::Map::new();
        latency.insert("count".into(), json!(h.len()));
        latency.insert("min".into(), json!(if h.is_empty() { 0 } else { h.min() }));
        latency.insert("mean".into(), json!(h.mean()));
        latency.insert("stdev".into(), json!(h.stdev()));
        for (p, key) in PERCENTILES {
            latency.insert(key.into(), json!(h.value_at_percentile(p)));
        }
        latency.insert("max".into(), json!(h.max()));
        let c = &s.status_classes;
        let e = &s.errors;
        json!({
            "url": plan.url,
            "mode": if plan.rate.is_some() { "open" } else { "closed" },
            "rate": plan.rate,
            "connections": plan.connections,
            "threads": plan.threads,
            "pipeline": plan.pipeline,
            "warmup_s": plan.warmup.as_secs_f64(),
            "duration_s": self.elapsed.as_secs_f64(),
            "requests": s.responses,
            "requests_per_sec": self.requests_per_sec(),
            "bytes_read": s.bytes_read,
            "bytes_written": s.bytes_written,
            "transfer_per_sec": self.bytes_per_sec(),
            "latency_us": latency,
            "latency_origin": if plan.rate.is_some() { "intended" } else { "sent" },
            "status": {"1xx": c[1], "2xx": c[2], "3xx": c[3], "4xx": c[4], "5xx": c[5], "other": c[0]},
            "non_2xx": s.non_2xx(),
            "errors": {
                "connect": e.connect, "read": e.read, "write": e.write,
                "timeout": e.timeout, "parse": e.parse, "total": e.total(),
            },
            "send_lag_us": {
                "p50": s.send_lag.value_at_percentile(50.0),
                "p99": s.send_lag.value_at_percentile(99.0),
                "max": s.send_lag.max(),
            },
            "reconnects": s.reconnects,
            "unsent": s.unsent,
            "error_fraction": s.error_fraction(),
            "max_error_rate": plan.max_error_rate,
            "passed": s.passes(plan.max_error_rate),
        })
    }
}

/// The HdrHistogram percentile distribution text (values in ms), as wrk2's `--latency`
/// detailed spectrum and `HistogramLogAnalyzer`/the plotter expect.
pub fn percentile_spectrum(h: &Histogram<u64>) -> String {
    let mut o = String::new();
    let _ = writeln!(
        o,
        "{:>12} {:>14} {:>10} {:>14}\n",
        "Value", "Percentile", "TotalCount", "1/(1-Percentile)"
    );
    if !h.is_empty() {
        for v in h.iter_quantiles(5) {
            let q = v.quantile_iterated_to();
            let inv = if q < 1.0 {
                format!("{:>14.2}", 1.0 / (1.0 - q))
            } else {
                format!("{:>14}", "inf")
            };
            let _ = writeln!(
                o,
                "{:>12.3} {:>14.12} {:>10} {inv}",
                v.value_iterated_to() as f64 / 1000.0,
                q,
                v.count_since_last_iteration(),
            );
        }
    }
    let _ = writeln!(
        o,
        "#[Mean    = {:>12.3}, StdDeviation   = {:>12.3}]",
        h.mean() / 1000.0,
        h.stdev() / 1000.0
    );
    let _ = writeln!(
        o,
        "#[Max     = {:>12.3}, Total count    = {:>12}]",
        h.max() as f64 / 1000.0,
        h.len()
    );
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scales_units_for_humans() {
        assert_eq!(human_us(12.0), "12.00us");
        assert_eq!(human_us(1500.0), "1.50ms");
        assert_eq!(human_us(2_500_000.0), "2.50s");
        assert_eq!(human_bytes(512.0), "512.00B");
        assert_eq!(human_bytes(1536.0), "1.50KB");
        assert_eq!(human_duration(Duration::from_millis(1500)), "1.5s");
        assert_eq!(human_duration(Duration::from_millis(250)), "250ms");
    }

    #[test]
    fn spectrum_ends_at_the_max_with_the_total_count() {
        let mut h = super::super::stats::new_histogram();
        for v in 1..=1000 {
            h.record(v).unwrap();
        }
        let text = percentile_spectrum(&h);
        assert!(text.contains("Total count    =         1000"), "{text}");
        assert!(
            text.lines().any(|l| l.contains("1.000 1.000000000000")),
            "{text}"
        );
    }
}
