//! Completion futures over driver slots: [`Op`] for single-shot operations (owning the
//! buffers the kernel uses) and [`MultiOp`] for multishot ones (a stream of completions).
//!
//! Cancellation: dropping an unfinished `Op` moves its buffers into the slot and submits an
//! `ASYNC_CANCEL`; the slot frees them at the final completion. Dropping a `MultiOp` does the
//! same and gives back any receive buffer or descriptor still queued or yet to come.

use std::any::Any;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};

use io_uring::cqueue;

use super::driver::{Driver, OpKind};

/// Result of a single-shot operation: the CQE's `res` and `flags`, and the buffers back.
pub struct Completion<T> {
    pub res: i32,
    pub flags: u32,
    pub data: T,
}

/// A submitted single-shot operation owning `data` (the memory the kernel uses).
pub struct Op<T: 'static> {
    driver: Rc<Driver>,
    idx: u32,
    data: Option<T>,
}

impl<T: 'static> Op<T> {
    /// # Safety
    /// `idx` is a slot just submitted by `driver` whose entry points only into the slot or
    /// into heap memory owned by `data` (which must not move when `data` moves).
    pub(crate) unsafe fn new(driver: Rc<Driver>, idx: u32, data: T) -> Op<T> {
        Op {
            driver,
            idx,
            data: Some(data),
        }
    }
}

impl<T: 'static> Op<T> {
    /// Asks the kernel to cancel the operation; keep polling for its final completion, which
    /// brings the buffers back (`-ECANCELED`, or the result if it completed first).
    pub(crate) fn cancel(&self) {
        if self.data.is_some() {
            self.driver.cancel(self.idx);
        }
    }
}

impl<T: 'static> Unpin for Op<T> {}

impl<T: 'static> Future for Op<T> {
    type Output = Completion<T>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Completion<T>> {
        let ready = {
            let mut slots = self.driver.slots();
            let s = slots.get(self.idx);
            match s.result.take() {
                Some(r) => Some(r),
                None => {
                    match &s.waker {
                        Some(w) if w.will_wake(cx.waker()) => {}
                        _ => s.waker = Some(cx.waker().clone()),
                    }
                    None
                }
            }
        };
        match ready {
            Some((res, flags)) => {
                self.driver.release(self.idx);
                let data = self.data.take().expect("Op polled after completion");
                Poll::Ready(Completion { res, flags, data })
            }
            None => Poll::Pending,
        }
    }
}

impl<T: 'static> Drop for Op<T> {
    fn drop(&mut self) {
        if let Some(data) = self.data.take() {
            let kept: Box<dyn Any> = Box::new(data);
            self.driver.orphan(self.idx, Some(kept));
            self.driver.cancel(self.idx);
        }
    }
}

/// A multishot operation (receive or accept): a stream of `(res, flags)` completions.
pub struct MultiOp {
    driver: Rc<Driver>,
    idx: u32,
    kind: OpKind,
    ended: bool,
}

impl MultiOp {
    pub(crate) fn new(driver: Rc<Driver>, idx: u32, kind: OpKind) -> MultiOp {
        MultiOp {
            driver,
            idx,
            kind,
            ended: false,
        }
    }

    /// Next completion; `None` once the final completion has been consumed.
    pub fn poll_next(&mut self, cx: &mut Context<'_>) -> Poll<Option<(i32, u32)>> {
        if self.ended {
            return Poll::Ready(None);
        }
        let mut slots = self.driver.slots();
        let s = slots.get(self.idx);
        if let Some(c) = s.queue.pop_front() {
            return Poll::Ready(Some(c));
        }
        if s.finished {
            drop(slots);
            self.ended = true;
            self.driver.release(self.idx);
            return Poll::Ready(None);
        }
        match &s.waker {
            Some(w) if w.will_wake(cx.waker()) => {}
            _ => s.waker = Some(cx.waker().clone()),
        }
        Poll::Pending
    }

    /// Whether a completion is queued (data, end of stream or error), ignoring the
    /// `-ECANCELED` that ends a receive the driver throttled.
    pub fn has_queued(&self) -> bool {
        !self.ended && {
            let mut slots = self.driver.slots();
            let s = slots.get(self.idx);
            s.queue.iter().any(|&(res, _)| res != -libc::ECANCELED)
        }
    }

    /// True when the operation has ended and only `-ECANCELED` completions (a throttle cancel)
    /// are left: nothing was lost, the owner just needs to re-arm.
    pub fn ended_by_cancel(&self) -> bool {
        self.ended || {
            let mut slots = self.driver.slots();
            let s = slots.get(self.idx);
            s.finished && s.queue.iter().all(|&(res, _)| res == -libc::ECANCELED)
        }
    }

    /// Cancels the operation and waits for its final completion, keeping every completion
    /// that arrived queued (nothing delivered is lost; `next` still yields it).
    pub async fn stop(&mut self) {
        if self.ended {
            return;
        }
        if self.driver.slots().get(self.idx).finished {
            return; // already ended (a single-shot receive, or a throttle): nothing to cancel
        }
        self.driver.cancel(self.idx);
        std::future::poll_fn(|cx| {
            let mut slots = self.driver.slots();
            let s = slots.get(self.idx);
            if s.finished {
                return Poll::Ready(());
            }
            match &s.waker {
                Some(w) if w.will_wake(cx.waker()) => {}
                _ => s.waker = Some(cx.waker().clone()),
            }
            Poll::Pending
        })
        .await
    }

    pub async fn next(&mut self) -> Option<(i32, u32)> {
        std::future::poll_fn(|cx| self.poll_next(cx)).await
    }
}

impl Drop for MultiOp {
    fn drop(&mut self) {
        if self.ended {
            return;
        }
        let finished = {
            let mut slots = self.driver.slots();
            let s = slots.get(self.idx);
            // Give back what was delivered but never consumed.
            while let Some((res, flags)) = s.queue.pop_front() {
                match self.kind {
                    OpKind::RecvMulti => {
                        if let Some(bid) = cqueue::buffer_select(flags) {
                            self.driver.give_back(bid);
                        }
                    }
                    OpKind::AcceptMulti if res >= 0 => {
                        // SAFETY: an accepted descriptor nobody will ever see.
                        unsafe { libc::close(res) };
                    }
                    _ => {}
                }
            }
            s.finished
        };
        if finished {
            self.driver.release(self.idx);
        } else {
            self.driver.orphan(self.idx, None);
            self.driver.cancel(self.idx);
        }
    }
}
