//! Issue 9: RFC 9112 corner cases, timeouts that never truncate, connections kept on gateway
//! errors. Each test names the numbered defect it covers; each failed against the build before
//! the fix (`RINGWAY_BIN=<old ringway> cargo test -p ringway --test http_hardening`).

mod support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

use support::{free_port, metric, Client, Proxy, RawUpstream, Upstream};

/// One HTTP listener `edge` (admin too) to cluster `web` over `endpoints`.
fn proxy(
    endpoints: &[SocketAddr],
    listener_extra: &str,
    cluster_extra: &str,
) -> (Proxy, SocketAddr) {
    let (listen, admin) = (free_port(), free_port());
    let eps: Vec<String> = endpoints.iter().map(|a| format!("\"{a}\"")).collect();
    let cfg = format!(
        "[runtime]\nworkers = 1\n\n[admin]\nbind = \"127.0.0.1:{admin}\"\n\n\
         [[listeners]]\nname = \"edge\"\nbind = \"127.0.0.1:{listen}\"\ncluster = \"web\"\n{listener_extra}\n\n\
         [[clusters]]\nname = \"web\"\nendpoints = [{}]\nconnect_timeout = \"300ms\"\n{cluster_extra}\n",
        eps.join(", ")
    );
    (
        Proxy::start(&cfg),
        SocketAddr::from(([127, 0, 0, 1], listen)),
    )
}

fn raw_client(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s
}

/// Everything until the proxy closes (or 10 s pass).
fn read_all(s: &mut TcpStream) -> Vec<u8> {
    let mut v = Vec::new();
    let _ = s.read_to_end(&mut v);
    v
}

fn dead_addr() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

// ---- 1. per_try_timeout must not truncate; stream_idle_timeout ends a stalled body ---------

#[test]
fn item1_per_try_timeout_stops_at_the_response_head() {
    const N: usize = 400_000;
    let up = RawUpstream::start(|s, _| {
        let _ = s.write_all(format!("HTTP/1.1 200 OK\r\ncontent-length: {N}\r\n\r\n").as_bytes());
        // 25 pieces, 100 ms apart: the body takes 2.5 s, the per-try timeout is 1 s.
        let piece = vec![b'x'; N / 25];
        for _ in 0..25 {
            std::thread::sleep(Duration::from_millis(100));
            if s.write_all(&piece).is_err() {
                return;
            }
        }
    });
    let (_p, addr) = proxy(
        &[up.addr()],
        "\n  [[listeners.routes]]\n  cluster = \"web\"\n  per_try_timeout = \"1s\"\n",
        "",
    );
    let mut c = Client::connect(addr);
    c.set_timeout(Duration::from_secs(10));
    let r = c.get("/slow", "x");
    assert_eq!(r.status, 200);
    assert_eq!(r.body.len(), N, "the body was cut");
}

#[test]
fn item1_a_stalled_body_ends_at_the_stream_idle_timeout_as_a_truncation() {
    let up = RawUpstream::start(|s, _| {
        let _ = s.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 100000\r\n\r\n");
        let _ = s.write_all(&[b'y'; 1000]);
        std::thread::sleep(Duration::from_secs(5)); // stalls
    });
    let (p, addr) = proxy(
        &[up.addr()],
        "\n  [listeners.limits]\n  stream_idle_timeout = \"500ms\"\n",
        "",
    );
    let mut s = raw_client(addr);
    s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let t = Instant::now();
    let got = read_all(&mut s);
    let waited = t.elapsed();
    let text = String::from_utf8_lossy(&got);
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    let body = got.len() - (text.find("\r\n\r\n").unwrap() + 4);
    assert_eq!(body, 1000, "a truncation: what arrived, then the close");
    assert!(
        waited >= Duration::from_millis(400) && waited < Duration::from_secs(3),
        "{waited:?}"
    );
    assert_eq!(
        metric(
            &p,
            "ringway_proxy_errors_total{kind=\"stream_idle_timeout\"}"
        ),
        1.0
    );
}

#[test]
fn item1_a_body_that_keeps_moving_outlives_the_stream_idle_timeout() {
    let up = RawUpstream::start(|s, _| {
        let _ = s.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 20000\r\n\r\n");
        for _ in 0..20 {
            std::thread::sleep(Duration::from_millis(100));
            let _ = s.write_all(&[b'z'; 1000]);
        }
    });
    let (_p, addr) = proxy(
        &[up.addr()],
        "\n  [listeners.limits]\n  stream_idle_timeout = \"400ms\"\n",
        "",
    );
    let r = Client::connect(addr).get("/", "x");
    assert_eq!(r.body.len(), 20000);
}

// ---- 2. repeated Content-Length: forward exactly one ---------------------------------------

#[test]
fn item2_repeated_content_length_is_forwarded_once() {
    let up = RawUpstream::answering(
        b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\ncontent-length: 2\r\n\r\nok",
    );
    let (_p, addr) = proxy(&[up.addr()], "", "");
    for cl in [
        "Content-Length: 5\r\nContent-Length: 5\r\n",
        "Content-Length: 5, 5\r\n",
    ] {
        let mut c = Client::connect(addr);
        c.send_raw(format!("POST / HTTP/1.1\r\nHost: x\r\n{cl}\r\nhello").as_bytes());
        let r = c.read_response().unwrap();
        assert_eq!(r.status, 200);
        assert_eq!(
            r.headers_named("content-length").count(),
            1,
            "to the client: {:?}",
            r.headers
        );
        let last = up.requests().pop().unwrap();
        assert_eq!(
            last.headers("content-length"),
            vec!["5".to_string()],
            "{}",
            last.head_text()
        );
        assert_eq!(last.body, b"hello");
    }
}

// ---- 3. framing and routing fields in a trailer section ------------------------------------

#[test]
fn item3_forbidden_trailer_fields_are_never_forwarded() {
    let up = RawUpstream::answering(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok");
    let (_p, addr) = proxy(&[up.addr()], "", "");
    for field in [
        "Content-Length: 5",
        "Transfer-Encoding: chunked",
        "Host: evil",
        "Connection: close",
    ] {
        let mut s = raw_client(addr);
        s.write_all(
            format!("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n{field}\r\n\r\n")
                .as_bytes(),
        )
        .unwrap();
        let text = String::from_utf8_lossy(&read_all(&mut s)).to_string();
        assert!(text.starts_with("HTTP/1.1 400"), "{field}: {text}");
        let seen = String::from_utf8_lossy(&up.raw_bytes()).to_ascii_lowercase();
        assert!(
            !seen.contains(&field.to_ascii_lowercase()),
            "{field} reached the upstream: {seen}"
        );
    }
    // An allowed trailer still passes.
    let mut s = raw_client(addr);
    s.write_all(b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n5\r\nhello\r\n0\r\nx-checksum: 1\r\n\r\n").unwrap();
    let text = String::from_utf8_lossy(&read_all(&mut s)).to_string();
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
}

#[test]
fn item3_a_forbidden_trailer_in_a_response_is_a_truncation() {
    let up = RawUpstream::answering(
        b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n2\r\nok\r\n0\r\ncontent-length: 9\r\n\r\n",
    );
    let (_p, addr) = proxy(&[up.addr()], "", "");
    let mut s = raw_client(addr);
    s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let text = String::from_utf8_lossy(&read_all(&mut s)).to_string();
    assert!(
        !text.to_ascii_lowercase().contains("content-length: 9"),
        "{text}"
    );
    assert!(
        !text.ends_with("0\r\n\r\n"),
        "must not look complete: {text:?}"
    );
}

// ---- 4, 5. request lines without a version, targets with whitespace ------------------------

#[test]
fn item4_an_http09_request_line_gets_400_at_once() {
    let up = Upstream::start(&[]);
    let (_p, addr) = proxy(&[up.addr()], "", "");
    let mut s = raw_client(addr);
    s.write_all(b"GET /\r\n").unwrap();
    let t = Instant::now();
    let text = String::from_utf8_lossy(&read_all(&mut s)).to_string();
    assert!(text.starts_with("HTTP/1.1 400"), "{text:?}");
    assert!(t.elapsed() < Duration::from_secs(2));
}

#[test]
fn item5_whitespace_in_the_target_is_400_not_505() {
    let up = Upstream::start(&[]);
    let (_p, addr) = proxy(&[up.addr()], "", "");
    for line in ["GET /a b HTTP/1.1", "GET /a\tb HTTP/1.1", "GET  / HTTP/1.1"] {
        let mut s = raw_client(addr);
        s.write_all(format!("{line}\r\nHost: x\r\n\r\n").as_bytes())
            .unwrap();
        let text = String::from_utf8_lossy(&read_all(&mut s)).to_string();
        assert!(text.starts_with("HTTP/1.1 400"), "{line:?}: {text}");
    }
}

// ---- 6. absolute-form targets ----------------------------------------------------------------

#[test]
fn item6_absolute_form_goes_upstream_in_origin_form_with_the_targets_authority() {
    let up = RawUpstream::answering(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok");
    let other = RawUpstream::answering(b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nother");
    let (listen, admin) = (free_port(), free_port());
    let cfg = format!(
        "[admin]\nbind = \"127.0.0.1:{admin}\"\n\n[[listeners]]\nname = \"edge\"\nbind = \"127.0.0.1:{listen}\"\ncluster = \"web\"\n\n\
         \x20 [[listeners.routes]]\n  match = {{ host = \"other.example\" }}\n  cluster = \"other\"\n\n\
         [[clusters]]\nname = \"web\"\nendpoints = [\"{}\"]\n\n[[clusters]]\nname = \"other\"\nendpoints = [\"{}\"]\n",
        up.addr(),
        other.addr()
    );
    let _p = Proxy::start(&cfg);
    let addr = SocketAddr::from(([127, 0, 0, 1], listen));
    let mut c = Client::connect(addr);
    c.send_raw(b"GET http://other.example/x?y=1 HTTP/1.1\r\nHost: front.example\r\n\r\n");
    let r = c.read_response().unwrap();
    assert_eq!(r.body, b"other", "routed on the target's authority");
    let got = other.requests().pop().unwrap();
    assert_eq!(got.request_line(), "GET /x?y=1 HTTP/1.1");
    assert_eq!(
        got.headers("host"),
        vec!["other.example".to_string()],
        "{}",
        got.head_text()
    );
    // An empty path is "/".
    c.send_raw(b"GET http://other.example HTTP/1.1\r\nHost: other.example\r\n\r\n");
    let _ = c.read_response().unwrap();
    assert_eq!(
        other.requests().pop().unwrap().request_line(),
        "GET / HTTP/1.1"
    );
}

#[test]
fn item6_a_listener_can_refuse_a_host_that_differs_from_the_target() {
    let up = RawUpstream::answering(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok");
    let (_p, addr) = proxy(&[up.addr()], "host_mismatch = \"reject\"", "");
    let mut s = raw_client(addr);
    s.write_all(b"GET http://other.example/x HTTP/1.1\r\nHost: front.example\r\n\r\n")
        .unwrap();
    let text = String::from_utf8_lossy(&read_all(&mut s)).to_string();
    assert!(text.starts_with("HTTP/1.1 400"), "{text}");
    assert!(up.requests().is_empty());
    // Matching authority (port and case aside) passes.
    let mut c = Client::connect(addr);
    c.send_raw(b"GET http://Other.Example:80/x HTTP/1.1\r\nHost: other.example:80\r\n\r\n");
    assert_eq!(c.read_response().unwrap().status, 200);
}

// ---- 7. gateway errors keep the client connection ----------------------------------------------

#[test]
fn item7_gateway_errors_keep_the_connection_when_the_request_was_read_whole() {
    let (_p, addr) = proxy(&[dead_addr()], "", "");
    let mut c = Client::connect(addr);
    for i in 0..3 {
        let r = c.get("/", "x");
        assert_eq!(r.status, 502, "request {i}");
        assert_ne!(r.header("connection"), Some("close"), "request {i}");
    }
    // With a body, and pipelined.
    c.send_raw(b"POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabcGET /b HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(c.read_response().unwrap().status, 502);
    assert_eq!(c.read_response().unwrap().status, 502);
    assert!(!c.is_closed_by_peer());
}

#[test]
fn item7_a_timeout_504_keeps_the_connection_too() {
    let hang = Upstream::start(&["--fault", "hang"]);
    let (_p, addr) = proxy(
        &[hang.addr()],
        "\n  [[listeners.routes]]\n  cluster = \"web\"\n  timeout = \"300ms\"\n",
        "",
    );
    let mut c = Client::connect(addr);
    for _ in 0..2 {
        let r = c.get("/", "x");
        assert_eq!(r.status, 504);
        assert_ne!(r.header("connection"), Some("close"));
    }
}

// ---- 8. a per-try timeout during the head send, then a retry --------------------------------

#[test]
fn item8_a_retry_after_a_timeout_mid_send_sends_the_whole_request() {
    // `stall` accepts and never reads: a 16 MiB request overflows the loopback socket buffers
    // (about 10 MiB), so the first
    // try's send is still in flight when its per-try timeout fires.
    let hold = support::TcpPeer::start("stall");
    let sink = Upstream::start(&[]);
    let body: Vec<u8> = (0..16u32 << 20).map(|i| (i % 251) as u8).collect();
    let (p, addr) = proxy(
        &[hold.addr(), sink.addr()],
        "\n  [[listeners.routes]]\n  cluster = \"web\"\n  per_try_timeout = \"500ms\"\n  timeout = \"20s\"\n  \
         [listeners.routes.retry]\n  retry_on = [\"gateway-error\"]\n  attempts = 3\n  replay_buffer_bytes = 16777216\n",
        "lb = \"round_robin\"",
    );
    let mut c = Client::connect(addr);
    c.set_timeout(Duration::from_secs(30));
    for _ in 0..2 {
        let r = c.request("POST", "/sha256", &[], &body).expect("response");
        assert_eq!(r.status, 200, "{}", r.text());
        use sha2::Digest;
        let want: String = sha2::Sha256::digest(&body)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert!(
            r.text().contains(&want),
            "the retried request arrived whole: {}",
            r.text()
        );
    }
    assert!(
        metric(
            &p,
            "ringway_policy_events_total{cluster=\"web\",event=\"retry\"}"
        ) >= 1.0,
        "the hanging endpoint was tried (and timed out mid-send) at least once"
    );
}

// ---- 9. huge Content-Length values --------------------------------------------------------------

#[test]
fn item9_a_content_length_near_u64_max_is_refused() {
    let up = RawUpstream::answering(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok");
    let shadow = RawUpstream::answering(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok");
    let (_p, addr) = proxy(
        &[up.addr()],
        "\n  [[listeners.routes]]\n  cluster = \"web\"\n  [listeners.routes.mirror]\n  cluster = \"shadow\"\n  percent = 100\n",
        &format!("\n[[clusters]]\nname = \"shadow\"\nendpoints = [\"{}\"]\n", shadow.addr()),
    );
    for cl in ["18446744073709551615", "9223372036854775808"] {
        let mut s = raw_client(addr);
        s.write_all(
            format!("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: {cl}\r\n\r\nab").as_bytes(),
        )
        .unwrap();
        let text = String::from_utf8_lossy(&read_all(&mut s)).to_string();
        assert!(text.starts_with("HTTP/1.1 413"), "{cl}: {text}");
    }
    assert!(up.requests().is_empty());
    assert!(shadow.raw_bytes().is_empty());
}

// ---- 10. bytes sent to clients are counted -------------------------------------------------------

#[test]
fn item10_downstream_sent_bytes_are_counted() {
    let up = Upstream::start(&["--body-size", "1000"]);
    let (p, addr) = proxy(&[up.addr()], "", "");
    let mut c = Client::connect(addr);
    for _ in 0..5 {
        assert_eq!(c.get("/", "x").body.len(), 1000);
    }
    drop(c);
    std::thread::sleep(Duration::from_millis(200));
    let sent = metric(&p, "ringway_downstream_sent_bytes_total{listener=\"edge\"}");
    let received = metric(
        &p,
        "ringway_downstream_received_bytes_total{listener=\"edge\"}",
    );
    assert!(sent >= 5000.0, "sent {sent}");
    assert!(received > 0.0, "received {received}");
}

// ---- found by the differential fuzz target (fuzz/fuzz_targets/proxy_exchange.rs) --------------

#[test]
fn fuzz_two_error_answers_on_one_kept_connection_are_each_sent_once() {
    let (_p, addr) = proxy(&[dead_addr()], "", "");
    let mut s = raw_client(addr);
    // A 502 (kept), then a malformed request (400, close): exactly two answers.
    s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\nGE\t\r\n\r\n")
        .unwrap();
    let text = String::from_utf8_lossy(&read_all(&mut s)).to_string();
    assert_eq!(text.matches("HTTP/1.1 ").count(), 2, "{text}");
    assert!(text.starts_with("HTTP/1.1 502"), "{text}");
}

#[test]
fn fuzz_an_error_answer_to_head_has_no_body() {
    let (_p, addr) = proxy(&[dead_addr()], "", "");
    let mut c = Client::connect(addr);
    c.send_raw(b"HEAD / HTTP/1.1\r\nHost: x\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n");
    let r = c.read_response_for("HEAD").unwrap();
    assert_eq!(r.status, 502);
    assert!(r.body.is_empty());
    // The next response starts right after the head: no stray body bytes in between.
    let r = c.read_response().unwrap();
    assert_eq!(r.status, 502);
    assert!(!r.body.is_empty());
}

// ---- found while writing docs/http-conformance.md -----------------------------------------

#[test]
fn conformance_interim_responses_reach_http11_clients_but_not_http10_ones() {
    let up = RawUpstream::answering(
        b"HTTP/1.1 103 Early Hints\r\nlink: </s.css>; rel=preload\r\n\r\nHTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok",
    );
    let (_p, addr) = proxy(&[up.addr()], "", "");
    let mut s = raw_client(addr);
    s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    let text = String::from_utf8_lossy(&read_all(&mut s)).to_string();
    assert!(
        text.starts_with(
            "HTTP/1.1 103 Early Hints\r\nlink: </s.css>; rel=preload\r\n\r\nHTTP/1.1 200 OK"
        ),
        "{text}"
    );
    assert!(!text.contains("100 Continue"), "{text}");
    let mut s = raw_client(addr);
    s.write_all(b"GET / HTTP/1.0\r\nHost: x\r\n\r\n").unwrap();
    let text = String::from_utf8_lossy(&read_all(&mut s)).to_string();
    assert!(text.starts_with("HTTP/1.1 200 OK"), "{text}");
}

#[test]
fn conformance_an_http10_client_gets_a_chunked_body_close_delimited() {
    let up = RawUpstream::answering(
        b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n2\r\nok\r\n6;x=1\r\n world\r\n0\r\nt: 1\r\n\r\n",
    );
    let (_p, addr) = proxy(&[up.addr()], "", "");
    let mut s = raw_client(addr);
    s.write_all(b"GET / HTTP/1.0\r\nHost: x\r\n\r\n").unwrap();
    let text = String::from_utf8_lossy(&read_all(&mut s)).to_string();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    assert!(
        !head.to_ascii_lowercase().contains("transfer-encoding"),
        "{head}"
    );
    assert_eq!(body, "ok world");
}

#[test]
fn conformance_an_absolute_form_authority_is_checked_like_a_host() {
    let up = RawUpstream::answering(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok");
    let (_p, addr) = proxy(&[up.addr()], "", "");
    for t in ["http://u@x/p", "http://:80/p", "http://x\"y/p"] {
        let mut s = raw_client(addr);
        s.write_all(format!("GET {t} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())
            .unwrap();
        let text = String::from_utf8_lossy(&read_all(&mut s)).to_string();
        assert!(text.starts_with("HTTP/1.1 400"), "{t}: {text}");
    }
    for h in ["a:b", "a:80:80", "[::1", "a]", "%zz"] {
        let mut s = raw_client(addr);
        s.write_all(format!("GET / HTTP/1.1\r\nHost: {h}\r\n\r\n").as_bytes())
            .unwrap();
        let text = String::from_utf8_lossy(&read_all(&mut s)).to_string();
        assert!(text.starts_with("HTTP/1.1 400"), "{h}: {text}");
    }
    assert!(up.requests().is_empty());
}
