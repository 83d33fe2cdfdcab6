//! Fuzz logic of the TLS entry, shared by the cargo-fuzz target `tls_entry` and a unit test:
//! arbitrary bytes as (a) the first bytes of a connection to a TLS listener built exactly as
//! the workers build theirs (rustls server config from `per_core::server_config`, mTLS
//! verifier on), (b) a peer certificate handed to identity extraction, (c) a ClientHello
//! for passthrough inspection.
//!
//! Invariants checked: nothing panics; a connection fed garbage either waits for more or
//! fails, and never completes a handshake; identity extraction of garbage yields nothing or
//! names that are substrings of the input.

use std::sync::{Arc, OnceLock};

use crate::config::{CertFiles, ForwardClientCert, ListenerTls, TlsVersion};

use super::material::{ListenerMaterial, ServedCert};

/// A throw-away self-signed ECDSA P-256 certificate (CN=fuzz, valid for 100 years).
const CERT_PEM: &str = "-----BEGIN CERTIFICATE-----\nMIIBqTCCAU+gAwIBAgIUUSvqVwJhMx2AN5pbyc4oVg+LQJYwCgYIKoZIzj0EAwIw\nDzENMAsGA1UEAwwEZnV6ejAgFw0yNjEyMDQyMDQzMDVaGA8yMTI2MTExMDIwNDMw\nNVowDzENMAsGA1UEAwwEZnV6ejBZMBMGByqGSM49AgEGCCqGSM49AwEHA0IABGnw\nHT9rKle9h9Z1tnQub9YJbMh0dwOqvodY+ARLUaNas/y5JGuVjpMFuVftCG9dZzbU\ndDFCDuTjmos2N+P+q5SjgYYwgYMwHQYDVR0OBBYEFA2wCMLRnd+q6lsVPP7TqbQ7\n01hcMB8GA1UdIwQYMBaAFA2wCMLRnd+q6lsVPP7TqbQ701hcMA8GA1UdEwEB/wQF\nMAMBAf8wMAYDVR0RBCkwJ4IMZnV6ei5leGFtcGxlhhdzcGlmZmU6Ly9mdXp6L25z\nL2Evc2EvYjAKBggqhkjOPQQDAgNIADBFAiEAuUZaECEmmNv1VyrjbK3hFrhQk/OJ\n3gpmDQZnJ9L4W9kCIH2KDODP0I0bx0X0ivSqLzazFfx0frjR3tUPPI9oapPR\n-----END CERTIFICATE-----\n";
const KEY_PEM: &str = "-----BEGIN PRIVATE KEY-----\nMIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgzo0VmQnjK48DlgRP\n9XSbCNn3KKiv5Xof6cDANYKxWxehRANCAARp8B0/aypXvYfWdbZ0Lm/WCWzIdHcD\nqr6HWPgES1GjWrP8uSRrlY6TBblX7QhvXWc21HQxQg7k45qLNjfj/quU\n-----END PRIVATE KEY-----\n";

fn server() -> &'static Arc<rustls::ServerConfig> {
    static CONFIG: OnceLock<Arc<rustls::ServerConfig>> = OnceLock::new();
    CONFIG.get_or_init(|| {
        use rustls::pki_types::pem::PemObject;
        use rustls::pki_types::{CertificateDer, PrivateKeyDer};
        let provider = super::provider();
        let cert = CertificateDer::from_pem_slice(CERT_PEM.as_bytes()).expect("fuzz cert");
        let key = PrivateKeyDer::from_pem_slice(KEY_PEM.as_bytes()).expect("fuzz key");
        let signing = provider
            .key_provider
            .load_private_key(key)
            .expect("fuzz key");
        let mut roots = rustls::RootCertStore::empty();
        roots.add(cert.clone()).expect("fuzz root");
        let m = ListenerMaterial {
            config: ListenerTls {
                default_cert: CertFiles {
                    cert: "fuzz.pem".into(),
                    key: "fuzz.key".into(),
                },
                sni: Vec::new(),
                client_ca: None,
                identities: vec![crate::config::StringMatch::parse("spiffe://fuzz/*")],
                handshake_timeout: std::time::Duration::from_secs(10),
                min_version: TlsVersion::V1_2,
                alpn: vec!["http/1.1".into()],
                session_tickets: true,
                forward_client_cert: ForwardClientCert::Sanitize,
            },
            default_cert: ServedCert {
                key: Arc::new(rustls::sign::CertifiedKey::new(vec![cert], signing)),
                identity: None,
            },
            sni: Vec::new(),
            client_roots: Some(Arc::new(roots)),
        };
        super::per_core::server_config(&m, None).expect("fuzz server config")
    })
}

/// Runs every check on `data`; panics on a violated invariant.
pub fn fuzz_logic(data: &[u8]) {
    let mut conn = rustls::ServerConnection::new(server().clone()).expect("server connection");
    let mut rest = data;
    while !rest.is_empty() {
        match conn.read_tls(&mut rest) {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
        if conn.process_new_packets().is_err() {
            break;
        }
    }
    assert!(
        conn.is_handshaking(),
        "a handshake completed from bytes alone"
    );
    if let Some(names) = super::identity::CertNames::of(data) {
        for n in names.all() {
            assert!(n.len() <= data.len());
        }
        let _ = names.identity().and_then(super::identity::namespace);
    }
    let _ = crate::transport::client_hello::inspect(data);
}

#[cfg(test)]
mod tests {
    #[test]
    fn replays_the_committed_seeds() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../fuzz/seeds/tls_entry");
        let mut n = 0;
        for e in std::fs::read_dir(dir).expect("seed dir") {
            super::fuzz_logic(&std::fs::read(e.expect("seed").path()).expect("seed"));
            n += 1;
        }
        assert!(n >= 3);
        super::fuzz_logic(b"");
        super::fuzz_logic(b"GET / HTTP/1.1\r\n\r\n");
    }
}
