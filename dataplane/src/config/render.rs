//! [`Config`] -> TOML text of the effective configuration, every default written out.
//!
//! Invariant: for every `Config` produced by `config::parse`, parsing the rendered text gives
//! an equal `Config` (the round-trip tests and the `config` fuzz target check this).

use std::fmt::Write;

use super::duration;
use super::model::*;

pub(super) fn render(cfg: &Config) -> String {
    let mut out = String::new();
    // Writing into a String cannot fail; the results are ignored for that reason.
    let _ = write_config(&mut out, cfg);
    out
}

fn write_config(out: &mut String, cfg: &Config) -> std::fmt::Result {
    let rt = &cfg.runtime;
    writeln!(out, "[runtime]")?;
    if let Some(w) = rt.workers {
        writeln!(out, "workers = {w}")?;
    }
    writeln!(out, "drain_timeout = {}", dur(rt.drain_timeout))?;
    writeln!(out, "\n[runtime.io]")?;
    writeln!(out, "ring_entries = {}", rt.io.ring_entries)?;
    writeln!(out, "recv_buffers = {}", rt.io.recv_buffers)?;
    writeln!(out, "recv_buffer_size = {}", rt.io.recv_buffer_size)?;
    if let Some(admin) = &cfg.admin {
        writeln!(out, "\n[admin]\nbind = {}", quote(&admin.bind.to_string()))?;
    }
    write_telemetry(out, &cfg.telemetry)?;
    for l in &cfg.listeners {
        writeln!(out, "\n[[listeners]]")?;
        writeln!(out, "name = {}", quote(&l.name))?;
        writeln!(out, "bind = {}", quote(&l.bind.to_string()))?;
        let tcp = l.protocol == Protocol::Tcp;
        if tcp {
            writeln!(out, "protocol = \"tcp\"")?;
        }
        if let Some(id) = l.cluster {
            writeln!(out, "cluster = {}", cluster_name(cfg, id))?;
        }
        match l.interception {
            Interception::None => {}
            Interception::Redirect => writeln!(out, "interception = \"redirect\"")?,
            Interception::Tproxy => writeln!(out, "interception = \"tproxy\"")?,
        }
        if l.host_mismatch == HostMismatch::Reject {
            writeln!(out, "host_mismatch = \"reject\"")?;
        }
        if l.proxy_protocol {
            writeln!(out, "proxy_protocol = true")?;
        }
        let reporter = match l.reporter {
            Reporter::Destination => "destination",
            Reporter::Source => "source",
        };
        writeln!(out, "reporter = {}", quote(reporter))?;
        let lim = &l.limits;
        if tcp {
            writeln!(out, "connect_attempts = {}", l.connect_attempts)?;
            writeln!(out, "\n  [listeners.limits]")?;
            writeln!(out, "  idle_timeout = {}", dur(lim.idle_timeout))?;
            writeln!(out, "  max_connections = {}", lim.max_connections)?;
            write_access_log(out, l.access_log.as_ref())?;
            write_listener_security(out, cfg, l)?;
            continue;
        }
        writeln!(out, "\n  [listeners.limits]")?;
        writeln!(
            out,
            "  max_request_head_bytes = {}",
            lim.max_request_head_bytes
        )?;
        writeln!(
            out,
            "  max_request_target_bytes = {}",
            lim.max_request_target_bytes
        )?;
        writeln!(out, "  max_headers = {}", lim.max_headers)?;
        writeln!(
            out,
            "  max_request_body_bytes = {}",
            lim.max_request_body_bytes
        )?;
        writeln!(
            out,
            "  request_head_timeout = {}",
            dur(lim.request_head_timeout)
        )?;
        writeln!(out, "  idle_timeout = {}", dur(lim.idle_timeout))?;
        writeln!(
            out,
            "  stream_idle_timeout = {}",
            dur(lim.stream_idle_timeout)
        )?;
        writeln!(out, "  max_connections = {}", lim.max_connections)?;
        write_access_log(out, l.access_log.as_ref())?;
        write_listener_security(out, cfg, l)?;
        for r in &l.routes {
            write_route(out, cfg, r)?;
        }
    }
    for c in &cfg.clusters {
        write_cluster(out, c)?;
    }
    Ok(())
}

/// `[telemetry]`, always (its defaults written out); workload keys only when set (unset ones
/// come from the environment at start).
fn write_telemetry(out: &mut String, t: &TelemetryConfig) -> std::fmt::Result {
    writeln!(out, "\n[telemetry]")?;
    writeln!(out, "istio_metrics = {}", t.istio_metrics)?;
    let w = &t.workload;
    let labels = [
        ("workload", &w.name),
        ("namespace", &w.namespace),
        ("app", &w.app),
        ("version", &w.version),
        ("principal", &w.principal),
        ("cluster_id", &w.cluster_id),
    ];
    for (key, value) in labels {
        if let Some(v) = value {
            writeln!(out, "{key} = {}", quote(v))?;
        }
    }
    let trace = match t.trace_context {
        TraceContext::Propagate => "propagate",
        TraceContext::Start => "start",
        TraceContext::Off => "off",
    };
    writeln!(out, "trace_context = {}", quote(trace))?;
    if let Some(o) = &t.otlp {
        writeln!(out, "\n[telemetry.otlp]")?;
        writeln!(
            out,
            "endpoint = {}",
            quote(&format!("http://{}{}", o.address, o.path))
        )?;
        writeln!(out, "service_name = {}", quote(&o.service_name))?;
        writeln!(out, "sample_percent = {}", percent(o.sample))?;
    }
    Ok(())
}

/// `[listeners.access_log]`, every key written out.
fn write_access_log(out: &mut String, a: Option<&AccessLogConfig>) -> std::fmt::Result {
    let Some(a) = a else { return Ok(()) };
    writeln!(out, "\n  [listeners.access_log]")?;
    let sink = match &a.sink {
        LogSink::Stderr => quote("stderr"),
        LogSink::Stdout => quote("stdout"),
        LogSink::File(p) => path(p),
    };
    writeln!(out, "  path = {sink}")?;
    let format = match &a.format {
        LogFormat::Json => quote("json"),
        LogFormat::Text(f) => quote(f),
    };
    writeln!(out, "  format = {format}")?;
    writeln!(out, "  sample_percent = {}", percent(a.sample))?;
    writeln!(out, "  buffer_bytes = {}", a.buffer_bytes)
}

fn write_route(out: &mut String, cfg: &Config, r: &RouteConfig) -> std::fmt::Result {
    writeln!(out, "\n  [[listeners.routes]]")?;
    let m = &r.matcher;
    let mut fields = Vec::new();
    match &m.host {
        Some(HostMatch::Exact(h)) => fields.push(format!("host = {}", quote(h))),
        Some(HostMatch::Suffix(s)) => fields.push(format!("host = {}", quote(&format!("*{s}")))),
        None => {}
    }
    if let Some(p) = &m.path_prefix {
        fields.push(format!("path_prefix = {}", quote(p)));
    }
    if !m.headers.is_empty() {
        let hs: Vec<String> = m
            .headers
            .iter()
            .map(|(n, v)| format!("{} = {}", quote(n), quote(v)))
            .collect();
        fields.push(format!("headers = {{ {} }}", hs.join(", ")));
    }
    if let Some(p) = &m.principal {
        fields.push(format!("principal = {}", quote(&string_match(p))));
    }
    if !fields.is_empty() {
        writeln!(out, "  match = {{ {} }}", fields.join(", "))?;
    }
    match &r.action {
        RouteAction::Cluster(id) => writeln!(out, "  cluster = {}", cluster_name(cfg, *id))?,
        RouteAction::Split(ws) => {
            let entries: Vec<String> = ws
                .iter()
                .map(|w| {
                    format!(
                        "{{ cluster = {}, weight = {} }}",
                        cluster_name(cfg, w.cluster),
                        w.weight
                    )
                })
                .collect();
            writeln!(out, "  split = [ {} ]", entries.join(", "))?;
        }
        RouteAction::Direct { status, body } => writeln!(
            out,
            "  direct = {{ status = {status}, body = {} }}",
            quote(body)
        )?,
    }
    if let Some(t) = r.timeout {
        writeln!(out, "  timeout = {}", dur(t))?;
    }
    write_route_policy(out, cfg, &r.policy)
}

fn write_route_policy(out: &mut String, cfg: &Config, p: &RoutePolicy) -> std::fmt::Result {
    if let Some(t) = p.per_try_timeout {
        writeln!(out, "  per_try_timeout = {}", dur(t))?;
    }
    if let Some(r) = &p.retry {
        writeln!(out, "\n    [listeners.routes.retry]")?;
        let on = r.retry_on;
        let names: Vec<String> = [
            (on.connect_failure, "connect-failure"),
            (on.reset, "reset"),
            (on.gateway_error, "gateway-error"),
            (on.server_error, "5xx"),
            (on.retriable_status_codes, "retriable-status-codes"),
        ]
        .iter()
        .filter(|(set, _)| *set)
        .map(|(_, name)| quote(name))
        .collect();
        writeln!(out, "    retry_on = [{}]", names.join(", "))?;
        if on.retriable_status_codes {
            let codes: Vec<String> = r
                .retriable_status_codes
                .iter()
                .map(u16::to_string)
                .collect();
            writeln!(out, "    retriable_status_codes = [{}]", codes.join(", "))?;
        }
        writeln!(out, "    attempts = {}", r.attempts)?;
        writeln!(out, "    backoff_base = {}", dur(r.backoff_base))?;
        writeln!(out, "    backoff_max = {}", dur(r.backoff_max))?;
        writeln!(out, "    replay_buffer_bytes = {}", r.replay_buffer_bytes)?;
        writeln!(out, "    budget_percent = {}", r.budget_percent)?;
        writeln!(
            out,
            "    min_retries_per_second = {}",
            r.min_retries_per_second
        )?;
        writeln!(out, "    budget_window = {}", dur(r.budget_window))?;
    }
    if let Some(l) = &p.rate_limit {
        writeln!(out, "\n    [listeners.routes.rate_limit]")?;
        writeln!(out, "    requests_per_second = {}", l.requests_per_second)?;
        writeln!(out, "    burst = {}", l.burst)?;
    }
    if let Some(f) = &p.fault {
        writeln!(out, "\n    [listeners.routes.fault]")?;
        if let Some(d) = f.delay {
            writeln!(out, "    delay = {}", dur(d))?;
            writeln!(out, "    delay_percent = {}", percent(f.delay_percent))?;
        }
        if let Some(s) = f.abort_status {
            writeln!(out, "    abort_status = {s}")?;
            writeln!(out, "    abort_percent = {}", percent(f.abort_percent))?;
        }
    }
    if let Some(m) = &p.mirror {
        writeln!(out, "\n    [listeners.routes.mirror]")?;
        writeln!(out, "    cluster = {}", cluster_name(cfg, m.cluster))?;
        writeln!(out, "    percent = {}", percent(m.percent))?;
    }
    if let Some(h) = &p.headers {
        writeln!(out, "\n    [listeners.routes.headers]")?;
        let sides = [
            ("request", &h.request_add, &h.request_set, &h.request_remove),
            (
                "response",
                &h.response_add,
                &h.response_set,
                &h.response_remove,
            ),
        ];
        for (side, add, set, remove) in sides {
            for (op, pairs) in [("add", add), ("set", set)] {
                if !pairs.is_empty() {
                    let fields: Vec<String> = pairs
                        .iter()
                        .map(|(n, v)| format!("{} = {}", quote(n), quote(v)))
                        .collect();
                    writeln!(out, "    {side}_{op} = {{ {} }}", fields.join(", "))?;
                }
            }
            if !remove.is_empty() {
                let names: Vec<String> = remove.iter().map(|n| quote(n)).collect();
                writeln!(out, "    {side}_remove = [{}]", names.join(", "))?;
            }
        }
        if let Some(p) = &h.path_prefix_rewrite {
            writeln!(out, "    path_prefix_rewrite = {}", quote(p))?;
        }
    }
    write_authz(out, "    ", "listeners.routes.authz", &p.authz)
}

/// `[listeners.tls]` (with `[[listeners.tls.sni]]`), `[[listeners.sni_routes]]` and
/// `[[listeners.authz]]`.
fn write_listener_security(out: &mut String, cfg: &Config, l: &ListenerConfig) -> std::fmt::Result {
    if let Some(t) = &l.tls {
        writeln!(out, "\n  [listeners.tls]")?;
        writeln!(out, "  cert = {}", path(&t.default_cert.cert))?;
        writeln!(out, "  key = {}", path(&t.default_cert.key))?;
        if let Some(ca) = &t.client_ca {
            writeln!(out, "  client_ca = {}", path(ca))?;
        }
        if !t.identities.is_empty() {
            writeln!(out, "  identities = {}", string_matches(&t.identities))?;
        }
        writeln!(out, "  handshake_timeout = {}", dur(t.handshake_timeout))?;
        writeln!(out, "  min_version = {}", tls_version(t.min_version))?;
        writeln!(out, "  alpn = {}", strings(&t.alpn))?;
        writeln!(out, "  session_tickets = {}", t.session_tickets)?;
        if l.protocol == Protocol::Http {
            let fcc = match t.forward_client_cert {
                ForwardClientCert::Sanitize => "sanitize",
                ForwardClientCert::SanitizeSet => "sanitize_set",
                ForwardClientCert::AppendForward => "append_forward",
                ForwardClientCert::ForwardOnly => "forward_only",
            };
            writeln!(out, "  forward_client_cert = {}", quote(fcc))?;
        }
        for s in &t.sni {
            writeln!(out, "\n    [[listeners.tls.sni]]")?;
            writeln!(out, "    server_names = {}", host_matches(&s.server_names))?;
            writeln!(out, "    cert = {}", path(&s.files.cert))?;
            writeln!(out, "    key = {}", path(&s.files.key))?;
        }
    }
    for r in &l.sni_routes {
        writeln!(out, "\n  [[listeners.sni_routes]]")?;
        writeln!(out, "  server_names = {}", host_matches(&r.server_names))?;
        writeln!(out, "  cluster = {}", cluster_name(cfg, r.cluster))?;
    }
    write_authz(out, "  ", "listeners.authz", &l.authz)
}

fn write_authz(
    out: &mut String,
    indent: &str,
    table: &str,
    rules: &[AuthzRule],
) -> std::fmt::Result {
    for r in rules {
        writeln!(out, "\n{indent}[[{table}]]")?;
        writeln!(out, "{indent}name = {}", quote(&r.name))?;
        let action = match r.action {
            AuthzAction::Allow => "allow",
            AuthzAction::Deny => "deny",
        };
        writeln!(out, "{indent}action = {}", quote(action))?;
        let f = &r.from;
        let mut from = Vec::new();
        if !f.principals.is_empty() {
            from.push(format!("principals = {}", string_matches(&f.principals)));
        }
        if !f.namespaces.is_empty() {
            from.push(format!("namespaces = {}", string_matches(&f.namespaces)));
        }
        if !f.ip_blocks.is_empty() {
            let blocks: Vec<String> = f
                .ip_blocks
                .iter()
                .map(|b| quote(&format!("{}/{}", b.addr, b.prefix)))
                .collect();
            from.push(format!("ip_blocks = [{}]", blocks.join(", ")));
        }
        if !from.is_empty() {
            writeln!(out, "{indent}from = {{ {} }}", from.join(", "))?;
        }
        let t = &r.to;
        let mut to = Vec::new();
        if !t.hosts.is_empty() {
            to.push(format!("hosts = {}", string_matches(&t.hosts)));
        }
        if !t.methods.is_empty() {
            to.push(format!("methods = {}", strings(&t.methods)));
        }
        if !t.paths.is_empty() {
            to.push(format!("paths = {}", string_matches(&t.paths)));
        }
        if !t.ports.is_empty() {
            let ports: Vec<String> = t.ports.iter().map(u16::to_string).collect();
            to.push(format!("ports = [{}]", ports.join(", ")));
        }
        if !to.is_empty() {
            writeln!(out, "{indent}to = {{ {} }}", to.join(", "))?;
        }
    }
    Ok(())
}

fn write_cluster_tls(out: &mut String, t: &ClusterTls) -> std::fmt::Result {
    writeln!(out, "\n  [clusters.tls]")?;
    writeln!(out, "  ca = {}", path(&t.ca))?;
    if let Some(sni) = &t.sni {
        writeln!(out, "  sni = {}", quote(sni))?;
    }
    if let Some(f) = &t.client_cert {
        writeln!(out, "  cert = {}", path(&f.cert))?;
        writeln!(out, "  key = {}", path(&f.key))?;
    }
    if !t.identities.is_empty() {
        writeln!(out, "  identities = {}", string_matches(&t.identities))?;
    }
    writeln!(out, "  min_version = {}", tls_version(t.min_version))?;
    writeln!(out, "  alpn = {}", strings(&t.alpn))
}

fn write_cluster(out: &mut String, c: &ClusterConfig) -> std::fmt::Result {
    writeln!(out, "\n[[clusters]]")?;
    writeln!(out, "name = {}", quote(&c.name))?;
    if let Some(s) = &c.service {
        writeln!(out, "service = {}", quote(s))?;
    }
    match c.proxy_protocol {
        None => {}
        Some(ProxyProtocolVersion::V1) => writeln!(out, "proxy_protocol = \"v1\"")?,
        Some(ProxyProtocolVersion::V2) => writeln!(out, "proxy_protocol = \"v2\"")?,
    }
    let res = &c.resilience;
    if c.kind == ClusterKind::OriginalDestination {
        writeln!(out, "type = \"original_destination\"")?;
        writeln!(out, "connect_timeout = {}", dur(c.connect_timeout))?;
        write_pool(out, c)?;
        write_resilience(out, res)?;
        return c.tls.as_ref().map_or(Ok(()), |t| write_cluster_tls(out, t));
    }
    let eps: Vec<String> = c
        .endpoints
        .iter()
        .map(|e| match e {
            EndpointAddr::Ip(addr) => quote(&addr.to_string()),
            EndpointAddr::Dns { host, port } => quote(&format!("{host}:{port}")),
        })
        .collect();
    writeln!(out, "endpoints = [{}]", eps.join(", "))?;
    let lb = match c.lb {
        LbPolicy::RoundRobin => "round_robin",
        LbPolicy::LeastRequest => "least_request",
        LbPolicy::Random => "random",
        LbPolicy::RingHash => "ring_hash",
    };
    writeln!(out, "lb = {}", quote(lb))?;
    if c.lb == LbPolicy::RingHash {
        let key = match &c.hash_key {
            HashKey::ClientIp => "client_ip".to_string(),
            HashKey::Header(h) => format!("header:{h}"),
        };
        writeln!(out, "hash_key = {}", quote(&key))?;
    }
    writeln!(out, "connect_timeout = {}", dur(c.connect_timeout))?;
    writeln!(out, "dns_refresh = {}", dur(c.dns_refresh))?;
    let when = match res.when_all_unhealthy {
        AllUnhealthy::FailOpen => "fail_open",
        AllUnhealthy::Reject => "reject",
    };
    writeln!(out, "when_all_unhealthy = {}", quote(when))?;
    write_pool(out, c)?;
    write_resilience(out, res)?;
    c.tls.as_ref().map_or(Ok(()), |t| write_cluster_tls(out, t))
}

fn write_pool(out: &mut String, c: &ClusterConfig) -> std::fmt::Result {
    writeln!(out, "\n  [clusters.pool]")?;
    writeln!(out, "  max_idle = {}", c.pool.max_idle)?;
    writeln!(out, "  idle_timeout = {}", dur(c.pool.idle_timeout))?;
    writeln!(
        out,
        "  max_requests_per_connection = {}",
        c.pool.max_requests_per_connection
    )
}

fn write_resilience(out: &mut String, res: &ClusterPolicy) -> std::fmt::Result {
    if let Some(b) = &res.circuit_breaker {
        writeln!(out, "\n  [clusters.circuit_breaker]")?;
        writeln!(out, "  max_connections = {}", b.max_connections)?;
        writeln!(out, "  max_pending_requests = {}", b.max_pending_requests)?;
        writeln!(out, "  max_requests = {}", b.max_requests)?;
    }
    if let Some(h) = &res.health_check {
        writeln!(out, "\n  [clusters.health_check]")?;
        writeln!(out, "  path = {}", quote(&h.path))?;
        if let Some(host) = &h.host {
            writeln!(out, "  host = {}", quote(host))?;
        }
        writeln!(out, "  interval = {}", dur(h.interval))?;
        writeln!(out, "  timeout = {}", dur(h.timeout))?;
        writeln!(out, "  healthy_threshold = {}", h.healthy_threshold)?;
        writeln!(out, "  unhealthy_threshold = {}", h.unhealthy_threshold)?;
    }
    if let Some(o) = &res.outlier_detection {
        writeln!(out, "\n  [clusters.outlier_detection]")?;
        writeln!(out, "  consecutive_5xx = {}", o.consecutive_5xx)?;
        writeln!(
            out,
            "  consecutive_gateway_failure = {}",
            o.consecutive_gateway_failure
        )?;
        writeln!(out, "  base_ejection_time = {}", dur(o.base_ejection_time))?;
        writeln!(out, "  max_ejection_time = {}", dur(o.max_ejection_time))?;
        writeln!(out, "  max_ejection_percent = {}", o.max_ejection_percent)?;
    }
    Ok(())
}

fn cluster_name(cfg: &Config, id: ClusterId) -> String {
    let name = usize::try_from(id.0)
        .ok()
        .and_then(|i| cfg.clusters.get(i))
        .map_or("", |c| c.name.as_str());
    quote(name)
}

/// A percentage from parts per million: an integer when whole, else up to 4 decimals.
fn percent(p: Percent) -> String {
    let whole = p.0 / 10_000;
    let frac = p.0 % 10_000;
    if frac == 0 {
        return whole.to_string();
    }
    let digits = format!("{frac:04}");
    format!("{whole}.{}", digits.trim_end_matches('0'))
}

fn tls_version(v: TlsVersion) -> String {
    quote(match v {
        TlsVersion::V1_2 => "1.2",
        TlsVersion::V1_3 => "1.3",
    })
}

/// Istio's notation, the inverse of [`StringMatch::parse`].
fn string_match(m: &StringMatch) -> String {
    match m {
        StringMatch::Exact(e) => e.clone(),
        StringMatch::Prefix(p) => format!("{p}*"),
        StringMatch::Suffix(s) => format!("*{s}"),
        StringMatch::Any => "*".to_string(),
    }
}

fn string_matches(ms: &[StringMatch]) -> String {
    let items: Vec<String> = ms.iter().map(|m| quote(&string_match(m))).collect();
    format!("[{}]", items.join(", "))
}

fn host_matches(hs: &[HostMatch]) -> String {
    let items: Vec<String> = hs
        .iter()
        .map(|h| match h {
            HostMatch::Exact(e) => quote(e),
            HostMatch::Suffix(s) => quote(&format!("*{s}")),
        })
        .collect();
    format!("[{}]", items.join(", "))
}

fn strings(ss: &[String]) -> String {
    let items: Vec<String> = ss.iter().map(|s| quote(s)).collect();
    format!("[{}]", items.join(", "))
}

/// A path as a TOML string (paths come from TOML strings, so they are UTF-8).
fn path(p: &std::path::Path) -> String {
    quote(&p.to_string_lossy())
}

fn dur(d: std::time::Duration) -> String {
    quote(&duration::render(d))
}

/// A TOML basic string: `"` and `\` escaped, control characters as `\uXXXX`.
fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for ch in s.chars() {
        match ch {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => {
                let _ = write!(out, "\\u{:04X}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}
