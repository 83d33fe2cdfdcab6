//! The serde image of the TOML file, exactly as CONFIG.md writes it (plus the documented
//! extensions `[runtime.io]`, `hash_key`, `dns_refresh`, and the route policies and cluster
//! resilience tables of docs/configuration.md).
//!
//! Invariants: every table denies unknown keys (serde reports the key and its byte span);
//! every value the validator may complain about is `Spanned`, so its line can be reported.
//! Tables that may be implicit (`[runtime.io]` without `[runtime]`, dotted keys) are never
//! `Spanned`: toml 0.8 cannot deserialize `Spanned<struct>` from an implicit table.
//! Integers are kept as `i64` and durations as [`DurationValue`] so that range and unit
//! problems are collected by `validate` (all of them) instead of stopping serde at the first;
//! percentages likewise as [`PercentValue`] (an integer or a float, checked by `validate`).
//! The security tables (`[listeners.tls]`, `[clusters.tls]`, `[[listeners.sni_routes]]`,
//! `[[listeners.authz]]`, `[[listeners.routes.authz]]`) follow the same rules; `from` and `to`
//! of an authorization rule are never `Spanned` (they may be written as dotted keys).
//! The observability keys (`[telemetry]`, `[telemetry.otlp]`, `reporter`,
//! `[listeners.access_log]`, `service`) likewise: no such table is `Spanned`
//! (`telemetry.istio_metrics = true` is a dotted key; `[telemetry.otlp]` alone makes
//! `[telemetry]` implicit).

use std::collections::BTreeMap;
use std::fmt;

use serde::de::{self, Deserializer, Visitor};
use serde::Deserialize;
use toml::Spanned;

pub type Int = Spanned<i64>;
pub type Text = Spanned<String>;
pub type Dur = Spanned<DurationValue>;
pub type Pct = Spanned<PercentValue>;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    pub runtime: Option<RawRuntime>,
    pub admin: Option<RawAdmin>,
    #[serde(default)]
    pub listeners: Vec<Spanned<RawListener>>,
    #[serde(default)]
    pub clusters: Vec<Spanned<RawCluster>>,
    pub telemetry: Option<RawTelemetry>,
}

/// `[telemetry]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTelemetry {
    pub istio_metrics: Option<Spanned<bool>>,
    pub workload: Option<Text>,
    pub namespace: Option<Text>,
    pub app: Option<Text>,
    pub version: Option<Text>,
    pub principal: Option<Text>,
    pub cluster_id: Option<Text>,
    pub trace_context: Option<Text>,
    pub otlp: Option<RawOtlp>,
}

/// `[telemetry.otlp]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawOtlp {
    pub endpoint: Text,
    pub service_name: Option<Text>,
    pub sample_percent: Option<Pct>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRuntime {
    pub workers: Option<Int>,
    pub drain_timeout: Option<Dur>,
    pub io: Option<RawIo>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawIo {
    pub ring_entries: Option<Int>,
    pub recv_buffers: Option<Int>,
    pub recv_buffer_size: Option<Int>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAdmin {
    pub bind: Text,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawListener {
    pub name: Text,
    pub bind: Text,
    pub protocol: Option<Text>,
    pub cluster: Option<Text>,
    pub interception: Option<Text>,
    pub host_mismatch: Option<Text>,
    pub proxy_protocol: Option<Spanned<bool>>,
    pub connect_attempts: Option<Int>,
    pub limits: Option<RawLimits>,
    #[serde(default)]
    pub routes: Vec<Spanned<RawRoute>>,
    pub tls: Option<RawListenerTls>,
    #[serde(default)]
    pub sni_routes: Vec<Spanned<RawSniRoute>>,
    #[serde(default)]
    pub authz: Vec<Spanned<RawAuthzRule>>,
    pub reporter: Option<Text>,
    pub access_log: Option<RawAccessLog>,
}

/// `[listeners.access_log]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAccessLog {
    pub path: Text,
    pub format: Option<Text>,
    pub sample_percent: Option<Pct>,
    pub buffer_bytes: Option<Int>,
}

/// `[listeners.tls]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawListenerTls {
    pub cert: Text,
    pub key: Text,
    pub client_ca: Option<Text>,
    pub identities: Option<Spanned<Vec<Text>>>,
    pub handshake_timeout: Option<Dur>,
    pub min_version: Option<Text>,
    pub alpn: Option<Spanned<Vec<Text>>>,
    pub session_tickets: Option<Spanned<bool>>,
    pub forward_client_cert: Option<Text>,
    #[serde(default)]
    pub sni: Vec<Spanned<RawSniCert>>,
}

/// `[[listeners.tls.sni]]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSniCert {
    pub server_names: Spanned<Vec<Text>>,
    pub cert: Text,
    pub key: Text,
}

/// `[[listeners.sni_routes]]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSniRoute {
    pub server_names: Spanned<Vec<Text>>,
    pub cluster: Text,
}

/// `[[listeners.authz]]` and `[[listeners.routes.authz]]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAuthzRule {
    pub name: Option<Text>,
    pub action: Text,
    pub from: Option<RawAuthzFrom>,
    pub to: Option<RawAuthzTo>,
}

/// `from = { ... }` of an authorization rule.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAuthzFrom {
    pub principals: Option<Spanned<Vec<Text>>>,
    pub namespaces: Option<Spanned<Vec<Text>>>,
    pub ip_blocks: Option<Spanned<Vec<Text>>>,
}

/// `to = { ... }` of an authorization rule.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAuthzTo {
    pub hosts: Option<Spanned<Vec<Text>>>,
    pub methods: Option<Spanned<Vec<Text>>>,
    pub paths: Option<Spanned<Vec<Text>>>,
    pub ports: Option<Spanned<Vec<Int>>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLimits {
    pub max_request_head_bytes: Option<Int>,
    pub max_request_target_bytes: Option<Int>,
    pub max_headers: Option<Int>,
    pub max_request_body_bytes: Option<Int>,
    pub request_head_timeout: Option<Dur>,
    pub idle_timeout: Option<Dur>,
    pub stream_idle_timeout: Option<Dur>,
    pub max_connections: Option<Int>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRoute {
    #[serde(rename = "match")]
    pub matcher: Option<RawMatch>,
    pub cluster: Option<Text>,
    pub split: Option<Spanned<Vec<Spanned<RawSplitEntry>>>>,
    pub direct: Option<RawDirect>,
    pub timeout: Option<Dur>,
    pub per_try_timeout: Option<Dur>,
    pub retry: Option<RawRetry>,
    pub rate_limit: Option<RawRateLimit>,
    pub fault: Option<RawFault>,
    pub mirror: Option<RawMirror>,
    pub headers: Option<RawHeaders>,
    #[serde(default)]
    pub authz: Vec<Spanned<RawAuthzRule>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRetry {
    pub retry_on: Spanned<Vec<Text>>,
    pub retriable_status_codes: Option<Spanned<Vec<Int>>>,
    pub attempts: Option<Int>,
    pub backoff_base: Option<Dur>,
    pub backoff_max: Option<Dur>,
    pub replay_buffer_bytes: Option<Int>,
    pub budget_percent: Option<Int>,
    pub min_retries_per_second: Option<Int>,
    pub budget_window: Option<Dur>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRateLimit {
    pub requests_per_second: Int,
    pub burst: Option<Int>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawFault {
    pub delay: Option<Dur>,
    pub delay_percent: Option<Pct>,
    pub abort_status: Option<Int>,
    pub abort_percent: Option<Pct>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawMirror {
    pub cluster: Text,
    pub percent: Option<Pct>,
}

/// `[listeners.routes.headers]`. File order of the maps is not kept (`validate` sorts every
/// list by lower-case name).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawHeaders {
    pub request_add: Option<BTreeMap<Text, Text>>,
    pub request_set: Option<BTreeMap<Text, Text>>,
    pub request_remove: Option<Vec<Text>>,
    pub response_add: Option<BTreeMap<Text, Text>>,
    pub response_set: Option<BTreeMap<Text, Text>>,
    pub response_remove: Option<Vec<Text>>,
    pub path_prefix_rewrite: Option<Text>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawMatch {
    pub host: Option<Text>,
    pub path_prefix: Option<Text>,
    pub headers: Option<BTreeMap<Text, Text>>,
    pub principal: Option<Text>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSplitEntry {
    pub cluster: Text,
    pub weight: Int,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDirect {
    pub status: Int,
    pub body: Option<Text>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCluster {
    pub name: Text,
    #[serde(rename = "type")]
    pub kind: Option<Text>,
    pub endpoints: Option<Spanned<Vec<Text>>>,
    pub proxy_protocol: Option<Text>,
    pub lb: Option<Text>,
    pub connect_timeout: Option<Dur>,
    pub pool: Option<RawPool>,
    pub hash_key: Option<Text>,
    pub dns_refresh: Option<Dur>,
    pub when_all_unhealthy: Option<Text>,
    pub circuit_breaker: Option<RawCircuitBreaker>,
    pub health_check: Option<RawHealthCheck>,
    pub outlier_detection: Option<RawOutlierDetection>,
    pub tls: Option<RawClusterTls>,
    pub service: Option<Text>,
}

/// `[clusters.tls]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawClusterTls {
    pub ca: Text,
    pub sni: Option<Text>,
    pub cert: Option<Text>,
    pub key: Option<Text>,
    pub identities: Option<Spanned<Vec<Text>>>,
    pub min_version: Option<Text>,
    pub alpn: Option<Spanned<Vec<Text>>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCircuitBreaker {
    pub max_connections: Option<Int>,
    pub max_pending_requests: Option<Int>,
    pub max_requests: Option<Int>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawHealthCheck {
    pub path: Text,
    pub host: Option<Text>,
    pub interval: Option<Dur>,
    pub timeout: Option<Dur>,
    pub healthy_threshold: Option<Int>,
    pub unhealthy_threshold: Option<Int>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawOutlierDetection {
    pub consecutive_5xx: Option<Int>,
    pub consecutive_gateway_failure: Option<Int>,
    pub base_ejection_time: Option<Dur>,
    pub max_ejection_time: Option<Dur>,
    pub max_ejection_percent: Option<Int>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPool {
    pub max_idle: Option<Int>,
    pub idle_timeout: Option<Dur>,
    pub max_requests_per_connection: Option<Int>,
}

/// A duration as written: the text of a string, or a number written without quotes and unit
/// (kept so the validator can say "durations are strings with a unit").
#[derive(Debug, Clone, PartialEq)]
pub enum DurationValue {
    Text(String),
    BareNumber,
}

impl<'de> Deserialize<'de> for DurationValue {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(DurationVisitor)
    }
}

struct DurationVisitor;

impl Visitor<'_> for DurationVisitor {
    type Value = DurationValue;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a duration string with a unit, e.g. \"5s\"")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<DurationValue, E> {
        Ok(DurationValue::Text(v.to_string()))
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<DurationValue, E> {
        Ok(DurationValue::BareNumber)
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<DurationValue, E> {
        Ok(DurationValue::BareNumber)
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<DurationValue, E> {
        Ok(DurationValue::BareNumber)
    }
}

/// A percentage as written: an integer or a float (range and decimals are checked by
/// `validate`, so every such problem is reported, not only the first).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum PercentValue {
    Int(i64),
    Float(f64),
}

impl<'de> Deserialize<'de> for PercentValue {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(PercentVisitor)
    }
}

struct PercentVisitor;

impl Visitor<'_> for PercentVisitor {
    type Value = PercentValue;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a percentage: a number from 0 to 100, e.g. 10 or 0.5")
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<PercentValue, E> {
        Ok(PercentValue::Int(v))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<PercentValue, E> {
        Ok(PercentValue::Int(i64::try_from(v).unwrap_or(i64::MAX)))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<PercentValue, E> {
        Ok(PercentValue::Float(v))
    }
}
