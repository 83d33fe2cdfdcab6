use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::*;
use crate::config::HealthCheck;
use crate::uring::tests::with_driver;
use crate::uring::DriverConfig;

fn hc(timeout_ms: u64) -> HealthCheck {
    HealthCheck {
        path: "/healthz".into(),
        host: None,
        interval: Duration::from_millis(100),
        timeout: Duration::from_millis(timeout_ms),
        healthy_threshold: 2,
        unhealthy_threshold: 2,
    }
}

#[test]
fn jitter_stays_within_ten_percent() {
    let mut rng = FastRng::new(2);
    let i = Duration::from_secs(10);
    let (mut lo, mut hi) = (i, i);
    for _ in 0..10_000 {
        let d = jittered(i, &mut rng);
        assert!(d >= Duration::from_secs(9) && d <= Duration::from_secs(11));
        lo = lo.min(d);
        hi = hi.max(d);
    }
    assert!(lo < Duration::from_millis(9100) && hi > Duration::from_millis(10900));
    assert!(jittered(Duration::ZERO, &mut rng) >= MIN_INTERVAL * 9 / 10);
}

#[test]
fn probe_request_bytes() {
    assert_eq!(
        probe_request("/hc", "svc"),
        b"GET /hc HTTP/1.1\r\nHost: svc\r\nUser-Agent: ringway-health\r\nConnection: close\r\n\r\n"
    );
}

// ---- probes against real sockets -----------------------------------------------------------

/// Reads one request head from `s` (until the blank line).
fn read_head(s: &mut TcpStream) -> Vec<u8> {
    let mut got = Vec::new();
    let mut b = [0u8; 512];
    while !got.ends_with(b"\r\n\r\n") {
        match s.read(&mut b) {
            Ok(0) | Err(_) => break,
            Ok(n) => got.extend_from_slice(&b[..n]),
        }
    }
    got
}

/// A std upstream answering `conns` connections with `respond` (run on its own thread).
fn upstream(
    conns: usize,
    respond: impl Fn(&mut TcpStream, Vec<u8>) + Send + 'static,
) -> (SocketAddr, JoinHandle<()>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let h = std::thread::spawn(move || {
        for _ in 0..conns {
            let Ok((mut s, _)) = l.accept() else { return };
            let req = read_head(&mut s);
            respond(&mut s, req);
        }
    });
    (addr, h)
}

fn run_check(addr: SocketAddr, timeout_ms: u64) -> Result<u16, ProbeError> {
    let (tx, rx) = mpsc::channel();
    with_driver(DriverConfig::default(), move |d| async move {
        let r = check(
            &d,
            addr,
            None,
            "/healthz",
            "svc",
            Duration::from_millis(timeout_ms),
        )
        .await;
        tx.send(r).unwrap();
    });
    rx.recv().unwrap()
}

#[test]
fn probe_sends_the_request_and_reads_the_status() {
    let (tx, rx) = mpsc::channel();
    let (addr, h) = upstream(1, move |s, req| {
        tx.send(req).unwrap();
        s.write_all(b"HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n")
            .unwrap();
    });
    assert_eq!(run_check(addr, 1000), Ok(204));
    assert_eq!(rx.recv().unwrap(), probe_request("/healthz", "svc"));
    h.join().unwrap();
}

#[test]
fn probe_status_decides_health() {
    for (status, healthy) in [
        (200u16, true),
        (302, true),
        (399, true),
        (404, false),
        (503, false),
    ] {
        let (addr, h) = upstream(1, move |s, _| {
            let resp = format!("HTTP/1.1 {status} X\r\nContent-Length: 0\r\n\r\n");
            s.write_all(resp.as_bytes()).unwrap();
        });
        let hcfg = hc(1000);
        let (tx, rx) = mpsc::channel();
        with_driver(DriverConfig::default(), move |d| async move {
            tx.send(probe(&d, addr, None, &hcfg, "svc").await).unwrap();
        });
        assert_eq!(rx.recv().unwrap(), healthy, "status {status}");
        h.join().unwrap();
    }
}

#[test]
fn probe_reads_a_head_split_across_segments() {
    let (addr, h) = upstream(1, |s, _| {
        for part in [
            &b"HTTP/1.1 2"[..],
            b"00 OK\r\nContent-Le",
            b"ngth: 0\r\n",
            b"\r\n",
        ] {
            s.write_all(part).unwrap();
            s.flush().unwrap();
            std::thread::sleep(Duration::from_millis(20));
        }
    });
    assert_eq!(run_check(addr, 2000), Ok(200));
    h.join().unwrap();
}

#[test]
fn probe_failures_are_typed() {
    // Refused: a port with nothing listening.
    let closed = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    assert_eq!(
        run_check(closed, 1000),
        Err(ProbeError::Connect(libc::ECONNREFUSED))
    );
    // Closed without answering.
    let (addr, h) = upstream(1, |_, _| {});
    assert_eq!(run_check(addr, 1000), Err(ProbeError::Closed));
    h.join().unwrap();
    // Garbage.
    let (addr, h) = upstream(1, |s, _| s.write_all(b"SSH-2.0-OpenSSH\r\n\r\n").unwrap());
    assert_eq!(run_check(addr, 1000), Err(ProbeError::Malformed));
    h.join().unwrap();
}

#[test]
fn probe_times_out_on_a_hanging_upstream() {
    let (addr, h) = upstream(1, |_, _| std::thread::sleep(Duration::from_millis(600)));
    let t = Instant::now();
    assert_eq!(run_check(addr, 150), Err(ProbeError::Timeout));
    let took = t.elapsed();
    assert!(
        took >= Duration::from_millis(140) && took < Duration::from_secs(2),
        "{took:?}"
    );
    h.join().unwrap();
}

#[test]
fn run_checks_reports_transitions_and_stops() {
    // Endpoint 0 answers 200 for two rounds, 503 for three, then 200 again; endpoint 1
    // (closed port) is always down.
    let status = Arc::new(AtomicU16::new(200));
    let st = status.clone();
    let (addr0, h) = upstream(8, move |s, _| {
        let resp = format!("HTTP/1.1 {} X\r\n\r\n", st.load(Ordering::SeqCst));
        let _ = s.write_all(resp.as_bytes());
    });
    let addr1 = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let (tx, rx) = mpsc::channel();
    let mut cfg = hc(500);
    cfg.interval = Duration::from_millis(100);
    with_driver(DriverConfig::default(), move |d| async move {
        let mut round = 0u32;
        let mut events = Vec::new();
        run_checks(
            &d,
            |addrs| {
                round += 1;
                match round {
                    3 => status.store(503, Ordering::SeqCst),
                    6 => status.store(200, Ordering::SeqCst),
                    _ => {}
                }
                addrs.extend([addr0, addr1]);
                (round <= 8).then_some(None)
            },
            &cfg,
            "svc",
            1,
            |i, a, healthy| events.push((i, a, healthy)),
        )
        .await;
        tx.send(events).unwrap();
    });
    let events = rx.recv().unwrap();
    assert_eq!(
        events,
        vec![(1, addr1, false), (0, addr0, false), (0, addr0, true)],
        "{events:?}"
    );
    h.join().unwrap();
}
