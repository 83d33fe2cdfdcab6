//! The access-log writer thread and the per-core buffers that feed it.
//!
//! A core formats lines into its own [`CoreLog`] buffer (one per sink). A full buffer, or one
//! whose oldest line is older than [`FLUSH_EVERY`], is handed whole to the writer thread over a bounded
//! channel (`try_send`: never blocks), and an empty buffer comes back on the core's return
//! channel. The writer appends batches to their sinks and recycles the buffers. When no empty
//! buffer is at hand, or the channel is full, or the sink fails (a full disk), the lines are
//! dropped and counted — traffic never waits for the log.
//!
//! Invariants: a core owns its buffers between hand-offs (no lock, no atomic per line); the
//! number of buffers per (core, sink) is fixed at [`BUFFERS_PER_SINK`], so memory is bounded
//! by cores × sinks × buffers × `buffer_bytes`; `SIGUSR1` (see [`request_reopen`]) makes the
//! writer reopen every file before its next write, for logrotate.

// Off the hot path: the sink registry is locked only when a view is built and when the writer
// thread opens a sink; cores never lock per line.
#![allow(clippy::disallowed_types)]

use std::cell::RefCell;
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, Sender, SyncSender, TrySendError};
use std::sync::{Arc, LazyLock, Mutex, OnceLock};
use std::time::{Duration, Instant};

use crate::config::LogSink;

/// Lines written to their sink.
pub static LINES_WRITTEN: AtomicU64 = AtomicU64::new(0);
/// Lines dropped: buffer full, writer behind, or the sink failing.
pub static LINES_DROPPED: AtomicU64 = AtomicU64::new(0);
/// Failed writes (each may drop a batch of lines).
pub static WRITE_ERRORS: AtomicU64 = AtomicU64::new(0);

static REOPEN: AtomicBool = AtomicBool::new(false);
/// Batches handed to the writer and not yet written.
static IN_FLIGHT: AtomicU64 = AtomicU64::new(0);

/// Waits (up to `limit`) until every batch handed over has been written: at exit, after the
/// cores flushed.
pub fn wait_written(limit: Duration) {
    let end = Instant::now() + limit;
    while IN_FLIGHT.load(Ordering::Acquire) > 0 && Instant::now() < end {
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Ask the writer to reopen its files (SIGUSR1).
pub fn request_reopen() {
    REOPEN.store(true, Ordering::Release);
}

/// A buffer is handed over when the next line does not fit, or once its oldest line is this
/// old.
pub const FLUSH_EVERY: Duration = Duration::from_millis(200);
/// Buffers per (core, sink): one being filled, the rest in flight or waiting.
pub const BUFFERS_PER_SINK: usize = 3;
/// Batches queued for the writer before cores start dropping.
const QUEUE_BATCHES: usize = 256;

/// Why the access logs cannot start.
#[derive(Debug, thiserror::Error)]
pub enum AccessLogError {
    #[error("access log {path}: {source}")]
    Open { path: String, source: io::Error },
    #[error("cannot start the access-log writer thread: {0}")]
    Thread(io::Error),
}

/// A full buffer on its way to a writer thread (the access-log writer, or the OTLP exporter),
/// and the channel its emptied buffer goes back on.
pub(crate) struct Batch {
    pub sink: usize,
    pub buf: Vec<u8>,
    pub lines: u64,
    pub back: Sender<Vec<u8>>,
}

impl Batch {
    /// Gives the emptied buffer back to its core and marks the batch done.
    pub(crate) fn recycle(mut self, in_flight: &AtomicU64) {
        self.buf.clear();
        let _ = self.back.send(self.buf);
        in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Every sink named by a config of this process, by index (registered when a view is built;
/// the writer opens each lazily and keeps it open).
static SINKS: LazyLock<Arc<Mutex<Vec<LogSink>>>> = LazyLock::new(Arc::default);

/// The process's writer thread, started by the first core that logs.
static WRITER: OnceLock<Option<AccessLogs>> = OnceLock::new();

/// The index of `sink`, registering it if new.
pub fn sink_id(sink: &LogSink) -> usize {
    let mut sinks = SINKS.lock().unwrap_or_else(|e| e.into_inner());
    match sinks.iter().position(|s| s == sink) {
        Some(i) => i,
        None => {
            sinks.push(sink.clone());
            sinks.len() - 1
        }
    }
}

/// The process's access-log writer: the channel into its thread.
pub struct AccessLogs {
    tx: SyncSender<Batch>,
}

impl AccessLogs {
    /// The writer thread, started on first use (`None`: the thread could not start; every
    /// line is then dropped and counted).
    pub fn global() -> Option<&'static AccessLogs> {
        WRITER
            .get_or_init(|| match AccessLogs::start() {
                Ok(w) => Some(w),
                Err(e) => {
                    tracing::error!(error = %e, "access logs disabled");
                    None
                }
            })
            .as_ref()
    }

    fn start() -> Result<AccessLogs, AccessLogError> {
        let (tx, rx) = mpsc::sync_channel(QUEUE_BATCHES);
        let shared = SINKS.clone();
        std::thread::Builder::new()
            .name("ringway-access-log".into())
            .spawn(move || run(rx, shared, Vec::new()))
            .map_err(AccessLogError::Thread)?;
        Ok(AccessLogs { tx })
    }

    /// A core's handle: its buffers of `buffer_bytes` for the sinks it will write.
    pub fn core(&self) -> CoreLog {
        CoreLog::with_sender(self.tx.clone(), &LINES_DROPPED, &IN_FLIGHT)
    }
}

/// Checks that `sink` can be opened for append (`--check` and start).
pub fn check_sink(sink: &LogSink) -> Result<(), AccessLogError> {
    open(sink).map(|_| ())
}

enum Out {
    Stderr,
    Stdout,
    File(File),
    /// Opening failed; retried on the next batch.
    Closed,
}

fn open(sink: &LogSink) -> Result<Out, AccessLogError> {
    match sink {
        LogSink::Stderr => Ok(Out::Stderr),
        LogSink::Stdout => Ok(Out::Stdout),
        LogSink::File(p) => open_file(p)
            .map(Out::File)
            .map_err(|source| AccessLogError::Open {
                path: p.display().to_string(),
                source,
            }),
    }
}

fn open_file(p: &Path) -> io::Result<File> {
    OpenOptions::new().create(true).append(true).open(p)
}

fn run(rx: Receiver<Batch>, sinks: Arc<Mutex<Vec<LogSink>>>, mut outs: Vec<Out>) {
    loop {
        let batch = match rx.recv_timeout(Duration::from_millis(250)) {
            Ok(b) => Some(b),
            Err(mpsc::RecvTimeoutError::Timeout) => None,
            Err(mpsc::RecvTimeoutError::Disconnected) => return,
        };
        if REOPEN.swap(false, Ordering::AcqRel) {
            let known = sinks.lock().map(|s| s.clone()).unwrap_or_default();
            outs = known
                .iter()
                .map(|s| open(s).unwrap_or(Out::Closed))
                .collect();
        }
        let Some(batch) = batch else { continue };
        while outs.len() <= batch.sink {
            let known = sinks.lock().map(|s| s.clone()).unwrap_or_default();
            let next = known
                .get(outs.len())
                .map_or(Out::Closed, |s| open(s).unwrap_or(Out::Closed));
            outs.push(next);
        }
        if let Some(out) = outs.get_mut(batch.sink) {
            if matches!(out, Out::Closed) {
                let known = sinks
                    .lock()
                    .map(|s| s.get(batch.sink).cloned())
                    .ok()
                    .flatten();
                if let Some(s) = known {
                    *out = open(&s).unwrap_or(Out::Closed);
                }
            }
            let res = match out {
                Out::Stderr => io::stderr().lock().write_all(&batch.buf),
                Out::Stdout => io::stdout().lock().write_all(&batch.buf),
                Out::File(f) => f.write_all(&batch.buf),
                Out::Closed => Err(io::Error::other("not open")),
            };
            match res {
                Ok(()) => LINES_WRITTEN.fetch_add(batch.lines, Ordering::Relaxed),
                Err(_) => {
                    WRITE_ERRORS.fetch_add(1, Ordering::Relaxed);
                    LINES_DROPPED.fetch_add(batch.lines, Ordering::Relaxed)
                }
            };
        }
        batch.recycle(&IN_FLIGHT);
    }
}

/// One sink's buffers on one core.
struct SinkBuf {
    sink: usize,
    cur: Vec<u8>,
    lines: u64,
    since: Option<Instant>,
    /// Buffers not yet made (made lazily up to [`BUFFERS_PER_SINK`]).
    unmade: usize,
    capacity: usize,
}

/// A core's access-log buffers (see the module doc). Not `Send`: it lives in its worker.
pub struct CoreLog {
    tx: SyncSender<Batch>,
    back_tx: Sender<Vec<u8>>,
    back_rx: Receiver<Vec<u8>>,
    sinks: RefCell<Vec<SinkBuf>>,
    /// Where dropped lines and batches in flight are counted.
    dropped: &'static AtomicU64,
    in_flight: &'static AtomicU64,
}

impl CoreLog {
    /// Buffers feeding the writer thread behind `tx`, counting in `dropped` / `in_flight`.
    pub(crate) fn with_sender(
        tx: SyncSender<Batch>,
        dropped: &'static AtomicU64,
        in_flight: &'static AtomicU64,
    ) -> CoreLog {
        let (back_tx, back_rx) = mpsc::channel();
        CoreLog {
            tx,
            back_tx,
            back_rx,
            sinks: RefCell::new(Vec::new()),
            dropped,
            in_flight,
        }
    }

    /// Appends one formatted line for `sink` (`capacity` = the listener's `buffer_bytes`).
    /// A line that does not fit, with no free buffer to switch to, is dropped and counted.
    pub fn push(&self, sink: usize, capacity: usize, line: &[u8]) {
        let mut sinks = self.sinks.borrow_mut();
        let i = match sinks.iter().position(|s| s.sink == sink) {
            Some(i) => i,
            None => {
                sinks.push(SinkBuf {
                    sink,
                    cur: Vec::with_capacity(capacity),
                    lines: 0,
                    since: None,
                    unmade: BUFFERS_PER_SINK - 1,
                    capacity,
                });
                sinks.len() - 1
            }
        };
        let s = &mut sinks[i];
        if s.cur.len() + line.len() > s.cur.capacity() && !self.hand_off(s) {
            self.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        if line.len() > s.cur.capacity() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        s.cur.extend_from_slice(line);
        s.lines += 1;
        if s.since.is_none() {
            s.since = Some(Instant::now());
        }
    }

    /// Hands over buffers older than [`FLUSH_EVERY`] (called by the core's periodic task).
    pub fn flush_stale(&self, now: Instant) {
        let mut sinks = self.sinks.borrow_mut();
        for s in sinks.iter_mut() {
            if s.since
                .is_some_and(|t| now.duration_since(t) >= FLUSH_EVERY)
            {
                self.hand_off(s);
            }
        }
    }

    /// Hands over every buffer with lines (drain and stop).
    pub fn flush_all(&self) {
        let mut sinks = self.sinks.borrow_mut();
        for s in sinks.iter_mut() {
            if !self.hand_off(s) {
                self.dropped.fetch_add(s.lines, Ordering::Relaxed);
            }
        }
    }

    /// Sends `s.cur` to the writer if a free buffer can replace it; false if none can.
    fn hand_off(&self, s: &mut SinkBuf) -> bool {
        if s.cur.is_empty() {
            return true;
        }
        let next = match self.back_rx.try_recv() {
            Ok(b) => b,
            Err(_) if s.unmade > 0 => {
                s.unmade -= 1;
                Vec::with_capacity(s.capacity)
            }
            Err(_) => return false,
        };
        let buf = std::mem::replace(&mut s.cur, next);
        let batch = Batch {
            sink: s.sink,
            buf,
            lines: std::mem::take(&mut s.lines),
            back: self.back_tx.clone(),
        };
        s.since = None;
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        match self.tx.try_send(batch) {
            Ok(()) => {}
            Err(TrySendError::Full(b) | TrySendError::Disconnected(b)) => {
                self.in_flight.fetch_sub(1, Ordering::AcqRel);
                self.dropped.fetch_add(b.lines, Ordering::Relaxed);
                let mut buf = b.buf;
                buf.clear();
                let _ = self.back_tx.send(buf);
            }
        }
        true
    }
}
