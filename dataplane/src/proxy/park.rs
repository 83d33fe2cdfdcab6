//! The parking lot: idle keep-alive client connections held without a task.
//!
//! A connection idle for a whole slice (see `proxy::read_head`) stops its receive (keeping
//! anything that raced in) and, if quiet, is parked here: its socket, peer, listener and idle
//! deadline go into one slab entry (about a hundred bytes), and the driver watches the socket
//! with a one-shot readiness poll ([`Driver::notify_readable`]) that owns no slot and no
//! buffer. Nothing else of the connection stays in memory: no task, no receive operation, no
//! receive buffer. A worker holding thousands of idle connections pays only the entries.
//!
//! One task per worker ([`run`]) consumes the notifications: a readable socket (a new request,
//! or the peer's close) gets a full connection task again; a socket whose deadline passed, or
//! every socket when the worker drains, has its poll cancelled and is closed when the cancel
//! completes. Deadlines and drain are checked once per [`SWEEP_EVERY`].
//!
//! Invariants: an entry's socket has exactly one poll in flight while the entry is occupied;
//! the socket is closed (or handed on) only after that poll's completion; a token names the
//! entry index and its generation, so a stale completion never reaches a reused entry.

use std::cell::RefCell;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::{Duration, Instant};

use crate::runtime::worker::Worker;
use crate::uring::{timeout, Conn};

/// How often deadlines and the drain flag are checked.
pub const SWEEP_EVERY: Duration = Duration::from_millis(250);

struct Parked {
    conn: Conn,
    peer: SocketAddr,
    listener: usize,
    deadline: Instant,
    /// The poll was cancelled: close the socket when it completes.
    closing: bool,
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
    /// Parks a quiet connection (no receive in flight, see `Conn::stop_recv`) until it becomes
    /// readable, `deadline` passes, or the worker drains.
    pub fn park(&self, conn: Conn, peer: SocketAddr, listener: usize, deadline: Instant) {
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
        conn.driver()
            .notify_readable(conn.fd(), token(index, e.generation));
        e.parked = Some(Parked {
            conn,
            peer,
            listener,
            deadline,
            closing: false,
        });
    }

    /// Takes the connection a completed poll belongs to (`None` for a stale token).
    fn take(&self, token: u64) -> Option<Parked> {
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

    /// Cancels the polls of connections past their deadline (all of them when `drain`).
    fn sweep(&self, now: Instant, drain: bool) {
        let mut entries = self.entries.borrow_mut();
        for (i, e) in entries.iter_mut().enumerate() {
            if let Some(p) = e.parked.as_mut() {
                if !p.closing && (drain || p.deadline <= now) {
                    p.closing = true;
                    p.conn.driver().cancel_notify(token(i as u32, e.generation));
                }
            }
        }
    }
}

/// The worker's parking-lot task: wakes parked connections that became readable, closes the
/// ones past their deadline or drained. Runs for the worker's lifetime.
pub async fn run(w: Rc<Worker>) {
    let mut ready: Vec<(u64, i32)> = Vec::with_capacity(64);
    let mut last_sweep = Instant::now();
    loop {
        let wait = SWEEP_EVERY.saturating_sub(last_sweep.elapsed());
        let _ = timeout(&w.driver, wait, w.driver.take_notified(&mut ready)).await;
        for (token, res) in ready.drain(..) {
            let Some(p) = w.lot.take(token) else { continue };
            if p.closing || res < 0 || w.draining.get() {
                drop(p.conn);
                w.metrics.connection_closed(p.listener);
                w.conn_closed();
            } else {
                // Readable: a request or the peer's close; the connection task finds out.
                super::resume(w.clone(), p.listener, p.conn, p.peer);
            }
        }
        let now = Instant::now();
        if now.duration_since(last_sweep) >= SWEEP_EVERY {
            last_sweep = now;
            w.lot.sweep(now, w.draining.get());
        }
    }
}
