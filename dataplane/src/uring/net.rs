//! Sockets over the driver: [`Accept`] (multishot accept), [`Socket`] (multishot receive into
//! the buffer ring, sends of owned buffers, vectored sends), [`connect`], and the timer
//! helpers [`sleep`] / [`timeout`] over the driver's per-core timers (`timer`).
//!
//! Invariants: a `Socket` owns its descriptor; dropping it shuts the socket down (so an armed
//! multishot receive completes and the peer sees the close), cancels the receive and closes
//! the descriptor. Short sends are resumed until everything is sent or an error occurs.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::os::fd::{IntoRawFd, RawFd};
use std::rc::Rc;
use std::time::Duration;

use io_uring::{cqueue, opcode, types};

use super::bufring::{RecvBuf, RECV_GROUP};
use super::driver::{Driver, OpKind, MAX_IOV};
use super::op::{MultiOp, Op};

fn errno(res: i32) -> io::Error {
    io::Error::from_raw_os_error(-res)
}

/// Memory a vectored send reads from.
///
/// # Safety
/// The implementor guarantees that the memory described by `fill` is owned by `self`, is not
/// mutated while `self` is borrowed, and does not move when `self` is moved (heap memory,
/// receive buffers).
pub unsafe trait IoVecs: 'static {
    /// Writes up to `out.len()` iovecs describing the bytes to send, skipping the first
    /// `skip` bytes; returns how many were written.
    fn fill(&self, skip: usize, out: &mut [libc::iovec]) -> usize;
    /// Total bytes to send.
    fn total(&self) -> usize;
}

// SAFETY: a Vec's bytes live on the heap and do not move when the Vec moves.
unsafe impl IoVecs for Vec<u8> {
    fn fill(&self, skip: usize, out: &mut [libc::iovec]) -> usize {
        fill_from_slice(self, skip, out)
    }
    fn total(&self) -> usize {
        self.len()
    }
}

// SAFETY: a receive buffer's bytes live in the buffer ring's memory, which never moves.
unsafe impl IoVecs for RecvBuf {
    fn fill(&self, skip: usize, out: &mut [libc::iovec]) -> usize {
        fill_from_slice(self.bytes(), skip, out)
    }
    fn total(&self) -> usize {
        self.len()
    }
}

// SAFETY: static bytes never move.
unsafe impl IoVecs for &'static [u8] {
    fn fill(&self, skip: usize, out: &mut [libc::iovec]) -> usize {
        fill_from_slice(self, skip, out)
    }
    fn total(&self) -> usize {
        self.len()
    }
}

/// One iovec for the bytes of `s` after `skip`.
pub fn fill_from_slice(s: &[u8], skip: usize, out: &mut [libc::iovec]) -> usize {
    match (s.get(skip..), out.first_mut()) {
        (Some(rest), Some(slot)) if !rest.is_empty() => {
            *slot = libc::iovec {
                iov_base: rest.as_ptr() as *mut libc::c_void,
                iov_len: rest.len(),
            };
            1
        }
        _ => 0,
    }
}

/// How a send bounded by a deadline ended ([`send_all_until`]).
#[derive(Debug)]
pub enum SendError {
    /// The peer reset or closed, or the socket failed.
    Io(io::Error),
    /// The deadline passed before everything was sent (a peer that stopped reading). The
    /// send was cancelled and its buffers came back; some of the bytes may have been sent.
    TimedOut,
}

/// Sends everything `bufs` describes with `sendmsg`, resuming short sends. Returns the buffers.
pub async fn send_all<T: IoVecs>(driver: &Rc<Driver>, fd: RawFd, bufs: T) -> (io::Result<()>, T) {
    match send_all_until(driver, fd, bufs, None).await {
        (Ok(()), b) => (Ok(()), b),
        (Err(SendError::Io(e)), b) => (Err(e), b),
        (Err(SendError::TimedOut), b) => (Err(io::ErrorKind::TimedOut.into()), b),
    }
}

/// [`send_all`] that gives up at `deadline`: the pending `sendmsg` is cancelled and its
/// completion awaited, so the buffers always come back to the caller, however the send ends.
pub async fn send_all_until<T: IoVecs>(
    driver: &Rc<Driver>,
    fd: RawFd,
    bufs: T,
    deadline: Option<std::time::Instant>,
) -> (Result<(), SendError>, T) {
    let total = bufs.total();
    let mut sent = 0usize;
    let mut bufs = bufs;
    let mut timer = deadline.map(|d| super::timer::Sleep::new(driver.clone(), d));
    let mut timed_out = false;
    while sent < total {
        if timed_out {
            return (Err(SendError::TimedOut), bufs);
        }
        let skip = sent;
        // SAFETY: the entry points at the slot's msghdr/iovecs, which point into memory owned
        // by `bufs` (IoVecs contract); `bufs` moves into the Op, which keeps it until the
        // final completion (or hands it to the slot when dropped).
        let mut op = unsafe {
            let idx = driver.submit(OpKind::Single, |slot| {
                let n = bufs.fill(skip, &mut slot.iov[..MAX_IOV]);
                slot.msg = std::mem::zeroed();
                slot.msg.msg_iov = slot.iov.as_mut_ptr();
                slot.msg.msg_iovlen = n as _;
                opcode::SendMsg::new(types::Fd(fd), &slot.msg)
                    .flags(libc::MSG_NOSIGNAL as u32)
                    .build()
            });
            Op::new(driver.clone(), idx, bufs)
        };
        let c = std::future::poll_fn(|cx| {
            if let std::task::Poll::Ready(c) = std::pin::Pin::new(&mut op).poll(cx) {
                return std::task::Poll::Ready(c);
            }
            if let Some(t) = timer.as_mut() {
                if !timed_out && std::pin::Pin::new(t).poll(cx).is_ready() {
                    // Cancel, then keep polling: the final completion returns the buffers.
                    timed_out = true;
                    op.cancel();
                }
            }
            std::task::Poll::Pending
        })
        .await;
        bufs = c.data;
        if c.res < 0 {
            if c.res == -libc::ECANCELED && timed_out {
                return (Err(SendError::TimedOut), bufs);
            }
            if c.res == -libc::EINTR || c.res == -libc::EAGAIN {
                continue;
            }
            return (Err(SendError::Io(errno(c.res))), bufs);
        }
        if c.res == 0 {
            return (Err(SendError::Io(io::ErrorKind::WriteZero.into())), bufs);
        }
        sent += c.res as usize;
    }
    (Ok(()), bufs)
}

/// A connected stream socket (TCP, or one end of a Unix socket pair) driven by the ring.
pub struct Socket {
    driver: Rc<Driver>,
    fd: RawFd,
    recv: Option<MultiOp>,
    eof: bool,
    /// Receive one buffer per armed receive instead of a multishot receive.
    single_shot: bool,
}

impl Socket {
    /// Takes ownership of a connected, non-blocking socket.
    pub fn from_fd(driver: Rc<Driver>, fd: RawFd) -> Socket {
        Socket {
            driver,
            fd,
            recv: None,
            eof: false,
            single_shot: false,
        }
    }

    /// Each armed receive takes one buffer and ends (instead of a multishot receive that
    /// keeps draining the socket into buffers). Costs one submission per buffer; in exchange
    /// the bytes after the first buffer stay in the socket until asked for, so the owner can
    /// decide how to move them (upstream connections: splice a large body, see
    /// `proxy::splice`).
    pub fn set_single_shot(&mut self) {
        self.single_shot = true;
    }

    pub fn fd(&self) -> RawFd {
        self.fd
    }

    pub fn driver(&self) -> &Rc<Driver> {
        &self.driver
    }

    /// Whether the peer has closed its sending side (a receive returned end of stream).
    pub fn is_eof(&self) -> bool {
        self.eof
    }

    fn arm(&mut self) {
        let fd = self.fd;
        let single = self.single_shot;
        // SAFETY: the entry points to no memory; buffers come from the registered ring.
        let idx = unsafe {
            self.driver.submit(OpKind::RecvMulti, |_| {
                if single {
                    opcode::Recv::new(types::Fd(fd), std::ptr::null_mut(), 0)
                        .buf_group(RECV_GROUP)
                        .build()
                        .flags(io_uring::squeue::Flags::BUFFER_SELECT)
                } else {
                    opcode::RecvMulti::new(types::Fd(fd), RECV_GROUP).build()
                }
            })
        };
        self.recv = Some(MultiOp::new(self.driver.clone(), idx, OpKind::RecvMulti));
    }

    /// Starts receiving in the background (data is queued until `recv` is called). A receive
    /// that ended because the driver throttled it is replaced by a fresh one.
    pub fn start_recv(&mut self) {
        if self.recv.as_ref().is_some_and(MultiOp::ended_by_cancel) {
            self.recv = None;
        }
        if self.recv.is_none() && !self.eof {
            self.arm();
        }
    }

    /// True when received data (or end of stream / an error) is already waiting.
    pub fn has_pending(&self) -> bool {
        match &self.recv {
            Some(m) => m.has_queued(),
            None => false,
        }
    }

    /// Stops the background receive without losing data: cancels it and waits for its final
    /// completion. Returns true when the connection is quiet (nothing received, no end of
    /// stream, no error): the socket then has no operation in flight and can be watched with
    /// [`Driver::notify_readable`]. Otherwise whatever arrived is kept for [`Socket::recv`].
    pub async fn stop_recv(&mut self) -> bool {
        if self.eof {
            return false;
        }
        self.pause_recv().await;
        if self.has_pending() {
            return false;
        }
        self.recv = None; // only the cancel's completion was queued: release the slot
        true
    }

    /// Stops the background receive (cancels it and waits for its final completion) but keeps
    /// what it delivered, to be taken with [`Socket::take_queued`]. No receive is armed again
    /// until [`Socket::recv`] or [`Socket::start_recv`]; meanwhile the socket can be read
    /// directly (e.g. spliced).
    pub async fn pause_recv(&mut self) {
        if let Some(m) = self.recv.as_mut() {
            m.stop().await;
        }
    }

    /// After [`Socket::pause_recv`]: the next buffer the stopped receive delivered, without
    /// arming a new receive; `Ok(None)` once none is left. End of stream is an
    /// `UnexpectedEof` error (the caller expected more bytes).
    pub fn take_queued(&mut self) -> io::Result<Option<RecvBuf>> {
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        loop {
            let Some(m) = self.recv.as_mut() else {
                return Ok(None);
            };
            match m.poll_next(&mut cx) {
                std::task::Poll::Ready(Some((res, flags))) => {
                    let bid = cqueue::buffer_select(flags);
                    if res > 0 {
                        return match bid {
                            Some(bid) => {
                                Ok(Some(RecvBuf::new(self.driver.clone(), bid, res as u32)))
                            }
                            None => Err(io::Error::other("receive completed without a buffer")),
                        };
                    }
                    if let Some(bid) = bid {
                        self.driver.give_back(bid);
                    }
                    if res == 0 {
                        self.eof = true;
                        self.recv = None;
                        return Err(io::ErrorKind::UnexpectedEof.into());
                    }
                    if res == -libc::ECANCELED || res == -libc::EINTR || res == -libc::ENOBUFS {
                        continue;
                    }
                    return Err(errno(res));
                }
                std::task::Poll::Ready(None) => {
                    self.recv = None;
                    return Ok(None);
                }
                // Not stopped: nothing more is queued right now.
                std::task::Poll::Pending => return Ok(None),
            }
        }
    }

    /// Next received bytes; `Ok(None)` at end of stream.
    pub async fn recv(&mut self) -> io::Result<Option<RecvBuf>> {
        loop {
            if self.eof {
                return Ok(None);
            }
            if self.recv.is_none() {
                self.arm();
            }
            let next = match self.recv.as_mut() {
                Some(m) => m.next().await,
                None => None,
            };
            match next {
                None => {
                    // Multishot ended (throttled or kernel-terminated): re-arm.
                    self.recv = None;
                }
                Some((res, flags)) => {
                    let bid = cqueue::buffer_select(flags);
                    if res > 0 {
                        if let Some(bid) = bid {
                            return Ok(Some(RecvBuf::new(self.driver.clone(), bid, res as u32)));
                        }
                        return Err(io::Error::other("receive completed without a buffer"));
                    }
                    if let Some(bid) = bid {
                        self.driver.give_back(bid);
                    }
                    if res == 0 {
                        self.eof = true;
                        self.recv = None;
                        return Ok(None);
                    }
                    if res == -libc::ENOBUFS {
                        // Pool exhausted: wait until some buffer comes back, then re-arm.
                        self.recv = None;
                        self.driver.buffer_wait().await;
                        continue;
                    }
                    if res == -libc::ECANCELED || res == -libc::EINTR {
                        continue;
                    }
                    return Err(errno(res));
                }
            }
        }
    }

    /// Sends all of `bufs`; returns them back.
    pub async fn send_all<T: IoVecs>(&self, bufs: T) -> (io::Result<()>, T) {
        send_all(&self.driver, self.fd, bufs).await
    }

    /// Sends all of `bufs` unless `deadline` passes first; the buffers always come back.
    pub async fn send_all_until<T: IoVecs>(
        &self,
        bufs: T,
        deadline: Option<std::time::Instant>,
    ) -> (Result<(), SendError>, T) {
        send_all_until(&self.driver, self.fd, bufs, deadline).await
    }

    /// A sending half borrowing the socket, for code that sends the same way whether it
    /// holds a whole socket or the half of a split one.
    pub fn sender(&self) -> SendHalf<'_> {
        SendHalf {
            driver: self.driver.clone(),
            fd: self.fd,
            _socket: std::marker::PhantomData,
        }
    }

    /// A receiving half and a sending half that can be used at the same time (a tunnel
    /// relays both ways at once). Both borrow the socket, so neither outlives it.
    pub fn split(&mut self) -> (&mut Socket, SendHalf<'_>) {
        let send = SendHalf {
            driver: self.driver.clone(),
            fd: self.fd,
            _socket: std::marker::PhantomData,
        };
        (self, send)
    }

    /// Shuts both directions down (the peer sees the close; an armed receive completes).
    pub fn shutdown(&self) {
        // SAFETY: plain syscall on a descriptor we own.
        unsafe { libc::shutdown(self.fd, libc::SHUT_RDWR) };
    }

    /// Shuts down our sending side only.
    pub fn shutdown_write(&self) {
        // SAFETY: plain syscall on a descriptor we own.
        unsafe { libc::shutdown(self.fd, libc::SHUT_WR) };
    }

    /// Resets the connection on close (SO_LINGER 0) instead of a graceful FIN.
    pub fn set_reset_on_close(&self) {
        let l = libc::linger {
            l_onoff: 1,
            l_linger: 0,
        };
        // SAFETY: setsockopt with a correctly sized linger struct.
        unsafe {
            libc::setsockopt(
                self.fd,
                libc::SOL_SOCKET,
                libc::SO_LINGER,
                &l as *const libc::linger as *const libc::c_void,
                std::mem::size_of::<libc::linger>() as libc::socklen_t,
            )
        };
    }
}

/// The sending side of a [`Socket`] split with [`Socket::split`].
pub struct SendHalf<'a> {
    driver: Rc<Driver>,
    fd: RawFd,
    _socket: std::marker::PhantomData<&'a ()>,
}

impl SendHalf<'_> {
    pub fn fd(&self) -> RawFd {
        self.fd
    }

    /// As [`Socket::send_all_until`].
    pub async fn send_all_until<T: IoVecs>(
        &self,
        bufs: T,
        deadline: Option<std::time::Instant>,
    ) -> (Result<(), SendError>, T) {
        send_all_until(&self.driver, self.fd, bufs, deadline).await
    }

    /// Shuts down the sending direction (the peer reads end of stream).
    pub fn shutdown_write(&self) {
        // SAFETY: plain syscall on a descriptor the split socket owns and keeps open.
        unsafe { libc::shutdown(self.fd, libc::SHUT_WR) };
    }
}

impl Drop for Socket {
    fn drop(&mut self) {
        self.recv = None; // cancels an armed receive (its slot keeps nothing)
                          // SAFETY: we own the descriptor; in-flight operations hold their own file reference.
        unsafe {
            libc::shutdown(self.fd, libc::SHUT_RDWR);
            libc::close(self.fd);
        }
    }
}

/// A multishot accept on a listening socket (which stays owned by the caller).
pub struct Accept {
    driver: Rc<Driver>,
    fd: RawFd,
    op: Option<MultiOp>,
}

impl Accept {
    pub fn new(driver: Rc<Driver>, listener_fd: RawFd) -> Accept {
        Accept {
            driver,
            fd: listener_fd,
            op: None,
        }
    }

    /// The next accepted connection's descriptor (non-blocking, close-on-exec).
    pub async fn accept(&mut self) -> io::Result<RawFd> {
        loop {
            if self.op.is_none() {
                let fd = self.fd;
                // SAFETY: multishot accept without address output points to no memory.
                let idx = unsafe {
                    self.driver.submit(OpKind::AcceptMulti, |_| {
                        opcode::AcceptMulti::new(types::Fd(fd))
                            .flags(libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC)
                            .build()
                    })
                };
                self.op = Some(MultiOp::new(self.driver.clone(), idx, OpKind::AcceptMulti));
            }
            let next = match self.op.as_mut() {
                Some(m) => m.next().await,
                None => None,
            };
            match next {
                None => self.op = None,
                Some((res, _)) if res >= 0 => return Ok(res),
                Some((res, _)) => return Err(errno(res)),
            }
        }
    }
}

impl Accept {
    /// Stops accepting: cancels the multishot accept and waits for its end, appending to `out`
    /// every connection it accepted before the cancel took effect (the caller serves or closes
    /// them). `accept` must not be called afterwards.
    pub async fn finish(&mut self, out: &mut Vec<RawFd>) {
        if let Some(op) = self.op.as_mut() {
            op.stop().await;
            while let Some((res, _)) = op.next().await {
                if res >= 0 {
                    out.push(res);
                }
            }
        }
        self.op = None;
    }
}

/// Opens a TCP connection to `addr` (TCP_NODELAY set).
pub async fn connect(driver: &Rc<Driver>, addr: SocketAddr) -> io::Result<Socket> {
    let domain = socket2::Domain::for_address(addr);
    let sock = socket2::Socket::new(
        domain,
        socket2::Type::STREAM.nonblocking().cloexec(),
        Some(socket2::Protocol::TCP),
    )?;
    sock.set_nodelay(true)?;
    let fd = sock.into_raw_fd();
    let conn = Socket::from_fd(driver.clone(), fd);
    let sa = socket2::SockAddr::from(addr);
    // SAFETY: the sockaddr is copied into the slot, whose address is stable until the final
    // completion.
    let op = unsafe {
        let idx = driver.submit(OpKind::Single, |slot| {
            std::ptr::copy_nonoverlapping(
                sa.as_ptr() as *const u8,
                &mut slot.addr as *mut libc::sockaddr_storage as *mut u8,
                sa.len() as usize,
            );
            opcode::Connect::new(
                types::Fd(fd),
                &slot.addr as *const libc::sockaddr_storage as *const libc::sockaddr,
                sa.len(),
            )
            .build()
        });
        Op::new(driver.clone(), idx, ())
    };
    let c = op.await;
    if c.res < 0 {
        return Err(errno(c.res));
    }
    Ok(conn)
}

/// Waits until `fd` is ready for `events` (`POLLIN`, `POLLOUT`, ...); returns the events
/// that are ready (errors and hang-ups included, as `poll(2)` reports them).
pub async fn poll_ready(driver: &Rc<Driver>, fd: RawFd, events: i16) -> io::Result<i16> {
    // SAFETY: a poll entry points to no memory.
    let op = unsafe {
        let idx = driver.submit(OpKind::Single, |_| {
            opcode::PollAdd::new(types::Fd(fd), events as u16 as u32).build()
        });
        Op::new(driver.clone(), idx, ())
    };
    let c = op.await;
    if c.res < 0 {
        return Err(errno(c.res));
    }
    Ok(c.res as i16)
}

/// Completes after `dur`: a per-core timer the driver checks on every pass (no system call,
/// no allocation in steady state).
pub fn sleep(driver: &Rc<Driver>, dur: Duration) -> super::timer::Sleep {
    super::timer::Sleep::new(driver.clone(), std::time::Instant::now() + dur)
}

/// The deadline passed before the operation completed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("timed out")]
pub struct Elapsed;

/// Runs `fut` with a deadline; the loser is dropped (its ring operations cancelled).
pub async fn timeout<F: Future>(
    driver: &Rc<Driver>,
    dur: Duration,
    fut: F,
) -> Result<F::Output, Elapsed> {
    futures_lite::future::or(async { Ok(fut.await) }, async {
        sleep(driver, dur).await;
        Err(Elapsed)
    })
    .await
}

/// Runs `fut` until `deadline`; the loser is dropped (its ring operations cancelled). One clock
/// read fewer than [`timeout`] when the caller already has the deadline.
pub async fn timeout_at<F: Future>(
    driver: &Rc<Driver>,
    deadline: std::time::Instant,
    fut: F,
) -> Result<F::Output, Elapsed> {
    futures_lite::future::or(async { Ok(fut.await) }, async {
        super::timer::Sleep::new(driver.clone(), deadline).await;
        Err(Elapsed)
    })
    .await
}

/// `fut` bounded by `dur` when given: one future either way (awaiting `fut` in one arm and
/// `timeout(fut)` in another would store `fut`'s state twice in the caller's future).
pub fn timeout_opt<F: Future>(
    driver: &Rc<Driver>,
    dur: Option<Duration>,
    fut: F,
) -> MaybeTimeout<F> {
    MaybeTimeout {
        fut,
        sleep: dur.map(|d| sleep(driver, d)),
    }
}

/// See [`timeout_opt`].
pub struct MaybeTimeout<F> {
    fut: F,
    sleep: Option<super::timer::Sleep>,
}

impl<F: Future> Future for MaybeTimeout<F> {
    type Output = Result<F::Output, Elapsed>;

    fn poll(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        // SAFETY: nothing is moved out of `this`: `fut` is only re-pinned in place below and
        // `sleep` (which is Unpin) is only used through `&mut`.
        let this = unsafe { self.get_unchecked_mut() };
        // SAFETY: `fut` is structurally pinned: no method of MaybeTimeout moves it and there is
        // no Drop impl, so it stays at this address for as long as `self` is pinned.
        let fut = unsafe { std::pin::Pin::new_unchecked(&mut this.fut) };
        if let std::task::Poll::Ready(v) = fut.poll(cx) {
            return std::task::Poll::Ready(Ok(v));
        }
        match this.sleep.as_mut() {
            Some(s) => match std::pin::Pin::new(s).poll(cx) {
                std::task::Poll::Ready(()) => std::task::Poll::Ready(Err(Elapsed)),
                std::task::Poll::Pending => std::task::Poll::Pending,
            },
            None => std::task::Poll::Pending,
        }
    }
}
