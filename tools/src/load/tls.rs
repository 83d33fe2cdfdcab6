//! HTTPS for the load generator: a rustls client over a non-blocking socket driven by the
//! worker's edge-triggered epoll loop.
//!
//! [`LoadSock`] reads and writes like a `TcpStream`: `write` hands plaintext to rustls
//! (which holds it until the handshake is done) and sends what it can; `read` returns
//! decrypted bytes, receiving and processing records (and handshake messages) as needed;
//! `WouldBlock` means what it means for a socket. [`LoadSock::flush_tls`] sends ciphertext
//! rustls still holds (called on writable edges).
//!
//! Invariants: a TLS `read` keeps reading the socket until it would block or plaintext is
//! ready, so an edge is never lost; an end of stream without close_notify reads as EOF
//! (the worker counts what was in flight).

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, ClientConnection, DigitallySignedStruct, SignatureScheme};

/// The TLS side of a plan: the client config and the server name.
#[derive(Debug, Clone)]
pub struct TlsTarget {
    pub config: Arc<ClientConfig>,
    pub server_name: ServerName<'static>,
}

impl TlsTarget {
    /// A client trusting `cacert` (or nothing checked with `insecure`), for `name`.
    pub fn new(
        cacert: Option<&Path>,
        insecure: bool,
        name: &str,
        resumption: bool,
    ) -> Result<TlsTarget, String> {
        use rustls::pki_types::pem::PemObject;
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let builder = ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?;
        let mut config = if insecure {
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(NoVerify(provider)))
                .with_no_client_auth()
        } else {
            let path = cacert.ok_or("no --cacert")?;
            let mut roots = rustls::RootCertStore::empty();
            for c in CertificateDer::pem_file_iter(path)
                .map_err(|e| format!("{}: {e}", path.display()))?
            {
                roots
                    .add(c.map_err(|e| format!("{}: {e}", path.display()))?)
                    .map_err(|e| e.to_string())?;
            }
            builder.with_root_certificates(roots).with_no_client_auth()
        };
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        if !resumption {
            config.resumption = rustls::client::Resumption::disabled();
        }
        let server_name = ServerName::try_from(name.to_string()).map_err(|e| e.to_string())?;
        Ok(TlsTarget {
            config: Arc::new(config),
            server_name,
        })
    }
}

/// Accepts any certificate (`--insecure`); signatures are still checked.
#[derive(Debug)]
struct NoVerify(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for NoVerify {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// A connection of the load generator. See the module doc.
pub enum LoadSock {
    Plain(TcpStream),
    Tls(Box<(TcpStream, ClientConnection)>),
}

impl LoadSock {
    /// Wraps a connecting socket; with `tls`, a TLS client session starts on it.
    pub fn new(tcp: TcpStream, tls: Option<&TlsTarget>) -> io::Result<LoadSock> {
        Ok(match tls {
            None => LoadSock::Plain(tcp),
            Some(t) => {
                let conn = ClientConnection::new(t.config.clone(), t.server_name.clone())
                    .map_err(io::Error::other)?;
                LoadSock::Tls(Box::new((tcp, conn)))
            }
        })
    }

    pub fn tcp(&self) -> &TcpStream {
        match self {
            LoadSock::Plain(s) => s,
            LoadSock::Tls(b) => &b.0,
        }
    }

    pub fn is_tls(&self) -> bool {
        matches!(self, LoadSock::Tls(_))
    }

    pub fn take_error(&self) -> io::Result<Option<io::Error>> {
        self.tcp().take_error()
    }

    /// Sends ciphertext rustls holds, as far as the socket takes it.
    pub fn flush_tls(&mut self) -> io::Result<()> {
        let LoadSock::Tls(b) = self else {
            return Ok(());
        };
        let (tcp, conn) = &mut **b;
        while conn.wants_write() {
            match conn.write_tls(tcp) {
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}

impl Read for LoadSock {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if let LoadSock::Plain(s) = self {
            return s.read(buf);
        }
        loop {
            let LoadSock::Tls(b) = self else {
                return Ok(0);
            };
            let (tcp, conn) = &mut **b;
            match conn.reader().read(buf) {
                Ok(n) => return Ok(n),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(0),
                Err(e) => return Err(e),
            }
            match conn.read_tls(tcp) {
                Ok(0) => return Ok(0),
                Ok(_) => {
                    conn.process_new_packets()
                        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
                    // Handshake replies, key updates.
                    self.flush_tls()?;
                }
                Err(e) => return Err(e),
            }
        }
    }
}

impl Write for LoadSock {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = match self {
            LoadSock::Plain(s) => return s.write(buf),
            LoadSock::Tls(b) => b.1.writer().write(buf)?,
        };
        self.flush_tls()?;
        if n == 0 && !buf.is_empty() {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.flush_tls()
    }
}
