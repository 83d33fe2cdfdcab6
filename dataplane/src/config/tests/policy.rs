//! Route policies (`[listeners.routes.retry|rate_limit|fault|mirror|headers]`,
//! `per_try_timeout`) and cluster resilience (`when_all_unhealthy`,
//! `[clusters.circuit_breaker|health_check|outlier_detection]`): values, defaults, one failing
//! case per rule with its message and line, and round trips.

use std::time::Duration;

use super::{assert_error, assert_round_trip, errors_of, MINIMAL};
use crate::config::*;

/// A second cluster, `s`, for mirrors and splits.
const SHADOW: &str = "[[clusters]]\nname = \"s\"\nendpoints = [\"127.0.0.1:2\"]\n";

/// `MINIMAL` (8 lines) + a blank line + a route header on line 10; `body` starts on line 11.
pub(super) fn with_route(body: &str) -> String {
    format!("{MINIMAL}\n  [[listeners.routes]]\n{body}")
}

/// Like [`with_route`], with the cluster `s` defined before the route (lines 9-11); the
/// route header is on line 13 and `body` starts on line 14.
fn with_route_and_shadow(body: &str) -> String {
    format!("{MINIMAL}{SHADOW}\n  [[listeners.routes]]\n{body}")
}

/// `MINIMAL` + a blank line + `[table]` on line 10 (belonging to cluster `c`); `body` from 11.
pub(super) fn with_table(table: &str, body: &str) -> String {
    format!("{MINIMAL}\n[{table}]\n{body}")
}

#[track_caller]
pub(super) fn check_all(cases: &[(String, usize, &str)]) {
    for (text, line, needle) in cases {
        assert_error(text, *line, needle);
    }
}

#[track_caller]
pub(super) fn parse_ok(text: &str) -> Config {
    parse(text).unwrap_or_else(|e| panic!("{e}\n{text}"))
}

/// Every policy key, set away from its default.
pub(super) const FULL: &str = r#"[[listeners]]
name = "l"
bind = "127.0.0.1:8080"

  [[listeners.routes]]
  match = { path_prefix = "/api/" }
  cluster = "api"
  timeout = "5s"
  per_try_timeout = "1s"

    [listeners.routes.retry]
    retry_on = ["connect-failure", "reset", "gateway-error", "5xx", "retriable-status-codes"]
    retriable_status_codes = [503, 409]
    attempts = 3
    backoff_base = "10ms"
    backoff_max = "1s"
    replay_buffer_bytes = 1024
    budget_percent = 50
    min_retries_per_second = 3
    budget_window = "30s"

    [listeners.routes.rate_limit]
    requests_per_second = 100
    burst = 50

    [listeners.routes.fault]
    delay = "100ms"
    delay_percent = 10
    abort_status = 503
    abort_percent = 5.5

    [listeners.routes.mirror]
    cluster = "shadow"
    percent = 0.0001

    [listeners.routes.headers]
    request_add = { "X-A" = "1" }
    request_set = { "x-b" = "2 3" }
    request_remove = ["x-c", "X-Aa"]
    response_add = { "x-d" = "" }
    response_set = { "x-e" = "4" }
    response_remove = ["server"]
    path_prefix_rewrite = "/v2/"

  [[listeners.routes]]
  match = { path_prefix = "/ping" }
  direct = { status = 200, body = "pong" }

    [listeners.routes.rate_limit]
    requests_per_second = 10

    [listeners.routes.fault]
    abort_status = 500

    [listeners.routes.headers]
    response_set = { "cache-control" = "no-store" }

[[clusters]]
name = "api"
endpoints = ["127.0.0.1:9000"]
when_all_unhealthy = "reject"

  [clusters.circuit_breaker]
  max_connections = 10
  max_pending_requests = 20
  max_requests = 30

  [clusters.health_check]
  path = "/healthz?deep=1"
  host = "API.internal:8080"
  interval = "2s"
  timeout = "500ms"
  healthy_threshold = 1
  unhealthy_threshold = 100

  [clusters.outlier_detection]
  consecutive_5xx = 0
  consecutive_gateway_failure = 7
  base_ejection_time = "10s"
  max_ejection_time = "1m"
  max_ejection_percent = 100

[[clusters]]
name = "shadow"
endpoints = ["127.0.0.1:9001"]
"#;

#[test]
fn every_policy_key_parses_to_its_value() {
    let cfg = parse_ok(FULL);
    let r = &cfg.listeners[0].routes[0];
    let p = &r.policy;
    assert_eq!(p.per_try_timeout, Some(Duration::from_secs(1)));
    assert_eq!(
        p.retry,
        Some(RetryPolicy {
            retry_on: RetryOn {
                connect_failure: true,
                reset: true,
                gateway_error: true,
                server_error: true,
                retriable_status_codes: true,
            },
            retriable_status_codes: vec![409, 503],
            attempts: 3,
            backoff_base: Duration::from_millis(10),
            backoff_max: Duration::from_secs(1),
            replay_buffer_bytes: 1024,
            budget_percent: 50,
            min_retries_per_second: 3,
            budget_window: Duration::from_secs(30),
        })
    );
    assert_eq!(
        p.rate_limit,
        Some(RateLimit {
            requests_per_second: 100,
            burst: 50
        })
    );
    assert_eq!(
        p.fault,
        Some(FaultPolicy {
            delay: Some(Duration::from_millis(100)),
            delay_percent: Percent(100_000),
            abort_status: Some(503),
            abort_percent: Percent(55_000),
        })
    );
    assert_eq!(
        p.mirror,
        Some(MirrorPolicy {
            cluster: ClusterId(1),
            percent: Percent(1)
        })
    );
    let s = |a: &str, b: &str| (a.to_string(), b.to_string());
    assert_eq!(
        p.headers,
        Some(HeaderPolicy {
            request_add: vec![s("x-a", "1")],
            request_set: vec![s("x-b", "2 3")],
            request_remove: vec!["x-aa".into(), "x-c".into()],
            response_add: vec![s("x-d", "")],
            response_set: vec![s("x-e", "4")],
            response_remove: vec!["server".into()],
            path_prefix_rewrite: Some("/v2/".into()),
        })
    );

    let direct = &cfg.listeners[0].routes[1].policy;
    assert_eq!(
        direct.rate_limit,
        Some(RateLimit {
            requests_per_second: 10,
            burst: 10
        })
    );
    assert_eq!(
        direct.fault,
        Some(FaultPolicy {
            delay: None,
            delay_percent: Percent(0),
            abort_status: Some(500),
            abort_percent: Percent::ALL,
        })
    );
    assert_eq!(
        direct.headers.as_ref().map(|h| h.response_set.clone()),
        Some(vec![s("cache-control", "no-store")])
    );

    let res = &cfg.clusters[0].resilience;
    assert_eq!(res.when_all_unhealthy, AllUnhealthy::Reject);
    assert_eq!(
        res.circuit_breaker,
        Some(CircuitBreaker {
            max_connections: 10,
            max_pending_requests: 20,
            max_requests: 30
        })
    );
    assert_eq!(
        res.health_check,
        Some(HealthCheck {
            path: "/healthz?deep=1".into(),
            host: Some("api.internal:8080".into()),
            interval: Duration::from_secs(2),
            timeout: Duration::from_millis(500),
            healthy_threshold: 1,
            unhealthy_threshold: 100,
        })
    );
    assert_eq!(
        res.outlier_detection,
        Some(OutlierDetection {
            consecutive_5xx: 0,
            consecutive_gateway_failure: 7,
            base_ejection_time: Duration::from_secs(10),
            max_ejection_time: Duration::from_secs(60),
            max_ejection_percent: 100,
        })
    );
    assert_eq!(cfg.clusters[1].resilience, ClusterPolicy::default());
}

#[test]
fn render_round_trips_every_policy_key() {
    assert_round_trip(FULL);
    let rendered = parse_ok(FULL).render_toml();
    for needle in [
        "    abort_percent = 5.5\n",
        "    percent = 0.0001\n",
        "    delay_percent = 10\n",
        "    retriable_status_codes = [409, 503]\n",
        "when_all_unhealthy = \"reject\"\n",
        "    request_remove = [\"x-aa\", \"x-c\"]\n",
    ] {
        assert!(
            rendered.contains(needle),
            "{needle:?} missing in\n{rendered}"
        );
    }
}

#[test]
fn unconfigured_policies_are_none_and_render_nothing() {
    let cfg = parse_ok(&with_route("  cluster = \"c\"\n"));
    assert_eq!(cfg.listeners[0].routes[0].policy, RoutePolicy::default());
    assert_eq!(cfg.clusters[0].resilience, ClusterPolicy::default());
    let rendered = cfg.render_toml();
    assert!(!rendered.contains("listeners.routes."), "{rendered}");
    assert!(rendered.contains("when_all_unhealthy = \"fail_open\""));
    assert!(!rendered.contains("[clusters.circuit_breaker]"));
    // An empty headers table is no policy at all.
    let cfg = parse_ok(&with_route(
        "  cluster = \"c\"\n  [listeners.routes.headers]\n",
    ));
    assert_eq!(cfg.listeners[0].routes[0].policy.headers, None);
}

#[test]
fn minimal_tables_get_every_default() {
    let text = with_route_and_shadow(
        "  cluster = \"c\"\n  [listeners.routes.retry]\n  retry_on = [\"reset\"]\n  [listeners.routes.rate_limit]\n  requests_per_second = 7\n  [listeners.routes.fault]\n  delay = \"1s\"\n  [listeners.routes.mirror]\n  cluster = \"s\"\n",
    ) + "[clusters.circuit_breaker]\n[clusters.health_check]\npath = \"/\"\n[clusters.outlier_detection]\n";
    let cfg = parse_ok(&text);
    let p = &cfg.listeners[0].routes[0].policy;
    assert_eq!(
        p.retry,
        Some(RetryPolicy {
            retry_on: RetryOn {
                reset: true,
                ..RetryOn::default()
            },
            retriable_status_codes: vec![],
            attempts: 2,
            backoff_base: Duration::from_millis(25),
            backoff_max: Duration::from_millis(250),
            replay_buffer_bytes: 65536,
            budget_percent: 20,
            min_retries_per_second: 10,
            budget_window: Duration::from_secs(10),
        })
    );
    assert_eq!(p.rate_limit.map(|r| r.burst), Some(7));
    assert_eq!(
        p.fault,
        Some(FaultPolicy {
            delay: Some(Duration::from_secs(1)),
            delay_percent: Percent::ALL,
            abort_status: None,
            abort_percent: Percent(0),
        })
    );
    assert_eq!(p.mirror.map(|m| m.percent), Some(Percent::ALL));
    // `[clusters.*]` after `SHADOW` belong to cluster `s`.
    let res = &cfg.clusters[1].resilience;
    assert_eq!(
        res.circuit_breaker,
        Some(CircuitBreaker {
            max_connections: 1024,
            max_pending_requests: 1024,
            max_requests: 1024
        })
    );
    assert_eq!(
        res.health_check,
        Some(HealthCheck {
            path: "/".into(),
            host: None,
            interval: Duration::from_secs(5),
            timeout: Duration::from_secs(1),
            healthy_threshold: 2,
            unhealthy_threshold: 3,
        })
    );
    assert_eq!(
        res.outlier_detection,
        Some(OutlierDetection {
            consecutive_5xx: 5,
            consecutive_gateway_failure: 5,
            base_ejection_time: Duration::from_secs(30),
            max_ejection_time: Duration::from_secs(300),
            max_ejection_percent: 50,
        })
    );
    assert_round_trip(&text);
}

#[test]
fn dependent_defaults_follow_the_key_they_depend_on() {
    let retry = |body: &str| {
        let cfg = parse_ok(&with_route(&format!(
            "  cluster = \"c\"\n  [listeners.routes.retry]\n  retry_on = [\"5xx\"]\n{body}"
        )));
        cfg.listeners[0].routes[0].policy.retry.clone().unwrap()
    };
    // backoff_max defaults to 10 x backoff_base (Envoy), capped at 24h.
    assert_eq!(
        retry("  backoff_base = \"1s\"\n").backoff_max,
        Duration::from_secs(10)
    );
    assert_eq!(
        retry("  backoff_base = \"0s\"\n").backoff_max,
        Duration::ZERO
    );
    assert_eq!(
        retry("  backoff_base = \"20h\"\n").backoff_max,
        Duration::from_secs(24 * 3600)
    );
    // health_check.timeout defaults to min(1s, interval).
    let hc = parse_ok(&with_table(
        "clusters.health_check",
        "path = \"/\"\ninterval = \"200ms\"\n",
    ));
    let hc = hc.clusters[0].resilience.health_check.clone().unwrap();
    assert_eq!(hc.timeout, Duration::from_millis(200));
    // max_ejection_time defaults to max(300s, base_ejection_time) (Envoy).
    let od = parse_ok(&with_table(
        "clusters.outlier_detection",
        "base_ejection_time = \"10m\"\n",
    ));
    let od = od.clusters[0].resilience.outlier_detection.unwrap();
    assert_eq!(od.max_ejection_time, Duration::from_secs(600));
    for text in [
        with_route("  cluster = \"c\"\n  [listeners.routes.retry]\n  retry_on = [\"5xx\"]\n  backoff_base = \"20h\"\n"),
        with_table("clusters.outlier_detection", "base_ejection_time = \"10m\"\n"),
        with_table("clusters.health_check", "path = \"/\"\ninterval = \"200ms\"\n"),
    ] {
        assert_round_trip(&text);
    }
}

#[test]
fn percentages_take_integers_and_up_to_four_decimals() {
    let mirror = |value: &str| {
        with_route_and_shadow(&format!(
            "  cluster = \"c\"\n  [listeners.routes.mirror]\n  cluster = \"s\"\n  percent = {value}\n"
        ))
    };
    for (value, ppm) in [
        ("0", 0),
        ("100", 1_000_000),
        ("0.0", 0),
        ("100.0", 1_000_000),
        ("12.3456", 123_456),
        ("0.0001", 1),
        ("99.9999", 999_999),
        ("1e1", 100_000),
        ("33.3", 333_000),
    ] {
        let cfg = parse_ok(&mirror(value));
        let got = cfg.listeners[0].routes[0].policy.mirror.map(|m| m.percent);
        assert_eq!(got, Some(Percent(ppm)), "{value}");
        assert_round_trip(&mirror(value));
    }
    check_all(&[
        (
            mirror("101"),
            17,
            "mirror.percent: must be between 0 and 100, got 101",
        ),
        (mirror("-1"), 17, "must be between 0 and 100, got -1"),
        (mirror("100.5"), 17, "must be between 0 and 100, got 100.5"),
        (mirror("-0.5"), 17, "must be between 0 and 100"),
        (mirror("nan"), 17, "must be between 0 and 100, got NaN"),
        (mirror("inf"), 17, "must be between 0 and 100"),
        (
            mirror("0.00001"),
            17,
            "0.00001 has more than 4 decimals; the finest step is 0.0001",
        ),
        (mirror("12.34567"), 17, "more than 4 decimals"),
        (
            mirror("\"10%\""),
            17,
            "a percentage: a number from 0 to 100",
        ),
    ]);
}

#[test]
fn unknown_keys_in_policy_tables_are_errors_with_their_line() {
    let route_table = |table: &str, body: &str| {
        with_route(&format!(
            "  cluster = \"c\"\n  [listeners.routes.{table}]\n{body}"
        ))
    };
    check_all(&[
        (
            route_table("retry", "  retry_on = [\"5xx\"]\n  retries = 3\n"),
            14,
            "listeners[0].routes[0].retry: unknown key `retries`",
        ),
        (
            route_table("rate_limit", "  requests_per_second = 1\n  rps = 1\n"),
            14,
            "routes[0].rate_limit: unknown key `rps`",
        ),
        (
            route_table("fault", "  delay = \"1s\"\n  delay_pct = 1\n"),
            14,
            "routes[0].fault: unknown key `delay_pct`",
        ),
        (
            route_table("mirror", "  cluster = \"c\"\n  weight = 1\n"),
            14,
            "routes[0].mirror: unknown key `weight`",
        ),
        (
            route_table("headers", "  add = {}\n"),
            13,
            "routes[0].headers: unknown key `add`",
        ),
        (
            with_table("clusters.circuit_breaker", "max_retries = 1\n"),
            11,
            "clusters[0].circuit_breaker: unknown key `max_retries`",
        ),
        (
            with_table("clusters.health_check", "path = \"/\"\nport = 1\n"),
            12,
            "clusters[0].health_check: unknown key `port`",
        ),
        (
            with_table("clusters.outlier_detection", "consecutive_errors = 1\n"),
            11,
            "clusters[0].outlier_detection: unknown key `consecutive_errors`",
        ),
        (
            format!("{MINIMAL}panic_threshold = 1\n"),
            9,
            "clusters[0]: unknown key `panic_threshold`",
        ),
    ]);
}

#[test]
fn required_policy_keys_are_reported_when_missing() {
    check_all(&[
        (
            with_route("  cluster = \"c\"\n  [listeners.routes.retry]\n  attempts = 2\n"),
            12,
            "missing field `retry_on`",
        ),
        (
            with_route("  cluster = \"c\"\n  [listeners.routes.rate_limit]\n  burst = 2\n"),
            12,
            "missing field `requests_per_second`",
        ),
        (
            with_route("  cluster = \"c\"\n  [listeners.routes.mirror]\n  percent = 2\n"),
            12,
            "missing field `cluster`",
        ),
        (
            with_table("clusters.health_check", "interval = \"1s\"\n"),
            10,
            "missing field `path`",
        ),
    ]);
}

#[test]
fn per_try_timeout_rules() {
    check_all(&[
        (
            with_route("  cluster = \"c\"\n  timeout = \"1s\"\n  per_try_timeout = \"2s\"\n"),
            13,
            "routes[0].per_try_timeout: must be at most timeout (1s), got 2s",
        ),
        (
            with_route("  cluster = \"c\"\n  per_try_timeout = \"0s\"\n"),
            12,
            "per_try_timeout: must be greater than zero",
        ),
        (
            with_route("  direct = { status = 200 }\n  per_try_timeout = \"1s\"\n"),
            12,
            "routes[0].per_try_timeout: a direct route has no upstream exchange to time out",
        ),
    ]);
    // Without a route timeout, any per-try timeout is fine.
    let cfg = parse_ok(&with_route(
        "  cluster = \"c\"\n  per_try_timeout = \"2s\"\n",
    ));
    assert_eq!(
        cfg.listeners[0].routes[0].policy.per_try_timeout,
        Some(Duration::from_secs(2))
    );
}

#[test]
fn retry_rules() {
    let retry = |body: &str| {
        with_route(&format!(
            "  cluster = \"c\"\n  [listeners.routes.retry]\n{body}"
        ))
    };
    let on5xx = |more: &str| retry(&format!("  retry_on = [\"5xx\"]\n{more}"));
    check_all(&[
        (retry("  retry_on = []\n"), 13, "retry.retry_on: list at least one condition: connect-failure, reset"),
        (retry("  retry_on = [\"5xx\", \"timeout\"]\n"), 13, "retry.retry_on[1]: unknown condition \"timeout\"; expected one of connect-failure, reset, gateway-error, 5xx, retriable-status-codes"),
        (retry("  retry_on = [\"5xx\", \"5xx\"]\n"), 13, "retry.retry_on[1]: \"5xx\" is listed twice"),
        (retry("  retry_on = [\"retriable-status-codes\"]\n"), 13, "retry.retry_on: \"retriable-status-codes\" needs a retriable_status_codes list"),
        (retry("  retry_on = [\"retriable-status-codes\"]\n  retriable_status_codes = []\n"), 14, "retry.retriable_status_codes: list at least one status"),
        (retry("  retry_on = [\"retriable-status-codes\"]\n  retriable_status_codes = [503, 99, 600]\n"), 14, "retriable_status_codes[1]: must be between 100 and 599, got 99"),
        (retry("  retry_on = [\"retriable-status-codes\"]\n  retriable_status_codes = [503, 99, 600]\n"), 14, "retriable_status_codes[2]: must be between 100 and 599, got 600"),
        (retry("  retry_on = [\"retriable-status-codes\"]\n  retriable_status_codes = [503, 503]\n"), 14, "retriable_status_codes[1]: 503 is listed twice"),
        (on5xx("  retriable_status_codes = [503]\n"), 14, "retry.retriable_status_codes: applies only when retry_on contains \"retriable-status-codes\""),
        (on5xx("  attempts = 0\n"), 14, "retry.attempts: must be between 1 and 10, got 0"),
        (on5xx("  attempts = 11\n"), 14, "retry.attempts: must be between 1 and 10, got 11"),
        (on5xx("  backoff_base = \"25\"\n"), 14, "retry.backoff_base: \"25\": missing unit"),
        (on5xx("  backoff_base = \"100ms\"\n  backoff_max = \"50ms\"\n"), 15, "retry.backoff_max: must be at least backoff_base (100ms), got 50ms"),
        (on5xx("  replay_buffer_bytes = 16777217\n"), 14, "retry.replay_buffer_bytes: must be between 0 and 16777216"),
        (on5xx("  replay_buffer_bytes = -1\n"), 14, "must be between 0 and 16777216, got -1"),
        (on5xx("  budget_percent = 1001\n"), 14, "retry.budget_percent: must be between 0 and 1000, got 1001"),
        (on5xx("  min_retries_per_second = -1\n"), 14, "retry.min_retries_per_second: must be between 0 and 1000000"),
        (on5xx("  budget_window = \"500ms\"\n"), 14, "retry.budget_window: must be at least 1s"),
        (on5xx("  budget_window = \"11m\"\n"), 14, "retry.budget_window: must be at most 10m, got \"11m\""),
        (
            with_route("  direct = { status = 200 }\n  [listeners.routes.retry]\n  retry_on = [\"5xx\"]\n"),
            13,
            "routes[0].retry: a direct route has no upstream exchange to retry",
        ),
    ]);
    // Bounds that are allowed.
    parse_ok(&on5xx(
        "  attempts = 10\n  backoff_base = \"0s\"\n  backoff_max = \"0s\"\n  replay_buffer_bytes = 16777216\n  budget_percent = 0\n  min_retries_per_second = 0\n  budget_window = \"10m\"\n",
    ));
}

#[test]
fn rate_limit_rules() {
    let rl = |body: &str| {
        with_route(&format!(
            "  cluster = \"c\"\n  [listeners.routes.rate_limit]\n{body}"
        ))
    };
    check_all(&[
        (
            rl("  requests_per_second = 0\n"),
            13,
            "rate_limit.requests_per_second: must be between 1 and 10000000, got 0",
        ),
        (
            rl("  requests_per_second = 10000001\n"),
            13,
            "must be between 1 and 10000000",
        ),
        (
            rl("  requests_per_second = 5\n  burst = 0\n"),
            14,
            "rate_limit.burst: must be between 1 and 10000000, got 0",
        ),
    ]);
    parse_ok(&rl("  requests_per_second = 10000000\n  burst = 1\n"));
}

#[test]
fn fault_rules() {
    let fault = |body: &str| {
        with_route(&format!(
            "  cluster = \"c\"\n  [listeners.routes.fault]\n{body}"
        ))
    };
    check_all(&[
        (
            fault(""),
            10,
            "routes[0].fault: a fault needs a delay, an abort_status, or both",
        ),
        (
            fault("  delay_percent = 5\n"),
            13,
            "fault.delay_percent: needs a delay",
        ),
        (
            fault("  abort_percent = 5\n"),
            13,
            "fault.abort_percent: needs an abort_status",
        ),
        (
            fault("  delay = \"0s\"\n"),
            13,
            "fault.delay: must be greater than zero",
        ),
        (
            fault("  abort_status = 199\n"),
            13,
            "fault.abort_status: must be between 200 and 599, got 199",
        ),
        (
            fault("  abort_status = 600\n"),
            13,
            "must be between 200 and 599, got 600",
        ),
        (
            fault("  delay = \"1s\"\n  delay_percent = 100.01\n"),
            14,
            "fault.delay_percent: must be between 0 and 100",
        ),
        (
            fault("  abort_status = 503\n  abort_percent = 1.23456\n"),
            14,
            "fault.abort_percent: 1.23456 has more than 4 decimals",
        ),
    ]);
    // One error for a lone percent, not a second "needs a delay or abort" on top.
    assert_eq!(errors_of(&fault("  delay_percent = 5\n")).len(), 1);
    // A fault is allowed on a direct route.
    parse_ok(&with_route(
        "  direct = { status = 200 }\n  [listeners.routes.fault]\n  delay = \"10ms\"\n",
    ));
}

#[test]
fn mirror_rules() {
    let mirror = |action: &str, cluster: &str| {
        with_route_and_shadow(&format!(
            "{action}  [listeners.routes.mirror]\n  cluster = \"{cluster}\"\n"
        ))
    };
    check_all(&[
        (
            mirror("  cluster = \"c\"\n", "nope"),
            16,
            "routes[0].mirror.cluster: unknown cluster \"nope\" (defined clusters: c, s)",
        ),
        (
            mirror("  cluster = \"c\"\n", "c"),
            16,
            "routes[0].mirror.cluster: \"c\" already receives this route's traffic",
        ),
        (
            mirror(
                "  split = [ { cluster = \"c\", weight = 1 }, { cluster = \"s\", weight = 0 } ]\n",
                "s",
            ),
            16,
            "\"s\" already receives this route's traffic; mirror to a different cluster",
        ),
        (
            mirror("  direct = { status = 200 }\n", "s"),
            16,
            "routes[0].mirror: a direct route has no upstream request to mirror",
        ),
    ]);
    let cfg = parse_ok(&mirror("  cluster = \"c\"\n", "s"));
    assert_eq!(
        cfg.listeners[0].routes[0].policy.mirror,
        Some(MirrorPolicy {
            cluster: ClusterId(1),
            percent: Percent::ALL
        })
    );
}

#[test]
fn every_policy_problem_is_reported_at_once() {
    let text = with_route_and_shadow(
        "  cluster = \"c\"\n  [listeners.routes.retry]\n  retry_on = [\"bogus\"]\n  attempts = 0\n  [listeners.routes.fault]\n  abort_status = 1\n  [listeners.routes.mirror]\n  cluster = \"c\"\n",
    ) + "[clusters.health_check]\npath = \"x\"\ninterval = \"1ms\"\n";
    let lines: Vec<Option<usize>> = errors_of(&text).iter().map(|e| e.line).collect();
    assert_eq!(
        lines,
        [Some(16), Some(17), Some(19), Some(21), Some(23), Some(24)]
    );
}
