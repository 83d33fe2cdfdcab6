//! Header and path manipulation of forwarded heads (route `headers` policy), applied around
//! [`request_segments`](super::request_segments) / [`response_segments`](super::response_segments):
//!
//! 1. before building segments, [`suppress`] marks the fields a policy removes or replaces as
//!    not forwarded (name match is ASCII case-insensitive);
//! 2. after, [`append_fields`] inserts the added and replacing lines before the final CRLF of
//!    the head, and [`rewrite_path_prefix`] swaps the request line for one with the new prefix.
//!
//! Invariants: the output stays a valid head (one final CRLF, request line first); original
//! bytes are still sent from the received buffer; the only copies are the new lines, written
//! into the caller's reused `added` buffer (no allocation once it has grown).

use super::head::{HeaderField, RequestHead, Span};
use super::write::Segment;

/// Marks every field named in `names` (lower-case) as not forwarded.
pub fn suppress<'a>(
    fields: &mut [HeaderField],
    buf: &[u8],
    names: impl Iterator<Item = &'a str> + Clone,
) {
    for f in fields.iter_mut().filter(|f| f.forward) {
        let name = f.name.get(buf);
        if names
            .clone()
            .any(|n| name.eq_ignore_ascii_case(n.as_bytes()))
        {
            f.forward = false;
        }
    }
}

/// Inserts `name: value\r\n` lines before the head's final CRLF. `segs` must end with the
/// `Added` segment that [`request_segments`](super::request_segments) or
/// [`response_segments`](super::response_segments) produced (it ends with the final CRLF).
pub fn append_fields<'a>(
    lines: impl Iterator<Item = (&'a str, &'a str)>,
    added: &mut Vec<u8>,
    segs: &mut [Segment],
) {
    let Some(Segment::Added(last)) = segs.last_mut() else {
        debug_assert!(false, "head segments must end with the added tail");
        return;
    };
    if last.end as usize != added.len() || !added.ends_with(b"\r\n") {
        debug_assert!(false, "the added tail must be the last bytes of `added`");
        return;
    }
    added.truncate(added.len() - 2);
    for (name, value) in lines {
        added.extend_from_slice(name.as_bytes());
        added.extend_from_slice(b": ");
        added.extend_from_slice(value.as_bytes());
        added.extend_from_slice(b"\r\n");
    }
    added.extend_from_slice(b"\r\n");
    last.end = added.len() as u32;
}

/// Replaces `prefix` at the start of the request path with `new_prefix` (route
/// `path_prefix_rewrite`). Returns false, changing nothing, if the path does not start with
/// `prefix`. The new request line is written into `added`; the original line is no longer sent.
pub fn rewrite_path_prefix(
    head: &RequestHead,
    buf: &[u8],
    prefix: &str,
    new_prefix: &str,
    added: &mut Vec<u8>,
    segs: &mut Vec<Segment>,
) -> bool {
    let path = head.path.get(buf);
    if !path.starts_with(prefix.as_bytes()) {
        return false;
    }
    let line = head.request_line;
    let new_line = Segment::Added(super::write::write_origin_line(
        head,
        buf,
        prefix.len(),
        new_prefix.as_bytes(),
        added,
    ));
    match segs.first().copied() {
        // Origin-form: the first segment starts with the request line (and may go on with the
        // header lines that follow it in the buffer).
        Some(Segment::Orig(first)) if first.start == line.start && first.end >= line.end => {
            if first.end == line.end {
                segs[0] = new_line;
            } else {
                segs[0] = Segment::Orig(Span::new(line.end, first.end));
                segs.insert(0, new_line);
            }
            true
        }
        // Absolute-form: the request line was already written into `added`.
        Some(Segment::Added(_)) => {
            segs[0] = new_line;
            true
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::{
        parse_request_head, parse_response_head, request_segments, response_segments,
        write_segments, HeadLimits, Method, Parsed, RequestExtras, ResponseExtras, ResponseHead,
    };
    use std::net::{IpAddr, Ipv4Addr};

    const EXTRAS: RequestExtras<'static> = RequestExtras {
        client_ip: IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)),
        proto: "http",
        request_id: None,
    };

    fn request(buf: &[u8]) -> RequestHead {
        let mut head = RequestHead::default();
        match parse_request_head(buf, &HeadLimits::default(), &mut head) {
            Ok(Parsed::Complete(_)) => head,
            other => panic!("{other:?}"),
        }
    }

    fn forward(
        buf: &[u8],
        f: impl FnOnce(&mut RequestHead, &mut Vec<u8>, &mut Vec<Segment>),
    ) -> String {
        let mut head = request(buf);
        let (mut added, mut segs, mut out) = (Vec::new(), Vec::new(), Vec::new());
        suppress(&mut head.headers, buf, ["x-drop", "x-set"].into_iter());
        request_segments(&head, buf, &EXTRAS, &mut added, &mut segs);
        f(&mut head, &mut added, &mut segs);
        write_segments(&segs, buf, &added, &mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn removes_replaces_and_adds_request_fields() {
        let buf = b"GET /a HTTP/1.1\r\nHost: h\r\nX-Drop: 1\r\nX-SET: old\r\nX-Keep: k\r\n\r\n";
        let out = forward(buf, |_, added, segs| {
            append_fields([("x-set", "new"), ("x-add", "a")].into_iter(), added, segs)
        });
        assert_eq!(
            out,
            "GET /a HTTP/1.1\r\nHost: h\r\nX-Keep: k\r\nx-forwarded-for: 10.0.0.1\r\nx-forwarded-proto: http\r\nx-set: new\r\nx-add: a\r\n\r\n"
        );
    }

    #[test]
    fn rewrites_the_path_prefix_and_keeps_the_query() {
        let buf = b"GET /api/v1/users?id=3 HTTP/1.1\r\nHost: h\r\n\r\n";
        let out = forward(buf, |head, added, segs| {
            assert!(rewrite_path_prefix(
                head,
                buf,
                "/api/",
                "/internal/",
                added,
                segs
            ));
        });
        assert!(
            out.starts_with("GET /internal/v1/users?id=3 HTTP/1.1\r\nHost: h\r\n"),
            "{out}"
        );
        assert!(out.ends_with("\r\n\r\n"));
    }

    #[test]
    fn path_rewrite_of_absolute_form_goes_out_in_origin_form() {
        let buf = b"GET http://h:81/api/x?q HTTP/1.1\r\nHost: h:81\r\nX-Keep: k\r\n\r\n";
        let out = forward(buf, |head, added, segs| {
            assert!(rewrite_path_prefix(head, buf, "/api/", "/", added, segs));
        });
        assert!(
            out.starts_with("GET /x?q HTTP/1.1\r\nX-Keep: k\r\nhost: h:81\r\n"),
            "{out}"
        );
        assert_eq!(out.matches("ost: ").count(), 1, "{out}");
    }

    #[test]
    fn path_rewrite_without_the_prefix_changes_nothing() {
        let buf = b"GET /other HTTP/1.1\r\nHost: h\r\n\r\n";
        let out = forward(buf, |head, added, segs| {
            assert!(!rewrite_path_prefix(head, buf, "/api/", "/", added, segs));
        });
        assert!(out.starts_with("GET /other HTTP/1.1\r\n"));
    }

    #[test]
    fn response_fields_are_suppressed_and_added() {
        let buf = b"HTTP/1.1 200 OK\r\nServer: up\r\nX-A: 1\r\nContent-Length: 0\r\n\r\n";
        let mut head = ResponseHead::default();
        let n = match parse_response_head(buf, &HeadLimits::default(), Method::Get, &mut head) {
            Ok(Parsed::Complete(n)) => n,
            other => panic!("{other:?}"),
        };
        suppress(&mut head.headers, buf, ["server"].into_iter());
        let (mut added, mut segs, mut out) = (Vec::new(), Vec::new(), Vec::new());
        response_segments(&head, &ResponseExtras::default(), &mut added, &mut segs);
        append_fields(
            [("x-served-by", "ringway")].into_iter(),
            &mut added,
            &mut segs,
        );
        write_segments(&segs, &buf[..n], &added, &mut out);
        assert_eq!(
            out,
            b"HTTP/1.1 200 OK\r\nX-A: 1\r\nContent-Length: 0\r\nx-served-by: ringway\r\n\r\n"
        );
    }
}
