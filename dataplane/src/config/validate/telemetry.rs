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
        otlp: t.otlp.as_ref().and_then(|o| otlp(c, o, "telemetry.otlp")),
    }
}

/// Default OTLP/HTTP port.
pub const OTLP_PORT: u16 = 4318;

/// `[telemetry.otlp]` at `path`.
fn otlp(c: &mut Checker, o: &RawOtlp, path: &str) -> Option<OtlpConfig> {
    let service_name = match &o.service_name {
        None => "ringway".to_string(),
        some => label(c, some, &format!("{path}.service_name")).unwrap_or_default(),
    };
    let sample = c.percent(&o.sample_percent, path, "sample_percent", Percent::ALL);
    match parse_otlp_endpoint(o.endpoint.get_ref()) {
        Ok((address, otlp_path)) => Some(OtlpConfig {
            address,
            path: otlp_path,
            service_name,
            sample,
        }),
        Err(e) => {
            c.error(o.endpoint.span(), &format!("{path}.endpoint"), e);
            None
        }
    }
}

/// `http://IP[:PORT][/PATH]` → (address, path). See docs/configuration.md.
pub fn parse_otlp_endpoint(s: &str) -> Result<(std::net::SocketAddr, String), String> {
    if s.starts_with("https://") {
        return Err(
            "https is not supported (OTLP/HTTP in plaintext to a local collector or agent)".into(),
        );
    }
    let Some(rest) = s.strip_prefix("http://") else {
        return Err(format!(
            "{s:?} is not an http:// URL (e.g. \"http://127.0.0.1:4318/v1/traces\")"
        ));
    };
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/v1/traces"),
    };
    if path.contains('?') || path.contains('#') {
        return Err("the path must not have a query or fragment".into());
    }
    if !path.bytes().all(|b| b.is_ascii_graphic()) {
        return Err("the path must be visible ASCII without spaces".into());
    }
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let Some((h, after)) = v6.split_once(']') else {
            return Err("unclosed '[' in the host".into());
        };
        (h, after.strip_prefix(':'))
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        }
    };
    if host.is_empty() {
        return Err("the URL has no host".into());
    }
    let ip: std::net::IpAddr = host.parse().map_err(|_| {
        format!("host {host:?} must be an IP address (no DNS lookups on this path)")
    })?;
    let port = match port {
        None => OTLP_PORT,
        Some(p) => p
            .parse::<u16>()
            .ok()
            .filter(|&p| p > 0)
            .ok_or_else(|| format!("bad port {p:?}"))?,
    };
    Ok((std::net::SocketAddr::new(ip, port), path.to_string()))
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
    } else if let Err(e) = crate::telemetry::access_log::format::Format::compile(s) {
        c.error(v.span(), path, e);
    }
    LogFormat::Text(s.clone())
}
