//! Trace context of a request: W3C `traceparent` (and `tracestate`) and B3 multi-header
//! (`x-b3-traceid`, `x-b3-spanid`, `x-b3-parentspanid`, `x-b3-sampled`) read from the request,
//! and the headers it is forwarded with: the same trace id, a new span id for this hop, the
//! incoming span id as the parent.
//!
//! Invariants: a malformed `traceparent` is never forwarded — it is replaced by a new trace
//! (and its `tracestate` dropped, as the W3C spec requires); ids are lower-case hex; nothing
//! here allocates (ids live in fixed arrays, headers are formatted on the stack).

use crate::base::FastRng;
use crate::config::TraceContext;
use crate::http::RequestHead;

pub const TRACEPARENT: &str = "traceparent";
pub const TRACESTATE: &str = "tracestate";
pub const B3_TRACE: &str = "x-b3-traceid";
pub const B3_SPAN: &str = "x-b3-spanid";
pub const B3_PARENT: &str = "x-b3-parentspanid";
pub const B3_SAMPLED: &str = "x-b3-sampled";

/// The trace context a request is forwarded with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Trace {
    /// 32 lower-case hex digits.
    pub trace_id: [u8; 32],
    /// This hop's span id, 16 hex digits.
    pub span_id: [u8; 16],
    /// The incoming span id (none when this hop started the trace).
    pub parent: Option<[u8; 16]>,
    pub sampled: bool,
    /// Forward W3C headers (the request had a valid or broken `traceparent`, or the trace
    /// started here).
    pub w3c: bool,
    /// The incoming `tracestate` must be dropped (its `traceparent` was malformed).
    pub drop_tracestate: bool,
    /// Forward B3 headers (the request had them).
    pub b3: bool,
    /// B3 trace ids may be 64-bit: the length the request used (16 or 32).
    pub b3_trace_len: usize,
}

/// What `traceparent` held.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Parent {
    Valid {
        trace_id: [u8; 32],
        span_id: [u8; 16],
        sampled: bool,
    },
    Malformed,
}

fn is_hex(b: &[u8]) -> bool {
    b.iter().all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f'))
}

fn all_zero(b: &[u8]) -> bool {
    b.iter().all(|&c| c == b'0')
}

/// Parses a `traceparent` value (W3C Trace Context level 1, §3.2): `version-traceid-spanid-
/// flags`, lower-case hex, version `ff` invalid, all-zero ids invalid; a later version may
/// append `-...` after the flags.
pub fn parse_traceparent(v: &[u8]) -> Parent {
    let v = v.trim_ascii();
    if v.len() < 55 || v[2] != b'-' || v[35] != b'-' || v[52] != b'-' {
        return Parent::Malformed;
    }
    let (version, trace, span, flags) = (&v[0..2], &v[3..35], &v[36..52], &v[53..55]);
    if !is_hex(version) || version == b"ff" || !is_hex(trace) || !is_hex(span) || !is_hex(flags) {
        return Parent::Malformed;
    }
    if (version == b"00" && v.len() != 55) || (v.len() > 55 && v[55] != b'-') {
        return Parent::Malformed;
    }
    if all_zero(trace) || all_zero(span) {
        return Parent::Malformed;
    }
    let mut trace_id = [0u8; 32];
    trace_id.copy_from_slice(trace);
    let mut span_id = [0u8; 16];
    span_id.copy_from_slice(span);
    let flag = u8::from_str_radix(std::str::from_utf8(flags).unwrap_or("00"), 16).unwrap_or(0);
    Parent::Valid {
        trace_id,
        span_id,
        sampled: flag & 1 == 1,
    }
}

fn hex_id<const N: usize>(rng: &mut FastRng) -> [u8; N] {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut out = [b'0'; N];
    let mut bits = 0u64;
    for (i, c) in out.iter_mut().enumerate() {
        if i % 16 == 0 {
            bits = rng.next_u64();
        }
        *c = HEX[(bits & 0xf) as usize];
        bits >>= 4;
    }
    if all_zero(&out) {
        out[N - 1] = b'1';
    }
    out
}

/// The trace context `head` is forwarded with under `mode`, or `None` to forward it as is.
pub fn of_request(
    mode: TraceContext,
    head: &RequestHead,
    buf: &[u8],
    rng: &mut FastRng,
) -> Option<Trace> {
    if mode == TraceContext::Off {
        return None;
    }
    // One pass over the fields (names compared only when the length fits).
    let mut tp: Option<&[u8]> = None;
    let mut b3t: Option<&[u8]> = None;
    let mut b3s: Option<&[u8]> = None;
    let mut b3x: Option<&[u8]> = None;
    for f in &head.headers {
        let name = f.name.get(buf);
        let slot = match name.len() {
            11 if name.eq_ignore_ascii_case(TRACEPARENT.as_bytes()) => &mut tp,
            11 if name.eq_ignore_ascii_case(B3_SPAN.as_bytes()) => &mut b3s,
            12 if name.eq_ignore_ascii_case(B3_TRACE.as_bytes()) => &mut b3t,
            12 if name.eq_ignore_ascii_case(B3_SAMPLED.as_bytes()) => &mut b3x,
            _ => continue,
        };
        if slot.is_none() {
            *slot = Some(f.value.get(buf));
        }
    }
    let w3c = tp.map(parse_traceparent);
    let b3_trace = b3t
        .map(<[u8]>::trim_ascii)
        .filter(|t| (t.len() == 16 || t.len() == 32) && is_hex(t) && !all_zero(t));
    let b3_span = b3s
        .map(<[u8]>::trim_ascii)
        .filter(|s| s.len() == 16 && is_hex(s));
    let b3_sampled = b3x.map(|s| matches!(s.trim_ascii(), b"1" | b"true"));
    let mut t = Trace {
        trace_id: [b'0'; 32],
        span_id: hex_id(rng),
        parent: None,
        sampled: true,
        w3c: false,
        drop_tracestate: false,
        b3: false,
        b3_trace_len: 32,
    };
    match (w3c, b3_trace) {
        (
            Some(Parent::Valid {
                trace_id,
                span_id,
                sampled,
            }),
            _,
        ) => {
            t.trace_id = trace_id;
            t.parent = Some(span_id);
            t.sampled = sampled;
            t.w3c = true;
        }
        (w, Some(b3)) => {
            // B3 only (or a broken traceparent beside valid B3): B3 carries the trace.
            t.trace_id[32 - b3.len()..].copy_from_slice(b3);
            t.parent = b3_span.map(|s| {
                let mut p = [0u8; 16];
                p.copy_from_slice(s);
                p
            });
            t.sampled = b3_sampled.unwrap_or(true);
            t.w3c = w.is_some();
            t.drop_tracestate = w.is_some();
        }
        (Some(Parent::Malformed), None) => {
            t.trace_id = hex_id(rng);
            t.w3c = true;
            t.drop_tracestate = true;
        }
        (None, None) if mode == TraceContext::Start => {
            t.trace_id = hex_id(rng);
            t.w3c = true;
        }
        (None, None) => return None,
    }
    if let Some(b3) = b3_trace {
        t.b3 = true;
        t.b3_trace_len = b3.len();
    }
    Some(t)
}

impl Trace {
    /// The header names the forwarded head must not carry as received.
    pub fn replaced(&self) -> impl Iterator<Item = &'static str> + Clone {
        let w3c: &[&'static str] = match (self.w3c, self.drop_tracestate) {
            (true, true) => &[TRACEPARENT, TRACESTATE],
            (true, false) => &[TRACEPARENT],
            _ => &[],
        };
        let b3: &[&'static str] = if self.b3 {
            &[B3_TRACE, B3_SPAN, B3_PARENT, B3_SAMPLED]
        } else {
            &[]
        };
        w3c.iter().chain(b3).copied()
    }

    /// `traceparent: 00-<trace>-<span>-<flags>`, formatted into `out`.
    pub fn traceparent<'a>(&self, out: &'a mut [u8; 55]) -> &'a str {
        out[..3].copy_from_slice(b"00-");
        out[3..35].copy_from_slice(&self.trace_id);
        out[35] = b'-';
        out[36..52].copy_from_slice(&self.span_id);
        out[52..].copy_from_slice(if self.sampled { b"-01" } else { b"-00" });
        // Only ASCII hex and '-' were written.
        std::str::from_utf8(out).unwrap_or_default()
    }

    /// The trace id as B3 writes it (the request's 16 or 32 digits).
    pub fn b3_trace_id(&self) -> &str {
        std::str::from_utf8(&self.trace_id[32 - self.b3_trace_len..]).unwrap_or_default()
    }

    pub fn span_str(&self) -> &str {
        std::str::from_utf8(&self.span_id).unwrap_or_default()
    }

    pub fn parent_str(&self) -> Option<&str> {
        self.parent
            .as_ref()
            .and_then(|p| std::str::from_utf8(p).ok())
    }
}

#[cfg(test)]
mod tests;
