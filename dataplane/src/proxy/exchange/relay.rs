//! The response side of an exchange: forward the head (original bytes plus the proxy's lines)
//! and relay the body — bytes already buffered first, then batches of receive buffers in one
//! vectored send each, and a large Content-Length remainder spliced when both streams are
//! plaintext — or, after a `101`, tunnel both ways.
//!
//! Every wait ends at the idle timeout or the route's deadline; once the head has gone out a
//! failure can only close the client connection ([`Failure::AfterResponseStarted`] /
//! [`Failure::Downstream`]), never answer. The upstream connection goes back to the pool only
//! when its response ended exactly where its framing said and nothing followed it.

use std::time::Instant;

use crate::http::{self, rewrite, ChunkedDecoder, ResponseExtras, ResponseFraming};
use crate::pool::{PoolKey, UpstreamConn};
use crate::transport::{splice, Chain, IoVecs, SendError, SpliceError, Window};
use crate::upstream;
use crate::uring;

use super::super::downstream::{Downstream, OutHead};
use super::{Done, Exchange, Failure, Waited};

/// Bodies with at least this much left after what is buffered are spliced.
pub const SPLICE_MIN_BYTES: u64 = 64 * 1024;

/// Where a relayed response body ends (RFC 9112 §6.3): fed the bytes as they arrive, it says
/// how many belong to the body and whether the body ends within them.
struct BodyCursor {
    framing: ResponseFraming,
    /// Content-Length bytes still due.
    remaining: u64,
    dec: ChunkedDecoder,
}

impl BodyCursor {
    fn new(framing: ResponseFraming) -> BodyCursor {
        BodyCursor {
            framing,
            remaining: match framing {
                ResponseFraming::Length(n) => n,
                _ => 0,
            },
            dec: ChunkedDecoder::new(),
        }
    }

    /// (bytes of `input` that belong to the body, whether the body ends there).
    fn take(&mut self, input: &[u8]) -> Result<(usize, bool), Failure> {
        match self.framing {
            ResponseFraming::None => Ok((0, true)),
            ResponseFraming::Length(_) => {
                let t = self.remaining.min(input.len() as u64);
                self.remaining -= t;
                Ok((t as usize, self.remaining == 0))
            }
            ResponseFraming::Chunked => {
                let t = self
                    .dec
                    .feed(input)
                    .map_err(|_| Failure::AfterResponseStarted)?;
                Ok((t, self.dec.is_done()))
            }
            ResponseFraming::CloseDelimited => Ok((input.len(), false)),
        }
    }

    /// Content-Length bytes still due (0 for other framings: only those are spliced).
    fn splice_len(&self) -> u64 {
        match self.framing {
            ResponseFraming::Length(_) => self.remaining,
            _ => 0,
        }
    }

    /// The remaining Content-Length bytes were relayed without passing through `take`.
    fn spliced(&mut self) {
        self.remaining = 0;
    }
}

/// What is left of the response body after the head, and how the upstream connection ends.
struct Relay {
    cursor: BodyCursor,
    done: bool,
    /// Bytes past the end of the response arrived: the upstream connection is not reusable.
    stray: bool,
}

impl Exchange<'_> {
    /// Sends `payload` to the client (bounded by the stream idle timeout and the route's
    /// deadline).
    async fn to_client<T: IoVecs>(&self, ds: &mut Downstream, payload: T) -> Result<T, Failure> {
        match ds.stream.send(payload, Some(self.wait_end(None))).await {
            (Ok(()), p) => Ok(p),
            (Err(SendError::TimedOut), _) => Err(self.expiry()),
            (Err(SendError::Io(_)), _) => Err(Failure::Downstream),
        }
    }
}

/// Relays the response whose head is `up.inb[..resp_len]` (parsed in `ds.resp`), then
/// returns the upstream connection to the pool if it is reusable.
pub(super) async fn run(
    ex: &mut Exchange<'_>,
    ds: &mut Downstream,
    mut up: UpstreamConn,
    resp_len: usize,
    key: &PoolKey,
) -> Result<Done, Failure> {
    let resp = &mut ds.resp;
    if resp.is_upgrade() && !ds.head.websocket_upgrade {
        return Err(Failure::BadResponse);
    }
    let status = resp.status;
    let upgrade = resp.is_upgrade();
    // RFC 9112 §6.1: no Transfer-Encoding towards an HTTP/1.0 client: its chunked body goes
    // out close-delimited, the chunk framing taken off.
    let dechunk = ds.head.version_minor == 0 && resp.framing == ResponseFraming::Chunked;
    if dechunk {
        rewrite::suppress(
            &mut resp.headers,
            up.inb.bytes(),
            ["transfer-encoding"].into_iter(),
        );
    }
    let close = !ds.head.keep_alive
        || resp.framing == ResponseFraming::CloseDelimited
        || ex.w.draining.get()
        || upgrade
        || dechunk;
    let extras = ResponseExtras {
        close: close && !upgrade,
        keep_alive_http10: ds.head.version_minor == 0 && !close,
    };
    let hp = ex.route.headers();
    if let Some(hp) = hp {
        let names = hp
            .response_remove
            .iter()
            .map(String::as_str)
            .chain(hp.response_set.iter().map(|(n, _)| n.as_str()));
        rewrite::suppress(&mut resp.headers, up.inb.bytes(), names);
    }
    let mut scratch = std::mem::take(&mut ds.scratch);
    http::response_segments(resp, &extras, &mut scratch.added, &mut scratch.segs);
    if let Some(hp) = hp {
        let lines = hp
            .response_set
            .iter()
            .chain(hp.response_add.iter())
            .map(|(n, v)| (n.as_str(), v.as_str()));
        rewrite::append_fields(lines, &mut scratch.added, &mut scratch.segs);
    }

    let framing = resp.framing;
    let keep_alive = resp.keep_alive;
    let mut relay = Relay {
        cursor: BodyCursor::new(framing),
        done: false,
        stray: false,
    };
    let (rtail, done) = if dechunk {
        (0, false) // the body goes through `dechunked_body`, not with the head
    } else {
        match relay
            .cursor
            .take(up.inb.bytes().get(resp_len..).unwrap_or(&[]))
        {
            Ok(t) => t,
            Err(_) => {
                ds.scratch = scratch;
                return Err(Failure::BadResponse);
            }
        }
    };
    relay.done = done;
    ex.mark_started();
    // A large body will be spliced: stop receiving now, before the body lands in receive
    // buffers (what already arrived is kept and sent first, see `by_splice`).
    if !upgrade
        && relay.cursor.splice_len() >= SPLICE_MIN_BYTES
        && up.stream.is_plaintext()
        && ds.stream.is_plaintext()
    {
        up.stream.pause_recv().await;
    }
    let head = OutHead::new(std::mem::take(&mut up.inb), scratch, resp_len, rtail);
    let (sent, head) = ds.stream.send(head, Some(ex.wait_end(None))).await;
    up.inb = head.inb;
    ds.scratch = head.scratch;
    sent.map_err(|_| Failure::Downstream)?;
    up.inb.consume(resp_len + rtail);

    if upgrade {
        tunnel(ex, ds, &mut up).await;
        return Ok(Done {
            status,
            keep_client: false,
        });
    }
    if dechunk {
        dechunked_body(ex, ds, &mut up, &mut relay).await?;
    } else {
        body(ex, ds, &mut up, &mut relay).await?;
    }
    let reusable = keep_alive && !relay.stray && framing != ResponseFraming::CloseDelimited;
    upstream::checkin(ex.w, ex.cluster, *key, up, reusable);
    Ok(Done {
        status,
        keep_client: !close,
    })
}

/// The rest of the response body. Bytes already buffered go first; after that, every receive
/// buffer that is already queued joins one vectored send. A large Content-Length remainder
/// is spliced instead, once.
async fn body(
    ex: &Exchange<'_>,
    ds: &mut Downstream,
    up: &mut UpstreamConn,
    relay: &mut Relay,
) -> Result<(), Failure> {
    let started = Failure::AfterResponseStarted;
    let mut splice_tried = false;
    while !relay.done {
        if up.inb.is_empty()
            && !splice_tried
            && relay.cursor.splice_len() >= SPLICE_MIN_BYTES
            && up.stream.is_plaintext()
            && ds.stream.is_plaintext()
        {
            splice_tried = true;
            by_splice(ex, ds, up, relay).await?;
            continue;
        }
        if !up.inb.is_empty() {
            let (take, d) = relay.cursor.take(up.inb.bytes())?;
            relay.done = d;
            let win = Window {
                inb: std::mem::take(&mut up.inb),
                len: take,
            };
            let win = ex.to_client(ds, win).await?;
            up.inb = win.inb;
            up.inb.consume(take);
            continue;
        }
        let mut chain = Chain::default();
        let mut eof = false;
        let mut next = ex.recv_until(&mut up.stream, ex.wait_end(None)).await;
        loop {
            let b = match next {
                Ok(Some(b)) => b,
                Ok(None) if relay.cursor.framing == ResponseFraming::CloseDelimited => {
                    eof = true;
                    break;
                }
                Err(Waited::Expired) => return Err(ex.expiry()),
                _ => return Err(started),
            };
            let (take, d) = relay.cursor.take(b.bytes())?;
            relay.done = d;
            relay.stray |= take < b.len();
            chain.push(b, take);
            if relay.done || chain.is_full() || !up.stream.has_pending() {
                break;
            }
            next = ex.recv_until(&mut up.stream, ex.wait_end(None)).await;
        }
        if !relay.done && !eof {
            // Receive the next part while this one is being sent (on-demand receives would
            // otherwise alternate receive and send).
            up.stream.start_recv();
        }
        if !chain.is_empty() {
            ex.to_client(ds, chain).await?;
        }
        if eof {
            break;
        }
    }
    Ok(())
}

/// A chunked body for an HTTP/1.0 client: only the chunks' data is sent (copied into the
/// connection's scratch buffer), the client reads to the close.
async fn dechunked_body(
    ex: &Exchange<'_>,
    ds: &mut Downstream,
    up: &mut UpstreamConn,
    relay: &mut Relay,
) -> Result<(), Failure> {
    while !relay.cursor.dec.is_done() {
        if up.inb.is_empty() {
            match ex.recv_until(&mut up.stream, ex.wait_end(None)).await {
                Ok(Some(b)) => up.inb.push(b),
                Err(Waited::Expired) => return Err(ex.expiry()),
                Ok(None) | Err(Waited::Failed) => return Err(Failure::AfterResponseStarted),
            }
        }
        let mut out = std::mem::take(&mut ds.out);
        out.clear();
        let fed = relay
            .cursor
            .dec
            .feed_data(up.inb.bytes(), |d| out.extend_from_slice(d));
        let n = match fed {
            Ok(n) => n,
            Err(_) => {
                ds.out = out;
                return Err(Failure::AfterResponseStarted);
            }
        };
        up.inb.consume(n);
        let sent = ex.to_client(ds, out).await;
        ds.out = match sent {
            Ok(out) => out,
            Err(e) => return Err(e),
        };
    }
    relay.stray |= !up.inb.is_empty();
    Ok(())
}

/// Relays the rest of a Content-Length body with `splice`: pauses the upstream receive, sends
/// what it had already delivered, then splices the remainder. Failures are fatal: the
/// response has started.
async fn by_splice(
    ex: &Exchange<'_>,
    ds: &mut Downstream,
    up: &mut UpstreamConn,
    relay: &mut Relay,
) -> Result<(), Failure> {
    let started = Failure::AfterResponseStarted;
    up.stream.pause_recv().await;
    let mut chain = Chain::default();
    loop {
        let b = match up.stream.take_queued() {
            Ok(Some(b)) => b,
            Ok(None) => break,
            Err(_) => return Err(started),
        };
        let (take, done) = relay.cursor.take(b.bytes())?;
        relay.stray |= take < b.len();
        chain.push(b, take);
        if chain.is_full() || done {
            ex.to_client(ds, std::mem::take(&mut chain)).await?;
        }
        if done {
            // Anything still queued is past the body: the connection is not reusable.
            relay.stray |= matches!(up.stream.take_queued(), Ok(Some(_)) | Err(_));
            relay.done = true;
            return Ok(());
        }
    }
    if !chain.is_empty() {
        ex.to_client(ds, chain).await?;
    }
    let left = relay.cursor.splice_len();
    if left == 0 {
        relay.done = true;
        return Ok(());
    }
    let idle = ex.limits.stream_idle_timeout;
    let moved = splice::relay(&ex.w.pipes, &up.stream, &ds.stream, left, idle);
    let moved = match ex.deadline {
        Some(d) => {
            let left = d.saturating_duration_since(Instant::now());
            uring::timeout(&ex.w.driver, left, moved)
                .await
                .unwrap_or(Err(SpliceError::Idle))
        }
        None => moved.await,
    };
    match moved {
        Ok(()) => {
            relay.cursor.spliced();
            relay.done = true;
            // Exactly the body was read: anything already behind it (an upstream that sent more
            // than its Content-Length, or closed) makes the connection unfit for reuse.
            relay.stray |= up.stream.has_unread_or_eof();
            Ok(())
        }
        // No pipe (or not plaintext): nothing moved, the receive path carries on.
        Err(SpliceError::NoPipe | SpliceError::Unsupported) => Ok(()),
        Err(SpliceError::Idle) => Err(ex.expiry()),
        Err(SpliceError::Source) => Err(started),
        Err(SpliceError::Sink) => Err(Failure::Downstream),
    }
}

/// After a 101 to a WebSocket upgrade: copy bytes both ways until either side closes or is
/// idle for the idle timeout.
async fn tunnel(ex: &Exchange<'_>, ds: &mut Downstream, up: &mut UpstreamConn) {
    let idle = ex.limits.stream_idle_timeout;
    // Bytes already buffered on either side go first.
    if !ds.inb.is_empty() {
        let win = Window {
            len: ds.inb.len(),
            inb: std::mem::take(&mut ds.inb),
        };
        let (_, mut win) = up.stream.send(win, Some(Instant::now() + idle)).await;
        win.inb.clear();
    }
    if !up.inb.is_empty() {
        let win = Window {
            len: up.inb.len(),
            inb: std::mem::take(&mut up.inb),
        };
        let (_, mut win) = ds.stream.send(win, Some(Instant::now() + idle)).await;
        win.inb.clear();
    }
    let driver = ex.w.driver.clone();
    let (mut c_rx, c_tx) = ds.stream.split();
    let (mut u_rx, u_tx) = up.stream.split();
    let client_to_up = async {
        while let Ok(Ok(Some(b))) = uring::timeout(&driver, idle, c_rx.recv()).await {
            if u_tx.send(b, Some(Instant::now() + idle)).await.0.is_err() {
                break;
            }
        }
    };
    let up_to_client = async {
        while let Ok(Ok(Some(b))) = uring::timeout(&driver, idle, u_rx.recv()).await {
            if c_tx.send(b, Some(Instant::now() + idle)).await.0.is_err() {
                break;
            }
        }
    };
    futures_lite::future::or(client_to_up, up_to_client).await;
}
