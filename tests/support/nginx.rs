//! [`Nginx`]: an nginx baseline server for comparisons, in its own temp dir, on a free port.
//! Available only where `/usr/sbin/nginx` exists (CI installs it); elsewhere
//! [`Nginx::start`] prints `skipped: nginx not installed` and returns `None`.
//!
//! It serves `return 200 "ok"` on every path and a static 1 MiB file of the upstream's
//! byte pattern at [`STATIC_FILE_PATH`], with `keepalive_requests 10000`.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use tempfile::TempDir;

use super::sys::{free_port, wait_for_port};

pub const NGINX_BIN: &str = "/usr/sbin/nginx";
/// Request path of the static file.
pub const STATIC_FILE_PATH: &str = "/files/1m.bin";
pub const STATIC_FILE_BYTES: usize = 1 << 20;

/// Byte `i` of the static file: the same `a..z` pattern as `ringway-upstream` bodies.
pub fn static_file_byte(i: usize) -> u8 {
    b'a' + (i % 26) as u8
}

/// A running nginx (single process), killed on drop.
pub struct Nginx {
    child: Child,
    dir: TempDir,
    addr: SocketAddr,
}

impl Nginx {
    pub fn installed() -> bool {
        Path::new(NGINX_BIN).exists()
    }

    /// Starts nginx, or prints `skipped: nginx not installed` and returns `None`.
    /// Use as `let Some(nginx) = Nginx::start() else { return };`.
    pub fn start() -> Option<Nginx> {
        if !Nginx::installed() {
            eprintln!("skipped: nginx not installed");
            return None;
        }
        let dir = tempfile::tempdir().expect("temp dir");
        let root = dir.path();
        let files = root.join("www/files");
        std::fs::create_dir_all(&files).expect("mkdir www/files");
        let body: Vec<u8> = (0..STATIC_FILE_BYTES).map(static_file_byte).collect();
        std::fs::write(files.join("1m.bin"), body).expect("write static file");
        std::fs::create_dir_all(root.join("tmp")).expect("mkdir tmp");
        let port = free_port();
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        let conf = config(root, addr);
        std::fs::write(root.join("nginx.conf"), conf).expect("write nginx.conf");
        let child = Command::new(NGINX_BIN)
            .arg("-p")
            .arg(root)
            .arg("-c")
            .arg(root.join("nginx.conf"))
            .arg("-e")
            .arg(root.join("error.log"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {NGINX_BIN}: {e}"));
        let mut nginx = Nginx { child, dir, addr };
        if !wait_for_port(addr, Duration::from_secs(10)) {
            let status = nginx.child.try_wait();
            panic!(
                "nginx did not listen on {addr} (exit {status:?}); error.log:\n{}",
                nginx.error_log()
            );
        }
        Some(nginx)
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn error_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("error.log")).unwrap_or_default()
    }
}

fn config(root: &Path, addr: SocketAddr) -> String {
    let r = root.display();
    let mut c = String::new();
    let _ = write!(
        c,
        "daemon off;\n\
         master_process off;\n\
         worker_processes 1;\n\
         pid {r}/nginx.pid;\n\
         error_log {r}/error.log warn;\n\
         events {{ worker_connections 4096; }}\n\
         http {{\n\
         \x20 access_log off;\n\
         \x20 default_type application/octet-stream;\n\
         \x20 client_body_temp_path {r}/tmp/body;\n\
         \x20 proxy_temp_path {r}/tmp/proxy;\n\
         \x20 fastcgi_temp_path {r}/tmp/fastcgi;\n\
         \x20 uwsgi_temp_path {r}/tmp/uwsgi;\n\
         \x20 scgi_temp_path {r}/tmp/scgi;\n\
         \x20 keepalive_requests 10000;\n\
         \x20 server {{\n\
         \x20   listen {addr};\n\
         \x20   location / {{ return 200 \"ok\"; }}\n\
         \x20   location /files/ {{ root {r}/www; }}\n\
         \x20 }}\n\
         }}\n"
    );
    c
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
