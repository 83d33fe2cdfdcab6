//! [`WorkerTls`]: one worker's own rustls configurations, built from a shared
//! [`TlsSet`](super::TlsSet): server configs per TLS listener (with this core's session-ticket
//! key and session cache), client configs per TLS cluster (with this core's resumption
//! cache). Nothing in them is shared with another core, so handshakes take no cross-core lock.
//!
//! Invariant: `listeners` and `clusters` are indexed like the `Config` they were built for;
//! a worker keeps the two together (its `View`).

use std::sync::Arc;
use std::time::Duration;

use rustls::client::danger::ServerCertVerifier;
use rustls::client::{ResolvesClientCert, WebPkiServerVerifier};
use rustls::pki_types::ServerName;
use rustls::server::{
    ClientHello, ProducesTickets, ResolvesServerCert, ServerSessionMemoryCache,
    WebPkiClientVerifier,
};
use rustls::sign::CertifiedKey;
use rustls::{ClientConfig, ServerConfig, SignatureScheme};

use super::material::{ClusterMaterial, ListenerMaterial, TlsSet};
use super::verify::{PeerIdentityClientVerifier, PeerIdentityServerVerifier};
use crate::config::{Config, HostMatch};
use crate::pool::TransportId;

/// TLS sessions a core's server remembers for TLS 1.2 session-id resumption.
const SESSION_CACHE: usize = 1024;

/// One TLS listener on one core.
pub struct ListenerTlsCore {
    pub server: Arc<ServerConfig>,
    pub handshake_timeout: Duration,
    /// Our own identity (the default certificate's), `By=` of XFCC.
    pub own_identity: Option<Box<str>>,
    pub material: Arc<ListenerMaterial>,
}

/// One TLS cluster on one core.
pub struct ClusterTlsCore {
    pub client: Arc<ClientConfig>,
    /// The server name sent; `None`: the endpoint's IP address (sent as no SNI, verified
    /// against the certificate's IP SANs unless `identities` decide).
    pub server_name: Option<ServerName<'static>>,
    /// Pool key part: connections made with these settings.
    pub transport: TransportId,
}

impl ClusterTlsCore {
    pub fn server_name_for(&self, addr: std::net::SocketAddr) -> ServerName<'static> {
        self.server_name
            .clone()
            .unwrap_or_else(|| ServerName::IpAddress(addr.ip().into()))
    }
}

/// One cluster's TLS settings on this core, held across awaits (a health-check round).
#[derive(Clone)]
pub struct ClusterTlsHandle {
    tls: std::rc::Rc<WorkerTls>,
    index: usize,
}

impl ClusterTlsHandle {
    pub fn new(tls: std::rc::Rc<WorkerTls>, index: usize) -> ClusterTlsHandle {
        ClusterTlsHandle { tls, index }
    }

    /// `None`: the cluster is plaintext.
    pub fn get(&self) -> Option<&ClusterTlsCore> {
        self.tls.cluster(self.index)
    }
}

/// A worker's TLS configurations. See the module doc.
#[derive(Default)]
pub struct WorkerTls {
    pub listeners: Vec<Option<ListenerTlsCore>>,
    pub clusters: Vec<Option<ClusterTlsCore>>,
    /// Expiry of every certificate of the set (for the metric).
    pub certificates: Vec<crate::telemetry::CertExpiry>,
}

impl WorkerTls {
    /// The configs of `set` for `config`'s listeners and clusters (matched by name), with this
    /// core's ticket key `tickets`.
    pub fn build(set: &TlsSet, config: &Config, tickets: &Arc<dyn ProducesTickets>) -> WorkerTls {
        let listeners = config
            .listeners
            .iter()
            .map(|l| {
                let m = set.listener(&l.name)?;
                match server_config(m, Some(tickets)) {
                    Ok(server) => Some(ListenerTlsCore {
                        server,
                        handshake_timeout: m.config.handshake_timeout,
                        own_identity: m.default_cert.identity.as_deref().map(Into::into),
                        material: m.clone(),
                    }),
                    Err(e) => {
                        tracing::error!(listener = %l.name, error = %e, "TLS listener config failed");
                        None
                    }
                }
            })
            .collect();
        let clusters = config
            .clusters
            .iter()
            .map(|c| {
                let m = set.cluster(&c.name)?;
                match client_config(m) {
                    Ok(client) => {
                        let name = m.config.sni.clone().or_else(|| m.default_sni.clone());
                        Some(ClusterTlsCore {
                            client,
                            server_name: name.and_then(|n| ServerName::try_from(n).ok()),
                            transport: TransportId::of_cluster(c),
                        })
                    }
                    Err(e) => {
                        tracing::error!(cluster = %c.name, error = %e, "TLS cluster config failed");
                        None
                    }
                }
            })
            .collect();
        let certificates = set
            .certificates
            .iter()
            .map(|c| crate::telemetry::CertExpiry {
                owner: c.owner.clone(),
                file: c.file.display().to_string(),
                name: c.name.clone(),
                not_after: c.not_after,
            })
            .collect();
        WorkerTls {
            listeners,
            clusters,
            certificates,
        }
    }

    pub fn listener(&self, index: usize) -> Option<&ListenerTlsCore> {
        self.listeners.get(index)?.as_ref()
    }

    pub fn cluster(&self, index: usize) -> Option<&ClusterTlsCore> {
        self.clusters.get(index)?.as_ref()
    }
}

/// A new ticket key for one core (TLS 1.3 and 1.2 tickets, rotated by rustls every 6 hours).
pub fn ticketer() -> Arc<dyn ProducesTickets> {
    match rustls::crypto::aws_lc_rs::Ticketer::new() {
        Ok(t) => t,
        Err(e) => {
            tracing::warn!(error = %e, "no session-ticket key: TLS resumption by ticket is off");
            Arc::new(NoTickets)
        }
    }
}

#[derive(Debug)]
struct NoTickets;

impl ProducesTickets for NoTickets {
    fn enabled(&self) -> bool {
        false
    }
    fn lifetime(&self) -> u32 {
        0
    }
    fn encrypt(&self, _plain: &[u8]) -> Option<Vec<u8>> {
        None
    }
    fn decrypt(&self, _cipher: &[u8]) -> Option<Vec<u8>> {
        None
    }
}

/// Picks the certificate by the ClientHello's server name.
#[derive(Debug)]
struct SniResolver {
    default: Arc<CertifiedKey>,
    sni: Vec<(Vec<HostMatch>, Arc<CertifiedKey>)>,
}

impl ResolvesServerCert for SniResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        if let Some(name) = hello.server_name() {
            for (names, key) in &self.sni {
                if names.iter().any(|m| host_matches(m, name)) {
                    return Some(key.clone());
                }
            }
        }
        Some(self.default.clone())
    }
}

/// A server name against an exact or `*.suffix` pattern (lower-case), case-insensitively.
pub fn host_matches(m: &HostMatch, name: &str) -> bool {
    match m {
        HostMatch::Exact(e) => name.eq_ignore_ascii_case(e),
        HostMatch::Suffix(s) => {
            name.len() > s.len()
                && name.is_char_boundary(name.len() - s.len())
                && name[name.len() - s.len()..].eq_ignore_ascii_case(s)
        }
    }
}

/// The client certificate of a cluster, whatever the server asks for.
#[derive(Debug)]
struct ClientCert(Arc<CertifiedKey>);

impl ResolvesClientCert for ClientCert {
    fn resolve(&self, _hints: &[&[u8]], _schemes: &[SignatureScheme]) -> Option<Arc<CertifiedKey>> {
        Some(self.0.clone())
    }
    fn has_certs(&self) -> bool {
        true
    }
}

/// The server config of a listener (`tickets`: this core's key; `None` for a trial build).
pub fn server_config(
    m: &ListenerMaterial,
    tickets: Option<&Arc<dyn ProducesTickets>>,
) -> Result<Arc<ServerConfig>, rustls::Error> {
    let provider = super::provider();
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(super::versions(m.config.min_version))?;
    let builder = match &m.client_roots {
        Some(roots) => {
            let inner = WebPkiClientVerifier::builder_with_provider(roots.clone(), provider)
                .build()
                .map_err(|e| rustls::Error::General(e.to_string()))?;
            if m.config.identities.is_empty() {
                builder.with_client_cert_verifier(inner)
            } else {
                builder.with_client_cert_verifier(Arc::new(PeerIdentityClientVerifier {
                    inner,
                    identities: m.config.identities.clone(),
                }))
            }
        }
        None => builder.with_no_client_auth(),
    };
    let mut cfg = builder.with_cert_resolver(Arc::new(SniResolver {
        default: m.default_cert.key.clone(),
        sni: m.sni.clone(),
    }));
    cfg.alpn_protocols = m
        .config
        .alpn
        .iter()
        .map(|p| p.as_bytes().to_vec())
        .collect();
    if m.config.session_tickets {
        cfg.session_storage = ServerSessionMemoryCache::new(SESSION_CACHE);
        match tickets {
            Some(t) => cfg.ticketer = t.clone(),
            None => cfg.send_tls13_tickets = 0,
        }
    } else {
        cfg.session_storage = Arc::new(rustls::server::NoServerSessionStorage {});
        cfg.send_tls13_tickets = 0;
    }
    Ok(Arc::new(cfg))
}

/// The client config of a cluster.
pub fn client_config(m: &ClusterMaterial) -> Result<Arc<ClientConfig>, rustls::Error> {
    let provider = super::provider();
    let verifier: Arc<dyn ServerCertVerifier> = if m.config.identities.is_empty() {
        WebPkiServerVerifier::builder_with_provider(m.roots.clone(), provider.clone())
            .build()
            .map_err(|e| rustls::Error::General(e.to_string()))?
    } else {
        Arc::new(PeerIdentityServerVerifier {
            roots: m.roots.clone(),
            identities: m.config.identities.clone(),
            algs: provider.signature_verification_algorithms,
        })
    };
    let builder = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(super::versions(m.config.min_version))?
        .dangerous()
        .with_custom_certificate_verifier(verifier);
    let mut cfg = match &m.client_cert {
        Some(ck) => builder.with_client_cert_resolver(Arc::new(ClientCert(ck.clone()))),
        None => builder.with_no_client_auth(),
    };
    cfg.alpn_protocols = m
        .config
        .alpn
        .iter()
        .map(|p| p.as_bytes().to_vec())
        .collect();
    Ok(Arc::new(cfg))
}
