//! The process around the proxy: config errors and `--check` exit codes, a port already in
//! use, the admin endpoints (`/ready`, `/metrics`, `/config`), SIGHUP reload, and the
//! SIGTERM drain (in-flight requests finish, new connections are refused, exit 0).

mod support;

use std::io::ErrorKind;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

use support::{config, free_port, ringway_bin, Client, Proxy, Rig, Spec, Upstream};

/// The non-empty lines a process wrote to stderr.
fn lines(text: &str) -> Vec<&str> {
    text.lines().filter(|l| !l.trim().is_empty()).collect()
}

/// A valid config whose line 3 has an unknown key.
fn bad_config(admin: u16, listen: u16) -> String {
    format!(
        "[runtime]\nworkers = 1\nbogus_key = 7\n\n[admin]\nbind = \"127.0.0.1:{admin}\"\n\n\
         [[listeners]]\nname = \"edge\"\nbind = \"127.0.0.1:{listen}\"\ncluster = \"web\"\n\n\
         [[clusters]]\nname = \"web\"\nendpoints = [\"127.0.0.1:9\"]\n"
    )
}

#[test]
fn invalid_config_exits_nonzero_with_one_line_naming_the_line() {
    let mut p = Proxy::spawn(&bad_config(free_port(), free_port()), &[]);
    let status = p.wait_exit(Duration::from_secs(5));
    assert!(!status.success(), "exit {status}");
    let err = p.stderr_text();
    let l = lines(&err);
    assert_eq!(l.len(), 1, "stderr should be one line: {err:?}");
    assert!(l[0].contains("line 3"), "reason must name line 3: {err:?}");
    assert!(
        l[0].contains("bogus_key"),
        "reason must name the key: {err:?}"
    );
}

#[test]
fn missing_config_file_exits_nonzero_with_one_line() {
    let out = Command::new(ringway_bin())
        .args(["--config", "/nonexistent/ringway.toml"])
        .output()
        .expect("run ringway");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(lines(&err).len(), 1, "{err:?}");
    assert!(err.contains("/nonexistent/ringway.toml"), "{err:?}");
}

#[test]
fn check_exits_0_on_a_good_file_and_1_on_a_bad_one() {
    let good = config(
        &Spec::new(1, &["127.0.0.1:9".parse().expect("addr")]),
        free_port(),
        free_port(),
    );
    let mut p = Proxy::spawn(&good, &["--check"]);
    let status = p.wait_exit(Duration::from_secs(5));
    assert_eq!(status.code(), Some(0), "stderr {:?}", p.stderr_text());

    let mut p = Proxy::spawn(&bad_config(free_port(), free_port()), &["--check"]);
    let status = p.wait_exit(Duration::from_secs(5));
    assert_eq!(status.code(), Some(1));
    // The problem is printed (stdout or stderr; the harness keeps stderr).
    let err = p.stderr_text();
    if !err.is_empty() {
        assert!(err.contains("line 3"), "{err:?}");
    }
}

#[test]
fn port_in_use_exits_nonzero_naming_the_address() {
    let taken = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = taken.local_addr().expect("addr").port();
    let text = config(
        &Spec::new(1, &["127.0.0.1:9".parse().expect("addr")]),
        port,
        free_port(),
    );
    let mut p = Proxy::spawn(&text, &[]);
    let status = p.wait_exit(Duration::from_secs(5));
    assert!(!status.success(), "exit {status}");
    let err = p.stderr_text();
    assert!(err.contains(&format!("127.0.0.1:{port}")), "{err:?}");
    assert_eq!(lines(&err).len(), 1, "one-line reason: {err:?}");
    drop(taken);
}

/// The value of the first metrics sample whose line starts with `prefix`.
fn sample(metrics: &str, prefix: &str) -> Option<f64> {
    metrics
        .lines()
        .find(|l| l.starts_with(prefix))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

#[test]
fn admin_ready_metrics_and_config() {
    let up = Upstream::start(&[]);
    let rig = Rig::simple(2, up.addr(), "");
    assert_eq!(rig.proxy.admin_get("/ready").status, 200);
    let mut c = rig.client();
    for _ in 0..3 {
        assert_eq!(c.get("/", "m").status, 200);
    }
    let want = r#"ringway_requests_total{listener="edge",cluster="web",code_class="2xx"}"#;
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        let m = rig.proxy.admin_get("/metrics");
        assert_eq!(m.status, 200);
        let text = m.text();
        if sample(&text, want) == Some(3.0) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no `{want} 3` in /metrics:\n{text}"
        );
        thread::sleep(Duration::from_millis(100));
    }
    let cfg = rig.proxy.admin_get("/config");
    assert_eq!(cfg.status, 200);
    let table: toml::Table = toml::from_str(&cfg.text())
        .unwrap_or_else(|e| panic!("/config is not TOML: {e}\n{}", cfg.text()));
    let listener = &table["listeners"][0];
    assert_eq!(listener["name"].as_str(), Some("edge"));
    assert_eq!(
        listener["bind"].as_str(),
        Some(rig.listen.to_string().as_str())
    );
}

#[test]
fn sighup_reload_applies_a_valid_config_and_keeps_the_old_on_an_invalid_one() {
    let up = Upstream::start(&["--name", "u"]);
    let (listen, admin) = (free_port(), free_port());
    let mut spec = Spec::new(1, &[up.addr()]);
    let proxy = Proxy::start(&config(&spec, listen, admin));
    let addr = SocketAddr::from(([127, 0, 0, 1], listen));
    assert_eq!(Client::connect(addr).get("/x", "h").status, 200);

    spec.listener_extra =
        "[[listeners.routes]]\nmatch = { path_prefix = \"/x\" }\ndirect = { status = 418, body = \"teapot\" }\n";
    proxy.reload(&config(&spec, listen, admin));
    let deadline = Instant::now() + Duration::from_secs(3);
    while Client::connect(addr).get("/x", "h").status != 418 {
        assert!(Instant::now() < deadline, "reload not applied after 3 s");
        thread::sleep(Duration::from_millis(50));
    }

    proxy.reload("this is not = [ toml");
    thread::sleep(Duration::from_millis(300));
    assert_eq!(Client::connect(addr).get("/x", "h").status, 418);
    assert_eq!(proxy.admin_get("/ready").status, 200);
}

#[test]
fn sigterm_drains_in_flight_requests_refuses_new_ones_and_exits_0() {
    let up = Upstream::start(&["--latency", "1s", "--body-size", "4"]);
    let mut spec = Spec::new(2, &[up.addr()]);
    spec.runtime_extra = "drain_timeout = \"5s\"";
    let mut rig = Rig::start(&spec);
    let listen = rig.listen;
    let in_flight = thread::spawn(move || {
        let mut c = Client::connect(listen);
        c.get("/slow", "d")
    });
    // Wait until the request reached the upstream (it is counted before the latency).
    let deadline = Instant::now() + Duration::from_secs(3);
    while up.stats().requests < 1 {
        assert!(
            Instant::now() < deadline,
            "request never reached the upstream"
        );
        thread::sleep(Duration::from_millis(10));
    }
    let t0 = Instant::now();
    rig.proxy.sigterm();
    // New connections are refused once the listeners close.
    let deadline = Instant::now() + Duration::from_secs(1);
    loop {
        match TcpStream::connect_timeout(&listen, Duration::from_millis(200)) {
            Err(e) if e.kind() == ErrorKind::ConnectionRefused => break,
            _ => {
                assert!(
                    Instant::now() < deadline,
                    "new connections still accepted 1 s after SIGTERM"
                );
                thread::sleep(Duration::from_millis(20));
            }
        }
    }
    let r = in_flight.join().expect("client thread");
    assert_eq!((r.status, r.body.as_slice()), (200, &b"abcd"[..]));
    let status = rig.proxy.wait_exit(Duration::from_secs(5));
    assert_eq!(status.code(), Some(0), "stderr {}", rig.proxy.stderr_text());
    assert!(t0.elapsed() < Duration::from_secs(5));
}

/// Sends SIGTERM, waits (at most 8 s) for exit status 0; returns how long the exit took.
fn drain_and_exit(rig: &mut Rig) -> Duration {
    let t0 = Instant::now();
    rig.proxy.sigterm();
    let status = rig.proxy.wait_exit(Duration::from_secs(8));
    assert_eq!(status.code(), Some(0));
    t0.elapsed()
}

#[test]
fn idle_keep_alive_connections_do_not_hold_the_drain() {
    let up = Upstream::start(&[]);
    let mut spec = Spec::new(2, &[up.addr()]);
    spec.runtime_extra = "drain_timeout = \"4s\"";
    let mut rig = Rig::start(&spec);
    let mut idle = rig.client();
    assert_eq!(idle.get("/", "i").status, 200);
    let mut parked = rig.client();
    assert_eq!(parked.get("/", "i").status, 200);
    std::thread::sleep(Duration::from_millis(600)); // `parked` is in the parking lot now
    let mut fresh = rig.client();
    assert_eq!(fresh.get("/", "i").status, 200);
    let took = drain_and_exit(&mut rig);
    assert!(
        took < Duration::from_secs(2),
        "an idle keep-alive connection held the drain for {took:?}"
    );
    assert!(idle.is_closed_by_peer());
    assert!(parked.is_closed_by_peer());
    assert!(fresh.is_closed_by_peer());
}

#[test]
fn drain_timeout_bounds_a_stuck_request() {
    let up = Upstream::start(&["--fault", "hang"]);
    let mut spec = Spec::new(2, &[up.addr()]);
    spec.runtime_extra = "drain_timeout = \"1s\"";
    let mut rig = Rig::start(&spec);
    let listen = rig.listen;
    let stuck = thread::spawn(move || {
        let mut c = Client::connect(listen);
        c.set_timeout(Duration::from_secs(8));
        c.send_raw(b"GET / HTTP/1.1\r\nHost: s\r\n\r\n");
        c.read_response().map(|r| r.status)
    });
    let deadline = Instant::now() + Duration::from_secs(3);
    while up.stats().requests < 1 {
        assert!(
            Instant::now() < deadline,
            "request never reached the upstream"
        );
        thread::sleep(Duration::from_millis(10));
    }
    let t0 = Instant::now();
    rig.proxy.sigterm();
    let status = rig.proxy.wait_exit(Duration::from_secs(5));
    let took = t0.elapsed();
    assert_eq!(status.code(), Some(0));
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(3),
        "exit {took:?} after SIGTERM with drain_timeout = 1s"
    );
    // The stuck client gets an error answer or a close, never a hang.
    match stuck.join().expect("client thread") {
        Ok(status) => assert!(status >= 500, "stuck request answered {status}"),
        Err(e) => assert!(
            matches!(
                e.kind(),
                ErrorKind::UnexpectedEof | ErrorKind::ConnectionReset
            ),
            "{e}"
        ),
    }
}

#[test]
fn ready_is_503_while_draining() {
    let up = Upstream::start(&["--latency", "1s"]);
    let mut spec = Spec::new(1, &[up.addr()]);
    spec.runtime_extra = "drain_timeout = \"5s\"";
    let mut rig = Rig::start(&spec);
    let listen = rig.listen;
    let in_flight = thread::spawn(move || Client::connect(listen).get("/", "d").status);
    let deadline = Instant::now() + Duration::from_secs(3);
    while up.stats().requests < 1 {
        assert!(
            Instant::now() < deadline,
            "request never reached the upstream"
        );
        thread::sleep(Duration::from_millis(10));
    }
    rig.proxy.sigterm();
    thread::sleep(Duration::from_millis(100));
    // The admin listener may already be closed; if it answers, it must not say ready.
    if let Ok(mut c) = Client::try_connect(rig.proxy.admin_addr()) {
        c.set_timeout(Duration::from_secs(1));
        if c.try_send_raw(b"GET /ready HTTP/1.1\r\nHost: a\r\n\r\n")
            .is_ok()
        {
            if let Ok(r) = c.read_response() {
                assert_eq!(r.status, 503, "/ready while draining");
            }
        }
    }
    assert_eq!(in_flight.join().expect("client thread"), 200);
    assert_eq!(rig.proxy.wait_exit(Duration::from_secs(5)).code(), Some(0));
}

#[test]
fn port_in_use_reason_states_the_cause_once() {
    let taken = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = taken.local_addr().expect("addr").port();
    let text = config(
        &Spec::new(1, &["127.0.0.1:9".parse().expect("addr")]),
        port,
        free_port(),
    );
    let mut p = Proxy::spawn(&text, &[]);
    assert!(!p.wait_exit(Duration::from_secs(5)).success());
    let err = p.stderr_text();
    assert_eq!(err.matches("os error 98").count(), 1, "{err:?}");
}

/// A drain with thousands of parked connections on one worker (a cancel per connection, more
/// than the ring's queues hold at once) still closes them all and exits promptly.
#[test]
fn drain_closes_thousands_of_parked_connections() {
    let up = Upstream::start(&[]);
    let mut spec = Spec::new(1, &[up.addr()]);
    spec.runtime_extra = "drain_timeout = \"10s\"";
    let mut rig = Rig::start(&spec);
    let mut clients = Vec::new();
    for i in 0..3000 {
        let mut c = rig.client();
        if i % 100 == 0 {
            assert_eq!(c.get("/", "p").status, 200);
        } else {
            c.send_raw(b"GET / HTTP/1.1\r\nHost: p\r\n\r\n");
        }
        clients.push(c);
    }
    for (i, c) in clients.iter_mut().enumerate().filter(|(i, _)| i % 100 != 0) {
        let r = c.read_response();
        assert!(
            matches!(&r, Ok(r) if r.status == 200),
            "client {i}: {:?}\n{}",
            r.map(|r| r.status),
            rig.proxy.stderr_text()
        );
    }
    std::thread::sleep(Duration::from_millis(600)); // all parked
    let took = drain_and_exit(&mut rig);
    assert!(took < Duration::from_secs(3), "drain took {took:?}");
    for c in clients.iter_mut().step_by(97) {
        assert!(c.is_closed_by_peer());
    }
}
