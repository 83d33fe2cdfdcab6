//! An independent, strict reader of HTTP/1.1 message streams, for the differential fuzz target:
//! it shares no code with `http` (so the proxy's parser cannot vouch for itself) and accepts
//! only what is unambiguous — one Content-Length or one Transfer-Encoding ending in `chunked`,
//! tokens where tokens belong, CRLF line endings, no obs-fold, no control characters.

/// A message read from a stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// Method (requests) or status code text (responses).
    pub start: Vec<u8>,
    /// The request target in origin-form (an absolute-form target's path and query, `/`
    /// when empty); empty for responses.
    pub target: Vec<u8>,
    /// Bytes of the whole message (head and body).
    pub len: usize,
    /// A 101 response, or a request with `Connection: upgrade` and `Upgrade`: the stream
    /// becomes a tunnel after it.
    pub upgrade: bool,
}

/// How a stream ended after its complete messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Tail {
    /// Nothing left.
    Clean,
    /// A message that had not ended when the stream did (a truncation: allowed when the
    /// connection was closed, e.g. after a framing error mid-body). Its head, if complete,
    /// was strict.
    Truncated,
    /// Bytes that are not a strict message: the violation.
    Invalid(&'static str),
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Request,
    /// Responses to requests with these methods (HEAD responses have no body).
    Response,
}

fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

fn is_vchar_or_ws(b: u8) -> bool {
    b == b' ' || b == b'\t' || (0x21..=0x7e).contains(&b) || b >= 0x80
}

/// Reads every strict message of `buf`. `head_methods` says, for responses, whether the
/// n-th response answers a HEAD request (no body).
pub fn read_stream(buf: &[u8], kind: Kind, head_methods: &[bool]) -> (Vec<Message>, Tail) {
    let mut out = Vec::new();
    let mut pos = 0;
    loop {
        let rest = &buf[pos..];
        if rest.is_empty() {
            return (out, Tail::Clean);
        }
        let head_only = head_methods.get(out.len()).copied().unwrap_or(false);
        match read_message(rest, kind, head_only) {
            Ok(Some((m, interim))) => {
                pos += m.len;
                let tunnel = m.upgrade;
                if !interim {
                    out.push(m);
                }
                if tunnel {
                    // A 101 (or a request asking for an upgrade): what follows is tunnel
                    // data, not HTTP.
                    return (out, Tail::Clean);
                }
            }
            Ok(None) => return (out, Tail::Truncated),
            Err(why) => return (out, Tail::Invalid(why)),
        }
    }
}

/// One message at the start of `b`: `Ok(None)` if it is incomplete; the flag is true for an
/// interim (1xx) response.
fn read_message(
    b: &[u8],
    kind: Kind,
    head_only: bool,
) -> Result<Option<(Message, bool)>, &'static str> {
    // Leading CRLFs are tolerated before a request line (RFC 9112 §2.2), as the proxy does.
    let mut skip = 0;
    while kind == Kind::Request && b.get(skip..skip + 2) == Some(b"\r\n") && skip < 8 {
        skip += 2;
    }
    let Some(end) = b[skip..].windows(4).position(|w| w == b"\r\n\r\n") else {
        check_partial(&b[skip..])?;
        return Ok(None);
    };
    let head = &b[skip..skip + end + 2];
    let mut lines = head
        .split(|&c| c == b'\n')
        .map(|l| l.strip_suffix(b"\r").unwrap_or(l));
    let start_line = lines.next().ok_or("empty head")?;
    if start_line.contains(&b'\r') {
        return Err("bare CR in the start line");
    }
    let (start, target, status, http10) = match kind {
        Kind::Request => {
            let mut parts = start_line.split(|&c| c == b' ');
            let (Some(m), Some(t), Some(v), None) =
                (parts.next(), parts.next(), parts.next(), parts.next())
            else {
                return Err("request line is not method SP target SP version");
            };
            if m.is_empty() || !m.iter().all(|&c| is_tchar(c)) {
                return Err("method is not a token");
            }
            if t.is_empty() || !t.iter().all(|&c| (0x21..=0x7e).contains(&c)) {
                return Err("target has forbidden bytes");
            }
            let http10 = match v {
                b"HTTP/1.1" => false,
                b"HTTP/1.0" => true,
                _ => return Err("version is not HTTP/1.0 or HTTP/1.1"),
            };
            (m.to_vec(), origin_form(t), 0u16, http10)
        }
        Kind::Response => {
            let v = start_line.get(..9).ok_or("short status line")?;
            let http10 = match v {
                b"HTTP/1.1 " => false,
                b"HTTP/1.0 " => true,
                _ => return Err("status line version"),
            };
            let code = start_line.get(9..12).ok_or("short status line")?;
            if !code.iter().all(u8::is_ascii_digit)
                || start_line.get(12).is_some_and(|&c| c != b' ')
            {
                return Err("status code");
            }
            let status: u16 = std::str::from_utf8(code)
                .ok()
                .and_then(|s| s.parse().ok())
                .ok_or("status code")?;
            if !(100..=599).contains(&status) {
                return Err("status out of range");
            }
            (code.to_vec(), Vec::new(), status, http10)
        }
    };
    let mut cl: Option<u64> = None;
    let mut te: Option<Vec<u8>> = None;
    let mut hosts = 0;
    let (mut conn_upgrade, mut upgrade_field) = (false, false);
    for line in lines {
        if line.is_empty() {
            break;
        }
        if line.contains(&b'\r') {
            return Err("bare CR in a field line");
        }
        if matches!(line.first(), Some(b' ' | b'\t')) {
            return Err("obs-fold");
        }
        let colon = line
            .iter()
            .position(|&c| c == b':')
            .ok_or("field line without colon")?;
        let (name, value) = (&line[..colon], &line[colon + 1..]);
        if name.is_empty() || !name.iter().all(|&c| is_tchar(c)) {
            return Err("field name is not a token");
        }
        if !value.iter().all(|&c| is_vchar_or_ws(c)) {
            return Err("control character in a field value");
        }
        let value = trim(value);
        if name.eq_ignore_ascii_case(b"content-length") {
            if cl.is_some() {
                return Err("more than one Content-Length field");
            }
            if value.is_empty() || !value.iter().all(u8::is_ascii_digit) || value.len() > 18 {
                return Err("Content-Length is not one number");
            }
            cl = std::str::from_utf8(value).ok().and_then(|s| s.parse().ok());
        } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
            if te.is_some() {
                return Err("more than one Transfer-Encoding field");
            }
            te = Some(value.to_ascii_lowercase());
        } else if name.eq_ignore_ascii_case(b"host") {
            hosts += 1;
        } else if name.eq_ignore_ascii_case(b"upgrade") {
            upgrade_field = true;
        } else if name.eq_ignore_ascii_case(b"connection") {
            conn_upgrade |= value
                .split(|&c| c == b',')
                .any(|o| trim(o).eq_ignore_ascii_case(b"upgrade"));
        }
    }
    if cl.is_some() && te.is_some() {
        return Err("both Content-Length and Transfer-Encoding");
    }
    if kind == Kind::Request && (hosts > 1 || (!http10 && hosts == 0)) {
        return Err("an HTTP/1.1 request without exactly one Host");
    }
    let body_start = skip + end + 4;
    let interim = kind == Kind::Response && (100..200).contains(&status) && status != 101;
    let no_body = kind == Kind::Response
        && (head_only || (100..200).contains(&status) || status == 204 || status == 304);
    let body_len = if no_body {
        Some(0)
    } else if let Some(te) = te {
        let codings: Vec<&[u8]> = te.split(|&c| c == b',').map(trim).collect();
        if codings.last() != Some(&&b"chunked"[..]) {
            if kind == Kind::Request {
                return Err("request Transfer-Encoding does not end in chunked");
            }
            return Ok(None); // close-delimited response: never complete
        }
        if codings.iter().filter(|c| **c == b"chunked").count() != 1 {
            return Err("chunked twice");
        }
        chunked_len(&b[body_start..])?
    } else if let Some(n) = cl {
        let n = usize::try_from(n).map_err(|_| "Content-Length too large")?;
        (b.len() - body_start >= n).then_some(n)
    } else if kind == Kind::Request {
        Some(0)
    } else {
        return Ok(None); // close-delimited response
    };
    Ok(body_len.map(|n| {
        (
            Message {
                start,
                target,
                len: body_start + n,
                upgrade: status == 101 || (kind == Kind::Request && conn_upgrade && upgrade_field),
            },
            interim,
        )
    }))
}

/// `http://a/x?q` → `/x?q`, `http://a` → `/`; anything else unchanged.
fn origin_form(t: &[u8]) -> Vec<u8> {
    let lower = t.to_ascii_lowercase();
    let scheme = if lower.starts_with(b"http://") {
        7
    } else if lower.starts_with(b"https://") {
        8
    } else {
        return t.to_vec();
    };
    let rest = &t[scheme..];
    match rest.iter().position(|&c| c == b'/' || c == b'?') {
        Some(i) if rest[i] == b'/' => rest[i..].to_vec(),
        Some(i) => [b"/".as_slice(), &rest[i..]].concat(),
        None => b"/".to_vec(),
    }
}

/// An incomplete head must at least not already be broken.
fn check_partial(b: &[u8]) -> Result<(), &'static str> {
    for (i, &c) in b.iter().enumerate() {
        if c == b'\n' && (i == 0 || b[i - 1] != b'\r') {
            return Err("bare LF");
        }
    }
    Ok(())
}

fn trim(v: &[u8]) -> &[u8] {
    let s = v
        .iter()
        .position(|&c| c != b' ' && c != b'\t')
        .unwrap_or(v.len());
    let e = v
        .iter()
        .rposition(|&c| c != b' ' && c != b'\t')
        .map_or(s, |i| i + 1);
    &v[s..e]
}

/// Forbidden trailer names (RFC 9110 §6.5.1): framing and routing.
const FORBIDDEN_TRAILERS: [&[u8]; 4] = [
    b"content-length",
    b"transfer-encoding",
    b"host",
    b"connection",
];

/// Length of a strict chunked body at the start of `b`, `Ok(None)` if incomplete.
fn chunked_len(b: &[u8]) -> Result<Option<usize>, &'static str> {
    let mut i = 0;
    loop {
        let Some(le) = find_crlf(&b[i..])? else {
            return Ok(None);
        };
        let line = &b[i..i + le];
        let size_part = line.split(|&c| c == b';').next().unwrap_or_default();
        if size_part.is_empty()
            || size_part.len() > 16
            || !size_part.iter().all(u8::is_ascii_hexdigit)
        {
            return Err("chunk size is not hex");
        }
        if line.iter().any(|&c| c < 0x20 && c != b'\t') {
            return Err("control character in a chunk line");
        }
        let size = usize::from_str_radix(std::str::from_utf8(size_part).unwrap_or("0"), 16)
            .map_err(|_| "chunk size overflows")?;
        i += le + 2;
        if size == 0 {
            loop {
                let Some(le) = find_crlf(&b[i..])? else {
                    return Ok(None);
                };
                let line = &b[i..i + le];
                i += le + 2;
                if line.is_empty() {
                    return Ok(Some(i));
                }
                let colon = line
                    .iter()
                    .position(|&c| c == b':')
                    .ok_or("trailer without colon")?;
                let name = &line[..colon];
                if name.is_empty() || !name.iter().all(|&c| is_tchar(c)) {
                    return Err("trailer name is not a token");
                }
                if FORBIDDEN_TRAILERS
                    .iter()
                    .any(|f| name.eq_ignore_ascii_case(f))
                {
                    return Err("forbidden trailer field");
                }
            }
        }
        let Some(after) = i.checked_add(size) else {
            return Err("chunk size overflows");
        };
        if b.len() < after + 2 {
            return Ok(None);
        }
        if &b[after..after + 2] != b"\r\n" {
            return Err("chunk data not followed by CRLF");
        }
        i = after + 2;
    }
}

/// Position of the CRLF ending the line at the start of `b`; `Ok(None)` if there is none yet.
fn find_crlf(b: &[u8]) -> Result<Option<usize>, &'static str> {
    let Some(lf) = b.iter().position(|&c| c == b'\n') else {
        return Ok(None);
    };
    if lf > 0 && b[lf - 1] == b'\r' {
        Ok(Some(lf - 1))
    } else {
        Err("bare LF in a chunk line")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_strict_streams_and_spots_ambiguity() {
        let ok = b"GET / HTTP/1.1\r\nHost: a\r\n\r\nPOST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc";
        let (m, t) = read_stream(ok, Kind::Request, &[]);
        assert_eq!((m.len(), t), (2, Tail::Clean));
        let chunked = b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\nx: y\r\n\r\n";
        assert_eq!(read_stream(chunked, Kind::Request, &[]).1, Tail::Clean);
        let two_cl =
            b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc";
        assert!(matches!(
            read_stream(two_cl, Kind::Request, &[]).1,
            Tail::Invalid(_)
        ));
        let cl_te = b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n";
        assert!(matches!(
            read_stream(cl_te, Kind::Request, &[]).1,
            Tail::Invalid(_)
        ));
        let truncated = b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 9\r\n\r\nabc";
        assert_eq!(
            read_stream(truncated, Kind::Request, &[]).1,
            Tail::Truncated
        );
        let resp = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nokHTTP/1.1 204 No Content\r\n\r\n";
        let (m, t) = read_stream(resp, Kind::Response, &[]);
        assert_eq!((m.len(), t), (2, Tail::Clean));
        let head = b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\n";
        assert_eq!(read_stream(head, Kind::Response, &[true]).1, Tail::Clean);
    }
}
