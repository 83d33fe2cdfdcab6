//! Request head conformance tables (docs/http-conformance.md): smuggling variants, edge
//! cases and the authority grammar.

use super::*;

// ---- conformance table (docs/http-conformance.md): smuggling variants and edge cases ----

// TE.CL, TE.TE (PortSwigger): every obfuscated or ambiguous Transfer-Encoding is refused.
req!(
    rejects_te_then_cl,
    b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n",
    Err(ContentLengthWithTransferEncoding)
);
req!(
    rejects_xchunked_coding,
    b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: xchunked\r\n\r\n",
    Err(UnknownTransferCoding)
);
req!(
    rejects_chunked_then_identity,
    b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, identity\r\n\r\n",
    Err(UnknownTransferCoding)
);
req!(
    rejects_chunked_field_plus_unknown_field,
    b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: x\r\n\r\n",
    Err(UnknownTransferCoding)
);
req!(
    rejects_quoted_chunked,
    b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: \"chunked\"\r\n\r\n",
    Err(InvalidTransferEncoding)
);
req!(
    rejects_vertical_tab_before_chunked,
    b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: \x0bchunked\r\n\r\n",
    Err(InvalidHeaderValue)
);
req!(
    rejects_space_before_colon_in_te,
    b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding : chunked\r\n\r\n",
    Err(WhitespaceBeforeColon)
);
req!(
    rejects_tab_before_colon_in_te,
    b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding\t: chunked\r\n\r\n",
    Err(WhitespaceBeforeColon)
);
req!(
    rejects_space_before_colon_in_cl,
    b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length : 5\r\n\r\n",
    Err(WhitespaceBeforeColon)
);
req!(
    rejects_whitespace_before_first_field,
    b"POST / HTTP/1.1\r\n Transfer-Encoding: chunked\r\nHost: a\r\n\r\n",
    Err(ObsFold)
);
req!(
    rejects_whitespace_only_line_in_head,
    b"GET / HTTP/1.1\r\nHost: a\r\n \r\n\r\n",
    Err(ObsFold)
);
req!(
    accepts_ows_before_chunked,
    b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: \t chunked \r\n\r\n",
    |h, b| {
        assert_eq!(h.framing, BodyFraming::Chunked);
        assert!(fwd(&h, b, "transfer-encoding"));
    }
);
req!(
    accepts_empty_te_list_element,
    b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: ,chunked\r\n\r\n",
    |h, _b| {
        assert_eq!(h.framing, BodyFraming::Chunked);
    }
);

// Content-Length edge cases (RFC 9110 §8.6: 1*DIGIT; OWS around the value is not part of it).
req!(
    accepts_cl_with_leading_zeros_and_trailing_ows,
    b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 005 \r\n\r\n",
    |h, _b| {
        assert_eq!(h.framing, BodyFraming::Length(5));
    }
);
req!(
    frames_content_length_on_get,
    b"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\n",
    |h, _b| {
        assert_eq!(h.framing, BodyFraming::Length(5));
    }
);

// Line endings, bare CR and NUL in the start line and field names (RFC 9112 §2.2, §3).
req!(
    rejects_bare_cr_after_request_line,
    b"GET / HTTP/1.1\r\rHost: a\r\n\r\n",
    Err(BadLineEnding)
);
req!(
    rejects_bare_cr_in_target,
    b"GET /a\rb HTTP/1.1\r\nHost: a\r\n\r\n",
    Err(BadRequestLine)
);
req!(
    rejects_cr_cr_lf_at_end_of_value,
    b"GET / HTTP/1.1\r\nHost: a\r\nX: a\r\r\n\r\n",
    Err(InvalidHeaderValue)
);
req!(
    rejects_nul_in_target,
    b"GET /\x00 HTTP/1.1\r\nHost: a\r\n\r\n",
    Err(BadRequestLine)
);
req!(
    rejects_nul_in_header_name,
    b"GET / HTTP/1.1\r\nHost: a\r\nX\x00: a\r\n\r\n",
    Err(InvalidHeaderName)
);
req!(
    rejects_non_ascii_header_name,
    b"GET / HTTP/1.1\r\nHost: a\r\nX\xe9: a\r\n\r\n",
    Err(InvalidHeaderName)
);
req!(
    rejects_empty_method,
    b" / HTTP/1.1\r\nHost: a\r\n\r\n",
    Err(BadRequestLine)
);
req!(
    rejects_tabs_as_request_line_separators,
    b"GET\t/\tHTTP/1.1\r\nHost: a\r\n\r\n",
    Err(BadRequestLine)
);
req!(
    rejects_space_after_version,
    b"GET / HTTP/1.1 \r\nHost: a\r\n\r\n",
    Err(BadLineEnding)
);
req!(
    rejects_two_digit_minor_version,
    b"GET / HTTP/1.10\r\nHost: a\r\n\r\n",
    Err(BadLineEnding)
);
req!(
    rejects_leading_zero_in_version,
    b"GET / HTTP/01.1\r\nHost: a\r\n\r\n",
    Err(InvalidVersion)
);
req!(
    rejects_version_without_minor,
    b"GET / HTTP/1\r\nHost: a\r\n\r\n",
    Err(InvalidVersion)
);
req!(
    accepts_four_leading_empty_lines,
    b"\r\n\r\n\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n",
    |h, b| {
        assert_eq!(h.request_line.get(b), b"GET / HTTP/1.1\r\n");
    }
);

// Host (RFC 9112 §3.2, RFC 9110 §7.2).
req!(
    rejects_duplicate_host_in_other_case,
    b"GET / HTTP/1.1\r\nHost: a\r\nhost: a\r\n\r\n",
    Err(DuplicateHost)
);
req!(
    rejects_duplicate_host_with_absolute_form,
    b"GET http://a/ HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
    Err(DuplicateHost)
);
req!(
    rejects_missing_host_with_absolute_form_on_http11,
    b"GET http://a/ HTTP/1.1\r\n\r\n",
    Err(MissingHost)
);
req!(
    accepts_empty_host_value,
    b"GET / HTTP/1.1\r\nHost:\r\n\r\n",
    |h, b| {
        assert_eq!(h.host.map(|s| s.get(b)), Some(&b""[..]));
    }
);
req!(
    absolute_form_authority_replaces_host,
    b"GET http://a.example/x HTTP/1.1\r\nHost: b.example\r\n\r\n",
    |h, b| {
        assert_eq!(h.authority.map(|s| s.get(b)), Some(&b"a.example"[..]));
        assert!(!fwd(&h, b, "host"));
        assert_eq!(
            HeadView { head: &h, buf: b }.host(),
            Some(&b"a.example"[..])
        );
    }
);

// Connection management (RFC 9112 §9, RFC 9110 §7.6.1, §7.8).
req!(
    connection_close_wins_over_keep_alive,
    b"GET / HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, close\r\n\r\n",
    |h, _b| {
        assert!(!h.keep_alive);
    }
);
req!(
    closes_http10_on_keep_alive_and_close,
    b"GET / HTTP/1.0\r\nConnection: keep-alive, close\r\n\r\n",
    |h, _b| {
        assert!(!h.keep_alive);
    }
);
req!(
    ignores_websocket_upgrade_on_post,
    b"POST / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\n",
    |h, b| {
        assert!(!h.websocket_upgrade);
        assert!(!fwd(&h, b, "upgrade"));
    }
);
req!(
    ignores_upgrade_on_http10,
    b"GET / HTTP/1.0\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\n",
    |h, b| {
        assert!(!h.websocket_upgrade);
        assert!(!fwd(&h, b, "upgrade"));
    }
);
req!(
    ignores_websocket_when_h2c_is_offered_too,
    b"GET / HTTP/1.1\r\nHost: a\r\nUpgrade: h2c, websocket\r\nConnection: upgrade\r\n\r\n",
    |h, b| {
        assert!(h.h2c_upgrade);
        assert!(!h.websocket_upgrade);
        assert!(!fwd(&h, b, "upgrade"));
    }
);
req!(
    connection_cannot_strip_transfer_encoding,
    b"POST / HTTP/1.1\r\nHost: a\r\nConnection: Transfer-Encoding\r\nTransfer-Encoding: chunked\r\n\r\n",
    |h, b| {
        assert!(fwd(&h, b, "transfer-encoding"));
        assert_eq!(h.framing, BodyFraming::Chunked);
    }
);
req!(
    forwards_expect_with_other_values_without_flag,
    b"PUT / HTTP/1.1\r\nHost: a\r\nExpect: foo\r\nContent-Length: 1\r\n\r\n",
    |h, b| {
        assert!(!h.expect_continue);
        assert!(fwd(&h, b, "expect"));
    }
);

// ---- authority grammar (RFC 9110 §4.2.1, §4.2.4, §7.2; RFC 9112 §3.2) ----------------------
req!(
    rejects_userinfo_in_absolute_form,
    b"GET http://u@x/p HTTP/1.1\r\nHost: x\r\n\r\n",
    Err(InvalidTarget)
);
req!(
    rejects_empty_host_in_absolute_form,
    b"GET http://:80/p HTTP/1.1\r\nHost: x\r\n\r\n",
    Err(InvalidTarget)
);
req!(
    rejects_quote_in_absolute_form_authority,
    b"GET http://x\"y/p HTTP/1.1\r\nHost: x\r\n\r\n",
    Err(InvalidTarget)
);
req!(
    rejects_non_numeric_port_in_host,
    b"GET / HTTP/1.1\r\nHost: a:b\r\n\r\n",
    Err(InvalidHost)
);
req!(
    rejects_two_ports_in_host,
    b"GET / HTTP/1.1\r\nHost: a:80:80\r\n\r\n",
    Err(InvalidHost)
);
req!(
    rejects_unclosed_ipv6_literal_host,
    b"GET / HTTP/1.1\r\nHost: [::1\r\n\r\n",
    Err(InvalidHost)
);
req!(
    rejects_stray_bracket_in_host,
    b"GET / HTTP/1.1\r\nHost: a]\r\n\r\n",
    Err(InvalidHost)
);
req!(
    rejects_bad_percent_encoding_in_host,
    b"GET / HTTP/1.1\r\nHost: %zz\r\n\r\n",
    Err(InvalidHost)
);
req!(
    accepts_percent_encoded_host_and_empty_port,
    b"GET / HTTP/1.1\r\nHost: a%41b:\r\n\r\n",
    |h, b| {
        assert_eq!(h.host.map(|s| s.get(b)), Some(&b"a%41b:"[..]));
    }
);
