//! Validating pass-through decoder for chunked bodies (RFC 9112 §7.1).
//!
//! [`ChunkedDecoder`] does not copy or re-frame: the proxy forwards exactly the bytes `feed`
//! reports as consumed, and the decoder only checks the framing and counts payload bytes.
//! It consumes up to and including the CRLF that ends the trailer section and never past it;
//! the rest belongs to the next pipelined message. Feeding the same bytes in any split gives
//! the same result (it is a byte-wise state machine; only chunk data is taken in bulk).
//!
//! ```text
//!   SizeStart --hex--> Size --CR--> SizeLf --LF--> Data(n) --n bytes--> DataCr -CR-> DataLf -LF-+
//!      ^                |  \--SP/HT/;--> extension states --CR--^   (size 0: --> TrailerStart)  |
//!      +---------------------------------------------------------------------------------------+
//!   TrailerStart --CR--> FinalLf --LF--> Done
//!        \--tchar--> TrailerName --:--> TrailerValue --CR--> TrailerLf --LF--> TrailerStart
//! ```
//!
//! Trailer fields that a recipient must not act on as if they were in the header section
//! (RFC 9110 §6.5.1: framing, routing, request modifiers, authentication, content handling —
//! [`FORBIDDEN_TRAILERS`]) are refused with [`ChunkedError::ForbiddenTrailer`]: a proxy that
//! forwarded them could let a later hop merge them into the head.
//!
//! Limits: a chunk-size line (size, extensions, CRLF) is at most [`MAX_CHUNK_LINE_BYTES`];
//! the trailer section at most [`MAX_TRAILER_BYTES`]; a chunk size at most 2^63 - 1. After an
//! error the decoder stays failed.

/// Longest chunk-size line including extensions and CRLF.
pub const MAX_CHUNK_LINE_BYTES: u32 = 4096;
/// Largest trailer section including its final CRLF.
pub const MAX_TRAILER_BYTES: u32 = 64 * 1024;
const MAX_CHUNK_SIZE: u64 = (1 << 63) - 1;

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ChunkedError {
    #[error("invalid chunk size")]
    InvalidSize,
    #[error("chunk size too large")]
    SizeOverflow,
    #[error("chunk size line too long")]
    SizeLineTooLong,
    #[error("invalid chunk extension")]
    InvalidExtension,
    /// LF without CR, or CR not followed by LF, in a chunk-size line.
    #[error("bad line ending in chunk size line")]
    BadLineEnding,
    #[error("missing CRLF after chunk data")]
    MissingDataCrlf,
    #[error("invalid trailer field")]
    InvalidTrailer,
    #[error("trailer section too large")]
    TrailersTooLarge,
    /// A framing, routing, control or authentication field in the trailer section.
    #[error("forbidden trailer field")]
    ForbiddenTrailer,
}

/// Trailer field names refused (lower case; RFC 9110 §6.5.1 and §6.5.2).
pub const FORBIDDEN_TRAILERS: [&[u8]; 22] = [
    b"content-length",
    b"transfer-encoding",
    b"host",
    b"connection",
    b"keep-alive",
    b"proxy-connection",
    b"te",
    b"trailer",
    b"upgrade",
    b"content-encoding",
    b"content-type",
    b"content-range",
    b"authorization",
    b"proxy-authorization",
    b"cookie",
    b"set-cookie",
    b"cache-control",
    b"expect",
    b"max-forwards",
    b"range",
    b"location",
    b"www-authenticate",
];
/// Longest name in [`FORBIDDEN_TRAILERS`]; a longer trailer name cannot be one of them.
const MAX_FORBIDDEN_NAME: usize = 19;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    SizeStart,
    Size,
    /// BWS after the size or an extension, before `;` or CR.
    SizeWs,
    ExtBeforeName,
    ExtName,
    /// BWS after an extension name, before `=`, `;` or CR.
    ExtAfterName,
    ExtBeforeValue,
    ExtValue,
    ExtQuoted,
    ExtQuotedEscape,
    /// Just after a quoted extension value: CR, `;` or BWS before `;`.
    ExtEnd,
    SizeLf,
    Data,
    DataCr,
    DataLf,
    TrailerStart,
    TrailerName,
    TrailerValue,
    TrailerLf,
    FinalLf,
    Done,
    Failed(ChunkedError),
}

/// See the module doc. `Default` is a decoder at the start of a body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChunkedDecoder {
    state: State,
    /// Size of the current chunk; while in `Data`, bytes still to come.
    size: u64,
    line_len: u32,
    trailer_len: u32,
    data_bytes: u64,
    /// The current trailer name, lower-cased, while it can still be a forbidden one.
    name: [u8; MAX_FORBIDDEN_NAME],
    /// Length of `name`; `u8::MAX` once the name is longer than any forbidden one.
    name_len: u8,
}

impl Default for ChunkedDecoder {
    fn default() -> Self {
        ChunkedDecoder::new()
    }
}

impl ChunkedDecoder {
    pub fn new() -> ChunkedDecoder {
        ChunkedDecoder {
            state: State::SizeStart,
            size: 0,
            line_len: 0,
            trailer_len: 0,
            data_bytes: 0,
            name: [0; MAX_FORBIDDEN_NAME],
            name_len: 0,
        }
    }

    /// The final CRLF has been consumed.
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Payload bytes consumed so far (framing excluded).
    pub fn data_bytes(&self) -> u64 {
        self.data_bytes
    }

    /// Validates a prefix of `input` and returns how many bytes belong to this body. Less than
    /// `input.len()` only once [`is_done`](Self::is_done). After an error, every call fails.
    pub fn feed(&mut self, input: &[u8]) -> Result<usize, ChunkedError> {
        self.feed_data(input, |_| {})
    }

    /// As [`feed`](Self::feed), and hands every run of payload bytes (the chunks' data,
    /// without framing) to `data`, in order: for re-framing a chunked body (an HTTP/1.0 client
    /// gets it close-delimited).
    pub fn feed_data(
        &mut self,
        input: &[u8],
        mut data: impl FnMut(&[u8]),
    ) -> Result<usize, ChunkedError> {
        let mut i = 0;
        while i < input.len() {
            match self.state {
                State::Done => return Ok(i),
                State::Failed(e) => return Err(e),
                State::Data => {
                    let avail = (input.len() - i) as u64;
                    let take = avail.min(self.size);
                    self.size -= take;
                    self.data_bytes += take;
                    data(&input[i..i + take as usize]);
                    i += take as usize;
                    if self.size == 0 {
                        self.state = State::DataCr;
                    }
                }
                _ => {
                    let Some(&b) = input.get(i) else { break };
                    if let Err(e) = self.step(b) {
                        self.state = State::Failed(e);
                        return Err(e);
                    }
                    i += 1;
                }
            }
        }
        match self.state {
            State::Failed(e) => Err(e),
            _ => Ok(i),
        }
    }

    /// One framing byte.
    fn step(&mut self, b: u8) -> Result<(), ChunkedError> {
        use State::*;
        if matches!(
            self.state,
            SizeStart
                | Size
                | SizeWs
                | ExtBeforeName
                | ExtName
                | ExtAfterName
                | ExtBeforeValue
                | ExtValue
                | ExtQuoted
                | ExtQuotedEscape
                | ExtEnd
                | SizeLf
        ) {
            self.line_len += 1;
            if self.line_len > MAX_CHUNK_LINE_BYTES {
                return Err(ChunkedError::SizeLineTooLong);
            }
        }
        if matches!(
            self.state,
            TrailerStart | TrailerName | TrailerValue | TrailerLf | FinalLf
        ) {
            self.trailer_len += 1;
            if self.trailer_len > MAX_TRAILER_BYTES {
                return Err(ChunkedError::TrailersTooLarge);
            }
        }
        let is_ws = b == b' ' || b == b'\t';
        self.state = match (self.state, b) {
            (SizeStart, _) => {
                let d = hex(b).ok_or(ChunkedError::InvalidSize)?;
                self.size = u64::from(d);
                Size
            }
            (Size, _) if hex(b).is_some() => {
                let d = u64::from(hex(b).unwrap_or(0));
                self.size = self
                    .size
                    .checked_mul(16)
                    .and_then(|s| s.checked_add(d))
                    .filter(|&s| s <= MAX_CHUNK_SIZE)
                    .ok_or(ChunkedError::SizeOverflow)?;
                Size
            }
            (Size, b'\r') => SizeLf,
            // BWS is allowed only before `;` (RFC 9112 §7.1.1): `5 \r\n` is refused, as
            // parsers differ on it (a smuggling vector).
            (SizeWs, b'\r') => return Err(ChunkedError::InvalidSize),
            (Size | SizeWs, b';') => ExtBeforeName,
            (Size | SizeWs, _) if is_ws => SizeWs,
            (Size, b'\n') | (SizeWs, b'\n') => return Err(ChunkedError::BadLineEnding),
            (Size | SizeWs, _) => return Err(ChunkedError::InvalidSize),
            // chunk-ext = *( BWS ";" BWS ext-name [ BWS "=" BWS ext-val ] )
            (ExtBeforeName, _) if is_ws => ExtBeforeName,
            (ExtBeforeName, _) if is_tchar(b) => ExtName,
            (ExtName, _) if is_tchar(b) => ExtName,
            (ExtName, b'=') => ExtBeforeValue,
            (ExtName, b';') => ExtBeforeName,
            (ExtName, b'\r') => SizeLf,
            (ExtName, _) if is_ws => ExtAfterName,
            (ExtAfterName, _) if is_ws => ExtAfterName,
            (ExtAfterName, b'=') => ExtBeforeValue,
            (ExtAfterName, b';') => ExtBeforeName,
            (ExtAfterName, b'\r') => SizeLf,
            (ExtBeforeValue, _) if is_ws => ExtBeforeValue,
            (ExtBeforeValue, b'"') => ExtQuoted,
            (ExtBeforeValue, _) if is_tchar(b) => ExtValue,
            (ExtValue, _) if is_tchar(b) => ExtValue,
            (ExtValue, b';') => ExtBeforeName,
            (ExtValue, b'\r') => SizeLf,
            (ExtValue, _) if is_ws => SizeWs,
            (ExtQuoted, b'"') => ExtEnd,
            (ExtEnd, b'\r') => SizeLf,
            (ExtEnd, b';') => ExtBeforeName,
            (ExtEnd, _) if is_ws => SizeWs,
            (ExtQuoted, b'\\') => ExtQuotedEscape,
            (ExtQuoted, _) if is_qdtext(b) => ExtQuoted,
            (ExtQuotedEscape, _) if is_ws || (0x21..=0x7e).contains(&b) || b >= 0x80 => ExtQuoted,
            (
                ExtBeforeName | ExtName | ExtAfterName | ExtBeforeValue | ExtValue | ExtQuoted
                | ExtQuotedEscape | ExtEnd,
                _,
            ) => return Err(ChunkedError::InvalidExtension),
            (SizeLf, b'\n') => {
                self.line_len = 0;
                if self.size == 0 {
                    TrailerStart
                } else {
                    Data
                }
            }
            (SizeLf, _) => return Err(ChunkedError::BadLineEnding),
            (DataCr, b'\r') => DataLf,
            (DataLf, b'\n') => SizeStart,
            (DataCr | DataLf, _) => return Err(ChunkedError::MissingDataCrlf),
            // trailer-section = *( field-line CRLF ); obs-fold and bare LF are refused.
            (TrailerStart, b'\r') => FinalLf,
            (TrailerStart, _) if is_tchar(b) => {
                self.name_len = 0;
                self.push_name(b);
                TrailerName
            }
            (TrailerName, _) if is_tchar(b) => {
                self.push_name(b);
                TrailerName
            }
            (TrailerName, b':') => {
                let n = usize::from(self.name_len);
                if let Some(name) = self.name.get(..n) {
                    if FORBIDDEN_TRAILERS.contains(&name) {
                        return Err(ChunkedError::ForbiddenTrailer);
                    }
                }
                TrailerValue
            }
            (TrailerValue, b'\r') => TrailerLf,
            (TrailerValue, _) if super::head::is_field_value_byte(b) => TrailerValue,
            (TrailerLf, b'\n') => TrailerStart,
            (TrailerStart | TrailerName | TrailerValue | TrailerLf, _) => {
                return Err(ChunkedError::InvalidTrailer)
            }
            (FinalLf, b'\n') => Done,
            (FinalLf, _) => return Err(ChunkedError::InvalidTrailer),
            (Data | Done, _) => self.state,
            (Failed(e), _) => return Err(e),
        };
        Ok(())
    }
}

impl ChunkedDecoder {
    fn push_name(&mut self, b: u8) {
        let n = usize::from(self.name_len);
        match self.name.get_mut(n) {
            Some(slot) if self.name_len != u8::MAX => {
                *slot = b.to_ascii_lowercase();
                self.name_len += 1;
            }
            _ => self.name_len = u8::MAX,
        }
    }
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

use super::head::is_tchar;

/// RFC 9110 §5.6.4 qdtext.
fn is_qdtext(b: u8) -> bool {
    matches!(b, b'\t' | b' ' | 0x21 | 0x23..=0x5b | 0x5d..=0x7e | 0x80..=0xff)
}
