//! Black-box tests of the `ringway-upstream` binary over real TCP: every special path,
//! framing (chunked echo, HEAD, HTTP/1.0, 100-continue), keep-alive, pipelining, and the
//! fault modes. Also makes `cargo test --workspace` build the binary next to `ringway`.

#[allow(dead_code)] // shared with the dataplane harness; not every helper is used here
#[path = "../../tests/support/client.rs"]
mod client;

use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use client::Client;
use ringway_tools::upstream::pattern_byte;
use sha2::{Digest, Sha256};

/// A running upstream process, killed on drop.
struct Upstream {
    child: Child,
    addr: SocketAddr,
}

impl Upstream {
    fn start(args: &[&str]) -> Upstream {
        let mut child = Command::new(env!("CARGO_BIN_EXE_ringway-upstream"))
            .args(["--listen", "127.0.0.1:0"])
            .args(args)
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawn ringway-upstream");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("read listening line");
        let addr = line
            .trim()
            .strip_prefix("listening on ")
            .and_then(|a| a.parse().ok())
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"));
        Upstream { child, addr }
    }

    fn client(&self) -> Client {
        Client::connect(self.addr)
    }

    fn stats(&self) -> String {
        self.client().get("/__stats", "x").text()
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn pattern(n: usize) -> Vec<u8> {
    (0..n as u64).map(pattern_byte).collect()
}

#[test]
fn serves_default_body_with_name_header() {
    let up = Upstream::start(&["--name", "u1"]);
    let r = up.client().get("/", "example.com");
    assert_eq!(r.status, 200);
    assert_eq!(r.body, b"ab");
    assert_eq!(r.header("x-upstream"), Some("u1"));
    assert_eq!(r.header("content-length"), Some("2"));
}

#[test]
fn size_status_and_chunked_option_shape_the_response() {
    let up = Upstream::start(&["--chunked", "--body-size", "5", "--status", "201"]);
    let mut c = up.client();
    let r = c.get("/size/100000", "x");
    assert_eq!(r.header("transfer-encoding"), Some("chunked"));
    assert_eq!(r.body, pattern(100_000));
    let r = c.get("/status/418", "x");
    assert_eq!((r.status, r.body.as_slice()), (418, &b"abcde"[..]));
    let r = c.get("/anything?q=1", "x");
    assert_eq!((r.status, r.body.as_slice()), (201, &b"abcde"[..]));
    assert_eq!(c.get("/status/204", "x").body, b"");
    assert_eq!(c.get("/size/zz", "x").status, 400);
}

#[test]
fn echo_returns_the_body_with_the_same_framing() {
    let up = Upstream::start(&[]);
    let mut c = up.client();
    let r = c.request("POST", "/echo", &[], b"hello world").unwrap();
    assert_eq!(r.body, b"hello world");
    assert_eq!(r.header("content-length"), Some("11"));
    c.send_raw(
        b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n\
          5\r\nhello\r\n1;ext\r\n!\r\n0\r\ntrailer: 1\r\n\r\n",
    );
    let r = c.read_response().unwrap();
    assert_eq!(r.header("transfer-encoding"), Some("chunked"));
    assert_eq!(r.body, b"hello!");
}

#[test]
fn headers_returns_the_raw_request_head() {
    let up = Upstream::start(&[]);
    let head = b"GET /headers HTTP/1.1\r\nHost: h\r\nX-Odd-Case: KeepMe\r\n\r\n";
    let mut c = up.client();
    c.send_raw(head);
    assert_eq!(c.read_response().unwrap().body, head);
}

#[test]
fn sha256_streams_a_chunked_upload_and_reports_its_digest() {
    let up = Upstream::start(&[]);
    let mut c = up.client();
    c.send_raw(b"POST /sha256 HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n");
    let piece = pattern(100_003);
    let mut hasher = Sha256::new();
    for _ in 0..30 {
        c.send_raw(format!("{:x}\r\n", piece.len()).as_bytes());
        c.send_raw(&piece);
        c.send_raw(b"\r\n");
        hasher.update(&piece);
    }
    c.send_raw(b"0\r\n\r\n");
    let hex: String = hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let r = c.read_response().unwrap();
    assert_eq!(r.text(), format!("len=3000090 sha256={hex}\n"));
}

#[test]
fn stream_sends_large_chunked_bodies() {
    let up = Upstream::start(&[]);
    let r = up.client().get("/stream/3000000", "x");
    assert_eq!(r.header("transfer-encoding"), Some("chunked"));
    assert_eq!(r.body.len(), 3_000_000);
    assert_eq!(r.body, pattern(3_000_000));
}

#[test]
fn keep_alive_and_pipelining_answer_in_order_on_one_connection() {
    let up = Upstream::start(&[]);
    let mut c = up.client();
    c.send_raw(
        b"GET /size/1 HTTP/1.1\r\nHost: x\r\n\r\n\
          POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nxyz\
          GET /size/3 HTTP/1.1\r\nHost: x\r\n\r\n",
    );
    let bodies: Vec<Vec<u8>> = (0..3).map(|_| c.read_response().unwrap().body).collect();
    assert_eq!(bodies, [b"a".to_vec(), b"xyz".to_vec(), b"abc".to_vec()]);
    assert_eq!(c.get("/", "x").status, 200);
    assert_eq!(up.stats(), "requests=4 connections=1 accepted=2\n");
}

#[test]
fn http10_closes_and_head_has_no_body() {
    let up = Upstream::start(&["--body-size", "7"]);
    let mut c = up.client();
    c.send_raw(b"HEAD / HTTP/1.1\r\nHost: x\r\n\r\n");
    let r = c.read_response_for("HEAD").unwrap();
    assert_eq!((r.header("content-length"), r.body.len()), (Some("7"), 0));
    c.send_raw(b"GET /stream/5 HTTP/1.0\r\n\r\n");
    let r = c.read_response().unwrap();
    assert_eq!(r.header("content-length"), Some("5"));
    assert_eq!(r.header("connection"), Some("close"));
    assert!(c.is_closed_by_peer());
}

#[test]
fn expect_100_continue_gets_interim_response() {
    let up = Upstream::start(&[]);
    let mut c = up.client();
    c.send_raw(
        b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nExpect: 100-continue\r\n\r\n",
    );
    assert_eq!(c.read_response().unwrap().status, 100);
    c.send_raw(b"hi");
    assert_eq!(c.read_response().unwrap().body, b"hi");
}

#[test]
fn malformed_and_oversized_requests_get_4xx_and_close() {
    let up = Upstream::start(&[]);
    let mut c = up.client();
    c.send_raw(b"GET / HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n");
    assert_eq!(c.read_response().unwrap().status, 400);
    assert!(c.is_closed_by_peer());
    let mut c = up.client();
    let mut big = b"GET / HTTP/1.1\r\nx: ".to_vec();
    big.resize(70_000, b'a');
    let _ = c.try_send_raw(&big);
    assert_eq!(c.read_response().unwrap().status, 431);
}

#[test]
fn fault_refuse_prints_a_port_that_refuses() {
    let up = Upstream::start(&["--fault", "refuse"]);
    let err = TcpStream::connect(up.addr).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ConnectionRefused);
}

#[test]
fn fault_reset_before_headers_resets_after_the_request() {
    let up = Upstream::start(&["--fault", "reset-before-headers"]);
    let mut c = up.client();
    c.send_raw(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    let err = c.read_response().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ConnectionReset, "{err}");
    assert!(up.stats().starts_with("requests=1 "));
}

#[test]
fn fault_reset_mid_body_sends_half_then_resets() {
    let up = Upstream::start(&["--fault", "reset-mid-body"]);
    let mut s = TcpStream::connect(up.addr).unwrap();
    s.write_all(b"GET /size/100 HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let err = loop {
        match s.read(&mut buf) {
            Ok(0) => panic!("FIN instead of RST"),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) => break e,
        }
    };
    assert_eq!(err.kind(), ErrorKind::ConnectionReset);
    let text = String::from_utf8(got).unwrap();
    assert!(text.contains("content-length: 100\r\n"), "{text}");
    // The RST may discard unread bytes, but never more than half the body was sent.
    assert!(text.split("\r\n\r\n").nth(1).unwrap_or("").len() <= 50);
}

#[test]
fn fault_hang_never_answers() {
    let up = Upstream::start(&["--fault", "hang"]);
    let mut c = up.client();
    c.set_timeout(Duration::from_millis(300));
    c.send_raw(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    let err = c.read_response().unwrap_err();
    assert!(
        matches!(err.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut),
        "{err}"
    );
    assert_eq!(up.stats(), "requests=1 connections=1 accepted=2\n");
}

#[test]
fn fault_close_after_closes_without_announcing_it() {
    let up = Upstream::start(&["--fault", "close-after=2"]);
    let mut c = up.client();
    assert_eq!(c.get("/", "x").header("connection"), None);
    assert_eq!(c.get("/", "x").header("connection"), None);
    assert!(c.is_closed_by_peer());
}

#[test]
fn fault_error_rate_is_deterministic() {
    let up = Upstream::start(&["--fault", "error-rate=25"]);
    let mut c = up.client();
    let statuses: Vec<u16> = (0..8).map(|_| c.get("/", "x").status).collect();
    assert_eq!(statuses, [200, 200, 200, 503, 200, 200, 200, 503]);
}

#[test]
fn fault_wrong_content_length_declares_more_than_it_sends() {
    let up = Upstream::start(&["--fault", "wrong-content-length"]);
    let mut c = up.client();
    c.send_raw(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    let err = c.read_response().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::UnexpectedEof, "{err}");
}

#[test]
fn fault_bad_response_sends_a_malformed_status_line() {
    let up = Upstream::start(&["--fault", "bad-response"]);
    let mut c = up.client();
    c.send_raw(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    let err = c.read_response().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidData, "{err}");
}

#[test]
fn fault_slow_drip_and_latency_delay_the_response() {
    let up = Upstream::start(&["--fault", "slow-drip", "--drip-interval", "1ms"]);
    let start = Instant::now();
    let r = up.client().get("/size/10", "x");
    assert_eq!(r.body, pattern(10));
    assert!(
        start.elapsed() >= Duration::from_millis(50),
        "{:?}",
        start.elapsed()
    );

    let up = Upstream::start(&["--latency", "200ms"]);
    let start = Instant::now();
    assert_eq!(up.client().get("/", "x").status, 200);
    assert!(start.elapsed() >= Duration::from_millis(200));
}
