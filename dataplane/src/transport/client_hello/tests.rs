//! Tables for the ClientHello inspection: captured ClientHellos (openssl, curl), every
//! truncation prefix, not-TLS inputs, malformed ones, and mutations of the captures.

use super::*;

/// `openssl s_client -connect 127.0.0.1:<port> -servername a.example.com -alpn h2,http/1.1`
/// (OpenSSL 3.0, TLS 1.3 and 1.2 offered).
const OPENSSL: &str = concat!(
    "160301014c0100014803036cc0e322afd1ce3755dc07f3446fed0a91a4afbe27a403ab428e18585343a9d620",
    "504bdecba6e3f26712301b4a53d25e5af771e3d5df1781b9b8f5d162a0a26e3b003e130213031301c02cc030",
    "009fcca9cca8ccaac02bc02f009ec024c028006bc023c0270067c00ac0140039c009c0130033009d009c003d",
    "003c0035002f00ff010000c100000012001000000d612e6578616d706c652e636f6d000b000403000102000a",
    "00160014001d0017001e0019001801000101010201030104002300000010000e000c02683208687474702f31",
    "2e310016000000170000000d002a0028040305030603080708080809080a080b080408050806040105010601",
    "030303010302040205020602002b0009080304030303020301002d00020101003300260024001d00200ecf60",
    "7f4a293331cbff58245e8bd541c4b8d464f0d811b124549f4c38537f59",
);

/// `curl -k --connect-to cart.shop.svc.cluster.local:443:127.0.0.1:<port>
/// https://cart.shop.svc.cluster.local/` (curl 7.88, OpenSSL 3.0; padded to 512 bytes).
const CURL: &str = concat!(
    "1603010200010001fc030333b49f77703dd7b5a825339f43377759e14c063d0789d0d69da469941edbf55a20",
    "23e803558978da4698a4e998bb7ad2dcf5c1a99408070631d709e023d07e4e7a003e130213031301c02cc030",
    "009fcca9cca8ccaac02bc02f009ec024c028006bc023c0270067c00ac0140039c009c0130033009d009c003d",
    "003c0035002f00ff0100017500000020001e00001b636172742e73686f702e7376632e636c75737465722e6c",
    "6f63616c000b000403000102000a00160014001d0017001e00190018010001010102010301040010000e000c",
    "02683208687474702f312e31001600000017000000310000000d002a0028040305030603080708080809080a",
    "080b080408050806040105010601030303010302040205020602002b0009080304030303020301002d000201",
    "01003300260024001d0020c9dcae5f7b595441db7fad113864fdba2e62a1c8e69a8a506b5ae21934f65d4900",
    "1500a20000000000000000000000000000000000000000000000000000000000000000000000000000000000",
    "0000000000000000000000000000000000000000000000000000000000000000000000000000000000000000",
    "0000000000000000000000000000000000000000000000000000000000000000000000000000000000000000",
    "000000000000000000000000000000000000000000000000000000000000000000",
);

/// `openssl s_client -connect 127.0.0.1:<port> -noservername` (no SNI, no ALPN).
const OPENSSL_NO_SNI: &str = concat!(
    "160301012401000120030331ad34471a9a6cf157a5342ac23efa484e687e124ad3f609664e01356809bb9020",
    "5410857c2a53f1722bb2b68f41175303ba5a730f0253b4c38b0d163d9cb6bdd0003e130213031301c02cc030",
    "009fcca9cca8ccaac02bc02f009ec024c028006bc023c0270067c00ac0140039c009c0130033009d009c003d",
    "003c0035002f00ff01000099000b000403000102000a00160014001d0017001e001900180100010101020103",
    "0104002300000016000000170000000d002a0028040305030603080708080809080a080b0804080508060401",
    "05010601030303010302040205020602002b0009080304030303020301002d00020101003300260024001d00",
    "20600838e49cbcd979f6e828d30fa1f37f7b0be2e0dae479bfc352f43a890b6f58",
);

fn unhex(s: &str) -> Vec<u8> {
    assert!(s.len() % 2 == 0);
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

fn hello(bytes: &[u8]) -> ClientHello<'_> {
    match inspect(bytes) {
        Inspect::Hello(h) => h,
        other => panic!("{other:?}"),
    }
}

fn alpn(h: &ClientHello<'_>) -> Vec<Vec<u8>> {
    h.alpn.iter().map(<[u8]>::to_vec).collect()
}

/// What the fuzz target checks too: a `Hello`'s borrowed parts are inside the input, the
/// record is not longer than what the caller buffers, every prefix is `NeedMore`.
fn check_invariants(data: &[u8]) {
    let r = inspect(data);
    if r == Inspect::NeedMore {
        assert!(data.len() < MAX_CLIENT_HELLO);
    }
    let Inspect::Hello(h) = r else { return };
    let range = data.as_ptr_range();
    if let Some(name) = h.server_name {
        assert!(range.contains(&name.as_ptr()) && name.len() <= data.len());
        assert!(valid_host_name(name.as_bytes()));
    }
    for p in h.alpn {
        assert!(!p.is_empty() && range.contains(&p.as_ptr()));
    }
    let record_end = 5 + usize::from(u16::from_be_bytes([data[3], data[4]]));
    assert!(record_end <= data.len() && record_end <= MAX_CLIENT_HELLO);
    assert_eq!(inspect(&data[..record_end]), r);
    for cut in 0..record_end {
        assert_eq!(inspect(&data[..cut]), Inspect::NeedMore, "prefix of {cut}");
    }
}

#[test]
fn captured_hellos() {
    let b = unhex(OPENSSL);
    let h = hello(&b);
    assert_eq!(h.server_name, Some("a.example.com"));
    assert_eq!(alpn(&h), [b"h2".to_vec(), b"http/1.1".to_vec()]);
    assert!(h.alpn.contains(b"h2") && !h.alpn.contains(b"h3"));
    assert_eq!(h.legacy_version, 0x0303);
    assert_eq!(format!("{:?}", h.alpn), r#"["h2", "http/1.1"]"#);

    let b = unhex(CURL);
    let h = hello(&b);
    assert_eq!(h.server_name, Some("cart.shop.svc.cluster.local"));
    assert_eq!(alpn(&h), [b"h2".to_vec(), b"http/1.1".to_vec()]);

    let b = unhex(OPENSSL_NO_SNI);
    let h = hello(&b);
    assert_eq!(h.server_name, None);
    assert!(h.alpn.is_empty() && h.alpn.iter().next().is_none());
    assert_eq!(h.legacy_version, 0x0303);
}

#[test]
fn every_truncation_needs_more() {
    for hex in [OPENSSL, CURL, OPENSSL_NO_SNI] {
        let b = unhex(hex);
        for cut in 0..b.len() {
            assert_eq!(inspect(&b[..cut]), Inspect::NeedMore, "prefix of {cut}");
        }
        check_invariants(&b);
    }
}

#[test]
fn bytes_after_the_record_are_ignored() {
    let first = unhex(OPENSSL);
    let alone = hello(&first);
    let mut b = first.clone();
    // A TLS 1.3 client's middlebox-compatibility ChangeCipherSpec, then anything.
    b.extend_from_slice(&[0x14, 0x03, 0x03, 0x00, 0x01, 0x01]);
    b.extend_from_slice(b"GET / HTTP/1.1\r\n");
    let h = hello(&b);
    assert_eq!(h.server_name, alone.server_name);
    assert_eq!(alpn(&h), alpn(&alone));
    check_invariants(&b);
}

#[test]
fn other_protocols_are_not_tls() {
    let cases: &[&[u8]] = &[
        b"GET / HTTP/1.1\r\n",
        b"G",
        b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
        b"SSH-2.0-OpenSSH_9.2\r\n",
        b"PROXY TCP4 192.0.2.1 198.51.100.2 56324 443\r\n",
        // SSLv2-compatible ClientHello (2-byte header with the high bit set).
        &[0x80, 0x2e, 0x01, 0x03, 0x01, 0x00, 0x15],
        // Another content type: application data, alert, change cipher spec.
        &[0x17, 0x03, 0x03, 0x00, 0x10],
        &[0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x28],
        &[0x14],
        // Record versions out of range: SSL 3.0, 2.x, 3.5.
        &[0x16, 0x03, 0x00],
        &[0x16, 0x02],
        &[0x16, 0x03, 0x05],
        // Record lengths: 0, under a handshake header, over 16 KiB.
        &[0x16, 0x03, 0x01, 0x00, 0x00],
        &[0x16, 0x03, 0x01, 0x00, 0x03],
        &[0x16, 0x03, 0x01, 0x40, 0x01],
        // Another handshake type (ServerHello).
        &[0x16, 0x03, 0x03, 0x00, 0x40, 0x02],
        // A ClientHello longer than its record: fragmented over several.
        &[0x16, 0x03, 0x01, 0x00, 0x40, 0x01, 0x00, 0x01, 0x00],
    ];
    for c in cases {
        assert_eq!(
            inspect(c),
            Inspect::NotTls,
            "{:?}",
            c.escape_ascii().to_string()
        );
    }
    assert_eq!(inspect(b""), Inspect::NeedMore);
    assert_eq!(inspect(&[0x16, 0x03, 0x01, 0x40]), Inspect::NeedMore);
    assert_eq!(inspect(&[0x16, 0x03, 0x04, 0x40, 0x00]), Inspect::NeedMore);
}

/// Builds ClientHellos (lengths computed) for the malformed cases.
struct Builder {
    legacy_version: u16,
    session_id: Vec<u8>,
    suites: Vec<u8>,
    compression: Vec<u8>,
    extensions: Option<Vec<u8>>,
}

impl Builder {
    fn new() -> Builder {
        Builder {
            legacy_version: 0x0303,
            session_id: vec![7; 32],
            suites: vec![0x13, 0x01, 0x13, 0x02],
            compression: vec![0],
            extensions: Some(Vec::new()),
        }
    }

    fn ext(mut self, typ: u16, data: &[u8]) -> Builder {
        let e = self.extensions.get_or_insert_with(Vec::new);
        e.extend_from_slice(&typ.to_be_bytes());
        e.extend_from_slice(&(data.len() as u16).to_be_bytes());
        e.extend_from_slice(data);
        self
    }

    fn sni(self, names: &[(u8, &[u8])]) -> Builder {
        let mut list = Vec::new();
        for (t, n) in names {
            list.push(*t);
            list.extend_from_slice(&(n.len() as u16).to_be_bytes());
            list.extend_from_slice(n);
        }
        self.ext(0, &vec16(&list))
    }

    fn body(&self) -> Vec<u8> {
        let mut b = self.legacy_version.to_be_bytes().to_vec();
        b.extend_from_slice(&[0x5a; 32]);
        b.push(self.session_id.len() as u8);
        b.extend_from_slice(&self.session_id);
        b.extend_from_slice(&vec16(&self.suites));
        b.push(self.compression.len() as u8);
        b.extend_from_slice(&self.compression);
        if let Some(e) = &self.extensions {
            b.extend_from_slice(&vec16(e));
        }
        b
    }

    fn build(&self) -> Vec<u8> {
        wrap(&self.body())
    }
}

fn vec16(data: &[u8]) -> Vec<u8> {
    let mut v = (data.len() as u16).to_be_bytes().to_vec();
    v.extend_from_slice(data);
    v
}

/// Handshake and record headers around a ClientHello body.
fn wrap(body: &[u8]) -> Vec<u8> {
    let hs = body.len() as u32;
    let rec = (body.len() + 4) as u16;
    let mut v = vec![0x16, 0x03, 0x01];
    v.extend_from_slice(&rec.to_be_bytes());
    v.push(0x01);
    v.extend_from_slice(&hs.to_be_bytes()[1..]);
    v.extend_from_slice(body);
    v
}

fn malformed(b: &[u8], what: &str) {
    assert_eq!(inspect(b), Inspect::Malformed, "{what}");
}

#[test]
fn built_hellos_parse() {
    let b = Builder::new()
        .sni(&[(0, b"Cart-1.shop_x.example")])
        .ext(16, &vec16(b"\x02h2"))
        .build();
    let h = hello(&b);
    assert_eq!(h.server_name, Some("Cart-1.shop_x.example"));
    assert_eq!(alpn(&h), [b"h2".to_vec()]);
    check_invariants(&b);

    // TLS 1.2 without any extensions, an empty extension block, an empty session id.
    let mut bare = Builder::new();
    bare.extensions = None;
    bare.session_id.clear();
    let b = bare.build();
    let h = hello(&b);
    assert_eq!((h.server_name, h.alpn.is_empty()), (None, true));
    check_invariants(&b);
    let b = Builder::new().build();
    assert_eq!(hello(&b).server_name, None);

    // 255 bytes is the longest name; an unknown name type is skipped.
    let long = [b'a'; 255];
    let b = Builder::new().sni(&[(0, &long)]).build();
    assert_eq!(hello(&b).server_name.map(str::len), Some(255));
    let b = Builder::new()
        .sni(&[(7, b"\xff\xfe"), (0, b"x.test")])
        .build();
    assert_eq!(hello(&b).server_name, Some("x.test"));
    let b = Builder::new().sni(&[(7, b"opaque")]).build();
    assert_eq!(hello(&b).server_name, None);

    // Unknown and GREASE extensions are skipped.
    let b = Builder::new()
        .ext(0x0a0a, b"")
        .sni(&[(0, b"a.test")])
        .ext(0xfe0d, &[1; 100])
        .ext(0xfafa, b"\0")
        .build();
    assert_eq!(hello(&b).server_name, Some("a.test"));
    check_invariants(&b);
}

#[test]
fn bad_host_names_are_malformed() {
    let long = [b'a'; 256];
    let bad: &[&[u8]] = &[
        b"",
        &long,
        b"a b.test",
        b"a/b",
        b"a:443",
        b"a\0.test",
        b"caf\xc3\xa9.test",
        b"*.test",
        b"a.test\r\nHost: evil",
    ];
    for name in bad {
        let b = Builder::new().sni(&[(0, name)]).build();
        malformed(&b, &name.escape_ascii().to_string());
    }
    // Two host names; an empty list; the list shorter or longer than the extension.
    malformed(
        &Builder::new()
            .sni(&[(0, b"a.test"), (0, b"b.test")])
            .build(),
        "two host names",
    );
    malformed(&Builder::new().ext(0, b"\0\0").build(), "empty list");
    malformed(&Builder::new().ext(0, b"").build(), "no list");
    malformed(
        &Builder::new().ext(0, b"\0\x07\0\0\x04a.te\0").build(),
        "list shorter than the extension",
    );
    malformed(
        &Builder::new().ext(0, b"\0\x09\0\0\x04a.te").build(),
        "list longer than the extension",
    );
    malformed(
        &Builder::new().ext(0, b"\0\x07\0\0\x05a.te").build(),
        "name longer than the list",
    );
}

#[test]
fn bad_alpn_is_malformed() {
    let cases: [(&[u8], &str); 7] = [
        (b"", "no list"),
        (b"\0\0", "empty list"),
        (b"\0\x01\0", "empty name"),
        (b"\0\x03\x02h2\0", "empty name after h2"),
        (b"\0\x03\x03h2", "name longer than the list"),
        (b"\0\x04\x02h2", "list longer than the extension"),
        (b"\0\x03\x02h2x", "list shorter than the extension"),
    ];
    for (data, what) in cases {
        malformed(&Builder::new().ext(16, data).build(), what);
    }
}

#[test]
fn duplicate_extensions_are_malformed() {
    malformed(
        &Builder::new().ext(0x17, b"").ext(0x17, b"").build(),
        "extended master secret twice",
    );
    malformed(
        &Builder::new()
            .sni(&[(0, b"a.test")])
            .ext(0x2b, b"\x02\x03\x04")
            .sni(&[(0, b"b.test")])
            .build(),
        "server_name twice",
    );
    malformed(
        &Builder::new()
            .ext(16, b"\0\x03\x02h2")
            .ext(16, b"\0\x03\x02h2")
            .build(),
        "alpn twice",
    );
    malformed(
        &Builder::new().ext(0xffff, b"").ext(0xffff, b"").build(),
        "highest type twice",
    );
    // Distinct types sharing a bitmap word are not duplicates.
    let b = Builder::new().ext(0x40, b"").ext(0x41, b"").ext(0x7f, b"");
    hello(&b.build());
}

#[test]
fn bad_lengths_are_malformed() {
    let mut b = Builder::new();
    b.session_id = vec![0; 33];
    malformed(&b.build(), "session id of 33");
    let mut b = Builder::new();
    b.suites = vec![0x13, 0x01, 0x13];
    malformed(&b.build(), "odd cipher suites");
    let mut b = Builder::new();
    b.suites.clear();
    malformed(&b.build(), "no cipher suite");
    let mut b = Builder::new();
    b.compression.clear();
    malformed(&b.build(), "no compression method");
    let mut b = Builder::new();
    b.legacy_version = 0x0203;
    malformed(&b.build(), "legacy_version 2.3");

    // Extension length past the block; block length past or short of the hello.
    let good = Builder::new()
        .ext(0x17, b"")
        .ext(0x2b, b"\x02\x03\x04")
        .body();
    let ext_block = good.len() - 13; // start of the extensions block
    let mut body = good.clone();
    body[ext_block + 2 + 4 + 3] = 4; // supported_versions length 3 -> 4
    malformed(&wrap(&body), "extension past its block");
    let mut body = good.clone();
    body[ext_block + 1] += 1;
    malformed(&wrap(&body), "block past the hello");
    let mut body = good.clone();
    body[ext_block + 1] -= 1;
    malformed(&wrap(&body), "block short of the hello");
    let mut body = good.clone();
    body.push(0);
    malformed(&wrap(&body), "a byte after the extensions");
    // One byte after the compression methods: not even an extensions length.
    let mut bare = Builder::new();
    bare.extensions = None;
    let mut body = bare.body();
    body.push(0);
    malformed(&wrap(&body), "one byte after the compression methods");
    // A body too short for the fixed fields.
    malformed(&wrap(&[3, 3, 0]), "three-byte body");

    // The handshake shorter than its record: something after it in the record.
    let mut b = wrap(&good);
    b[4] += 1;
    b.push(0x16);
    malformed(&b, "bytes after the ClientHello in its record");
    assert_eq!(
        inspect(&b[..9]),
        Inspect::Malformed,
        "known from the headers"
    );
    check_invariants(&b);
}

#[test]
fn malformed_is_decided_before_the_record_is_complete() {
    // 33-byte session id: known at byte 43 of a 600-byte record.
    let mut b = Builder::new().ext(0xfe0d, &[0; 500]);
    b.session_id = vec![0; 33];
    let full = b.build();
    assert_eq!(inspect(&full[..43]), Inspect::NeedMore);
    assert_eq!(inspect(&full[..44]), Inspect::Malformed);
    // A duplicate extension before a long one still to come.
    let full = Builder::new()
        .ext(0x17, b"")
        .ext(0x17, b"")
        .ext(0xfe0d, &[0; 500])
        .build();
    assert_eq!(inspect(&full[..100]), Inspect::Malformed);
    // Plain HTTP from the first byte.
    assert_eq!(inspect(b"P"), Inspect::NotTls);
}

/// A deterministic miniature of the fuzz target: every byte of the captured hellos
/// replaced by a few values, every invariant checked.
#[test]
fn mutations_keep_the_invariants() {
    for hex in [OPENSSL, OPENSSL_NO_SNI] {
        let good = unhex(hex);
        for i in 0..good.len() {
            for v in [0x00, 0xff, good[i] ^ 0x01, good[i].wrapping_add(0x40)] {
                let mut b = good.clone();
                b[i] = v;
                check_invariants(&b);
                check_invariants(&b[..i]);
            }
        }
    }
}
