//! The per-core io_uring driver: every socket operation of the hot path goes through here.
//!
//! One [`Driver`] per worker thread owns a raw ring (`SINGLE_ISSUER | DEFER_TASKRUN`), a
//! provided-buffer ring for receives ([`bufring`]), and a slab of in-flight operations.
//! Tasks push submission entries without a syscall; the driver task ([`Driver::run`]) submits
//! them in batches with one `io_uring_enter(GETEVENTS)`, dispatches completions to the waiting
//! futures, and when every task is waiting it sleeps in the ring itself, with a bounded
//! timeout so wakes from other threads (control messages) are still seen.
//!
//! Invariants:
//! - Memory the kernel reads or writes (buffers, `msghdr`, `iovec`, `sockaddr`)
//!   stays valid until the operation's final completion: futures own their buffers ("rent"
//!   model); a future dropped early hands them to its slot and cancels the operation
//!   ([`op`]); the slot frees them when the final completion arrives.
//! - Slots live in fixed-size boxed chunks, so an address inside a slot never moves.
//! - A receive buffer belongs to exactly one owner at a time: the kernel, a queued completion,
//!   or a [`RecvBuf`]; dropping a `RecvBuf` gives it back to the ring.
//!
//! What lives elsewhere: connection logic (`proxy`), timers of the request path use
//! [`sleep`] from here, everything else (channels, admin) uses glommio directly.

pub mod bufring;
pub mod driver;
pub mod net;
pub mod op;
pub mod timer;

#[cfg(test)]
pub(crate) mod tests;

pub use bufring::RecvBuf;
pub use driver::{Driver, DriverConfig};
pub use net::{
    connect, poll_ready, send_all, send_all_until, sleep, timeout, timeout_at, timeout_opt, Accept,
    Elapsed, IoVecs, MaybeTimeout, SendError, SendHalf, Socket,
};

/// Errors of driver set-up. Per-operation failures are plain `std::io::Error`s (errno).
#[derive(Debug, thiserror::Error)]
pub enum UringError {
    #[error(
        "io_uring is disabled on this machine (sysctl kernel.io_uring_disabled = {0}); set it to 0"
    )]
    Disabled(u32),
    #[error("cannot create an io_uring ring: {0} (needs Linux >= 6.1 with io_uring enabled; check the locked-memory limit `ulimit -l` and seccomp policies)")]
    Setup(std::io::Error),
    #[error("cannot register the provided-buffer ring: {0} (needs Linux >= 5.19; lower runtime.io.recv_buffers or raise `ulimit -l`)")]
    BufRing(std::io::Error),
    #[error("cannot allocate {0} bytes of receive buffers")]
    Memory(usize),
}
