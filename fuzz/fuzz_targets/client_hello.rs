//! Fuzz target: `ringway::transport::client_hello::inspect` (TLS ClientHello inspection). It
//! never panics; a `Hello`'s server name and ALPN protocols are slices of the input; only the
//! first record counts; every prefix of an input giving `Hello` gives `NeedMore` or `Hello`;
//! `NeedMore` is never the answer once `MAX_CLIENT_HELLO` bytes are there.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ringway::transport::client_hello::{inspect, Inspect, MAX_CLIENT_HELLO};

fuzz_target!(|data: &[u8]| {
    let result = inspect(data);
    if result == Inspect::NeedMore {
        assert!(data.len() < MAX_CLIENT_HELLO);
    }
    let Inspect::Hello(hello) = result else {
        return;
    };
    let input = data.as_ptr_range();
    let within = |s: &[u8]| {
        let r = s.as_ptr_range();
        input.start <= r.start && r.end <= input.end
    };
    if let Some(name) = hello.server_name {
        assert!(within(name.as_bytes()));
        assert!((1..=255).contains(&name.len()));
        assert!(name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_')));
        let found = data.windows(name.len()).any(|w| w == name.as_bytes());
        assert!(found, "server name is not a substring of the input");
    }
    for protocol in hello.alpn {
        assert!(!protocol.is_empty() && within(protocol));
    }
    // The ClientHello is the first record; what follows it does not matter.
    let record_end = 5 + usize::from(u16::from_be_bytes([data[3], data[4]]));
    assert!(record_end <= data.len() && record_end <= MAX_CLIENT_HELLO);
    assert_eq!(inspect(&data[..record_end]), result);
    for cut in 0..record_end {
        let prefix = inspect(&data[..cut]);
        assert!(
            prefix == Inspect::NeedMore || prefix == result,
            "prefix of {cut} bytes: {prefix:?}"
        );
    }
});
