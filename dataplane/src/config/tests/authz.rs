//! Config tests of routing by SNI and of authorization rules: `[[listeners.sni_routes]]`,
//! `[[listeners.authz]]` / `[[listeners.routes.authz]]` (Istio's AuthorizationPolicy model) and
//! `match.principal`.

use super::policy::{check_all, parse_ok};
use super::security::{http_rule, route_rule, suffix, tcp, tcp_rule, tcp_tls, CLUSTER, TCP};
use super::{assert_round_trip, MINIMAL};

#[test]
fn sni_route_rules() {
    let route = |names: &str, cluster: &str| {
        format!(
            "\n  [[listeners.sni_routes]]\n  server_names = {names}\n  cluster = \"{cluster}\"\n"
        )
    };
    // tcp(): line 7 `[[listeners.sni_routes]]`, 8 server_names, 9 cluster.
    let ok = tcp(&route("[\"a.example.com\"]", "c"));
    assert_eq!(parse_ok(&ok).listeners[0].sni_routes.len(), 1);
    assert_round_trip(&ok);
    check_all(&[
        (tcp(&route("[\"a.example.com\"]", "nope")), 9, "listeners[0].sni_routes[0].cluster: unknown cluster \"nope\" (defined clusters: c)"),
        (tcp(&route("[]", "c")), 8, "listeners[0].sni_routes[0].server_names: needs at least one server name"),
        (tcp(&route("[\"192.0.2.1\"]", "c")), 8, "a server name is a DNS name"),
        (tcp(&(route("[\"a.b\"]", "c") + &route("[\"A.B\"]", "c"))), 12, "listeners[0].sni_routes[1].server_names[0]: \"A.B\" is listed twice"),
        // sni_routes on a terminating listener (tcp_tls: `[[listeners.sni_routes]]` on line 11)
        (tcp_tls(&route("[\"a.b\"]", "c")), 11, "listeners[0].sni_routes: sni_routes route TLS by server name without terminating it; a listener with [listeners.tls] terminates"),
        // ... and on an http listener (line 10)
        (format!("{MINIMAL}{}", route("[\"a.b\"]", "c")), 10, "listeners[0].sni_routes: applies to protocol = \"tcp\" listeners only (sni_routes route TLS by server name without terminating it"),
        // A tcp listener still needs its default cluster.
        (format!("[[listeners]]\nname = \"p\"\nbind = \"127.0.0.1:443\"\nprotocol = \"tcp\"\n{}{CLUSTER}", route("[\"a.b\"]", "c")), 2, "needs a `cluster` to relay to (with sni_routes"),
        (tcp("\n  [[listeners.sni_routes]]\n  server_names = [\"a.b\"]\n"), 7, "missing field `cluster`"),
    ]);
    // An original_destination cluster needs interception, through sni_routes too.
    let od = format!(
        "{TCP}{}{CLUSTER}\n[[clusters]]\nname = \"o\"\ntype = \"original_destination\"\n",
        route("[\"a.b\"]", "o")
    );
    check_all(&[(
        od.clone(),
        3,
        "sends to original_destination cluster \"o\" but does not intercept",
    )]);
    let od = od.replace(
        "cluster = \"c\"\n",
        "cluster = \"c\"\ninterception = \"redirect\"\n",
    );
    assert_round_trip(&od);
}

#[test]
fn authz_rule_rules() {
    check_all(&[
        (http_rule("  action = \"audit\"\n"), 11, "listeners[0].authz[0].action: unknown action \"audit\"; expected \"allow\" or \"deny\""),
        (http_rule("  name = \"\"\n  action = \"deny\"\n"), 11, "listeners[0].authz[0].name: \"\": rule names are 1 to 128 visible ASCII characters"),
        (http_rule("  name = \"a b\"\n  action = \"deny\"\n"), 11, "rule names are 1 to 128"),
        (http_rule("  name = \"x\"\n"), 10, "missing field `action`"),
        (http_rule("  action = \"deny\"\n  from = { principals = [] }\n"), 12, "listeners[0].authz[0].from.principals: must not be empty (leave the key out to match any value)"),
        (http_rule("  action = \"deny\"\n  from = { namespaces = [\"\"] }\n"), 12, "from.namespaces[0]: must not be empty"),
        (http_rule("  action = \"deny\"\n  from = { principals = [\"a\", \"a\"] }\n"), 12, "from.principals[1]: \"a\" is listed twice"),
        (http_rule("  action = \"deny\"\n  from = { ip_blocks = [\"10.0.0.0/33\"] }\n"), 12, "from.ip_blocks[0]: \"10.0.0.0/33\": the prefix length of an IPv4 block is 0 to 32"),
        (http_rule("  action = \"deny\"\n  from = { ip_blocks = [\"::1/129\"] }\n"), 12, "the prefix length of an IPv6 block is 0 to 128"),
        (http_rule("  action = \"deny\"\n  from = { ip_blocks = [\"10.0.0.0/+8\"] }\n"), 12, "the prefix length of an IPv4 block"),
        (http_rule("  action = \"deny\"\n  from = { ip_blocks = [\"10.0.0/8\"] }\n"), 12, "\"10.0.0/8\" is not an IP address or address block"),
        (http_rule("  action = \"deny\"\n  from = { ip_blocks = [\"10.0.0.0/8\", \"10.0.0.0/8\"] }\n"), 12, "ip_blocks[1]: \"10.0.0.0/8\" is listed twice"),
        (http_rule("  action = \"deny\"\n  to = { hosts = [\"a.example.com:8080\"] }\n"), 12, "to.hosts[0]: \"a.example.com:8080\": hosts match the request's authority without its port"),
        (http_rule("  action = \"deny\"\n  to = { hosts = [\"A.com\", \"a.COM\"] }\n"), 12, "to.hosts[1]: \"a.COM\" is listed twice"),
        (http_rule("  action = \"deny\"\n  to = { methods = [\"G T\"] }\n"), 12, "to.methods[0]: \"G T\" is not a valid HTTP method"),
        (http_rule("  action = \"deny\"\n  to = { methods = [\"*\"] }\n"), 12, "methods are matched exactly"),
        (http_rule("  action = \"deny\"\n  to = { methods = [\"get\", \"GET\"] }\n"), 12, "to.methods[1]: \"GET\" is listed twice"),
        (http_rule("  action = \"deny\"\n  to = { paths = [\"api\"] }\n"), 12, "to.paths[0]: \"api\" must start with '/' (or '*' for a suffix match)"),
        (http_rule("  action = \"deny\"\n  to = { paths = [\"/a?b=1\"] }\n"), 12, "contains '?'; paths are matched without the query"),
        (http_rule("  action = \"deny\"\n  to = { paths = [\"/a/*/b\"] }\n"), 12, "'*' is allowed only as the first or the last character"),
        (http_rule("  action = \"deny\"\n  to = { paths = [\"/a b\"] }\n"), 12, "only visible ASCII can match"),
        (http_rule("  action = \"deny\"\n  to = { ports = [0] }\n"), 12, "to.ports[0]: must be between 1 and 65535, got 0"),
        (http_rule("  action = \"deny\"\n  to = { ports = [65536] }\n"), 12, "must be between 1 and 65535, got 65536"),
        (http_rule("  action = \"deny\"\n  to = { ports = [] }\n"), 12, "to.ports: must not be empty"),
        (http_rule("  action = \"deny\"\n  to = { verbs = [\"GET\"] }\n"), 12, "listeners[0].authz[0].to: unknown key `verbs`"),
        // On a tcp listener only `from` and `to.ports` apply.
        (tcp_rule("  action = \"deny\"\n  to = { hosts = [\"a.b\"] }\n"), 9, "listeners[0].authz[0].to.hosts: a tcp listener sees no HTTP request"),
        (tcp_rule("  action = \"deny\"\n  to = { methods = [\"GET\"] }\n"), 9, "to.methods: a tcp listener sees no HTTP request"),
        (tcp_rule("  action = \"deny\"\n  to = { paths = [\"/\"] }\n"), 9, "to.paths: a tcp listener sees no HTTP request"),
        // Route rules: the same checks, with the route's path.
        (route_rule("    action = \"maybe\"\n"), 14, "listeners[0].routes[0].authz[0].action: unknown action \"maybe\""),
        (route_rule("    action = \"deny\"\n    to = { paths = [\"x\"] }\n"), 15, "listeners[0].routes[0].authz[0].to.paths[0]: \"x\" must start with '/'"),
    ]);
    let cfg = parse_ok(&tcp_rule(
        "  action = \"allow\"\n  from = { principals = [\"*\"], ip_blocks = [\"0.0.0.0/0\", \"::/0\"] }\n  to = { ports = [15001, 443] }\n",
    ));
    let r = &cfg.listeners[0].authz[0];
    assert_eq!(r.to.ports, [15001, 443]);
    assert!(r.from.ip_blocks[0].contains("192.0.2.1".parse().unwrap()));
    // Dotted keys spell the same rule.
    let dotted = parse_ok(&tcp_rule(
        "  action = \"allow\"\n  from.principals = [\"*\"]\n  from.ip_blocks = [\"0.0.0.0/0\", \"::/0\"]\n  to.ports = [15001, 443]\n",
    ));
    assert_eq!(dotted, cfg);
}

#[test]
fn authz_rule_names_are_unique_per_listener() {
    check_all(&[
        (http_rule("  name = \"r\"\n  action = \"deny\"\n\n  [[listeners.authz]]\n  name = \"r\"\n  action = \"allow\"\n"), 15, "listeners[0].authz[1].name: duplicate authz rule name \"r\" in this listener"),
        // A given name may collide with a default one.
        (http_rule("  name = \"l.authz[1]\"\n  action = \"deny\"\n\n  [[listeners.authz]]\n  action = \"allow\"\n"), 14, "listeners[0].authz[1].name: duplicate authz rule name \"l.authz[1]\""),
        // Route rules count too.
        (format!("{MINIMAL}\n  [[listeners.authz]]\n  name = \"r\"\n  action = \"deny\"\n\n  [[listeners.routes]]\n  cluster = \"c\"\n\n    [[listeners.routes.authz]]\n    name = \"r\"\n    action = \"deny\"\n"), 18, "listeners[0].routes[0].authz[0].name: duplicate authz rule name \"r\""),
    ]);
    // The same name on two listeners is fine (the metric has a listener label).
    let text = format!("{MINIMAL}\n  [[listeners.authz]]\n  name = \"r\"\n  action = \"deny\"\n\n[[listeners]]\nname = \"m\"\nbind = \"127.0.0.1:8081\"\n\n  [[listeners.authz]]\n  name = \"r\"\n  action = \"deny\"\n");
    assert_round_trip(&text);
}

#[test]
fn route_principal_match() {
    let route = |m: &str| {
        format!("{MINIMAL}\n  [[listeners.routes]]\n  match = {{ {m} }}\n  cluster = \"c\"\n")
    };
    let cfg = parse_ok(&route("principal = \"*.svc.example.com\""));
    assert_eq!(
        cfg.listeners[0].routes[0].matcher.principal,
        Some(suffix(".svc.example.com"))
    );
    assert_round_trip(&route("principal = \"*\", path_prefix = \"/\""));
    check_all(&[
        (
            route("principal = \"\""),
            11,
            "listeners[0].routes[0].match.principal: must not be empty",
        ),
        (
            route("principal = \"a*b\""),
            11,
            "match.principal: \"a*b\": '*' is allowed only",
        ),
        (
            route("principal = \"a\", principals = \"b\""),
            11,
            "match: unknown key `principals`",
        ),
    ]);
}
