//! Upstream failures seen through a real `ringway`: refused and reset connections and
//! malformed responses answer 502, a hung upstream answers 504 at the route timeout, a
//! body cut short closes the client connection, and pooled connections the upstream closed
//! are not handed to the next request.

mod support;

use std::net::SocketAddr;
use std::thread;
use std::time::{Duration, Instant};

use support::{free_port, Client, Response, Rig, Upstream};

/// Every request on the listener goes to `web` with a 500 ms exchange timeout.
const TIMEOUT_ROUTE: &str = "[[listeners.routes]]\ncluster = \"web\"\ntimeout = \"500ms\"\n";

fn proxy_error(r: &Response, want: u16) {
    assert_eq!(r.status, want, "{r:?}");
    assert_eq!(r.header("server"), Some("ringway"), "{r:?}");
    assert!(!r.body.is_empty(), "proxy answers carry a short body");
}

/// `GET /` through a proxy in front of an upstream started with `args`.
fn get_via(args: &[&str], listener_extra: &str) -> (Response, Duration) {
    let up = Upstream::start(args);
    let rig = Rig::simple(2, up.addr(), listener_extra);
    let mut c = rig.client();
    let t0 = Instant::now();
    let r = c.get("/", "f");
    (r, t0.elapsed())
}

#[test]
fn refused_upstream_is_502() {
    let (r, _) = get_via(&["--fault", "refuse"], "");
    proxy_error(&r, 502);
}

#[test]
fn closed_port_upstream_is_502() {
    let dead = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let rig = Rig::simple(2, dead, "");
    let mut c = rig.client();
    let r = c.get("/", "f");
    proxy_error(&r, 502);
    // A client connection announced as closing is closed; one kept open still works.
    if r.header("connection") == Some("close") {
        assert!(c.is_closed_by_peer());
    } else {
        proxy_error(&c.get("/", "f"), 502);
    }
}

#[test]
fn reset_before_headers_is_502() {
    let (r, _) = get_via(&["--fault", "reset-before-headers"], "");
    proxy_error(&r, 502);
}

#[test]
fn malformed_response_is_502() {
    let (r, _) = get_via(&["--fault", "bad-response"], "");
    proxy_error(&r, 502);
}

#[test]
fn hung_upstream_is_504_at_the_route_timeout() {
    let (r, took) = get_via(&["--fault", "hang"], TIMEOUT_ROUTE);
    proxy_error(&r, 504);
    assert!(
        took >= Duration::from_millis(450) && took < Duration::from_millis(1500),
        "504 after {took:?} with timeout = 500ms"
    );
}

#[test]
fn slow_drip_upstream_is_504_at_the_route_timeout() {
    // One byte every 200 ms: no full response head before the 500 ms timeout, so no
    // response byte can have reached the client yet.
    let (r, took) = get_via(
        &["--fault", "slow-drip", "--drip-interval", "200ms"],
        TIMEOUT_ROUTE,
    );
    proxy_error(&r, 504);
    assert!(took < Duration::from_millis(1500), "504 after {took:?}");
}

#[test]
fn slow_upstream_within_the_timeout_succeeds() {
    let (r, _) = get_via(&["--latency", "200ms"], TIMEOUT_ROUTE);
    assert_eq!(r.status, 200);
}

/// After a response whose body was cut, the client sees the connection close (EOF or
/// reset inside the body), never a complete response.
fn assert_cut(args: &[&str]) {
    let up = Upstream::start(args);
    let rig = Rig::simple(2, up.addr(), "");
    let mut c = rig.client();
    c.send_raw(b"GET / HTTP/1.1\r\nHost: f\r\n\r\n");
    match c.read_response() {
        Ok(r) => panic!(
            "a cut body was delivered as complete: {} bytes",
            r.body.len()
        ),
        Err(e) => assert!(
            matches!(
                e.kind(),
                std::io::ErrorKind::UnexpectedEof | std::io::ErrorKind::ConnectionReset
            ),
            "expected a close, got {e}"
        ),
    }
}

#[test]
fn reset_mid_body_closes_the_client_connection() {
    assert_cut(&["--fault", "reset-mid-body", "--body-size", "100000"]);
}

#[test]
fn short_content_length_body_closes_the_client_connection() {
    assert_cut(&["--fault", "wrong-content-length", "--body-size", "1000"]);
}

#[test]
fn reset_mid_chunked_body_closes_the_client_connection() {
    assert_cut(&[
        "--fault",
        "reset-mid-body",
        "--chunked",
        "--body-size",
        "100000",
    ]);
}

#[test]
fn upstream_closing_after_each_response_is_not_reused_stale() {
    let up = Upstream::start(&["--fault", "close-after=1", "--body-size", "3"]);
    let rig = Rig::simple(1, up.addr(), "");
    let mut c = rig.client();
    for i in 0..4 {
        let r = c.get("/", "f");
        assert_eq!((r.status, r.body.as_slice()), (200, &b"abc"[..]), "GET {i}");
        if i == 1 {
            // Give the upstream's FIN time to arrive before the pooled connection is picked.
            thread::sleep(Duration::from_millis(100));
        }
    }
}

#[test]
fn upstream_idle_close_is_not_reused_stale() {
    let up = Upstream::start(&["--idle-timeout", "200ms", "--body-size", "3"]);
    let rig = Rig::simple(1, up.addr(), "");
    let mut c = rig.client();
    assert_eq!(c.get("/", "f").status, 200);
    thread::sleep(Duration::from_millis(500));
    let r = c.get("/", "f");
    assert_eq!((r.status, r.body.as_slice()), (200, &b"abc"[..]));
    let s = up.stats();
    assert_eq!(s.requests, 2, "{s:?}");
}

#[test]
fn upstream_error_status_is_relayed_not_rewritten() {
    let up = Upstream::start(&["--name", "u"]);
    let rig = Rig::simple(2, up.addr(), "");
    let r = Client::connect(rig.listen).get("/status/503", "f");
    assert_eq!(r.status, 503);
    assert_eq!(r.header("x-upstream"), Some("u"));
}

#[test]
fn timeout_after_the_response_head_closes_the_client_connection() {
    // One byte every 5 ms: the head (~60 bytes) arrives within the 500 ms timeout, the
    // 1000-byte body cannot. Either no byte reached the client yet (504), or the client
    // sees the head and then a close; never a complete response, never a hang.
    let up = Upstream::start(&[
        "--fault",
        "slow-drip",
        "--drip-interval",
        "5ms",
        "--body-size",
        "1000",
    ]);
    let rig = Rig::simple(2, up.addr(), TIMEOUT_ROUTE);
    let mut c = rig.client();
    let t0 = Instant::now();
    c.send_raw(b"GET / HTTP/1.1\r\nHost: f\r\n\r\n");
    match c.read_response() {
        Ok(r) => proxy_error(&r, 504),
        Err(e) => assert!(
            matches!(
                e.kind(),
                std::io::ErrorKind::UnexpectedEof | std::io::ErrorKind::ConnectionReset
            ),
            "{e}"
        ),
    }
    assert!(
        t0.elapsed() < Duration::from_millis(1500),
        "took {:?}",
        t0.elapsed()
    );
}

/// An upstream that answers every request with a 100,000-byte body (`Content-Length:
/// 100000`) followed by bytes that belong to no response, and keeps the connection open.
/// Returns its address and a counter of accepted connections.
fn overlong_upstream() -> (SocketAddr, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    use std::io::{Read, Write};
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let accepted = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let count = accepted.clone();
    thread::spawn(move || {
        for s in l.incoming() {
            let Ok(mut s) = s else { return };
            count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            thread::spawn(move || {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                loop {
                    while let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        buf.drain(..end + 4);
                        let mut resp =
                            b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n".to_vec();
                        resp.extend((0..100_000).map(|i| b'a' + (i % 26) as u8));
                        resp.extend_from_slice(b"GARBAGE AFTER THE BODY\r\n\r\n");
                        if s.write_all(&resp).is_err() {
                            return;
                        }
                    }
                    match s.read(&mut chunk) {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                }
            });
        }
    });
    (addr, accepted)
}

/// Bytes an upstream sends past a (spliced) Content-Length body must not be taken for the
/// next response: that upstream connection is not reused.
#[test]
fn bytes_past_a_spliced_body_keep_the_upstream_connection_out_of_the_pool() {
    let (addr, accepted) = overlong_upstream();
    let rig = Rig::simple(1, addr, "");
    let mut c = rig.client();
    let want: Vec<u8> = (0..100_000).map(|i| b'a' + (i % 26) as u8).collect();
    // Pipelined: the proxy takes the second request right after relaying the first response,
    // before anything else could notice the leftover bytes.
    c.send_raw(b"GET /big0 HTTP/1.1\r\nHost: x\r\n\r\nGET /big1 HTTP/1.1\r\nHost: x\r\n\r\n");
    for i in 0..2 {
        let r = c.read_response().unwrap();
        assert_eq!(r.status, 200, "request {i}: {}", r.text());
        assert!(r.body == want, "request {i}: body differs");
    }
    assert_eq!(
        accepted.load(std::sync::atomic::Ordering::SeqCst),
        2,
        "each response left bytes behind, so each request needed a fresh connection"
    );
}
