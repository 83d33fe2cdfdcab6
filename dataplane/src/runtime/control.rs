//! The control side of the runtime: the admin executor (its own small thread, so scrapes and
//! config dumps never run on a worker's hot path) and its [`AdminState`] over the workers.
//!
//! Invariant: the admin thread talks to workers only through their control channels; it never
//! touches a worker's state directly.
// Control plane, off the hot path: Mutexes guard state shared with the signal and DNS threads.
#![allow(clippy::disallowed_types)]

use std::os::fd::{FromRawFd, IntoRawFd};
use std::rc::Rc;
use std::sync::{Arc, Mutex};

use crate::admin::{AdminState, ClustersFuture, MetricsFuture};
use crate::runtime::{Control, RuntimeError, Shared};
use crate::telemetry::MetricsSnapshot;

/// What `/config` prints; replaced on reload.
pub type ConfigText = Arc<Mutex<String>>;

struct RuntimeAdmin {
    shared: Arc<Shared>,
    controls: Vec<flume::Sender<Control>>,
    config_text: ConfigText,
}

impl AdminState for RuntimeAdmin {
    fn ready(&self) -> bool {
        self.shared.ready()
    }

    fn draining(&self) -> bool {
        // After a handover the admin socket is shared with the successor, which serves: the
        // address stays ready.
        self.shared
            .draining
            .load(std::sync::atomic::Ordering::Acquire)
            && !self
                .shared
                .handed_over
                .load(std::sync::atomic::Ordering::Acquire)
    }

    fn metrics(&self) -> MetricsFuture<'_> {
        Box::pin(async move {
            let mut merged: Option<MetricsSnapshot> = None;
            for c in &self.controls {
                let (tx, rx) = flume::bounded(1);
                if c.send(Control::Scrape(tx)).is_err() {
                    continue;
                }
                if let Ok(s) = rx.recv_async().await {
                    match merged.as_mut() {
                        Some(m) => m.merge(&s),
                        None => merged = Some(s),
                    }
                }
            }
            merged.unwrap_or_default()
        })
    }

    fn config_text(&self) -> String {
        self.config_text
            .lock()
            .map(|s| s.clone())
            .unwrap_or_default()
    }

    fn clusters(&self) -> ClustersFuture<'_> {
        Box::pin(async move {
            let mut cores = Vec::new();
            for c in &self.controls {
                let (tx, rx) = flume::bounded(1);
                if c.send(Control::Clusters(tx)).is_err() {
                    continue;
                }
                if let Ok(s) = rx.recv_async().await {
                    cores.push(s);
                }
            }
            cores
        })
    }

    fn log_filter(&self) -> String {
        LOG_FILTER
            .get()
            .map(|h| (h.current)())
            .unwrap_or_else(|| "(not adjustable)".into())
    }

    fn set_log_filter(&self, filter: &str) -> Result<(), String> {
        match LOG_FILTER.get() {
            Some(h) => (h.set)(filter),
            None => Err("the log filter cannot be changed in this process".into()),
        }
    }

    fn reload(&self) -> Result<(), String> {
        // The signal thread owns reloading (validation, TLS, broadcast): ask it as SIGHUP does.
        // SAFETY: raise(3) sends a signal to this process and touches no memory of ours.
        match unsafe { libc::raise(libc::SIGHUP) } {
            0 => Ok(()),
            _ => Err(format!(
                "cannot signal a reload: {}",
                std::io::Error::last_os_error()
            )),
        }
    }
}

/// Replaces the log filter; `Err` says why it could not.
pub type SetLogFilter = Box<dyn Fn(&str) -> Result<(), String> + Send + Sync>;

/// How the binary lets the admin read and replace its log filter.
pub struct LogFilterHandle {
    pub current: Box<dyn Fn() -> String + Send + Sync>,
    pub set: SetLogFilter,
}

static LOG_FILTER: std::sync::OnceLock<LogFilterHandle> = std::sync::OnceLock::new();

/// Installs the binary's log-filter handle (once; later calls are ignored).
pub fn set_log_filter_handle(h: LogFilterHandle) {
    let _ = LOG_FILTER.set(h);
}

/// Starts the admin executor thread serving on `listener`.
pub fn spawn_admin(
    listener: std::net::TcpListener,
    shared: Arc<Shared>,
    controls: Vec<flume::Sender<Control>>,
    config_text: ConfigText,
) -> Result<std::thread::JoinHandle<()>, RuntimeError> {
    listener
        .set_nonblocking(true)
        .map_err(|e| RuntimeError::Executor(e.to_string()))?;
    let fd = listener.into_raw_fd();
    let handle = glommio::LocalExecutorBuilder::new(glommio::Placement::Unbound)
        .name("ringway-admin")
        .io_memory(super::preflight::GLOMMIO_IO_MEMORY)
        .ring_depth(32)
        .spawn(move || async move {
            // SAFETY: `fd` is the bound listening socket handed over above.
            let l = unsafe { glommio::net::TcpListener::from_raw_fd(fd) };
            let state: Rc<dyn AdminState> = Rc::new(RuntimeAdmin {
                shared,
                controls,
                config_text,
            });
            crate::admin::serve(l, state).await;
        })
        .map_err(|e| RuntimeError::Executor(e.to_string()))?;
    Ok(std::thread::spawn(move || {
        let _ = handle.join();
    }))
}
