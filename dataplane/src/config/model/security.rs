//! The typed image of the security keys: `[listeners.tls]`, `[clusters.tls]`,
//! `[[listeners.sni_routes]]` (TLS passthrough) and the authorization rules
//! (`[[listeners.authz]]`, `[[listeners.routes.authz]]`).
//!
//! Invariants (guaranteed by `validate`): paths are as written in the file, resolved
//! against the config file's directory; every `StringMatch` is non-empty; `IpBlock` prefixes
//! fit their address family; a listener with `sni_routes` is a `tcp` listener without `tls`.

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use super::{ClusterId, HostMatch};

/// A certificate chain and its private key (PEM files).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// Lowest TLS version accepted or offered (`min_version`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum TlsVersion {
    #[default]
    V1_2,
    V1_3,
}

/// `[listeners.tls]`: TLS termination.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenerTls {
    /// Served when no `sni` entry matches the ClientHello's server name (or none is sent).
    pub default_cert: CertFiles,
    /// `[[listeners.tls.sni]]`: more certificates, chosen by server name, first match wins.
    pub sni: Vec<SniCert>,
    /// Clients must present a certificate chaining to this bundle (mTLS).
    pub client_ca: Option<PathBuf>,
    /// Accepted client identities (SPIFFE URI SAN, else DNS SAN); empty = any that chains.
    pub identities: Vec<StringMatch>,
    pub handshake_timeout: Duration,
    pub min_version: TlsVersion,
    /// ALPN protocols offered, in preference order. Default `["http/1.1"]` for `http`
    /// listeners, none for `tcp`.
    pub alpn: Vec<String>,
    /// Stateless session resumption (TLS 1.3 tickets, TLS 1.2 tickets); per core.
    pub session_tickets: bool,
    /// What happens to `x-forwarded-client-cert` (HTTP listeners).
    pub forward_client_cert: ForwardClientCert,
}

/// `[[listeners.tls.sni]]`
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SniCert {
    /// Exact names or `*.suffix` (lower-case).
    pub server_names: Vec<HostMatch>,
    pub files: CertFiles,
}

/// Envoy's `forward_client_cert_details`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ForwardClientCert {
    /// Remove any `x-forwarded-client-cert` the client sent; add nothing.
    #[default]
    Sanitize,
    /// Remove the client's; set one describing this connection's peer certificate.
    SanitizeSet,
    /// Keep the client's and append this connection's element (mTLS connections only).
    AppendForward,
    /// Keep the client's unchanged.
    ForwardOnly,
}

/// `[clusters.tls]`: TLS origination.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterTls {
    /// Trust bundle for the endpoints' certificates.
    pub ca: PathBuf,
    /// Server name sent (and verified, unless `identities` is set). Default: the endpoint's
    /// DNS name; an IP endpoint without `sni` is verified against its IP address.
    pub sni: Option<String>,
    /// Client certificate (mTLS).
    pub client_cert: Option<CertFiles>,
    /// Accepted peer identities; when set, they decide instead of the server name.
    pub identities: Vec<StringMatch>,
    pub min_version: TlsVersion,
    /// ALPN protocols offered. Default: none.
    pub alpn: Vec<String>,
}

/// `[[listeners.sni_routes]]`: TLS passthrough by ClientHello server name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SniRoute {
    pub server_names: Vec<HostMatch>,
    pub cluster: ClusterId,
}

/// Istio's string match: exact, `prefix*`, `*suffix`, or `*` (present).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StringMatch {
    Exact(String),
    Prefix(String),
    Suffix(String),
    Any,
}

impl StringMatch {
    /// Parses Istio's notation.
    pub fn parse(s: &str) -> StringMatch {
        if s == "*" {
            StringMatch::Any
        } else if let Some(p) = s.strip_suffix('*') {
            StringMatch::Prefix(p.to_string())
        } else if let Some(p) = s.strip_prefix('*') {
            StringMatch::Suffix(p.to_string())
        } else {
            StringMatch::Exact(s.to_string())
        }
    }

    pub fn matches(&self, v: &str) -> bool {
        match self {
            StringMatch::Exact(e) => v == e,
            StringMatch::Prefix(p) => v.starts_with(p.as_str()),
            StringMatch::Suffix(s) => v.ends_with(s.as_str()),
            StringMatch::Any => true,
        }
    }

    /// As [`StringMatch::matches`], ASCII case-insensitively (hosts). The pattern is lower-case.
    pub fn matches_ignore_case(&self, v: &str) -> bool {
        let eq = |a: &str, b: &str| a.eq_ignore_ascii_case(b);
        match self {
            StringMatch::Exact(e) => eq(v, e),
            StringMatch::Prefix(p) => {
                v.len() >= p.len() && v.is_char_boundary(p.len()) && eq(&v[..p.len()], p)
            }
            StringMatch::Suffix(s) => {
                v.len() >= s.len()
                    && v.is_char_boundary(v.len() - s.len())
                    && eq(&v[v.len() - s.len()..], s)
            }
            StringMatch::Any => true,
        }
    }
}

/// An address block (`10.0.0.0/8`, `2001:db8::/32`, or a single address).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpBlock {
    pub addr: IpAddr,
    pub prefix: u8,
}

impl IpBlock {
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match (self.addr, ip) {
            (IpAddr::V4(_), IpAddr::V6(v6)) => match v6.to_ipv4_mapped() {
                Some(v4) => IpAddr::V4(v4),
                None => return false,
            },
            (_, ip) => ip,
        };
        match (self.addr, ip) {
            (IpAddr::V4(a), IpAddr::V4(b)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(a) & mask == u32::from(b) & mask
            }
            (IpAddr::V6(a), IpAddr::V6(b)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(a) & mask == u128::from(b) & mask
            }
            _ => false,
        }
    }
}

/// What a matched authorization rule does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthzAction {
    Allow,
    Deny,
}

/// One rule of `[[listeners.authz]]` / `[[listeners.routes.authz]]` (Istio's
/// AuthorizationPolicy, one rule each). It matches when every given field of `from` and of
/// `to` holds; a field holds when any of its values matches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthzRule {
    /// Shown in logs and the `rule` label of `ringway_authz_denied_total`.
    pub name: String,
    pub action: AuthzAction,
    pub from: AuthzSource,
    pub to: AuthzOperation,
}

/// `from`: who connects. Empty lists are not checked.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuthzSource {
    /// Peer identities (SPIFFE IDs or DNS names), Istio notation. A connection without a
    /// verified client certificate has no principal and matches none.
    pub principals: Vec<StringMatch>,
    /// Namespaces, from SPIFFE IDs of the form `spiffe://<td>/ns/<namespace>/sa/<account>`.
    pub namespaces: Vec<StringMatch>,
    /// Client addresses (after the PROXY protocol header, when the listener reads one).
    pub ip_blocks: Vec<IpBlock>,
}

/// `to`: what is asked for. Empty lists are not checked; `tcp` listeners only check `ports`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuthzOperation {
    /// Request authority without port, case-insensitive, Istio notation.
    pub hosts: Vec<StringMatch>,
    /// Upper-case method names.
    pub methods: Vec<String>,
    /// Path before `?`, Istio notation (exact, `prefix*`, `*suffix`).
    pub paths: Vec<StringMatch>,
    /// The listener's (or the original destination's) port.
    pub ports: Vec<u16>,
}

impl AuthzSource {
    pub fn is_empty(&self) -> bool {
        self.principals.is_empty() && self.namespaces.is_empty() && self.ip_blocks.is_empty()
    }
}

impl AuthzOperation {
    pub fn is_empty(&self) -> bool {
        self.hosts.is_empty()
            && self.methods.is_empty()
            && self.paths.is_empty()
            && self.ports.is_empty()
    }
}
