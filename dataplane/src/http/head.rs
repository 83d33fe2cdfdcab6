//! Parsed message heads as offsets into the caller's receive buffer, and header classification.
//!
//! Lives here: [`Span`], [`Method`], [`HeaderField`], [`RequestHead`], [`ResponseHead`], the
//! framing enums, [`HeadLimits`], and the name table that says which header fields are
//! hop-by-hop (RFC 9110 §7.6.1) or carry framing. Parsing lives in `parse`, bodies in `body`.
//!
//! INVARIANT: every [`Span`] held by a head produced by `parse_request_head` /
//! `parse_response_head` satisfies `start <= end <= head_len`, so `span.get(buf)` on the same
//! buffer never goes out of bounds. `clear()` keeps the capacity of `headers`, so a head reused
//! across requests stops allocating once it has grown to the largest header count seen.

/// A byte range `start..end` of the buffer a head was parsed from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Span {
    pub start: u32,
    pub end: u32,
}

impl Span {
    pub const EMPTY: Span = Span { start: 0, end: 0 };

    #[inline]
    pub fn new(start: u32, end: u32) -> Span {
        Span { start, end }
    }

    /// The bytes of this span; empty if the span does not fit `buf` (never panics).
    #[inline]
    pub fn get<'a>(&self, buf: &'a [u8]) -> &'a [u8] {
        buf.get(self.start as usize..self.end as usize)
            .unwrap_or_default()
    }

    #[inline]
    pub fn len(&self) -> usize {
        self.end.saturating_sub(self.start) as usize
    }

    #[inline]
    pub fn is_empty(&self) -> bool {
        self.end <= self.start
    }
}

/// Request method (RFC 9110 §9). Methods are case-sensitive: `get` is `Other`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Method {
    #[default]
    Get,
    Head,
    Post,
    Put,
    Delete,
    Options,
    Trace,
    Connect,
    Patch,
    /// Any other token; its bytes are `RequestHead::method_span`.
    Other,
}

impl Method {
    pub fn from_bytes(b: &[u8]) -> Method {
        match b {
            b"GET" => Method::Get,
            b"HEAD" => Method::Head,
            b"POST" => Method::Post,
            b"PUT" => Method::Put,
            b"DELETE" => Method::Delete,
            b"OPTIONS" => Method::Options,
            b"TRACE" => Method::Trace,
            b"CONNECT" => Method::Connect,
            b"PATCH" => Method::Patch,
            _ => Method::Other,
        }
    }

    /// RFC 9110 §9.2.2: GET, HEAD, OPTIONS, TRACE, PUT, DELETE. Unknown methods are not.
    pub fn is_idempotent(self) -> bool {
        matches!(
            self,
            Method::Get
                | Method::Head
                | Method::Put
                | Method::Delete
                | Method::Options
                | Method::Trace
        )
    }
}

/// Limits applied while parsing a head (the listener's `[listeners.limits]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeadLimits {
    /// Whole head, including leading empty lines and the final CRLF. Over it: 431.
    pub max_head_bytes: usize,
    /// Request target. Over it: 414.
    pub max_target_bytes: usize,
    /// Header field lines (capped at [`MAX_HEADERS_CAP`]). Over it: 431.
    pub max_headers: usize,
}

/// The parser keeps a stack array of this many `httparse` headers; config validation caps
/// `max_headers` at the same value.
pub const MAX_HEADERS_CAP: usize = 256;

impl HeadLimits {
    /// The defaults of `[listeners.limits]` (docs/configuration.md).
    pub const DEFAULT: HeadLimits = HeadLimits {
        max_head_bytes: 65536,
        max_target_bytes: 8192,
        max_headers: 100,
    };
}

impl Default for HeadLimits {
    fn default() -> Self {
        HeadLimits::DEFAULT
    }
}

/// One header field line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeaderField {
    pub name: Span,
    /// Field value without leading and trailing whitespace (RFC 9112 §5.1).
    pub value: Span,
    /// The whole line including its CRLF; consecutive lines are adjacent.
    pub line: Span,
    /// False for hop-by-hop fields the proxy must not forward (RFC 9110 §7.6.1).
    pub forward: bool,
}

/// How the request body is delimited (RFC 9112 §6.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BodyFraming {
    /// No body (no Content-Length and no Transfer-Encoding, or `Content-Length: 0`).
    #[default]
    None,
    /// Exactly this many bytes (never 0).
    Length(u64),
    /// Chunked; pass it through a `ChunkedDecoder`.
    Chunked,
}

/// How the response body is delimited (RFC 9112 §6.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ResponseFraming {
    /// No body: response to HEAD, 1xx, 204, 304, or `Content-Length: 0`.
    #[default]
    None,
    /// Exactly this many bytes (never 0).
    Length(u64),
    /// Chunked; pass it through a `ChunkedDecoder`.
    Chunked,
    /// Body runs until the upstream closes (no length, or a final coding other than chunked).
    CloseDelimited,
}

/// A parsed request head. Reuse it across requests; the parser calls [`RequestHead::clear`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RequestHead {
    /// Bytes of the head including leading empty lines and the terminating CRLF CRLF.
    pub head_len: u32,
    /// The request line including its CRLF (leading empty lines excluded).
    pub request_line: Span,
    pub method: Method,
    pub method_span: Span,
    /// The request target as received.
    pub target: Span,
    /// Path part of the target: before `?`. For absolute-form, the part after the authority;
    /// empty when the absolute-form target has no path (treat as `/`). `*` for asterisk-form.
    pub path: Span,
    /// Query after `?`, without the `?`.
    pub query: Option<Span>,
    /// The authority of an absolute-form target (`http://host:port/...`).
    pub authority: Option<Span>,
    /// 0 for HTTP/1.0, 1 for HTTP/1.1.
    pub version_minor: u8,
    /// Value of the (single) Host field.
    pub host: Option<Span>,
    pub framing: BodyFraming,
    /// Client connection may be reused after this exchange (RFC 9112 §9.3).
    pub keep_alive: bool,
    /// HTTP/1.1 request with `Expect: 100-continue`.
    pub expect_continue: bool,
    /// HTTP/1.1 GET with `Upgrade: websocket` and `Connection: upgrade`; Upgrade is then
    /// forwarded and the writer adds `connection: upgrade`.
    pub websocket_upgrade: bool,
    /// The client offered `Upgrade: h2c`; recorded only, never forwarded.
    pub h2c_upgrade: bool,
    /// Value of the first `X-Request-Id` field.
    pub request_id: Option<Span>,
    /// The Content-Length value, if the head has one.
    pub content_length: Option<u64>,
    /// No single-valued Content-Length field is forwarded (only a list such as `5, 5`): the
    /// writer adds one `content-length` line (RFC 9110 §8.6: forward exactly one).
    pub content_length_line: bool,
    pub headers: Vec<HeaderField>,
}

impl RequestHead {
    /// Resets every field; keeps the capacity of `headers`.
    pub fn clear(&mut self) {
        let mut headers = std::mem::take(&mut self.headers);
        headers.clear();
        *self = RequestHead {
            headers,
            ..RequestHead::default()
        };
    }

    /// First header value whose name equals `name_lowercase` case-insensitively.
    pub fn header<'a>(&self, buf: &'a [u8], name_lowercase: &str) -> Option<&'a [u8]> {
        find_header(&self.headers, buf, name_lowercase)
    }
}

/// A parsed response head. Reuse it; the parser calls [`ResponseHead::clear`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResponseHead {
    pub head_len: u32,
    /// The status line including its CRLF.
    pub status_line: Span,
    pub status: u16,
    pub version_minor: u8,
    pub framing: ResponseFraming,
    /// The upstream connection may be reused after this response's body.
    pub keep_alive: bool,
    /// As [`RequestHead::content_length`].
    pub content_length: Option<u64>,
    /// As [`RequestHead::content_length_line`].
    pub content_length_line: bool,
    pub headers: Vec<HeaderField>,
}

impl ResponseHead {
    pub fn clear(&mut self) {
        let mut headers = std::mem::take(&mut self.headers);
        headers.clear();
        *self = ResponseHead {
            headers,
            ..ResponseHead::default()
        };
    }

    /// 1xx other than 101: another head follows on the same connection.
    pub fn is_interim(&self) -> bool {
        (100..200).contains(&self.status) && self.status != 101
    }

    /// 101 Switching Protocols: after this head both sides speak the upgraded protocol.
    pub fn is_upgrade(&self) -> bool {
        self.status == 101
    }

    pub fn header<'a>(&self, buf: &'a [u8], name_lowercase: &str) -> Option<&'a [u8]> {
        find_header(&self.headers, buf, name_lowercase)
    }
}

fn find_header<'a>(headers: &[HeaderField], buf: &'a [u8], name: &str) -> Option<&'a [u8]> {
    headers
        .iter()
        .find(|h| h.name.get(buf).eq_ignore_ascii_case(name.as_bytes()))
        .map(|h| h.value.get(buf))
}

/// Header names the codec treats specially.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum HeaderKind {
    Host,
    ContentLength,
    TransferEncoding,
    Connection,
    Upgrade,
    Expect,
    XRequestId,
    /// Always hop-by-hop: Keep-Alive, Proxy-Connection, TE, Trailer, HTTP2-Settings, and the
    /// client's X-Forwarded-Proto (the proxy writes its own).
    Strip,
    Other,
}

impl HeaderKind {
    /// Classifies a header name (case-insensitive), dispatching on length first.
    pub(crate) fn of(name: &[u8]) -> HeaderKind {
        let is = |s: &[u8]| name.eq_ignore_ascii_case(s);
        match name.len() {
            2 if is(b"te") => HeaderKind::Strip,
            4 if is(b"host") => HeaderKind::Host,
            6 if is(b"expect") => HeaderKind::Expect,
            7 if is(b"upgrade") => HeaderKind::Upgrade,
            7 if is(b"trailer") => HeaderKind::Strip,
            10 if is(b"connection") => HeaderKind::Connection,
            10 if is(b"keep-alive") => HeaderKind::Strip,
            12 if is(b"x-request-id") => HeaderKind::XRequestId,
            14 if is(b"content-length") => HeaderKind::ContentLength,
            14 if is(b"http2-settings") => HeaderKind::Strip,
            16 if is(b"proxy-connection") => HeaderKind::Strip,
            17 if is(b"transfer-encoding") => HeaderKind::TransferEncoding,
            17 if is(b"x-forwarded-proto") => HeaderKind::Strip,
            _ => HeaderKind::Other,
        }
    }

    /// Fields a `Connection` option may not strip: removing them would change framing or
    /// routing between the proxy and the upstream (request smuggling).
    pub(crate) fn protected(self) -> bool {
        matches!(
            self,
            HeaderKind::Host | HeaderKind::ContentLength | HeaderKind::TransferEncoding
        )
    }
}

/// RFC 9110 §5.6.2 `tchar`.
#[inline]
pub(crate) fn is_tchar(b: u8) -> bool {
    matches!(b,
        b'!' | b'#' | b'$' | b'%' | b'&' | b'\'' | b'*' | b'+' | b'-' | b'.' | b'^' | b'_' | b'`'
        | b'|' | b'~' | b'0'..=b'9' | b'a'..=b'z' | b'A'..=b'Z')
}

/// RFC 9110 §5.5 field-vchar, SP or HTAB (obs-text allowed).
#[inline]
pub(crate) fn is_field_value_byte(b: u8) -> bool {
    b == b'\t' || (b' '..=b'~').contains(&b) || b >= 0x80
}

/// Splits a comma-separated field value into trimmed elements, skipping empty ones
/// (RFC 9110 §5.6.1: recipients accept empty list elements).
pub(crate) fn list_elements(value: &[u8]) -> impl Iterator<Item = &[u8]> {
    value
        .split(|&b| b == b',')
        .map(trim_ows)
        .filter(|e| !e.is_empty())
}

#[inline]
pub(crate) fn trim_ows(mut s: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = s {
        s = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = s {
        s = rest;
    }
    s
}
