//! [`Upstream`]: a `ringway-upstream` child process on a free loopback port.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};

use super::client::Client;
use super::sys::upstream_bin;

/// A running `ringway-upstream`, killed on drop.
pub struct Upstream {
    child: Child,
    addr: SocketAddr,
}

/// The counters of `/__stats`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UpstreamStats {
    /// Requests seen, `/__stats` excluded.
    pub requests: u64,
    /// Connections that carried at least one counted request.
    pub connections: u64,
    /// Connections accepted, whatever they carried.
    pub accepted: u64,
}

impl Upstream {
    /// Spawns `ringway-upstream --listen 127.0.0.1:0 ARGS…` and waits for its
    /// `listening on` line. Panics if it exits first.
    pub fn start(args: &[&str]) -> Upstream {
        let bin = upstream_bin();
        let mut child = Command::new(&bin)
            .args(["--listen", "127.0.0.1:0"])
            .args(args)
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
            Some(addr) => Upstream { child, addr },
            None => {
                let _ = child.kill();
                let status = child.wait();
                panic!("ringway-upstream {args:?} did not start (first line {line:?}, exit {status:?})")
            }
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// A new client connection straight to this upstream (bypassing any proxy).
    pub fn client(&self) -> Client {
        Client::connect(self.addr)
    }

    /// Reads `/__stats` on a fresh connection (not counted by the upstream).
    pub fn stats(&self) -> UpstreamStats {
        let text = self.client().get("/__stats", "upstream").text();
        let field = |name: &str| -> u64 {
            text.split_whitespace()
                .find_map(|kv| kv.strip_prefix(name)?.strip_prefix('='))
                .and_then(|v| v.parse().ok())
                .unwrap_or_else(|| panic!("no {name} in /__stats body {text:?}"))
        };
        UpstreamStats {
            requests: field("requests"),
            connections: field("connections"),
            accepted: field("accepted"),
        }
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
