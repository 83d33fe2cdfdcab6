//! Per-core timers without system calls: a min-heap of deadlines that the driver checks on
//! every pass and uses to bound how long an idle worker sleeps in the ring.
//!
//! Invariants: a heap entry is live only while its slot's generation matches; cancelling
//! (dropping a [`Sleep`]) bumps the generation and leaves the stale entry to be discarded
//! when it surfaces, or when stale entries outnumber live ones (so the heap stays within
//! twice the armed timers plus a constant). Slots and the heap keep their capacity, so arming a timer in steady
//! state does not allocate.

use std::cell::RefCell;
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use super::Driver;

#[derive(Default)]
struct Slot {
    generation: u32,
    waker: Option<Waker>,
    fired: bool,
}

/// The timers of one worker.
#[derive(Default)]
pub struct Timers {
    heap: BinaryHeap<Reverse<(Instant, u32, u32)>>,
    slots: Vec<Slot>,
    free: Vec<u32>,
}

impl Timers {
    fn arm(&mut self, deadline: Instant, waker: &Waker) -> (u32, u32) {
        // Cancelled entries stay in the heap until they surface; when they outnumber the
        // live ones, drop them all (amortised O(1), no allocation).
        if self.heap.len() >= 2 * self.armed() + 64 {
            let slots = &self.slots;
            self.heap.retain(|Reverse((_, idx, generation))| {
                slots[*idx as usize].generation == *generation
            });
        }
        let idx = match self.free.pop() {
            Some(i) => i,
            None => {
                self.slots.push(Slot::default());
                (self.slots.len() - 1) as u32
            }
        };
        let s = &mut self.slots[idx as usize];
        s.fired = false;
        s.waker = Some(waker.clone());
        self.heap.push(Reverse((deadline, idx, s.generation)));
        (idx, s.generation)
    }

    fn disarm(&mut self, idx: u32) {
        let s = &mut self.slots[idx as usize];
        s.generation = s.generation.wrapping_add(1);
        s.waker = None;
        s.fired = false;
        self.free.push(idx);
    }

    /// Wakes every timer whose deadline is at or before `now`; returns how many fired.
    pub fn fire(&mut self, now: Instant) -> usize {
        let mut n = 0;
        while let Some(Reverse((deadline, idx, generation))) = self.heap.peek().copied() {
            if deadline > now {
                break;
            }
            self.heap.pop();
            let s = &mut self.slots[idx as usize];
            if s.generation != generation {
                continue; // cancelled
            }
            s.fired = true;
            if let Some(w) = s.waker.take() {
                w.wake();
            }
            n += 1;
        }
        n
    }

    /// Time until the earliest live deadline (zero if already due), if any.
    pub fn next_in(&mut self, now: Instant) -> Option<Duration> {
        while let Some(Reverse((deadline, idx, generation))) = self.heap.peek().copied() {
            if self.slots[idx as usize].generation != generation {
                self.heap.pop();
                continue;
            }
            return Some(deadline.saturating_duration_since(now));
        }
        None
    }

    /// Armed timers (for tests).
    pub fn armed(&self) -> usize {
        self.slots.len() - self.free.len()
    }
}

/// Completes at its deadline; see [`super::sleep`].
pub struct Sleep {
    driver: Rc<Driver>,
    deadline: Instant,
    armed: Option<(u32, u32)>,
}

impl Sleep {
    pub(crate) fn new(driver: Rc<Driver>, deadline: Instant) -> Sleep {
        Sleep {
            driver,
            deadline,
            armed: None,
        }
    }
}

impl Future for Sleep {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let timers: &RefCell<Timers> = self.driver.timers();
        match self.armed {
            None => {
                if Instant::now() >= self.deadline {
                    return Poll::Ready(());
                }
                let armed = timers.borrow_mut().arm(self.deadline, cx.waker());
                self.armed = Some(armed);
                Poll::Pending
            }
            Some((idx, _)) => {
                let mut t = timers.borrow_mut();
                let s = &mut t.slots[idx as usize];
                if s.fired {
                    t.disarm(idx);
                    drop(t);
                    self.armed = None;
                    self.deadline = Instant::now() - Duration::from_nanos(1);
                    Poll::Ready(())
                } else {
                    match &s.waker {
                        Some(w) if w.will_wake(cx.waker()) => {}
                        _ => s.waker = Some(cx.waker().clone()),
                    }
                    Poll::Pending
                }
            }
        }
    }
}

impl Drop for Sleep {
    fn drop(&mut self) {
        if let Some((idx, _)) = self.armed.take() {
            self.driver.timers().borrow_mut().disarm(idx);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn noop_waker() -> Waker {
        Waker::noop().clone()
    }

    #[test]
    fn fires_due_timers_in_deadline_order_and_skips_cancelled_ones() {
        let mut t = Timers::default();
        let now = Instant::now();
        let w = noop_waker();
        let (a, _) = t.arm(now + Duration::from_millis(30), &w);
        let (b, _) = t.arm(now + Duration::from_millis(10), &w);
        let (c, _) = t.arm(now + Duration::from_millis(20), &w);
        t.disarm(c);
        assert_eq!(t.next_in(now), Some(Duration::from_millis(10)));
        assert_eq!(t.fire(now + Duration::from_millis(25)), 1);
        assert!(t.slots[b as usize].fired);
        assert!(!t.slots[a as usize].fired);
        assert_eq!(t.fire(now + Duration::from_millis(30)), 1);
        assert!(t.slots[a as usize].fired);
    }

    #[test]
    fn cancelled_timers_do_not_grow_the_heap_without_bound() {
        let mut t = Timers::default();
        let now = Instant::now();
        let w = noop_waker();
        for _ in 0..100_000 {
            let (i, _) = t.arm(now + Duration::from_secs(60), &w);
            t.disarm(i);
        }
        assert!(
            t.heap.len() <= 64 + 2,
            "heap holds {} stale entries",
            t.heap.len()
        );
        assert_eq!(t.armed(), 0);
        assert_eq!(t.next_in(now), None);
    }
}
