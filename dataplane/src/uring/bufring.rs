//! The provided-buffer ring (`IORING_REGISTER_PBUF_RING`): a fixed pool of equally sized
//! receive buffers that the kernel picks from when a multishot receive completes.
//!
//! Invariants: the ring entries and the buffer memory live in anonymous mappings (buffer pages
//! become resident only when first written), both owned here and alive until the ring is dropped (after the
//! io_uring itself, see `Driver`). Buffer `bid` is handed out at most once until it comes back
//! through [`BufRing::recycle`]; `available` counts buffers the kernel can use right now.

use std::cell::Cell;
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
    available: Cell<u32>,
}

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

    /// Buffers the kernel may fill right now.
    pub fn available(&self) -> u32 {
        self.available.get()
    }

    /// Hands every buffer to the kernel (after registration).
    pub fn provide_all(&self) {
        for bid in 0..self.entries as u32 {
            self.push(bid as u16);
        }
        self.publish();
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

    /// Returns a buffer to the kernel.
    pub fn recycle(&self, bid: u16) {
        self.push(bid);
        self.publish();
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

    /// Marks the first `n` unconsumed bytes as consumed.
    pub fn advance(&mut self, n: usize) {
        let n = (n as u32).min(self.end - self.start);
        self.start += n;
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
