//! Transparent interception, the way Istio's sidecar works, for real: two network namespaces
//! made by the test (a "pod" and a "remote" host joined by a veth pair), iptables rules in
//! the pod, and clients that know nothing about the proxy.
//!
//! ```text
//!  pod netns (10.201.N.1)                                   remote netns (10.201.N.2)
//!   app client (uid 65534) ──▶ 10.201.N.2:9000 ─┐            echo server :9000
//!        nat OUTPUT REDIRECT ──▶ ringway :15001 ─┴──────────▶ (original destination)
//!   app client (uid 65534) ──▶ 10.201.N.2:8080 ─▶ REDIRECT ─▶ ringway :15002 (http) ─▶ upstream :8080
//!   ringway's own traffic (root) is not redirected; to :9001 every uid is: a loop, refused
//!   app echo :7000 ◀── ringway :15006 (tproxy) ◀── mangle PREROUTING TPROXY ◀── remote client
//! ```
//!
//! Needs root, `ip` (iproute2), `iptables`, `setpriv` and `curl`; where a namespace cannot be
//! created the test prints `skipped:` with the reason and passes.

mod support;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use support::{fd_count, free_port, ringway_bin, upstream_bin};

/// A network namespace, deleted on drop.
struct Netns(String);

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).output();
    }
}

fn run(cmd: &mut Command) -> Output {
    cmd.stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("run {cmd:?}: {e}"))
}

/// Runs `args` inside `ns`; panics with its output unless it succeeds.
fn in_ns(ns: &str, args: &[&str]) -> Output {
    let out = run(Command::new("ip").args(["netns", "exec", ns]).args(args));
    assert!(
        out.status.success(),
        "ip netns exec {ns} {args:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// A child process inside `ns`, killed on drop (`ip netns exec` execs the command, so the
/// pid is the program's own).
struct NsChild(Child);

impl Drop for NsChild {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn spawn_in(ns: &str, program: &Path, args: &[&str]) -> NsChild {
    NsChild(
        Command::new("ip")
            .args(["netns", "exec", ns])
            .arg(program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {program:?} in {ns}: {e}")),
    )
}

/// Why this machine cannot run the test, if it cannot.
fn unsupported() -> Option<String> {
    // SAFETY: getuid has no preconditions.
    if unsafe { libc::getuid() } != 0 {
        return Some("needs root (network namespaces, iptables)".into());
    }
    for tool in ["ip", "iptables", "setpriv", "curl"] {
        let found = run(Command::new("sh").args(["-c", &format!("command -v {tool}")]));
        if !found.status.success() {
            return Some(format!("{tool} not installed"));
        }
    }
    let probe = format!("rwprobe{}", std::process::id());
    let out = run(Command::new("ip").args(["netns", "add", &probe]));
    if !out.status.success() {
        return Some(format!(
            "cannot create a network namespace: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    let _ = run(Command::new("ip").args(["netns", "del", &probe]));
    None
}

/// `curl` inside `ns` as root: (status, body).
fn curl(ns: &str, url: &str) -> String {
    let out = run(Command::new("ip").args(["netns", "exec", ns, "curl", "-s", "-m", "5", url]));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn metric(ns: &str, admin: &str, sample: &str) -> f64 {
    curl(ns, &format!("http://{admin}/metrics"))
        .lines()
        .find_map(|l| {
            l.strip_prefix(sample)?
                .strip_prefix(' ')?
                .trim()
                .parse()
                .ok()
        })
        .unwrap_or(0.0)
}

/// A copy of `bin` in a world-readable directory, so that an unprivileged uid can run it.
fn shareable(bin: &Path, dir: &Path) -> PathBuf {
    let to = dir.join(bin.file_name().unwrap());
    std::fs::copy(bin, &to).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(&to, std::fs::Permissions::from_mode(0o755)).unwrap();
    to
}

#[test]
fn sidecar_interception_in_network_namespaces() {
    if let Some(why) = unsupported() {
        eprintln!("skipped: {why}");
        return;
    }
    let id = std::process::id();
    let n = 1 + id % 250;
    let (pod, remote) = (Netns(format!("rwpod{id}")), Netns(format!("rwrem{id}")));
    let (va, vb) = (
        format!("rwa{}", id % 100_000),
        format!("rwb{}", id % 100_000),
    );
    let (pod_ip, remote_ip) = (format!("10.201.{n}.1"), format!("10.201.{n}.2"));
    for ns in [&pod.0, &remote.0] {
        run(Command::new("ip").args(["netns", "add", ns]));
        in_ns(ns, &["ip", "link", "set", "lo", "up"]);
    }
    in_ns(
        &pod.0,
        &[
            "ip", "link", "add", &va, "type", "veth", "peer", "name", &vb,
        ],
    );
    in_ns(&pod.0, &["ip", "link", "set", &vb, "netns", &remote.0]);
    in_ns(
        &pod.0,
        &["ip", "addr", "add", &format!("{pod_ip}/24"), "dev", &va],
    );
    in_ns(&pod.0, &["ip", "link", "set", &va, "up"]);
    in_ns(
        &remote.0,
        &["ip", "addr", "add", &format!("{remote_ip}/24"), "dev", &vb],
    );
    in_ns(&remote.0, &["ip", "link", "set", &vb, "up"]);

    // The remote host's services, and the pod's own app (for the inbound direction).
    let tmp = tempfile::tempdir().unwrap();
    let tcp_bin = shareable(
        &Path::new(env!("CARGO_BIN_EXE_ringway")).with_file_name("ringway-tcp"),
        tmp.path(),
    );
    let _echo = spawn_in(
        &remote.0,
        &tcp_bin,
        &[
            "serve",
            "--listen",
            &format!("{remote_ip}:9000"),
            "--mode",
            "echo",
        ],
    );
    let _echo_loop = spawn_in(
        &remote.0,
        &tcp_bin,
        &[
            "serve",
            "--listen",
            &format!("{remote_ip}:9001"),
            "--mode",
            "echo",
        ],
    );
    let _web = spawn_in(
        &remote.0,
        &upstream_bin(),
        &["--listen", &format!("{remote_ip}:8080"), "--name", "remote"],
    );
    let _app = spawn_in(
        &pod.0,
        &tcp_bin,
        &[
            "serve",
            "--listen",
            &format!("{pod_ip}:7000"),
            "--mode",
            "echo",
        ],
    );

    // The sidecar.
    let admin = format!("127.0.0.1:{}", free_port());
    let config = format!(
        r#"[runtime]
workers = 2

[admin]
bind = "{admin}"

[[listeners]]
name = "outbound"
bind = "127.0.0.1:15001"
protocol = "tcp"
cluster = "passthrough"
interception = "redirect"

[[listeners]]
name = "outbound-http"
bind = "127.0.0.1:15002"
cluster = "passthrough-http"
interception = "redirect"

[[listeners]]
name = "inbound"
bind = "0.0.0.0:15006"
protocol = "tcp"
cluster = "inbound"
interception = "tproxy"

[[clusters]]
name = "passthrough"
type = "original_destination"

[[clusters]]
name = "passthrough-http"
type = "original_destination"

[[clusters]]
name = "inbound"
type = "original_destination"
"#
    );
    let cfg_path = tmp.path().join("sidecar.toml");
    std::fs::write(&cfg_path, config).unwrap();
    let proxy = spawn_in(
        &pod.0,
        ringway_bin(),
        &["--config", cfg_path.to_str().unwrap()],
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while !curl(&pod.0, &format!("http://{admin}/ready")).contains("ready") {
        assert!(
            Instant::now() < deadline,
            "the sidecar did not become ready"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // Istio's rules, reduced: the app's (uid 65534) outbound TCP goes to the sidecar; the
    // sidecar's own (root) does not — except to :9001, where every uid is redirected (a loop).
    let nat = |rule: &str| {
        let mut args = vec!["iptables", "-t", "nat", "-A", "OUTPUT"];
        args.extend(rule.split_whitespace());
        in_ns(&pod.0, &args);
    };
    nat(&format!("-p tcp -d {remote_ip} --dport 9000 -m owner --uid-owner 65534 -j REDIRECT --to-ports 15001"));
    nat(&format!("-p tcp -d {remote_ip} --dport 8080 -m owner --uid-owner 65534 -j REDIRECT --to-ports 15002"));
    nat(&format!(
        "-p tcp -d {remote_ip} --dport 9001 -j REDIRECT --to-ports 15001"
    ));
    // Inbound: TPROXY to :15006 for the app's port (arriving from outside the pod: the
    // sidecar's own connection to the app comes over `lo` and must not be caught), delivered
    // locally by policy routing.
    in_ns(
        &pod.0,
        &[
            "iptables",
            "-t",
            "mangle",
            "-A",
            "PREROUTING",
            "-i",
            &va,
            "-p",
            "tcp",
            "-d",
            &pod_ip,
            "--dport",
            "7000",
            "-j",
            "TPROXY",
            "--on-port",
            "15006",
            "--tproxy-mark",
            "0x1/0x1",
        ],
    );
    in_ns(
        &pod.0,
        &["ip", "rule", "add", "fwmark", "1", "lookup", "100"],
    );
    in_ns(
        &pod.0,
        &[
            "ip",
            "route",
            "add",
            "local",
            "0.0.0.0/0",
            "dev",
            "lo",
            "table",
            "100",
        ],
    );

    let as_app = |args: &[&str]| -> Output {
        run(Command::new("ip")
            .args([
                "netns",
                "exec",
                &pod.0,
                "setpriv",
                "--reuid=65534",
                "--regid=65534",
                "--clear-groups",
            ])
            .args(args))
    };

    // 1. Outbound TCP: the app talks to the remote echo server, through the sidecar.
    let out = as_app(&[
        tcp_bin.to_str().unwrap(),
        "load",
        "--target",
        &format!("{remote_ip}:9000"),
        "--mode",
        "echo:512",
        "--connections",
        "4",
        "--count",
        "50",
        "--json",
    ]);
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "app echo through the sidecar: {report} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(report.contains("\"operations\":200"), "{report}");
    assert_eq!(
        metric(
            &pod.0,
            &admin,
            "ringway_upstream_connects_total{cluster=\"passthrough\",result=\"ok\"}"
        ),
        4.0,
        "the app's connections went through the sidecar to their original destination"
    );

    // 2. Outbound HTTP: routed by the HTTP listener to the original destination.
    let out = as_app(&[
        "curl",
        "-s",
        "-m",
        "5",
        &format!("http://{remote_ip}:8080/headers"),
    ]);
    let body = String::from_utf8_lossy(&out.stdout).to_ascii_lowercase();
    assert!(body.contains("x-request-id"), "not proxied: {body}");
    assert!(
        body.contains(&format!("x-forwarded-for: {pod_ip}")) || body.contains("x-forwarded-for"),
        "{body}"
    );
    assert!(
        metric(
            &pod.0,
            &admin,
            "ringway_upstream_connects_total{cluster=\"passthrough-http\",result=\"ok\"}"
        ) >= 1.0
    );

    // 3. A redirect loop (the sidecar's own traffic redirected back to it) is refused at the
    //    first hop back, not followed until descriptors run out.
    let pid = proxy.0.id();
    let fds_before = fd_count(pid);
    let out = run(Command::new("ip").args(["netns", "exec", &pod.0]).args([
        tcp_bin.to_str().unwrap(),
        "load",
        "--target",
        &format!("{remote_ip}:9001"),
        "--mode",
        "echo:16",
        "--connections",
        "1",
        "--count",
        "1",
    ]));
    assert!(!out.status.success(), "a looping connection must fail");
    assert!(
        metric(
            &pod.0,
            &admin,
            "ringway_proxy_errors_total{kind=\"redirect_loop\"}"
        ) >= 1.0
    );
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        fd_count(pid) <= fds_before + 4,
        "descriptors {fds_before} -> {}",
        fd_count(pid)
    );

    // 4. Inbound TPROXY: a remote client reaches the pod's app through the sidecar.
    let out = in_ns(
        &remote.0,
        &[
            tcp_bin.to_str().unwrap(),
            "load",
            "--target",
            &format!("{pod_ip}:7000"),
            "--mode",
            "echo:256",
            "--connections",
            "2",
            "--count",
            "20",
            "--json",
        ],
    );
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(report.contains("\"operations\":40"), "{report}");
    assert_eq!(
        metric(
            &pod.0,
            &admin,
            "ringway_upstream_connects_total{cluster=\"inbound\",result=\"ok\"}"
        ),
        2.0,
        "inbound connections went through the sidecar"
    );
    let _: SocketAddr = format!("{pod_ip}:7000").parse().unwrap();
    drop(proxy);
}
