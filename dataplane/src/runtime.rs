//! The process runtime: preflight checks, one glommio executor per worker (pinned while
//! workers ≤ cores), per-worker listeners bound with SO_REUSEPORT, the admin executor, and the
//! control plane (readiness, scrapes, drain, reload) between them.
//!
//! Invariants: a worker's state ([`worker::Worker`]) lives on its own thread only; threads
//! share only [`Shared`] (atomics read off the hot path) and control messages over channels.
//! All sockets are bound before any worker starts, so a port in use fails the start.

pub mod control;
pub mod handover;
pub mod memory;
pub mod preflight;
pub mod worker;

use std::net::SocketAddr;
use std::os::fd::{IntoRawFd, RawFd};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::config::Config;

pub use crate::worker::{Control, Endpoints, Shared};
pub use preflight::preflight;

/// Why the runtime could not start.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error(transparent)]
    Uring(#[from] crate::uring::UringError),
    #[error("cannot bind {what} {addr}")]
    Bind {
        what: &'static str,
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot start worker executor: {0}")]
    Executor(String),
    #[error("locked-memory limit (ulimit -l) is {have} KiB but {need} KiB are needed for {workers} workers; raise it or lower --workers")]
    MemLock {
        have: u64,
        need: u64,
        workers: usize,
    },
    #[error("worker {0} failed to start: {1}")]
    Worker(usize, String),
}

/// A listening socket per (worker, listener), bound before the workers start.
pub fn bind_listener(addr: SocketAddr) -> std::io::Result<RawFd> {
    bind_socket(addr, false)
}

/// The listening socket of `l`: `IP_TRANSPARENT` for a TPROXY listener (needs
/// `CAP_NET_ADMIN`), so that it accepts connections addressed to any destination.
pub fn bind_listener_for(l: &crate::config::ListenerConfig) -> std::io::Result<RawFd> {
    bind_socket(
        l.bind,
        l.interception == crate::config::Interception::Tproxy,
    )
}

fn bind_socket(addr: SocketAddr, transparent: bool) -> std::io::Result<RawFd> {
    use socket2::{Domain, Protocol, Socket, Type};
    let sock = Socket::new(
        Domain::for_address(addr),
        Type::STREAM.nonblocking().cloexec(),
        Some(Protocol::TCP),
    )?;
    sock.set_reuse_address(true)?;
    sock.set_reuse_port(true)?;
    sock.set_nodelay(true)?;
    if addr.is_ipv6() {
        sock.set_only_v6(true)?;
    }
    if transparent {
        sock.set_ip_transparent(true)?;
    }
    sock.bind(&addr.into())?;
    sock.listen(4096)?;
    Ok(sock.into_raw_fd())
}

/// How many workers to run: the config's, overridden by `--workers`, else all cores.
pub fn worker_count(config: &Config, cli: Option<usize>) -> usize {
    cli.or(config.runtime.workers)
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
        .max(1)
}

/// A running proxy: worker threads, the admin thread, and the channels to steer them.
pub struct Running {
    pub shared: Arc<Shared>,
    pub controls: Vec<flume::Sender<Control>>,
    threads: Vec<glommio::ExecutorJoinHandle<()>>,
    admin: Option<std::thread::JoinHandle<()>>,
    /// Copies of every listening socket (and the admin's), for a successor.
    handover_fds: Vec<(handover::SocketInfo, RawFd)>,
}

impl Running {
    /// Sends `msg` built per worker to every worker.
    pub fn broadcast(&self, mut msg: impl FnMut() -> Control) {
        for c in &self.controls {
            let _ = c.send(msg());
        }
    }

    /// Graceful drain: stop accepting, wait for connections to finish (bounded), then stop.
    /// `close_idle`: close idle keep-alive connections at once (SIGTERM) rather than after
    /// their next request (a handover to a successor; see `Control::Drain`).
    pub fn drain(mut self, timeout: Duration, close_idle: bool) -> usize {
        // Our handover copies go first, so that the sockets close with the workers' (SIGTERM)
        // or live on only in the successor (handover).
        self.close_handover_copies();
        self.shared
            .handed_over
            .store(!close_idle, Ordering::Release);
        self.shared.draining.store(true, Ordering::Release);
        self.broadcast(|| Control::Drain { close_idle });
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline && self.shared.active_connections() > 0 {
            std::thread::sleep(Duration::from_millis(20));
        }
        let left = self.shared.active_connections();
        self.stop();
        left
    }

    /// The listening sockets a successor takes over (descriptors stay owned by `self`).
    pub fn handover_sockets(&self) -> Vec<(handover::SocketInfo, RawFd)> {
        self.handover_fds.clone()
    }

    fn close_handover_copies(&mut self) {
        for (_, fd) in self.handover_fds.drain(..) {
            // SAFETY: our own copies (see `dup`), closed once (drained from the list).
            unsafe { libc::close(fd) };
        }
    }

    pub fn stop(mut self) {
        self.close_handover_copies();
        self.broadcast(|| Control::Stop);
        for t in self.threads {
            let _ = t.join();
        }
        drop(self.admin);
    }
}

/// Binds everything, starts the workers and the admin executor, waits until every worker is
/// serving (or one failed).
pub fn start(
    config: Arc<Config>,
    endpoints: Endpoints,
    workers: usize,
    config_text: control::ConfigText,
    tls: Arc<crate::tls::TlsSet>,
) -> Result<Running, RuntimeError> {
    start_with(
        config,
        endpoints,
        workers,
        config_text,
        tls,
        &mut handover::Inherited::default(),
        false,
    )
}

/// As [`start`], serving on sockets inherited from a predecessor where they match a listener
/// (name and bind) and binding the rest. Inherited sockets beyond one per worker are accepted
/// on too (a predecessor with more workers), so no accept queue is left unserved. With
/// `handover`, copies of the listening sockets are kept for a successor
/// ([`Running::handover_sockets`]) until the drain begins.
pub fn start_with(
    config: Arc<Config>,
    endpoints: Endpoints,
    workers: usize,
    config_text: control::ConfigText,
    tls: Arc<crate::tls::TlsSet>,
    inherited: &mut handover::Inherited,
    handover: bool,
) -> Result<Running, RuntimeError> {
    preflight::check_memlock(workers)?;
    // One socket per (worker, listener), bound up front (a port in use fails here) unless
    // inherited.
    let mut fds: Vec<Vec<(usize, RawFd)>> = vec![Vec::new(); workers];
    for (li, l) in config.listeners.iter().enumerate() {
        let mut taken = inherited.take_listener(&l.name, l.bind).into_iter();
        for per in fds.iter_mut() {
            let fd = match taken.next() {
                Some(fd) => fd,
                None => bind_listener_for(l).map_err(|source| RuntimeError::Bind {
                    what: "listener",
                    addr: l.bind,
                    source,
                })?,
            };
            per.push((li, fd));
        }
        for (i, fd) in taken.enumerate() {
            fds[i % workers].push((li, fd));
        }
    }
    // Copies kept for a later handover to a successor (the workers close theirs on drain).
    let mut handover_fds = Vec::new();
    for per in fds.iter().filter(|_| handover) {
        for &(li, fd) in per {
            let l = &config.listeners[li];
            handover_fds.push((
                handover::SocketInfo {
                    listener: Some(l.name.clone()),
                    bind: l.bind,
                },
                dup(fd)?,
            ));
        }
    }
    let admin_listener = match &config.admin {
        Some(a) => Some(match inherited.take_admin(a.bind) {
            // SAFETY: an inherited descriptor is a listening TCP socket we own alone.
            Some(fd) => unsafe {
                <std::net::TcpListener as std::os::fd::FromRawFd>::from_raw_fd(fd)
            },
            None => std::net::TcpListener::bind(a.bind).map_err(|source| RuntimeError::Bind {
                what: "admin",
                addr: a.bind,
                source,
            })?,
        }),
        None => None,
    };
    if let (Some(l), Some(a), true) = (&admin_listener, &config.admin, handover) {
        handover_fds.push((
            handover::SocketInfo {
                listener: None,
                bind: a.bind,
            },
            dup(std::os::fd::AsRawFd::as_raw_fd(l))?,
        ));
    }
    let shared = Arc::new(Shared::new(workers));
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let (fail_tx, fail_rx) = flume::unbounded::<(usize, String)>();
    let (controls, receivers): (Vec<_>, Vec<_>) = (0..workers).map(|_| flume::unbounded()).unzip();
    let mut threads = Vec::new();
    for ((id, listener_fds), rx) in fds.into_iter().enumerate().zip(receivers) {
        let peers = controls.clone();
        let placement = if workers <= cores {
            glommio::Placement::Fixed(id)
        } else {
            glommio::Placement::Unbound
        };
        let cfg = config.clone();
        let eps = endpoints.clone();
        let sh = shared.clone();
        let fail = fail_tx.clone();
        let tls = tls.clone();
        let handle = glommio::LocalExecutorBuilder::new(placement)
            .name(&format!("ringway-w{id}"))
            .io_memory(preflight::GLOMMIO_IO_MEMORY)
            .ring_depth(128)
            .spawn(move || async move {
                if let Err(e) = worker::run(
                    id,
                    worker::Serving {
                        config: cfg,
                        endpoints: eps,
                        tls,
                    },
                    listener_fds,
                    sh,
                    rx,
                    peers,
                )
                .await
                {
                    let _ = fail.send((id, e));
                }
            })
            .map_err(|e| RuntimeError::Executor(e.to_string()))?;
        threads.push(handle);
    }
    drop(fail_tx);
    // Wait for readiness or the first failure.
    let deadline = Instant::now() + Duration::from_secs(10);
    while shared.ready_workers.load(Ordering::Acquire) < workers {
        if let Ok((id, e)) = fail_rx.recv_timeout(Duration::from_millis(5)) {
            for c in &controls {
                let _ = c.send(Control::Stop);
            }
            return Err(RuntimeError::Worker(id, e));
        }
        if Instant::now() > deadline {
            return Err(RuntimeError::Worker(
                0,
                "did not become ready in 10s".into(),
            ));
        }
    }
    let admin = match admin_listener {
        Some(l) => Some(control::spawn_admin(
            l,
            shared.clone(),
            controls.clone(),
            config_text,
        )?),
        None => None,
    };
    Ok(Running {
        shared,
        controls,
        threads,
        admin,
        handover_fds,
    })
}

/// A close-on-exec copy of `fd`.
fn dup(fd: RawFd) -> Result<RawFd, RuntimeError> {
    // SAFETY: fcntl(F_DUPFD_CLOEXEC) on a descriptor we hold; it touches no memory.
    let copy = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 0) };
    if copy < 0 {
        return Err(RuntimeError::Executor(format!(
            "cannot duplicate a listening socket: {}",
            std::io::Error::last_os_error()
        )));
    }
    Ok(copy)
}
