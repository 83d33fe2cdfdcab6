//! Request head tables: one refusal per rule, good cases, split consistency.

use super::*;

// ---- line endings and start line (RFC 9112 §2.2, §3) ----
#[test]
fn refuses_a_tls_client_hello_before_the_line_ends() {
    // A partial head whose method cannot be a token fails at once (no head timeout wait).
    let mut h = RequestHead::default();
    for partial in [
        &b"\x16\x03\x01\x00\x30\x01"[..],
        b"GE\x00",
        b"G\x7fT / HTTP/1.1\r\n",
    ] {
        assert_eq!(
            parse_request_head(partial, &HeadLimits::DEFAULT, &mut h),
            Err(HeadError::BadRequestLine),
            "{partial:?}"
        );
    }
    assert_eq!(
        parse_request_head(b"GET /a", &HeadLimits::DEFAULT, &mut h),
        Ok(Parsed::Partial)
    );
}

req!(
    rejects_bare_lf_line_endings,
    b"GET / HTTP/1.1\nHost: a\n\n",
    Err(BareLf)
);
req!(
    rejects_bare_lf_in_header_line,
    b"GET / HTTP/1.1\r\nHost: a\n\r\n",
    Err(BareLf)
);
req!(
    rejects_bare_lf_empty_line_before_request,
    b"\nGET / HTTP/1.1\r\nHost: a\r\n\r\n",
    Err(BareLf)
);
req!(
    rejects_bare_cr_in_value,
    b"GET / HTTP/1.1\r\nHost: a\r\nX: a\rb\r\n\r\n",
    Err(InvalidHeaderValue)
);
req!(
    rejects_too_many_leading_empty_lines,
    b"\r\n\r\n\r\n\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n",
    Err(TooManyEmptyLines)
);
req!(
    rejects_double_space_in_request_line,
    b"GET  / HTTP/1.1\r\nHost: a\r\n\r\n",
    Err(BadRequestLine)
);
req!(
    rejects_invalid_method_token,
    b"G(T / HTTP/1.1\r\nHost: a\r\n\r\n",
    Err(BadRequestLine)
);
req!(
    rejects_http09_request_line,
    b"GET /\r\n\r\n",
    Err(BadRequestLine)
);
req!(
    rejects_http2_version_with_505,
    b"GET / HTTP/2.0\r\nHost: a\r\n\r\n",
    Err(UnsupportedVersion)
);
req!(
    rejects_http12_version_with_505,
    b"GET / HTTP/1.2\r\nHost: a\r\n\r\n",
    Err(UnsupportedVersion)
);
req!(
    rejects_garbage_version,
    b"GET / HTTX/1.1\r\nHost: a\r\n\r\n",
    Err(InvalidVersion)
);
req!(
    rejects_lowercase_version,
    b"GET / http/1.1\r\nHost: a\r\n\r\n",
    Err(InvalidVersion)
);
req!(
    rejects_connect_with_501,
    b"CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\n\r\n",
    Err(ConnectNotSupported)
);
req!(
    rejects_fragment_in_target,
    b"GET /a#b HTTP/1.1\r\nHost: a\r\n\r\n",
    Err(InvalidTarget)
);
req!(
    rejects_non_ascii_target,
    b"GET /\xc3\xa9 HTTP/1.1\r\nHost: a\r\n\r\n",
    Err(InvalidTarget)
);
req!(
    rejects_asterisk_form_for_get,
    b"GET * HTTP/1.1\r\nHost: a\r\n\r\n",
    Err(InvalidTarget)
);
req!(
    rejects_authority_form_for_get,
    b"GET a:80 HTTP/1.1\r\nHost: a\r\n\r\n",
    Err(InvalidTarget)
);
req!(
    rejects_unknown_scheme,
    b"GET ftp://a/ HTTP/1.1\r\nHost: a\r\n\r\n",
    Err(InvalidTarget)
);
req!(
    rejects_absolute_form_without_authority,
    b"GET http:///x HTTP/1.1\r\nHost: a\r\n\r\n",
    Err(InvalidTarget)
);

// ---- field syntax (RFC 9112 §5) ----
req!(
    rejects_obs_fold,
    b"GET / HTTP/1.1\r\nHost: a\r\nX: a\r\n b\r\n\r\n",
    Err(ObsFold)
);
req!(
    rejects_obs_fold_with_tab,
    b"GET / HTTP/1.1\r\nHost: a\r\nX: a\r\n\tb\r\n\r\n",
    Err(ObsFold)
);
req!(
    rejects_space_before_colon,
    b"GET / HTTP/1.1\r\nHost : a\r\n\r\n",
    Err(WhitespaceBeforeColon)
);
req!(
    rejects_tab_before_colon,
    b"GET / HTTP/1.1\r\nHost: a\r\nX\t: b\r\n\r\n",
    Err(WhitespaceBeforeColon)
);
req!(
    rejects_control_char_in_value,
    b"GET / HTTP/1.1\r\nHost: a\r\nX: a\x01b\r\n\r\n",
    Err(InvalidHeaderValue)
);
req!(
    rejects_nul_in_value,
    b"GET / HTTP/1.1\r\nHost: a\r\nX: a\x00b\r\n\r\n",
    Err(InvalidHeaderValue)
);
req!(
    rejects_del_in_value,
    b"GET / HTTP/1.1\r\nHost: a\r\nX: a\x7fb\r\n\r\n",
    Err(InvalidHeaderValue)
);
req!(
    rejects_control_char_in_name,
    b"GET / HTTP/1.1\r\nHost: a\r\nX\x01Y: b\r\n\r\n",
    Err(InvalidHeaderName)
);
req!(
    rejects_empty_header_name,
    b"GET / HTTP/1.1\r\nHost: a\r\n: b\r\n\r\n",
    Err(InvalidHeaderName)
);
req!(
    rejects_header_line_without_colon,
    b"GET / HTTP/1.1\r\nHost: a\r\nNoColon\r\n\r\n",
    Err(InvalidHeaderName)
);
req!(
    accepts_htab_and_obs_text_in_value,
    b"GET / HTTP/1.1\r\nHost: a\r\nX: a\tb\xe9\r\n\r\n",
    |h, b| {
        assert_eq!(h.header(b, "x"), Some(&b"a\tb\xe9"[..]));
    }
);

// ---- Host (RFC 9112 §3.2) ----
req!(
    rejects_missing_host_on_http11,
    b"GET / HTTP/1.1\r\nX: a\r\n\r\n",
    Err(MissingHost)
);
req!(
    rejects_duplicate_host,
    b"GET / HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n",
    Err(DuplicateHost)
);
req!(
    rejects_host_with_space,
    b"GET / HTTP/1.1\r\nHost: a b\r\n\r\n",
    Err(InvalidHost)
);
req!(
    rejects_host_with_userinfo,
    b"GET / HTTP/1.1\r\nHost: u@a\r\n\r\n",
    Err(InvalidHost)
);
req!(
    accepts_missing_host_on_http10,
    b"GET / HTTP/1.0\r\n\r\n",
    |h, _b| {
        assert_eq!(h.host, None);
        assert_eq!(h.version_minor, 0);
    }
);
req!(
    accepts_ipv6_host_with_port,
    b"GET / HTTP/1.1\r\nHost: [::1]:8080\r\n\r\n",
    |h, b| {
        assert_eq!(h.host.map(|s| s.get(b)), Some(&b"[::1]:8080"[..]));
    }
);

// ---- Content-Length (RFC 9110 §8.6, RFC 9112 §6.3) ----
req!(
    rejects_cl_with_plus_sign,
    b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +5\r\n\r\n",
    Err(InvalidContentLength)
);
req!(
    rejects_negative_cl,
    b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n",
    Err(InvalidContentLength)
);
req!(
    rejects_cl_with_trailing_garbage,
    b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length:  5x\r\n\r\n",
    Err(InvalidContentLength)
);
req!(
    rejects_empty_cl,
    b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length:\r\n\r\n",
    Err(InvalidContentLength)
);
req!(
    rejects_cl_with_inner_space,
    b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1 0\r\n\r\n",
    Err(InvalidContentLength)
);
req!(
    rejects_hex_cl,
    b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0x5\r\n\r\n",
    Err(InvalidContentLength)
);
req!(
    rejects_overflowing_cl,
    b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 18446744073709551616\r\n\r\n",
    Err(ContentLengthTooLarge)
);
req!(
    rejects_cl_above_i64_max,
    b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 9223372036854775808\r\n\r\n",
    Err(ContentLengthTooLarge)
);
req!(
    rejects_cl_list_with_empty_element,
    b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5,\r\n\r\n",
    Err(InvalidContentLength)
);
req!(
    rejects_differing_cl_fields,
    b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n",
    Err(ConflictingContentLength)
);
req!(
    rejects_differing_cl_list,
    b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 6\r\n\r\n",
    Err(ConflictingContentLength)
);
req!(
    accepts_identical_cl_fields,
    b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n",
    |h, _b| {
        assert_eq!(h.framing, BodyFraming::Length(5));
    }
);
req!(
    accepts_identical_cl_list,
    b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 5\r\n\r\n",
    |h, _b| {
        assert_eq!(h.framing, BodyFraming::Length(5));
    }
);
req!(
    accepts_max_i64_cl,
    b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 9223372036854775807\r\n\r\n",
    |h, _b| {
        assert_eq!(h.framing, BodyFraming::Length(i64::MAX as u64));
    }
);
req!(
    treats_zero_cl_as_no_body,
    b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n",
    |h, _b| {
        assert_eq!(h.framing, BodyFraming::None);
    }
);

// ---- Transfer-Encoding (RFC 9112 §6.1, §6.3) ----
req!(
    rejects_cl_and_te_together,
    b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
    Err(ContentLengthWithTransferEncoding)
);
req!(
    rejects_te_not_ending_in_chunked,
    b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n",
    Err(ChunkedNotLast)
);
req!(
    rejects_chunked_before_gzip,
    b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, gzip\r\n\r\n",
    Err(ChunkedNotLast)
);
req!(
    rejects_unknown_transfer_coding_with_501,
    b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: foo, chunked\r\n\r\n",
    Err(UnknownTransferCoding)
);
req!(
    rejects_identity_transfer_coding,
    b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: identity\r\n\r\n",
    Err(UnknownTransferCoding)
);
req!(
    rejects_chunked_twice_in_list,
    b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, chunked\r\n\r\n",
    Err(ChunkedTwice)
);
req!(rejects_chunked_twice_across_fields, b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n", Err(ChunkedTwice));
req!(
    rejects_te_on_http10,
    b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n",
    Err(TransferEncodingInHttp10)
);
req!(
    rejects_te_parameters,
    b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked;x=1\r\n\r\n",
    Err(InvalidTransferEncoding)
);
req!(
    rejects_empty_te,
    b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: \r\n\r\n",
    Err(InvalidTransferEncoding)
);
req!(
    accepts_gzip_then_chunked,
    b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
    |h, b| {
        assert_eq!(h.framing, BodyFraming::Chunked);
        assert!(fwd(&h, b, "transfer-encoding"));
    }
);
req!(
    accepts_chunked_case_insensitively,
    b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: Chunked\r\n\r\n",
    |h, _b| {
        assert_eq!(h.framing, BodyFraming::Chunked);
    }
);

// ---- limits ----
#[test]
fn rejects_long_target_with_414() {
    let t = "a".repeat(LIMITS.max_target_bytes);
    let buf = format!("GET /{t} HTTP/1.1\r\nHost: a\r\n\r\n");
    assert_eq!(req_err(buf.as_bytes()), HeadError::TargetTooLong);
    let ok = format!("GET /{} HTTP/1.1\r\nHost: a\r\n\r\n", &t[1..]);
    req_ok(ok.as_bytes());
}

#[test]
fn rejects_long_target_before_head_completes() {
    let buf = format!("GET /{}", "a".repeat(LIMITS.max_target_bytes));
    assert_eq!(req_err(buf.as_bytes()), HeadError::TargetTooLong);
}

#[test]
fn rejects_incomplete_head_at_limit_with_431() {
    let buf = format!("GET / HTTP/1.1\r\nX: {}", "a".repeat(LIMITS.max_head_bytes));
    assert_eq!(req_err(buf.as_bytes()), HeadError::HeadTooLarge);
    assert_eq!(HeadError::HeadTooLarge.status(), 431);
}

#[test]
fn rejects_complete_head_over_limit() {
    let buf = format!(
        "GET / HTTP/1.1\r\nHost: a\r\nX: {}\r\n\r\n",
        "a".repeat(LIMITS.max_head_bytes)
    );
    assert_eq!(req_err(buf.as_bytes()), HeadError::HeadTooLarge);
}

#[test]
fn accepts_head_of_exactly_max_bytes() {
    let base = "GET / HTTP/1.1\r\nHost: a\r\nX: \r\n\r\n".len();
    let buf = format!(
        "GET / HTTP/1.1\r\nHost: a\r\nX: {}\r\n\r\n",
        "a".repeat(LIMITS.max_head_bytes - base)
    );
    assert_eq!(buf.len(), LIMITS.max_head_bytes);
    req_ok(buf.as_bytes());
}

#[test]
fn rejects_too_many_headers_with_431() {
    let mut buf = String::from("GET / HTTP/1.1\r\nHost: a\r\n");
    for i in 0..LIMITS.max_headers {
        buf.push_str(&format!("X-{i}: v\r\n"));
    }
    buf.push_str("\r\n");
    assert_eq!(req_err(buf.as_bytes()), HeadError::TooManyHeaders);
}

#[test]
fn error_statuses_follow_the_table() {
    use HeadError::*;
    for (e, s) in [
        (BadRequestLine, 400),
        (BareLf, 400),
        (ObsFold, 400),
        (ContentLengthWithTransferEncoding, 400),
        (UnknownTransferCoding, 501),
        (ConnectNotSupported, 501),
        (UnsupportedVersion, 505),
        (TargetTooLong, 414),
        (TooManyHeaders, 431),
        (MissingHost, 400),
    ] {
        assert_eq!(e.status(), s, "{e:?}");
    }
    assert_eq!(ResponseError(ObsFold).status(), 502);
}

// ---- partial input ----
#[test]
fn reports_partial_until_the_blank_line() {
    let mut head = RequestHead::default();
    for buf in [
        &b""[..],
        b"\r",
        b"\r\n",
        b"\r\n\r",
        b"GET",
        b"GET / HTTP/1.1\r\nHost: a\r\n",
        b"GET / HTTP/1.1\r\nHost: a\r\n\r",
    ] {
        assert_eq!(
            parse_request_head(buf, &LIMITS, &mut head),
            Ok(Parsed::Partial),
            "{buf:?}"
        );
    }
}

// ---- good requests ----
req!(
    parses_simple_get,
    b"GET /p/q?x=1&y HTTP/1.1\r\nHost: example.com\r\nAccept: */*\r\n\r\n",
    |h, b| {
        assert_eq!(h.method, Method::Get);
        assert_eq!(h.method_span.get(b), b"GET");
        assert_eq!(h.target.get(b), b"/p/q?x=1&y");
        assert_eq!(h.path.get(b), b"/p/q");
        assert_eq!(h.query.map(|q| q.get(b)), Some(&b"x=1&y"[..]));
        assert_eq!(h.authority, None);
        assert_eq!(h.version_minor, 1);
        assert_eq!(h.host.map(|s| s.get(b)), Some(&b"example.com"[..]));
        assert_eq!(h.framing, BodyFraming::None);
        assert!(h.keep_alive);
        assert_eq!(h.request_line.get(b), b"GET /p/q?x=1&y HTTP/1.1\r\n");
        assert_eq!(h.headers.len(), 2);
        assert_eq!(h.headers[1].line.get(b), b"Accept: */*\r\n");
        assert!(h.headers.iter().all(|f| f.forward));
    }
);
req!(
    skips_leading_empty_lines,
    b"\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n",
    |h, b| {
        assert_eq!(h.request_line.start, 4);
        assert_eq!(h.method_span.get(b), b"GET");
    }
);
req!(
    parses_request_without_headers_on_http10,
    b"GET / HTTP/1.0\r\n\r\n",
    |h, b| {
        assert_eq!(h.request_line.get(b), b"GET / HTTP/1.0\r\n");
        assert!(!h.keep_alive);
    }
);
req!(
    keeps_http10_alive_on_request,
    b"GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n",
    |h, _b| {
        assert!(h.keep_alive);
    }
);
req!(
    closes_http11_on_connection_close,
    b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
    |h, b| {
        assert!(!h.keep_alive);
        assert!(!fwd(&h, b, "connection"));
    }
);
req!(
    parses_absolute_form,
    b"GET http://example.com:8080/a/b?c HTTP/1.1\r\nHost: example.com:8080\r\n\r\n",
    |h, b| {
        assert_eq!(
            h.authority.map(|s| s.get(b)),
            Some(&b"example.com:8080"[..])
        );
        assert_eq!(h.path.get(b), b"/a/b");
        assert_eq!(h.query.map(|s| s.get(b)), Some(&b"c"[..]));
    }
);
req!(
    parses_absolute_form_without_path,
    b"GET HTTPS://example.com HTTP/1.1\r\nHost: example.com\r\n\r\n",
    |h, b| {
        assert_eq!(h.authority.map(|s| s.get(b)), Some(&b"example.com"[..]));
        assert!(h.path.is_empty());
    }
);
req!(
    parses_asterisk_form_for_options,
    b"OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n",
    |h, b| {
        assert_eq!(h.method, Method::Options);
        assert_eq!(h.path.get(b), b"*");
    }
);
req!(
    parses_other_methods_case_sensitively,
    b"get / HTTP/1.1\r\nHost: a\r\n\r\n",
    |h, b| {
        assert_eq!(h.method, Method::Other);
        assert_eq!(h.method_span.get(b), b"get");
        assert!(!h.method.is_idempotent());
    }
);
req!(
    flags_expect_continue_on_http11,
    b"PUT / HTTP/1.1\r\nHost: a\r\nExpect: 100-Continue\r\nContent-Length: 3\r\n\r\n",
    |h, b| {
        assert!(h.expect_continue);
        assert!(fwd(&h, b, "expect"));
    }
);
req!(
    ignores_expect_continue_on_http10,
    b"PUT / HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\n",
    |h, _b| {
        assert!(!h.expect_continue);
    }
);
req!(detects_websocket_upgrade, b"GET /ws HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: keep-alive, Upgrade\r\nSec-WebSocket-Key: k\r\n\r\n", |h, b| {
    assert!(h.websocket_upgrade);
    assert!(fwd(&h, b, "upgrade"));
    assert!(!fwd(&h, b, "connection"));
    assert!(fwd(&h, b, "sec-websocket-key"));
});
req!(
    ignores_websocket_upgrade_without_connection_option,
    b"GET /ws HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\n\r\n",
    |h, b| {
        assert!(!h.websocket_upgrade);
        assert!(!fwd(&h, b, "upgrade"));
    }
);
req!(never_forwards_h2c_upgrade, b"GET / HTTP/1.1\r\nHost: a\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAAP__\r\nConnection: Upgrade, HTTP2-Settings\r\n\r\n", |h, b| {
    assert!(h.h2c_upgrade);
    assert!(!h.websocket_upgrade);
    assert!(!fwd(&h, b, "upgrade"));
    assert!(!fwd(&h, b, "http2-settings"));
});
req!(strips_hop_by_hop_fields, b"GET / HTTP/1.1\r\nHost: a\r\nKeep-Alive: 5\r\nProxy-Connection: x\r\nTE: trailers\r\nTrailer: X\r\nX-Forwarded-Proto: https\r\nX-Forwarded-For: 1.2.3.4\r\nX-Request-Id: abc\r\n\r\n", |h, b| {
    for name in ["keep-alive", "proxy-connection", "te", "trailer", "x-forwarded-proto"] {
        assert!(!fwd(&h, b, name), "{name}");
    }
    for name in ["host", "x-forwarded-for", "x-request-id"] {
        assert!(fwd(&h, b, name), "{name}");
    }
    assert_eq!(h.request_id.map(|s| s.get(b)), Some(&b"abc"[..]));
});
req!(
    strips_fields_named_in_connection,
    b"GET / HTTP/1.1\r\nHost: a\r\nX-A: 1\r\nConnection: x-a, X-B\r\nX-B: 2\r\nX-C: 3\r\n\r\n",
    |h, b| {
        assert!(!fwd(&h, b, "x-a"));
        assert!(!fwd(&h, b, "x-b"));
        assert!(fwd(&h, b, "x-c"));
    }
);
req!(connection_cannot_strip_framing_or_host, b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nConnection: content-length, host, transfer-encoding\r\n\r\n", |h, b| {
    assert!(fwd(&h, b, "content-length"));
    assert!(fwd(&h, b, "host"));
    assert_eq!(h.framing, BodyFraming::Length(3));
});
req!(
    looks_up_headers_case_insensitively_first_match,
    b"GET / HTTP/1.1\r\nHost: a\r\nX-Tenant:  one \r\nx-tenant: two\r\n\r\n",
    |h, b| {
        assert_eq!(h.header(b, "x-tenant"), Some(&b"one"[..]));
        assert_eq!(h.header(b, "x-missing"), None);
    }
);

#[test]
fn parses_pipelined_requests_one_after_another() {
    let buf: &[u8] = b"GET /1 HTTP/1.1\r\nHost: a\r\n\r\nPOST /2 HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\nhiGET /3 HTTP/1.1\r\nHost: a\r\n\r\n";
    let mut head = RequestHead::default();
    let Ok(Parsed::Complete(n1)) = parse_request_head(buf, &LIMITS, &mut head) else {
        panic!()
    };
    assert_eq!(head.path.get(buf), b"/1");
    let rest = &buf[n1..];
    let Ok(Parsed::Complete(n2)) = parse_request_head(rest, &LIMITS, &mut head) else {
        panic!()
    };
    assert_eq!(head.path.get(rest), b"/2");
    assert_eq!(head.framing, BodyFraming::Length(2));
    let rest = &rest[n2 + 2..];
    let Ok(Parsed::Complete(n3)) = parse_request_head(rest, &LIMITS, &mut head) else {
        panic!()
    };
    assert_eq!(n3, rest.len());
    assert_eq!(head.path.get(rest), b"/3");
}

#[test]
fn clear_keeps_header_capacity() {
    let buf = b"GET / HTTP/1.1\r\nHost: a\r\nA: 1\r\nB: 2\r\n\r\n";
    let mut head = RequestHead::default();
    parse_request_head(buf, &LIMITS, &mut head).unwrap();
    let cap = head.headers.capacity();
    head.clear();
    assert!(head.headers.is_empty());
    assert_eq!(head.headers.capacity(), cap);
    assert_eq!(head.host, None);
}

#[test]
fn idempotent_methods_follow_rfc9110() {
    use Method::*;
    for m in [Get, Head, Put, Delete, Options, Trace] {
        assert!(m.is_idempotent(), "{m:?}");
    }
    for m in [Post, Patch, Connect, Other] {
        assert!(!m.is_idempotent(), "{m:?}");
    }
}

/// Every prefix shorter than the head is `Partial`; the whole head parses identically.
#[test]
fn parsing_split_at_every_byte_equals_parsing_whole() {
    let inputs: &[&[u8]] = &[
        b"GET /p?q HTTP/1.1\r\nHost: a\r\nAccept: */*\r\n\r\nBODY",
        b"\r\n\r\nPOST http://h/x HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip, chunked\r\nConnection: x-y\r\nX-Y: 1\r\n\r\n",
        b"GET / HTTP/1.0\r\nConnection: keep-alive\r\nContent-Length: 5, 5\r\n\r\nhello",
    ];
    for input in inputs {
        let mut whole = RequestHead::default();
        let Ok(Parsed::Complete(n)) = parse_request_head(input, &LIMITS, &mut whole) else {
            panic!("{input:?}")
        };
        let mut part = RequestHead::default();
        for k in 0..input.len() {
            let r = parse_request_head(&input[..k], &LIMITS, &mut part);
            if k < n {
                assert_eq!(r, Ok(Parsed::Partial), "prefix {k}");
            } else {
                assert_eq!(r, Ok(Parsed::Complete(n)), "prefix {k}");
                assert_eq!(part, whole, "prefix {k}");
            }
        }
        fuzz_logic::request_head(input);
    }
}

#[test]
fn finds_head_end_at_every_alignment() {
    for pad in 0..20 {
        let buf = format!(
            "GET /{} HTTP/1.1\r\nHost: a\r\nX: {}\r\n\r\nrest",
            "a".repeat(pad),
            "b".repeat(pad * 3)
        );
        let head = req_ok(&buf.as_bytes()[..buf.len() - 4]);
        assert_eq!(head.head_len as usize, buf.len() - 4);
    }
}

#[test]
fn swar_lf_search_matches_naive_search() {
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    for len in 0..80 {
        for _ in 0..50 {
            let buf: Vec<u8> = (0..len)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    [b'\n', b'\r', b'a', 0x8a, 0x0b, 0x09, 0xff, 0x00][(x % 8) as usize]
                })
                .collect();
            let naive = buf.iter().position(|&b| b == b'\n');
            assert_eq!(super::super::parse::find_lf(&buf), naive, "{buf:?}");
        }
    }
}
