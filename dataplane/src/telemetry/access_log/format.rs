//! Access-log line formats: the compiled Envoy-style format string ([`Format`]) and the JSON
//! line, both written from one [`Entry`] into a caller's buffer without allocating.
//!
//! A format string is literal text with operators between `%`: `%START_TIME%`,
//! `%REQ(NAME)%` / `%REQ(A?B)%` (a request header, `:METHOD`, `:PATH`, `:AUTHORITY`; the
//! first present of `A?B`) with an optional `:N` length cap, `%PROTOCOL%`, `%RESPONSE_CODE%`,
//! `%RESPONSE_FLAGS%`, `%BYTES_RECEIVED%`, `%BYTES_SENT%`, `%DURATION%`,
//! `%RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)%`, `%UPSTREAM_HOST%`, `%UPSTREAM_CLUSTER%`,
//! `%DOWNSTREAM_REMOTE_ADDRESS%`, `%DOWNSTREAM_PEER_URI_SAN%`, `%TRACE_ID%`,
//! `%LISTENER_NAME%`; `%%` is a literal `%`. A missing value is written `-` (Envoy's rule).
//!
//! Invariant: compiling is the only step that can fail (unknown operator, unclosed `%`,
//! unsupported `%RESP(..)%`); writing never fails and never allocates once the buffer has
//! room.

use std::fmt;
use std::io::Write;
use std::net::SocketAddr;

/// Request header values a format needs, captured while the head is still buffered.
/// `names` are lower-case; `:method`, `:path` and `:authority` are the pseudo-headers.
pub const MAX_CAPTURED: usize = 8;

/// A compiled format string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Format {
    pieces: Vec<Piece>,
    /// Request headers captured per request, in the order [`Entry::headers`] holds them.
    pub headers: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Literal(String),
    /// Captured header alternatives (indices into `Format::headers`) and a length cap.
    Req(Vec<usize>, Option<usize>),
    Field(Field),
}

/// Operators that are not request headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Field {
    StartTime,
    Protocol,
    ResponseCode,
    ResponseFlags,
    BytesReceived,
    BytesSent,
    Duration,
    UpstreamServiceTime,
    UpstreamHost,
    UpstreamCluster,
    DownstreamRemoteAddress,
    DownstreamPeerUriSan,
    TraceId,
    ListenerName,
}

/// Why a format string does not compile.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FormatError {
    #[error("unclosed '%' at byte {0}")]
    Unclosed(usize),
    #[error("unknown operator %{0}%")]
    Unknown(String),
    #[error("%RESP({0})% is not supported (only X-ENVOY-UPSTREAM-SERVICE-TIME)")]
    Resp(String),
    #[error("%REQ(..)% needs a header name")]
    EmptyHeader,
    #[error("bad length cap in %{0}%")]
    BadCap(String),
    #[error("more than {MAX_CAPTURED} distinct request headers in one format")]
    TooManyHeaders,
}

/// Everything one access-log line can say about a request (or a TCP connection).
#[derive(Debug, Clone, Copy)]
pub struct Entry<'a> {
    /// Start of the request, µs since the Unix epoch.
    pub start_unix_us: u64,
    pub protocol: &'a str,
    /// 0: no response was sent.
    pub status: u16,
    pub flags: &'a str,
    pub bytes_received: u64,
    pub bytes_sent: u64,
    pub duration_us: u64,
    /// Request sent to response head received.
    pub upstream_us: Option<u64>,
    pub upstream_host: Option<SocketAddr>,
    pub cluster: Option<&'a str>,
    pub listener: &'a str,
    pub downstream: SocketAddr,
    pub peer: Option<&'a str>,
    pub trace_id: &'a [u8],
    /// Values of `Format::headers` (or of [`JSON_HEADERS`]); empty = absent.
    pub headers: &'a [&'a [u8]],
}

/// Request headers the JSON line captures, in this order.
pub const JSON_HEADERS: [&str; 6] = [
    ":method",
    ":path",
    ":authority",
    "x-request-id",
    "user-agent",
    "x-forwarded-for",
];

impl Format {
    /// Compiles `text`. See the module doc for the operators. One trailing newline (Envoy's
    /// formats end with `\n`) is dropped: every line ends with exactly one.
    pub fn compile(text: &str) -> Result<Format, FormatError> {
        let text = text.strip_suffix('\n').unwrap_or(text);
        let mut f = Format {
            pieces: Vec::new(),
            headers: Vec::new(),
        };
        let mut literal = String::new();
        let mut rest = text;
        let mut offset = 0;
        while let Some(i) = rest.find('%') {
            literal.push_str(&rest[..i]);
            let after = &rest[i + 1..];
            let Some(j) = after.find('%') else {
                return Err(FormatError::Unclosed(offset + i));
            };
            let op = &after[..j];
            if op.is_empty() {
                literal.push('%');
            } else {
                if !literal.is_empty() {
                    f.pieces.push(Piece::Literal(std::mem::take(&mut literal)));
                }
                let piece = f.operator(op)?;
                f.pieces.push(piece);
            }
            offset += i + j + 2;
            rest = &after[j + 1..];
        }
        literal.push_str(rest);
        if !literal.is_empty() {
            f.pieces.push(Piece::Literal(literal));
        }
        Ok(f)
    }

    fn operator(&mut self, op: &str) -> Result<Piece, FormatError> {
        let field = match op {
            "START_TIME" => Field::StartTime,
            "PROTOCOL" => Field::Protocol,
            "RESPONSE_CODE" => Field::ResponseCode,
            "RESPONSE_FLAGS" => Field::ResponseFlags,
            "BYTES_RECEIVED" => Field::BytesReceived,
            "BYTES_SENT" => Field::BytesSent,
            "DURATION" => Field::Duration,
            "UPSTREAM_HOST" => Field::UpstreamHost,
            "UPSTREAM_CLUSTER" => Field::UpstreamCluster,
            "DOWNSTREAM_REMOTE_ADDRESS" => Field::DownstreamRemoteAddress,
            "DOWNSTREAM_PEER_URI_SAN" => Field::DownstreamPeerUriSan,
            "TRACE_ID" => Field::TraceId,
            "LISTENER_NAME" => Field::ListenerName,
            _ => return self.header_operator(op),
        };
        Ok(Piece::Field(field))
    }

    fn header_operator(&mut self, op: &str) -> Result<Piece, FormatError> {
        let (kind, inner, tail) = match (op.find('('), op.rfind(')')) {
            (Some(a), Some(b)) if a < b => (&op[..a], &op[a + 1..b], &op[b + 1..]),
            _ => return Err(FormatError::Unknown(op.to_string())),
        };
        let cap = match tail.strip_prefix(':') {
            None if tail.is_empty() => None,
            Some(n) => Some(
                n.parse::<usize>()
                    .map_err(|_| FormatError::BadCap(op.to_string()))?,
            ),
            None => return Err(FormatError::Unknown(op.to_string())),
        };
        match kind {
            "RESP" if inner.eq_ignore_ascii_case("x-envoy-upstream-service-time") => {
                Ok(Piece::Field(Field::UpstreamServiceTime))
            }
            "RESP" => Err(FormatError::Resp(inner.to_string())),
            "REQ" => {
                let mut alts = Vec::new();
                for name in inner.split('?') {
                    if name.is_empty() {
                        return Err(FormatError::EmptyHeader);
                    }
                    let name = name.to_ascii_lowercase();
                    let idx = match self.headers.iter().position(|h| *h == name) {
                        Some(i) => i,
                        None if self.headers.len() >= MAX_CAPTURED => {
                            return Err(FormatError::TooManyHeaders)
                        }
                        None => {
                            self.headers.push(name);
                            self.headers.len() - 1
                        }
                    };
                    alts.push(idx);
                }
                Ok(Piece::Req(alts, cap))
            }
            _ => Err(FormatError::Unknown(op.to_string())),
        }
    }

    /// Appends the line for `e` (and a newline) to `out`.
    pub fn write(&self, e: &Entry<'_>, out: &mut Vec<u8>) {
        for p in &self.pieces {
            match p {
                Piece::Literal(s) => out.extend_from_slice(s.as_bytes()),
                Piece::Req(alts, cap) => {
                    let v = alts
                        .iter()
                        .filter_map(|&i| e.headers.get(i).copied())
                        .find(|v| !v.is_empty());
                    match v {
                        Some(v) => {
                            let n = cap.map_or(v.len(), |c| c.min(v.len()));
                            out.extend_from_slice(&v[..n]);
                        }
                        None => out.push(b'-'),
                    }
                }
                Piece::Field(f) => write_field(*f, e, out),
            }
        }
        out.push(b'\n');
    }
}

fn write_field(f: Field, e: &Entry<'_>, out: &mut Vec<u8>) {
    // Writes into a Vec cannot fail.
    let _ = match f {
        Field::StartTime => {
            write_rfc3339(e.start_unix_us, out);
            Ok(())
        }
        Field::Protocol => write!(out, "{}", e.protocol),
        Field::ResponseCode => {
            write_u64(out, u64::from(e.status));
            Ok(())
        }
        Field::ResponseFlags => write!(out, "{}", e.flags),
        Field::BytesReceived => {
            write_u64(out, e.bytes_received);
            Ok(())
        }
        Field::BytesSent => {
            write_u64(out, e.bytes_sent);
            Ok(())
        }
        Field::Duration => {
            write_u64(out, e.duration_us / 1000);
            Ok(())
        }
        Field::UpstreamServiceTime => match e.upstream_us {
            Some(us) => write!(out, "{}", us / 1000),
            None => write!(out, "-"),
        },
        Field::UpstreamHost => {
            match e.upstream_host {
                Some(a) => write_addr(out, a),
                None => out.push(b'-'),
            }
            Ok(())
        }
        Field::UpstreamCluster => write!(out, "{}", e.cluster.unwrap_or("-")),
        Field::DownstreamRemoteAddress => {
            write_addr(out, e.downstream);
            Ok(())
        }
        Field::DownstreamPeerUriSan => write!(out, "{}", e.peer.unwrap_or("-")),
        Field::TraceId => {
            if e.trace_id.is_empty() {
                out.push(b'-');
            } else {
                out.extend_from_slice(e.trace_id);
            }
            Ok(())
        }
        Field::ListenerName => write!(out, "{}", e.listener),
    };
}

/// Appends the JSON line for `e`, whose `headers` are the values of [`JSON_HEADERS`].
pub fn write_json(e: &Entry<'_>, out: &mut Vec<u8>) {
    let h = |i: usize| e.headers.get(i).copied().filter(|v| !v.is_empty());
    out.extend_from_slice(b"{\"start_time\":\"");
    write_rfc3339(e.start_unix_us, out);
    out.push(b'"');
    json_str(out, "method", h(0));
    json_str(out, "path", h(1));
    json_str(out, "authority", h(2));
    json_str(out, "protocol", Some(e.protocol.as_bytes()));
    out.extend_from_slice(b",\"response_code\":");
    write_u64(out, u64::from(e.status));
    json_str(out, "response_flags", Some(e.flags.as_bytes()));
    out.extend_from_slice(b",\"bytes_received\":");
    write_u64(out, e.bytes_received);
    out.extend_from_slice(b",\"bytes_sent\":");
    write_u64(out, e.bytes_sent);
    out.extend_from_slice(b",\"duration_ms\":");
    write_ms3(out, e.duration_us);
    out.extend_from_slice(b",\"upstream_service_time_ms\":");
    match e.upstream_us {
        Some(us) => write_ms3(out, us),
        None => out.extend_from_slice(b"null"),
    }
    out.extend_from_slice(b",\"upstream_host\":");
    match e.upstream_host {
        Some(a) => {
            out.push(b'"');
            write_addr(out, a);
            out.push(b'"');
        }
        None => out.extend_from_slice(b"null"),
    }
    json_str(out, "upstream_cluster", e.cluster.map(str::as_bytes));
    out.extend_from_slice(b",\"downstream_remote_address\":\"");
    write_addr(out, e.downstream);
    out.push(b'"');
    json_str(out, "downstream_peer_identity", e.peer.map(str::as_bytes));
    json_str(out, "request_id", h(3));
    json_str(out, "trace_id", Some(e.trace_id).filter(|t| !t.is_empty()));
    json_str(out, "user_agent", h(4));
    json_str(out, "x_forwarded_for", h(5));
    json_str(out, "listener", Some(e.listener.as_bytes()));
    out.extend_from_slice(b"}\n");
}

/// Decimal digits of `n` (no `core::fmt` on the per-request path).
pub fn write_u64(out: &mut Vec<u8>, mut n: u64) {
    let mut buf = [0u8; 20];
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&buf[i..]);
}

/// `us` as milliseconds with three decimals (`2.345`).
fn write_ms3(out: &mut Vec<u8>, us: u64) {
    write_u64(out, us / 1000);
    let frac = us % 1000;
    out.extend_from_slice(&[
        b'.',
        b'0' + (frac / 100) as u8,
        b'0' + (frac / 10 % 10) as u8,
        b'0' + (frac % 10) as u8,
    ]);
}

/// `a.b.c.d:port` without `core::fmt` for IPv4; IPv6 through `Display`.
fn write_addr(out: &mut Vec<u8>, a: SocketAddr) {
    match a {
        SocketAddr::V4(v4) => {
            for (i, o) in v4.ip().octets().iter().enumerate() {
                if i > 0 {
                    out.push(b'.');
                }
                write_u64(out, u64::from(*o));
            }
            out.push(b':');
            write_u64(out, u64::from(v4.port()));
        }
        SocketAddr::V6(_) => {
            let _ = write!(out, "{a}");
        }
    }
}

/// `,"key":"value"` with JSON escaping, or `,"key":null`.
fn json_str(out: &mut Vec<u8>, key: &str, v: Option<&[u8]>) {
    out.extend_from_slice(b",\"");
    out.extend_from_slice(key.as_bytes());
    out.extend_from_slice(b"\":");
    let Some(v) = v else {
        out.extend_from_slice(b"null");
        return;
    };
    out.push(b'"');
    // Fast path: nothing to escape (the usual header value).
    if !v
        .iter()
        .any(|&b| b == b'"' || b == b'\\' || !(0x20..0x7f).contains(&b))
    {
        out.extend_from_slice(v);
        out.push(b'"');
        return;
    }
    for &b in v {
        match b {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            0..=0x1f | 0x7f => {
                let _ = write!(out, "\\u{:04x}", b);
            }
            // Header bytes are not promised to be UTF-8: bytes >= 0x80 are escaped as the
            // Latin-1 code point they are, so the line stays valid JSON.
            0x80.. => {
                let _ = write!(out, "\\u{:04x}", b);
            }
            _ => out.push(b),
        }
    }
    out.push(b'"');
}

/// `2026-12-04T22:43:46.123Z` for `us` µs since the epoch (UTC, millisecond precision). The
/// text up to the seconds is cached per thread (one calendar conversion per second).
pub fn write_rfc3339(us: u64, out: &mut Vec<u8>) {
    thread_local! {
        static LAST: std::cell::Cell<(u64, [u8; 20])> = const { std::cell::Cell::new((u64::MAX, [0; 20])) };
    }
    let secs = us / 1_000_000;
    let ms = (us / 1000) % 1000;
    let (cached, mut prefix) = LAST.with(|c| c.get());
    if cached != secs {
        let days = (secs / 86_400) as i64;
        let rem = secs % 86_400;
        let (y, m, d) = civil_from_days(days);
        // Formatted on the stack: no allocation, once per second.
        let mut tmp = std::io::Cursor::new([0u8; 32]);
        let _ = write!(
            tmp,
            "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.",
            rem / 3600,
            (rem / 60) % 60,
            rem % 60
        );
        let len = tmp.position() as usize;
        let text = &tmp.get_ref()[..len];
        if len == 20 {
            prefix.copy_from_slice(text);
            LAST.with(|c| c.set((secs, prefix)));
        } else {
            // A year outside 0000..=9999: no cache, written as is.
            out.extend_from_slice(text);
            let _ = write!(out, "{ms:03}Z");
            return;
        }
    }
    out.extend_from_slice(&prefix);
    out.extend_from_slice(&[
        b'0' + (ms / 100) as u8,
        b'0' + (ms / 10 % 10) as u8,
        b'0' + (ms % 10) as u8,
        b'Z',
    ]);
}

/// Days since 1970-01-01 to (year, month, day) in the proleptic Gregorian calendar
/// (H. Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "<format of {} pieces>", self.pieces.len())
    }
}

#[cfg(test)]
mod tests;
