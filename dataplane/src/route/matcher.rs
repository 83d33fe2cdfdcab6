//! One route's compiled `match`, and the normalisation of the request's host and path that
//! every route shares (done once per request, not once per route).
//!
//! Invariants: patterns are stored lower-case and normalised at build time; matching only
//! compares bytes (no allocation, no panics on any input).

use crate::config::{HostMatch, RouteMatch, StringMatch};

use super::RequestView;

/// A compiled `RouteMatch`: all present conditions must hold.
#[derive(Debug, Clone)]
pub(super) struct Matcher {
    host: Option<HostPattern>,
    path_prefix: Option<Box<[u8]>>,
    headers: Box<[HeaderPattern]>,
    principal: Option<StringMatch>,
}

/// (lower-case name, exact value)
type HeaderPattern = (Box<str>, Box<[u8]>);

#[derive(Debug, Clone)]
enum HostPattern {
    /// Lower-case host without port or trailing dot.
    Exact(Box<[u8]>),
    /// Lower-case `.suffix` (from `*.suffix`); matches hosts with at least one byte before it.
    Suffix(Box<[u8]>),
}

impl Matcher {
    pub(super) fn new(m: &RouteMatch) -> Matcher {
        let host = m.host.as_ref().map(|h| match h {
            HostMatch::Exact(s) => {
                HostPattern::Exact(normalize_host(s.as_bytes()).to_ascii_lowercase().into())
            }
            HostMatch::Suffix(s) => {
                let s = s.strip_prefix('*').unwrap_or(s);
                let s = s.strip_suffix('.').filter(|t| !t.is_empty()).unwrap_or(s);
                // Always anchor on a label boundary: `*.a.com` must not match `bada.com`.
                let mut suffix = Vec::with_capacity(s.len() + 1);
                if !s.starts_with('.') {
                    suffix.push(b'.');
                }
                suffix.extend(s.bytes().map(|b| b.to_ascii_lowercase()));
                HostPattern::Suffix(suffix.into())
            }
        });
        Matcher {
            host,
            path_prefix: m.path_prefix.as_ref().map(|p| p.as_bytes().into()),
            headers: m
                .headers
                .iter()
                .map(|(n, v)| (n.to_ascii_lowercase().into(), v.as_bytes().into()))
                .collect(),
            principal: m.principal.clone(),
        }
    }

    /// `host` is the request's [`normalize_host`]d host, `path` its [`match_path`].
    #[inline]
    pub(super) fn matches<R: RequestView>(
        &self,
        host: Option<&[u8]>,
        path: &[u8],
        req: &R,
    ) -> bool {
        if let Some(prefix) = &self.path_prefix {
            if !path.starts_with(prefix) {
                return false;
            }
        }
        if let Some(pattern) = &self.host {
            let Some(host) = host else { return false };
            let ok = match pattern {
                HostPattern::Exact(want) => host.eq_ignore_ascii_case(want),
                HostPattern::Suffix(suffix) => host
                    .len()
                    .checked_sub(suffix.len())
                    .filter(|&at| at > 0)
                    .and_then(|at| host.get(at..))
                    .is_some_and(|tail| tail.eq_ignore_ascii_case(suffix)),
            };
            if !ok {
                return false;
            }
        }
        if let Some(p) = &self.principal {
            if !req.principal().is_some_and(|id| p.matches(id)) {
                return false;
            }
        }
        self.headers
            .iter()
            .all(|(name, want)| req.header(name) == Some(&want[..]))
    }
}

/// The host part of a `Host` value: the port is dropped (`a.com:8080` → `a.com`,
/// `[::1]:8080` → `[::1]`, brackets kept) and so is one trailing dot (`a.com.` → `a.com`, the
/// same DNS name — otherwise a host-restricted route could be bypassed with it). A value with
/// several colons and no brackets (invalid) is kept whole, so it matches nothing sensible.
#[inline]
pub fn normalize_host(raw: &[u8]) -> &[u8] {
    let host = if raw.first() == Some(&b'[') {
        match raw.iter().position(|&b| b == b']') {
            Some(end) => raw.get(..=end).unwrap_or(raw),
            None => raw,
        }
    } else {
        let mut colons = raw.iter().enumerate().filter(|(_, &b)| b == b':');
        match (colons.next(), colons.next()) {
            (Some((at, _)), None) => raw.get(..at).unwrap_or(raw),
            _ => raw,
        }
    };
    match host.split_last() {
        Some((b'.', rest)) if !rest.is_empty() => rest,
        _ => host,
    }
}

/// The path that `path_prefix` applies to: the request target up to (not including) the
/// first `?`. For an absolute-form target (`http://host/p?q`, RFC 9112 §3.2.2) the path after
/// the authority, `/` when it has none.
#[inline]
pub fn match_path(target: &[u8]) -> &[u8] {
    let path = if target.first() == Some(&b'/') {
        target
    } else {
        absolute_form_path(target).unwrap_or(target)
    };
    match path.iter().position(|&b| b == b'?') {
        Some(q) => path.get(..q).unwrap_or(path),
        None => path,
    }
}

fn absolute_form_path(target: &[u8]) -> Option<&[u8]> {
    let scheme_end = target.windows(3).position(|w| w == b"://")?;
    let rest = target.get(scheme_end + 3..)?;
    let end = rest
        .iter()
        .position(|&b| b == b'/' || b == b'?')
        .unwrap_or(rest.len());
    match rest.get(end..) {
        Some(p) if p.first() == Some(&b'/') => Some(p),
        _ => Some(b"/"),
    }
}
