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
