//! Small system helpers for tests: where the binaries are, free ports, waiting for a port,
//! resident memory of a process.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::thread;
use std::time::{Duration, Instant};

/// The `ringway` binary cargo built for this test target, or `$RINGWAY_BIN` when set (to run
/// the same tests against another build, e.g. to show that a new test fails before a fix).
pub fn ringway_bin() -> &'static Path {
    static BIN: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    BIN.get_or_init(|| match std::env::var_os("RINGWAY_BIN") {
        Some(p) => PathBuf::from(p),
        None => PathBuf::from(env!("CARGO_BIN_EXE_ringway")),
    })
}

/// `ringway-upstream`, expected next to `ringway` (both land in `target/<profile>/`).
/// Panics with the command to run when it was not built.
pub fn upstream_bin() -> PathBuf {
    let path = Path::new(env!("CARGO_BIN_EXE_ringway")).with_file_name("ringway-upstream");
    if !path.exists() {
        panic!(
            "{} not found: run `cargo test --workspace` (or `cargo build -p ringway-tools`) \
             so the test upstream is built next to the proxy",
            path.display()
        );
    }
    path
}

/// A TCP port on 127.0.0.1 that was free a moment ago (bound, then released).
///
/// Ports come from 20000..32000, below Linux's ephemeral range (32768..61000): a port the
/// kernel hands out as the source of some outgoing connection (to an upstream, a scrape)
/// can then never collide with a listener a test is about to bind. Each port is handed out
/// once per test process (a counter from a per-process offset), so tests running in
/// parallel never get the same one.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    const LOW: u32 = 20_000;
    const SPAN: u32 = 12_000;
    static NEXT: AtomicU32 = AtomicU32::new(u32::MAX);
    let _ = NEXT.compare_exchange(
        u32::MAX,
        std::process::id().wrapping_mul(7919) % SPAN,
        Ordering::AcqRel,
        Ordering::Acquire,
    );
    for _ in 0..SPAN {
        let port = (LOW + NEXT.fetch_add(1, Ordering::AcqRel) % SPAN) as u16;
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("bind 127.0.0.1:0")
}

/// Waits until `addr` accepts TCP connections; false after `timeout`.
pub fn wait_for_port(addr: SocketAddr, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            return true;
        }
        thread::sleep(Duration::from_millis(20));
    }
    false
}

/// Resident set size of process `pid` in KiB (`VmRSS` in `/proc/<pid>/status`).
pub fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_else(|e| panic!("read /proc/{pid}/status: {e}"));
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("no VmRSS in /proc/{pid}/status"))
}

/// Open descriptors of process `pid` (entries of `/proc/<pid>/fd`).
pub fn fd_count(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap_or_else(|e| panic!("read /proc/{pid}/fd: {e}"))
        .count()
}
