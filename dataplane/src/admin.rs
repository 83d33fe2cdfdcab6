//! The admin HTTP/1.1 server: a live dashboard at `/`, `GET /ready`, `/metrics`, `/stats`,
//! `/clusters`, `/certs`, `/config`, `/logging` (and `POST /logging?level=`, `POST /reload`),
//! an index at `/help`.
//!
//! It runs on one worker executor, in a low-share task queue (`Shares::Static(1)`,
//! `Latency::NotImportant`) so it never competes with proxying; the runtime decides which
//! worker and hands over a bound `glommio::net::TcpListener`. What the server reports comes
//! from an [`AdminState`] the runtime implements (readiness, draining, a cross-core metrics
//! snapshot, the active config text).
//!
//! - [`http`]: request-head parsing (httparse, bounded to [`http::MAX_HEAD_BYTES`]), routing,
//!   response building. Pure, never panics on input.
//! - [`views`]: the bodies of `/stats`, `/clusters` and `/certs` (text and JSON), and the
//!   dashboard page.
//! - [`conn`]: the accept loop and one spawned task per connection, at most
//!   [`MAX_CONNECTIONS`] at a time by default (further connections wait in the kernel backlog), each with
//!   read/write timeouts and one request per connection (`Connection: close`).
//!
//! This is not the hot path: allocating per request is fine here.

pub mod conn;
pub mod http;
pub mod views;

use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::time::Duration;

use glommio::{Latency, Shares, Task};

use crate::cluster::status::ClusterStatus;
use crate::telemetry::MetricsSnapshot;

pub use conn::{serve, serve_with};

/// Most admin connections served at once.
pub const MAX_CONNECTIONS: usize = 64;
/// Longest wait for one read from an admin client.
pub const READ_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest wait for one write to an admin client.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest time a client may take to send its whole request head.
pub const HEAD_DEADLINE: Duration = Duration::from_secs(10);

/// Bounds on admin clients; [`Default`] gives the constants above.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AdminLimits {
    /// Most connections served at once; more wait in the kernel backlog. At least 1.
    pub max_connections: usize,
    /// Longest wait for one read. Non-zero.
    pub read_timeout: Duration,
    /// Longest wait for one write. Non-zero.
    pub write_timeout: Duration,
    /// Longest time to receive a whole request head (answered 408 past it).
    pub head_deadline: Duration,
}

impl Default for AdminLimits {
    fn default() -> AdminLimits {
        AdminLimits {
            max_connections: MAX_CONNECTIONS,
            read_timeout: READ_TIMEOUT,
            write_timeout: WRITE_TIMEOUT,
            head_deadline: HEAD_DEADLINE,
        }
    }
}

/// The future of [`AdminState::metrics`]: a merged snapshot of every worker's shard.
pub type MetricsFuture<'a> = Pin<Box<dyn Future<Output = MetricsSnapshot> + 'a>>;
/// The future of [`AdminState::clusters`]: every worker's endpoint status, by core.
pub type ClustersFuture<'a> = Pin<Box<dyn Future<Output = Vec<Vec<ClusterStatus>>> + 'a>>;

/// What the admin server reports; implemented by the runtime.
pub trait AdminState {
    /// Every listener on every worker is bound.
    fn ready(&self) -> bool;
    /// A drain (SIGTERM/SIGINT) has begun.
    fn draining(&self) -> bool;
    /// Collect and merge the metrics of all workers (e.g. by asking each over a channel).
    fn metrics(&self) -> MetricsFuture<'_>;
    /// The active configuration, as TOML text.
    fn config_text(&self) -> String;
    /// Every worker's view of every endpoint, indexed by core.
    fn clusters(&self) -> ClustersFuture<'_> {
        Box::pin(async { Vec::new() })
    }
    /// The log filter in force.
    fn log_filter(&self) -> String {
        String::new()
    }
    /// Replaces the log filter (`Err`: why not).
    fn set_log_filter(&self, _filter: &str) -> Result<(), String> {
        Err("changing the log level is not supported here".into())
    }
    /// Asks for a reload of the config file, as SIGHUP does (`Err`: why not).
    fn reload(&self) -> Result<(), String> {
        Err("reload is not supported here".into())
    }
}

/// Errors starting the admin server.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// The low-share task queue could not be created or spawned into.
    #[error("cannot spawn the admin task: {0}")]
    Spawn(String),
}

/// Create the low-share `"admin"` task queue on the current executor and spawn [`serve`] into
/// it. Keep the returned task to stop the server by dropping it, or `detach` it.
///
/// Must be called from inside a glommio executor.
pub fn spawn(
    listener: glommio::net::TcpListener,
    state: Rc<dyn AdminState>,
) -> Result<Task<()>, AdminError> {
    let queue =
        glommio::executor().create_task_queue(Shares::Static(1), Latency::NotImportant, "admin");
    glommio::spawn_local_into(serve(listener, state), queue)
        .map_err(|e| AdminError::Spawn(e.to_string()))
}

#[cfg(test)]
mod tests;
