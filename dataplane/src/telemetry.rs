//! Telemetry: per-core metrics, their cross-core merge, and the Prometheus text rendering.
//!
//! - [`shard`]: [`MetricsShard`], owned by one worker core (`Cell`/`RefCell`, no atomics, no
//!   locks). Every listener and cluster is an index fixed at construction, so recording is array
//!   indexing: no hashing, no formatting, no allocation.
//! - [`snapshot`]: [`MetricsSnapshot`], plain owned `Send` data copied out of a shard on the admin
//!   path; snapshots from several cores (or several config generations) merge by name.
//! - [`prometheus`]: [`render_prometheus`], the text exposition format 0.0.4.
//!
//! Invariant: nothing here is called with an await in between a `RefCell` borrow, and nothing on
//! the recording side can panic on a bad index (out-of-range indices are ignored in release and
//! caught by `debug_assert!` in tests).
//!
//! - [`istio`]: Istio's standard metrics (per-core series, merged at scrape).
//! - [`access_log`]: access-log formats, per-core buffers and the writer thread.
//! - [`trace`]: W3C trace context and B3 propagation.
//! - [`otlp`]: span export over OTLP/HTTP from a background thread.
//!
//! The admin server lives elsewhere (`admin`).

pub mod access_log;
pub mod istio;
pub mod otlp;
pub mod prometheus;
pub mod security;
pub mod shard;
pub mod snapshot;
pub mod trace;

pub use prometheus::{render_prometheus, PROMETHEUS_CONTENT_TYPE};
pub use security::{CertExpiry, SecurityFamily};
pub use shard::MetricsShard;
pub use snapshot::{ClusterMetrics, ListenerMetrics, MetricsSnapshot};

use std::time::Duration;

/// Lowest latency the histograms discern: 1 µs.
pub const LATENCY_LOWEST_US: u64 = 1;
/// Highest latency the histograms hold: 60 s; longer latencies are recorded as 60 s.
pub const LATENCY_HIGHEST_US: u64 = 60_000_000;
/// Significant decimal digits of the latency histograms.
pub const LATENCY_SIGFIG: u8 = 3;

/// Upper bounds of the rendered Prometheus latency buckets, in µs, with their `le` label text.
/// The `+Inf` bucket follows them.
pub const LATENCY_BUCKETS: [(u64, &str); 14] = [
    (500, "0.0005"),
    (1_000, "0.001"),
    (2_500, "0.0025"),
    (5_000, "0.005"),
    (10_000, "0.01"),
    (25_000, "0.025"),
    (50_000, "0.05"),
    (100_000, "0.1"),
    (250_000, "0.25"),
    (500_000, "0.5"),
    (1_000_000, "1"),
    (2_500_000, "2.5"),
    (5_000_000, "5"),
    (10_000_000, "10"),
];

/// A new, empty upstream latency histogram (µs, 1 µs .. 60 s, 3 significant digits).
///
/// Its whole count array is allocated here, so recording never allocates.
pub fn new_latency_histogram() -> hdrhistogram::Histogram<u64> {
    // The bounds are constants that satisfy `new_with_bounds`' contract (low >= 1,
    // high >= 2 * low, sigfig <= 5); `latency_histogram_bounds_are_valid` checks it.
    #[allow(clippy::expect_used)]
    hdrhistogram::Histogram::new_with_bounds(LATENCY_LOWEST_US, LATENCY_HIGHEST_US, LATENCY_SIGFIG)
        .expect("constant histogram bounds are valid")
}

/// Clamp a latency into whole µs for the histograms (saturating at `u64::MAX`).
pub(crate) fn duration_to_us(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

/// The class of an HTTP status code, as counted and rendered (`code_class` label).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum StatusClass {
    Informational,
    Success,
    Redirection,
    ClientError,
    ServerError,
    /// A code outside 100..=599.
    Other,
}

impl StatusClass {
    /// Number of classes; the width of the per-(listener, cluster) request count array.
    pub const COUNT: usize = 6;
    /// All classes, in index order.
    pub const ALL: [StatusClass; Self::COUNT] = [
        StatusClass::Informational,
        StatusClass::Success,
        StatusClass::Redirection,
        StatusClass::ClientError,
        StatusClass::ServerError,
        StatusClass::Other,
    ];

    /// The class of `status`.
    pub const fn of(status: u16) -> StatusClass {
        match status {
            100..=199 => StatusClass::Informational,
            200..=299 => StatusClass::Success,
            300..=399 => StatusClass::Redirection,
            400..=499 => StatusClass::ClientError,
            500..=599 => StatusClass::ServerError,
            _ => StatusClass::Other,
        }
    }

    /// Index into [`StatusClass::ALL`].
    pub const fn index(self) -> usize {
        self as usize
    }

    /// The `code_class` label value.
    pub const fn as_str(self) -> &'static str {
        match self {
            StatusClass::Informational => "1xx",
            StatusClass::Success => "2xx",
            StatusClass::Redirection => "3xx",
            StatusClass::ClientError => "4xx",
            StatusClass::ServerError => "5xx",
            StatusClass::Other => "other",
        }
    }
}

/// Why the proxy failed or refused a request; counted in `ringway_proxy_errors_total{kind}`.
///
/// What a traffic policy did to a request or an endpoint (issue 4), counted per cluster.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PolicyEvent {
    Retry,
    RetryBudgetExhausted,
    BreakerRejectedMaxRequests,
    BreakerRejectedMaxPending,
    BreakerRejectedMaxConnections,
    OutlierEjection,
    EndpointUnhealthy,
    RateLimited,
    FaultDelayInjected,
    FaultAbortInjected,
    Mirrored,
    MirrorFailed,
}

impl PolicyEvent {
    pub const COUNT: usize = 12;
    pub const ALL: [PolicyEvent; Self::COUNT] = [
        PolicyEvent::Retry,
        PolicyEvent::RetryBudgetExhausted,
        PolicyEvent::BreakerRejectedMaxRequests,
        PolicyEvent::BreakerRejectedMaxPending,
        PolicyEvent::BreakerRejectedMaxConnections,
        PolicyEvent::OutlierEjection,
        PolicyEvent::EndpointUnhealthy,
        PolicyEvent::RateLimited,
        PolicyEvent::FaultDelayInjected,
        PolicyEvent::FaultAbortInjected,
        PolicyEvent::Mirrored,
        PolicyEvent::MirrorFailed,
    ];

    pub const fn index(self) -> usize {
        self as usize
    }

    /// The `event` label value.
    pub const fn as_str(self) -> &'static str {
        match self {
            PolicyEvent::Retry => "retry",
            PolicyEvent::RetryBudgetExhausted => "retry_budget_exhausted",
            PolicyEvent::BreakerRejectedMaxRequests => "breaker_max_requests",
            PolicyEvent::BreakerRejectedMaxPending => "breaker_max_pending_requests",
            PolicyEvent::BreakerRejectedMaxConnections => "breaker_max_connections",
            PolicyEvent::OutlierEjection => "outlier_ejection",
            PolicyEvent::EndpointUnhealthy => "endpoint_unhealthy",
            PolicyEvent::RateLimited => "rate_limited",
            PolicyEvent::FaultDelayInjected => "fault_delay",
            PolicyEvent::FaultAbortInjected => "fault_abort",
            PolicyEvent::Mirrored => "mirrored",
            PolicyEvent::MirrorFailed => "mirror_failed",
        }
    }
}

/// A fixed set so that counting is an array index. The proxy's own error type maps onto it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// The downstream request head or body was malformed or over a limit.
    BadRequest,
    /// The downstream request head did not arrive in time.
    HeadTimeout,
    /// A request or response body made no progress for the listener's `stream_idle_timeout`.
    StreamIdleTimeout,
    /// The downstream peer closed or reset mid-request.
    DownstreamReset,
    /// No route matched the request.
    NoRoute,
    /// The chosen cluster had no healthy endpoint.
    NoHealthyEndpoint,
    /// Connecting to the upstream failed (refused, unreachable, connect timeout).
    UpstreamConnect,
    /// The upstream closed or reset the connection before a complete response.
    UpstreamReset,
    /// The upstream did not answer in time.
    UpstreamTimeout,
    /// The upstream response was malformed or over a limit.
    BadResponse,
    /// The request was refused by a rate limit.
    RateLimited,
    /// The request was refused by an open circuit breaker or a full pool.
    Overloaded,
    /// A broken invariant inside the proxy.
    Internal,
    /// A connection without the PROXY protocol header its listener requires, or a malformed one.
    ProxyProtocol,
    /// An intercepted connection whose original destination is this proxy itself.
    RedirectLoop,
}

impl ErrorKind {
    /// Number of kinds.
    pub const COUNT: usize = 15;
    /// All kinds, in index order.
    pub const ALL: [ErrorKind; Self::COUNT] = [
        ErrorKind::BadRequest,
        ErrorKind::HeadTimeout,
        ErrorKind::StreamIdleTimeout,
        ErrorKind::DownstreamReset,
        ErrorKind::NoRoute,
        ErrorKind::NoHealthyEndpoint,
        ErrorKind::UpstreamConnect,
        ErrorKind::UpstreamReset,
        ErrorKind::UpstreamTimeout,
        ErrorKind::BadResponse,
        ErrorKind::RateLimited,
        ErrorKind::Overloaded,
        ErrorKind::Internal,
        ErrorKind::ProxyProtocol,
        ErrorKind::RedirectLoop,
    ];

    /// Index into [`ErrorKind::ALL`].
    pub const fn index(self) -> usize {
        self as usize
    }

    /// The `kind` label value.
    pub const fn as_str(self) -> &'static str {
        match self {
            ErrorKind::BadRequest => "bad_request",
            ErrorKind::HeadTimeout => "head_timeout",
            ErrorKind::StreamIdleTimeout => "stream_idle_timeout",
            ErrorKind::DownstreamReset => "downstream_reset",
            ErrorKind::NoRoute => "no_route",
            ErrorKind::NoHealthyEndpoint => "no_healthy_endpoint",
            ErrorKind::UpstreamConnect => "upstream_connect",
            ErrorKind::UpstreamReset => "upstream_reset",
            ErrorKind::UpstreamTimeout => "upstream_timeout",
            ErrorKind::BadResponse => "bad_response",
            ErrorKind::RateLimited => "rate_limited",
            ErrorKind::Overloaded => "overloaded",
            ErrorKind::Internal => "internal",
            ErrorKind::ProxyProtocol => "proxy_protocol",
            ErrorKind::RedirectLoop => "redirect_loop",
        }
    }
}

#[cfg(test)]
mod tests;
