//! Big bodies stream through the proxy without being buffered: uploads to the upstream's
//! `/sha256` and downloads from `/size/N` and `/stream/N`, checked by length and SHA-256
//! computed on the client side, while the proxy's RSS is sampled and must stay flat.
//!
//! Size: uploads are 1 GiB, downloads 256 MiB, in every build (measured on the 2-core CI
//! machine with a debug proxy: 256 MiB in ~0.4 s either way, so no gating is needed).
//! Bodies are generated on the fly and hashed as they arrive, never held.

mod support;

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use support::{pattern_chunk, rss_kib, Rig, Upstream, PATTERN_CHUNK_LEN};

const MIB: u64 = 1024 * 1024;
/// Allowed RSS growth of the proxy during a transfer.
const RSS_SLACK_KIB: u64 = 64 * 1024;
/// Per-read/write timeout on the test's sockets: a stalled proxy fails instead of hanging.
const IO_TIMEOUT: Duration = Duration::from_secs(10);

/// Size of the uploads.
const UPLOAD_LEN: u64 = 1024 * MIB;

/// SHA-256 (hex) of the first `len` bytes of the upstream pattern.
fn pattern_sha256(len: u64) -> String {
    let chunk = pattern_chunk();
    let mut h = Sha256::new();
    let mut left = len;
    while left > 0 {
        let n = left.min(PATTERN_CHUNK_LEN as u64) as usize;
        h.update(&chunk[..n]);
        left -= n as u64;
    }
    hex(&h.finalize())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn connect(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect_timeout(&addr, IO_TIMEOUT).expect("connect to proxy");
    s.set_read_timeout(Some(IO_TIMEOUT)).expect("read timeout");
    s.set_write_timeout(Some(IO_TIMEOUT))
        .expect("write timeout");
    s
}

/// Samples the RSS of `pid` every 50 ms while `work` runs on another thread; returns the
/// work's result and the largest RSS seen (KiB).
fn with_rss_sampling<T: Send + 'static>(
    pid: u32,
    work: impl FnOnce() -> T + Send + 'static,
) -> (T, u64) {
    let done = Arc::new(AtomicBool::new(false));
    let done2 = Arc::clone(&done);
    let worker = thread::spawn(move || {
        let r = work();
        done2.store(true, Ordering::SeqCst);
        r
    });
    let mut max = rss_kib(pid);
    while !done.load(Ordering::SeqCst) {
        max = max.max(rss_kib(pid));
        thread::sleep(Duration::from_millis(50));
    }
    (worker.join().expect("transfer thread panicked"), max)
}

/// Reads a response head (status, lower-cased headers) byte-wise from `r`.
fn read_head(r: &mut impl BufRead) -> io::Result<(u16, Vec<(String, String)>)> {
    let mut line = String::new();
    r.read_line(&mut line)?;
    let status = line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, format!("status {line:?}")))?;
    let mut headers = Vec::new();
    loop {
        line.clear();
        if r.read_line(&mut line)? == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        let l = line.trim_end();
        if l.is_empty() {
            return Ok((status, headers));
        }
        if let Some((n, v)) = l.split_once(':') {
            headers.push((n.trim().to_ascii_lowercase(), v.trim().to_string()));
        }
    }
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
}

/// Streams the body described by `headers` from `r` into a hasher: (length, sha256 hex).
fn hash_body(r: &mut impl BufRead, headers: &[(String, String)]) -> io::Result<(u64, String)> {
    let mut h = Sha256::new();
    let mut total = 0u64;
    const BUF: u64 = 256 * 1024;
    let mut buf = vec![0u8; BUF as usize];
    let chunked = header(headers, "transfer-encoding").is_some_and(|v| v.ends_with("chunked"));
    if chunked {
        let mut line = String::new();
        loop {
            line.clear();
            r.read_line(&mut line)?;
            let size_hex = line.trim_end().split(';').next().unwrap_or("");
            let mut size = u64::from_str_radix(size_hex, 16).map_err(|_| {
                io::Error::new(io::ErrorKind::InvalidData, format!("chunk size {line:?}"))
            })?;
            if size == 0 {
                // Trailers, then the empty line.
                loop {
                    line.clear();
                    r.read_line(&mut line)?;
                    if line.trim_end().is_empty() {
                        return Ok((total, hex(&h.finalize())));
                    }
                }
            }
            while size > 0 {
                let n = r.read(&mut buf[..size.min(BUF) as usize])?;
                if n == 0 {
                    return Err(io::ErrorKind::UnexpectedEof.into());
                }
                h.update(&buf[..n]);
                total += n as u64;
                size -= n as u64;
            }
            line.clear();
            r.read_line(&mut line)?;
        }
    }
    let len: u64 = header(headers, "content-length")
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "no content-length"))?;
    while total < len {
        let n = r.read(&mut buf[..(len - total).min(BUF) as usize])?;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        h.update(&buf[..n]);
        total += n as u64;
    }
    Ok((total, hex(&h.finalize())))
}

/// Uploads `len` pattern bytes to `/sha256` (chunked or Content-Length), returns the
/// upstream's answer body and the client-side sha256.
fn upload(addr: SocketAddr, len: u64, chunked: bool) -> (u16, String, String) {
    let mut s = connect(addr);
    let framing = if chunked {
        "Transfer-Encoding: chunked".to_string()
    } else {
        format!("Content-Length: {len}")
    };
    s.write_all(format!("POST /sha256 HTTP/1.1\r\nHost: big\r\n{framing}\r\n\r\n").as_bytes())
        .expect("write head");
    let chunk = pattern_chunk();
    let mut h = Sha256::new();
    let mut left = len;
    while left > 0 {
        let n = left.min(PATTERN_CHUNK_LEN as u64) as usize;
        let data = &chunk[..n];
        if chunked {
            s.write_all(format!("{n:x}\r\n").as_bytes())
                .expect("write chunk size");
            s.write_all(data).expect("write chunk");
            s.write_all(b"\r\n").expect("write chunk end");
        } else {
            s.write_all(data)
                .unwrap_or_else(|e| panic!("write body at {} of {len}: {e}", len - left));
        }
        h.update(data);
        left -= n as u64;
    }
    if chunked {
        s.write_all(b"0\r\n\r\n").expect("write last chunk");
    }
    let mut r = BufReader::new(s);
    let (status, headers) = read_head(&mut r).expect("response head");
    let mut body = Vec::new();
    let cl: usize = header(&headers, "content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    body.resize(cl, 0);
    r.read_exact(&mut body).expect("response body");
    (
        status,
        String::from_utf8_lossy(&body).into_owned(),
        hex(&h.finalize()),
    )
}

fn check_upload(chunked: bool) {
    let up = Upstream::start(&[]);
    let rig = Rig::simple(2, up.addr(), "");
    let len = UPLOAD_LEN;
    let addr = rig.listen;
    let start_rss = rss_kib(rig.proxy.pid());
    let t0 = Instant::now();
    let ((status, body, sha), max_rss) =
        with_rss_sampling(rig.proxy.pid(), move || upload(addr, len, chunked));
    eprintln!(
        "uploaded {} MiB (chunked={chunked}) in {:?}; proxy RSS {start_rss} -> max {max_rss} KiB",
        len / MIB,
        t0.elapsed()
    );
    assert_eq!(status, 200, "body {body:?}");
    assert_eq!(body.trim(), format!("len={len} sha256={sha}"));
    assert!(
        max_rss < start_rss + RSS_SLACK_KIB,
        "proxy RSS grew from {start_rss} KiB to {max_rss} KiB during the upload"
    );
}

#[test]
fn content_length_upload_streams_with_flat_memory() {
    check_upload(false);
}

#[test]
fn chunked_upload_streams_with_flat_memory() {
    check_upload(true);
}

/// GET `path` through the proxy, hashing the body as it arrives.
fn check_download(path: &str, len: u64, expect_chunked: bool) {
    let up = Upstream::start(&[]);
    let rig = Rig::simple(2, up.addr(), "");
    let addr = rig.listen;
    let start_rss = rss_kib(rig.proxy.pid());
    let req = format!("GET {path} HTTP/1.1\r\nHost: big\r\n\r\n");
    let t0 = Instant::now();
    let ((status, chunked, got), max_rss) = with_rss_sampling(rig.proxy.pid(), move || {
        let mut s = connect(addr);
        s.write_all(req.as_bytes()).expect("write request");
        let mut r = BufReader::with_capacity(256 * 1024, s);
        let (status, headers) = read_head(&mut r).expect("response head");
        let chunked = header(&headers, "transfer-encoding").is_some_and(|v| v.ends_with("chunked"));
        (status, chunked, hash_body(&mut r, &headers).expect("body"))
    });
    eprintln!(
        "downloaded {} MiB in {:?}; proxy RSS {start_rss} -> max {max_rss} KiB",
        len / MIB,
        t0.elapsed()
    );
    assert_eq!(status, 200);
    assert_eq!(chunked, expect_chunked, "framing of the relayed response");
    assert_eq!(got, (len, pattern_sha256(len)));
    assert!(
        max_rss < start_rss + RSS_SLACK_KIB,
        "proxy RSS grew from {start_rss} KiB to {max_rss} KiB during the download"
    );
}

#[test]
fn content_length_download_streams_with_flat_memory() {
    let len = 256 * MIB;
    check_download(&format!("/size/{len}"), len, false);
}

#[test]
fn chunked_download_streams_with_flat_memory() {
    let len = 256 * MIB;
    check_download(&format!("/stream/{len}"), len, true);
}
