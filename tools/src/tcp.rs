//! `ringway-tcp`: a TCP test peer and load driver for L4 proxying (tests and `compare.py`).
//!
//! ```text
//! ringway-tcp serve --listen ADDR --mode echo|source:BYTES|sink|hold
//!     echo      every byte back; at the client's half-close, finish and half-close too
//!     source:N  N pattern bytes (`b'a' + i % 26`), then close
//!     sink      read to end of stream, then answer "<bytes> <sha256 hex>\n" and close
//!     hold      read and discard, never answer
//!     stall     never read, never answer (the socket buffers fill up); close after 60 s
//! ringway-tcp load --target ADDR --mode echo:SIZE|download:BYTES|upload:BYTES
//!                  --connections C (--duration D | --count N) [--json]
//!     echo:SIZE     round trips of SIZE bytes per connection, one in flight each
//!     download:N    per connection: connect, read N bytes (checks the pattern), close
//!     upload:N      per connection: connect, send N bytes, half-close, read the sink's answer
//! ```
//!
//! Plain `std` threads: one per connection on the server, one per client connection. Every
//! loop of `load` is bounded by `--count` or `--duration` (and each socket by a 10 s timeout),
//! so it always stops by itself. Prints a summary line (or one JSON object with `--json`):
//! operations, bytes, errors, seconds, and round-trip percentiles for `echo`.

// A test tool, not per-core proxy state: the Mutexes are touched once per connection (first
// error, merged latency histogram), never per operation.
#![allow(clippy::disallowed_types)]

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand};
use sha2::{Digest, Sha256};

/// The body pattern of `source` and `download` (the same as `ringway-upstream`'s).
pub fn pattern_byte(i: u64) -> u8 {
    b'a' + (i % 26) as u8
}

const IO_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, Parser)]
#[command(
    name = "ringway-tcp",
    version,
    about = "TCP test peer and load driver for L4 proxying"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve TCP connections; prints `listening on IP:PORT`.
    Serve {
        #[arg(long, default_value = "127.0.0.1:0")]
        listen: SocketAddr,
        /// echo | source:BYTES | sink | hold | stall
        #[arg(long, default_value = "echo")]
        mode: ServeMode,
    },
    /// Drive connections to a TCP target.
    Load {
        #[arg(long)]
        target: SocketAddr,
        /// echo:SIZE | download:BYTES | upload:BYTES
        #[arg(long)]
        mode: LoadMode,
        #[arg(long, default_value_t = 10)]
        connections: usize,
        /// Seconds to run (default 5 unless --count is given).
        #[arg(long)]
        duration: Option<f64>,
        /// Operations per connection (round trips, or transfers).
        #[arg(long)]
        count: Option<u64>,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServeMode {
    Echo,
    Source(u64),
    Sink,
    Hold,
    Stall,
}

impl std::str::FromStr for ServeMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.split_once(':') {
            None if s == "echo" => Ok(ServeMode::Echo),
            None if s == "sink" => Ok(ServeMode::Sink),
            None if s == "hold" => Ok(ServeMode::Hold),
            None if s == "stall" => Ok(ServeMode::Stall),
            Some(("source", n)) => n
                .parse()
                .map(ServeMode::Source)
                .map_err(|e| format!("source:{n}: {e}")),
            _ => Err(format!("{s:?}: expected echo, source:BYTES, sink or hold")),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoadMode {
    Echo(usize),
    Download(u64),
    Upload(u64),
}

impl std::str::FromStr for LoadMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let (k, n) = s
            .split_once(':')
            .ok_or_else(|| format!("{s:?}: expected echo:SIZE, download:BYTES or upload:BYTES"))?;
        let n: u64 = n.parse().map_err(|e| format!("{s}: {e}"))?;
        match k {
            "echo" if n > 0 && n <= 1 << 20 => Ok(LoadMode::Echo(n as usize)),
            "echo" => Err("echo size must be 1..=1048576".into()),
            "download" => Ok(LoadMode::Download(n)),
            "upload" => Ok(LoadMode::Upload(n)),
            _ => Err(format!(
                "{s:?}: expected echo:SIZE, download:BYTES or upload:BYTES"
            )),
        }
    }
}

/// Serves on `listener` forever (a thread per connection).
pub fn serve(listener: TcpListener, mode: ServeMode) -> io::Result<()> {
    for conn in listener.incoming() {
        let Ok(stream) = conn else { continue };
        std::thread::spawn(move || {
            let _ = serve_one(stream, mode);
        });
    }
    Ok(())
}

fn serve_one(mut s: TcpStream, mode: ServeMode) -> io::Result<()> {
    let _ = s.set_nodelay(true);
    let mut buf = vec![0u8; 64 * 1024];
    match mode {
        ServeMode::Echo => loop {
            let n = s.read(&mut buf)?;
            if n == 0 {
                s.shutdown(Shutdown::Write)?;
                return Ok(());
            }
            s.write_all(&buf[..n])?;
        },
        ServeMode::Source(total) => {
            let mut sent = 0u64;
            while sent < total {
                let n = (total - sent).min(buf.len() as u64) as usize;
                for (i, b) in buf[..n].iter_mut().enumerate() {
                    *b = pattern_byte(sent + i as u64);
                }
                s.write_all(&buf[..n])?;
                sent += n as u64;
            }
            s.shutdown(Shutdown::Write)?;
            // Wait for the client's close so the last bytes are not reset away.
            while s.read(&mut buf)? > 0 {}
            Ok(())
        }
        ServeMode::Sink => {
            let mut h = Sha256::new();
            let mut total = 0u64;
            loop {
                let n = s.read(&mut buf)?;
                if n == 0 {
                    break;
                }
                h.update(&buf[..n]);
                total += n as u64;
            }
            let digest = h.finalize();
            let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
            s.write_all(format!("{total} {hex}\n").as_bytes())?;
            s.shutdown(Shutdown::Write)
        }
        ServeMode::Hold => {
            while s.read(&mut buf)? > 0 {}
            Ok(())
        }
        ServeMode::Stall => {
            std::thread::sleep(Duration::from_secs(60));
            Ok(())
        }
    }
}

/// What a load run measured.
#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct LoadReport {
    pub operations: u64,
    pub bytes: u64,
    pub errors: u64,
    pub seconds: f64,
    /// Round-trip latency percentiles in µs (echo only).
    pub p50_us: u64,
    pub p99_us: u64,
    pub p999_us: u64,
    /// The first error seen, if any.
    pub first_error: Option<String>,
}

struct Totals {
    operations: AtomicU64,
    bytes: AtomicU64,
    errors: AtomicU64,
    first_error: Mutex<Option<String>>,
    latencies: Mutex<hdrhistogram::Histogram<u64>>,
}

impl Totals {
    fn error(&self, e: impl std::fmt::Display) {
        self.errors.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut f) = self.first_error.lock() {
            f.get_or_insert_with(|| e.to_string());
        }
    }
}

fn connect(target: SocketAddr) -> io::Result<TcpStream> {
    let s = TcpStream::connect_timeout(&target, IO_TIMEOUT)?;
    s.set_read_timeout(Some(IO_TIMEOUT))?;
    s.set_write_timeout(Some(IO_TIMEOUT))?;
    s.set_nodelay(true)?;
    Ok(s)
}

/// Runs the load: `connections` threads, each until `count` operations or `duration`.
pub fn load(
    target: SocketAddr,
    mode: LoadMode,
    connections: usize,
    duration: Option<Duration>,
    count: Option<u64>,
) -> LoadReport {
    let duration = match (duration, count) {
        (None, None) => Some(Duration::from_secs(5)),
        (d, _) => d,
    };
    let totals = Arc::new(Totals {
        operations: AtomicU64::new(0),
        bytes: AtomicU64::new(0),
        errors: AtomicU64::new(0),
        first_error: Mutex::new(None),
        latencies: Mutex::new(
            hdrhistogram::Histogram::new_with_bounds(1, 60_000_000, 3).expect("histogram bounds"),
        ),
    });
    let stop = Arc::new(AtomicBool::new(false));
    let start = Instant::now();
    let deadline = duration.map(|d| start + d);
    let threads: Vec<_> = (0..connections.max(1))
        .map(|_| {
            let (totals, stop) = (totals.clone(), stop.clone());
            std::thread::spawn(move || {
                let limit = count.unwrap_or(u64::MAX);
                let done = |ops: u64| {
                    ops >= limit
                        || stop.load(Ordering::Relaxed)
                        || deadline.is_some_and(|d| Instant::now() >= d)
                };
                match mode {
                    LoadMode::Echo(size) => echo_loop(target, size, &totals, &done),
                    LoadMode::Download(n) => transfer_loop(&totals, &done, || download(target, n)),
                    LoadMode::Upload(n) => transfer_loop(&totals, &done, || upload(target, n)),
                }
            })
        })
        .collect();
    for t in threads {
        let _ = t.join();
    }
    stop.store(true, Ordering::Relaxed);
    let seconds = start.elapsed().as_secs_f64();
    let lat = totals.latencies.lock().map(|h| h.clone()).ok();
    LoadReport {
        operations: totals.operations.load(Ordering::Relaxed),
        bytes: totals.bytes.load(Ordering::Relaxed),
        errors: totals.errors.load(Ordering::Relaxed),
        seconds,
        p50_us: lat.as_ref().map_or(0, |h| h.value_at_quantile(0.5)),
        p99_us: lat.as_ref().map_or(0, |h| h.value_at_quantile(0.99)),
        p999_us: lat.as_ref().map_or(0, |h| h.value_at_quantile(0.999)),
        first_error: totals.first_error.lock().ok().and_then(|f| f.clone()),
    }
}

fn echo_loop(target: SocketAddr, size: usize, totals: &Totals, done: &dyn Fn(u64) -> bool) {
    let mut s = match connect(target) {
        Ok(s) => s,
        Err(e) => return totals.error(e),
    };
    let msg: Vec<u8> = (0..size as u64).map(pattern_byte).collect();
    let mut back = vec![0u8; size];
    let mut ops = 0u64;
    let mut local = hdrhistogram::Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)
        .expect("histogram bounds");
    while !done(ops) {
        let t0 = Instant::now();
        if let Err(e) = s.write_all(&msg).and_then(|_| s.read_exact(&mut back)) {
            totals.error(e);
            return;
        }
        if back != msg {
            totals.error("echo returned different bytes");
            return;
        }
        let _ = local.record(t0.elapsed().as_micros() as u64);
        ops += 1;
        totals.operations.fetch_add(1, Ordering::Relaxed);
        totals.bytes.fetch_add(size as u64, Ordering::Relaxed);
    }
    let _ = s.shutdown(Shutdown::Write);
    if let Ok(mut h) = totals.latencies.lock() {
        let _ = h.add(&local);
    }
}

fn transfer_loop(totals: &Totals, done: &dyn Fn(u64) -> bool, op: impl Fn() -> io::Result<u64>) {
    let mut ops = 0u64;
    while !done(ops) {
        match op() {
            Ok(n) => {
                ops += 1;
                totals.operations.fetch_add(1, Ordering::Relaxed);
                totals.bytes.fetch_add(n, Ordering::Relaxed);
            }
            Err(e) => {
                totals.error(e);
                return;
            }
        }
    }
}

/// Reads `n` pattern bytes and the close.
fn download(target: SocketAddr, n: u64) -> io::Result<u64> {
    let mut s = connect(target)?;
    let mut buf = vec![0u8; 256 * 1024];
    let mut got = 0u64;
    loop {
        let k = s.read(&mut buf)?;
        if k == 0 {
            break;
        }
        for (i, &b) in buf[..k].iter().enumerate() {
            if b != pattern_byte(got + i as u64) {
                return Err(io::Error::other(format!(
                    "wrong byte at {}",
                    got + i as u64
                )));
            }
        }
        got += k as u64;
    }
    if got != n {
        return Err(io::Error::other(format!("got {got} of {n} bytes")));
    }
    Ok(got)
}

/// Sends `n` pattern bytes, half-closes, and checks the sink's count.
fn upload(target: SocketAddr, n: u64) -> io::Result<u64> {
    let mut s = connect(target)?;
    let mut buf = vec![0u8; 256 * 1024];
    let mut sent = 0u64;
    while sent < n {
        let k = (n - sent).min(buf.len() as u64) as usize;
        for (i, b) in buf[..k].iter_mut().enumerate() {
            *b = pattern_byte(sent + i as u64);
        }
        s.write_all(&buf[..k])?;
        sent += k as u64;
    }
    s.shutdown(Shutdown::Write)?;
    let mut answer = String::new();
    s.read_to_string(&mut answer)?;
    let count: u64 = answer
        .split_whitespace()
        .next()
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| io::Error::other(format!("bad sink answer {answer:?}")))?;
    if count != n {
        return Err(io::Error::other(format!("sink got {count} of {n} bytes")));
    }
    Ok(n)
}

/// The CLI.
pub fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve { listen, mode } => {
            crate::upstream::raise_fd_limit();
            let l = TcpListener::bind(listen)?;
            println!("listening on {}", l.local_addr()?);
            io::stdout().flush()?;
            serve(l, mode)?;
        }
        Command::Load {
            target,
            mode,
            connections,
            duration,
            count,
            json,
        } => {
            let r = load(
                target,
                mode,
                connections,
                duration.map(Duration::from_secs_f64),
                count,
            );
            if json {
                println!("{}", serde_json::to_string(&r)?);
            } else {
                println!(
                    "{} operations, {} bytes, {} errors in {:.2}s; p50 {} µs p99 {} µs p99.9 {} µs{}",
                    r.operations,
                    r.bytes,
                    r.errors,
                    r.seconds,
                    r.p50_us,
                    r.p99_us,
                    r.p999_us,
                    r.first_error
                        .as_deref()
                        .map(|e| format!(" (first error: {e})"))
                        .unwrap_or_default()
                );
            }
            if r.errors > 0 {
                std::process::exit(2);
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server(mode: ServeMode) -> SocketAddr {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        std::thread::spawn(move || serve(l, mode));
        addr
    }

    #[test]
    fn modes_parse() {
        assert_eq!("echo".parse::<ServeMode>(), Ok(ServeMode::Echo));
        assert_eq!("source:10".parse::<ServeMode>(), Ok(ServeMode::Source(10)));
        assert!("source:x".parse::<ServeMode>().is_err());
        assert_eq!("echo:1024".parse::<LoadMode>(), Ok(LoadMode::Echo(1024)));
        assert_eq!("download:5".parse::<LoadMode>(), Ok(LoadMode::Download(5)));
        assert!("echo:0".parse::<LoadMode>().is_err());
        assert!("fly:1".parse::<LoadMode>().is_err());
    }

    #[test]
    fn echo_download_and_upload_work_directly() {
        let r = load(
            server(ServeMode::Echo),
            LoadMode::Echo(100),
            2,
            None,
            Some(50),
        );
        assert_eq!((r.operations, r.errors), (100, 0), "{r:?}");
        let r = load(
            server(ServeMode::Source(300_000)),
            LoadMode::Download(300_000),
            2,
            None,
            Some(3),
        );
        assert_eq!(
            (r.operations, r.bytes, r.errors),
            (6, 1_800_000, 0),
            "{r:?}"
        );
        let r = load(
            server(ServeMode::Sink),
            LoadMode::Upload(200_000),
            1,
            None,
            Some(2),
        );
        assert_eq!((r.operations, r.errors), (2, 0), "{r:?}");
    }

    #[test]
    fn a_short_download_is_an_error() {
        let r = load(
            server(ServeMode::Source(10)),
            LoadMode::Download(11),
            1,
            None,
            Some(1),
        );
        assert_eq!(r.errors, 1);
        assert!(r.first_error.unwrap().contains("got 10 of 11"));
    }
}
