//! Tests of config parsing, validation (one failing case per rule, with its line), rendering
//! and the shipped examples.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::*;

mod authz;
mod headers;
mod l4;
mod policy;
mod resilience;
mod rules;
mod security;
mod telemetry;

/// The example of CONFIG.md, plus the two clusters it references but does not define.
const CONFIG_MD_EXAMPLE: &str = r#"[runtime]
workers = 2                 # executors, one per core; default: all available cores
drain_timeout = "10s"

[admin]
bind = "127.0.0.1:9901"     # /ready, /metrics (Prometheus text), /config

[[listeners]]
name = "edge"
bind = "127.0.0.1:8080"
cluster = "web"             # where a request goes when no route below matches

  [listeners.limits]        # every key optional; these are the defaults
  max_request_head_bytes = 65536
  max_request_target_bytes = 8192     # longer request target -> 414
  max_headers = 100
  max_request_body_bytes = 0          # 0 = unlimited (streamed, never buffered whole)
  request_head_timeout = "10s"        # slowloris guard
  idle_timeout = "60s"                # keep-alive idle, both sides
  max_connections = 100000            # per process

  [[listeners.routes]]
  match = { host = "api.example.com", path_prefix = "/v1/", headers = { "x-canary" = "1" } }
  cluster = "api-v2"

  [[listeners.routes]]
  match = { path_prefix = "/v1/" }
  split = [ { cluster = "api-v1", weight = 90 }, { cluster = "api-v2", weight = 10 } ]
  timeout = "5s"              # whole upstream exchange, until the last response byte

  [[listeners.routes]]
  match = { path_prefix = "/internal/" }
  direct = { status = 403, body = "forbidden" }   # answered by the proxy itself

[[clusters]]
name = "web"
endpoints = ["127.0.0.1:9000", "127.0.0.1:9001"]   # host:port; names resolved by DNS
lb = "round_robin"          # round_robin | least_request | random | ring_hash
connect_timeout = "1s"

  [clusters.pool]           # per core, per endpoint; these are the defaults
  max_idle = 64                       # idle keep-alive connections kept
  idle_timeout = "30s"                # close idle upstream connections after this
  max_requests_per_connection = 0     # 0 = unlimited

[[clusters]]
name = "api-v1"
endpoints = ["api-v1.internal:8080"]

[[clusters]]
name = "api-v2"
endpoints = ["[::1]:8081"]
lb = "ring_hash"
hash_key = "header:X-User"
"#;

/// The smallest valid config: one listener, one cluster.
pub(super) const MINIMAL: &str = r#"[[listeners]]
name = "l"
bind = "127.0.0.1:8080"
cluster = "c"

[[clusters]]
name = "c"
endpoints = ["127.0.0.1:9000"]
"#;

pub(super) fn errors_of(text: &str) -> Vec<ConfigError> {
    match parse(text) {
        Ok(cfg) => panic!("expected errors, got {cfg:#?}"),
        Err(e) => e.into_vec(),
    }
}

/// Asserts that parsing `text` reports an error on `line` whose message contains `needle`.
#[track_caller]
pub(super) fn assert_error(text: &str, line: usize, needle: &str) {
    let errors = errors_of(text);
    assert!(
        errors
            .iter()
            .any(|e| e.line == Some(line) && e.message.contains(needle)),
        "no error on line {line} containing {needle:?}; got:\n{}",
        ConfigErrors(errors.clone())
    );
}

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

#[test]
fn config_md_example_parses_to_expected_values() {
    let cfg = parse(CONFIG_MD_EXAMPLE).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(cfg.runtime.workers, Some(2));
    assert_eq!(cfg.runtime.drain_timeout, Duration::from_secs(10));
    assert_eq!(cfg.runtime.io, IoConfig::default());
    assert_eq!(
        cfg.admin,
        Some(AdminConfig {
            bind: addr("127.0.0.1:9901")
        })
    );

    assert_eq!(cfg.clusters.len(), 3);
    let web = &cfg.clusters[0];
    assert_eq!(web.name, "web");
    assert_eq!(
        web.endpoints,
        vec![
            EndpointAddr::Ip(addr("127.0.0.1:9000")),
            EndpointAddr::Ip(addr("127.0.0.1:9001"))
        ]
    );
    assert_eq!(web.lb, LbPolicy::RoundRobin);
    assert_eq!(web.connect_timeout, Duration::from_secs(1));
    assert_eq!(web.pool, PoolConfig::default());
    assert_eq!(
        cfg.clusters[1].endpoints,
        vec![EndpointAddr::Dns {
            host: "api-v1.internal".into(),
            port: 8080
        }]
    );
    assert_eq!(
        cfg.clusters[2].endpoints,
        vec![EndpointAddr::Ip(addr("[::1]:8081"))]
    );
    assert_eq!(cfg.clusters[2].lb, LbPolicy::RingHash);
    assert_eq!(cfg.clusters[2].hash_key, HashKey::Header("x-user".into()));

    assert_eq!(cfg.listeners.len(), 1);
    let l = &cfg.listeners[0];
    assert_eq!(l.name, "edge");
    assert_eq!(l.bind, addr("127.0.0.1:8080"));
    assert_eq!(l.cluster, Some(ClusterId(0)));
    assert_eq!(l.limits, Limits::default());
    assert_eq!(l.routes.len(), 3);

    let r0 = &l.routes[0];
    assert_eq!(
        r0.matcher.host,
        Some(HostMatch::Exact("api.example.com".into()))
    );
    assert_eq!(r0.matcher.path_prefix.as_deref(), Some("/v1/"));
    assert_eq!(r0.matcher.headers, vec![("x-canary".into(), "1".into())]);
    assert_eq!(r0.action, RouteAction::Cluster(ClusterId(2)));
    assert_eq!(r0.timeout, None);

    let r1 = &l.routes[1];
    assert_eq!(r1.matcher.host, None);
    assert_eq!(
        r1.action,
        RouteAction::Split(vec![
            WeightedCluster {
                cluster: ClusterId(1),
                weight: 90
            },
            WeightedCluster {
                cluster: ClusterId(2),
                weight: 10
            },
        ])
    );
    assert_eq!(r1.timeout, Some(Duration::from_secs(5)));

    let r2 = &l.routes[2];
    assert_eq!(
        r2.action,
        RouteAction::Direct {
            status: 403,
            body: "forbidden".into()
        }
    );
}

#[test]
fn minimal_config_gets_every_default() {
    let cfg = parse(MINIMAL).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(cfg.runtime.workers, None);
    assert_eq!(cfg.runtime.drain_timeout, Duration::from_secs(10));
    assert_eq!(
        cfg.runtime.io,
        IoConfig {
            ring_entries: 1024,
            recv_buffers: 1024,
            recv_buffer_size: 16384
        }
    );
    assert_eq!(cfg.admin, None);
    let l = &cfg.listeners[0];
    assert!(l.routes.is_empty());
    assert_eq!(
        l.limits,
        Limits {
            max_request_head_bytes: 65536,
            max_request_target_bytes: 8192,
            max_headers: 100,
            max_request_body_bytes: 0,
            request_head_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            stream_idle_timeout: Duration::from_secs(60),
            max_connections: 100_000,
        }
    );
    let c = &cfg.clusters[0];
    assert_eq!(c.lb, LbPolicy::RoundRobin);
    assert_eq!(c.connect_timeout, Duration::from_secs(1));
    assert_eq!(c.hash_key, HashKey::ClientIp);
    assert_eq!(c.dns_refresh, Duration::from_secs(30));
    assert_eq!(
        c.pool,
        PoolConfig {
            max_idle: 64,
            idle_timeout: Duration::from_secs(30),
            max_requests_per_connection: 0
        }
    );
}

#[test]
fn listener_without_cluster_or_routes_is_valid() {
    let cfg = parse("[[listeners]]\nname = \"l\"\nbind = \"[::1]:8080\"\n").unwrap();
    assert_eq!(cfg.listeners[0].cluster, None);
    assert_eq!(cfg.listeners[0].bind, addr("[::1]:8080"));
    assert!(cfg.clusters.is_empty());
}

#[test]
fn route_without_match_matches_everything() {
    let text = format!("{MINIMAL}\n  [[listeners.routes]]\n  cluster = \"c\"\n");
    // TOML attaches `[[listeners.routes]]` to the last `[[listeners]]` element, even after
    // `[[clusters]]`.
    let cfg = parse(&text).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(cfg.listeners[0].routes[0].matcher, RouteMatch::default());
}

#[test]
fn partial_tables_keep_defaults_for_missing_keys() {
    let text = format!(
        "{MINIMAL}\n[runtime.io]\nring_entries = 256\n\n[listeners.limits]\nmax_headers = 50\n\n[clusters.pool]\nmax_idle = 0\n"
    );
    let cfg = parse(&text).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(cfg.runtime.io.ring_entries, 256);
    assert_eq!(cfg.runtime.io.recv_buffers, 1024);
    assert_eq!(cfg.listeners[0].limits.max_headers, 50);
    assert_eq!(
        cfg.listeners[0].limits.idle_timeout,
        Duration::from_secs(60)
    );
    assert_eq!(cfg.clusters[0].pool.max_idle, 0);
    assert_eq!(cfg.clusters[0].pool.idle_timeout, Duration::from_secs(30));
}

#[test]
fn host_and_header_names_are_lower_cased_and_sorted() {
    let text = format!(
        "{MINIMAL}\n  [[listeners.routes]]\n  match = {{ host = \"*.Example.COM\", headers = {{ \"X-B\" = \"2\", \"a\" = \"1 2\" }} }}\n  cluster = \"c\"\n"
    );
    let cfg = parse(&text).unwrap_or_else(|e| panic!("{e}"));
    let m = &cfg.listeners[0].routes[0].matcher;
    assert_eq!(m.host, Some(HostMatch::Suffix(".example.com".into())));
    assert_eq!(
        m.headers,
        vec![("a".into(), "1 2".into()), ("x-b".into(), "2".into())]
    );
}

#[test]
fn split_accepts_zero_weight_when_another_is_positive() {
    let text = r#"[[listeners]]
name = "l"
bind = "127.0.0.1:8080"
  [[listeners.routes]]
  split = [ { cluster = "a", weight = 0 }, { cluster = "b", weight = 1 } ]
[[clusters]]
name = "a"
endpoints = ["127.0.0.1:1"]
[[clusters]]
name = "b"
endpoints = ["127.0.0.1:2"]
"#;
    let cfg = parse(text).unwrap_or_else(|e| panic!("{e}"));
    assert!(
        matches!(&cfg.listeners[0].routes[0].action, RouteAction::Split(w) if w[0].weight == 0 && w[1].weight == 1)
    );
}

#[test]
fn durations_parse_with_units_and_reject_the_rest() {
    use super::duration::{parse as d, DurationError as E};
    let ok = [
        ("0s", Duration::ZERO),
        ("500us", Duration::from_micros(500)),
        ("250ms", Duration::from_millis(250)),
        ("5s", Duration::from_secs(5)),
        ("2m", Duration::from_secs(120)),
        ("1h", Duration::from_secs(3600)),
        ("0010s", Duration::from_secs(10)),
    ];
    for (text, want) in ok {
        assert_eq!(d(text), Ok(want), "{text}");
    }
    let bad = [
        ("", E::Empty),
        ("5", E::MissingUnit),
        ("-5s", E::Negative),
        ("5 s", E::Malformed),
        (" 5s", E::Malformed),
        ("s", E::Malformed),
        ("+5s", E::Malformed),
        ("1.5s", E::Malformed),
        ("1m30s", E::Malformed),
        ("5sec", E::UnknownUnit),
        ("5d", E::UnknownUnit),
        ("5S", E::UnknownUnit),
        ("99999999999999999999999s", E::Overflow),
        ("18446744073709551615h", E::Overflow),
    ];
    for (text, want) in bad {
        assert_eq!(d(text), Err(want), "{text:?}");
    }
}

#[test]
fn durations_render_in_the_largest_exact_unit() {
    use super::duration::{parse as d, render as r};
    for (text, want) in [
        ("0ms", "0s"),
        ("60s", "1m"),
        ("90s", "90s"),
        ("3600s", "1h"),
        ("1500ms", "1500ms"),
        ("1000us", "1ms"),
        ("7us", "7us"),
    ] {
        let dur = d(text).unwrap();
        assert_eq!(r(dur), want);
        assert_eq!(d(&r(dur)), Ok(dur));
    }
}

#[track_caller]
pub(super) fn assert_round_trip(text: &str) {
    let cfg = parse(text).unwrap_or_else(|e| panic!("{e}"));
    let rendered = cfg.render_toml();
    let again = parse(&rendered).unwrap_or_else(|e| panic!("{e}\n{rendered}"));
    assert_eq!(cfg, again, "{rendered}");
    assert_eq!(rendered, again.render_toml());
}

#[test]
fn render_round_trips_config_md_example() {
    assert_round_trip(CONFIG_MD_EXAMPLE);
}

#[test]
fn render_round_trips_minimal_and_odd_strings() {
    assert_round_trip(MINIMAL);
    let text = format!(
        "{MINIMAL}\n  [[listeners.routes]]\n  match = {{ host = \"[::1]\", headers = {{ \"x-q\" = \"a\\\"b\\\\c\" }} }}\n  direct = {{ status = 200, body = \"line\\n\\ttab \\u0001 \\\"q\\\" é\" }}\n"
    );
    assert_round_trip(&text);
}

#[test]
fn render_fills_in_defaults() {
    let rendered = parse(MINIMAL).unwrap().render_toml();
    for needle in [
        "drain_timeout = \"10s\"",
        "ring_entries = 1024",
        "max_request_head_bytes = 65536",
        "request_head_timeout = \"10s\"",
        "lb = \"round_robin\"",
        "connect_timeout = \"1s\"",
        "dns_refresh = \"30s\"",
        "max_idle = 64",
    ] {
        assert!(rendered.contains(needle), "{needle} missing in\n{rendered}");
    }
}

fn examples_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples")
}

#[test]
fn every_shipped_example_validates_and_round_trips() {
    let mut seen = 0;
    for entry in std::fs::read_dir(examples_dir()).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "toml") {
            let cfg = load(&path).unwrap_or_else(|e| panic!("{}:\n{e}", path.display()));
            let again = parse(&cfg.render_toml()).unwrap();
            assert_eq!(cfg, again, "{}", path.display());
            seen += 1;
        }
    }
    assert!(seen >= 2, "expected the shipped examples, found {seen}");
}

#[test]
fn quickstart_example_has_the_documented_shape() {
    let cfg = load(&examples_dir().join("quickstart.toml")).unwrap();
    assert_eq!(cfg.runtime.workers, Some(2));
    assert_eq!(cfg.admin.unwrap().bind, addr("127.0.0.1:9901"));
    let l = &cfg.listeners[0];
    assert_eq!(l.bind, addr("127.0.0.1:8080"));
    let demo = &cfg.clusters[l.cluster.unwrap().0 as usize];
    assert_eq!(demo.name, "demo");
    assert_eq!(
        demo.endpoints,
        vec![EndpointAddr::Ip(addr("127.0.0.1:9000"))]
    );
    assert!(
        matches!(&l.routes[0].action, RouteAction::Split(w) if w.iter().map(|w| w.weight).collect::<Vec<_>>() == [90, 10])
    );
    assert!(matches!(
        &l.routes[1].action,
        RouteAction::Direct { status: 403, .. }
    ));
}

#[test]
fn load_reports_a_missing_file_with_its_path() {
    let e = load(Path::new("/nonexistent/ringway.toml")).unwrap_err();
    assert_eq!(e.errors().len(), 1);
    assert!(e.to_string().contains("/nonexistent/ringway.toml"), "{e}");
}

#[test]
fn errors_display_with_line_and_one_per_line() {
    let text = "[[listeners]]\nname = \"l\"\nbind = \"nope\"\n\n[admin]\nbind = \"bad\"\n";
    let e = parse(text).unwrap_err();
    let shown = e.to_string();
    let lines: Vec<&str> = shown.lines().collect();
    assert_eq!(lines.len(), 2, "{shown}");
    assert!(
        lines[0].starts_with("line 3: listeners[0].bind: "),
        "{shown}"
    );
    assert!(lines[1].starts_with("line 6: admin.bind: "), "{shown}");
}

#[test]
fn line_col_counts_lines_and_characters() {
    let text = "ab\né x\n";
    assert_eq!(line_col(text, 0), (1, 1));
    assert_eq!(line_col(text, 3), (2, 1));
    assert_eq!(line_col(text, 6), (2, 3));
    assert_eq!(line_col(text, 999), (3, 1));
}

#[test]
fn fuzz_logic_survives_garbage_and_valid_input() {
    fuzz_logic::config(b"\xff\xfe");
    fuzz_logic::config(b"[[listeners]\n");
    fuzz_logic::config(b"workers = 1e400");
    fuzz_logic::config(CONFIG_MD_EXAMPLE.as_bytes());
    fuzz_logic::config(MINIMAL.as_bytes());
    fuzz_logic::config(policy::FULL.as_bytes());
    fuzz_logic::config(security::FULL.as_bytes());
    fuzz_logic::config(telemetry::FULL.as_bytes());
}

#[test]
fn mutated_examples_never_panic_and_round_trip() {
    // A tiny deterministic mutation fuzzer (xorshift), so `cargo test` covers the fuzz
    // target's invariant without cargo-fuzz.
    let seeds = [
        CONFIG_MD_EXAMPLE,
        MINIMAL,
        policy::FULL,
        security::FULL,
        telemetry::FULL,
    ];
    let alphabet: &[u8] = b"[]{}=\",.:*/-_ 0123456789\nabcdehklmnoprstuwxyz#'\\\tAZ\xc3\xa9";
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for round in 0..4500 {
        let mut bytes = seeds[round % seeds.len()].as_bytes().to_vec();
        for _ in 0..1 + next() % 4 {
            let at = (next() as usize) % (bytes.len() + 1);
            let b = alphabet[(next() as usize) % alphabet.len()];
            match next() % 3 {
                0 => bytes.insert(at, b),
                1 if at < bytes.len() => {
                    bytes.remove(at);
                }
                _ if at < bytes.len() => bytes[at] = b,
                _ => {}
            }
        }
        fuzz_logic::config(&bytes);
    }
}

#[test]
fn render_round_trips_unusual_addresses() {
    let text = r#"[[listeners]]
name = "l"
bind = "[fe80::1%2]:8080"
cluster = "c"
[[clusters]]
name = "c"
endpoints = ["[::ffff:1.2.3.4]:80", "Example.COM.:443", "[fe80::1%3]:80", "my_svc-1.ns:1"]
lb = "ring_hash"
"#;
    assert_round_trip(text);
}

#[test]
fn configs_in_the_documentation_validate() {
    let doc = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/configuration.md"),
    )
    .unwrap();
    let mut seen = 0;
    for block in doc.split("```toml\n").skip(1) {
        let text = block.split("```").next().unwrap_or("");
        if text.contains("[[listeners]]") {
            assert_round_trip(text);
            seen += 1;
        }
    }
    assert!(seen >= 1);
}

#[test]
fn other_toml_spellings_of_the_same_config_parse() {
    let text = r#"runtime.workers = 3
admin = { bind = "127.0.0.1:9901" }
listeners = [ { name = "l", bind = "127.0.0.1:8080", limits.max_headers = 7, routes = [ { match.path_prefix = "/a", cluster = "c" } ] } ]
clusters = [ { name = "c", endpoints = ["127.0.0.1:1"], pool.max_idle = 2 } ]
"#;
    let cfg = parse(text).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(cfg.runtime.workers, Some(3));
    assert_eq!(cfg.listeners[0].limits.max_headers, 7);
    assert_eq!(
        cfg.listeners[0].routes[0].matcher.path_prefix.as_deref(),
        Some("/a")
    );
    assert_eq!(cfg.clusters[0].pool.max_idle, 2);
    assert_round_trip(text);
}
