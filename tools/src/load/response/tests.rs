//! Parser cases: every framing of RFC 9112 §6.3, interim responses, errors, and the
//! property that feeding a stream split at any byte gives the same responses as whole.

use super::*;

/// Feeds `data` in pieces of `step` bytes, then EOF; returns the responses.
fn parse_all(data: &[u8], step: usize, head: bool) -> Result<Vec<Done>, ParseError> {
    let mut p = ResponseParser::new();
    let mut out = Vec::new();
    for piece in data.chunks(step.max(1)) {
        let mut off = 0;
        while off < piece.len() {
            let (n, done) = p.advance(&piece[off..], head)?;
            off += n;
            out.extend(done);
            assert!(n > 0 || done.is_some(), "no progress");
        }
    }
    out.extend(p.eof()?);
    Ok(out)
}

fn ok(status: u16) -> Done {
    Done {
        status,
        close: false,
    }
}

const STREAM: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello\
HTTP/1.1 100 Continue\r\n\r\n\
HTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\n0\r\nx-t: 1\r\n\r\n\
HTTP/1.1 204 No Content\r\nContent-Length: 7\r\n\r\n\
HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\n\r\n\
HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nA\r\n0123456789\r\n0\r\n\r\n\
HTTP/1.1 200 OK\r\nConnection: keep-alive, close\r\nContent-Length: 2\r\n\r\nab";

fn expected() -> Vec<Done> {
    vec![
        ok(200),
        ok(201),
        ok(204),
        ok(503),
        ok(200),
        Done {
            status: 200,
            close: true,
        },
    ]
}

#[test]
fn parses_every_framing_in_one_stream() {
    assert_eq!(parse_all(STREAM, STREAM.len(), false).unwrap(), expected());
}

#[test]
fn split_at_any_byte_equals_whole() {
    for step in 1..40 {
        assert_eq!(
            parse_all(STREAM, step, false).unwrap(),
            expected(),
            "step {step}"
        );
    }
}

#[test]
fn body_until_close_completes_at_eof() {
    let r = parse_all(b"HTTP/1.0 200 OK\r\n\r\nsome body", 4, false).unwrap();
    assert_eq!(
        r,
        vec![Done {
            status: 200,
            close: true
        }]
    );
}

#[test]
fn http10_keep_alive_is_not_close() {
    let r = parse_all(
        b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 1\r\n\r\nx",
        3,
        false,
    )
    .unwrap();
    assert_eq!(r, vec![ok(200)]);
}

#[test]
fn head_responses_have_no_body() {
    let data = b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nHTTP/1.1 200 OK\r\n\r\n";
    let r = parse_all(data, 7, true).unwrap();
    assert_eq!(r, vec![ok(200), ok(200)]);
}

#[test]
fn truncated_body_is_an_error_at_eof() {
    let e = parse_all(
        b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc",
        100,
        false,
    );
    assert_eq!(e, Err(ParseError::Truncated));
    let e = parse_all(b"HTTP/1.1 200 O", 100, false);
    assert_eq!(e, Err(ParseError::Truncated));
}

#[test]
fn rejects_malformed_heads_and_bodies() {
    let cases: &[(&[u8], ParseError)] = &[
        (b"HTTP/1.1 2x0 OK\r\n\r\n", ParseError::Head),
        (b"garbage\r\n\r\n", ParseError::Head),
        (
            b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n",
            ParseError::ContentLength,
        ),
        (
            b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
            ParseError::ContentLength,
        ),
        (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
            ParseError::Chunked,
        ),
        (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nabc",
            ParseError::Chunked,
        ),
        (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n11111111111111111\r\n",
            ParseError::Chunked,
        ),
    ];
    for (data, err) in cases {
        for step in [1, 5, 1000] {
            assert_eq!(
                parse_all(data, step, false),
                Err(*err),
                "{data:?} step {step}"
            );
        }
    }
}

#[test]
fn oversized_heads_are_rejected() {
    let mut data = b"HTTP/1.1 200 OK\r\n".to_vec();
    while data.len() <= MAX_HEAD_BYTES {
        data.extend_from_slice(b"X-Pad: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n");
    }
    for step in [100, 1 << 20] {
        assert!(parse_all(&data, step, false).is_err());
    }
}

#[test]
fn reset_forgets_a_partial_response() {
    let mut p = ResponseParser::new();
    p.advance(b"HTTP/1.1 200 OK\r\nContent-Le", false).unwrap();
    assert!(!p.is_idle());
    p.reset();
    assert!(p.is_idle());
    let (_, done) = p
        .advance(b"HTTP/1.1 404 x\r\nContent-Length: 0\r\n\r\n", false)
        .unwrap();
    assert_eq!(done.map(|d| d.status), Some(404));
}
