//! [`Pki`]: a throw-away certificate authority for TLS tests (rcgen, ECDSA P-256), writing
//! PEM files into its own temp dir: a CA bundle, and leaf certificates with the DNS names,
//! IP addresses and SPIFFE IDs a test asks for.

use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose, SanType,
};
use tempfile::TempDir;

/// A leaf certificate's files.
#[derive(Debug, Clone)]
pub struct Leaf {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub cert_pem: String,
    pub key_pem: String,
}

/// A test CA. See the module doc.
pub struct Pki {
    dir: TempDir,
    issuer: CertifiedIssuer<'static, KeyPair>,
    pub ca: PathBuf,
    serial: u32,
}

/// What a leaf certificate says.
#[derive(Default, Clone)]
pub struct LeafSpec<'a> {
    /// DNS names and IP addresses (rcgen tells them apart).
    pub names: &'a [&'a str],
    pub spiffe: Option<&'a str>,
    /// Valid until this date (default: in 10 years' time window rcgen picks).
    pub expired: bool,
    pub not_yet_valid: bool,
}

impl Pki {
    pub fn new(name: &str) -> Pki {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(DnType::CommonName, format!("{name} test CA"));
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let issuer = CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap();
        let ca = dir.path().join("ca.pem");
        std::fs::write(&ca, issuer.pem()).unwrap();
        Pki {
            dir,
            issuer,
            ca,
            serial: 0,
        }
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// A leaf for both server and client use, written as `<file>.pem` / `<file>.key`.
    pub fn leaf(&mut self, file: &str, spec: &LeafSpec<'_>) -> Leaf {
        self.serial += 1;
        let mut params =
            CertificateParams::new(spec.names.iter().map(|s| s.to_string()).collect::<Vec<_>>())
                .unwrap();
        params
            .distinguished_name
            .push(DnType::CommonName, format!("{file} #{}", self.serial));
        if let Some(id) = spec.spiffe {
            params
                .subject_alt_names
                .push(SanType::URI(id.try_into().unwrap()));
        }
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        if spec.expired {
            params.not_before = rcgen::date_time_ymd(2020, 1, 1);
            params.not_after = rcgen::date_time_ymd(2021, 1, 1);
        }
        if spec.not_yet_valid {
            params.not_before = rcgen::date_time_ymd(2090, 1, 1);
            params.not_after = rcgen::date_time_ymd(2091, 1, 1);
        }
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        let leaf = Leaf {
            cert: self.dir.path().join(format!("{file}.pem")),
            key: self.dir.path().join(format!("{file}.key")),
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        };
        std::fs::write(&leaf.cert, &leaf.cert_pem).unwrap();
        std::fs::write(&leaf.key, &leaf.key_pem).unwrap();
        leaf
    }
}
