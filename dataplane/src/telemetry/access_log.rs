//! Access logs: one line per request (HTTP) or connection (TCP), per listener, as JSON or an
//! Envoy-style format string, written by a background thread from per-core buffers.
//!
//! - `format`: [`Format`] (compiled format strings), [`write_json`], [`Entry`].
//! - `writer`: [`AccessLogs`] (the writer thread), [`CoreLog`] (a core's buffers).
//! - here: [`ListenerLog`] (a listener's compiled settings) and [`Capture`] (the request
//!   fields a line needs, copied while the head is still buffered).
//!
//! Invariant: with logging off for a listener nothing here runs; with it on, a request costs
//! one copy of the captured fields and one formatted line, and never waits for the writer.

pub mod format;
pub mod writer;

pub use format::{write_json, Entry, Format, FormatError, JSON_HEADERS, MAX_CAPTURED};
pub use writer::{check_sink, request_reopen, AccessLogError, AccessLogs, CoreLog};

use crate::config::{AccessLogConfig, LogFormat, Percent};
use crate::http::RequestHead;

/// A listener's access-log settings, compiled once per view.
#[derive(Debug, Clone)]
pub struct ListenerLog {
    /// `None`: JSON.
    pub format: Option<Format>,
    pub sink: usize,
    pub sample: Percent,
    pub buffer_bytes: usize,
}

impl ListenerLog {
    /// Compiles `cfg` for the writer's sink `sink`. The format was checked by the config
    /// validator; a format that does not compile (impossible after validation) logs JSON.
    pub fn new(cfg: &AccessLogConfig, sink: usize) -> ListenerLog {
        ListenerLog {
            format: match &cfg.format {
                LogFormat::Json => None,
                LogFormat::Text(t) => Format::compile(t).ok(),
            },
            sink,
            sample: cfg.sample,
            buffer_bytes: cfg.buffer_bytes,
        }
    }

    /// The request headers a line needs, in [`Entry::headers`] order.
    pub fn headers(&self) -> &[String] {
        match &self.format {
            Some(f) => &f.headers,
            None => &JSON_NAMES,
        }
    }

    /// Writes the line for `e` into `out` (cleared first).
    pub fn line(&self, e: &Entry<'_>, out: &mut Vec<u8>) {
        out.clear();
        match &self.format {
            Some(f) => f.write(e, out),
            None => write_json(e, out),
        }
    }
}

static JSON_NAMES: std::sync::LazyLock<Vec<String>> =
    std::sync::LazyLock::new(|| JSON_HEADERS.iter().map(|s| s.to_string()).collect());

/// The request fields of one line, copied out of the head (whose buffer the exchange
/// consumes) into a per-connection buffer that keeps its capacity.
#[derive(Default)]
pub struct Capture {
    /// A line is due for this request (logging on and sampled in).
    pub active: bool,
    buf: Vec<u8>,
    spans: [(u32, u32); MAX_CAPTURED],
    count: usize,
}

impl Capture {
    /// Copies `names` (lower-case; `:method`, `:path`, `:authority` are the request line's
    /// method, target and Host/authority; `x-request-id` is the id the request goes out
    /// with) from `head` over `buf`.
    pub fn take(&mut self, names: &[String], head: &RequestHead, buf: &[u8], request_id: &[u8]) {
        self.buf.clear();
        self.count = 0;
        for name in names.iter().take(MAX_CAPTURED) {
            let v: &[u8] = match name.as_str() {
                ":method" => head.method_span.get(buf),
                ":path" => head.target.get(buf),
                ":authority" => head.authority.or(head.host).map_or(&[][..], |s| s.get(buf)),
                "x-request-id" => request_id,
                n => head.header(buf, n).unwrap_or(&[]),
            };
            let start = self.buf.len() as u32;
            self.buf.extend_from_slice(v);
            self.spans[self.count] = (start, self.buf.len() as u32);
            self.count += 1;
        }
        self.active = true;
    }

    /// The captured values, in the order they were taken.
    pub fn values<'a>(&'a self, out: &mut [&'a [u8]; MAX_CAPTURED]) -> usize {
        for (i, (a, b)) in self.spans[..self.count].iter().enumerate() {
            out[i] = self.buf.get(*a as usize..*b as usize).unwrap_or(&[]);
        }
        self.count
    }
}

/// `ringway_access_log_lines_total{result}` and `ringway_access_log_write_errors_total`
/// (process-wide, rendered only once a line was logged or dropped).
pub fn render_counters(out: &mut String) {
    use std::fmt::Write as _;
    use std::sync::atomic::Ordering::Relaxed;
    let written = writer::LINES_WRITTEN.load(Relaxed);
    let dropped = writer::LINES_DROPPED.load(Relaxed);
    let errors = writer::WRITE_ERRORS.load(Relaxed);
    if written == 0 && dropped == 0 && errors == 0 {
        return;
    }
    let _ = writeln!(
        out,
        "# HELP ringway_access_log_lines_total Access-log lines written, or dropped (buffer full, writer behind, sink failing).\n\
         # TYPE ringway_access_log_lines_total counter\n\
         ringway_access_log_lines_total{{result=\"written\"}} {written}\n\
         ringway_access_log_lines_total{{result=\"dropped\"}} {dropped}\n\
         # HELP ringway_access_log_write_errors_total Failed writes to an access-log sink.\n\
         # TYPE ringway_access_log_write_errors_total counter\n\
         ringway_access_log_write_errors_total {errors}"
    );
}
