//! [`Stream`]: one connected byte stream, whatever carries it.
//!
//! ```text
//!   recv() ──▶ RecvBuf (bytes in a provided buffer of the driver's ring: no copy)
//!   send(payload: impl IoVecs, deadline) ──▶ (result, payload back)   one sendmsg per batch
//!   split() ──▶ (RecvHalf, SendHalf)      both directions at once (tunnels, L4 relays)
//!   quiesce() + notify_readable(token)    parking an idle connection without a task
//! ```
//!
//! A plaintext stream is a [`Socket`] of the driver (TCP, or one end of a Unix socket pair,
//! which is how tests build doubles); it alone offers zero-copy splicing (`splice`). Further
//! transports (TLS) are further variants of [`Io`], so nothing that holds a `Stream` changes
//! when one is added.
//!
//! Invariants: received bytes are returned once, in order; a send's payload comes back on
//! every outcome; the byte counters count what was received and what was fully sent.

use std::cell::Cell;
use std::io;
use std::net::SocketAddr;
use std::os::fd::RawFd;
use std::rc::Rc;
use std::time::Instant;

use super::tls_stream::{self, TlsIo, TlsPeer};
use crate::uring::{self, Driver, IoVecs, RecvBuf, SendError, Socket};

/// What carries the bytes.
enum Io {
    /// TCP or a Unix socket pair, bytes as they are.
    Plain(Socket),
    /// TLS over TCP (rustls; boxed: its state is large and plaintext streams are the many).
    Tls(Box<TlsIo>),
}

/// Bytes moved through a stream since the counters were last taken.
#[derive(Default)]
struct Counts {
    received: Cell<u64>,
    sent: Cell<u64>,
}

impl Counts {
    fn add_received(&self, n: usize) {
        self.received
            .set(self.received.get().wrapping_add(n as u64));
    }
    fn add_sent(&self, n: usize) {
        self.sent.set(self.sent.get().wrapping_add(n as u64));
    }
}

/// A connected byte stream. See the module doc.
pub struct Stream {
    io: Io,
    counts: Counts,
}

/// Opens a plaintext TCP connection to `addr` (TCP_NODELAY set).
pub async fn connect_tcp(driver: &Rc<Driver>, addr: SocketAddr) -> io::Result<Stream> {
    uring::connect(driver, addr).await.map(Stream::plain)
}

impl Stream {
    /// A plaintext stream over a connected socket of the driver.
    pub fn plain(sock: Socket) -> Stream {
        Stream {
            io: Io::Plain(sock),
            counts: Counts::default(),
        }
    }

    /// Takes ownership of an accepted (or otherwise connected) non-blocking descriptor.
    pub fn from_fd(driver: Rc<Driver>, fd: RawFd) -> Stream {
        Stream::plain(Socket::from_fd(driver, fd))
    }

    /// Wraps this plaintext stream in TLS (`conn`: a fresh rustls server or client
    /// connection); `early` are bytes already received that belong to the TLS stream. The
    /// handshake runs with [`Stream::handshake`].
    pub fn into_tls(self, conn: rustls::Connection, early: &[u8]) -> io::Result<Stream> {
        let sock = match self.io {
            Io::Plain(s) => s,
            Io::Tls(_) => return Err(io::Error::other("stream is already TLS")),
        };
        let tls = TlsIo::new(sock, conn);
        tls.feed_early(early)?;
        Ok(Stream {
            io: Io::Tls(Box::new(tls)),
            counts: self.counts,
        })
    }

    /// Completes the TLS handshake (a plaintext stream has none). Unbounded: the caller
    /// applies its handshake timeout.
    pub async fn handshake(&mut self) -> io::Result<()> {
        match &mut self.io {
            Io::Plain(_) => Ok(()),
            Io::Tls(t) => t.handshake().await,
        }
    }

    /// The TLS session of a TLS stream (peer certificates, SNI, ALPN, version).
    pub fn tls(&self) -> Option<std::cell::Ref<'_, rustls::Connection>> {
        match &self.io {
            Io::Plain(_) => None,
            Io::Tls(t) => Some(std::cell::Ref::map(t.state.borrow(), |s| &s.conn)),
        }
    }

    /// The verified peer of a TLS stream (set after the handshake).
    pub fn peer(&self) -> Option<&Rc<TlsPeer>> {
        match &self.io {
            Io::Plain(_) => None,
            Io::Tls(t) => t.peer.as_ref(),
        }
    }

    /// Records the verified peer of a TLS stream (no effect on plaintext).
    pub fn set_peer(&mut self, peer: TlsPeer) {
        if let Io::Tls(t) = &mut self.io {
            t.peer = Some(Rc::new(peer));
        }
    }

    fn socket(&self) -> &Socket {
        match &self.io {
            Io::Plain(s) => s,
            Io::Tls(t) => &t.sock,
        }
    }

    fn socket_mut(&mut self) -> &mut Socket {
        match &mut self.io {
            Io::Plain(s) => s,
            Io::Tls(t) => &mut t.sock,
        }
    }

    pub fn driver(&self) -> &Rc<Driver> {
        self.socket().driver()
    }

    /// Whether the bytes on the wire are the bytes of the stream (so they may be spliced).
    pub fn is_plaintext(&self) -> bool {
        matches!(self.io, Io::Plain(_))
    }

    /// The descriptor of a plaintext stream, for zero-copy relays inside this module tree.
    pub(super) fn plain_fd(&self) -> Option<RawFd> {
        match &self.io {
            Io::Plain(s) => Some(s.fd()),
            Io::Tls(_) => None,
        }
    }

    /// Next received bytes; `Ok(None)` at end of stream. Cancel-safe: dropping the future
    /// loses nothing (the receive lives in the stream).
    pub async fn recv(&mut self) -> io::Result<Option<RecvBuf>> {
        let r = match &mut self.io {
            Io::Plain(s) => s.recv().await,
            Io::Tls(t) => tls_stream::recv(&mut t.sock, &t.state).await,
        };
        if let Ok(Some(b)) = &r {
            self.counts.add_received(b.len());
        }
        r
    }

    /// True when received bytes (or end of stream, or an error) are waiting.
    pub fn has_pending(&self) -> bool {
        match &self.io {
            Io::Plain(s) => s.has_pending(),
            Io::Tls(t) => t.sock.has_pending() || t.has_buffered(),
        }
    }

    /// Starts receiving in the background (read-ahead while the caller sends).
    pub fn start_recv(&mut self) {
        self.socket_mut().start_recv()
    }

    /// Receive only when asked (one buffer per receive), so that bytes not yet asked for stay
    /// in the kernel, where a plaintext stream can splice them (upstream connections).
    pub fn receive_on_demand(&mut self) {
        if let Io::Plain(s) = &mut self.io {
            s.set_single_shot()
        }
    }

    /// Stops the background receive, keeping what it delivered for [`Stream::take_queued`].
    pub async fn pause_recv(&mut self) {
        self.socket_mut().pause_recv().await
    }

    /// After [`Stream::pause_recv`]: the next delivered buffer, `Ok(None)` once none is left;
    /// end of stream is an `UnexpectedEof` error.
    pub fn take_queued(&mut self) -> io::Result<Option<RecvBuf>> {
        let r = match &mut self.io {
            Io::Plain(s) => s.take_queued(),
            Io::Tls(t) => tls_stream::take_queued(&mut t.sock, &t.state),
        };
        if let Ok(Some(b)) = &r {
            self.counts.add_received(b.len());
        }
        r
    }

    /// Stops receiving without losing bytes. True when the stream is quiet — nothing
    /// received, no end of stream, no error, nothing buffered in the transport — so it can
    /// be parked and watched with [`Stream::notify_readable`]; otherwise what arrived is kept
    /// for [`Stream::recv`].
    pub async fn quiesce(&mut self) -> bool {
        match &mut self.io {
            Io::Plain(s) => s.stop_recv().await,
            Io::Tls(t) => {
                if t.has_buffered() {
                    t.sock.pause_recv().await;
                    return false;
                }
                t.sock.stop_recv().await
            }
        }
    }

    /// One readiness notification (`token`, see `Driver::notify_readable`) when the quiet
    /// stream has something for the reader: bytes, end of stream or an error.
    pub fn notify_readable(&self, token: u64) {
        let s = self.socket();
        s.driver().notify_readable(s.fd(), token)
    }

    /// Sends all of `payload` unless `deadline` passes first; the payload always comes back.
    pub async fn send<T: IoVecs>(
        &mut self,
        payload: T,
        deadline: Option<Instant>,
    ) -> (Result<(), SendError>, T) {
        let total = payload.total();
        let r = match &self.io {
            Io::Plain(s) => s.send_all_until(payload, deadline).await,
            Io::Tls(t) => tls_stream::send(&t.sock.sender(), &t.state, payload, deadline).await,
        };
        if r.0.is_ok() {
            self.counts.add_sent(total);
        }
        r
    }

    /// Ends our sending direction (the peer reads end of stream; TLS: after close_notify);
    /// receiving goes on.
    pub fn shutdown_write(&mut self) {
        match &self.io {
            Io::Plain(s) => s.shutdown_write(),
            Io::Tls(t) => tls_stream::shutdown_write(&t.sock.sender(), &t.state),
        }
    }

    /// A TLS stream sends close_notify (best effort, without waiting): what was sent is all
    /// there is. Plaintext: nothing to do. Call before dropping a stream that ends cleanly;
    /// a stream dropped without it ends as a truncation for a TLS peer.
    pub fn close_notify(&mut self) {
        if let Io::Tls(t) = &self.io {
            tls_stream::close_notify(&t.sock.sender(), &t.state);
        }
    }

    /// Ends both directions (the peer sees the close; a pending receive completes).
    pub fn shutdown(&mut self) {
        if let Io::Tls(t) = &self.io {
            tls_stream::shutdown_write(&t.sock.sender(), &t.state);
        }
        self.socket().shutdown()
    }

    /// Whether the peer has ended its sending direction (a receive returned end of stream).
    pub fn is_eof(&self) -> bool {
        self.socket().is_eof()
    }

    /// Whether bytes that nobody asked for, an end of stream or an error are waiting in the
    /// kernel (a non-blocking one-byte peek). After a spliced body: anything there makes the
    /// connection unfit for reuse.
    pub fn has_unread_or_eof(&self) -> bool {
        match &self.io {
            Io::Plain(s) => peek_has_bytes_or_eof(s.fd()),
            Io::Tls(t) => t.has_buffered() || peek_has_bytes_or_eof(t.sock.fd()),
        }
    }

    /// The local address of the connection (unspecified if it cannot be read).
    pub fn local_addr(&self) -> SocketAddr {
        super::addr::local_addr(self.socket().fd())
    }

    /// Both directions at once: a receiving half and a sending half.
    pub fn split(&mut self) -> (RecvHalf<'_>, SendHalf<'_>) {
        let counts = &self.counts;
        match &mut self.io {
            Io::Plain(s) => {
                let (rx, tx) = s.split();
                (
                    RecvHalf {
                        io: RecvIo::Plain(rx),
                        counts,
                    },
                    SendHalf {
                        io: SendIo::Plain(tx),
                        counts,
                    },
                )
            }
            Io::Tls(t) => {
                let state = &t.state;
                let (rx, tx) = t.sock.split();
                (
                    RecvHalf {
                        io: RecvIo::Tls(rx, state),
                        counts,
                    },
                    SendHalf {
                        io: SendIo::Tls(tx, state),
                        counts,
                    },
                )
            }
        }
    }

    /// (bytes received, bytes sent) since the last call.
    pub fn take_byte_counts(&self) -> (u64, u64) {
        (self.counts.received.take(), self.counts.sent.take())
    }

    /// Counts bytes a zero-copy relay moved past the receive/send paths.
    pub(super) fn count_spliced(&self, received: usize, sent: usize) {
        self.counts.add_received(received);
        self.counts.add_sent(sent);
    }
}

/// Whether socket `fd` has unread bytes, has reached end of stream or is in error.
fn peek_has_bytes_or_eof(fd: RawFd) -> bool {
    let mut b = 0u8;
    // SAFETY: reads at most one byte into a local, without consuming it.
    let n = unsafe {
        libc::recv(
            fd,
            (&mut b as *mut u8).cast(),
            1,
            libc::MSG_PEEK | libc::MSG_DONTWAIT,
        )
    };
    n >= 0
        || !matches!(
            std::io::Error::last_os_error().raw_os_error(),
            Some(libc::EAGAIN)
        )
}

enum RecvIo<'a> {
    Plain(&'a mut Socket),
    Tls(&'a mut Socket, &'a std::cell::RefCell<tls_stream::TlsState>),
}

enum SendIo<'a> {
    Plain(uring::SendHalf<'a>),
    Tls(
        uring::SendHalf<'a>,
        &'a std::cell::RefCell<tls_stream::TlsState>,
    ),
}

/// The receiving half of a split [`Stream`].
pub struct RecvHalf<'a> {
    io: RecvIo<'a>,
    counts: &'a Counts,
}

impl RecvHalf<'_> {
    /// As [`Stream::recv`].
    pub async fn recv(&mut self) -> io::Result<Option<RecvBuf>> {
        let r = match &mut self.io {
            RecvIo::Plain(s) => s.recv().await,
            RecvIo::Tls(s, st) => tls_stream::recv(s, st).await,
        };
        if let Ok(Some(b)) = &r {
            self.counts.add_received(b.len());
        }
        r
    }

    /// As [`Stream::has_pending`].
    pub fn has_pending(&self) -> bool {
        match &self.io {
            RecvIo::Plain(s) | RecvIo::Tls(s, _) => s.has_pending(),
        }
    }

    /// As [`Stream::pause_recv`].
    pub async fn pause_recv(&mut self) {
        match &mut self.io {
            RecvIo::Plain(s) | RecvIo::Tls(s, _) => s.pause_recv().await,
        }
    }

    /// As [`Stream::take_queued`].
    pub fn take_queued(&mut self) -> io::Result<Option<RecvBuf>> {
        let r = match &mut self.io {
            RecvIo::Plain(s) => s.take_queued(),
            RecvIo::Tls(s, st) => tls_stream::take_queued(s, st),
        };
        if let Ok(Some(b)) = &r {
            self.counts.add_received(b.len());
        }
        r
    }

    /// Whether the bytes on the wire are the stream's bytes (so they may be spliced).
    pub fn is_plaintext(&self) -> bool {
        matches!(self.io, RecvIo::Plain(_))
    }

    pub(super) fn plain_fd(&self) -> Option<RawFd> {
        match &self.io {
            RecvIo::Plain(s) => Some(s.fd()),
            RecvIo::Tls(..) => None,
        }
    }

    pub(super) fn driver(&self) -> &Rc<Driver> {
        match &self.io {
            RecvIo::Plain(s) | RecvIo::Tls(s, _) => s.driver(),
        }
    }

    pub(super) fn count_received(&self, n: usize) {
        self.counts.add_received(n);
    }
}

/// The sending half of a split [`Stream`].
pub struct SendHalf<'a> {
    io: SendIo<'a>,
    counts: &'a Counts,
}

impl SendHalf<'_> {
    /// As [`Stream::send`].
    pub async fn send<T: IoVecs>(
        &self,
        payload: T,
        deadline: Option<Instant>,
    ) -> (Result<(), SendError>, T) {
        let total = payload.total();
        let r = match &self.io {
            SendIo::Plain(s) => s.send_all_until(payload, deadline).await,
            SendIo::Tls(s, st) => tls_stream::send(s, st, payload, deadline).await,
        };
        if r.0.is_ok() {
            self.counts.add_sent(total);
        }
        r
    }

    /// As [`Stream::shutdown_write`].
    pub fn shutdown_write(&self) {
        match &self.io {
            SendIo::Plain(s) => s.shutdown_write(),
            SendIo::Tls(s, st) => tls_stream::shutdown_write(s, st),
        }
    }

    /// Whether the bytes on the wire are the stream's bytes (so they may be spliced).
    pub fn is_plaintext(&self) -> bool {
        matches!(self.io, SendIo::Plain(_))
    }

    pub(super) fn plain_fd(&self) -> Option<RawFd> {
        match &self.io {
            SendIo::Plain(s) => Some(s.fd()),
            SendIo::Tls(..) => None,
        }
    }

    pub(super) fn count_sent(&self, n: usize) {
        self.counts.add_sent(n);
    }
}
