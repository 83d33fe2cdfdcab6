//! TLS material and per-core TLS configurations (rustls with the aws-lc-rs provider).
//!
//! ```text
//!  Config ──load──▶ TlsSet (Send + Sync: certificates, keys, trust bundles, read and checked
//!                   once, off the workers; reloaded on SIGHUP and when the files change)
//!  TlsSet ──build (per worker)──▶ WorkerTls: each core's own rustls ServerConfig /
//!                   ClientConfig, its own session-ticket key and resumption caches
//!  handshake ──▶ Peer: the client's identity (SPIFFE URI SAN, else DNS SAN) and its
//!                   x-forwarded-client-cert element, kept with the connection
//! ```
//!
//! - `material`: [`TlsSet::load`], what the files hold, with every problem named by file.
//! - `identity`: names in certificates, SPIFFE identities and namespaces, XFCC elements.
//! - `verify`: certificate verifiers that accept peers by identity (SPIFFE ID) instead of
//!   host name, on both sides.
//! - `per_core`: [`WorkerTls`], the per-core rustls configs built from a `TlsSet`.
//! - `fuzz_logic`: the checks of the `tls_entry` fuzz target (handshake entry, peer
//!   certificate names, ClientHello inspection on arbitrary bytes).
//! - `watch`: [`FileWatch`], the fingerprint of every file a `TlsSet` was read from (for
//!   rotation: a changed fingerprint means "load again").
//!
//! Invariants: nothing here runs on the hot path except the handshake itself (inside rustls);
//! a `TlsSet` is complete or not built at all (an invalid set never replaces a valid one);
//! established connections keep the config they were accepted or opened with.
//! The TLS byte stream itself is `transport::Stream` (module `transport::tls_stream`).

pub mod fuzz_logic;
pub mod identity;
pub mod material;
pub mod per_core;
pub mod verify;
pub mod watch;

pub use identity::{peer_of_cert, Peer};
pub use material::{LoadedCert, TlsError, TlsErrors, TlsSet};
pub use per_core::{ClusterTlsCore, ListenerTlsCore, WorkerTls};
pub use watch::FileWatch;

use std::sync::Arc;

use rustls::crypto::CryptoProvider;

use crate::config::{Config, TlsVersion};

/// The crypto provider every config uses: aws-lc-rs, its default suites (TLS 1.3 AEADs and
/// TLS 1.2 ECDHE with AEADs only: Mozilla "intermediate") and key-exchange groups, with
/// AES-128-GCM preferred (as BoringSSL and OpenSSL servers do; what Envoy, nginx and HAProxy
/// negotiate with each other), then AES-256-GCM, then ChaCha20-Poly1305.
pub fn provider() -> Arc<CryptoProvider> {
    let mut p = rustls::crypto::aws_lc_rs::default_provider();
    let rank = |s: &rustls::SupportedCipherSuite| {
        let name = format!("{:?}", s.suite());
        (
            s.version() != &rustls::version::TLS13,
            !name.contains("AES_128"),
            !name.contains("AES_256"),
        )
    };
    p.cipher_suites.sort_by_key(rank);
    Arc::new(p)
}

impl TlsSet {
    /// Reads and checks everything `config` names, and builds a trial rustls config from
    /// each listener's and cluster's material: a set that loads here builds on every core.
    pub fn load(config: &Config) -> Result<TlsSet, TlsErrors> {
        let set = TlsSet::read(config)?;
        let mut errors = Vec::new();
        for (name, m) in &set.listeners {
            if let Err(e) = per_core::server_config(m, None) {
                errors.push(TlsError::Config {
                    owner: format!("listener {name}"),
                    reason: e.to_string(),
                });
            }
        }
        for (name, m) in &set.clusters {
            if let Err(e) = per_core::client_config(m) {
                errors.push(TlsError::Config {
                    owner: format!("cluster {name}"),
                    reason: e.to_string(),
                });
            }
        }
        if errors.is_empty() {
            Ok(set)
        } else {
            Err(TlsErrors(errors))
        }
    }
}

/// The protocol versions allowed from `min` up.
pub fn versions(min: TlsVersion) -> &'static [&'static rustls::SupportedProtocolVersion] {
    static BOTH: [&rustls::SupportedProtocolVersion; 2] =
        [&rustls::version::TLS13, &rustls::version::TLS12];
    static ONLY_13: [&rustls::SupportedProtocolVersion; 1] = [&rustls::version::TLS13];
    match min {
        TlsVersion::V1_2 => &BOTH,
        TlsVersion::V1_3 => &ONLY_13,
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn aes_128_gcm_is_preferred_then_tls13_before_tls12() {
        let p = super::provider();
        let names: Vec<String> = p
            .cipher_suites
            .iter()
            .map(|s| format!("{:?}", s.suite()))
            .collect();
        assert_eq!(names[0], "TLS13_AES_128_GCM_SHA256", "{names:?}");
        assert_eq!(names[1], "TLS13_AES_256_GCM_SHA384", "{names:?}");
        let first12 = p
            .cipher_suites
            .iter()
            .position(|s| s.version() == &rustls::version::TLS12)
            .unwrap();
        assert!(p.cipher_suites[first12..]
            .iter()
            .all(|s| s.version() == &rustls::version::TLS12));
    }
}
