//! The allocator setup every tool binary shares: mimalloc as the global allocator (as in the
//! proxy), with arena memory committed lazily — with eager commit each thread of the
//! thread-per-connection upstream held ~750 KiB resident.

/// mimalloc's `mi_option_arena_eager_commit` (v2 option index).
const MI_OPTION_ARENA_EAGER_COMMIT: libmimalloc_sys::mi_option_t = 4;

/// Register from each binary as a numbered `.init_array` entry, so it runs before mimalloc
/// initialises (see `dataplane/src/main.rs`).
pub extern "C" fn lazy_arena_commit() {
    // SAFETY: sets a process-wide allocator option before any thread or allocation exists.
    unsafe { libmimalloc_sys::mi_option_set_default(MI_OPTION_ARENA_EAGER_COMMIT, 0) };
}
