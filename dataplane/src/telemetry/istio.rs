//! Istio's standard metrics (istio.io/latest/docs/reference/config/metrics): names, labels and
//! buckets as Istio documents them, so dashboards built for Istio's sidecars work unchanged.
//!
//! - [`IstioShard`]: one core's series, in a table keyed by a packed `u64` (view generation,
//!   listener, cluster slot, status, response flags, peer identity). The label text of a
//!   series is rendered once, when the series first appears; after that a request is a hash
//!   lookup (the previous key is checked first) and a few array increments. No atomics, no
//!   locks, no allocation once the series exist.
//! - [`IstioLabels`]: the label values of one view (workload from config and environment,
//!   `reporter` per listener, `destination_service` per cluster), built with the view.
//! - [`IstioSnapshot`]: series by label text, merged across cores and rendered at scrape.
//!
//! Invariant: the key says everything the label text depends on (the generation stands for the
//! config the labels came from), so two series with one key always have one label text;
//! series of different keys with the same text merge at scrape.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::fmt::Write as _;

use rustc_hash::FxHashMap;

use crate::config::{Config, Reporter, WorkloadConfig};

use super::ErrorKind;

/// `istio_request_duration_milliseconds` bucket bounds (Istio's defaults), in ms.
pub const DURATION_BUCKETS_MS: [f64; 19] = [
    0.5, 1.0, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2500.0, 5000.0, 10000.0, 30000.0,
    60000.0, 300000.0, 600000.0, 1800000.0, 3600000.0,
];
/// `istio_request_bytes` / `istio_response_bytes` bucket bounds (1 .. 10^9, factor 10).
pub const BYTES_BUCKETS: [u64; 10] = [
    1,
    10,
    100,
    1_000,
    10_000,
    100_000,
    1_000_000,
    10_000_000,
    100_000_000,
    1_000_000_000,
];

/// Envoy's response flag for what went wrong (`-`: nothing).
pub fn response_flags(kind: Option<ErrorKind>) -> &'static str {
    match kind {
        None | Some(ErrorKind::Internal) => "-",
        Some(ErrorKind::NoRoute | ErrorKind::RedirectLoop) => "NR",
        Some(ErrorKind::NoHealthyEndpoint) => "UH",
        Some(ErrorKind::UpstreamConnect) => "UF",
        Some(ErrorKind::UpstreamReset) => "UC",
        Some(ErrorKind::UpstreamTimeout) => "UT",
        Some(ErrorKind::BadResponse) => "UPE",
        Some(ErrorKind::RateLimited) => "RL",
        Some(ErrorKind::Overloaded) => "UO",
        Some(ErrorKind::DownstreamReset) => "DC",
        Some(ErrorKind::StreamIdleTimeout) => "SI",
        Some(ErrorKind::BadRequest | ErrorKind::HeadTimeout | ErrorKind::ProxyProtocol) => "DPE",
    }
}

fn flag_index(kind: Option<ErrorKind>) -> u64 {
    kind.map_or(0, |k| k.index() as u64 + 1)
}

/// The workload labels after the environment filled what the config left unset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkloadLabels {
    pub name: String,
    pub namespace: String,
    pub app: String,
    pub version: String,
    pub principal: String,
    pub cluster_id: String,
}

impl WorkloadLabels {
    /// Config keys first, then the variables an Istio-style injector sets, then `unknown`.
    pub fn resolve(cfg: &WorkloadConfig, env: impl Fn(&str) -> Option<String>) -> WorkloadLabels {
        let labels: BTreeMap<String, String> = env("ISTIO_METAJSON_LABELS")
            .map(|j| parse_flat_json(&j))
            .unwrap_or_default();
        let label = |keys: &[&str]| keys.iter().find_map(|k| labels.get(*k).cloned());
        let unknown = || "unknown".to_string();
        let namespace = cfg
            .namespace
            .clone()
            .or_else(|| env("POD_NAMESPACE"))
            .unwrap_or_else(unknown);
        let principal = cfg.principal.clone().or_else(|| {
            env("SERVICE_ACCOUNT").map(|sa| {
                let td = env("TRUST_DOMAIN").unwrap_or_else(|| "cluster.local".into());
                format!("spiffe://{td}/ns/{namespace}/sa/{sa}")
            })
        });
        WorkloadLabels {
            name: cfg
                .name
                .clone()
                .or_else(|| env("ISTIO_META_WORKLOAD_NAME"))
                .unwrap_or_else(unknown),
            app: cfg
                .app
                .clone()
                .or_else(|| {
                    label(&[
                        "service.istio.io/canonical-name",
                        "app.kubernetes.io/name",
                        "app",
                    ])
                })
                .unwrap_or_else(unknown),
            version: cfg
                .version
                .clone()
                .or_else(|| {
                    label(&[
                        "service.istio.io/canonical-revision",
                        "app.kubernetes.io/version",
                        "version",
                    ])
                })
                .unwrap_or_else(|| "latest".into()),
            principal: principal.unwrap_or_else(unknown),
            cluster_id: cfg
                .cluster_id
                .clone()
                .or_else(|| env("ISTIO_META_CLUSTER_ID"))
                .unwrap_or_else(|| "Kubernetes".into()),
            namespace,
        }
    }
}

/// A flat JSON object of strings (`{"app":"cart","version":"v1"}`), as ISTIO_METAJSON_LABELS
/// carries; anything else yields what could be read before it.
fn parse_flat_json(text: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut strings = Vec::new();
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c != '"' {
            continue;
        }
        let mut s = String::new();
        while let Some(c) = chars.next() {
            match c {
                '"' => break,
                '\\' => {
                    if let Some(n) = chars.next() {
                        s.push(n);
                    }
                }
                c => s.push(c),
            }
        }
        strings.push(s);
    }
    let mut it = strings.into_iter();
    while let (Some(k), Some(v)) = (it.next(), it.next()) {
        out.insert(k, v);
    }
    out
}

/// A Prometheus label value, escaped.
fn esc(out: &mut String, v: &str) {
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

fn label(out: &mut String, name: &str, value: &str) {
    if !out.is_empty() {
        out.push(',');
    }
    out.push_str(name);
    out.push_str("=\"");
    esc(out, value);
    out.push('"');
}

/// The label values of one view. See the module doc.
#[derive(Debug, Clone)]
pub struct IstioLabels {
    pub workload: WorkloadLabels,
    /// Per listener: (name, reporter).
    listeners: Vec<Reporter>,
    /// Per cluster: `destination_service`.
    services: Vec<String>,
    /// This view's generation (part of every key).
    pub generation: u16,
}

/// Who the other side of a call is, as far as this proxy knows.
#[derive(Debug, Clone, Copy, Default)]
pub struct Peer<'a> {
    /// The verified identity of an mTLS client (SPIFFE ID or DNS name).
    pub identity: Option<&'a str>,
}

impl IstioLabels {
    /// Labels for `cfg`, or `None` when `istio_metrics` is off.
    pub fn new(cfg: &Config, generation: u16) -> Option<IstioLabels> {
        if !cfg.telemetry.istio_metrics {
            return None;
        }
        Some(IstioLabels {
            workload: WorkloadLabels::resolve(&cfg.telemetry.workload, |k| std::env::var(k).ok()),
            listeners: cfg.listeners.iter().map(|l| l.reporter).collect(),
            services: cfg
                .clusters
                .iter()
                .map(|c| c.service.clone().unwrap_or_else(|| c.name.clone()))
                .collect(),
            generation,
        })
    }

    /// The full label text of a series (`tcp`: Istio's TCP label set).
    fn render(
        &self,
        listener: usize,
        cluster: Option<usize>,
        status: u16,
        flags: &str,
        peer: Peer<'_>,
        tcp: bool,
    ) -> String {
        let reporter = self.listeners.get(listener).copied().unwrap_or_default();
        let w = &self.workload;
        let unknown = "unknown";
        let service = cluster
            .and_then(|c| self.services.get(c))
            .map_or(unknown, String::as_str);
        // `name.namespace.svc...` names a Kubernetes service; anything else is just a name.
        let mut parts = service.split('.');
        let service_name = parts.next().unwrap_or(unknown);
        let service_ns = parts.next().unwrap_or(match reporter {
            Reporter::Destination => &w.namespace,
            Reporter::Source => unknown,
        });
        let peer_ns = peer
            .identity
            .and_then(crate::tls::identity::namespace)
            .unwrap_or(unknown);
        let mut s = String::with_capacity(640);
        let (src, dst): ([&str; 7], [&str; 7]) = match reporter {
            Reporter::Destination => (
                [
                    unknown,
                    unknown,
                    "latest",
                    peer_ns,
                    peer.identity.unwrap_or(unknown),
                    unknown,
                    unknown,
                ],
                [
                    &w.name,
                    &w.app,
                    &w.version,
                    &w.namespace,
                    &w.principal,
                    &w.app,
                    &w.version,
                ],
            ),
            Reporter::Source => (
                [
                    &w.name,
                    &w.app,
                    &w.version,
                    &w.namespace,
                    &w.principal,
                    &w.app,
                    &w.version,
                ],
                [
                    unknown,
                    service_name,
                    "latest",
                    service_ns,
                    unknown,
                    unknown,
                    unknown,
                ],
            ),
        };
        label(
            &mut s,
            "reporter",
            match reporter {
                Reporter::Destination => "destination",
                Reporter::Source => "source",
            },
        );
        label(&mut s, "source_workload", src[0]);
        label(&mut s, "source_canonical_service", src[1]);
        label(&mut s, "source_canonical_revision", src[2]);
        label(&mut s, "source_workload_namespace", src[3]);
        label(&mut s, "source_principal", src[4]);
        label(&mut s, "source_app", src[5]);
        label(&mut s, "source_version", src[6]);
        label(
            &mut s,
            "source_cluster",
            if reporter == Reporter::Source {
                &w.cluster_id
            } else {
                unknown
            },
        );
        label(&mut s, "destination_workload", dst[0]);
        label(&mut s, "destination_workload_namespace", dst[3]);
        label(&mut s, "destination_principal", dst[4]);
        label(&mut s, "destination_app", dst[5]);
        label(&mut s, "destination_version", dst[6]);
        label(&mut s, "destination_service", service);
        label(&mut s, "destination_canonical_service", dst[1]);
        label(&mut s, "destination_canonical_revision", dst[2]);
        label(&mut s, "destination_service_name", service_name);
        label(&mut s, "destination_service_namespace", service_ns);
        label(
            &mut s,
            "destination_cluster",
            if reporter == Reporter::Destination {
                &w.cluster_id
            } else {
                unknown
            },
        );
        label(&mut s, "request_protocol", if tcp { "tcp" } else { "http" });
        if !tcp {
            let mut code = String::new();
            let _ = write!(code, "{status}");
            label(&mut s, "response_code", &code);
            label(&mut s, "grpc_response_status", "");
        }
        label(&mut s, "response_flags", flags);
        label(
            &mut s,
            "connection_security_policy",
            match (reporter, peer.identity) {
                (Reporter::Source, _) => "unknown",
                (Reporter::Destination, Some(_)) => "mutual_tls",
                (Reporter::Destination, None) => "none",
            },
        );
        s
    }
}

/// One HTTP series: a request count and three histograms (non-cumulative counts; the last
/// bucket is +Inf).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HttpSeries {
    pub requests: u64,
    pub duration: [u64; DURATION_BUCKETS_MS.len() + 1],
    pub duration_sum_us: u64,
    pub request_bytes: [u64; BYTES_BUCKETS.len() + 1],
    pub request_bytes_sum: u64,
    pub response_bytes: [u64; BYTES_BUCKETS.len() + 1],
    pub response_bytes_sum: u64,
}

impl HttpSeries {
    fn add(&mut self, o: &HttpSeries) {
        self.requests += o.requests;
        add_all(&mut self.duration, &o.duration);
        self.duration_sum_us += o.duration_sum_us;
        add_all(&mut self.request_bytes, &o.request_bytes);
        self.request_bytes_sum += o.request_bytes_sum;
        add_all(&mut self.response_bytes, &o.response_bytes);
        self.response_bytes_sum += o.response_bytes_sum;
    }
}

/// One TCP series.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TcpSeries {
    pub opened: u64,
    pub closed: u64,
    pub sent: u64,
    pub received: u64,
}

impl TcpSeries {
    fn add(&mut self, o: &TcpSeries) {
        self.opened += o.opened;
        self.closed += o.closed;
        self.sent += o.sent;
        self.received += o.received;
    }
}

fn add_all<const N: usize>(a: &mut [u64; N], b: &[u64; N]) {
    for (x, y) in a.iter_mut().zip(b) {
        *x += y;
    }
}

/// Non-cumulative bucket index of `us` µs in [`DURATION_BUCKETS_MS`] (`len` = +Inf).
fn duration_bucket(us: u64) -> usize {
    let ms = us as f64 / 1000.0;
    DURATION_BUCKETS_MS
        .iter()
        .position(|&b| ms <= b)
        .unwrap_or(DURATION_BUCKETS_MS.len())
}

fn bytes_bucket(n: u64) -> usize {
    BYTES_BUCKETS
        .iter()
        .position(|&b| n <= b)
        .unwrap_or(BYTES_BUCKETS.len())
}

struct Table<S> {
    index: FxHashMap<u64, u32>,
    series: Vec<(String, S)>,
    last: Option<(u64, u32)>,
}

impl<S: Default> Table<S> {
    fn new() -> Self {
        Table {
            index: FxHashMap::default(),
            series: Vec::new(),
            last: None,
        }
    }

    /// The series of `key`, created with `labels()` the first time.
    fn get(&mut self, key: u64, labels: impl FnOnce() -> String) -> &mut S {
        let i = match self.last {
            Some((k, i)) if k == key => i,
            _ => {
                let next = self.series.len() as u32;
                let i = *self.index.entry(key).or_insert(next);
                if i == next {
                    self.series.push((labels(), S::default()));
                }
                self.last = Some((key, i));
                i
            }
        };
        &mut self.series[i as usize].1
    }
}

/// The peer identities a core has seen, by small index (part of the key).
#[derive(Default)]
struct Peers {
    ids: FxHashMap<Box<str>, u64>,
}

impl Peers {
    /// 0 = no identity.
    fn index(&mut self, identity: Option<&str>) -> u64 {
        let Some(id) = identity else { return 0 };
        if let Some(&i) = self.ids.get(id) {
            return i;
        }
        let i = (self.ids.len() as u64 + 1) & 0xffff;
        self.ids.insert(id.into(), i);
        i
    }
}

/// One core's Istio series. See the module doc.
pub struct IstioShard {
    http: RefCell<Table<HttpSeries>>,
    tcp: RefCell<Table<TcpSeries>>,
    peers: RefCell<Peers>,
}

impl Default for IstioShard {
    fn default() -> Self {
        IstioShard {
            http: RefCell::new(Table::new()),
            tcp: RefCell::new(Table::new()),
            peers: RefCell::new(Peers::default()),
        }
    }
}

/// What happened on a TCP connection (see [`IstioShard::tcp`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TcpEvent {
    Opened,
    /// Bytes sent to the client.
    Sent(u64),
    /// Bytes received from the client.
    Received(u64),
    Closed,
}

/// What one finished HTTP request adds.
#[derive(Debug, Clone, Copy)]
pub struct HttpSample<'a> {
    pub listener: usize,
    pub cluster: Option<usize>,
    pub status: u16,
    pub error: Option<ErrorKind>,
    pub peer: Peer<'a>,
    pub duration_us: u64,
    pub request_bytes: u64,
    pub response_bytes: u64,
}

fn key(gen: u16, listener: usize, cluster: Option<usize>, a: u64, flags: u64, peer: u64) -> u64 {
    let slot = cluster.map_or(0, |c| c as u64 + 1) & 0xfff;
    (u64::from(gen) << 48)
        | ((listener as u64 & 0xff) << 40)
        | (slot << 28)
        | ((a & 0x3ff) << 18)
        | ((flags & 0x3f) << 12)
        | (peer & 0xfff)
}

impl IstioShard {
    /// Counts a finished request.
    pub fn request(&self, labels: &IstioLabels, s: &HttpSample<'_>) {
        let peer = self.peers.borrow_mut().index(s.peer.identity);
        let k = key(
            labels.generation,
            s.listener,
            s.cluster,
            u64::from(s.status),
            flag_index(s.error),
            peer,
        );
        let mut t = self.http.borrow_mut();
        let flags = response_flags(s.error);
        let series = t.get(k, || {
            labels.render(s.listener, s.cluster, s.status, flags, s.peer, false)
        });
        series.requests += 1;
        series.duration[duration_bucket(s.duration_us)] += 1;
        series.duration_sum_us += s.duration_us;
        series.request_bytes[bytes_bucket(s.request_bytes)] += 1;
        series.request_bytes_sum += s.request_bytes;
        series.response_bytes[bytes_bucket(s.response_bytes)] += 1;
        series.response_bytes_sum += s.response_bytes;
    }

    /// Counts a TCP connection's event: opened, bytes moved (as they move, so long-lived
    /// connections show up without waiting for their close), closed.
    pub fn tcp(
        &self,
        labels: &IstioLabels,
        listener: usize,
        cluster: Option<usize>,
        peer: Peer<'_>,
        event: TcpEvent,
    ) {
        let p = self.peers.borrow_mut().index(peer.identity);
        let k = key(labels.generation, listener, cluster, 0, 0, p);
        let mut t = self.tcp.borrow_mut();
        let series = t.get(k, || labels.render(listener, cluster, 0, "-", peer, true));
        match event {
            TcpEvent::Opened => series.opened += 1,
            TcpEvent::Sent(n) => series.sent += n,
            TcpEvent::Received(n) => series.received += n,
            TcpEvent::Closed => series.closed += 1,
        }
    }

    /// A copy of every series (admin path; allocates).
    pub fn snapshot(&self) -> IstioSnapshot {
        let mut snap = IstioSnapshot::default();
        for (l, s) in &self.http.borrow().series {
            snap.http.entry(l.clone()).or_default().add(s);
        }
        for (l, s) in &self.tcp.borrow().series {
            snap.tcp.entry(l.clone()).or_default().add(s);
        }
        snap
    }
}

/// Series by label text, merged across cores.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct IstioSnapshot {
    pub http: BTreeMap<String, HttpSeries>,
    pub tcp: BTreeMap<String, TcpSeries>,
}

impl IstioSnapshot {
    pub fn merge(&mut self, o: &IstioSnapshot) {
        for (l, s) in &o.http {
            self.http.entry(l.clone()).or_default().add(s);
        }
        for (l, s) in &o.tcp {
            self.tcp.entry(l.clone()).or_default().add(s);
        }
    }

    /// The Prometheus text of every series (nothing when there is none).
    pub fn render(&self, out: &mut String) {
        if !self.http.is_empty() {
            family(
                out,
                "istio_requests_total",
                "counter",
                "Requests handled by the proxy.",
            );
            for (l, s) in &self.http {
                let _ = writeln!(out, "istio_requests_total{{{l}}} {}", s.requests);
            }
            family(
                out,
                "istio_request_duration_milliseconds",
                "histogram",
                "Request duration, complete request head to the end of the response.",
            );
            let le: Vec<String> = DURATION_BUCKETS_MS.iter().map(|b| format!("{b}")).collect();
            for (l, s) in &self.http {
                histogram(
                    out,
                    "istio_request_duration_milliseconds",
                    l,
                    &le,
                    &s.duration,
                    &format!("{}", s.duration_sum_us as f64 / 1000.0),
                );
            }
            let le: Vec<String> = BYTES_BUCKETS.iter().map(|b| b.to_string()).collect();
            family(
                out,
                "istio_request_bytes",
                "histogram",
                "Request sizes (head and body).",
            );
            for (l, s) in &self.http {
                let sum = s.request_bytes_sum.to_string();
                histogram(out, "istio_request_bytes", l, &le, &s.request_bytes, &sum);
            }
            family(
                out,
                "istio_response_bytes",
                "histogram",
                "Response sizes (head and body).",
            );
            for (l, s) in &self.http {
                let sum = s.response_bytes_sum.to_string();
                histogram(out, "istio_response_bytes", l, &le, &s.response_bytes, &sum);
            }
        }
        if !self.tcp.is_empty() {
            let families: [TcpFamily; 4] = [
                (
                    "istio_tcp_sent_bytes_total",
                    "Bytes sent to the client of a TCP connection.",
                    |s| s.sent,
                ),
                (
                    "istio_tcp_received_bytes_total",
                    "Bytes received from the client of a TCP connection.",
                    |s| s.received,
                ),
                (
                    "istio_tcp_connections_opened_total",
                    "TCP connections opened.",
                    |s| s.opened,
                ),
                (
                    "istio_tcp_connections_closed_total",
                    "TCP connections closed.",
                    |s| s.closed,
                ),
            ];
            for (name, help, get) in families {
                family(out, name, "counter", help);
                for (l, s) in &self.tcp {
                    let _ = writeln!(out, "{name}{{{l}}} {}", get(s));
                }
            }
        }
    }
}

/// A TCP counter family: name, help, and the value it reads from a series.
type TcpFamily = (&'static str, &'static str, fn(&TcpSeries) -> u64);

fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

fn histogram(out: &mut String, name: &str, labels: &str, le: &[String], counts: &[u64], sum: &str) {
    let mut cumulative = 0u64;
    for (bound, c) in le.iter().zip(counts) {
        cumulative += c;
        let _ = writeln!(out, "{name}_bucket{{{labels},le=\"{bound}\"}} {cumulative}");
    }
    let total: u64 = counts.iter().sum();
    let _ = writeln!(out, "{name}_bucket{{{labels},le=\"+Inf\"}} {total}");
    let _ = writeln!(out, "{name}_sum{{{labels}}} {sum}");
    let _ = writeln!(out, "{name}_count{{{labels}}} {total}");
}

#[cfg(test)]
mod tests;
