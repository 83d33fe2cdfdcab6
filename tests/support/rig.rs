//! [`Rig`]: a `ringway` started from a one-listener config on free ports, plus the config
//! builder the `proxy_*` test targets share ([`config`]), and [`pattern_chunk`], a buffer of
//! the upstream's body pattern for generating and checking big bodies without holding them.
//!
//! Invariants: the listener is always named `edge`, its default cluster `web`; every port is
//! from [`free_port`]; the admin address is always set (so `Proxy::start` can wait for it).

use std::net::SocketAddr;

use super::client::Client;
use super::proxy::Proxy;
use super::sys::free_port;

/// What goes into a one-listener config (see [`config`]).
#[derive(Debug, Clone)]
pub struct Spec<'a> {
    pub workers: u32,
    /// Endpoints of the default cluster `web` (none: the listener has no default cluster).
    pub web: Vec<SocketAddr>,
    /// TOML placed after the `[[listeners]]` table: `[listeners.limits]`, routes.
    pub listener_extra: &'a str,
    /// TOML placed after the `web` cluster: more `[[clusters]]`, `[clusters.pool]`.
    pub extra: &'a str,
    /// TOML placed inside `[runtime]` (e.g. `drain_timeout = "5s"`).
    pub runtime_extra: &'a str,
}

impl<'a> Spec<'a> {
    /// `workers` executors, default cluster `web` over `web`, nothing else.
    pub fn new(workers: u32, web: &[SocketAddr]) -> Spec<'a> {
        Spec {
            workers,
            web: web.to_vec(),
            listener_extra: "",
            extra: "",
            runtime_extra: "",
        }
    }
}

/// The config text for `spec`, listening on `listen` with admin on `admin`.
pub fn config(spec: &Spec<'_>, listen: u16, admin: u16) -> String {
    let mut t = format!(
        "[runtime]\nworkers = {}\n{}\n\n[admin]\nbind = \"127.0.0.1:{admin}\"\n\n\
         [[listeners]]\nname = \"edge\"\nbind = \"127.0.0.1:{listen}\"\n",
        spec.workers, spec.runtime_extra
    );
    if !spec.web.is_empty() {
        t.push_str("cluster = \"web\"\n");
    }
    t.push('\n');
    t.push_str(spec.listener_extra);
    t.push('\n');
    if !spec.web.is_empty() {
        let eps: Vec<String> = spec.web.iter().map(|a| format!("\"{a}\"")).collect();
        t.push_str(&format!(
            "\n[[clusters]]\nname = \"web\"\nendpoints = [{}]\n",
            eps.join(", ")
        ));
    }
    t.push('\n');
    t.push_str(spec.extra);
    t.push('\n');
    t
}

/// A running proxy and the address of its one listener.
pub struct Rig {
    pub proxy: Proxy,
    pub listen: SocketAddr,
}

impl Rig {
    /// Starts `ringway` for `spec` on free ports and waits for `/ready`.
    pub fn start(spec: &Spec<'_>) -> Rig {
        let (listen, admin) = (free_port(), free_port());
        let proxy = Proxy::start(&config(spec, listen, admin));
        Rig {
            proxy,
            listen: SocketAddr::from(([127, 0, 0, 1], listen)),
        }
    }

    /// One cluster `web` over `upstream`, `workers` executors, listener options `extra`.
    pub fn simple(workers: u32, upstream: SocketAddr, listener_extra: &str) -> Rig {
        let mut spec = Spec::new(workers, &[upstream]);
        spec.listener_extra = listener_extra;
        Rig::start(&spec)
    }

    /// A new client connection to the listener.
    pub fn client(&self) -> Client {
        Client::connect(self.listen)
    }
}

/// Length of [`pattern_chunk`]: a multiple of 26, so consecutive copies continue the pattern.
pub const PATTERN_CHUNK_LEN: usize = 26 * 2521;

/// `PATTERN_CHUNK_LEN` bytes of the upstream body pattern (`b'a' + i % 26`), starting at 0.
/// Writing it back to back (with a shorter last slice) produces the pattern of any length.
pub fn pattern_chunk() -> Vec<u8> {
    (0..PATTERN_CHUNK_LEN)
        .map(|i| b'a' + (i % 26) as u8)
        .collect()
}
