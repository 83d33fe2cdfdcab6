//! Writing heads: forwarded heads as segments of the original buffer plus added bytes, and
//! the small complete responses the proxy produces itself.
//!
//! A forwarded head is a list of [`Segment`]s: `Orig` spans point into the buffer the head
//! was parsed from (start line and every `forward` header line, adjacent lines coalesced into
//! one span), `Added` spans point into a caller-owned `added` Vec that is cleared and refilled.
//! The last segment is always `Added` and ends with the CRLF that closes the head. Nothing is
//! allocated once `added` and `segs` have grown. glommio has no vectored write, so
//! [`write_segments`] copies the segments into a connection's write buffer when needed.

use std::io::Write as _;
use std::net::IpAddr;

use super::head::{RequestHead, ResponseHead, Span};

/// A piece of an outgoing head.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Segment {
    /// Bytes of the buffer the head was parsed from.
    Orig(Span),
    /// Bytes of the `added` Vec.
    Added(Span),
}

impl Segment {
    /// The bytes of this segment.
    pub fn bytes<'a>(&self, orig: &'a [u8], added: &'a [u8]) -> &'a [u8] {
        match self {
            Segment::Orig(s) => s.get(orig),
            Segment::Added(s) => s.get(added),
        }
    }
}

/// What the proxy adds to a forwarded request.
#[derive(Debug, Clone, Copy)]
pub struct RequestExtras<'a> {
    /// Appended as its own `x-forwarded-for` line (an incoming one is kept).
    pub client_ip: IpAddr,
    /// `"http"` or `"https"`; the client's X-Forwarded-Proto is always replaced.
    pub proto: &'static str,
    /// Written as `x-request-id` only if the request has none.
    pub request_id: Option<&'a [u8]>,
}

/// What the proxy adds to a forwarded response.
#[derive(Debug, Clone, Copy, Default)]
pub struct ResponseExtras {
    /// Add `connection: close` (the proxy closes the client connection after this response).
    pub close: bool,
    /// Add `connection: keep-alive` (an HTTP/1.0 client whose connection is kept).
    pub keep_alive_http10: bool,
}

/// `100 Continue` the proxy sends itself for `Expect: 100-continue`.
pub const CONTINUE_100: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";

/// Writes a request line in origin-form into `added`: `METHOD SP new_prefix path-rest
/// [?query] SP HTTP/1.x CRLF`, where path-rest is the path without its first `strip` bytes
/// (RFC 9112 §3.2.1; an absolute-form target's empty path becomes `/`, or `*` for OPTIONS,
/// §3.2.4). Returns the span written.
pub(super) fn write_origin_line(
    head: &RequestHead,
    buf: &[u8],
    strip: usize,
    new_prefix: &[u8],
    added: &mut Vec<u8>,
) -> Span {
    let start = added.len() as u32;
    added.extend_from_slice(head.method_span.get(buf));
    added.push(b' ');
    let path = head.path.get(buf);
    let rest = path.get(strip..).unwrap_or_default();
    if new_prefix.is_empty() && rest.is_empty() {
        added.extend_from_slice(
            if head.method == super::Method::Options && head.query.is_none() {
                b"*"
            } else {
                b"/"
            },
        );
    } else {
        added.extend_from_slice(new_prefix);
        added.extend_from_slice(rest);
    }
    if let Some(q) = head.query {
        added.push(b'?');
        added.extend_from_slice(q.get(buf));
    }
    added.extend_from_slice(if head.version_minor == 0 {
        b" HTTP/1.0\r\n"
    } else {
        b" HTTP/1.1\r\n"
    });
    Span::new(start, added.len() as u32)
}

/// Appends the request line as it is forwarded: as received, or in origin-form for an
/// absolute-form target (see [`request_segments`]).
pub fn write_request_line(head: &RequestHead, buf: &[u8], out: &mut Vec<u8>) {
    if head.authority.is_some() {
        write_origin_line(head, buf, 0, b"", out);
    } else {
        out.extend_from_slice(head.request_line.get(buf));
    }
}

/// Segments of the request head to send upstream: request line and forwarded header lines as
/// they were received (an absolute-form target is sent in origin-form, its authority as
/// `host`), then `content-length` (when only a list form was received), `x-forwarded-for`,
/// `x-forwarded-proto`, `x-request-id` (if absent), `connection: upgrade` (WebSocket upgrade
/// only) and the final CRLF. `buf` is the buffer the head was parsed from.
pub fn request_segments(
    head: &RequestHead,
    buf: &[u8],
    extras: &RequestExtras<'_>,
    added: &mut Vec<u8>,
    segs: &mut Vec<Segment>,
) {
    segs.clear();
    added.clear();
    if let Some(authority) = head.authority {
        let line = write_origin_line(head, buf, 0, b"", added);
        segs.push(Segment::Added(line));
        let mut forwarded = head.headers.iter().filter(|h| h.forward).map(|h| h.line);
        if let Some(first) = forwarded.next() {
            push_orig(segs, first, forwarded);
        }
        added.extend_from_slice(b"host: ");
        added.extend_from_slice(authority.get(buf));
        added.extend_from_slice(b"\r\n");
    } else {
        push_orig(
            segs,
            head.request_line,
            head.headers.iter().filter(|h| h.forward).map(|h| h.line),
        );
    }
    if let (true, Some(n)) = (head.content_length_line, head.content_length) {
        let _ = write!(added, "content-length: {n}\r\n");
    }
    // Writes into a Vec cannot fail; Display for IpAddr does not allocate.
    let _ = write!(added, "x-forwarded-for: {}\r\n", extras.client_ip);
    added.extend_from_slice(b"x-forwarded-proto: ");
    added.extend_from_slice(extras.proto.as_bytes());
    added.extend_from_slice(b"\r\n");
    // An id with anything but visible ASCII is dropped rather than risk header injection.
    if let (None, Some(id)) = (head.request_id, extras.request_id) {
        if !id.is_empty() && id.iter().all(|b| b.is_ascii_graphic()) {
            added.extend_from_slice(b"x-request-id: ");
            added.extend_from_slice(id);
            added.extend_from_slice(b"\r\n");
        }
    }
    if head.websocket_upgrade {
        added.extend_from_slice(b"connection: upgrade\r\n");
    }
    added.extend_from_slice(b"\r\n");
    segs.push(Segment::Added(Span::new(
        tail_start(segs),
        added.len() as u32,
    )));
}

/// Where the final `Added` segment starts: after every byte an earlier `Added` segment uses.
fn tail_start(segs: &[Segment]) -> u32 {
    segs.iter()
        .filter_map(|s| match s {
            Segment::Added(a) => Some(a.end),
            Segment::Orig(_) => None,
        })
        .max()
        .unwrap_or(0)
}

/// Segments of the response head to send to the client: status line and forwarded header
/// lines, then `connection: upgrade` for a 101, else `connection: close` if `close`, else
/// `connection: keep-alive` for a kept HTTP/1.0 client, and the final CRLF.
pub fn response_segments(
    head: &ResponseHead,
    extras: &ResponseExtras,
    added: &mut Vec<u8>,
    segs: &mut Vec<Segment>,
) {
    segs.clear();
    added.clear();
    // The proxy speaks HTTP/1.1 to the client whatever the upstream spoke (RFC 9110 §6.2:
    // the version is hop-by-hop); an HTTP/1.0 status line gets its version rewritten.
    let mut status_line = head.status_line;
    if head.version_minor == 0 && status_line.len() > HTTP_VERSION_LEN {
        added.extend_from_slice(b"HTTP/1.1");
        segs.push(Segment::Added(Span::new(0, HTTP_VERSION_LEN as u32)));
        status_line.start += HTTP_VERSION_LEN as u32;
    }
    let tail_start = added.len() as u32;
    push_orig(
        segs,
        status_line,
        head.headers.iter().filter(|h| h.forward).map(|h| h.line),
    );
    if let (true, Some(n)) = (head.content_length_line, head.content_length) {
        let _ = write!(added, "content-length: {n}\r\n");
    }
    if head.is_upgrade() {
        added.extend_from_slice(b"connection: upgrade\r\n");
    } else if extras.close {
        added.extend_from_slice(b"connection: close\r\n");
    } else if extras.keep_alive_http10 {
        added.extend_from_slice(b"connection: keep-alive\r\n");
    }
    added.extend_from_slice(b"\r\n");
    segs.push(Segment::Added(Span::new(tail_start, added.len() as u32)));
}

/// Length of `HTTP/1.x`.
const HTTP_VERSION_LEN: usize = 8;

/// Pushes `first` and `lines` as `Orig` segments, merging spans that touch.
fn push_orig(segs: &mut Vec<Segment>, first: Span, lines: impl Iterator<Item = Span>) {
    let mut cur = first;
    for line in lines {
        if line.start == cur.end {
            cur.end = line.end;
        } else {
            segs.push(Segment::Orig(cur));
            cur = line;
        }
    }
    segs.push(Segment::Orig(cur));
}

/// Appends the bytes of `segs` to `out`.
pub fn write_segments(segs: &[Segment], orig: &[u8], added: &[u8], out: &mut Vec<u8>) {
    for s in segs {
        out.extend_from_slice(s.bytes(orig, added));
    }
}

/// Appends a complete response produced by the proxy (errors, admin): status line,
/// `server: ringway`, `content-type: text/plain`, `content-length`, `connection: close` if
/// `close`, then `body`. For a response to HEAD pass an empty body.
pub fn write_simple_response(status: u16, body: &[u8], close: bool, out: &mut Vec<u8>) {
    write_simple_response_with(status, std::iter::empty(), body, close, out)
}

/// [`write_simple_response`] with extra header lines (e.g. `retry-after`), written after
/// `content-length`. Names and values must be valid field tokens / visible ASCII (they come
/// from the proxy itself, never from a client).
pub fn write_simple_response_with<'a>(
    status: u16,
    headers: impl Iterator<Item = (&'a str, &'a str)>,
    body: &[u8],
    close: bool,
    out: &mut Vec<u8>,
) {
    // Writes into a Vec cannot fail; integer Display does not allocate.
    let _ = write!(
        out,
        "HTTP/1.1 {} {}\r\nserver: ringway\r\ncontent-type: text/plain\r\ncontent-length: {}\r\n",
        status,
        reason_phrase(status),
        body.len()
    );
    for (name, value) in headers {
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    if close {
        out.extend_from_slice(b"connection: close\r\n");
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(body);
}

/// Reason phrase for a status (RFC 9110 §15); `"Unknown"` for codes not listed.
pub fn reason_phrase(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        101 => "Switching Protocols",
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        204 => "No Content",
        206 => "Partial Content",
        301 => "Moved Permanently",
        302 => "Found",
        303 => "See Other",
        304 => "Not Modified",
        307 => "Temporary Redirect",
        308 => "Permanent Redirect",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        411 => "Length Required",
        413 => "Content Too Large",
        414 => "URI Too Long",
        415 => "Unsupported Media Type",
        417 => "Expectation Failed",
        421 => "Misdirected Request",
        426 => "Upgrade Required",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        505 => "HTTP Version Not Supported",
        508 => "Loop Detected",
        _ => "Unknown",
    }
}
