//! Certificate verifiers that decide by identity.
//!
//! - [`PeerIdentityServerVerifier`] (origination): the endpoint's chain must end at the
//!   cluster's trust bundle and one of its names (URI or DNS SAN) must match the cluster's
//!   `identities`; the host name is not checked (SPIFFE certificates carry none).
//! - [`PeerIdentityClientVerifier`] (termination): rustls's client verifier for the chain,
//!   then the client's names must match the listener's `identities`.
//!
//! Invariant: a chain check failure is never turned into success; an identity mismatch
//! fails the handshake with `ApplicationVerificationFailure` (the peer gets an alert).

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, WebPkiSupportedAlgorithms};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::ParsedCertificate;
use rustls::{
    CertificateError, DigitallySignedStruct, DistinguishedName, Error, RootCertStore,
    SignatureScheme,
};

use super::identity::CertNames;
use crate::config::StringMatch;

/// Whether any name of `der` matches any of `accepted`.
pub fn identity_matches(der: &[u8], accepted: &[StringMatch]) -> bool {
    CertNames::of(der).is_some_and(|n| n.all().any(|name| accepted.iter().any(|m| m.matches(name))))
}

fn mismatch() -> Error {
    Error::InvalidCertificate(CertificateError::ApplicationVerificationFailure)
}

/// See the module doc.
#[derive(Debug)]
pub struct PeerIdentityServerVerifier {
    pub roots: Arc<RootCertStore>,
    pub identities: Vec<StringMatch>,
    pub algs: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for PeerIdentityServerVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, Error> {
        let cert = ParsedCertificate::try_from(end_entity)?;
        rustls::client::verify_server_cert_signed_by_trust_anchor(
            &cert,
            &self.roots,
            intermediates,
            now,
            self.algs.all,
        )?;
        if identity_matches(end_entity.as_ref(), &self.identities) {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(mismatch())
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        verify_tls12_signature(message, cert, dss, &self.algs)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        verify_tls13_signature(message, cert, dss, &self.algs)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algs.supported_schemes()
    }
}

/// See the module doc.
#[derive(Debug)]
pub struct PeerIdentityClientVerifier {
    pub inner: Arc<dyn ClientCertVerifier>,
    pub identities: Vec<StringMatch>,
}

impl ClientCertVerifier for PeerIdentityClientVerifier {
    fn offer_client_auth(&self) -> bool {
        self.inner.offer_client_auth()
    }

    fn client_auth_mandatory(&self) -> bool {
        self.inner.client_auth_mandatory()
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.inner.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, Error> {
        let ok = self
            .inner
            .verify_client_cert(end_entity, intermediates, now)?;
        if identity_matches(end_entity.as_ref(), &self.identities) {
            Ok(ok)
        } else {
            Err(mismatch())
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}
