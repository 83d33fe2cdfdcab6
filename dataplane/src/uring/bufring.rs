//! The provided-buffer ring (`IORING_REGISTER_PBUF_RING`): a fixed pool of equally sized
//! receive buffers that the kernel picks from when a multishot receive completes.
//!
//! Invariants: the ring entries and the buffer memory live in anonymous mappings (buffer pages
//! become resident only when first written), both owned here and alive until the ring is dropped (after the
//! io_uring itself, see `Driver`). Buffer `bid` is handed out at most once until it comes back
//! through [`BufRing::recycle`]; `available` counts buffers the kernel can use right now.
//!
//! Memory: the kernel consumes a buffer ring first-in first-out, so a ring holding the whole
//! pool would cycle through every buffer and make the whole pool resident after `count`
//! receives, however few connections are busy. Instead only a *window* of buffers is in the
//! ring; returned buffers go onto a last-in first-out stash and [`BufRing::refill`] (called
//! before every `io_uring_enter`, the only time a DEFER_TASKRUN ring consumes buffers) tops the
//! ring up from the top of the stash. The buffers in use are then the window plus the ones
//! held by connections; the rest of the pool stays untouched. The window starts small,
//! doubles (up to the pool) whenever a receive finds the ring empty (`ENOBUFS`), and halves
//! back towards its start whenever the worker has been idle for a whole ring wait.

use std::cell::{Cell, RefCell};
use std::io;
use std::rc::Rc;
use std::sync::atomic::{AtomicU16, Ordering};

use io_uring::types::BufRingEntry;

use super::driver::Driver;
use super::UringError;

/// The buffer group id of the receive pool.
pub const RECV_GROUP: u16 = 0;

pub struct BufRing {
    ring: *mut BufRingEntry,
    ring_bytes: usize,
    entries: u16,
    mask: u16,
    buf_size: usize,
    /// Buffer memory: an anonymous mapping, so a page costs memory only once the kernel has
    /// written into it (an idle worker does not hold its whole pool resident).
    mem: *mut u8,
    mem_bytes: usize,
    /// Next tail value to publish (local copy; the kernel reads the shared tail).
    tail: Cell<u16>,
    /// Buffers in the ring (the kernel may fill them).
    available: Cell<u32>,
    /// How many buffers `refill` keeps in the ring.
    window: Cell<u32>,
    /// Returned buffers not in the ring, most recently returned last. Capacity `count`, so
    /// pushing never allocates.
    stash: RefCell<Vec<u16>>,
}

/// Buffers in the ring at start; grows on exhaustion.
pub(crate) const INITIAL_WINDOW: u32 = 16;

impl BufRing {
    /// `count` must be a power of two (config validation guarantees it).
    pub fn new(count: u32, buf_size: u32) -> Result<BufRing, UringError> {
        let entries = count as u16;
        debug_assert!(count.is_power_of_two() && count <= 32768);
        let ring_bytes = (count as usize) * std::mem::size_of::<BufRingEntry>();
        // SAFETY: an anonymous private mapping; arguments are valid, result checked below.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                ring_bytes,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_POPULATE,
                -1,
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(UringError::BufRing(io::Error::last_os_error()));
        }
        let total = count as usize * buf_size as usize;
        // SAFETY: an anonymous private mapping; arguments are valid, result checked below.
        let mem = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                total,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
                -1,
                0,
            )
        };
        if mem == libc::MAP_FAILED {
            // SAFETY: unmapping the ring mapping created just above.
            unsafe { libc::munmap(ptr, ring_bytes) };
            return Err(UringError::Memory(total));
        }
        Ok(BufRing {
            ring: ptr.cast(),
            ring_bytes,
            entries,
            mask: entries.wrapping_sub(1),
            buf_size: buf_size as usize,
            mem: mem.cast(),
            mem_bytes: total,
            tail: Cell::new(0),
            available: Cell::new(0),
            window: Cell::new(count.min(INITIAL_WINDOW)),
            // Highest bid on top: the low buffers are used first.
            stash: RefCell::new((0..entries).rev().collect()),
        })
    }

    pub fn ring_addr(&self) -> u64 {
        self.ring as u64
    }

    pub fn entries(&self) -> u16 {
        self.entries
    }

    pub fn buf_size(&self) -> usize {
        self.buf_size
    }

    /// Buffers not held by anyone: in the ring or on the stash.
    pub fn free(&self) -> u32 {
        self.available.get() + self.stash.borrow().len() as u32
    }

    /// Buffers the ring is topped up to.
    pub fn window(&self) -> u32 {
        self.window.get()
    }

    /// Tops the ring up to the window from the stash (most recently returned first) and
    /// publishes the new tail. Call before entering the kernel.
    pub fn refill(&self) {
        let mut stash = self.stash.borrow_mut();
        let mut pushed = false;
        while self.available.get() < self.window.get() {
            let Some(bid) = stash.pop() else { break };
            self.push(bid);
            pushed = true;
        }
        if pushed {
            self.publish();
        }
    }

    /// The worker is idle: halve the window (not below its initial size); the ring drains to it
    /// as the kernel uses the buffers beyond it.
    pub fn shrink_window(&self) {
        let floor = u32::from(self.entries).min(INITIAL_WINDOW);
        self.window.set((self.window.get() / 2).max(floor));
    }

    /// A receive found the ring empty: keep more buffers in it from now on.
    pub fn starved(&self) {
        let count = u32::from(self.entries);
        self.window.set((self.window.get() * 2).min(count));
    }

    fn push(&self, bid: u16) {
        let tail = self.tail.get();
        let idx = (tail & self.mask) as usize;
        // SAFETY: idx < entries, the mapping holds `entries` entries; the kernel only reads
        // entries between its head and the published tail, and this slot is beyond the tail.
        let entry = unsafe { &mut *self.ring.add(idx) };
        // SAFETY: bid < entries, so the buffer lies inside the `mem` mapping.
        let addr = unsafe { self.mem.add(bid as usize * self.buf_size) };
        entry.set_addr(addr as u64);
        entry.set_len(self.buf_size as u32);
        entry.set_bid(bid);
        self.tail.set(tail.wrapping_add(1));
        self.available.set(self.available.get() + 1);
    }

    fn publish(&self) {
        // SAFETY: the ring base is page aligned and the tail field overlays entry 0's `resv`
        // field, as the kernel ABI defines; written with release ordering so the entries are
        // visible before the new tail.
        unsafe {
            let tail = BufRingEntry::tail(self.ring) as *const AtomicU16;
            (*tail).store(self.tail.get(), Ordering::Release);
        }
    }

    /// Takes a buffer back (onto the stash; [`BufRing::refill`] hands it to the kernel).
    pub fn recycle(&self, bid: u16) {
        self.stash.borrow_mut().push(bid);
    }

    /// A buffer that is in neither the ring nor anybody's hands, for the user to fill itself
    /// (a TLS stream writes decrypted bytes into one). `None` when the stash is empty.
    pub fn take_spare(&self) -> Option<u16> {
        self.stash.borrow_mut().pop()
    }

    /// Buffer `bid`'s whole memory, for writing.
    ///
    /// # Safety
    /// The caller holds `bid` exclusively (taken with [`BufRing::take_spare`] or delivered by a
    /// completion, and not recycled) and no other reference to its bytes is alive.
    #[allow(clippy::mut_from_ref)]
    unsafe fn slice_mut(&self, bid: u16) -> &mut [u8] {
        let start = bid as usize * self.buf_size;
        if start + self.buf_size > self.mem_bytes {
            return &mut [];
        }
        // SAFETY: inside the mapping (checked above); exclusive per the caller's contract; the
        // kernel does not write into a buffer that is out of the ring.
        unsafe { std::slice::from_raw_parts_mut(self.mem.add(start), self.buf_size) }
    }

    /// Bookkeeping when a completion takes buffer `bid` out of the ring.
    pub fn taken(&self) {
        self.available.set(self.available.get().saturating_sub(1));
    }

    /// The bytes of buffer `bid`, first `len` of them.
    fn slice(&self, bid: u16, len: usize) -> &[u8] {
        let start = bid as usize * self.buf_size;
        if start + self.buf_size > self.mem_bytes {
            return &[];
        }
        let len = len.min(self.buf_size);
        // SAFETY: the range lies inside the mapping (checked above), which lives as long as
        // `self`; the kernel wrote these bytes before the completion that handed out `bid`,
        // and does not write to a buffer until it is recycled.
        unsafe { std::slice::from_raw_parts(self.mem.add(start), len) }
    }
}

impl Drop for BufRing {
    fn drop(&mut self) {
        // SAFETY: unmapping the mapping created in `new`; the io_uring that referenced it has
        // been dropped first (field order in `Driver`).
        unsafe {
            libc::munmap(self.ring.cast(), self.ring_bytes);
            libc::munmap(self.mem.cast(), self.mem_bytes);
        }
    }
}

/// A filled receive buffer, owned by the user until dropped, then given back to the ring.
/// `start..end` is the unconsumed window.
pub struct RecvBuf {
    driver: Rc<Driver>,
    bid: u16,
    start: u32,
    end: u32,
}

impl RecvBuf {
    pub(crate) fn new(driver: Rc<Driver>, bid: u16, len: u32) -> RecvBuf {
        RecvBuf {
            driver,
            bid,
            start: 0,
            end: len,
        }
    }

    /// The unconsumed bytes.
    pub fn bytes(&self) -> &[u8] {
        let all = self.driver.bufs().slice(self.bid, self.end as usize);
        all.get(self.start as usize..).unwrap_or(&[])
    }

    pub fn len(&self) -> usize {
        (self.end - self.start) as usize
    }

    pub fn is_empty(&self) -> bool {
        self.start == self.end
    }

    /// The pool index of this buffer (tests check which buffers get reused).
    #[cfg(test)]
    pub(crate) fn bid(&self) -> u16 {
        self.bid
    }

    /// Marks the first `n` unconsumed bytes as consumed.
    pub fn advance(&mut self, n: usize) {
        let n = (n as u32).min(self.end - self.start);
        self.start += n;
    }

    /// A spare buffer of `driver`'s pool filled by `fill` (which gets the whole buffer and
    /// returns how many bytes it wrote); `None` when no buffer is spare right now.
    pub fn fill_spare<E>(
        driver: &Rc<Driver>,
        fill: impl FnOnce(&mut [u8]) -> Result<usize, E>,
    ) -> Option<Result<RecvBuf, E>> {
        let bid = driver.bufs().take_spare()?;
        let mut buf = RecvBuf::new(driver.clone(), bid, 0);
        Some(buf.overwrite(fill).map(|()| buf))
    }

    /// Replaces the contents by what `fill` writes into the whole buffer (it returns how many
    /// bytes it wrote). On error the buffer is left empty.
    pub fn overwrite<E>(
        &mut self,
        fill: impl FnOnce(&mut [u8]) -> Result<usize, E>,
    ) -> Result<(), E> {
        // SAFETY: this RecvBuf owns `bid` until it is dropped, and `&mut self` guarantees no
        // slice of its bytes is borrowed.
        let mem = unsafe { self.driver.bufs().slice_mut(self.bid) };
        self.start = 0;
        self.end = 0;
        let n = fill(mem)?;
        self.end = n.min(mem.len()) as u32;
        Ok(())
    }

    /// Keeps only the first `n` unconsumed bytes.
    pub fn truncate(&mut self, n: usize) {
        let n = (n as u32).min(self.end - self.start);
        self.end = self.start + n;
    }
}

impl Drop for RecvBuf {
    fn drop(&mut self) {
        self.driver.bufs().recycle(self.bid);
        self.driver.buffer_returned();
    }
}

impl std::fmt::Debug for RecvBuf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecvBuf")
            .field("bid", &self.bid)
            .field("len", &self.len())
            .finish()
    }
}
