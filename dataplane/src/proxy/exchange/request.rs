//! The request side of an exchange: the outgoing head (built once, sent by every try) and the
//! body — held whole for replay when small enough, else streamed from the client once.
//!
//! Invariant: a body is forwarded exactly as framed by the client (Content-Length bytes, or
//! the chunked encoding validated on the way); bytes past it stay in `ds.inb` for the next
//! pipelined request.

use crate::config::ForwardClientCert;
use crate::http::{self, rewrite, BodyFraming, ChunkedDecoder, RequestExtras};
use crate::pool::UpstreamConn;
use crate::transport::{SendError, Window};

use crate::telemetry::trace::{self, Trace};

use super::super::downstream::{Downstream, HeadScratch};
use super::{Exchange, Failure, TryFail, Waited};

/// The client certificate header (Envoy's name).
const XFCC: &str = "x-forwarded-client-cert";

/// How the request body is sent on each try.
pub(super) struct BodyPlan {
    /// Body bytes held in `ds.inb` right after the head (all of it when `replayable`).
    pub tail: usize,
    /// Bytes still to stream from the client after `tail` (Content-Length bodies).
    pub remaining: u64,
    /// Chunked bodies: the decoder state after `tail`.
    pub decoder: ChunkedDecoder,
    /// The whole body is in `ds.inb`: every try can send it again.
    pub replayable: bool,
}

/// Builds the outgoing head segments in `ds.scratch` (once per request; every try sends the
/// same head).
pub(super) fn build_head(ex: &Exchange<'_>, ds: &mut Downstream) {
    let hp = ex.route.headers();
    if let Some(hp) = hp {
        let names = hp
            .request_remove
            .iter()
            .map(String::as_str)
            .chain(hp.request_set.iter().map(|(n, _)| n.as_str()));
        rewrite::suppress(&mut ds.head.headers, ds.inb.bytes(), names);
    }
    // x-forwarded-client-cert of a TLS listener (Envoy's forward_client_cert_details).
    let tls = !ds.stream.is_plaintext();
    let xfcc_mode = ex.forward_client_cert;
    let xfcc_set = match xfcc_mode {
        Some(ForwardClientCert::Sanitize | ForwardClientCert::SanitizeSet) => {
            rewrite::suppress(&mut ds.head.headers, ds.inb.bytes(), std::iter::once(XFCC));
            xfcc_mode == Some(ForwardClientCert::SanitizeSet)
        }
        Some(ForwardClientCert::AppendForward) => true,
        Some(ForwardClientCert::ForwardOnly) | None => false,
    };
    let trace = ds.req.trace;
    if let Some(t) = &trace {
        rewrite::suppress(&mut ds.head.headers, ds.inb.bytes(), t.replaced());
    }
    let scratch = &mut ds.scratch;
    http::request_segments(
        &ds.head,
        ds.inb.bytes(),
        &RequestExtras {
            client_ip: ds.info.peer.ip(),
            proto: if tls { "https" } else { "http" },
            request_id: Some(ds.req.id()),
        },
        &mut scratch.added,
        &mut scratch.segs,
    );
    if let (true, Some(peer)) = (xfcc_set, ds.stream.peer()) {
        rewrite::append_fields(
            std::iter::once((XFCC, &*peer.xfcc)),
            &mut scratch.added,
            &mut scratch.segs,
        );
    }
    if let Some(t) = &trace {
        append_trace(t, scratch);
    }
    if let Some(hp) = hp {
        let lines = hp
            .request_set
            .iter()
            .chain(hp.request_add.iter())
            .map(|(n, v)| (n.as_str(), v.as_str()));
        rewrite::append_fields(lines, &mut scratch.added, &mut scratch.segs);
        if let (Some(new), Some(prefix)) = (&hp.path_prefix_rewrite, ex.route.path_prefix) {
            rewrite::rewrite_path_prefix(
                &ds.head,
                ds.inb.bytes(),
                prefix,
                new,
                &mut scratch.added,
                &mut scratch.segs,
            );
        }
    }
}

/// The trace headers of this hop (see `telemetry::trace`).
fn append_trace(t: &Trace, scratch: &mut HeadScratch) {
    let mut tp = [0u8; 55];
    let mut lines: [(&str, &str); 5] = [("", ""); 5];
    let mut n = 0;
    if t.w3c {
        lines[n] = (trace::TRACEPARENT, t.traceparent(&mut tp));
        n += 1;
    }
    if t.b3 {
        lines[n] = (trace::B3_TRACE, t.b3_trace_id());
        lines[n + 1] = (trace::B3_SPAN, t.span_str());
        lines[n + 2] = (trace::B3_SAMPLED, if t.sampled { "1" } else { "0" });
        n += 3;
        if let Some(p) = t.parent_str() {
            lines[n] = (trace::B3_PARENT, p);
            n += 1;
        }
    }
    rewrite::append_fields(
        lines[..n].iter().copied(),
        &mut scratch.added,
        &mut scratch.segs,
    );
}

/// Reads one more buffer of the client's body into `ds.inb`.
async fn read_more(ex: &Exchange<'_>, ds: &mut Downstream) -> Result<(), Failure> {
    match ex.recv_until(&mut ds.stream, ex.wait_end(None)).await {
        Ok(Some(b)) => {
            ds.inb.push(b);
            Ok(())
        }
        Ok(None) | Err(Waited::Failed) => Err(Failure::Downstream),
        Err(Waited::Expired) if ex.expired() => Err(Failure::Timeout),
        Err(Waited::Expired) => Err(Failure::RequestBodyStalled),
    }
}

/// Decides how the body goes out; with a retry policy, gathers a small enough body whole
/// (up to `replay_buffer_bytes`) so that every try can send it.
pub(super) async fn plan_body(
    ex: &Exchange<'_>,
    ds: &mut Downstream,
    head_len: usize,
) -> Result<BodyPlan, Failure> {
    let max_body = ex.limits.max_request_body_bytes;
    let replay_max = ex
        .route
        .policy
        .and_then(|p| p.retry.as_ref())
        .map_or(0, |r| r.replay_buffer_bytes);
    let mut decoder = ChunkedDecoder::new();
    match ds.head.framing {
        BodyFraming::None => Ok(BodyPlan {
            tail: 0,
            remaining: 0,
            decoder,
            replayable: true,
        }),
        BodyFraming::Length(n) => {
            // Gather the whole body when it is small enough to replay.
            if n <= replay_max {
                while ((ds.inb.len() - head_len) as u64) < n {
                    read_more(ex, ds).await?;
                }
            }
            let avail = (ds.inb.len() - head_len) as u64;
            let tail = n.min(avail);
            Ok(BodyPlan {
                tail: tail as usize,
                remaining: n - tail,
                decoder,
                replayable: tail == n,
            })
        }
        BodyFraming::Chunked => {
            let mut fed = 0usize;
            loop {
                let body = ds.inb.bytes().get(head_len + fed..).unwrap_or(&[]);
                fed += decoder.feed(body).map_err(|_| Failure::BadRequestBody)?;
                if max_body > 0 && decoder.data_bytes() > max_body {
                    return Err(Failure::BodyTooLarge);
                }
                if decoder.is_done() || (fed as u64) >= replay_max {
                    break;
                }
                read_more(ex, ds).await?;
            }
            let replayable = decoder.is_done();
            Ok(BodyPlan {
                tail: fed,
                remaining: 0,
                decoder,
                replayable,
            })
        }
    }
}

/// Streams the rest of a request body that is not held whole (Content-Length or chunked).
/// The bytes sent are gone: failures are fatal for the exchange.
pub(super) async fn stream_body(
    ex: &Exchange<'_>,
    ds: &mut Downstream,
    up: &mut UpstreamConn,
    body: &mut BodyPlan,
) -> Result<(), TryFail> {
    let max_body = ex.limits.max_request_body_bytes;
    let fatal = TryFail::Fatal;
    let chunked = ds.head.framing == BodyFraming::Chunked;
    loop {
        if (chunked && body.decoder.is_done()) || (!chunked && body.remaining == 0) {
            return Ok(());
        }
        if ds.inb.is_empty() {
            read_more(ex, ds).await.map_err(fatal)?;
        }
        let take = if chunked {
            let t = body
                .decoder
                .feed(ds.inb.bytes())
                .map_err(|_| fatal(Failure::BadRequestBody))?;
            if max_body > 0 && body.decoder.data_bytes() > max_body {
                return Err(fatal(Failure::BodyTooLarge));
            }
            t
        } else {
            let t = (body.remaining.min(ds.inb.len() as u64)) as usize;
            body.remaining -= t as u64;
            t
        };
        let win = Window {
            inb: std::mem::take(&mut ds.inb),
            len: take,
        };
        let (sent, win) = up.stream.send(win, Some(ex.wait_end(None))).await;
        ds.inb = win.inb;
        match sent {
            Ok(()) => ds.inb.consume(take),
            Err(SendError::TimedOut) => return Err(fatal(ex.expiry())),
            Err(SendError::Io(_)) => return Err(fatal(Failure::UpstreamReset)),
        }
    }
}
