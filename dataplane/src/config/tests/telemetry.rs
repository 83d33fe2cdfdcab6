//! The observability keys: `[telemetry]`, `[telemetry.otlp]`, a listener's `reporter` and
//! `[listeners.access_log]`, a cluster's `service`: values, defaults, every enum value, one
//! failing case per rule with its message and line, unknown keys, path resolution and round
//! trips.

use std::path::{Path, PathBuf};

use super::policy::{check_all, parse_ok, with_table};
use super::{assert_round_trip, errors_of, MINIMAL};
use crate::config::keys::unknown_keys;
use crate::config::*;

const CLUSTER: &str = "\n[[clusters]]\nname = \"c\"\nendpoints = [\"127.0.0.1:9000\"]\n";

/// Every telemetry key, set away from its default.
pub(super) const FULL: &str = r#"[telemetry]
istio_metrics = true
workload = "cart-v1"
namespace = "shop"
app = "cart"
version = "v1"
principal = "spiffe://cluster.local/ns/shop/sa/cart"
cluster_id = "Kubernetes"
trace_context = "start"

[telemetry.otlp]
endpoint = "http://10.0.0.7:55681/otlp/v1/traces"
service_name = "cart-proxy"
sample_percent = 12.5

[[listeners]]
name = "inbound"
bind = "127.0.0.1:15006"
cluster = "cart"
reporter = "destination"

  [listeners.access_log]
  path = "stderr"

[[listeners]]
name = "outbound"
bind = "127.0.0.1:15001"
cluster = "reviews"
reporter = "source"

  [listeners.access_log]
  path = "logs/outbound.log"
  format = "[%START_TIME%] \"%REQ(:METHOD)% %REQ(:PATH)% %PROTOCOL%\" %RESPONSE_CODE% %DURATION%"
  sample_percent = 12.5
  buffer_bytes = 1048576

[[listeners]]
name = "l4"
bind = "127.0.0.1:15002"
protocol = "tcp"
cluster = "db"

  [listeners.access_log]
  path = "/var/log/ringway/l4.log"
  format = "%DOWNSTREAM_REMOTE_ADDRESS% %UPSTREAM_HOST% %BYTES_SENT%"
  sample_percent = 0
  buffer_bytes = 4096

[[clusters]]
name = "cart"
endpoints = ["127.0.0.1:9000"]
service = "cart.shop.svc.cluster.local"

[[clusters]]
name = "reviews"
endpoints = ["127.0.0.1:9100"]
service = "reviews.shop.svc.cluster.local"

[[clusters]]
name = "db"
endpoints = ["127.0.0.1:5432"]
"#;

/// `MINIMAL` + `[telemetry]` on line 10; `body` from line 11.
fn telemetry(body: &str) -> String {
    with_table("telemetry", body)
}

/// `MINIMAL` + `[telemetry.otlp]` on line 10 (without `[telemetry]`); `body` from line 11.
fn otlp(body: &str) -> String {
    with_table("telemetry.otlp", body)
}

/// `MINIMAL` + `[listeners.access_log]` on line 10 (of listener `l`); `body` from line 11.
fn access_log(body: &str) -> String {
    with_table("listeners.access_log", body)
}

/// A listener with `reporter = <value>` on line 4, and the cluster `c`.
fn reporter(value: &str) -> String {
    format!("[[listeners]]\nname = \"l\"\nbind = \"127.0.0.1:8080\"\nreporter = {value}\ncluster = \"c\"\n{CLUSTER}")
}

/// `MINIMAL` with `service = <value>` on line 9 (of cluster `c`).
fn service(value: &str) -> String {
    format!("{MINIMAL}service = {value}\n")
}

#[test]
fn every_telemetry_key_parses_to_its_value() {
    let cfg = parse_ok(FULL);
    assert_eq!(
        cfg.telemetry,
        TelemetryConfig {
            istio_metrics: true,
            workload: WorkloadConfig {
                name: Some("cart-v1".into()),
                namespace: Some("shop".into()),
                app: Some("cart".into()),
                version: Some("v1".into()),
                principal: Some("spiffe://cluster.local/ns/shop/sa/cart".into()),
                cluster_id: Some("Kubernetes".into()),
            },
            trace_context: TraceContext::Start,
            otlp: Some(OtlpConfig {
                address: "10.0.0.7:55681".parse().unwrap(),
                path: "/otlp/v1/traces".into(),
                service_name: "cart-proxy".into(),
                sample: Percent(125_000),
            }),
        }
    );
    let [inbound, outbound, l4] = &cfg.listeners[..] else {
        panic!("three listeners expected");
    };
    assert_eq!(inbound.reporter, Reporter::Destination);
    assert_eq!(
        inbound.access_log,
        Some(AccessLogConfig {
            sink: LogSink::Stderr,
            format: LogFormat::Json,
            sample: Percent::ALL,
            buffer_bytes: 65536,
        })
    );
    assert_eq!(outbound.reporter, Reporter::Source);
    assert_eq!(
        outbound.access_log,
        Some(AccessLogConfig {
            sink: LogSink::File("logs/outbound.log".into()),
            format: LogFormat::Text(
                "[%START_TIME%] \"%REQ(:METHOD)% %REQ(:PATH)% %PROTOCOL%\" %RESPONSE_CODE% %DURATION%"
                    .into()
            ),
            sample: Percent(125_000),
            buffer_bytes: 1 << 20,
        })
    );
    assert_eq!(l4.protocol, Protocol::Tcp);
    assert_eq!(l4.reporter, Reporter::Destination);
    assert_eq!(
        l4.access_log,
        Some(AccessLogConfig {
            sink: LogSink::File("/var/log/ringway/l4.log".into()),
            format: LogFormat::Text(
                "%DOWNSTREAM_REMOTE_ADDRESS% %UPSTREAM_HOST% %BYTES_SENT%".into()
            ),
            sample: Percent(0),
            buffer_bytes: 4096,
        })
    );
    let services: Vec<Option<&str>> = cfg.clusters.iter().map(|c| c.service.as_deref()).collect();
    assert_eq!(
        services,
        [
            Some("cart.shop.svc.cluster.local"),
            Some("reviews.shop.svc.cluster.local"),
            None
        ]
    );
}

#[test]
fn defaults_of_the_telemetry_keys() {
    let cfg = parse_ok(MINIMAL);
    assert_eq!(cfg.telemetry, TelemetryConfig::default());
    assert!(!cfg.telemetry.istio_metrics);
    assert_eq!(cfg.telemetry.workload, WorkloadConfig::default());
    assert_eq!(cfg.telemetry.workload.name, None);
    assert_eq!(cfg.telemetry.trace_context, TraceContext::Propagate);
    assert_eq!(cfg.telemetry.otlp, None);
    assert_eq!(cfg.listeners[0].reporter, Reporter::Destination);
    assert_eq!(cfg.listeners[0].access_log, None);
    assert_eq!(cfg.clusters[0].service, None);

    // An empty `[telemetry]` is the same as none.
    assert_eq!(parse_ok(&telemetry("")), cfg);
    // Workload keys left out stay unset (filled from the environment at start).
    let partial = parse_ok(&telemetry("namespace = \"shop\"\n"));
    assert_eq!(
        partial.telemetry.workload,
        WorkloadConfig {
            namespace: Some("shop".into()),
            ..WorkloadConfig::default()
        }
    );
    assert_round_trip(&telemetry("namespace = \"shop\"\n"));

    // `[listeners.access_log]` with only its required `path`.
    let cfg = parse_ok(&access_log("path = \"stdout\"\n"));
    assert_eq!(
        cfg.listeners[0].access_log,
        Some(AccessLogConfig {
            sink: LogSink::Stdout,
            format: LogFormat::Json,
            sample: Percent::ALL,
            buffer_bytes: 65536,
        })
    );
    assert_round_trip(&access_log("path = \"stdout\"\n"));
}

#[test]
fn every_enum_value_parses_and_round_trips() {
    for (text, want) in [
        ("propagate", TraceContext::Propagate),
        ("start", TraceContext::Start),
        ("off", TraceContext::Off),
    ] {
        let t = telemetry(&format!("trace_context = \"{text}\"\n"));
        assert_eq!(parse_ok(&t).telemetry.trace_context, want);
        assert_round_trip(&t);
    }
    for (text, want) in [("true", true), ("false", false)] {
        let t = telemetry(&format!("istio_metrics = {text}\n"));
        assert_eq!(parse_ok(&t).telemetry.istio_metrics, want);
        assert_round_trip(&t);
    }
    for (text, want) in [
        ("destination", Reporter::Destination),
        ("source", Reporter::Source),
    ] {
        let t = reporter(&format!("\"{text}\""));
        assert_eq!(parse_ok(&t).listeners[0].reporter, want);
        assert_round_trip(&t);
    }
    for (text, want) in [
        ("stderr", LogSink::Stderr),
        ("stdout", LogSink::Stdout),
        // A file called `stderr` is written with a directory.
        ("./stderr", LogSink::File("./stderr".into())),
        ("access.log", LogSink::File("access.log".into())),
        (
            "/var/log/ringway/access.log",
            LogSink::File("/var/log/ringway/access.log".into()),
        ),
    ] {
        let t = access_log(&format!("path = \"{text}\"\n"));
        assert_eq!(
            parse_ok(&t).listeners[0].access_log.as_ref().unwrap().sink,
            want
        );
        assert_round_trip(&t);
    }
    for (text, want) in [
        ("json", LogFormat::Json),
        ("%RESPONSE_CODE%", LogFormat::Text("%RESPONSE_CODE%".into())),
        // `json` only as the whole value; a literal text otherwise.
        ("json ", LogFormat::Text("json ".into())),
        (
            "100%% %REQ(:AUTHORITY)%",
            LogFormat::Text("100%% %REQ(:AUTHORITY)%".into()),
        ),
    ] {
        let t = access_log(&format!("path = \"stderr\"\nformat = \"{text}\"\n"));
        assert_eq!(
            parse_ok(&t).listeners[0]
                .access_log
                .as_ref()
                .unwrap()
                .format,
            want
        );
        assert_round_trip(&t);
    }
    for (text, want) in [
        ("0", Percent(0)),
        ("100", Percent::ALL),
        ("0.0001", Percent(1)),
        ("33.3333", Percent(333_333)),
    ] {
        let t = access_log(&format!("path = \"stderr\"\nsample_percent = {text}\n"));
        assert_eq!(
            parse_ok(&t).listeners[0]
                .access_log
                .as_ref()
                .unwrap()
                .sample,
            want
        );
        assert_round_trip(&t);
    }
    for n in [4096, 65536, 16_777_216] {
        let t = access_log(&format!("path = \"stderr\"\nbuffer_bytes = {n}\n"));
        assert_eq!(
            parse_ok(&t).listeners[0]
                .access_log
                .as_ref()
                .unwrap()
                .buffer_bytes,
            n
        );
        assert_round_trip(&t);
    }
}

#[test]
fn telemetry_rules() {
    let mut cases = Vec::new();
    for key in [
        "workload",
        "namespace",
        "app",
        "version",
        "principal",
        "cluster_id",
    ] {
        cases.push((
            telemetry(&format!("{key} = \"\"\n")),
            11,
            format!("telemetry.{key}: must not be empty"),
        ));
        cases.push((
            telemetry(&format!("{key} = \"a\\nb\"\n")),
            11,
            format!("telemetry.{key}: \"a\\nb\" contains a control character"),
        ));
    }
    let cases: Vec<(String, usize, &str)> = cases
        .iter()
        .map(|(t, l, n)| (t.clone(), *l, n.as_str()))
        .collect();
    check_all(&cases);
    check_all(&[
        (telemetry("trace_context = \"b3\"\n"), 11, "telemetry.trace_context: unknown trace_context \"b3\"; expected \"propagate\", \"start\" or \"off\""),
        (telemetry("trace_context = \"Propagate\"\n"), 11, "unknown trace_context \"Propagate\""),
        (telemetry("istio_metrics = \"yes\"\n"), 11, "invalid type"),
        (telemetry("workload = 1\n"), 11, "invalid type"),
        (telemetry("app = \"cart\\u007f\"\n"), 11, "telemetry.app: \"cart\\u{7f}\" contains a control character"),
        (reporter("\"inbound\""), 4, "listeners[0].reporter: unknown reporter \"inbound\"; expected \"destination\""),
        (reporter("\"\""), 4, "listeners[0].reporter: unknown reporter \"\""),
        (reporter("true"), 4, "invalid type"),
        (service("\"\""), 9, "clusters[0].service: must not be empty"),
        (service("\"reviews\\tv1\""), 9, "clusters[0].service: \"reviews\\tv1\" contains a control character"),
    ]);
}

#[test]
fn access_log_rules() {
    check_all(&[
        (access_log("format = \"json\"\n"), 10, "missing field `path`"),
        (access_log("path = \"\"\n"), 11, "listeners[0].access_log.path: must not be empty (\"stderr\", \"stdout\" or a file path)"),
        (access_log("path = \"logs/\"\n"), 11, "listeners[0].access_log.path: \"logs/\" names a directory"),
        (access_log("path = \"/\"\n"), 11, "names a directory"),
        (access_log("path = \"a\\u0000b\"\n"), 11, "listeners[0].access_log.path: \"a\\0b\" contains a NUL byte"),
        (access_log("path = 1\n"), 11, "invalid type"),
        (access_log("path = \"stderr\"\nbuffer_bytes = 4095\n"), 12, "listeners[0].access_log.buffer_bytes: must be between 4096 and 16777216, got 4095"),
        (access_log("path = \"stderr\"\nbuffer_bytes = 16777217\n"), 12, "listeners[0].access_log.buffer_bytes: must be between 4096 and 16777216, got 16777217"),
        (access_log("path = \"stderr\"\nbuffer_bytes = -1\n"), 12, "must be between 4096 and 16777216, got -1"),
        (access_log("path = \"stderr\"\nsample_percent = 101\n"), 12, "listeners[0].access_log.sample_percent: must be between 0 and 100, got 101"),
        (access_log("path = \"stderr\"\nsample_percent = 100.5\n"), 12, "sample_percent: must be between 0 and 100, got 100.5"),
        (access_log("path = \"stderr\"\nsample_percent = -1\n"), 12, "sample_percent: must be between 0 and 100, got -1"),
        (access_log("path = \"stderr\"\nsample_percent = 0.00001\n"), 12, "has more than 4 decimals"),
        (access_log("path = \"stderr\"\nsample_percent = \"10\"\n"), 12, "a percentage"),
        (access_log("path = \"stderr\"\nformat = \"%NOPE%\"\n"), 12, "listeners[0].access_log.format: unknown operator %NOPE%"),
        (access_log("path = \"stderr\"\nformat = \"%REQ(:PATH)\"\n"), 12, "listeners[0].access_log.format: unclosed '%'"),
        (access_log("path = \"stderr\"\nformat = \"\"\n"), 12, "listeners[0].access_log.format: must not be empty"),
    ]);
    // The path names the listener it belongs to.
    let second = format!(
        "{MINIMAL}\n[[listeners]]\nname = \"m\"\nbind = \"127.0.0.1:8081\"\n\n  [listeners.access_log]\n  path = \"\"\n"
    );
    check_all(&[(
        second,
        15,
        "listeners[1].access_log.path: must not be empty",
    )]);
}

#[test]
fn unknown_keys_in_telemetry_tables_are_errors_with_their_line() {
    check_all(&[
        (telemetry("tracing = \"on\"\n"), 11, "telemetry: unknown key `tracing`"),
        (telemetry("workload_name = \"cart\"\n"), 11, "telemetry: unknown key `workload_name`, expected one of `istio_metrics`, `workload`"),
        (access_log("path = \"stderr\"\nrotate = true\n"), 12, "listeners[0].access_log: unknown key `rotate`"),
        (access_log("path = \"stderr\"\njson_format = {}\n"), 12, "listeners[0].access_log: unknown key `json_format`"),
        (format!("{MINIMAL}\n[[listeners]]\nname = \"m\"\nbind = \"127.0.0.1:8081\"\naccess_log = {{ path = \"stderr\", level = \"info\" }}\n"), 13, "listeners[1].access_log: unknown key `level`"),
        (service("\"a\"\nservices = [\"b\"]"), 10, "clusters[0]: unknown key `services`"),
        (reporter("\"source\"\nreporters = 1"), 5, "listeners[0]: unknown key `reporters`"),
    ]);
    // All unknown keys at once, each with its line.
    let text = format!(
        "{}\n[listeners.access_log]\npath = \"stderr\"\nrotate = true\n",
        telemetry("tracing = 1\nmesh_id = \"m\"\n")
    );
    let errors = errors_of(&text);
    let lines: Vec<Option<usize>> = errors.iter().map(|e| e.line).collect();
    assert_eq!(lines, [Some(11), Some(12), Some(16)], "{errors:?}");
}

#[test]
fn every_telemetry_problem_is_reported_at_once() {
    let text = format!(
        "{}\n[listeners.access_log]\npath = \"logs/\"\nformat = \"%NOPE%\"\nsample_percent = 101\nbuffer_bytes = 1\n",
        telemetry("workload = \"\"\ntrace_context = \"b3\"\n")
    );
    let errors = errors_of(&text);
    let got: Vec<Option<usize>> = errors.iter().map(|e| e.line).collect();
    assert_eq!(
        got,
        [Some(11), Some(12), Some(15), Some(16), Some(17), Some(18)],
        "{errors:?}"
    );
}

#[test]
fn render_round_trips_every_telemetry_key() {
    assert_round_trip(FULL);
    let rendered = parse_ok(FULL).render_toml();
    for needle in [
        "[telemetry]\nistio_metrics = true\nworkload = \"cart-v1\"\nnamespace = \"shop\"\napp = \"cart\"\nversion = \"v1\"\nprincipal = \"spiffe://cluster.local/ns/shop/sa/cart\"\ncluster_id = \"Kubernetes\"\ntrace_context = \"start\"\n",
        "[telemetry.otlp]\nendpoint = \"http://10.0.0.7:55681/otlp/v1/traces\"\nservice_name = \"cart-proxy\"\nsample_percent = 12.5\n",
        "reporter = \"source\"",
        "  [listeners.access_log]\n  path = \"stderr\"\n  format = \"json\"\n  sample_percent = 100\n  buffer_bytes = 65536\n",
        "  path = \"logs/outbound.log\"\n  format = \"[%START_TIME%] \\\"%REQ(:METHOD)% %REQ(:PATH)% %PROTOCOL%\\\" %RESPONSE_CODE% %DURATION%\"\n  sample_percent = 12.5\n  buffer_bytes = 1048576\n",
        "sample_percent = 0\n",
        "service = \"reviews.shop.svc.cluster.local\"",
    ] {
        assert!(rendered.contains(needle), "{needle} missing in\n{rendered}");
    }
    assert_eq!(rendered.matches("reporter = ").count(), 3, "{rendered}");
    assert_eq!(rendered.matches("service = ").count(), 2, "{rendered}");

    // The defaults are written out too.
    let rendered = parse_ok(MINIMAL).render_toml();
    for needle in [
        "[telemetry]\nistio_metrics = false\ntrace_context = \"propagate\"\n",
        "reporter = \"destination\"",
    ] {
        assert!(rendered.contains(needle), "{needle} missing in\n{rendered}");
    }
    assert!(!rendered.contains("access_log"), "{rendered}");
    assert!(!rendered.contains("service"), "{rendered}");
    assert!(!rendered.contains("workload"), "{rendered}");
    assert!(!rendered.contains("otlp"), "{rendered}");
}

#[test]
fn the_key_schema_knows_every_telemetry_key() {
    assert_eq!(unknown_keys(FULL), vec![]);
}

#[test]
fn other_toml_spellings_of_the_telemetry_keys_parse() {
    let text = r#"telemetry.istio_metrics = true
telemetry.trace_context = "off"
listeners = [ { name = "l", bind = "127.0.0.1:8080", reporter = "source", access_log = { path = "stderr", sample_percent = 50 } } ]
clusters = [ { name = "c", endpoints = ["127.0.0.1:1"], service = "c.ns.svc.cluster.local" } ]
"#;
    let cfg = parse_ok(text);
    assert!(cfg.telemetry.istio_metrics);
    assert_eq!(cfg.telemetry.trace_context, TraceContext::Off);
    assert_eq!(cfg.listeners[0].reporter, Reporter::Source);
    assert_eq!(
        cfg.listeners[0].access_log.as_ref().map(|a| a.sample),
        Some(Percent(500_000))
    );
    assert_eq!(
        cfg.clusters[0].service.as_deref(),
        Some("c.ns.svc.cluster.local")
    );
    assert_round_trip(text);
    let dotted = parse_ok(&format!(
        "{MINIMAL}\n[listeners.access_log]\npath = \"stderr\"\nsample_percent = 50\n"
    ));
    assert_eq!(dotted.listeners[0].access_log, cfg.listeners[0].access_log);
}

#[test]
fn resolve_paths_makes_a_relative_access_log_path_absolute() {
    let mut cfg = parse_ok(FULL);
    cfg.resolve_paths(Path::new("/etc/ringway"));
    let sinks: Vec<&LogSink> = cfg
        .listeners
        .iter()
        .map(|l| &l.access_log.as_ref().unwrap().sink)
        .collect();
    assert_eq!(
        sinks,
        [
            &LogSink::Stderr,
            &LogSink::File("/etc/ringway/logs/outbound.log".into()),
            // Absolute paths are kept.
            &LogSink::File("/var/log/ringway/l4.log".into()),
        ]
    );
    // Resolving again changes nothing; the resolved config still round trips.
    let once = cfg.clone();
    cfg.resolve_paths(Path::new("/elsewhere"));
    assert_eq!(cfg, once);
    assert_eq!(parse_ok(&cfg.render_toml()), cfg);
}

#[test]
fn load_resolves_the_access_log_path_against_the_config_files_directory() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("ringway.toml");
    std::fs::write(&file, FULL).unwrap();
    let cfg = load(&file).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        cfg.listeners[1].access_log.as_ref().unwrap().sink,
        LogSink::File(dir.path().join("logs/outbound.log"))
    );
    // Nothing was opened or created.
    assert!(!dir.path().join("logs").exists());
    // `parse` keeps it as written.
    assert_eq!(
        parse_ok(FULL).listeners[1]
            .access_log
            .as_ref()
            .unwrap()
            .sink,
        LogSink::File(PathBuf::from("logs/outbound.log"))
    );
}

#[test]
fn otlp_table_minimal_form_takes_the_defaults() {
    // `[telemetry.otlp]` without `[telemetry]`: the implicit parent is the default one.
    let cfg = parse_ok(&otlp("endpoint = \"http://127.0.0.1:4318/v1/traces\"\n"));
    assert_eq!(
        cfg.telemetry,
        TelemetryConfig {
            otlp: Some(OtlpConfig {
                address: "127.0.0.1:4318".parse().unwrap(),
                path: "/v1/traces".into(),
                service_name: "ringway".into(),
                sample: Percent::ALL,
            }),
            ..TelemetryConfig::default()
        }
    );
    // Port and path are optional.
    assert_eq!(
        parse_ok(&otlp("endpoint = \"http://10.1.2.3\"\n"))
            .telemetry
            .otlp,
        Some(OtlpConfig {
            address: "10.1.2.3:4318".parse().unwrap(),
            path: "/v1/traces".into(),
            service_name: "ringway".into(),
            sample: Percent::ALL,
        })
    );
    // Next to the other `[telemetry]` keys, and in the other TOML spellings.
    let beside = parse_ok(&telemetry(
        "trace_context = \"start\"\n\n[telemetry.otlp]\nendpoint = \"http://127.0.0.1:4318/v1/traces\"\n",
    ));
    assert_eq!(beside.telemetry.trace_context, TraceContext::Start);
    assert_eq!(beside.telemetry.otlp, cfg.telemetry.otlp);
    for text in [
        format!("telemetry.otlp.endpoint = \"http://127.0.0.1:4318\"\n{MINIMAL}"),
        format!("telemetry.otlp = {{ endpoint = \"http://127.0.0.1\" }}\n{MINIMAL}"),
        telemetry("otlp.endpoint = \"http://127.0.0.1:4318/v1/traces\"\n"),
        telemetry("otlp = { endpoint = \"http://127.0.0.1/v1/traces\", sample_percent = 100 }\n"),
    ] {
        assert_eq!(parse_ok(&text).telemetry.otlp, cfg.telemetry.otlp, "{text}");
        assert_round_trip(&text);
    }
}

#[test]
fn otlp_endpoint_forms() {
    use crate::config::validate::telemetry::parse_otlp_endpoint;
    for (endpoint, address, path) in [
        (
            "http://127.0.0.1:4318/v1/traces",
            "127.0.0.1:4318",
            "/v1/traces",
        ),
        ("http://10.0.0.2", "10.0.0.2:4318", "/v1/traces"),
        ("http://10.0.0.2:9000", "10.0.0.2:9000", "/v1/traces"),
        ("http://10.0.0.2/", "10.0.0.2:4318", "/"),
        (
            "http://10.0.0.2:65535/a/b-c_d.e~f%20",
            "10.0.0.2:65535",
            "/a/b-c_d.e~f%20",
        ),
        ("http://[::1]:4318/v1/traces", "[::1]:4318", "/v1/traces"),
        ("http://[::1]", "[::1]:4318", "/v1/traces"),
        (
            "http://[2001:db8::7]:9000/otlp",
            "[2001:db8::7]:9000",
            "/otlp",
        ),
        ("http://[::ffff:10.0.0.1]:1/x", "[::ffff:10.0.0.1]:1", "/x"),
    ] {
        assert_eq!(
            parse_otlp_endpoint(endpoint),
            Ok((address.parse().unwrap(), path.to_string())),
            "{endpoint}"
        );
        let cfg = parse_ok(&otlp(&format!("endpoint = \"{endpoint}\"\n")));
        let o = cfg.telemetry.otlp.clone().unwrap();
        assert_eq!(
            (o.address, o.path.as_str()),
            (address.parse().unwrap(), path),
            "{endpoint}"
        );
        // Rendered as `http://ADDR/PATH`, IPv6 in brackets, every key written.
        let rendered = cfg.render_toml();
        let want = format!(
            "[telemetry.otlp]\nendpoint = \"http://{address}{path}\"\nservice_name = \"ringway\"\nsample_percent = 100\n"
        );
        assert!(rendered.contains(&want), "{want} missing in\n{rendered}");
        assert_round_trip(&otlp(&format!("endpoint = \"{endpoint}\"\n")));
    }
}

#[test]
fn otlp_rules() {
    let e = |endpoint: &str| otlp(&format!("endpoint = \"{endpoint}\"\n"));
    check_all(&[
        (e("https://127.0.0.1:4318/v1/traces"), 11, "telemetry.otlp.endpoint: https is not supported (OTLP/HTTP over plaintext to a local collector)"),
        (e("HTTPS://127.0.0.1"), 11, "https is not supported"),
        (e("http://collector:4318/v1/traces"), 11, "telemetry.otlp.endpoint: host must be an IP address, got \"collector\""),
        (e("http://otel-collector.observability.svc:4318"), 11, "host must be an IP address"),
        (e("http://localhost/v1/traces"), 11, "host must be an IP address, got \"localhost\""),
        (e("http://[1.2.3.4]:4318"), 11, "[1.2.3.4]: host must be an IP address (an IPv6 address in brackets)"),
        (e("http://::1:4318/v1/traces"), 11, "\"::1:4318\": an IPv6 host must be in brackets"),
        (e("http://[::1:4318/v1/traces"), 11, "has an unclosed '[' in the host"),
        (e("http://127.0.0.1:0/v1/traces"), 11, "telemetry.otlp.endpoint: bad port \"0\"; expected 1 to 65535"),
        (e("http://127.0.0.1:65536"), 11, "bad port \"65536\""),
        (e("http://127.0.0.1:http"), 11, "bad port \"http\""),
        (e("http://127.0.0.1:+80"), 11, "bad port \"+80\""),
        (e("http://127.0.0.1:/v1/traces"), 11, "bad port \"\""),
        // A path must start with '/': what follows the host otherwise is not a port.
        (e("http://127.0.0.1:4318v1/traces"), 11, "bad port \"4318v1\""),
        (e("http://[::1]v1/traces"), 11, "\"v1\" after the host; expected \":PORT\" or a path starting with '/'"),
        (e("http://127.0.0.1:4318/v1/traces?tenant=a"), 11, "telemetry.otlp.endpoint: \"http://127.0.0.1:4318/v1/traces?tenant=a\" has a query"),
        (e("http://127.0.0.1?tenant=a"), 11, "has a query"),
        (e("http://127.0.0.1/v1/traces#x"), 11, "has a '#'"),
        (e("http://127.0.0.1/v1 traces"), 11, "the path \"/v1 traces\" has ' '; it must be visible ASCII without spaces"),
        (e("http://127.0.0.1/v1/tr\\u00e9ces"), 11, "it must be visible ASCII"),
        (e("http://127.0.0.1/v1\\ttraces"), 11, "it must be visible ASCII"),
        (e(""), 11, "telemetry.otlp.endpoint: must not be empty (e.g. \"http://127.0.0.1:4318/v1/traces\")"),
        (e("http://"), 11, "\"http://\" has no host"),
        (e("http://:4318/v1/traces"), 11, "has no host"),
        (e("http:///v1/traces"), 11, "has no host"),
        (e("http://user@127.0.0.1"), 11, "has user information"),
        (e("127.0.0.1:4318"), 11, "\"127.0.0.1:4318\" is not an http:// URL"),
        (e("grpc://127.0.0.1:4317"), 11, "is not an http:// URL"),
        (e(" http://127.0.0.1"), 11, "is not an http:// URL"),
        (otlp("endpoint = 4318\n"), 11, "invalid type"),
        (otlp("service_name = \"x\"\n"), 10, "missing field `endpoint`"),
        (otlp("endpoint = \"http://127.0.0.1\"\nservice_name = \"\"\n"), 12, "telemetry.otlp.service_name: must not be empty (leave the key out for \"ringway\")"),
        (otlp("endpoint = \"http://127.0.0.1\"\nservice_name = \"a\\nb\"\n"), 12, "telemetry.otlp.service_name: \"a\\nb\" contains a control character"),
        (otlp("endpoint = \"http://127.0.0.1\"\nservice_name = 1\n"), 12, "invalid type"),
        (otlp("endpoint = \"http://127.0.0.1\"\nsample_percent = 101\n"), 12, "telemetry.otlp.sample_percent: must be between 0 and 100, got 101"),
        (otlp("endpoint = \"http://127.0.0.1\"\nsample_percent = -0.5\n"), 12, "telemetry.otlp.sample_percent: must be between 0 and 100, got -0.5"),
        (otlp("endpoint = \"http://127.0.0.1\"\nsample_percent = \"50\"\n"), 12, "a percentage"),
    ]);
    for (text, want) in [
        ("0", Percent(0)),
        ("100", Percent::ALL),
        ("0.5", Percent(5_000)),
    ] {
        let t = otlp(&format!(
            "endpoint = \"http://127.0.0.1\"\nsample_percent = {text}\n"
        ));
        assert_eq!(parse_ok(&t).telemetry.otlp.unwrap().sample, want, "{text}");
        assert_round_trip(&t);
    }
}

#[test]
fn unknown_keys_in_the_otlp_table_are_errors_with_their_line() {
    check_all(&[
        (otlp("endpoint = \"http://127.0.0.1\"\nheaders = { x = \"1\" }\n"), 12, "telemetry.otlp: unknown key `headers`, expected one of `endpoint`, `service_name`, `sample_percent`"),
        (otlp("endpoint = \"http://127.0.0.1\"\nprotocol = \"grpc\"\n"), 12, "telemetry.otlp: unknown key `protocol`"),
        (telemetry("otlp = { endpoint = \"http://127.0.0.1\", timeout = \"1s\" }\n"), 11, "telemetry.otlp: unknown key `timeout`"),
        (telemetry("tracing.otlp = 1\n"), 11, "telemetry: unknown key `tracing`"),
    ]);
}

#[test]
fn every_otlp_problem_is_reported_at_once() {
    let text =
        otlp("endpoint = \"https://127.0.0.1\"\nservice_name = \"\"\nsample_percent = 101\n");
    let errors = errors_of(&text);
    let got: Vec<Option<usize>> = errors.iter().map(|e| e.line).collect();
    assert_eq!(got, [Some(11), Some(12), Some(13)], "{errors:?}");
}
