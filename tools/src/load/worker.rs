//! One worker thread: drives its share of the connections with one edge-triggered epoll
//! instance, a timer heap (open-loop due times, reconnect backoff) and a periodic timeout
//! scan, recording into its own [`Stats`].
//!
//! Connection life: Down → (connect) → Connecting → (writable, SO_ERROR 0) → Open. Open
//! sends while fewer than `pipeline` requests are in flight (closed loop: at once; open loop:
//! when due). A response with `close` (or EOF between responses) reconnects without error;
//! any failure counts one error per request lost and reconnects (after a connect error,
//! after a short backoff).
//!
//! Invariants: no allocation per request once warm (write buffers, in-flight queues and the
//! parser's head buffer keep their capacity); tokens carry a generation so events fetched
//! for a closed socket are ignored; nothing is sent at or after the deadline; the thread
//! returns by `deadline + timeout` at the latest.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::io::{self, Read, Write};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use socket2::{Domain, Protocol, Socket, Type};

use super::options::Plan;
use super::poll::{Event, Poller};
use super::response::ResponseParser;
use super::schedule::Schedule;
use super::stats::Stats;
use super::tls::LoadSock;

/// Bytes read per `read` call (shared by all connections of the thread).
const READ_BUF_BYTES: usize = 64 * 1024;
/// Wait before reconnecting after a failed connect.
const CONNECT_BACKOFF_NS: u64 = 10_000_000;
/// Most events fetched per epoll wait.
const EVENTS_PER_WAIT: usize = 1024;

/// The run's clock and phases, shared by every thread (nanoseconds since `origin`).
#[derive(Debug, Clone, Copy)]
pub struct Timeline {
    pub origin: Instant,
    /// Completions from here on are measured (end of warmup).
    pub measure_ns: u64,
    /// No request is sent from here on.
    pub deadline_ns: u64,
    /// Threads stop here even with requests outstanding (deadline + timeout).
    pub hard_stop_ns: u64,
}

impl Timeline {
    pub fn now(&self) -> u64 {
        u64::try_from(self.origin.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }
}

/// Live counters the driver reads for the progress line.
#[derive(Debug, Default)]
pub struct Progress {
    /// Responses completed, warmup included.
    pub responses: AtomicU64,
    /// Socket errors plus non-2xx, warmup included.
    pub errors: AtomicU64,
    /// Set by the driver to end the run early (e.g. a setup failure elsewhere).
    pub abort: AtomicBool,
}

/// Which counter a failure goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Failure {
    Connect,
    Read,
    Write,
    Timeout,
    Parse,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// No socket; reconnect at or after `reconnect_at`.
    Down,
    Connecting,
    Open,
}

/// A request written (or queued for writing) and not yet answered.
#[derive(Debug, Clone, Copy)]
struct Flight {
    /// Latency origin: the intended time (open loop) or the send time (closed loop).
    origin: u64,
    /// When it was handed to the socket; the timeout runs from here.
    sent: u64,
}

struct Conn {
    sock: Option<LoadSock>,
    generation: u32,
    phase: Phase,
    reconnect_at: u64,
    /// When the current connect started (connect timeout).
    connect_started: u64,
    /// Bytes the socket did not take yet: `wbuf[wpos..]`.
    wbuf: Vec<u8>,
    wpos: usize,
    inflight: VecDeque<Flight>,
    parser: ResponseParser,
    /// Open loop only.
    schedule: Option<Schedule>,
    /// Open loop: intended times of requests to send again (the server closed gracefully
    /// with them unanswered).
    retry: VecDeque<u64>,
    /// Armed timer, `u64::MAX` if none; heap entries with another time are stale.
    timer_at: u64,
}

/// One worker thread's state.
pub struct Worker<'a> {
    plan: &'a Plan,
    time: Timeline,
    progress: &'a Progress,
    poller: Poller,
    conns: Vec<Conn>,
    timers: BinaryHeap<Reverse<(u64, usize)>>,
    rbuf: Vec<u8>,
    /// `pipeline` copies of the request, back to back.
    requests: Vec<u8>,
    stats: Stats,
    /// Requests in flight over all connections.
    outstanding: usize,
    responses_all: u64,
    errors_all: u64,
}

fn token(idx: usize, generation: u32) -> u64 {
    (u64::from(generation) << 32) | idx as u64
}

impl<'a> Worker<'a> {
    /// A worker for global connections `first..first + count`.
    pub fn new(
        plan: &'a Plan,
        time: Timeline,
        progress: &'a Progress,
        first: usize,
        count: usize,
    ) -> io::Result<Worker<'a>> {
        let conns = (first..first + count)
            .map(|g| Conn {
                sock: None,
                generation: 0,
                phase: Phase::Down,
                reconnect_at: 0,
                connect_started: 0,
                wbuf: Vec::new(),
                wpos: 0,
                inflight: VecDeque::with_capacity(plan.pipeline),
                parser: ResponseParser::new(),
                schedule: plan.rate.map(|r| Schedule::new(0, r, g, plan.connections)),
                retry: VecDeque::new(),
                timer_at: u64::MAX,
            })
            .collect();
        Ok(Worker {
            plan,
            time,
            progress,
            poller: Poller::new(EVENTS_PER_WAIT)?,
            conns,
            timers: BinaryHeap::new(),
            rbuf: vec![0; READ_BUF_BYTES],
            requests: plan.request.repeat(plan.pipeline),
            stats: Stats::new(),
            outstanding: 0,
            responses_all: 0,
            errors_all: 0,
        })
    }

    /// Runs until the deadline (plus draining, at most the timeout) and returns the figures
    /// and the time it ended.
    pub fn run(mut self) -> io::Result<(Stats, u64)> {
        let now = self.time.now();
        for i in 0..self.conns.len() {
            self.pump(i, now);
        }
        let scan_every = (self.plan.timeout.as_nanos() as u64 / 20).clamp(1_000_000, 100_000_000);
        let mut next_scan = now + scan_every;
        let spin_ns = u64::try_from(self.plan.spin.as_nanos()).unwrap_or(u64::MAX);
        let mut events = Vec::with_capacity(EVENTS_PER_WAIT);
        loop {
            let now = self.time.now();
            let past_deadline = now >= self.time.deadline_ns;
            if (past_deadline && self.outstanding == 0)
                || now >= self.time.hard_stop_ns
                || self.progress.abort.load(Relaxed)
            {
                break;
            }
            let mut wake = next_scan.min(self.time.hard_stop_ns);
            if !past_deadline {
                wake = wake.min(self.time.deadline_ns);
            }
            if let Some(Reverse((at, _))) = self.timers.peek() {
                wake = wake.min(*at);
            }
            // With --spin, sleep only until `spin` before the wake time, then poll without
            // blocking: the send leaves on time instead of after a timer wake-up.
            let sleep = wake.saturating_sub(now).saturating_sub(spin_ns);
            self.poller.wait(Duration::from_nanos(sleep), &mut events)?;
            for ev in &events {
                self.on_event(*ev);
            }
            let now = self.time.now();
            self.fire_timers(now);
            if now >= next_scan {
                self.scan_timeouts(now);
                next_scan = now + scan_every;
            }
            self.progress.responses.store(self.responses_all, Relaxed);
            self.progress.errors.store(self.errors_all, Relaxed);
        }
        self.finish();
        Ok((self.stats, self.time.now()))
    }

    /// End of run: what is still in flight timed out; open-loop requests owed were unsent.
    fn finish(&mut self) {
        for c in &self.conns {
            self.stats.errors.timeout += c.inflight.len() as u64;
            if let Some(s) = &c.schedule {
                self.stats.unsent += c.retry.len() as u64 + s.untaken_before(self.time.deadline_ns);
            }
        }
        self.progress.responses.store(self.responses_all, Relaxed);
        self.progress.errors.store(self.errors_all, Relaxed);
    }

    fn on_event(&mut self, ev: Event) {
        let idx = (ev.token & u64::from(u32::MAX)) as usize;
        let generation = (ev.token >> 32) as u32;
        let Some(c) = self.conns.get(idx) else { return };
        if c.generation != generation || c.sock.is_none() {
            return;
        }
        let now = self.time.now();
        if c.phase == Phase::Connecting {
            if !(ev.writable || ev.failed) {
                return;
            }
            let err = c.sock.as_ref().map(|s| s.take_error());
            match err {
                Some(Ok(None)) => {
                    if let Some(c) = self.conns.get_mut(idx) {
                        c.phase = Phase::Open;
                    }
                    self.pump(idx, now);
                    if self.is_tls(idx) {
                        // The handshake may already have bytes waiting: read until EAGAIN.
                        self.on_readable(idx, now);
                    }
                }
                _ => self.fail(idx, Failure::Connect, now),
            }
            return;
        }
        // TLS: any edge may follow a write that rustls answered (handshake, tickets); reading
        // until EAGAIN on every edge costs one syscall and loses none.
        if ev.readable || ev.failed || self.is_tls(idx) {
            self.on_readable(idx, now);
        }
        if ev.writable {
            if let Some(s) = self.conns.get_mut(idx).and_then(|c| c.sock.as_mut()) {
                if s.flush_tls().is_err() {
                    self.fail(idx, Failure::Write, now);
                    return;
                }
            }
        }
        if ev.writable && self.conns.get(idx).is_some_and(|c| c.wpos < c.wbuf.len()) {
            self.flush(idx, now);
        }
        self.pump(idx, now);
    }

    fn is_tls(&self, idx: usize) -> bool {
        self.conns
            .get(idx)
            .and_then(|c| c.sock.as_ref())
            .is_some_and(LoadSock::is_tls)
    }

    /// Reads until the socket is drained, completing responses as they parse.
    fn on_readable(&mut self, idx: usize, now: u64) {
        loop {
            let Some(c) = self.conns.get_mut(idx) else {
                return;
            };
            if c.phase != Phase::Open {
                return;
            }
            let Some(sock) = c.sock.as_mut() else { return };
            match sock.read(&mut self.rbuf) {
                Ok(0) => {
                    self.on_eof(idx, now);
                    return;
                }
                Ok(n) => {
                    if now >= self.time.measure_ns {
                        self.stats.bytes_read += n as u64;
                    }
                    // A plaintext short read drained the socket; a TLS one may not have.
                    let tls = self.conns[idx].sock.as_ref().is_some_and(LoadSock::is_tls);
                    if !self.on_bytes(idx, n, now) || (n < self.rbuf.len() && !tls) {
                        return;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => {
                    self.fail(idx, Failure::Read, now);
                    return;
                }
            }
        }
    }

    /// Parses `rbuf[..n]`. Returns false if the connection was closed meanwhile.
    fn on_bytes(&mut self, idx: usize, n: usize, now: u64) -> bool {
        let mut off = 0;
        while off < n {
            let Some(c) = self.conns.get_mut(idx) else {
                return false;
            };
            let Some(data) = self.rbuf.get(off..n) else {
                return false;
            };
            let (used, done) = match c.parser.advance(data, self.plan.head_request) {
                Ok(r) => r,
                Err(_) => {
                    self.fail(idx, Failure::Parse, now);
                    return false;
                }
            };
            off += used;
            let Some(done) = done else { continue };
            let Some(flight) = c.inflight.pop_front() else {
                // A response nobody asked for.
                self.fail(idx, Failure::Parse, now);
                return false;
            };
            self.outstanding -= 1;
            self.complete(done.status, flight, now);
            if done.close {
                self.close_gracefully(idx, now);
                return false;
            }
        }
        true
    }

    fn complete(&mut self, status: u16, flight: Flight, now: u64) {
        self.responses_all += 1;
        if !(200..300).contains(&status) {
            self.errors_all += 1;
        }
        if now >= self.time.measure_ns {
            let us = now.saturating_sub(flight.origin) / 1000;
            self.stats.record(status, us);
        }
    }

    fn on_eof(&mut self, idx: usize, now: u64) {
        let Some(c) = self.conns.get_mut(idx) else {
            return;
        };
        match c.parser.eof() {
            Ok(Some(done)) => {
                if let Some(flight) = c.inflight.pop_front() {
                    self.outstanding -= 1;
                    self.complete(done.status, flight, now);
                    self.close_gracefully(idx, now);
                } else {
                    self.fail(idx, Failure::Parse, now);
                }
            }
            // Closed between responses with nothing asked: an idle close.
            Ok(None) if c.inflight.is_empty() => self.close_gracefully(idx, now),
            Ok(None) | Err(_) => self.fail(idx, Failure::Read, now),
        }
    }

    /// Sends whatever the mode allows now; connects a Down connection when its backoff ended.
    fn pump(&mut self, idx: usize, now: u64) {
        let deadline = self.time.deadline_ns;
        let measuring = now >= self.time.measure_ns;
        let pipeline = self.plan.pipeline;
        let Some(c) = self.conns.get_mut(idx) else {
            return;
        };
        match c.phase {
            Phase::Down => {
                if now < deadline {
                    if now >= c.reconnect_at {
                        self.connect(idx, now);
                    } else {
                        let at = c.reconnect_at;
                        self.arm(idx, at);
                    }
                }
                return;
            }
            Phase::Connecting => return,
            Phase::Open => {}
        }
        let mut n = 0;
        match c.schedule.as_mut() {
            None => {
                if now < deadline {
                    n = pipeline.saturating_sub(c.inflight.len());
                    for _ in 0..n {
                        c.inflight.push_back(Flight {
                            origin: now,
                            sent: now,
                        });
                    }
                }
            }
            Some(s) => {
                while c.inflight.len() < pipeline && now < deadline {
                    let Some(origin) = c.retry.pop_front().or_else(|| s.take(now, deadline)) else {
                        break;
                    };
                    c.inflight.push_back(Flight { origin, sent: now });
                    if measuring {
                        self.stats
                            .send_lag
                            .saturating_record(now.saturating_sub(origin) / 1000);
                    }
                    n += 1;
                }
                // Capacity left means everything due was taken: the next due time is in
                // the future (arming a past time would spin the timer loop).
                if c.inflight.len() < pipeline && now < deadline {
                    let due = s.next_due();
                    if due > now && due < deadline {
                        self.arm(idx, due);
                    }
                }
            }
        }
        if n > 0 {
            self.outstanding += n;
            self.send(idx, n, now);
        }
    }

    /// Writes `n` more requests: straight from the prebuilt copies when nothing is queued.
    fn send(&mut self, idx: usize, n: usize, now: u64) {
        let len = self.plan.request.len() * n;
        let Some(c) = self.conns.get_mut(idx) else {
            return;
        };
        let Some(bytes) = self.requests.get(..len) else {
            return;
        };
        if now >= self.time.measure_ns {
            self.stats.bytes_written += len as u64;
        }
        if c.wpos < c.wbuf.len() {
            c.wbuf.extend_from_slice(bytes);
            return;
        }
        let Some(sock) = c.sock.as_mut() else { return };
        match write_some(sock, bytes) {
            Ok(w) if w == bytes.len() => {}
            Ok(w) => {
                c.wbuf.clear();
                c.wpos = 0;
                c.wbuf.extend_from_slice(bytes.get(w..).unwrap_or_default());
            }
            Err(_) => self.fail(idx, Failure::Write, now),
        }
    }

    /// Writes queued bytes after a writable edge.
    fn flush(&mut self, idx: usize, now: u64) {
        let Some(c) = self.conns.get_mut(idx) else {
            return;
        };
        let Some(sock) = c.sock.as_mut() else { return };
        let pending = c.wbuf.get(c.wpos..).unwrap_or_default();
        match write_some(sock, pending) {
            Ok(w) => {
                c.wpos += w;
                if c.wpos >= c.wbuf.len() {
                    c.wbuf.clear();
                    c.wpos = 0;
                }
            }
            Err(_) => self.fail(idx, Failure::Write, now),
        }
    }

    fn connect(&mut self, idx: usize, now: u64) {
        let addr = self.plan.addr;
        let Some(c) = self.conns.get_mut(idx) else {
            return;
        };
        c.generation = c.generation.wrapping_add(1);
        c.connect_started = now;
        let sock = Socket::new(
            Domain::for_address(addr),
            Type::STREAM.nonblocking().cloexec(),
            Some(Protocol::TCP),
        );
        let sock = match sock {
            Ok(s) => s,
            Err(_) => return self.fail(idx, Failure::Connect, now),
        };
        let _ = sock.set_nodelay(true);
        match sock.connect(&addr.into()) {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => {}
            Err(_) => return self.fail(idx, Failure::Connect, now),
        }
        if self
            .poller
            .add(sock.as_raw_fd(), token(idx, c.generation))
            .is_err()
        {
            return self.fail(idx, Failure::Connect, now);
        }
        match LoadSock::new(sock.into(), self.plan.tls.as_ref()) {
            Ok(s) => c.sock = Some(s),
            Err(_) => return self.fail(idx, Failure::Connect, now),
        }
        // The writable edge (or an error) arrives once the handshake ends.
        c.phase = Phase::Connecting;
    }

    /// The server closed after a complete response: reconnect at once; unanswered pipelined
    /// requests are sent again (open loop: with their original intended times).
    fn close_gracefully(&mut self, idx: usize, now: u64) {
        let measuring = now >= self.time.measure_ns;
        let Some(c) = self.conns.get_mut(idx) else {
            return;
        };
        self.outstanding -= c.inflight.len();
        if c.schedule.is_some() {
            for f in c.inflight.iter().rev() {
                c.retry.push_front(f.origin);
            }
        }
        c.inflight.clear();
        Self::drop_socket(c);
        c.reconnect_at = now;
        if measuring {
            self.stats.reconnects += 1;
        }
        self.pump(idx, now);
    }

    /// A failure: one error per request lost (at least one), then reconnect.
    fn fail(&mut self, idx: usize, kind: Failure, now: u64) {
        let Some(c) = self.conns.get_mut(idx) else {
            return;
        };
        let lost = c.inflight.len();
        self.outstanding -= lost;
        c.inflight.clear();
        Self::drop_socket(c);
        c.reconnect_at = if kind == Failure::Connect {
            now + CONNECT_BACKOFF_NS
        } else {
            now
        };
        let n = lost.max(1) as u64;
        self.errors_all += n;
        if now >= self.time.measure_ns {
            let e = &mut self.stats.errors;
            match kind {
                Failure::Connect => e.connect += n,
                Failure::Read => e.read += n,
                Failure::Write => e.write += n,
                Failure::Timeout => e.timeout += n,
                Failure::Parse => e.parse += n,
            }
        }
        self.pump(idx, now);
    }

    fn drop_socket(c: &mut Conn) {
        c.sock = None;
        c.phase = Phase::Down;
        c.wbuf.clear();
        c.wpos = 0;
        c.parser.reset();
    }

    fn arm(&mut self, idx: usize, at: u64) {
        let Some(c) = self.conns.get_mut(idx) else {
            return;
        };
        if at < c.timer_at {
            c.timer_at = at;
            self.timers.push(Reverse((at, idx)));
        }
    }

    fn fire_timers(&mut self, now: u64) {
        // Bounded by the entries present now, so a timer re-armed in the past cannot spin.
        for _ in 0..self.timers.len() {
            let Some(&Reverse((at, idx))) = self.timers.peek() else {
                break;
            };
            if at > now {
                break;
            }
            self.timers.pop();
            let Some(c) = self.conns.get_mut(idx) else {
                continue;
            };
            if c.timer_at != at {
                continue; // stale
            }
            c.timer_at = u64::MAX;
            self.pump(idx, now);
        }
    }

    fn scan_timeouts(&mut self, now: u64) {
        let timeout = self.plan.timeout.as_nanos() as u64;
        for idx in 0..self.conns.len() {
            let Some(c) = self.conns.get(idx) else {
                continue;
            };
            let expired = match c.phase {
                Phase::Connecting => {
                    (now.saturating_sub(c.connect_started) >= timeout).then_some(Failure::Connect)
                }
                Phase::Open => c
                    .inflight
                    .front()
                    .filter(|f| now.saturating_sub(f.sent) >= timeout)
                    .map(|_| Failure::Timeout),
                Phase::Down => None,
            };
            if let Some(kind) = expired {
                self.fail(idx, kind, now);
            }
        }
    }
}

/// Writes as much of `buf` as the socket takes; `Ok(0..)` bytes, WouldBlock is `Ok(0)`.
fn write_some(sock: &mut LoadSock, buf: &[u8]) -> io::Result<usize> {
    let mut done = 0;
    while done < buf.len() {
        match sock.write(buf.get(done..).unwrap_or_default()) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => done += n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(done)
}
