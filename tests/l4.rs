//! L4 (`protocol = "tcp"`) proxying against real processes: bytes both ways (small echoes and
//! 64 MiB streams, checked), half-close, balancing and connect retries, refused / hanging /
//! non-reading peers, descriptor stability over 10,000 short connections, PROXY protocol in
//! both directions (also in front of an HTTP listener), the redirect-loop guard, metrics.

mod support;

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

use support::{fd_count, free_port, metric, rss_kib, Proxy, TcpPeer, Upstream};

/// A config with one `tcp` listener `l4` to cluster `c` over `endpoints`.
fn l4_config(
    endpoints: &[SocketAddr],
    listener_extra: &str,
    cluster_extra: &str,
) -> (String, SocketAddr) {
    let (listen, admin) = (free_port(), free_port());
    let eps: Vec<String> = endpoints.iter().map(|a| format!("\"{a}\"")).collect();
    let text = format!(
        "[runtime]\nworkers = 2\n\n[admin]\nbind = \"127.0.0.1:{admin}\"\n\n\
         [[listeners]]\nname = \"l4\"\nbind = \"127.0.0.1:{listen}\"\nprotocol = \"tcp\"\ncluster = \"c\"\n{listener_extra}\n\n\
         [[clusters]]\nname = \"c\"\nendpoints = [{}]\nconnect_timeout = \"500ms\"\n{cluster_extra}\n",
        eps.join(", ")
    );
    (text, SocketAddr::from(([127, 0, 0, 1], listen)))
}

fn connect(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect(addr).expect("connect to the proxy");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.set_write_timeout(Some(Duration::from_secs(10))).unwrap();
    s.set_nodelay(true).unwrap();
    s
}

fn pattern(i: u64) -> u8 {
    b'a' + (i % 26) as u8
}

/// Reads until end of stream; `Err` if the read fails (reset, timeout).
fn read_to_end(s: &mut TcpStream) -> std::io::Result<Vec<u8>> {
    let mut v = Vec::new();
    s.read_to_end(&mut v).map(|_| v)
}

#[test]
fn echoes_bytes_both_ways_on_many_connections() {
    let echo = TcpPeer::start("echo");
    let (cfg, addr) = l4_config(&[echo.addr()], "", "");
    let proxy = Proxy::start(&cfg);
    let mut conns: Vec<TcpStream> = (0..8).map(|_| connect(addr)).collect();
    for round in 0..200u32 {
        for (i, c) in conns.iter_mut().enumerate() {
            let msg = format!(
                "round {round} conn {i} {}\n",
                "x".repeat(round as usize % 700)
            );
            c.write_all(msg.as_bytes()).unwrap();
            let mut back = vec![0u8; msg.len()];
            c.read_exact(&mut back).unwrap();
            assert_eq!(back, msg.as_bytes());
        }
    }
    drop(conns);
    assert!(
        metric(
            &proxy,
            "ringway_downstream_received_bytes_total{listener=\"l4\"}"
        ) > 1000.0
    );
    assert!(metric(&proxy, "ringway_upstream_sent_bytes_total{cluster=\"c\"}") > 1000.0);
    assert_eq!(
        metric(
            &proxy,
            "ringway_upstream_connects_total{cluster=\"c\",result=\"ok\"}"
        ),
        8.0
    );
}

#[test]
fn streams_64_mib_each_way_intact() {
    const N: u64 = 64 << 20;
    let source = TcpPeer::start(&format!("source:{N}"));
    let (cfg, addr) = l4_config(&[source.addr()], "", "");
    let proxy = Proxy::start(&cfg);
    let mut c = connect(addr);
    let mut buf = vec![0u8; 1 << 20];
    let mut got = 0u64;
    loop {
        let n = c.read(&mut buf).expect("download");
        if n == 0 {
            break;
        }
        for (i, &b) in buf[..n].iter().enumerate() {
            assert_eq!(b, pattern(got + i as u64), "byte {}", got + i as u64);
        }
        got += n as u64;
    }
    assert_eq!(got, N);
    drop(proxy);

    let sink = TcpPeer::start("sink");
    let (cfg, addr) = l4_config(&[sink.addr()], "", "");
    let _proxy = Proxy::start(&cfg);
    let mut c = connect(addr);
    let mut sent = 0u64;
    while sent < N {
        let n = (N - sent).min(buf.len() as u64) as usize;
        for (i, b) in buf[..n].iter_mut().enumerate() {
            *b = pattern(sent + i as u64);
        }
        c.write_all(&buf[..n]).unwrap();
        sent += n as u64;
    }
    c.shutdown(Shutdown::Write).unwrap();
    let answer = String::from_utf8(read_to_end(&mut c).unwrap()).unwrap();
    assert!(
        answer.starts_with(&format!("{N} ")),
        "sink answered {answer:?}"
    );
}

#[test]
fn half_close_passes_through_in_both_directions() {
    let echo = TcpPeer::start("echo");
    let (cfg, addr) = l4_config(&[echo.addr()], "", "");
    let _proxy = Proxy::start(&cfg);
    let mut c = connect(addr);
    let body: Vec<u8> = (0..300_000u64).map(pattern).collect();
    c.write_all(&body).unwrap();
    // Our half-close reaches the echo server, which finishes and half-closes back.
    c.shutdown(Shutdown::Write).unwrap();
    let back = read_to_end(&mut c).unwrap();
    assert_eq!(back.len(), body.len());
    assert!(back == body);
}

#[test]
fn balances_over_endpoints_and_retries_a_refused_connect() {
    let a = TcpPeer::start("source:3");
    let b = TcpPeer::start("source:5");
    let dead = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap() // closed when `l` drops: refuses
    };
    let (cfg, addr) = l4_config(&[a.addr(), b.addr(), dead], "connect_attempts = 3", "");
    let proxy = Proxy::start(&cfg);
    let (mut threes, mut fives) = (0, 0);
    for _ in 0..30 {
        let mut c = connect(addr);
        match read_to_end(&mut c).unwrap().len() {
            3 => threes += 1,
            5 => fives += 1,
            other => panic!("got {other} bytes"),
        }
    }
    assert!(threes >= 8 && fives >= 8, "a={threes} b={fives}");
    assert!(
        metric(
            &proxy,
            "ringway_upstream_connects_total{cluster=\"c\",result=\"error\"}"
        ) >= 1.0
    );
}

#[test]
fn refused_upstream_closes_the_client_and_leaks_nothing() {
    let dead = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let (cfg, addr) = l4_config(&[dead], "", "");
    let proxy = Proxy::start(&cfg);
    let before = fd_count(proxy.pid());
    for _ in 0..50 {
        let mut c = connect(addr);
        let t = Instant::now();
        let got = read_to_end(&mut c);
        assert!(got.map(|v| v.is_empty()).unwrap_or(true));
        assert!(t.elapsed() < Duration::from_secs(3));
    }
    std::thread::sleep(Duration::from_millis(200));
    assert!(fd_count(proxy.pid()) <= before + 2);
    assert_eq!(
        metric(
            &proxy,
            "ringway_proxy_errors_total{kind=\"upstream_connect\"}"
        ),
        50.0
    );
}

#[test]
fn a_hanging_upstream_and_an_idle_client_are_closed_at_the_idle_timeout() {
    let hold = TcpPeer::start("hold");
    let (cfg, addr) = l4_config(
        &[hold.addr()],
        "[listeners.limits]\nidle_timeout = \"400ms\"",
        "",
    );
    let _proxy = Proxy::start(&cfg);
    let mut c = connect(addr);
    c.write_all(b"hello?").unwrap();
    let t = Instant::now();
    let got = read_to_end(&mut c);
    let waited = t.elapsed();
    assert!(got.map(|v| v.is_empty()).unwrap_or(true));
    assert!(
        waited >= Duration::from_millis(300) && waited < Duration::from_secs(3),
        "closed after {waited:?}"
    );
}

#[test]
fn a_client_that_never_reads_costs_bounded_memory() {
    let source = TcpPeer::start(&format!("source:{}", 1u64 << 30));
    let (cfg, addr) = l4_config(
        &[source.addr()],
        "[listeners.limits]\nidle_timeout = \"1s\"",
        "",
    );
    let proxy = Proxy::start(&cfg);
    let before = rss_kib(proxy.pid());
    let conns: Vec<TcpStream> = (0..20).map(|_| connect(addr)).collect();
    std::thread::sleep(Duration::from_millis(600));
    let during = rss_kib(proxy.pid());
    assert!(
        during < before + 16 * 1024,
        "RSS {before} KiB -> {during} KiB with 20 stalled 1 GiB streams"
    );
    // Nothing moves: the idle timeout closes them; what is left to read is only what the
    // socket buffers held.
    std::thread::sleep(Duration::from_millis(2000));
    for mut c in conns {
        c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut sink = vec![0u8; 1 << 20];
        let t = Instant::now();
        let mut total = 0usize;
        loop {
            match c.read(&mut sink) {
                Ok(0) | Err(_) => break,
                Ok(n) => total += n,
            }
        }
        assert!(
            total < 64 << 20,
            "read {total} bytes after the idle timeout"
        );
        assert!(t.elapsed() < Duration::from_secs(8));
    }
}

#[test]
fn ten_thousand_short_connections_leave_no_descriptors_behind() {
    let source = TcpPeer::start("source:1");
    let (cfg, addr) = l4_config(&[source.addr()], "", "");
    let proxy = Proxy::start(&cfg);
    let warm = connect(addr);
    drop(warm);
    std::thread::sleep(Duration::from_millis(100));
    let before = fd_count(proxy.pid());
    for i in 0..10_000 {
        let mut c = connect(addr);
        let mut b = [0u8; 2];
        let n = c
            .read(&mut b)
            .unwrap_or_else(|e| panic!("connection {i}: {e}"));
        assert_eq!(n, 1, "connection {i}");
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut after = fd_count(proxy.pid());
    while after > before + 4 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
        after = fd_count(proxy.pid());
    }
    assert!(after <= before + 4, "descriptors {before} -> {after}");
    assert_eq!(
        metric(
            &proxy,
            "ringway_downstream_connections_active{listener=\"l4\"}"
        ),
        0.0
    );
}

#[test]
fn a_required_proxy_protocol_header_is_read_and_stripped() {
    let echo = TcpPeer::start("echo");
    let (cfg, addr) = l4_config(&[echo.addr()], "proxy_protocol = true", "");
    let proxy = Proxy::start(&cfg);
    // v1
    let mut c = connect(addr);
    c.write_all(b"PROXY TCP4 192.0.2.7 198.51.100.1 4444 80\r\nhello")
        .unwrap();
    let mut back = [0u8; 5];
    c.read_exact(&mut back).unwrap();
    assert_eq!(&back, b"hello");
    // v2, with the payload in the same segment
    let mut v2 = b"\r\n\r\n\0\r\nQUIT\n\x21\x11\x00\x0c".to_vec();
    v2.extend_from_slice(&[192, 0, 2, 7, 198, 51, 100, 1, 0x11, 0x5c, 0, 80]);
    v2.extend_from_slice(b"world");
    let mut c = connect(addr);
    c.write_all(&v2).unwrap();
    c.read_exact(&mut back).unwrap();
    assert_eq!(&back, b"world");
    // No header: closed, counted, nothing forwarded.
    let mut c = connect(addr);
    c.write_all(b"GET / HTTP/1.1\r\n\r\n").unwrap();
    assert!(read_to_end(&mut c).map(|v| v.is_empty()).unwrap_or(true));
    assert_eq!(
        metric(
            &proxy,
            "ringway_proxy_errors_total{kind=\"proxy_protocol\"}"
        ),
        1.0
    );
}

#[test]
fn a_cluster_sends_the_client_address_in_a_proxy_protocol_header() {
    for (version, expect_prefix) in [
        ("v1", &b"PROXY TCP4 127.0.0.1 127.0.0.1 "[..]),
        ("v2", b"\r\n\r\n\0\r\nQUIT\n\x21\x11"),
    ] {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let up = l.local_addr().unwrap();
        let (cfg, addr) = l4_config(&[up], "", &format!("proxy_protocol = \"{version}\""));
        let _proxy = Proxy::start(&cfg);
        let mut c = connect(addr);
        let client_port = c.local_addr().unwrap().port();
        c.write_all(b"payload").unwrap();
        let (mut s, _) = l.accept().unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut got = Vec::new();
        let mut b = [0u8; 256];
        while !got.ends_with(b"payload") {
            let n = s.read(&mut b).unwrap();
            assert!(n > 0, "upstream saw {got:?}");
            got.extend_from_slice(&b[..n]);
        }
        assert!(got.starts_with(expect_prefix), "{version}: {got:?}");
        if version == "v1" {
            let line = String::from_utf8_lossy(&got);
            assert!(line.contains(&format!(" {client_port} ")), "{line}");
        } else {
            assert_eq!(u16::from_be_bytes([got[24], got[25]]), client_port);
        }
    }
}

#[test]
fn an_http_listener_behind_a_load_balancer_takes_the_client_from_the_proxy_header() {
    let up = Upstream::start(&[]);
    let (listen, admin) = (free_port(), free_port());
    let cfg = format!(
        "[admin]\nbind = \"127.0.0.1:{admin}\"\n\n[[listeners]]\nname = \"edge\"\nbind = \"127.0.0.1:{listen}\"\ncluster = \"web\"\nproxy_protocol = true\n\n[[clusters]]\nname = \"web\"\nendpoints = [\"{}\"]\n",
        up.addr()
    );
    let _proxy = Proxy::start(&cfg);
    let mut c = connect(SocketAddr::from(([127, 0, 0, 1], listen)));
    c.write_all(b"PROXY TCP4 203.0.113.9 127.0.0.1 5555 80\r\nGET /headers HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").unwrap();
    let text = String::from_utf8_lossy(&read_to_end(&mut c).unwrap()).to_string();
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(
        text.to_ascii_lowercase()
            .contains("x-forwarded-for: 203.0.113.9"),
        "{text}"
    );
}

#[test]
fn a_connection_whose_original_destination_is_the_proxy_is_refused() {
    let (listen, admin) = (free_port(), free_port());
    let cfg = format!(
        "[admin]\nbind = \"127.0.0.1:{admin}\"\n\n[[listeners]]\nname = \"out\"\nbind = \"127.0.0.1:{listen}\"\nprotocol = \"tcp\"\ncluster = \"passthrough\"\ninterception = \"redirect\"\n\n[[clusters]]\nname = \"passthrough\"\ntype = \"original_destination\"\n"
    );
    let proxy = Proxy::start(&cfg);
    // Not redirected: the original destination is the listener itself.
    for _ in 0..3 {
        let mut c = connect(SocketAddr::from(([127, 0, 0, 1], listen)));
        c.write_all(b"ping").unwrap();
        assert!(read_to_end(&mut c).map(|v| v.is_empty()).unwrap_or(true));
    }
    assert_eq!(
        metric(&proxy, "ringway_proxy_errors_total{kind=\"redirect_loop\"}"),
        3.0
    );
    assert_eq!(
        metric(
            &proxy,
            "ringway_upstream_connects_total{cluster=\"passthrough\",result=\"ok\"}"
        ),
        0.0
    );
}
