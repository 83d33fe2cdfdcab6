//! Validation of the authorization rules, `[[listeners.authz]]` and
//! `[[listeners.routes.authz]]` (Istio's AuthorizationPolicy, one rule per table), and the
//! helpers the security keys share: lists of values, Istio string matches, address blocks.
//!
//! Invariants of the output: every rule has a name (given, or `<listener>.authz[<i>]` /
//! `<listener>.routes[<j>].authz[<i>]`), unique within its listener; every list given is
//! non-empty and free of duplicates; hosts are lower-case, methods upper-case HTTP tokens,
//! paths start with '/' or '*', ports are 1..=65535, address blocks fit their family; a rule
//! of a `tcp` listener checks no hosts, methods or paths.

use std::fmt::Debug;
use std::net::IpAddr;

use toml::Spanned;

use super::super::model::*;
use super::super::raw::*;
use super::is_token;
use super::Checker;

/// Longest rule name (it is a metrics label value).
pub const MAX_RULE_NAME_LEN: usize = 128;

/// Validates a list of values: each element with `parse` (errors at the element, path
/// `path[i]`), duplicates (equal after parsing) reported, an empty list reported with
/// `empty` when that is given (an empty list is accepted otherwise). Absent: empty.
pub(super) fn list<R: Debug, T: PartialEq>(
    c: &mut Checker,
    raw: &Option<Spanned<Vec<Spanned<R>>>>,
    path: &str,
    empty: Option<&str>,
    mut parse: impl FnMut(&R) -> Result<T, String>,
) -> Vec<T> {
    let Some(values) = raw else {
        return Vec::new();
    };
    if let (true, Some(msg)) = (values.get_ref().is_empty(), empty) {
        c.error(values.span(), path, msg);
    }
    let mut out: Vec<T> = Vec::new();
    for (i, v) in values.get_ref().iter().enumerate() {
        match parse(v.get_ref()) {
            Ok(t) if out.contains(&t) => c.error(
                v.span(),
                &format!("{path}[{i}]"),
                format!("{:?} is listed twice", v.get_ref()),
            ),
            Ok(t) => out.push(t),
            Err(msg) => c.error(v.span(), &format!("{path}[{i}]"), msg),
        }
    }
    out
}

/// Istio's notation: exact, `prefix*`, `*suffix` or `*`; non-empty visible ASCII, `*` only
/// first or last (not both, unless it is the whole value).
pub(super) fn string_match(s: &str) -> Result<StringMatch, String> {
    if s.is_empty() {
        return Err("must not be empty (\"*\" matches any value)".to_string());
    }
    if let Some(bad) = s.chars().find(|ch| !ch.is_ascii_graphic()) {
        return Err(format!(
            "{s:?} contains {bad:?}; only visible ASCII can match"
        ));
    }
    let inner = s.strip_prefix('*').unwrap_or(s);
    let inner = inner.strip_suffix('*').unwrap_or(inner);
    let both = s.len() > 1 && s.starts_with('*') && s.ends_with('*');
    if both || inner.contains('*') {
        return Err(format!(
            "{s:?}: '*' is allowed only as the first or the last character (exact, \"prefix*\", \"*suffix\" or \"*\")"
        ));
    }
    Ok(StringMatch::parse(s))
}

/// `10.0.0.0/8`, `2001:db8::/32`, or a single address (its full-length prefix).
pub(super) fn ip_block(s: &str) -> Result<IpBlock, String> {
    let (addr_text, prefix_text) = match s.split_once('/') {
        Some((a, p)) => (a, Some(p)),
        None => (s, None),
    };
    let addr: IpAddr = addr_text.parse().map_err(|_| {
        format!("{s:?} is not an IP address or address block (e.g. \"10.0.0.0/8\", \"2001:db8::/32\" or \"192.0.2.7\")")
    })?;
    let (max, family) = if addr.is_ipv4() {
        (32, "IPv4")
    } else {
        (128, "IPv6")
    };
    let prefix = match prefix_text {
        None => max,
        Some(p) => match p.parse::<u8>() {
            Ok(n) if n <= max && p.bytes().all(|b| b.is_ascii_digit()) => n,
            _ => {
                return Err(format!(
                    "{s:?}: the prefix length of an {family} block is 0 to {max}"
                ))
            }
        },
    };
    Ok(IpBlock { addr, prefix })
}

/// The rules of one listener (`default_prefix` = its name) or one route (`<listener name>.
/// routes[<j>]`); `path` is `listeners[i].authz` or `listeners[i].routes[j].authz`.
pub(super) fn rules(
    c: &mut Checker,
    raw: &[Spanned<RawAuthzRule>],
    path: &str,
    default_prefix: &str,
    protocol: Protocol,
) -> Vec<AuthzRule> {
    raw.iter()
        .enumerate()
        .filter_map(|(i, r)| {
            rule(
                c,
                r,
                &format!("{path}[{i}]"),
                &format!("{default_prefix}.authz[{i}]"),
                protocol,
            )
        })
        .collect()
}

fn rule(
    c: &mut Checker,
    raw: &Spanned<RawAuthzRule>,
    path: &str,
    default_name: &str,
    protocol: Protocol,
) -> Option<AuthzRule> {
    let r = raw.get_ref();
    let name = match &r.name {
        None => default_name.to_string(),
        Some(n) => {
            let s = n.get_ref();
            let ok = !s.is_empty()
                && s.len() <= MAX_RULE_NAME_LEN
                && s.bytes()
                    .all(|b| b.is_ascii_graphic() && b != b'"' && b != b'\\');
            if !ok {
                c.error(
                    n.span(),
                    &format!("{path}.name"),
                    format!("{s:?}: rule names are 1 to {MAX_RULE_NAME_LEN} visible ASCII characters, without '\"' and '\\'"),
                );
            }
            s.clone()
        }
    };
    let action = match r.action.get_ref().as_str() {
        "allow" => Some(AuthzAction::Allow),
        "deny" => Some(AuthzAction::Deny),
        other => {
            c.error(
                r.action.span(),
                &format!("{path}.action"),
                format!("unknown action {other:?}; expected \"allow\" or \"deny\""),
            );
            None
        }
    };
    let from = r
        .from
        .as_ref()
        .map(|f| source(c, f, &format!("{path}.from")))
        .unwrap_or_default();
    let to =
        r.to.as_ref()
            .map(|t| operation(c, t, &format!("{path}.to"), protocol))
            .unwrap_or_default();
    Some(AuthzRule {
        name,
        action: action?,
        from,
        to,
    })
}

const EMPTY: &str = "must not be empty (leave the key out to match any value)";

fn source(c: &mut Checker, f: &RawAuthzFrom, path: &str) -> AuthzSource {
    let text = |s: &String| string_match(s);
    AuthzSource {
        principals: list(
            c,
            &f.principals,
            &format!("{path}.principals"),
            Some(EMPTY),
            text,
        ),
        namespaces: list(
            c,
            &f.namespaces,
            &format!("{path}.namespaces"),
            Some(EMPTY),
            text,
        ),
        ip_blocks: list(
            c,
            &f.ip_blocks,
            &format!("{path}.ip_blocks"),
            Some(EMPTY),
            |s: &String| ip_block(s),
        ),
    }
}

fn operation(c: &mut Checker, t: &RawAuthzTo, path: &str, protocol: Protocol) -> AuthzOperation {
    if protocol == Protocol::Tcp {
        for (key, v) in [
            ("hosts", &t.hosts),
            ("methods", &t.methods),
            ("paths", &t.paths),
        ] {
            if let Some(v) = v {
                c.error(
                    v.span(),
                    &format!("{path}.{key}"),
                    "a tcp listener sees no HTTP request (only `from` and `to.ports` apply)",
                );
            }
        }
    }
    AuthzOperation {
        hosts: list(
            c,
            &t.hosts,
            &format!("{path}.hosts"),
            Some(EMPTY),
            |s: &String| host(s),
        ),
        methods: list(
            c,
            &t.methods,
            &format!("{path}.methods"),
            Some(EMPTY),
            |s: &String| method(s),
        ),
        paths: list(
            c,
            &t.paths,
            &format!("{path}.paths"),
            Some(EMPTY),
            |s: &String| request_path(s),
        ),
        ports: list(
            c,
            &t.ports,
            &format!("{path}.ports"),
            Some(EMPTY),
            |n: &i64| match u16::try_from(*n) {
                Ok(p) if p > 0 => Ok(p),
                _ => Err(format!("must be between 1 and 65535, got {n}")),
            },
        ),
    }
}

/// The request authority without port, lower-cased, Istio notation.
fn host(s: &str) -> Result<StringMatch, String> {
    let lower = s.to_ascii_lowercase();
    if lower.contains(':') && !lower.starts_with('[') {
        return Err(format!(
            "{s:?}: hosts match the request's authority without its port"
        ));
    }
    string_match(&lower)
}

fn method(s: &str) -> Result<String, String> {
    let upper = s.to_ascii_uppercase();
    if upper.contains('*') {
        return Err(format!(
            "{s:?}: methods are matched exactly (\"GET\", \"POST\", ...); leave `methods` out to match any"
        ));
    }
    if !is_token(&upper) {
        return Err(format!("{s:?} is not a valid HTTP method (a token)"));
    }
    Ok(upper)
}

/// The path before `?`, Istio notation: `/exact`, `/prefix/*`, `*suffix` or `*`.
fn request_path(s: &str) -> Result<StringMatch, String> {
    if !s.is_empty() && !s.starts_with('/') && !s.starts_with('*') {
        return Err(format!(
            "{s:?} must start with '/' (or '*' for a suffix match)"
        ));
    }
    if let Some(bad) = s.chars().find(|&ch| ch == '?' || ch == '#') {
        return Err(format!(
            "{s:?} contains {bad:?}; paths are matched without the query"
        ));
    }
    string_match(s)
}

/// Rule names (given or default) are unique within a listener, its routes' rules included:
/// they label `ringway_authz_denied_total{listener,rule}`.
pub(super) fn check_rule_names(c: &mut Checker, l: &RawListener, path: &str) {
    let lname = l.name.get_ref();
    let mut all: Vec<(String, std::ops::Range<usize>, String)> = Vec::new();
    let mut add = |rules: &[Spanned<RawAuthzRule>], rpath: String, prefix: String| {
        for (i, r) in rules.iter().enumerate() {
            let (name, span) = match &r.get_ref().name {
                Some(n) => (n.get_ref().clone(), n.span()),
                None => (format!("{prefix}.authz[{i}]"), r.span()),
            };
            all.push((name, span, format!("{rpath}[{i}].name")));
        }
    };
    add(&l.authz, format!("{path}.authz"), lname.clone());
    for (j, route) in l.routes.iter().enumerate() {
        add(
            &route.get_ref().authz,
            format!("{path}.routes[{j}].authz"),
            format!("{lname}.routes[{j}]"),
        );
    }
    for (k, (name, span, rpath)) in all.iter().enumerate() {
        if all[..k].iter().any(|(n, _, _)| n == name) {
            c.error(
                span.clone(),
                rpath,
                format!("duplicate authz rule name {name:?} in this listener (names label ringway_authz_denied_total)"),
            );
        }
    }
}
