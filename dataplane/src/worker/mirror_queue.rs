//! [`MirrorQueue`]: the worker's bounded queue of mirrored (shadow) requests and the pool of
//! their buffers. The proxy queues copies (`proxy::mirror`); a few long-lived sender tasks
//! take them. A full queue refuses the copy, so a slow shadow cluster can never build up
//! memory or work on the primary path.
//!
//! Invariant: at most [`QUEUE_CAPACITY`] jobs queued and `QUEUE_CAPACITY + spare senders`
//! buffers kept; steady state allocates nothing (buffers and queue slots are reused).

use std::cell::RefCell;
use std::collections::VecDeque;
use std::task::{Poll, Waker};

/// Copies waiting to be sent, per worker.
pub const QUEUE_CAPACITY: usize = 64;
/// Spare buffers kept beyond the queue's (one per sender task).
const SPARE_EXTRA: usize = 4;

/// One copy to send: the request bytes, for cluster `cluster` (index in the config).
pub struct MirrorJob {
    pub cluster: usize,
    pub bytes: Vec<u8>,
}

/// The worker's queue of mirrored requests and the pool of their buffers.
#[derive(Default)]
pub struct MirrorQueue {
    jobs: RefCell<VecDeque<MirrorJob>>,
    spare: RefCell<Vec<Vec<u8>>>,
    waiters: RefCell<Vec<Waker>>,
}

impl MirrorQueue {
    /// A cleared buffer to build a copy in.
    pub fn buffer(&self) -> Vec<u8> {
        let mut b = self.spare.borrow_mut().pop().unwrap_or_default();
        b.clear();
        b
    }

    /// Queues a copy; false (and the buffer recycled) if the queue is full.
    pub fn push(&self, job: MirrorJob) -> bool {
        let mut jobs = self.jobs.borrow_mut();
        if jobs.len() >= QUEUE_CAPACITY {
            drop(jobs);
            self.recycle(job.bytes);
            return false;
        }
        jobs.push_back(job);
        drop(jobs);
        if let Some(w) = self.waiters.borrow_mut().pop() {
            w.wake();
        }
        true
    }

    /// Gives a buffer back for later copies.
    pub fn recycle(&self, b: Vec<u8>) {
        let mut spare = self.spare.borrow_mut();
        if spare.len() < QUEUE_CAPACITY + SPARE_EXTRA {
            spare.push(b);
        }
    }

    /// The next queued copy (waits for one).
    pub async fn next(&self) -> MirrorJob {
        std::future::poll_fn(|cx| match self.jobs.borrow_mut().pop_front() {
            Some(j) => Poll::Ready(j),
            None => {
                let mut w = self.waiters.borrow_mut();
                if !w.iter().any(|x| x.will_wake(cx.waker())) {
                    w.push(cx.waker().clone());
                }
                Poll::Pending
            }
        })
        .await
    }
}
