//! Validation of the observability keys: `[telemetry]` (Istio standard metrics, workload
//! labels, trace context), `[telemetry.otlp]` (span export), a listener's `reporter` and `[listeners.access_log]`, and a
//! cluster's `service`.
//!
//! Invariants of the output: every label value (`workload`, `namespace`, `app`, `version`,
//! `principal`, `cluster_id`, `service`) is non-empty and free of control characters (they
//! become Prometheus label values); an access-log file path is non-empty, names no directory
//! and is kept as written (made absolute by `Config::resolve_paths`; no file is opened here);
//! a text format compiles (`telemetry::access_log::Format::compile`); an OTLP endpoint is an
//! IP socket address (no name to resolve) with a path that starts with '/' and is visible ASCII
//! without a query or fragment, and its `service_name` is non-empty without control characters.

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
/// Default OTLP/HTTP traces path.
pub const OTLP_PATH: &str = "/v1/traces";
/// Default `service_name`.
pub const OTLP_SERVICE_NAME: &str = "ringway";

/// `[telemetry.otlp]` at `path`; every problem of the table is reported, `None` if any.
fn otlp(c: &mut Checker, o: &RawOtlp, path: &str) -> Option<OtlpConfig> {
    let endpoint = match parse_otlp_endpoint(o.endpoint.get_ref()) {
        Ok(e) => Some(e),
        Err(e) => {
            c.error(o.endpoint.span(), &format!("{path}.endpoint"), e);
            None
        }
    };
    let service_name = match &o.service_name {
        None => OTLP_SERVICE_NAME.to_string(),
        Some(v) => {
            let s = v.get_ref();
            let key = format!("{path}.service_name");
            if s.is_empty() {
                c.error(
                    v.span(),
                    &key,
                    format!("must not be empty (leave the key out for {OTLP_SERVICE_NAME:?})"),
                );
            } else if s.chars().any(char::is_control) {
                c.error(
                    v.span(),
                    &key,
                    format!("{s:?} contains a control character"),
                );
            }
            s.clone()
        }
    };
    let sample = c.percent(&o.sample_percent, path, "sample_percent", Percent::ALL);
    let (address, otlp_path) = endpoint?;
    Some(OtlpConfig {
        address,
        path: otlp_path,
        service_name,
        sample,
    })
}

/// `endpoint` of `[telemetry.otlp]`: `http://HOST[:PORT][/PATH]` → (address, path), where HOST
/// is an IPv4 literal or a bracketed IPv6 literal, PORT defaults to [`OTLP_PORT`] and PATH
/// (visible ASCII, no query or fragment) to [`OTLP_PATH`]. The error names the problem.
pub fn parse_otlp_endpoint(s: &str) -> Result<(std::net::SocketAddr, String), String> {
    const EXAMPLE: &str = "e.g. \"http://127.0.0.1:4318/v1/traces\"";
    if s.is_empty() {
        return Err(format!("must not be empty ({EXAMPLE})"));
    }
    if s.get(..8)
        .is_some_and(|p| p.eq_ignore_ascii_case("https://"))
    {
        return Err(
            "https is not supported (OTLP/HTTP over plaintext to a local collector)".into(),
        );
    }
    let Some(rest) = s.strip_prefix("http://") else {
        return Err(format!("{s:?} is not an http:// URL ({EXAMPLE})"));
    };
    let (authority, tail) = rest.split_at(rest.find(['/', '?', '#']).unwrap_or(rest.len()));
    if tail.contains('?') {
        return Err(format!("{s:?} has a query; the path must not have one"));
    }
    if tail.contains('#') {
        return Err(format!("{s:?} has a '#'; the path must not have one"));
    }
    if let Some(c) = tail.chars().find(|c| !c.is_ascii_graphic()) {
        return Err(format!(
            "the path {tail:?} has {c:?}; it must be visible ASCII without spaces"
        ));
    }
    let path = if tail.is_empty() { OTLP_PATH } else { tail };
    if authority.is_empty() {
        return Err(format!("{s:?} has no host ({EXAMPLE})"));
    }
    if authority.contains('@') {
        return Err(format!("{s:?} has user information; it is not supported"));
    }
    let (ip, port): (std::net::IpAddr, Option<&str>) = if let Some(bracketed) =
        authority.strip_prefix('[')
    {
        let Some((host, after)) = bracketed.split_once(']') else {
            return Err(format!("{s:?} has an unclosed '[' in the host"));
        };
        let port = match after {
            "" => None,
            _ => Some(after.strip_prefix(':').ok_or_else(|| {
                format!("{after:?} after the host; expected \":PORT\" or a path starting with '/'")
            })?),
        };
        let ip = host.parse::<std::net::Ipv6Addr>().map_err(|_| {
            format!("[{host}]: host must be an IP address (an IPv6 address in brackets)")
        })?;
        (ip.into(), port)
    } else {
        if authority.matches(':').count() > 1 {
            return Err(format!(
                    "{authority:?}: an IPv6 host must be in brackets (e.g. \"http://[::1]:4318/v1/traces\")"
                ));
        }
        let (host, port) = match authority.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        };
        if host.is_empty() {
            return Err(format!("{s:?} has no host ({EXAMPLE})"));
        }
        let ip = host.parse::<std::net::Ipv4Addr>().map_err(|_| {
            format!("host must be an IP address, got {host:?} (the exporter does no DNS lookups)")
        })?;
        (ip.into(), port)
    };
    let port = match port {
        None => OTLP_PORT,
        Some(p) => Some(p)
            .filter(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|p| p.parse::<u16>().ok())
            .filter(|&p| p > 0)
            .ok_or_else(|| format!("bad port {p:?}; expected 1 to 65535"))?,
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
