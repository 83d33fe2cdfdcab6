//! The PROXY protocol (haproxy.org/download/2.9/doc/proxy-protocol.txt), versions 1 and 2:
//! [`parse`] reads the header a load balancer in front of us puts before the connection's
//! bytes; [`encode`] writes the one we put before ours towards an upstream.
//!
//! ```text
//! v1  "PROXY TCP4 192.0.2.1 198.51.100.2 56324 443\r\n"   (at most 107 bytes)
//!     "PROXY TCP6 <src> <dst> <sport> <dport>\r\n" | "PROXY UNKNOWN ...\r\n"
//! v2  \r\n\r\n\0\r\nQUIT\n | ver/cmd | family/proto | length (BE u16) | addresses | TLVs
//!     cmd LOCAL (health checks of the balancer) or PROXY; TCP over IPv4 or IPv6
//! ```
//!
//! [`read_header`] is the one piece with I/O: it reads a connection's header within a deadline.
//! The codec is pure: no I/O, no allocation when parsing. Strict: anything that is not exactly a valid
//! header of either version is an error (the connection is then closed and counted); a v2
//! header longer than [`MAX_V2_BYTES`] is refused. `LOCAL` / `UNKNOWN` headers carry no
//! addresses: the connection's own are kept.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Instant;

use super::{InBuf, Stream};
use crate::config::ProxyProtocolVersion;

/// The v2 signature.
pub const V2_SIGNATURE: &[u8; 12] = b"\r\n\r\n\0\r\nQUIT\n";
/// Longest v1 line, CRLF included.
pub const MAX_V1_BYTES: usize = 107;
/// Longest v2 header accepted (16-byte prefix, addresses and TLVs).
pub const MAX_V2_BYTES: usize = 4096;

/// A complete header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProxyHeader {
    /// Bytes of the header (the connection's own bytes start after them).
    pub len: usize,
    /// (source, destination) announced, `None` for `LOCAL` / `UNKNOWN`.
    pub addresses: Option<(SocketAddr, SocketAddr)>,
}

/// What [`parse`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Parsed {
    /// More bytes are needed (what is there is a valid beginning).
    Partial,
    Complete(ProxyHeader),
}

/// Why a header was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ProxyHeaderError {
    #[error("the connection does not start with a PROXY protocol header")]
    Missing,
    #[error("malformed PROXY protocol v1 line")]
    BadV1,
    #[error("PROXY protocol v1 line longer than 107 bytes")]
    V1TooLong,
    #[error("unsupported PROXY protocol v2 version or command")]
    BadV2Command,
    #[error("unsupported PROXY protocol v2 address family or transport")]
    BadV2Family,
    #[error("PROXY protocol v2 header shorter than its addresses")]
    BadV2Length,
    #[error("PROXY protocol v2 header longer than 4096 bytes")]
    V2TooLong,
}

/// Why no header could be read from a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ReadError {
    #[error(transparent)]
    Header(#[from] ProxyHeaderError),
    #[error("no complete PROXY protocol header in time")]
    Timeout,
    #[error("connection closed before a complete PROXY protocol header")]
    Closed,
}

/// Reads the header a connection must start with into `inb` and consumes it (the bytes after
/// it stay in `inb`), giving up at `deadline`. Returns the addresses it announced.
pub async fn read_header(
    stream: &mut Stream,
    inb: &mut InBuf,
    deadline: Instant,
) -> Result<Option<(SocketAddr, SocketAddr)>, ReadError> {
    loop {
        if let Parsed::Complete(h) = parse(inb.bytes())? {
            inb.consume(h.len);
            return Ok(h.addresses);
        }
        let left = deadline.saturating_duration_since(Instant::now());
        let driver = stream.driver().clone();
        match crate::uring::timeout(&driver, left, stream.recv()).await {
            Ok(Ok(Some(b))) => inb.push(b),
            Ok(_) => return Err(ReadError::Closed),
            Err(_) => return Err(ReadError::Timeout),
        }
    }
}

/// Parses the header at the start of `buf`.
pub fn parse(buf: &[u8]) -> Result<Parsed, ProxyHeaderError> {
    if buf.is_empty() {
        return Ok(Parsed::Partial);
    }
    let sig = &V2_SIGNATURE[..buf.len().min(V2_SIGNATURE.len())];
    if buf.starts_with(sig) {
        if buf.len() < V2_SIGNATURE.len() {
            return Ok(Parsed::Partial);
        }
        return parse_v2(buf);
    }
    let v1 = b"PROXY ";
    if buf.len() < v1.len() {
        return if v1.starts_with(buf) {
            Ok(Parsed::Partial)
        } else {
            Err(ProxyHeaderError::Missing)
        };
    }
    if !buf.starts_with(v1) {
        return Err(ProxyHeaderError::Missing);
    }
    parse_v1(buf)
}

fn parse_v1(buf: &[u8]) -> Result<Parsed, ProxyHeaderError> {
    let window = &buf[..buf.len().min(MAX_V1_BYTES)];
    let Some(lf) = window.iter().position(|&b| b == b'\n') else {
        return if buf.len() >= MAX_V1_BYTES {
            Err(ProxyHeaderError::V1TooLong)
        } else {
            Ok(Parsed::Partial)
        };
    };
    if lf == 0 || window[lf - 1] != b'\r' {
        return Err(ProxyHeaderError::BadV1);
    }
    let line = std::str::from_utf8(&window[6..lf - 1]).map_err(|_| ProxyHeaderError::BadV1)?;
    let len = lf + 1;
    let mut parts = line.split(' ');
    let proto = parts.next().ok_or(ProxyHeaderError::BadV1)?;
    if proto == "UNKNOWN" {
        // Whatever follows is ignored (the spec allows anything up to the CRLF).
        return Ok(Parsed::Complete(ProxyHeader {
            len,
            addresses: None,
        }));
    }
    let (src, dst, sport, dport) = match (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) {
        (Some(a), Some(b), Some(c), Some(d), None) => (a, b, c, d),
        _ => return Err(ProxyHeaderError::BadV1),
    };
    let ip = |s: &str| -> Result<IpAddr, ProxyHeaderError> {
        match proto {
            "TCP4" => s
                .parse::<Ipv4Addr>()
                .map(IpAddr::V4)
                .map_err(|_| ProxyHeaderError::BadV1),
            "TCP6" => s
                .parse::<Ipv6Addr>()
                .map(IpAddr::V6)
                .map_err(|_| ProxyHeaderError::BadV1),
            _ => Err(ProxyHeaderError::BadV1),
        }
    };
    let port = |s: &str| -> Result<u16, ProxyHeaderError> {
        // Decimal without sign or leading zeros (the spec's "0" to "65535").
        let ok = !s.is_empty()
            && s.len() <= 5
            && s.bytes().all(|b| b.is_ascii_digit())
            && (s == "0" || !s.starts_with('0'));
        if !ok {
            return Err(ProxyHeaderError::BadV1);
        }
        s.parse().map_err(|_| ProxyHeaderError::BadV1)
    };
    let source = SocketAddr::new(ip(src)?, port(sport)?);
    let destination = SocketAddr::new(ip(dst)?, port(dport)?);
    Ok(Parsed::Complete(ProxyHeader {
        len,
        addresses: Some((source, destination)),
    }))
}

fn parse_v2(buf: &[u8]) -> Result<Parsed, ProxyHeaderError> {
    if buf.len() < 16 {
        return Ok(Parsed::Partial);
    }
    let ver_cmd = buf[12];
    let fam = buf[13];
    let body = usize::from(u16::from_be_bytes([buf[14], buf[15]]));
    let len = 16 + body;
    if len > MAX_V2_BYTES {
        return Err(ProxyHeaderError::V2TooLong);
    }
    let local = match ver_cmd {
        0x20 => true,
        0x21 => false,
        _ => return Err(ProxyHeaderError::BadV2Command),
    };
    // Validate the family before waiting for the body, so garbage fails early.
    let need = match fam {
        0x11 => 12, // TCP over IPv4
        0x21 => 36, // TCP over IPv6
        0x00 if local => 0,
        _ if local => 0, // LOCAL: the family is ignored
        _ => return Err(ProxyHeaderError::BadV2Family),
    };
    if body < need {
        return Err(ProxyHeaderError::BadV2Length);
    }
    if buf.len() < len {
        return Ok(Parsed::Partial);
    }
    if local {
        return Ok(Parsed::Complete(ProxyHeader {
            len,
            addresses: None,
        }));
    }
    let a = &buf[16..len];
    let addresses = if fam == 0x11 {
        let src = Ipv4Addr::new(a[0], a[1], a[2], a[3]);
        let dst = Ipv4Addr::new(a[4], a[5], a[6], a[7]);
        let sport = u16::from_be_bytes([a[8], a[9]]);
        let dport = u16::from_be_bytes([a[10], a[11]]);
        (
            SocketAddr::new(IpAddr::V4(src), sport),
            SocketAddr::new(IpAddr::V4(dst), dport),
        )
    } else {
        let mut s = [0u8; 16];
        let mut d = [0u8; 16];
        s.copy_from_slice(&a[0..16]);
        d.copy_from_slice(&a[16..32]);
        let sport = u16::from_be_bytes([a[32], a[33]]);
        let dport = u16::from_be_bytes([a[34], a[35]]);
        (
            SocketAddr::new(IpAddr::V6(Ipv6Addr::from(s)), sport),
            SocketAddr::new(IpAddr::V6(Ipv6Addr::from(d)), dport),
        )
    };
    Ok(Parsed::Complete(ProxyHeader {
        len,
        addresses: Some(addresses),
    }))
}

/// Appends the header of `version` announcing a connection from `source` to `destination`
/// (mixed families are sent as `UNKNOWN` / `LOCAL`: the spec has no mixed form).
pub fn encode(
    version: ProxyProtocolVersion,
    source: SocketAddr,
    destination: SocketAddr,
    out: &mut Vec<u8>,
) {
    use std::io::Write as _;
    match version {
        ProxyProtocolVersion::V1 => {
            let _ = match (source, destination) {
                (SocketAddr::V4(s), SocketAddr::V4(d)) => write!(
                    out,
                    "PROXY TCP4 {} {} {} {}\r\n",
                    s.ip(),
                    d.ip(),
                    s.port(),
                    d.port()
                ),
                (SocketAddr::V6(s), SocketAddr::V6(d)) => write!(
                    out,
                    "PROXY TCP6 {} {} {} {}\r\n",
                    s.ip(),
                    d.ip(),
                    s.port(),
                    d.port()
                ),
                _ => write!(out, "PROXY UNKNOWN\r\n"),
            };
        }
        ProxyProtocolVersion::V2 => {
            out.extend_from_slice(V2_SIGNATURE);
            match (source, destination) {
                (SocketAddr::V4(s), SocketAddr::V4(d)) => {
                    out.extend_from_slice(&[0x21, 0x11, 0, 12]);
                    out.extend_from_slice(&s.ip().octets());
                    out.extend_from_slice(&d.ip().octets());
                    out.extend_from_slice(&s.port().to_be_bytes());
                    out.extend_from_slice(&d.port().to_be_bytes());
                }
                (SocketAddr::V6(s), SocketAddr::V6(d)) => {
                    out.extend_from_slice(&[0x21, 0x21, 0, 36]);
                    out.extend_from_slice(&s.ip().octets());
                    out.extend_from_slice(&d.ip().octets());
                    out.extend_from_slice(&s.port().to_be_bytes());
                    out.extend_from_slice(&d.port().to_be_bytes());
                }
                _ => out.extend_from_slice(&[0x20, 0x00, 0, 0]),
            }
        }
    }
}

/// Fuzz entry: parsing never panics; a complete header's length is within the input and the
/// limits; re-encoding the addresses parses back to the same addresses, in both versions.
pub fn fuzz_logic(data: &[u8]) {
    match parse(data) {
        Ok(Parsed::Complete(h)) => {
            assert!(h.len <= data.len());
            assert!(h.len <= MAX_V2_BYTES);
            if let Some((s, d)) = h.addresses {
                for v in [ProxyProtocolVersion::V1, ProxyProtocolVersion::V2] {
                    let mut out = Vec::new();
                    encode(v, s, d, &mut out);
                    match parse(&out) {
                        Ok(Parsed::Complete(again)) => {
                            assert_eq!(again.len, out.len());
                            assert_eq!(again.addresses, Some((s, d)));
                        }
                        other => panic!("re-encoded header does not parse: {other:?}"),
                    }
                }
            }
        }
        Ok(Parsed::Partial) => assert!(data.len() < MAX_V2_BYTES),
        Err(_) => {}
    }
    // Split at every point: a prefix of a complete header is Partial, never an error.
    if let Ok(Parsed::Complete(h)) = parse(data) {
        for cut in 0..h.len {
            assert_eq!(
                parse(&data[..cut]),
                Ok(Parsed::Partial),
                "prefix of {cut} bytes"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sa(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    fn complete(buf: &[u8]) -> ProxyHeader {
        match parse(buf) {
            Ok(Parsed::Complete(h)) => h,
            other => panic!("{other:?} for {buf:?}"),
        }
    }

    #[test]
    fn parses_v1_tcp4_tcp6_and_unknown() {
        let h = complete(b"PROXY TCP4 192.0.2.1 198.51.100.2 56324 443\r\nGET /");
        assert_eq!(h.len, 45);
        assert_eq!(
            h.addresses,
            Some((sa("192.0.2.1:56324"), sa("198.51.100.2:443")))
        );
        let h = complete(b"PROXY TCP6 2001:db8::1 2001:db8::2 1 65535\r\n");
        assert_eq!(
            h.addresses,
            Some((sa("[2001:db8::1]:1"), sa("[2001:db8::2]:65535")))
        );
        let h = complete(b"PROXY UNKNOWN ffff::1 ffff::2 1 2\r\nrest");
        assert_eq!(h.addresses, None);
        assert_eq!(h.len, 35);
    }

    #[test]
    fn rejects_malformed_v1_lines() {
        let bad: &[&[u8]] = &[
            b"PROXY TCP4 192.0.2.1 198.51.100.2 56324 443\n",
            b"PROXY TCP4 192.0.2.1 198.51.100.2 56324\r\n",
            b"PROXY TCP4 192.0.2.1 198.51.100.2 56324 443 9\r\n",
            b"PROXY TCP4 2001:db8::1 198.51.100.2 1 2\r\n",
            b"PROXY TCP6 192.0.2.1 198.51.100.2 1 2\r\n",
            b"PROXY TCP4 192.0.2.1 198.51.100.2 65536 2\r\n",
            b"PROXY TCP4 192.0.2.1 198.51.100.2 01 2\r\n",
            b"PROXY TCP4 192.0.2.1 198.51.100.2 +1 2\r\n",
            b"PROXY TCP4  192.0.2.1 198.51.100.2 1 2\r\n",
            b"PROXY UDP4 192.0.2.1 198.51.100.2 1 2\r\n",
        ];
        for b in bad {
            assert_eq!(
                parse(b),
                Err(ProxyHeaderError::BadV1),
                "{:?}",
                String::from_utf8_lossy(b)
            );
        }
        let mut long = b"PROXY UNKNOWN ".to_vec();
        long.resize(200, b'x');
        assert_eq!(parse(&long), Err(ProxyHeaderError::V1TooLong));
    }

    #[test]
    fn other_bytes_are_missing_and_prefixes_are_partial() {
        assert_eq!(parse(b"GET / HTTP/1.1\r\n"), Err(ProxyHeaderError::Missing));
        assert_eq!(parse(b"\x16\x03\x01"), Err(ProxyHeaderError::Missing));
        assert_eq!(parse(b"PRO"), Ok(Parsed::Partial));
        assert_eq!(parse(b"PROXY TCP4 1.2"), Ok(Parsed::Partial));
        assert_eq!(parse(b"\r\n\r\n\0"), Ok(Parsed::Partial));
        assert_eq!(parse(b""), Ok(Parsed::Partial));
    }

    #[test]
    fn v2_round_trips_and_local_has_no_addresses() {
        for (s, d) in [
            (sa("192.0.2.1:56324"), sa("198.51.100.2:443")),
            (sa("[2001:db8::1]:1"), sa("[2001:db8::2]:2")),
        ] {
            let mut out = Vec::new();
            encode(ProxyProtocolVersion::V2, s, d, &mut out);
            out.extend_from_slice(b"payload");
            let h = complete(&out);
            assert_eq!(h.addresses, Some((s, d)));
            assert_eq!(&out[h.len..], b"payload");
            for cut in 0..h.len {
                assert_eq!(parse(&out[..cut]), Ok(Parsed::Partial));
            }
        }
        let mut local = V2_SIGNATURE.to_vec();
        local.extend_from_slice(&[0x20, 0x00, 0, 0]);
        assert_eq!(complete(&local).addresses, None);
        // Mixed families encode as LOCAL.
        let mut out = Vec::new();
        encode(
            ProxyProtocolVersion::V2,
            sa("192.0.2.1:1"),
            sa("[::1]:2"),
            &mut out,
        );
        assert_eq!(complete(&out).addresses, None);
    }

    #[test]
    fn v2_with_tlvs_skips_them() {
        let mut out = Vec::new();
        encode(
            ProxyProtocolVersion::V2,
            sa("10.0.0.1:1000"),
            sa("10.0.0.2:80"),
            &mut out,
        );
        // Declare 5 more bytes: one TLV (type 0x04 NOOP, length 2, value).
        out[15] += 5;
        out.extend_from_slice(&[0x04, 0, 2, 0xaa, 0xbb]);
        let h = complete(&out);
        assert_eq!(h.len, out.len());
        assert_eq!(h.addresses, Some((sa("10.0.0.1:1000"), sa("10.0.0.2:80"))));
    }

    #[test]
    fn rejects_bad_v2_headers() {
        let mut base = Vec::new();
        encode(
            ProxyProtocolVersion::V2,
            sa("10.0.0.1:1000"),
            sa("10.0.0.2:80"),
            &mut base,
        );
        let mut v = base.clone();
        v[12] = 0x31; // version 3
        assert_eq!(parse(&v), Err(ProxyHeaderError::BadV2Command));
        let mut v = base.clone();
        v[13] = 0x12; // UDP over IPv4
        assert_eq!(parse(&v), Err(ProxyHeaderError::BadV2Family));
        let mut v = base.clone();
        v[15] = 4; // shorter than the IPv4 addresses
        assert_eq!(parse(&v), Err(ProxyHeaderError::BadV2Length));
        let mut v = base.clone();
        v[14] = 0x20; // 8 KiB
        assert_eq!(parse(&v), Err(ProxyHeaderError::V2TooLong));
    }

    #[test]
    fn v1_encoding_is_the_spec_line() {
        let mut out = Vec::new();
        encode(
            ProxyProtocolVersion::V1,
            sa("192.0.2.1:56324"),
            sa("198.51.100.2:443"),
            &mut out,
        );
        assert_eq!(out, b"PROXY TCP4 192.0.2.1 198.51.100.2 56324 443\r\n");
        fuzz_logic(&out);
    }
}
