//! Request and response head parsing: `httparse` plus the strictness a proxy needs.
//!
//! Lives here: [`parse_request_head`], [`parse_response_head`], [`Parsed`], [`HeadError`] (the
//! request error, with its status) and [`ResponseError`] (always 502).
//!
//! Flow: skip up to [`MAX_LEADING_EMPTY_LINES`] CRLFs (RFC 9112 §2.2), scan for CRLF CRLF
//! while rejecting any LF not preceded by CR (strict: bare-LF line endings are refused, which
//! RFC 9112 §2.2 permits — it only says a recipient MAY accept them), and only then run
//! `httparse` once over the complete head, into a stack array of uninitialised headers. The
//! head is recorded as [`Span`]s into the caller's buffer; nothing is copied.
//!
//! INVARIANT: the returned head length is `<= max_head_bytes <= u32::MAX`, and every span
//! lies inside it. On `Partial` the head contents are unspecified (call again with more bytes).

use std::mem::MaybeUninit;

use super::fields::{finish_request, finish_response, record_headers, Role, Scan};
use super::head::{is_tchar, HeadLimits, Method, RequestHead, ResponseHead, Span, MAX_HEADERS_CAP};

/// Outcome of a parse attempt that did not fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Parsed {
    /// No complete head yet: read more bytes and call again with the whole buffer.
    Partial,
    /// The head is complete and is this many bytes long (the body starts right after).
    Complete(usize),
}

/// Empty lines (CRLF) tolerated before a request line (RFC 9112 §2.2 "SHOULD ignore at least one").
pub const MAX_LEADING_EMPTY_LINES: usize = 4;

/// Why a head was refused. For requests, [`HeadError::status`] gives the response status;
/// every error closes the client connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum HeadError {
    #[error("malformed request line")]
    BadRequestLine,
    #[error("malformed status line")]
    BadStatusLine,
    #[error("status code outside 100..=599")]
    InvalidStatus,
    #[error("malformed HTTP version")]
    InvalidVersion,
    /// A well-formed version other than HTTP/1.0 or HTTP/1.1 (RFC 9110 §15.6.6).
    #[error("unsupported HTTP version")]
    UnsupportedVersion,
    #[error("invalid request target")]
    InvalidTarget,
    #[error("request target too long")]
    TargetTooLong,
    /// We do not tunnel CONNECT: 501 (the method is not implemented by this proxy).
    #[error("CONNECT is not supported")]
    ConnectNotSupported,
    #[error("line ending without CR")]
    BareLf,
    #[error("malformed line ending")]
    BadLineEnding,
    #[error("too many empty lines before the start line")]
    TooManyEmptyLines,
    #[error("invalid header name")]
    InvalidHeaderName,
    #[error("invalid header value")]
    InvalidHeaderValue,
    /// RFC 9112 §5.1: no whitespace between field name and colon.
    #[error("whitespace between header name and colon")]
    WhitespaceBeforeColon,
    /// RFC 9112 §5.2: obsolete line folding.
    #[error("obsolete line folding")]
    ObsFold,
    #[error("head too large")]
    HeadTooLarge,
    #[error("too many header fields")]
    TooManyHeaders,
    #[error("missing Host header")]
    MissingHost,
    #[error("more than one Host header")]
    DuplicateHost,
    #[error("invalid Host header")]
    InvalidHost,
    #[error("invalid Content-Length")]
    InvalidContentLength,
    #[error("differing Content-Length values")]
    ConflictingContentLength,
    /// RFC 9112 §6.3 rule 3: both present is a smuggling vector; we refuse it.
    #[error("both Content-Length and Transfer-Encoding")]
    ContentLengthWithTransferEncoding,
    #[error("Transfer-Encoding does not end in chunked")]
    ChunkedNotLast,
    #[error("chunked applied more than once")]
    ChunkedTwice,
    #[error("malformed Transfer-Encoding")]
    InvalidTransferEncoding,
    #[error("unknown transfer coding")]
    UnknownTransferCoding,
    /// RFC 9112 §6.1: Transfer-Encoding in an HTTP/1.0 message means faulty framing.
    #[error("Transfer-Encoding in an HTTP/1.0 message")]
    TransferEncodingInHttp10,
    /// A request line without an HTTP version (an HTTP/0.9 "simple request"): RFC 9112 §3
    /// requires `method SP request-target SP HTTP-version`.
    #[error("request line without an HTTP version (HTTP/0.9 is not supported)")]
    MissingVersion,
    /// More than the two single spaces of RFC 9112 §3 (whitespace inside the request target).
    #[error("whitespace in the request target")]
    WhitespaceInTarget,
    /// A Content-Length above 2^63 - 1 (what any body length can be); 413 on requests.
    #[error("Content-Length too large")]
    ContentLengthTooLarge,
    /// An absolute-form target whose authority differs from the Host header, on a listener
    /// that refuses such requests (`host_mismatch = "reject"`).
    #[error("Host does not match the authority of the request target")]
    HostMismatch,
}

/// The request-side name of [`HeadError`].
pub type RequestError = HeadError;

impl HeadError {
    /// Status of the error response to a request refused for this reason.
    pub fn status(self) -> u16 {
        use HeadError::*;
        match self {
            TargetTooLong => 414,
            ContentLengthTooLarge => 413,
            HeadTooLarge | TooManyHeaders => 431,
            UnsupportedVersion => 505,
            ConnectNotSupported | UnknownTransferCoding => 501,
            _ => 400,
        }
    }
}

/// An upstream response head was refused: answer 502 and never reuse the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("invalid upstream response: {0}")]
pub struct ResponseError(pub HeadError);

impl ResponseError {
    pub fn status(self) -> u16 {
        502
    }
}

/// Parses a request head from the start of `buf` into `head`.
pub fn parse_request_head(
    buf: &[u8],
    limits: &HeadLimits,
    head: &mut RequestHead,
) -> Result<Parsed, RequestError> {
    head.clear();
    let max_head = limits.max_head_bytes.min(u32::MAX as usize);
    let Some(skip) = skip_empty_lines(buf, MAX_LEADING_EMPTY_LINES)? else {
        return partial(buf, max_head);
    };
    let Some(end) = find_head_end(buf, skip, max_head)? else {
        if buf.len() >= max_head {
            return Err(HeadError::HeadTooLarge);
        }
        check_partial_request_line(buf.get(skip..).unwrap_or_default(), limits)?;
        return Ok(Parsed::Partial);
    };
    let head_buf = buf.get(..end).ok_or(HeadError::BadLineEnding)?;
    let body = head_buf.get(skip..).ok_or(HeadError::BadLineEnding)?;

    let mut raw = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS_CAP];
    let max_headers = limits.max_headers.min(MAX_HEADERS_CAP);
    let mut req = httparse::Request::new(&mut []);
    let cfg = httparse::ParserConfig::default();
    match cfg.parse_request_with_uninit_headers(&mut req, body, &mut raw[..max_headers]) {
        Ok(httparse::Status::Complete(n)) if n == body.len() => {}
        Ok(_) => return Err(HeadError::BadLineEnding),
        Err(e) => return Err(request_error(e, body)),
    }

    let (Some(method), Some(target), Some(version)) = (req.method, req.path, req.version) else {
        return Err(HeadError::BadRequestLine);
    };
    head.head_len = end as u32;
    head.method_span = span_of(head_buf, method.as_bytes())?;
    head.method = Method::from_bytes(method.as_bytes());
    head.target = span_of(head_buf, target.as_bytes())?;
    if target.len() > limits.max_target_bytes {
        return Err(HeadError::TargetTooLong);
    }
    head.version_minor = version;
    if head.method == Method::Connect {
        return Err(HeadError::ConnectNotSupported);
    }
    parse_target(head_buf, head)?;

    let first_name = req.headers.first().map(|h| h.name.as_bytes());
    let line_end = match first_name {
        Some(n) => span_of(head_buf, n)?.start,
        None => end as u32 - 2,
    };
    head.request_line = Span::new(skip as u32, line_end);

    let mut scan = Scan::default();
    record_headers(
        head_buf,
        req.headers,
        &mut head.headers,
        Role::Request,
        &mut scan,
    )?;
    finish_request(head_buf, head, &scan)?;
    Ok(Parsed::Complete(end))
}

/// Parses a response head from the start of `buf`. `request_method` decides HEAD framing.
pub fn parse_response_head(
    buf: &[u8],
    limits: &HeadLimits,
    request_method: Method,
    head: &mut ResponseHead,
) -> Result<Parsed, ResponseError> {
    head.clear();
    let max_head = limits.max_head_bytes.min(u32::MAX as usize);
    // Stray CRLFs after a previous body are skipped like before a request line, so the
    // forwarded status line never starts with an empty line.
    let Some(skip) = skip_empty_lines(buf, MAX_LEADING_EMPTY_LINES).map_err(ResponseError)? else {
        return partial(buf, max_head).map_err(ResponseError);
    };
    let Some(end) = find_head_end(buf, skip, max_head).map_err(ResponseError)? else {
        return partial(buf, max_head).map_err(ResponseError);
    };
    let head_buf = buf
        .get(..end)
        .ok_or(ResponseError(HeadError::BadLineEnding))?;
    let body = head_buf
        .get(skip..)
        .ok_or(ResponseError(HeadError::BadLineEnding))?;

    let mut raw = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS_CAP];
    let max_headers = limits.max_headers.min(MAX_HEADERS_CAP);
    let mut res = httparse::Response::new(&mut []);
    let cfg = httparse::ParserConfig::default();
    match cfg.parse_response_with_uninit_headers(&mut res, body, &mut raw[..max_headers]) {
        Ok(httparse::Status::Complete(n)) if n == body.len() => {}
        Ok(_) => return Err(ResponseError(HeadError::BadLineEnding)),
        Err(e) => return Err(ResponseError(response_error(e, body))),
    }
    let (Some(code), Some(version)) = (res.code, res.version) else {
        return Err(ResponseError(HeadError::BadStatusLine));
    };
    if !(100..=599).contains(&code) {
        return Err(ResponseError(HeadError::InvalidStatus));
    }
    head.head_len = end as u32;
    head.status = code;
    head.version_minor = version;
    let line_end = match res.headers.first() {
        Some(h) => {
            span_of(head_buf, h.name.as_bytes())
                .map_err(ResponseError)?
                .start
        }
        None => end as u32 - 2,
    };
    head.status_line = Span::new(skip as u32, line_end);

    let mut scan = Scan::default();
    record_headers(
        head_buf,
        res.headers,
        &mut head.headers,
        Role::Response,
        &mut scan,
    )
    .map_err(ResponseError)?;
    finish_response(head_buf, head, request_method, &scan)
        .map_err(ResponseError)
        .map(|()| Parsed::Complete(end))
}

fn partial(buf: &[u8], max_head: usize) -> Result<Parsed, HeadError> {
    if buf.len() >= max_head {
        Err(HeadError::HeadTooLarge)
    } else {
        Ok(Parsed::Partial)
    }
}

/// Skips leading CRLFs. `Ok(None)` when the buffer holds nothing but (part of) empty lines.
fn skip_empty_lines(buf: &[u8], max: usize) -> Result<Option<usize>, HeadError> {
    let mut i = 0;
    let mut lines = 0;
    loop {
        match buf.get(i..) {
            Some([b'\r', b'\n', ..]) => {
                lines += 1;
                if lines > max {
                    return Err(HeadError::TooManyEmptyLines);
                }
                i += 2;
            }
            Some([b'\r']) | Some([]) | None => return Ok(None),
            Some([b'\n', ..]) => return Err(HeadError::BareLf),
            Some(_) => return Ok(Some(i)),
        }
    }
}

/// Finds the end of the head (just past CRLF CRLF) within `buf[..max]`, scanning from `from`.
/// Every LF seen must follow a CR (strict line endings).
fn find_head_end(buf: &[u8], from: usize, max: usize) -> Result<Option<usize>, HeadError> {
    let limit = buf.len().min(max);
    let Some(region) = buf.get(from..limit) else {
        return Ok(None);
    };
    let mut pos = 0;
    while let Some(off) = region.get(pos..).and_then(find_lf) {
        let i = pos + off;
        if i == 0 || region.get(i - 1) != Some(&b'\r') {
            return Err(HeadError::BareLf);
        }
        if i >= 3 && region.get(i - 3..=i) == Some(b"\r\n\r\n") {
            return Ok(Some(from + i + 1));
        }
        pos = i + 1;
    }
    Ok(None)
}

/// Position of the first LF, eight bytes at a time (SWAR zero-byte test on `word ^ 0x0a..`).
#[inline]
pub(super) fn find_lf(hay: &[u8]) -> Option<usize> {
    const LO: u64 = 0x0101_0101_0101_0101;
    const HI: u64 = 0x8080_8080_8080_8080;
    const LF: u64 = LO * b'\n' as u64;
    let mut chunks = hay.chunks_exact(8);
    let mut base = 0;
    for c in chunks.by_ref() {
        let mut w = [0u8; 8];
        w.copy_from_slice(c);
        let x = u64::from_le_bytes(w) ^ LF;
        let found = x.wrapping_sub(LO) & !x & HI;
        if found != 0 {
            // The lowest flagged byte is exact (borrows only propagate upwards).
            return Some(base + (found.trailing_zeros() / 8) as usize);
        }
        base += 8;
    }
    chunks
        .remainder()
        .iter()
        .position(|&b| b == b'\n')
        .map(|i| base + i)
}

/// On an incomplete head, refuse an over-long request target early (414) instead of waiting
/// for the head limit. Fires only when the target seen so far is already longer than allowed,
/// so a complete head with the same prefix is refused too.
fn check_partial_request_line(rest: &[u8], limits: &HeadLimits) -> Result<(), HeadError> {
    let line_len = rest.iter().position(|&b| b == b'\r').unwrap_or(rest.len());
    let line = rest.get(..line_len).unwrap_or_default();
    // The method is a token (RFC 9110 §9.1): a byte that cannot be part of one (a TLS
    // ClientHello's 0x16, a binary protocol) is refused now, not after the head timeout.
    let method_len = line.iter().position(|&b| b == b' ').unwrap_or(line.len());
    if !line
        .get(..method_len)
        .unwrap_or_default()
        .iter()
        .all(|&b| super::head::is_tchar(b))
    {
        return Err(HeadError::BadRequestLine);
    }
    // The request line is complete (its CRLF arrived): it must have its three parts now,
    // or the client may be an HTTP/0.9 one waiting for an answer that never comes.
    if rest.get(line_len..line_len + 2) == Some(b"\r\n") {
        check_request_line_shape(line)?;
    }
    if let Some(sp) = line.iter().position(|&b| b == b' ') {
        let target = line.get(sp + 1..).unwrap_or_default();
        let target_len = target
            .iter()
            .position(|&b| b == b' ')
            .unwrap_or(target.len());
        if target_len > limits.max_target_bytes {
            return Err(HeadError::TargetTooLong);
        }
    }
    Ok(())
}

/// Offset of `part` (a subslice handed back by httparse) within `base`.
pub(super) fn span_of(base: &[u8], part: &[u8]) -> Result<Span, HeadError> {
    let start = (part.as_ptr() as usize).wrapping_sub(base.as_ptr() as usize);
    let end = start.wrapping_add(part.len());
    if start > base.len() || end > base.len() || end < start {
        return Err(HeadError::BadLineEnding);
    }
    Ok(Span::new(start as u32, end as u32))
}

fn request_error(e: httparse::Error, body: &[u8]) -> HeadError {
    match e {
        httparse::Error::HeaderName => diagnose_header_name(body),
        httparse::Error::HeaderValue => HeadError::InvalidHeaderValue,
        httparse::Error::NewLine => HeadError::BadLineEnding,
        httparse::Error::TooManyHeaders => HeadError::TooManyHeaders,
        httparse::Error::Version => version_error(first_line(body)),
        _ => HeadError::BadRequestLine,
    }
}

fn response_error(e: httparse::Error, head: &[u8]) -> HeadError {
    match e {
        httparse::Error::HeaderName => diagnose_header_name(head),
        httparse::Error::HeaderValue => HeadError::InvalidHeaderValue,
        httparse::Error::NewLine => HeadError::BadLineEnding,
        httparse::Error::TooManyHeaders => HeadError::TooManyHeaders,
        httparse::Error::Version => HeadError::InvalidVersion,
        httparse::Error::Status => HeadError::InvalidStatus,
        _ => HeadError::BadStatusLine,
    }
}

fn first_line(b: &[u8]) -> &[u8] {
    let n = b.iter().position(|&c| c == b'\r').unwrap_or(b.len());
    b.get(..n).unwrap_or_default()
}

/// RFC 9112 §3: exactly `method SP request-target SP HTTP-version`. Fewer parts is an
/// HTTP/0.9 request (no version); more spaces means whitespace inside the target. Both 400.
fn check_request_line_shape(line: &[u8]) -> Result<(), HeadError> {
    match line.iter().filter(|&&b| b == b' ').count() {
        0 | 1 => Err(HeadError::MissingVersion),
        2 => Ok(()),
        _ => Err(HeadError::WhitespaceInTarget),
    }
}

/// `HTTP/<digit>.<digit>` that is not 1.0/1.1 is a 505; anything else a 400; a request line
/// of the wrong shape (see [`check_request_line_shape`]) a 400 too.
fn version_error(request_line: &[u8]) -> HeadError {
    if let Err(e) = check_request_line_shape(request_line) {
        return e;
    }
    let v = match request_line.iter().rposition(|&b| b == b' ') {
        Some(sp) => request_line.get(sp + 1..).unwrap_or_default(),
        None => return HeadError::InvalidVersion,
    };
    match v {
        [b'H', b'T', b'T', b'P', b'/', a, b'.', b] if a.is_ascii_digit() && b.is_ascii_digit() => {
            HeadError::UnsupportedVersion
        }
        _ => HeadError::InvalidVersion,
    }
}

/// httparse reports every bad header line as `HeaderName`; find the first bad line and say why.
fn diagnose_header_name(head: &[u8]) -> HeadError {
    let mut lines = head.split(|&b| b == b'\n').skip(1);
    for line in lines.by_ref() {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            break;
        }
        if matches!(line.first(), Some(b' ' | b'\t')) {
            return HeadError::ObsFold;
        }
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            return HeadError::InvalidHeaderName;
        };
        let name = line.get(..colon).unwrap_or_default();
        if let Some(bad) = name.iter().position(|&b| !is_tchar(b)) {
            let tail = name.get(bad..).unwrap_or_default();
            if bad > 0 && tail.iter().all(|&b| b == b' ' || b == b'\t') {
                return HeadError::WhitespaceBeforeColon;
            }
            return HeadError::InvalidHeaderName;
        }
        if name.is_empty() {
            return HeadError::InvalidHeaderName;
        }
    }
    HeadError::InvalidHeaderName
}

/// Checks the target's form and splits it into path, query and authority (RFC 9112 §3.2).
/// Origin-form `/p?q`, absolute-form `http(s)://authority/p?q`, asterisk-form `*` (OPTIONS
/// only). Fragments (`#`) and non-ASCII bytes are refused.
fn parse_target(buf: &[u8], head: &mut RequestHead) -> Result<(), HeadError> {
    let t = head.target.get(buf);
    if t.iter().any(|&b| b == b'#' || b >= 0x80) {
        return Err(HeadError::InvalidTarget);
    }
    let base = head.target.start;
    let (path_start, authority) = match t {
        [b'/', ..] => (0usize, None),
        b"*" if head.method == Method::Options => {
            head.path = head.target;
            return Ok(());
        }
        _ => {
            let scheme_len = if starts_with_ci(t, b"http://") {
                7
            } else if starts_with_ci(t, b"https://") {
                8
            } else {
                return Err(HeadError::InvalidTarget);
            };
            let rest = t.get(scheme_len..).unwrap_or_default();
            let auth_len = rest
                .iter()
                .position(|&b| b == b'/' || b == b'?')
                .unwrap_or(rest.len());
            // RFC 9110 §4.2.1, §4.2.4: an http(s) URI has a non-empty host and no userinfo.
            if auth_len == 0 || !super::fields::is_valid_authority(&rest[..auth_len]) {
                return Err(HeadError::InvalidTarget);
            }
            let a = base + scheme_len as u32;
            (
                scheme_len + auth_len,
                Some(Span::new(a, a + auth_len as u32)),
            )
        }
    };
    let after = t.get(path_start..).unwrap_or_default();
    let path_len = after.iter().position(|&b| b == b'?').unwrap_or(after.len());
    let p = base + path_start as u32;
    head.path = Span::new(p, p + path_len as u32);
    head.query = (path_len < after.len()).then(|| Span::new(head.path.end + 1, head.target.end));
    head.authority = authority;
    Ok(())
}

fn starts_with_ci(s: &[u8], prefix: &[u8]) -> bool {
    s.get(..prefix.len())
        .is_some_and(|p| p.eq_ignore_ascii_case(prefix))
}
