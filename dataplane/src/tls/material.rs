//! [`TlsSet`]: every certificate, key and trust bundle a configuration names, read from disk
//! and checked once (`--check`, start, SIGHUP, file change), shared read-only by the workers.
//!
//! Checks: every file readable and PEM; a chain has at least one certificate; a key is one
//! aws-lc-rs can sign with (ECDSA P-256/P-384, Ed25519, RSA) and matches its certificate; a
//! bundle has at least one usable CA certificate. Every problem names its file; all problems
//! are reported, not only the first.
//!
//! Invariant: a `TlsSet` read here has complete material for every listener and cluster with
//! TLS; `TlsSet::load` (module `tls`) also builds a trial rustls config from each, so that
//! the per-core build cannot fail.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::{self, PemObject};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::sign::CertifiedKey;
use rustls::RootCertStore;

use super::identity::CertNames;
use crate::config::{CertFiles, ClusterTls, Config, HostMatch, ListenerTls};

/// One problem with the TLS files.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{owner}: cannot read {}: {source}", path.display())]
    Read {
        owner: String,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{owner}: {}: {what}", path.display())]
    Pem {
        owner: String,
        path: PathBuf,
        what: String,
    },
    #[error("{owner}: {}: no certificate in the file (expected PEM \"BEGIN CERTIFICATE\" blocks)", path.display())]
    NoCertificate { owner: String, path: PathBuf },
    #[error("{owner}: {}: no private key in the file (expected PEM PKCS#8, PKCS#1 or SEC1)", path.display())]
    NoKey { owner: String, path: PathBuf },
    #[error("{owner}: {}: unsupported private key ({reason}); use ECDSA P-256/P-384, Ed25519 or RSA", path.display())]
    UnsupportedKey {
        owner: String,
        path: PathBuf,
        reason: String,
    },
    #[error("{owner}: the private key {} does not match the certificate {}", key.display(), cert.display())]
    KeyMismatch {
        owner: String,
        cert: PathBuf,
        key: PathBuf,
    },
    #[error("{owner}: {}: no usable CA certificate ({reason})", path.display())]
    BadBundle {
        owner: String,
        path: PathBuf,
        reason: String,
    },
    #[error("{owner}: cannot build the TLS configuration: {reason}")]
    Config { owner: String, reason: String },
}

/// Every problem found, one per line.
#[derive(Debug, Default)]
pub struct TlsErrors(pub Vec<TlsError>);

impl fmt::Display for TlsErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for TlsErrors {}

/// A loaded certificate, for the expiry metric and logs.
#[derive(Debug, Clone)]
pub struct LoadedCert {
    pub file: PathBuf,
    /// `listener <name>`, `cluster <name>`.
    pub owner: String,
    /// The identity in the certificate, or its subject.
    pub name: String,
    /// `notAfter`, Unix seconds.
    pub not_after: i64,
}

/// A certificate with its key.
pub struct ServedCert {
    pub key: Arc<CertifiedKey>,
    /// The identity of the leaf (our own identity, `By=` of XFCC).
    pub identity: Option<String>,
}

/// The material of one `[listeners.tls]`.
pub struct ListenerMaterial {
    pub config: ListenerTls,
    pub default_cert: ServedCert,
    /// Certificates by server name, in file order.
    pub sni: Vec<(Vec<HostMatch>, Arc<CertifiedKey>)>,
    pub client_roots: Option<Arc<RootCertStore>>,
}

/// The material of one `[clusters.tls]`.
pub struct ClusterMaterial {
    pub config: ClusterTls,
    pub roots: Arc<RootCertStore>,
    pub client_cert: Option<Arc<CertifiedKey>>,
    /// The server name sent when `sni` is not set: the cluster's first DNS endpoint.
    pub default_sni: Option<String>,
}

/// All TLS material of one configuration. See the module doc.
pub struct TlsSet {
    /// By listener name.
    pub listeners: Vec<(String, Arc<ListenerMaterial>)>,
    /// By cluster name.
    pub clusters: Vec<(String, Arc<ClusterMaterial>)>,
    /// Every certificate read (leaves and CAs).
    pub certificates: Vec<LoadedCert>,
    /// Every file read, for rotation.
    pub files: Vec<PathBuf>,
}

impl TlsSet {
    /// An empty set (a configuration without TLS).
    pub fn empty() -> TlsSet {
        TlsSet {
            listeners: Vec::new(),
            clusters: Vec::new(),
            certificates: Vec::new(),
            files: Vec::new(),
        }
    }

    pub fn listener(&self, name: &str) -> Option<&Arc<ListenerMaterial>> {
        self.listeners
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, m)| m)
    }

    pub fn cluster(&self, name: &str) -> Option<&Arc<ClusterMaterial>> {
        self.clusters
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, m)| m)
    }

    /// Reads and checks every file `config` names (see the module doc); `TlsSet::load` (in
    /// `tls`) adds the trial rustls builds.
    pub fn read(config: &Config) -> Result<TlsSet, TlsErrors> {
        let provider = super::provider();
        let mut l = Loader {
            provider: &provider,
            errors: Vec::new(),
            set: TlsSet::empty(),
        };
        for lc in &config.listeners {
            let Some(t) = &lc.tls else { continue };
            let owner = format!("listener {}", lc.name);
            let default_cert = l.served(&owner, &t.default_cert);
            let sni: Vec<_> = t
                .sni
                .iter()
                .filter_map(|s| Some((s.server_names.clone(), l.served(&owner, &s.files)?.key)))
                .collect();
            let client_roots = t.client_ca.as_ref().map(|p| l.roots(&owner, p));
            let (Some(default_cert), true, true) = (
                default_cert,
                sni.len() == t.sni.len(),
                client_roots.as_ref().is_none_or(Option::is_some),
            ) else {
                continue;
            };
            let m = Arc::new(ListenerMaterial {
                config: t.clone(),
                default_cert,
                sni,
                client_roots: client_roots.flatten(),
            });
            l.set.listeners.push((lc.name.clone(), m));
        }
        for cc in &config.clusters {
            let Some(t) = &cc.tls else { continue };
            let owner = format!("cluster {}", cc.name);
            let roots = l.roots(&owner, &t.ca);
            let client_cert = t.client_cert.as_ref().map(|f| l.served(&owner, f));
            let (Some(roots), true) = (roots, client_cert.as_ref().is_none_or(Option::is_some))
            else {
                continue;
            };
            let default_sni = cc.endpoints.iter().find_map(|e| match e {
                crate::config::EndpointAddr::Dns { host, .. } => Some(host.clone()),
                crate::config::EndpointAddr::Ip(_) => None,
            });
            let m = Arc::new(ClusterMaterial {
                config: t.clone(),
                roots,
                client_cert: client_cert.flatten().map(|c| c.key),
                default_sni,
            });
            l.set.clusters.push((cc.name.clone(), m));
        }
        if l.errors.is_empty() {
            Ok(l.set)
        } else {
            Err(TlsErrors(l.errors))
        }
    }
}

struct Loader<'a> {
    provider: &'a Arc<CryptoProvider>,
    errors: Vec<TlsError>,
    set: TlsSet,
}

impl Loader<'_> {
    fn read_certs(&mut self, owner: &str, path: &Path) -> Option<Vec<CertificateDer<'static>>> {
        self.set.files.push(path.to_path_buf());
        let bytes = match std::fs::read(path) {
            Ok(b) => b,
            Err(source) => {
                self.errors.push(TlsError::Read {
                    owner: owner.into(),
                    path: path.into(),
                    source,
                });
                return None;
            }
        };
        let certs: Result<Vec<_>, pem::Error> = CertificateDer::pem_slice_iter(&bytes).collect();
        match certs {
            Ok(c) if !c.is_empty() => Some(c),
            Ok(_) => {
                self.errors.push(TlsError::NoCertificate {
                    owner: owner.into(),
                    path: path.into(),
                });
                None
            }
            Err(e) => {
                self.errors.push(TlsError::Pem {
                    owner: owner.into(),
                    path: path.into(),
                    what: format!("not valid PEM: {e}"),
                });
                None
            }
        }
    }

    fn note(&mut self, owner: &str, path: &Path, der: &[u8]) -> Option<String> {
        let names = CertNames::of(der)?;
        let identity = names.identity().map(str::to_string);
        self.set.certificates.push(LoadedCert {
            file: path.to_path_buf(),
            owner: owner.to_string(),
            name: identity.clone().unwrap_or_else(|| names.subject.clone()),
            not_after: names.not_after,
        });
        identity
    }

    /// A certificate chain and its key, checked to match.
    fn served(&mut self, owner: &str, files: &CertFiles) -> Option<ServedCert> {
        let certs = self.read_certs(owner, &files.cert);
        self.set.files.push(files.key.clone());
        let key = match std::fs::read(&files.key) {
            Ok(b) => match PrivateKeyDer::from_pem_slice(&b) {
                Ok(k) => Some(k),
                Err(pem::Error::NoItemsFound) => {
                    self.errors.push(TlsError::NoKey {
                        owner: owner.into(),
                        path: files.key.clone(),
                    });
                    None
                }
                Err(e) => {
                    self.errors.push(TlsError::Pem {
                        owner: owner.into(),
                        path: files.key.clone(),
                        what: format!("not a valid PEM private key: {e}"),
                    });
                    None
                }
            },
            Err(source) => {
                self.errors.push(TlsError::Read {
                    owner: owner.into(),
                    path: files.key.clone(),
                    source,
                });
                None
            }
        };
        let (certs, key) = (certs?, key?);
        let signing = match self.provider.key_provider.load_private_key(key) {
            Ok(s) => s,
            Err(e) => {
                self.errors.push(TlsError::UnsupportedKey {
                    owner: owner.into(),
                    path: files.key.clone(),
                    reason: e.to_string(),
                });
                return None;
            }
        };
        let identity = self.note(owner, &files.cert, certs[0].as_ref());
        let ck = CertifiedKey::new(certs, signing);
        match ck.keys_match() {
            Ok(()) | Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::Unknown)) => {}
            Err(_) => {
                self.errors.push(TlsError::KeyMismatch {
                    owner: owner.into(),
                    cert: files.cert.clone(),
                    key: files.key.clone(),
                });
                return None;
            }
        }
        Some(ServedCert {
            key: Arc::new(ck),
            identity,
        })
    }

    /// A trust bundle.
    fn roots(&mut self, owner: &str, path: &Path) -> Option<Arc<RootCertStore>> {
        let certs = self.read_certs(owner, path)?;
        let mut roots = RootCertStore::empty();
        let mut last_err = None;
        for c in certs {
            self.note(owner, path, c.as_ref());
            if let Err(e) = roots.add(c) {
                last_err = Some(e.to_string());
            }
        }
        if roots.is_empty() {
            self.errors.push(TlsError::BadBundle {
                owner: owner.into(),
                path: path.into(),
                reason: last_err.unwrap_or_else(|| "none parsed".into()),
            });
            return None;
        }
        Some(Arc::new(roots))
    }
}
