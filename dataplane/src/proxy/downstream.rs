//! [`Downstream`]: one client connection's stream and the buffers reused by every request on
//! it; [`OutHead`], the payload that owns a head's buffers while a send has them; and the
//! responses the proxy writes itself ([`respond`]).
//!
//! Ownership of the buffers, spelled out in types: a head goes out as an [`OutHead`] that
//! *owns* the bytes it points into (the received buffer and the scratch of added lines) for
//! the length of the send; every send hands its payload back (even on a timeout, see
//! `Stream::send`), and [`Downstream::restore`] puts the buffers back. Nothing is lost on the
//! way, so a retry can send the same head again.

use std::time::{Duration, Instant};

use crate::http::{self, RequestHead, ResponseHead, Segment};
use crate::telemetry::access_log::Capture;
use crate::telemetry::trace::Trace;
use crate::transport::{buf::fill_pieces, ConnInfo, InBuf, IoVecs, Stream};
use crate::uring::timeout;

/// Scratch for the lines the proxy adds to a forwarded head: `added` bytes and the segment
/// list over (original bytes, `added`). Reused by every request; grows, never shrinks.
#[derive(Default)]
pub struct HeadScratch {
    pub added: Vec<u8>,
    pub segs: Vec<Segment>,
}

impl HeadScratch {
    fn with_capacity() -> HeadScratch {
        HeadScratch {
            added: Vec::with_capacity(256),
            segs: Vec::with_capacity(16),
        }
    }
}

/// Per-connection state reused by every request on it.
pub struct Downstream {
    pub stream: Stream,
    pub info: ConnInfo,
    /// Received, unconsumed bytes: the current request head, then its body or the next
    /// pipelined request.
    pub inb: InBuf,
    pub head: RequestHead,
    /// Response head of the current exchange (reused: its header list keeps its capacity).
    pub resp: ResponseHead,
    /// Added lines of the outgoing head (request upstream, then response downstream).
    pub scratch: HeadScratch,
    /// Proxy-generated responses.
    pub out: Vec<u8>,
    /// The current request's id, trace context and access-log fields.
    pub req: RequestMeta,
}

/// What the proxy knows of the current request besides its head: when it started, the id and
/// trace context it is forwarded with, the fields its access-log line needs.
pub struct RequestMeta {
    pub started: Instant,
    /// The generated `x-request-id` (used when the request has none).
    pub id: [u8; 32],
    pub id_len: usize,
    pub trace: Option<Trace>,
    pub capture: Capture,
    /// Method, target and authority for the request's span (`active`: a span is due).
    pub span: Capture,
}

impl RequestMeta {
    fn new() -> RequestMeta {
        RequestMeta {
            started: Instant::now(),
            id: [0; 32],
            id_len: 0,
            trace: None,
            capture: Capture::default(),
            span: Capture::default(),
        }
    }

    /// The generated request id.
    pub fn id(&self) -> &[u8] {
        &self.id[..self.id_len]
    }
}

impl Downstream {
    pub fn new(stream: Stream, info: ConnInfo) -> Downstream {
        Downstream::with_input(stream, info, InBuf::default())
    }

    /// A connection whose first bytes (after a PROXY protocol header) are already in `inb`.
    pub fn with_input(stream: Stream, info: ConnInfo, inb: InBuf) -> Downstream {
        Downstream {
            stream,
            info,
            inb,
            head: RequestHead::default(),
            resp: ResponseHead::default(),
            scratch: HeadScratch::with_capacity(),
            out: Vec::with_capacity(256),
            req: RequestMeta::new(),
        }
    }

    /// The request head (segments over `inb` and the scratch) followed by the first `tail`
    /// body bytes at `tail_at`, owning those buffers until [`Downstream::restore`].
    pub fn lend_head(&mut self, tail_at: usize, tail: usize) -> OutHead {
        OutHead {
            inb: std::mem::take(&mut self.inb),
            scratch: std::mem::take(&mut self.scratch),
            tail_at,
            tail,
        }
    }

    /// Takes back the buffers of a head that was sent (or could not be).
    pub fn restore(&mut self, h: OutHead) {
        self.inb = h.inb;
        self.scratch = h.scratch;
    }
}

/// A head to send: segments over `inb` and the scratch's added bytes, then `tail` more bytes
/// of `inb` starting at `tail_at` (body bytes that arrived with the head). Owns the buffers
/// it points into while it exists.
pub struct OutHead {
    pub inb: InBuf,
    pub scratch: HeadScratch,
    pub tail_at: usize,
    pub tail: usize,
}

impl OutHead {
    /// Builds a head over `inb` with `scratch` (the response path: the upstream's buffer).
    pub fn new(inb: InBuf, scratch: HeadScratch, tail_at: usize, tail: usize) -> OutHead {
        OutHead {
            inb,
            scratch,
            tail_at,
            tail,
        }
    }

    fn pieces(&self) -> impl Iterator<Item = &[u8]> {
        let orig = self.inb.bytes();
        let added = &self.scratch.added[..];
        let tail = orig
            .get(self.tail_at..self.tail_at + self.tail)
            .unwrap_or(&[]);
        self.scratch
            .segs
            .iter()
            .map(move |s| s.bytes(orig, added))
            .chain(std::iter::once(tail))
    }
}

// SAFETY: every piece points into the receive buffer ring or the accumulator Vec's heap memory
// (both owned through `inb`) or into `scratch.added`'s heap memory, all owned by `self`, none of
// which moves when `self` moves and none of which is mutated while `self` is borrowed.
unsafe impl IoVecs for OutHead {
    fn fill(&self, skip: usize, out: &mut [libc::iovec]) -> usize {
        fill_pieces(self.pieces(), skip, out)
    }
    fn total(&self) -> usize {
        self.pieces().map(|p| p.len()).sum()
    }
}

/// Most bytes read and discarded after an error response before closing.
const LINGER_BYTES: usize = 1 << 20;
/// Longest time spent discarding after an error response.
const LINGER_TIME: Duration = Duration::from_secs(1);
/// Longest time a proxy-generated response may take to send (a client that does not read).
const RESPOND_TIME: Duration = Duration::from_secs(10);

/// Sends a response the proxy produces itself.
pub async fn respond(ds: &mut Downstream, status: u16, body: &[u8], close: bool) {
    respond_with(ds, status, std::iter::empty(), body, close).await
}

/// [`respond`] with extra header lines.
pub async fn respond_with<'a>(
    ds: &mut Downstream,
    status: u16,
    headers: impl Iterator<Item = (&'a str, &'a str)>,
    body: &[u8],
    close: bool,
) {
    let mut out = std::mem::take(&mut ds.out);
    out.clear(); // the buffer is reused: an earlier answer on this connection is gone
    http::write_simple_response_with(status, headers, body, close, &mut out);
    if ds.head.method == http::Method::Head {
        // RFC 9110 §9.3.2: no content in a response to HEAD (the length stays announced).
        out.truncate(out.len() - body.len());
    }
    let (r, out) = ds
        .stream
        .send(out, Some(Instant::now() + RESPOND_TIME))
        .await;
    ds.out = out;
    if close && r.is_ok() {
        linger_close(ds).await;
    }
}

/// Half-closes, then reads and discards what the client still sends (bounded in bytes and
/// time), so that closing with unread input does not reset the connection before the client
/// has read our response.
async fn linger_close(ds: &mut Downstream) {
    ds.stream.shutdown_write();
    ds.inb.clear();
    let driver = ds.stream.driver().clone();
    let deadline = Instant::now() + LINGER_TIME;
    let mut seen = 0usize;
    while seen < LINGER_BYTES {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        match timeout(&driver, left, ds.stream.recv()).await {
            Ok(Ok(Some(b))) => seen += b.len(),
            _ => break,
        }
    }
}
