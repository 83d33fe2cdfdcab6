//! The serde image of the TOML file, exactly as CONFIG.md writes it (plus the documented
//! extensions `[runtime.io]`, `hash_key`, `dns_refresh`).
//!
//! Invariants: every table denies unknown keys (serde reports the key and its byte span);
//! every value the validator may complain about is `Spanned`, so its line can be reported.
//! Tables that may be implicit (`[runtime.io]` without `[runtime]`, dotted keys) are never
//! `Spanned`: toml 0.8 cannot deserialize `Spanned<struct>` from an implicit table.
//! Integers are kept as `i64` and durations as [`DurationValue`] so that range and unit
//! problems are collected by `validate` (all of them) instead of stopping serde at the first.

use std::collections::BTreeMap;
use std::fmt;

use serde::de::{self, Deserializer, Visitor};
use serde::Deserialize;
use toml::Spanned;

pub type Int = Spanned<i64>;
pub type Text = Spanned<String>;
pub type Dur = Spanned<DurationValue>;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    pub runtime: Option<RawRuntime>,
    pub admin: Option<RawAdmin>,
    #[serde(default)]
    pub listeners: Vec<Spanned<RawListener>>,
    #[serde(default)]
    pub clusters: Vec<Spanned<RawCluster>>,
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
    pub cluster: Option<Text>,
    pub limits: Option<RawLimits>,
    #[serde(default)]
    pub routes: Vec<Spanned<RawRoute>>,
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
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawMatch {
    pub host: Option<Text>,
    pub path_prefix: Option<Text>,
    pub headers: Option<BTreeMap<Text, Text>>,
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
    pub endpoints: Spanned<Vec<Text>>,
    pub lb: Option<Text>,
    pub connect_timeout: Option<Dur>,
    pub pool: Option<RawPool>,
    pub hash_key: Option<Text>,
    pub dns_refresh: Option<Dur>,
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
