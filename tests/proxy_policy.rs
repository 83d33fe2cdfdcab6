//! Traffic policies end to end (issue 4): retries (5xx, connect failure, per-try timeout,
//! budget), circuit breaking, rate limiting, fault injection, mirroring, header and path
//! manipulation, outlier ejection, active health checks — each against real upstream
//! processes in fault mode, asserting what the client sees, what upstreams received, and the
//! metrics. Every wait is bounded.

mod support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use support::rig::{Rig, Spec};
use support::{free_port, Client, Upstream};

fn metric(rig: &Rig, needle: &str) -> u64 {
    let text = rig.proxy.admin_get("/metrics").text();
    text.lines()
        .find(|l| l.starts_with(needle))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn get(c: &mut Client, path: &str) -> support::Response {
    c.get(path, "example.com")
}

#[test]
fn retries_a_5xx_on_another_endpoint() {
    let bad = Upstream::start(&["--fault", "error-rate=100", "--name", "bad"]);
    let good = Upstream::start(&["--name", "good"]);
    let mut spec = Spec::new(1, &[]);
    let listener = r#"
  [[listeners.routes]]
  cluster = "pair"
    [listeners.routes.retry]
    retry_on = ["5xx"]
    attempts = 2
    backoff_base = "1ms"
    backoff_max = "2ms"
"#;
    let extra = format!(
        "[[clusters]]\nname = \"pair\"\nendpoints = [\"{}\", \"{}\"]\n",
        bad.addr(),
        good.addr()
    );
    spec.listener_extra = listener;
    spec.extra = &extra;
    let rig = Rig::start(&spec);
    let mut c = rig.client();
    for i in 0..10 {
        let r = get(&mut c, &format!("/r{i}"));
        assert_eq!(r.status, 200, "request {i}");
        assert_eq!(r.header("x-upstream"), Some("good"));
    }
    assert!(
        bad.stats().requests >= 4,
        "round robin sent tries to the bad endpoint"
    );
    assert!(
        metric(
            &rig,
            "ringway_policy_events_total{cluster=\"pair\",event=\"retry\"}"
        ) >= 4
    );
}

#[test]
fn retries_a_connect_failure_and_gives_up_after_attempts() {
    let good = Upstream::start(&["--name", "good"]);
    let closed = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let mut spec = Spec::new(1, &[]);
    let listener = r#"
  [[listeners.routes]]
  match = { path_prefix = "/mixed/" }
  cluster = "mixed"
    [listeners.routes.retry]
    retry_on = ["connect-failure"]
    attempts = 2
  [[listeners.routes]]
  cluster = "dead"
    [listeners.routes.retry]
    retry_on = ["connect-failure"]
    attempts = 3
    backoff_base = "1ms"
"#;
    let extra = format!(
        "[[clusters]]\nname = \"mixed\"\nendpoints = [\"{closed}\", \"{}\"]\n\
         [[clusters]]\nname = \"dead\"\nendpoints = [\"{closed}\"]\n",
        good.addr()
    );
    spec.listener_extra = listener;
    spec.extra = &extra;
    let rig = Rig::start(&spec);
    let mut c = rig.client();
    for i in 0..6 {
        assert_eq!(
            get(&mut c, &format!("/mixed/{i}")).status,
            200,
            "request {i}"
        );
    }
    let mut c = rig.client();
    assert_eq!(get(&mut c, "/x").status, 502);
    assert!(
        metric(
            &rig,
            "ringway_policy_events_total{cluster=\"dead\",event=\"retry\"}"
        ) >= 2
    );
}

#[test]
fn per_try_timeout_moves_a_hung_try_to_another_endpoint() {
    let hang = Upstream::start(&["--fault", "hang"]);
    let good = Upstream::start(&["--name", "good"]);
    let mut spec = Spec::new(1, &[]);
    let listener = r#"
  [[listeners.routes]]
  cluster = "pair"
  timeout = "5s"
  per_try_timeout = "300ms"
    [listeners.routes.retry]
    retry_on = ["gateway-error"]
    attempts = 2
    backoff_base = "1ms"
"#;
    let extra = format!(
        "[[clusters]]\nname = \"pair\"\nendpoints = [\"{}\", \"{}\"]\n",
        hang.addr(),
        good.addr()
    );
    spec.listener_extra = listener;
    spec.extra = &extra;
    let rig = Rig::start(&spec);
    for i in 0..4 {
        let mut c = rig.client();
        let t = Instant::now();
        let r = get(&mut c, &format!("/t{i}"));
        assert_eq!(r.status, 200, "request {i}");
        assert!(
            t.elapsed() < Duration::from_secs(2),
            "took {:?}",
            t.elapsed()
        );
    }
}

#[test]
fn a_body_too_large_to_replay_is_not_retried() {
    let bad = Upstream::start(&["--fault", "error-rate=100"]);
    let mut spec = Spec::new(1, &[]);
    let listener = r#"
  [[listeners.routes]]
  cluster = "one"
    [listeners.routes.retry]
    retry_on = ["5xx"]
    attempts = 3
    replay_buffer_bytes = 1024
"#;
    let extra = format!(
        "[[clusters]]\nname = \"one\"\nendpoints = [\"{}\"]\n",
        bad.addr()
    );
    spec.listener_extra = listener;
    spec.extra = &extra;
    let rig = Rig::start(&spec);
    let mut c = rig.client();
    let body = vec![b'x'; 200_000];
    let r = c.request("POST", "/echo", &[], &body).unwrap();
    assert_eq!(r.status, 503);
    assert_eq!(bad.stats().requests, 1, "a streamed body was replayed");
    // A small body is held and replayed.
    let mut c = rig.client();
    let r = c.request("POST", "/echo", &[], b"small").unwrap();
    assert_eq!(r.status, 503);
    assert_eq!(bad.stats().requests, 4, "1 + 3 tries of the small body");
}

#[test]
fn the_retry_budget_caps_retries_during_an_outage() {
    let bad = Upstream::start(&["--fault", "error-rate=100"]);
    let mut spec = Spec::new(1, &[]);
    let listener = r#"
  [[listeners.routes]]
  cluster = "one"
    [listeners.routes.retry]
    retry_on = ["5xx"]
    attempts = 5
    backoff_base = "1ms"
    backoff_max = "1ms"
    budget_percent = 10
    min_retries_per_second = 1
    budget_window = "10s"
"#;
    let extra = format!(
        "[[clusters]]\nname = \"one\"\nendpoints = [\"{}\"]\n",
        bad.addr()
    );
    spec.listener_extra = listener;
    spec.extra = &extra;
    let rig = Rig::start(&spec);
    let mut c = rig.client();
    for _ in 0..100 {
        assert_eq!(get(&mut c, "/").status, 503);
    }
    let tries = bad.stats().requests;
    // Without a budget: 500 tries. With 10% + 1/s × 10 s: at most about 100 + 10 + 10.
    assert!(tries <= 125, "{tries} tries for 100 requests");
    assert!(tries > 100, "some retries were allowed");
    assert!(
        metric(
            &rig,
            "ringway_policy_events_total{cluster=\"one\",event=\"retry_budget_exhausted\"}"
        ) > 0
    );
}

#[test]
fn circuit_breaker_rejects_over_max_requests_with_a_header() {
    let slow = Upstream::start(&["--latency", "600ms"]);
    let mut spec = Spec::new(1, &[slow.addr()]);
    spec.extra = "  [clusters.circuit_breaker]\n  max_requests = 1\n";
    let rig = Rig::start(&spec);
    let listen = rig.listen;
    let first = std::thread::spawn(move || {
        let mut c = Client::connect(listen);
        c.get("/slow", "example.com").status
    });
    std::thread::sleep(Duration::from_millis(150));
    let mut c = rig.client();
    let r = get(&mut c, "/second");
    assert_eq!(r.status, 503);
    assert_eq!(r.header("x-ringway-overloaded"), Some("max_requests"));
    assert_eq!(first.join().unwrap(), 200);
    assert!(
        metric(
            &rig,
            "ringway_policy_events_total{cluster=\"web\",event=\"breaker_max_requests\"}"
        ) >= 1
    );
}

#[test]
fn rate_limit_answers_429_with_retry_after() {
    let up = Upstream::start(&[]);
    let mut spec = Spec::new(1, &[up.addr()]);
    spec.listener_extra = r#"
  [[listeners.routes]]
  cluster = "web"
    [listeners.routes.rate_limit]
    requests_per_second = 5
    burst = 5
"#;
    let rig = Rig::start(&spec);
    let mut c = rig.client();
    let mut limited = 0;
    for _ in 0..20 {
        let r = get(&mut c, "/");
        if r.status == 429 {
            limited += 1;
            let after: u64 = r.header("retry-after").unwrap().parse().unwrap();
            assert!(after >= 1);
        } else {
            assert_eq!(r.status, 200);
        }
    }
    assert!(limited >= 10, "only {limited} of 20 limited");
    assert_eq!(up.stats().requests, 20 - limited);
}

#[test]
fn fault_injection_aborts_and_delays() {
    let up = Upstream::start(&[]);
    let mut spec = Spec::new(1, &[up.addr()]);
    spec.listener_extra = r#"
  [[listeners.routes]]
  match = { path_prefix = "/abort/" }
  cluster = "web"
    [listeners.routes.fault]
    abort_status = 418
    abort_percent = 100
  [[listeners.routes]]
  match = { path_prefix = "/delay/" }
  cluster = "web"
    [listeners.routes.fault]
    delay = "200ms"
    delay_percent = 100
"#;
    let rig = Rig::start(&spec);
    let mut c = rig.client();
    assert_eq!(get(&mut c, "/abort/x").status, 418);
    assert_eq!(up.stats().requests, 0);
    let t = Instant::now();
    assert_eq!(get(&mut c, "/delay/x").status, 200);
    assert!(t.elapsed() >= Duration::from_millis(190));
    assert_eq!(up.stats().requests, 1);
}

/// A shadow that records each request head it receives.
fn capture_shadow() -> (SocketAddr, mpsc::Receiver<String>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(mut s) = s else { return };
            s.set_read_timeout(Some(Duration::from_secs(2))).ok();
            let mut buf = Vec::new();
            let mut tmp = [0u8; 4096];
            while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                match s.read(&mut tmp) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => buf.extend_from_slice(&tmp[..n]),
                }
            }
            let _ = s.write_all(
                b"HTTP/1.1 500 Shadow\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
            );
            if tx.send(String::from_utf8_lossy(&buf).into_owned()).is_err() {
                return;
            }
        }
    });
    (addr, rx)
}

#[test]
fn mirrors_requests_to_a_shadow_without_affecting_the_primary() {
    let up = Upstream::start(&[]);
    let (shadow, heads) = capture_shadow();
    let mut spec = Spec::new(1, &[up.addr()]);
    spec.listener_extra = r#"
  [[listeners.routes]]
  cluster = "web"
    [listeners.routes.mirror]
    cluster = "shadow"
    percent = 100
"#;
    let extra = format!("[[clusters]]\nname = \"shadow\"\nendpoints = [\"{shadow}\"]\n");
    spec.extra = &extra;
    let rig = Rig::start(&spec);
    let mut c = rig.client();
    for i in 0..5 {
        let r = c.get(&format!("/m{i}"), "api.example.com:8080");
        assert_eq!(r.status, 200, "the primary answers, not the shadow's 500");
    }
    let mut seen = Vec::new();
    while seen.len() < 5 {
        match heads.recv_timeout(Duration::from_secs(3)) {
            Ok(h) => seen.push(h),
            Err(_) => break,
        }
    }
    assert_eq!(seen.len(), 5, "every request mirrored");
    assert!(
        seen[0].contains("host: api.example.com-shadow:8080"),
        "{}",
        seen[0]
    );
    assert_eq!(up.stats().requests, 5);
}

#[test]
fn manipulates_request_and_response_headers_and_rewrites_the_path() {
    let up = Upstream::start(&[]);
    let mut spec = Spec::new(1, &[up.addr()]);
    spec.listener_extra = r#"
  [[listeners.routes]]
  match = { path_prefix = "/api/" }
  cluster = "web"
    [listeners.routes.headers]
    request_add = { "x-added" = "1" }
    request_set = { "x-replaced" = "new" }
    request_remove = ["x-secret"]
    response_set = { "x-served-by" = "ringway" }
    response_remove = ["server"]
    path_prefix_rewrite = "/"
"#;
    let rig = Rig::start(&spec);
    let mut c = rig.client();
    c.send_raw(b"GET /api/headers HTTP/1.1\r\nHost: h\r\nX-Secret: s\r\nX-Replaced: old\r\n\r\n");
    let r = c.read_response().unwrap();
    assert_eq!(r.status, 200);
    let seen = r.text();
    assert!(seen.starts_with("GET /headers HTTP/1.1\r\n"), "{seen}");
    assert!(seen.contains("x-added: 1\r\n"), "{seen}");
    assert!(seen.contains("x-replaced: new\r\n"), "{seen}");
    assert!(!seen.to_ascii_lowercase().contains("x-secret"), "{seen}");
    assert!(!seen.contains("X-Replaced: old"), "{seen}");
    assert_eq!(r.header("x-served-by"), Some("ringway"));
    assert_eq!(r.header("server"), None);
}

#[test]
fn outlier_detection_ejects_a_failing_endpoint() {
    let bad = Upstream::start(&["--fault", "error-rate=100"]);
    let good = Upstream::start(&["--name", "good"]);
    let mut spec = Spec::new(1, &[]);
    let extra = format!(
        "[[clusters]]\nname = \"pair\"\nendpoints = [\"{}\", \"{}\"]\n\
         [clusters.outlier_detection]\nconsecutive_5xx = 3\nbase_ejection_time = \"30s\"\nmax_ejection_percent = 50\n",
        bad.addr(),
        good.addr()
    );
    spec.listener_extra = "  [[listeners.routes]]\n  cluster = \"pair\"\n";
    spec.extra = &extra;
    let rig = Rig::start(&spec);
    let mut c = rig.client();
    for _ in 0..40 {
        get(&mut c, "/");
    }
    let bad_seen = bad.stats().requests;
    assert!(
        bad_seen <= 4,
        "the failing endpoint kept getting traffic: {bad_seen}"
    );
    assert!(good.stats().requests >= 36);
    assert!(
        metric(
            &rig,
            "ringway_policy_events_total{cluster=\"pair\",event=\"outlier_ejection\"}"
        ) >= 1
    );
}

#[test]
fn health_checks_take_an_unhealthy_endpoint_out_and_reject_when_all_are_down() {
    let sick = Upstream::start(&["--status", "503", "--name", "sick"]);
    let good = Upstream::start(&["--name", "good"]);
    let mut spec = Spec::new(2, &[]);
    let extra = format!(
        "[[clusters]]\nname = \"pair\"\nendpoints = [\"{}\", \"{}\"]\n\
         [clusters.health_check]\npath = \"/healthz\"\ninterval = \"100ms\"\ntimeout = \"100ms\"\nunhealthy_threshold = 1\n\
         [[clusters]]\nname = \"down\"\nendpoints = [\"{}\"]\nwhen_all_unhealthy = \"reject\"\n\
         [clusters.health_check]\npath = \"/healthz\"\ninterval = \"100ms\"\ntimeout = \"100ms\"\nunhealthy_threshold = 1\n",
        sick.addr(),
        good.addr(),
        sick.addr()
    );
    spec.listener_extra = r#"
  [[listeners.routes]]
  match = { path_prefix = "/down/" }
  cluster = "down"
  [[listeners.routes]]
  cluster = "pair"
"#;
    spec.extra = &extra;
    let rig = Rig::start(&spec);
    std::thread::sleep(Duration::from_millis(800));
    for _ in 0..10 {
        let mut c = rig.client();
        let r = get(&mut c, "/");
        assert_eq!((r.status, r.header("x-upstream")), (200, Some("good")));
    }
    let mut c = rig.client();
    assert_eq!(get(&mut c, "/down/x").status, 503);
    assert!(
        metric(
            &rig,
            "ringway_policy_events_total{cluster=\"pair\",event=\"endpoint_unhealthy\"}"
        ) >= 1
    );
}
