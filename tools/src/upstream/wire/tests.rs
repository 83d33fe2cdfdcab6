//! Table-driven tests of request head and body reading, including reads split at every byte.

use super::*;

/// A reader that hands out at most `step` bytes per read.
struct Trickle<'a> {
    data: &'a [u8],
    step: usize,
}

impl Read for Trickle<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.data.len().min(self.step).min(buf.len());
        buf[..n].copy_from_slice(&self.data[..n]);
        self.data = &self.data[n..];
        Ok(n)
    }
}

fn read_one(input: &[u8], step: usize) -> Result<(RequestHead, Vec<u8>), WireError> {
    let mut rb = RecvBuf::new(Trickle { data: input, step });
    let head = rb.read_head()?.ok_or(WireError::UnexpectedEof)?;
    let mut body = Vec::new();
    rb.read_body(head.framing, &mut |b| {
        body.extend_from_slice(b);
        Ok(())
    })?;
    Ok((head, body))
}

#[test]
fn reads_content_length_body_split_at_any_byte() {
    let req = b"POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello";
    for step in 1..req.len() {
        let (head, body) = read_one(req, step).unwrap();
        assert_eq!(head.path(), "/echo");
        assert_eq!(head.framing, Framing::Length(5));
        assert_eq!(body, b"hello");
        assert_eq!(head.raw, &req[..req.len() - 5]);
    }
}

#[test]
fn decodes_chunked_body_with_extensions_and_trailers_split_at_any_byte() {
    let req = b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n\
                5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nx-t: 1\r\n\r\n";
    for step in 1..req.len() {
        let (head, body) = read_one(req, step).unwrap();
        assert_eq!(head.framing, Framing::Chunked);
        assert_eq!(body, b"hello world");
    }
}

#[test]
fn rejects_ambiguous_framing() {
    let cases: &[&[u8]] = &[
        b"POST / HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
        b"POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
        b"POST / HTTP/1.1\r\nContent-Length: 1, 2\r\n\r\n",
        b"POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n",
        b"POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n",
        b"POST / HTTP/1.1\r\nContent-Length: 99999999999999999999999\r\n\r\n",
    ];
    for case in cases {
        let err = read_one(case, 1000).unwrap_err();
        assert_eq!(
            err,
            WireError::BadFraming,
            "{}",
            String::from_utf8_lossy(case)
        );
        assert_eq!(err.status(), Some(400));
    }
}

#[test]
fn rejects_invalid_chunk_sizes() {
    let cases: &[&[u8]] = &[
        b"zz\r\n",
        b"\r\n",
        b"ffffffffffffffffff\r\n",
        b"5\r\nhelloXX0\r\n\r\n",
    ];
    for case in cases {
        let mut req = b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
        req.extend_from_slice(case);
        assert_eq!(read_one(&req, 1000).unwrap_err(), WireError::BadChunk);
    }
}

#[test]
fn keep_alive_follows_version_and_connection_header() {
    let cases: &[(&[u8], bool)] = &[
        (b"GET / HTTP/1.1\r\n\r\n", true),
        (b"GET / HTTP/1.1\r\nConnection: close\r\n\r\n", false),
        (b"GET / HTTP/1.0\r\n\r\n", false),
        (b"GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n", true),
    ];
    for (req, keep) in cases {
        assert_eq!(read_one(req, 1000).unwrap().0.keep_alive, *keep);
    }
}

#[test]
fn rejects_head_over_limit_with_431() {
    let mut req = b"GET / HTTP/1.1\r\nx-big: ".to_vec();
    req.resize(MAX_HEAD_BYTES + 10, b'a');
    let err = read_one(&req, 8192).unwrap_err();
    assert_eq!(err.status(), Some(431));
}

#[test]
fn keeps_pipelined_requests_in_order() {
    let req = b"GET /a HTTP/1.1\r\n\r\nPOST /b HTTP/1.1\r\nContent-Length: 2\r\n\r\nhiGET /c HTTP/1.1\r\n\r\n";
    let mut rb = RecvBuf::new(Trickle { data: req, step: 7 });
    let mut paths = Vec::new();
    while let Some(head) = rb.read_head().unwrap() {
        rb.read_body(head.framing, &mut |_| Ok(())).unwrap();
        paths.push(head.target);
    }
    assert_eq!(paths, ["/a", "/b", "/c"]);
}

#[test]
fn eof_mid_head_or_body_is_unexpected() {
    assert_eq!(
        read_one(b"GET / HTTP/1.1\r\nHost", 1000).unwrap_err(),
        WireError::UnexpectedEof
    );
    assert_eq!(
        read_one(b"POST / HTTP/1.1\r\nContent-Length: 9\r\n\r\nabc", 1000).unwrap_err(),
        WireError::UnexpectedEof
    );
}

#[test]
fn garbage_is_a_bad_head_not_a_panic() {
    for case in [
        &b"\x00\x01\x02 \r\n\r\n"[..],
        b"GET / HTTP/9.9\r\n\r\n",
        b"G\xffT / HTTP/1.1\r\n\r\n",
    ] {
        assert!(read_one(case, 3).is_err());
    }
}
