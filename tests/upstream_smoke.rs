//! Smoke tests of the integration harness itself, without the proxy: `Upstream`, `Client`
//! and `Nginx` against each other, so a broken harness fails here and not in proxy tests.

mod support;

use std::time::Duration;

use support::nginx::{static_file_byte, STATIC_FILE_BYTES, STATIC_FILE_PATH};
use support::{free_port, rss_kib, Client, Nginx, Upstream};

#[test]
fn client_reads_upstream_responses_of_every_framing() {
    let up = Upstream::start(&["--name", "smoke"]);
    let mut c = up.client();
    let r = c.get("/size/10", "example.com");
    assert_eq!((r.status, r.text().as_str()), (200, "abcdefghij"));
    assert_eq!(r.header("X-Upstream"), Some("smoke"));
    let r = c.get("/stream/70000", "example.com");
    assert_eq!(r.header("transfer-encoding"), Some("chunked"));
    assert_eq!(r.body.len(), 70_000);
    c.send_raw(b"HEAD /size/10 HTTP/1.1\r\nHost: x\r\n\r\n");
    let r = c.read_response_for("HEAD").unwrap();
    assert_eq!((r.header("content-length"), r.body.len()), (Some("10"), 0));
    let r = c
        .request("POST", "/echo", &[("X-A", "1")], b"payload")
        .unwrap();
    assert_eq!(r.body, b"payload");
    c.send_raw(b"GET /size/3 HTTP/1.0\r\n\r\n");
    assert_eq!(c.read_response().unwrap().body, b"abc");
    assert!(c.is_closed_by_peer());
}

#[test]
fn upstream_stats_count_requests_and_connections() {
    let up = Upstream::start(&[]);
    for _ in 0..2 {
        let mut c = up.client();
        c.get("/", "x");
        c.get("/", "x");
    }
    let s = up.stats();
    assert_eq!((s.requests, s.connections), (4, 2));
}

#[test]
fn client_times_out_on_a_hanging_upstream() {
    let up = Upstream::start(&["--fault", "hang"]);
    let mut c = up.client();
    c.set_timeout(Duration::from_millis(200));
    c.send_raw(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(c.read_response().is_err());
}

#[test]
fn rss_of_a_running_upstream_is_plausible() {
    let up = Upstream::start(&[]);
    let kib = rss_kib(up.pid());
    assert!((100..1_000_000).contains(&kib), "{kib} KiB");
}

#[test]
fn free_port_is_bindable() {
    let port = free_port();
    std::net::TcpListener::bind(("127.0.0.1", port)).unwrap();
}

#[test]
fn nginx_serves_ok_and_the_static_file_on_keep_alive() {
    let Some(nginx) = Nginx::start() else { return };
    let mut c = Client::connect(nginx.addr());
    let r = c.get("/", "x");
    assert_eq!((r.status, r.text().as_str()), (200, "ok"));
    let r = c.get(STATIC_FILE_PATH, "x");
    assert_eq!(r.status, 200);
    assert_eq!(r.body.len(), STATIC_FILE_BYTES);
    assert!(r
        .body
        .iter()
        .enumerate()
        .all(|(i, &b)| b == static_file_byte(i)));
}

/// Writes an executable shell script standing in for `ringway`: it logs to stderr, then
/// (if `admin` is given) serves `/ready` with 200 through `ringway-upstream`, else exits 3.
fn fake_proxy(dir: &std::path::Path, admin: Option<std::net::SocketAddr>) -> std::path::PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let script = dir.join("fake-ringway");
    let body = match admin {
        Some(a) => format!(
            "echo fake starting >&2\nexec {} --listen {a}\n",
            support::upstream_bin().display()
        ),
        None => "echo 'fake: bad config' >&2\nexit 3\n".to_string(),
    };
    std::fs::write(&script, format!("#!/bin/sh\n{body}")).unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    script
}

#[test]
fn proxy_wrapper_waits_for_ready_signals_and_reaps() {
    let dir = tempfile::tempdir().unwrap();
    let admin: std::net::SocketAddr = ([127, 0, 0, 1], free_port()).into();
    let config = format!("[admin]\nbind = \"{admin}\"\n");
    let script = fake_proxy(dir.path(), Some(admin));
    let mut proxy = support::Proxy::spawn_program(&script, &config, &[]);
    proxy.wait_ready(Duration::from_secs(10));
    assert_eq!(proxy.admin_addr(), admin);
    assert_eq!(proxy.admin_get("/ready").status, 200);
    assert!(proxy.stderr_text().contains("fake starting"));
    assert!(std::fs::read_to_string(proxy.config_path())
        .unwrap()
        .contains("[admin]"));
    proxy.sigterm();
    let status = proxy.wait_exit(Duration::from_secs(5));
    assert!(!status.success());
}

#[test]
fn proxy_wrapper_reports_early_exit_with_stderr() {
    let dir = tempfile::tempdir().unwrap();
    let admin: std::net::SocketAddr = ([127, 0, 0, 1], free_port()).into();
    let config = format!("[admin]\nbind = \"{admin}\"\n");
    let script = fake_proxy(dir.path(), None);
    let mut proxy = support::Proxy::spawn_program(&script, &config, &[]);
    let status = proxy.wait_exit(Duration::from_secs(5));
    assert_eq!(status.code(), Some(3));
    assert!(proxy.stderr_text().contains("fake: bad config"));
    let panic = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        proxy.wait_ready(Duration::from_secs(1))
    }))
    .unwrap_err();
    let msg = panic.downcast_ref::<String>().cloned().unwrap_or_default();
    assert!(msg.contains("fake: bad config"), "{msg}");
}
