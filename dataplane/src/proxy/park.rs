//! The parking-lot task: idle keep-alive client connections held without a task (the data
//! structure is `transport::ParkingLot`).
//!
//! A connection idle for a whole slice (see `proxy::read_head`) is quiesced and, if quiet,
//! parked: no task, no receive operation, no receive buffer stay in memory, only the lot's
//! entry. One task per worker ([`run`]) consumes the readiness notifications: a readable
//! stream (a new request, or the peer's close) gets a full connection task again; a stream
//! whose deadline passed, or every stream when the worker drains (unless it hands over to a
//! successor: then idle streams wait for their next request, answered with a close), has its notification
//! cancelled and is closed when the cancel completes. Deadlines and drain are checked once
//! per [`SWEEP_EVERY`].

use std::rc::Rc;
use std::time::{Duration, Instant};

use crate::uring::timeout;
use crate::worker::Worker;

/// How often deadlines and the drain flag are checked.
pub const SWEEP_EVERY: Duration = Duration::from_millis(250);

/// The worker's parking-lot task. Runs for the worker's lifetime.
pub async fn run(w: Rc<Worker>) {
    let mut ready: Vec<(u64, i32)> = Vec::with_capacity(64);
    let mut last_sweep = Instant::now();
    loop {
        let wait = SWEEP_EVERY.saturating_sub(last_sweep.elapsed());
        let _ = timeout(&w.driver, wait, w.driver.take_notified(&mut ready)).await;
        for (token, res) in ready.drain(..) {
            let Some(p) = w.lot.take(token) else { continue };
            if p.closing || res < 0 || w.closing_idle() {
                drop(p.stream);
                w.metrics.connection_closed(p.listener);
                w.conn_closed();
            } else {
                // Readable: a request or the peer's close; the connection task finds out.
                super::resume(w.clone(), p.listener, p.stream, p.info);
            }
        }
        let now = Instant::now();
        if now.duration_since(last_sweep) >= SWEEP_EVERY {
            last_sweep = now;
            w.lot.sweep(now, w.closing_idle());
        }
    }
}
