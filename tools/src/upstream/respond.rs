//! Writing responses: the head, bodies (a deterministic pattern, or given bytes) framed by
//! Content-Length or chunked, and the pacing a fault asks for (drip, cut mid-body).
//!
//! Invariant: a pattern body is generated piece by piece into a fixed buffer, never whole.

use std::io::{self, Write};
use std::thread;
use std::time::Duration;

/// Size of each generated body piece and of each chunk of a chunked pattern body.
pub const PIECE_BYTES: usize = 16 * 1024;

/// Byte `i` of every generated body: `a..z` repeating. Tests check bodies against it.
pub fn pattern_byte(i: u64) -> u8 {
    b'a' + (i % 26) as u8
}

/// Fills `buf` with the pattern starting at body offset `offset`.
pub fn fill_pattern(buf: &mut [u8], offset: u64) {
    // One period by hand, then double the filled prefix (always whole periods).
    let period = buf.len().min(26);
    for (i, b) in buf.iter_mut().take(period).enumerate() {
        *b = pattern_byte(offset + i as u64);
    }
    let mut filled = period;
    while filled < buf.len() {
        let n = filled.min(buf.len() - filled);
        buf.copy_within(..n, filled);
        filled += n;
    }
}

/// What a response carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Body {
    /// `n` bytes of the pattern, generated on the fly.
    Pattern(u64),
    Bytes(Vec<u8>),
}

impl Body {
    pub fn len(&self) -> u64 {
        match self {
            Body::Pattern(n) => *n,
            Body::Bytes(b) => b.len() as u64,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A response to send. Built by the connection handler, written by [`send`].
#[derive(Debug, Clone)]
pub struct Response<'a> {
    pub status: u16,
    pub body: Body,
    pub chunked: bool,
    /// Adds `connection: close`.
    pub close: bool,
    /// Adds `connection: keep-alive` (HTTP/1.0 clients that asked for it).
    pub keep_alive_header: bool,
    /// Adds `x-upstream: NAME`.
    pub name: Option<&'a str>,
    /// Response to HEAD: the head a GET would get, no body.
    pub head_only: bool,
    /// Bytes declared in Content-Length beyond the body (the wrong-content-length fault).
    pub declared_extra: u64,
    /// Send only the first half of the body, then fail with [`cut_error`].
    pub cut_mid_body: bool,
}

impl<'a> Response<'a> {
    pub fn new(status: u16, body: Body) -> Self {
        Response {
            status,
            body,
            chunked: false,
            close: false,
            keep_alive_header: false,
            name: None,
            head_only: false,
            declared_extra: 0,
            cut_mid_body: false,
        }
    }
}

/// The error [`send`] returns after a deliberate cut mid-body.
pub fn cut_error() -> io::Error {
    io::Error::other("response cut mid-body on purpose")
}

/// True for statuses that never carry a body (RFC 9110 §6.4.1).
fn bodiless(status: u16) -> bool {
    (100..200).contains(&status) || status == 204 || status == 304
}

pub fn reason(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        200 => "OK",
        201 => "Created",
        204 => "No Content",
        301 => "Moved Permanently",
        302 => "Found",
        304 => "Not Modified",
        400 => "Bad Request",
        404 => "Not Found",
        413 => "Content Too Large",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "Status",
    }
}

/// Writes `resp` to `w` (not flushed). Fails with [`cut_error`] after a deliberate cut.
pub fn send(resp: &Response<'_>, w: &mut dyn Write) -> io::Result<()> {
    let mut head = Vec::with_capacity(256);
    let status = resp.status;
    write!(head, "HTTP/1.1 {} {}\r\n", status, reason(status))?;
    head.extend_from_slice(b"server: ringway-upstream\r\n");
    if let Some(name) = resp.name {
        write!(head, "x-upstream: {name}\r\n")?;
    }
    let has_body = !bodiless(status);
    if has_body {
        if resp.chunked {
            head.extend_from_slice(b"transfer-encoding: chunked\r\n");
        } else {
            let declared = resp.body.len().saturating_add(resp.declared_extra);
            write!(head, "content-length: {declared}\r\n")?;
        }
    }
    if resp.close {
        head.extend_from_slice(b"connection: close\r\n");
    } else if resp.keep_alive_header {
        head.extend_from_slice(b"connection: keep-alive\r\n");
    }
    head.extend_from_slice(b"\r\n");
    w.write_all(&head)?;
    if !has_body || resp.head_only {
        return Ok(());
    }
    let limit = if resp.cut_mid_body {
        resp.body.len() / 2
    } else {
        resp.body.len()
    };
    write_body(&resp.body, limit, resp.chunked, w)?;
    if resp.cut_mid_body {
        return Err(cut_error());
    }
    if resp.chunked {
        w.write_all(b"0\r\n\r\n")?;
    }
    Ok(())
}

/// Writes the first `limit` bytes of `body`, as chunks if `chunked`.
fn write_body(body: &Body, limit: u64, chunked: bool, w: &mut dyn Write) -> io::Result<()> {
    let mut piece = [0u8; PIECE_BYTES];
    let mut off: u64 = 0;
    while off < limit {
        let n = usize::try_from(limit - off).map_or(PIECE_BYTES, |r| r.min(PIECE_BYTES));
        let data: &[u8] = match body {
            Body::Pattern(_) => {
                let p = piece.get_mut(..n).unwrap_or(&mut []);
                fill_pattern(p, off);
                p
            }
            Body::Bytes(b) => {
                let start = usize::try_from(off).unwrap_or(usize::MAX);
                b.get(start..start.saturating_add(n)).unwrap_or(&[])
            }
        };
        if data.is_empty() {
            break;
        }
        if chunked {
            write!(w, "{:x}\r\n", data.len())?;
            w.write_all(data)?;
            w.write_all(b"\r\n")?;
        } else {
            w.write_all(data)?;
        }
        off += data.len() as u64;
    }
    Ok(())
}

/// A writer that sends one byte per `interval`, flushing each (the slow-drip fault).
pub struct DripWriter<W: Write> {
    pub inner: W,
    pub interval: Duration,
}

impl<W: Write> Write for DripWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let Some(&b) = buf.first() else {
            return Ok(0);
        };
        self.inner.write_all(&[b])?;
        self.inner.flush()?;
        thread::sleep(self.interval);
        Ok(1)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sent(resp: &Response<'_>) -> (String, io::Result<()>) {
        let mut out = Vec::new();
        let r = send(resp, &mut out);
        (String::from_utf8(out).unwrap(), r)
    }

    #[test]
    fn fill_pattern_matches_pattern_byte_at_any_offset_and_length() {
        for (len, off) in [
            (0, 0),
            (1, 5),
            (25, 3),
            (26, 0),
            (27, 1),
            (1000, 77),
            (16384, 16384),
        ] {
            let mut buf = vec![0; len];
            fill_pattern(&mut buf, off);
            assert!(buf
                .iter()
                .enumerate()
                .all(|(i, &b)| b == pattern_byte(off + i as u64)));
        }
    }

    #[test]
    fn writes_content_length_response_with_pattern_body() {
        let mut r = Response::new(200, Body::Pattern(28));
        r.name = Some("u1");
        let (text, res) = sent(&r);
        res.unwrap();
        assert_eq!(
            text,
            "HTTP/1.1 200 OK\r\nserver: ringway-upstream\r\nx-upstream: u1\r\n\
             content-length: 28\r\n\r\nabcdefghijklmnopqrstuvwxyzab"
        );
    }

    #[test]
    fn writes_chunked_response_in_pieces() {
        let mut r = Response::new(200, Body::Pattern(PIECE_BYTES as u64 + 3));
        r.chunked = true;
        let (text, res) = sent(&r);
        res.unwrap();
        assert!(text.contains("transfer-encoding: chunked\r\n\r\n4000\r\n"));
        // 16384 % 26 == 4: the last piece starts at "e".
        assert!(text.ends_with("\r\n3\r\nefg\r\n0\r\n\r\n"));
    }

    #[test]
    fn bodiless_statuses_and_head_send_no_body() {
        let (text, _) = sent(&Response::new(204, Body::Pattern(5)));
        assert!(text.ends_with("server: ringway-upstream\r\n\r\n"));
        let mut r = Response::new(200, Body::Pattern(5));
        r.head_only = true;
        let (text, _) = sent(&r);
        assert!(text.ends_with("content-length: 5\r\n\r\n"));
    }

    #[test]
    fn cut_mid_body_sends_half_and_fails() {
        let mut r = Response::new(200, Body::Bytes(b"abcdef".to_vec()));
        r.cut_mid_body = true;
        let (text, res) = sent(&r);
        assert!(res.is_err());
        assert!(text.ends_with("content-length: 6\r\n\r\nabc"));
    }

    #[test]
    fn wrong_content_length_declares_more_than_sent() {
        let mut r = Response::new(200, Body::Pattern(2));
        r.declared_extra = 10;
        let (text, _) = sent(&r);
        assert!(text.ends_with("content-length: 12\r\n\r\nab"));
    }
}
