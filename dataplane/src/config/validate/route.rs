//! Validation of `[[listeners.routes]]`: the `match` fields (host, path prefix, headers,
//! principal) and the action (exactly one of `cluster`, `split`, `direct`); the policy tables
//! are checked by `policy` (and the route's authorization rules by `authz`).
//!
//! Invariant of the output: hosts and header names are lower-case, header matches are sorted
//! by name with no duplicates, split weights sum to more than zero and fit in a `u32`.

use std::net::{Ipv4Addr, Ipv6Addr};

use toml::Spanned;

use super::super::address::is_dns_name;
use super::super::model::*;
use super::super::raw::*;
use super::authz::string_match;
use super::policy::{self, RouteFacts};
use super::{is_token, Checker, ClusterNames, Min, MAX_DURATION};

pub const MAX_DIRECT_BODY_BYTES: usize = 64 * 1024;
pub const MAX_SPLIT_WEIGHT: i64 = 1_000_000;

/// One route, or `None` after recording its errors. `rule_prefix` names its authorization
/// rules that have no `name` (`<listener name>.routes[<j>]`).
pub(super) fn route(
    c: &mut Checker,
    raw: &Spanned<RawRoute>,
    path: &str,
    rule_prefix: &str,
    names: &ClusterNames,
) -> Option<RouteConfig> {
    let r = raw.get_ref();
    let matcher = match r.matcher.as_ref() {
        None => RouteMatch::default(),
        Some(m) => route_match(c, m, &format!("{path}.match")),
    };
    let mut given = Vec::new();
    if r.cluster.is_some() {
        given.push("cluster");
    }
    if r.split.is_some() {
        given.push("split");
    }
    if r.direct.is_some() {
        given.push("direct");
    }
    if given.len() != 1 {
        let found = if given.is_empty() {
            "none".to_string()
        } else {
            given.join(" and ")
        };
        c.error(
            raw.span(),
            path,
            format!("a route has exactly one of cluster, split or direct (found {found})"),
        );
        return None;
    }
    let timeout = r.timeout.as_ref().map(|_| {
        c.duration(
            &r.timeout,
            path,
            "timeout",
            Min::Positive,
            MAX_DURATION,
            MAX_DURATION,
        )
    });
    let action = if let Some(name) = &r.cluster {
        names
            .resolve(c, name, &format!("{path}.cluster"))
            .map(RouteAction::Cluster)
    } else if let Some(split) = &r.split {
        split_action(c, split, &format!("{path}.split"), names)
    } else if let Some(direct) = &r.direct {
        if let Some(t) = &r.timeout {
            c.error(
                t.span(),
                &format!("{path}.timeout"),
                "a direct route has no upstream exchange to time out",
            );
        }
        direct_action(c, direct, &format!("{path}.direct"))
    } else {
        None
    };
    let clusters: Vec<ClusterId> = match &action {
        Some(RouteAction::Cluster(id)) => vec![*id],
        Some(RouteAction::Split(ws)) => ws.iter().map(|w| w.cluster).collect(),
        _ => Vec::new(),
    };
    let facts = RouteFacts {
        span: raw.span(),
        path,
        direct: r.direct.is_some(),
        clusters: &clusters,
        has_path_prefix: matcher.path_prefix.is_some(),
        timeout,
        rule_prefix,
    };
    let policy = policy::route_policy(c, r, &facts, names);
    Some(RouteConfig {
        matcher,
        action: action?,
        timeout,
        policy,
    })
}

fn split_action(
    c: &mut Checker,
    split: &Spanned<Vec<Spanned<RawSplitEntry>>>,
    path: &str,
    names: &ClusterNames,
) -> Option<RouteAction> {
    if split.get_ref().is_empty() {
        c.error(
            split.span(),
            path,
            "a split needs at least one { cluster, weight } entry",
        );
        return None;
    }
    let mut out: Vec<WeightedCluster> = Vec::new();
    let mut ok = true;
    for (i, e) in split.get_ref().iter().enumerate() {
        let epath = format!("{path}[{i}]");
        let e = e.get_ref();
        let weight = *e.weight.get_ref();
        let weight = match u32::try_from(weight) {
            Ok(w) if i64::from(w) <= MAX_SPLIT_WEIGHT => w,
            _ => {
                c.error(
                    e.weight.span(),
                    &format!("{epath}.weight"),
                    format!("must be between 0 and {MAX_SPLIT_WEIGHT}, got {weight}"),
                );
                ok = false;
                0
            }
        };
        match names.resolve(c, &e.cluster, &format!("{epath}.cluster")) {
            Some(id) if out.iter().any(|w| w.cluster == id) => {
                c.error(
                    e.cluster.span(),
                    &format!("{epath}.cluster"),
                    format!(
                        "cluster {:?} appears twice in this split",
                        e.cluster.get_ref()
                    ),
                );
                ok = false;
            }
            Some(id) => out.push(WeightedCluster {
                cluster: id,
                weight,
            }),
            None => ok = false,
        }
    }
    let total: u64 = out.iter().map(|w| u64::from(w.weight)).sum();
    if ok && total > u64::from(u32::MAX) {
        c.error(
            split.span(),
            path,
            format!(
                "the weights add up to {total}; at most {} is allowed",
                u32::MAX
            ),
        );
        return None;
    }
    if ok && total == 0 {
        c.error(
            split.span(),
            path,
            "at least one weight must be greater than zero",
        );
        return None;
    }
    ok.then_some(RouteAction::Split(out))
}

fn direct_action(c: &mut Checker, d: &RawDirect, path: &str) -> Option<RouteAction> {
    let mut ok = true;
    let status = *d.status.get_ref();
    let status = match u16::try_from(status) {
        Ok(s) if (200..=599).contains(&s) => s,
        _ => {
            c.error(
                d.status.span(),
                &format!("{path}.status"),
                format!("must be between 200 and 599, got {status}"),
            );
            ok = false;
            0
        }
    };
    let body = d
        .body
        .as_ref()
        .map(|b| b.get_ref().clone())
        .unwrap_or_default();
    if let Some(b) = &d.body {
        if b.get_ref().len() > MAX_DIRECT_BODY_BYTES {
            c.error(
                b.span(),
                &format!("{path}.body"),
                format!(
                    "must be at most {MAX_DIRECT_BODY_BYTES} bytes, got {}",
                    b.get_ref().len()
                ),
            );
            ok = false;
        }
    }
    ok.then_some(RouteAction::Direct { status, body })
}

fn route_match(c: &mut Checker, m: &RawMatch, path: &str) -> RouteMatch {
    let host = m.host.as_ref().and_then(|h| match host_match(h.get_ref()) {
        Ok(host) => Some(host),
        Err(msg) => {
            c.error(h.span(), &format!("{path}.host"), msg);
            None
        }
    });
    let path_prefix = m.path_prefix.as_ref().map(|p| {
        let s = p.get_ref();
        if !s.starts_with('/') {
            c.error(p.span(), &format!("{path}.path_prefix"), format!("{s:?} must start with '/'"));
        } else if let Some(bad) = s.chars().find(|&ch| !ch.is_ascii_graphic() || ch == '?' || ch == '#') {
            c.error(p.span(), &format!("{path}.path_prefix"), format!("{s:?} contains {bad:?}; a path prefix is visible ASCII without '?' or '#' (percent-encode the rest)"));
        }
        s.clone()
    });
    let mut headers: Vec<(String, String)> = Vec::new();
    for (name, value) in m.headers.iter().flatten() {
        let hpath = format!("{path}.headers");
        let lower = name.get_ref().to_ascii_lowercase();
        if !is_token(&lower) {
            c.error(
                name.span(),
                &hpath,
                format!("{:?} is not a valid header name", name.get_ref()),
            );
            continue;
        }
        if headers.iter().any(|(n, _)| *n == lower) {
            c.error(
                name.span(),
                &hpath,
                format!("header {lower:?} is listed twice (names are case-insensitive)"),
            );
            continue;
        }
        if let Err(msg) = check_header_value(value.get_ref()) {
            c.error(value.span(), &format!("{hpath}.{lower}"), msg);
        }
        headers.push((lower, value.get_ref().clone()));
    }
    headers.sort();
    let principal = m
        .principal
        .as_ref()
        .and_then(|p| match string_match(p.get_ref()) {
            Ok(sm) => Some(sm),
            Err(msg) => {
                c.error(p.span(), &format!("{path}.principal"), msg);
                None
            }
        });
    RouteMatch {
        host,
        path_prefix,
        headers,
        principal,
    }
}

/// `example.com`, `*.example.com`, `10.0.0.1` or `[::1]`; lower-cased, no port.
pub(super) fn host_match(host: &str) -> Result<HostMatch, String> {
    let lower = host.to_ascii_lowercase();
    if lower.is_empty() {
        return Err("must not be empty".to_string());
    }
    if let Some(inner) = lower.strip_prefix('[').and_then(|s| s.strip_suffix(']')) {
        return match inner.parse::<Ipv6Addr>() {
            Ok(_) => Ok(HostMatch::Exact(lower)),
            Err(_) => Err(format!("{host:?} is not a valid bracketed IPv6 address")),
        };
    }
    if lower.contains(':') {
        return Err(format!(
            "{host:?}: a host match has no port (the port is ignored when matching)"
        ));
    }
    if let Some(suffix) = lower.strip_prefix("*.") {
        if suffix.contains('*') || !is_host_name(suffix) {
            return Err(format!(
                "{host:?}: after \"*.\" a host name must follow, e.g. \"*.example.com\""
            ));
        }
        return Ok(HostMatch::Suffix(format!(".{suffix}")));
    }
    if lower.contains('*') {
        return Err(format!("{host:?}: '*' is allowed only as a leading \"*.\""));
    }
    if lower.parse::<Ipv4Addr>().is_ok() || is_host_name(&lower) {
        Ok(HostMatch::Exact(lower))
    } else {
        Err(format!("{host:?} is not a valid host name"))
    }
}

/// A DNS name without a trailing dot.
pub(super) fn is_host_name(name: &str) -> bool {
    !name.ends_with('.') && is_dns_name(name)
}

/// Visible ASCII, with spaces and tabs allowed only inside.
fn check_header_value(v: &str) -> Result<(), String> {
    if v.starts_with([' ', '\t']) || v.ends_with([' ', '\t']) {
        return Err(format!("{v:?}: leading or trailing whitespace never matches (it is not part of a header value)"));
    }
    match v
        .chars()
        .find(|&ch| !(ch.is_ascii_graphic() || ch == ' ' || ch == '\t'))
    {
        Some(bad) => Err(format!(
            "{v:?} contains {bad:?}; header values are visible ASCII"
        )),
        None => Ok(()),
    }
}
