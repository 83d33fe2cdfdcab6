//! TLS ClientHello inspection: [`inspect`] reads the first bytes a client sends on a TLS
//! connection and finds the server name (SNI) and the ALPN protocols it asks for, so that a
//! TLS passthrough listener can route by name without terminating TLS (what Envoy's
//! `tls_inspector` and HAProxy's `req.ssl_sni` do).
//!
//! ```text
//! record     type 22 (handshake) | version 0x0301..=0x0304 | length (BE u16, 4..=16384)
//! handshake  type 1 (ClientHello) | length (BE u24) = record length - 4
//! hello      legacy_version u16 | random [32] | session_id <0..32> | cipher_suites <2..2^16-2>
//!            | compression_methods <1..2^8-1> | [extensions <0..2^16-1>]
//! extension  type u16 | data <0..2^16-1>
//!            server_name (0): server_name_list <1..> of name_type u8 | name <1..2^16-1>
//!            alpn (16):       protocol_name_list <2..> of name <1..2^8-1>
//! ```
//!
//! Pure: no I/O, no allocation, never panics, never indexes out of bounds (every access goes
//! through a bounds-checked cursor). The caller buffers at most [`MAX_CLIENT_HELLO`] bytes and
//! calls [`inspect`] again as more arrive:
//!
//! - [`Inspect::NeedMore`]: what is there is a valid beginning of a ClientHello; never returned
//!   once [`MAX_CLIENT_HELLO`] bytes are there. Every prefix of bytes that give a `Hello`
//!   gives `NeedMore` (or the same `Hello`, once the record is complete).
//! - [`Inspect::NotTls`]: the bytes are not the start of a TLS ClientHello (plain HTTP,
//!   garbage, an SSLv2 hello, another record or handshake type), or the ClientHello is
//!   fragmented over several records: the whole ClientHello must be inside the first record
//!   (records are at most 16 KiB; real ClientHellos are under 2 KiB, post-quantum ones about
//!   1.3 KiB, and clients do not fragment them).
//! - [`Inspect::Malformed`]: the bytes start like a ClientHello but break its rules: a length
//!   that overruns its container or does not fill it, bytes after the ClientHello inside its
//!   record, a duplicate extension (found with a bitmap of the 65536 types, 8 KiB on the
//!   stack: linear in the number of extensions), a server_name or ALPN extension that is not
//!   well formed, two host names, a host name that is not 1..=255 ASCII DNS characters
//!   (letters, digits, `-`, `.`, `_`).
//!   Decided as soon as the offending bytes are there (without waiting for the rest).
//! - [`Inspect::Hello`]: a complete, well-formed ClientHello. Its `server_name` and `alpn`
//!   borrow from the input; bytes after the first record (the rest of the client's flight)
//!   are ignored.
//!
//! The host name is returned as sent (not lowercased, a trailing dot kept): compare it
//! case-insensitively. With Encrypted Client Hello it is the outer (public) name.
//! What lives elsewhere: choosing a route from the name, buffering the bytes, TLS itself.

use std::fmt;

/// Most bytes the caller needs to buffer: a record header and the longest record (16 KiB).
pub const MAX_CLIENT_HELLO: usize = 16 * 1024 + 5;

const RECORD_HEADER: usize = 5;
const MAX_RECORD: usize = 16 * 1024;
const CONTENT_HANDSHAKE: u8 = 22;
const HANDSHAKE_CLIENT_HELLO: u8 = 1;
const EXT_SERVER_NAME: u16 = 0;
const EXT_ALPN: u16 = 16;
const NAME_TYPE_HOST_NAME: u8 = 0;
const MAX_HOST_NAME: usize = 255;

/// What [`inspect`] found at the start of a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Inspect<'a> {
    /// A valid beginning: call again with more bytes.
    NeedMore,
    /// Not a TLS ClientHello (or one fragmented over several records).
    NotTls,
    /// A ClientHello that breaks the protocol's rules (counted by the caller).
    Malformed,
    /// A complete, well-formed ClientHello.
    Hello(ClientHello<'a>),
}

/// What a ClientHello says that routing can use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientHello<'a> {
    /// The `host_name` of the server_name extension: 1..=255 ASCII DNS characters.
    pub server_name: Option<&'a str>,
    /// The ALPN protocols offered, in the client's order (empty without the extension).
    pub alpn: AlpnList<'a>,
    /// `legacy_version`: 0x0303 from TLS 1.2 and 1.3 clients (a TLS 1.3 client lists the
    /// versions it supports in the supported_versions extension, not parsed here).
    pub legacy_version: u16,
}

/// The protocol names of an ALPN extension, as a view over its (validated) bytes.
#[derive(Clone, Copy, Default, PartialEq, Eq)]
pub struct AlpnList<'a> {
    /// `protocol_name_list` without its length: 1-byte-length-prefixed, non-empty names.
    list: &'a [u8],
}

impl<'a> AlpnList<'a> {
    /// No protocol offered (no ALPN extension).
    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// The protocol names, in the client's order.
    pub fn iter(&self) -> AlpnIter<'a> {
        AlpnIter { rest: self.list }
    }

    /// Whether `protocol` (e.g. `b"h2"`) is offered.
    pub fn contains(&self, protocol: &[u8]) -> bool {
        self.iter().any(|p| p == protocol)
    }
}

impl<'a> IntoIterator for AlpnList<'a> {
    type Item = &'a [u8];
    type IntoIter = AlpnIter<'a>;
    fn into_iter(self) -> AlpnIter<'a> {
        self.iter()
    }
}

impl<'a> IntoIterator for &AlpnList<'a> {
    type Item = &'a [u8];
    type IntoIter = AlpnIter<'a>;
    fn into_iter(self) -> AlpnIter<'a> {
        self.iter()
    }
}

impl fmt::Debug for AlpnList<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        struct Name<'b>(&'b [u8]);
        impl fmt::Debug for Name<'_> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "\"{}\"", self.0.escape_ascii())
            }
        }
        f.debug_list().entries(self.iter().map(Name)).finish()
    }
}

/// Iterator over the names of an [`AlpnList`].
#[derive(Debug, Clone)]
pub struct AlpnIter<'a> {
    rest: &'a [u8],
}

impl<'a> Iterator for AlpnIter<'a> {
    type Item = &'a [u8];
    fn next(&mut self) -> Option<&'a [u8]> {
        let (&len, rest) = self.rest.split_first()?;
        match rest.split_at_checked(usize::from(len)) {
            Some((name, tail)) => {
                self.rest = tail;
                Some(name)
            }
            None => {
                // Unreachable for a list built by `inspect` (validated); stop rather than panic.
                self.rest = &[];
                None
            }
        }
    }
}

/// Inspects the first bytes of a connection (see the module documentation).
pub fn inspect(bytes: &[u8]) -> Inspect<'_> {
    match parse(bytes) {
        Ok(hello) => Inspect::Hello(hello),
        Err(Stop::NeedMore) => Inspect::NeedMore,
        Err(Stop::NotTls) => Inspect::NotTls,
        Err(Stop::Malformed) => Inspect::Malformed,
    }
}

/// Why parsing stopped short of a `ClientHello`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stop {
    NeedMore,
    NotTls,
    Malformed,
}

/// A bounds-checked reader over the bytes received so far (`buf`), limited to a declared
/// length (`end`, which may lie beyond what has been received). Reading past `end` is
/// `Malformed`; reading within `end` but past `buf` is `NeedMore`. Errors therefore depend
/// only on bytes that are there, which gives the prefix property.
#[derive(Debug, Clone, Copy)]
struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
    end: usize,
}

impl<'a> Cursor<'a> {
    fn advance(&self, n: usize) -> Result<usize, Stop> {
        match self.pos.checked_add(n) {
            Some(next) if next <= self.end => Ok(next),
            _ => Err(Stop::Malformed),
        }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], Stop> {
        let next = self.advance(n)?;
        let bytes = self.buf.get(self.pos..next).ok_or(Stop::NeedMore)?;
        self.pos = next;
        Ok(bytes)
    }

    /// Skips `n` bytes that need not have arrived yet (a later read will wait for them).
    fn skip(&mut self, n: usize) -> Result<(), Stop> {
        self.pos = self.advance(n)?;
        Ok(())
    }

    fn u8(&mut self) -> Result<u8, Stop> {
        match self.take(1)? {
            &[b] => Ok(b),
            _ => Err(Stop::Malformed),
        }
    }

    fn u16(&mut self) -> Result<u16, Stop> {
        match self.take(2)? {
            &[a, b] => Ok(u16::from_be_bytes([a, b])),
            _ => Err(Stop::Malformed),
        }
    }

    fn u24(&mut self) -> Result<usize, Stop> {
        match self.take(3)? {
            &[a, b, c] => Ok((usize::from(a) << 16) | (usize::from(b) << 8) | usize::from(c)),
            _ => Err(Stop::Malformed),
        }
    }

    /// The next `n` bytes as a cursor of their own (they need not have arrived yet).
    fn sub(&mut self, n: usize) -> Result<Cursor<'a>, Stop> {
        let next = self.advance(n)?;
        let sub = Cursor {
            buf: self.buf,
            pos: self.pos,
            end: next,
        };
        self.pos = next;
        Ok(sub)
    }

    /// A vector with a 1-byte length, of `min..` bytes.
    fn vec8(&mut self, min: usize) -> Result<Cursor<'a>, Stop> {
        let len = usize::from(self.u8()?);
        if len < min {
            return Err(Stop::Malformed);
        }
        self.sub(len)
    }

    /// A vector with a 2-byte length, of `min..` bytes.
    fn vec16(&mut self, min: usize) -> Result<Cursor<'a>, Stop> {
        let len = usize::from(self.u16()?);
        if len < min {
            return Err(Stop::Malformed);
        }
        self.sub(len)
    }

    fn is_done(&self) -> bool {
        self.pos >= self.end
    }

    /// A cursor over bytes that have all arrived.
    fn over(buf: &'a [u8]) -> Cursor<'a> {
        Cursor {
            buf,
            pos: 0,
            end: buf.len(),
        }
    }
}

fn parse(bytes: &[u8]) -> Result<ClientHello<'_>, Stop> {
    let mut head = Cursor {
        buf: bytes,
        pos: 0,
        end: MAX_CLIENT_HELLO,
    };
    // Record header, checked byte by byte so that other protocols are told apart at once.
    if head.u8()? != CONTENT_HANDSHAKE {
        return Err(Stop::NotTls);
    }
    if head.u8()? != 3 || !(1..=4).contains(&head.u8()?) {
        return Err(Stop::NotTls);
    }
    let record_len = usize::from(head.u16()?);
    // Under 4 bytes the handshake header itself would be fragmented.
    if !(4..=MAX_RECORD).contains(&record_len) {
        return Err(Stop::NotTls);
    }
    let record_end = RECORD_HEADER + record_len;
    if head.u8()? != HANDSHAKE_CLIENT_HELLO {
        return Err(Stop::NotTls);
    }
    let hello_len = head.u24()?;
    if hello_len > record_len - 4 {
        // Continued in a later record: not handled (see the module documentation).
        return Err(Stop::NotTls);
    }
    if hello_len < record_len - 4 {
        // Something else after the ClientHello in its record.
        return Err(Stop::Malformed);
    }
    let mut hello = Cursor {
        buf: bytes.get(..record_end).unwrap_or(bytes),
        pos: head.pos,
        end: record_end,
    };

    let legacy_version = hello.u16()?;
    if legacy_version >> 8 != 3 {
        return Err(Stop::Malformed);
    }
    hello.skip(32)?; // random
    let session_id = hello.vec8(0)?;
    if session_id.end - session_id.pos > 32 {
        return Err(Stop::Malformed);
    }
    let suites = hello.vec16(2)?;
    if (suites.end - suites.pos) % 2 != 0 {
        return Err(Stop::Malformed);
    }
    hello.vec8(1)?; // compression methods

    let mut server_name = None;
    let mut alpn = AlpnList::default();
    if !hello.is_done() {
        let mut exts = hello.vec16(0)?;
        if !hello.is_done() {
            return Err(Stop::Malformed);
        }
        let mut seen = [0u64; 1024]; // one bit per extension type
        while !exts.is_done() {
            let typ = exts.u16()?;
            let len = usize::from(exts.u16()?);
            let (word, bit) = (usize::from(typ >> 6), 1u64 << (typ & 63));
            let Some(w) = seen.get_mut(word) else {
                return Err(Stop::Malformed);
            };
            if *w & bit != 0 {
                return Err(Stop::Malformed);
            }
            *w |= bit;
            match typ {
                EXT_SERVER_NAME => server_name = parse_server_name(exts.take(len)?)?,
                EXT_ALPN => alpn = parse_alpn(exts.take(len)?)?,
                _ => exts.skip(len)?,
            }
        }
    }
    if bytes.len() < record_end {
        return Err(Stop::NeedMore);
    }
    Ok(ClientHello {
        server_name,
        alpn,
        legacy_version,
    })
}

/// The server_name extension's data: the `host_name` entry (at most one), if any.
fn parse_server_name(data: &[u8]) -> Result<Option<&str>, Stop> {
    let mut ext = Cursor::over(data);
    let mut list = ext.vec16(1)?;
    if !ext.is_done() {
        return Err(Stop::Malformed);
    }
    let mut host = None;
    while !list.is_done() {
        let name_type = list.u8()?;
        let len = usize::from(list.u16()?);
        let name = list.take(len)?;
        if name_type != NAME_TYPE_HOST_NAME {
            continue; // no other type is defined; skipped like unknown extensions
        }
        if host.is_some() || !valid_host_name(name) {
            return Err(Stop::Malformed);
        }
        host = Some(std::str::from_utf8(name).map_err(|_| Stop::Malformed)?);
    }
    Ok(host)
}

fn valid_host_name(name: &[u8]) -> bool {
    (1..=MAX_HOST_NAME).contains(&name.len())
        && name
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_'))
}

/// The ALPN extension's data: a non-empty list of non-empty names, exactly filled.
fn parse_alpn(data: &[u8]) -> Result<AlpnList<'_>, Stop> {
    let mut ext = Cursor::over(data);
    let list_len = usize::from(ext.u16()?);
    let bytes = ext.take(list_len)?;
    if !ext.is_done() || bytes.len() < 2 {
        return Err(Stop::Malformed);
    }
    let mut list = Cursor::over(bytes);
    while !list.is_done() {
        list.vec8(1)?;
    }
    Ok(AlpnList { list: bytes })
}

#[cfg(test)]
mod tests;
