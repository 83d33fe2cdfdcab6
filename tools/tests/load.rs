//! Black-box tests of the `ringway-load` binary against `ringway-upstream` on 127.0.0.1:0:
//! closed and open loop, error counting and exit codes, pipelining, chunked bodies,
//! reconnects, timeouts, warmup and the loopback policy. Each run is a second or two.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// A running upstream process, killed on drop.
struct Upstream {
    child: Child,
    addr: SocketAddr,
}

impl Upstream {
    fn start(args: &[&str]) -> Upstream {
        let mut child = Command::new(env!("CARGO_BIN_EXE_ringway-upstream"))
            .args(["--listen", "127.0.0.1:0"])
            .args(args)
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawn ringway-upstream");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("read listening line");
        let addr = line
            .trim()
            .strip_prefix("listening on ")
            .and_then(|a| a.parse().ok())
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"));
        Upstream { child, addr }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// `requests=N` from `/__stats`.
    fn requests_served(&self) -> u64 {
        let mut s = TcpStream::connect(self.addr).unwrap();
        s.write_all(b"GET /__stats HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .unwrap();
        let mut text = String::new();
        s.read_to_string(&mut text).unwrap();
        let n = text
            .split("requests=")
            .nth(1)
            .and_then(|r| r.split_whitespace().next())
            .and_then(|n| n.parse().ok());
        n.unwrap_or_else(|| panic!("no requests= in {text:?}"))
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Result of one `ringway-load --json` run.
struct Run {
    code: i32,
    json: Value,
    took: Duration,
}

impl Run {
    fn n(&self, path: &str) -> u64 {
        self.json
            .pointer(path)
            .and_then(Value::as_u64)
            .unwrap_or_else(|| panic!("no {path} in {}", self.json))
    }
}

/// Longest any single test run may take before the test kills it and fails.
const RUN_LIMIT: Duration = Duration::from_secs(20);

fn load(args: &[&str]) -> Run {
    let start = Instant::now();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ringway-load"));
    cmd.arg("--json");
    if !args.contains(&"-t") {
        cmd.args(["-t", "2"]);
    }
    let mut child = cmd
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run ringway-load");
    let mut stdout_pipe = child.stdout.take().expect("stdout");
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stdout_pipe.read_to_string(&mut s);
        s
    });
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if start.elapsed() > RUN_LIMIT {
            let _ = child.kill();
            let _ = child.wait();
            panic!("ringway-load {args:?} did not stop within {RUN_LIMIT:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let took = start.elapsed();
    let stdout = reader.join().expect("reader");
    let mut stderr = String::new();
    if let Some(mut e) = child.stderr.take() {
        let _ = e.read_to_string(&mut stderr);
    }
    let json = serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {stdout:?}; stderr {stderr:?}"));
    Run {
        code: status.code().unwrap_or(-1),
        json,
        took,
    }
}

/// The counts of a run agree with each other.
fn assert_consistent(r: &Run) {
    let requests = r.n("/requests");
    let classes: u64 = ["1xx", "2xx", "3xx", "4xx", "5xx", "other"]
        .iter()
        .map(|c| r.n(&format!("/status/{c}")))
        .sum();
    assert_eq!(classes, requests, "{}", r.json);
    assert_eq!(r.n("/latency_us/count"), requests, "{}", r.json);
    assert_eq!(r.n("/non_2xx"), requests - r.n("/status/2xx"));
    let e = r.json.pointer("/errors").unwrap();
    let sum: u64 = ["connect", "read", "write", "timeout", "parse"]
        .iter()
        .map(|k| e[k].as_u64().unwrap())
        .sum();
    assert_eq!(sum, r.n("/errors/total"));
    if requests > 0 {
        let (p50, p99, max) = (
            r.n("/latency_us/p50"),
            r.n("/latency_us/p99"),
            r.n("/latency_us/max"),
        );
        assert!(p50 <= p99 && p99 <= max, "{}", r.json);
    }
}

#[test]
fn closed_loop_run_counts_every_request_without_errors() {
    let up = Upstream::start(&[]);
    let r = load(&["-c", "8", "-d", "1s", &up.url("/")]);
    assert_eq!(r.code, 0, "{}", r.json);
    assert_consistent(&r);
    let requests = r.n("/requests");
    assert!(requests > 0);
    assert_eq!(r.n("/errors/total"), 0);
    assert_eq!(r.n("/non_2xx"), 0);
    assert_eq!(r.json["mode"], "closed");
    assert_eq!(r.json["passed"], true);
    // Every request sent was answered and counted: the upstream saw exactly as many.
    assert_eq!(up.requests_served(), requests);
    // "ab" bodies: each response is more than 2 bytes read.
    assert!(r.n("/bytes_read") > 2 * requests);
    let secs = r.json["duration_s"].as_f64().unwrap();
    assert!((1.0..1.5).contains(&secs), "duration {secs}");
    assert!(r.took < Duration::from_secs(4), "took {:?}", r.took);
}

#[test]
fn open_loop_sends_at_the_requested_rate() {
    let up = Upstream::start(&[]);
    let r = load(&["-c", "10", "-R", "200", "-d", "2s", &up.url("/")]);
    assert_eq!(r.code, 0, "{}", r.json);
    assert_consistent(&r);
    let requests = r.n("/requests");
    assert!(
        (340..=460).contains(&requests),
        "{requests} requests, want ~400"
    );
    assert_eq!(r.json["mode"], "open");
    assert_eq!(r.json["latency_origin"], "intended");
    assert_eq!(r.n("/unsent"), 0);
}

#[test]
fn open_loop_latency_includes_the_wait_behind_a_slow_server() {
    // 1 connection, 50 ms per response, asked for 100/s: requests queue up behind each
    // other, and coordinated-omission correction must show it (wrk2's point).
    let up = Upstream::start(&["--latency", "50ms"]);
    let r = load(&["-c", "1", "-t", "1", "-R", "100", "-d", "1s", &up.url("/")]);
    assert_consistent(&r);
    let p99 = r.n("/latency_us/p99");
    assert!(
        p99 > 300_000,
        "p99 {p99}us should include queueing behind 50 ms responses"
    );
    assert!(r.n("/unsent") > 0, "{}", r.json);
}

#[test]
fn warmup_is_excluded_from_the_figures() {
    let up = Upstream::start(&[]);
    let r = load(&[
        "-c",
        "4",
        "-R",
        "100",
        "--warmup",
        "1s",
        "-d",
        "1s",
        &up.url("/"),
    ]);
    assert_eq!(r.code, 0, "{}", r.json);
    let requests = r.n("/requests");
    assert!((80..=120).contains(&requests), "{requests}, want ~100");
    assert!(up.requests_served() >= 180);
}

#[test]
fn error_responses_are_counted_and_fail_the_run() {
    let up = Upstream::start(&["--fault", "error-rate=50"]);
    let r = load(&["-c", "4", "-d", "1s", &up.url("/")]);
    assert_eq!(r.code, 1, "{}", r.json);
    assert_consistent(&r);
    let (requests, errors) = (r.n("/requests"), r.n("/status/5xx"));
    assert!(requests > 0);
    assert!(
        errors.abs_diff(requests / 2) <= 4 + requests / 100,
        "{}",
        r.json
    );
    assert_eq!(r.n("/non_2xx"), errors);
    assert_eq!(r.json["passed"], false);
    // A threshold above the error fraction passes.
    let r = load(&[
        "-c",
        "4",
        "-d",
        "1s",
        "--max-error-rate",
        "0.6",
        &up.url("/"),
    ]);
    assert_eq!(r.code, 0, "{}", r.json);
}

#[test]
fn refused_connections_are_connect_errors() {
    let up = Upstream::start(&["--fault", "refuse"]);
    let r = load(&["-c", "4", "-d", "1s", &up.url("/")]);
    assert_eq!(r.code, 1);
    assert_consistent(&r);
    assert_eq!(r.n("/requests"), 0);
    assert!(r.n("/errors/connect") > 0, "{}", r.json);
}

#[test]
fn unanswered_requests_time_out_and_the_run_still_ends() {
    let up = Upstream::start(&["--fault", "hang"]);
    let r = load(&["-c", "2", "-d", "1s", "--timeout", "300ms", &up.url("/")]);
    assert_eq!(r.code, 1);
    assert!(r.n("/errors/timeout") >= 2, "{}", r.json);
    assert!(r.took < Duration::from_secs(3), "took {:?}", r.took);
}

#[test]
fn pipelining_keeps_several_requests_in_flight() {
    let up = Upstream::start(&[]);
    let r = load(&["-c", "2", "--pipeline", "4", "-d", "1s", &up.url("/")]);
    assert_eq!(r.code, 0, "{}", r.json);
    assert_consistent(&r);
    assert_eq!(r.n("/errors/total"), 0);
    assert_eq!(up.requests_served(), r.n("/requests"));
    // Open loop with pipelining too.
    let r = load(&[
        "-c",
        "2",
        "--pipeline",
        "4",
        "-R",
        "300",
        "-d",
        "1s",
        &up.url("/"),
    ]);
    assert_eq!(r.code, 0, "{}", r.json);
    assert!((255..=345).contains(&r.n("/requests")), "{}", r.json);
}

#[test]
fn chunked_responses_parse() {
    let up = Upstream::start(&["--chunked", "--body-size", "50000"]);
    let r = load(&["-c", "4", "--pipeline", "2", "-d", "1s", &up.url("/")]);
    assert_eq!(r.code, 0, "{}", r.json);
    assert_consistent(&r);
    let requests = r.n("/requests");
    assert!(requests > 0);
    assert!(r.n("/bytes_read") > 50_000 * requests);
    assert_eq!(up.requests_served(), requests);
}

#[test]
fn connection_close_reconnects_without_errors() {
    let up = Upstream::start(&[]);
    let r = load(&[
        "-c",
        "2",
        "-H",
        "Connection: close",
        "-d",
        "1s",
        &up.url("/"),
    ]);
    assert_eq!(r.code, 0, "{}", r.json);
    assert_consistent(&r);
    assert_eq!(r.n("/errors/total"), 0);
    assert!(r.n("/reconnects") + 2 >= r.n("/requests"), "{}", r.json);
}

#[test]
fn post_bodies_are_sent_with_content_length() {
    let up = Upstream::start(&[]);
    let r = load(&[
        "-c",
        "1",
        "-t",
        "1",
        "-m",
        "POST",
        "--body",
        "hello",
        "-R",
        "20",
        "-d",
        "1s",
        &up.url("/echo"),
    ]);
    assert_eq!(r.code, 0, "{}", r.json);
    // Echo of a 5-byte body: head + 5 bytes per response, and 5 body bytes per request.
    let requests = r.n("/requests");
    assert!(requests > 0);
    assert!(r.n("/bytes_written") > requests * 5);
}

#[test]
fn remote_targets_are_refused_without_allow_remote() {
    let out = Command::new(env!("CARGO_BIN_EXE_ringway-load"))
        .args(["-d", "1s", "http://192.0.2.1:80/"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("not loopback"), "{err}");
    let out = Command::new(env!("CARGO_BIN_EXE_ringway-load"))
        .args(["-c", "10001", "http://127.0.0.1:1/"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn latency_out_writes_the_percentile_spectrum_and_spin_keeps_sends_on_time() {
    let up = Upstream::start(&[]);
    let dir = std::env::temp_dir().join(format!("ringway-load-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("latency.txt");
    let r = load(&[
        "-c",
        "2",
        "-R",
        "100",
        "-d",
        "1s",
        "--spin",
        "200us",
        "--latency-out",
        path.to_str().unwrap(),
        &up.url("/"),
    ]);
    assert_eq!(r.code, 0);
    // Spinning before each due time: the median request leaves within a few µs of it
    // (generous bound: the machine may be shared).
    assert!(r.n("/send_lag_us/p50") < 1000, "{}", r.json);
    let text = std::fs::read_to_string(&path).unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        text.contains("Percentile") && text.contains("Total count"),
        "{text}"
    );
}
