//! Writing forwarded heads and the proxy's own responses.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::*;

fn forwarded_request(buf: &[u8], extras: &RequestExtras<'_>) -> (Vec<u8>, Vec<Segment>) {
    let head = req_ok(buf);
    let (mut added, mut segs, mut out) = (Vec::new(), Vec::new(), Vec::new());
    request_segments(&head, buf, extras, &mut added, &mut segs);
    write_segments(&segs, buf, &added, &mut out);
    (out, segs)
}

const V4: RequestExtras<'static> = RequestExtras {
    client_ip: IpAddr::V4(Ipv4Addr::new(10, 0, 0, 7)),
    proto: "https",
    request_id: Some(b"rid-1"),
};

#[test]
fn forwards_request_as_one_original_span_plus_added_headers() {
    let buf = b"GET /a HTTP/1.1\r\nHost: h\r\nAccept: */*\r\n\r\n";
    let (out, segs) = forwarded_request(buf, &V4);
    assert_eq!(segs.len(), 2);
    assert_eq!(segs[0], Segment::Orig(Span::new(0, 39)));
    assert_eq!(
        out,
        b"GET /a HTTP/1.1\r\nHost: h\r\nAccept: */*\r\nx-forwarded-for: 10.0.0.7\r\nx-forwarded-proto: https\r\nx-request-id: rid-1\r\n\r\n"
    );
}

#[test]
fn skips_hop_by_hop_lines_and_coalesces_the_rest() {
    let buf = b"GET / HTTP/1.1\r\nHost: h\r\nConnection: close, x-a\r\nX-A: 1\r\nX-B: 2\r\nX-Forwarded-Proto: http\r\nX-Request-Id: mine\r\n\r\n";
    let (out, segs) = forwarded_request(buf, &V4);
    assert_eq!(segs.len(), 4, "{segs:?}");
    assert_eq!(
        out,
        b"GET / HTTP/1.1\r\nHost: h\r\nX-B: 2\r\nX-Request-Id: mine\r\nx-forwarded-for: 10.0.0.7\r\nx-forwarded-proto: https\r\n\r\n"
    );
}

#[test]
fn adds_connection_upgrade_for_websocket() {
    let buf = b"GET / HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\n";
    let extras = RequestExtras {
        client_ip: IpAddr::V6(Ipv6Addr::LOCALHOST),
        proto: "http",
        request_id: None,
    };
    let (out, _) = forwarded_request(buf, &extras);
    assert_eq!(
        out,
        b"GET / HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nx-forwarded-for: ::1\r\nx-forwarded-proto: http\r\nconnection: upgrade\r\n\r\n"
    );
}

#[test]
fn drops_request_id_with_unsafe_bytes() {
    let buf = b"GET / HTTP/1.1\r\nHost: h\r\n\r\n";
    let extras = RequestExtras {
        request_id: Some(b"a\r\nx: y"),
        ..V4
    };
    let (out, _) = forwarded_request(buf, &extras);
    assert!(!out.windows(12).any(|w| w == b"x-request-id"));
}

fn forwarded_response(buf: &[u8], method: Method, extras: &ResponseExtras) -> Vec<u8> {
    let head = res_ok(buf, method);
    let (mut added, mut segs, mut out) = (Vec::new(), Vec::new(), Vec::new());
    response_segments(&head, extras, &mut added, &mut segs);
    write_segments(&segs, buf, &added, &mut out);
    out
}

#[test]
fn forwards_response_without_hop_by_hop_and_adds_close() {
    let buf = b"HTTP/1.1 200 OK\r\nKeep-Alive: timeout=5\r\nContent-Length: 0\r\nConnection: keep-alive\r\n\r\n";
    let extras = ResponseExtras {
        close: true,
        keep_alive_http10: false,
    };
    assert_eq!(
        forwarded_response(buf, Method::Get, &extras),
        b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nconnection: close\r\n\r\n"
    );
}

#[test]
fn adds_keep_alive_for_http10_client() {
    let buf = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";
    let extras = ResponseExtras {
        close: false,
        keep_alive_http10: true,
    };
    assert_eq!(
        forwarded_response(buf, Method::Get, &extras),
        b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nconnection: keep-alive\r\n\r\n"
    );
}

#[test]
fn forwards_switching_protocols_with_upgrade() {
    let buf = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: x\r\n\r\n";
    assert_eq!(
        forwarded_response(buf, Method::Get, &ResponseExtras::default()),
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nSec-WebSocket-Accept: x\r\nconnection: upgrade\r\n\r\n"
    );
}

#[test]
fn writes_simple_response() {
    let mut out = b"prefix".to_vec();
    write_simple_response(502, b"bad gateway\n", true, &mut out);
    assert_eq!(
        out,
        b"prefixHTTP/1.1 502 Bad Gateway\r\nserver: ringway\r\ncontent-type: text/plain\r\ncontent-length: 12\r\nconnection: close\r\n\r\nbad gateway\n"
    );
    let mut out = Vec::new();
    write_simple_response(404, b"", false, &mut out);
    let mut head = ResponseHead::default();
    assert_eq!(
        parse_response_head(&out, &LIMITS, Method::Get, &mut head),
        Ok(Parsed::Complete(out.len()))
    );
    assert_eq!(head.framing, ResponseFraming::None);
    assert!(head.keep_alive);
}

#[test]
fn reason_phrases_cover_proxy_statuses() {
    for s in [400, 404, 413, 414, 417, 429, 431, 501, 502, 503, 504, 505] {
        assert_ne!(reason_phrase(s), "Unknown", "{s}");
    }
    assert_eq!(reason_phrase(799), "Unknown");
    assert_eq!(CONTINUE_100, b"HTTP/1.1 100 Continue\r\n\r\n");
}

#[test]
fn rewrites_an_http10_status_line_to_http11() {
    let buf = b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok";
    let mut head = ResponseHead::default();
    let n = match parse_response_head(buf, &HeadLimits::default(), Method::Get, &mut head) {
        Ok(Parsed::Complete(n)) => n,
        other => panic!("{other:?}"),
    };
    let (mut added, mut segs, mut out) = (Vec::new(), Vec::new(), Vec::new());
    response_segments(&head, &ResponseExtras::default(), &mut added, &mut segs);
    write_segments(&segs, &buf[..n], &added, &mut out);
    assert_eq!(out, b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n");
}

// ---- conformance table (docs/http-conformance.md): what goes upstream ----

/// RFC 9112 §3.2.2: an absolute-form target goes upstream in origin-form and its authority
/// replaces the received Host (the received Host line is not forwarded).
#[test]
fn absolute_form_goes_out_in_origin_form_with_the_authority_as_host() {
    let buf = b"GET http://a.example:8080/x?q=1 HTTP/1.1\r\nHost: b.example\r\nX-A: 1\r\n\r\n";
    let (out, _) = forwarded_request(buf, &V4);
    assert_eq!(
        out,
        b"GET /x?q=1 HTTP/1.1\r\nX-A: 1\r\nhost: a.example:8080\r\nx-forwarded-for: 10.0.0.7\r\nx-forwarded-proto: https\r\nx-request-id: rid-1\r\n\r\n"
    );
}

/// RFC 9112 §3.2.1 and §3.2.4: an empty path is sent as `/`, or as `*` for OPTIONS.
#[test]
fn absolute_form_without_path_becomes_slash_or_asterisk() {
    for (req, line) in [
        (
            &b"GET http://a HTTP/1.1\r\nHost: a\r\n\r\n"[..],
            &b"GET / HTTP/1.1\r\n"[..],
        ),
        (
            b"OPTIONS http://a HTTP/1.1\r\nHost: a\r\n\r\n",
            b"OPTIONS * HTTP/1.1\r\n",
        ),
        (
            b"OPTIONS http://a?x HTTP/1.1\r\nHost: a\r\n\r\n",
            b"OPTIONS /?x HTTP/1.1\r\n",
        ),
    ] {
        let (out, _) = forwarded_request(req, &V4);
        assert!(out.starts_with(line), "{:?}", String::from_utf8_lossy(&out));
    }
}

/// RFC 9110 §8.6: a list of identical Content-Length values goes upstream as one field.
#[test]
fn forwards_a_content_length_list_as_one_field() {
    let buf = b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5, 5\r\n\r\n";
    let (out, _) = forwarded_request(buf, &V4);
    let text = String::from_utf8_lossy(&out).to_ascii_lowercase();
    assert_eq!(text.matches("content-length").count(), 1, "{text}");
    assert!(text.contains("content-length: 5\r\n"), "{text}");
}

/// RFC 9110 §7.6.1: Connection and the fields it names are removed; Content-Length,
/// Transfer-Encoding and Host are kept even when named.
#[test]
fn connection_options_never_remove_framing_or_host_upstream() {
    let buf = b"POST / HTTP/1.1\r\nHost: h\r\nConnection: host, content-length, x-a\r\nX-A: 1\r\nContent-Length: 2\r\n\r\n";
    let (out, _) = forwarded_request(buf, &V4);
    assert_eq!(
        out,
        b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 2\r\nx-forwarded-for: 10.0.0.7\r\nx-forwarded-proto: https\r\nx-request-id: rid-1\r\n\r\n"
    );
}

/// A response whose Content-Length came as a list reaches the client with one field.
#[test]
fn forwards_a_response_content_length_list_as_one_field() {
    let buf = b"HTTP/1.1 200 OK\r\nContent-Length: 2, 2\r\n\r\n";
    assert_eq!(
        forwarded_response(buf, Method::Get, &ResponseExtras::default()),
        b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n"
    );
}
