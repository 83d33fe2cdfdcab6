//! Tests of the codec: table-driven request/response cases (one per rule), chunked decoding,
//! head writing, split-consistency properties, and a replay of the fuzz target bodies.

/// `req!(name, bytes, Err(Variant))` or `req!(name, bytes, |head, buf| { asserts })`: one
/// table row of the request tables (`request`, `conformance`).
macro_rules! req {
    ($name:ident, $buf:expr, Err($err:ident)) => {
        #[test]
        fn $name() {
            let e = req_err($buf);
            assert_eq!(e, HeadError::$err, "{:?}", String::from_utf8_lossy($buf));
        }
    };
    ($name:ident, $buf:expr, |$h:ident, $b:ident| $body:block) => {
        #[test]
        fn $name() {
            let $b: &[u8] = $buf;
            let $h = req_ok($b);
            $body
        }
    };
}

/// Whether header `name` of `h` is forwarded.
fn fwd(h: &RequestHead, buf: &[u8], name: &str) -> bool {
    h.headers
        .iter()
        .find(|f| f.name.get(buf).eq_ignore_ascii_case(name.as_bytes()))
        .map(|f| f.forward)
        .unwrap_or_else(|| panic!("no header {name}"))
}

mod chunked;
mod conformance;
mod request;
mod response;
mod write;

use super::*;

/// Limits used by the tables: small enough to hit them with short inputs.
pub(super) const LIMITS: HeadLimits = HeadLimits {
    max_head_bytes: 1024,
    max_target_bytes: 64,
    max_headers: 8,
};

/// Parses a request that must be complete and span the whole buffer.
pub(super) fn req_ok(buf: &[u8]) -> RequestHead {
    let mut head = RequestHead::default();
    let r = parse_request_head(buf, &LIMITS, &mut head);
    assert_eq!(
        r,
        Ok(Parsed::Complete(buf.len())),
        "input: {:?}",
        String::from_utf8_lossy(buf)
    );
    head
}

pub(super) fn req_err(buf: &[u8]) -> HeadError {
    let mut head = RequestHead::default();
    match parse_request_head(buf, &LIMITS, &mut head) {
        Err(e) => e,
        other => panic!(
            "expected error, got {other:?} for {:?}",
            String::from_utf8_lossy(buf)
        ),
    }
}

pub(super) fn res_ok(buf: &[u8], method: Method) -> ResponseHead {
    let mut head = ResponseHead::default();
    let r = parse_response_head(buf, &LIMITS, method, &mut head);
    assert_eq!(
        r,
        Ok(Parsed::Complete(buf.len())),
        "input: {:?}",
        String::from_utf8_lossy(buf)
    );
    head
}

pub(super) fn res_err(buf: &[u8]) -> HeadError {
    let mut head = ResponseHead::default();
    match parse_response_head(buf, &LIMITS, Method::Get, &mut head) {
        Err(ResponseError(e)) => e,
        other => panic!(
            "expected error, got {other:?} for {:?}",
            String::from_utf8_lossy(buf)
        ),
    }
}

const FUZZ_SEEDS: &[&[u8]] = &[
    b"GET / HTTP/1.1\r\nHost: a\r\n\r\n",
    b"\r\nPOST /x?y=1 HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\nConnection: x-a, close\r\nX-A: 1\r\n\r\n",
    b"GET http://h:8/p HTTP/1.0\r\nConnection: keep-alive\r\nContent-Length: 5, 5\r\n\r\nhello",
    b"GET /chat HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nX-Request-Id: q\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nConnection: keep-alive, x-b\r\nX-B: 2\r\n\r\nabc",
    b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\n",
    b"HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
    b"5\r\nhello\r\n0\r\n\r\n",
    b"3;a=b\r\nabc\r\n0\r\nT: v\r\n\r\nGET",
    b"5\nhello",
    b"",
    b"\xff\xfe\r\n\r\n",
];

#[test]
fn fuzz_logic_holds_on_seed_inputs() {
    for seed in FUZZ_SEEDS {
        fuzz_logic::request_head(seed);
        fuzz_logic::response_head(seed);
        fuzz_logic::chunked(seed);
    }
}

#[test]
fn fuzz_logic_holds_on_corpus_when_present() {
    // Replays the fuzz corpus if it was generated locally (it is not committed).
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus");
    for (dir, f) in [
        ("request_head", fuzz_logic::request_head as fn(&[u8])),
        ("response_head", fuzz_logic::response_head),
        ("chunked", fuzz_logic::chunked),
    ] {
        let Ok(entries) = std::fs::read_dir(root.join(dir)) else {
            continue;
        };
        for e in entries.flatten().take(2000) {
            if let Ok(data) = std::fs::read(e.path()) {
                f(&data);
            }
        }
    }
}
