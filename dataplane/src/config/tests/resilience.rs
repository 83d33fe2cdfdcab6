//! Cluster resilience rules (`when_all_unhealthy`, `[clusters.circuit_breaker]`,
//! `[clusters.health_check]`, `[clusters.outlier_detection]`): one failing case per rule with
//! its message and line. Values, defaults and round trips are in `policy`.

use super::policy::{check_all, parse_ok, with_table};
use super::MINIMAL;

#[test]
fn cluster_resilience_rules() {
    let hc = |body: &str| with_table("clusters.health_check", body);
    let od = |body: &str| with_table("clusters.outlier_detection", body);
    let cb = |body: &str| with_table("clusters.circuit_breaker", body);
    check_all(&[
        (format!("{MINIMAL}when_all_unhealthy = \"panic\"\n"), 9, "clusters[0].when_all_unhealthy: \"panic\": expected \"fail_open\" or \"reject\""),
        (cb("max_connections = 0\n"), 11, "circuit_breaker.max_connections: must be between 1 and 1000000, got 0"),
        (cb("max_pending_requests = 1000001\n"), 11, "circuit_breaker.max_pending_requests: must be between 1 and 1000000"),
        (cb("max_requests = -5\n"), 11, "circuit_breaker.max_requests: must be between 1 and 1000000, got -5"),
        (hc("path = \"healthz\"\n"), 11, "health_check.path: \"healthz\" must start with '/'"),
        (hc("path = \"/a b\"\n"), 11, "health_check.path: \"/a b\" contains ' '; a probe path is visible ASCII without '#'"),
        (hc("path = \"/#x\"\n"), 11, "contains '#'"),
        (hc("path = \"/\"\nhost = \"bad host\"\n"), 12, "health_check.host: \"bad host\" is not a valid host"),
        (hc("path = \"/\"\nhost = \"a:0\"\n"), 12, "is not a valid host"),
        (hc("path = \"/\"\nhost = \"[::1\"\n"), 12, "is not a valid host"),
        (hc("path = \"/\"\ninterval = \"99ms\"\n"), 12, "health_check.interval: must be at least 100ms"),
        (hc("path = \"/\"\ninterval = \"1s\"\ntimeout = \"2s\"\n"), 13, "health_check.timeout: must be at most interval (1s), got 2s"),
        (hc("path = \"/\"\ntimeout = \"0s\"\n"), 12, "health_check.timeout: must be greater than zero"),
        (hc("path = \"/\"\nhealthy_threshold = 0\n"), 12, "health_check.healthy_threshold: must be between 1 and 100, got 0"),
        (hc("path = \"/\"\nunhealthy_threshold = 101\n"), 12, "health_check.unhealthy_threshold: must be between 1 and 100, got 101"),
        (od("consecutive_5xx = -1\n"), 11, "outlier_detection.consecutive_5xx: must be between 0 and 10000, got -1"),
        (od("consecutive_gateway_failure = 10001\n"), 11, "outlier_detection.consecutive_gateway_failure: must be between 0 and 10000"),
        (od("base_ejection_time = \"0s\"\n"), 11, "outlier_detection.base_ejection_time: must be greater than zero"),
        (od("base_ejection_time = \"1m\"\nmax_ejection_time = \"30s\"\n"), 12, "outlier_detection.max_ejection_time: must be at least base_ejection_time (1m), got 30s"),
        (od("max_ejection_percent = 101\n"), 11, "outlier_detection.max_ejection_percent: must be between 0 and 100, got 101"),
    ]);
    for host in [
        "example.com",
        "a_b.internal:80",
        "10.0.0.1",
        "10.0.0.1:65535",
        "[::1]",
        "[fd00::1]:8080",
    ] {
        let cfg = parse_ok(&hc(&format!("path = \"/\"\nhost = \"{host}\"\n")));
        let got = cfg.clusters[0]
            .resilience
            .health_check
            .clone()
            .unwrap()
            .host;
        assert_eq!(got.as_deref(), Some(host), "{host}");
    }
}
