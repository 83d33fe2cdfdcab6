//! Validation of the keys that say how connections are carried rather than what HTTP does
//! with them: a listener's `protocol`, `interception`, `proxy_protocol` and
//! `connect_attempts`, a cluster's `type` and `proxy_protocol`, and the rules between them
//! (a `tcp` listener has a cluster and no routes; an `original_destination` cluster has no
//! endpoints and is reached only from intercepting listeners).

use super::super::model::*;
use super::super::raw::*;
use super::Checker;

/// Most endpoints a `tcp` listener tries per connection.
pub const MAX_CONNECT_ATTEMPTS: i64 = 10;

pub(super) fn protocol(c: &mut Checker, raw: &Option<Text>, path: &str) -> Protocol {
    let Some(p) = raw else {
        return Protocol::Http;
    };
    match p.get_ref().as_str() {
        "http" => Protocol::Http,
        "tcp" => Protocol::Tcp,
        other => {
            c.error(
                p.span(),
                &format!("{path}.protocol"),
                format!("unknown protocol {other:?}; expected \"http\" or \"tcp\""),
            );
            Protocol::Http
        }
    }
}

pub(super) fn interception(c: &mut Checker, raw: &Option<Text>, path: &str) -> Interception {
    let Some(p) = raw else {
        return Interception::None;
    };
    match p.get_ref().as_str() {
        "none" => Interception::None,
        "redirect" => Interception::Redirect,
        "tproxy" => Interception::Tproxy,
        other => {
            c.error(
                p.span(),
                &format!("{path}.interception"),
                format!(
                    "unknown interception {other:?}; expected \"none\", \"redirect\" (iptables REDIRECT) or \"tproxy\" (iptables TPROXY)"
                ),
            );
            Interception::None
        }
    }
}

/// The keys of a listener that depend on its protocol.
pub(super) fn listener_rules(
    c: &mut Checker,
    l: &RawListener,
    protocol: Protocol,
    path: &str,
) -> u32 {
    let attempts = c.int(
        &l.connect_attempts,
        path,
        "connect_attempts",
        1,
        MAX_CONNECT_ATTEMPTS,
        1,
    );
    if protocol == Protocol::Http {
        if let Some(a) = &l.connect_attempts {
            c.error(
                a.span(),
                &format!("{path}.connect_attempts"),
                "applies to protocol = \"tcp\" listeners only (HTTP retries are route policy: [listeners.routes.retry])",
            );
        }
        return 1;
    }
    if l.cluster.is_none() {
        let msg = if l.sni_routes.is_empty() {
            "a protocol = \"tcp\" listener needs a `cluster` to relay to"
        } else {
            "a protocol = \"tcp\" listener needs a `cluster` to relay to (with sni_routes: for connections whose ClientHello names none of their server_names)"
        };
        c.error(l.name.span(), path, msg);
    }
    if let Some(r) = l.routes.first() {
        c.error(
            r.span(),
            &format!("{path}.routes"),
            "a protocol = \"tcp\" listener has no routes (it relays bytes to its `cluster`)",
        );
    }
    if let Some(lim) = &l.limits {
        let http_only = [
            (
                "max_request_head_bytes",
                lim.max_request_head_bytes.as_ref().map(|v| v.span()),
            ),
            (
                "max_request_target_bytes",
                lim.max_request_target_bytes.as_ref().map(|v| v.span()),
            ),
            ("max_headers", lim.max_headers.as_ref().map(|v| v.span())),
            (
                "max_request_body_bytes",
                lim.max_request_body_bytes.as_ref().map(|v| v.span()),
            ),
            (
                "request_head_timeout",
                lim.request_head_timeout.as_ref().map(|v| v.span()),
            ),
        ];
        for (key, span) in http_only {
            if let Some(span) = span {
                c.error(
                    span,
                    &format!("{path}.limits.{key}"),
                    "applies to protocol = \"http\" listeners only",
                );
            }
        }
    }
    u32::try_from(attempts).unwrap_or(1)
}

pub(super) fn host_mismatch(
    c: &mut Checker,
    raw: &Option<Text>,
    protocol: Protocol,
    path: &str,
) -> HostMismatch {
    let Some(v) = raw else {
        return HostMismatch::UseTarget;
    };
    let key = format!("{path}.host_mismatch");
    if protocol == Protocol::Tcp {
        c.error(
            v.span(),
            &key,
            "applies to protocol = \"http\" listeners only",
        );
    }
    match v.get_ref().as_str() {
        "use_target" => HostMismatch::UseTarget,
        "reject" => HostMismatch::Reject,
        other => {
            c.error(
                v.span(),
                &key,
                format!("unknown value {other:?}; expected \"use_target\" or \"reject\""),
            );
            HostMismatch::UseTarget
        }
    }
}

pub(super) fn cluster_kind(c: &mut Checker, raw: &RawCluster, path: &str) -> ClusterKind {
    let Some(k) = &raw.kind else {
        return ClusterKind::Static;
    };
    match k.get_ref().as_str() {
        "static" => ClusterKind::Static,
        "original_destination" => ClusterKind::OriginalDestination,
        other => {
            c.error(
                k.span(),
                &format!("{path}.type"),
                format!("unknown cluster type {other:?}; expected \"static\" or \"original_destination\""),
            );
            ClusterKind::Static
        }
    }
}

/// Keys an `original_destination` cluster cannot have (it has no endpoint list).
pub(super) fn original_destination_rules(c: &mut Checker, raw: &RawCluster, path: &str) {
    let not_here = "an original_destination cluster has no endpoint list";
    let spans = [
        ("endpoints", raw.endpoints.as_ref().map(|v| v.span())),
        ("lb", raw.lb.as_ref().map(|v| v.span())),
        ("hash_key", raw.hash_key.as_ref().map(|v| v.span())),
        ("dns_refresh", raw.dns_refresh.as_ref().map(|v| v.span())),
        (
            "health_check",
            raw.health_check.as_ref().map(|h| h.path.span()),
        ),
        (
            "when_all_unhealthy",
            raw.when_all_unhealthy.as_ref().map(|v| v.span()),
        ),
    ];
    for (key, span) in spans {
        if let Some(span) = span {
            c.error(
                span,
                &format!("{path}.{key}"),
                format!("{not_here}: remove `{key}`"),
            );
        }
    }
    if raw.outlier_detection.is_some() {
        c.error(
            raw.name.span(),
            &format!("{path}.outlier_detection"),
            format!("{not_here}: remove [clusters.outlier_detection]"),
        );
    }
}

pub(super) fn proxy_protocol_version(
    c: &mut Checker,
    raw: &Option<Text>,
    path: &str,
) -> Option<ProxyProtocolVersion> {
    let v = raw.as_ref()?;
    match v.get_ref().as_str() {
        "v1" => Some(ProxyProtocolVersion::V1),
        "v2" => Some(ProxyProtocolVersion::V2),
        other => {
            c.error(
                v.span(),
                &format!("{path}.proxy_protocol"),
                format!("unknown PROXY protocol version {other:?}; expected \"v1\" or \"v2\""),
            );
            None
        }
    }
}

/// Every cluster a listener can send to: its default, those of its `sni_routes` and those
/// of its routes (clusters, splits, mirrors).
pub(super) fn clusters_reached(l: &ListenerConfig) -> impl Iterator<Item = ClusterId> + '_ {
    let sni = l.sni_routes.iter().map(|r| r.cluster);
    l.cluster
        .into_iter()
        .chain(sni)
        .chain(l.routes.iter().flat_map(|r| {
            let action: Vec<ClusterId> = match &r.action {
                RouteAction::Cluster(id) => vec![*id],
                RouteAction::Split(s) => s.iter().map(|w| w.cluster).collect(),
                RouteAction::Direct { .. } => Vec::new(),
            };
            action
                .into_iter()
                .chain(r.policy.mirror.as_ref().map(|m| m.cluster))
        }))
}

/// An `original_destination` cluster needs the original destination, which only an
/// intercepting listener knows; mirroring to one is refused (a shadow has no destination).
pub(super) fn reachability(
    c: &mut Checker,
    raw: &RawListener,
    l: &ListenerConfig,
    clusters: &[ClusterConfig],
    path: &str,
) {
    let kind = |id: ClusterId| clusters.get(id.0 as usize).map(|c| c.kind);
    for id in clusters_reached(l) {
        if kind(id) == Some(ClusterKind::OriginalDestination)
            && l.interception == Interception::None
        {
            let name = &clusters[id.0 as usize].name;
            c.error(
                raw.bind.span(),
                path,
                format!(
                    "sends to original_destination cluster {name:?} but does not intercept: set interception = \"redirect\" or \"tproxy\""
                ),
            );
            return;
        }
    }
    for r in &l.routes {
        if let Some(m) = &r.policy.mirror {
            if kind(m.cluster) == Some(ClusterKind::OriginalDestination) {
                c.error(
                    raw.bind.span(),
                    path,
                    "a route cannot mirror to an original_destination cluster",
                );
            }
        }
    }
}
