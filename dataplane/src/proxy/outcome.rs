//! The one place a request's result is recorded: [`record`] takes a [`RequestOutcome`] — the
//! status the client got, the cluster that served it, the upstream latency, the proxy error
//! that caused it — and counts it (request by listener, cluster and status class; the error
//! kind; the latency histogram) together with the bytes the connection moved meanwhile.
//! Access logs and the Istio-style metrics hang off here too.
//!
//! Invariant: every request read is recorded exactly once, whatever path served it.

use std::time::Duration;

use crate::telemetry::ErrorKind;
use crate::worker::Worker;

use super::downstream::Downstream;

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
}

impl RequestOutcome {
    /// An upstream response was relayed.
    pub fn relayed(status: u16, cluster: usize, latency: Option<Duration>) -> RequestOutcome {
        RequestOutcome {
            status,
            cluster: Some(cluster),
            upstream_latency: latency,
            error: None,
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
        }
    }

    /// The request failed with `kind`; `status` was answered (0: the connection closed).
    pub fn error(status: u16, kind: ErrorKind, cluster: Option<usize>) -> RequestOutcome {
        RequestOutcome {
            status,
            cluster,
            upstream_latency: None,
            error: Some(kind),
        }
    }
}

/// Records `o` for a request on `listener` (and the bytes `ds` moved since the last record).
pub fn record(w: &Worker, listener: usize, ds: &Downstream, o: &RequestOutcome) {
    if let Some(kind) = o.error {
        w.metrics.proxy_error(kind);
    }
    w.metrics
        .request_done(listener, o.cluster, o.status, o.upstream_latency);
    record_bytes(w, listener, ds);
}

/// Counts the bytes the client connection received and sent since the last call.
pub fn record_bytes(w: &Worker, listener: usize, ds: &Downstream) {
    let (received, sent) = ds.stream.take_byte_counts();
    if received > 0 {
        w.metrics.bytes_received(listener, received);
    }
    if sent > 0 {
        w.metrics.bytes_sent(listener, sent);
    }
}
