//! Chunked decoder: framing rules of RFC 9112 §7.1, limits, split consistency.

use super::*;

/// Feeds `input` whole; returns (consumed, done, data bytes) or the error.
fn decode(input: &[u8]) -> Result<(usize, bool, u64), ChunkedError> {
    let mut d = ChunkedDecoder::new();
    let n = d.feed(input)?;
    Ok((n, d.is_done(), d.data_bytes()))
}

fn decode_err(input: &[u8]) -> ChunkedError {
    match decode(input) {
        Err(e) => e,
        Ok(r) => panic!(
            "expected error, got {r:?} for {:?}",
            String::from_utf8_lossy(input)
        ),
    }
}

/// `chunk!(name, bytes, Err(Variant))` or `chunk!(name, whole_body_bytes, data_bytes)`.
macro_rules! chunk {
    ($name:ident, $buf:expr, Err($err:ident)) => {
        #[test]
        fn $name() {
            assert_eq!(decode_err($buf), ChunkedError::$err);
        }
    };
    ($name:ident, $buf:expr, $data:expr) => {
        #[test]
        fn $name() {
            assert_eq!(decode($buf), Ok(($buf.len(), true, $data)));
        }
    };
}

chunk!(decodes_simple_body, b"5\r\nhello\r\n0\r\n\r\n", 5);
chunk!(
    decodes_multiple_chunks_mixed_case_hex,
    b"a\r\n0123456789\r\nB\r\n0123456789a\r\n0\r\n\r\n",
    21
);
chunk!(decodes_empty_body, b"0\r\n\r\n", 0);
chunk!(accepts_leading_zeros, b"0005\r\nhello\r\n000\r\n\r\n", 5);
chunk!(
    accepts_extensions,
    b"5;a=b;c=\"q\\\"x\";d\r\nhello\r\n0;e\r\n\r\n",
    5
);
chunk!(
    accepts_bad_whitespace_in_extensions,
    b"5 ; a = b \t;c\r\nhello\r\n0\r\n\r\n",
    5
);
chunk!(
    accepts_a_quoted_extension_value_at_the_end_of_the_line,
    b"5;a=\"b c\"\r\nhello\r\n0\r\n\r\n",
    5
);
chunk!(
    accepts_trailers,
    b"5\r\nhello\r\n0\r\nX-A: 1\r\nX-B:\t2 \r\n\r\n",
    5
);

#[test]
fn stops_before_next_pipelined_message() {
    assert_eq!(
        decode(b"1\r\na\r\n0\r\n\r\nGET / HTTP/1.1\r\n"),
        Ok((11, true, 1))
    );
}

#[test]
fn accepts_largest_chunk_size() {
    assert_eq!(decode(b"7fffffffffffffff\r\nabc"), Ok((21, false, 3)));
}

chunk!(rejects_empty_size, b"\r\nhello\r\n", Err(InvalidSize));
chunk!(rejects_non_hex_size, b"x\r\n", Err(InvalidSize));
chunk!(rejects_negative_size, b"-5\r\n", Err(InvalidSize));
chunk!(rejects_0x_prefix, b"0x5\r\n", Err(InvalidSize));
// RFC 9112 §7.1.1: BWS only before ";"; parsers differ on trailing whitespace (smuggling).
chunk!(
    rejects_whitespace_after_size,
    b"5 \r\nhello\r\n0\r\n\r\n",
    Err(InvalidSize)
);
chunk!(rejects_tab_after_size, b"ab\t\r\n", Err(InvalidSize));
chunk!(
    rejects_leading_whitespace_before_size,
    b" 5\r\n",
    Err(InvalidSize)
);
chunk!(
    rejects_size_of_2_pow_63,
    b"8000000000000000\r\n",
    Err(SizeOverflow)
);
chunk!(
    rejects_u64_overflowing_size,
    b"1ffffffffffffffff\r\n",
    Err(SizeOverflow)
);
chunk!(
    rejects_bare_lf_after_size,
    b"5\nhello\r\n",
    Err(BadLineEnding)
);
chunk!(
    rejects_cr_without_lf_after_size,
    b"5\rhello\r\n",
    Err(BadLineEnding)
);
chunk!(
    rejects_bare_lf_after_data,
    b"5\r\nhello\n0\r\n\r\n",
    Err(MissingDataCrlf)
);
chunk!(
    rejects_data_longer_than_size,
    b"5\r\nhelloX\r\n0\r\n\r\n",
    Err(MissingDataCrlf)
);
chunk!(
    rejects_empty_extension_name,
    b"5;\r\nhello\r\n",
    Err(InvalidExtension)
);
chunk!(
    rejects_extension_without_name,
    b"5;=b\r\nhello\r\n",
    Err(InvalidExtension)
);
chunk!(
    rejects_extension_with_empty_value,
    b"5;a=\r\nhello\r\n",
    Err(InvalidExtension)
);
chunk!(
    rejects_unterminated_quoted_extension,
    b"5;a=\"x\r\nhello\r\n",
    Err(InvalidExtension)
);
chunk!(
    rejects_control_char_in_extension,
    b"5;a\x01\r\nhello\r\n",
    Err(InvalidExtension)
);
chunk!(
    rejects_obs_fold_in_trailers,
    b"0\r\nX: a\r\n b\r\n\r\n",
    Err(InvalidTrailer)
);
chunk!(
    rejects_space_before_colon_in_trailer,
    b"0\r\nX : a\r\n\r\n",
    Err(InvalidTrailer)
);
chunk!(
    rejects_bare_lf_in_trailers,
    b"0\r\nX: a\n\r\n",
    Err(InvalidTrailer)
);
chunk!(rejects_bare_lf_final_line, b"0\r\n\n", Err(InvalidTrailer));
chunk!(
    rejects_control_char_in_trailer_value,
    b"0\r\nX: \x01\r\n\r\n",
    Err(InvalidTrailer)
);
chunk!(
    rejects_trailer_without_colon,
    b"0\r\nX\r\n\r\n",
    Err(InvalidTrailer)
);

#[test]
fn rejects_chunk_size_line_over_limit() {
    let mut body = b"5;a=".to_vec();
    body.extend(std::iter::repeat_n(b'b', MAX_CHUNK_LINE_BYTES as usize));
    body.extend_from_slice(b"\r\nhello\r\n0\r\n\r\n");
    assert_eq!(decode_err(&body), ChunkedError::SizeLineTooLong);
}

#[test]
fn accepts_chunk_size_line_at_limit() {
    let mut body = b"5;a=".to_vec();
    body.extend(std::iter::repeat_n(b'b', MAX_CHUNK_LINE_BYTES as usize - 6));
    body.extend_from_slice(b"\r\nhello\r\n0\r\n\r\n");
    assert_eq!(decode(&body), Ok((body.len(), true, 5)));
}

#[test]
fn rejects_trailers_over_limit() {
    let mut body = b"0\r\n".to_vec();
    for i in 0..(MAX_TRAILER_BYTES / 16 + 1) {
        body.extend_from_slice(format!("X-{i:05}: 123456\r\n").as_bytes());
    }
    body.extend_from_slice(b"\r\n");
    assert_eq!(decode_err(&body), ChunkedError::TrailersTooLarge);
}

#[test]
fn consumes_nothing_after_done() {
    let mut d = ChunkedDecoder::new();
    assert_eq!(d.feed(b"0\r\n\r\n"), Ok(5));
    assert!(d.is_done());
    assert_eq!(d.feed(b"more"), Ok(0));
}

#[test]
fn stays_failed_after_an_error() {
    let mut d = ChunkedDecoder::new();
    assert_eq!(d.feed(b"zz"), Err(ChunkedError::InvalidSize));
    assert_eq!(d.feed(b"0\r\n\r\n"), Err(ChunkedError::InvalidSize));
    assert!(!d.is_done());
}

#[test]
fn counts_data_bytes_across_feeds() {
    let mut d = ChunkedDecoder::new();
    assert_eq!(d.feed(b"10\r\n0123"), Ok(8));
    assert_eq!(d.data_bytes(), 4);
    assert!(!d.is_done());
    assert_eq!(d.feed(b"456789abcdef\r\n"), Ok(14));
    assert_eq!(d.data_bytes(), 16);
    assert_eq!(d.feed(b"0\r\n\r\nNEXT"), Ok(5));
    assert!(d.is_done());
}

/// Feeding in two pieces split at every point, and one byte at a time, equals feeding whole.
#[test]
fn decoding_split_at_every_point_equals_whole() {
    let inputs: &[&[u8]] = &[
        b"5;a=\"b\\\"c\"\r\nhello\r\n1a\r\nabcdefghijklmnopqrstuvwxyz\r\n0\r\nT: v\r\n\r\nNEXT",
        b"3 ; x = y\r\nabc\r\n0\r\n\r\n",
        b"5\r\nhello\n0\r\n\r\n",
        b"0\r\nX : a\r\n\r\n",
        b"8000000000000000\r\n",
    ];
    for input in inputs {
        let whole = run(input, &[input.len()]);
        for k in 0..=input.len() {
            assert_eq!(run(input, &[k, input.len()]), whole, "split at {k}");
        }
        assert_eq!(run(input, &[1; 256]), whole, "byte at a time");
        fuzz_logic::chunked(input);
    }
}

/// Outcome of feeding `input` in pieces of the given sizes (the last size repeats).
fn run(input: &[u8], sizes: &[usize]) -> Result<(usize, bool, u64), ChunkedError> {
    let mut d = ChunkedDecoder::new();
    let mut off = 0;
    let mut sizes = sizes.iter().copied().chain(std::iter::repeat(1));
    while off < input.len() && !d.is_done() {
        let n = sizes.next().unwrap_or(1).min(input.len() - off);
        off += d.feed(&input[off..off + n])?;
    }
    Ok((off, d.is_done(), d.data_bytes()))
}

// ---- conformance table (docs/http-conformance.md): chunk lines and trailers ----

chunk!(
    rejects_plus_sign_in_size,
    b"+5\r\nhello\r\n",
    Err(InvalidSize)
);
chunk!(rejects_underscore_in_size, b"5_0\r\n", Err(InvalidSize));
chunk!(
    rejects_whitespace_inside_size,
    b"5 5\r\nhello\r\n",
    Err(InvalidSize)
);
chunk!(
    accepts_many_leading_zeros,
    b"00000000000000000000000000005\r\nhello\r\n0\r\n\r\n",
    5
);
chunk!(
    rejects_bare_lf_after_extension_name,
    b"5;a\nhello\r\n",
    Err(InvalidExtension)
);
chunk!(
    rejects_bare_lf_after_extension_value,
    b"5;a=b\nhello\r\n",
    Err(InvalidExtension)
);
chunk!(
    rejects_bare_cr_in_extension,
    b"5;a\rb\r\nhello\r\n",
    Err(BadLineEnding)
);
chunk!(
    rejects_raw_lf_in_quoted_extension,
    b"5;a=\"x\ny\"\r\nhello\r\n",
    Err(InvalidExtension)
);
chunk!(
    rejects_escaped_cr_in_quoted_extension,
    b"5;a=\"\\\r\"\r\nhello\r\n",
    Err(InvalidExtension)
);
chunk!(
    rejects_cr_cr_lf_after_data,
    b"5\r\nhello\r\r\n0\r\n\r\n",
    Err(MissingDataCrlf)
);
chunk!(
    rejects_nul_in_trailer_value,
    b"0\r\nX: a\x00b\r\n\r\n",
    Err(InvalidTrailer)
);
chunk!(
    rejects_bare_cr_in_trailer_value,
    b"0\r\nX: a\rb\r\n\r\n",
    Err(InvalidTrailer)
);
chunk!(
    rejects_bare_cr_in_final_line,
    b"0\r\n\r\r\n",
    Err(InvalidTrailer)
);
chunk!(
    rejects_empty_trailer_name,
    b"0\r\n:x\r\n\r\n",
    Err(InvalidTrailer)
);
chunk!(
    accepts_obs_text_in_trailer_value,
    b"0\r\nX: \xe9\r\n\r\n",
    0
);

/// RFC 9110 §6.5.1: framing, routing, control, authentication and content fields may not
/// arrive as trailers; the name is matched case-insensitively.
#[test]
fn rejects_every_forbidden_trailer_field() {
    for name in FORBIDDEN_TRAILERS {
        let name = std::str::from_utf8(name).unwrap();
        for n in [name.to_string(), name.to_ascii_uppercase()] {
            let body = format!("5\r\nhello\r\n0\r\nX-Ok: 1\r\n{n}: v\r\n\r\n");
            assert_eq!(
                decode(body.as_bytes()),
                Err(ChunkedError::ForbiddenTrailer),
                "{n}"
            );
        }
    }
}

#[test]
fn accepts_trailer_names_that_only_extend_forbidden_ones() {
    for name in [
        "Content-Length-X",
        "X-Host",
        "Hosts",
        "X-Very-Long-Trailer-Name-Here",
    ] {
        let body = format!("0\r\n{name}: 1\r\n\r\n");
        assert_eq!(decode(body.as_bytes()), Ok((body.len(), true, 0)), "{name}");
    }
}

#[test]
fn feed_data_hands_out_the_payload_without_framing_in_any_split() {
    let body = b"5;x=y\r\nhello\r\n1\r\n \r\n6\r\nworld!\r\n0\r\nt: 1\r\n\r\nNEXT";
    for cut in 0..body.len() {
        let mut d = ChunkedDecoder::new();
        let mut out = Vec::new();
        let a = d
            .feed_data(&body[..cut], |p| out.extend_from_slice(p))
            .unwrap();
        let b = d
            .feed_data(&body[a..], |p| out.extend_from_slice(p))
            .unwrap();
        assert!(d.is_done(), "cut {cut}");
        assert_eq!(a + b, body.len() - 4, "cut {cut}");
        assert_eq!(out, b"hello world!", "cut {cut}");
    }
}
