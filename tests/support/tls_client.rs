//! A blocking rustls client for TLS tests: a config trusting a test CA (optionally with a
//! client certificate, ALPN `http/1.1`), a connection with its handshake done, and one
//! Content-Length framed keep-alive `GET`.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::Duration;

use super::pki::Leaf;

/// A rustls client config trusting `ca`, presenting `client` if given.
pub fn client_config(ca: &std::path::Path, client: Option<&Leaf>) -> Arc<rustls::ClientConfig> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(ca).unwrap() {
        roots.add(c.unwrap()).unwrap();
    }
    let b = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots);
    let mut cfg = match client {
        Some(l) => b
            .with_client_auth_cert(
                vec![CertificateDer::from_pem_file(&l.cert).unwrap()],
                PrivateKeyDer::from_pem_file(&l.key).unwrap(),
            )
            .unwrap(),
        None => b.with_no_client_auth(),
    };
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Arc::new(cfg)
}

pub type TlsClient = rustls::StreamOwned<rustls::ClientConnection, TcpStream>;

/// A TLS connection to `to` (server name `sni`), handshake done.
pub fn tls_connect(
    to: SocketAddr,
    sni: &str,
    cfg: Arc<rustls::ClientConfig>,
) -> std::io::Result<TlsClient> {
    let tcp = TcpStream::connect(to)?;
    tcp.set_read_timeout(Some(Duration::from_secs(10)))?;
    tcp.set_write_timeout(Some(Duration::from_secs(10)))?;
    let conn = rustls::ClientConnection::new(cfg, sni.to_string().try_into().unwrap())
        .map_err(std::io::Error::other)?;
    let mut s = rustls::StreamOwned::new(conn, tcp);
    while s.conn.is_handshaking() {
        s.conn.complete_io(&mut s.sock)?;
    }
    Ok(s)
}

/// One keep-alive `GET path` over `s`; the response head and body (Content-Length framed).
pub fn get(s: &mut TlsClient, path: &str) -> std::io::Result<(String, Vec<u8>)> {
    request(s, "GET", path)
}

/// One keep-alive `method path` request without a body over `s`.
pub fn request(s: &mut TlsClient, method: &str, path: &str) -> std::io::Result<(String, Vec<u8>)> {
    write!(s, "{method} {path} HTTP/1.1\r\nHost: shop\r\n\r\n")?;
    s.flush()?;
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    while !buf.ends_with(b"\r\n\r\n") {
        if s.read(&mut byte)? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        buf.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&buf).to_string();
    let len: usize = head
        .lines()
        .find_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse().ok())?
        })
        .unwrap_or(0);
    let mut body = vec![0u8; len];
    s.read_exact(&mut body)?;
    Ok((head, body))
}

pub fn status_of(head: &str) -> u16 {
    head.split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}
