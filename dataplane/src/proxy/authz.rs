//! The authorization step of an HTTP request: the listener's rules, then the matched
//! route's, over the connection's verified identity, its client address and the request
//! (see `policy::authz` for the semantics). A denial is answered `403` by the caller and
//! counted by rule.
//!
//! Invariant: a listener and route without rules cost one emptiness check each.

use crate::config::{ListenerConfig, RouteConfig};
use crate::http::{HeadView, RequestView};
use crate::policy::authz::{evaluate, AuthzInput, Decision, HttpInput};
use crate::route::{match_path, normalize_host};
use crate::worker::ListenerView;

use super::downstream::Downstream;

/// The body of a denial (Envoy's RBAC filter answers the same).
pub const DENIED_BODY: &[u8] = b"RBAC: access denied\n";

/// The rule that denies this request, if one does.
pub fn denied<'a>(
    lcfg: &'a ListenerConfig,
    lv: &'a ListenerView,
    route: Option<(usize, &'a RouteConfig)>,
    ds: &Downstream,
) -> Option<&'a str> {
    let route_rules = route.map_or(&[][..], |(_, r)| &r.policy.authz[..]);
    if lcfg.authz.is_empty() && route_rules.is_empty() {
        return None;
    }
    let buf = ds.inb.bytes();
    let hv = HeadView {
        head: &ds.head,
        buf,
    };
    let peer = ds.stream.peer();
    let input = AuthzInput {
        principal: peer.and_then(|p| p.identity.as_deref()),
        namespace: peer.and_then(|p| p.namespace.as_deref()),
        source_ip: ds.info.peer.ip(),
        port: ds.info.original_dst.unwrap_or(ds.info.local).port(),
        http: Some(HttpInput {
            host: hv.host().map(normalize_host),
            method: ds.head.method_span.get(buf),
            path: match_path(hv.path()),
        }),
    };
    if let Decision::Deny(rule) = evaluate(&lcfg.authz, &lv.authz_name, &input) {
        return Some(rule);
    }
    let (index, _) = route?;
    let name = lv.route_authz_names.get(index).map_or("route", |n| &**n);
    match evaluate(route_rules, name, &input) {
        Decision::Deny(rule) => Some(rule),
        Decision::Allow => None,
    }
}
