//! [`RawUpstream`]: an in-test upstream on a std thread that records every byte it receives
//! and answers each request with a closure — for tests that must see exactly what the proxy
//! forwarded (repeated fields, trailers, request lines) or control response timing byte by byte.
// Test scaffolding, not per-core state: the recorded bytes are shared with the test thread.
#![allow(clippy::disallowed_types)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// One request as the upstream received it: head bytes and body bytes (with chunk framing).
#[derive(Debug, Clone, Default)]
pub struct Received {
    pub head: Vec<u8>,
    pub body: Vec<u8>,
}

impl Received {
    /// The head as text.
    pub fn head_text(&self) -> String {
        String::from_utf8_lossy(&self.head).into_owned()
    }

    /// Header lines named `name` (case-insensitive), values trimmed.
    pub fn headers(&self, name: &str) -> Vec<String> {
        self.head_text()
            .split("\r\n")
            .skip(1)
            .filter_map(|l| {
                let (n, v) = l.split_once(':')?;
                n.eq_ignore_ascii_case(name).then(|| v.trim().to_string())
            })
            .collect()
    }

    /// The request line.
    pub fn request_line(&self) -> String {
        self.head_text()
            .split("\r\n")
            .next()
            .unwrap_or("")
            .to_string()
    }
}

type Responder = dyn Fn(&mut TcpStream, &Received) + Send + Sync;

/// A recording upstream; each accepted connection is served on its own thread until the peer
/// closes, one request after another (Content-Length or chunked bodies).
pub struct RawUpstream {
    addr: SocketAddr,
    seen: Arc<Mutex<Vec<Received>>>,
    /// Bytes of every connection, in order of arrival (what a request turned out not to be).
    raw: Arc<Mutex<Vec<u8>>>,
}

impl RawUpstream {
    /// Starts the upstream; `respond` writes the answer to each request.
    pub fn start(
        respond: impl Fn(&mut TcpStream, &Received) + Send + Sync + 'static,
    ) -> RawUpstream {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind raw upstream");
        let addr = l.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let raw = Arc::new(Mutex::new(Vec::new()));
        let respond: Arc<Responder> = Arc::new(respond);
        let (s2, r2) = (seen.clone(), raw.clone());
        std::thread::spawn(move || {
            for c in l.incoming() {
                let Ok(c) = c else { return };
                let (seen, raw, respond) = (s2.clone(), r2.clone(), respond.clone());
                std::thread::spawn(move || serve(c, &seen, &raw, &*respond));
            }
        });
        RawUpstream { addr, seen, raw }
    }

    /// Answers every request with `response` (written as is).
    pub fn answering(response: &'static [u8]) -> RawUpstream {
        RawUpstream::start(move |s, _| {
            let _ = s.write_all(response);
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The complete requests received so far.
    pub fn requests(&self) -> Vec<Received> {
        self.seen.lock().unwrap().clone()
    }

    /// Every byte received so far, all connections.
    pub fn raw_bytes(&self) -> Vec<u8> {
        self.raw.lock().unwrap().clone()
    }
}

fn serve(mut c: TcpStream, seen: &Mutex<Vec<Received>>, raw: &Mutex<Vec<u8>>, respond: &Responder) {
    let _ = c.set_read_timeout(Some(Duration::from_secs(20)));
    let mut buf = Vec::new();
    let mut chunk = [0u8; 16384];
    loop {
        // A complete request in `buf`?
        if let Some((req, used)) = split_request(&buf) {
            buf.drain(..used);
            seen.lock().unwrap().push(req.clone());
            respond(&mut c, &req);
            continue;
        }
        match c.read(&mut chunk) {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                raw.lock().unwrap().extend_from_slice(&chunk[..n]);
                buf.extend_from_slice(&chunk[..n]);
            }
        }
    }
}

/// The first complete request of `buf` and its length (Content-Length or chunked framing).
fn split_request(buf: &[u8]) -> Option<(Received, usize)> {
    let end = buf.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
    let head = &buf[..end];
    let text = String::from_utf8_lossy(head).to_ascii_lowercase();
    let chunked = text.contains("transfer-encoding: chunked");
    let cl: usize = text
        .split("\r\n")
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.split(',').next()?.trim().parse().ok())
        .unwrap_or(0);
    let rest = &buf[end..];
    let body_len = if chunked {
        chunked_len(rest)?
    } else if rest.len() >= cl {
        cl
    } else {
        return None;
    };
    Some((
        Received {
            head: head.to_vec(),
            body: rest[..body_len].to_vec(),
        },
        end + body_len,
    ))
}

/// Length of a complete chunked body at the start of `b` (with its trailer section).
fn chunked_len(b: &[u8]) -> Option<usize> {
    let mut i = 0;
    loop {
        let line_end = b.get(i..)?.windows(2).position(|w| w == b"\r\n")? + i;
        let size_text = std::str::from_utf8(&b[i..line_end]).ok()?;
        let size = usize::from_str_radix(size_text.split(';').next()?.trim(), 16).ok()?;
        i = line_end + 2;
        if size == 0 {
            // Trailer section: lines until an empty one.
            loop {
                let e = b.get(i..)?.windows(2).position(|w| w == b"\r\n")? + i;
                let empty = e == i;
                i = e + 2;
                if empty {
                    return Some(i);
                }
            }
        }
        i += size + 2;
        if i > b.len() {
            return None;
        }
    }
}
