use super::*;

fn entry<'a>(headers: &'a [&'a [u8]]) -> Entry<'a> {
    Entry {
        start_unix_us: 1_796_424_226_123_456, // 2026-12-04T22:43:46.123Z
        protocol: "HTTP/1.1",
        status: 200,
        flags: "-",
        bytes_received: 78,
        bytes_sent: 120,
        duration_us: 2_345,
        upstream_us: Some(1_200),
        upstream_host: Some("127.0.0.1:9000".parse().unwrap()),
        cluster: Some("web"),
        listener: "edge",
        downstream: "10.0.0.1:5555".parse().unwrap(),
        peer: None,
        trace_id: b"",
        headers,
    }
}

#[test]
fn time_is_rfc3339_utc_millis() {
    let mut out = Vec::new();
    write_rfc3339(0, &mut out);
    assert_eq!(out, b"1970-01-01T00:00:00.000Z");
    out.clear();
    write_rfc3339(1_796_424_226_123_456, &mut out);
    assert_eq!(String::from_utf8(out).unwrap(), "2026-12-04T22:43:46.123Z");
    let mut out = Vec::new();
    write_rfc3339(951_782_400_000_000, &mut out); // leap day 2000
    assert_eq!(out, b"2000-02-29T00:00:00.000Z");
}

#[test]
fn envoy_default_format_compiles_and_writes() {
    let f = Format::compile(
        "[%START_TIME%] \"%REQ(:METHOD)% %REQ(X-ENVOY-ORIGINAL-PATH?:PATH)% %PROTOCOL%\" \
         %RESPONSE_CODE% %RESPONSE_FLAGS% %BYTES_RECEIVED% %BYTES_SENT% %DURATION% \
         %RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)% \"%REQ(X-FORWARDED-FOR)%\" \"%REQ(USER-AGENT)%\" \
         \"%REQ(X-REQUEST-ID)%\" \"%REQ(:AUTHORITY)%\" \"%UPSTREAM_HOST%\"",
    )
    .unwrap();
    assert_eq!(
        f.headers,
        [
            ":method",
            "x-envoy-original-path",
            ":path",
            "x-forwarded-for",
            "user-agent",
            "x-request-id",
            ":authority"
        ]
    );
    let vals: [&[u8]; 7] = [
        b"GET",
        b"",
        b"/a?b",
        b"",
        b"curl/8",
        b"id-1",
        b"example.com",
    ];
    let mut out = Vec::new();
    f.write(&entry(&vals), &mut out);
    assert_eq!(
        String::from_utf8(out).unwrap(),
        "[2026-12-04T22:43:46.123Z] \"GET /a?b HTTP/1.1\" 200 - 78 120 2 1 \"-\" \"curl/8\" \
         \"id-1\" \"example.com\" \"127.0.0.1:9000\"\n"
    );
}

#[test]
fn caps_literals_and_missing_values() {
    let f =
        Format::compile("%% %REQ(:PATH):3% %UPSTREAM_CLUSTER% %DOWNSTREAM_PEER_URI_SAN%").unwrap();
    let vals: [&[u8]; 1] = [b"/abcdef"];
    let mut e = entry(&vals);
    e.cluster = None;
    let mut out = Vec::new();
    f.write(&e, &mut out);
    assert_eq!(out, b"% /ab - -\n");
}

#[test]
fn bad_formats_are_named() {
    let cases: &[(&str, FormatError)] = &[
        ("%NOPE%", FormatError::Unknown("NOPE".into())),
        ("abc %START_TIME", FormatError::Unclosed(4)),
        (
            "%RESP(content-type)%",
            FormatError::Resp("content-type".into()),
        ),
        ("%REQ()%", FormatError::EmptyHeader),
        ("%REQ(a):x%", FormatError::BadCap("REQ(a):x".into())),
        ("%REQ(a)x%", FormatError::Unknown("REQ(a)x".into())),
        (
            "%REQ(a)%%REQ(b)%%REQ(c)%%REQ(d)%%REQ(e)%%REQ(f)%%REQ(g)%%REQ(h)%%REQ(i)%",
            FormatError::TooManyHeaders,
        ),
    ];
    for (text, want) in cases {
        assert_eq!(Format::compile(text).unwrap_err(), *want, "{text}");
    }
}

#[test]
fn json_line_is_valid_and_escaped() {
    let vals: [&[u8]; 6] = [b"GET", b"/q\"x\\\n", b"h", b"rid", b"ua\xff", b""];
    let mut e = entry(&vals);
    e.peer = Some("spiffe://cluster.local/ns/a/sa/b");
    e.trace_id = b"4bf92f3577b34da6a3ce929d0e0e4736";
    let mut out = Vec::new();
    write_json(&e, &mut out);
    let text = String::from_utf8(out).unwrap();
    assert!(text.ends_with("}\n"));
    assert!(text.contains(r#""path":"/q\"x\\\u000a""#), "{text}");
    assert!(text.contains(r#""user_agent":"ua\u00ff""#), "{text}");
    assert!(text.contains(r#""x_forwarded_for":null"#), "{text}");
    assert!(text.contains(r#""duration_ms":2.345"#), "{text}");
    assert!(
        text.contains(r#""trace_id":"4bf92f3577b34da6a3ce929d0e0e4736""#),
        "{text}"
    );
    assert!(text.contains(r#""downstream_peer_identity":"spiffe://cluster.local/ns/a/sa/b""#));
}

#[test]
fn fast_writers_match_display() {
    for n in [0u64, 7, 10, 99, 1000, 65535, u64::MAX] {
        let mut out = Vec::new();
        write_u64(&mut out, n);
        assert_eq!(String::from_utf8(out).unwrap(), n.to_string());
    }
    let vals: [&[u8]; 0] = [];
    let mut e = entry(&vals);
    e.duration_us = 1_000_007;
    e.upstream_us = Some(5);
    e.downstream = "[::1]:80".parse().unwrap();
    let mut out = Vec::new();
    write_json(&e, &mut out);
    let text = String::from_utf8(out).unwrap();
    assert!(text.contains(r#""duration_ms":1000.007"#), "{text}");
    assert!(
        text.contains(r#""upstream_service_time_ms":0.005"#),
        "{text}"
    );
    assert!(
        text.contains(r#""downstream_remote_address":"[::1]:80""#),
        "{text}"
    );
    assert!(
        text.contains(r#""upstream_host":"127.0.0.1:9000""#),
        "{text}"
    );
    // The per-thread seconds cache gives the same text as a fresh conversion.
    let mut a = Vec::new();
    write_rfc3339(1_796_424_226_999_000, &mut a);
    write_rfc3339(1_796_424_227_000_000, &mut a);
    assert_eq!(
        String::from_utf8(a).unwrap(),
        "2026-12-04T22:43:46.999Z2026-12-04T22:43:47.000Z"
    );
}
