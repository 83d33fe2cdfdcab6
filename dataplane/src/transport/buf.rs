//! Received bytes of one side of a connection, and the send payloads built over them.
//!
//! [`InBuf`] holds the unconsumed bytes: normally a window into one receive buffer of the
//! ring (zero copy); only when a message spans several receive buffers are the bytes gathered
//! into a per-connection `Vec` (copied once, capacity kept for later requests).
//! [`Window`] and [`Chain`] implement `IoVecs`, so received bytes go out in one `sendmsg`
//! straight from the buffers they arrived in ([`fill_pieces`] helps payloads built elsewhere).

use crate::uring::{IoVecs, RecvBuf};

/// Unconsumed received bytes. INVARIANT: when `use_acc` is false, `acc` holds no live data.
#[derive(Default)]
pub struct InBuf {
    ring: Option<RecvBuf>,
    acc: Vec<u8>,
    use_acc: bool,
}

impl InBuf {
    pub fn bytes(&self) -> &[u8] {
        if self.use_acc {
            &self.acc
        } else {
            self.ring.as_ref().map_or(&[], |r| r.bytes())
        }
    }

    pub fn len(&self) -> usize {
        self.bytes().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Appends newly received bytes (copies only if bytes were already pending).
    pub fn push(&mut self, new: RecvBuf) {
        if !self.use_acc {
            match self.ring.take() {
                None => {
                    self.ring = Some(new);
                    return;
                }
                Some(old) if old.is_empty() => {
                    self.ring = Some(new);
                    return;
                }
                Some(old) => {
                    self.acc.clear();
                    self.acc.extend_from_slice(old.bytes());
                    self.use_acc = true;
                }
            }
        }
        self.acc.extend_from_slice(new.bytes());
    }

    /// Drops the first `n` bytes.
    pub fn consume(&mut self, n: usize) {
        if self.use_acc {
            let n = n.min(self.acc.len());
            self.acc.drain(..n);
            if self.acc.is_empty() {
                self.use_acc = false;
            }
        } else if let Some(r) = self.ring.as_mut() {
            r.advance(n);
            if r.is_empty() {
                self.ring = None;
            }
        }
    }

    /// Drops everything (returns the receive buffer to the ring).
    pub fn clear(&mut self) {
        self.ring = None;
        self.acc.clear();
        self.use_acc = false;
    }
}

/// Writes iovecs for `pieces`, skipping the first `skip` bytes; returns how many were written.
pub fn fill_pieces<'a>(
    pieces: impl Iterator<Item = &'a [u8]>,
    mut skip: usize,
    out: &mut [libc::iovec],
) -> usize {
    let mut n = 0;
    for p in pieces {
        if n == out.len() {
            break;
        }
        if skip >= p.len() {
            skip -= p.len();
            continue;
        }
        let rest = &p[skip..];
        skip = 0;
        out[n] = libc::iovec {
            iov_base: rest.as_ptr() as *mut libc::c_void,
            iov_len: rest.len(),
        };
        n += 1;
    }
    n
}

/// The first `len` bytes of an `InBuf`.
pub struct Window {
    pub inb: InBuf,
    pub len: usize,
}

// SAFETY: as for HeadOut: the bytes live in ring or heap memory owned by `inb`.
unsafe impl IoVecs for Window {
    fn fill(&self, skip: usize, out: &mut [libc::iovec]) -> usize {
        let b = self.inb.bytes();
        let end = self.len.min(b.len());
        fill_pieces(std::iter::once(&b[..end]), skip, out)
    }
    fn total(&self) -> usize {
        self.len.min(self.inb.len())
    }
}

/// Receive buffers relayed together: the first `lens[i]` bytes of each go out in one
/// `sendmsg` (a large body costs one send per batch, not one per 16 KiB buffer).
pub struct Chain {
    bufs: [Option<RecvBuf>; CHAIN_MAX],
    lens: [usize; CHAIN_MAX],
    n: usize,
}

/// Most buffers relayed by one send.
pub const CHAIN_MAX: usize = 16;

impl Default for Chain {
    fn default() -> Self {
        Chain {
            bufs: Default::default(),
            lens: [0; CHAIN_MAX],
            n: 0,
        }
    }
}

impl Chain {
    pub fn is_full(&self) -> bool {
        self.n == CHAIN_MAX
    }

    pub fn is_empty(&self) -> bool {
        self.n == 0
    }

    /// Adds `buf`, of which the first `len` bytes are sent.
    pub fn push(&mut self, buf: RecvBuf, len: usize) {
        debug_assert!(!self.is_full());
        if let (Some(slot), Some(l)) = (self.bufs.get_mut(self.n), self.lens.get_mut(self.n)) {
            *slot = Some(buf);
            *l = len;
            self.n += 1;
        }
    }

    fn pieces(&self) -> impl Iterator<Item = &[u8]> {
        self.bufs[..self.n]
            .iter()
            .zip(self.lens.iter())
            .map(|(b, &l)| b.as_ref().map_or(&[][..], |b| &b.bytes()[..l.min(b.len())]))
    }
}

// SAFETY: every piece points into receive-buffer ring memory owned by `self` (through its
// `RecvBuf`s), which never moves.
unsafe impl IoVecs for Chain {
    fn fill(&self, skip: usize, out: &mut [libc::iovec]) -> usize {
        fill_pieces(self.pieces(), skip, out)
    }
    fn total(&self) -> usize {
        self.pieces().map(|p| p.len()).sum()
    }
}
