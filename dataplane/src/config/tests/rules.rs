//! One failing case per validation rule and per table that denies unknown keys, each checked
//! for its message and line.

use super::{assert_error, errors_of, MINIMAL};

/// `MINIMAL` (8 lines) + a blank line + a route header on line 10; `body` starts on line 11.
fn with_route(body: &str) -> String {
    format!("{MINIMAL}\n  [[listeners.routes]]\n{body}")
}

/// `MINIMAL` + a second cluster `x` whose header is line 10, name line 11; `body` starts on 12.
fn with_cluster(body: &str) -> String {
    format!("{MINIMAL}\n[[clusters]]\nname = \"x\"\n{body}")
}

/// `MINIMAL` + a blank line + `[table]` on line 10; `body` starts on line 11.
fn with_table(table: &str, body: &str) -> String {
    format!("{MINIMAL}\n[{table}]\n{body}")
}

#[track_caller]
fn check_all(cases: &[(String, usize, &str)]) {
    for (text, line, needle) in cases {
        assert_error(text, *line, needle);
    }
}

#[test]
fn unknown_keys_are_errors_with_their_line() {
    check_all(&[
        (format!("foo = 1\n{MINIMAL}"), 1, "unknown key `foo`"),
        (
            format!("[runtime]\nworkrs = 2\n{MINIMAL}"),
            2,
            "unknown key `workrs`",
        ),
        (
            with_table("runtime.io", "ring = 64\n"),
            11,
            "unknown key `ring`",
        ),
        (
            format!("[admin]\nbind = \"127.0.0.1:1\"\nport = 1\n{MINIMAL}"),
            3,
            "unknown key `port`",
        ),
        (
            "[[listeners]]\nname = \"l\"\nbind = \"127.0.0.1:8080\"\nport = 1\n".to_string(),
            4,
            "unknown key `port`",
        ),
        (
            with_table("listeners.limits", "max_header = 1\n"),
            11,
            "unknown key `max_header`",
        ),
        (
            with_route("  cluster = \"c\"\n  retries = 3\n"),
            12,
            "unknown key `retries`",
        ),
        (
            with_route("  match = { pth = \"/\" }\n  cluster = \"c\"\n"),
            11,
            "unknown key `pth`",
        ),
        (
            with_route("  direct = { status = 200, code = 1 }\n"),
            11,
            "unknown key `code`",
        ),
        (
            with_route("  split = [ { cluster = \"c\", weigth = 1 } ]\n"),
            11,
            "unknown key `weigth`",
        ),
        (format!("{MINIMAL}weight = 1\n"), 9, "unknown key `weight`"),
        (
            with_table("clusters.pool", "max_idel = 1\n"),
            11,
            "unknown key `max_idel`",
        ),
    ]);
}

#[test]
fn syntax_and_type_errors_have_a_line() {
    check_all(&[
        (
            format!("{MINIMAL}\n[runtime]\nworkers = \"2\"\n"),
            11,
            "invalid type",
        ),
        (format!("{MINIMAL}\n[runtime\n"), 10, ""),
        (
            "[[listeners]]\nname = \"l\"\n".to_string(),
            1,
            "missing field `bind`",
        ),
    ]);
}

#[test]
fn a_config_needs_a_listener() {
    let errors = errors_of("[[clusters]]\nname = \"c\"\nendpoints = [\"127.0.0.1:1\"]\n");
    assert!(errors
        .iter()
        .any(|e| e.line.is_none() && e.message.contains("no listeners")));
}

#[test]
fn every_problem_is_reported_not_only_the_first() {
    let text =
        "[runtime]\nworkers = 0\n\n[[listeners]]\nname = \"l\"\nbind = \"x\"\ncluster = \"nope\"\n";
    let errors = errors_of(text);
    assert_eq!(errors.len(), 3, "{errors:#?}");
    assert_eq!(
        errors.iter().map(|e| e.line).collect::<Vec<_>>(),
        [Some(2), Some(6), Some(7)]
    );
}

#[test]
fn names_and_binds_must_be_unique_and_valid() {
    let two = |a: &str, b: &str| {
        format!("[[listeners]]\nname = \"{a}\"\nbind = \"127.0.0.1:8080\"\n[[listeners]]\nname = \"{b}\"\nbind = \"127.0.0.1:8081\"\n")
    };
    check_all(&[
        (two("l", "l"), 5, "listeners[1].name: duplicate listener name \"l\""),
        (two("l", "bad name"), 5, "listeners[1].name: \"bad name\": names are"),
        (with_cluster("endpoints = [\"127.0.0.1:1\"]\n").replace("\"x\"", "\"c\""), 11, "clusters[1].name: duplicate cluster name \"c\""),
        (
            "[[listeners]]\nname = \"a\"\nbind = \"127.0.0.1:8080\"\n[[listeners]]\nname = \"b\"\nbind = \"127.0.0.1:8080\"\n".to_string(),
            6,
            "listeners[1].bind: 127.0.0.1:8080 conflicts with listeners[0].bind",
        ),
        (
            "[[listeners]]\nname = \"a\"\nbind = \"0.0.0.0:8080\"\n[[listeners]]\nname = \"b\"\nbind = \"127.0.0.1:8080\"\n".to_string(),
            6,
            "conflicts with listeners[0].bind",
        ),
        ("[[listeners]]\nname = \"l\"\nbind = \"localhost:8080\"\n".to_string(), 3, "listeners[0].bind: \"localhost:8080\" is not an IP address"),
        ("[[listeners]]\nname = \"l\"\nbind = \"::1:8080\"\n".to_string(), 3, "is not an IP address"),
        ("[[listeners]]\nname = \"l\"\nbind = \"127.0.0.1:0\"\n".to_string(), 3, "port 0 is not allowed"),
        (format!("[admin]\nbind = \"127.0.0.1\"\n{MINIMAL}"), 2, "admin.bind: \"127.0.0.1\" is not an IP address"),
        (format!("[admin]\nbind = \"127.0.0.1:8080\"\n{MINIMAL}"), 5, "listeners[0].bind: 127.0.0.1:8080 conflicts with admin.bind"),
    ]);
}

#[test]
fn cluster_references_must_resolve() {
    check_all(&[
        (
            MINIMAL.replace("cluster = \"c\"", "cluster = \"nope\""),
            4,
            "listeners[0].cluster: unknown cluster \"nope\" (defined clusters: c)",
        ),
        (
            with_route("  cluster = \"x\"\n"),
            11,
            "listeners[0].routes[0].cluster: unknown cluster \"x\"",
        ),
        (
            with_route(
                "  split = [ { cluster = \"c\", weight = 1 }, { cluster = \"y\", weight = 1 } ]\n",
            ),
            11,
            "routes[0].split[1].cluster: unknown cluster \"y\"",
        ),
        (
            "[[listeners]]\nname = \"l\"\nbind = \"127.0.0.1:1\"\ncluster = \"c\"\n".to_string(),
            4,
            "no [[clusters]] are defined",
        ),
    ]);
}

#[test]
fn a_route_has_exactly_one_action() {
    check_all(&[
        (with_route("  match = { path_prefix = \"/\" }\n"), 10, "listeners[0].routes[0]: a route has exactly one of cluster, split or direct (found none)"),
        (with_route("  cluster = \"c\"\n  direct = { status = 404 }\n"), 10, "(found cluster and direct)"),
        (with_route("  cluster = \"c\"\n  split = [ { cluster = \"c\", weight = 1 } ]\n"), 10, "(found cluster and split)"),
    ]);
}

#[test]
fn split_rules() {
    let two = |w1: i64, w2: i64| {
        with_route(&format!(
            "  split = [ {{ cluster = \"c\", weight = {w1} }}, {{ cluster = \"x\", weight = {w2} }} ]\n"
        )) + "[[clusters]]\nname = \"x\"\nendpoints = [\"127.0.0.1:2\"]\n"
    };
    check_all(&[
        (
            with_route("  split = []\n"),
            11,
            "split: a split needs at least one",
        ),
        (
            two(-1, 1),
            11,
            "split[0].weight: must be between 0 and 1000000, got -1",
        ),
        (
            two(1, 1_000_001),
            11,
            "split[1].weight: must be between 0 and 1000000, got 1000001",
        ),
        (
            two(0, 0),
            11,
            "split: at least one weight must be greater than zero",
        ),
        (
            with_route(
                "  split = [ { cluster = \"c\", weight = 1 }, { cluster = \"c\", weight = 2 } ]\n",
            ),
            11,
            "appears twice",
        ),
    ]);
}

#[test]
fn direct_rules() {
    let big = "a".repeat(64 * 1024 + 1);
    check_all(&[
        (
            with_route("  direct = { status = 101 }\n"),
            11,
            "direct.status: must be between 200 and 599, got 101",
        ),
        (with_route("  direct = { status = 199 }\n"), 11, "got 199"),
        (with_route("  direct = { status = 600 }\n"), 11, "got 600"),
        (
            with_route(&format!(
                "  direct = {{ status = 200, body = \"{big}\" }}\n"
            )),
            11,
            "direct.body: must be at most 65536 bytes",
        ),
        (
            with_route("  direct = { status = 200 }\n  timeout = \"1s\"\n"),
            12,
            "timeout: a direct route has no upstream exchange",
        ),
        (
            with_route("  cluster = \"c\"\n  timeout = \"0s\"\n"),
            12,
            "routes[0].timeout: must be greater than zero",
        ),
    ]);
}

#[test]
fn match_rules() {
    let m = |fields: &str| with_route(&format!("  match = {{ {fields} }}\n  cluster = \"c\"\n"));
    check_all(&[
        (m("host = \"\""), 11, "match.host: must not be empty"),
        (
            m("host = \"example.com:8080\""),
            11,
            "a host match has no port",
        ),
        (
            m("host = \"foo.*.com\""),
            11,
            "'*' is allowed only as a leading",
        ),
        (
            m("host = \"*.\""),
            11,
            "after \"*.\" a host name must follow",
        ),
        (
            m("host = \"*.*.com\""),
            11,
            "after \"*.\" a host name must follow",
        ),
        (m("host = \"exa mple.com\""), 11, "is not a valid host name"),
        (m("host = \"[zz]\""), 11, "not a valid bracketed IPv6"),
        (
            m("path_prefix = \"v1/\""),
            11,
            "match.path_prefix: \"v1/\" must start with '/'",
        ),
        (m("path_prefix = \"/a?b\""), 11, "without '?' or '#'"),
        (m("path_prefix = \"/a b\""), 11, "contains ' '"),
        (
            m("headers = { \"x canary\" = \"1\" }"),
            11,
            "match.headers: \"x canary\" is not a valid header name",
        ),
        (
            m("headers = { \"\" = \"1\" }"),
            11,
            "is not a valid header name",
        ),
        (
            m("headers = { \"X-A\" = \"1\", \"x-a\" = \"2\" }"),
            11,
            "is listed twice",
        ),
        (
            m("headers = { \"x-a\" = \" 1\" }"),
            11,
            "match.headers.x-a: \" 1\": leading or trailing whitespace",
        ),
        (
            m("headers = { \"x-a\" = \"é\" }"),
            11,
            "header values are visible ASCII",
        ),
        (
            m("headers = { \"x-a\" = \"a\\u0000\" }"),
            11,
            "header values are visible ASCII",
        ),
    ]);
}

#[test]
fn limits_rules() {
    let l = |kv: &str| with_table("listeners.limits", &format!("{kv}\n"));
    check_all(&[
        (
            l("max_headers = 0"),
            11,
            "listeners[0].limits.max_headers: must be between 1 and 256, got 0",
        ),
        (l("max_headers = 257"), 11, "got 257"),
        (
            l("max_request_head_bytes = 1023"),
            11,
            "max_request_head_bytes: must be between 1024 and 1048576",
        ),
        (l("max_request_head_bytes = 1048577"), 11, "got 1048577"),
        (
            l("max_request_target_bytes = 15"),
            11,
            "max_request_target_bytes: must be between 16 and 65536",
        ),
        (
            l("max_request_head_bytes = 4096\nmax_request_target_bytes = 8192"),
            12,
            "must be between 16 and 4096, got 8192",
        ),
        (
            l("max_request_body_bytes = -1"),
            11,
            "max_request_body_bytes: must be between 0 and",
        ),
        (
            l("request_head_timeout = \"0s\""),
            11,
            "request_head_timeout: must be greater than zero",
        ),
        (
            l("idle_timeout = \"0ms\""),
            11,
            "idle_timeout: must be greater than zero",
        ),
        (
            l("idle_timeout = \"25h\""),
            11,
            "idle_timeout: must be at most 24h",
        ),
        (
            l("idle_timeout = 60"),
            11,
            "durations are strings with a unit",
        ),
        (l("idle_timeout = \"60\""), 11, "missing unit"),
        (l("idle_timeout = \"1d\""), 11, "unknown unit"),
        (
            l("max_connections = 0"),
            11,
            "max_connections: must be between 1 and 1000000, got 0",
        ),
        (l("max_connections = 1000001"), 11, "got 1000001"),
    ]);
}

#[test]
fn runtime_rules() {
    let rt = |kv: &str| format!("[runtime]\n{kv}\n{MINIMAL}");
    check_all(&[
        (
            rt("workers = 0"),
            2,
            "runtime.workers: must be between 1 and 256, got 0",
        ),
        (rt("workers = 257"), 2, "got 257"),
        (
            rt("drain_timeout = \"61m\""),
            2,
            "runtime.drain_timeout: must be at most 1h",
        ),
        (
            rt("drain_timeout = \"-1s\""),
            2,
            "negative durations are not allowed",
        ),
        (rt("drain_timeout = \"\""), 2, "empty duration"),
        (
            rt("drain_timeout = \"99999999999999999999h\""),
            2,
            "too large",
        ),
    ]);
    let io = |kv: &str| with_table("runtime.io", &format!("{kv}\n"));
    check_all(&[
        (
            io("ring_entries = 100"),
            11,
            "runtime.io.ring_entries: must be a power of two, got 100",
        ),
        (
            io("ring_entries = 32"),
            11,
            "must be between 64 and 4096, got 32",
        ),
        (io("ring_entries = 8192"), 11, "got 8192"),
        (
            io("recv_buffers = 8"),
            11,
            "runtime.io.recv_buffers: must be between 16 and 32768",
        ),
        (io("recv_buffers = 1000"), 11, "must be a power of two"),
        (
            io("recv_buffer_size = 512"),
            11,
            "runtime.io.recv_buffer_size: must be between 1024 and 1048576",
        ),
    ]);
    assert!(super::parse(&rt("drain_timeout = \"0s\"")).is_ok());
}

#[test]
fn cluster_rules() {
    let ep = |e: &str| with_cluster(&format!("endpoints = [\"{e}\"]\n"));
    check_all(&[
        (with_cluster("endpoints = []\n"), 12, "clusters[1].endpoints: a cluster needs at least one endpoint"),
        (ep("http://10.0.0.1:80"), 12, "clusters[1].endpoints[0]: \"http://10.0.0.1:80\": endpoints are host:port, without a scheme"),
        (ep("example.com"), 12, "missing port"),
        (ep("example.com:0"), 12, "port must be a number 1..=65535"),
        (ep("example.com:70000"), 12, "port must be a number 1..=65535"),
        (ep("example.com:+80"), 12, "port must be a number 1..=65535"),
        (ep("127.0.0.1:0"), 12, "port must be 1..=65535"),
        (ep("::1:80"), 12, "write [address]:port"),
        (ep("bad!host:80"), 12, "is neither an IP address nor a valid DNS name"),
        (ep("10.0.0.1/24:80"), 12, "without a path"),
        (with_cluster("endpoints = [\"a:1\", \"A:1\"]\n"), 12, "duplicate endpoint \"A:1\""),
        (with_cluster("endpoints = [\"a:1\"]\nlb = \"fastest\"\n"), 13, "clusters[1].lb: unknown lb \"fastest\"; expected one of round_robin, least_request, random, ring_hash"),
        (with_cluster("endpoints = [\"a:1\"]\nconnect_timeout = \"0s\"\n"), 13, "connect_timeout: must be greater than zero"),
        (with_cluster("endpoints = [\"a:1\"]\nconnect_timeout = 1\n"), 13, "durations are strings with a unit"),
        (with_cluster("endpoints = [\"a:1\"]\ndns_refresh = \"500ms\"\n"), 13, "dns_refresh: must be at least 1s"),
        (with_cluster("endpoints = [\"a:1\"]\nhash_key = \"header:x-user\"\n"), 13, "hash_key applies only to lb = \"ring_hash\""),
        (with_cluster("endpoints = [\"a:1\"]\nlb = \"ring_hash\"\nhash_key = \"cookie\"\n"), 14, "expected \"client_ip\" or \"header:<name>\""),
        (with_cluster("endpoints = [\"a:1\"]\nlb = \"ring_hash\"\nhash_key = \"header:\"\n"), 14, "is not a valid header name"),
        (with_table("clusters.pool", "max_idle = -1\n"), 11, "clusters[0].pool.max_idle: must be between 0 and 65536"),
        (with_table("clusters.pool", "idle_timeout = \"0s\"\n"), 11, "pool.idle_timeout: must be greater than zero"),
        (with_table("clusters.pool", "max_requests_per_connection = -5\n"), 11, "max_requests_per_connection: must be between 0"),
    ]);
}

#[test]
fn every_unknown_key_is_reported_at_once() {
    let text = format!(
        "foo = 1\n{MINIMAL}\n[listeners.limits]\nmax_header = 1\n[clusters.pool]\nmax_idel = 1\n"
    );
    let errors = errors_of(&text);
    let lines: Vec<Option<usize>> = errors.iter().map(|e| e.line).collect();
    assert_eq!(lines, [Some(1), Some(12), Some(14)], "{errors:#?}");
    assert!(errors[1].message.starts_with(
        "listeners[0].limits: unknown key `max_header`, expected one of `max_request_head_bytes`"
    ));
}

#[test]
fn a_type_error_is_reported_with_the_unknown_keys() {
    let text = format!("[runtime]\nworkers = \"2\"\nwork = 1\n{MINIMAL}");
    let errors = errors_of(&text);
    assert_eq!(errors.len(), 2, "{errors:#?}");
}

#[test]
fn split_weights_must_fit_in_u32_together() {
    let mut text = format!("{MINIMAL}\n  [[listeners.routes]]\n  split = [ ");
    let mut clusters = String::new();
    for i in 0..4296 {
        text.push_str(&format!("{{ cluster = \"c{i}\", weight = 1000000 }}, "));
        clusters.push_str(&format!(
            "[[clusters]]\nname = \"c{i}\"\nendpoints = [\"127.0.0.1:1\"]\n"
        ));
    }
    text.push_str("]\n");
    text.push_str(&clusters);
    assert_error(&text, 11, "the weights add up to 4296000000");
}

#[test]
fn unused_clusters_are_listed() {
    let text = format!("{MINIMAL}[[clusters]]\nname = \"spare\"\nendpoints = [\"127.0.0.1:2\"]\n");
    let cfg = super::parse(&text).unwrap();
    assert_eq!(cfg.unused_clusters(), ["spare"]);
}
