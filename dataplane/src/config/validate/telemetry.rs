//! Validation of the observability keys: `[telemetry]` (Istio standard metrics, workload
//! labels, trace context), a listener's `reporter` and `[listeners.access_log]`, and a
//! cluster's `service`.
//!
//! Invariants of the output: every label value (`workload`, `namespace`, `app`, `version`,
//! `principal`, `cluster_id`, `service`) is non-empty and free of control characters (they
//! become Prometheus label values); an access-log file path is non-empty, names no directory
//! and is kept as written (made absolute by `Config::resolve_paths`; no file is opened here);
//! a text format compiles (`telemetry::access_log::Format::compile`).

use std::path::PathBuf;

use super::super::model::*;
use super::super::raw::*;
use super::Checker;

/// Default of `buffer_bytes`: 64 KiB per core.
pub const DEFAULT_ACCESS_LOG_BUFFER: i64 = 64 * 1024;
/// Bounds of `buffer_bytes`: 4 KiB to 16 MiB.
pub const MIN_ACCESS_LOG_BUFFER: i64 = 4 * 1024;
pub const MAX_ACCESS_LOG_BUFFER: i64 = 16 * 1024 * 1024;

/// `[telemetry]`; the defaults when the table is absent.
pub(super) fn telemetry(c: &mut Checker, raw: Option<&RawTelemetry>) -> TelemetryConfig {
    let Some(t) = raw else {
        return TelemetryConfig::default();
    };
    let p = "telemetry";
    TelemetryConfig {
        istio_metrics: t.istio_metrics.as_ref().is_some_and(|b| *b.get_ref()),
        workload: WorkloadConfig {
            name: label(c, &t.workload, &format!("{p}.workload")),
            namespace: label(c, &t.namespace, &format!("{p}.namespace")),
            app: label(c, &t.app, &format!("{p}.app")),
            version: label(c, &t.version, &format!("{p}.version")),
            principal: label(c, &t.principal, &format!("{p}.principal")),
            cluster_id: label(c, &t.cluster_id, &format!("{p}.cluster_id")),
        },
        trace_context: trace_context(c, &t.trace_context, p),
    }
}

/// A listener's `reporter` (`path` = `listeners[i]`).
pub(super) fn reporter(c: &mut Checker, raw: &Option<Text>, path: &str) -> Reporter {
    let Some(r) = raw else {
        return Reporter::Destination;
    };
    match r.get_ref().as_str() {
        "destination" => Reporter::Destination,
        "source" => Reporter::Source,
        other => {
            c.error(
                r.span(),
                &format!("{path}.reporter"),
                format!(
                    "unknown reporter {other:?}; expected \"destination\" (an inbound sidecar: the local workload is called) or \"source\" (an outbound sidecar or a gateway: the local workload calls)"
                ),
            );
            Reporter::Destination
        }
    }
}

/// `[listeners.access_log]` at `path` (`listeners[i].access_log`).
pub(super) fn access_log(
    c: &mut Checker,
    raw: Option<&RawAccessLog>,
    path: &str,
) -> Option<AccessLogConfig> {
    let a = raw?;
    let buffer_bytes = c.int(
        &a.buffer_bytes,
        path,
        "buffer_bytes",
        MIN_ACCESS_LOG_BUFFER,
        MAX_ACCESS_LOG_BUFFER,
        DEFAULT_ACCESS_LOG_BUFFER,
    );
    Some(AccessLogConfig {
        sink: sink(c, &a.path, &format!("{path}.path")),
        format: format(c, &a.format, &format!("{path}.format")),
        sample: c.percent(&a.sample_percent, path, "sample_percent", Percent::ALL),
        buffer_bytes: usize::try_from(buffer_bytes).unwrap_or(0),
    })
}

/// A cluster's `service` (`path` = `clusters[i]`).
pub(super) fn service(c: &mut Checker, raw: &Option<Text>, path: &str) -> Option<String> {
    label(c, raw, &format!("{path}.service"))
}

/// An optional label value: non-empty, no control characters.
fn label(c: &mut Checker, raw: &Option<Text>, path: &str) -> Option<String> {
    let v = raw.as_ref()?;
    let s = v.get_ref();
    if s.is_empty() {
        c.error(
            v.span(),
            path,
            "must not be empty (leave the key out to take it from the environment)",
        );
    } else if s.chars().any(char::is_control) {
        c.error(
            v.span(),
            path,
            format!("{s:?} contains a control character (it becomes a metrics label value)"),
        );
    }
    Some(s.clone())
}

fn trace_context(c: &mut Checker, raw: &Option<Text>, path: &str) -> TraceContext {
    let Some(v) = raw else {
        return TraceContext::Propagate;
    };
    match v.get_ref().as_str() {
        "propagate" => TraceContext::Propagate,
        "start" => TraceContext::Start,
        "off" => TraceContext::Off,
        other => {
            c.error(
                v.span(),
                &format!("{path}.trace_context"),
                format!(
                    "unknown trace_context {other:?}; expected \"propagate\", \"start\" or \"off\""
                ),
            );
            TraceContext::Propagate
        }
    }
}

/// `path` of an access log: `stderr`, `stdout` or a file (kept as written).
fn sink(c: &mut Checker, raw: &Text, path: &str) -> LogSink {
    let s = raw.get_ref();
    match s.as_str() {
        "stderr" => return LogSink::Stderr,
        "stdout" => return LogSink::Stdout,
        "" => c.error(
            raw.span(),
            path,
            "must not be empty (\"stderr\", \"stdout\" or a file path)",
        ),
        _ if s.ends_with('/') => c.error(
            raw.span(),
            path,
            format!("{s:?} names a directory; access logs are written to a file (e.g. \"{s}access.log\")"),
        ),
        _ if s.contains('\0') => c.error(
            raw.span(),
            path,
            format!("{s:?} contains a NUL byte, which no file path can hold"),
        ),
        _ => {}
    }
    LogSink::File(PathBuf::from(s))
}

/// `format` of an access log: `json` or an Envoy-style format string that compiles.
fn format(c: &mut Checker, raw: &Option<Text>, path: &str) -> LogFormat {
    let Some(v) = raw else {
        return LogFormat::Json;
    };
    let s = v.get_ref();
    if s == "json" {
        return LogFormat::Json;
    }
    if s.is_empty() {
        c.error(
            v.span(),
            path,
            "must not be empty (\"json\" or a format string such as \"%REQ(:METHOD)% %RESPONSE_CODE%\\n\")",
        );
    } else if let Err(e) = crate::telemetry::access_log::Format::compile(s) {
        c.error(v.span(), path, e);
    }
    LogFormat::Text(s.clone())
}
