//! Command-line options of `ringway-load`: the clap model, the target URL, and [`Plan`], the
//! validated run description the workers execute.
//!
//! Invariants: a [`Plan`] is fully validated (connections in `1..=MAX_CONNECTIONS`, threads
//! in `1..=connections`, a resolved target that is loopback unless `--allow-remote`, a
//! positive rate if any); workers never re-check it.

use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;

use crate::upstream::options::parse_duration;

/// Most connections one run may open (the bound; also keeps fd use sane).
pub const MAX_CONNECTIONS: usize = 10_000;
/// Most requests in flight per connection.
pub const MAX_PIPELINE: usize = 1024;
/// Largest request body accepted from `--body` / `--body-file`.
pub const MAX_BODY_BYTES: usize = 64 * 1024 * 1024;

/// `ringway-load`: an HTTP/1.1 load generator (closed-loop max rate, or open-loop constant
/// rate with coordinated-omission correction, as wrk2).
///
/// Only loopback targets (127.0.0.0/8, ::1) unless `--allow-remote`.
#[derive(Debug, Clone, Parser)]
#[command(name = "ringway-load", version, about, long_about = None)]
pub struct Options {
    /// Target, `http://host:port/path` or `https://host:port/path` (the port defaults to 80
    /// or 443). HTTPS needs `--cacert` or `--insecure`.
    pub url: String,

    /// Connections to keep open, spread over the threads (at most 10000).
    #[arg(short = 'c', long, default_value_t = 50)]
    pub connections: usize,

    /// Worker threads, each driving its share of the connections with epoll
    /// (default: available cores; never more than connections).
    #[arg(short = 't', long)]
    pub threads: Option<usize>,

    /// Measured duration, e.g. `10s`, `500ms`, `2m`.
    #[arg(short = 'd', long, value_parser = parse_duration, default_value = "10s")]
    pub duration: Duration,

    /// Open loop: total requests per second over all connections, each connection on a
    /// fixed timeline; latency counts from the intended send time. Absent: closed loop
    /// (each connection sends its next request when one completes).
    #[arg(short = 'R', long)]
    pub rate: Option<f64>,

    /// Request method.
    #[arg(short = 'm', long, default_value = "GET")]
    pub method: String,

    /// Extra request header `Name: value` (repeatable). A `Host` header replaces the default.
    #[arg(short = 'H', long = "header")]
    pub headers: Vec<String>,

    /// Request body, sent with Content-Length.
    #[arg(long, conflicts_with = "body_file")]
    pub body: Option<String>,

    /// Request body read from a file, sent with Content-Length.
    #[arg(long)]
    pub body_file: Option<PathBuf>,

    /// Requests in flight per connection (HTTP/1.1 pipelining).
    #[arg(long, default_value_t = 1)]
    pub pipeline: usize,

    /// Per-request timeout, from the moment the request is written.
    #[arg(long, value_parser = parse_duration, default_value = "5s")]
    pub timeout: Duration,

    /// Run this long before measuring; nothing completed during warmup is counted.
    #[arg(long, value_parser = parse_duration, default_value = "0s")]
    pub warmup: Duration,

    /// Open loop: busy-poll this long before each due time instead of sleeping through it,
    /// e.g. `100us`. Takes the generator's own timer wake-up lag (tens of µs on an idle
    /// core) out of low-rate latencies, at the cost of CPU. Default 0: always sleep.
    #[arg(long, value_parser = parse_duration, default_value = "0s")]
    pub spin: Duration,

    /// Print one JSON object with every figure on stdout instead of the text report.
    #[arg(long)]
    pub json: bool,

    /// Exit 1 if (socket errors + non-2xx responses) / (responses + socket errors) exceeds
    /// this fraction. Default 0: any error fails the run. A run without responses fails.
    #[arg(long, default_value_t = 0.0)]
    pub max_error_rate: f64,

    /// Write the full latency percentile spectrum (HdrHistogram text format, µs) here.
    #[arg(long)]
    pub latency_out: Option<PathBuf>,

    /// Allow targets outside 127.0.0.0/8 and ::1 (only against hosts you own).
    #[arg(long)]
    pub allow_remote: bool,

    /// HTTPS: trust the server certificates this PEM bundle issued.
    #[arg(long)]
    pub cacert: Option<PathBuf>,

    /// HTTPS: do not verify the server's certificate (a benchmark against your own test
    /// certificates only).
    #[arg(long)]
    pub insecure: bool,

    /// HTTPS: the server name sent (SNI) and verified. Default: the URL's host.
    #[arg(long)]
    pub sni: Option<String>,

    /// HTTPS: no session resumption (every connection does a full handshake).
    #[arg(long)]
    pub no_resumption: bool,
}

/// A parsed `http://` URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// `https://`.
    pub tls: bool,
    /// Host as written (brackets kept for IPv6), for the Host header.
    pub host: String,
    pub port: u16,
    /// Path and query, always starting with `/`.
    pub path: String,
}

/// Why the options cannot make a run.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PlanError {
    #[error("only http://host[:port]/path and https://host[:port]/path URLs are supported")]
    Scheme,
    #[error("https needs --cacert PATH (or --insecure)")]
    TrustMissing,
    #[error("TLS setup: {0}")]
    Tls(String),
    #[error("bad host or port in the URL")]
    Authority,
    #[error("cannot resolve {0}")]
    Resolve(String),
    #[error("{0} is not loopback (127.0.0.0/8 or ::1); pass --allow-remote for hosts you own")]
    Remote(IpAddr),
    #[error("--connections must be in 1..={MAX_CONNECTIONS}")]
    Connections,
    #[error("--threads must be at least 1")]
    Threads,
    #[error("--pipeline must be in 1..={MAX_PIPELINE}")]
    Pipeline,
    #[error("--rate must be a positive number of requests per second")]
    Rate,
    #[error("--duration must be positive")]
    Duration,
    #[error("--timeout must be positive")]
    Timeout,
    #[error("--max-error-rate must be in 0..=1")]
    MaxErrorRate,
    #[error("bad header {0:?}: expected `Name: value`")]
    Header(String),
    #[error("bad method {0:?}")]
    Method(String),
    #[error("cannot read --body-file: {0}")]
    BodyFile(String),
    #[error("request body larger than {MAX_BODY_BYTES} bytes")]
    BodyTooLarge,
}

/// A validated run: what every worker needs, nothing it must check again.
#[derive(Debug, Clone)]
pub struct Plan {
    pub url: String,
    pub target: Target,
    pub addr: SocketAddr,
    pub connections: usize,
    pub threads: usize,
    pub duration: Duration,
    pub rate: Option<f64>,
    pub pipeline: usize,
    pub timeout: Duration,
    pub warmup: Duration,
    pub spin: Duration,
    /// One complete request, bytes as sent.
    pub request: Vec<u8>,
    /// True for HEAD: responses carry no body whatever their headers say.
    pub head_request: bool,
    pub json: bool,
    pub max_error_rate: f64,
    pub latency_out: Option<PathBuf>,
    /// HTTPS: the client config and the server name.
    pub tls: Option<super::tls::TlsTarget>,
}

/// Splits `http://host[:port][/path]`.
pub fn parse_url(url: &str) -> Result<Target, PlanError> {
    let (tls, rest) = match (url.strip_prefix("http://"), url.strip_prefix("https://")) {
        (Some(r), _) => (false, r),
        (None, Some(r)) => (true, r),
        (None, None) => return Err(PlanError::Scheme),
    };
    let default_port = if tls { 443 } else { 80 };
    let (authority, path) = match rest.find(['/', '?']) {
        Some(i) => rest.split_at(i),
        None => (rest, "/"),
    };
    let path = if path.starts_with('?') {
        format!("/{path}")
    } else {
        path.to_owned()
    };
    if authority.is_empty() || authority.contains('@') {
        return Err(PlanError::Authority);
    }
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let (h, after) = v6.split_once(']').ok_or(PlanError::Authority)?;
        let port = match after.strip_prefix(':') {
            Some(p) => p.parse().map_err(|_| PlanError::Authority)?,
            None if after.is_empty() => default_port,
            None => return Err(PlanError::Authority),
        };
        (format!("[{h}]"), port)
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h.to_owned(), p.parse().map_err(|_| PlanError::Authority)?),
            None => (authority.to_owned(), default_port),
        }
    };
    if host.is_empty() || host.contains(|c: char| c.is_whitespace() || c == '/') {
        return Err(PlanError::Authority);
    }
    if path.contains(|c: char| c.is_ascii_control() || c == ' ') {
        return Err(PlanError::Authority);
    }
    Ok(Target {
        tls,
        host,
        port,
        path,
    })
}

/// True for 127.0.0.0/8, ::1 and IPv4-mapped loopback.
pub fn is_loopback(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_loopback(),
        IpAddr::V6(v6) => {
            v6.is_loopback() || v6.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback())
        }
    }
}

/// Resolves the target (blocking, once, before the run) and applies the loopback policy.
#[allow(clippy::disallowed_methods)] // blocking DNS is fine here: once, before any load
fn resolve(target: &Target, allow_remote: bool) -> Result<SocketAddr, PlanError> {
    let host = target.host.trim_start_matches('[').trim_end_matches(']');
    let addr = (host, target.port)
        .to_socket_addrs()
        .map_err(|_| PlanError::Resolve(target.host.clone()))?
        .next()
        .ok_or_else(|| PlanError::Resolve(target.host.clone()))?;
    if !allow_remote && !is_loopback(addr.ip()) {
        return Err(PlanError::Remote(addr.ip()));
    }
    Ok(addr)
}

fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// Builds the request bytes: request line, Host (unless given), the user's headers,
/// Content-Length when there is a body, blank line, body.
pub fn build_request(
    method: &str,
    target: &Target,
    headers: &[String],
    body: &[u8],
) -> Result<Vec<u8>, PlanError> {
    if !is_token(method) {
        return Err(PlanError::Method(method.to_owned()));
    }
    let mut parsed = Vec::with_capacity(headers.len());
    for h in headers {
        let (name, value) = h
            .split_once(':')
            .ok_or_else(|| PlanError::Header(h.clone()))?;
        let (name, value) = (name.trim(), value.trim());
        if !is_token(name) || value.contains(['\r', '\n']) {
            return Err(PlanError::Header(h.clone()));
        }
        parsed.push((name, value));
    }
    let has = |n: &str| parsed.iter().any(|(k, _)| k.eq_ignore_ascii_case(n));
    let mut req = format!("{method} {} HTTP/1.1\r\n", target.path);
    if !has("host") {
        if target.port == 80 {
            req.push_str(&format!("Host: {}\r\n", target.host));
        } else {
            req.push_str(&format!("Host: {}:{}\r\n", target.host, target.port));
        }
    }
    for (k, v) in &parsed {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    if !body.is_empty() && !has("content-length") && !has("transfer-encoding") {
        req.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    req.push_str("\r\n");
    let mut bytes = req.into_bytes();
    bytes.extend_from_slice(body);
    Ok(bytes)
}

impl Options {
    /// Validates everything, reads the body file and resolves the target.
    pub fn plan(&self) -> Result<Plan, PlanError> {
        if self.connections == 0 || self.connections > MAX_CONNECTIONS {
            return Err(PlanError::Connections);
        }
        let threads = match self.threads {
            Some(0) => return Err(PlanError::Threads),
            Some(t) => t,
            None => std::thread::available_parallelism().map_or(1, |n| n.get()),
        }
        .min(self.connections);
        if self.pipeline == 0 || self.pipeline > MAX_PIPELINE {
            return Err(PlanError::Pipeline);
        }
        if let Some(r) = self.rate {
            if !(r.is_finite() && r > 0.0) {
                return Err(PlanError::Rate);
            }
        }
        if self.duration.is_zero() {
            return Err(PlanError::Duration);
        }
        if self.timeout.is_zero() {
            return Err(PlanError::Timeout);
        }
        if !(0.0..=1.0).contains(&self.max_error_rate) {
            return Err(PlanError::MaxErrorRate);
        }
        let target = parse_url(&self.url)?;
        let body = match (&self.body, &self.body_file) {
            (Some(b), _) => b.clone().into_bytes(),
            (None, Some(p)) => std::fs::read(p).map_err(|e| PlanError::BodyFile(e.to_string()))?,
            (None, None) => Vec::new(),
        };
        if body.len() > MAX_BODY_BYTES {
            return Err(PlanError::BodyTooLarge);
        }
        let request = build_request(&self.method, &target, &self.headers, &body)?;
        let addr = resolve(&target, self.allow_remote)?;
        let tls = if target.tls {
            if self.cacert.is_none() && !self.insecure {
                return Err(PlanError::TrustMissing);
            }
            let name = self.sni.clone().unwrap_or_else(|| {
                target
                    .host
                    .trim_start_matches('[')
                    .trim_end_matches(']')
                    .to_string()
            });
            Some(
                super::tls::TlsTarget::new(
                    self.cacert.as_deref(),
                    self.insecure,
                    &name,
                    !self.no_resumption,
                )
                .map_err(PlanError::Tls)?,
            )
        } else {
            None
        };
        Ok(Plan {
            tls,
            url: self.url.clone(),
            target,
            addr,
            connections: self.connections,
            threads,
            duration: self.duration,
            rate: self.rate,
            pipeline: self.pipeline,
            timeout: self.timeout,
            warmup: self.warmup,
            spin: self.spin,
            request,
            head_request: self.method.eq_ignore_ascii_case("HEAD"),
            json: self.json,
            max_error_rate: self.max_error_rate,
            latency_out: self.latency_out.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(args: &[&str]) -> Options {
        let mut v = vec!["ringway-load"];
        v.extend_from_slice(args);
        Options::try_parse_from(v).unwrap()
    }

    #[test]
    fn parses_urls_with_and_without_port_and_path() {
        let t = parse_url("http://127.0.0.1:8080/a/b?x=1").unwrap();
        assert_eq!(
            (t.host.as_str(), t.port, t.path.as_str()),
            ("127.0.0.1", 8080, "/a/b?x=1")
        );
        let t = parse_url("http://localhost").unwrap();
        assert_eq!(
            (t.host.as_str(), t.port, t.path.as_str()),
            ("localhost", 80, "/")
        );
        let t = parse_url("http://[::1]:9/").unwrap();
        assert_eq!((t.host.as_str(), t.port), ("[::1]", 9));
        let t = parse_url("http://h?q").unwrap();
        assert_eq!(t.path, "/?q");
        let t = parse_url("https://h/").unwrap();
        assert_eq!((t.tls, t.port), (true, 443));
        assert!(!parse_url("http://h/").unwrap().tls);
        assert_eq!(parse_url("ftp://h/"), Err(PlanError::Scheme));
        assert!(matches!(
            opts(&["https://127.0.0.1:1/"]).plan(),
            Err(PlanError::TrustMissing)
        ));
        assert_eq!(parse_url("http://h:99999/"), Err(PlanError::Authority));
        assert_eq!(parse_url("http:///x"), Err(PlanError::Authority));
        assert_eq!(parse_url("http://u@h/"), Err(PlanError::Authority));
        assert_eq!(parse_url("http://[::1/"), Err(PlanError::Authority));
    }

    #[test]
    fn refuses_remote_targets_without_allow_remote() {
        let o = opts(&["http://192.0.2.1:80/"]);
        assert!(matches!(o.plan(), Err(PlanError::Remote(_))));
        let o = opts(&["--allow-remote", "http://192.0.2.1:80/"]);
        assert!(o.plan().is_ok());
        assert!(opts(&["http://127.0.0.2:1/"]).plan().is_ok());
        assert!(opts(&["http://[::1]:1/"]).plan().is_ok());
    }

    #[test]
    fn rejects_out_of_range_options() {
        let bad = |args: &[&str]| opts(args).plan().unwrap_err();
        assert_eq!(
            bad(&["-c", "10001", "http://127.0.0.1/"]),
            PlanError::Connections
        );
        assert_eq!(
            bad(&["-c", "0", "http://127.0.0.1/"]),
            PlanError::Connections
        );
        assert_eq!(bad(&["-t", "0", "http://127.0.0.1/"]), PlanError::Threads);
        assert_eq!(
            bad(&["--pipeline", "0", "http://127.0.0.1/"]),
            PlanError::Pipeline
        );
        assert_eq!(bad(&["-R", "0", "http://127.0.0.1/"]), PlanError::Rate);
        assert_eq!(bad(&["-d", "0s", "http://127.0.0.1/"]), PlanError::Duration);
        assert_eq!(
            bad(&["--max-error-rate", "2", "http://127.0.0.1/"]),
            PlanError::MaxErrorRate
        );
        assert!(matches!(
            bad(&["-H", "nocolon", "http://127.0.0.1/"]),
            PlanError::Header(_)
        ));
        assert!(matches!(
            bad(&["-m", "G T", "http://127.0.0.1/"]),
            PlanError::Method(_)
        ));
    }

    #[test]
    fn threads_never_exceed_connections() {
        let p = opts(&["-c", "2", "-t", "8", "http://127.0.0.1/"])
            .plan()
            .unwrap();
        assert_eq!(p.threads, 2);
    }

    #[test]
    fn builds_request_with_host_headers_and_body_length() {
        let t = parse_url("http://127.0.0.1:8080/p").unwrap();
        let r = build_request("POST", &t, &["X-A: 1".into()], b"hey").unwrap();
        assert_eq!(
            r,
            b"POST /p HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nX-A: 1\r\nContent-Length: 3\r\n\r\nhey"
        );
        let r = build_request("GET", &t, &["host: h".into()], b"").unwrap();
        assert_eq!(r, b"GET /p HTTP/1.1\r\nhost: h\r\n\r\n");
        assert!(build_request("GET", &t, &["X: a\r\nY: b".into()], b"").is_err());
    }
}
