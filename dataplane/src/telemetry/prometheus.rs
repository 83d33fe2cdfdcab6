//! Rendering a [`MetricsSnapshot`] as Prometheus text exposition format 0.0.4.
//!
//! Every family gets `# HELP` and `# TYPE` lines; names carry the `ringway_` prefix; label values
//! are escaped (`\` → `\\`, `"` → `\"`, newline → `\n`). The upstream latency histogram is
//! rendered from the hdrhistogram into the fixed [`LATENCY_BUCKETS`] (cumulative, then `+Inf`),
//! with an exact `_sum` and `_count`. A value recorded into an hdrhistogram bucket that straddles
//! a bound counts as below it (error at most 0.1%, the histogram's precision).
//!
//! Request counts that are zero are left out (the matrix listener × cluster × class is mostly
//! empty); every other series is always present. Requests without a cluster carry
//! `cluster="none"`.
//!
//! This is the admin path: it allocates freely.

use std::fmt::Write;

use hdrhistogram::Histogram;

use super::{
    ErrorKind, ListenerMetrics, MetricsSnapshot, PolicyEvent, StatusClass, LATENCY_BUCKETS,
};

/// `Content-Type` of the rendered text.
pub const PROMETHEUS_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The `cluster` label value of requests answered without a cluster.
pub const NO_CLUSTER_LABEL: &str = "none";

/// Append `snapshot` in Prometheus text format 0.0.4 to `out`.
pub fn render_prometheus(snapshot: &MetricsSnapshot, out: &mut String) {
    render_requests(snapshot, out);
    render_listeners(snapshot, out);
    render_clusters(snapshot, out);
    render_latency(snapshot, out);
    render_errors(snapshot, out);
    render_policy(snapshot, out);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    super::security::render(&snapshot.security, &snapshot.certificates, now, out);
    snapshot.istio.render(out);
    super::access_log::render_counters(out);
    super::otlp::render_counters(out);
    render_reloads(out);
}

/// Config reloads (SIGHUP or `POST /reload`) applied, and rejected (the old config serves on).
pub static CONFIG_RELOADS_OK: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
pub static CONFIG_RELOADS_REJECTED: std::sync::atomic::AtomicU64 =
    std::sync::atomic::AtomicU64::new(0);

fn render_reloads(out: &mut String) {
    use std::sync::atomic::Ordering::Relaxed;
    let _ = writeln!(
        out,
        "# HELP ringway_config_reloads_total Config reloads (SIGHUP or POST /reload): applied, or rejected (the old config keeps serving).\n\
         # TYPE ringway_config_reloads_total counter\n\
         ringway_config_reloads_total{{result=\"ok\"}} {}\n\
         ringway_config_reloads_total{{result=\"rejected\"}} {}",
        CONFIG_RELOADS_OK.load(Relaxed),
        CONFIG_RELOADS_REJECTED.load(Relaxed)
    );
}

fn render_policy(s: &MetricsSnapshot, out: &mut String) {
    const NAME: &str = "ringway_policy_events_total";
    header(
        out,
        NAME,
        "counter",
        "What traffic policies did (retries, breaker rejections, ejections, rate limits, faults, mirrors), by cluster and event.",
    );
    let none = s.policy_none();
    for event in PolicyEvent::ALL {
        if none[event.index()] > 0 {
            sample(
                out,
                NAME,
                &[("cluster", "none"), ("event", event.as_str())],
                none[event.index()],
            );
        }
    }
    for c in s.clusters() {
        for event in PolicyEvent::ALL {
            let n = c.policy[event.index()];
            if n > 0 {
                sample(
                    out,
                    NAME,
                    &[("cluster", &c.name), ("event", event.as_str())],
                    n,
                );
            }
        }
    }
}

fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    // HELP text in this file is constant and holds no `\` or newline, so needs no escaping.
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

/// Append `value` escaped as a label value.
fn push_label_value(out: &mut String, value: &str) {
    for ch in value.chars() {
        match ch {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

/// Append `name{k1="v1",k2="v2"} value\n`.
fn sample(out: &mut String, name: &str, labels: &[(&str, &str)], value: impl std::fmt::Display) {
    out.push_str(name);
    if !labels.is_empty() {
        out.push('{');
        for (i, (key, value)) in labels.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            out.push_str(key);
            out.push_str("=\"");
            push_label_value(out, value);
            out.push('"');
        }
        out.push('}');
    }
    let _ = writeln!(out, " {value}");
}

fn render_requests(s: &MetricsSnapshot, out: &mut String) {
    const NAME: &str = "ringway_requests_total";
    header(
        out,
        NAME,
        "counter",
        "Downstream requests answered, by listener, cluster and status class.",
    );
    for (l, listener) in s.listeners().iter().enumerate() {
        let clusters = std::iter::once((None, NO_CLUSTER_LABEL)).chain(
            s.clusters()
                .iter()
                .enumerate()
                .map(|(c, m)| (Some(c), m.name.as_str())),
        );
        for (c, cluster_name) in clusters {
            let Some(counts) = s.requests(l, c) else {
                continue;
            };
            for (class, &count) in StatusClass::ALL.iter().zip(counts) {
                if count == 0 {
                    continue;
                }
                sample(
                    out,
                    NAME,
                    &[
                        ("listener", &listener.name),
                        ("cluster", cluster_name),
                        ("code_class", class.as_str()),
                    ],
                    count,
                );
            }
        }
    }
}

/// A per-listener family: name, type, help, value.
type ListenerFamily = (
    &'static str,
    &'static str,
    &'static str,
    fn(&ListenerMetrics) -> u64,
);

fn render_listeners(s: &MetricsSnapshot, out: &mut String) {
    let families: [ListenerFamily; 4] = [
        (
            "ringway_downstream_connections_total",
            "counter",
            "Downstream connections accepted.",
            |l| l.connections_opened,
        ),
        (
            "ringway_downstream_connections_active",
            "gauge",
            "Downstream connections open now.",
            |l| l.connections_active(),
        ),
        (
            "ringway_downstream_received_bytes_total",
            "counter",
            "Bytes read from downstream clients.",
            |l| l.bytes_received,
        ),
        (
            "ringway_downstream_sent_bytes_total",
            "counter",
            "Bytes written to downstream clients.",
            |l| l.bytes_sent,
        ),
    ];
    for (name, kind, help, value) in families {
        header(out, name, kind, help);
        for listener in s.listeners() {
            sample(out, name, &[("listener", &listener.name)], value(listener));
        }
    }
}

fn render_clusters(s: &MetricsSnapshot, out: &mut String) {
    const CONNECTS: &str = "ringway_upstream_connects_total";
    header(
        out,
        CONNECTS,
        "counter",
        "New upstream connections attempted, by cluster and result (ok, error).",
    );
    for c in s.clusters() {
        sample(
            out,
            CONNECTS,
            &[("cluster", &c.name), ("result", "ok")],
            c.upstream_connects_ok,
        );
        sample(
            out,
            CONNECTS,
            &[("cluster", &c.name), ("result", "error")],
            c.upstream_connects_failed,
        );
    }
    const REUSES: &str = "ringway_upstream_pool_reuses_total";
    header(
        out,
        REUSES,
        "counter",
        "Upstream requests sent on a reused pooled connection.",
    );
    for c in s.clusters() {
        sample(out, REUSES, &[("cluster", &c.name)], c.upstream_pool_reuses);
    }
    const SENT: &str = "ringway_upstream_sent_bytes_total";
    header(
        out,
        SENT,
        "counter",
        "Bytes written to endpoints of a cluster.",
    );
    for c in s.clusters() {
        sample(out, SENT, &[("cluster", &c.name)], c.upstream_bytes_sent);
    }
    const RECEIVED: &str = "ringway_upstream_received_bytes_total";
    header(
        out,
        RECEIVED,
        "counter",
        "Bytes read from endpoints of a cluster.",
    );
    for c in s.clusters() {
        sample(
            out,
            RECEIVED,
            &[("cluster", &c.name)],
            c.upstream_bytes_received,
        );
    }
}

/// Cumulative counts of `h` at each bound of [`LATENCY_BUCKETS`].
pub(crate) fn cumulative_buckets(h: &Histogram<u64>) -> [u64; LATENCY_BUCKETS.len()] {
    let mut per_bucket = [0u64; LATENCY_BUCKETS.len()];
    for v in h.iter_recorded() {
        let low = h.lowest_equivalent(v.value_iterated_to());
        if let Some(i) = LATENCY_BUCKETS.iter().position(|&(bound, _)| low <= bound) {
            if let Some(b) = per_bucket.get_mut(i) {
                *b = b.saturating_add(v.count_at_value());
            }
        }
    }
    let mut running = 0u64;
    for b in per_bucket.iter_mut() {
        running = running.saturating_add(*b);
        *b = running;
    }
    per_bucket
}

fn render_latency(s: &MetricsSnapshot, out: &mut String) {
    const NAME: &str = "ringway_upstream_latency_seconds";
    const BUCKET: &str = "ringway_upstream_latency_seconds_bucket";
    header(
        out,
        NAME,
        "histogram",
        "Upstream latency by cluster, from request sent to response head received.",
    );
    for c in s.clusters() {
        let cumulative = cumulative_buckets(&c.latency);
        for (&(_, le), count) in LATENCY_BUCKETS.iter().zip(cumulative) {
            sample(out, BUCKET, &[("cluster", &c.name), ("le", le)], count);
        }
        let total = c.latency.len();
        sample(out, BUCKET, &[("cluster", &c.name), ("le", "+Inf")], total);
        // `as f64` is exact below 2^53 µs (285 years of summed latency).
        let sum_seconds = c.latency_sum_us as f64 / 1e6;
        sample(
            out,
            "ringway_upstream_latency_seconds_sum",
            &[("cluster", &c.name)],
            sum_seconds,
        );
        sample(
            out,
            "ringway_upstream_latency_seconds_count",
            &[("cluster", &c.name)],
            total,
        );
    }
}

fn render_errors(s: &MetricsSnapshot, out: &mut String) {
    const NAME: &str = "ringway_proxy_errors_total";
    header(
        out,
        NAME,
        "counter",
        "Requests the proxy failed or refused, by kind.",
    );
    for kind in ErrorKind::ALL {
        sample(out, NAME, &[("kind", kind.as_str())], s.error_count(kind));
    }
}
