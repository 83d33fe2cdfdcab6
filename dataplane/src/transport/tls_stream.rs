//! The TLS implementation of [`super::Stream`]: rustls (buffered API) over a driver socket.
//!
//! ```text
//!  socket recv ─▶ ciphertext RecvBuf ─▶ rustls read_tls + process_new_packets
//!                                        └─▶ plaintext read back into that same ring buffer
//!                                            (or a spare one of the pool) ─▶ caller
//!  caller payload (IoVecs) ─▶ rustls writer (encrypts) ─▶ one ciphertext Vec ─▶ sendmsg
//! ```
//!
//! The kernel here has no kTLS, so records are decrypted and encrypted in user space. The
//! plaintext handed to the caller is a ring buffer like any received one, so the HTTP codec
//! parses it in place exactly as it parses plaintext TCP.
//!
//! Invariants: the rustls state lives in a `RefCell` borrowed only between awaits, never across
//! one (the split halves share it); a receive never sends — what rustls wants to send while
//! reading (key updates) goes out with the next send, and only a fatal alert is written
//! best-effort before an error is returned; an end of stream without the peer's close_notify is
//! an `UnexpectedEof` error (a truncation), never a clean end.

use std::cell::RefCell;
use std::io::{self, Write};
use std::os::fd::RawFd;
use std::rc::Rc;
use std::time::Instant;

use rustls::Connection;

use crate::uring::{Driver, IoVecs, RecvBuf, SendError, SendHalf, Socket};

/// Ciphertext buffers larger than this are not kept between sends.
const KEEP_OUT_CAPACITY: usize = 64 * 1024;

/// How many iovecs of a payload are taken at a time when encrypting it.
const IOV_BATCH: usize = 16;

/// What a TLS connection knows of its verified peer (set once after the handshake, by the
/// `tls` module that understands certificates).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsPeer {
    /// SPIFFE ID or DNS name (`None`: no client certificate, or one without either).
    pub identity: Option<Box<str>>,
    /// The namespace of a SPIFFE identity.
    pub namespace: Option<Box<str>>,
    /// This connection's `x-forwarded-client-cert` element.
    pub xfcc: Box<str>,
}

/// The socket and the TLS state of one connection.
pub(crate) struct TlsIo {
    pub(super) sock: Socket,
    pub(super) state: RefCell<TlsState>,
    pub(super) peer: Option<Rc<TlsPeer>>,
}

pub(crate) struct TlsState {
    pub(super) conn: Connection,
    /// Received ciphertext rustls has not taken yet (or, once empty, a buffer to reuse).
    cipher: Option<RecvBuf>,
    /// The ciphertext send buffer, capacity kept; `None` while a send holds it.
    out: Option<Vec<u8>>,
    /// The peer's close_notify arrived: a clean end of stream.
    closed: bool,
    /// Decrypted bytes rustls holds, as of the last `process_new_packets` minus what was
    /// read since (so that a receive asks rustls only after feeding it).
    plain: usize,
    /// The transport ended (FIN); without `closed` that is a truncation.
    eof: bool,
}

/// A TLS failure as an I/O error (what the stream's users already handle).
fn tls_error(e: rustls::Error) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, e)
}

fn truncated() -> io::Error {
    io::Error::new(
        io::ErrorKind::UnexpectedEof,
        "TLS peer closed the connection without close_notify (truncated)",
    )
}

impl TlsIo {
    pub(super) fn new(sock: Socket, mut conn: Connection) -> TlsIo {
        conn.set_buffer_limit(None);
        TlsIo {
            sock,
            peer: None,
            state: RefCell::new(TlsState {
                conn,
                cipher: None,
                out: Some(Vec::new()),
                closed: false,
                plain: 0,
                eof: false,
            }),
        }
    }

    /// Feeds bytes received before the stream became TLS (after a PROXY protocol header).
    pub(super) fn feed_early(&self, bytes: &[u8]) -> io::Result<()> {
        let mut st = self.state.borrow_mut();
        let mut rest = bytes;
        while !rest.is_empty() {
            let n = st.conn.read_tls(&mut rest)?;
            if n == 0 {
                break;
            }
            st.process(self.sock.fd())?;
        }
        Ok(())
    }

    /// Runs the handshake to its end (the caller bounds it with a deadline).
    pub(super) async fn handshake(&mut self) -> io::Result<()> {
        loop {
            flush(&self.sock.sender(), &self.state, None)
                .await
                .map_err(send_error)?;
            if !self.state.borrow().conn.is_handshaking() {
                return Ok(());
            }
            {
                let mut st = self.state.borrow_mut();
                if let Some(c) = st.cipher.take().filter(|c| !c.is_empty()) {
                    st.feed(c, self.sock.fd())?;
                    continue;
                }
                if st.eof {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "connection closed during the TLS handshake",
                    ));
                }
            }
            match self.sock.recv().await? {
                Some(b) => self.state.borrow_mut().feed(b, self.sock.fd())?,
                None => self.state.borrow_mut().end_of_transport(self.sock.fd())?,
            }
        }
    }

    /// True when decrypted bytes or unprocessed ciphertext wait in the TLS state.
    pub(super) fn has_buffered(&self) -> bool {
        let st = self.state.borrow();
        st.cipher.as_ref().is_some_and(|c| !c.is_empty()) || st.plain > 0 || st.closed
    }
}

impl TlsState {
    /// Processes what rustls has buffered; on a fatal error its alert is sent best-effort.
    fn process(&mut self, fd: RawFd) -> io::Result<rustls::IoState> {
        match self.conn.process_new_packets() {
            Ok(s) => {
                if s.peer_has_closed() {
                    self.closed = true;
                }
                self.plain = s.plaintext_bytes_to_read();
                Ok(s)
            }
            Err(e) => {
                self.send_now(fd);
                Err(tls_error(e))
            }
        }
    }

    /// Hands `cipher` to rustls until it is consumed or plaintext is ready; what rustls has
    /// no room for stays in `self.cipher`.
    fn feed(&mut self, mut cipher: RecvBuf, fd: RawFd) -> io::Result<()> {
        while !cipher.is_empty() {
            let mut bytes = cipher.bytes();
            let before = bytes.len();
            let n = match self.conn.read_tls(&mut bytes) {
                Ok(n) => n,
                // rustls's buffer is full of undelivered plaintext: deliver it first.
                Err(e) if e.kind() == io::ErrorKind::Other && before > 0 => 0,
                Err(e) => return Err(e),
            };
            cipher.advance(n);
            let s = self.process(fd)?;
            if n == 0 || s.plaintext_bytes_to_read() > 0 {
                break;
            }
        }
        self.cipher = Some(cipher);
        Ok(())
    }

    /// The transport ended: rustls learns it, so that a missing close_notify is a truncation.
    fn end_of_transport(&mut self, fd: RawFd) -> io::Result<()> {
        self.eof = true;
        let _ = self.conn.read_tls(&mut &[][..]);
        self.process(fd).map(|_| ())
    }

    /// Decrypted bytes in a ring buffer (the consumed ciphertext buffer when there is one,
    /// else a spare buffer of the pool); `Ok(None)` when none are ready.
    fn take_plaintext(&mut self, driver: &Rc<Driver>) -> io::Result<Option<RecvBuf>> {
        if self.plain == 0 {
            return Ok(None);
        }
        let read = |conn: &mut Connection, mem: &mut [u8]| io::Read::read(&mut conn.reader(), mem);
        let conn = &mut self.conn;
        let got = match self.cipher.take() {
            Some(mut c) if c.is_empty() => {
                c.overwrite(|mem| read(conn, mem))?;
                c
            }
            kept => {
                self.cipher = kept;
                match RecvBuf::fill_spare(driver, |mem| read(conn, mem)) {
                    Some(r) => r?,
                    None => {
                        return Err(io::Error::new(
                            io::ErrorKind::OutOfMemory,
                            "no receive buffer free for decrypted bytes",
                        ))
                    }
                }
            }
        };
        self.plain = self.plain.saturating_sub(got.len());
        if got.is_empty() {
            // Nothing after all (a close_notify): say so, and learn the state afresh.
            self.plain = 0;
            return Ok(None);
        }
        Ok(Some(got))
    }

    /// Best-effort, non-blocking send of what rustls has queued (a fatal alert, close_notify).
    fn send_now(&mut self, fd: RawFd) {
        let mut small = Vec::new();
        while self.conn.wants_write() {
            if self.conn.write_tls(&mut small).is_err() {
                break;
            }
        }
        if small.is_empty() {
            return;
        }
        // SAFETY: a non-blocking send from a live local buffer on a descriptor the stream owns.
        unsafe {
            libc::send(
                fd,
                small.as_ptr().cast(),
                small.len(),
                libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL,
            );
        }
    }
}

fn send_error(e: SendError) -> io::Error {
    match e {
        SendError::Io(e) => e,
        SendError::TimedOut => io::ErrorKind::TimedOut.into(),
    }
}

/// Next decrypted bytes; `Ok(None)` after the peer's close_notify.
pub(super) async fn recv(
    sock: &mut Socket,
    state: &RefCell<TlsState>,
) -> io::Result<Option<RecvBuf>> {
    loop {
        {
            let mut st = state.borrow_mut();
            if let Some(b) = st.take_plaintext(sock.driver())? {
                return Ok(Some(b));
            }
            if st.closed {
                return Ok(None);
            }
            if let Some(c) = st.cipher.take().filter(|c| !c.is_empty()) {
                st.feed(c, sock.fd())?;
                continue;
            }
            if st.eof {
                return Err(truncated());
            }
        }
        match sock.recv().await? {
            Some(b) => state.borrow_mut().feed(b, sock.fd())?,
            None => state.borrow_mut().end_of_transport(sock.fd())?,
        }
    }
}

/// After a paused receive: decrypted bytes from what was already received, without waiting.
pub(super) fn take_queued(
    sock: &mut Socket,
    state: &RefCell<TlsState>,
) -> io::Result<Option<RecvBuf>> {
    loop {
        let mut st = state.borrow_mut();
        if let Some(b) = st.take_plaintext(sock.driver())? {
            return Ok(Some(b));
        }
        if st.closed {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        if let Some(c) = st.cipher.take().filter(|c| !c.is_empty()) {
            st.feed(c, sock.fd())?;
            continue;
        }
        match sock.take_queued() {
            Ok(Some(b)) => st.feed(b, sock.fd())?,
            Ok(None) => return Ok(None),
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
                st.end_of_transport(sock.fd())?;
                if !st.closed {
                    return Err(truncated());
                }
            }
            Err(e) => return Err(e),
        }
    }
}

/// Sends what rustls has queued (handshake messages, tickets, key updates).
async fn flush(
    sock: &SendHalf<'_>,
    state: &RefCell<TlsState>,
    deadline: Option<Instant>,
) -> Result<(), SendError> {
    send(sock, state, Vec::new(), deadline).await.0
}

/// Encrypts all of `payload` and sends it with whatever else rustls has queued, unless
/// `deadline` passes first; the payload always comes back.
pub(super) async fn send<T: IoVecs>(
    sock: &SendHalf<'_>,
    state: &RefCell<TlsState>,
    payload: T,
    deadline: Option<Instant>,
) -> (Result<(), SendError>, T) {
    let total = payload.total();
    let mut done = 0usize;
    loop {
        let out = {
            let mut st = state.borrow_mut();
            let mut out = st.out.take().unwrap_or_default();
            out.clear();
            if let Err(e) = encrypt(&mut st.conn, &payload, &mut done, total, &mut out) {
                st.out = Some(out);
                return (Err(SendError::Io(e)), payload);
            }
            out
        };
        if out.is_empty() {
            state.borrow_mut().out = Some(out);
            return (Ok(()), payload);
        }
        let (r, mut out) = sock.send_all_until(out, deadline).await;
        if out.capacity() > KEEP_OUT_CAPACITY {
            out = Vec::new();
        }
        state.borrow_mut().out = Some(out);
        if let Err(e) = r {
            return (Err(e), payload);
        }
        if done >= total && !state.borrow().conn.wants_write() {
            return (Ok(()), payload);
        }
    }
}

/// Writes the payload's bytes from `*done` on into rustls and its records into `out`.
fn encrypt<T: IoVecs>(
    conn: &mut Connection,
    payload: &T,
    done: &mut usize,
    total: usize,
    out: &mut Vec<u8>,
) -> io::Result<()> {
    let mut iov = [libc::iovec {
        iov_base: std::ptr::null_mut(),
        iov_len: 0,
    }; IOV_BATCH];
    while *done < total {
        let n = payload.fill(*done, &mut iov);
        if n == 0 {
            break;
        }
        // One vectored write: rustls puts the pieces (a head's spans, its body) into as few
        // records as fit, instead of one record (one seal, one allocation) per piece.
        let mut slices = [io::IoSlice::new(&[]); IOV_BATCH];
        let mut want = 0;
        for (slot, v) in slices.iter_mut().zip(&iov[..n]) {
            // SAFETY: `IoVecs` guarantees the described memory is owned by `payload`, which is
            // borrowed (so neither mutated nor moved) for the duration of this call.
            let bytes = unsafe { std::slice::from_raw_parts(v.iov_base as *const u8, v.iov_len) };
            *slot = io::IoSlice::new(bytes);
            want += bytes.len();
        }
        let wrote = conn.writer().write_vectored(&slices[..n])?;
        if wrote == 0 && want > 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        *done += wrote;
    }
    while conn.wants_write() {
        conn.write_tls(out)?;
    }
    Ok(())
}

/// Sends close_notify best-effort.
pub(super) fn close_notify(sock: &SendHalf<'_>, state: &RefCell<TlsState>) {
    let mut st = state.borrow_mut();
    st.conn.send_close_notify();
    st.send_now(sock.fd());
}

/// Sends close_notify best-effort, then ends the sending direction.
pub(super) fn shutdown_write(sock: &SendHalf<'_>, state: &RefCell<TlsState>) {
    let mut st = state.borrow_mut();
    st.conn.send_close_notify();
    st.send_now(sock.fd());
    sock.shutdown_write();
}
