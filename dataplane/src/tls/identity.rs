//! Names in X.509 certificates and what a mesh makes of them: the peer's identity (its SPIFFE
//! ID, a URI SAN `spiffe://<trust domain>/ns/<namespace>/sa/<account>`, else its first DNS
//! SAN), the namespace of a SPIFFE ID, and the `x-forwarded-client-cert` element of a
//! connection (Envoy's format).
//!
//! Invariant: parsing never panics on any input; a certificate that cannot be parsed has no
//! names (and so no identity).

use std::fmt::Write;

use sha2::{Digest, Sha256};
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::{FromDer, X509Certificate};

/// The names of one certificate.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CertNames {
    pub uris: Vec<String>,
    pub dns: Vec<String>,
    /// RFC 4514 form of the subject.
    pub subject: String,
    /// `notAfter`, seconds since the Unix epoch.
    pub not_after: i64,
}

impl CertNames {
    /// The names of the DER certificate `der`, or `None` if it cannot be parsed.
    pub fn of(der: &[u8]) -> Option<CertNames> {
        let (_, cert) = X509Certificate::from_der(der).ok()?;
        let mut names = CertNames {
            subject: cert.subject().to_string(),
            not_after: cert.validity().not_after.timestamp(),
            ..CertNames::default()
        };
        if let Ok(Some(san)) = cert.subject_alternative_name() {
            for n in &san.value.general_names {
                match n {
                    GeneralName::URI(u) => names.uris.push((*u).to_string()),
                    GeneralName::DNSName(d) => names.dns.push(d.to_ascii_lowercase()),
                    _ => {}
                }
            }
        }
        Some(names)
    }

    /// The identity: the SPIFFE ID, else the first DNS name.
    pub fn identity(&self) -> Option<&str> {
        self.uris
            .iter()
            .find(|u| u.starts_with("spiffe://"))
            .or_else(|| self.dns.first())
            .map(String::as_str)
    }

    /// Every name an `identities` list may match: URI SANs, then DNS SANs.
    pub fn all(&self) -> impl Iterator<Item = &str> {
        self.uris.iter().chain(&self.dns).map(String::as_str)
    }
}

/// The namespace of a SPIFFE ID (`spiffe://td/ns/<namespace>/sa/x` → `<namespace>`).
pub fn namespace(identity: &str) -> Option<&str> {
    let path = identity.strip_prefix("spiffe://")?;
    let mut parts = path.split('/').skip(1);
    while let Some(p) = parts.next() {
        if p == "ns" {
            return parts.next().filter(|n| !n.is_empty());
        }
    }
    None
}

pub use crate::transport::TlsPeer as Peer;

/// The peer of a connection whose client presented `der`; `by` is our own identity.
pub fn peer_of_cert(der: &[u8], by: Option<&str>) -> Peer {
    let names = CertNames::of(der).unwrap_or_default();
    let identity: Option<Box<str>> = names.identity().map(Into::into);
    Peer {
        namespace: identity.as_deref().and_then(namespace).map(Into::into),
        identity,
        xfcc: xfcc_element(by, der, &names).into(),
    }
}

/// One element of `x-forwarded-client-cert`:
/// `By=<our identity>;Hash=<sha256 of the peer certificate>;Subject="<subject>";URI=<uri>;DNS=<dns>`.
pub fn xfcc_element(by: Option<&str>, der: &[u8], names: &CertNames) -> String {
    let mut out = String::with_capacity(192);
    if let Some(by) = by {
        let _ = write!(out, "By={};", quoted_if_needed(by));
    }
    out.push_str("Hash=");
    for b in Sha256::digest(der) {
        let _ = write!(out, "{b:02x}");
    }
    let _ = write!(out, ";Subject=\"{}\"", names.subject.replace('"', "\\\""));
    for u in &names.uris {
        let _ = write!(out, ";URI={}", quoted_if_needed(u));
    }
    for d in &names.dns {
        let _ = write!(out, ";DNS={}", quoted_if_needed(d));
    }
    out
}

/// XFCC values containing `,`, `;` or `=` are double-quoted (Envoy's rule).
fn quoted_if_needed(v: &str) -> String {
    if v.contains([',', ';', '=', '"']) {
        format!("\"{}\"", v.replace('"', "\\\""))
    } else {
        v.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cert(uris: &[&str], dns: &[&str]) -> Vec<u8> {
        let mut params =
            rcgen::CertificateParams::new(dns.iter().map(|s| s.to_string()).collect::<Vec<_>>())
                .unwrap();
        for u in uris {
            params.subject_alt_names.push(rcgen::SanType::URI(
                rcgen::string::Ia5String::try_from(*u).unwrap(),
            ));
        }
        let key = rcgen::KeyPair::generate().unwrap();
        params.self_signed(&key).unwrap().der().to_vec()
    }

    #[test]
    fn spiffe_uri_wins_over_dns() {
        let der = cert(&["spiffe://cluster.local/ns/shop/sa/cart"], &["cart.shop"]);
        let n = CertNames::of(&der).unwrap();
        assert_eq!(n.identity(), Some("spiffe://cluster.local/ns/shop/sa/cart"));
        assert_eq!(n.all().count(), 2);
        let der = cert(&["https://not-spiffe.example/"], &["Cart.Shop"]);
        assert_eq!(CertNames::of(&der).unwrap().identity(), Some("cart.shop"));
        assert_eq!(CertNames::of(&cert(&[], &[])).unwrap().identity(), None);
    }

    #[test]
    fn garbage_has_no_names() {
        assert_eq!(CertNames::of(b"not a certificate"), None);
        assert_eq!(CertNames::of(&[]), None);
    }

    #[test]
    fn namespaces_of_spiffe_ids() {
        for (id, ns) in [
            ("spiffe://cluster.local/ns/shop/sa/cart", Some("shop")),
            ("spiffe://td/ns/a", Some("a")),
            ("spiffe://td/ns/", None),
            ("spiffe://td/sa/x", None),
            ("cart.shop", None),
            ("spiffe://ns/x/sa/y", None),
        ] {
            assert_eq!(namespace(id), ns, "{id}");
        }
    }

    #[test]
    fn xfcc_element_has_envoys_fields() {
        let der = cert(&["spiffe://cluster.local/ns/shop/sa/frontend"], &[]);
        let p = peer_of_cert(&der, Some("spiffe://cluster.local/ns/shop/sa/cart"));
        let hash: String = Sha256::digest(&der)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(
            &*p.xfcc,
            format!(
                "By=spiffe://cluster.local/ns/shop/sa/cart;Hash={hash};Subject=\"CN=rcgen self signed cert\";URI=spiffe://cluster.local/ns/shop/sa/frontend"
            )
        );
        assert_eq!(p.namespace.as_deref(), Some("shop"));
        assert_eq!(quoted_if_needed("a=b"), "\"a=b\"");
    }
}
