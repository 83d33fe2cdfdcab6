//! Per-worker accept loops: multishot accept on the worker's own SO_REUSEPORT socket, the
//! connection limit, and one task per accepted connection, which reads the PROXY protocol
//! header when the listener requires one and then serves the connection by its protocol
//! (`proxy` for HTTP, `l4` for TCP).
//!
//! INVARIANT: every accepted descriptor is either handed to a connection task (which owns
//! and closes it) or closed here; every connection counted open is counted closed once.

use std::os::fd::RawFd;
use std::rc::Rc;
use std::time::{Duration, Instant};

use crate::config::Protocol;
use crate::telemetry::ErrorKind;
use crate::transport::proxy_protocol::{self, ReadError};
use crate::transport::{ConnInfo, InBuf, Stream};
use crate::uring::{sleep, Accept};
use crate::worker::Worker;

/// How long a connection may take to send the PROXY protocol header its listener requires.
pub const PROXY_HEADER_TIMEOUT: Duration = Duration::from_secs(10);

/// The answer of an HTTP listener to a connection over `max_connections`: sent with one
/// non-blocking `send` (the socket buffer of a fresh connection always has room), then the
/// descriptor is closed. A TCP listener just closes.
const OVERLOADED: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\nserver: ringway\r\ncontent-type: text/plain\r\ncontent-length: 29\r\nconnection: close\r\n\r\ntoo many connections; retry\r\n";

fn reject_overloaded(fd: RawFd, protocol: Protocol) {
    // SAFETY: a descriptor we just accepted and nobody else has seen; the buffer is static.
    unsafe {
        if protocol == Protocol::Http {
            libc::send(
                fd,
                OVERLOADED.as_ptr().cast(),
                OVERLOADED.len(),
                libc::MSG_NOSIGNAL | libc::MSG_DONTWAIT,
            );
        }
        libc::shutdown(fd, libc::SHUT_WR);
        libc::close(fd);
    }
}

/// Accepts on `fd` until the worker stops accepting (`Worker::stop_accepting`, on drain):
/// then the multishot accept is cancelled and every connection it had already accepted is
/// served, so that none that the kernel completed is dropped. Dropping the task also stops it
/// (those connections are then closed by the driver).
pub async fn accept_loop(w: Rc<Worker>, listener: usize, fd: RawFd) {
    let mut acc = Accept::new(w.driver.clone(), fd);
    let mut warned = false;
    loop {
        let next = futures_lite::future::or(async { Some(acc.accept().await) }, async {
            let _ = w.stop_accepting.acquire(1).await;
            None
        })
        .await;
        match next {
            Some(Ok(cfd)) => {
                warned = false;
                on_accepted(&w, listener, cfd);
            }
            Some(Err(e)) => {
                // EMFILE/ENFILE/ENOMEM: back off instead of spinning; the backlog holds clients.
                if !warned {
                    tracing::warn!(error = %e, "accept failed; backing off");
                    warned = true;
                }
                sleep(&w.driver, Duration::from_millis(50)).await;
            }
            None => {
                let mut last = Vec::new();
                acc.finish(&mut last).await;
                for cfd in last {
                    on_accepted(&w, listener, cfd);
                }
                return;
            }
        }
    }
}

/// Starts serving the accepted connection `cfd` (or refuses it over `max_connections`).
fn on_accepted(w: &Rc<Worker>, listener: usize, cfd: RawFd) {
    let view = w.view();
    let Some(l) = view.config.listeners.get(listener) else {
        reject_overloaded(cfd, Protocol::Tcp);
        return;
    };
    if w.shared.active_connections() >= l.limits.max_connections {
        w.metrics.proxy_error(ErrorKind::Overloaded);
        reject_overloaded(cfd, l.protocol);
        return;
    }
    let info = ConnInfo::of_accepted(cfd, l.interception);
    let stream = Stream::from_fd(w.driver.clone(), cfd);
    w.conn_opened();
    w.metrics.connection_opened(listener);
    let (protocol, proxied) = (l.protocol, l.proxy_protocol);
    glommio::spawn_local(connection(
        w.clone(),
        listener,
        stream,
        info,
        protocol,
        proxied,
    ))
    .detach();
}

/// How a downstream TLS handshake failed, for `ringway_tls_handshakes_total{result}`.
fn handshake_failure(e: &std::io::Error) -> &'static str {
    let Some(tls) = e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()) else {
        return match e.kind() {
            std::io::ErrorKind::UnexpectedEof => "closed",
            _ => "io_error",
        };
    };
    match tls {
        rustls::Error::InvalidMessage(_) | rustls::Error::InappropriateMessage { .. } => {
            "not_tls_or_malformed"
        }
        rustls::Error::NoCertificatesPresented => "no_client_certificate",
        rustls::Error::InvalidCertificate(
            rustls::CertificateError::ApplicationVerificationFailure,
        ) => "identity_rejected",
        rustls::Error::InvalidCertificate(
            rustls::CertificateError::Expired | rustls::CertificateError::ExpiredContext { .. },
        ) => "certificate_expired",
        rustls::Error::InvalidCertificate(
            rustls::CertificateError::NotValidYet
            | rustls::CertificateError::NotValidYetContext { .. },
        ) => "certificate_not_yet_valid",
        rustls::Error::InvalidCertificate(_) => "certificate_rejected",
        rustls::Error::PeerIncompatible(_) => "incompatible",
        rustls::Error::NoApplicationProtocol => "no_alpn_match",
        rustls::Error::AlertReceived(_) => "alert_received",
        _ => "failed",
    }
}

/// Runs the TLS handshake of a listener with `[listeners.tls]` within its handshake timeout;
/// `early` are bytes already read (after a PROXY header). `None`: the connection failed (and is
/// closed, counted by reason).
async fn accept_tls(
    w: &Worker,
    listener: usize,
    stream: Stream,
    early: &InBuf,
    t: &crate::tls::ListenerTlsCore,
) -> Option<Stream> {
    use crate::telemetry::SecurityFamily::{DownstreamHandshake, PeerIdentity};
    let conn = match rustls::ServerConnection::new(t.server.clone()) {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "cannot start a TLS session");
            w.metrics
                .security_event(DownstreamHandshake, listener, "internal_error");
            return None;
        }
    };
    let mut stream = match stream.into_tls(conn.into(), early.bytes()) {
        Ok(s) => s,
        Err(e) => {
            w.metrics
                .security_event(DownstreamHandshake, listener, handshake_failure(&e));
            return None;
        }
    };
    match crate::uring::timeout(&w.driver, t.handshake_timeout, stream.handshake()).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => {
            let why = handshake_failure(&e);
            tracing::debug!(error = %e, result = why, "TLS handshake failed");
            w.metrics.security_event(DownstreamHandshake, listener, why);
            return None;
        }
        Err(_) => {
            w.metrics
                .security_event(DownstreamHandshake, listener, "timeout");
            return None;
        }
    }
    w.metrics
        .security_event(DownstreamHandshake, listener, "ok");
    let cert = stream
        .tls()
        .and_then(|c| c.peer_certificates().and_then(|cs| cs.first()).cloned());
    match cert {
        Some(der) => {
            let peer = crate::tls::peer_of_cert(der.as_ref(), t.own_identity.as_deref());
            w.metrics.security_event(
                PeerIdentity,
                listener,
                peer.identity.as_deref().unwrap_or("unnamed"),
            );
            stream.set_peer(peer);
        }
        None if t.material.client_roots.is_some() => {
            w.metrics.security_event(PeerIdentity, listener, "none");
        }
        None => {}
    }
    Some(stream)
}

/// One accepted connection: the PROXY protocol header first if required, then TLS if the
/// listener terminates it, then its protocol.
async fn connection(
    w: Rc<Worker>,
    listener: usize,
    mut stream: Stream,
    mut info: ConnInfo,
    protocol: Protocol,
    proxy_protocol: bool,
) {
    let mut inb = InBuf::default();
    if proxy_protocol {
        let deadline = Instant::now() + PROXY_HEADER_TIMEOUT;
        match proxy_protocol::read_header(&mut stream, &mut inb, deadline).await {
            Ok(Some((source, destination))) => {
                info.peer = source;
                info.local = destination;
            }
            Ok(None) => {} // LOCAL / UNKNOWN: the connection's own addresses stand
            Err(e) => {
                if !matches!(e, ReadError::Closed) {
                    w.metrics.proxy_error(ErrorKind::ProxyProtocol);
                }
                tracing::debug!(peer = %info.peer, error = %e, "PROXY protocol header refused");
                drop(stream);
                w.metrics.connection_closed(listener);
                w.conn_closed();
                return;
            }
        }
    }
    let tls = w.view().tls();
    if let Some(t) = tls.listener(listener) {
        match accept_tls(&w, listener, stream, &inb, t).await {
            Some(s) => {
                stream = s;
                inb.clear();
            }
            None => {
                w.metrics.connection_closed(listener);
                w.conn_closed();
                return;
            }
        }
    }
    drop(tls);
    match protocol {
        Protocol::Http => crate::proxy::serve(w, listener, stream, info, inb).await,
        Protocol::Tcp => crate::l4::serve(w, listener, stream, info, inb).await,
    }
}
