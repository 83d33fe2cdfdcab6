//! Incremental HTTP/1.1 response parser for the load generator: status line and headers
//! (httparse), then the body framed per RFC 9112 §6.3 (no body for HEAD/1xx/204/304;
//! chunked; Content-Length; else until close), skipped without being stored.
//!
//! Invariants: only an incomplete head is ever buffered (at most [`MAX_HEAD_BYTES`]); body
//! bytes are counted down, never copied; interim 1xx responses (other than 101) are skipped
//! and never reported; after an error the parser must be [`ResponseParser::reset`].

/// Largest response head accepted.
pub const MAX_HEAD_BYTES: usize = 64 * 1024;
/// Header slots given to httparse.
const MAX_HEADERS: usize = 64;
/// Longest chunk-size line or trailer line (extensions included).
const MAX_LINE_BYTES: usize = 4096;

/// A complete response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Done {
    pub status: u16,
    /// The server will close after this response (`Connection: close`, HTTP/1.0 without
    /// keep-alive, body delimited by close, or 101).
    pub close: bool,
}

/// Why a response could not be parsed. The connection is unusable afterwards.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("malformed response head")]
    Head,
    #[error("response head larger than {MAX_HEAD_BYTES} bytes")]
    HeadTooLarge,
    #[error("bad Content-Length")]
    ContentLength,
    #[error("malformed chunked body")]
    Chunked,
    #[error("connection closed before the response was complete")]
    Truncated,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Waiting for (the rest of) a head.
    Head,
    /// `remaining` body bytes to skip.
    Length {
        remaining: u64,
    },
    /// Reading a chunk-size line; `size` so far, `digits` seen, `ext` after `;`, `len` of line.
    ChunkSize {
        size: u64,
        digits: u32,
        ext: bool,
        len: usize,
    },
    /// Skipping chunk data, then CRLF.
    ChunkData {
        remaining: u64,
    },
    ChunkDataCr,
    ChunkDataLf,
    /// Trailer section after the last chunk: `len` bytes of the current line seen.
    Trailer {
        len: usize,
    },
    /// Body runs until the server closes.
    UntilClose,
}

/// Parses a stream of responses on one connection.
#[derive(Debug)]
pub struct ResponseParser {
    state: State,
    /// Partial head bytes carried over between reads (empty in the common case).
    head: Vec<u8>,
    status: u16,
    close: bool,
}

impl Default for ResponseParser {
    fn default() -> Self {
        Self::new()
    }
}

/// A parsed head: its length and what it says about the response.
struct Head {
    len: usize,
    status: u16,
    close: bool,
    framing: Framing,
}

/// What the head said about the body.
enum Framing {
    None,
    Length(u64),
    Chunked,
    UntilClose,
}

impl ResponseParser {
    pub fn new() -> Self {
        ResponseParser {
            state: State::Head,
            head: Vec::new(),
            status: 0,
            close: false,
        }
    }

    /// Back to the start (new connection). Keeps the head buffer's allocation.
    pub fn reset(&mut self) {
        self.state = State::Head;
        self.head.clear();
    }

    /// True between responses (nothing of the next one seen yet).
    pub fn is_idle(&self) -> bool {
        self.state == State::Head && self.head.is_empty()
    }

    /// Consumes bytes from `data` until one response completes or `data` runs out. Returns
    /// the bytes consumed and the response, if one completed; call again with the rest.
    /// `head_request`: the response answers a HEAD (no body whatever the headers say).
    pub fn advance(
        &mut self,
        data: &[u8],
        head_request: bool,
    ) -> Result<(usize, Option<Done>), ParseError> {
        let mut used = 0;
        while used < data.len() {
            let Some(rest) = data.get(used..) else { break };
            match self.state {
                State::Head => {
                    let (n, done) = self.parse_head(rest, head_request)?;
                    used += n;
                    if done.is_some() {
                        return Ok((used, done));
                    }
                }
                State::Length { remaining } => {
                    let take = remaining.min(rest.len() as u64);
                    used += take as usize;
                    if take == remaining {
                        return Ok((used, Some(self.finish())));
                    }
                    self.state = State::Length {
                        remaining: remaining - take,
                    };
                }
                State::UntilClose => return Ok((data.len(), None)),
                State::ChunkData { remaining } => {
                    let take = remaining.min(rest.len() as u64);
                    used += take as usize;
                    self.state = if take == remaining {
                        State::ChunkDataCr
                    } else {
                        State::ChunkData {
                            remaining: remaining - take,
                        }
                    };
                }
                _ => {
                    // Byte-wise states: chunk-size lines, chunk CRLF, trailers.
                    let Some(&b) = rest.first() else { break };
                    used += 1;
                    if let Some(done) = self.chunk_byte(b)? {
                        return Ok((used, Some(done)));
                    }
                }
            }
        }
        Ok((used, None))
    }

    /// The connection reached EOF: completes a close-delimited body, fails a partial one.
    pub fn eof(&mut self) -> Result<Option<Done>, ParseError> {
        match self.state {
            State::UntilClose => Ok(Some(self.finish())),
            _ if self.is_idle() => Ok(None),
            _ => Err(ParseError::Truncated),
        }
    }

    fn finish(&mut self) -> Done {
        self.state = State::Head;
        Done {
            status: self.status,
            close: self.close,
        }
    }

    /// Parses a head from `rest` (plus any carried-over prefix). Returns bytes of `rest`
    /// consumed and, for bodiless responses, the completed response.
    fn parse_head(
        &mut self,
        rest: &[u8],
        head_request: bool,
    ) -> Result<(usize, Option<Done>), ParseError> {
        let carried = self.head.len();
        let (head_len, head) = if carried == 0 {
            match parse_head_bytes(rest, head_request)? {
                Some(head) => (head.len, head),
                None => {
                    if rest.len() > MAX_HEAD_BYTES {
                        return Err(ParseError::HeadTooLarge);
                    }
                    self.head.extend_from_slice(rest);
                    return Ok((rest.len(), None));
                }
            }
        } else {
            let room = MAX_HEAD_BYTES.saturating_sub(carried) + 1;
            let add = rest.len().min(room);
            self.head
                .extend_from_slice(rest.get(..add).unwrap_or_default());
            match parse_head_bytes(&self.head, head_request)? {
                Some(head) => {
                    self.head.clear();
                    (head.len.saturating_sub(carried), head)
                }
                None if self.head.len() > MAX_HEAD_BYTES => return Err(ParseError::HeadTooLarge),
                None => return Ok((add, None)),
            }
        };
        let Head {
            status,
            close,
            framing,
            ..
        } = head;
        if (100..200).contains(&status) && status != 101 {
            // Interim response: the final one follows.
            return Ok((head_len, None));
        }
        self.status = status;
        self.close = close || status == 101;
        let done = match framing {
            Framing::None => Some(self.finish()),
            Framing::Length(0) => Some(self.finish()),
            Framing::Length(n) => {
                self.state = State::Length { remaining: n };
                None
            }
            Framing::Chunked => {
                self.state = State::ChunkSize {
                    size: 0,
                    digits: 0,
                    ext: false,
                    len: 0,
                };
                None
            }
            Framing::UntilClose => {
                self.close = true;
                self.state = State::UntilClose;
                None
            }
        };
        Ok((head_len, done))
    }

    /// One byte of a chunk-size line, chunk CRLF or trailer (RFC 9112 §7.1).
    fn chunk_byte(&mut self, b: u8) -> Result<Option<Done>, ParseError> {
        match self.state {
            State::ChunkSize {
                size,
                digits,
                ext,
                len,
            } => {
                if len >= MAX_LINE_BYTES {
                    return Err(ParseError::Chunked);
                }
                let len = len + 1;
                if b == b'\n' {
                    if digits == 0 {
                        return Err(ParseError::Chunked);
                    }
                    self.state = if size == 0 {
                        State::Trailer { len: 0 }
                    } else {
                        State::ChunkData { remaining: size }
                    };
                    return Ok(None);
                }
                let hex = (b as char).to_digit(16);
                self.state = match (ext, hex) {
                    (false, Some(d)) => {
                        if digits >= 16 {
                            return Err(ParseError::Chunked);
                        }
                        State::ChunkSize {
                            size: size << 4 | u64::from(d),
                            digits: digits + 1,
                            ext,
                            len,
                        }
                    }
                    (false, None) if b == b';' || b == b' ' || b == b'\t' || b == b'\r' => {
                        State::ChunkSize {
                            size,
                            digits,
                            ext: true,
                            len,
                        }
                    }
                    (false, None) => return Err(ParseError::Chunked),
                    (true, _) => State::ChunkSize {
                        size,
                        digits,
                        ext,
                        len,
                    },
                };
                Ok(None)
            }
            State::ChunkDataCr => {
                self.state = match b {
                    b'\r' => State::ChunkDataLf,
                    b'\n' => Self::next_chunk(),
                    _ => return Err(ParseError::Chunked),
                };
                Ok(None)
            }
            State::ChunkDataLf => {
                if b != b'\n' {
                    return Err(ParseError::Chunked);
                }
                self.state = Self::next_chunk();
                Ok(None)
            }
            State::Trailer { len } => {
                if b == b'\n' {
                    if len == 0 {
                        return Ok(Some(self.finish()));
                    }
                    self.state = State::Trailer { len: 0 };
                } else if b == b'\r' && len == 0 {
                    // The CR of the final empty line: keep len 0.
                } else if len >= MAX_LINE_BYTES {
                    return Err(ParseError::Chunked);
                } else {
                    self.state = State::Trailer { len: len + 1 };
                }
                Ok(None)
            }
            _ => Err(ParseError::Chunked),
        }
    }

    fn next_chunk() -> State {
        State::ChunkSize {
            size: 0,
            digits: 0,
            ext: false,
            len: 0,
        }
    }
}

/// Parses a complete head if `buf` holds one.
fn parse_head_bytes(buf: &[u8], head_request: bool) -> Result<Option<Head>, ParseError> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut resp = httparse::Response::new(&mut headers);
    let len = match resp.parse(buf) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(_) => return Err(ParseError::Head),
    };
    let status = resp.code.ok_or(ParseError::Head)?;
    let http10 = resp.version == Some(0);
    let mut close = http10;
    let mut length: Option<u64> = None;
    let mut chunked = false;
    let mut has_te = false;
    for h in resp.headers.iter() {
        if h.name.eq_ignore_ascii_case("content-length") {
            let v = std::str::from_utf8(h.value)
                .ok()
                .and_then(|s| s.trim().parse::<u64>().ok())
                .ok_or(ParseError::ContentLength)?;
            if length.is_some_and(|l| l != v) {
                return Err(ParseError::ContentLength);
            }
            length = Some(v);
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            has_te = true;
            // Chunked only if it is the last coding (RFC 9112 §6.3 rule 4).
            chunked = h
                .value
                .rsplit(|&b| b == b',')
                .next()
                .is_some_and(|last| last.trim_ascii().eq_ignore_ascii_case(b"chunked"));
        } else if h.name.eq_ignore_ascii_case("connection") {
            for token in h.value.split(|&b| b == b',') {
                let token = token.trim_ascii();
                if token.eq_ignore_ascii_case(b"close") {
                    close = true;
                } else if token.eq_ignore_ascii_case(b"keep-alive") && http10 {
                    close = false;
                }
            }
        }
    }
    let bodiless = head_request || (100..200).contains(&status) || status == 204 || status == 304;
    let framing = if bodiless {
        Framing::None
    } else if has_te {
        if chunked {
            Framing::Chunked
        } else {
            Framing::UntilClose
        }
    } else if let Some(n) = length {
        Framing::Length(n)
    } else {
        Framing::UntilClose
    };
    Ok(Some(Head {
        len,
        status,
        close,
        framing,
    }))
}

#[cfg(test)]
#[path = "response/tests.rs"]
mod tests;
