//! Checks, before any executor starts, that this machine can run the proxy: io_uring enabled,
//! a ring with the flags we need can be created, locked memory suffices, and raises the
//! open-files soft limit to the hard limit. Each failure says what to fix.

use super::RuntimeError;
use crate::uring::UringError;

/// Locked memory glommio registers per executor (its default 10 MiB exceeds common limits).
pub const GLOMMIO_IO_MEMORY: usize = 256 << 10;

/// io_uring usable, with SINGLE_ISSUER | DEFER_TASKRUN and a provided-buffer ring.
pub fn preflight() -> Result<(), RuntimeError> {
    if let Ok(s) = std::fs::read_to_string("/proc/sys/kernel/io_uring_disabled") {
        let v: u32 = s.trim().parse().unwrap_or(0);
        if v == 2 {
            return Err(UringError::Disabled(v).into());
        }
    }
    // A throw-away driver on this thread proves the kernel supports every feature we use.
    let probe = crate::uring::Driver::new(crate::uring::DriverConfig {
        ring_entries: 8,
        recv_buffers: 16,
        recv_buffer_size: 1024,
    })?;
    drop(probe);
    raise_nofile();
    Ok(())
}

/// Per executor: glommio's registered buffer plus ring memory on kernels that account it.
pub fn check_memlock(workers: usize) -> Result<(), RuntimeError> {
    // Root (CAP_IPC_LOCK) is not limited; for others compare the soft limit.
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        return Ok(());
    }
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct we pass.
    if unsafe { libc::getrlimit(libc::RLIMIT_MEMLOCK, &mut lim) } != 0 {
        return Ok(());
    }
    if lim.rlim_cur == libc::RLIM_INFINITY {
        return Ok(());
    }
    let need = (workers as u64 + 1) * (GLOMMIO_IO_MEMORY as u64 + (64 << 10));
    if lim.rlim_cur < need {
        return Err(RuntimeError::MemLock {
            have: lim.rlim_cur / 1024,
            need: need / 1024,
            workers,
        });
    }
    Ok(())
}

fn raise_nofile() {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: get/setrlimit on our own process with a valid struct.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 && lim.rlim_cur < lim.rlim_max {
            lim.rlim_cur = lim.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
    }
}
