//! Validation of the TLS keys: `[listeners.tls]` (with `[[listeners.tls.sni]]`),
//! `[clusters.tls]` and `[[listeners.sni_routes]]` (passthrough by server name).
//!
//! Invariants of the output: paths are non-empty and as written (made absolute by
//! `Config::resolve_paths`; no file is read here); server names are lower-case DNS names or
//! `*.suffix`, each listed once per listener; ALPN names are 1..=255 bytes, each once, and an
//! `http` listener offers only `http/1.1`; `identities` of a listener imply `client_ca`; a
//! cluster's client certificate has both `cert` and `key`; `sni_routes` exist only on `tcp`
//! listeners without `tls`.

use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::time::Duration;

use toml::Spanned;

use super::super::model::*;
use super::super::raw::*;
use super::authz::{list, string_match};
use super::route::{host_match, is_host_name};
use super::{Checker, ClusterNames, Min};

pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
pub const MAX_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(300);
pub const MAX_ALPN_BYTES: usize = 255;
/// ALPN offered by an `http` listener without `alpn`.
pub const HTTP_ALPN: &str = "http/1.1";

/// `[listeners.tls]` at `path` (`listeners[i].tls`).
pub(super) fn listener_tls(
    c: &mut Checker,
    raw: Option<&RawListenerTls>,
    protocol: Protocol,
    path: &str,
) -> Option<ListenerTls> {
    let t = raw?;
    let default_cert = CertFiles {
        cert: file(c, &t.cert, &format!("{path}.cert")),
        key: file(c, &t.key, &format!("{path}.key")),
    };
    let mut seen: Vec<HostMatch> = Vec::new();
    let sni = t
        .sni
        .iter()
        .enumerate()
        .map(|(k, e)| {
            let epath = format!("{path}.sni[{k}]");
            let e = e.get_ref();
            SniCert {
                server_names: server_names(
                    c,
                    &e.server_names,
                    &format!("{epath}.server_names"),
                    &mut seen,
                ),
                files: CertFiles {
                    cert: file(c, &e.cert, &format!("{epath}.cert")),
                    key: file(c, &e.key, &format!("{epath}.key")),
                },
            }
        })
        .collect();
    let client_ca = t
        .client_ca
        .as_ref()
        .map(|p| file(c, p, &format!("{path}.client_ca")));
    let identities = list(
        c,
        &t.identities,
        &format!("{path}.identities"),
        None,
        |s: &String| string_match(s),
    );
    if let (Some(ids), None) = (&t.identities, &t.client_ca) {
        if !ids.get_ref().is_empty() {
            c.error(
                ids.span(),
                &format!("{path}.identities"),
                "needs `client_ca`: without it no client certificate is asked for, so no identity is checked",
            );
        }
    }
    let forward_client_cert = forward_client_cert(c, &t.forward_client_cert, protocol, path);
    Some(ListenerTls {
        default_cert,
        sni,
        client_ca,
        identities,
        handshake_timeout: c.duration(
            &t.handshake_timeout,
            path,
            "handshake_timeout",
            Min::Positive,
            MAX_HANDSHAKE_TIMEOUT,
            DEFAULT_HANDSHAKE_TIMEOUT,
        ),
        min_version: tls_version(c, &t.min_version, path),
        alpn: match &t.alpn {
            None if protocol == Protocol::Http => vec![HTTP_ALPN.to_string()],
            None => Vec::new(),
            Some(_) => alpn(c, &t.alpn, &format!("{path}.alpn"), Some(protocol)),
        },
        session_tickets: t.session_tickets.as_ref().is_none_or(|b| *b.get_ref()),
        forward_client_cert,
    })
}

/// `[clusters.tls]` at `path` (`clusters[i].tls`).
pub(super) fn cluster_tls(
    c: &mut Checker,
    raw: Option<&RawClusterTls>,
    path: &str,
) -> Option<ClusterTls> {
    let t = raw?;
    let sni = t.sni.as_ref().map(|s| {
        let lower = s.get_ref().to_ascii_lowercase();
        if lower.parse::<IpAddr>().is_err() && !is_host_name(&lower) {
            c.error(
                s.span(),
                &format!("{path}.sni"),
                format!("{:?} is neither a DNS name nor an IP address", s.get_ref()),
            );
        }
        lower
    });
    let client_cert = match (&t.cert, &t.key) {
        (None, None) => None,
        (Some(cert), Some(key)) => Some(CertFiles {
            cert: file(c, cert, &format!("{path}.cert")),
            key: file(c, key, &format!("{path}.key")),
        }),
        (Some(cert), None) => {
            c.error(
                cert.span(),
                &format!("{path}.key"),
                "missing: a client certificate needs both `cert` and `key` (its private key)",
            );
            None
        }
        (None, Some(key)) => {
            c.error(
                key.span(),
                &format!("{path}.cert"),
                "missing: a client certificate needs both `cert` and `key` (its certificate chain)",
            );
            None
        }
    };
    Some(ClusterTls {
        ca: file(c, &t.ca, &format!("{path}.ca")),
        sni,
        client_cert,
        identities: list(
            c,
            &t.identities,
            &format!("{path}.identities"),
            None,
            |s: &String| string_match(s),
        ),
        min_version: tls_version(c, &t.min_version, path),
        alpn: alpn(c, &t.alpn, &format!("{path}.alpn"), None),
    })
}

/// `[[listeners.sni_routes]]` of listener `l` at `path` (`listeners[i]`).
pub(super) fn sni_routes(
    c: &mut Checker,
    l: &RawListener,
    protocol: Protocol,
    names: &ClusterNames,
    path: &str,
) -> Vec<SniRoute> {
    let Some(first) = l.sni_routes.first() else {
        return Vec::new();
    };
    let key = format!("{path}.sni_routes");
    if protocol == Protocol::Http {
        c.error(
            first.span(),
            &key,
            "applies to protocol = \"tcp\" listeners only (sni_routes route TLS by server name without terminating it; an http listener routes requests with [[listeners.routes]])",
        );
    } else if l.tls.is_some() {
        c.error(
            first.span(),
            &key,
            "sni_routes route TLS by server name without terminating it; a listener with [listeners.tls] terminates",
        );
    }
    let mut seen: Vec<HostMatch> = Vec::new();
    l.sni_routes
        .iter()
        .enumerate()
        .filter_map(|(k, r)| {
            let rpath = format!("{key}[{k}]");
            let r = r.get_ref();
            let server_names = server_names(
                c,
                &r.server_names,
                &format!("{rpath}.server_names"),
                &mut seen,
            );
            let cluster = names.resolve(c, &r.cluster, &format!("{rpath}.cluster"))?;
            Some(SniRoute {
                server_names,
                cluster,
            })
        })
        .collect()
}

/// A file path: non-empty, kept as written.
fn file(c: &mut Checker, raw: &Text, path: &str) -> PathBuf {
    if raw.get_ref().is_empty() {
        c.error(raw.span(), path, "must not be empty (a file path)");
    }
    PathBuf::from(raw.get_ref())
}

/// A non-empty list of server names (exact or `*.suffix`, lower-cased), none already in
/// `seen` (the names of the listener's other entries); the new ones are added to it.
fn server_names(
    c: &mut Checker,
    raw: &Spanned<Vec<Text>>,
    path: &str,
    seen: &mut Vec<HostMatch>,
) -> Vec<HostMatch> {
    if raw.get_ref().is_empty() {
        c.error(raw.span(), path, "needs at least one server name");
    }
    let mut out = Vec::new();
    for (i, name) in raw.get_ref().iter().enumerate() {
        let npath = format!("{path}[{i}]");
        let host = match host_match(name.get_ref()) {
            Ok(HostMatch::Exact(h)) if h.starts_with('[') || h.parse::<Ipv4Addr>().is_ok() => {
                c.error(
                    name.span(),
                    &npath,
                    format!("{:?}: a server name is a DNS name (TLS clients send none for an IP address)", name.get_ref()),
                );
                continue;
            }
            Ok(host) => host,
            Err(msg) => {
                c.error(name.span(), &npath, msg);
                continue;
            }
        };
        if seen.contains(&host) {
            c.error(
                name.span(),
                &npath,
                format!(
                    "{:?} is listed twice (the first entry that lists it wins)",
                    name.get_ref()
                ),
            );
            continue;
        }
        seen.push(host.clone());
        out.push(host);
    }
    out
}

fn tls_version(c: &mut Checker, raw: &Option<Text>, path: &str) -> TlsVersion {
    let Some(v) = raw else {
        return TlsVersion::V1_2;
    };
    match v.get_ref().as_str() {
        "1.2" => TlsVersion::V1_2,
        "1.3" => TlsVersion::V1_3,
        other => {
            c.error(
                v.span(),
                &format!("{path}.min_version"),
                format!("unknown TLS version {other:?}; expected \"1.2\" or \"1.3\""),
            );
            TlsVersion::V1_2
        }
    }
}

/// ALPN protocol names at `path`; `listener` is the listener's protocol (`None` for a
/// cluster, which may offer any name).
fn alpn(
    c: &mut Checker,
    raw: &Option<Spanned<Vec<Text>>>,
    path: &str,
    listener: Option<Protocol>,
) -> Vec<String> {
    list(c, raw, path, None, |s: &String| {
        if s.is_empty() || s.len() > MAX_ALPN_BYTES {
            return Err(format!(
                "ALPN protocol names are 1 to {MAX_ALPN_BYTES} bytes, got {}",
                s.len()
            ));
        }
        match (listener, s.as_str()) {
            (Some(Protocol::Http), "h2") => Err("HTTP/2 is not supported yet".to_string()),
            (Some(Protocol::Http), other) if other != HTTP_ALPN => Err(format!(
                "{other:?}: an http listener offers only \"{HTTP_ALPN}\" (other protocols are for protocol = \"tcp\" listeners)"
            )),
            _ => Ok(s.clone()),
        }
    })
}

fn forward_client_cert(
    c: &mut Checker,
    raw: &Option<Text>,
    protocol: Protocol,
    path: &str,
) -> ForwardClientCert {
    let Some(v) = raw else {
        return ForwardClientCert::Sanitize;
    };
    let key = format!("{path}.forward_client_cert");
    if protocol == Protocol::Tcp {
        c.error(
            v.span(),
            &key,
            "applies to protocol = \"http\" listeners only (a tcp listener sees no HTTP request)",
        );
    }
    match v.get_ref().as_str() {
        "sanitize" => ForwardClientCert::Sanitize,
        "sanitize_set" => ForwardClientCert::SanitizeSet,
        "append_forward" => ForwardClientCert::AppendForward,
        "forward_only" => ForwardClientCert::ForwardOnly,
        other => {
            c.error(
                v.span(),
                &key,
                format!("unknown value {other:?}; expected \"sanitize\", \"sanitize_set\", \"append_forward\" or \"forward_only\""),
            );
            ForwardClientCert::Sanitize
        }
    }
}
