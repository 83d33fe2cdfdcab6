//! Giving freed heap memory back to the operating system when a worker goes quiet.
//!
//! mimalloc returns ("purges") pages freed by the program only after a delay, and only when the
//! allocating thread calls into it again. A worker whose connections just went idle allocates
//! nothing more, so what thousands of finished connection tasks freed would stay resident for
//! as long as the worker stays quiet. The driver calls [`collect`] when the worker has slept a
//! whole idle wait (20 ms) in its ring with nothing to do, at most once per [`COLLECT_EVERY`]:
//! a worker with traffic never sleeps that long and pays nothing; a quiet one drops back to
//! the memory it really holds.

use std::time::Duration;

/// Least time between two collections of one worker.
pub const COLLECT_EVERY: Duration = Duration::from_millis(250);

/// Frees the calling thread's empty pages and purges freed memory now (`mi_collect(true)`;
/// does nothing useful, and costs little, when mimalloc is not the global allocator).
pub fn collect() {
    // SAFETY: mi_collect takes no pointers and may be called from any thread at any time.
    unsafe { libmimalloc_sys::mi_collect(true) };
    if std::env::var_os("RW_DEBUG").is_some() {
        eprintln!("collect");
    }
}
