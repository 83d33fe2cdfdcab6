//! The L4 and interception keys: `protocol`, `interception`, `proxy_protocol`,
//! `connect_attempts` on listeners; `type` and `proxy_protocol` on clusters; the rules
//! between them, each with its line; and their round trip through `render`.

use super::*;

const TCP: &str = r#"[[listeners]]
name = "l4"
bind = "127.0.0.1:15001"
protocol = "tcp"
cluster = "c"
"#;

fn parsed(text: &str) -> Config {
    parse(text).unwrap_or_else(|e| panic!("{e}\n{text}"))
}

#[test]
fn a_tcp_listener_with_every_key_parses_and_round_trips() {
    let text = format!(
        "{TCP}interception = \"redirect\"\nproxy_protocol = true\nconnect_attempts = 3\n\n  [listeners.limits]\n  idle_timeout = \"5m\"\n  max_connections = 500\n\n\
         [[clusters]]\nname = \"c\"\ntype = \"original_destination\"\nproxy_protocol = \"v2\"\nconnect_timeout = \"250ms\"\n"
    );
    let cfg = parsed(&text);
    let l = &cfg.listeners[0];
    assert_eq!(l.protocol, Protocol::Tcp);
    assert_eq!(l.interception, Interception::Redirect);
    assert!(l.proxy_protocol);
    assert_eq!(l.connect_attempts, 3);
    assert_eq!(l.limits.idle_timeout, Duration::from_secs(300));
    let c = &cfg.clusters[0];
    assert_eq!(c.kind, ClusterKind::OriginalDestination);
    assert_eq!(c.proxy_protocol, Some(ProxyProtocolVersion::V2));
    assert!(c.endpoints.is_empty());
    let again = parsed(&cfg.render_toml());
    assert_eq!(again, cfg);
}

#[test]
fn defaults_are_http_without_interception() {
    let cfg = parsed(MINIMAL);
    let l = &cfg.listeners[0];
    assert_eq!(l.protocol, Protocol::Http);
    assert_eq!(l.interception, Interception::None);
    assert!(!l.proxy_protocol);
    assert_eq!(cfg.clusters[0].kind, ClusterKind::Static);
    assert_eq!(cfg.clusters[0].proxy_protocol, None);
}

#[test]
fn tcp_listener_rules() {
    let cluster = "\n[[clusters]]\nname = \"c\"\nendpoints = [\"127.0.0.1:9\"]\n";
    // line 4 is `protocol`
    assert_error(
        &format!("[[listeners]]\nname = \"l4\"\nbind = \"127.0.0.1:15001\"\nprotocol = \"udp\"\ncluster = \"c\"\n{cluster}"),
        4,
        "unknown protocol \"udp\"",
    );
    assert_error(
        &format!("[[listeners]]\nname = \"l4\"\nbind = \"127.0.0.1:15001\"\nprotocol = \"tcp\"\n{cluster}"),
        2,
        "needs a `cluster`",
    );
    assert_error(
        &format!("{TCP}\n  [[listeners.routes]]\n  cluster = \"c\"\n{cluster}"),
        7,
        "has no routes",
    );
    assert_error(
        &format!("{TCP}\n  [listeners.limits]\n  max_headers = 10\n{cluster}"),
        8,
        "applies to protocol = \"http\" listeners only",
    );
    assert_error(
        &format!("{TCP}connect_attempts = 11\n{cluster}"),
        6,
        "between 1 and 10",
    );
    assert_error(
        &MINIMAL.replace(
            "cluster = \"c\"\n\n",
            "cluster = \"c\"\nconnect_attempts = 2\n\n",
        ),
        5,
        "applies to protocol = \"tcp\" listeners only",
    );
    assert_error(
        &MINIMAL.replace(
            "cluster = \"c\"\n\n",
            "cluster = \"c\"\ninterception = \"nat\"\n\n",
        ),
        5,
        "unknown interception \"nat\"",
    );
}

#[test]
fn original_destination_cluster_rules() {
    let head = "[[listeners]]\nname = \"out\"\nbind = \"127.0.0.1:15001\"\nprotocol = \"tcp\"\ncluster = \"o\"\ninterception = \"redirect\"\n\n[[clusters]]\nname = \"o\"\ntype = \"original_destination\"\n";
    // lines: 8 `[[clusters]]`, 9 name, 10 type, 11 the key under test
    for key in [
        "endpoints = [\"127.0.0.1:1\"]",
        "lb = \"random\"",
        "dns_refresh = \"5s\"",
        "when_all_unhealthy = \"reject\"",
    ] {
        assert_error(&format!("{head}{key}\n"), 11, "has no endpoint list");
    }
    assert_error(
        &format!("{head}\n  [clusters.health_check]\n  path = \"/\"\n"),
        13,
        "has no endpoint list",
    );
    assert_error(
        &head.replace("\"original_destination\"", "\"eds\""),
        10,
        "unknown cluster type \"eds\"",
    );
    // Without interception the original destination is unknown.
    assert_error(
        &head.replace("interception = \"redirect\"\n", ""),
        3,
        "does not intercept",
    );
    // An HTTP listener may use one too, through a route.
    let http = "[[listeners]]\nname = \"e\"\nbind = \"127.0.0.1:8080\"\ninterception = \"tproxy\"\n\n  [[listeners.routes]]\n  cluster = \"o\"\n\n[[clusters]]\nname = \"o\"\ntype = \"original_destination\"\n";
    let cfg = parsed(http);
    assert_eq!(cfg.listeners[0].interception, Interception::Tproxy);
    assert_error(
        &http.replace("interception = \"tproxy\"\n", ""),
        3,
        "does not intercept",
    );
}

#[test]
fn a_static_cluster_still_needs_endpoints() {
    assert_error(
        "[[listeners]]\nname = \"l\"\nbind = \"127.0.0.1:8080\"\ncluster = \"c\"\n\n[[clusters]]\nname = \"c\"\n",
        7,
        "a cluster needs `endpoints`",
    );
}

#[test]
fn proxy_protocol_values() {
    assert_error(
        &format!("{MINIMAL}proxy_protocol = \"v3\"\n"),
        9,
        "unknown PROXY protocol version \"v3\"",
    );
    assert_error(
        &MINIMAL.replace(
            "cluster = \"c\"\n\n",
            "cluster = \"c\"\nproxy_protocol = \"yes\"\n\n",
        ),
        5,
        "",
    );
}

#[test]
fn stream_idle_timeout_follows_idle_timeout_unless_set() {
    let cfg = parsed(&MINIMAL.replace(
        "cluster = \"c\"\n\n",
        "cluster = \"c\"\n  [listeners.limits]\n  idle_timeout = \"7s\"\n\n",
    ));
    assert_eq!(
        cfg.listeners[0].limits.stream_idle_timeout,
        Duration::from_secs(7)
    );
    let cfg = parsed(&MINIMAL.replace(
        "cluster = \"c\"\n\n",
        "cluster = \"c\"\n  [listeners.limits]\n  idle_timeout = \"7s\"\n  stream_idle_timeout = \"2s\"\n\n",
    ));
    assert_eq!(
        cfg.listeners[0].limits.stream_idle_timeout,
        Duration::from_secs(2)
    );
    assert_eq!(parsed(&cfg.render_toml()), cfg);
    assert_error(
        &MINIMAL.replace(
            "cluster = \"c\"\n\n",
            "cluster = \"c\"\n  [listeners.limits]\n  stream_idle_timeout = \"0s\"\n\n",
        ),
        6,
        "must be greater than zero",
    );
}

#[test]
fn host_mismatch_values() {
    let cfg = parsed(&MINIMAL.replace(
        "cluster = \"c\"\n\n",
        "cluster = \"c\"\nhost_mismatch = \"reject\"\n\n",
    ));
    assert_eq!(cfg.listeners[0].host_mismatch, HostMismatch::Reject);
    assert_eq!(parsed(&cfg.render_toml()), cfg);
    assert_error(
        &MINIMAL.replace(
            "cluster = \"c\"\n\n",
            "cluster = \"c\"\nhost_mismatch = \"merge\"\n\n",
        ),
        5,
        "expected \"use_target\" or \"reject\"",
    );
    assert_error(
        &format!("{TCP}host_mismatch = \"reject\"\n\n[[clusters]]\nname = \"c\"\nendpoints = [\"127.0.0.1:9\"]\n"),
        6,
        "applies to protocol = \"http\" listeners only",
    );
}
