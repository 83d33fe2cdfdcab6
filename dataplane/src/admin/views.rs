//! Bodies of the admin's read-only views: `/stats` (text and JSON, derived from the Prometheus
//! rendering so both always agree), `/clusters` (merged and per core), `/certs`, and the
//! dashboard page (`dashboard.html`, plain HTML and JS with no outside resources).
//!
//! Invariant: nothing here fails on odd input; a line that does not parse as a sample is
//! skipped.

use std::fmt::Write as _;

use serde_json::{json, Map, Value};

use crate::cluster::status::{merge, ClusterStatus};
use crate::telemetry::CertExpiry;

/// `GET /`: the live dashboard.
pub const DASHBOARD: &str = include_str!("dashboard.html");

/// One Prometheus sample: name, labels in order, value text.
struct Sample<'a> {
    name: &'a str,
    labels: Vec<(&'a str, String)>,
    value: &'a str,
}

/// Parses `name{a="x",b="y"} value` (label values unescaped); `None` for comments.
fn sample(line: &str) -> Option<Sample<'_>> {
    if line.starts_with('#') || line.is_empty() {
        return None;
    }
    let (series, value) = line.rsplit_once(' ')?;
    let Some(open) = series.find('{') else {
        return Some(Sample {
            name: series,
            labels: Vec::new(),
            value,
        });
    };
    let name = &series[..open];
    let body = series.get(open + 1..series.len().checked_sub(1)?)?;
    let mut labels = Vec::new();
    let mut rest = body;
    while !rest.is_empty() {
        let eq = rest.find("=\"")?;
        let key = &rest[..eq];
        let mut val = String::new();
        let mut chars = rest[eq + 2..].char_indices();
        let mut end = None;
        while let Some((i, c)) = chars.next() {
            match c {
                '\\' => match chars.next() {
                    Some((_, 'n')) => val.push('\n'),
                    Some((_, c)) => val.push(c),
                    None => return None,
                },
                '"' => {
                    end = Some(eq + 2 + i + 1);
                    break;
                }
                c => val.push(c),
            }
        }
        labels.push((key, val));
        rest = rest.get(end?..)?.trim_start_matches(',');
    }
    Some(Sample {
        name,
        labels,
        value,
    })
}

/// `/stats`: `name{labels}: value`, one per line (Envoy's `/stats` layout).
pub fn stats_text(prometheus: &str) -> String {
    let mut out = String::with_capacity(prometheus.len());
    for line in prometheus.lines() {
        if let Some(s) = sample(line) {
            let series = &line[..line.len() - s.value.len() - 1];
            let _ = writeln!(out, "{series}: {}", s.value);
        }
    }
    out
}

/// `/stats?format=json`: `{"time_ms":..,"stats":[{"name":..,"labels":{..},"value":..}]}`
/// (`time_ms`: the admin's clock at the scrape, so rates need no client clock).
pub fn stats_json(prometheus: &str) -> String {
    let stats: Vec<Value> = prometheus
        .lines()
        .filter_map(sample)
        .map(|s| {
            let labels: Map<String, Value> = s
                .labels
                .into_iter()
                .map(|(k, v)| (k.to_string(), Value::String(v)))
                .collect();
            let value = s
                .value
                .parse::<f64>()
                .ok()
                .and_then(|v| serde_json::Number::from_f64(v).map(Value::Number))
                .unwrap_or(Value::Null);
            json!({"name": s.name, "labels": labels, "value": value})
        })
        .collect();
    let time_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    json!({ "time_ms": time_ms, "stats": stats }).to_string()
}

/// `/clusters?format=json`: merged, then by core.
pub fn clusters_json(cores: &[Vec<ClusterStatus>]) -> String {
    json!({ "clusters": merge(cores), "cores": cores }).to_string()
}

/// `/clusters` as text: `cluster::address::stat::value` lines (Envoy's layout), merged, then
/// per core under `core N` headings.
pub fn clusters_text(cores: &[Vec<ClusterStatus>]) -> String {
    let mut out = String::new();
    write_clusters(&mut out, &merge(cores));
    for (i, core) in cores.iter().enumerate() {
        let _ = writeln!(out, "\ncore {i}");
        write_clusters(&mut out, core);
    }
    out
}

fn write_clusters(out: &mut String, clusters: &[ClusterStatus]) {
    for c in clusters {
        for e in &c.endpoints {
            let flags = match (e.healthy, e.ejected) {
                (true, false) => "healthy",
                (false, false) => "/failed_active_hc",
                (true, true) => "/failed_outlier_check",
                (false, true) => "/failed_active_hc/failed_outlier_check",
            };
            let p = format!("{}::{}", c.name, e.address);
            let _ = writeln!(out, "{p}::health_flags::{flags}");
            let _ = writeln!(out, "{p}::rq_active::{}", e.in_flight);
            let _ = writeln!(out, "{p}::cx_idle::{}", e.idle_connections);
            let _ = writeln!(out, "{p}::rq_total::{}", e.requests);
            let _ = writeln!(out, "{p}::rq_error::{}", e.failures);
        }
    }
}

/// `/certs`: every loaded certificate with its expiry, soonest first.
pub fn certs_json(certs: &[CertExpiry], now: i64) -> String {
    let mut certs: Vec<&CertExpiry> = certs.iter().collect();
    certs.sort_by_key(|c| c.not_after);
    let list: Vec<Value> = certs
        .iter()
        .map(|c| {
            json!({
                "owner": c.owner,
                "file": c.file,
                "name": c.name,
                "not_after_unix": c.not_after,
                "expires_in_seconds": c.not_after - now,
            })
        })
        .collect();
    json!({ "certificates": list }).to_string()
}

/// Seconds since the Unix epoch.
pub fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::status::EndpointStatus;

    #[test]
    fn samples_parse_with_escapes_and_skip_comments() {
        let prom = "# HELP x y\n# TYPE x counter\nx_total{a=\"q\\\"uote\",b=\"n\\nl\"} 3\nup 1\n";
        let json: Value = serde_json::from_str(&stats_json(prom)).unwrap();
        assert_eq!(json["stats"][0]["name"], "x_total");
        assert_eq!(json["stats"][0]["labels"]["a"], "q\"uote");
        assert_eq!(json["stats"][0]["labels"]["b"], "n\nl");
        assert_eq!(json["stats"][0]["value"], 3.0);
        assert_eq!(json["stats"][1]["name"], "up");
        assert_eq!(
            stats_text(prom),
            "x_total{a=\"q\\\"uote\",b=\"n\\nl\"}: 3\nup: 1\n"
        );
    }

    fn ep(addr: &str, healthy: bool, ejected: bool, requests: u64) -> EndpointStatus {
        EndpointStatus {
            address: addr.into(),
            healthy,
            ejected,
            ejected_cores: u32::from(ejected),
            in_flight: 1,
            idle_connections: 2,
            requests,
            failures: 0,
        }
    }

    #[test]
    fn clusters_merge_across_cores() {
        let core = |ejected| {
            vec![ClusterStatus {
                name: "web".into(),
                endpoints: vec![ep("10.0.0.1:80", true, ejected, 5)],
            }]
        };
        let cores = vec![core(false), core(true)];
        let merged = merge(&cores);
        let e = &merged[0].endpoints[0];
        assert_eq!((e.requests, e.in_flight, e.idle_connections), (10, 2, 4));
        assert!(e.ejected && e.healthy);
        assert_eq!(e.ejected_cores, 1);
        let text = clusters_text(&cores);
        assert!(text.starts_with("web::10.0.0.1:80::health_flags::/failed_outlier_check\n"));
        assert!(text.contains("web::10.0.0.1:80::rq_total::10\n"));
        assert!(text.contains("\ncore 1\n"));
        let json: Value = serde_json::from_str(&clusters_json(&cores)).unwrap();
        assert_eq!(json["clusters"][0]["endpoints"][0]["requests"], 10);
        assert_eq!(json["cores"][0][0]["endpoints"][0]["ejected"], false);
    }
}
