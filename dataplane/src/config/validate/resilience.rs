//! Validation of a cluster's resilience keys: `when_all_unhealthy` and the tables
//! `[clusters.circuit_breaker]`, `[clusters.health_check]`, `[clusters.outlier_detection]`.
//!
//! Invariants of the output: every limit and threshold is at least 1 (outlier counts: 0 =
//! off); health check `timeout <= interval` and `interval >= 100ms`; outlier
//! `base_ejection_time <= max_ejection_time`; a health check host is lower-case.

use std::net::{Ipv4Addr, Ipv6Addr};
use std::time::Duration;

use super::super::address::is_dns_name;
use super::super::model::*;
use super::super::raw::*;
use super::{Checker, Min, MAX_DURATION};

pub const DEFAULT_BREAKER_LIMIT: i64 = 1024;
pub const MAX_BREAKER_LIMIT: i64 = 1_000_000;
pub const MIN_HEALTH_INTERVAL: Duration = Duration::from_millis(100);
pub const DEFAULT_HEALTH_INTERVAL: Duration = Duration::from_secs(5);
pub const DEFAULT_HEALTH_TIMEOUT: Duration = Duration::from_secs(1);
pub const MAX_THRESHOLD: i64 = 100;
pub const MAX_CONSECUTIVE: i64 = 10_000;
pub const DEFAULT_BASE_EJECTION: Duration = Duration::from_secs(30);
pub const DEFAULT_MAX_EJECTION: Duration = Duration::from_secs(300);

/// The resilience part of one cluster; invalid values are reported and replaced by defaults.
pub(super) fn cluster_policy(c: &mut Checker, raw: &RawCluster, path: &str) -> ClusterPolicy {
    let when_all_unhealthy = match raw.when_all_unhealthy.as_ref() {
        None => AllUnhealthy::FailOpen,
        Some(v) => match v.get_ref().as_str() {
            "fail_open" => AllUnhealthy::FailOpen,
            "reject" => AllUnhealthy::Reject,
            other => {
                c.error(
                    v.span(),
                    &format!("{path}.when_all_unhealthy"),
                    format!("{other:?}: expected \"fail_open\" or \"reject\""),
                );
                AllUnhealthy::FailOpen
            }
        },
    };
    ClusterPolicy {
        circuit_breaker: raw
            .circuit_breaker
            .as_ref()
            .map(|b| circuit_breaker(c, b, &format!("{path}.circuit_breaker"))),
        health_check: raw
            .health_check
            .as_ref()
            .map(|h| health_check(c, h, &format!("{path}.health_check"))),
        outlier_detection: raw
            .outlier_detection
            .as_ref()
            .map(|o| outlier_detection(c, o, &format!("{path}.outlier_detection"))),
        when_all_unhealthy,
    }
}

fn circuit_breaker(c: &mut Checker, raw: &RawCircuitBreaker, path: &str) -> CircuitBreaker {
    let mut limit = |value: &Option<Int>, key: &str| {
        let n = c.int(
            value,
            path,
            key,
            1,
            MAX_BREAKER_LIMIT,
            DEFAULT_BREAKER_LIMIT,
        );
        u32::try_from(n).unwrap_or(1)
    };
    CircuitBreaker {
        max_connections: limit(&raw.max_connections, "max_connections"),
        max_pending_requests: limit(&raw.max_pending_requests, "max_pending_requests"),
        max_requests: limit(&raw.max_requests, "max_requests"),
    }
}

fn health_check(c: &mut Checker, raw: &RawHealthCheck, path: &str) -> HealthCheck {
    let p = raw.path.get_ref();
    if !p.starts_with('/') {
        c.error(
            raw.path.span(),
            &format!("{path}.path"),
            format!("{p:?} must start with '/'"),
        );
    } else if let Some(bad) = p.chars().find(|&ch| !ch.is_ascii_graphic() || ch == '#') {
        c.error(
            raw.path.span(),
            &format!("{path}.path"),
            format!("{p:?} contains {bad:?}; a probe path is visible ASCII without '#' (percent-encode the rest)"),
        );
    }
    let host = raw.host.as_ref().map(|h| {
        let lower = h.get_ref().to_ascii_lowercase();
        if !is_host_header(&lower) {
            c.error(
                h.span(),
                &format!("{path}.host"),
                format!(
                    "{:?} is not a valid host: write a host name, an IPv4 address or a bracketed IPv6 address, optionally with :port",
                    h.get_ref()
                ),
            );
        }
        lower
    });
    let interval = c.duration(
        &raw.interval,
        path,
        "interval",
        Min::AtLeast(MIN_HEALTH_INTERVAL),
        MAX_DURATION,
        DEFAULT_HEALTH_INTERVAL,
    );
    let timeout = match c.duration_opt(&raw.timeout, path, "timeout", Min::Positive, MAX_DURATION) {
        Some(t) if t > interval => {
            if let Some(v) = &raw.timeout {
                c.error(
                    v.span(),
                    &format!("{path}.timeout"),
                    format!(
                        "must be at most interval ({}), got {}",
                        super::duration::render(interval),
                        super::duration::render(t)
                    ),
                );
            }
            interval
        }
        Some(t) => t,
        None => DEFAULT_HEALTH_TIMEOUT.min(interval),
    };
    let mut threshold = |value: &Option<Int>, key: &str, default: i64| {
        u32::try_from(c.int(value, path, key, 1, MAX_THRESHOLD, default)).unwrap_or(1)
    };
    HealthCheck {
        path: p.clone(),
        host,
        interval,
        timeout,
        healthy_threshold: threshold(&raw.healthy_threshold, "healthy_threshold", 2),
        unhealthy_threshold: threshold(&raw.unhealthy_threshold, "unhealthy_threshold", 3),
    }
}

/// `name`, `name:port`, `1.2.3.4`, `1.2.3.4:port`, `[v6]` or `[v6]:port` (port 1..=65535).
fn is_host_header(host: &str) -> bool {
    let (name, port) = if let Some(rest) = host.strip_prefix('[') {
        let Some((v6, after)) = rest.split_once(']') else {
            return false;
        };
        if v6.parse::<Ipv6Addr>().is_err() {
            return false;
        }
        match after {
            "" => return true,
            _ => match after.strip_prefix(':') {
                Some(port) => ("", Some(port)),
                None => return false,
            },
        }
    } else {
        match host.rsplit_once(':') {
            Some((name, port)) => (name, Some(port)),
            None => (host, None),
        }
    };
    let port_ok = port.is_none_or(|p| {
        !p.is_empty()
            && p.bytes().all(|b| b.is_ascii_digit())
            && p.parse::<u16>().is_ok_and(|n| n > 0)
    });
    let name_ok = (name.is_empty() && host.starts_with('['))
        || name.parse::<Ipv4Addr>().is_ok()
        || (!name.ends_with('.') && is_dns_name(name));
    port_ok && name_ok
}

fn outlier_detection(c: &mut Checker, raw: &RawOutlierDetection, path: &str) -> OutlierDetection {
    let mut count = |value: &Option<Int>, key: &str| {
        u32::try_from(c.int(value, path, key, 0, MAX_CONSECUTIVE, 5)).unwrap_or(0)
    };
    let consecutive_5xx = count(&raw.consecutive_5xx, "consecutive_5xx");
    let consecutive_gateway_failure = count(
        &raw.consecutive_gateway_failure,
        "consecutive_gateway_failure",
    );
    let base_ejection_time = c.duration(
        &raw.base_ejection_time,
        path,
        "base_ejection_time",
        Min::Positive,
        MAX_DURATION,
        DEFAULT_BASE_EJECTION,
    );
    let max_ejection_time = match c.duration_opt(
        &raw.max_ejection_time,
        path,
        "max_ejection_time",
        Min::Positive,
        MAX_DURATION,
    ) {
        Some(m) if m < base_ejection_time => {
            if let Some(v) = &raw.max_ejection_time {
                c.error(
                    v.span(),
                    &format!("{path}.max_ejection_time"),
                    format!(
                        "must be at least base_ejection_time ({}), got {}",
                        super::duration::render(base_ejection_time),
                        super::duration::render(m)
                    ),
                );
            }
            base_ejection_time
        }
        Some(m) => m,
        None => DEFAULT_MAX_EJECTION.max(base_ejection_time),
    };
    OutlierDetection {
        consecutive_5xx,
        consecutive_gateway_failure,
        base_ejection_time,
        max_ejection_time,
        max_ejection_percent: u32::try_from(c.int(
            &raw.max_ejection_percent,
            path,
            "max_ejection_percent",
            0,
            100,
            50,
        ))
        .unwrap_or(50),
    }
}
