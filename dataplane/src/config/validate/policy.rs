//! Validation of a route's traffic policy: `per_try_timeout` and the tables
//! `[listeners.routes.retry]`, `.rate_limit`, `.fault`, `.mirror` (and `.headers`, in
//! `headers`; `[[listeners.routes.authz]]`, in `authz`).
//!
//! Invariants of the output: a direct route has no `per_try_timeout`, `retry` or `mirror`;
//! `per_try_timeout <= timeout`; `retry_on` names at least one condition and
//! `retriable_status_codes` is non-empty, sorted and unique exactly when `retry_on` has
//! `retriable-status-codes` (empty otherwise); `backoff_base <= backoff_max`; a fault has a
//! delay or an abort status, and the percent of an absent one is 0; a mirror cluster is none
//! of the route's own clusters.

mod headers;

use std::ops::Range;
use std::time::Duration;

use super::super::duration;
use super::super::model::*;
use super::super::raw::*;
use super::{authz, Checker, ClusterNames, Min, MAX_DURATION};

pub const RETRY_ON_NAMES: &str =
    "connect-failure, reset, gateway-error, 5xx, retriable-status-codes";
pub const MAX_ATTEMPTS: i64 = 10;
pub const DEFAULT_ATTEMPTS: i64 = 2;
pub const DEFAULT_BACKOFF_BASE: Duration = Duration::from_millis(25);
/// `backoff_max` defaults to this multiple of `backoff_base` (Envoy's rule; 250ms by default).
pub const BACKOFF_MAX_FACTOR: u32 = 10;
pub const MAX_REPLAY_BUFFER_BYTES: i64 = 16 << 20;
pub const DEFAULT_REPLAY_BUFFER_BYTES: i64 = 64 << 10;
pub const MAX_BUDGET_PERCENT: i64 = 1000;
pub const DEFAULT_BUDGET_PERCENT: i64 = 20;
pub const MAX_MIN_RETRIES_PER_SECOND: i64 = 1_000_000;
pub const DEFAULT_MIN_RETRIES_PER_SECOND: i64 = 10;
pub const MIN_BUDGET_WINDOW: Duration = Duration::from_secs(1);
pub const MAX_BUDGET_WINDOW: Duration = Duration::from_secs(600);
pub const DEFAULT_BUDGET_WINDOW: Duration = Duration::from_secs(10);
pub const MAX_RATE: i64 = 10_000_000;

/// What the policy checks need to know about the route they belong to.
pub(super) struct RouteFacts<'a> {
    /// The `[[listeners.routes]]` table, for errors about a table as a whole.
    pub span: Range<usize>,
    pub path: &'a str,
    pub direct: bool,
    /// The clusters the route's action sends to (empty when direct or unresolved).
    pub clusters: &'a [ClusterId],
    pub has_path_prefix: bool,
    pub timeout: Option<Duration>,
    /// Default-name prefix of the route's authorization rules (`<listener>.routes[<j>]`).
    pub rule_prefix: &'a str,
}

pub(super) fn route_policy(
    c: &mut Checker,
    r: &RawRoute,
    facts: &RouteFacts,
    names: &ClusterNames,
) -> RoutePolicy {
    let path = facts.path;
    let per_try_timeout = r.per_try_timeout.as_ref().and_then(|v| {
        if facts.direct {
            c.error(
                v.span(),
                &format!("{path}.per_try_timeout"),
                "a direct route has no upstream exchange to time out",
            );
            return None;
        }
        let d = c.duration_opt(
            &r.per_try_timeout,
            path,
            "per_try_timeout",
            Min::Positive,
            MAX_DURATION,
        )?;
        match facts.timeout {
            Some(t) if d > t => {
                c.error(
                    v.span(),
                    &format!("{path}.per_try_timeout"),
                    format!(
                        "must be at most timeout ({}), got {}",
                        duration::render(t),
                        duration::render(d)
                    ),
                );
                None
            }
            _ => Some(d),
        }
    });
    let retry = r.retry.as_ref().and_then(|raw| {
        let rpath = format!("{path}.retry");
        if facts.direct {
            c.error(
                raw.retry_on.span(),
                &rpath,
                "a direct route has no upstream exchange to retry",
            );
            return None;
        }
        Some(retry(c, raw, &rpath))
    });
    let mirror = r.mirror.as_ref().and_then(|raw| {
        let mpath = format!("{path}.mirror");
        if facts.direct {
            c.error(
                raw.cluster.span(),
                &mpath,
                "a direct route has no upstream request to mirror",
            );
            return None;
        }
        mirror(c, raw, &mpath, facts, names)
    });
    RoutePolicy {
        per_try_timeout,
        retry,
        rate_limit: r
            .rate_limit
            .as_ref()
            .map(|raw| rate_limit(c, raw, &format!("{path}.rate_limit"))),
        fault: r
            .fault
            .as_ref()
            .and_then(|raw| fault(c, raw, &format!("{path}.fault"), facts)),
        mirror,
        headers: r
            .headers
            .as_ref()
            .and_then(|raw| headers::header_policy(c, raw, &format!("{path}.headers"), facts)),
        authz: authz::rules(
            c,
            &r.authz,
            &format!("{path}.authz"),
            facts.rule_prefix,
            Protocol::Http,
        ),
    }
}

fn retry(c: &mut Checker, raw: &RawRetry, path: &str) -> RetryPolicy {
    let mut on = RetryOn::default();
    if raw.retry_on.get_ref().is_empty() {
        c.error(
            raw.retry_on.span(),
            &format!("{path}.retry_on"),
            format!("list at least one condition: {RETRY_ON_NAMES}"),
        );
    }
    for (i, name) in raw.retry_on.get_ref().iter().enumerate() {
        let flag = match name.get_ref().as_str() {
            "connect-failure" => &mut on.connect_failure,
            "reset" => &mut on.reset,
            "gateway-error" => &mut on.gateway_error,
            "5xx" => &mut on.server_error,
            "retriable-status-codes" => &mut on.retriable_status_codes,
            other => {
                c.error(
                    name.span(),
                    &format!("{path}.retry_on[{i}]"),
                    format!("unknown condition {other:?}; expected one of {RETRY_ON_NAMES}"),
                );
                continue;
            }
        };
        if *flag {
            c.error(
                name.span(),
                &format!("{path}.retry_on[{i}]"),
                format!("{:?} is listed twice", name.get_ref()),
            );
        }
        *flag = true;
    }
    let retriable_status_codes = status_codes(c, raw, on.retriable_status_codes, path);

    let backoff_base = c.duration(
        &raw.backoff_base,
        path,
        "backoff_base",
        Min::Zero,
        MAX_DURATION,
        DEFAULT_BACKOFF_BASE,
    );
    let default_max = backoff_base
        .saturating_mul(BACKOFF_MAX_FACTOR)
        .min(MAX_DURATION);
    let backoff_max = match c.duration_opt(
        &raw.backoff_max,
        path,
        "backoff_max",
        Min::Zero,
        MAX_DURATION,
    ) {
        Some(m) if m < backoff_base => {
            if let Some(v) = &raw.backoff_max {
                c.error(
                    v.span(),
                    &format!("{path}.backoff_max"),
                    format!(
                        "must be at least backoff_base ({}), got {}",
                        duration::render(backoff_base),
                        duration::render(m)
                    ),
                );
            }
            default_max
        }
        Some(m) => m,
        None => default_max,
    };
    let to_u32 = |n: i64| u32::try_from(n).unwrap_or(0);
    RetryPolicy {
        retry_on: on,
        retriable_status_codes,
        attempts: to_u32(c.int(
            &raw.attempts,
            path,
            "attempts",
            1,
            MAX_ATTEMPTS,
            DEFAULT_ATTEMPTS,
        )),
        backoff_base,
        backoff_max,
        replay_buffer_bytes: u64::try_from(c.int(
            &raw.replay_buffer_bytes,
            path,
            "replay_buffer_bytes",
            0,
            MAX_REPLAY_BUFFER_BYTES,
            DEFAULT_REPLAY_BUFFER_BYTES,
        ))
        .unwrap_or(0),
        budget_percent: to_u32(c.int(
            &raw.budget_percent,
            path,
            "budget_percent",
            0,
            MAX_BUDGET_PERCENT,
            DEFAULT_BUDGET_PERCENT,
        )),
        min_retries_per_second: to_u32(c.int(
            &raw.min_retries_per_second,
            path,
            "min_retries_per_second",
            0,
            MAX_MIN_RETRIES_PER_SECOND,
            DEFAULT_MIN_RETRIES_PER_SECOND,
        )),
        budget_window: c.duration(
            &raw.budget_window,
            path,
            "budget_window",
            Min::AtLeast(MIN_BUDGET_WINDOW),
            MAX_BUDGET_WINDOW,
            DEFAULT_BUDGET_WINDOW,
        ),
    }
}

/// `retriable_status_codes`: required (non-empty) iff `wanted`, each 100..=599, no repeats;
/// sorted.
fn status_codes(c: &mut Checker, raw: &RawRetry, wanted: bool, path: &str) -> Vec<u16> {
    let key = format!("{path}.retriable_status_codes");
    let Some(codes) = &raw.retriable_status_codes else {
        if wanted {
            c.error(
                raw.retry_on.span(),
                &format!("{path}.retry_on"),
                "\"retriable-status-codes\" needs a retriable_status_codes list, e.g. [503]",
            );
        }
        return Vec::new();
    };
    if !wanted {
        c.error(
            codes.span(),
            &key,
            "applies only when retry_on contains \"retriable-status-codes\"",
        );
        return Vec::new();
    }
    if codes.get_ref().is_empty() {
        c.error(codes.span(), &key, "list at least one status, e.g. [503]");
    }
    let mut out: Vec<u16> = Vec::new();
    for (i, code) in codes.get_ref().iter().enumerate() {
        let n = *code.get_ref();
        match u16::try_from(n) {
            Ok(s) if (100..=599).contains(&s) => {
                if out.contains(&s) {
                    c.error(
                        code.span(),
                        &format!("{key}[{i}]"),
                        format!("{s} is listed twice"),
                    );
                } else {
                    out.push(s);
                }
            }
            _ => c.error(
                code.span(),
                &format!("{key}[{i}]"),
                format!("must be between 100 and 599, got {n}"),
            ),
        }
    }
    out.sort_unstable();
    out
}

fn rate_limit(c: &mut Checker, raw: &RawRateLimit, path: &str) -> RateLimit {
    let rate = c.int(
        &Some(raw.requests_per_second.clone()),
        path,
        "requests_per_second",
        1,
        MAX_RATE,
        1,
    );
    let burst = c.int(&raw.burst, path, "burst", 1, MAX_RATE, rate);
    RateLimit {
        requests_per_second: u32::try_from(rate).unwrap_or(1),
        burst: u32::try_from(burst).unwrap_or(1),
    }
}

fn fault(c: &mut Checker, raw: &RawFault, path: &str, facts: &RouteFacts) -> Option<FaultPolicy> {
    let before = c.errors.len();
    let delay = c.duration_opt(&raw.delay, path, "delay", Min::Positive, MAX_DURATION);
    let delay_percent = c.percent(&raw.delay_percent, path, "delay_percent", Percent::ALL);
    if let (None, Some(p)) = (&raw.delay, &raw.delay_percent) {
        c.error(
            p.span(),
            &format!("{path}.delay_percent"),
            "needs a delay, e.g. delay = \"100ms\"",
        );
    }
    let abort_status = raw.abort_status.as_ref().and_then(|s| {
        let n = *s.get_ref();
        match u16::try_from(n) {
            Ok(v) if (200..=599).contains(&v) => Some(v),
            _ => {
                c.error(
                    s.span(),
                    &format!("{path}.abort_status"),
                    format!("must be between 200 and 599, got {n}"),
                );
                None
            }
        }
    });
    let abort_percent = c.percent(&raw.abort_percent, path, "abort_percent", Percent::ALL);
    if let (None, Some(p)) = (&raw.abort_status, &raw.abort_percent) {
        c.error(
            p.span(),
            &format!("{path}.abort_percent"),
            "needs an abort_status, e.g. abort_status = 503",
        );
    }
    if raw.delay.is_none() && raw.abort_status.is_none() && c.errors.len() == before {
        c.error(
            facts.span.clone(),
            path,
            "a fault needs a delay, an abort_status, or both",
        );
    }
    (c.errors.len() == before).then_some(FaultPolicy {
        delay,
        delay_percent: if delay.is_some() {
            delay_percent
        } else {
            Percent(0)
        },
        abort_status,
        abort_percent: if abort_status.is_some() {
            abort_percent
        } else {
            Percent(0)
        },
    })
}

fn mirror(
    c: &mut Checker,
    raw: &RawMirror,
    path: &str,
    facts: &RouteFacts,
    names: &ClusterNames,
) -> Option<MirrorPolicy> {
    let percent = c.percent(&raw.percent, path, "percent", Percent::ALL);
    let cluster = names.resolve(c, &raw.cluster, &format!("{path}.cluster"))?;
    if facts.clusters.contains(&cluster) {
        c.error(
            raw.cluster.span(),
            &format!("{path}.cluster"),
            format!(
                "{:?} already receives this route's traffic; mirror to a different cluster",
                raw.cluster.get_ref()
            ),
        );
        return None;
    }
    Some(MirrorPolicy { cluster, percent })
}
