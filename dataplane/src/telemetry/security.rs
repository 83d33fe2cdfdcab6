//! Security counters whose labels are only known at run time — TLS handshake results per
//! listener and cluster, peer identities per listener, authorization denials per rule,
//! passthrough routing results — and the expiry of every loaded certificate.
//!
//! Recorded per core like every other metric (a `RefCell` borrowed within one call); never on
//! the per-request path of an allowed plaintext request. A new label value allocates once,
//! the first time it is seen; at most [`MAX_SERIES`] series are kept per core, later new
//! values are counted under the label value `other` (identities are client-controlled).

use std::cell::RefCell;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};

/// TLS material reloads (SIGHUP or changed files) that loaded, and that were rejected (the
/// previous material kept serving). Process-wide: written by the control thread only, a few
/// times a day, never on a worker.
pub static TLS_RELOADS_OK: AtomicU64 = AtomicU64::new(0);
pub static TLS_RELOADS_REJECTED: AtomicU64 = AtomicU64::new(0);

/// Series kept per core before new label values fold into `other`.
pub const MAX_SERIES: usize = 512;

/// The families.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum SecurityFamily {
    /// `ringway_tls_handshakes_total{listener, result}`
    DownstreamHandshake,
    /// `ringway_tls_peer_connections_total{listener, identity}`
    PeerIdentity,
    /// `ringway_authz_denied_total{listener, rule}`
    AuthzDenied,
    /// `ringway_tls_passthrough_total{listener, result}`
    Passthrough,
    /// `ringway_upstream_tls_handshakes_total{cluster, result}`
    UpstreamHandshake,
}

impl SecurityFamily {
    const ALL: [SecurityFamily; 5] = [
        SecurityFamily::DownstreamHandshake,
        SecurityFamily::PeerIdentity,
        SecurityFamily::AuthzDenied,
        SecurityFamily::Passthrough,
        SecurityFamily::UpstreamHandshake,
    ];

    /// (metric name, owner label, value label, help)
    fn describe(self) -> (&'static str, &'static str, &'static str, &'static str) {
        match self {
            SecurityFamily::DownstreamHandshake => (
                "ringway_tls_handshakes_total",
                "listener",
                "result",
                "TLS handshakes with downstream clients, by result.",
            ),
            SecurityFamily::PeerIdentity => (
                "ringway_tls_peer_connections_total",
                "listener",
                "identity",
                "Downstream TLS connections by verified client identity (SPIFFE ID or DNS SAN; none = no client certificate).",
            ),
            SecurityFamily::AuthzDenied => (
                "ringway_authz_denied_total",
                "listener",
                "rule",
                "Requests (HTTP) or connections (TCP) denied by an authorization rule.",
            ),
            SecurityFamily::Passthrough => (
                "ringway_tls_passthrough_total",
                "listener",
                "result",
                "Connections of sni_routes listeners by routing result.",
            ),
            SecurityFamily::UpstreamHandshake => (
                "ringway_upstream_tls_handshakes_total",
                "cluster",
                "result",
                "TLS handshakes with upstream endpoints, by result.",
            ),
        }
    }
}

/// One series.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecuritySeries {
    pub family: SecurityFamily,
    pub owner: Box<str>,
    pub label: Box<str>,
    pub count: u64,
}

/// A loaded certificate's expiry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertExpiry {
    pub owner: String,
    pub file: String,
    pub name: String,
    /// Unix seconds.
    pub not_after: i64,
}

/// One core's security counters.
#[derive(Debug, Default)]
pub struct SecurityCounters {
    series: RefCell<Vec<SecuritySeries>>,
}

impl SecurityCounters {
    pub fn bump(&self, family: SecurityFamily, owner: &str, label: &str) {
        let mut s = self.series.borrow_mut();
        if let Some(e) = s
            .iter_mut()
            .find(|e| e.family == family && &*e.owner == owner && &*e.label == label)
        {
            e.count += 1;
            return;
        }
        let label = if s.len() >= MAX_SERIES {
            "other"
        } else {
            label
        };
        if let Some(e) = s
            .iter_mut()
            .find(|e| e.family == family && &*e.owner == owner && &*e.label == label)
        {
            e.count += 1;
            return;
        }
        s.push(SecuritySeries {
            family,
            owner: owner.into(),
            label: label.into(),
            count: 1,
        });
    }

    pub fn snapshot(&self) -> Vec<SecuritySeries> {
        self.series.borrow().clone()
    }
}

/// Adds `other`'s series into `mine` (by family, owner and label).
pub fn merge(mine: &mut Vec<SecuritySeries>, other: &[SecuritySeries]) {
    for o in other {
        match mine
            .iter_mut()
            .find(|m| m.family == o.family && m.owner == o.owner && m.label == o.label)
        {
            Some(m) => m.count = m.count.wrapping_add(o.count),
            None => mine.push(o.clone()),
        }
    }
}

fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Renders the series and certificate expiries (seconds left at `now`, Unix seconds).
pub fn render(series: &[SecuritySeries], certs: &[CertExpiry], now: i64, out: &mut String) {
    for family in SecurityFamily::ALL {
        let (name, owner_key, label_key, help) = family.describe();
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
        let mut rows: Vec<&SecuritySeries> = series.iter().filter(|s| s.family == family).collect();
        rows.sort_by(|a, b| (&a.owner, &a.label).cmp(&(&b.owner, &b.label)));
        for s in rows {
            let _ = writeln!(
                out,
                "{name}{{{owner_key}=\"{}\",{label_key}=\"{}\"}} {}",
                escape(&s.owner),
                escape(&s.label),
                s.count
            );
        }
    }
    let name = "ringway_tls_reloads_total";
    let _ = writeln!(
        out,
        "# HELP {name} TLS material loaded after SIGHUP or a change on disk (ok), and changed files that did not load (rejected: the previous material keeps serving).\n# TYPE {name} counter\n{name}{{result=\"ok\"}} {}\n{name}{{result=\"rejected\"}} {}",
        TLS_RELOADS_OK.load(Ordering::Relaxed),
        TLS_RELOADS_REJECTED.load(Ordering::Relaxed)
    );
    let name = "ringway_certificate_expiry_seconds";
    let _ = writeln!(
        out,
        "# HELP {name} Seconds until each loaded certificate expires (negative: expired).\n# TYPE {name} gauge"
    );
    for c in certs {
        let _ = writeln!(
            out,
            "{name}{{owner=\"{}\",file=\"{}\",name=\"{}\"}} {}",
            escape(&c.owner),
            escape(&c.file),
            escape(&c.name),
            c.not_after - now
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_merge_and_cap() {
        let a = SecurityCounters::default();
        a.bump(SecurityFamily::AuthzDenied, "edge", "deny-admin");
        a.bump(SecurityFamily::AuthzDenied, "edge", "deny-admin");
        a.bump(SecurityFamily::DownstreamHandshake, "edge", "ok");
        let b = SecurityCounters::default();
        b.bump(SecurityFamily::AuthzDenied, "edge", "deny-admin");
        for i in 0..MAX_SERIES + 10 {
            b.bump(SecurityFamily::PeerIdentity, "edge", &format!("id{i}"));
        }
        let bs = b.snapshot();
        assert_eq!(bs.len(), MAX_SERIES + 1);
        assert_eq!(bs.iter().find(|s| &*s.label == "other").unwrap().count, 11);
        let mut m = a.snapshot();
        merge(&mut m, &bs);
        let denied = m
            .iter()
            .find(|s| s.family == SecurityFamily::AuthzDenied)
            .unwrap();
        assert_eq!(denied.count, 3);
        let mut out = String::new();
        render(
            &m,
            &[CertExpiry {
                owner: "listener edge".into(),
                file: "/c.pem".into(),
                name: "spiffe://td/ns/a/sa/b".into(),
                not_after: 1_000,
            }],
            400,
            &mut out,
        );
        assert!(
            out.contains("ringway_authz_denied_total{listener=\"edge\",rule=\"deny-admin\"} 3\n")
        );
        assert!(out.contains("ringway_tls_handshakes_total{listener=\"edge\",result=\"ok\"} 1\n"));
        assert!(out.contains("ringway_certificate_expiry_seconds{owner=\"listener edge\",file=\"/c.pem\",name=\"spiffe://td/ns/a/sa/b\"} 600\n"));
    }
}
