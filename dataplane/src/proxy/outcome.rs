//! The one place a request's result is recorded: [`record`] takes a [`RequestOutcome`] — the
//! status the client got, the cluster that served it, the upstream latency, the proxy error
//! that caused it — and counts it (request by listener, cluster and status class; the error
//! kind; the latency histogram) together with the bytes the connection moved meanwhile.
//! Access logs and the Istio-style metrics hang off here too.
//!
//! [`begin`] prepares what the record will need while the head is still buffered: the start
//! time, the request id, the trace context, the access-log fields.
//!
//! Invariant: every request read is recorded exactly once, whatever path served it.

use std::net::SocketAddr;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::telemetry::access_log::{Entry, MAX_CAPTURED};
use crate::telemetry::istio::{response_flags, HttpSample, Peer};
use crate::telemetry::otlp::{self, write_span, SpanFields};
use crate::telemetry::{duration_to_us, trace, ErrorKind};
use crate::worker::{View, Worker};

use super::downstream::Downstream;

/// A request head is complete: note its start, give it an id (if it has none) and its trace
/// context, and copy what its access-log line needs (if it is sampled in).
pub fn begin(w: &Worker, view: &View, listener: usize, ds: &mut Downstream) {
    let log = view.access_logs.get(listener).and_then(Option::as_ref);
    let otlp = view.config.telemetry.otlp.as_ref();
    // The start time is read only when something will use it.
    if view.istio.is_some() || log.is_some() || otlp.is_some() {
        ds.req.started = Instant::now();
    }
    if ds.head.request_id.is_none() {
        ds.req.id_len = w.next_request_id(&mut ds.req.id);
    }
    ds.req.trace = trace::of_request(
        view.config.telemetry.trace_context,
        &ds.head,
        ds.inb.bytes(),
        &mut w.rng.borrow_mut(),
    );
    ds.req.span.active = false;
    if let (Some(o), Some(t)) = (otlp, &ds.req.trace) {
        if t.sampled && sampled(w, o.sample) {
            ds.req
                .span
                .take(&SPAN_FIELDS[..], &ds.head, ds.inb.bytes(), &[]);
        }
    }
    ds.req.capture.active = false;
    if let Some(log) = log {
        if sampled(w, log.sample) {
            let buf = ds.inb.bytes();
            let id = match ds.head.request_id {
                Some(s) => s.get(buf),
                None => &ds.req.id[..ds.req.id_len],
            };
            ds.req.capture.take(log.headers(), &ds.head, buf, id);
        }
    }
}

/// A request failed before its head was complete: it has no fields to log, but a line.
pub fn begin_unparsed(w: &Worker, view: &View, listener: usize, ds: &mut Downstream) {
    ds.req.started = Instant::now();
    ds.req.trace = None;
    ds.req.span.active = false;
    ds.req.capture.active = false;
    if let Some(Some(log)) = view.access_logs.get(listener) {
        if sampled(w, log.sample) {
            ds.req.capture.take(&[], &ds.head, &[], &[]);
        }
    }
}

/// What a span captures from the head.
static SPAN_FIELDS: std::sync::LazyLock<[String; 3]> =
    std::sync::LazyLock::new(|| [":method".into(), ":path".into(), ":authority".into()]);

fn sampled(w: &Worker, p: crate::config::Percent) -> bool {
    crate::policy::sample::hit(p, &mut w.rng.borrow_mut())
}

/// What one request came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestOutcome {
    /// The status the client received (0: none, the connection was closed).
    pub status: u16,
    pub cluster: Option<usize>,
    /// Request sent to response head received (relayed responses only).
    pub upstream_latency: Option<Duration>,
    /// Why the proxy answered (or closed) instead of relaying a response.
    pub error: Option<ErrorKind>,
    /// The endpoint of the try whose response was relayed (or that failed last).
    pub upstream: Option<SocketAddr>,
}

impl RequestOutcome {
    /// An upstream response was relayed.
    pub fn relayed(status: u16, cluster: usize, latency: Option<Duration>) -> RequestOutcome {
        RequestOutcome {
            status,
            cluster: Some(cluster),
            upstream_latency: latency,
            error: None,
            upstream: None,
        }
    }

    /// The proxy answered by policy or configuration (direct route, rate limit, fault).
    pub fn answered(
        status: u16,
        cluster: Option<usize>,
        error: Option<ErrorKind>,
    ) -> RequestOutcome {
        RequestOutcome {
            status,
            cluster,
            upstream_latency: None,
            error,
            upstream: None,
        }
    }

    /// The request failed with `kind`; `status` was answered (0: the connection closed).
    pub fn error(status: u16, kind: ErrorKind, cluster: Option<usize>) -> RequestOutcome {
        RequestOutcome {
            status,
            cluster,
            upstream_latency: None,
            error: Some(kind),
            upstream: None,
        }
    }
}

/// Records `o` for a request on `listener` (and the bytes `ds` moved since the last record):
/// the `ringway_*` counters always; Istio's series and the access-log line when the view has
/// them on.
pub fn record(w: &Worker, listener: usize, ds: &Downstream, o: &RequestOutcome) {
    if let Some(kind) = o.error {
        w.metrics.proxy_error(kind);
    }
    w.metrics
        .request_done(listener, o.cluster, o.status, o.upstream_latency);
    let (received, sent) = record_bytes(w, listener, ds);
    let view = w.view.borrow();
    let log = view.access_logs.get(listener).and_then(Option::as_ref);
    if view.istio.is_none() && log.is_none() && !ds.req.span.active {
        return;
    }
    let duration_us = duration_to_us(ds.req.started.elapsed());
    let peer = ds.stream.peer().and_then(|p| p.identity.as_deref());
    if let Some(labels) = &view.istio {
        let sample = HttpSample {
            listener,
            cluster: o.cluster,
            status: o.status,
            error: o.error,
            peer: Peer { identity: peer },
            duration_us,
            request_bytes: received,
            response_bytes: sent,
        };
        w.metrics.istio.request(labels, &sample);
    }
    let logged = log.filter(|_| ds.req.capture.active);
    if !ds.req.span.active && logged.is_none() {
        return;
    }
    // One wall-clock read serves the span and the log line.
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    if ds.req.span.active {
        export_span(w, &view, listener, ds, o, duration_us, now);
    }
    let Some(log) = logged else { return };
    let Some(core) = w.core_log() else { return };
    let mut values: [&[u8]; MAX_CAPTURED] = [&[]; MAX_CAPTURED];
    let n = ds.req.capture.values(&mut values);
    let now_us = duration_to_us(now);
    let entry = Entry {
        start_unix_us: now_us.saturating_sub(duration_us),
        protocol: if ds.head.version_minor == 0 {
            "HTTP/1.0"
        } else {
            "HTTP/1.1"
        },
        status: o.status,
        flags: response_flags(o.error),
        bytes_received: received,
        bytes_sent: sent,
        duration_us,
        upstream_us: o.upstream_latency.map(duration_to_us),
        upstream_host: o.upstream,
        cluster: o
            .cluster
            .and_then(|c| view.config.clusters.get(c))
            .map(|c| c.name.as_str()),
        listener: view
            .config
            .listeners
            .get(listener)
            .map_or("", |l| l.name.as_str()),
        downstream: ds.info.peer,
        peer,
        trace_id: ds.req.trace.as_ref().map_or(&[], |t| &t.trace_id[..]),
        headers: &values[..n],
    };
    let mut line = w.log_line.borrow_mut();
    log.line(&entry, &mut line);
    core.push(log.sink, log.buffer_bytes, &line);
}

/// Writes the request's span into the core's span buffers.
fn export_span(
    w: &Worker,
    view: &View,
    listener: usize,
    ds: &Downstream,
    o: &RequestOutcome,
    duration_us: u64,
    now: Duration,
) {
    let (Some(t), Some(core)) = (&ds.req.trace, w.core_spans()) else {
        return;
    };
    let mut values: [&[u8]; MAX_CAPTURED] = [&[]; MAX_CAPTURED];
    ds.req.span.values(&mut values);
    let end = u64::try_from(now.as_nanos()).unwrap_or(u64::MAX);
    let fields = SpanFields {
        trace_id: &t.trace_id,
        span_id: &t.span_id,
        parent: t.parent.as_ref(),
        start_unix_ns: end.saturating_sub(duration_us.saturating_mul(1000)),
        end_unix_ns: end,
        method: values[0],
        target: values[1],
        authority: values[2],
        status: o.status,
        flags: response_flags(o.error),
        listener: view
            .config
            .listeners
            .get(listener)
            .map_or("", |l| l.name.as_str()),
        cluster: o
            .cluster
            .and_then(|c| view.config.clusters.get(c))
            .map(|c| c.name.as_str()),
        upstream: o.upstream,
        client: ds.info.peer,
    };
    let mut line = w.log_line.borrow_mut();
    line.clear();
    write_span(&fields, &mut line);
    core.push(0, otlp::BUFFER_BYTES, &line);
}

/// Counts the bytes the client connection received and sent since the last call; returns them.
pub fn record_bytes(w: &Worker, listener: usize, ds: &Downstream) -> (u64, u64) {
    let (received, sent) = ds.stream.take_byte_counts();
    if received > 0 {
        w.metrics.bytes_received(listener, received);
    }
    if sent > 0 {
        w.metrics.bytes_sent(listener, sent);
    }
    (received, sent)
}
