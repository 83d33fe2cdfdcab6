//! The security keys: `[listeners.tls]` (with `[[listeners.tls.sni]]`), `[clusters.tls]`,
//! `[[listeners.sni_routes]]`, `[[listeners.authz]]`, `[[listeners.routes.authz]]` and
//! `match.principal`: values, defaults, every enum value, one failing case per rule with its
//! message and line, unknown keys, path resolution and round trips.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::policy::{check_all, parse_ok, with_table};
use super::{assert_round_trip, MINIMAL};
use crate::config::keys::unknown_keys;
use crate::config::*;

pub(super) const CLUSTER: &str = "\n[[clusters]]\nname = \"c\"\nendpoints = [\"127.0.0.1:9000\"]\n";

/// An http listener; `[listeners.tls]` on line 6 (cert 7, key 8).
const HTTPS: &str = "[[listeners]]\nname = \"edge\"\nbind = \"127.0.0.1:8443\"\ncluster = \"c\"\n\n  [listeners.tls]\n  cert = \"certs/edge.pem\"\n  key = \"certs/edge.key\"\n";

/// A tcp listener (lines 1-5).
pub(super) const TCP: &str = "[[listeners]]\nname = \"l4\"\nbind = \"127.0.0.1:15001\"\nprotocol = \"tcp\"\ncluster = \"c\"\n";

/// [`HTTPS`] + `body` from line 9 (inside `[listeners.tls]`) + the cluster `c`.
fn https(body: &str) -> String {
    format!("{HTTPS}{body}{CLUSTER}")
}

/// A tcp listener with `[listeners.tls]` on line 7 (cert 8, key 9); `body` from line 10.
pub(super) fn tcp_tls(body: &str) -> String {
    format!("{TCP}\n  [listeners.tls]\n  cert = \"a.pem\"\n  key = \"a.key\"\n{body}{CLUSTER}")
}

/// [`TCP`] + `body` from line 6 + the cluster `c`.
pub(super) fn tcp(body: &str) -> String {
    format!("{TCP}{body}{CLUSTER}")
}

/// `MINIMAL` + `[[listeners.authz]]` on line 10 (of the http listener); `body` from line 11.
pub(super) fn http_rule(body: &str) -> String {
    format!("{MINIMAL}\n  [[listeners.authz]]\n{body}")
}

/// [`TCP`] + `[[listeners.authz]]` on line 7; `body` from line 8.
pub(super) fn tcp_rule(body: &str) -> String {
    format!("{TCP}\n  [[listeners.authz]]\n{body}{CLUSTER}")
}

/// `MINIMAL` + a route on line 10 and its `[[listeners.routes.authz]]` on line 13; `body`
/// from line 14.
pub(super) fn route_rule(body: &str) -> String {
    format!("{MINIMAL}\n  [[listeners.routes]]\n  cluster = \"c\"\n\n    [[listeners.routes.authz]]\n{body}")
}

/// Every security key, set away from its default.
pub(super) const FULL: &str = r#"[[listeners]]
name = "edge"
bind = "127.0.0.1:8443"
cluster = "web"

  [listeners.tls]
  cert = "certs/edge.pem"
  key = "/etc/ringway/edge.key"
  client_ca = "ca/clients.pem"
  identities = ["spiffe://cluster.local/ns/shop/sa/frontend", "spiffe://cluster.local/ns/ops/*", "*.internal.example.com"]
  handshake_timeout = "3s"
  min_version = "1.3"
  alpn = ["http/1.1"]
  session_tickets = false
  forward_client_cert = "sanitize_set"

    [[listeners.tls.sni]]
    server_names = ["API.example.com", "*.api.example.com"]
    cert = "certs/api.pem"
    key = "certs/api.key"

  [[listeners.authz]]
  name = "block-scanners"
  action = "deny"
  from = { ip_blocks = ["203.0.113.0/24", "2001:db8::1", "10.1.2.3"] }

  [[listeners.authz]]
  action = "allow"
  from = { principals = ["spiffe://cluster.local/ns/shop/sa/frontend", "spiffe://cluster.local/*"], namespaces = ["shop", "ops-*"] }
  to = { hosts = ["Shop.Example.com", "*.example.com"], methods = ["get", "POST"], paths = ["/api/*", "*.png", "/healthz", "*"], ports = [8443] }

  [[listeners.routes]]
  match = { path_prefix = "/admin/", principal = "spiffe://cluster.local/ns/ops/*" }
  cluster = "web"

    [[listeners.routes.authz]]
    action = "deny"
    to = { methods = ["DELETE"] }

    [[listeners.routes.authz]]
    name = "ops-only"
    action = "allow"
    from = { namespaces = ["ops"] }

[[listeners]]
name = "pass"
bind = "127.0.0.1:9443"
protocol = "tcp"
cluster = "web"

  [[listeners.sni_routes]]
  server_names = ["db.example.com", "*.DB.example.com"]
  cluster = "db"

  [[listeners.sni_routes]]
  server_names = ["cache.example.com"]
  cluster = "web"

  [[listeners.authz]]
  action = "allow"
  from = { ip_blocks = ["10.0.0.0/8", "fd00::/8"] }
  to = { ports = [9443] }

[[listeners]]
name = "db-tls"
bind = "127.0.0.1:9444"
protocol = "tcp"
cluster = "web"

  [listeners.tls]
  cert = "certs/db.pem"
  key = "certs/db.key"
  client_ca = "ca/clients.pem"
  alpn = ["postgresql", "h2"]

  [[listeners.authz]]
  action = "deny"
  from = { principals = ["*"], namespaces = ["guest"] }

  [[listeners.authz]]
  action = "allow"

[[clusters]]
name = "web"
endpoints = ["127.0.0.1:9000"]

  [clusters.tls]
  ca = "ca/web.pem"
  sni = "Web.Internal"
  cert = "certs/client.pem"
  key = "certs/client.key"
  identities = ["spiffe://cluster.local/ns/web/sa/server"]
  min_version = "1.3"
  alpn = ["http/1.1", "h2"]

[[clusters]]
name = "db"
endpoints = ["127.0.0.1:5432"]

  [clusters.tls]
  ca = "/etc/ssl/db-ca.pem"
  sni = "10.0.0.5"
"#;

fn exact(s: &str) -> StringMatch {
    StringMatch::Exact(s.into())
}

fn prefix(s: &str) -> StringMatch {
    StringMatch::Prefix(s.into())
}

pub(super) fn suffix(s: &str) -> StringMatch {
    StringMatch::Suffix(s.into())
}

fn block(addr: &str, prefix: u8) -> IpBlock {
    IpBlock {
        addr: addr.parse::<IpAddr>().unwrap(),
        prefix,
    }
}

fn files(cert: &str, key: &str) -> CertFiles {
    CertFiles {
        cert: cert.into(),
        key: key.into(),
    }
}

#[test]
fn every_security_key_parses_to_its_value() {
    let cfg = parse_ok(FULL);
    let edge = &cfg.listeners[0];
    assert_eq!(
        edge.tls,
        Some(ListenerTls {
            default_cert: files("certs/edge.pem", "/etc/ringway/edge.key"),
            sni: vec![SniCert {
                server_names: vec![
                    HostMatch::Exact("api.example.com".into()),
                    HostMatch::Suffix(".api.example.com".into()),
                ],
                files: files("certs/api.pem", "certs/api.key"),
            }],
            client_ca: Some("ca/clients.pem".into()),
            identities: vec![
                exact("spiffe://cluster.local/ns/shop/sa/frontend"),
                prefix("spiffe://cluster.local/ns/ops/"),
                suffix(".internal.example.com"),
            ],
            handshake_timeout: Duration::from_secs(3),
            min_version: TlsVersion::V1_3,
            alpn: vec!["http/1.1".into()],
            session_tickets: false,
            forward_client_cert: ForwardClientCert::SanitizeSet,
        })
    );
    assert!(edge.sni_routes.is_empty());
    assert_eq!(
        edge.authz,
        vec![
            AuthzRule {
                name: "block-scanners".into(),
                action: AuthzAction::Deny,
                from: AuthzSource {
                    ip_blocks: vec![
                        block("203.0.113.0", 24),
                        block("2001:db8::1", 128),
                        block("10.1.2.3", 32)
                    ],
                    ..AuthzSource::default()
                },
                to: AuthzOperation::default(),
            },
            AuthzRule {
                name: "edge.authz[1]".into(),
                action: AuthzAction::Allow,
                from: AuthzSource {
                    principals: vec![
                        exact("spiffe://cluster.local/ns/shop/sa/frontend"),
                        prefix("spiffe://cluster.local/"),
                    ],
                    namespaces: vec![exact("shop"), prefix("ops-")],
                    ip_blocks: vec![],
                },
                to: AuthzOperation {
                    hosts: vec![exact("shop.example.com"), suffix(".example.com")],
                    methods: vec!["GET".into(), "POST".into()],
                    paths: vec![
                        prefix("/api/"),
                        suffix(".png"),
                        exact("/healthz"),
                        StringMatch::Any
                    ],
                    ports: vec![8443],
                },
            },
        ]
    );
    let route = &edge.routes[0];
    assert_eq!(
        route.matcher.principal,
        Some(prefix("spiffe://cluster.local/ns/ops/"))
    );
    let route_rules: Vec<(&str, AuthzAction)> = route
        .policy
        .authz
        .iter()
        .map(|r| (r.name.as_str(), r.action))
        .collect();
    assert_eq!(
        route_rules,
        [
            ("edge.routes[0].authz[0]", AuthzAction::Deny),
            ("ops-only", AuthzAction::Allow)
        ]
    );
    assert_eq!(route.policy.authz[0].to.methods, ["DELETE"]);
    assert_eq!(route.policy.authz[1].from.namespaces, [exact("ops")]);

    let pass = &cfg.listeners[1];
    assert_eq!(pass.tls, None);
    assert_eq!(
        pass.sni_routes,
        vec![
            SniRoute {
                server_names: vec![
                    HostMatch::Exact("db.example.com".into()),
                    HostMatch::Suffix(".db.example.com".into())
                ],
                cluster: ClusterId(1),
            },
            SniRoute {
                server_names: vec![HostMatch::Exact("cache.example.com".into())],
                cluster: ClusterId(0),
            },
        ]
    );
    assert_eq!(pass.cluster, Some(ClusterId(0)));
    assert_eq!(pass.authz[0].to.ports, [9443]);
    assert_eq!(
        pass.authz[0].from.ip_blocks,
        [block("10.0.0.0", 8), block("fd00::", 8)]
    );

    let db = &cfg.listeners[2];
    let tls = db.tls.as_ref().unwrap();
    assert_eq!(tls.alpn, ["postgresql", "h2"]);
    assert_eq!(tls.forward_client_cert, ForwardClientCert::Sanitize);
    assert_eq!(db.authz[0].from.principals, [StringMatch::Any]);
    // A rule with neither `from` nor `to` matches everything.
    assert_eq!(db.authz[1].name, "db-tls.authz[1]");
    assert_eq!(db.authz[1].action, AuthzAction::Allow);
    assert!(db.authz[1].from.is_empty() && db.authz[1].to.is_empty());

    assert_eq!(
        cfg.clusters[0].tls,
        Some(ClusterTls {
            ca: "ca/web.pem".into(),
            sni: Some("web.internal".into()),
            client_cert: Some(files("certs/client.pem", "certs/client.key")),
            identities: vec![exact("spiffe://cluster.local/ns/web/sa/server")],
            min_version: TlsVersion::V1_3,
            alpn: vec!["http/1.1".into(), "h2".into()],
        })
    );
    assert_eq!(
        cfg.clusters[1].tls.as_ref().unwrap().sni.as_deref(),
        Some("10.0.0.5")
    );
    // A cluster reached only through sni_routes is used.
    assert!(cfg.unused_clusters().is_empty());
}

#[test]
fn render_round_trips_every_security_key() {
    assert_round_trip(FULL);
    let rendered = parse_ok(FULL).render_toml();
    for needle in [
        "[[listeners.tls.sni]]",
        "[[listeners.sni_routes]]",
        "[[listeners.routes.authz]]",
        "[clusters.tls]",
        "name = \"edge.authz[1]\"",
        "principal = \"spiffe://cluster.local/ns/ops/*\"",
        "ip_blocks = [\"203.0.113.0/24\", \"2001:db8::1/128\", \"10.1.2.3/32\"]",
        "paths = [\"/api/*\", \"*.png\", \"/healthz\", \"*\"]",
    ] {
        assert!(rendered.contains(needle), "{needle} missing in\n{rendered}");
    }
    // A tcp listener renders no forward_client_cert (it is refused there).
    assert_eq!(rendered.matches("forward_client_cert").count(), 1);
}

#[test]
fn the_key_schema_knows_every_security_key() {
    assert_eq!(unknown_keys(FULL), vec![]);
}

#[test]
fn defaults_of_the_security_keys() {
    let cfg = parse_ok(MINIMAL);
    let l = &cfg.listeners[0];
    assert_eq!(l.tls, None);
    assert!(l.sni_routes.is_empty() && l.authz.is_empty());
    assert_eq!(cfg.clusters[0].tls, None);
    assert_round_trip(MINIMAL);

    let cfg = parse_ok(&https(""));
    assert_eq!(
        cfg.listeners[0].tls,
        Some(ListenerTls {
            default_cert: files("certs/edge.pem", "certs/edge.key"),
            sni: vec![],
            client_ca: None,
            identities: vec![],
            handshake_timeout: Duration::from_secs(10),
            min_version: TlsVersion::V1_2,
            alpn: vec!["http/1.1".into()],
            session_tickets: true,
            forward_client_cert: ForwardClientCert::Sanitize,
        })
    );
    assert_round_trip(&https(""));

    // tcp listeners offer no ALPN by default.
    let cfg = parse_ok(&tcp_tls(""));
    let tls = cfg.listeners[0].tls.as_ref().unwrap();
    assert!(tls.alpn.is_empty());
    assert_eq!(tls.handshake_timeout, Duration::from_secs(10));
    assert_round_trip(&tcp_tls(""));

    // An explicitly empty ALPN list is kept (no ALPN offered).
    let cfg = parse_ok(&https("  alpn = []\n"));
    assert!(cfg.listeners[0].tls.as_ref().unwrap().alpn.is_empty());
    assert_round_trip(&https("  alpn = []\n"));

    let text = with_table("clusters.tls", "ca = \"ca.pem\"\n");
    let cfg = parse_ok(&text);
    assert_eq!(
        cfg.clusters[0].tls,
        Some(ClusterTls {
            ca: "ca.pem".into(),
            sni: None,
            client_cert: None,
            identities: vec![],
            min_version: TlsVersion::V1_2,
            alpn: vec![],
        })
    );
    assert_round_trip(&text);

    let cfg = parse_ok(&http_rule("  action = \"deny\"\n"));
    assert_eq!(
        cfg.listeners[0].authz,
        vec![AuthzRule {
            name: "l.authz[0]".into(),
            action: AuthzAction::Deny,
            from: AuthzSource::default(),
            to: AuthzOperation::default(),
        }]
    );
    assert_eq!(cfg.listeners[0].routes.len(), 0);
    let cfg = parse_ok(&route_rule(
        "    action = \"allow\"\n    from = {}\n    to = {}\n",
    ));
    let r = &cfg.listeners[0].routes[0];
    assert_eq!(r.matcher.principal, None);
    assert_eq!(r.policy.authz[0].name, "l.routes[0].authz[0]");
    assert!(r.policy.authz[0].from.is_empty() && r.policy.authz[0].to.is_empty());
    assert_round_trip(&route_rule("    action = \"allow\"\n"));
}

#[test]
fn every_enum_value_parses_and_round_trips() {
    for (text, want) in [("1.2", TlsVersion::V1_2), ("1.3", TlsVersion::V1_3)] {
        let t = https(&format!("  min_version = \"{text}\"\n"));
        assert_eq!(
            parse_ok(&t).listeners[0].tls.as_ref().unwrap().min_version,
            want
        );
        assert_round_trip(&t);
        let t = with_table(
            "clusters.tls",
            &format!("ca = \"a\"\nmin_version = \"{text}\"\n"),
        );
        assert_eq!(
            parse_ok(&t).clusters[0].tls.as_ref().unwrap().min_version,
            want
        );
        assert_round_trip(&t);
    }
    for (text, want) in [
        ("sanitize", ForwardClientCert::Sanitize),
        ("sanitize_set", ForwardClientCert::SanitizeSet),
        ("append_forward", ForwardClientCert::AppendForward),
        ("forward_only", ForwardClientCert::ForwardOnly),
    ] {
        let t = https(&format!("  forward_client_cert = \"{text}\"\n"));
        assert_eq!(
            parse_ok(&t).listeners[0]
                .tls
                .as_ref()
                .unwrap()
                .forward_client_cert,
            want
        );
        assert_round_trip(&t);
    }
    for (text, want) in [("allow", AuthzAction::Allow), ("deny", AuthzAction::Deny)] {
        let t = http_rule(&format!("  action = \"{text}\"\n"));
        assert_eq!(parse_ok(&t).listeners[0].authz[0].action, want);
        assert_round_trip(&t);
    }
    for (text, want) in [("true", true), ("false", false)] {
        let t = https(&format!("  session_tickets = {text}\n"));
        assert_eq!(
            parse_ok(&t).listeners[0]
                .tls
                .as_ref()
                .unwrap()
                .session_tickets,
            want
        );
        assert_round_trip(&t);
    }
}

#[test]
fn istio_string_notation() {
    let principals = |list: &str| {
        let cfg = parse_ok(&http_rule(&format!(
            "  action = \"allow\"\n  from = {{ principals = [{list}] }}\n"
        )));
        cfg.listeners[0].authz[0].from.principals.clone()
    };
    assert_eq!(
        principals("\"a\", \"b*\", \"*c\", \"*\""),
        [exact("a"), prefix("b"), suffix("c"), StringMatch::Any]
    );
    let ns_a = principals("\"spiffe://td/ns/a/*\"");
    assert!(ns_a[0].matches("spiffe://td/ns/a/sa/b"));
    assert!(!ns_a[0].matches("spiffe://td/ns/b/sa/b"));
    let hosts = parse_ok(&http_rule(
        "  action = \"allow\"\n  to = { hosts = [\"*.Example.com\"] }\n",
    ));
    assert!(hosts.listeners[0].authz[0].to.hosts[0].matches_ignore_case("API.example.COM"));
}

#[test]
fn listener_tls_rules() {
    let long = "x".repeat(256);
    check_all(&[
        (https("  handshake_timeout = \"0s\"\n"), 9, "listeners[0].tls.handshake_timeout: must be greater than zero"),
        (https("  handshake_timeout = \"6m\"\n"), 9, "must be at most 5m"),
        (https("  handshake_timeout = 10\n"), 9, "not bare numbers"),
        (https("  min_version = \"1.1\"\n"), 9, "listeners[0].tls.min_version: unknown TLS version \"1.1\"; expected \"1.2\" or \"1.3\""),
        (https("  alpn = [\"h2\"]\n"), 9, "listeners[0].tls.alpn[0]: HTTP/2 is not supported yet"),
        (https("  alpn = [\"http/1.1\", \"spdy/3\"]\n"), 9, "listeners[0].tls.alpn[1]: \"spdy/3\": an http listener offers only \"http/1.1\""),
        (https("  alpn = [\"http/1.1\", \"http/1.1\"]\n"), 9, "alpn[1]: \"http/1.1\" is listed twice"),
        (tcp_tls("  alpn = [\"\"]\n"), 10, "listeners[0].tls.alpn[0]: ALPN protocol names are 1 to 255 bytes, got 0"),
        (tcp_tls(&format!("  alpn = [\"{long}\"]\n")), 10, "1 to 255 bytes, got 256"),
        (tcp_tls("  forward_client_cert = \"sanitize\"\n"), 10, "listeners[0].tls.forward_client_cert: applies to protocol = \"http\" listeners only"),
        (https("  forward_client_cert = \"always\"\n"), 9, "unknown value \"always\"; expected \"sanitize\", \"sanitize_set\", \"append_forward\" or \"forward_only\""),
        (https("  identities = [\"spiffe://td/ns/a/sa/b\"]\n"), 9, "listeners[0].tls.identities: needs `client_ca`"),
        (https("  client_ca = \"ca.pem\"\n  identities = [\"a*b\"]\n"), 10, "identities[0]: \"a*b\": '*' is allowed only as the first or the last character"),
        (https("  client_ca = \"ca.pem\"\n  identities = [\"\"]\n"), 10, "identities[0]: must not be empty"),
        (https("  client_ca = \"\"\n"), 9, "listeners[0].tls.client_ca: must not be empty (a file path)"),
        (https("  session_tickets = \"yes\"\n"), 9, ""),
        (HTTPS.replace("cert = \"certs/edge.pem\"", "cert = \"\"") + CLUSTER, 7, "listeners[0].tls.cert: must not be empty"),
        (HTTPS.replace("  key = \"certs/edge.key\"\n", "") + CLUSTER, 6, "missing field `key`"),
        (HTTPS.replace("  cert = \"certs/edge.pem\"\n", "") + CLUSTER, 6, "missing field `cert`"),
    ]);
    // Every value that tcp listeners accept but http listeners refuse.
    let cfg = parse_ok(&tcp_tls("  alpn = [\"h2\", \"imap\", \"http/1.1\"]\n"));
    assert_eq!(
        cfg.listeners[0].tls.as_ref().unwrap().alpn,
        ["h2", "imap", "http/1.1"]
    );
}

#[test]
fn sni_certificate_rules() {
    let sni = |names: &str| {
        https(&format!("\n    [[listeners.tls.sni]]\n    server_names = {names}\n    cert = \"b.pem\"\n    key = \"b.key\"\n"))
    };
    // line 10: `[[listeners.tls.sni]]`, 11: server_names
    check_all(&[
        (
            sni("[]"),
            11,
            "listeners[0].tls.sni[0].server_names: needs at least one server name",
        ),
        (
            sni("[\"10.0.0.1\"]"),
            11,
            "server_names[0]: \"10.0.0.1\": a server name is a DNS name",
        ),
        (sni("[\"[::1]\"]"), 11, "a server name is a DNS name"),
        (
            sni("[\"a.example.com:443\"]"),
            11,
            "a host match has no port",
        ),
        (sni("[\"*.\"]"), 11, "after \"*.\" a host name must follow"),
        (
            sni("[\"a.*.com\"]"),
            11,
            "'*' is allowed only as a leading \"*.\"",
        ),
        (sni("[\"\"]"), 11, "server_names[0]: must not be empty"),
        (
            sni("[\"a.example.com\", \"A.example.COM\"]"),
            11,
            "server_names[1]: \"A.example.COM\" is listed twice",
        ),
        (
            https(
                "\n    [[listeners.tls.sni]]\n    server_names = [\"a.b\"]\n    cert = \"b.pem\"\n",
            ),
            10,
            "missing field `key`",
        ),
    ]);
    // A name listed by an earlier entry is a duplicate too (the first entry wins).
    let two = https("\n    [[listeners.tls.sni]]\n    server_names = [\"*.b.com\"]\n    cert = \"b.pem\"\n    key = \"b.key\"\n\n    [[listeners.tls.sni]]\n    server_names = [\"*.B.com\"]\n    cert = \"c.pem\"\n    key = \"c.key\"\n");
    check_all(&[(two, 16, "listeners[0].tls.sni[1].server_names[0]: \"*.B.com\" is listed twice (the first entry that lists it wins)")]);
}

#[test]
fn cluster_tls_rules() {
    let t = |body: &str| with_table("clusters.tls", body);
    check_all(&[
        (
            t("ca = \"ca.pem\"\ncert = \"c.pem\"\n"),
            12,
            "clusters[0].tls.key: missing: a client certificate needs both `cert` and `key`",
        ),
        (
            t("ca = \"ca.pem\"\nkey = \"c.key\"\n"),
            12,
            "clusters[0].tls.cert: missing: a client certificate needs both `cert` and `key`",
        ),
        (
            t("ca = \"ca.pem\"\nsni = \"not a name\"\n"),
            12,
            "clusters[0].tls.sni: \"not a name\" is neither a DNS name nor an IP address",
        ),
        (
            t("ca = \"ca.pem\"\nsni = \"a.example.com.\"\n"),
            12,
            "neither a DNS name nor an IP address",
        ),
        (
            t("ca = \"ca.pem\"\nmin_version = \"1.0\"\n"),
            12,
            "clusters[0].tls.min_version: unknown TLS version \"1.0\"",
        ),
        (
            t("ca = \"ca.pem\"\nalpn = [\"\"]\n"),
            12,
            "clusters[0].tls.alpn[0]: ALPN protocol names are 1 to 255 bytes",
        ),
        (
            t("ca = \"ca.pem\"\nalpn = [\"h2\", \"h2\"]\n"),
            12,
            "alpn[1]: \"h2\" is listed twice",
        ),
        (
            t("ca = \"ca.pem\"\nidentities = [\"*x*\"]\n"),
            12,
            "clusters[0].tls.identities[0]: \"*x*\": '*' is allowed only",
        ),
        (
            t("ca = \"\"\n"),
            11,
            "clusters[0].tls.ca: must not be empty",
        ),
        (t("sni = \"a.b\"\n"), 10, "missing field `ca`"),
    ]);
    for sni in ["::1", "10.0.0.1", "a-b.example.com"] {
        let text = t(&format!("ca = \"ca.pem\"\nsni = \"{sni}\"\n"));
        assert_eq!(
            parse_ok(&text).clusters[0]
                .tls
                .as_ref()
                .unwrap()
                .sni
                .as_deref(),
            Some(sni)
        );
        assert_round_trip(&text);
    }
}

#[test]
fn unknown_keys_in_security_tables_are_errors_with_their_line() {
    check_all(&[
        (https("  certificate = \"x\"\n"), 9, "listeners[0].tls: unknown key `certificate`"),
        (https("\n    [[listeners.tls.sni]]\n    server_names = [\"a.b\"]\n    cert = \"b\"\n    key = \"b\"\n    ocsp = \"x\"\n"), 14, "listeners[0].tls.sni[0]: unknown key `ocsp`"),
        (with_table("clusters.tls", "ca = \"a\"\nverify = false\n"), 12, "clusters[0].tls: unknown key `verify`"),
        (tcp("\n  [[listeners.sni_routes]]\n  server_names = [\"a.b\"]\n  cluster = \"c\"\n  weight = 1\n"), 10, "listeners[0].sni_routes[0]: unknown key `weight`"),
        (http_rule("  action = \"deny\"\n  when = 1\n"), 12, "listeners[0].authz[0]: unknown key `when`"),
        (http_rule("  action = \"deny\"\n  from = { users = [\"a\"] }\n"), 12, "listeners[0].authz[0].from: unknown key `users`"),
        (route_rule("    action = \"deny\"\n    source = 1\n"), 15, "listeners[0].routes[0].authz[0]: unknown key `source`"),
    ]);
    // All unknown keys at once, each with its line.
    let text = https("  certificate = \"x\"\n  alpn_protocols = []\n");
    let errors = super::errors_of(&text);
    let lines: Vec<Option<usize>> = errors.iter().map(|e| e.line).collect();
    assert_eq!(lines, [Some(9), Some(10)], "{errors:?}");
}

#[test]
fn every_security_problem_is_reported_at_once() {
    let text = https("  min_version = \"1.1\"\n  alpn = [\"h2\"]\n\n  [[listeners.authz]]\n  action = \"audit\"\n  to = { ports = [0] }\n");
    let errors = super::errors_of(&text);
    let got: Vec<Option<usize>> = errors.iter().map(|e| e.line).collect();
    assert_eq!(got, [Some(9), Some(10), Some(13), Some(14)], "{errors:?}");
}

#[test]
fn resolve_paths_makes_relative_tls_paths_absolute() {
    let mut cfg = parse_ok(FULL);
    cfg.resolve_paths(Path::new("/etc/ringway"));
    let edge = cfg.listeners[0].tls.as_ref().unwrap();
    assert_eq!(
        edge.default_cert,
        files("/etc/ringway/certs/edge.pem", "/etc/ringway/edge.key")
    );
    assert_eq!(
        edge.sni[0].files,
        files("/etc/ringway/certs/api.pem", "/etc/ringway/certs/api.key")
    );
    assert_eq!(
        edge.client_ca.as_deref(),
        Some(Path::new("/etc/ringway/ca/clients.pem"))
    );
    let web = cfg.clusters[0].tls.as_ref().unwrap();
    assert_eq!(web.ca, PathBuf::from("/etc/ringway/ca/web.pem"));
    assert_eq!(
        web.client_cert,
        Some(files(
            "/etc/ringway/certs/client.pem",
            "/etc/ringway/certs/client.key"
        ))
    );
    // Absolute paths are kept.
    assert_eq!(
        cfg.clusters[1].tls.as_ref().unwrap().ca,
        PathBuf::from("/etc/ssl/db-ca.pem")
    );
    // Resolving again changes nothing; the resolved config still round trips.
    let once = cfg.clone();
    cfg.resolve_paths(Path::new("/elsewhere"));
    assert_eq!(cfg, once);
    assert_eq!(parse_ok(&cfg.render_toml()), cfg);
}

#[test]
fn load_resolves_tls_paths_against_the_config_files_directory() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("ringway.toml");
    std::fs::write(&file, FULL).unwrap();
    let cfg = load(&file).unwrap_or_else(|e| panic!("{e}"));
    let edge = cfg.listeners[0].tls.as_ref().unwrap();
    assert_eq!(edge.default_cert.cert, dir.path().join("certs/edge.pem"));
    assert_eq!(
        edge.default_cert.key,
        PathBuf::from("/etc/ringway/edge.key")
    );
    assert_eq!(
        cfg.clusters[0].tls.as_ref().unwrap().ca,
        dir.path().join("ca/web.pem")
    );
    // Nothing was read: the files do not exist.
    assert!(!dir.path().join("certs").exists());
    // `parse` keeps them as written.
    let parsed = parse_ok(FULL);
    assert_eq!(
        parsed.listeners[0].tls.as_ref().unwrap().default_cert.cert,
        PathBuf::from("certs/edge.pem")
    );
}
