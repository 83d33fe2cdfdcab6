//! Raw TOML model -> validated [`Config`]: defaults filled in, every bound checked, every
//! cluster name resolved to a [`ClusterId`].
//!
//! Invariant: validation never stops at the first problem; every check runs and pushes its
//! error (positioned at the offending value's line) into one list, and a `Config` is built
//! only when that list is empty. Placeholder values returned after an error never escape.

mod authz;
mod l4;
mod policy;
mod resilience;
mod route;
mod security;
pub(super) mod telemetry;

use std::collections::HashMap;
use std::fmt::Display;
use std::net::SocketAddr;
use std::ops::Range;
use std::time::Duration;

use super::address::{binds_conflict, parse_bind, parse_endpoint};
use super::duration;
use super::model::*;
use super::raw::*;
use super::{ConfigError, ConfigErrors};

/// Upper bound of every duration except `drain_timeout` (timers far in the future are a
/// typo, and `Instant + Duration` must never overflow).
pub const MAX_DURATION: Duration = Duration::from_secs(24 * 3600);
pub const MAX_DRAIN_TIMEOUT: Duration = Duration::from_secs(3600);
pub const DEFAULT_DRAIN_TIMEOUT: Duration = Duration::from_secs(10);
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
pub const DEFAULT_DNS_REFRESH: Duration = Duration::from_secs(30);
pub const MAX_WORKERS: i64 = 256;
pub const MAX_NAME_LEN: usize = 64;
pub const LB_NAMES: &str = "round_robin, least_request, random, ring_hash";

/// An HTTP token (RFC 9110 `tchar`), non-empty: methods and header names.
pub(super) fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// The lower bound of a duration.
#[derive(Clone, Copy)]
enum Min {
    Zero,
    Positive,
    AtLeast(Duration),
}

/// Collects errors positioned in `text`.
pub(super) struct Checker<'a> {
    text: &'a str,
    errors: Vec<ConfigError>,
}

impl Checker<'_> {
    fn error(&mut self, span: Range<usize>, path: &str, message: impl Display) {
        self.errors.push(ConfigError::at(
            self.text,
            span.start,
            format!("{path}: {message}"),
        ));
    }

    fn error_unpositioned(&mut self, message: impl Into<String>) {
        self.errors.push(ConfigError::new(message));
    }

    /// An optional integer in `lo..=hi`, or `default` when absent (or invalid).
    fn int(
        &mut self,
        value: &Option<Int>,
        path: &str,
        key: &str,
        lo: i64,
        hi: i64,
        default: i64,
    ) -> i64 {
        let Some(v) = value else { return default };
        let n = *v.get_ref();
        if (lo..=hi).contains(&n) {
            n
        } else {
            self.error(
                v.span(),
                &format!("{path}.{key}"),
                format!("must be between {lo} and {hi}, got {n}"),
            );
            default
        }
    }

    /// Like [`Self::int`], and a power of two.
    fn pow2(
        &mut self,
        value: &Option<Int>,
        path: &str,
        key: &str,
        lo: i64,
        hi: i64,
        default: i64,
    ) -> u32 {
        let n = self.int(value, path, key, lo, hi, default);
        match (value, u32::try_from(n)) {
            (_, Ok(n)) if n.is_power_of_two() => n,
            (Some(v), _) => {
                self.error(
                    v.span(),
                    &format!("{path}.{key}"),
                    format!("must be a power of two, got {n}"),
                );
                0
            }
            (None, _) => 0,
        }
    }

    /// An optional duration within `min..=max`, or `default` when absent (or invalid).
    fn duration(
        &mut self,
        value: &Option<Dur>,
        path: &str,
        key: &str,
        min: Min,
        max: Duration,
        default: Duration,
    ) -> Duration {
        let Some(v) = value else { return default };
        let path = format!("{path}.{key}");
        let text = match v.get_ref() {
            DurationValue::Text(text) => text,
            DurationValue::BareNumber => {
                self.error(
                    v.span(),
                    &path,
                    "durations are strings with a unit, e.g. \"5s\" or \"250ms\", not bare numbers",
                );
                return default;
            }
        };
        let d = match duration::parse(text) {
            Ok(d) => d,
            Err(e) => {
                self.error(v.span(), &path, format!("{text:?}: {e}"));
                return default;
            }
        };
        let low = match min {
            Min::Zero => None,
            Min::Positive if d.is_zero() => Some("must be greater than zero".to_string()),
            Min::AtLeast(m) if d < m => Some(format!("must be at least {}", duration::render(m))),
            Min::Positive | Min::AtLeast(_) => None,
        };
        if let Some(msg) = low {
            self.error(v.span(), &path, msg);
            return default;
        }
        if d > max {
            self.error(
                v.span(),
                &path,
                format!("must be at most {}, got {text:?}", duration::render(max)),
            );
            return default;
        }
        d
    }

    /// Like [`Self::duration`], but `None` when absent or invalid (for cross-key checks that
    /// must not fire on a value already reported).
    fn duration_opt(
        &mut self,
        value: &Option<Dur>,
        path: &str,
        key: &str,
        min: Min,
        max: Duration,
    ) -> Option<Duration> {
        value.as_ref()?;
        let before = self.errors.len();
        let d = self.duration(value, path, key, min, max, Duration::ZERO);
        (self.errors.len() == before).then_some(d)
    }

    /// An optional percentage 0..=100 with at most 4 decimals (an integer or a float), as
    /// parts per million; `default` when absent (or invalid).
    fn percent(&mut self, value: &Option<Pct>, path: &str, key: &str, default: Percent) -> Percent {
        let Some(v) = value else { return default };
        let path = format!("{path}.{key}");
        let result = match *v.get_ref() {
            PercentValue::Int(n) => match u32::try_from(n) {
                Ok(n) if n <= 100 => Ok(Percent(n * 10_000)),
                _ => Err(format!("must be between 0 and 100, got {n}")),
            },
            PercentValue::Float(f) if !(0.0..=100.0).contains(&f) => {
                Err(format!("must be between 0 and 100, got {f}"))
            }
            PercentValue::Float(f) => {
                let ppm = f * 10_000.0;
                let rounded = ppm.round();
                if (ppm - rounded).abs() > 1e-6 {
                    Err(format!(
                        "{f} has more than 4 decimals; the finest step is 0.0001 (one in a million)"
                    ))
                } else {
                    // In range: 0.0 <= rounded <= 1e6 was checked above.
                    Ok(Percent(rounded as u32))
                }
            }
        };
        match result {
            Ok(p) => p,
            Err(msg) => {
                self.error(v.span(), &path, msg);
                default
            }
        }
    }

    /// A listener or cluster name: 1..=64 of `A-Z a-z 0-9 _ - .`.
    fn name(&mut self, name: &Text, path: &str) {
        let n = name.get_ref();
        let ok = !n.is_empty()
            && n.len() <= MAX_NAME_LEN
            && n.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
        if !ok {
            self.error(
                name.span(),
                &format!("{path}.name"),
                format!("{n:?}: names are 1 to {MAX_NAME_LEN} characters of letters, digits, '_', '-' and '.'"),
            );
        }
    }
}

/// Cluster names to ids, for resolving references.
pub(super) struct ClusterNames(HashMap<String, ClusterId>);

impl ClusterNames {
    /// Resolves a reference, or records an error naming the defined clusters.
    fn resolve(&self, c: &mut Checker, name: &Text, path: &str) -> Option<ClusterId> {
        if let Some(id) = self.0.get(name.get_ref()) {
            return Some(*id);
        }
        let mut known: Vec<&str> = self.0.keys().map(String::as_str).collect();
        known.sort_unstable();
        let hint = if known.is_empty() {
            "no [[clusters]] are defined".to_string()
        } else {
            format!("defined clusters: {}", known.join(", "))
        };
        c.error(
            name.span(),
            path,
            format!("unknown cluster {:?} ({hint})", name.get_ref()),
        );
        None
    }
}

pub(super) fn validate(text: &str, raw: RawConfig) -> Result<Config, ConfigErrors> {
    let mut c = Checker {
        text,
        errors: Vec::new(),
    };

    let runtime = runtime(&mut c, raw.runtime.as_ref());
    let telemetry = telemetry::telemetry(&mut c, raw.telemetry.as_ref());
    let admin = raw.admin.as_ref().and_then(|a| {
        let bind = &a.bind;
        match parse_bind(bind.get_ref()) {
            Ok(addr) => Some(AdminConfig { bind: addr }),
            Err(e) => {
                c.error(bind.span(), "admin.bind", e);
                None
            }
        }
    });

    let mut names = HashMap::new();
    for (i, cl) in raw.clusters.iter().enumerate() {
        let name = &cl.get_ref().name;
        c.name(name, &format!("clusters[{i}]"));
        if names.contains_key(name.get_ref()) {
            c.error(
                name.span(),
                &format!("clusters[{i}].name"),
                format!("duplicate cluster name {:?}", name.get_ref()),
            );
        } else if let Ok(id) = u32::try_from(i) {
            names.insert(name.get_ref().clone(), ClusterId(id));
        }
    }
    let names = ClusterNames(names);
    let clusters: Vec<ClusterConfig> = raw
        .clusters
        .iter()
        .enumerate()
        .map(|(i, cl)| cluster(&mut c, cl.get_ref(), &format!("clusters[{i}]")))
        .collect();

    if raw.listeners.is_empty() {
        c.error_unpositioned("no listeners: add at least one [[listeners]] table");
    }
    let mut binds: Vec<(SocketAddr, String)> = Vec::new();
    if let Some(a) = &admin {
        binds.push((a.bind, "admin.bind".to_string()));
    }
    let mut listener_names: Vec<&str> = Vec::new();
    let mut listeners = Vec::new();
    for (i, l) in raw.listeners.iter().enumerate() {
        let path = format!("listeners[{i}]");
        let l = l.get_ref();
        if listener_names.contains(&l.name.get_ref().as_str()) {
            c.error(
                l.name.span(),
                &format!("{path}.name"),
                format!("duplicate listener name {:?}", l.name.get_ref()),
            );
        }
        listener_names.push(l.name.get_ref());
        let built = listener(&mut c, l, &path, &names, &mut binds);
        l4::reachability(&mut c, l, &built, &clusters, &path);
        listeners.push(built);
    }

    if let Some(errors) = ConfigErrors::from_vec(c.errors) {
        return Err(errors);
    }
    Ok(Config {
        runtime,
        admin,
        listeners,
        clusters,
        telemetry,
    })
}

/// One listener; `binds` holds the binds seen so far (name for messages), this one is added.
fn listener(
    c: &mut Checker,
    l: &RawListener,
    path: &str,
    names: &ClusterNames,
    binds: &mut Vec<(SocketAddr, String)>,
) -> ListenerConfig {
    c.name(&l.name, path);
    let bind = match parse_bind(l.bind.get_ref()) {
        Ok(addr) => {
            if let Some((_, other)) = binds.iter().find(|(b, _)| binds_conflict(*b, addr)) {
                c.error(
                    l.bind.span(),
                    &format!("{path}.bind"),
                    format!("{addr} conflicts with {other}"),
                );
            }
            binds.push((addr, format!("{path}.bind")));
            addr
        }
        Err(e) => {
            c.error(l.bind.span(), &format!("{path}.bind"), e);
            SocketAddr::from(([0, 0, 0, 0], 0))
        }
    };
    let protocol = l4::protocol(c, &l.protocol, path);
    let interception = l4::interception(c, &l.interception, path);
    let connect_attempts = l4::listener_rules(c, l, protocol, path);
    let cluster = l
        .cluster
        .as_ref()
        .and_then(|n| names.resolve(c, n, &format!("{path}.cluster")));
    let limits = limits(c, l.limits.as_ref(), &format!("{path}.limits"));
    let host_mismatch = l4::host_mismatch(c, &l.host_mismatch, protocol, path);
    let routes = l
        .routes
        .iter()
        .enumerate()
        .filter_map(|(j, r)| {
            let rule_prefix = format!("{}.routes[{j}]", l.name.get_ref());
            route::route(c, r, &format!("{path}.routes[{j}]"), &rule_prefix, names)
        })
        .collect();
    let tls = security::listener_tls(c, l.tls.as_ref(), protocol, &format!("{path}.tls"));
    let sni_routes = security::sni_routes(c, l, protocol, names, path);
    let authz = authz::rules(
        c,
        &l.authz,
        &format!("{path}.authz"),
        l.name.get_ref(),
        protocol,
    );
    authz::check_rule_names(c, l, path);
    let reporter = telemetry::reporter(c, &l.reporter, path);
    let access_log = telemetry::access_log(c, l.access_log.as_ref(), &format!("{path}.access_log"));
    ListenerConfig {
        name: l.name.get_ref().clone(),
        bind,
        protocol,
        cluster,
        interception,
        host_mismatch,
        proxy_protocol: l.proxy_protocol.as_ref().is_some_and(|b| *b.get_ref()),
        connect_attempts,
        limits,
        routes,
        tls,
        sni_routes,
        authz,
        reporter,
        access_log,
    }
}

fn runtime(c: &mut Checker, raw: Option<&RawRuntime>) -> RuntimeConfig {
    let Some(raw) = raw else {
        return RuntimeConfig::default();
    };
    let workers = raw
        .workers
        .as_ref()
        .map(|_| c.int(&raw.workers, "runtime", "workers", 1, MAX_WORKERS, 1));
    let drain_timeout = c.duration(
        &raw.drain_timeout,
        "runtime",
        "drain_timeout",
        Min::Zero,
        MAX_DRAIN_TIMEOUT,
        DEFAULT_DRAIN_TIMEOUT,
    );
    let io = match raw.io.as_ref() {
        None => IoConfig::default(),
        Some(io) => {
            let d = IoConfig::default();
            let p = "runtime.io";
            let recv_buffer_size = c.int(
                &io.recv_buffer_size,
                p,
                "recv_buffer_size",
                1024,
                1 << 20,
                d.recv_buffer_size.into(),
            );
            IoConfig {
                ring_entries: c.pow2(
                    &io.ring_entries,
                    p,
                    "ring_entries",
                    64,
                    4096,
                    d.ring_entries.into(),
                ),
                recv_buffers: c.pow2(
                    &io.recv_buffers,
                    p,
                    "recv_buffers",
                    16,
                    32768,
                    d.recv_buffers.into(),
                ),
                recv_buffer_size: u32::try_from(recv_buffer_size).unwrap_or(d.recv_buffer_size),
            }
        }
    };
    RuntimeConfig {
        workers: workers.and_then(|w| usize::try_from(w).ok()),
        drain_timeout,
        io,
    }
}

fn limits(c: &mut Checker, raw: Option<&RawLimits>, path: &str) -> Limits {
    let d = Limits::default();
    let Some(raw) = raw else { return d };
    let to_usize = |n: i64| usize::try_from(n).unwrap_or(0);
    let idle_timeout = c.duration(
        &raw.idle_timeout,
        path,
        "idle_timeout",
        Min::Positive,
        MAX_DURATION,
        d.idle_timeout,
    );
    let head = c.int(
        &raw.max_request_head_bytes,
        path,
        "max_request_head_bytes",
        1024,
        1 << 20,
        d.max_request_head_bytes as i64,
    );
    let target = c.int(
        &raw.max_request_target_bytes,
        path,
        "max_request_target_bytes",
        16,
        head,
        (d.max_request_target_bytes as i64).min(head),
    );
    Limits {
        max_request_head_bytes: to_usize(head),
        max_request_target_bytes: to_usize(target),
        max_headers: to_usize(c.int(
            &raw.max_headers,
            path,
            "max_headers",
            1,
            256,
            d.max_headers as i64,
        )),
        max_request_body_bytes: u64::try_from(c.int(
            &raw.max_request_body_bytes,
            path,
            "max_request_body_bytes",
            0,
            i64::MAX,
            0,
        ))
        .unwrap_or(0),
        request_head_timeout: c.duration(
            &raw.request_head_timeout,
            path,
            "request_head_timeout",
            Min::Positive,
            MAX_DURATION,
            d.request_head_timeout,
        ),
        idle_timeout,
        stream_idle_timeout: c.duration(
            &raw.stream_idle_timeout,
            path,
            "stream_idle_timeout",
            Min::Positive,
            MAX_DURATION,
            idle_timeout,
        ),
        max_connections: to_usize(c.int(
            &raw.max_connections,
            path,
            "max_connections",
            1,
            1_000_000,
            d.max_connections as i64,
        )),
    }
}

fn cluster(c: &mut Checker, raw: &RawCluster, path: &str) -> ClusterConfig {
    let kind = l4::cluster_kind(c, raw, path);
    let mut endpoints: Vec<EndpointAddr> = Vec::new();
    let listed: &[Text] = match (&raw.endpoints, kind) {
        (_, ClusterKind::OriginalDestination) => {
            l4::original_destination_rules(c, raw, path);
            &[]
        }
        (None, ClusterKind::Static) => {
            c.error(
                raw.name.span(),
                &format!("{path}.endpoints"),
                "a cluster needs `endpoints` (or type = \"original_destination\")",
            );
            &[]
        }
        (Some(eps), ClusterKind::Static) => {
            if eps.get_ref().is_empty() {
                c.error(
                    eps.span(),
                    &format!("{path}.endpoints"),
                    "a cluster needs at least one endpoint",
                );
            }
            eps.get_ref()
        }
    };
    for (i, e) in listed.iter().enumerate() {
        let epath = format!("{path}.endpoints[{i}]");
        match parse_endpoint(e.get_ref()) {
            Ok(addr) if endpoints.contains(&addr) => c.error(
                e.span(),
                &epath,
                format!("duplicate endpoint {:?}", e.get_ref()),
            ),
            Ok(addr) => endpoints.push(addr),
            Err(msg) => c.error(e.span(), &epath, msg),
        }
    }
    let lb = match raw.lb.as_ref() {
        None => LbPolicy::RoundRobin,
        Some(lb) => match lb.get_ref().as_str() {
            "round_robin" => LbPolicy::RoundRobin,
            "least_request" => LbPolicy::LeastRequest,
            "random" => LbPolicy::Random,
            "ring_hash" => LbPolicy::RingHash,
            other => {
                c.error(
                    lb.span(),
                    &format!("{path}.lb"),
                    format!("unknown lb {other:?}; expected one of {LB_NAMES}"),
                );
                LbPolicy::RoundRobin
            }
        },
    };
    let hash_key = match raw.hash_key.as_ref() {
        None => HashKey::ClientIp,
        Some(k) => {
            let kpath = format!("{path}.hash_key");
            if lb != LbPolicy::RingHash {
                c.error(
                    k.span(),
                    &kpath,
                    "hash_key applies only to lb = \"ring_hash\"",
                );
            }
            match k.get_ref().as_str() {
                "client_ip" => HashKey::ClientIp,
                other => match other.strip_prefix("header:") {
                    Some(name) if is_token(name) => HashKey::Header(name.to_ascii_lowercase()),
                    Some(name) => {
                        c.error(
                            k.span(),
                            &kpath,
                            format!("{name:?} is not a valid header name"),
                        );
                        HashKey::ClientIp
                    }
                    None => {
                        c.error(
                            k.span(),
                            &kpath,
                            format!("{other:?}: expected \"client_ip\" or \"header:<name>\""),
                        );
                        HashKey::ClientIp
                    }
                },
            }
        }
    };
    let pool = match raw.pool.as_ref() {
        None => PoolConfig::default(),
        Some(p) => {
            let d = PoolConfig::default();
            let pp = format!("{path}.pool");
            PoolConfig {
                max_idle: usize::try_from(c.int(
                    &p.max_idle,
                    &pp,
                    "max_idle",
                    0,
                    65536,
                    d.max_idle as i64,
                ))
                .unwrap_or(0),
                idle_timeout: c.duration(
                    &p.idle_timeout,
                    &pp,
                    "idle_timeout",
                    Min::Positive,
                    MAX_DURATION,
                    d.idle_timeout,
                ),
                max_requests_per_connection: u64::try_from(c.int(
                    &p.max_requests_per_connection,
                    &pp,
                    "max_requests_per_connection",
                    0,
                    i64::MAX,
                    0,
                ))
                .unwrap_or(0),
            }
        }
    };
    ClusterConfig {
        name: raw.name.get_ref().clone(),
        kind,
        endpoints,
        proxy_protocol: l4::proxy_protocol_version(c, &raw.proxy_protocol, path),
        lb,
        connect_timeout: c.duration(
            &raw.connect_timeout,
            path,
            "connect_timeout",
            Min::Positive,
            MAX_DURATION,
            DEFAULT_CONNECT_TIMEOUT,
        ),
        pool,
        hash_key,
        dns_refresh: c.duration(
            &raw.dns_refresh,
            path,
            "dns_refresh",
            Min::AtLeast(Duration::from_secs(1)),
            MAX_DURATION,
            DEFAULT_DNS_REFRESH,
        ),
        resilience: resilience::cluster_policy(c, raw, path),
        tls: security::cluster_tls(c, raw.tls.as_ref(), &format!("{path}.tls")),
        service: telemetry::service(c, &raw.service, path),
    }
}
