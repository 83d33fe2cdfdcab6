//! One upstream exchange: pick an endpoint, check out or open a connection, send the request
//! head (original bytes plus added lines) and body, read and relay the response.
//!
//! Retry rule (the only one here): a request whose *reused* pooled connection turns out dead
//! before any response byte arrived is re-sent once on a fresh connection, if it is idempotent
//! and has no body. Every failure maps to one status in [`Failure::status`].

use std::cell::Cell;
use std::io;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::{Duration, Instant};

use crate::cluster::balancer::PickContext;
use crate::config::LbPolicy;
use crate::http::{
    self, BodyFraming, ChunkedDecoder, HeadLimits, Parsed, RequestExtras, ResponseExtras,
    ResponseFraming,
};
use crate::pool::UpstreamConn;
use crate::runtime::worker::{View, Worker};
use crate::telemetry::ErrorKind;
use crate::uring::{self, send_all, timeout, Conn, IoVecs, RecvBuf};

use super::inbuf::{HeadOut, InBuf, Window};
use super::{Downstream, HeadView};

/// Limits applied to upstream response heads.
const RESPONSE_LIMITS: HeadLimits = HeadLimits {
    max_head_bytes: 64 * 1024,
    max_target_bytes: 64 * 1024,
    max_headers: http::MAX_HEADERS_CAP,
};

/// Why an exchange failed.
#[derive(Debug)]
pub enum Failure {
    NoEndpoint,
    Connect(io::Error),
    ConnectTimeout,
    /// The upstream closed or reset before a complete response head.
    UpstreamReset,
    BadResponse,
    /// No upstream progress for the idle timeout, or the route's timeout fired.
    Timeout,
    /// The response had started; the only option left is closing the client connection.
    AfterResponseStarted,
    /// The client went away or sent a broken body.
    Downstream,
    BadRequestBody,
    BodyTooLarge,
}

impl Failure {
    /// (status to answer, or 0 for none; metrics kind).
    pub fn status(&self) -> (u16, ErrorKind) {
        match self {
            Failure::NoEndpoint => (503, ErrorKind::NoHealthyEndpoint),
            Failure::Connect(_) => (502, ErrorKind::UpstreamConnect),
            Failure::ConnectTimeout => (504, ErrorKind::UpstreamConnect),
            Failure::UpstreamReset => (502, ErrorKind::UpstreamReset),
            Failure::BadResponse => (502, ErrorKind::BadResponse),
            Failure::Timeout => (504, ErrorKind::UpstreamTimeout),
            Failure::AfterResponseStarted => (0, ErrorKind::UpstreamReset),
            Failure::Downstream => (0, ErrorKind::DownstreamReset),
            Failure::BadRequestBody => (400, ErrorKind::BadRequest),
            Failure::BodyTooLarge => (413, ErrorKind::BadRequest),
        }
    }

    pub fn body(&self) -> &'static [u8] {
        match self {
            Failure::NoEndpoint => b"no healthy upstream",
            Failure::Connect(_) => b"upstream connect error",
            Failure::ConnectTimeout => b"upstream connect timeout",
            Failure::UpstreamReset => b"upstream closed the connection",
            Failure::BadResponse => b"upstream sent a malformed response",
            Failure::Timeout => b"upstream timeout",
            Failure::BadRequestBody => b"malformed request body",
            Failure::BodyTooLarge => b"request body too large",
            Failure::AfterResponseStarted | Failure::Downstream => b"",
        }
    }
}

/// Releases the balancer's in-flight count when the exchange ends, however it ends.
struct InFlight<'a> {
    view: &'a View,
    cluster: usize,
    idx: usize,
    generation: u64,
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        if let Some(cv) = self.view.clusters.get(self.cluster) {
            cv.balancer
                .borrow_mut()
                .on_request_end_in(self.idx, self.generation);
        }
    }
}

/// A request id: `<8 hex prefix>-<worker>-<16 hex sequence>`, formatted on the stack.
fn request_id(w: &Worker, out: &mut [u8; 32]) -> usize {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let seq = w.request_seq.get().wrapping_add(1);
    w.request_seq.set(seq);
    let mut n = 0;
    for i in (0..8).rev() {
        out[n] = HEX[((w.id_prefix >> (i * 4)) & 0xf) as usize];
        n += 1;
    }
    out[n] = b'-';
    out[n + 1] = HEX[w.id % 16];
    out[n + 2] = b'-';
    n += 3;
    for i in (0..16).rev() {
        out[n] = HEX[((seq >> (i * 4)) & 0xf) as usize];
        n += 1;
    }
    n
}

async fn recv_into(
    driver: &Rc<crate::uring::Driver>,
    conn: &mut Conn,
    idle: Duration,
) -> Result<Option<RecvBuf>, Failure> {
    match timeout(driver, idle, conn.recv()).await {
        Ok(Ok(b)) => Ok(b),
        Ok(Err(_)) => Err(Failure::UpstreamReset),
        Err(_) => Err(Failure::Timeout),
    }
}

/// Outcome of a send bounded by the idle timeout.
enum Sent<T> {
    Done(T),
    /// The peer reset or closed; the buffers come back.
    Failed(T),
    /// No progress within the idle timeout (a peer that stopped reading).
    TimedOut,
}

impl<T> Sent<T> {
    fn or_fail(self, failed: Failure, timed_out: Failure) -> Result<T, Failure> {
        match self {
            Sent::Done(t) => Ok(t),
            Sent::Failed(_) => Err(failed),
            Sent::TimedOut => Err(timed_out),
        }
    }
}

/// Sends all of `bufs` on `fd`, giving up after `idle` without completion.
async fn send_timed<T: IoVecs>(
    driver: &Rc<crate::uring::Driver>,
    fd: std::os::fd::RawFd,
    idle: Duration,
    bufs: T,
) -> Sent<T> {
    match timeout(driver, idle, send_all(driver, fd, bufs)).await {
        Ok((Ok(()), b)) => Sent::Done(b),
        Ok((Err(_), b)) => Sent::Failed(b),
        Err(_) => Sent::TimedOut,
    }
}

/// Runs the exchange; `Ok(true)` if the client connection may serve another request.
pub async fn run(
    w: &Rc<Worker>,
    view: &View,
    listener: usize,
    cluster: usize,
    ds: &mut Downstream,
    head_len: usize,
    started: &Cell<bool>,
) -> Result<bool, Failure> {
    let ccfg = view
        .config
        .clusters
        .get(cluster)
        .ok_or(Failure::NoEndpoint)?;
    let cv = view.clusters.get(cluster).ok_or(Failure::NoEndpoint)?;
    let limits = &view.config.listeners[listener].limits;
    let idle = limits.idle_timeout;
    let hash = if ccfg.lb == LbPolicy::RingHash {
        let hv = HeadView {
            head: &ds.head,
            buf: ds.inb.bytes(),
        };
        crate::cluster::hash_key(&ccfg.hash_key, ds.peer.ip(), &hv)
    } else {
        0
    };
    let (idx, generation) = {
        let mut b = cv.balancer.borrow_mut();
        let idx = b
            .pick(&PickContext {
                hash,
                exclude: None,
                unavailable: &[],
            })
            .ok_or(Failure::NoEndpoint)?;
        b.on_request_start(idx);
        (idx, b.generation())
    };
    let _inflight = InFlight {
        view,
        cluster,
        idx,
        generation,
    };
    let addr = *cv.endpoints.get(idx).ok_or(Failure::NoEndpoint)?;
    let method = ds.head.method;
    let retryable = method.is_idempotent() && ds.head.framing == BodyFraming::None;
    let mut fresh_only = false;
    let t0 = Instant::now();

    // Build the outgoing head once; it stays valid across a retry.
    let mut idbuf = [0u8; 32];
    let idlen = request_id(w, &mut idbuf);
    {
        let mut added = std::mem::take(&mut ds.added);
        let mut segs = std::mem::take(&mut ds.segs);
        http::request_segments(
            &ds.head,
            &RequestExtras {
                client_ip: ds.peer.ip(),
                proto: "http",
                request_id: Some(&idbuf[..idlen]),
            },
            &mut added,
            &mut segs,
        );
        ds.added = added;
        ds.segs = segs;
    }
    // Body bytes that arrived with the head.
    let mut decoder = ChunkedDecoder::new();
    let avail = ds.inb.len().saturating_sub(head_len);
    let (tail, mut remaining) = match ds.head.framing {
        BodyFraming::None => (0, 0u64),
        BodyFraming::Length(n) => {
            let t = (n.min(avail as u64)) as usize;
            (t, n - t as u64)
        }
        BodyFraming::Chunked => {
            let body = ds.inb.bytes().get(head_len..).unwrap_or(&[]);
            let c = decoder.feed(body).map_err(|_| Failure::BadRequestBody)?;
            let max = limits.max_request_body_bytes;
            if max > 0 && decoder.data_bytes() > max {
                return Err(Failure::BodyTooLarge);
            }
            (c, 0)
        }
    };

    let mut up = loop {
        let mut up = get_conn(w, view, cluster, addr, fresh_only).await?;
        let reused = up.uses > 0;
        let hout = HeadOut {
            inb: std::mem::take(&mut ds.inb),
            added: std::mem::take(&mut ds.added),
            segs: std::mem::take(&mut ds.segs),
            tail_at: head_len,
            tail,
        };
        let (ok, hout) = match send_timed(&w.driver, up.conn.fd(), idle, hout).await {
            Sent::Done(h) => (true, h),
            Sent::Failed(h) => (false, h),
            Sent::TimedOut => return Err(Failure::Timeout),
        };
        ds.inb = hout.inb;
        ds.added = hout.added;
        ds.segs = hout.segs;
        if !ok {
            if reused && retryable && !fresh_only {
                fresh_only = true;
                continue;
            }
            return Err(Failure::UpstreamReset);
        }
        if !reused || !retryable || fresh_only {
            break up;
        }
        // A reused connection: make sure it answers before trusting it (retry if it died).
        match recv_into(&w.driver, &mut up.conn, idle).await {
            Ok(Some(b)) => {
                up.inb.push(b);
                break up;
            }
            Ok(None) | Err(Failure::UpstreamReset) => {
                fresh_only = true;
                continue;
            }
            Err(e) => return Err(e),
        }
    };
    ds.inb.consume(head_len + tail);
    w.metrics.bytes_sent(listener, 0);

    // Rest of the request body, streamed.
    let max_body = limits.max_request_body_bytes;
    match ds.head.framing {
        BodyFraming::None => {}
        BodyFraming::Length(_) => {
            while remaining > 0 {
                if ds.inb.is_empty() {
                    match timeout(&w.driver, idle, ds.conn.recv()).await {
                        Ok(Ok(Some(b))) => ds.inb.push(b),
                        _ => return Err(Failure::Downstream),
                    }
                }
                let take = (remaining.min(ds.inb.len() as u64)) as usize;
                let win = Window {
                    inb: std::mem::take(&mut ds.inb),
                    len: take,
                };
                let win = send_timed(&w.driver, up.conn.fd(), idle, win)
                    .await
                    .or_fail(Failure::UpstreamReset, Failure::Timeout)?;
                ds.inb = win.inb;
                ds.inb.consume(take);
                remaining -= take as u64;
            }
        }
        BodyFraming::Chunked => {
            while !decoder.is_done() {
                if ds.inb.is_empty() {
                    match timeout(&w.driver, idle, ds.conn.recv()).await {
                        Ok(Ok(Some(b))) => ds.inb.push(b),
                        _ => return Err(Failure::Downstream),
                    }
                }
                let take = decoder
                    .feed(ds.inb.bytes())
                    .map_err(|_| Failure::BadRequestBody)?;
                if max_body > 0 && decoder.data_bytes() > max_body {
                    return Err(Failure::BodyTooLarge);
                }
                let win = Window {
                    inb: std::mem::take(&mut ds.inb),
                    len: take,
                };
                let win = send_timed(&w.driver, up.conn.fd(), idle, win)
                    .await
                    .or_fail(Failure::UpstreamReset, Failure::Timeout)?;
                ds.inb = win.inb;
                ds.inb.consume(take);
            }
        }
    }

    // Response head (skipping interim 100 Continue the proxy already answered itself).
    let resp = &mut ds.resp;
    let resp_len = loop {
        match http::parse_response_head(up.inb.bytes(), &RESPONSE_LIMITS, method, resp) {
            Ok(Parsed::Complete(n)) => {
                if resp.is_interim() {
                    up.inb.consume(n);
                    continue;
                }
                break n;
            }
            Ok(Parsed::Partial) => {}
            Err(_) => return Err(Failure::BadResponse),
        }
        match recv_into(&w.driver, &mut up.conn, idle).await? {
            Some(b) => up.inb.push(b),
            None => return Err(Failure::UpstreamReset),
        }
    };
    let latency = t0.elapsed();
    let status = resp.status;
    if resp.is_upgrade() && !ds.head.websocket_upgrade {
        return Err(Failure::BadResponse);
    }
    let upgrade = resp.is_upgrade();
    let close = !ds.head.keep_alive
        || resp.framing == ResponseFraming::CloseDelimited
        || w.draining.get()
        || upgrade;
    let extras = ResponseExtras {
        close: close && !upgrade,
        keep_alive_http10: ds.head.version_minor == 0 && !close,
    };
    let mut added = std::mem::take(&mut ds.added);
    let mut segs = std::mem::take(&mut ds.segs);
    http::response_segments(resp, &extras, &mut added, &mut segs);

    let mut rdec = ChunkedDecoder::new();
    let ravail = up.inb.len().saturating_sub(resp_len);
    let (rtail, mut rremaining, mut done) = match resp.framing {
        ResponseFraming::None => (0, 0u64, true),
        ResponseFraming::Length(n) => {
            let t = (n.min(ravail as u64)) as usize;
            (t, n - t as u64, t as u64 == n)
        }
        ResponseFraming::Chunked => {
            let body = up.inb.bytes().get(resp_len..).unwrap_or(&[]);
            let c = rdec.feed(body).map_err(|_| Failure::BadResponse)?;
            (c, 0, rdec.is_done())
        }
        ResponseFraming::CloseDelimited => (ravail, 0, false),
    };
    started.set(true);
    let hout = HeadOut {
        inb: std::mem::take(&mut up.inb),
        added,
        segs,
        tail_at: resp_len,
        tail: rtail,
    };
    let hout = send_timed(&w.driver, ds.conn.fd(), idle, hout)
        .await
        .or_fail(Failure::Downstream, Failure::Downstream)?;
    up.inb = hout.inb;
    ds.added = hout.added;
    ds.segs = hout.segs;
    up.inb.consume(resp_len + rtail);

    if upgrade {
        tunnel(w, ds, &mut up, idle).await;
        w.metrics
            .request_done(listener, Some(cluster), status, Some(latency));
        return Ok(false);
    }

    // Rest of the response body, streamed.
    while !done {
        if up.inb.is_empty() {
            match recv_into(&w.driver, &mut up.conn, idle).await {
                Ok(Some(b)) => up.inb.push(b),
                Ok(None) if resp.framing == ResponseFraming::CloseDelimited => break,
                _ => return Err(Failure::AfterResponseStarted),
            }
        }
        let take = match resp.framing {
            ResponseFraming::Length(_) => {
                let t = (rremaining.min(up.inb.len() as u64)) as usize;
                rremaining -= t as u64;
                done = rremaining == 0;
                t
            }
            ResponseFraming::Chunked => {
                let t = rdec
                    .feed(up.inb.bytes())
                    .map_err(|_| Failure::AfterResponseStarted)?;
                done = rdec.is_done();
                t
            }
            _ => up.inb.len(),
        };
        let win = Window {
            inb: std::mem::take(&mut up.inb),
            len: take,
        };
        let win = send_timed(&w.driver, ds.conn.fd(), idle, win)
            .await
            .or_fail(Failure::Downstream, Failure::Downstream)?;
        up.inb = win.inb;
        up.inb.consume(take);
    }
    w.metrics
        .request_done(listener, Some(cluster), status, Some(latency));

    // Keep the upstream connection if it is clean and reusable.
    up.uses += 1;
    let max_uses = ccfg.pool.max_requests_per_connection;
    if resp.keep_alive
        && resp.framing != ResponseFraming::CloseDelimited
        && up.inb.is_empty()
        && (max_uses == 0 || up.uses < max_uses)
    {
        w.pools
            .borrow_mut()
            .checkin(addr, up, ccfg.pool.max_idle, Instant::now());
    }
    Ok(!close)
}

/// A pooled connection to `addr`, or a new one within the connect timeout.
async fn get_conn(
    w: &Rc<Worker>,
    view: &View,
    cluster: usize,
    addr: SocketAddr,
    fresh_only: bool,
) -> Result<UpstreamConn, Failure> {
    let ccfg = &view.config.clusters[cluster];
    if !fresh_only {
        let pooled = w
            .pools
            .borrow_mut()
            .checkout(addr, ccfg.pool.idle_timeout, Instant::now());
        if let Some(up) = pooled {
            w.metrics.upstream_pool_reuse(cluster);
            return Ok(up);
        }
    }
    match timeout(
        &w.driver,
        ccfg.connect_timeout,
        uring::connect(&w.driver, addr),
    )
    .await
    {
        Ok(Ok(conn)) => {
            w.metrics.upstream_connect(cluster, true);
            Ok(UpstreamConn {
                conn,
                inb: InBuf::default(),
                uses: 0,
            })
        }
        Ok(Err(e)) => {
            w.metrics.upstream_connect(cluster, false);
            Err(Failure::Connect(e))
        }
        Err(_) => {
            w.metrics.upstream_connect(cluster, false);
            Err(Failure::ConnectTimeout)
        }
    }
}

/// After a 101 to a WebSocket upgrade: copy bytes both ways until either side closes or is
/// idle for `idle`.
async fn tunnel(w: &Rc<Worker>, ds: &mut Downstream, up: &mut UpstreamConn, idle: Duration) {
    let driver = w.driver.clone();
    let (cfd, ufd) = (ds.conn.fd(), up.conn.fd());
    // Bytes already buffered on either side go first.
    if !ds.inb.is_empty() {
        let win = Window {
            len: ds.inb.len(),
            inb: std::mem::take(&mut ds.inb),
        };
        let (_, mut win) = send_all(&driver, ufd, win).await;
        win.inb.clear();
    }
    if !up.inb.is_empty() {
        let win = Window {
            len: up.inb.len(),
            inb: std::mem::take(&mut up.inb),
        };
        let (_, mut win) = send_all(&driver, cfd, win).await;
        win.inb.clear();
    }
    let d1 = driver.clone();
    let client_to_up = async {
        while let Ok(Ok(Some(b))) = timeout(&d1, idle, ds.conn.recv()).await {
            if send_all(&d1, ufd, b).await.0.is_err() {
                break;
            }
        }
    };
    let d2 = driver.clone();
    let up_to_client = async {
        while let Ok(Ok(Some(b))) = timeout(&d2, idle, up.conn.recv()).await {
            if send_all(&d2, cfd, b).await.0.is_err() {
                break;
            }
        }
    };
    futures_lite::future::or(client_to_up, up_to_client).await;
}
