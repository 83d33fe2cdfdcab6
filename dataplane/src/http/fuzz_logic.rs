//! Bodies of the fuzz targets in `fuzz/`, kept in the library so a stable unit test can replay
//! inputs. Each function panics (assertion) only when the codec breaks an invariant:
//! - parsing a prefix gives `Partial`, the same head, or an error only when the whole errs too;
//! - every span of a complete head lies inside it, header lines are adjacent;
//! - a forwarded head re-parses to the same method, target, version, Host and framing
//!   (the anti-smuggling property);
//! - the chunked decoder gives the same outcome whole, byte by byte and in random splits, and
//!   decodes any well-formed encoding of the input exactly.
//!
//! Not for the hot path: these allocate freely.

use std::net::{IpAddr, Ipv4Addr};

use super::{
    parse_request_head, parse_response_head, request_segments, response_segments, write_segments,
    ChunkedDecoder, ChunkedError, HeadLimits, Method, Parsed, RequestExtras, RequestHead,
    ResponseExtras, ResponseHead, Span,
};

const LIMITS: HeadLimits = HeadLimits {
    max_head_bytes: 8192,
    max_target_bytes: 1024,
    max_headers: 64,
};
const ROOMY: HeadLimits = HeadLimits {
    max_head_bytes: 1 << 20,
    max_target_bytes: 1 << 20,
    max_headers: 256,
};

/// Split points to try: all of them for short inputs, about 64 spread ones otherwise.
fn split_points(len: usize, extra: Option<usize>) -> impl Iterator<Item = usize> {
    let step = (len / 64).max(1);
    (0..len)
        .step_by(step)
        .chain(extra.into_iter().flat_map(|n| [n.saturating_sub(1), n]))
        .filter(move |&k| k <= len)
}

fn check_span(s: Span, head_len: u32) {
    assert!(
        s.start <= s.end && s.end <= head_len,
        "span {s:?} outside head {head_len}"
    );
}

pub fn request_head(data: &[u8]) {
    let mut whole = RequestHead::default();
    let r = parse_request_head(data, &LIMITS, &mut whole);
    let mut part = RequestHead::default();
    let complete_len = match r {
        Ok(Parsed::Complete(n)) => Some(n),
        _ => None,
    };
    for k in split_points(data.len(), complete_len) {
        let p = parse_request_head(data.get(..k).unwrap_or_default(), &LIMITS, &mut part);
        match (p, r) {
            (Ok(Parsed::Partial), Ok(Parsed::Complete(n))) => assert!(k < n, "partial at {k}"),
            (Ok(Parsed::Partial), _) | (Err(_), Err(_)) => {}
            (Ok(Parsed::Complete(n)), Ok(Parsed::Complete(m))) => {
                assert_eq!(n, m);
                assert_eq!(part, whole);
            }
            (p, r) => panic!("prefix {k}: {p:?}, whole: {r:?}"),
        }
    }
    let Ok(Parsed::Complete(n)) = r else { return };
    assert_eq!(whole.head_len as usize, n);
    assert!(whole
        .request_line
        .get(data)
        .starts_with(whole.method_span.get(data)));
    assert_eq!(whole.request_line.start, whole.method_span.start);
    for s in [
        whole.request_line,
        whole.method_span,
        whole.target,
        whole.path,
    ] {
        check_span(s, whole.head_len);
    }
    let mut end = whole.request_line.end;
    for h in &whole.headers {
        assert_eq!(h.line.start, end, "header lines must be adjacent");
        end = h.line.end;
        check_span(h.line, whole.head_len);
        assert!(h.line.start <= h.name.start && h.value.end <= h.line.end);
    }
    assert_eq!(end + 2, whole.head_len);

    // Round trip: what we forward must mean the same to the upstream.
    let (mut added, mut segs, mut out) = (Vec::new(), Vec::new(), Vec::new());
    let extras = RequestExtras {
        client_ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
        proto: "http",
        request_id: Some(b"fuzz-id"),
    };
    request_segments(&whole, data, &extras, &mut added, &mut segs);
    write_segments(&segs, data, &added, &mut out);
    let mut again = RequestHead::default();
    let r2 = parse_request_head(&out, &ROOMY, &mut again);
    assert_eq!(
        r2,
        Ok(Parsed::Complete(out.len())),
        "forwarded head must parse"
    );
    assert_eq!(again.method, whole.method);
    assert_eq!(again.version_minor, whole.version_minor);
    assert_eq!(again.framing, whole.framing);
    assert_eq!(again.content_length, whole.content_length);
    assert_eq!(again.websocket_upgrade, whole.websocket_upgrade);
    match whole.authority {
        // Absolute-form goes out in origin-form, the authority as Host (RFC 9112 §3.2.2).
        Some(authority) => {
            assert_eq!(again.authority, None);
            assert_eq!(again.host.map(|h| h.get(&out)), Some(authority.get(data)));
            let path = whole.path.get(data);
            if !path.is_empty() {
                assert_eq!(again.path.get(&out), path);
            }
            assert_eq!(
                again.query.map(|q| q.get(&out)),
                whole.query.map(|q| q.get(data))
            );
        }
        None => {
            assert_eq!(again.target.get(&out), whole.target.get(data));
            assert_eq!(
                again.host.map(|h| h.get(&out)),
                whole.host.map(|h| h.get(data))
            );
        }
    }
    assert!(!again.h2c_upgrade || whole.h2c_upgrade);
}

pub fn response_head(data: &[u8]) {
    let method = match data.first() {
        Some(b) if b % 4 == 0 => Method::Head,
        _ => Method::Get,
    };
    let mut whole = ResponseHead::default();
    let r = parse_response_head(data, &LIMITS, method, &mut whole);
    let complete_len = match r {
        Ok(Parsed::Complete(n)) => Some(n),
        _ => None,
    };
    let mut part = ResponseHead::default();
    for k in split_points(data.len(), complete_len) {
        let p = parse_response_head(
            data.get(..k).unwrap_or_default(),
            &LIMITS,
            method,
            &mut part,
        );
        match (p, r) {
            (Ok(Parsed::Partial), Ok(Parsed::Complete(n))) => assert!(k < n, "partial at {k}"),
            (Ok(Parsed::Partial), _) | (Err(_), Err(_)) => {}
            (Ok(Parsed::Complete(n)), Ok(Parsed::Complete(m))) => {
                assert_eq!(n, m);
                assert_eq!(part, whole);
            }
            (p, r) => panic!("prefix {k}: {p:?}, whole: {r:?}"),
        }
    }
    let Ok(Parsed::Complete(_)) = r else { return };
    check_span(whole.status_line, whole.head_len);
    assert!(whole.status_line.get(data).starts_with(b"HTTP/1."));
    assert!((100..=599).contains(&whole.status));
    let (mut added, mut segs, mut out) = (Vec::new(), Vec::new(), Vec::new());
    let extras = ResponseExtras {
        close: data.len() % 2 == 0,
        keep_alive_http10: false,
    };
    response_segments(&whole, &extras, &mut added, &mut segs);
    write_segments(&segs, data, &added, &mut out);
    let mut again = ResponseHead::default();
    let r2 = parse_response_head(&out, &ROOMY, method, &mut again);
    assert_eq!(
        r2,
        Ok(Parsed::Complete(out.len())),
        "forwarded head must parse"
    );
    assert_eq!(again.status, whole.status);
    assert_eq!(again.framing, whole.framing);
}

/// Outcome of feeding `data` in pieces of the sizes `next` yields.
fn run_chunked(
    data: &[u8],
    mut next: impl FnMut() -> usize,
) -> (Result<usize, ChunkedError>, bool, u64) {
    let mut d = ChunkedDecoder::new();
    let mut off = 0;
    while off < data.len() {
        let n = next().clamp(1, data.len() - off);
        let piece = data.get(off..off + n).unwrap_or_default();
        match d.feed(piece) {
            Ok(c) => {
                assert!(c <= n);
                off += c;
                if c < n || d.is_done() {
                    assert!(d.is_done());
                    break;
                }
            }
            Err(e) => return (Err(e), false, d.data_bytes()),
        }
    }
    (Ok(off), d.is_done(), d.data_bytes())
}

/// Tiny deterministic generator for split sizes.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

pub fn chunked(data: &[u8]) {
    let whole = run_chunked(data, || usize::MAX);
    let bytewise = run_chunked(data, || 1);
    assert_eq!(whole, bytewise, "byte-at-a-time differs from whole");
    let seed = data.iter().fold(0x9e37_79b9_7f4a_7c15u64, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    });
    let mut rng = XorShift(seed | 1);
    let random = run_chunked(data, || (rng.next() % 17) as usize + 1);
    assert_eq!(whole, random, "random split differs from whole");

    // A well-formed encoding of `data` must decode exactly, and stop before what follows.
    let mut enc = Vec::new();
    let mut rest = data;
    let mut i = 0usize;
    while !rest.is_empty() {
        let n = (usize::from(rest.first().copied().unwrap_or(1)) % 7 + 1).min(rest.len());
        let (chunk, tail) = rest.split_at(n);
        if i % 3 == 1 {
            enc.extend_from_slice(format!("{n:X} ; name=\"v\\\"al\"; flag\r\n").as_bytes());
        } else {
            enc.extend_from_slice(format!("{n:x}\r\n").as_bytes());
        }
        enc.extend_from_slice(chunk);
        enc.extend_from_slice(b"\r\n");
        rest = tail;
        i += 1;
    }
    enc.extend_from_slice(b"0\r\nx-trailer: t\r\n\r\n");
    let body_len = enc.len();
    enc.extend_from_slice(b"GET / HTTP/1.1\r\n");
    let mut rng = XorShift(seed | 1);
    let got = run_chunked(&enc, || (rng.next() % 9) as usize + 1);
    assert_eq!(got, (Ok(body_len), true, data.len() as u64));
}
