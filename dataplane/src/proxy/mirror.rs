//! Traffic mirroring (shadowing): a copy of a sampled request goes to another cluster, fire and
//! forget. The shadow's response is read and discarded; it never delays or fails the primary.
//!
//! Design: the request (head with `Host` suffixed `-shadow`, as Envoy does, plus a body that
//! arrived with the head) is copied into a recycled buffer and queued on the worker's bounded
//! `MirrorQueue`; a few long-lived tasks per worker send queued copies through the upstream
//! path (pick, connect: breaker and metrics included). A full queue drops the copy (counted),
//! so a slow shadow cluster can never build up memory or work on the primary path. Steady
//! state allocates nothing: buffers and queue slots are reused.
//!
//! Requests whose body has not fully arrived with the head are not mirrored (the primary
//! streams its body; holding it for the shadow would cost memory and latency).

use std::rc::Rc;
use std::time::Duration;

use crate::http::{
    self, BodyFraming, HeadLimits, HeadView, Method, Parsed, RequestHead, RequestView,
    ResponseFraming, ResponseHead,
};
use crate::telemetry::PolicyEvent;
use crate::transport::InBuf;
use crate::upstream::{self, Cluster, PickRequest};
use crate::uring::timeout;
use crate::worker::{MirrorJob, View, Worker};

use super::downstream::Downstream;

/// Tasks sending copies, per worker.
pub const SENDERS: usize = 4;
/// Longest a shadow exchange may take, connect to last response byte.
pub const SHADOW_TIMEOUT: Duration = Duration::from_secs(5);

/// Queues a copy of the request for the shadow cluster if its body is already here.
pub fn mirror_request(w: &Worker, view: &View, ds: &Downstream, head_len: usize, cluster: usize) {
    let buf = ds.inb.bytes();
    let failed = || {
        w.metrics
            .policy_event(Some(cluster), PolicyEvent::MirrorFailed)
    };
    let body = match ds.head.framing {
        BodyFraming::None => &[][..],
        BodyFraming::Length(n) => {
            let end = usize::try_from(n)
                .ok()
                .and_then(|n| head_len.checked_add(n));
            match end.and_then(|end| buf.get(head_len..end)) {
                Some(b) => b,
                None => return failed(),
            }
        }
        BodyFraming::Chunked => {
            let mut d = http::ChunkedDecoder::new();
            let rest = buf.get(head_len..).unwrap_or(&[]);
            match d.feed(rest) {
                Ok(n) if d.is_done() => &rest[..n],
                _ => return failed(),
            }
        }
    };
    if view.clusters.get(cluster).is_none() {
        return;
    }
    let mut copy = w.mirror.buffer();
    build_copy(&ds.head, buf, body, &mut copy);
    if !w.mirror.push(MirrorJob {
        cluster,
        bytes: copy,
    }) {
        failed();
    }
}

/// Writes the copy of a request: its forwarded head with `Host` (or the absolute-form
/// authority's host) suffixed `-shadow`, then `body`.
pub fn build_copy(head: &RequestHead, buf: &[u8], body: &[u8], out: &mut Vec<u8>) {
    http::write_request_line(head, buf, out);
    for f in head.headers.iter().filter(|f| f.forward) {
        if !f.name.get(buf).eq_ignore_ascii_case(b"host") {
            out.extend_from_slice(f.line.get(buf));
        }
    }
    let view = HeadView { head, buf };
    let host = view.host().unwrap_or_default();
    // Insert before a port, not inside an IPv6 literal.
    let port_at = match host.iter().rposition(|&b| b == b':') {
        Some(i) if !host[i..].contains(&b']') => i,
        _ => host.len(),
    };
    out.extend_from_slice(b"host: ");
    out.extend_from_slice(&host[..port_at]);
    out.extend_from_slice(b"-shadow");
    out.extend_from_slice(&host[port_at..]);
    out.extend_from_slice(b"\r\n");
    if let (true, Some(n)) = (head.content_length_line, head.content_length) {
        let mut d = crate::base::decimal::decimal_buf();
        out.extend_from_slice(b"content-length: ");
        out.extend_from_slice(crate::base::decimal::fmt_u64(&mut d, n).as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"connection: close\r\n\r\n");
    out.extend_from_slice(body);
}

/// Starts the worker's sender tasks (once per worker).
pub fn spawn_senders(w: &Rc<Worker>) {
    for _ in 0..SENDERS {
        let w = w.clone();
        glommio::spawn_local(async move {
            let mut inb = InBuf::default();
            let mut resp = ResponseHead::default();
            loop {
                let job = w.mirror.next().await;
                let cluster = job.cluster;
                let ok = timeout(
                    &w.driver,
                    SHADOW_TIMEOUT,
                    send_one(&w, job, &mut inb, &mut resp),
                )
                .await
                .unwrap_or(false);
                inb.clear();
                w.metrics.policy_event(
                    Some(cluster),
                    if ok {
                        PolicyEvent::Mirrored
                    } else {
                        PolicyEvent::MirrorFailed
                    },
                );
            }
        })
        .detach();
    }
}

/// Sends one copy on a fresh connection and reads the response to its end (discarded).
async fn send_one(
    w: &Rc<Worker>,
    job: MirrorJob,
    inb: &mut InBuf,
    resp: &mut ResponseHead,
) -> bool {
    let view = w.view();
    let Some(cluster) = Cluster::of(&view, job.cluster) else {
        w.mirror.recycle(job.bytes);
        return false;
    };
    let Some(endpoint) = upstream::pick(cluster, &PickRequest::default()) else {
        w.mirror.recycle(job.bytes);
        return false;
    };
    let key = cluster.pool_key(endpoint.addr(), None);
    let mut up = match upstream::connect(w, cluster, &key).await {
        Ok(c) => c,
        Err(_) => {
            w.mirror.recycle(job.bytes);
            return false;
        }
    };
    let (r, bytes) = up.stream.send(job.bytes, None).await;
    w.mirror.recycle(bytes);
    if r.is_err() {
        return false;
    }
    // Read the response head, then drain until the upstream closes (we sent close).
    loop {
        match http::parse_response_head(inb.bytes(), &HeadLimits::default(), Method::Get, resp) {
            Ok(Parsed::Complete(_)) => break,
            Ok(Parsed::Partial) => {}
            Err(_) => return false,
        }
        match up.stream.recv().await {
            Ok(Some(b)) => inb.push(b),
            _ => return false,
        }
    }
    if resp.framing != ResponseFraming::None {
        inb.clear();
        while let Ok(Some(_)) = up.stream.recv().await {}
    }
    true
}
