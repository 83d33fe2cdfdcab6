//! Tests of the admin codec and, end to end, the server on a real glommio executor.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use super::http::{self, Endpoint, Parsed, Status, MAX_HEAD_BYTES};
use super::{serve_with, AdminLimits, AdminState, MetricsFuture};
use crate::telemetry::{MetricsShard, MetricsSnapshot};

#[test]
fn parses_and_routes_heads() {
    let cases: &[(&[u8], Parsed)] = &[
        (
            b"GET / HTTP/1.1\r\n\r\n",
            Parsed::Request(Endpoint::Dashboard),
        ),
        (
            b"GET /ready HTTP/1.1\r\nHost: x\r\n\r\n",
            Parsed::Request(Endpoint::Ready),
        ),
        (
            b"GET /metrics?x=1 HTTP/1.0\r\n\r\n",
            Parsed::Request(Endpoint::Metrics),
        ),
        (
            b"GET /config HTTP/1.1\r\n\r\n",
            Parsed::Request(Endpoint::Config),
        ),
        (
            b"GET /nope HTTP/1.1\r\n\r\n",
            Parsed::Reject(Status::NotFound),
        ),
        (
            b"GET /readyz HTTP/1.1\r\n\r\n",
            Parsed::Reject(Status::NotFound),
        ),
        (
            b"POST /ready HTTP/1.1\r\n\r\n",
            Parsed::Reject(Status::MethodNotAllowed),
        ),
        (
            b"HEAD / HTTP/1.1\r\n\r\n",
            Parsed::Reject(Status::MethodNotAllowed),
        ),
        (b"GET /ready HTTP/1.1\r\n", Parsed::Partial),
        (b"GET", Parsed::Partial),
        (b"", Parsed::Partial),
        (
            b"\x00\x01garbage\r\n\r\n",
            Parsed::Reject(Status::BadRequest),
        ),
        (
            b"GET /ready HTTP/9.9\r\n\r\n",
            Parsed::Reject(Status::BadRequest),
        ),
        (
            b"GET /ready HTTP/1.1\r\nBad Header\r\n\r\n",
            Parsed::Reject(Status::BadRequest),
        ),
    ];
    for (input, expected) in cases {
        assert_eq!(
            http::parse_head(input),
            *expected,
            "{:?}",
            String::from_utf8_lossy(input)
        );
    }
}

#[test]
fn rejects_oversized_and_overcrowded_heads() {
    let mut big = b"GET / HTTP/1.1\r\nX: ".to_vec();
    big.resize(MAX_HEAD_BYTES, b'a');
    assert_eq!(
        http::parse_head(&big),
        Parsed::Reject(Status::HeaderFieldsTooLarge)
    );
    let mut many = b"GET / HTTP/1.1\r\n".to_vec();
    for i in 0..(http::MAX_HEADERS + 1) {
        many.extend_from_slice(format!("h{i}: v\r\n").as_bytes());
    }
    many.extend_from_slice(b"\r\n");
    assert_eq!(
        http::parse_head(&many),
        Parsed::Reject(Status::HeaderFieldsTooLarge)
    );
}

#[test]
fn responses_carry_length_and_close() {
    let r = String::from_utf8(http::response(Status::Ok, http::TEXT_PLAIN, b"hi\n")).expect("utf8");
    assert!(r.starts_with("HTTP/1.1 200 OK\r\n"));
    assert!(r.contains("\r\nContent-Length: 3\r\n"));
    assert!(r.contains("\r\nConnection: close\r\n"));
    assert!(r.ends_with("\r\n\r\nhi\n"));
    let r = String::from_utf8(http::error_response(Status::MethodNotAllowed)).expect("utf8");
    assert!(r.starts_with("HTTP/1.1 405 Method Not Allowed\r\n"));
    assert!(r.contains("\r\nAllow: GET\r\n"));
}

/// Readiness flags the test thread flips while the server runs on the executor thread.
struct FakeState {
    ready: Arc<AtomicBool>,
    draining: Arc<AtomicBool>,
}

impl AdminState for FakeState {
    fn ready(&self) -> bool {
        self.ready.load(Ordering::SeqCst)
    }
    fn draining(&self) -> bool {
        self.draining.load(Ordering::SeqCst)
    }
    fn metrics(&self) -> MetricsFuture<'_> {
        Box::pin(async {
            let names = |l: &[&str]| l.iter().map(|s| s.to_string()).collect::<Vec<_>>();
            let (listeners, clusters) = (names(&["edge"]), names(&["web"]));
            let mut total = MetricsSnapshot::default();
            for _core in 0..2 {
                let shard = MetricsShard::new(&listeners, &clusters);
                shard.request_done(0, Some(0), 200, Some(Duration::from_millis(2)));
                // Yield once, as a real cross-core collection would.
                futures_lite::future::yield_now().await;
                total.merge(&shard.snapshot());
            }
            total
        })
    }
    fn config_text(&self) -> String {
        "[admin]\nbind = \"127.0.0.1:9901\"\n".to_string()
    }
}

/// Sets the flag on drop, so the executor stops even when an assertion unwinds.
struct StopOnDrop(Arc<AtomicBool>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

struct Reply {
    status: u16,
    head: String,
    body: String,
}

/// Send `raw`, half-close, read the whole reply.
fn exchange(addr: SocketAddr, raw: &[u8]) -> Reply {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    s.write_all(raw).expect("write");
    let mut out = Vec::new();
    s.read_to_end(&mut out).expect("read");
    let text = String::from_utf8_lossy(&out).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").expect("a complete head");
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .expect("a status code");
    let length: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("Content-Length: "))
        .and_then(|v| v.parse().ok())
        .expect("a Content-Length");
    assert_eq!(length, body.len(), "Content-Length matches the body");
    Reply {
        status,
        head: head.to_string(),
        body: body.to_string(),
    }
}

fn get(addr: SocketAddr, path: &str) -> Reply {
    exchange(
        addr,
        format!("GET {path} HTTP/1.1\r\nHost: admin\r\n\r\n").as_bytes(),
    )
}

/// A running admin server on its own glommio executor thread.
struct Harness {
    addr: SocketAddr,
    ready: Arc<AtomicBool>,
    draining: Arc<AtomicBool>,
    stop: StopOnDrop,
    executor: glommio::ExecutorJoinHandle<()>,
}

impl Harness {
    /// Start through `admin::spawn` (default limits), or `serve_with(limits)` when given.
    fn start(limits: Option<AdminLimits>) -> Harness {
        let ready = Arc::new(AtomicBool::new(false));
        let draining = Arc::new(AtomicBool::new(false));
        let stop = Arc::new(AtomicBool::new(false));
        let (addr_tx, addr_rx) = mpsc::channel();
        let executor = {
            let (ready, draining, stop) = (ready.clone(), draining.clone(), stop.clone());
            glommio::LocalExecutorBuilder::new(glommio::Placement::Unbound)
                .io_memory(512 << 10)
                .name("admin-test")
                .spawn(move || async move {
                    let listener = glommio::net::TcpListener::bind("127.0.0.1:0").expect("bind");
                    let addr = listener.local_addr().expect("local addr");
                    let state: Rc<dyn AdminState> = Rc::new(FakeState { ready, draining });
                    let server = match limits {
                        None => super::spawn(listener, state).expect("spawn admin"),
                        Some(limits) => glommio::spawn_local(serve_with(listener, state, limits)),
                    };
                    addr_tx.send(addr).expect("send addr");
                    while !stop.load(Ordering::SeqCst) {
                        glommio::timer::sleep(Duration::from_millis(10)).await;
                    }
                    drop(server);
                })
                .expect("start executor")
        };
        let stop = StopOnDrop(stop);
        let addr = addr_rx
            .recv_timeout(Duration::from_secs(10))
            .expect("server address");
        Harness {
            addr,
            ready,
            draining,
            stop,
            executor,
        }
    }

    fn stop(self) {
        drop(self.stop);
        self.executor.join().expect("executor exits cleanly");
    }
}

#[test]
fn serves_admin_endpoints_on_a_real_executor() {
    let harness = Harness::start(None);
    let (addr, ready, draining) = (harness.addr, &harness.ready, &harness.draining);

    let r = get(addr, "/ready");
    assert_eq!((r.status, r.body.as_str()), (503, "not ready\n"));
    ready.store(true, Ordering::SeqCst);
    let r = get(addr, "/ready");
    assert_eq!((r.status, r.body.as_str()), (200, "ready\n"));
    draining.store(true, Ordering::SeqCst);
    let r = get(addr, "/ready");
    assert_eq!((r.status, r.body.as_str()), (503, "draining\n"));

    let r = get(addr, "/metrics");
    assert_eq!(r.status, 200);
    assert!(r.head.contains("Content-Type: text/plain; version=0.0.4"));
    assert!(r.body.contains("# TYPE ringway_requests_total counter\n"));
    assert!(r.body.contains(
        "ringway_requests_total{listener=\"edge\",cluster=\"web\",code_class=\"2xx\"} 2\n"
    ));
    assert!(r
        .body
        .contains("ringway_upstream_latency_seconds_count{cluster=\"web\"} 2\n"));

    let r = get(addr, "/config");
    assert_eq!(r.status, 200);
    assert!(r.head.contains("Content-Type: text/plain"));
    assert_eq!(r.body, "[admin]\nbind = \"127.0.0.1:9901\"\n");

    let r = get(addr, "/");
    assert_eq!(r.status, 200);
    assert!(r.body.contains("/metrics"));

    assert_eq!(get(addr, "/nope").status, 404);
    let r = exchange(addr, b"DELETE /ready HTTP/1.1\r\n\r\n");
    assert_eq!(r.status, 405);
    assert!(r.head.contains("Allow: GET"));
    let r = exchange(addr, b"\x16\x03\x01\x02\x00garbage\r\n\r\n");
    assert_eq!(r.status, 400);
    let r = exchange(
        addr,
        b"POST /ready HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello",
    );
    assert_eq!(r.status, 405);

    let mut oversized = b"GET / HTTP/1.1\r\nX: ".to_vec();
    oversized.resize(MAX_HEAD_BYTES + 100, b'a');
    assert_eq!(exchange(addr, &oversized).status, 431);

    // A client that closes without a complete head gets no answer and costs nothing.
    let mut s = TcpStream::connect(addr).expect("connect");
    s.write_all(b"GET /re").expect("write");
    s.shutdown(Shutdown::Write).expect("shutdown");
    let mut rest = Vec::new();
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    s.read_to_end(&mut rest).expect("read");
    assert!(rest.is_empty());

    // The server still answers after all that.
    assert_eq!(get(addr, "/").status, 200);

    harness.stop();
}

#[test]
fn slow_client_gets_408_and_connection_bound_holds_others_back() {
    let limits = AdminLimits {
        max_connections: 1,
        read_timeout: Duration::from_millis(200),
        write_timeout: Duration::from_secs(5),
        head_deadline: Duration::from_millis(400),
    };
    let harness = Harness::start(Some(limits));
    let started = Instant::now();

    // A trickles its head and so holds the only connection slot until its deadline.
    let mut a = TcpStream::connect(harness.addr).expect("connect");
    a.write_all(b"GET /re").expect("write");
    std::thread::sleep(Duration::from_millis(50));

    // B's request waits in the backlog until A's slot frees.
    let b = get(harness.addr, "/ready");
    assert_eq!(b.status, 503);
    assert!(
        started.elapsed() >= Duration::from_millis(150),
        "B was answered while A held the only slot"
    );

    a.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let mut reply = Vec::new();
    a.read_to_end(&mut reply).expect("read");
    assert!(
        reply.starts_with(b"HTTP/1.1 408 "),
        "{}",
        String::from_utf8_lossy(&reply)
    );
    harness.stop();
}

#[test]
fn routes_methods_and_parameters() {
    use super::http::{route, Endpoint as E, Format, LogLevel};
    let cases: &[(&str, &str, Parsed)] = &[
        ("GET", "/", Parsed::Request(E::Dashboard)),
        ("GET", "/help", Parsed::Request(E::Index)),
        (
            "GET",
            "/clusters",
            Parsed::Request(E::Clusters(Format::Text)),
        ),
        (
            "GET",
            "/clusters?format=json",
            Parsed::Request(E::Clusters(Format::Json)),
        ),
        (
            "GET",
            "/clusters?format=xml",
            Parsed::Reject(Status::BadRequest),
        ),
        (
            "GET",
            "/stats?format=json",
            Parsed::Request(E::Stats(Format::Json)),
        ),
        (
            "GET",
            "/stats?x=1&format=text",
            Parsed::Request(E::Stats(Format::Text)),
        ),
        ("GET", "/certs", Parsed::Request(E::Certs)),
        ("GET", "/logging", Parsed::Request(E::Logging)),
        (
            "GET",
            "/logging?level=debug",
            Parsed::Reject(Status::PostOnly),
        ),
        (
            "POST",
            "/logging?level=debug",
            Parsed::Request(E::SetLogging(LogLevel::Debug)),
        ),
        (
            "POST",
            "/logging?level=WARN",
            Parsed::Request(E::SetLogging(LogLevel::Warn)),
        ),
        (
            "POST",
            "/logging?level=loud",
            Parsed::Reject(Status::BadRequest),
        ),
        ("POST", "/logging", Parsed::Reject(Status::BadRequest)),
        ("POST", "/reload", Parsed::Request(E::Reload)),
        ("GET", "/reload", Parsed::Reject(Status::PostOnly)),
        ("POST", "/metrics", Parsed::Reject(Status::MethodNotAllowed)),
    ];
    for (method, target, want) in cases {
        assert_eq!(route(method, target), *want, "{method} {target}");
    }
    let r = String::from_utf8(super::http::error_response(Status::PostOnly)).unwrap();
    assert!(
        r.starts_with("HTTP/1.1 405 ") && r.contains("Allow: POST\r\n"),
        "{r}"
    );
}
