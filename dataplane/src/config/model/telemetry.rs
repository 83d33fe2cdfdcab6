//! The observability part of the validated configuration: `[telemetry]` (Istio standard
//! metrics, workload labels, trace context) and `[listeners.access_log]`.
//!
//! Workload labels left unset here are filled from the environment a Kubernetes pod with an
//! Istio-style injector has (`telemetry::istio::WorkloadLabels::resolve`); the config keys win.

use std::path::PathBuf;

use super::Percent;

/// `[telemetry]`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TelemetryConfig {
    /// `istio_metrics`: expose Istio's standard metrics (`istio_requests_total`, ...) on
    /// `/metrics` next to the `ringway_*` families. Default false.
    pub istio_metrics: bool,
    /// The workload this proxy runs beside (`source_*` labels when it reports as the source,
    /// `destination_*` when it reports as the destination).
    pub workload: WorkloadConfig,
    /// `trace_context`: what the proxy does with W3C `traceparent` / B3 headers.
    pub trace_context: TraceContext,
    /// `[telemetry.otlp]`: export a span per traced request to an OpenTelemetry collector.
    pub otlp: Option<OtlpConfig>,
}

/// `[telemetry.otlp]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OtlpConfig {
    /// From `endpoint = "http://IP:PORT/PATH"` (OTLP/HTTP with JSON; port default 4318).
    pub address: std::net::SocketAddr,
    /// Default `/v1/traces`.
    pub path: String,
    /// `service_name`: the resource's `service.name` (default `ringway`).
    pub service_name: String,
    /// `sample_percent`: share of sampled traces whose span is exported (default 100).
    pub sample: Percent,
}

/// `[telemetry]` workload keys; `None` = from the environment, else `unknown`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WorkloadConfig {
    /// `workload` (env `ISTIO_META_WORKLOAD_NAME`).
    pub name: Option<String>,
    /// `namespace` (env `POD_NAMESPACE`).
    pub namespace: Option<String>,
    /// `app` = canonical service (env `ISTIO_METAJSON_LABELS` `service.istio.io/canonical-name`
    /// or `app`).
    pub app: Option<String>,
    /// `version` = canonical revision (labels `service.istio.io/canonical-revision` or `version`).
    pub version: Option<String>,
    /// `principal`: this workload's SPIFFE ID (env `SERVICE_ACCOUNT` + namespace).
    pub principal: Option<String>,
    /// `cluster_id` (env `ISTIO_META_CLUSTER_ID`, default `Kubernetes`).
    pub cluster_id: Option<String>,
}

/// `trace_context` in `[telemetry]`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum TraceContext {
    /// A request carrying `traceparent` (or B3 `x-b3-traceid`) is forwarded with a new span id
    /// of this hop (the incoming one becomes the parent); a malformed `traceparent` is
    /// replaced by a new trace. Requests without trace headers are forwarded without.
    #[default]
    Propagate,
    /// As `propagate`, and a request without trace context starts a new trace.
    Start,
    /// Trace headers are forwarded untouched.
    Off,
}

/// `reporter` of a listener: which side of a call this proxy is, for Istio's labels.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Reporter {
    /// A server-side (inbound) sidecar: the local workload is the destination.
    #[default]
    Destination,
    /// A client-side (outbound) sidecar or a gateway: the local workload is the source.
    Source,
}

/// `[listeners.access_log]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessLogConfig {
    /// `path`: `"stderr"`, `"stdout"` or a file (relative to the config file's directory),
    /// opened for append.
    pub sink: LogSink,
    /// `format`: `"json"` (default) or an Envoy-style format string (`%REQ(:METHOD)%` ...).
    pub format: LogFormat,
    /// `sample_percent`: share of requests logged (default 100).
    pub sample: Percent,
    /// `buffer_bytes`: per-core buffer of lines not yet written (default 64 KiB, 4 KiB..=16 MiB);
    /// a line that finds it full is dropped and counted.
    pub buffer_bytes: usize,
}

/// Where access-log lines go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogSink {
    Stderr,
    Stdout,
    File(PathBuf),
}

/// How an access-log line is written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogFormat {
    /// One JSON object per line (the fields of docs/operations.md).
    Json,
    /// An Envoy-style format string, checked by `telemetry::access_log::Format::compile`.
    Text(String),
}
