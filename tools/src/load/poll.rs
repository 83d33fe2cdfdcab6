//! A minimal safe wrapper over one epoll instance: edge-triggered registration of sockets
//! with a `u64` token, and waiting with a nanosecond timeout (`epoll_pwait2`, falling back
//! to millisecond `epoll_wait` on kernels without it).
//!
//! Invariants: the epoll fd is owned and closed on drop; registered fds are owned by the
//! caller, and closing one removes it from the interest list (the kernel does this), so
//! callers put a generation in the token to ignore events already fetched for a closed fd.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::time::Duration;

/// Readiness reported for one token.
#[derive(Debug, Clone, Copy)]
pub struct Event {
    pub token: u64,
    pub readable: bool,
    pub writable: bool,
    /// Error or hang-up (the next read or write reports which).
    pub failed: bool,
}

/// One epoll instance and its event buffer.
pub struct Poller {
    fd: OwnedFd,
    events: Vec<libc::epoll_event>,
    /// `epoll_pwait2` returned ENOSYS once: use `epoll_wait`.
    no_pwait2: bool,
}

impl Poller {
    /// `capacity`: most events fetched per wait.
    pub fn new(capacity: usize) -> io::Result<Poller> {
        // SAFETY: plain syscall; the result is checked before use.
        let fd = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` is a fresh descriptor that nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        let empty = libc::epoll_event { events: 0, u64: 0 };
        Ok(Poller {
            fd,
            events: vec![empty; capacity.max(1)],
            no_pwait2: false,
        })
    }

    /// Registers `fd` edge-triggered for input, output and hang-up.
    pub fn add(&self, fd: RawFd, token: u64) -> io::Result<()> {
        let mut ev = libc::epoll_event {
            events: (libc::EPOLLIN | libc::EPOLLOUT | libc::EPOLLRDHUP | libc::EPOLLET) as u32,
            u64: token,
        };
        // SAFETY: both fds are open; `ev` is a valid epoll_event the kernel only reads.
        let r = unsafe { libc::epoll_ctl(self.fd.as_raw_fd(), libc::EPOLL_CTL_ADD, fd, &mut ev) };
        if r < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// Waits up to `timeout` and appends the ready events to `out` (cleared first).
    pub fn wait(&mut self, timeout: Duration, out: &mut Vec<Event>) -> io::Result<()> {
        out.clear();
        let max = i32::try_from(self.events.len()).unwrap_or(i32::MAX);
        let n = if self.no_pwait2 {
            // Round up so a short timeout does not turn into a busy loop.
            let ms = timeout.as_nanos().div_ceil(1_000_000).min(i32::MAX as u128) as i32;
            // SAFETY: `events` has room for `max` entries the kernel writes into.
            unsafe { libc::epoll_wait(self.fd.as_raw_fd(), self.events.as_mut_ptr(), max, ms) }
        } else {
            let ts = libc::timespec {
                tv_sec: timeout.as_secs().min(i64::MAX as u64) as libc::time_t,
                tv_nsec: libc::c_long::from(timeout.subsec_nanos() as i32),
            };
            // SAFETY: `events` has room for `max` entries; `ts` is a valid timespec the
            // kernel only reads; a null sigmask means "do not change the mask".
            let r = unsafe {
                libc::syscall(
                    libc::SYS_epoll_pwait2,
                    self.fd.as_raw_fd(),
                    self.events.as_mut_ptr(),
                    max,
                    &ts as *const libc::timespec,
                    std::ptr::null::<libc::sigset_t>(),
                    0usize,
                )
            };
            if r < 0 && io::Error::last_os_error().raw_os_error() == Some(libc::ENOSYS) {
                self.no_pwait2 = true;
                return self.wait(timeout, out);
            }
            r as i32
        };
        if n < 0 {
            let e = io::Error::last_os_error();
            return if e.kind() == io::ErrorKind::Interrupted {
                Ok(())
            } else {
                Err(e)
            };
        }
        for ev in self.events.iter().take(n as usize) {
            let bits = ev.events as i32;
            out.push(Event {
                token: ev.u64,
                readable: bits & (libc::EPOLLIN | libc::EPOLLRDHUP) != 0,
                writable: bits & libc::EPOLLOUT != 0,
                failed: bits & (libc::EPOLLERR | libc::EPOLLHUP) != 0,
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::os::unix::net::UnixStream;
    use std::time::Instant;

    #[test]
    fn reports_readiness_with_the_token_and_honours_short_timeouts() {
        let mut p = Poller::new(8).unwrap();
        let (a, mut b) = UnixStream::pair().unwrap();
        a.set_nonblocking(true).unwrap();
        p.add(a.as_raw_fd(), 42).unwrap();
        let mut out = Vec::new();
        // Writable at once (edge on registration).
        p.wait(Duration::from_millis(100), &mut out).unwrap();
        assert_eq!(out.len(), 1);
        assert!(out[0].writable && !out[0].readable && out[0].token == 42);
        let t = Instant::now();
        p.wait(Duration::from_micros(300), &mut out).unwrap();
        assert!(out.is_empty());
        assert!(t.elapsed() < Duration::from_millis(50));
        b.write_all(b"x").unwrap();
        p.wait(Duration::from_millis(100), &mut out).unwrap();
        assert!(out.iter().any(|e| e.readable && e.token == 42));
    }
}
