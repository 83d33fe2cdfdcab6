//! `ringway-load`: an HTTP/1.1 load generator in the manner of wrk2, on plain std threads.
//!
//! - [`options`]: CLI model and the validated [`Plan`] (loopback policy, caps).
//! - [`worker`]: one thread per core, each driving many non-blocking connections with epoll.
//! - [`schedule`]: the open-loop timeline (constant rate, coordinated-omission correction).
//! - [`response`]: incremental response parser (Content-Length, chunked, close-delimited).
//! - [`stats`], [`report`]: histograms and counters, merged and printed (text or JSON).
//! - [`poll`]: the epoll wrapper. [`tls`]: HTTPS (rustls) over the same non-blocking sockets.
//!
//! Invariants: a run ends by itself at `warmup + duration + timeout` at the latest; only
//! completions after the warmup are measured; the driver thread only prints progress.

pub mod options;
pub mod poll;
pub mod report;
pub mod response;
pub mod schedule;
pub mod stats;
pub mod tls;
pub mod worker;

use std::io::{self, IsTerminal, Write};
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

pub use options::{Options, Plan, PlanError};
pub use report::Report;
pub use stats::Stats;
use worker::{Progress, Timeline, Worker};

/// Lowers the worker thread's timer slack to 1 ns so open-loop sends leave on time
/// (the default 50 µs would show up in every latency). Best effort.
fn tighten_timer_slack() {
    // SAFETY: PR_SET_TIMERSLACK takes one integer argument and only affects this thread.
    let _ = unsafe { libc::prctl(libc::PR_SET_TIMERSLACK, 1 as libc::c_ulong, 0, 0, 0) };
}

/// Runs the plan to its end and returns the merged figures. `progress_line`: print a
/// once-a-second `req/s` line on stdout while running (the caller checks for a terminal).
pub fn run(plan: &Plan, progress_line: bool) -> io::Result<Report> {
    crate::upstream::raise_fd_limit();
    let warmup = nanos(plan.warmup);
    let deadline = warmup.saturating_add(nanos(plan.duration));
    let time = Timeline {
        origin: Instant::now(),
        measure_ns: warmup,
        deadline_ns: deadline,
        hard_stop_ns: deadline.saturating_add(nanos(plan.timeout)),
    };
    let progress: Vec<Progress> = (0..plan.threads).map(|_| Progress::default()).collect();
    let results: Vec<io::Result<(Stats, u64)>> = std::thread::scope(|scope| {
        let mut handles = Vec::with_capacity(plan.threads);
        let mut first = 0;
        for (t, p) in progress.iter().enumerate() {
            let count =
                plan.connections / plan.threads + usize::from(t < plan.connections % plan.threads);
            let start = first;
            first += count;
            let spawned = std::thread::Builder::new()
                .name(format!("load-{t}"))
                .spawn_scoped(scope, move || {
                    tighten_timer_slack();
                    let w = Worker::new(plan, time, p, start, count);
                    let r = w.and_then(Worker::run);
                    if r.is_err() {
                        p.abort.store(true, Relaxed);
                    }
                    r
                });
            match spawned {
                Ok(h) => handles.push(h),
                Err(e) => {
                    for p in &progress {
                        p.abort.store(true, Relaxed);
                    }
                    handles.clear();
                    return vec![Err(e)];
                }
            }
        }
        if progress_line {
            print_progress(&time, &progress, &handles);
        }
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(io::Error::other("worker panicked")))
            })
            .collect()
    });
    let mut total = Stats::new();
    let mut ended = time.deadline_ns;
    for r in results {
        let (stats, end) = r?;
        total.merge(&stats);
        ended = ended.max(end);
    }
    let measured_ns = ended.saturating_sub(time.measure_ns).max(1);
    Ok(Report {
        stats: total,
        elapsed: Duration::from_nanos(measured_ns),
    })
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// Once a second until every worker ended: `\r[  3s]  12345 req/s  errors 0`.
fn print_progress<T>(
    time: &Timeline,
    progress: &[Progress],
    handles: &[std::thread::ScopedJoinHandle<'_, T>],
) {
    let mut out = io::stdout();
    let mut last = 0u64;
    let mut tick = 0u64;
    while !handles.iter().all(|h| h.is_finished()) {
        // Wake often to notice the end early; print once a second.
        std::thread::sleep(Duration::from_millis(50));
        let secs = time.now() / 1_000_000_000;
        if secs <= tick {
            continue;
        }
        tick = secs;
        let done: u64 = progress.iter().map(|p| p.responses.load(Relaxed)).sum();
        let errors: u64 = progress.iter().map(|p| p.errors.load(Relaxed)).sum();
        let phase = if time.now() < time.measure_ns {
            "warmup"
        } else {
            "run"
        };
        let _ = write!(
            out,
            "\r[{phase} {secs:>4}s] {:>9} req/s  errors {errors:<10}",
            done - last
        );
        let _ = out.flush();
        last = done;
    }
    let _ = write!(out, "\r{:60}\r", "");
    let _ = out.flush();
}

/// The binary's whole behaviour; returns the process exit code (0 pass, 1 failed the
/// error threshold or got no response, 2 bad options or setup failure).
pub fn main_with(opts: &Options) -> i32 {
    let plan = match opts.plan() {
        Ok(p) => p,
        Err(e) => {
            eprintln!("ringway-load: {e}");
            return 2;
        }
    };
    let tty = io::stdout().is_terminal() && !plan.json;
    if !plan.json {
        println!("{}", report::banner(&plan));
    }
    let report = match run(&plan, tty) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("ringway-load: {e}");
            return 2;
        }
    };
    if let Some(path) = &plan.latency_out {
        if let Err(e) = std::fs::write(path, report::percentile_spectrum(&report.stats.latency)) {
            eprintln!("ringway-load: cannot write {}: {e}", path.display());
            return 2;
        }
    }
    if plan.json {
        println!("{}", report.json(&plan));
    } else {
        print!("{}", report.text(&plan));
    }
    if report.stats.passes(plan.max_error_rate) {
        0
    } else {
        if !plan.json {
            eprintln!(
                "ringway-load: error fraction {:.4} over --max-error-rate {} (or no responses)",
                report.stats.error_fraction(),
                plan.max_error_rate
            );
        }
        1
    }
}
