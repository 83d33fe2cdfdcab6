//! Page-backed memory for connection tasks: the state of an active client connection (the
//! connection future, ≈ 10 KB) lives in a fixed-size block of this per-worker slab instead of
//! the general heap.
//!
//! Why: a worker's connections come and go in bursts and then sit parked (`proxy::park`) for
//! minutes. On the general heap, the freed 10 KB states of a burst leave allocator pages that
//! one surviving block keeps committed, so an idle worker stays as large as its busiest
//! moment. Here every block is whole pages: the [`HOT_BLOCKS`] most recently freed blocks stay
//! resident for quick reuse; an older freed block has its pages returned to the kernel
//! (`MADV_DONTNEED`), and reusing it costs only the pages the new connection touches.
//!
//! Invariants: blocks are [`BLOCK_BYTES`] long, page aligned, inside mappings owned by the
//! slab, which outlive every [`SlabBox`] (each holds an `Rc` of the slab). A block is either
//! free (hot: resident; cold: no resident pages) or owned by exactly one `SlabBox`. A future too large or too aligned for a
//! block, or a failed mapping, falls back to the heap ([`ConnTask::Heap`]).

use std::cell::RefCell;
use std::future::Future;
use std::pin::Pin;
use std::ptr::NonNull;
use std::rc::Rc;
use std::task::{Context, Poll};

/// Bytes per block: four pages.
pub const BLOCK_BYTES: usize = 16 * 1024;
/// Blocks per mapping (1 MiB of address space; pages are committed only when touched).
const CHUNK_BLOCKS: usize = 64;
/// Freed blocks kept resident for quick reuse; older ones give their pages back.
pub const HOT_BLOCKS: usize = 8;
const PAGE: usize = 4096;

struct Inner {
    chunks: RefCell<Vec<NonNull<u8>>>,
    /// Recently freed blocks, still resident, oldest first (at most [`HOT_BLOCKS`]).
    hot: RefCell<std::collections::VecDeque<NonNull<u8>>>,
    /// Free blocks with no resident pages (never used, or given back).
    cold: RefCell<Vec<NonNull<u8>>>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        for c in self.chunks.borrow().iter() {
            // SAFETY: each chunk is a mapping of CHUNK_BLOCKS * BLOCK_BYTES made in `grow`;
            // no SlabBox is alive (each holds an Rc to this Inner).
            unsafe { libc::munmap(c.as_ptr().cast(), CHUNK_BLOCKS * BLOCK_BYTES) };
        }
    }
}

impl Inner {
    fn grow(&self) -> bool {
        // SAFETY: an anonymous private mapping; arguments are valid, result checked below.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                CHUNK_BLOCKS * BLOCK_BYTES,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
                -1,
                0,
            )
        };
        let Some(base) = (p != libc::MAP_FAILED)
            .then_some(p.cast::<u8>())
            .and_then(NonNull::new)
        else {
            return false;
        };
        self.chunks.borrow_mut().push(base);
        let mut cold = self.cold.borrow_mut();
        // Lowest block on top.
        for i in (0..CHUNK_BLOCKS).rev() {
            // SAFETY: i * BLOCK_BYTES lies inside the mapping just made.
            cold.push(unsafe { base.add(i * BLOCK_BYTES) });
        }
        true
    }

    /// A recently freed (resident) block first, then a cold one, then a new mapping.
    fn alloc(&self) -> Option<NonNull<u8>> {
        if let Some(b) = self.hot.borrow_mut().pop_back() {
            return Some(b);
        }
        if let Some(b) = self.cold.borrow_mut().pop() {
            return Some(b);
        }
        if !self.grow() {
            return None;
        }
        self.cold.borrow_mut().pop()
    }

    /// Keeps the block resident among the hot ones; the oldest hot block beyond
    /// [`HOT_BLOCKS`] gives its pages back and turns cold.
    fn release(&self, block: NonNull<u8>) {
        let mut hot = self.hot.borrow_mut();
        hot.push_back(block);
        if hot.len() > HOT_BLOCKS {
            if let Some(old) = hot.pop_front() {
                // SAFETY: the block is BLOCK_BYTES of a mapping owned by this slab and holds
                // no live value; its pages read as zero when touched again.
                unsafe { libc::madvise(old.as_ptr().cast(), BLOCK_BYTES, libc::MADV_DONTNEED) };
                self.cold.borrow_mut().push(old);
            }
        }
    }
}

/// One worker's slab of connection-task blocks.
#[derive(Clone)]
pub struct ConnSlab {
    inner: Rc<Inner>,
}

impl Default for ConnSlab {
    fn default() -> Self {
        ConnSlab {
            inner: Rc::new(Inner {
                chunks: RefCell::new(Vec::new()),
                hot: RefCell::new(std::collections::VecDeque::with_capacity(HOT_BLOCKS + 1)),
                cold: RefCell::new(Vec::new()),
            }),
        }
    }
}

impl ConnSlab {
    /// Blocks on the free list (tests and metrics).
    pub fn free_blocks(&self) -> usize {
        self.inner.hot.borrow().len() + self.inner.cold.borrow().len()
    }

    /// Blocks handed out and not yet returned.
    pub fn live_blocks(&self) -> usize {
        self.inner.chunks.borrow().len() * CHUNK_BLOCKS - self.free_blocks()
    }
}

/// A future stored in a slab block; drops it and returns the block when dropped.
pub struct SlabBox<F> {
    ptr: NonNull<F>,
    slab: Rc<Inner>,
}

impl<F> SlabBox<F> {
    /// Moves `f` into a block; gives it back when it does not fit or no block can be made.
    pub fn new(slab: &ConnSlab, f: F) -> Result<SlabBox<F>, F> {
        if std::mem::size_of::<F>() > BLOCK_BYTES || std::mem::align_of::<F>() > PAGE {
            return Err(f);
        }
        let Some(block) = slab.inner.alloc() else {
            return Err(f);
        };
        let ptr = block.cast::<F>();
        // SAFETY: the block is at least size_of::<F>() bytes, page aligned (≥ align_of::<F>()),
        // and owned by this SlabBox from now on.
        unsafe { ptr.as_ptr().write(f) };
        Ok(SlabBox {
            ptr,
            slab: slab.inner.clone(),
        })
    }
}

impl<F> Drop for SlabBox<F> {
    fn drop(&mut self) {
        // SAFETY: the block holds a live F written in `new` and dropped only here.
        unsafe { std::ptr::drop_in_place(self.ptr.as_ptr()) };
        self.slab.release(self.ptr.cast());
    }
}

// The future lives in the block and never moves, whatever happens to the SlabBox.
impl<F> Unpin for SlabBox<F> {}

impl<F: Future> Future for SlabBox<F> {
    type Output = F::Output;
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        // SAFETY: the F in the block is never moved until dropped in place (pinning holds).
        unsafe { Pin::new_unchecked(&mut *self.ptr.as_ptr()) }.poll(cx)
    }
}

/// A connection task's state: in a slab block, or on the heap when it cannot be.
pub enum ConnTask<F> {
    Slab(SlabBox<F>),
    Heap(Pin<Box<F>>),
}

impl<F: Future> ConnTask<F> {
    /// `f` in a slab block, or on the heap (logged once per process) when it cannot be.
    pub fn new(slab: &ConnSlab, f: F) -> ConnTask<F> {
        match SlabBox::new(slab, f) {
            Ok(b) => ConnTask::Slab(b),
            Err(f) => {
                static WARNED: std::sync::atomic::AtomicBool =
                    std::sync::atomic::AtomicBool::new(false);
                if !WARNED.swap(true, std::sync::atomic::Ordering::Relaxed) {
                    tracing::warn!(
                        bytes = std::mem::size_of::<F>(),
                        block = BLOCK_BYTES,
                        "connection state does not fit a slab block; using the heap"
                    );
                }
                ConnTask::Heap(Box::pin(f))
            }
        }
    }
}

impl<F: Future> Future for ConnTask<F> {
    type Output = F::Output;
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        match self.get_mut() {
            ConnTask::Slab(b) => Pin::new(b).poll(cx),
            ConnTask::Heap(b) => b.as_mut().poll(cx),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    struct DropCount<'a>(&'a Cell<u32>, [u8; 9000]);
    impl Drop for DropCount<'_> {
        fn drop(&mut self) {
            self.0.set(self.0.get() + 1);
        }
    }

    #[test]
    fn stores_polls_and_drops_futures_in_blocks() {
        let slab = ConnSlab::default();
        let drops = Cell::new(0);
        let tasks: Vec<_> = (0..100u32)
            .map(|i| {
                let d = DropCount(&drops, [i as u8; 9000]);
                ConnTask::new(&slab, async move { u32::from(d.1[8999]) + i })
            })
            .collect();
        assert!(tasks.iter().all(|t| matches!(t, ConnTask::Slab(_))));
        assert_eq!(slab.live_blocks(), 100);
        let mut cx = Context::from_waker(std::task::Waker::noop());
        for (i, mut t) in tasks.into_iter().enumerate() {
            assert_eq!(Pin::new(&mut t).poll(&mut cx), Poll::Ready(2 * i as u32));
        }
        assert_eq!(drops.get(), 100, "every captured value dropped once");
        assert_eq!(slab.live_blocks(), 0);
        assert_eq!(slab.free_blocks(), 2 * CHUNK_BLOCKS);
    }

    #[test]
    fn reuses_hot_blocks_first_and_gives_back_older_ones() {
        let slab = ConnSlab::default();
        let held: Vec<_> = (0..HOT_BLOCKS + 2)
            .map(|_| {
                SlabBox::new(&slab, std::future::ready([7u8; 8192]))
                    .ok()
                    .unwrap()
            })
            .collect();
        let ptrs: Vec<_> = held.iter().map(|b| b.ptr.cast::<u8>()).collect();
        drop(held); // dropped first to last: the first two fall out of the hot set
        let again = SlabBox::new(&slab, std::future::ready(0u8)).ok().unwrap();
        assert_eq!(
            again.ptr.cast::<u8>(),
            ptrs[HOT_BLOCKS + 1],
            "most recently freed first"
        );
        // SAFETY: the block's second page is inside the mapping and holds no live value (the
        // new future is one byte at the block's start).
        let hot_byte = unsafe { *again.ptr.cast::<u8>().as_ptr().add(PAGE) };
        assert_eq!(hot_byte, 7, "a hot block keeps its pages");
        // SAFETY: block 0 is free (cold) and inside the mapping; nothing else writes it.
        let cold_byte = unsafe { *ptrs[0].as_ptr().add(PAGE) };
        assert_eq!(cold_byte, 0, "an old freed block's pages were given back");
        let hot: Vec<_> = (0..HOT_BLOCKS - 1)
            .map(|_| SlabBox::new(&slab, std::future::ready(0u8)).ok().unwrap())
            .collect();
        let next = SlabBox::new(&slab, std::future::ready(0u8)).ok().unwrap();
        assert_eq!(
            next.ptr.cast::<u8>(),
            ptrs[1],
            "then the cold ones, newest first"
        );
        drop((hot, again, next));
    }

    #[test]
    fn too_large_futures_go_to_the_heap() {
        let slab = ConnSlab::default();
        let big = std::future::ready([0u8; BLOCK_BYTES + 1]);
        assert!(matches!(ConnTask::new(&slab, big), ConnTask::Heap(_)));
        assert_eq!(slab.live_blocks(), 0);
    }
}
