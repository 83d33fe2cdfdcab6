//! Reading requests off a connection: the receive buffer, the request head (httparse) and
//! the request body (Content-Length or chunked, RFC 9112 §6 and §7.1), streamed to a sink.
//!
//! Invariants: at most [`MAX_HEAD_BYTES`] of a head are ever buffered; a body is never
//! buffered whole here (callers decide); bytes after one message stay in the buffer for the
//! next (pipelining). Nothing here panics on any input.

use std::io::{self, Read};

/// Largest request head accepted (431 beyond).
pub const MAX_HEAD_BYTES: usize = 64 * 1024;
/// Most header fields accepted (431 beyond).
pub const MAX_HEADERS: usize = 128;
/// Longest chunk-size line or trailer line accepted.
const MAX_LINE_BYTES: usize = 4096;
/// Most trailer bytes accepted after the last chunk.
const MAX_TRAILER_BYTES: usize = 16 * 1024;

/// Why reading a request failed. `status()` says what to answer, if anything.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    #[error("i/o error: {0}")]
    Io(io::ErrorKind),
    #[error("connection closed in the middle of a message")]
    UnexpectedEof,
    #[error("request head over 64 KiB or too many header fields")]
    HeadTooLarge,
    #[error("malformed request head")]
    BadHead,
    #[error("ambiguous or unsupported body framing")]
    BadFraming,
    #[error("invalid chunked body")]
    BadChunk,
}

impl WireError {
    /// The status to answer with before closing, or `None` to close silently.
    pub fn status(self) -> Option<u16> {
        match self {
            WireError::Io(_) | WireError::UnexpectedEof => None,
            WireError::HeadTooLarge => Some(431),
            WireError::BadHead | WireError::BadFraming | WireError::BadChunk => Some(400),
        }
    }
}

impl From<io::Error> for WireError {
    fn from(e: io::Error) -> Self {
        WireError::Io(e.kind())
    }
}

/// How the request body is delimited (RFC 9112 §6.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    None,
    Length(u64),
    Chunked,
}

/// One parsed request head. Owns its bytes (this is a test tool, not the proxy's hot path).
#[derive(Debug, Clone)]
pub struct RequestHead {
    /// The head exactly as received, including the blank line.
    pub raw: Vec<u8>,
    pub method: String,
    pub target: String,
    /// 0 for HTTP/1.0, 1 for HTTP/1.1.
    pub minor_version: u8,
    pub framing: Framing,
    pub keep_alive: bool,
    pub expect_continue: bool,
}

impl RequestHead {
    pub fn is_head(&self) -> bool {
        self.method.eq_ignore_ascii_case("HEAD")
    }

    /// The path without the query.
    pub fn path(&self) -> &str {
        self.target.split('?').next().unwrap_or("")
    }
}

/// A connection's receive buffer over any reader. `buf[pos..len]` is unread data.
pub struct RecvBuf<R> {
    reader: R,
    buf: Box<[u8]>,
    pos: usize,
    len: usize,
}

impl<R: Read> RecvBuf<R> {
    pub fn new(reader: R) -> Self {
        RecvBuf {
            reader,
            buf: vec![0; MAX_HEAD_BYTES].into_boxed_slice(),
            pos: 0,
            len: 0,
        }
    }

    pub fn get_ref(&self) -> &R {
        &self.reader
    }

    fn unread(&self) -> &[u8] {
        self.buf.get(self.pos..self.len).unwrap_or(&[])
    }

    /// Reads more bytes after the unread ones; `Ok(0)` at end of stream or when full.
    fn fill(&mut self) -> io::Result<usize> {
        if self.pos > 0 {
            self.buf.copy_within(self.pos..self.len, 0);
            self.len -= self.pos;
            self.pos = 0;
        }
        let Some(spare) = self.buf.get_mut(self.len..) else {
            return Ok(0);
        };
        if spare.is_empty() {
            return Ok(0);
        }
        loop {
            match self.reader.read(spare) {
                Ok(n) => {
                    self.len += n;
                    return Ok(n);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
    }

    /// Reads the next request head. `Ok(None)` when the peer closed cleanly between requests.
    pub fn read_head(&mut self) -> Result<Option<RequestHead>, WireError> {
        loop {
            // Tolerate empty lines before a request line (RFC 9112 §2.2).
            while let Some(&b) = self.unread().first() {
                if b == b'\r' || b == b'\n' {
                    self.pos += 1;
                } else {
                    break;
                }
            }
            if !self.unread().is_empty() {
                if let Some(head) = self.try_parse_head()? {
                    return Ok(Some(head));
                }
                if self.len - self.pos >= MAX_HEAD_BYTES {
                    return Err(WireError::HeadTooLarge);
                }
            }
            let was_empty = self.unread().is_empty();
            if self.fill()? == 0 {
                return if was_empty {
                    Ok(None)
                } else {
                    Err(WireError::UnexpectedEof)
                };
            }
        }
    }

    fn try_parse_head(&mut self) -> Result<Option<RequestHead>, WireError> {
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut req = httparse::Request::new(&mut headers);
        let n = match req.parse(self.unread()) {
            Ok(httparse::Status::Complete(n)) => n,
            Ok(httparse::Status::Partial) => return Ok(None),
            Err(httparse::Error::TooManyHeaders) => return Err(WireError::HeadTooLarge),
            Err(_) => return Err(WireError::BadHead),
        };
        let minor_version = req.version.ok_or(WireError::BadHead)?;
        let method = req.method.ok_or(WireError::BadHead)?.to_owned();
        let target = req.path.ok_or(WireError::BadHead)?.to_owned();
        let framing = framing(req.headers)?;
        let mut close = false;
        let mut keep_alive_token = false;
        let mut expect_continue = false;
        for h in req.headers.iter() {
            if h.name.eq_ignore_ascii_case("connection") {
                for token in String::from_utf8_lossy(h.value).split(',') {
                    let token = token.trim();
                    close |= token.eq_ignore_ascii_case("close");
                    keep_alive_token |= token.eq_ignore_ascii_case("keep-alive");
                }
            } else if h.name.eq_ignore_ascii_case("expect") {
                expect_continue |= h.value.eq_ignore_ascii_case(b"100-continue");
            }
        }
        let keep_alive = !close && (minor_version >= 1 || keep_alive_token);
        let raw = self.unread().get(..n).ok_or(WireError::BadHead)?.to_vec();
        self.pos += n;
        Ok(Some(RequestHead {
            raw,
            method,
            target,
            minor_version,
            framing,
            keep_alive,
            expect_continue,
        }))
    }

    /// Reads the body framed by `framing`, handing each piece to `sink`; returns its length.
    /// A sink error aborts the read and is returned as `WireError::Io`.
    pub fn read_body(
        &mut self,
        framing: Framing,
        sink: &mut dyn FnMut(&[u8]) -> io::Result<()>,
    ) -> Result<u64, WireError> {
        match framing {
            Framing::None => Ok(0),
            Framing::Length(n) => {
                self.read_exact_to(n, sink)?;
                Ok(n)
            }
            Framing::Chunked => self.read_chunked(sink),
        }
    }

    fn read_exact_to(
        &mut self,
        mut n: u64,
        sink: &mut dyn FnMut(&[u8]) -> io::Result<()>,
    ) -> Result<(), WireError> {
        while n > 0 {
            if self.unread().is_empty() && self.fill()? == 0 {
                return Err(WireError::UnexpectedEof);
            }
            let avail = self.unread();
            let take = avail.len().min(usize::try_from(n).unwrap_or(usize::MAX));
            sink(avail.get(..take).unwrap_or(&[]))?;
            self.pos += take;
            n -= take as u64;
        }
        Ok(())
    }

    /// Reads one line ending in LF into `line`, without the LF and a CR before it.
    /// Lines longer than `max` bytes (CR excluded) are a [`WireError::BadChunk`].
    fn read_line(&mut self, line: &mut Vec<u8>, max: usize) -> Result<(), WireError> {
        line.clear();
        loop {
            let avail = self.unread();
            let (piece, found) = match avail.iter().position(|&b| b == b'\n') {
                Some(i) => (avail.get(..i).unwrap_or(&[]), true),
                None => (avail, false),
            };
            if line.len() + piece.len() > max.saturating_add(1) {
                return Err(WireError::BadChunk);
            }
            line.extend_from_slice(piece);
            self.pos += piece.len() + usize::from(found);
            if found {
                if line.last() == Some(&b'\r') {
                    line.pop();
                }
                if line.len() > max {
                    return Err(WireError::BadChunk);
                }
                return Ok(());
            }
            if self.fill()? == 0 {
                return Err(WireError::UnexpectedEof);
            }
        }
    }

    fn read_chunked(
        &mut self,
        sink: &mut dyn FnMut(&[u8]) -> io::Result<()>,
    ) -> Result<u64, WireError> {
        let mut line = Vec::with_capacity(64);
        let mut total: u64 = 0;
        loop {
            self.read_line(&mut line, MAX_LINE_BYTES)?;
            let size = parse_chunk_size(&line)?;
            if size == 0 {
                break;
            }
            self.read_exact_to(size, sink)?;
            total = total.checked_add(size).ok_or(WireError::BadChunk)?;
            self.read_line(&mut line, 0)?; // the CRLF after the data: nothing else allowed
        }
        // Trailer section: lines until an empty one (RFC 9112 §7.1.2).
        let mut trailer_bytes = 0usize;
        loop {
            self.read_line(&mut line, MAX_LINE_BYTES)?;
            if line.is_empty() {
                return Ok(total);
            }
            trailer_bytes += line.len();
            if trailer_bytes > MAX_TRAILER_BYTES {
                return Err(WireError::BadChunk);
            }
        }
    }
}

/// `chunk-size [ chunk-ext ]` → size. Hex digits only, at most 15 of them (no overflow).
fn parse_chunk_size(line: &[u8]) -> Result<u64, WireError> {
    let end = line.iter().position(|&b| b == b';').unwrap_or(line.len());
    let digits = line.get(..end).unwrap_or(&[]);
    let digits = trim_ows(digits);
    if digits.is_empty() || digits.len() > 15 {
        return Err(WireError::BadChunk);
    }
    let mut n: u64 = 0;
    for &b in digits {
        let d = (b as char).to_digit(16).ok_or(WireError::BadChunk)?;
        n = (n << 4) | u64::from(d);
    }
    Ok(n)
}

fn trim_ows(mut s: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = s {
        s = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = s {
        s = rest;
    }
    s
}

/// The body framing of a request (RFC 9112 §6.3): both TE and CL, differing CLs or a TE
/// not ending in `chunked` are errors.
fn framing(headers: &[httparse::Header<'_>]) -> Result<Framing, WireError> {
    let mut chunked = None::<bool>;
    let mut length = None::<u64>;
    for h in headers {
        if h.name.eq_ignore_ascii_case("transfer-encoding") {
            let v = std::str::from_utf8(h.value).map_err(|_| WireError::BadFraming)?;
            for coding in v.split(',').map(str::trim).filter(|c| !c.is_empty()) {
                chunked = Some(coding.eq_ignore_ascii_case("chunked"));
            }
        } else if h.name.eq_ignore_ascii_case("content-length") {
            let v = std::str::from_utf8(h.value).map_err(|_| WireError::BadFraming)?;
            for part in v.split(',').map(str::trim) {
                if part.is_empty() || part.len() > 19 || !part.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(WireError::BadFraming);
                }
                let n: u64 = part.parse().map_err(|_| WireError::BadFraming)?;
                if length.is_some_and(|l| l != n) {
                    return Err(WireError::BadFraming);
                }
                length = Some(n);
            }
        }
    }
    match (chunked, length) {
        (Some(_), Some(_)) | (Some(false), None) => Err(WireError::BadFraming),
        (Some(true), None) => Ok(Framing::Chunked),
        (None, Some(n)) => Ok(Framing::Length(n)),
        (None, None) => Ok(Framing::None),
    }
}

#[cfg(test)]
mod tests;
