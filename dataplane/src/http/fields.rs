//! Semantics of individual header fields and the framing decision (RFC 9112 §6.3).
//!
//! Lives here: recording httparse's headers as [`HeaderField`] spans, the per-field checks
//! (Host, Content-Length, Transfer-Encoding, Connection, Upgrade, Expect, X-Request-Id), the
//! hop-by-hop `forward` flags (RFC 9110 §7.6.1) and the body framing / keep-alive decisions.
//! Syntax (start line, token characters, line endings) is checked by `parse` before this runs.
//!
//! Decisions, all strict:
//! - Content-Length: ASCII digits only, at most 2^63 - 1 (larger: 413 on requests); repeated
//!   fields or a list (`5, 5`) are accepted when every value is identical (RFC 9110 §8.6),
//!   differing values are refused. Exactly one is forwarded: the first single-valued field,
//!   or, when there is only a list, a `content-length` line the writer adds.
//! - Transfer-Encoding: known codings are chunked, gzip, x-gzip, deflate, compress, x-compress;
//!   anything else (including `identity`, removed by RFC 9112) is unknown (501 on requests).
//!   Parameters on codings are refused. `chunked` twice is refused; on a request it must be last
//!   (RFC 9112 §6.3 rule 4); on a response a non-chunked final coding means close-delimited.
//! - CL together with TE is refused on both sides; TE on HTTP/1.0 is faulty framing (§6.1).
//! - `Connection` options strip the fields they name, except Host, Content-Length and
//!   Transfer-Encoding, which must reach the upstream unchanged (else framing could differ
//!   between proxy and upstream). `Upgrade` is forwarded only for a WebSocket upgrade request
//!   or a 101 response.

use super::head::{
    is_tchar, list_elements, trim_ows, BodyFraming, HeaderField, HeaderKind, Method, RequestHead,
    ResponseFraming, ResponseHead, Span,
};
use super::parse::{span_of, HeadError};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Role {
    Request,
    Response,
}

/// What the header pass learned.
#[derive(Debug, Default)]
pub(super) struct Scan {
    host_count: u32,
    host: Option<Span>,
    content_length: Option<u64>,
    /// A single-valued Content-Length field is forwarded (the others are not).
    cl_forwarded: bool,
    te_seen: bool,
    te_chunked: bool,
    te_last_chunked: bool,
    conn_close: bool,
    conn_keep_alive: bool,
    conn_upgrade: bool,
    conn_other: bool,
    upgrade_websocket: bool,
    upgrade_h2c: bool,
    expect_continue: bool,
    request_id: Option<Span>,
}

/// Records every header line of `buf` (a complete head) into `out` and observes its semantics.
pub(super) fn record_headers(
    buf: &[u8],
    raw: &[httparse::Header<'_>],
    out: &mut Vec<HeaderField>,
    role: Role,
    scan: &mut Scan,
) -> Result<(), HeadError> {
    let last_line_end = (buf.len() as u32).saturating_sub(2);
    for (i, h) in raw.iter().enumerate() {
        let name = span_of(buf, h.name.as_bytes())?;
        let line_end = match raw.get(i + 1) {
            Some(next) => span_of(buf, next.name.as_bytes())?.start,
            None => last_line_end,
        };
        let value = value_span(buf, name, line_end)?;
        let kind = HeaderKind::of(name.get(buf));
        let forward = scan.observe(kind, value.get(buf), value, role)?;
        out.push(HeaderField {
            name,
            value,
            line: Span::new(name.start, line_end),
            forward,
        });
    }
    Ok(())
}

/// The value between `name:` and the line's CRLF, without surrounding SP/HTAB.
fn value_span(buf: &[u8], name: Span, line_end: u32) -> Result<Span, HeadError> {
    let colon = name.end as usize;
    let crlf = (line_end as usize)
        .checked_sub(2)
        .ok_or(HeadError::BadLineEnding)?;
    if buf.get(colon) != Some(&b':') || buf.get(crlf..crlf + 2) != Some(b"\r\n") {
        return Err(HeadError::BadLineEnding);
    }
    let raw = buf.get(colon + 1..crlf).ok_or(HeadError::BadLineEnding)?;
    let lead = raw.iter().take_while(|&&b| b == b' ' || b == b'\t').count();
    let trimmed = trim_ows(raw);
    let start = (colon + 1 + lead) as u32;
    Ok(Span::new(start, start + trimmed.len() as u32))
}

impl Scan {
    /// Observes one field; returns its `forward` flag (Upgrade is settled in `finish_*`).
    fn observe(
        &mut self,
        kind: HeaderKind,
        v: &[u8],
        span: Span,
        role: Role,
    ) -> Result<bool, HeadError> {
        match (kind, role) {
            (HeaderKind::Host, Role::Request) => {
                self.host_count += 1;
                if self.host_count > 1 {
                    return Err(HeadError::DuplicateHost);
                }
                if !(v.is_empty() || is_valid_authority(v)) {
                    return Err(HeadError::InvalidHost);
                }
                self.host = Some(span);
                Ok(true)
            }
            (HeaderKind::ContentLength, _) => {
                let n = parse_content_length(v)?;
                match self.content_length {
                    Some(prev) if prev != n => return Err(HeadError::ConflictingContentLength),
                    _ => self.content_length = Some(n),
                }
                let forward = !self.cl_forwarded && !v.contains(&b',');
                self.cl_forwarded |= forward;
                Ok(forward)
            }
            (HeaderKind::TransferEncoding, _) => {
                self.observe_transfer_encoding(v)?;
                Ok(true)
            }
            (HeaderKind::Connection, _) => {
                for opt in list_elements(v) {
                    if opt.eq_ignore_ascii_case(b"close") {
                        self.conn_close = true;
                    } else if opt.eq_ignore_ascii_case(b"keep-alive") {
                        self.conn_keep_alive = true;
                    } else if opt.eq_ignore_ascii_case(b"upgrade") {
                        self.conn_upgrade = true;
                    } else {
                        self.conn_other = true;
                    }
                }
                Ok(false)
            }
            (HeaderKind::Upgrade, _) => {
                for proto in list_elements(v) {
                    let name = proto.split(|&b| b == b'/').next().unwrap_or_default();
                    if name.eq_ignore_ascii_case(b"websocket") {
                        self.upgrade_websocket = true;
                    } else if name.eq_ignore_ascii_case(b"h2c") {
                        self.upgrade_h2c = true;
                    }
                }
                Ok(false)
            }
            (HeaderKind::Expect, Role::Request) => {
                if v.eq_ignore_ascii_case(b"100-continue") {
                    self.expect_continue = true;
                }
                Ok(true)
            }
            (HeaderKind::XRequestId, Role::Request) => {
                if self.request_id.is_none() {
                    self.request_id = Some(span);
                }
                Ok(true)
            }
            (HeaderKind::Strip, _) => Ok(false),
            _ => Ok(true),
        }
    }

    fn observe_transfer_encoding(&mut self, v: &[u8]) -> Result<(), HeadError> {
        self.te_seen = true;
        let mut any = false;
        for coding in list_elements(v) {
            any = true;
            if !coding.iter().all(|&b| is_tchar(b)) {
                return Err(HeadError::InvalidTransferEncoding);
            }
            if coding.eq_ignore_ascii_case(b"chunked") {
                if self.te_chunked {
                    return Err(HeadError::ChunkedTwice);
                }
                self.te_chunked = true;
                self.te_last_chunked = true;
            } else if is_known_coding(coding) {
                self.te_last_chunked = false;
            } else {
                return Err(HeadError::UnknownTransferCoding);
            }
        }
        if any {
            Ok(())
        } else {
            Err(HeadError::InvalidTransferEncoding)
        }
    }
}

fn is_known_coding(c: &[u8]) -> bool {
    const KNOWN: [&[u8]; 5] = [b"gzip", b"x-gzip", b"deflate", b"compress", b"x-compress"];
    KNOWN.iter().any(|k| c.eq_ignore_ascii_case(k))
}

/// RFC 9110 §7.2 / RFC 3986 §3.2.2: `uri-host [ ":" port ]`, where uri-host is an IP-literal
/// (`[v6]`), or a reg-name / IPv4 address of unreserved, sub-delims and `%XX` — no userinfo
/// (`@`), no second `:`, a port of digits only. Must not be empty.
pub(crate) fn is_valid_authority(v: &[u8]) -> bool {
    if !v.iter().all(|&b| is_host_byte(b)) || v.is_empty() {
        return false;
    }
    let port_ok = |p: &[u8]| p.len() <= 5 && p.iter().all(u8::is_ascii_digit);
    if v.first() == Some(&b'[') {
        let Some(close) = v.iter().position(|&b| b == b']') else {
            return false;
        };
        let inner = &v[1..close];
        let literal_ok = !inner.is_empty()
            && inner
                .iter()
                .all(|&b| b.is_ascii_hexdigit() || b == b':' || b == b'.');
        return literal_ok
            && match &v[close + 1..] {
                [] => true,
                [b':', port @ ..] => port_ok(port),
                _ => false,
            };
    }
    let (host, port) = match v.iter().position(|&b| b == b':') {
        Some(i) => (&v[..i], Some(&v[i + 1..])),
        None => (v, None),
    };
    if host.is_empty() || host.contains(&b'[') || host.contains(&b']') {
        return false;
    }
    if port.is_some_and(|p| !port_ok(p)) {
        return false;
    }
    // Percent-encoding: `%` followed by two hex digits.
    let mut i = 0;
    while i < host.len() {
        if host[i] == b'%' {
            let ok = host
                .get(i + 1..i + 3)
                .is_some_and(|h| h.iter().all(u8::is_ascii_hexdigit));
            if !ok {
                return false;
            }
            i += 3;
        } else {
            i += 1;
        }
    }
    true
}

/// RFC 9110 §7.2 `uri-host [ ":" port ]`: unreserved, sub-delims, `:`, `[`, `]`, `%`.
fn is_host_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric()
        || matches!(
            b,
            b'-' | b'.'
                | b'_'
                | b'~'
                | b'!'
                | b'$'
                | b'&'
                | b'\''
                | b'('
                | b')'
                | b'*'
                | b'+'
                | b','
                | b';'
                | b'='
                | b':'
                | b'['
                | b']'
                | b'%'
        )
}

/// RFC 9110 §8.6: `1*DIGIT`, or a list of identical values. Parsed by hand: no sign, no
/// whitespace inside a value, no empty value, checked overflow.
pub(crate) fn parse_content_length(v: &[u8]) -> Result<u64, HeadError> {
    const MAX: u64 = i64::MAX as u64;
    let mut result: Option<u64> = None;
    for elem in v.split(|&b| b == b',') {
        let e = trim_ows(elem);
        if e.is_empty() {
            return Err(HeadError::InvalidContentLength);
        }
        let mut n: u64 = 0;
        for &b in e {
            if !b.is_ascii_digit() {
                return Err(HeadError::InvalidContentLength);
            }
            n = n
                .checked_mul(10)
                .and_then(|n| n.checked_add(u64::from(b - b'0')))
                .filter(|&n| n <= MAX)
                .ok_or(HeadError::ContentLengthTooLarge)?;
        }
        match result {
            Some(prev) if prev != n => return Err(HeadError::ConflictingContentLength),
            _ => result = Some(n),
        }
    }
    result.ok_or(HeadError::InvalidContentLength)
}

/// Request checks that need every field, then framing and flags (RFC 9112 §6.3, §9.3).
pub(super) fn finish_request(
    buf: &[u8],
    head: &mut RequestHead,
    scan: &Scan,
) -> Result<(), HeadError> {
    let http11 = head.version_minor == 1;
    if http11 && scan.host_count == 0 {
        return Err(HeadError::MissingHost);
    }
    head.framing = framing_common(head.version_minor, scan)?;
    if scan.te_seen {
        // §6.3 rule 4: a request whose final coding is not chunked cannot be delimited.
        if !scan.te_last_chunked {
            return Err(HeadError::ChunkedNotLast);
        }
        head.framing = BodyFraming::Chunked;
    }
    head.keep_alive = if http11 {
        !scan.conn_close
    } else {
        scan.conn_keep_alive && !scan.conn_close
    };
    head.host = scan.host;
    head.request_id = scan.request_id;
    head.content_length = scan.content_length;
    head.content_length_line = scan.content_length.is_some() && !scan.cl_forwarded;
    head.expect_continue = http11 && scan.expect_continue;
    head.h2c_upgrade = scan.upgrade_h2c;
    // RFC 9110 §7.8: Upgrade in HTTP/1.0 is ignored; RFC 6455 §4.1: GET over HTTP/1.1.
    head.websocket_upgrade = http11
        && head.method == Method::Get
        && scan.conn_upgrade
        && scan.upgrade_websocket
        && !scan.upgrade_h2c;
    set_forward_flags(buf, &mut head.headers, head.websocket_upgrade, scan);
    if head.authority.is_some() {
        // RFC 9112 §3.2.2: the target's authority wins; the writer sends it as Host.
        for h in head.headers.iter_mut() {
            if HeaderKind::of(h.name.get(buf)) == HeaderKind::Host {
                h.forward = false;
            }
        }
    }
    Ok(())
}

/// Response checks, framing (RFC 9112 §6.3 rules 1-7) and upstream reuse.
pub(super) fn finish_response(
    buf: &[u8],
    head: &mut ResponseHead,
    request_method: Method,
    scan: &Scan,
) -> Result<(), HeadError> {
    let request_framing = framing_common(head.version_minor, scan)?;
    let status = head.status;
    head.framing = if request_method == Method::Head
        || (100..200).contains(&status)
        || status == 204
        || status == 304
    {
        ResponseFraming::None
    } else if scan.te_seen {
        if scan.te_last_chunked {
            ResponseFraming::Chunked
        } else {
            ResponseFraming::CloseDelimited
        }
    } else {
        match request_framing {
            BodyFraming::Length(n) => ResponseFraming::Length(n),
            _ if scan.content_length.is_some() => ResponseFraming::None,
            _ => ResponseFraming::CloseDelimited,
        }
    };
    let persistent = if head.version_minor == 1 {
        !scan.conn_close
    } else {
        scan.conn_keep_alive && !scan.conn_close
    };
    head.keep_alive =
        persistent && head.framing != ResponseFraming::CloseDelimited && status != 101;
    head.content_length = scan.content_length;
    head.content_length_line = scan.content_length.is_some() && !scan.cl_forwarded;
    set_forward_flags(buf, &mut head.headers, status == 101, scan);
    Ok(())
}

/// Shared CL/TE rules; returns the Content-Length framing (TE handled by the caller).
fn framing_common(version_minor: u8, scan: &Scan) -> Result<BodyFraming, HeadError> {
    if scan.te_seen {
        if version_minor == 0 {
            return Err(HeadError::TransferEncodingInHttp10);
        }
        if scan.content_length.is_some() {
            return Err(HeadError::ContentLengthWithTransferEncoding);
        }
    }
    Ok(match scan.content_length {
        Some(0) | None => BodyFraming::None,
        Some(n) => BodyFraming::Length(n),
    })
}

/// Settles `forward` for Upgrade and for fields named as Connection options.
fn set_forward_flags(buf: &[u8], headers: &mut [HeaderField], keep_upgrade: bool, scan: &Scan) {
    for i in 0..headers.len() {
        let Some(h) = headers.get(i).copied() else {
            continue;
        };
        let name = h.name.get(buf);
        let kind = HeaderKind::of(name);
        let forward = match kind {
            HeaderKind::Upgrade => keep_upgrade,
            _ if !h.forward || kind.protected() || !scan.conn_other => h.forward,
            _ => !headers.iter().any(|c| {
                HeaderKind::of(c.name.get(buf)) == HeaderKind::Connection
                    && list_elements(c.value.get(buf)).any(|opt| opt.eq_ignore_ascii_case(name))
            }),
        };
        if let Some(h) = headers.get_mut(i) {
            h.forward = forward;
        }
    }
}
