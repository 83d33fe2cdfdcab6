//! [`TcpPeer`]: a `ringway-tcp serve` child process (echo, source, sink, hold) on a free
//! loopback port, for L4 tests; and [`metric`], one sample of the proxy's `/metrics`.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};

use super::proxy::Proxy;

/// A running `ringway-tcp serve`, killed on drop.
pub struct TcpPeer {
    child: Child,
    addr: SocketAddr,
}

impl TcpPeer {
    /// Starts `ringway-tcp serve --mode MODE` on 127.0.0.1:0 and waits for its address.
    pub fn start(mode: &str) -> TcpPeer {
        let bin = std::path::Path::new(env!("CARGO_BIN_EXE_ringway")).with_file_name("ringway-tcp");
        assert!(
            bin.exists(),
            "{} not found: run `cargo test --workspace`",
            bin.display()
        );
        let mut child = Command::new(&bin)
            .args(["serve", "--listen", "127.0.0.1:0", "--mode", mode])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {}: {e}", bin.display()));
        let mut line = String::new();
        let stdout = child.stdout.take().expect("piped stdout");
        let _ = BufReader::new(stdout).read_line(&mut line);
        let addr = line
            .trim()
            .strip_prefix("listening on ")
            .and_then(|a| a.parse().ok());
        match addr {
            Some(addr) => TcpPeer { child, addr },
            None => {
                let _ = child.kill();
                panic!("ringway-tcp serve --mode {mode} did not start: {line:?}")
            }
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for TcpPeer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The value of the `/metrics` sample whose line starts with `name_and_labels` (e.g.
/// `ringway_proxy_errors_total{kind="proxy_protocol"}`), 0 if absent.
pub fn metric(proxy: &Proxy, name_and_labels: &str) -> f64 {
    let text = proxy.admin_get("/metrics").text();
    text.lines()
        .find_map(|l| {
            let rest = l.strip_prefix(name_and_labels)?;
            rest.strip_prefix(' ')?.trim().parse().ok()
        })
        .unwrap_or(0.0)
}
