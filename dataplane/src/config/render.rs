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
    for l in &cfg.listeners {
        writeln!(out, "\n[[listeners]]")?;
        writeln!(out, "name = {}", quote(&l.name))?;
        writeln!(out, "bind = {}", quote(&l.bind.to_string()))?;
        if let Some(id) = l.cluster {
            writeln!(out, "cluster = {}", cluster_name(cfg, id))?;
        }
        let lim = &l.limits;
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
        writeln!(out, "  max_connections = {}", lim.max_connections)?;
        for r in &l.routes {
            write_route(out, cfg, r)?;
        }
    }
    for c in &cfg.clusters {
        write_cluster(out, c)?;
    }
    Ok(())
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
    Ok(())
}

fn write_cluster(out: &mut String, c: &ClusterConfig) -> std::fmt::Result {
    writeln!(out, "\n[[clusters]]")?;
    writeln!(out, "name = {}", quote(&c.name))?;
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
    writeln!(out, "\n  [clusters.pool]")?;
    writeln!(out, "  max_idle = {}", c.pool.max_idle)?;
    writeln!(out, "  idle_timeout = {}", dur(c.pool.idle_timeout))?;
    writeln!(
        out,
        "  max_requests_per_connection = {}",
        c.pool.max_requests_per_connection
    )?;
    Ok(())
}

fn cluster_name(cfg: &Config, id: ClusterId) -> String {
    let name = usize::try_from(id.0)
        .ok()
        .and_then(|i| cfg.clusters.get(i))
        .map_or("", |c| c.name.as_str());
    quote(name)
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
