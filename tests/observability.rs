//! Observability against real processes: Istio's standard metrics (names and labels checked
//! against Istio's documented list), access logs (JSON and Envoy-style format strings, to
//! files, reopened on SIGUSR1, sampled, refused at `--check` when unwritable), and trace
//! context (W3C `traceparent` and B3 forwarded with a new span id per hop, malformed
//! `traceparent` replaced, `x-request-id` kept or generated).

mod support;

use std::io::Write;
use std::net::TcpStream;
use std::path::Path;
use std::time::{Duration, Instant};

use support::{free_port, Client, Proxy, RawUpstream};

/// The labels Istio documents for its HTTP metrics
/// (istio.io/latest/docs/reference/config/metrics, "Labels").
const ISTIO_HTTP_LABELS: [&str; 25] = [
    "reporter",
    "source_workload",
    "source_workload_namespace",
    "source_principal",
    "source_app",
    "source_version",
    "source_canonical_service",
    "source_canonical_revision",
    "source_cluster",
    "destination_workload",
    "destination_workload_namespace",
    "destination_principal",
    "destination_app",
    "destination_version",
    "destination_service",
    "destination_service_name",
    "destination_service_namespace",
    "destination_canonical_service",
    "destination_canonical_revision",
    "destination_cluster",
    "request_protocol",
    "response_code",
    "grpc_response_status",
    "response_flags",
    "connection_security_policy",
];

const ISTIO_FAMILIES: [&str; 8] = [
    "istio_requests_total",
    "istio_request_duration_milliseconds",
    "istio_request_bytes",
    "istio_response_bytes",
    "istio_tcp_sent_bytes_total",
    "istio_tcp_received_bytes_total",
    "istio_tcp_connections_opened_total",
    "istio_tcp_connections_closed_total",
];

fn upstream() -> RawUpstream {
    RawUpstream::start(|s, r| {
        let resp: &[u8] = if r.request_line().contains("/fail") {
            b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 4\r\n\r\nfail"
        } else {
            b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok"
        };
        let _ = s.write_all(resp);
    })
}

/// The label names of a Prometheus sample line.
fn label_names(line: &str) -> Vec<String> {
    let inner = &line[line.find('{').unwrap() + 1..line.rfind('}').unwrap()];
    let mut names = Vec::new();
    let mut rest = inner;
    while let Some(eq) = rest.find("=\"") {
        names.push(rest[..eq].trim_start_matches(',').to_string());
        // Skip the quoted value (label values here never contain '"').
        let after = &rest[eq + 2..];
        let end = after.find('"').unwrap();
        rest = &after[end + 1..];
    }
    names
}

fn sample_value(text: &str, name: &str, must_contain: &[&str]) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(&format!("{name}{{")))
        .filter(|l| must_contain.iter().all(|m| l.contains(m)))
        .map(|l| l.rsplit(' ').next().unwrap().parse::<f64>().unwrap())
        .sum()
}

#[test]
fn istio_metrics_carry_istios_names_and_labels() {
    let app = upstream();
    let (http, tcp, admin) = (free_port(), free_port(), free_port());
    let cfg = format!(
        r#"[runtime]
workers = 2
drain_timeout = "1s"

[admin]
bind = "127.0.0.1:{admin}"

[telemetry]
istio_metrics = true
workload = "reviews-v1"
namespace = "shop"
app = "reviews"
version = "v1"

[[listeners]]
name = "inbound"
bind = "127.0.0.1:{http}"
cluster = "app"

[[listeners]]
name = "inbound-tcp"
bind = "127.0.0.1:{tcp}"
protocol = "tcp"
cluster = "app"

[[clusters]]
name = "app"
service = "reviews.shop.svc.cluster.local"
endpoints = ["{up}"]
"#,
        up = app.addr()
    );
    let proxy = Proxy::start(&cfg);
    let mut c = Client::connect(([127, 0, 0, 1], http).into());
    for _ in 0..3 {
        assert_eq!(c.get("/ok", "reviews").status, 200);
    }
    assert_eq!(c.get("/fail", "reviews").status, 503);
    // One TCP connection through the L4 listener; its bytes count while it is still open.
    {
        let mut t = TcpStream::connect(("127.0.0.1", tcp)).unwrap();
        t.write_all(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n").unwrap();
        let mut out = [0u8; 64];
        let n = std::io::Read::read(&mut t, &mut out).unwrap();
        assert!(out[..n].starts_with(b"HTTP/1.1 200"));
        // The 27-byte request and the 40-byte response count before the close.
        let deadline = Instant::now() + Duration::from_secs(3);
        let open = loop {
            let m = proxy.admin_get("/metrics").text();
            let moved = (
                sample_value(&m, "istio_tcp_received_bytes_total", &[]),
                sample_value(&m, "istio_tcp_sent_bytes_total", &[]),
            );
            if moved == (27.0, 40.0) || Instant::now() > deadline {
                break m;
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        assert_eq!(
            sample_value(&open, "istio_tcp_received_bytes_total", &[]),
            27.0,
            "{open}"
        );
        assert_eq!(
            sample_value(&open, "istio_tcp_sent_bytes_total", &[]),
            40.0,
            "{open}"
        );
        assert_eq!(
            sample_value(&open, "istio_tcp_connections_closed_total", &[]),
            0.0
        );
    }
    // The close is counted when the relay ends; give it a moment.
    let deadline = Instant::now() + Duration::from_secs(5);
    let text = loop {
        let text = proxy.admin_get("/metrics").text();
        if sample_value(&text, "istio_tcp_connections_closed_total", &[]) >= 1.0
            || Instant::now() > deadline
        {
            break text;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    for family in ISTIO_FAMILIES {
        assert!(
            text.contains(&format!("# TYPE {family} ")),
            "no family {family}"
        );
    }
    let line = text
        .lines()
        .find(|l| l.starts_with("istio_requests_total{"))
        .expect("an istio_requests_total sample");
    let mut names = label_names(line);
    names.sort();
    let mut want: Vec<String> = ISTIO_HTTP_LABELS.iter().map(|s| s.to_string()).collect();
    want.sort();
    assert_eq!(names, want, "labels of {line}");
    let ours = [
        r#"reporter="destination""#,
        r#"destination_workload="reviews-v1""#,
        r#"destination_workload_namespace="shop""#,
        r#"destination_canonical_service="reviews""#,
        r#"destination_service="reviews.shop.svc.cluster.local""#,
        r#"connection_security_policy="none""#,
    ];
    assert_eq!(
        sample_value(
            &text,
            "istio_requests_total",
            &[&ours[..], &[r#"response_code="200""#]].concat()
        ),
        3.0
    );
    assert_eq!(
        sample_value(&text, "istio_requests_total", &[r#"response_code="503""#]),
        1.0
    );
    assert_eq!(
        sample_value(
            &text,
            "istio_request_duration_milliseconds_count",
            &[r#"response_code="200""#]
        ),
        3.0
    );
    // Responses were 2-byte bodies behind a short head (head and body counted): all in the
    // (10, 100] bucket.
    assert_eq!(
        sample_value(
            &text,
            "istio_response_bytes_bucket",
            &[r#"response_code="200""#, r#"le="10""#]
        ),
        0.0
    );
    assert_eq!(
        sample_value(
            &text,
            "istio_response_bytes_bucket",
            &[r#"response_code="200""#, r#"le="100""#]
        ),
        3.0
    );
    assert_eq!(
        sample_value(&text, "istio_tcp_connections_opened_total", &[]),
        1.0
    );
    assert_eq!(
        sample_value(&text, "istio_tcp_connections_closed_total", &[]),
        1.0
    );
    assert_eq!(
        sample_value(&text, "istio_tcp_received_bytes_total", &[]),
        27.0
    );
    assert_eq!(sample_value(&text, "istio_tcp_sent_bytes_total", &[]), 40.0);
    // The ringway_* families are still there.
    assert!(text.contains("ringway_requests_total"));
}

fn wait_lines(path: &Path, n: usize) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        let lines: Vec<String> = text.lines().map(str::to_string).collect();
        if lines.len() >= n || Instant::now() > deadline {
            return lines;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn access_logs_json_format_string_reopen_and_sampling() {
    let app = upstream();
    let dir = tempfile::tempdir().unwrap();
    let (json_log, text_log) = (dir.path().join("json.log"), dir.path().join("text.log"));
    let (a, b, c0, admin) = (free_port(), free_port(), free_port(), free_port());
    let cfg = format!(
        r#"[runtime]
workers = 1
drain_timeout = "1s"

[admin]
bind = "127.0.0.1:{admin}"

[[listeners]]
name = "json"
bind = "127.0.0.1:{a}"
cluster = "app"
[listeners.access_log]
path = "{json}"

[[listeners]]
name = "text"
bind = "127.0.0.1:{b}"
cluster = "app"
[listeners.access_log]
path = "{text}"
format = '%REQ(:METHOD)% %REQ(:PATH)% %RESPONSE_CODE% %RESPONSE_FLAGS% "%REQ(USER-AGENT)%" %UPSTREAM_CLUSTER% %LISTENER_NAME%'

[[listeners]]
name = "unsampled"
bind = "127.0.0.1:{c0}"
cluster = "app"
[listeners.access_log]
path = "{text}"
sample_percent = 0

[[clusters]]
name = "app"
endpoints = ["{up}"]
"#,
        json = json_log.display(),
        text = text_log.display(),
        up = app.addr()
    );
    let proxy = Proxy::start(&cfg);
    let mut c = Client::connect(([127, 0, 0, 1], a).into());
    let r = c
        .request(
            "GET",
            "/items?id=7",
            &[
                ("Host", "shop"),
                ("User-Agent", "obs-test"),
                ("x-request-id", "rid-42"),
            ],
            b"",
        )
        .unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(c.get("/fail", "shop").status, 503);
    let lines = wait_lines(&json_log, 2);
    assert_eq!(lines.len(), 2, "{lines:?}");
    let first: serde_json::Value = serde_json::from_str(&lines[0]).expect("a JSON line");
    assert_eq!(first["method"], "GET");
    assert_eq!(first["path"], "/items?id=7");
    assert_eq!(first["authority"], "shop");
    assert_eq!(first["response_code"], 200);
    assert_eq!(first["response_flags"], "-");
    assert_eq!(first["request_id"], "rid-42");
    assert_eq!(first["user_agent"], "obs-test");
    assert_eq!(first["upstream_cluster"], "app");
    assert_eq!(first["upstream_host"], app.addr().to_string());
    assert_eq!(first["listener"], "json");
    assert!(first["bytes_received"].as_u64().unwrap() > 40);
    assert!(first["start_time"].as_str().unwrap().ends_with('Z'));
    let second: serde_json::Value = serde_json::from_str(&lines[1]).unwrap();
    assert_eq!(second["response_code"], 503);
    // A generated request id is logged too.
    assert!(!second["request_id"].as_str().unwrap().is_empty());

    let mut c = Client::connect(([127, 0, 0, 1], b).into());
    c.request("GET", "/t", &[("Host", "shop"), ("User-Agent", "fmt")], b"")
        .unwrap();
    let mut u = Client::connect(([127, 0, 0, 1], c0).into());
    for _ in 0..5 {
        assert_eq!(u.get("/quiet", "shop").status, 200);
    }
    let lines = wait_lines(&text_log, 1);
    assert_eq!(
        lines,
        [r#"GET /t 200 - "fmt" app text"#],
        "sample_percent = 0 logs nothing"
    );

    // logrotate: move the file away, SIGUSR1, the next line lands in a new file.
    let rotated = dir.path().join("text.log.1");
    std::fs::rename(&text_log, &rotated).unwrap();
    proxy.signal(libc::SIGUSR1);
    std::thread::sleep(Duration::from_millis(400));
    c.request(
        "GET",
        "/after",
        &[("Host", "shop"), ("User-Agent", "fmt")],
        b"",
    )
    .unwrap();
    let lines = wait_lines(&text_log, 1);
    assert_eq!(lines, [r#"GET /after 200 - "fmt" app text"#]);
    assert_eq!(
        std::fs::read_to_string(&rotated).unwrap().lines().count(),
        1
    );
    let metrics = proxy.admin_get("/metrics").text();
    assert!(
        metrics.contains("ringway_access_log_lines_total{result=\"written\"} 4"),
        "{}",
        metrics
            .lines()
            .filter(|l| l.contains("access_log"))
            .collect::<Vec<_>>()
            .join("\n")
    );
}

#[test]
fn unwritable_access_log_is_refused_at_check_with_the_file_named() {
    let (port, admin) = (free_port(), free_port());
    let cfg = format!(
        r#"[admin]
bind = "127.0.0.1:{admin}"

[[listeners]]
name = "edge"
bind = "127.0.0.1:{port}"
cluster = "app"
[listeners.access_log]
path = "/nonexistent-dir-ringway/access.log"

[[clusters]]
name = "app"
endpoints = ["127.0.0.1:9"]
"#
    );
    let mut check = Proxy::spawn(&cfg, &["--check"]);
    let status = check.wait_exit(Duration::from_secs(20));
    assert!(!status.success());
    let err = check.stderr_text();
    assert!(
        err.contains("/nonexistent-dir-ringway/access.log") && err.contains("edge"),
        "{err}"
    );
    // And the proxy does not start on it.
    let mut run = Proxy::spawn(&cfg, &[]);
    assert!(!run.wait_exit(Duration::from_secs(20)).success());
}

const TP: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

#[test]
fn trace_context_and_request_ids_are_propagated_per_hop() {
    let app = upstream();
    let (port, admin) = (free_port(), free_port());
    let cfg = format!(
        r#"[runtime]
drain_timeout = "1s"

[admin]
bind = "127.0.0.1:{admin}"

[[listeners]]
name = "edge"
bind = "127.0.0.1:{port}"
cluster = "app"

[[clusters]]
name = "app"
endpoints = ["{up}"]
"#,
        up = app.addr()
    );
    let _proxy = Proxy::start(&cfg);
    let mut c = Client::connect(([127, 0, 0, 1], port).into());
    let send = |c: &mut Client, h: &[(&str, &str)]| {
        let mut headers = vec![("Host", "x")];
        headers.extend_from_slice(h);
        assert_eq!(c.request("GET", "/", &headers, b"").unwrap().status, 200);
    };
    send(
        &mut c,
        &[
            ("traceparent", TP),
            ("tracestate", "vendor=1"),
            ("x-request-id", "keep-me"),
        ],
    );
    send(
        &mut c,
        &[
            ("traceparent", "00-not-a-trace"),
            ("tracestate", "vendor=2"),
        ],
    );
    send(&mut c, &[]);
    send(
        &mut c,
        &[
            ("x-b3-traceid", "80f198ee56343ba8"),
            ("x-b3-spanid", "e457b5a2e4d86bd1"),
            ("x-b3-sampled", "1"),
        ],
    );
    let seen = app.requests();
    assert_eq!(seen.len(), 4);
    // 1: same trace, a new span id, tracestate kept, the request id kept.
    let tp = seen[0].headers("traceparent");
    assert_eq!(tp.len(), 1, "{}", seen[0].head_text());
    assert!(tp[0].starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-"));
    assert_ne!(tp[0], TP);
    assert!(tp[0].ends_with("-01"));
    assert_eq!(seen[0].headers("tracestate"), ["vendor=1"]);
    assert_eq!(seen[0].headers("x-request-id"), ["keep-me"]);
    // 2: the malformed traceparent is replaced by a valid new one, its tracestate dropped.
    let tp = seen[1].headers("traceparent");
    assert_eq!(tp.len(), 1);
    let parts: Vec<&str> = tp[0].split('-').collect();
    assert_eq!(parts.len(), 4, "{}", tp[0]);
    assert_eq!((parts[0], parts[1].len(), parts[2].len()), ("00", 32, 16));
    assert!(seen[1].headers("tracestate").is_empty());
    assert_eq!(seen[1].headers("x-request-id").len(), 1, "a generated id");
    // 3: no trace context in, none out (trace_context = "propagate").
    assert!(seen[2].headers("traceparent").is_empty());
    assert_ne!(
        seen[1].headers("x-request-id"),
        seen[2].headers("x-request-id")
    );
    // 4: B3 keeps its trace id, the incoming span becomes the parent.
    assert_eq!(seen[3].headers("x-b3-traceid"), ["80f198ee56343ba8"]);
    assert_eq!(seen[3].headers("x-b3-parentspanid"), ["e457b5a2e4d86bd1"]);
    let span = seen[3].headers("x-b3-spanid");
    assert_eq!(span.len(), 1);
    assert_ne!(span[0], "e457b5a2e4d86bd1");
    assert_eq!(seen[3].headers("x-b3-sampled"), ["1"]);
}

/// `POST` to the admin; returns (status, body).
fn admin_post(addr: std::net::SocketAddr, target: &str) -> (u16, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    write!(
        s,
        "POST {target} HTTP/1.1\r\nHost: admin\r\nContent-Length: 0\r\n\r\n"
    )
    .unwrap();
    let mut out = String::new();
    std::io::Read::read_to_string(&mut s, &mut out).unwrap();
    let status = out[9..12].parse().unwrap();
    let body = out
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

#[test]
fn admin_clusters_stats_logging_certs_reload_and_dashboard() {
    let app = upstream();
    let (port, admin) = (free_port(), free_port());
    let cfg = |extra: &str| {
        format!(
            r#"[runtime]
workers = 2
drain_timeout = "1s"

[admin]
bind = "127.0.0.1:{admin}"

[[listeners]]
name = "edge"
bind = "127.0.0.1:{port}"
cluster = "app"
{extra}
[[clusters]]
name = "app"
endpoints = ["{up}", "127.0.0.1:1"]

[clusters.health_check]
path = "/ok"
interval = "200ms"
unhealthy_threshold = 1
"#,
            up = app.addr()
        )
    };
    let proxy = Proxy::start(&cfg(""));
    // Let the health checker find 127.0.0.1:1 dead before sending traffic.
    std::thread::sleep(Duration::from_millis(800));
    let mut c = Client::connect(([127, 0, 0, 1], port).into());
    for _ in 0..6 {
        assert_eq!(c.get("/ok", "x").status, 200);
    }
    let r = proxy.admin_get("/clusters?format=json");
    assert_eq!(r.status, 200);
    assert!(r
        .header("content-type")
        .unwrap()
        .contains("application/json"));
    let v: serde_json::Value = serde_json::from_str(&r.text()).unwrap();
    let eps = &v["clusters"][0]["endpoints"];
    let live = eps
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["address"] == app.addr().to_string())
        .unwrap();
    let dead = eps
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["address"] == "127.0.0.1:1")
        .unwrap();
    assert_eq!(live["requests"], 6, "{v}");
    assert_eq!(live["healthy"], true);
    assert_eq!(dead["healthy"], false, "{v}");
    assert_eq!(v["cores"].as_array().unwrap().len(), 2);
    assert!(live["idle_connections"].as_u64().unwrap() >= 1);
    let text = proxy.admin_get("/clusters").text();
    assert!(
        text.contains(&format!("app::{}::health_flags::healthy", app.addr())),
        "{text}"
    );
    assert!(
        text.contains("app::127.0.0.1:1::health_flags::/failed_active_hc"),
        "{text}"
    );

    let stats: serde_json::Value =
        serde_json::from_str(&proxy.admin_get("/stats?format=json").text()).unwrap();
    let ok: f64 = stats["stats"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["name"] == "ringway_requests_total" && s["labels"]["code_class"] == "2xx")
        .map(|s| s["value"].as_f64().unwrap())
        .sum();
    assert_eq!(ok, 6.0);
    assert!(proxy
        .admin_get("/stats")
        .text()
        .contains("ringway_requests_total{"));
    assert_eq!(proxy.admin_get("/stats?format=yaml").status, 400);

    // Every ringway_* family the shipped Grafana dashboard queries is one the proxy exports
    // (the TLS, authorization and access-log ones appear once such traffic exists).
    let metrics = proxy.admin_get("/metrics").text();
    let grafana = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/grafana-ringway.json"),
    )
    .unwrap();
    let _: serde_json::Value = serde_json::from_str(&grafana).expect("dashboard JSON");
    let needs_tls_or_logs = [
        "ringway_tls_",
        "ringway_upstream_tls_",
        "ringway_authz_",
        "ringway_certificate_",
        "ringway_access_log_",
    ];
    let mut checked = 0;
    for (i, _) in grafana.match_indices("ringway_") {
        let name: String = grafana[i..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        let family = name.strip_suffix("_bucket").unwrap_or(&name);
        if name.starts_with("ringway_dataplane")
            || needs_tls_or_logs.iter().any(|p| family.starts_with(p))
        {
            continue;
        }
        checked += 1;
        assert!(
            metrics.contains(&format!("# TYPE {family} ")),
            "dashboard queries {family}, not exported"
        );
    }
    assert!(checked >= 10, "{checked}");

    let dash = proxy.admin_get("/");
    assert!(dash.header("content-type").unwrap().contains("text/html"));
    assert!(dash.text().contains("/stats?format=json") && !dash.text().contains("http://"));

    assert!(proxy.admin_get("/logging").text().contains("info"));
    assert_eq!(
        admin_post(proxy.admin_addr(), "/logging?level=debug").0,
        200
    );
    assert!(proxy.admin_get("/logging").text().contains("debug"));
    assert_eq!(
        admin_post(proxy.admin_addr(), "/logging?level=shouty").0,
        400
    );
    assert_eq!(proxy.admin_get("/logging?level=debug").status, 405);

    let certs: serde_json::Value = serde_json::from_str(&proxy.admin_get("/certs").text()).unwrap();
    assert_eq!(certs["certificates"], serde_json::json!([]));

    // POST /reload applies a changed file like SIGHUP (a response header added by a route).
    std::fs::write(
        proxy.config_path(),
        cfg("[[listeners.routes]]\nmatch = { path_prefix = \"/\" }\ncluster = \"app\"\n[listeners.routes.headers]\nresponse_add = { x-reloaded = \"yes\" }\n"),
    )
    .unwrap();
    assert_eq!(admin_post(proxy.admin_addr(), "/reload").0, 202);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let r = Client::connect(([127, 0, 0, 1], port).into()).get("/ok", "x");
        if r.header("x-reloaded") == Some("yes") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "reload not applied: {}",
            proxy.stderr_text()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(proxy
        .admin_get("/metrics")
        .text()
        .contains("ringway_config_reloads_total{result=\"ok\"} 1"));
}

#[test]
fn ejections_reach_every_core_and_reload_keeps_cluster_state() {
    let good = upstream();
    let bad = RawUpstream::start(|s, _| {
        let _ = s.write_all(b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\n\r\n");
    });
    let (port, admin) = (free_port(), free_port());
    let cfg = format!(
        r#"[runtime]
workers = 2
drain_timeout = "1s"

[admin]
bind = "127.0.0.1:{admin}"

[[listeners]]
name = "edge"
bind = "127.0.0.1:{port}"
cluster = "app"

[[clusters]]
name = "app"
lb = "round_robin"
endpoints = ["{good}", "{bad}"]

[clusters.outlier_detection]
consecutive_5xx = 2
base_ejection_time = "60s"
max_ejection_percent = 50
"#,
        good = good.addr(),
        bad = bad.addr()
    );
    let proxy = Proxy::start(&cfg);
    // One connection: one core sees the failures and ejects the bad endpoint.
    let mut c = Client::connect(([127, 0, 0, 1], port).into());
    for _ in 0..6 {
        c.get("/ok", "x");
    }
    let ejected_cores = |proxy: &Proxy| {
        let v: serde_json::Value =
            serde_json::from_str(&proxy.admin_get("/clusters?format=json").text()).unwrap();
        let e = v["clusters"][0]["endpoints"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["address"] == bad.addr().to_string())
            .cloned()
            .unwrap();
        (
            e["ejected_cores"].as_u64().unwrap(),
            e["requests"].as_u64().unwrap(),
        )
    };
    let deadline = Instant::now() + Duration::from_secs(5);
    let (cores, requests) = loop {
        let r = ejected_cores(&proxy);
        if r.0 == 2 || Instant::now() > deadline {
            break r;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(cores, 2, "the ejection reached the other core by message");
    assert_eq!(requests, 2, "two 5xx, then ejected");
    // A reload that leaves the cluster unchanged keeps its state: still ejected everywhere,
    // counts carried on (a changed listener route does not matter).
    std::fs::write(
        proxy.config_path(),
        cfg.replace(
            "cluster = \"app\"\n\n[[clusters]]",
            "cluster = \"app\"\nhost_mismatch = \"reject\"\n\n[[clusters]]",
        ),
    )
    .unwrap();
    proxy.sighup();
    let deadline = Instant::now() + Duration::from_secs(5);
    while !proxy
        .admin_get("/metrics")
        .text()
        .contains("ringway_config_reloads_total{result=\"ok\"} 1")
    {
        assert!(Instant::now() < deadline, "{}", proxy.stderr_text());
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(ejected_cores(&proxy), (2, 2));
    for _ in 0..4 {
        assert_eq!(
            c.get("/ok", "x").status,
            200,
            "only the good endpoint is used"
        );
    }
}

#[test]
fn spans_are_exported_over_otlp_and_a_dead_collector_costs_only_a_counter() {
    let app = upstream();
    let collector = RawUpstream::answering(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}");
    let dead = free_port(); // nothing listens there
    let (a, b) = (free_port(), free_port());
    let cfg = |collector: String, port: u16| {
        let admin = free_port();
        format!(
            r#"[runtime]
workers = 1
drain_timeout = "1s"

[admin]
bind = "127.0.0.1:{admin}"

[telemetry]
trace_context = "start"

[telemetry.otlp]
endpoint = "http://{collector}/v1/traces"
service_name = "edge-proxy"

[[listeners]]
name = "edge"
bind = "127.0.0.1:{port}"
cluster = "app"

[[clusters]]
name = "app"
endpoints = ["{up}"]
"#,
            up = app.addr()
        )
    };
    {
        let proxy = Proxy::start(&cfg(collector.addr().to_string(), a));
        let mut c = Client::connect(([127, 0, 0, 1], a).into());
        for i in 0..3 {
            assert_eq!(c.get(&format!("/items/{i}?q=1"), "shop").status, 200);
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut spans = Vec::new();
        while spans.len() < 3 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(100));
            spans.clear();
            for r in collector.requests() {
                assert!(
                    r.request_line().starts_with("POST /v1/traces "),
                    "{}",
                    r.request_line()
                );
                let v: serde_json::Value = serde_json::from_slice(&r.body).expect("OTLP JSON");
                let rs = &v["resourceSpans"][0];
                assert_eq!(
                    rs["resource"]["attributes"][0]["value"]["stringValue"],
                    "edge-proxy"
                );
                spans.extend(
                    rs["scopeSpans"][0]["spans"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .cloned(),
                );
            }
        }
        assert_eq!(spans.len(), 3, "{spans:?}");
        // Each span is this hop's: its ids are the ones forwarded upstream in traceparent.
        let forwarded = app.requests();
        for (span, req) in spans.iter().zip(&forwarded) {
            let tp = req.headers("traceparent");
            let parts: Vec<&str> = tp[0].split('-').collect();
            assert_eq!(span["traceId"], parts[1]);
            assert_eq!(span["spanId"], parts[2]);
            assert_eq!(span["kind"], 2);
            assert_eq!(span["name"], "GET");
        }
        assert!(
            spans[0]["attributes"].to_string().contains("\"/items/0\""),
            "{}",
            spans[0]
        );
        assert!(proxy
            .admin_get("/metrics")
            .text()
            .contains("ringway_otlp_spans_total{result=\"exported\"} 3"));
    }
    let proxy = Proxy::start(&cfg(format!("127.0.0.1:{dead}"), b));
    let mut c = Client::connect(([127, 0, 0, 1], b).into());
    let t0 = Instant::now();
    for _ in 0..20 {
        assert_eq!(c.get("/", "shop").status, 200);
    }
    assert!(
        t0.elapsed() < Duration::from_secs(2),
        "a dead collector slowed requests"
    );
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let m = proxy.admin_get("/metrics").text();
        if m.contains("ringway_otlp_spans_total{result=\"dropped\"} 20") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{}",
            m.lines()
                .filter(|l| l.contains("otlp"))
                .collect::<Vec<_>>()
                .join("\n")
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}
