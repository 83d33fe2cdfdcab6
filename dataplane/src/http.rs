//! Zero-copy HTTP/1.1 codec (RFC 9112): request and response heads, chunked body validation,
//! and writing forwarded heads. Pure: no I/O, no allocation per message once the caller's
//! reused `Vec`s have grown.
//!
//! # Shape
//! Heads are parsed where the bytes landed: a [`RequestHead`] / [`ResponseHead`] holds [`Span`]s
//! (`u32` offsets) into the caller's buffer, never copies.
//!
//! ```text
//! parse_request_head(buf, &HeadLimits, &mut RequestHead)            -> Result<Parsed, RequestError>
//! parse_response_head(buf, &HeadLimits, Method, &mut ResponseHead)  -> Result<Parsed, ResponseError>
//!     Parsed::Partial        read more, call again with the whole (grown) buffer
//!     Parsed::Complete(n)    head is buf[..n]; body / next pipelined message starts at n
//! ChunkedDecoder::feed(&[u8]) -> Result<consumed, ChunkedError>; is_done(); data_bytes()
//! request_segments(&RequestHead, buf, &RequestExtras, &mut added, &mut segs) (forward upstream)
//! response_segments(&ResponseHead, &ResponseExtras, &mut added, &mut segs) (forward to client)
//! write_segments(&segs, buf, &added, &mut out); write_simple_response(status, body, close, &mut out)
//! ```
//!
//! # Decisions (strict by default; each refusal is its own [`HeadError`] variant)
//! - Line endings must be CRLF; a bare LF is refused (RFC 9112 §2.2 allows either choice).
//!   Up to [`MAX_LEADING_EMPTY_LINES`] empty lines before a request line are skipped (§2.2).
//! - Versions: HTTP/1.0 and HTTP/1.1. A well-formed other version (`HTTP/2.0`) is 505, garbage 400.
//! - CONNECT is refused with 501: this proxy does not tunnel.
//! - Target forms (§3.2): origin, absolute (`http(s)://authority/path`, path span is the path
//!   part, `authority` is set; Host is still required on 1.1 and forwarded unchanged), asterisk
//!   (OPTIONS only). Fragments and non-ASCII bytes are refused.
//! - Framing (§6.3) and field rules: see `fields`. CL+TE, differing CLs, TE not ending in chunked
//!   (requests), chunked twice, TE on 1.0: 400; unknown coding: 501; obs-fold, whitespace before
//!   colon, control characters: 400; missing/duplicate Host on 1.1: 400; target over the limit:
//!   414; head over the limit or too many fields: 431.
//! - Hop-by-hop (`forward == false`): Connection and the fields it names (except Host,
//!   Content-Length, Transfer-Encoding), Keep-Alive, Proxy-Connection, TE, Trailer,
//!   HTTP2-Settings, Upgrade (kept for a WebSocket upgrade / 101), and the client's
//!   X-Forwarded-Proto. Transfer-Encoding is forwarded as-is: chunked bodies are passed through.
//! - Every request error closes the client connection ([`HeadError::status`] gives the status);
//!   every [`ResponseError`] is a 502 and the upstream connection is not reused.
//! - `Expect: 100-continue` sets `expect_continue` (HTTP/1.1 only) and is still forwarded; the
//!   proxy may answer [`CONTINUE_100`] itself and must swallow an upstream 100 (`is_interim`).

mod body;
mod fields;
pub mod fuzz_logic;
mod head;
mod parse;
pub mod rewrite;
mod view;
mod write;

pub use body::{
    ChunkedDecoder, ChunkedError, FORBIDDEN_TRAILERS, MAX_CHUNK_LINE_BYTES, MAX_TRAILER_BYTES,
};
pub use head::{
    BodyFraming, HeadLimits, HeaderField, Method, RequestHead, ResponseFraming, ResponseHead, Span,
    MAX_HEADERS_CAP,
};
pub use parse::{
    parse_request_head, parse_response_head, HeadError, Parsed, RequestError, ResponseError,
    MAX_LEADING_EMPTY_LINES,
};
pub use view::{authority_matches_host, HeadView, RequestParts, RequestView, WithPrincipal};
pub use write::{
    reason_phrase, request_segments, response_segments, write_request_line, write_segments,
    write_simple_response, write_simple_response_with, RequestExtras, ResponseExtras, Segment,
    CONTINUE_100,
};

#[cfg(test)]
mod tests;
