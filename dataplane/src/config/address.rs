//! Socket addresses of the config file: listener/admin binds (IP literal and port) and
//! cluster endpoints (`host:port` or `[v6]:port`, host an IP literal or a DNS name).
//!
//! Errors are plain messages for the validator to position; nothing here resolves names.

use std::net::{IpAddr, SocketAddr};

use super::model::EndpointAddr;

/// A bind address: `1.2.3.4:port` or `[v6]:port`, port 1..=65535.
pub fn parse_bind(text: &str) -> Result<SocketAddr, String> {
    let addr: SocketAddr = text.parse().map_err(|_| {
        format!(
            "{text:?} is not an IP address with a port (e.g. \"127.0.0.1:8080\" or \"[::1]:8080\")"
        )
    })?;
    if addr.port() == 0 {
        return Err(format!(
            "{text:?}: port 0 is not allowed (every worker binds the same port)"
        ));
    }
    Ok(addr)
}

/// Whether two binds would take the same port: same port and the same IP, or either side is
/// a wildcard address (which also covers the other).
pub fn binds_conflict(a: SocketAddr, b: SocketAddr) -> bool {
    a.port() == b.port() && (a.ip() == b.ip() || a.ip().is_unspecified() || b.ip().is_unspecified())
}

/// An upstream endpoint: an IP literal with port, or a DNS name with port (lower-cased).
pub fn parse_endpoint(text: &str) -> Result<EndpointAddr, String> {
    if text.contains("://") {
        return Err(format!(
            "{text:?}: endpoints are host:port, without a scheme (e.g. \"10.0.0.1:8080\")"
        ));
    }
    if text.contains('/') {
        return Err(format!("{text:?}: endpoints are host:port, without a path"));
    }
    if let Ok(addr) = text.parse::<SocketAddr>() {
        if addr.port() == 0 {
            return Err(format!("{text:?}: port must be 1..=65535"));
        }
        return Ok(EndpointAddr::Ip(addr));
    }
    let Some((host, port)) = text.rsplit_once(':') else {
        return Err(format!(
            "{text:?}: missing port; endpoints are host:port or [v6]:port"
        ));
    };
    if host.starts_with('[') || host.contains(':') {
        return Err(format!(
            "{text:?}: not a valid IPv6 endpoint; write [address]:port"
        ));
    }
    let port = match port.parse::<u16>() {
        Ok(p) if p > 0 && port.bytes().all(|b| b.is_ascii_digit()) => p,
        _ => return Err(format!("{text:?}: port must be a number 1..=65535")),
    };
    if host.parse::<IpAddr>().is_ok() {
        // Already handled above for well-formed literals; defensive for odd spellings.
        return Err(format!("{text:?}: not a valid IP endpoint"));
    }
    if !is_dns_name(host) {
        return Err(format!(
            "{text:?}: {host:?} is neither an IP address nor a valid DNS name"
        ));
    }
    Ok(EndpointAddr::Dns {
        host: host.to_ascii_lowercase(),
        port,
    })
}

/// A DNS name: dot-separated labels of letters, digits, `-` and `_`, each 1..=63 bytes, not
/// starting or ending with `-`, 253 bytes at most; one trailing dot allowed. All-numeric
/// names are rejected (they look like a mistyped IPv4 address).
pub fn is_dns_name(name: &str) -> bool {
    let name = name.strip_suffix('.').unwrap_or(name);
    if name.is_empty() || name.len() > 253 {
        return false;
    }
    let labels_ok = name.split('.').all(|label| {
        !label.is_empty()
            && label.len() <= 63
            && !label.starts_with('-')
            && !label.ends_with('-')
            && label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    });
    labels_ok && !name.bytes().all(|b| b.is_ascii_digit() || b == b'.')
}
