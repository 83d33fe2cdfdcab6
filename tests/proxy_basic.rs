//! The ordinary HTTP/1.1 exchange through a real `ringway`: GET, keep-alive with upstream
//! connection reuse, pipelining, HTTP/1.0, HEAD, bodiless statuses, chunked and
//! Content-Length bodies both ways, `Expect: 100-continue`, exactly which headers the
//! upstream receives, and nginx as the upstream.

mod support;

use std::time::Duration;

use support::{Client, Nginx, Rig, Upstream};

/// The header lines of the request head the upstream echoed at `/headers`.
fn received_headers(body: &[u8]) -> Vec<(String, String)> {
    String::from_utf8_lossy(body)
        .split("\r\n")
        .skip(1)
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.to_string(), v.trim().to_string()))
        .collect()
}

fn values<'a>(headers: &'a [(String, String)], name: &str) -> Vec<&'a str> {
    headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
        .collect()
}

/// Sends `raw` (a full request to `/headers`) through a fresh proxy and returns the
/// headers the upstream received.
fn forwarded(raw: &str) -> Vec<(String, String)> {
    let up = Upstream::start(&[]);
    let rig = Rig::simple(1, up.addr(), "");
    let mut c = rig.client();
    c.send_raw(raw.as_bytes());
    let r = c.read_response().expect("response");
    assert_eq!(r.status, 200, "{}", r.text());
    received_headers(&r.body)
}

#[test]
fn get_is_proxied_to_the_default_cluster() {
    let up = Upstream::start(&["--name", "a", "--body-size", "5"]);
    let rig = Rig::simple(2, up.addr(), "");
    let r = rig.client().get("/", "example.com");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("x-upstream"), Some("a"));
    assert_eq!(r.body, b"abcde");
    assert_eq!(up.stats().requests, 1);
}

#[test]
fn keep_alive_serves_many_requests_and_reuses_upstream_connections() {
    let up = Upstream::start(&["--body-size", "3"]);
    let rig = Rig::simple(1, up.addr(), "");
    let mut c = rig.client();
    for i in 0..6 {
        let r = c.get(&format!("/k{i}"), "example.com");
        assert_eq!(
            (r.status, r.body.as_slice()),
            (200, &b"abc"[..]),
            "request {i}"
        );
    }
    let s = up.stats();
    assert_eq!(s.requests, 6);
    assert!(
        s.connections < 6,
        "every request used a new upstream connection: {s:?}"
    );
}

/// Regression: large responses filled more than the driver's per-connection receive queue,
/// the throttle cancel left an `-ECANCELED` behind, and the pool took the connection for dead:
/// one new upstream connection per 256 KiB response.
#[test]
fn large_responses_reuse_the_upstream_connection() {
    let up = Upstream::start(&["--body-size", "262144"]);
    let rig = Rig::simple(1, up.addr(), "");
    let mut c = rig.client();
    for i in 0..5 {
        let r = c.get(&format!("/big{i}"), "example.com");
        assert_eq!((r.status, r.body.len()), (200, 262_144), "request {i}");
    }
    let s = up.stats();
    assert_eq!(s.requests, 5);
    assert_eq!(
        s.connections, 1,
        "the upstream connection was not reused: {s:?}"
    );
}

#[test]
fn pipelined_requests_are_answered_in_order() {
    let up = Upstream::start(&[]);
    let rig = Rig::simple(2, up.addr(), "");
    let mut c = rig.client();
    c.send_raw(
        b"GET /size/1 HTTP/1.1\r\nHost: p\r\n\r\n\
          GET /size/2 HTTP/1.1\r\nHost: p\r\n\r\n\
          GET /size/3 HTTP/1.1\r\nHost: p\r\n\r\n",
    );
    for want in [&b"a"[..], b"ab", b"abc"] {
        let r = c.read_response().expect("pipelined response");
        assert_eq!((r.status, r.body.as_slice()), (200, want));
    }
    assert_eq!(up.stats().requests, 3);
}

#[test]
fn http10_client_gets_a_response_and_a_close() {
    let up = Upstream::start(&["--body-size", "4"]);
    let rig = Rig::simple(2, up.addr(), "");
    let mut c = rig.client();
    c.send_raw(b"GET /old HTTP/1.0\r\nHost: old\r\n\r\n");
    let r = c.read_response().expect("response");
    assert_eq!((r.status, r.body.as_slice()), (200, &b"abcd"[..]));
    assert!(
        r.header("transfer-encoding").is_none(),
        "chunked sent to 1.0 client"
    );
    assert!(
        c.is_closed_by_peer(),
        "HTTP/1.0 without keep-alive must be closed"
    );
}

#[test]
fn http10_client_gets_a_chunked_upstream_body_unchunked() {
    let up = Upstream::start(&["--chunked", "--body-size", "10"]);
    let rig = Rig::simple(2, up.addr(), "");
    let mut c = rig.client();
    c.send_raw(b"GET / HTTP/1.0\r\nHost: old\r\n\r\n");
    let r = c.read_response().expect("response");
    assert_eq!(r.status, 200);
    assert!(
        r.header("transfer-encoding").is_none(),
        "chunked sent to 1.0 client"
    );
    assert_eq!(r.body, b"abcdefghij");
}

#[test]
fn head_gets_headers_and_no_body() {
    let up = Upstream::start(&[]);
    let rig = Rig::simple(2, up.addr(), "");
    let mut c = rig.client();
    c.send_raw(b"HEAD /size/100 HTTP/1.1\r\nHost: h\r\n\r\n");
    let r = c.read_response_for("HEAD").expect("HEAD response");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-length"), Some("100"));
    // No body bytes may follow: the next response on the connection must parse cleanly.
    let r = c.get("/size/2", "h");
    assert_eq!((r.status, r.body.as_slice()), (200, &b"ab"[..]));
}

#[test]
fn bodiless_204_and_304_keep_the_connection_usable() {
    let up = Upstream::start(&[]);
    let rig = Rig::simple(2, up.addr(), "");
    let mut c = rig.client();
    for status in [204u16, 304] {
        let r = c.get(&format!("/status/{status}"), "s");
        assert_eq!(r.status, status);
        assert!(r.body.is_empty());
    }
    let r = c.get("/size/3", "s");
    assert_eq!((r.status, r.body.as_slice()), (200, &b"abc"[..]));
}

#[test]
fn chunked_response_is_relayed_intact() {
    let up = Upstream::start(&["--chunked", "--body-size", "100000"]);
    let rig = Rig::simple(2, up.addr(), "");
    let mut c = rig.client();
    let r = c.get("/", "c");
    assert_eq!(r.status, 200);
    assert_eq!(r.body.len(), 100_000);
    assert!(r
        .body
        .iter()
        .enumerate()
        .all(|(i, &b)| b == b'a' + (i % 26) as u8));
    // The connection stays usable after the chunked body.
    assert_eq!(c.get("/", "c").body.len(), 100_000);
}

#[test]
fn chunked_request_body_reaches_the_upstream() {
    let up = Upstream::start(&[]);
    let rig = Rig::simple(2, up.addr(), "");
    let mut c = rig.client();
    c.send_raw(
        b"POST /echo HTTP/1.1\r\nHost: e\r\nTransfer-Encoding: chunked\r\n\r\n\
          5\r\nhello\r\n1;ext=1\r\n \r\n6\r\nworld!\r\n0\r\n\r\n",
    );
    let r = c.read_response().expect("response");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.body, b"hello world!");
    // The connection is still in sync afterwards.
    assert_eq!(c.get("/size/1", "e").body, b"a");
}

#[test]
fn content_length_request_body_reaches_the_upstream() {
    let up = Upstream::start(&[]);
    let rig = Rig::simple(2, up.addr(), "");
    let mut c = rig.client();
    let body = vec![b'x'; 200_000];
    let r = c.request("POST", "/echo", &[], &body).expect("response");
    assert_eq!(r.status, 200);
    assert_eq!(r.body, body);
    let r = c.request("PUT", "/echo", &[], b"").expect("response");
    assert_eq!((r.status, r.body.len()), (200, 0));
}

#[test]
fn expect_100_continue_gets_100_then_the_final_response() {
    let up = Upstream::start(&[]);
    let rig = Rig::simple(2, up.addr(), "");
    let mut c = rig.client();
    c.set_timeout(Duration::from_secs(3));
    c.send_raw(
        b"POST /echo HTTP/1.1\r\nHost: e\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n",
    );
    let interim = c
        .read_response()
        .expect("100 Continue before the body is sent");
    assert_eq!(interim.status, 100);
    c.send_raw(b"hello");
    let r = c.read_response().expect("final response");
    assert_eq!((r.status, r.body.as_slice()), (200, &b"hello"[..]));
}

#[test]
fn x_forwarded_for_is_added_or_appended() {
    let h = forwarded("GET /headers HTTP/1.1\r\nHost: a\r\n\r\n");
    assert_eq!(values(&h, "x-forwarded-for"), ["127.0.0.1"]);
    assert_eq!(values(&h, "x-forwarded-proto"), ["http"]);
    let h = forwarded("GET /headers HTTP/1.1\r\nHost: a\r\nX-Forwarded-For: 10.1.2.3\r\n\r\n");
    let xff = values(&h, "x-forwarded-for").join(", ");
    assert_eq!(xff, "10.1.2.3, 127.0.0.1", "headers received: {h:?}");
}

#[test]
fn x_request_id_is_made_when_absent_and_kept_when_present() {
    let h = forwarded("GET /headers HTTP/1.1\r\nHost: a\r\n\r\n");
    let ids = values(&h, "x-request-id");
    assert_eq!(ids.len(), 1, "{h:?}");
    assert!(!ids[0].is_empty());
    let h = forwarded("GET /headers HTTP/1.1\r\nHost: a\r\nX-Request-Id: abc-123\r\n\r\n");
    assert_eq!(values(&h, "x-request-id"), ["abc-123"]);
}

#[test]
fn host_is_forwarded_unchanged() {
    let h = forwarded("GET /headers HTTP/1.1\r\nHost: Example.COM:8443\r\n\r\n");
    assert_eq!(values(&h, "host"), ["Example.COM:8443"]);
}

#[test]
fn hop_by_hop_headers_are_not_forwarded() {
    let h = forwarded(
        "GET /headers HTTP/1.1\r\nHost: a\r\n\
         Connection: keep-alive, X-Hop-Secret, Upgrade, HTTP2-Settings\r\n\
         Keep-Alive: timeout=5\r\nTE: trailers\r\nTrailer: X-Checksum\r\n\
         Proxy-Connection: keep-alive\r\nX-Hop-Secret: 1\r\nUpgrade: h2c\r\n\
         HTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\nX-End-To-End: kept\r\n\r\n",
    );
    for name in [
        "connection",
        "keep-alive",
        "te",
        "trailer",
        "proxy-connection",
        "x-hop-secret",
        "upgrade",
        "http2-settings",
    ] {
        assert!(
            values(&h, name).is_empty(),
            "{name} was forwarded; upstream received {h:?}"
        );
    }
    assert_eq!(values(&h, "x-end-to-end"), ["kept"]);
}

#[test]
fn nginx_upstream_serves_through_the_proxy() {
    let Some(nginx) = Nginx::start() else { return };
    let rig = Rig::simple(2, nginx.addr(), "");
    let mut c = rig.client();
    let r = c.get("/", "n");
    assert_eq!((r.status, r.body.as_slice()), (200, &b"ok"[..]));
    let direct = Client::connect(nginx.addr()).get("/files/1m.bin", "n");
    assert_eq!(direct.body.len(), 1024 * 1024);
    let r = c.get("/files/1m.bin", "n");
    assert_eq!(r.status, 200);
    assert!(
        r.body == direct.body,
        "1 MiB file differs through the proxy"
    );
}

#[test]
fn pipelined_bodies_and_gets_stay_in_sync() {
    let up = Upstream::start(&[]);
    let rig = Rig::simple(2, up.addr(), "");
    let mut c = rig.client();
    c.send_raw(
        b"POST /echo HTTP/1.1\r\nHost: p\r\nContent-Length: 3\r\n\r\none\
          POST /echo HTTP/1.1\r\nHost: p\r\nTransfer-Encoding: chunked\r\n\r\n3\r\ntwo\r\n0\r\n\r\n\
          GET /size/5 HTTP/1.1\r\nHost: p\r\n\r\n",
    );
    for want in [&b"one"[..], b"two", b"abcde"] {
        let r = c.read_response().expect("pipelined response");
        assert_eq!((r.status, r.body.as_slice()), (200, want));
    }
}

#[test]
fn fifty_pipelined_requests_are_answered_in_order() {
    let up = Upstream::start(&[]);
    let rig = Rig::simple(1, up.addr(), "");
    let mut c = rig.client();
    let reqs: String = (1..=50)
        .map(|n| format!("GET /size/{n} HTTP/1.1\r\nHost: p\r\n\r\n"))
        .collect();
    c.send_raw(reqs.as_bytes());
    for n in 1..=50 {
        let r = c.read_response().expect("pipelined response");
        assert_eq!((r.status, r.body.len()), (200, n), "response {n}");
    }
}

#[test]
fn connection_close_request_gets_a_close() {
    let up = Upstream::start(&[]);
    let rig = Rig::simple(2, up.addr(), "");
    let mut c = rig.client();
    c.send_raw(b"GET / HTTP/1.1\r\nHost: c\r\nConnection: close\r\n\r\n");
    let r = c.read_response().expect("response");
    assert_eq!(r.status, 200);
    assert!(c.is_closed_by_peer());
}

#[test]
fn http10_keep_alive_client_is_kept_alive() {
    let up = Upstream::start(&["--body-size", "2"]);
    let rig = Rig::simple(2, up.addr(), "");
    let mut c = rig.client();
    for _ in 0..2 {
        c.send_raw(b"GET / HTTP/1.0\r\nHost: old\r\nConnection: keep-alive\r\n\r\n");
        let r = c.read_response().expect("response");
        assert_eq!((r.status, r.body.as_slice()), (200, &b"ab"[..]));
        assert!(
            r.header("connection")
                .is_some_and(|v| v.eq_ignore_ascii_case("keep-alive")),
            "a kept-alive 1.0 response must say so: {r:?}"
        );
    }
}

#[test]
fn request_target_and_repeated_headers_reach_the_upstream_unchanged() {
    let up = Upstream::start(&[]);
    let rig = Rig::simple(1, up.addr(), "");
    let mut c = rig.client();
    c.send_raw(
        b"GET /headers?a=1&b=%2F%20x HTTP/1.1\r\nHost: a\r\nX-Multi: one\r\n\
          X-Multi: two\r\nX-Empty:\r\n\r\n",
    );
    let r = c.read_response().expect("response");
    let text = r.text();
    assert!(
        text.starts_with("GET /headers?a=1&b=%2F%20x HTTP/1.1\r\n"),
        "{text:?}"
    );
    let h = received_headers(&r.body);
    assert_eq!(values(&h, "x-multi"), ["one", "two"]);
    assert_eq!(values(&h, "x-empty"), [""]);
}

#[test]
fn uppercase_chunked_coding_is_accepted() {
    let up = Upstream::start(&[]);
    let rig = Rig::simple(2, up.addr(), "");
    let mut c = rig.client();
    c.send_raw(
        b"POST /echo HTTP/1.1\r\nHost: e\r\nTransfer-Encoding: Chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n",
    );
    let r = c.read_response().expect("response");
    assert_eq!((r.status, r.body.as_slice()), (200, &b"ok"[..]));
}

#[test]
fn client_gone_mid_response_does_not_poison_the_pool() {
    // The first client leaves before its (slow) response arrives; the upstream connection
    // that still carries that response must not serve the next request.
    let up = Upstream::start(&["--latency", "300ms"]);
    let rig = Rig::simple(1, up.addr(), "");
    let mut gone = rig.client();
    gone.send_raw(b"GET /size/7 HTTP/1.1\r\nHost: g\r\n\r\n");
    drop(gone);
    std::thread::sleep(Duration::from_millis(50));
    let mut c = rig.client();
    for want in [&b"abc"[..], b"abcd"] {
        let r = c.get(&format!("/size/{}", want.len()), "g");
        assert_eq!((r.status, r.body.as_slice()), (200, want));
    }
    std::thread::sleep(Duration::from_millis(400));
    let r = c.get("/size/2", "g");
    assert_eq!((r.status, r.body.as_slice()), (200, &b"ab"[..]));
}

#[test]
fn many_concurrent_clients_are_all_served() {
    let up = Upstream::start(&["--body-size", "64"]);
    let rig = Rig::simple(2, up.addr(), "");
    let listen = rig.listen;
    let threads: Vec<_> = (0..32)
        .map(|t| {
            std::thread::spawn(move || {
                let mut c = Client::connect(listen);
                for i in 0..10 {
                    let r = c.get(&format!("/c{t}/{i}"), "c");
                    assert_eq!((r.status, r.body.len()), (200, 64));
                }
            })
        })
        .collect();
    for t in threads {
        t.join().expect("client thread");
    }
    assert_eq!(up.stats().requests, 320);
}

#[test]
fn request_split_into_single_bytes_is_reassembled() {
    let up = Upstream::start(&[]);
    let rig = Rig::simple(1, up.addr(), "");
    let mut c = rig.client();
    let raw = b"POST /echo HTTP/1.1\r\nHost: s\r\nTransfer-Encoding: chunked\r\n\r\n\
                4;x=y\r\nabcd\r\n2\r\nef\r\n0\r\nX-Trailer: t\r\n\r\n";
    for b in raw.iter() {
        c.send_raw(&[*b]);
        std::thread::sleep(Duration::from_micros(500));
    }
    let r = c.read_response().expect("response");
    assert_eq!((r.status, r.body.as_slice()), (200, &b"abcdef"[..]));
    assert_eq!(c.get("/size/1", "s").body, b"a");
}

#[test]
fn sequential_megabyte_bodies_on_one_connection() {
    let up = Upstream::start(&[]);
    let rig = Rig::simple(2, up.addr(), "");
    let mut c = rig.client();
    for i in 0..8 {
        let n = 1024 * 1024 + i * 7;
        let r = c.get(&format!("/size/{n}"), "m");
        assert_eq!((r.status, r.body.len()), (200, n), "response {i}");
        assert!(r
            .body
            .iter()
            .enumerate()
            .all(|(j, &b)| b == b'a' + (j % 26) as u8));
    }
}

#[test]
fn websocket_upgrade_request_is_forwarded_and_a_200_keeps_http() {
    let up = Upstream::start(&[]);
    let rig = Rig::simple(1, up.addr(), "");
    let mut c = rig.client();
    c.send_raw(
        b"GET /headers HTTP/1.1\r\nHost: w\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
          Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
    );
    let r = c.read_response().expect("response");
    assert_eq!(r.status, 200);
    let h = received_headers(&r.body);
    assert_eq!(
        values(&h, "upgrade"),
        ["websocket"],
        "upstream received {h:?}"
    );
    assert!(
        values(&h, "connection")
            .iter()
            .any(|v| v.to_ascii_lowercase().contains("upgrade")),
        "upstream received {h:?}"
    );
    // No 101: the connection goes on as HTTP.
    assert_eq!(c.get("/size/2", "w").body, b"ab");
}

/// A keep-alive connection idle past a slice parks (no task, a poll on the socket); the next
/// request on it still gets its answer, and the connection stays counted once.
#[test]
fn a_parked_idle_connection_serves_the_next_request() {
    let up = Upstream::start(&["--body-size", "3"]);
    let rig = Rig::simple(1, up.addr(), "");
    let mut c = rig.client();
    assert_eq!(c.get("/before", "example.com").status, 200);
    std::thread::sleep(std::time::Duration::from_millis(700));
    for i in 0..3 {
        let r = c.get(&format!("/after{i}"), "example.com");
        assert_eq!((r.status, r.body.as_slice()), (200, &b"abc"[..]));
        std::thread::sleep(std::time::Duration::from_millis(300));
    }
    let metrics = rig.proxy.admin_get("/metrics").text();
    let active = metrics
        .lines()
        .find(|l| l.starts_with("ringway_downstream_connections_active"))
        .and_then(|l| l.rsplit(' ').next())
        .unwrap_or("?")
        .to_owned();
    assert_eq!(active, "1", "{metrics}");
}

fn active_connections(rig: &Rig) -> String {
    let metrics = rig.proxy.admin_get("/metrics").text();
    metrics
        .lines()
        .find(|l| l.starts_with("ringway_downstream_connections_active"))
        .and_then(|l| l.rsplit(' ').next())
        .unwrap_or("?")
        .to_owned()
}

/// Parked connections are closed at their keep-alive idle deadline, and one the client closes
/// while parked is released (the active gauge returns to 0).
#[test]
fn parked_connections_close_at_the_idle_deadline_and_on_client_close() {
    let up = Upstream::start(&["--body-size", "3"]);
    let rig = Rig::simple(1, up.addr(), "[listeners.limits]\nidle_timeout = \"1s\"\n");
    let mut kept = rig.client();
    let mut closed_by_client = rig.client();
    assert_eq!(kept.get("/a", "x").status, 200);
    assert_eq!(closed_by_client.get("/b", "x").status, 200);
    std::thread::sleep(std::time::Duration::from_millis(500)); // both parked now
    drop(closed_by_client);
    std::thread::sleep(std::time::Duration::from_millis(400));
    assert_eq!(
        active_connections(&rig),
        "1",
        "the client-closed one is released"
    );
    // The deadline (1 s after the last request) closes the other within a sweep.
    kept.set_timeout(std::time::Duration::from_secs(3));
    let t0 = std::time::Instant::now();
    assert!(kept.is_closed_by_peer());
    assert!(
        t0.elapsed() < std::time::Duration::from_secs(2),
        "{:?}",
        t0.elapsed()
    );
    assert_eq!(active_connections(&rig), "0");
}

/// Hundreds of parked connections each get their next request answered, in any order, and
/// bytes that arrive as a connection parks are never lost.
#[test]
fn many_parked_connections_all_serve_their_next_request() {
    let up = Upstream::start(&["--body-size", "3"]);
    let rig = Rig::simple(2, up.addr(), "");
    let mut clients: Vec<_> = (0..300).map(|_| rig.client()).collect();
    for (i, c) in clients.iter_mut().enumerate() {
        assert_eq!(c.get(&format!("/first{i}"), "x").status, 200);
    }
    assert_eq!(active_connections(&rig), "300");
    std::thread::sleep(std::time::Duration::from_millis(700));
    // Second requests in reverse order, some of them right as the connection would park.
    for (i, c) in clients.iter_mut().enumerate().rev() {
        let r = c.get(&format!("/second{i}"), "x");
        assert_eq!(
            (r.status, r.body.as_slice()),
            (200, &b"abc"[..]),
            "client {i}"
        );
    }
    for round in 0..5u64 {
        std::thread::sleep(std::time::Duration::from_millis(230 + round * 10));
        for (i, c) in clients.iter_mut().enumerate().step_by(7) {
            let r = c.get(&format!("/race{round}-{i}"), "x");
            assert_eq!(r.status, 200, "client {i} round {round}");
        }
    }
    assert_eq!(active_connections(&rig), "300");
    drop(clients);
    std::thread::sleep(std::time::Duration::from_millis(600));
    assert_eq!(active_connections(&rig), "0");
}

fn metric_sum(rig: &Rig, prefix: &str) -> f64 {
    rig.proxy
        .admin_get("/metrics")
        .text()
        .lines()
        .filter(|l| l.starts_with(prefix))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// Large Content-Length bodies are spliced (socket → pipe → socket); interleaved with small
/// responses on one client connection every body arrives whole and in order, and the
/// upstream connection is reused afterwards (nothing left behind in it).
#[test]
fn spliced_large_bodies_interleave_with_small_ones_and_keep_the_upstream_connection() {
    let up = Upstream::start(&[]);
    let rig = Rig::simple(1, up.addr(), "");
    let mut c = rig.client();
    for (i, size) in [300_000usize, 65_536 + 100, 2, 1_000_000, 5, 262_144]
        .into_iter()
        .enumerate()
    {
        let r = c.get(&format!("/size/{size}"), "x");
        assert_eq!(r.status, 200, "request {i}");
        assert_eq!(r.body.len(), size, "request {i}");
        let want: Vec<u8> = (0..size).map(|j| b'a' + (j % 26) as u8).collect();
        assert!(r.body == want, "request {i}: body differs");
    }
    assert_eq!(
        metric_sum(
            &rig,
            "ringway_upstream_connects_total{cluster=\"web\",result=\"ok\"}"
        ),
        1.0,
        "one upstream connection served all six"
    );
    // Connection state lives in the page-backed slab (a heap fallback is logged once).
    let log = rig.proxy.stderr_text();
    assert!(!log.contains("does not fit a slab block"), "{log}");
}
