//! Soak (bounded: about 15 s): a flapping endpoint — a real upstream process killed and
//! restarted on the same port every 300 ms — next to a stable one, under steady keep-alive
//! load from several clients, with retries on connect failure and reset. Every request must be
//! answered exactly once, by the request it belongs to (each client checks the echoed request
//! line), and the proxy's memory must stay flat.

mod support;

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use support::rig::{Rig, Spec};
use support::{free_port, rss_kib, upstream_bin, Client, Upstream};

const RUN: Duration = Duration::from_secs(12);
const CLIENTS: usize = 4;

fn spawn_at(addr: SocketAddr) -> Child {
    Command::new(upstream_bin())
        .args(["--listen", &addr.to_string(), "--name", "flappy"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn ringway-upstream")
}

#[test]
fn flapping_upstream_loses_no_request_and_memory_stays_flat() {
    let stable = Upstream::start(&["--name", "stable"]);
    let flappy_addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let mut spec = Spec::new(2, &[]);
    spec.listener_extra = r#"
  [[listeners.routes]]
  cluster = "pair"
    [listeners.routes.retry]
    retry_on = ["connect-failure", "reset"]
    attempts = 3
    backoff_base = "1ms"
    backoff_max = "5ms"
    budget_percent = 100
"#;
    let extra = format!(
        "[[clusters]]\nname = \"pair\"\nendpoints = [\"{flappy_addr}\", \"{}\"]\nconnect_timeout = \"200ms\"\n",
        stable.addr()
    );
    spec.extra = &extra;
    let rig = Rig::start(&spec);
    let pid = rig.proxy.pid();

    let stop = Arc::new(AtomicBool::new(false));
    let flapper = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut child = Some(spawn_at(flappy_addr));
            let mut flips = 0u32;
            while !stop.load(Ordering::SeqCst) {
                std::thread::sleep(Duration::from_millis(300));
                match child.take() {
                    Some(mut c) => {
                        let _ = c.kill();
                        let _ = c.wait();
                    }
                    None => child = Some(spawn_at(flappy_addr)),
                }
                flips += 1;
            }
            if let Some(mut c) = child {
                let _ = c.kill();
                let _ = c.wait();
            }
            flips
        })
    };

    // Warm up, then take the baseline RSS.
    let mut c = rig.client();
    for i in 0..200 {
        let r = c.get(&format!("/headers?warm={i}"), "soak");
        assert_eq!(r.status, 200);
    }
    let rss_start = rss_kib(pid);

    let deadline = Instant::now() + RUN;
    let listen = rig.listen;
    let clients: Vec<_> = (0..CLIENTS)
        .map(|id| {
            std::thread::spawn(move || {
                let mut c = Client::connect(listen);
                let (mut ok, mut n) = (0u64, 0u64);
                while Instant::now() < deadline {
                    let path = format!("/headers?client={id}&seq={n}");
                    let r = match c.request("GET", &path, &[("Host", "soak")], b"") {
                        Ok(r) => r,
                        Err(e) => panic!("client {id} request {n}: no answer: {e}"),
                    };
                    assert_eq!(r.status, 200, "client {id} request {n}: {}", r.text());
                    let first = r.text().lines().next().unwrap_or_default().to_owned();
                    assert_eq!(
                        first,
                        format!("GET {path} HTTP/1.1"),
                        "answered by another request"
                    );
                    ok += 1;
                    n += 1;
                    if r.header("connection") == Some("close") {
                        c = Client::connect(listen);
                    }
                }
                (ok, n)
            })
        })
        .collect();
    // Receive-buffer pages and pools warm up in the first half; the second half must be flat.
    std::thread::sleep(RUN / 2);
    let rss_mid = rss_kib(pid);
    let mut total = 0;
    for t in clients {
        let (ok, n) = t.join().expect("client thread");
        assert_eq!(ok, n);
        total += n;
    }
    stop.store(true, Ordering::SeqCst);
    let flips = flapper.join().unwrap();
    let rss_end = rss_kib(pid);
    eprintln!(
        "soak: {total} requests, {flips} flips, RSS {rss_start} KiB -> {rss_mid} KiB (half-way) -> {rss_end} KiB"
    );
    assert!(total > 500, "too little load to mean anything: {total}");
    assert!(flips >= 20);
    assert!(
        rss_end < rss_start + 16 * 1024,
        "memory grew from {rss_start} KiB to {rss_end} KiB"
    );
    assert!(
        rss_end < rss_mid + 4 * 1024,
        "memory kept growing in the second half: {rss_mid} KiB -> {rss_end} KiB"
    );
}
