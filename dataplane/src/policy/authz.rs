//! Authorization (Istio's AuthorizationPolicy model): evaluating a list of rules against what
//! is known of a request or a connection.
//!
//! ```text
//!  any deny rule matches            → Deny(that rule)
//!  else no allow rule in the list   → Allow
//!  else an allow rule matches       → Allow
//!  else                             → Deny(the list's name: nothing allowed it)
//! ```
//!
//! A rule matches when every field given in its `from` and `to` holds, and a field holds when
//! any of its values matches (principals and namespaces need a verified client identity; a
//! connection without one matches no principal). A TCP connection has no host, method or
//! path: a rule that asks for them does not match it (validation keeps them out of TCP
//! listeners' rules).
//!
//! Invariants: evaluation is pure and allocation-free; an empty list allows everything.

use std::net::IpAddr;

use crate::config::{AuthzAction, AuthzRule, StringMatch};

/// What the rules see of a request (HTTP) or a connection (TCP, no `http`).
#[derive(Debug, Clone, Copy)]
pub struct AuthzInput<'a> {
    /// The verified client identity (SPIFFE ID or DNS SAN), if any.
    pub principal: Option<&'a str>,
    /// Its namespace (SPIFFE IDs only).
    pub namespace: Option<&'a str>,
    /// The client's address (after a PROXY protocol header).
    pub source_ip: IpAddr,
    /// The destination port (the listener's, or the original destination's).
    pub port: u16,
    pub http: Option<HttpInput<'a>>,
}

/// The HTTP part of an [`AuthzInput`].
#[derive(Debug, Clone, Copy)]
pub struct HttpInput<'a> {
    /// Host without port (as routing normalised it).
    pub host: Option<&'a [u8]>,
    pub method: &'a [u8],
    /// The path before `?`.
    pub path: &'a [u8],
}

/// The outcome of a rule list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision<'a> {
    Allow,
    /// Denied by this rule name (or by the list's name when no allow rule matched).
    Deny(&'a str),
}

/// Evaluates `rules` (a listener's or a route's) for `input`; `list_name` names a denial
/// that no single rule made (no allow rule matched).
pub fn evaluate<'a>(
    rules: &'a [AuthzRule],
    list_name: &'a str,
    input: &AuthzInput<'_>,
) -> Decision<'a> {
    if rules.is_empty() {
        return Decision::Allow;
    }
    let mut any_allow = false;
    for r in rules.iter().filter(|r| r.action == AuthzAction::Deny) {
        if matches(r, input) {
            return Decision::Deny(&r.name);
        }
    }
    for r in rules.iter().filter(|r| r.action == AuthzAction::Allow) {
        any_allow = true;
        if matches(r, input) {
            return Decision::Allow;
        }
    }
    if any_allow {
        Decision::Deny(list_name)
    } else {
        Decision::Allow
    }
}

fn str_match(m: &StringMatch, v: &[u8], ignore_case: bool) -> bool {
    let Ok(v) = std::str::from_utf8(v) else {
        return false;
    };
    if ignore_case {
        m.matches_ignore_case(v)
    } else {
        m.matches(v)
    }
}

/// Whether every given field of `r` holds for `input`.
pub fn matches(r: &AuthzRule, input: &AuthzInput<'_>) -> bool {
    let f = &r.from;
    if !f.principals.is_empty()
        && !input
            .principal
            .is_some_and(|p| f.principals.iter().any(|m| m.matches(p)))
    {
        return false;
    }
    if !f.namespaces.is_empty()
        && !input
            .namespace
            .is_some_and(|n| f.namespaces.iter().any(|m| m.matches(n)))
    {
        return false;
    }
    if !f.ip_blocks.is_empty() && !f.ip_blocks.iter().any(|b| b.contains(input.source_ip)) {
        return false;
    }
    let t = &r.to;
    if !t.ports.is_empty() && !t.ports.contains(&input.port) {
        return false;
    }
    if t.hosts.is_empty() && t.methods.is_empty() && t.paths.is_empty() {
        return true;
    }
    let Some(h) = &input.http else {
        return false;
    };
    if !t.hosts.is_empty()
        && !h
            .host
            .is_some_and(|host| t.hosts.iter().any(|m| str_match(m, host, true)))
    {
        return false;
    }
    if !t.methods.is_empty() && !t.methods.iter().any(|m| m.as_bytes() == h.method) {
        return false;
    }
    if !t.paths.is_empty() && !t.paths.iter().any(|m| str_match(m, h.path, false)) {
        return false;
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{AuthzOperation, AuthzSource, IpBlock};

    fn rule(name: &str, action: AuthzAction, from: AuthzSource, to: AuthzOperation) -> AuthzRule {
        AuthzRule {
            name: name.into(),
            action,
            from,
            to,
        }
    }

    fn input<'a>(principal: Option<&'a str>, method: &'a str, path: &'a str) -> AuthzInput<'a> {
        AuthzInput {
            principal,
            namespace: principal.and_then(crate::tls::identity::namespace),
            source_ip: "10.1.2.3".parse().unwrap(),
            port: 8080,
            http: Some(HttpInput {
                host: Some(b"Cart.Shop"),
                method: method.as_bytes(),
                path: path.as_bytes(),
            }),
        }
    }

    const FRONT: &str = "spiffe://cluster.local/ns/shop/sa/frontend";

    #[test]
    fn istio_semantics_table() {
        let allow_front = rule(
            "allow-front",
            AuthzAction::Allow,
            AuthzSource {
                principals: vec![StringMatch::parse("spiffe://cluster.local/ns/shop/sa/*")],
                ..Default::default()
            },
            AuthzOperation {
                methods: vec!["GET".into(), "POST".into()],
                paths: vec![StringMatch::parse("/cart*")],
                ..Default::default()
            },
        );
        let deny_admin = rule(
            "deny-admin",
            AuthzAction::Deny,
            AuthzSource::default(),
            AuthzOperation {
                paths: vec![StringMatch::parse("/cart/admin*")],
                ..Default::default()
            },
        );
        let rules = vec![allow_front, deny_admin];
        let cases: &[(Option<&str>, &str, &str, Decision<'_>)] = &[
            (Some(FRONT), "GET", "/cart/1", Decision::Allow),
            (Some(FRONT), "POST", "/cart", Decision::Allow),
            (Some(FRONT), "DELETE", "/cart/1", Decision::Deny("l.authz")),
            (Some(FRONT), "GET", "/orders", Decision::Deny("l.authz")),
            (
                Some(FRONT),
                "GET",
                "/cart/admin/x",
                Decision::Deny("deny-admin"),
            ),
            (None, "GET", "/cart/1", Decision::Deny("l.authz")),
            (
                Some("spiffe://cluster.local/ns/pay/sa/x"),
                "GET",
                "/cart",
                Decision::Deny("l.authz"),
            ),
        ];
        for (p, m, path, want) in cases {
            assert_eq!(
                evaluate(&rules, "l.authz", &input(*p, m, path)),
                *want,
                "{p:?} {m} {path}"
            );
        }
        // Only deny rules: everything else is allowed.
        let only_deny = vec![rules[1].clone()];
        assert_eq!(
            evaluate(&only_deny, "l", &input(None, "GET", "/x")),
            Decision::Allow
        );
        assert_eq!(
            evaluate(&[], "l", &input(None, "GET", "/x")),
            Decision::Allow
        );
    }

    #[test]
    fn sources_namespaces_hosts_ports() {
        let r = |from: AuthzSource, to: AuthzOperation| rule("r", AuthzAction::Allow, from, to);
        let i = input(Some(FRONT), "GET", "/");
        assert!(matches(
            &r(
                AuthzSource {
                    namespaces: vec![StringMatch::parse("shop")],
                    ip_blocks: vec![IpBlock {
                        addr: "10.0.0.0".parse().unwrap(),
                        prefix: 8
                    }],
                    ..Default::default()
                },
                AuthzOperation {
                    hosts: vec![StringMatch::parse("cart.shop")],
                    ports: vec![8080],
                    ..Default::default()
                }
            ),
            &i
        ));
        for (from, to) in [
            (
                AuthzSource {
                    namespaces: vec![StringMatch::parse("pay")],
                    ..Default::default()
                },
                AuthzOperation::default(),
            ),
            (
                AuthzSource {
                    ip_blocks: vec![IpBlock {
                        addr: "192.168.0.0".parse().unwrap(),
                        prefix: 16,
                    }],
                    ..Default::default()
                },
                AuthzOperation::default(),
            ),
            (
                AuthzSource::default(),
                AuthzOperation {
                    ports: vec![9090],
                    ..Default::default()
                },
            ),
            (
                AuthzSource::default(),
                AuthzOperation {
                    hosts: vec![StringMatch::parse("*.other")],
                    ..Default::default()
                },
            ),
        ] {
            assert!(!matches(&r(from, to), &i));
        }
        // A TCP connection: HTTP fields never match, `from` and ports do.
        let tcp = AuthzInput { http: None, ..i };
        let paths = r(
            AuthzSource::default(),
            AuthzOperation {
                paths: vec![StringMatch::Any],
                ..Default::default()
            },
        );
        assert!(!matches(&paths, &tcp));
        assert!(matches(
            &r(
                AuthzSource::default(),
                AuthzOperation {
                    ports: vec![8080],
                    ..Default::default()
                }
            ),
            &tcp
        ));
    }
}
