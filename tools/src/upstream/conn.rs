//! One client connection: reads requests in order (keep-alive, pipelining), routes the
//! special paths, applies the global fault, writes the responses.
//!
//! Special paths (query ignored): `/echo`, `/headers`, `/size/N`, `/status/N`, `/stream/N`,
//! `/sha256`, `/__stats`. `/__stats` is never faulted and never counted.
//!
//! Invariants: a request body is streamed, except for `/echo` (bounded by
//! [`MAX_ECHO_BYTES`]); nothing here panics on any input; every blocking read is bounded by
//! the idle timeout except in the `hang` fault.

use std::io::{self, BufWriter, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::sync::atomic::Ordering::Relaxed;
use std::thread;
use std::time::Duration;

use sha2::{Digest, Sha256};

use super::options::Fault;
use super::respond::{self, Body, DripWriter, Response};
use super::wire::{Framing, RecvBuf, RequestHead, WireError};
use super::Shared;

/// Largest request body `/echo` holds in memory (413 beyond).
pub const MAX_ECHO_BYTES: u64 = 64 * 1024 * 1024;

/// What a request asks for, from its path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    Default,
    Echo,
    Headers,
    Size(u64),
    Status(u16),
    Stream(u64),
    Sha256,
    Stats,
    /// A special path with an unusable number: answered 400.
    BadNumber,
}

impl Route {
    pub fn of(path: &str) -> Route {
        if let Some(n) = path.strip_prefix("/size/") {
            return n.parse().map_or(Route::BadNumber, Route::Size);
        }
        if let Some(n) = path.strip_prefix("/stream/") {
            return n.parse().map_or(Route::BadNumber, Route::Stream);
        }
        if let Some(n) = path.strip_prefix("/status/") {
            return match n.parse() {
                Ok(s @ 100..=999) => Route::Status(s),
                _ => Route::BadNumber,
            };
        }
        match path {
            "/echo" => Route::Echo,
            "/headers" => Route::Headers,
            "/sha256" => Route::Sha256,
            "/__stats" => Route::Stats,
            _ => Route::Default,
        }
    }
}

/// What reading the request body produced, per route.
enum Received {
    Nothing,
    Echo(Vec<u8>),
    EchoTooLarge,
    Digest { len: u64, hex: String },
}

/// Serves one connection until it closes. Errors only end the connection.
pub fn serve(stream: TcpStream, shared: &Shared) {
    if let Err(e) = serve_inner(&stream, shared) {
        if shared.opts.verbose {
            eprintln!("ringway-upstream: connection ended: {e}");
        }
    }
}

fn serve_inner(stream: &TcpStream, shared: &Shared) -> Result<(), WireError> {
    let opts = &shared.opts;
    stream.set_nodelay(true)?;
    let idle = (!opts.idle_timeout.is_zero()).then_some(opts.idle_timeout);
    stream.set_read_timeout(idle)?;
    stream.set_write_timeout(idle)?;
    let mut rb = RecvBuf::new(stream);
    // One write buffer per connection, flushed after every response (large bodies pass
    // through it without being copied).
    let mut out = BufWriter::with_capacity(64 * 1024, stream);
    let mut served_on_conn: u64 = 0;
    loop {
        let head = match rb.read_head() {
            Ok(Some(head)) => head,
            Ok(None) => return Ok(()),
            Err(e) => return answer_error_and_close(stream, shared, e),
        };
        let route = Route::of(head.path());
        let fault = if route == Route::Stats {
            Fault::None
        } else {
            if served_on_conn == 0 {
                shared.stats.connections.fetch_add(1, Relaxed);
            }
            shared.stats.requests.fetch_add(1, Relaxed);
            opts.fault
        };
        served_on_conn += 1;

        if head.expect_continue && head.minor_version >= 1 && head.framing != Framing::None {
            let mut w = stream;
            w.write_all(b"HTTP/1.1 100 Continue\r\n\r\n")?;
        }
        let received = match read_body(&mut rb, &head, route) {
            Ok(r) => r,
            Err(e) => return answer_error_and_close(stream, shared, e),
        };

        match fault {
            Fault::ResetBeforeHeaders => return reset(stream),
            Fault::Hang => return hang(stream),
            Fault::BadResponse => {
                let mut w = stream;
                w.write_all(b"HTTP/1.1 2x0 Broken\r\ncontent-length: 0\r\n\r\n")?;
                return close_gracefully(stream);
            }
            _ => {}
        }

        let mut resp = build_response(&head, route, received, shared);
        let close_after = matches!(fault, Fault::CloseAfter(n) if served_on_conn >= n);
        resp.close = !head.keep_alive;
        resp.keep_alive_header = head.keep_alive && head.minor_version == 0;
        resp.head_only = head.is_head();
        if head.minor_version == 0 {
            resp.chunked = false;
        }
        match fault {
            Fault::ErrorRate(pct) if error_due(shared, pct) => {
                resp.status = 503;
                resp.body = Body::Bytes(b"injected 503\n".to_vec());
                resp.chunked = false;
            }
            Fault::WrongContentLength => {
                resp.chunked = false;
                resp.declared_extra = 10;
            }
            Fault::ResetMidBody => resp.cut_mid_body = true,
            _ => {}
        }

        if !opts.latency.is_zero() && route != Route::Stats {
            thread::sleep(opts.latency);
        }
        let sent = if fault == Fault::SlowDrip {
            let mut w = DripWriter {
                inner: stream,
                interval: opts.drip_interval,
            };
            respond::send(&resp, &mut w).and_then(|()| w.flush())
        } else {
            // Flush even after a deliberate cut: the half body must reach the wire.
            let r = respond::send(&resp, &mut out);
            let flushed = out.flush();
            r.and(flushed)
        };
        if let Err(e) = sent {
            if resp.cut_mid_body {
                return reset(stream);
            }
            return Err(e.into());
        }
        if fault == Fault::WrongContentLength || resp.close || close_after {
            return close_gracefully(stream);
        }
    }
}

/// Deterministic error injection: exactly `pct` of every 100 consecutive requests fail,
/// spread evenly (request k fails when ⌊(k+1)·pct/100⌋ > ⌊k·pct/100⌋).
fn error_due(shared: &Shared, pct: u8) -> bool {
    let k = shared.error_seq.fetch_add(1, Relaxed);
    let p = u64::from(pct);
    (k + 1).saturating_mul(p) / 100 > k.saturating_mul(p) / 100
}

fn read_body(
    rb: &mut RecvBuf<&TcpStream>,
    head: &RequestHead,
    route: Route,
) -> Result<Received, WireError> {
    match route {
        Route::Echo => {
            let mut body = Vec::new();
            let mut too_large = false;
            rb.read_body(head.framing, &mut |piece| {
                if body.len() as u64 + piece.len() as u64 > MAX_ECHO_BYTES {
                    too_large = true;
                } else {
                    body.extend_from_slice(piece);
                }
                Ok(())
            })?;
            Ok(if too_large {
                Received::EchoTooLarge
            } else {
                Received::Echo(body)
            })
        }
        Route::Sha256 => {
            let mut hasher = Sha256::new();
            let len = rb.read_body(head.framing, &mut |piece| {
                hasher.update(piece);
                Ok(())
            })?;
            let hex = hasher
                .finalize()
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect();
            Ok(Received::Digest { len, hex })
        }
        _ => {
            rb.read_body(head.framing, &mut |_| Ok(()))?;
            Ok(Received::Nothing)
        }
    }
}

fn build_response<'a>(
    head: &RequestHead,
    route: Route,
    received: Received,
    shared: &'a Shared,
) -> Response<'a> {
    let opts = &shared.opts;
    let mut resp = match (route, received) {
        (Route::Echo, Received::Echo(body)) => {
            let mut r = Response::new(200, Body::Bytes(body));
            r.chunked = head.framing == Framing::Chunked;
            r
        }
        (Route::Echo, _) => {
            let mut r = Response::new(413, Body::Bytes(b"echo body too large\n".to_vec()));
            r.close = true;
            r
        }
        (Route::Sha256, Received::Digest { len, hex }) => Response::new(
            200,
            Body::Bytes(format!("len={len} sha256={hex}\n").into_bytes()),
        ),
        (Route::Headers, _) => Response::new(200, Body::Bytes(head.raw.clone())),
        (Route::Size(n), _) => {
            let mut r = Response::new(200, Body::Pattern(n));
            r.chunked = opts.chunked;
            r
        }
        (Route::Stream(n), _) => {
            let mut r = Response::new(200, Body::Pattern(n));
            r.chunked = true;
            r
        }
        (Route::Status(s), _) => {
            let mut r = Response::new(s, Body::Pattern(opts.body_size));
            r.chunked = opts.chunked;
            r
        }
        (Route::Stats, _) => Response::new(200, Body::Bytes(shared.stats.render().into_bytes())),
        (Route::BadNumber, _) => Response::new(400, Body::Bytes(b"bad number in path\n".to_vec())),
        (Route::Default | Route::Sha256, _) => {
            let mut r = Response::new(opts.status, Body::Pattern(opts.body_size));
            r.chunked = opts.chunked;
            r
        }
    };
    resp.name = opts.name.as_deref();
    resp
}

fn answer_error_and_close(
    stream: &TcpStream,
    shared: &Shared,
    e: WireError,
) -> Result<(), WireError> {
    if let Some(status) = e.status() {
        let mut resp = Response::new(status, Body::Bytes(format!("{e}\n").into_bytes()));
        resp.close = true;
        resp.name = shared.opts.name.as_deref();
        let mut w = stream;
        respond::send(&resp, &mut w)?;
        close_gracefully(stream)?;
    }
    Err(e)
}

/// Sends RST instead of FIN: SO_LINGER 0, then close.
fn reset(stream: &TcpStream) -> Result<(), WireError> {
    socket2::SockRef::from(stream).set_linger(Some(Duration::ZERO))?;
    Ok(())
}

/// Never answers; returns once the peer closes (or the socket fails).
fn hang(stream: &TcpStream) -> Result<(), WireError> {
    stream.set_read_timeout(None)?;
    let mut scratch = [0u8; 4096];
    let mut r = stream;
    loop {
        match r.read(&mut scratch) {
            Ok(0) => return Ok(()),
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e.into()),
        }
    }
}

/// FIN, then drain what the peer still sends for a short while, so unread pipelined
/// bytes do not turn our close into an RST that could destroy the last response.
fn close_gracefully(stream: &TcpStream) -> Result<(), WireError> {
    stream.shutdown(Shutdown::Write)?;
    stream.set_read_timeout(Some(Duration::from_secs(1)))?;
    let mut scratch = [0u8; 4096];
    let mut r = stream;
    while let Ok(n) = r.read(&mut scratch) {
        if n == 0 {
            break;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_special_paths() {
        assert_eq!(Route::of("/echo"), Route::Echo);
        assert_eq!(Route::of("/size/10"), Route::Size(10));
        assert_eq!(Route::of("/size/x"), Route::BadNumber);
        assert_eq!(Route::of("/status/503"), Route::Status(503));
        assert_eq!(Route::of("/status/42"), Route::BadNumber);
        assert_eq!(Route::of("/stream/5"), Route::Stream(5));
        assert_eq!(Route::of("/anything"), Route::Default);
    }
}
