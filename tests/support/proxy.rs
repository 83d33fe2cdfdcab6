//! [`Proxy`]: a `ringway` child process started from a TOML config in a temp dir, with its
//! stderr captured to a file, ready once `GET /ready` on the admin address answers 200.

use std::fs::File;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use tempfile::TempDir;

use super::client::Client;
use super::sys::ringway_bin;

/// How long [`Proxy::start`] waits for `/ready`.
pub const READY_TIMEOUT: Duration = Duration::from_secs(10);

/// A running `ringway`, killed on drop (its stderr is printed if the test is panicking).
pub struct Proxy {
    child: Child,
    dir: TempDir,
    config_path: PathBuf,
    stderr_path: PathBuf,
    admin: Option<SocketAddr>,
    exited: Option<ExitStatus>,
}

/// `[admin] bind` from a config text, if present and valid.
pub fn admin_addr_of(config_toml: &str) -> Option<SocketAddr> {
    let table: toml::Table = toml::from_str(config_toml).ok()?;
    table.get("admin")?.get("bind")?.as_str()?.parse().ok()
}

impl Proxy {
    /// Starts `ringway --config <file>` and waits until `/ready` answers 200.
    /// The config must have `[admin] bind = "127.0.0.1:<free_port()>"`.
    pub fn start(config_toml: &str) -> Proxy {
        Proxy::start_with_args(config_toml, &[])
    }

    /// As [`Proxy::start`], with extra command-line arguments (e.g. `["--workers", "1"]`).
    pub fn start_with_args(config_toml: &str, args: &[&str]) -> Proxy {
        assert!(
            admin_addr_of(config_toml).is_some(),
            "Proxy::start needs `[admin] bind = \"127.0.0.1:PORT\"` in the config"
        );
        let mut proxy = Proxy::spawn(config_toml, args);
        proxy.wait_ready(READY_TIMEOUT);
        proxy
    }

    /// Spawns without waiting for readiness (for tests of startup failures and `--check`).
    pub fn spawn(config_toml: &str, args: &[&str]) -> Proxy {
        Proxy::spawn_program(ringway_bin(), config_toml, args)
    }

    /// Spawns `program --config <file> ARGS…` (a stand-in for `ringway` in harness tests).
    pub fn spawn_program(program: &Path, config_toml: &str, args: &[&str]) -> Proxy {
        let dir = tempfile::tempdir().expect("temp dir");
        let config_path = dir.path().join("ringway.toml");
        std::fs::write(&config_path, config_toml).expect("write config");
        let stderr_path = dir.path().join("stderr.log");
        let stderr = File::create(&stderr_path).expect("create stderr file");
        let child = Command::new(program)
            .arg("--config")
            .arg(&config_path)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {}: {e}", program.display()));
        Proxy {
            child,
            dir,
            config_path,
            stderr_path,
            admin: admin_addr_of(config_toml),
            exited: None,
        }
    }

    /// Polls `GET /ready` until 200; panics with the proxy's stderr on exit or timeout.
    pub fn wait_ready(&mut self, timeout: Duration) {
        let admin = self.admin_addr();
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.try_exit_status() {
                panic!(
                    "ringway exited ({status}) before it was ready; stderr:\n{}",
                    self.stderr_text()
                );
            }
            if ready_status(admin) == Some(200) {
                return;
            }
            if Instant::now() >= deadline {
                let _ = self.child.kill();
                panic!(
                    "ringway not ready on {admin} after {timeout:?}; stderr:\n{}",
                    self.stderr_text()
                );
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// The admin address from the config. Panics if the config had none.
    pub fn admin_addr(&self) -> SocketAddr {
        self.admin.expect("config has no [admin] bind")
    }

    /// `GET path` on the admin address, on a fresh connection.
    pub fn admin_get(&self, path: &str) -> super::client::Response {
        Client::connect(self.admin_addr()).get(path, "admin")
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn config_path(&self) -> &Path {
        &self.config_path
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Everything the proxy wrote to stderr so far.
    pub fn stderr_text(&self) -> String {
        std::fs::read_to_string(&self.stderr_path).unwrap_or_default()
    }

    pub fn sigterm(&self) {
        self.signal(libc::SIGTERM);
    }

    pub fn sigint(&self) {
        self.signal(libc::SIGINT);
    }

    pub fn sighup(&self) {
        self.signal(libc::SIGHUP);
    }

    /// Writes a new config over the old file and sends SIGHUP.
    pub fn reload(&self, config_toml: &str) {
        std::fs::write(&self.config_path, config_toml).expect("write config");
        self.sighup();
    }

    /// Sends `sig` to this proxy only (by its pid).
    pub fn signal(&self, sig: i32) {
        if self.exited.is_some() {
            return;
        }
        let pid = libc::pid_t::try_from(self.child.id()).expect("pid fits pid_t");
        // SAFETY: kill(2) takes plain integers and touches no memory of ours; the pid is our
        // own child, not yet reaped (`exited` is None), so it cannot name another process.
        let rc = unsafe { libc::kill(pid, sig) };
        assert_eq!(rc, 0, "kill({pid}, {sig}) failed");
    }

    /// Waits for the process to exit; kills it and panics after `timeout`.
    pub fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.try_exit_status() {
                return status;
            }
            if Instant::now() >= deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                panic!(
                    "ringway did not exit within {timeout:?}; stderr:\n{}",
                    self.stderr_text()
                );
            }
            thread::sleep(Duration::from_millis(10));
        }
    }

    /// The exit status if the process has exited.
    pub fn try_exit_status(&mut self) -> Option<ExitStatus> {
        if self.exited.is_none() {
            self.exited = self.child.try_wait().ok().flatten();
        }
        self.exited
    }
}

/// Status of `GET /ready`, or `None` if the admin address does not answer yet.
fn ready_status(admin: SocketAddr) -> Option<u16> {
    let mut c = Client::try_connect(admin).ok()?;
    c.set_timeout(Duration::from_millis(500));
    c.try_send_raw(b"GET /ready HTTP/1.1\r\nHost: admin\r\nConnection: close\r\n\r\n")
        .ok()?;
    c.read_response().ok().map(|r| r.status)
}

impl Drop for Proxy {
    fn drop(&mut self) {
        if self.exited.is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        if thread::panicking() {
            eprintln!("--- ringway stderr ---\n{}", self.stderr_text());
        }
    }
}
