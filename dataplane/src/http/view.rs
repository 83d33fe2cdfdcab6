//! [`RequestView`]: what routing, hashing and policy read of a request head, without copies.
//!
//! Implemented by [`HeadView`] (a parsed [`RequestHead`] over the buffer it points into) and by
//! [`RequestParts`] (plain slices, for tests, benchmarks and tools). Lookups never allocate.

use super::head::RequestHead;

/// What routing needs to know about a request head. Lookups must not allocate.
pub trait RequestView {
    /// The `Host` header value as received (port and all). For an absolute-form target
    /// (RFC 9112 §3.2.2) return the target's authority instead. `None` when absent.
    fn host(&self) -> Option<&[u8]>;
    /// The request target as received (origin-form `/p?q`; absolute-form is accepted too).
    fn path(&self) -> &[u8];
    /// The value of the first header named `lowercase_name` (compare names ASCII
    /// case-insensitively), `None` when absent.
    fn header(&self, lowercase_name: &str) -> Option<&[u8]>;
    /// The verified identity of the client (mTLS), if any.
    fn principal(&self) -> Option<&str> {
        None
    }
}

/// A request view with the connection's verified client identity.
pub struct WithPrincipal<'a, R> {
    pub request: &'a R,
    pub principal: Option<&'a str>,
}

impl<R: RequestView> RequestView for WithPrincipal<'_, R> {
    fn host(&self) -> Option<&[u8]> {
        self.request.host()
    }
    fn path(&self) -> &[u8] {
        self.request.path()
    }
    fn header(&self, lowercase_name: &str) -> Option<&[u8]> {
        self.request.header(lowercase_name)
    }
    fn principal(&self) -> Option<&str> {
        self.principal
    }
}

/// A borrowed request for tests, benchmarks and tools: `RequestView` over plain slices.
#[derive(Debug, Clone, Copy, Default)]
pub struct RequestParts<'a> {
    pub host: Option<&'a [u8]>,
    pub path: &'a [u8],
    /// (name, value); names in any case.
    pub headers: &'a [(&'a str, &'a [u8])],
}

impl RequestView for RequestParts<'_> {
    fn host(&self) -> Option<&[u8]> {
        self.host
    }
    fn path(&self) -> &[u8] {
        self.path
    }
    fn header(&self, lowercase_name: &str) -> Option<&[u8]> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(lowercase_name))
            .map(|(_, v)| *v)
    }
}

/// A parsed request head as the router sees it: the head's spans over `buf`.
#[derive(Clone, Copy)]
pub struct HeadView<'a> {
    pub head: &'a RequestHead,
    pub buf: &'a [u8],
}

impl RequestView for HeadView<'_> {
    fn host(&self) -> Option<&[u8]> {
        match self.head.authority {
            Some(a) => Some(a.get(self.buf)),
            None => self.head.host.map(|h| h.get(self.buf)),
        }
    }
    fn path(&self) -> &[u8] {
        self.head.target.get(self.buf)
    }
    fn header(&self, lowercase_name: &str) -> Option<&[u8]> {
        self.head.header(self.buf, lowercase_name)
    }
}

/// For an absolute-form target: whether its authority and the Host field name the same
/// origin (host compared ASCII case-insensitively; a missing port is the scheme's default).
/// True when the target is not absolute-form or there is no Host field.
pub fn authority_matches_host(head: &RequestHead, buf: &[u8]) -> bool {
    let (Some(authority), Some(host)) = (head.authority, head.host) else {
        return true;
    };
    let https = head
        .target
        .get(buf)
        .get(..5)
        .is_some_and(|s| s.eq_ignore_ascii_case(b"https"));
    let default_port: &[u8] = if https { b"443" } else { b"80" };
    let (ah, ap) = split_host_port(authority.get(buf));
    let (hh, hp) = split_host_port(host.get(buf));
    ah.eq_ignore_ascii_case(hh) && ap.unwrap_or(default_port) == hp.unwrap_or(default_port)
}

/// `host[:port]` or `[v6]:port` → (host, port).
fn split_host_port(v: &[u8]) -> (&[u8], Option<&[u8]>) {
    match v.iter().rposition(|&b| b == b':') {
        Some(i) if !v[i..].contains(&b']') => (&v[..i], Some(&v[i + 1..])),
        _ => (v, None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::{parse_request_head, HeadLimits, Parsed};

    fn matches(req: &[u8]) -> bool {
        let mut head = RequestHead::default();
        assert!(matches!(
            parse_request_head(req, &HeadLimits::default(), &mut head),
            Ok(Parsed::Complete(_))
        ));
        authority_matches_host(&head, req)
    }

    #[test]
    fn authority_and_host_compare_by_host_and_effective_port() {
        assert!(matches(
            b"GET http://a.example/x HTTP/1.1\r\nHost: A.Example\r\n\r\n"
        ));
        assert!(matches(
            b"GET http://a.example:80/x HTTP/1.1\r\nHost: a.example\r\n\r\n"
        ));
        assert!(matches(
            b"GET https://a.example/x HTTP/1.1\r\nHost: a.example:443\r\n\r\n"
        ));
        assert!(matches(
            b"GET http://[::1]:8080/ HTTP/1.1\r\nHost: [::1]:8080\r\n\r\n"
        ));
        assert!(!matches(
            b"GET http://a.example/x HTTP/1.1\r\nHost: b.example\r\n\r\n"
        ));
        assert!(!matches(
            b"GET http://a.example:81/x HTTP/1.1\r\nHost: a.example\r\n\r\n"
        ));
        assert!(!matches(
            b"GET https://a.example/x HTTP/1.1\r\nHost: a.example:80\r\n\r\n"
        ));
        assert!(matches(b"GET /x HTTP/1.1\r\nHost: anything\r\n\r\n"));
    }
}
