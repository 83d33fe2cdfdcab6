//! Zero-copy relay of large response bodies: `splice(2)` from the upstream socket into a pipe
//! and from the pipe into the client socket, so the body's bytes never enter user memory.
//!
//! Used for the part of a Content-Length response body that is still to come once the
//! upstream receive has been paused ([`crate::uring::Conn::pause_recv`]) and what it had
//! already delivered was sent. For a large body the two copies through user memory (receive
//! and send) are most of the proxy's CPU; a pipe moves page references instead.
//!
//! The splices are non-blocking system calls made by the worker itself; when a side is not
//! ready the worker waits for it with an io_uring poll (never a blocking call, and never an
//! io_uring `SPLICE`, which the kernel runs on a helper thread when a socket is not ready).
//! Splicing into a socket whose peer is gone raises `SIGPIPE` (splice has no `MSG_NOSIGNAL`);
//! the Rust runtime ignores `SIGPIPE` before `main`, so it surfaces as an `EPIPE` error.
//!
//! Invariants: a pipe goes back to the worker's pool only empty; a pipe that may still hold
//! bytes (an error mid-relay) is closed. Waits are bounded by the idle timeout.

use std::cell::RefCell;
use std::os::fd::RawFd;
use std::rc::Rc;
use std::time::Duration;

use super::{RecvHalf, SendHalf, Stream};
use crate::uring::{poll_ready, timeout, Driver};

/// Bodies with at least this much left after what is buffered are spliced.
pub const SPLICE_MIN_BYTES: u64 = 64 * 1024;
/// Pipe capacity asked for (the kernel may keep its default of 64 KiB).
const PIPE_BYTES: i32 = 256 * 1024;
/// Idle pipes kept per worker.
const POOL_MAX: usize = 64;

/// A pipe (read end, write end), closed on drop.
pub struct Pipe {
    r: RawFd,
    w: RawFd,
}

impl Pipe {
    fn new() -> std::io::Result<Pipe> {
        let mut fds = [0 as RawFd; 2];
        // SAFETY: `fds` is a valid array of two descriptors for pipe2 to fill.
        if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_NONBLOCK | libc::O_CLOEXEC) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        // Best effort: a larger pipe moves more per system call; the default still works.
        // SAFETY: plain fcntl on the descriptor just created.
        unsafe { libc::fcntl(fds[1], libc::F_SETPIPE_SZ, PIPE_BYTES) };
        Ok(Pipe {
            r: fds[0],
            w: fds[1],
        })
    }
}

impl Drop for Pipe {
    fn drop(&mut self) {
        // SAFETY: both descriptors are owned by this pipe and closed once.
        unsafe {
            libc::close(self.r);
            libc::close(self.w);
        }
    }
}

/// A worker's idle pipes.
#[derive(Default)]
pub struct PipePool {
    idle: RefCell<Vec<Pipe>>,
}

impl PipePool {
    fn get(&self) -> std::io::Result<Pipe> {
        match self.idle.borrow_mut().pop() {
            Some(p) => Ok(p),
            None => Pipe::new(),
        }
    }

    fn put(&self, p: Pipe) {
        let mut idle = self.idle.borrow_mut();
        if idle.len() < POOL_MAX {
            idle.push(p);
        }
    }
}

/// Why a spliced relay stopped early.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpliceError {
    /// The stream read from closed, reset or stalled for the idle timeout before `len` bytes.
    Source,
    /// The stream written to closed, reset or stopped reading for the idle timeout.
    Sink,
    /// No pipe could be made (descriptor limit); nothing was moved.
    NoPipe,
    /// One of the streams is not plaintext; nothing was moved.
    Unsupported,
    /// Nothing moved for the idle timeout (either side).
    Idle,
}

/// One non-blocking splice of up to `len` bytes; `Ok(None)` when it would block, `Ok(Some(0))`
/// at end of stream.
fn splice_once(from: RawFd, to: RawFd, len: usize) -> std::io::Result<Option<usize>> {
    loop {
        // SAFETY: plain system call on descriptors the caller owns; null offsets (sockets,
        // pipes).
        let n = unsafe {
            libc::splice(
                from,
                std::ptr::null_mut(),
                to,
                std::ptr::null_mut(),
                len,
                libc::SPLICE_F_MOVE | libc::SPLICE_F_NONBLOCK,
            )
        };
        if n >= 0 {
            return Ok(Some(n as usize));
        }
        let e = std::io::Error::last_os_error();
        match e.raw_os_error() {
            Some(libc::EAGAIN) => return Ok(None),
            Some(libc::EINTR) => continue,
            _ => return Err(e),
        }
    }
}

/// Waits until `fd` is ready for `events`, at most `idle`; false on timeout or error.
async fn wait_ready(driver: &Rc<Driver>, fd: RawFd, events: i16, idle: Duration) -> bool {
    matches!(
        timeout(driver, idle, poll_ready(driver, fd, events)).await,
        Ok(Ok(_))
    )
}

/// Moves exactly `len` bytes from plaintext stream `from` to plaintext stream `to` through a
/// pipe, each wait bounded by `idle`.
pub async fn relay(
    pipes: &PipePool,
    from: &Stream,
    to: &Stream,
    len: u64,
    idle: Duration,
) -> Result<(), SpliceError> {
    let (Some(src), Some(dst)) = (from.plain_fd(), to.plain_fd()) else {
        return Err(SpliceError::Unsupported);
    };
    let driver = from.driver();
    let pipe = pipes.get().map_err(|_| SpliceError::NoPipe)?;
    let mut left = len;
    while left > 0 {
        let want = left.min(PIPE_BYTES as u64) as usize;
        let got = match splice_once(src, pipe.w, want) {
            Ok(Some(0)) => return Err(SpliceError::Source), // end of stream: cut short
            Ok(Some(n)) => n,
            Ok(None) => {
                if !wait_ready(driver, src, libc::POLLIN, idle).await {
                    return Err(SpliceError::Idle);
                }
                continue;
            }
            Err(_) => return Err(SpliceError::Source),
        };
        from.count_spliced(got, 0);
        let mut out = 0;
        while out < got {
            match splice_once(pipe.r, dst, got - out) {
                Ok(Some(0)) => return Err(SpliceError::Sink),
                Ok(Some(n)) => out += n,
                Ok(None) => {
                    if !wait_ready(driver, dst, libc::POLLOUT, idle).await {
                        return Err(SpliceError::Idle);
                    }
                }
                Err(_) => return Err(SpliceError::Sink),
            }
        }
        to.count_spliced(0, got);
        left -= got as u64;
    }
    pipes.put(pipe);
    Ok(())
}

/// What [`Pump::run`] came to (each with the bytes written during the call).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pumped {
    /// The source reached end of stream and everything read was written.
    Finished(u64),
    /// Nothing could move for `wait`: the caller decides whether the connection is idle.
    Stalled(u64),
    /// [`PUMP_REPORT_BYTES`] moved: the caller may count them and call again.
    Progress(u64),
}

/// A pump returns after moving this much, so that long transfers are counted as they go.
pub const PUMP_REPORT_BYTES: u64 = 16 << 20;

/// A spliced relay of one direction of a connection, from a source half to a sink half,
/// until the source's end of stream. Holds one pipe; bytes left in it after a stall are
/// written first by the next [`Pump::run`].
pub struct Pump {
    pipe: Pipe,
    /// Bytes read into the pipe and not yet written out.
    in_pipe: usize,
}

impl Pump {
    /// A pump with a pipe from `pipes` (`NoPipe` at the descriptor limit).
    pub fn new(pipes: &PipePool) -> Result<Pump, SpliceError> {
        Ok(Pump {
            pipe: pipes.get().map_err(|_| SpliceError::NoPipe)?,
            in_pipe: 0,
        })
    }

    /// Moves bytes from `from` to `to` until `from`'s end of stream (the caller then shuts
    /// `to` down), a wait of `wait` with nothing moving, or an error. `activity` is set to
    /// the time of every move.
    pub async fn run(
        &mut self,
        from: &RecvHalf<'_>,
        to: &SendHalf<'_>,
        wait: Duration,
        activity: &std::cell::Cell<std::time::Instant>,
    ) -> Result<Pumped, SpliceError> {
        let (Some(src), Some(dst)) = (from.plain_fd(), to.plain_fd()) else {
            return Err(SpliceError::Unsupported);
        };
        let driver = from.driver().clone();
        let mut moved = 0u64;
        loop {
            while self.in_pipe > 0 {
                match splice_once(self.pipe.r, dst, self.in_pipe) {
                    Ok(Some(0)) => return Err(SpliceError::Sink),
                    Ok(Some(n)) => {
                        self.in_pipe -= n;
                        moved += n as u64;
                        to.count_sent(n);
                        activity.set(std::time::Instant::now());
                    }
                    Ok(None) => {
                        if !wait_ready(&driver, dst, libc::POLLOUT, wait).await {
                            return Ok(Pumped::Stalled(moved));
                        }
                    }
                    Err(_) => return Err(SpliceError::Sink),
                }
            }
            if moved >= PUMP_REPORT_BYTES {
                return Ok(Pumped::Progress(moved));
            }
            match splice_once(src, self.pipe.w, PIPE_BYTES as usize) {
                Ok(Some(0)) => return Ok(Pumped::Finished(moved)),
                Ok(Some(n)) => {
                    self.in_pipe = n;
                    from.count_received(n);
                }
                Ok(None) => {
                    if !wait_ready(&driver, src, libc::POLLIN, wait).await {
                        return Ok(Pumped::Stalled(moved));
                    }
                }
                Err(_) => return Err(SpliceError::Source),
            }
        }
    }

    /// Gives the pipe back when it is empty (else it is closed with its bytes).
    pub fn finish(self, pipes: &PipePool) {
        if self.in_pipe == 0 {
            pipes.put(self.pipe);
        }
    }
}
