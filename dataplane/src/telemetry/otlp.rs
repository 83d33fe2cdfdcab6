//! Span export over OTLP/HTTP (JSON) to an OpenTelemetry collector, off the hot path.
//!
//! A core writes one span per exported request — a JSON object on one line — into its own
//! buffers ([`CoreLog`], the same hand-off as the access logs); a background thread wraps each
//! batch of lines into an `ExportTraceServiceRequest` and POSTs it to the collector. A
//! collector that is down, slow (1 s connect / 2 s I/O timeouts) or answering non-2xx costs the
//! batch's spans, counted in `ringway_otlp_spans_total{result="dropped"}`, never a request's
//! latency: cores only ever `try_send`.
//!
//! Invariants: span and trace ids are the ones the request is forwarded with (this hop's span
//! is the parent of the upstream's); the exporter's settings come from the newest config
//! (replaced on reload, read by the thread per batch).

// Off the hot path: the settings lock is taken when a view is built and once per batch.
#![allow(clippy::disallowed_types)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use super::access_log::format::write_u64;
use super::access_log::writer::Batch;
use super::access_log::CoreLog;
use crate::config::OtlpConfig;

/// Spans the collector accepted.
pub static SPANS_EXPORTED: AtomicU64 = AtomicU64::new(0);
/// Spans lost: buffers full, exporter behind, or the collector down / refusing.
pub static SPANS_DROPPED: AtomicU64 = AtomicU64::new(0);
static IN_FLIGHT: AtomicU64 = AtomicU64::new(0);

const QUEUE_BATCHES: usize = 64;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
const IO_TIMEOUT: Duration = Duration::from_secs(2);
/// Per-core span buffer (each of three).
pub const BUFFER_BYTES: usize = 64 * 1024;

static SETTINGS: Mutex<Option<OtlpConfig>> = Mutex::new(None);
static EXPORTER: OnceLock<Option<SyncSender<Batch>>> = OnceLock::new();

/// Installs the newest config's exporter settings (`None`: export off).
pub fn configure(cfg: Option<&OtlpConfig>) {
    if let Ok(mut s) = SETTINGS.lock() {
        *s = cfg.cloned();
    }
}

/// A core's span buffers (starting the exporter thread on first use; `None` if it cannot).
pub fn core() -> Option<CoreLog> {
    let tx = EXPORTER.get_or_init(|| {
        let (tx, rx) = mpsc::sync_channel(QUEUE_BATCHES);
        match std::thread::Builder::new()
            .name("ringway-otlp".into())
            .spawn(move || run(rx))
        {
            Ok(_) => Some(tx),
            Err(e) => {
                tracing::error!(error = %e, "span export disabled: cannot start its thread");
                None
            }
        }
    });
    tx.as_ref()
        .map(|tx| CoreLog::with_sender(tx.clone(), &SPANS_DROPPED, &IN_FLIGHT))
}

fn run(rx: Receiver<Batch>) {
    let mut body = Vec::with_capacity(256 * 1024);
    loop {
        let batch = match rx.recv_timeout(Duration::from_secs(1)) {
            Ok(b) => b,
            Err(RecvTimeoutError::Timeout) => continue,
            Err(RecvTimeoutError::Disconnected) => return,
        };
        let settings = SETTINGS.lock().ok().and_then(|s| s.clone());
        let lines = batch.lines;
        let ok = match &settings {
            Some(cfg) => {
                envelope(&cfg.service_name, &batch.buf, &mut body);
                match post(cfg.address, &cfg.path, &body) {
                    Ok(()) => true,
                    Err(e) => {
                        tracing::debug!(error = %e, collector = %cfg.address, "span export failed");
                        false
                    }
                }
            }
            None => false,
        };
        if ok {
            SPANS_EXPORTED.fetch_add(lines, Ordering::Relaxed);
        } else {
            SPANS_DROPPED.fetch_add(lines, Ordering::Relaxed);
        }
        batch.recycle(&IN_FLIGHT);
    }
}

/// The `ExportTraceServiceRequest` (OTLP JSON) around newline-separated span objects.
pub fn envelope(service: &str, spans: &[u8], out: &mut Vec<u8>) {
    out.clear();
    out.extend_from_slice(
        b"{\"resourceSpans\":[{\"resource\":{\"attributes\":[{\"key\":\"service.name\",\"value\":{\"stringValue\":",
    );
    json_string(out, service.as_bytes());
    out.extend_from_slice(b"}}]},\"scopeSpans\":[{\"scope\":{\"name\":\"ringway\",\"version\":\"");
    out.extend_from_slice(env!("CARGO_PKG_VERSION").as_bytes());
    out.extend_from_slice(b"\"},\"spans\":[");
    let mut first = true;
    for line in spans.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
        if !first {
            out.push(b',');
        }
        first = false;
        out.extend_from_slice(line);
    }
    out.extend_from_slice(b"]}]}]}");
}

fn post(addr: SocketAddr, path: &str, body: &[u8]) -> std::io::Result<()> {
    let mut s = TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT)?;
    s.set_read_timeout(Some(IO_TIMEOUT))?;
    s.set_write_timeout(Some(IO_TIMEOUT))?;
    let head = format!(
        "POST {path} HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes())?;
    s.write_all(body)?;
    let mut status = [0u8; 12];
    s.read_exact(&mut status)?;
    match &status[9..10] {
        b"2" => Ok(()),
        _ => Err(std::io::Error::other(format!(
            "collector answered {}",
            String::from_utf8_lossy(&status[9..12])
        ))),
    }
}

/// What one exported span says.
pub struct SpanFields<'a> {
    pub trace_id: &'a [u8; 32],
    pub span_id: &'a [u8; 16],
    pub parent: Option<&'a [u8; 16]>,
    pub start_unix_ns: u64,
    pub end_unix_ns: u64,
    pub method: &'a [u8],
    pub target: &'a [u8],
    pub authority: &'a [u8],
    pub status: u16,
    pub flags: &'a str,
    pub listener: &'a str,
    pub cluster: Option<&'a str>,
    pub upstream: Option<SocketAddr>,
    pub client: SocketAddr,
}

/// One span object (OTLP JSON, `kind` SERVER) and a newline, appended to `out`.
pub fn write_span(f: &SpanFields<'_>, out: &mut Vec<u8>) {
    out.extend_from_slice(b"{\"traceId\":\"");
    out.extend_from_slice(f.trace_id);
    out.extend_from_slice(b"\",\"spanId\":\"");
    out.extend_from_slice(f.span_id);
    out.push(b'"');
    if let Some(p) = f.parent {
        out.extend_from_slice(b",\"parentSpanId\":\"");
        out.extend_from_slice(p);
        out.push(b'"');
    }
    out.extend_from_slice(b",\"name\":");
    json_string(
        out,
        if f.method.is_empty() {
            b"HTTP"
        } else {
            f.method
        },
    );
    out.extend_from_slice(b",\"kind\":2,\"startTimeUnixNano\":\"");
    write_u64(out, f.start_unix_ns);
    out.extend_from_slice(b"\",\"endTimeUnixNano\":\"");
    write_u64(out, f.end_unix_ns);
    out.extend_from_slice(b"\",\"attributes\":[");
    let path = f.target.split(|&b| b == b'?').next().unwrap_or(f.target);
    attr_str(out, "http.request.method", f.method, true);
    attr_str(out, "url.path", path, false);
    attr_str(out, "server.address", f.authority, false);
    out.extend_from_slice(b",{\"key\":\"http.response.status_code\",\"value\":{\"intValue\":\"");
    write_u64(out, u64::from(f.status));
    out.extend_from_slice(b"\"}}");
    attr_display(out, "client.address", f.client.ip());
    attr_str(out, "ringway.listener", f.listener.as_bytes(), false);
    attr_str(out, "ringway.response_flags", f.flags.as_bytes(), false);
    if let Some(c) = f.cluster {
        attr_str(out, "ringway.upstream_cluster", c.as_bytes(), false);
    }
    if let Some(u) = f.upstream {
        attr_display(out, "ringway.upstream_host", u);
    }
    out.extend_from_slice(b"]");
    if f.status == 0 || f.status >= 500 {
        out.extend_from_slice(b",\"status\":{\"code\":2}");
    }
    out.extend_from_slice(b"}\n");
}

/// An attribute whose value's `Display` needs no JSON escaping (addresses), written in place.
fn attr_display(out: &mut Vec<u8>, key: &str, value: impl std::fmt::Display) {
    out.extend_from_slice(b",{\"key\":\"");
    out.extend_from_slice(key.as_bytes());
    out.extend_from_slice(b"\",\"value\":{\"stringValue\":\"");
    let _ = write!(out, "{value}");
    out.extend_from_slice(b"\"}}");
}

fn attr_str(out: &mut Vec<u8>, key: &str, value: &[u8], first: bool) {
    if !first {
        out.push(b',');
    }
    out.extend_from_slice(b"{\"key\":\"");
    out.extend_from_slice(key.as_bytes());
    out.extend_from_slice(b"\",\"value\":{\"stringValue\":");
    json_string(out, value);
    out.extend_from_slice(b"}}");
}

/// A JSON string of `v` (escaped; bytes >= 0x80 as their Latin-1 code points).
fn json_string(out: &mut Vec<u8>, v: &[u8]) {
    out.push(b'"');
    for &b in v {
        match b {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            0x20..=0x7e => out.push(b),
            _ => {
                let _ = write!(out, "\\u{b:04x}");
            }
        }
    }
    out.push(b'"');
}

/// `ringway_otlp_spans_total{result}` (rendered once span export was used).
pub fn render_counters(out: &mut String) {
    use std::fmt::Write as _;
    let (ok, dropped) = (
        SPANS_EXPORTED.load(Ordering::Relaxed),
        SPANS_DROPPED.load(Ordering::Relaxed),
    );
    if ok == 0 && dropped == 0 {
        return;
    }
    let _ = writeln!(
        out,
        "# HELP ringway_otlp_spans_total Spans exported to the OTLP collector, or dropped (buffers full, collector down or refusing).\n\
         # TYPE ringway_otlp_spans_total counter\n\
         ringway_otlp_spans_total{{result=\"exported\"}} {ok}\n\
         ringway_otlp_spans_total{{result=\"dropped\"}} {dropped}"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn span_and_envelope_are_valid_otlp_json() {
        let tid = *b"4bf92f3577b34da6a3ce929d0e0e4736";
        let sid = *b"00f067aa0ba902b7";
        let pid = *b"1111111111111111";
        let f = SpanFields {
            trace_id: &tid,
            span_id: &sid,
            parent: Some(&pid),
            start_unix_ns: 1_000,
            end_unix_ns: 3_500,
            method: b"GET",
            target: b"/items?id=\"7\"",
            authority: b"shop",
            status: 503,
            flags: "UH",
            listener: "edge",
            cluster: Some("app"),
            upstream: None,
            client: "10.0.0.1:5".parse().unwrap(),
        };
        let mut lines = Vec::new();
        write_span(&f, &mut lines);
        write_span(&f, &mut lines);
        let mut body = Vec::new();
        envelope("cart", &lines, &mut body);
        let v: serde_json::Value = serde_json::from_slice(&body).expect("valid JSON");
        let spans = &v["resourceSpans"][0]["scopeSpans"][0]["spans"];
        assert_eq!(spans.as_array().unwrap().len(), 2);
        let s = &spans[0];
        assert_eq!(s["traceId"], "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(s["parentSpanId"], "1111111111111111");
        assert_eq!(s["endTimeUnixNano"], "3500");
        assert_eq!(s["status"]["code"], 2);
        assert_eq!(s["attributes"][1]["value"]["stringValue"], "/items");
        assert_eq!(
            v["resourceSpans"][0]["resource"]["attributes"][0]["value"]["stringValue"],
            "cart"
        );
    }
}
