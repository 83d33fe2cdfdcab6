//! [`ParkingLot`]: idle streams held without a task until they become readable.
//!
//! A connection idle long enough is quiesced ([`Stream::quiesce`]: its receive stopped,
//! nothing lost) and, when quiet, parked here: the stream, what is known of the connection
//! ([`ConnInfo`]), its listener and its idle deadline go into one slab entry, and the driver
//! watches the stream with a one-shot readiness notification that owns no slot and no buffer.
//! The task that consumes the notifications (`proxy::park`) gives a readable stream a full
//! connection task again; [`ParkingLot::sweep`] cancels the notifications of streams past
//! their deadline (or all of them on drain), and their entries close when the cancel completes.
//!
//! "Readable" means the stream has something for its reader — bytes, end of stream, an
//! error — and nothing more: the connection task finds out which.
//!
//! Invariants: an occupied entry's stream has exactly one notification in flight; the stream
//! is dropped (closed) or handed on only after that notification's completion; a token names
//! the entry index and its generation, so a stale completion never reaches a reused entry.

use std::cell::RefCell;
use std::time::Instant;

use super::{ConnInfo, Stream};

/// One parked connection.
pub struct Parked {
    pub stream: Stream,
    pub info: ConnInfo,
    pub listener: usize,
    pub deadline: Instant,
    /// The notification was cancelled: close the stream when it completes.
    pub closing: bool,
}

struct Entry {
    generation: u32,
    parked: Option<Parked>,
}

/// One worker's parked connections.
#[derive(Default)]
pub struct ParkingLot {
    entries: RefCell<Vec<Entry>>,
    free: RefCell<Vec<u32>>,
}

fn token(index: u32, generation: u32) -> u64 {
    (u64::from(generation & 0x3fff_ffff) << 32) | u64::from(index)
}

impl ParkingLot {
    /// Parks a quiet stream (see [`Stream::quiesce`]) until it becomes readable, `deadline`
    /// passes, or the worker drains.
    pub fn park(&self, stream: Stream, info: ConnInfo, listener: usize, deadline: Instant) {
        let mut entries = self.entries.borrow_mut();
        let index = match self.free.borrow_mut().pop() {
            Some(i) => i,
            None => {
                entries.push(Entry {
                    generation: 0,
                    parked: None,
                });
                (entries.len() - 1) as u32
            }
        };
        let e = &mut entries[index as usize];
        e.generation = e.generation.wrapping_add(1);
        stream.notify_readable(token(index, e.generation));
        e.parked = Some(Parked {
            stream,
            info,
            listener,
            deadline,
            closing: false,
        });
    }

    /// Takes the connection a completed notification belongs to (`None` for a stale token).
    pub fn take(&self, token: u64) -> Option<Parked> {
        let index = (token & 0xffff_ffff) as usize;
        let generation = (token >> 32) as u32;
        let mut entries = self.entries.borrow_mut();
        let e = entries.get_mut(index)?;
        if e.generation & 0x3fff_ffff != generation {
            return None;
        }
        let p = e.parked.take()?;
        self.free.borrow_mut().push(index as u32);
        Some(p)
    }

    /// Cancels the notifications of connections past their deadline (all of them when
    /// `drain`); their completions then come back with `closing` set.
    pub fn sweep(&self, now: Instant, drain: bool) {
        let mut entries = self.entries.borrow_mut();
        for (i, e) in entries.iter_mut().enumerate() {
            if let Some(p) = e.parked.as_mut() {
                if !p.closing && (drain || p.deadline <= now) {
                    p.closing = true;
                    p.stream
                        .driver()
                        .cancel_notify(token(i as u32, e.generation));
                }
            }
        }
    }

    /// Connections parked now.
    pub fn len(&self) -> usize {
        self.entries
            .borrow()
            .iter()
            .filter(|e| e.parked.is_some())
            .count()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
