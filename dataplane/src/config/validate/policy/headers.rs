//! Validation of `[listeners.routes.headers]`: header edits on the request and the response,
//! and `path_prefix_rewrite`.
//!
//! Invariants of the output: names are lower-case HTTP tokens, never one of
//! [`MANAGED_HEADERS`]; each list is sorted by name without repeats; on each side (request,
//! response) a name is in at most one of add, set, remove; values are visible ASCII with
//! inner spaces or tabs, at most [`MAX_HEADER_VALUE_BYTES`]; a direct route has only
//! response edits; `path_prefix_rewrite` starts with '/' and its route matches a
//! `path_prefix`. A table with nothing in it gives `None`.

use std::collections::BTreeMap;
use std::ops::Range;

use super::super::super::model::HeaderPolicy;
use super::super::super::raw::{RawHeaders, Text};
use super::super::is_token;
use super::super::Checker;
use super::RouteFacts;

/// Headers the proxy frames or manages itself (hop-by-hop, framing, `Host`): no edits.
pub const MANAGED_HEADERS: &[&str] = &[
    "host",
    "content-length",
    "transfer-encoding",
    "connection",
    "upgrade",
    "te",
    "trailer",
    "keep-alive",
    "proxy-connection",
];
pub const MAX_HEADER_VALUE_BYTES: usize = 8192;

/// Names already used on one side, with the key that used them.
type Seen = Vec<(String, &'static str)>;

pub(super) fn header_policy(
    c: &mut Checker,
    raw: &RawHeaders,
    path: &str,
    facts: &RouteFacts,
) -> Option<HeaderPolicy> {
    if facts.direct {
        refuse_on_direct(c, raw, path, facts);
    }
    let mut seen = Seen::new();
    let (request_set, request_add, request_remove) = if facts.direct {
        (Vec::new(), Vec::new(), Vec::new())
    } else {
        (
            pairs(c, raw.request_set.as_ref(), path, "request_set", &mut seen),
            pairs(c, raw.request_add.as_ref(), path, "request_add", &mut seen),
            names(
                c,
                raw.request_remove.as_ref(),
                path,
                "request_remove",
                &mut seen,
            ),
        )
    };
    let mut seen = Seen::new();
    let response_set = pairs(
        c,
        raw.response_set.as_ref(),
        path,
        "response_set",
        &mut seen,
    );
    let response_add = pairs(
        c,
        raw.response_add.as_ref(),
        path,
        "response_add",
        &mut seen,
    );
    let response_remove = names(
        c,
        raw.response_remove.as_ref(),
        path,
        "response_remove",
        &mut seen,
    );
    let path_prefix_rewrite = match (&raw.path_prefix_rewrite, facts.direct) {
        (Some(p), false) => rewrite(c, p, path, facts.has_path_prefix),
        _ => None,
    };
    let policy = HeaderPolicy {
        request_add,
        request_set,
        request_remove,
        response_add,
        response_set,
        response_remove,
        path_prefix_rewrite,
    };
    (policy != HeaderPolicy::default()).then_some(policy)
}

/// A direct route has no upstream request: every request-side key is an error.
fn refuse_on_direct(c: &mut Checker, raw: &RawHeaders, path: &str, facts: &RouteFacts) {
    let first_key = |m: Option<&BTreeMap<Text, Text>>| m.map(|m| m.keys().next().map(Text::span));
    let given: [(&str, Option<Option<Range<usize>>>); 4] = [
        ("request_add", first_key(raw.request_add.as_ref())),
        ("request_set", first_key(raw.request_set.as_ref())),
        (
            "request_remove",
            raw.request_remove
                .as_ref()
                .map(|v| v.first().map(Text::span)),
        ),
        (
            "path_prefix_rewrite",
            raw.path_prefix_rewrite.as_ref().map(|p| Some(p.span())),
        ),
    ];
    for (key, span) in given {
        if let Some(span) = span {
            c.error(
                span.unwrap_or_else(|| facts.span.clone()),
                &format!("{path}.{key}"),
                "a direct route sends no upstream request; only response_* edits apply",
            );
        }
    }
}

/// A checked header name, lower-cased, or `None` after recording why not.
fn name(
    c: &mut Checker,
    name: &Text,
    key: &'static str,
    path: &str,
    seen: &mut Seen,
) -> Option<String> {
    let kpath = format!("{path}.{key}");
    let lower = name.get_ref().to_ascii_lowercase();
    if !is_token(&lower) {
        c.error(
            name.span(),
            &kpath,
            format!("{:?} is not a valid header name", name.get_ref()),
        );
        return None;
    }
    if MANAGED_HEADERS.contains(&lower.as_str()) {
        c.error(
            name.span(),
            &kpath,
            format!("{lower:?} cannot be added, set or removed: Ringway manages the hop-by-hop, framing and Host headers itself"),
        );
        return None;
    }
    match seen.iter().find(|(n, _)| *n == lower) {
        Some((_, other)) if *other == key => {
            c.error(
                name.span(),
                &kpath,
                format!("header {lower:?} is listed twice (names are case-insensitive)"),
            );
            None
        }
        Some((_, other)) => {
            c.error(
                name.span(),
                &kpath,
                format!("header {lower:?} is also in {other}; a header goes in at most one of add, set and remove"),
            );
            None
        }
        None => {
            seen.push((lower.clone(), key));
            Some(lower)
        }
    }
}

fn pairs(
    c: &mut Checker,
    map: Option<&BTreeMap<Text, Text>>,
    path: &str,
    key: &'static str,
    seen: &mut Seen,
) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for (n, v) in map.into_iter().flatten() {
        let Some(lower) = name(c, n, key, path, seen) else {
            continue;
        };
        if let Err(msg) = check_value(v.get_ref()) {
            c.error(v.span(), &format!("{path}.{key}.{lower}"), msg);
            continue;
        }
        out.push((lower, v.get_ref().clone()));
    }
    out.sort();
    out
}

fn names(
    c: &mut Checker,
    list: Option<&Vec<Text>>,
    path: &str,
    key: &'static str,
    seen: &mut Seen,
) -> Vec<String> {
    let mut out: Vec<String> = list
        .into_iter()
        .flatten()
        .filter_map(|n| name(c, n, key, path, seen))
        .collect();
    out.sort();
    out
}

/// A header value to send: visible ASCII, spaces and tabs only inside; may be empty.
fn check_value(v: &str) -> Result<(), String> {
    if v.len() > MAX_HEADER_VALUE_BYTES {
        return Err(format!(
            "must be at most {MAX_HEADER_VALUE_BYTES} bytes, got {}",
            v.len()
        ));
    }
    if v.starts_with([' ', '\t']) || v.ends_with([' ', '\t']) {
        return Err(format!(
            "{v:?}: leading or trailing whitespace is not part of a header value"
        ));
    }
    match v
        .chars()
        .find(|&ch| !(ch.is_ascii_graphic() || ch == ' ' || ch == '\t'))
    {
        Some(bad) => Err(format!(
            "{v:?} contains {bad:?}; header values are visible ASCII, spaces and tabs"
        )),
        None => Ok(()),
    }
}

fn rewrite(c: &mut Checker, p: &Text, path: &str, has_path_prefix: bool) -> Option<String> {
    let kpath = format!("{path}.path_prefix_rewrite");
    let s = p.get_ref();
    let problem = if !has_path_prefix {
        Some("needs the route to match a path_prefix (the prefix it replaces)".to_string())
    } else if !s.starts_with('/') {
        Some(format!("{s:?} must start with '/'"))
    } else {
        s.chars()
            .find(|&ch| !ch.is_ascii_graphic() || ch == '?' || ch == '#')
            .map(|bad| {
                format!("{s:?} contains {bad:?}; a path prefix is visible ASCII without '?' or '#' (percent-encode the rest)")
            })
    };
    match problem {
        Some(msg) => {
            c.error(p.span(), &kpath, msg);
            None
        }
        None => Some(s.clone()),
    }
}
