//! The ring, the slab of in-flight operations and the driver loop.
//!
//! ```text
//!            push SQE (no syscall)           enter(to_submit, 0, GETEVENTS)
//!  task ───────────────────────────▶ SQ ───────────────────────────────────▶ kernel
//!   ▲                                                                          │
//!   └──── wake(slot.waker) ◀── dispatch(user_data = slot index) ◀── CQ ◀───────┘
//! ```
//!
//! The driver loop: one `enter` per pass; a pass that found completions yields to let the
//! woken tasks run; an idle worker sleeps in the ring itself (see [`Driver::run`]).
//!
//! INVARIANT: `user_data` of every entry is a slot index, [`CANCEL_TAG`] for cancel
//! requests whose completion carries nothing, or [`NOTIFY_BIT`] | token for a readiness
//! notification ([`Driver::notify_readable`]): a one-shot poll that owns no memory and no slot,
//! whose completion is queued for the single consumer of notifications (the proxy's parking
//! lot of idle connections). A slot is freed only after its final completion.

use std::any::Any;
use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::rc::Rc;
use std::task::{Poll, Waker};
use std::time::Duration;

use io_uring::{cqueue, opcode, squeue, types, IoUring};

use super::bufring::{BufRing, RECV_GROUP};
use super::timer::Timers;
use super::UringError;

/// `user_data` of cancel requests.
pub const CANCEL_TAG: u64 = u64::MAX;
/// Housekeeping run by an idle worker, and the least time between two runs.
type IdleHook = (fn(), Duration);

/// Set in the `user_data` of readiness notifications; the rest is the caller's token.
pub const NOTIFY_BIT: u64 = 1 << 62;
/// iovecs a vectored send can carry.
pub const MAX_IOV: usize = 16;
/// A multishot receive that has this many unconsumed completions queued is cancelled until its
/// owner catches up (per-connection backpressure on the shared buffer pool).
const MAX_QUEUED_RECV: usize = 8;
const CHUNK: usize = 64;
/// Longest sleep of an idle worker in its ring (bounds the latency of control messages).
pub const IDLE_WAIT: Duration = Duration::from_millis(20);
/// `IORING_ENTER_GETEVENTS` (not re-exported by the io-uring crate).
const IORING_ENTER_GETEVENTS: u32 = 1;

/// Ring and buffer sizes of one worker (from `config::IoConfig`).
#[derive(Debug, Clone, Copy)]
pub struct DriverConfig {
    pub ring_entries: u32,
    pub recv_buffers: u32,
    pub recv_buffer_size: u32,
}

impl Default for DriverConfig {
    fn default() -> Self {
        DriverConfig {
            ring_entries: 1024,
            recv_buffers: 1024,
            recv_buffer_size: 16384,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SlotState {
    Free,
    Active,
    /// The future is gone; the slot waits for the final completion to free what it keeps.
    Orphan,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OpKind {
    Single,
    RecvMulti,
    AcceptMulti,
}

/// One in-flight operation. Fields the kernel reads by address (`msg`, `iov`, `addr`)
/// never move: slots live in boxed chunks.
pub(crate) struct Slot {
    pub state: SlotState,
    pub kind: OpKind,
    pub waker: Option<Waker>,
    pub result: Option<(i32, u32)>,
    pub queue: VecDeque<(i32, u32)>,
    pub finished: bool,
    pub cancel_sent: bool,
    pub kept: Option<Box<dyn Any>>,
    pub msg: libc::msghdr,
    pub iov: [libc::iovec; MAX_IOV],
    pub addr: libc::sockaddr_storage,
}

impl Slot {
    fn new() -> Slot {
        Slot {
            state: SlotState::Free,
            kind: OpKind::Single,
            waker: None,
            result: None,
            queue: VecDeque::new(),
            finished: false,
            cancel_sent: false,
            kept: None,
            // SAFETY: all-zero is a valid msghdr / sockaddr_storage / iovec (null pointers, 0 lengths).
            msg: unsafe { std::mem::zeroed() },
            iov: [libc::iovec {
                iov_base: std::ptr::null_mut(),
                iov_len: 0,
            }; MAX_IOV],
            // SAFETY: as above.
            addr: unsafe { std::mem::zeroed() },
        }
    }
}

#[derive(Default)]
pub(crate) struct Slots {
    chunks: Vec<Box<[Slot]>>,
    free: Vec<u32>,
    live: u32,
}

impl Slots {
    fn alloc(&mut self, kind: OpKind) -> u32 {
        let idx = match self.free.pop() {
            Some(i) => i,
            None => {
                let base = (self.chunks.len() * CHUNK) as u32;
                let chunk: Vec<Slot> = (0..CHUNK).map(|_| Slot::new()).collect();
                self.chunks.push(chunk.into_boxed_slice());
                self.free.extend((base + 1..base + CHUNK as u32).rev());
                base
            }
        };
        let s = self.get(idx);
        s.state = SlotState::Active;
        s.kind = kind;
        s.finished = false;
        s.cancel_sent = false;
        s.result = None;
        self.live += 1;
        idx
    }

    pub(crate) fn get(&mut self, idx: u32) -> &mut Slot {
        let i = idx as usize;
        &mut self.chunks[i / CHUNK][i % CHUNK]
    }

    /// Frees the slot and returns what it kept, to be dropped by the caller after releasing
    /// the borrow (dropping it may submit new operations).
    fn release(&mut self, idx: u32) -> Option<Box<dyn Any>> {
        let s = self.get(idx);
        s.state = SlotState::Free;
        s.waker = None;
        s.result = None;
        let kept = s.kept.take();
        self.free.push(idx);
        self.live -= 1;
        kept
    }
}

/// One worker's io_uring driver. Field order matters for drop: the ring goes before the
/// buffer memory it references.
pub struct Driver {
    ring: RefCell<IoUring>,
    slots: RefCell<Slots>,
    bufs: BufRing,
    unsubmitted: Cell<bool>,
    buffer_waiters: RefCell<VecDeque<Waker>>,
    completions: RefCell<Vec<(u64, i32, u32)>>,
    timers: RefCell<Timers>,
    stopping: Cell<bool>,
    /// Completed readiness notifications: (token, poll result), and who waits for them.
    notified: RefCell<Vec<(u64, i32)>>,
    notify_waker: RefCell<Option<Waker>>,
    /// Called when the worker is about to sleep, at most once per `idle_hook_every`.
    idle_hook: Cell<Option<IdleHook>>,
    idle_hook_last: Cell<Option<std::time::Instant>>,
    /// The last wait returned because completions arrived (they are in the queue already).
    woke_with_completions: Cell<bool>,
}

impl Driver {
    /// Creates the ring (SINGLE_ISSUER | DEFER_TASKRUN; must be called on the thread that
    /// will use it) and registers the buffer ring.
    pub fn new(cfg: DriverConfig) -> Result<Rc<Driver>, UringError> {
        let ring = IoUring::builder()
            .setup_single_issuer()
            .setup_defer_taskrun()
            .setup_cqsize(cfg.ring_entries.saturating_mul(4))
            .build(cfg.ring_entries)
            .map_err(UringError::Setup)?;
        let bufs = BufRing::new(cfg.recv_buffers, cfg.recv_buffer_size)?;
        // SAFETY: the ring memory stays mapped until `bufs` drops, which happens after the
        // io_uring is dropped (field order of Driver).
        unsafe {
            ring.submitter().register_buf_ring_with_flags(
                bufs.ring_addr(),
                bufs.entries(),
                RECV_GROUP,
                0,
            )
        }
        .map_err(UringError::BufRing)?;
        bufs.refill();
        Ok(Rc::new(Driver {
            ring: RefCell::new(ring),
            slots: RefCell::new(Slots::default()),
            bufs,
            unsubmitted: Cell::new(false),
            buffer_waiters: RefCell::new(VecDeque::new()),
            completions: RefCell::new(Vec::with_capacity(256)),
            timers: RefCell::new(Timers::default()),
            stopping: Cell::new(false),
            notified: RefCell::new(Vec::with_capacity(64)),
            notify_waker: RefCell::new(None),
            idle_hook: Cell::new(None),
            idle_hook_last: Cell::new(None),
            woke_with_completions: Cell::new(false),
        }))
    }

    pub(crate) fn timers(&self) -> &RefCell<Timers> {
        &self.timers
    }

    pub(crate) fn bufs(&self) -> &BufRing {
        &self.bufs
    }

    pub(crate) fn slots(&self) -> std::cell::RefMut<'_, Slots> {
        self.slots.borrow_mut()
    }

    /// Operations whose final completion has not arrived yet.
    pub fn live_ops(&self) -> u32 {
        self.slots.borrow().live
    }

    /// Receive buffers not held by a connection (in the ring or waiting to go back in).
    pub fn free_buffers(&self) -> u32 {
        self.bufs.free()
    }

    /// Receive buffers the ring is kept topped up to (grows when receives find it empty).
    pub fn buffer_window(&self) -> u32 {
        self.bufs.window()
    }

    pub fn buffer_size(&self) -> usize {
        self.bufs.buf_size()
    }

    /// Runs `hook` when the worker has slept a whole [`IDLE_WAIT`] in its ring with nothing
    /// to do, at most once per `every` (housekeeping that costs nothing while the worker is
    /// busy: a worker with traffic never sleeps that long).
    pub fn set_idle_hook(&self, hook: fn(), every: Duration) {
        self.idle_hook.set(Some((hook, every)));
    }

    fn run_idle_hook(&self) {
        let Some((hook, every)) = self.idle_hook.get() else {
            return;
        };
        let now = std::time::Instant::now();
        if self
            .idle_hook_last
            .get()
            .is_some_and(|t| now.duration_since(t) < every)
        {
            return;
        }
        self.idle_hook_last.set(Some(now));
        hook();
    }

    /// Asks the driver loop to end once no operation is in flight.
    pub fn stop(&self) {
        self.stopping.set(true);
    }

    /// Allocates a slot, lets `build` write the entry (and any memory it points to into the
    /// slot), and queues it. Returns the slot index.
    ///
    /// # Safety
    /// Every pointer in the built entry must stay valid until the operation's final
    /// completion: it points into the slot, or into memory owned by the op's future (which
    /// hands it to the slot if dropped early).
    pub(crate) unsafe fn submit(
        &self,
        kind: OpKind,
        build: impl FnOnce(&mut Slot) -> squeue::Entry,
    ) -> u32 {
        let (idx, entry) = {
            let mut slots = self.slots.borrow_mut();
            let idx = slots.alloc(kind);
            let entry = build(slots.get(idx)).user_data(idx as u64);
            (idx, entry)
        };
        // SAFETY: forwarded from the caller's contract.
        unsafe { self.push(&entry) };
        idx
    }

    /// # Safety
    /// As [`Driver::submit`].
    unsafe fn push(&self, entry: &squeue::Entry) {
        let mut ring = self.ring.borrow_mut();
        loop {
            // SAFETY: the caller guarantees the entry's memory outlives the operation.
            if unsafe { ring.submission().push(entry) }.is_ok() {
                break;
            }
            // Submission queue full: hand what is queued to the kernel now.
            self.bufs.refill();
            if let Err(e) = ring.submit() {
                if e.raw_os_error() != Some(libc::EBUSY) && e.raw_os_error() != Some(libc::EINTR) {
                    tracing::error!(error = %e, "io_uring submit failed");
                }
            }
        }
        drop(ring);
        self.unsubmitted.set(true);
    }

    /// Requests cancellation of the operation in slot `idx` (its final completion still comes).
    pub(crate) fn cancel(&self, idx: u32) {
        {
            let mut slots = self.slots.borrow_mut();
            let s = slots.get(idx);
            if s.cancel_sent {
                return;
            }
            s.cancel_sent = true;
        }
        let entry = opcode::AsyncCancel::new(idx as u64)
            .build()
            .user_data(CANCEL_TAG);
        // SAFETY: a cancel entry points to no memory.
        unsafe { self.push(&entry) };
    }

    /// The future of slot `idx` is gone: keep `kept` alive until the final completion.
    pub(crate) fn orphan(&self, idx: u32, kept: Option<Box<dyn Any>>) {
        let mut slots = self.slots.borrow_mut();
        let s = slots.get(idx);
        s.state = SlotState::Orphan;
        s.waker = None;
        s.kept = kept;
    }

    /// Frees a slot whose final completion was consumed by its future.
    pub(crate) fn release(&self, idx: u32) {
        let kept = self.slots.borrow_mut().release(idx);
        drop(kept);
    }

    /// Asks for one notification when `fd` becomes readable (or hung up, or in error):
    /// a one-shot poll whose completion `(token, revents or -errno)` is queued for
    /// [`Driver::take_notified`]. `token` must be below [`NOTIFY_BIT`] and unique among the
    /// notifications outstanding. The descriptor must stay open until the completion arrives.
    pub fn notify_readable(&self, fd: std::os::fd::RawFd, token: u64) {
        debug_assert!(token < NOTIFY_BIT);
        let mask = (libc::POLLIN | libc::POLLRDHUP) as u32;
        let entry = opcode::PollAdd::new(types::Fd(fd), mask)
            .build()
            .user_data(NOTIFY_BIT | token);
        // SAFETY: a poll entry points to no memory.
        unsafe { self.push(&entry) };
    }

    /// Cancels notification `token`; its completion (`-ECANCELED`, or the readiness if that
    /// came first) still arrives.
    pub fn cancel_notify(&self, token: u64) {
        let entry = opcode::AsyncCancel::new(NOTIFY_BIT | token)
            .build()
            .user_data(CANCEL_TAG);
        // SAFETY: a cancel entry points to no memory.
        unsafe { self.push(&entry) };
    }

    /// Moves the completed notifications into `out`; completes when there is at least one.
    pub async fn take_notified(&self, out: &mut Vec<(u64, i32)>) {
        std::future::poll_fn(|cx| {
            let mut done = self.notified.borrow_mut();
            if done.is_empty() {
                *self.notify_waker.borrow_mut() = Some(cx.waker().clone());
                return Poll::Pending;
            }
            out.append(&mut done);
            Poll::Ready(())
        })
        .await
    }

    /// Wakes one task waiting for a receive buffer.
    pub(crate) fn buffer_returned(&self) {
        if let Some(w) = self.buffer_waiters.borrow_mut().pop_front() {
            w.wake();
        }
    }

    /// Gives buffer `bid` back to the kernel and wakes a task waiting for one.
    pub(crate) fn give_back(&self, bid: u16) {
        self.bufs.recycle(bid);
        self.buffer_returned();
    }

    /// Completes once a receive buffer is available (immediately if one is).
    pub(crate) async fn buffer_wait(&self) {
        std::future::poll_fn(|cx| {
            if self.bufs.free() > 0 {
                Poll::Ready(())
            } else {
                self.buffer_waiters
                    .borrow_mut()
                    .push_back(cx.waker().clone());
                Poll::Pending
            }
        })
        .await
    }

    /// Submits what is queued and dispatches every completion. Returns the completions seen.
    pub fn turn(&self) -> usize {
        {
            let mut ring = self.ring.borrow_mut();
            let mut done = self.completions.borrow_mut();
            // Completions already queued (from a wait, or an inline submit) took buffers:
            // count them before topping the buffer ring up.
            self.harvest(&mut ring, &mut done);
            self.bufs.refill();
            let to_submit = ring.submission().len() as u32;
            self.unsubmitted.set(false);
            // Right after a wait that returned completions with nothing new to submit, the
            // completions are already in the queue: reap them without another system call.
            let woke = self.woke_with_completions.replace(false);
            if !(woke && to_submit == 0) {
                // SAFETY: GETEVENTS with no argument; the entries' memory is guaranteed by
                // `submit`'s contract.
                let r = unsafe {
                    ring.submitter().enter::<libc::sigset_t>(
                        to_submit,
                        0,
                        IORING_ENTER_GETEVENTS,
                        None,
                    )
                };
                if let Err(e) = r {
                    match e.raw_os_error() {
                        Some(libc::EINTR) | Some(libc::EBUSY) | Some(libc::EAGAIN) => {}
                        _ => tracing::error!(error = %e, "io_uring enter failed"),
                    }
                }
            }
            self.harvest(&mut ring, &mut done);
        }
        let n = self.completions.borrow().len();
        for i in 0..n {
            let (ud, res, flags) = self.completions.borrow()[i];
            self.dispatch(ud, res, flags);
        }
        self.completions.borrow_mut().clear();
        n + self.timers.borrow_mut().fire(std::time::Instant::now())
    }

    /// Moves the queued completions into `done`, counting the receive buffers they took out of
    /// the ring (so `refill` sees how many the kernel still has).
    fn harvest(&self, ring: &mut IoUring, done: &mut Vec<(u64, i32, u32)>) {
        let mut cq = ring.completion();
        cq.sync();
        for cqe in &mut cq {
            if cqueue::buffer_select(cqe.flags()).is_some() {
                self.bufs.taken();
            }
            done.push((cqe.user_data(), cqe.result(), cqe.flags()));
        }
    }

    fn dispatch(&self, ud: u64, res: i32, flags: u32) {
        if ud == CANCEL_TAG {
            return;
        }
        if ud & NOTIFY_BIT != 0 {
            self.notified.borrow_mut().push((ud & !NOTIFY_BIT, res));
            if let Some(w) = self.notify_waker.borrow_mut().take() {
                w.wake();
            }
            return;
        }
        let idx = ud as u32;
        let more = cqueue::more(flags);
        let mut slots = self.slots.borrow_mut();
        let s = slots.get(idx);
        match (s.kind, s.state) {
            (_, SlotState::Free) => {
                debug_assert!(false, "completion for a free slot");
            }
            (OpKind::Single, SlotState::Active) => {
                s.result = Some((res, flags));
                if let Some(w) = s.waker.take() {
                    w.wake();
                }
            }
            (OpKind::Single, SlotState::Orphan) => {
                let kept = slots.release(idx);
                drop(slots);
                drop(kept);
            }
            (kind, SlotState::Orphan) => {
                if kind == OpKind::RecvMulti {
                    if let Some(bid) = cqueue::buffer_select(flags) {
                        self.bufs.recycle(bid);
                    }
                } else if kind == OpKind::AcceptMulti && res >= 0 {
                    // SAFETY: an accepted descriptor nobody will ever see.
                    unsafe { libc::close(res) };
                }
                if !more {
                    let kept = slots.release(idx);
                    drop(slots);
                    drop(kept);
                }
            }
            (kind, SlotState::Active) => {
                if kind == OpKind::RecvMulti
                    && cqueue::buffer_select(flags).is_none()
                    && res == -libc::ENOBUFS
                {
                    self.bufs.starved();
                }
                s.queue.push_back((res, flags));
                if !more {
                    s.finished = true;
                }
                let throttle =
                    more && kind == OpKind::RecvMulti && s.queue.len() >= MAX_QUEUED_RECV;
                if let Some(w) = s.waker.take() {
                    w.wake();
                }
                drop(slots);
                if throttle {
                    self.cancel(idx);
                }
            }
        }
    }

    /// Blocks the thread in the ring until a completion arrives, `max` passes, or the next
    /// timer is due. True when the whole `max` passed with nothing arriving.
    fn wait(&self, max: Duration) -> bool {
        let limit = match self.timers.borrow_mut().next_in(std::time::Instant::now()) {
            Some(d) if d.is_zero() => return false,
            Some(d) => d.min(max),
            None => max,
        };
        let whole = limit == max;
        let max = limit;
        {
            let mut ring = self.ring.borrow_mut();
            let mut done = self.completions.borrow_mut();
            self.harvest(&mut ring, &mut done); // dispatched by the next turn
            if !done.is_empty() {
                return false;
            }
        }
        self.bufs.refill();
        let ring = self.ring.borrow();
        let ts = types::Timespec::new()
            .sec(max.as_secs())
            .nsec(max.subsec_nanos());
        let args = types::SubmitArgs::new().timespec(&ts);
        match ring.submitter().submit_with_args(1, &args) {
            Ok(_) => {
                self.woke_with_completions.set(true);
                false
            }
            Err(e) => match e.raw_os_error() {
                Some(libc::ETIME) => whole,
                Some(libc::EINTR) | Some(libc::EBUSY) | Some(libc::EAGAIN) => false,
                _ => {
                    tracing::error!(error = %e, "io_uring wait failed");
                    false
                }
            },
        }
    }

    /// The driver loop; spawn it once per worker, before any operation is awaited.
    ///
    /// A pass that finds completions yields so the woken tasks run. A pass that finds none
    /// yields once more (every runnable task gets to run and queue its entries); if that
    /// queued nothing either, the worker is idle and the thread sleeps in the ring itself
    /// (`io_uring_enter` with `min_complete = 1`) for at most [`IDLE_WAIT`]. Everything a
    /// worker waits for on the hot path is an operation of this ring, so I/O wakes it at once;
    /// wakes from other threads (control messages) are seen within `IDLE_WAIT`. Sleeping here
    /// instead of in a glommio read of an eventfd saves syscalls and keeps the idle → busy
    /// transition free of allocation.
    pub async fn run(self: Rc<Self>) {
        loop {
            let n = self.turn();
            if self.stopping.get() && self.live_ops() == 0 {
                break;
            }
            futures_lite::future::yield_now().await;
            if n > 0 || self.unsubmitted.get() || self.stopping.get() {
                continue;
            }
            if self.wait(IDLE_WAIT) {
                self.bufs.shrink_window();
                self.run_idle_hook();
            }
        }
    }
}
