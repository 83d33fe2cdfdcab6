//! The differential fuzz target of the proxy loop: the real runtime (one worker, io_uring
//! driver, listener, exchange, pool) runs in this process in front of a recording upstream;
//! each input is a client byte stream and an upstream response byte stream, and what each
//! side receives is read back with an independent strict reader (`strict`).
//!
//! ```text
//! input = [len: u16 BE][client bytes: len][upstream response bytes: rest]
//! client ──bytes, then half-close──▶ ringway ──▶ recording upstream (answers `response`
//!        ◀──────── responses ───────         ◀── once it has a head, then half-closes)
//! ```
//!
//! Invariants checked on every input:
//! - what the upstream receives on each connection is strict, unambiguous HTTP/1.1 (one
//!   Content-Length or one chunked Transfer-Encoding, token names, CRLF lines, no forbidden
//!   trailers), possibly ending in one truncated message (a body cut by a framing error);
//! - every message the upstream receives is one of the client's requests (same method and
//!   target, in origin-form): a message the client never sent as a request is one smuggled
//!   inside another; and there are at most two per client request (one re-send on a pooled
//!   connection that turned out dead);
//! - what the client receives is strict HTTP/1.1 responses, no more of them than it sent
//!   requests (plus one answer to a malformed one);
//! - the proxy closes the connection within [`HANG_LIMIT`] of the client's half-close: no hang;
//! - no panic (the fuzz build aborts on one).
//!
//! The same function replays seeds in `cargo test` (see the tests below).
// Fuzz scaffolding, off every hot path: std threads and Mutexes are fine here.
#![allow(clippy::disallowed_types)]

pub mod strict;

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use strict::{read_stream, Kind, Tail};

/// Longest the proxy may take to close a client connection after the client half-closed.
pub const HANG_LIMIT: Duration = Duration::from_secs(5);

/// One upstream connection's received bytes.
#[derive(Default)]
struct Recorded {
    bytes: Vec<u8>,
}

#[derive(Default)]
struct UpstreamState {
    response: Vec<u8>,
    conns: Vec<Arc<Mutex<Recorded>>>,
}

struct Harness {
    proxy: SocketAddr,
    upstream: Arc<Mutex<UpstreamState>>,
    /// Keeps the runtime alive for the process.
    _running: crate::runtime::Running,
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or(0)
}

fn start_upstream(state: Arc<Mutex<UpstreamState>>) -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").expect("fuzz upstream bind");
    let addr = l.local_addr().expect("fuzz upstream address");
    std::thread::spawn(move || {
        for c in l.incoming() {
            let Ok(c) = c else { continue };
            let rec = Arc::new(Mutex::new(Recorded::default()));
            let response = {
                let mut s = state.lock().expect("fuzz upstream state");
                s.conns.push(rec.clone());
                s.response.clone()
            };
            std::thread::spawn(move || serve_upstream(c, &rec, &response));
        }
    });
    addr
}

/// Records everything; once a head has arrived, answers `response` and half-closes.
fn serve_upstream(mut c: TcpStream, rec: &Mutex<Recorded>, response: &[u8]) {
    let _ = c.set_read_timeout(Some(HANG_LIMIT));
    let mut answered = false;
    let mut b = [0u8; 16384];
    loop {
        let n = match c.read(&mut b) {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        let mut r = rec.lock().expect("fuzz record");
        r.bytes.extend_from_slice(&b[..n]);
        if !answered && r.bytes.windows(4).any(|w| w == b"\r\n\r\n") {
            drop(r);
            answered = true;
            let _ = c.write_all(response);
            let _ = c.shutdown(Shutdown::Write);
        }
    }
}

fn harness() -> &'static Harness {
    static H: OnceLock<Harness> = OnceLock::new();
    H.get_or_init(|| {
        let state = Arc::new(Mutex::new(UpstreamState::default()));
        let up = start_upstream(state.clone());
        let (listen, admin) = (free_port(), free_port());
        let text = format!(
            "[runtime]\nworkers = 1\ndrain_timeout = \"0s\"\n[runtime.io]\nrecv_buffers = 256\n\n\
             [admin]\nbind = \"127.0.0.1:{admin}\"\n\n\
             [[listeners]]\nname = \"fuzz\"\nbind = \"127.0.0.1:{listen}\"\ncluster = \"up\"\n\
             \x20 [listeners.limits]\n  request_head_timeout = \"1s\"\n  idle_timeout = \"1s\"\n  stream_idle_timeout = \"1s\"\n\n\
             [[clusters]]\nname = \"up\"\nendpoints = [\"{up}\"]\nconnect_timeout = \"1s\"\n"
        );
        let config = Arc::new(crate::config::parse(&text).expect("fuzz config"));
        let endpoints = Arc::new(vec![vec![up]]);
        let running = crate::runtime::start(
            config,
            endpoints,
            1,
            Arc::new(Mutex::new(text)),
            Arc::new(crate::tls::TlsSet::empty()),
        )
            .expect("fuzz runtime");
        Harness {
            proxy: SocketAddr::from(([127, 0, 0, 1], listen)),
            upstream: state,
            _running: running,
        }
    })
}

/// Runs one input (see the module doc) and checks every invariant; panics on a violation.
pub fn exchange(data: &[u8]) {
    let Some((len, rest)) = data.split_first_chunk::<2>() else {
        return;
    };
    let n = usize::from(u16::from_be_bytes(*len)).min(rest.len());
    let (request, response) = rest.split_at(n);
    if request.is_empty() {
        return;
    }
    let h = harness();
    let first_conn = {
        let mut s = h.upstream.lock().expect("fuzz upstream state");
        s.response = response.to_vec();
        s.conns.len()
    };
    let mut c = match TcpStream::connect(h.proxy) {
        Ok(c) => c,
        Err(_) => return, // listener not up yet (first call races the runtime start)
    };
    let _ = c.set_read_timeout(Some(HANG_LIMIT));
    let _ = c.write_all(request);
    let _ = c.shutdown(Shutdown::Write);
    let started = Instant::now();
    let mut got = Vec::new();
    let mut b = [0u8; 16384];
    loop {
        match c.read(&mut b) {
            Ok(0) => break,
            Ok(k) => got.extend_from_slice(&b[..k]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break,
            Err(e) => panic!(
                "the proxy did not close the connection within {HANG_LIMIT:?} of the client's \
                 half-close ({e}); request {request:?}"
            ),
        }
        assert!(
            started.elapsed() < HANG_LIMIT * 2,
            "the proxy keeps sending"
        );
    }
    // Let the upstream side settle (the proxy may still be closing its upstream sockets).
    std::thread::sleep(Duration::from_millis(2));
    let conns: Vec<Vec<u8>> = {
        let s = h.upstream.lock().expect("fuzz upstream state");
        s.conns[first_conn..]
            .iter()
            .map(|r| r.lock().expect("fuzz record").bytes.clone())
            .collect()
    };
    check(request, response, &conns, &got);
}

/// The invariants of the module doc over one exchange's bytes.
fn check(request: &[u8], response: &[u8], upstream: &[Vec<u8>], client_got: &[u8]) {
    let (sent, _) = read_stream(request, Kind::Request, &[]);
    let mut forwarded = 0;
    for bytes in upstream {
        let (msgs, tail) = read_stream(bytes, Kind::Request, &[]);
        if let Tail::Invalid(why) = tail {
            panic!(
                "the upstream received a non-strict message ({why}): {:?}\nclient sent {:?}",
                String::from_utf8_lossy(bytes),
                String::from_utf8_lossy(request)
            );
        }
        for m in &msgs {
            assert!(
                sent.iter().any(|s| s.start == m.start && s.target == m.target),
                "the upstream received a request the client never sent (smuggling): {:?}\nclient sent {:?}",
                String::from_utf8_lossy(bytes),
                String::from_utf8_lossy(request)
            );
        }
        forwarded += msgs.len();
    }
    assert!(
        forwarded <= 2 * sent.len(),
        "{forwarded} messages upstream for {} requests",
        sent.len()
    );
    let head_methods: Vec<bool> = sent.iter().map(|m| m.start == b"HEAD").collect();
    let (answers, tail) = read_stream(client_got, Kind::Response, &head_methods);
    if let Tail::Invalid(why) = tail {
        panic!(
            "the client received a non-strict response ({why}): {:?}\nclient sent {request:?}\nupstream answered {response:?}",
            String::from_utf8_lossy(client_got)
        );
    }
    assert!(
        answers.len() <= sent.len() + 1,
        "{} responses to {} requests: {:?}",
        answers.len(),
        sent.len(),
        String::from_utf8_lossy(client_got)
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(request: &[u8], response: &[u8]) -> Vec<u8> {
        let mut v = (request.len() as u16).to_be_bytes().to_vec();
        v.extend_from_slice(request);
        v.extend_from_slice(response);
        v
    }

    const OK: &[u8] = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";

    /// The seeds of `fuzz/seeds/proxy_exchange`, replayed through the real proxy.
    #[test]
    fn seeds_hold_every_invariant() {
        let cases: &[(&[u8], &[u8])] = &[
            (b"GET / HTTP/1.1\r\nHost: a\r\n\r\n", OK),
            (b"GET / HTTP/1.1\r\nHost: a\r\n\r\nGET /2 HTTP/1.1\r\nHost: a\r\n\r\n", OK),
            (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc", OK),
            (b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n", OK),
            // Smuggling attempts: CL.TE, TE.CL, duplicate CL, obfuscated TE.
            (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nG", OK),
            (b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n8\r\nSMUGGLED\r\n0\r\n\r\n", OK),
            (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 5\r\n\r\nabcde", OK),
            (b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: xchunked\r\n\r\n0\r\n\r\n", OK),
            (b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding : chunked\r\n\r\n0\r\n\r\n", OK),
            (b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\nContent-Length: 9\r\n\r\n", OK),
            (b"GET /\r\n\r\n", OK),
            (b"GET http://b/x HTTP/1.1\r\nHost: a\r\n\r\n", OK),
            // Bad upstream answers.
            (b"GET / HTTP/1.1\r\nHost: a\r\n\r\n", b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\ntransfer-encoding: chunked\r\n\r\n0\r\n\r\n"),
            (b"GET / HTTP/1.1\r\nHost: a\r\n\r\n", b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nshort"),
            (b"GET / HTTP/1.1\r\nHost: a\r\n\r\n", b"garbage\r\n\r\n"),
            (b"HEAD / HTTP/1.1\r\nHost: a\r\n\r\n", b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\n"),
            (b"GET / HTTP/1.1\r\nHost: a\r\n\r\n", b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n"),
            (b"GET / HTTP/1.1\r\nHost: a\r\n\r\n", b"HTTP/1.1 200 OK\r\n\r\nclose-delimited body"),
        ];
        for (req, resp) in cases {
            exchange(&input(req, resp));
        }
    }

    #[test]
    fn the_checker_flags_two_messages_on_one_upstream_connection() {
        let two =
            b"GET / HTTP/1.1\r\nHost: a\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n".to_vec();
        let r = std::panic::catch_unwind(|| {
            check(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n", OK, &[two], b"")
        });
        assert!(r.is_err());
    }
}
