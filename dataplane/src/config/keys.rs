//! The set of keys the file may hold, as a static schema, and a scan that reports every
//! unknown key at once (serde's `deny_unknown_fields` stops at the first).
//!
//! Invariant: [`SCHEMA`] names exactly the fields of `raw` (tests scan files that use every
//! key: `examples/gateway.toml`, `tests/security.rs`'s `FULL` for the security keys and
//! `tests/telemetry.rs`'s `FULL` for the telemetry keys).
//! The scan only runs after serde has failed, to report all unknown keys in one go.

use toml_edit::{Item, TableLike};

use super::ConfigError;

/// What a key holds.
#[derive(Clone, Copy)]
enum Shape {
    /// A value whose inside is not checked here (scalars, arrays of scalars, `headers`).
    Leaf,
    /// A table (standard or inline) with exactly these keys.
    Table(&'static [(&'static str, Shape)]),
    /// An array of tables (`[[x]]` or an array of inline tables) with exactly these keys.
    Tables(&'static [(&'static str, Shape)]),
}

use Shape::{Leaf, Table, Tables};

const IO: &[(&str, Shape)] = &[
    ("ring_entries", Leaf),
    ("recv_buffers", Leaf),
    ("recv_buffer_size", Leaf),
];
const RUNTIME: &[(&str, Shape)] = &[
    ("workers", Leaf),
    ("drain_timeout", Leaf),
    ("io", Table(IO)),
];
const ADMIN: &[(&str, Shape)] = &[("bind", Leaf)];
const LIMITS: &[(&str, Shape)] = &[
    ("max_request_head_bytes", Leaf),
    ("max_request_target_bytes", Leaf),
    ("max_headers", Leaf),
    ("max_request_body_bytes", Leaf),
    ("request_head_timeout", Leaf),
    ("idle_timeout", Leaf),
    ("stream_idle_timeout", Leaf),
    ("max_connections", Leaf),
];
const MATCH: &[(&str, Shape)] = &[
    ("host", Leaf),
    ("path_prefix", Leaf),
    ("headers", Leaf),
    ("principal", Leaf),
];
const AUTHZ_FROM: &[(&str, Shape)] = &[
    ("principals", Leaf),
    ("namespaces", Leaf),
    ("ip_blocks", Leaf),
];
const AUTHZ_TO: &[(&str, Shape)] = &[
    ("hosts", Leaf),
    ("methods", Leaf),
    ("paths", Leaf),
    ("ports", Leaf),
];
const AUTHZ: &[(&str, Shape)] = &[
    ("name", Leaf),
    ("action", Leaf),
    ("from", Table(AUTHZ_FROM)),
    ("to", Table(AUTHZ_TO)),
];
const SNI_CERT: &[(&str, Shape)] = &[("server_names", Leaf), ("cert", Leaf), ("key", Leaf)];
const LISTENER_TLS: &[(&str, Shape)] = &[
    ("cert", Leaf),
    ("key", Leaf),
    ("client_ca", Leaf),
    ("identities", Leaf),
    ("handshake_timeout", Leaf),
    ("min_version", Leaf),
    ("alpn", Leaf),
    ("session_tickets", Leaf),
    ("forward_client_cert", Leaf),
    ("sni", Tables(SNI_CERT)),
];
const SNI_ROUTE: &[(&str, Shape)] = &[("server_names", Leaf), ("cluster", Leaf)];
const SPLIT: &[(&str, Shape)] = &[("cluster", Leaf), ("weight", Leaf)];
const DIRECT: &[(&str, Shape)] = &[("status", Leaf), ("body", Leaf)];
const RETRY: &[(&str, Shape)] = &[
    ("retry_on", Leaf),
    ("retriable_status_codes", Leaf),
    ("attempts", Leaf),
    ("backoff_base", Leaf),
    ("backoff_max", Leaf),
    ("replay_buffer_bytes", Leaf),
    ("budget_percent", Leaf),
    ("min_retries_per_second", Leaf),
    ("budget_window", Leaf),
];
const RATE_LIMIT: &[(&str, Shape)] = &[("requests_per_second", Leaf), ("burst", Leaf)];
const FAULT: &[(&str, Shape)] = &[
    ("delay", Leaf),
    ("delay_percent", Leaf),
    ("abort_status", Leaf),
    ("abort_percent", Leaf),
];
const MIRROR: &[(&str, Shape)] = &[("cluster", Leaf), ("percent", Leaf)];
const HEADERS: &[(&str, Shape)] = &[
    ("request_add", Leaf),
    ("request_set", Leaf),
    ("request_remove", Leaf),
    ("response_add", Leaf),
    ("response_set", Leaf),
    ("response_remove", Leaf),
    ("path_prefix_rewrite", Leaf),
];
const ROUTE: &[(&str, Shape)] = &[
    ("match", Table(MATCH)),
    ("cluster", Leaf),
    ("split", Tables(SPLIT)),
    ("direct", Table(DIRECT)),
    ("timeout", Leaf),
    ("per_try_timeout", Leaf),
    ("retry", Table(RETRY)),
    ("rate_limit", Table(RATE_LIMIT)),
    ("fault", Table(FAULT)),
    ("mirror", Table(MIRROR)),
    ("headers", Table(HEADERS)),
    ("authz", Tables(AUTHZ)),
];
const LISTENER: &[(&str, Shape)] = &[
    ("name", Leaf),
    ("bind", Leaf),
    ("protocol", Leaf),
    ("cluster", Leaf),
    ("interception", Leaf),
    ("host_mismatch", Leaf),
    ("proxy_protocol", Leaf),
    ("connect_attempts", Leaf),
    ("limits", Table(LIMITS)),
    ("routes", Tables(ROUTE)),
    ("tls", Table(LISTENER_TLS)),
    ("sni_routes", Tables(SNI_ROUTE)),
    ("authz", Tables(AUTHZ)),
    ("reporter", Leaf),
    ("access_log", Table(ACCESS_LOG)),
];
const ACCESS_LOG: &[(&str, Shape)] = &[
    ("path", Leaf),
    ("format", Leaf),
    ("sample_percent", Leaf),
    ("buffer_bytes", Leaf),
];
const POOL: &[(&str, Shape)] = &[
    ("max_idle", Leaf),
    ("idle_timeout", Leaf),
    ("max_requests_per_connection", Leaf),
];
const CIRCUIT_BREAKER: &[(&str, Shape)] = &[
    ("max_connections", Leaf),
    ("max_pending_requests", Leaf),
    ("max_requests", Leaf),
];
const HEALTH_CHECK: &[(&str, Shape)] = &[
    ("path", Leaf),
    ("host", Leaf),
    ("interval", Leaf),
    ("timeout", Leaf),
    ("healthy_threshold", Leaf),
    ("unhealthy_threshold", Leaf),
];
const OUTLIER_DETECTION: &[(&str, Shape)] = &[
    ("consecutive_5xx", Leaf),
    ("consecutive_gateway_failure", Leaf),
    ("base_ejection_time", Leaf),
    ("max_ejection_time", Leaf),
    ("max_ejection_percent", Leaf),
];
const CLUSTER_TLS: &[(&str, Shape)] = &[
    ("ca", Leaf),
    ("sni", Leaf),
    ("cert", Leaf),
    ("key", Leaf),
    ("identities", Leaf),
    ("min_version", Leaf),
    ("alpn", Leaf),
];
const CLUSTER: &[(&str, Shape)] = &[
    ("name", Leaf),
    ("type", Leaf),
    ("endpoints", Leaf),
    ("proxy_protocol", Leaf),
    ("lb", Leaf),
    ("connect_timeout", Leaf),
    ("pool", Table(POOL)),
    ("hash_key", Leaf),
    ("dns_refresh", Leaf),
    ("when_all_unhealthy", Leaf),
    ("circuit_breaker", Table(CIRCUIT_BREAKER)),
    ("health_check", Table(HEALTH_CHECK)),
    ("outlier_detection", Table(OUTLIER_DETECTION)),
    ("tls", Table(CLUSTER_TLS)),
    ("service", Leaf),
];
const TELEMETRY: &[(&str, Shape)] = &[
    ("istio_metrics", Leaf),
    ("workload", Leaf),
    ("namespace", Leaf),
    ("app", Leaf),
    ("version", Leaf),
    ("principal", Leaf),
    ("cluster_id", Leaf),
    ("trace_context", Leaf),
    ("otlp", Table(OTLP)),
];
const OTLP: &[(&str, Shape)] = &[
    ("endpoint", Leaf),
    ("service_name", Leaf),
    ("sample_percent", Leaf),
];
const SCHEMA: &[(&str, Shape)] = &[
    ("runtime", Table(RUNTIME)),
    ("admin", Table(ADMIN)),
    ("listeners", Tables(LISTENER)),
    ("clusters", Tables(CLUSTER)),
    ("telemetry", Table(TELEMETRY)),
];

/// Every unknown key of `text`, with its line; empty if `text` is not even valid TOML.
pub(super) fn unknown_keys(text: &str) -> Vec<ConfigError> {
    let mut errors = Vec::new();
    if let Ok(doc) = toml_edit::ImDocument::parse(text) {
        scan_table(text, doc.as_table(), SCHEMA, "", &mut errors);
    }
    errors
}

fn scan_table(
    text: &str,
    table: &dyn TableLike,
    fields: &[(&str, Shape)],
    path: &str,
    errors: &mut Vec<ConfigError>,
) {
    for (key, item) in table.iter() {
        let sub = if path.is_empty() {
            key.to_string()
        } else {
            format!("{path}.{key}")
        };
        match fields.iter().find(|(name, _)| *name == key) {
            Some((_, shape)) => scan_item(text, item, *shape, &sub, errors),
            None => {
                let names: Vec<String> = fields.iter().map(|(n, _)| format!("`{n}`")).collect();
                let prefix = if path.is_empty() {
                    String::new()
                } else {
                    format!("{path}: ")
                };
                let message = format!(
                    "{prefix}unknown key `{key}`, expected one of {}",
                    names.join(", ")
                );
                let offset = table.key(key).and_then(|k| k.span()).map(|s| s.start);
                errors.push(match offset {
                    Some(offset) => ConfigError::at(text, offset, message),
                    None => ConfigError::new(message),
                });
            }
        }
    }
}

fn scan_item(text: &str, item: &Item, shape: Shape, path: &str, errors: &mut Vec<ConfigError>) {
    match shape {
        Leaf => {}
        Table(fields) => {
            if let Some(t) = item.as_table_like() {
                scan_table(text, t, fields, path, errors);
            }
        }
        Tables(fields) => {
            if let Some(array) = item.as_array_of_tables() {
                for (i, t) in array.iter().enumerate() {
                    scan_table(text, t, fields, &format!("{path}[{i}]"), errors);
                }
            } else if let Some(array) = item.as_array() {
                for (i, v) in array.iter().enumerate() {
                    if let Some(t) = v.as_inline_table() {
                        scan_table(text, t, fields, &format!("{path}[{i}]"), errors);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::unknown_keys;

    #[test]
    fn schema_knows_every_key_of_the_gateway_example() {
        let text = include_str!("../../../examples/gateway.toml");
        for key in [
            "hash_key",
            "recv_buffer_size",
            "budget_window",
            "burst",
            "abort_percent",
            "[listeners.routes.mirror]",
            "path_prefix_rewrite",
            "when_all_unhealthy",
            "max_pending_requests",
            "unhealthy_threshold",
            "max_ejection_percent",
            "[telemetry]",
            "trace_context",
            "[telemetry.otlp]",
            "service_name",
            "reporter",
            "[listeners.access_log]",
            "sample_percent",
            "service",
        ] {
            assert!(text.contains(key), "{key}");
        }
        assert_eq!(unknown_keys(text), vec![]);
    }

    #[test]
    fn reports_every_unknown_key_with_its_path() {
        let text = "foo = 1\n[[listeners]]\nname = \"l\"\nbnd = 1\n  [[listeners.routes]]\n  split = [ { cluster = \"c\", wieght = 1 } ]\n[[clusters]]\n[clusters.pool]\nmax = 1\n";
        let errors = unknown_keys(text);
        let got: Vec<(Option<usize>, &str)> = errors
            .iter()
            .map(|e| (e.line, e.message.split(',').next().unwrap_or("")))
            .collect();
        assert_eq!(
            got,
            [
                (Some(1), "unknown key `foo`"),
                (Some(4), "listeners[0]: unknown key `bnd`"),
                (
                    Some(6),
                    "listeners[0].routes[0].split[0]: unknown key `wieght`"
                ),
                (Some(9), "clusters[0].pool: unknown key `max`"),
            ]
        );
    }
}
