//! Malformed, ambiguous and over-limit requests: each is answered by the proxy itself with
//! the right status, `server: ringway` and a closed connection, and never reaches the
//! upstream (`/__stats` stays at zero requests).

mod support;

use std::time::{Duration, Instant};

use support::{Client, Response, Rig, Upstream};

/// Small limits so every over-limit case is cheap to provoke.
const LIMITS: &str = r#"
[listeners.limits]
max_request_target_bytes = 256
max_request_head_bytes = 4096
max_request_body_bytes = 1000
max_headers = 20
request_head_timeout = "500ms"
"#;

/// Sends `raw` on a fresh connection and checks the proxy's own error answer: status
/// `want`, `server: ringway`, a short body, the connection closed, nothing forwarded.
fn rejected(raw: &[u8], want: u16) -> Response {
    let up = Upstream::start(&[]);
    let rig = Rig::simple(1, up.addr(), LIMITS);
    let mut c = rig.client();
    c.send_raw(raw);
    let r = c
        .read_response()
        .unwrap_or_else(|e| panic!("no answer to {:?}: {e}", String::from_utf8_lossy(raw)));
    check_error_answer(&mut c, &r, want, raw);
    assert_eq!(
        up.stats().requests,
        0,
        "upstream received {:?}",
        String::from_utf8_lossy(raw)
    );
    r
}

fn check_error_answer(c: &mut Client, r: &Response, want: u16, raw: &[u8]) {
    let req = String::from_utf8_lossy(raw);
    assert_eq!(r.status, want, "request {req:?} got {r:?}");
    assert_eq!(r.header("server"), Some("ringway"), "request {req:?}");
    assert!(!r.body.is_empty(), "error answers carry a short body");
    assert!(
        c.is_closed_by_peer(),
        "connection left open after {want} to {req:?}"
    );
}

#[test]
fn content_length_with_transfer_encoding_is_400() {
    rejected(
        b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\
          Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        400,
    );
}

#[test]
fn differing_content_lengths_are_400() {
    rejected(
        b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
        400,
    );
    rejected(
        b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5, 6\r\n\r\nhello!",
        400,
    );
}

#[test]
fn signed_content_length_is_400() {
    rejected(
        b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: +5\r\n\r\nhello",
        400,
    );
}

#[test]
fn transfer_encoding_not_ending_in_chunked_is_400() {
    rejected(
        b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, gzip\r\n\r\n0\r\n\r\n",
        400,
    );
}

#[test]
fn unknown_transfer_coding_is_501() {
    rejected(
        b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: foo, chunked\r\n\r\n0\r\n\r\n",
        501,
    );
}

#[test]
fn obs_fold_is_400() {
    rejected(
        b"GET / HTTP/1.1\r\nHost: x\r\nX-Folded: a\r\n b\r\n\r\n",
        400,
    );
}

#[test]
fn whitespace_before_colon_is_400() {
    rejected(b"GET / HTTP/1.1\r\nHost: x\r\nX-Bad : 1\r\n\r\n", 400);
}

#[test]
fn missing_host_on_http11_is_400() {
    rejected(b"GET / HTTP/1.1\r\nAccept: */*\r\n\r\n", 400);
}

#[test]
fn two_hosts_are_400() {
    rejected(b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400);
}

#[test]
fn target_over_limit_is_414() {
    let raw = format!("GET /{} HTTP/1.1\r\nHost: x\r\n\r\n", "t".repeat(300));
    rejected(raw.as_bytes(), 414);
}

#[test]
fn head_over_limit_is_431() {
    let pad = format!("X-Pad: {}\r\n", "p".repeat(90));
    let raw = format!("GET / HTTP/1.1\r\nHost: x\r\n{}\r\n", pad.repeat(50));
    assert!(raw.len() > 4096);
    rejected(raw.as_bytes(), 431);
}

#[test]
fn body_over_limit_is_413() {
    rejected(
        b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 2000\r\n\r\n",
        413,
    );
}

#[test]
fn invalid_chunk_size_is_400() {
    // The head may legitimately have been forwarded before the bad chunk arrived; what the
    // client sees is the contract: 400 and a close.
    let up = Upstream::start(&[]);
    let rig = Rig::simple(1, up.addr(), LIMITS);
    let mut c = rig.client();
    let raw = b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n";
    c.send_raw(raw);
    let r = c.read_response().expect("answer to a bad chunk size");
    check_error_answer(&mut c, &r, 400, raw);
}

#[test]
fn slow_request_head_is_408() {
    let up = Upstream::start(&[]);
    let rig = Rig::simple(1, up.addr(), LIMITS);
    let mut c = rig.client();
    c.set_timeout(Duration::from_secs(3));
    let t0 = Instant::now();
    c.send_raw(b"GET /slow HTTP/1.1\r\nHost: x\r\n");
    let r = c.read_response().expect("408 after request_head_timeout");
    let waited = t0.elapsed();
    check_error_answer(&mut c, &r, 408, b"GET /slow HTTP/1.1\r\nHost: x\r\n");
    assert!(
        waited >= Duration::from_millis(400) && waited < Duration::from_secs(2),
        "408 after {waited:?} with request_head_timeout = 500ms"
    );
    assert_eq!(up.stats().requests, 0);
}

#[test]
fn too_many_headers_is_431() {
    let many: String = (0..30).map(|i| format!("X-H{i}: v\r\n")).collect();
    let raw = format!("GET / HTTP/1.1\r\nHost: x\r\n{many}\r\n");
    rejected(raw.as_bytes(), 431);
}

#[test]
fn nul_in_header_value_is_400() {
    rejected(b"GET / HTTP/1.1\r\nHost: x\r\nX-Nul: a\0b\r\n\r\n", 400);
}

#[test]
fn chunked_body_over_limit_is_413_or_closed() {
    // The size is only known as the chunks arrive: the head may have been forwarded, but
    // the client must not see a success and the body must not pass the limit.
    let up = Upstream::start(&[]);
    let rig = Rig::simple(1, up.addr(), LIMITS);
    let mut c = rig.client();
    let chunk = format!("400\r\n{}\r\n", "c".repeat(1024));
    let raw = format!("POST /sha256 HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n{chunk}{chunk}0\r\n\r\n");
    let _ = c.try_send_raw(raw.as_bytes());
    match c.read_response() {
        Ok(r) => check_error_answer(&mut c, &r, 413, raw.as_bytes()),
        Err(e) => assert!(
            matches!(
                e.kind(),
                std::io::ErrorKind::UnexpectedEof | std::io::ErrorKind::ConnectionReset
            ),
            "neither 413 nor a close: {e}"
        ),
    }
}

#[test]
fn dripped_request_head_is_still_408() {
    // A slowloris that keeps sending a byte every 100 ms is cut off by the head deadline,
    // not kept alive by its activity.
    let up = Upstream::start(&[]);
    let rig = Rig::simple(1, up.addr(), LIMITS);
    let mut c = rig.client();
    c.set_timeout(Duration::from_millis(100));
    let t0 = Instant::now();
    let head = b"GET /slow HTTP/1.1\r\nHost: x\r\nX-Drip: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    for b in head.iter() {
        if c.try_send_raw(&[*b]).is_err() || t0.elapsed() > Duration::from_secs(3) {
            break;
        }
        if c.is_closed_by_peer() {
            break;
        }
        if let Ok(r) = c.read_response() {
            assert_eq!(r.status, 408, "{r:?}");
            break;
        }
    }
    let waited = t0.elapsed();
    assert!(
        waited < Duration::from_millis(1500),
        "slowloris kept its connection for {waited:?} with request_head_timeout = 500ms"
    );
    assert_eq!(up.stats().requests, 0);
}

#[test]
fn request_within_limits_still_passes() {
    // The limits above do not reject ordinary traffic.
    let up = Upstream::start(&[]);
    let rig = Rig::simple(1, up.addr(), LIMITS);
    let mut c = rig.client();
    let body = vec![b'b'; 1000];
    let r = c.request("POST", "/echo", &[], &body).expect("response");
    assert_eq!((r.status, r.body.len()), (200, 1000));
    let r = c.get(&format!("/{}", "t".repeat(200)), "x");
    assert_eq!(r.status, 200);
}

#[test]
fn chunked_applied_twice_is_400() {
    rejected(
        b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\
          Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        400,
    );
}

#[test]
fn empty_content_length_is_400() {
    rejected(
        b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length:\r\n\r\n",
        400,
    );
}

#[test]
fn invalid_header_name_is_400() {
    rejected(b"GET / HTTP/1.1\r\nHost: x\r\nX(bad): 1\r\n\r\n", 400);
}

#[test]
fn overflowing_chunk_size_is_400_or_closed() {
    let up = Upstream::start(&[]);
    let rig = Rig::simple(1, up.addr(), "");
    let mut c = rig.client();
    let raw = b"POST /sha256 HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n\
                1ffffffffffffffff\r\nabc\r\n0\r\n\r\n";
    c.send_raw(raw);
    match c.read_response() {
        Ok(r) => check_error_answer(&mut c, &r, 400, raw),
        Err(e) => panic!("no answer to an overflowing chunk size: {e}"),
    }
}

#[test]
fn chunk_data_without_crlf_is_400() {
    let up = Upstream::start(&[]);
    let rig = Rig::simple(1, up.addr(), "");
    let mut c = rig.client();
    let raw = b"POST /sha256 HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n\
                3\r\nabcXY0\r\n\r\n";
    c.send_raw(raw);
    let r = c.read_response().expect("answer to a malformed chunk");
    check_error_answer(&mut c, &r, 400, raw);
}

#[test]
fn expect_continue_over_the_body_limit_is_413_without_100() {
    let up = Upstream::start(&[]);
    let rig = Rig::simple(1, up.addr(), LIMITS);
    let mut c = rig.client();
    let raw =
        b"POST /echo HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 5000\r\n\r\n";
    c.send_raw(raw);
    let r = c.read_response().expect("answer");
    check_error_answer(&mut c, &r, 413, raw);
    assert_eq!(up.stats().requests, 0);
}

#[test]
fn error_after_a_good_pipelined_request_answers_both_in_order() {
    let up = Upstream::start(&[]);
    let rig = Rig::simple(1, up.addr(), LIMITS);
    let mut c = rig.client();
    let raw =
        b"GET /size/2 HTTP/1.1\r\nHost: x\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n";
    c.send_raw(raw);
    let r = c.read_response().expect("first response");
    assert_eq!((r.status, r.body.as_slice()), (200, &b"ab"[..]));
    let r = c.read_response().expect("second response");
    check_error_answer(&mut c, &r, 400, raw);
    assert_eq!(up.stats().requests, 1);
}

#[test]
fn large_head_under_the_default_limit_is_forwarded_whole() {
    // Default max_request_head_bytes is 65536: a 60 KiB cookie must pass, byte for byte.
    let up = Upstream::start(&[]);
    let rig = Rig::simple(1, up.addr(), "");
    let mut c = rig.client();
    let cookie: String = (0..60 * 1024)
        .map(|i| (b'a' + (i % 26) as u8) as char)
        .collect();
    c.send_raw(format!("GET /headers HTTP/1.1\r\nHost: x\r\nCookie: {cookie}\r\n\r\n").as_bytes());
    let r = c.read_response().expect("response");
    assert_eq!(r.status, 200);
    assert!(
        r.text().contains(&format!("Cookie: {cookie}\r\n")),
        "cookie altered"
    );
}

#[test]
fn chunked_http10_request_is_400() {
    rejected(
        b"POST /echo HTTP/1.0\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        400,
    );
}

#[test]
fn chunked_body_over_limit_across_reads_is_413_or_closed() {
    // As above, but the chunks arrive in separate writes, after the head was forwarded:
    // the limit holds over the whole body, not only the first read.
    let up = Upstream::start(&[]);
    let rig = Rig::simple(1, up.addr(), LIMITS);
    let mut c = rig.client();
    c.send_raw(b"POST /sha256 HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n");
    let chunk = format!("190\r\n{}\r\n", "c".repeat(400));
    for _ in 0..4 {
        std::thread::sleep(Duration::from_millis(100));
        if c.try_send_raw(chunk.as_bytes()).is_err() {
            break;
        }
    }
    let _ = c.try_send_raw(b"0\r\n\r\n");
    match c.read_response() {
        Ok(r) => check_error_answer(&mut c, &r, 413, b"(1600-byte chunked body in 4 writes)"),
        Err(e) => assert!(
            matches!(
                e.kind(),
                std::io::ErrorKind::UnexpectedEof | std::io::ErrorKind::ConnectionReset
            ),
            "neither 413 nor a close: {e}"
        ),
    }
}
