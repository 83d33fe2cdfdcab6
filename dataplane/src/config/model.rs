//! The validated, typed configuration. Produced only by `config::load`/`config::parse`;
//! consumed read-only (behind an `Arc`) by every worker.
//!
//! Cluster references are resolved to [`ClusterId`] indices into [`Config::clusters`].

use std::net::SocketAddr;
use std::time::Duration;

mod security;
mod telemetry;
pub use security::*;
pub use telemetry::*;

/// Index into [`Config::clusters`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ClusterId(pub u32);

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub runtime: RuntimeConfig,
    pub admin: Option<AdminConfig>,
    pub listeners: Vec<ListenerConfig>,
    pub clusters: Vec<ClusterConfig>,
    /// `[telemetry]`: Istio metrics, workload labels, trace context.
    pub telemetry: TelemetryConfig,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuntimeConfig {
    /// Executors, one per core; `None` = all available cores.
    pub workers: Option<usize>,
    pub drain_timeout: Duration,
    pub io: IoConfig,
}

/// `[runtime.io]`: sizing of each worker's io_uring ring and provided-buffer ring.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IoConfig {
    /// Submission queue entries per worker ring (power of two, 64..=4096). Default 1024.
    pub ring_entries: u32,
    /// Receive buffers per worker in the provided-buffer ring (power of two, 16..=32768). Default 1024.
    pub recv_buffers: u32,
    /// Size of each receive buffer in bytes (1024..=1048576). Default 16384.
    pub recv_buffer_size: u32,
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        RuntimeConfig {
            workers: None,
            drain_timeout: Duration::from_secs(10),
            io: IoConfig::default(),
        }
    }
}

impl Default for IoConfig {
    fn default() -> Self {
        IoConfig {
            ring_entries: 1024,
            recv_buffers: 1024,
            recv_buffer_size: 16384,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminConfig {
    pub bind: SocketAddr,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenerConfig {
    pub name: String,
    pub bind: SocketAddr,
    pub protocol: Protocol,
    /// Where a request goes when no route matches; `None` = 404. Always set for `tcp`.
    pub cluster: Option<ClusterId>,
    /// How connections reach the listener (iptables interception or not).
    pub interception: Interception,
    /// An absolute-form request target whose authority differs from `Host`.
    pub host_mismatch: HostMismatch,
    /// Every connection must begin with a PROXY protocol header (v1 or v2); its source
    /// address is then the client's.
    pub proxy_protocol: bool,
    /// `tcp` listeners: endpoints tried per connection when connecting fails (1..=10).
    pub connect_attempts: u32,
    pub limits: Limits,
    pub routes: Vec<RouteConfig>,
    /// `[listeners.tls]`: terminate TLS (both protocols).
    pub tls: Option<ListenerTls>,
    /// `[[listeners.sni_routes]]` (`tcp` listeners without `tls`): pick the cluster by the
    /// ClientHello's server name, relaying the TLS bytes untouched; `cluster` otherwise.
    pub sni_routes: Vec<SniRoute>,
    /// `[[listeners.authz]]`: checked for every request (HTTP) or connection (TCP).
    pub authz: Vec<AuthzRule>,
    /// `reporter`: this listener's side of a call in Istio's metrics.
    pub reporter: Reporter,
    /// `[listeners.access_log]`: one line per request (HTTP) or connection (TCP).
    pub access_log: Option<AccessLogConfig>,
}

/// What an HTTP listener does with `GET http://a/x` and `Host: b` (`host_mismatch`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum HostMismatch {
    /// RFC 9112 §3.2.2: the target's authority wins (routing and the forwarded Host).
    #[default]
    UseTarget,
    /// Answer 400.
    Reject,
}

/// What a listener speaks (`protocol`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Protocol {
    /// HTTP/1.1: routes, policies, pooling.
    #[default]
    Http,
    /// L4: bytes relayed both ways to `cluster`.
    Tcp,
}

/// How connections reach a listener (`interception`, Istio's `interceptionMode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Interception {
    /// Clients connect to the listener's address.
    #[default]
    None,
    /// iptables `REDIRECT`: the original destination is read with `SO_ORIGINAL_DST`.
    Redirect,
    /// iptables `TPROXY`: the listener is `IP_TRANSPARENT` and the original destination is the
    /// address the connection was accepted for.
    Tproxy,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    pub max_request_head_bytes: usize,
    pub max_request_target_bytes: usize,
    pub max_headers: usize,
    /// 0 = unlimited.
    pub max_request_body_bytes: u64,
    pub request_head_timeout: Duration,
    pub idle_timeout: Duration,
    /// Longest wait for progress (a byte read or written) during an exchange: for the
    /// response head, and for request and response bodies. Default: `idle_timeout`.
    pub stream_idle_timeout: Duration,
    pub max_connections: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_request_head_bytes: 65536,
            max_request_target_bytes: 8192,
            max_headers: 100,
            max_request_body_bytes: 0,
            request_head_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            stream_idle_timeout: Duration::from_secs(60),
            max_connections: 100_000,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteConfig {
    pub matcher: RouteMatch,
    pub action: RouteAction,
    /// Whole upstream exchange, until the last response byte.
    pub timeout: Option<Duration>,
    /// Traffic policy of the route; the default (nothing configured) costs nothing.
    pub policy: RoutePolicy,
}

/// All given fields must hold; an empty match matches every request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RouteMatch {
    pub host: Option<HostMatch>,
    pub path_prefix: Option<String>,
    /// (lower-case name, exact value)
    pub headers: Vec<(String, String)>,
    /// The peer's verified identity (mTLS listeners), Istio notation.
    pub principal: Option<StringMatch>,
}

/// Host match, lower-cased, port ignored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostMatch {
    Exact(String),
    /// `*.example.com` is stored as `Suffix(".example.com")`.
    Suffix(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RouteAction {
    Cluster(ClusterId),
    Split(Vec<WeightedCluster>),
    Direct { status: u16, body: String },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WeightedCluster {
    pub cluster: ClusterId,
    pub weight: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterConfig {
    pub name: String,
    pub kind: ClusterKind,
    /// Empty for `original_destination`.
    pub endpoints: Vec<EndpointAddr>,
    /// Send a PROXY protocol header of this version first on every upstream connection.
    pub proxy_protocol: Option<ProxyProtocolVersion>,
    pub lb: LbPolicy,
    pub connect_timeout: Duration,
    pub pool: PoolConfig,
    /// ring_hash key; ignored by other balancers. Default: client address.
    pub hash_key: HashKey,
    /// How often names in `endpoints` are re-resolved. Default 30s.
    pub dns_refresh: Duration,
    /// Circuit breaking, health checking, outlier detection.
    pub resilience: ClusterPolicy,
    /// `[clusters.tls]`: originate TLS to the endpoints.
    pub tls: Option<ClusterTls>,
    /// `service`: the `destination_service` label of Istio's metrics (e.g.
    /// `reviews.shop.svc.cluster.local`); `None` = the cluster's name.
    pub service: Option<String>,
}

/// Where a cluster's endpoints come from (`type`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ClusterKind {
    /// The listed `endpoints` (names resolved by DNS).
    #[default]
    Static,
    /// Each connection goes to where it was going before interception (Envoy's
    /// `ORIGINAL_DST`); the listener must intercept.
    OriginalDestination,
}

/// PROXY protocol versions (haproxy.org/download/2.9/doc/proxy-protocol.txt).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProxyProtocolVersion {
    /// Human-readable line.
    V1,
    /// Binary header.
    V2,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EndpointAddr {
    Ip(SocketAddr),
    Dns { host: String, port: u16 },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LbPolicy {
    RoundRobin,
    LeastRequest,
    Random,
    RingHash,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HashKey {
    /// The downstream client's IP address.
    ClientIp,
    /// The value of a request header (lower-case name); client IP when absent.
    Header(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolConfig {
    pub max_idle: usize,
    pub idle_timeout: Duration,
    /// 0 = unlimited.
    pub max_requests_per_connection: u64,
}

impl Default for PoolConfig {
    fn default() -> Self {
        PoolConfig {
            max_idle: 64,
            idle_timeout: Duration::from_secs(30),
            max_requests_per_connection: 0,
        }
    }
}

/// A fraction of requests, in parts per million (TOML: a number 0..=100, up to 4 decimals).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct Percent(pub u32);

impl Percent {
    pub const MILLION: u32 = 1_000_000;
    pub const ALL: Percent = Percent(Self::MILLION);
}

/// `[listeners.routes.*]` policies (issue 4). `None` = not configured.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RoutePolicy {
    /// Timeout of one upstream try (a retry gets a fresh one); `timeout` bounds all tries.
    pub per_try_timeout: Option<Duration>,
    pub retry: Option<RetryPolicy>,
    pub rate_limit: Option<RateLimit>,
    pub fault: Option<FaultPolicy>,
    pub mirror: Option<MirrorPolicy>,
    pub headers: Option<HeaderPolicy>,
    /// `[[listeners.routes.authz]]`: checked after the listener's rules.
    pub authz: Vec<AuthzRule>,
}

/// `[listeners.routes.retry]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    pub retry_on: RetryOn,
    /// Statuses retried when `retry_on` contains `retriable-status-codes`.
    pub retriable_status_codes: Vec<u16>,
    /// Total tries including the first (1..=10). Default 2.
    pub attempts: u32,
    /// Exponential backoff with full jitter: try n waits up to min(max, base × 2^(n-1)).
    /// Defaults 25ms / 250ms.
    pub backoff_base: Duration,
    pub backoff_max: Duration,
    /// Request bodies up to this size are held so the request can be replayed (default 64 KiB,
    /// 0 = only body-less requests are retried).
    pub replay_buffer_bytes: u64,
    /// Retry budget (Linkerd style): retries ≤ `budget_percent`% of the requests seen in the
    /// last `budget_window`, plus `min_retries_per_second`. Defaults 20%, 10/s, 10s.
    pub budget_percent: u32,
    pub min_retries_per_second: u32,
    pub budget_window: Duration,
}

/// Conditions of `retry_on` (TOML: a list of these names).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RetryOn {
    /// `connect-failure`: the connection could not be opened (refused, timeout).
    pub connect_failure: bool,
    /// `reset`: the upstream closed or reset before any response byte.
    pub reset: bool,
    /// `gateway-error`: 502, 503 or 504 from the upstream (or a per-try timeout).
    pub gateway_error: bool,
    /// `5xx`: any 5xx from the upstream (or a per-try timeout).
    pub server_error: bool,
    /// `retriable-status-codes`: a status in `retriable_status_codes`.
    pub retriable_status_codes: bool,
}

/// `[listeners.routes.rate_limit]`: a token bucket; rate and burst are for the whole process
/// (each of the N workers gets 1/N of both, so no state is shared between cores).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    pub requests_per_second: u32,
    /// Default: `requests_per_second`.
    pub burst: u32,
}

/// `[listeners.routes.fault]`: chaos testing.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FaultPolicy {
    pub delay: Option<Duration>,
    pub delay_percent: Percent,
    pub abort_status: Option<u16>,
    pub abort_percent: Percent,
}

/// `[listeners.routes.mirror]`: shadow a fraction of requests to another cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MirrorPolicy {
    pub cluster: ClusterId,
    pub percent: Percent,
}

/// `[listeners.routes.headers]`: header and path manipulation. Names are lower-case.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HeaderPolicy {
    /// Appended (an existing field of that name is kept).
    pub request_add: Vec<(String, String)>,
    /// Replaces every field of that name.
    pub request_set: Vec<(String, String)>,
    pub request_remove: Vec<String>,
    pub response_add: Vec<(String, String)>,
    pub response_set: Vec<(String, String)>,
    pub response_remove: Vec<String>,
    /// Replaces the matched `path_prefix` (the route must have one) with this.
    pub path_prefix_rewrite: Option<String>,
}

/// Per-cluster resilience (issue 4).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClusterPolicy {
    pub circuit_breaker: Option<CircuitBreaker>,
    pub health_check: Option<HealthCheck>,
    pub outlier_detection: Option<OutlierDetection>,
    /// When every endpoint is unhealthy or ejected: use them all anyway, or answer 503.
    pub when_all_unhealthy: AllUnhealthy,
}

/// `[clusters.circuit_breaker]`: limits for the whole process, shared out between workers
/// (each gets ⌈limit / workers⌉). Over a limit → 503 with `x-ringway-overloaded: <limit>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CircuitBreaker {
    pub max_connections: u32,
    pub max_pending_requests: u32,
    pub max_requests: u32,
}

/// `[clusters.health_check]`: active HTTP health checks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthCheck {
    pub path: String,
    /// Host header sent; default: the cluster name.
    pub host: Option<String>,
    pub interval: Duration,
    pub timeout: Duration,
    pub healthy_threshold: u32,
    pub unhealthy_threshold: u32,
}

/// `[clusters.outlier_detection]`: passive ejection on consecutive failures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutlierDetection {
    /// Consecutive 5xx responses that eject an endpoint (0 = off). Default 5.
    pub consecutive_5xx: u32,
    /// Consecutive gateway failures (connect failure, reset, 502/503/504) that eject (0 = off).
    /// Default 5.
    pub consecutive_gateway_failure: u32,
    /// Ejection n lasts `base_ejection_time × n`, at most `max_ejection_time`.
    pub base_ejection_time: Duration,
    pub max_ejection_time: Duration,
    /// At most this share of the cluster's endpoints is ejected at once (0..=100). Default 50.
    pub max_ejection_percent: u32,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum AllUnhealthy {
    /// Traffic goes to all endpoints as if they were healthy (Envoy's panic mode).
    #[default]
    FailOpen,
    /// Answer 503.
    Reject,
}
