//! The validated, typed configuration. Produced only by `config::load`/`config::parse`;
//! consumed read-only (behind an `Arc`) by every worker.
//!
//! Cluster references are resolved to [`ClusterId`] indices into [`Config::clusters`].

use std::net::SocketAddr;
use std::time::Duration;

/// Index into [`Config::clusters`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ClusterId(pub u32);

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub runtime: RuntimeConfig,
    pub admin: Option<AdminConfig>,
    pub listeners: Vec<ListenerConfig>,
    pub clusters: Vec<ClusterConfig>,
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
    /// Where a request goes when no route matches; `None` = 404.
    pub cluster: Option<ClusterId>,
    pub limits: Limits,
    pub routes: Vec<RouteConfig>,
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
}

/// All given fields must hold; an empty match matches every request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RouteMatch {
    pub host: Option<HostMatch>,
    pub path_prefix: Option<String>,
    /// (lower-case name, exact value)
    pub headers: Vec<(String, String)>,
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
    pub endpoints: Vec<EndpointAddr>,
    pub lb: LbPolicy,
    pub connect_timeout: Duration,
    pub pool: PoolConfig,
    /// ring_hash key; ignored by other balancers. Default: client address.
    pub hash_key: HashKey,
    /// How often names in `endpoints` are re-resolved. Default 30s.
    pub dns_refresh: Duration,
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
