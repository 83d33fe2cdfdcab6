//! Response head tables: framing (RFC 9112 §6.3), reuse, hop-by-hop, refusals.

use super::*;

/// `res!(name, bytes, Err(Variant))` or `res!(name, bytes, method, |head, buf| { asserts })`.
macro_rules! res {
    ($name:ident, $buf:expr, Err($err:ident)) => {
        #[test]
        fn $name() {
            assert_eq!(
                res_err($buf),
                HeadError::$err,
                "{:?}",
                String::from_utf8_lossy($buf)
            );
        }
    };
    ($name:ident, $buf:expr, $method:ident, |$h:ident, $b:ident| $body:block) => {
        #[test]
        fn $name() {
            let $b: &[u8] = $buf;
            let $h = res_ok($b, Method::$method);
            $body
        }
    };
}

fn fwd(h: &ResponseHead, buf: &[u8], name: &str) -> bool {
    h.headers
        .iter()
        .find(|f| f.name.get(buf).eq_ignore_ascii_case(name.as_bytes()))
        .map(|f| f.forward)
        .unwrap_or_else(|| panic!("no header {name}"))
}

res!(
    frames_by_content_length,
    b"HTTP/1.1 200 OK\r\nContent-Length: 12\r\n\r\n",
    Get,
    |h, b| {
        assert_eq!(h.status, 200);
        assert_eq!(h.framing, ResponseFraming::Length(12));
        assert!(h.keep_alive);
        assert_eq!(h.status_line.get(b), b"HTTP/1.1 200 OK\r\n");
    }
);
res!(
    frames_chunked,
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
    Get,
    |h, b| {
        assert_eq!(h.framing, ResponseFraming::Chunked);
        assert!(h.keep_alive);
        assert!(fwd(&h, b, "transfer-encoding"));
    }
);
res!(
    frames_non_chunked_te_as_close_delimited,
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n",
    Get,
    |h, _b| {
        assert_eq!(h.framing, ResponseFraming::CloseDelimited);
        assert!(!h.keep_alive);
    }
);
res!(
    frames_unlimited_body_as_close_delimited,
    b"HTTP/1.1 200 OK\r\nServer: x\r\n\r\n",
    Get,
    |h, _b| {
        assert_eq!(h.framing, ResponseFraming::CloseDelimited);
        assert!(!h.keep_alive);
    }
);
res!(
    head_response_has_no_body,
    b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n",
    Head,
    |h, _b| {
        assert_eq!(h.framing, ResponseFraming::None);
        assert!(h.keep_alive);
    }
);
res!(
    no_content_has_no_body,
    b"HTTP/1.1 204 No Content\r\n\r\n",
    Get,
    |h, _b| {
        assert_eq!(h.framing, ResponseFraming::None);
        assert!(h.keep_alive);
    }
);
res!(
    not_modified_has_no_body_despite_length,
    b"HTTP/1.1 304 Not Modified\r\nContent-Length: 50\r\n\r\n",
    Get,
    |h, _b| {
        assert_eq!(h.framing, ResponseFraming::None);
    }
);
res!(
    continue_is_interim,
    b"HTTP/1.1 100 Continue\r\n\r\n",
    Post,
    |h, _b| {
        assert!(h.is_interim());
        assert_eq!(h.framing, ResponseFraming::None);
    }
);
res!(
    early_hints_is_interim,
    b"HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n",
    Get,
    |h, _b| {
        assert!(h.is_interim());
    }
);
res!(
    switching_protocols_is_upgrade_not_interim,
    b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
    Get,
    |h, b| {
        assert!(!h.is_interim());
        assert!(h.is_upgrade());
        assert!(!h.keep_alive);
        assert!(fwd(&h, b, "upgrade"));
        assert!(!fwd(&h, b, "connection"));
    }
);
res!(
    strips_upgrade_on_ordinary_response,
    b"HTTP/1.1 200 OK\r\nUpgrade: h2c\r\nContent-Length: 0\r\n\r\n",
    Get,
    |h, b| {
        assert!(!fwd(&h, b, "upgrade"));
        assert_eq!(h.framing, ResponseFraming::None);
    }
);
res!(
    http10_response_closes_by_default,
    b"HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\n",
    Get,
    |h, _b| {
        assert_eq!(h.version_minor, 0);
        assert!(!h.keep_alive);
    }
);
res!(http10_response_with_keep_alive_is_reusable, b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nKeep-Alive: timeout=5\r\nContent-Length: 1\r\n\r\n", Get, |h, b| {
    assert!(h.keep_alive);
    assert!(!fwd(&h, b, "keep-alive"));
});
res!(
    connection_close_response_not_reusable,
    b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 1\r\n\r\n",
    Get,
    |h, _b| {
        assert!(!h.keep_alive);
    }
);
res!(
    accepts_status_line_without_reason,
    b"HTTP/1.1 200\r\nContent-Length: 0\r\n\r\n",
    Get,
    |h, _b| {
        assert_eq!(h.status, 200);
    }
);
res!(
    strips_fields_named_in_connection_from_response,
    b"HTTP/1.1 200 OK\r\nConnection: x-b\r\nX-B: 1\r\nX-C: 2\r\nContent-Length: 0\r\n\r\n",
    Get,
    |h, b| {
        assert!(!fwd(&h, b, "x-b"));
        assert!(fwd(&h, b, "x-c"));
    }
);

res!(
    rejects_response_cl_and_te,
    b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
    Err(ContentLengthWithTransferEncoding)
);
res!(
    rejects_response_differing_cl,
    b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 7\r\n\r\n",
    Err(ConflictingContentLength)
);
res!(
    rejects_response_bad_cl,
    b"HTTP/1.1 200 OK\r\nContent-Length: 5 5\r\n\r\n",
    Err(InvalidContentLength)
);
res!(
    rejects_response_te_on_http10,
    b"HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
    Err(TransferEncodingInHttp10)
);
res!(
    rejects_response_unknown_coding,
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: br, chunked\r\n\r\n",
    Err(UnknownTransferCoding)
);
res!(
    rejects_response_chunked_twice,
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip, chunked\r\n\r\n",
    Err(ChunkedTwice)
);
res!(
    rejects_response_obs_fold,
    b"HTTP/1.1 200 OK\r\nX: a\r\n b\r\n\r\n",
    Err(ObsFold)
);
res!(
    rejects_response_space_before_colon,
    b"HTTP/1.1 200 OK\r\nX : a\r\n\r\n",
    Err(WhitespaceBeforeColon)
);
res!(
    rejects_response_bare_lf,
    b"HTTP/1.1 200 OK\nContent-Length: 0\n\n",
    Err(BareLf)
);
res!(
    rejects_response_status_over_599,
    b"HTTP/1.1 600 Odd\r\n\r\n",
    Err(InvalidStatus)
);
res!(
    rejects_response_status_under_100,
    b"HTTP/1.1 099 Odd\r\n\r\n",
    Err(InvalidStatus)
);
res!(
    rejects_response_two_digit_status,
    b"HTTP/1.1 20 OK\r\n\r\n",
    Err(InvalidStatus)
);
res!(
    rejects_response_bad_version,
    b"HTTP/2.0 200 OK\r\n\r\n",
    Err(InvalidVersion)
);
res!(
    rejects_response_control_char,
    b"HTTP/1.1 200 OK\r\nX: \x02\r\n\r\n",
    Err(InvalidHeaderValue)
);

#[test]
fn parses_interim_then_final_response_from_one_buffer() {
    let buf: &[u8] =
        b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nok";
    let mut head = ResponseHead::default();
    let Ok(Parsed::Complete(n)) = parse_response_head(buf, &LIMITS, Method::Post, &mut head) else {
        panic!()
    };
    assert!(head.is_interim());
    let rest = &buf[n..];
    let Ok(Parsed::Complete(m)) = parse_response_head(rest, &LIMITS, Method::Post, &mut head)
    else {
        panic!()
    };
    assert_eq!(head.status, 201);
    assert_eq!(&rest[m..], b"ok");
}

#[test]
fn response_split_at_every_byte_equals_whole() {
    let input: &[u8] =
        b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nConnection: x-a\r\nX-A: 1\r\n\r\nabc";
    let mut whole = ResponseHead::default();
    let Ok(Parsed::Complete(n)) = parse_response_head(input, &LIMITS, Method::Get, &mut whole)
    else {
        panic!()
    };
    let mut part = ResponseHead::default();
    for k in 0..input.len() {
        let r = parse_response_head(&input[..k], &LIMITS, Method::Get, &mut part);
        if k < n {
            assert_eq!(r, Ok(Parsed::Partial), "prefix {k}");
        } else {
            assert_eq!(r, Ok(Parsed::Complete(n)));
            assert_eq!(part, whole);
        }
    }
    fuzz_logic::response_head(input);
}

#[test]
fn rejects_oversized_response_head() {
    let buf = format!(
        "HTTP/1.1 200 OK\r\nX: {}",
        "a".repeat(LIMITS.max_head_bytes)
    );
    assert_eq!(res_err(buf.as_bytes()), HeadError::HeadTooLarge);
}

#[test]
fn skips_stray_empty_lines_before_status_line() {
    let buf: &[u8] = b"\r\nHTTP/1.1 204 No Content\r\nX: 1\r\n\r\n";
    let head = res_ok(buf, Method::Get);
    assert_eq!(head.status_line.get(buf), b"HTTP/1.1 204 No Content\r\n");
    let (mut added, mut segs, mut out) = (Vec::new(), Vec::new(), Vec::new());
    response_segments(&head, &ResponseExtras::default(), &mut added, &mut segs);
    write_segments(&segs, buf, &added, &mut out);
    assert_eq!(out, b"HTTP/1.1 204 No Content\r\nX: 1\r\n\r\n");
}

// ---- conformance table (docs/http-conformance.md): response-side strictness ----

// Malformed status lines and status codes (RFC 9112 §4, RFC 9110 §15): 502.
res!(
    rejects_status_line_without_space_before_reason,
    b"HTTP/1.1 200OK\r\n\r\n",
    Err(InvalidStatus)
);
res!(
    rejects_double_space_before_status,
    b"HTTP/1.1  200 OK\r\n\r\n",
    Err(InvalidStatus)
);
res!(
    rejects_letters_in_status,
    b"HTTP/1.1 2OO OK\r\n\r\n",
    Err(InvalidStatus)
);
res!(
    rejects_four_digit_status,
    b"HTTP/1.1 2000 OK\r\n\r\n",
    Err(InvalidStatus)
);
res!(
    rejects_control_char_in_reason,
    b"HTTP/1.1 200 O\x01K\r\n\r\n",
    Err(InvalidStatus)
);
res!(
    rejects_non_http_status_line,
    b"ICY 200 OK\r\n\r\n",
    Err(InvalidVersion)
);
res!(
    rejects_lowercase_response_version,
    b"http/1.1 200 OK\r\n\r\n",
    Err(InvalidVersion)
);
res!(
    accepts_empty_reason_phrase,
    b"HTTP/1.1 200 \r\nContent-Length: 0\r\n\r\n",
    Get,
    |h, _b| {
        assert_eq!(h.status, 200);
    }
);

// Framing fields in responses (RFC 9112 §6.1, §6.3).
res!(
    rejects_response_te_then_cl,
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n",
    Err(ContentLengthWithTransferEncoding)
);
res!(
    rejects_response_identity_coding,
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: identity\r\n\r\n",
    Err(UnknownTransferCoding)
);
res!(
    rejects_response_xchunked,
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: xchunked\r\n\r\n",
    Err(UnknownTransferCoding)
);
res!(
    rejects_response_chunked_in_two_fields,
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n",
    Err(ChunkedTwice)
);
res!(
    rejects_response_space_before_colon_in_te,
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding : chunked\r\n\r\n",
    Err(WhitespaceBeforeColon)
);
res!(
    rejects_response_cl_too_large,
    b"HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999\r\n\r\n",
    Err(ContentLengthTooLarge)
);
res!(
    rejects_response_negative_cl,
    b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
    Err(InvalidContentLength)
);
res!(
    accepts_identical_response_cl_list,
    b"HTTP/1.1 200 OK\r\nContent-Length: 5, 5\r\n\r\n",
    Get,
    |h, b| {
        assert_eq!(h.framing, ResponseFraming::Length(5));
        assert!(h.content_length_line);
        assert!(!fwd(&h, b, "content-length"));
    }
);
res!(
    zero_content_length_response_has_no_body,
    b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
    Get,
    |h, _b| {
        assert_eq!(h.framing, ResponseFraming::None);
        assert!(h.keep_alive);
    }
);
res!(
    no_content_ignores_transfer_encoding,
    b"HTTP/1.1 204 No Content\r\nTransfer-Encoding: chunked\r\n\r\n",
    Get,
    |h, _b| {
        assert_eq!(h.framing, ResponseFraming::None);
        assert!(h.keep_alive);
    }
);
res!(
    no_content_ignores_content_length,
    b"HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\n",
    Get,
    |h, _b| {
        assert_eq!(h.framing, ResponseFraming::None);
    }
);
res!(
    head_response_ignores_transfer_encoding,
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
    Head,
    |h, _b| {
        assert_eq!(h.framing, ResponseFraming::None);
        assert!(h.keep_alive);
    }
);
res!(
    switching_protocols_has_no_http_body,
    b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: upgrade\r\nContent-Length: 5\r\n\r\n",
    Get,
    |h, _b| {
        assert_eq!(h.framing, ResponseFraming::None);
        assert!(!h.keep_alive);
    }
);
res!(
    http10_response_without_length_is_close_delimited,
    b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\n\r\n",
    Get,
    |h, _b| {
        assert_eq!(h.framing, ResponseFraming::CloseDelimited);
        assert!(!h.keep_alive);
    }
);
res!(
    connection_cannot_strip_response_framing,
    b"HTTP/1.1 200 OK\r\nConnection: transfer-encoding, content-length\r\nTransfer-Encoding: chunked\r\n\r\n",
    Get,
    |h, b| {
        assert!(fwd(&h, b, "transfer-encoding"));
        assert_eq!(h.framing, ResponseFraming::Chunked);
    }
);

// Field syntax in responses (RFC 9112 §2.2, §5, RFC 9110 §5.5).
res!(
    rejects_response_bare_cr_in_value,
    b"HTTP/1.1 200 OK\r\nX: a\rb\r\n\r\n",
    Err(InvalidHeaderValue)
);
res!(
    rejects_response_nul_in_value,
    b"HTTP/1.1 200 OK\r\nX: a\x00b\r\n\r\n",
    Err(InvalidHeaderValue)
);
res!(
    rejects_response_bare_lf_in_field_line,
    b"HTTP/1.1 200 OK\r\nX: a\n\r\n",
    Err(BareLf)
);
res!(
    rejects_response_whitespace_before_first_field,
    b"HTTP/1.1 200 OK\r\n X: a\r\n\r\n",
    Err(ObsFold)
);
res!(
    rejects_response_invalid_header_name,
    b"HTTP/1.1 200 OK\r\nX(y): a\r\n\r\n",
    Err(InvalidHeaderName)
);

#[test]
fn rejects_too_many_response_headers() {
    let mut buf = String::from("HTTP/1.1 200 OK\r\n");
    for i in 0..=LIMITS.max_headers {
        buf.push_str(&format!("X-{i}: v\r\n"));
    }
    buf.push_str("\r\n");
    assert_eq!(res_err(buf.as_bytes()), HeadError::TooManyHeaders);
}

#[test]
fn every_response_error_is_a_502() {
    for buf in [
        &b"HTTP/1.1 200OK\r\n\r\n"[..],
        b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nX: a\r\n b\r\n\r\n",
    ] {
        let mut head = ResponseHead::default();
        let e = parse_response_head(buf, &LIMITS, Method::Get, &mut head).unwrap_err();
        assert_eq!(e.status(), 502, "{:?}", String::from_utf8_lossy(buf));
    }
}
