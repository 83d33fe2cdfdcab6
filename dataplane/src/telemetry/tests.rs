//! Tests of the metrics shard, snapshot merge and Prometheus rendering.

use std::collections::BTreeMap;
use std::time::Duration;

use super::prometheus::cumulative_buckets;
use super::*;

fn names(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

fn shard() -> MetricsShard {
    MetricsShard::new(&names(&["edge", "internal"]), &names(&["web", "api"]))
}

/// One parsed sample line: `name{labels} value`.
#[derive(Debug)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

/// A strict checker of the subset of the text format we emit. Returns every sample; fails on
/// any line that is neither `# HELP`/`# TYPE` nor `name{k="v",...} value`.
fn parse_exposition(text: &str) -> Result<Vec<Sample>, String> {
    let valid_name = |n: &str| {
        !n.is_empty()
            && n.chars().enumerate().all(|(i, c)| {
                c.is_ascii_alphabetic() || c == '_' || c == ':' || (i > 0 && c.is_ascii_digit())
            })
    };
    let mut samples = Vec::new();
    let mut typed: BTreeMap<String, String> = BTreeMap::new();
    if !text.ends_with('\n') {
        return Err("no trailing newline".into());
    }
    for (n, line) in text.lines().enumerate() {
        let err = |why: &str| format!("line {}: {why}: {line:?}", n + 1);
        if let Some(rest) = line.strip_prefix("# ") {
            let mut parts = rest.splitn(3, ' ');
            let (Some(word), Some(name), Some(tail)) = (parts.next(), parts.next(), parts.next())
            else {
                return Err(err("short comment"));
            };
            if !valid_name(name) {
                return Err(err("bad name in comment"));
            }
            match word {
                "HELP" => {}
                "TYPE" => {
                    if !["counter", "gauge", "histogram", "summary", "untyped"].contains(&tail) {
                        return Err(err("bad type"));
                    }
                    if typed.insert(name.to_string(), tail.to_string()).is_some() {
                        return Err(err("duplicate TYPE"));
                    }
                }
                _ => return Err(err("unknown comment")),
            }
            continue;
        }
        if line.is_empty() || line.starts_with('#') {
            return Err(err("unexpected line"));
        }
        let name_end = line.find(['{', ' ']).ok_or_else(|| err("no value"))?;
        let name = &line[..name_end];
        if !valid_name(name) || !name.starts_with("ringway_") {
            return Err(err("bad metric name"));
        }
        let mut labels = BTreeMap::new();
        let mut rest = &line[name_end..];
        if let Some(mut l) = rest.strip_prefix('{') {
            loop {
                let eq = l.find("=\"").ok_or_else(|| err("label without value"))?;
                let key = &l[..eq];
                if !valid_name(key) {
                    return Err(err("bad label name"));
                }
                l = &l[eq + 2..];
                let mut value = String::new();
                let mut chars = l.char_indices();
                let end = loop {
                    match chars.next() {
                        Some((_, '\\')) => match chars.next() {
                            Some((_, '\\')) => value.push('\\'),
                            Some((_, '"')) => value.push('"'),
                            Some((_, 'n')) => value.push('\n'),
                            _ => return Err(err("bad escape")),
                        },
                        Some((i, '"')) => break i,
                        Some((_, c)) => value.push(c),
                        None => return Err(err("unterminated label value")),
                    }
                };
                labels.insert(key.to_string(), value);
                l = &l[end + 1..];
                if let Some(next) = l.strip_prefix(',') {
                    l = next;
                } else if let Some(next) = l.strip_prefix('}') {
                    rest = next;
                    break;
                } else {
                    return Err(err("bad label separator"));
                }
            }
        }
        let value = rest
            .strip_prefix(' ')
            .ok_or_else(|| err("no space before value"))?;
        let value: f64 = match value {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            "NaN" => f64::NAN,
            v => v.parse().map_err(|_| err("bad value"))?,
        };
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| {
                name.strip_suffix(s)
                    .filter(|f| typed.get(*f).is_some_and(|t| t == "histogram"))
            })
            .unwrap_or(name);
        if !typed.contains_key(family) {
            return Err(err("sample before its TYPE"));
        }
        samples.push(Sample {
            name: name.to_string(),
            labels,
            value,
        });
    }
    Ok(samples)
}

fn find<'a>(samples: &'a [Sample], name: &str, labels: &[(&str, &str)]) -> Option<&'a Sample> {
    samples.iter().find(|s| {
        s.name == name
            && labels
                .iter()
                .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
    })
}

#[test]
fn latency_histogram_bounds_are_valid() {
    let h = new_latency_histogram();
    assert_eq!(h.low(), LATENCY_LOWEST_US);
    assert!(h.high() >= LATENCY_HIGHEST_US);
    assert!(!h.is_auto_resize());
}

#[test]
fn status_classes_cover_all_codes() {
    assert_eq!(StatusClass::of(100), StatusClass::Informational);
    assert_eq!(StatusClass::of(204), StatusClass::Success);
    assert_eq!(StatusClass::of(399), StatusClass::Redirection);
    assert_eq!(StatusClass::of(404), StatusClass::ClientError);
    assert_eq!(StatusClass::of(503), StatusClass::ServerError);
    assert_eq!(StatusClass::of(0), StatusClass::Other);
    assert_eq!(StatusClass::of(999), StatusClass::Other);
    for (i, c) in StatusClass::ALL.iter().enumerate() {
        assert_eq!(c.index(), i);
    }
    for (i, k) in ErrorKind::ALL.iter().enumerate() {
        assert_eq!(k.index(), i);
    }
}

#[test]
fn shard_counts_requests_by_listener_cluster_and_class() {
    let s = shard();
    s.request_done(0, Some(0), 200, Some(Duration::from_millis(3)));
    s.request_done(0, Some(0), 201, None);
    s.request_done(0, Some(1), 502, Some(Duration::from_micros(10)));
    s.request_done(1, None, 404, None);
    let snap = s.snapshot();
    assert_eq!(
        snap.request_count("edge", Some("web"), StatusClass::Success),
        2
    );
    assert_eq!(
        snap.request_count("edge", Some("api"), StatusClass::ServerError),
        1
    );
    assert_eq!(
        snap.request_count("internal", None, StatusClass::ClientError),
        1
    );
    assert_eq!(
        snap.request_count("edge", None, StatusClass::ClientError),
        0
    );
    let web = &snap.clusters()[0];
    assert_eq!(web.latency.len(), 1);
    assert_eq!(web.latency_sum_us, 3000);
    assert_eq!(snap.clusters()[1].latency.len(), 1);
}

#[test]
fn shard_ignores_out_of_range_indices_in_release() {
    // In debug builds an out-of-range index is a caller bug caught by debug_assert.
    if cfg!(debug_assertions) {
        return;
    }
    let s = shard();
    s.request_done(7, Some(0), 200, None);
    s.request_done(0, Some(9), 200, Some(Duration::from_secs(1)));
    s.connection_opened(5);
    s.upstream_connect(5, true);
    let snap = s.snapshot();
    assert_eq!(
        snap.request_count("edge", Some("web"), StatusClass::Success),
        0
    );
}

#[test]
fn latency_beyond_histogram_range_saturates() {
    let s = shard();
    s.request_done(0, Some(0), 200, Some(Duration::from_secs(3600)));
    s.request_done(0, Some(0), 200, Some(Duration::ZERO));
    let snap = s.snapshot();
    let h = &snap.clusters()[0].latency;
    assert_eq!(h.len(), 2);
    assert!(h.max() >= LATENCY_HIGHEST_US);
}

#[test]
fn merge_adds_counts_of_two_shards() {
    let a = shard();
    let b = shard();
    for _ in 0..3 {
        a.request_done(0, Some(0), 200, Some(Duration::from_millis(1)));
    }
    b.request_done(0, Some(0), 200, Some(Duration::from_millis(20)));
    b.request_done(1, Some(1), 503, None);
    a.connection_opened(0);
    a.connection_opened(0);
    b.connection_opened(0);
    b.connection_closed(0);
    a.bytes_received(1, 100);
    b.bytes_received(1, 23);
    b.bytes_sent(0, 7);
    a.upstream_connect(1, true);
    b.upstream_connect(1, false);
    b.upstream_pool_reuse(0);
    a.proxy_error(ErrorKind::NoRoute);
    b.proxy_error(ErrorKind::NoRoute);
    b.proxy_error(ErrorKind::UpstreamTimeout);

    let mut total = MetricsSnapshot::default();
    total.merge(&a.snapshot());
    total.merge(&b.snapshot());

    assert_eq!(
        total.request_count("edge", Some("web"), StatusClass::Success),
        4
    );
    assert_eq!(
        total.request_count("internal", Some("api"), StatusClass::ServerError),
        1
    );
    let edge = &total.listeners()[0];
    assert_eq!(edge.connections_opened, 3);
    assert_eq!(edge.connections_active(), 2);
    assert_eq!(edge.bytes_sent, 7);
    assert_eq!(total.listeners()[1].bytes_received, 123);
    let api = &total.clusters()[1];
    assert_eq!(
        (api.upstream_connects_ok, api.upstream_connects_failed),
        (1, 1)
    );
    assert_eq!(total.clusters()[0].upstream_pool_reuses, 1);
    assert_eq!(total.clusters()[0].latency.len(), 4);
    assert_eq!(total.clusters()[0].latency_sum_us, 23_000);
    assert_eq!(total.error_count(ErrorKind::NoRoute), 2);
    assert_eq!(total.error_count(ErrorKind::UpstreamTimeout), 1);
}

#[test]
fn merge_matches_by_name_across_config_generations() {
    let old = MetricsShard::new(&names(&["edge"]), &names(&["web", "legacy"]));
    let new = MetricsShard::new(&names(&["admin-ish", "edge"]), &names(&["api", "web"]));
    old.request_done(0, Some(0), 200, None);
    old.request_done(0, Some(1), 500, None);
    old.request_done(0, None, 404, None);
    new.request_done(1, Some(1), 200, None);
    new.request_done(1, Some(0), 200, None);
    new.request_done(0, None, 404, None);

    let mut total = old.snapshot();
    total.merge(&new.snapshot());
    assert_eq!(
        total.request_count("edge", Some("web"), StatusClass::Success),
        2
    );
    assert_eq!(
        total.request_count("edge", Some("legacy"), StatusClass::ServerError),
        1
    );
    assert_eq!(
        total.request_count("edge", Some("api"), StatusClass::Success),
        1
    );
    assert_eq!(
        total.request_count("edge", None, StatusClass::ClientError),
        1
    );
    assert_eq!(
        total.request_count("admin-ish", None, StatusClass::ClientError),
        1
    );
    assert_eq!(total.listeners().len(), 2);
    assert_eq!(total.clusters().len(), 3);
}

#[test]
fn render_output_parses_line_by_line() {
    let s = MetricsShard::new(&names(&["edge", "we\"ird\\name\nx"]), &names(&["web"]));
    s.request_done(0, Some(0), 200, Some(Duration::from_micros(700)));
    s.request_done(1, None, 400, None);
    s.connection_opened(1);
    s.proxy_error(ErrorKind::BadRequest);
    let mut out = String::new();
    render_prometheus(&s.snapshot(), &mut out);
    let samples = parse_exposition(&out).unwrap_or_else(|e| panic!("{e}\n{out}"));

    let ok = find(
        &samples,
        "ringway_requests_total",
        &[
            ("listener", "edge"),
            ("cluster", "web"),
            ("code_class", "2xx"),
        ],
    )
    .expect("2xx sample");
    assert_eq!(ok.value, 1.0);
    let weird = find(
        &samples,
        "ringway_requests_total",
        &[
            ("listener", "we\"ird\\name\nx"),
            ("cluster", "none"),
            ("code_class", "4xx"),
        ],
    )
    .expect("escaped label round-trips");
    assert_eq!(weird.value, 1.0);
    assert!(out.contains(r#"listener="we\"ird\\name\nx""#));
    let active = find(
        &samples,
        "ringway_downstream_connections_active",
        &[("listener", "we\"ird\\name\nx")],
    )
    .expect("active gauge");
    assert_eq!(active.value, 1.0);
    let err = find(
        &samples,
        "ringway_proxy_errors_total",
        &[("kind", "bad_request")],
    )
    .expect("error counter");
    assert_eq!(err.value, 1.0);
    let sum = find(
        &samples,
        "ringway_upstream_latency_seconds_sum",
        &[("cluster", "web")],
    )
    .expect("sum");
    assert!((sum.value - 0.0007).abs() < 1e-12);
}

#[test]
fn parser_rejects_malformed_lines() {
    assert!(parse_exposition("# TYPE ringway_x counter\nringway_x 1\n").is_ok());
    assert!(parse_exposition("ringway_x 1\n").is_err());
    assert!(parse_exposition("# TYPE ringway_x counter\nringway_x{a=\"b} 1\n").is_err());
    assert!(parse_exposition("# TYPE ringway_x counter\nringway_x{a=\"b\"}1\n").is_err());
    assert!(parse_exposition("# TYPE ringway_x counter\nringway_x one\n").is_err());
}

#[test]
fn histogram_buckets_are_cumulative_and_monotone() {
    let s = shard();
    let latencies_us = [
        1u64, 400, 500, 501, 999, 1_000, 2_400, 7_000, 25_000, 26_000, 90_000, 400_000, 999_000,
        2_000_000, 4_000_000, 9_000_000, 30_000_000, 59_000_000,
    ];
    for &us in &latencies_us {
        s.request_done(0, Some(1), 200, Some(Duration::from_micros(us)));
    }
    let snap = s.snapshot();
    let cumulative = cumulative_buckets(&snap.clusters()[1].latency);
    for (i, &(bound, _)) in LATENCY_BUCKETS.iter().enumerate() {
        let expected = latencies_us.iter().filter(|&&v| v <= bound).count() as u64;
        assert_eq!(cumulative[i], expected, "bucket le={bound}us");
    }

    let mut out = String::new();
    render_prometheus(&snap, &mut out);
    let samples = parse_exposition(&out).unwrap_or_else(|e| panic!("{e}\n{out}"));
    let buckets: Vec<&Sample> = samples
        .iter()
        .filter(|s| {
            s.name == "ringway_upstream_latency_seconds_bucket"
                && s.labels.get("cluster").map(String::as_str) == Some("api")
        })
        .collect();
    assert_eq!(buckets.len(), LATENCY_BUCKETS.len() + 1);
    let mut last_le = f64::NEG_INFINITY;
    let mut last_count = 0.0;
    for b in &buckets {
        let le = b.labels.get("le").expect("le label");
        let le: f64 = if le == "+Inf" {
            f64::INFINITY
        } else {
            le.parse().expect("le")
        };
        assert!(le > last_le, "le ascending");
        assert!(b.value >= last_count, "cumulative counts never drop");
        last_le = le;
        last_count = b.value;
    }
    assert_eq!(last_le, f64::INFINITY);
    assert_eq!(last_count, latencies_us.len() as f64);
    let count = find(
        &samples,
        "ringway_upstream_latency_seconds_count",
        &[("cluster", "api")],
    )
    .expect("count");
    assert_eq!(count.value, last_count);
    let sum = find(
        &samples,
        "ringway_upstream_latency_seconds_sum",
        &[("cluster", "api")],
    )
    .expect("sum");
    let exact: u64 = latencies_us.iter().sum();
    assert!((sum.value - exact as f64 / 1e6).abs() < 1e-6);
}

#[test]
fn empty_snapshot_renders_headers_only_and_parses() {
    let mut out = String::new();
    render_prometheus(&MetricsSnapshot::default(), &mut out);
    let samples = parse_exposition(&out).expect("parses");
    // The error kinds and the two results of `ringway_tls_reloads_total` and of
    // `ringway_config_reloads_total` are always present.
    assert_eq!(samples.len(), ErrorKind::COUNT + 4);
}

#[test]
fn snapshot_is_send() {
    fn assert_send<T: Send + 'static>() {}
    assert_send::<MetricsSnapshot>();
}
