//! Request head parsing throughput: small, typical browser-like, and 40-header heads.

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use ringway::http::{parse_request_head, HeadLimits, Parsed, RequestHead};
use ringway_bench::Group;

const SMALL: &[u8] = b"GET / HTTP/1.1\r\nHost: example.com\r\n\r\n";

const TYPICAL: &[u8] = b"GET /products/42?ref=home HTTP/1.1\r\n\
Host: shop.example.com\r\n\
User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0\r\n\
Accept: text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8\r\n\
Accept-Language: en-US,en;q=0.5\r\n\
Accept-Encoding: gzip, deflate, br\r\n\
Referer: https://shop.example.com/\r\n\
Connection: keep-alive\r\n\
Cookie: session=3f9a0c1b2d4e5f60718293a4b5c6d7e8; theme=dark\r\n\
Upgrade-Insecure-Requests: 1\r\n\
Cache-Control: max-age=0\r\n\r\n";

fn forty_headers() -> Vec<u8> {
    let mut v =
        b"POST /api/v1/items HTTP/1.1\r\nHost: api.example.com\r\nContent-Length: 0\r\n".to_vec();
    for i in 0..38 {
        v.extend_from_slice(
            format!("X-Custom-Header-{i:02}: value-{i:02}-abcdefghijklmnop\r\n").as_bytes(),
        );
    }
    v.extend_from_slice(b"\r\n");
    v
}

ringway_bench::count_allocations!();

fn bench_parse(c: &mut Criterion) {
    let limits = HeadLimits::default();
    let forty = forty_headers();
    let mut group = Group::new(c, "parse_request_head");
    for (name, input) in [
        ("small", SMALL),
        ("typical", TYPICAL),
        ("40_headers", &forty[..]),
    ] {
        let mut head = RequestHead::default();
        assert_eq!(
            parse_request_head(input, &limits, &mut head),
            Ok(Parsed::Complete(input.len()))
        );
        group
            .criterion()
            .throughput(Throughput::Bytes(input.len() as u64));
        group.bench(name, || {
            let r = parse_request_head(black_box(input), &limits, &mut head);
            black_box(r).ok();
        });
    }
    group.finish();
}

criterion_group!(benches, bench_parse);
criterion_main!(benches);
