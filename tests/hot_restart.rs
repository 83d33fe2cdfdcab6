//! Hot restart against real processes: a successor started with `--upgrade` takes the
//! listening sockets of the running Ringway over a Unix socket while an open-loop load runs
//! (`ringway-load -R`); the predecessor drains and exits. Asserted: zero failed requests,
//! zero non-2xx responses, zero refused connections, and the successor serves afterwards.
//! Also: a successor with a bad config (or one that cannot start) leaves the running proxy
//! serving and upgradable.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::{free_port, upstream_bin, Client, Proxy, Upstream};

fn load_bin() -> PathBuf {
    upstream_bin().with_file_name("ringway-load")
}

fn config(listen: u16, admin: u16, up: std::net::SocketAddr) -> String {
    format!(
        r#"[runtime]
workers = 2
drain_timeout = "5s"

[admin]
bind = "127.0.0.1:{admin}"

[[listeners]]
name = "edge"
bind = "127.0.0.1:{listen}"
cluster = "app"

[[clusters]]
name = "app"
endpoints = ["{up}"]
"#
    )
}

fn sock_arg(p: &Path) -> String {
    p.display().to_string()
}

#[test]
fn upgrade_under_open_loop_load_drops_nothing() {
    let app = Upstream::start(&[]);
    let (listen, admin) = (free_port(), free_port());
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("upgrade.sock");
    let cfg = config(listen, admin, app.addr());
    let mut old = Proxy::start_with_args(&cfg, &["--upgrade-socket", &sock_arg(&sock)]);
    let load = Command::new(load_bin())
        .args([
            "-R",
            "2000",
            "-c",
            "20",
            "-d",
            "6s",
            "--json",
            "--max-error-rate",
            "0",
        ])
        .arg(format!("http://127.0.0.1:{listen}/"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("ringway-load");
    std::thread::sleep(Duration::from_secs(2));
    let mut new = Proxy::spawn(&cfg, &["--upgrade", "--upgrade-socket", &sock_arg(&sock)]);
    // The predecessor exits once its connections are gone (well before drain_timeout: every
    // idle connection gets its next request within 1/100 s at this rate).
    let status = old.wait_exit(Duration::from_secs(20));
    assert!(status.success(), "predecessor: {}", old.stderr_text());
    assert!(
        old.stderr_text().contains("a successor serves now"),
        "{}",
        old.stderr_text()
    );
    let out = load.wait_with_output().unwrap();
    let report: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)));
    assert_eq!(report["errors"]["total"], 0, "{report}");
    assert_eq!(report["errors"]["connect"], 0, "{report}");
    assert_eq!(report["non_2xx"], 0, "{report}");
    assert!(report["requests"].as_u64().unwrap() > 10_000, "{report}");
    assert_eq!(report["unsent"], 0, "{report}");
    assert!(out.status.success(), "{report}");
    // The successor serves, and can itself be upgraded later (it listens at the socket).
    assert_eq!(
        Client::connect(([127, 0, 0, 1], listen).into())
            .get("/", "x")
            .status,
        200
    );
    let deadline = Instant::now() + Duration::from_secs(5);
    while !sock.exists() {
        assert!(
            Instant::now() < deadline,
            "successor did not bind the upgrade socket"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(new.try_exit_status().is_none(), "{}", new.stderr_text());
    new.sigterm();
    assert!(new.wait_exit(Duration::from_secs(20)).success());
}

#[test]
fn failed_successors_leave_the_running_proxy_serving_and_upgradable() {
    let app = Upstream::start(&[]);
    let (listen, admin) = (free_port(), free_port());
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("upgrade.sock");
    let cfg = config(listen, admin, app.addr());
    let mut old = Proxy::start_with_args(&cfg, &["--upgrade-socket", &sock_arg(&sock)]);
    // 1. A bad config: refused before it touches the running proxy.
    let mut bad = Proxy::spawn(
        "[[listeners]]\nname = 1\n",
        &["--upgrade", "--upgrade-socket", &sock_arg(&sock)],
    );
    assert!(!bad.wait_exit(Duration::from_secs(20)).success());
    // 2. A successor that gets the sockets but cannot start (its extra listener's port is taken).
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let extra = format!(
        "{cfg}\n[[listeners]]\nname = \"extra\"\nbind = \"{}\"\ncluster = \"app\"\n",
        taken.local_addr().unwrap()
    );
    let mut failing = Proxy::spawn(&extra, &["--upgrade", "--upgrade-socket", &sock_arg(&sock)]);
    assert!(!failing.wait_exit(Duration::from_secs(20)).success());
    assert!(
        failing.stderr_text().contains("cannot bind"),
        "{}",
        failing.stderr_text()
    );
    // The running proxy never stopped.
    assert!(old.try_exit_status().is_none(), "{}", old.stderr_text());
    let mut c = Client::connect(([127, 0, 0, 1], listen).into());
    assert_eq!(c.get("/", "x").status, 200);
    // 3. Without a running proxy at the socket, --upgrade fails clearly.
    let mut orphan = Proxy::spawn(
        &config(free_port(), free_port(), app.addr()),
        &[
            "--upgrade",
            "--upgrade-socket",
            &sock_arg(&dir.path().join("nobody.sock")),
        ],
    );
    assert!(!orphan.wait_exit(Duration::from_secs(20)).success());
    assert!(
        orphan.stderr_text().contains("no running ringway"),
        "{}",
        orphan.stderr_text()
    );
    // 4. And a good successor still takes over.
    let mut new = Proxy::spawn(&cfg, &["--upgrade", "--upgrade-socket", &sock_arg(&sock)]);
    assert!(
        old.wait_exit(Duration::from_secs(20)).success(),
        "{}",
        old.stderr_text()
    );
    assert_eq!(
        Client::connect(([127, 0, 0, 1], listen).into())
            .get("/", "x")
            .status,
        200
    );
    new.sigterm();
    assert!(new.wait_exit(Duration::from_secs(20)).success());
}
