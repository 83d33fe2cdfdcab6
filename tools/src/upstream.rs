//! The test and fault upstream: binds, prints `listening on IP:PORT`, serves each
//! connection on its own thread. See [`conn`] for the special paths and [`options::Fault`]
//! for the fault modes.
//!
//! Invariants: the `listening on` line is the only thing written to stdout, exactly once,
//! flushed before the first connection is accepted; counters only ever grow.

pub mod conn;
pub mod options;
pub mod respond;
pub mod wire;

use std::io::{self, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use socket2::{Domain, Socket, Type};

pub use options::{Fault, Options};
pub use respond::{fill_pattern, pattern_byte};

/// Stack size of each connection thread (all buffers are on the heap).
const CONN_STACK_BYTES: usize = 256 * 1024;
/// Listen backlog: benchmarks open thousands of connections at once.
const BACKLOG: i32 = 4096;

/// Counters served at `/__stats`.
#[derive(Debug, Default)]
pub struct Stats {
    /// Requests seen, `/__stats` excluded.
    pub requests: AtomicU64,
    /// Connections that carried at least one counted request.
    pub connections: AtomicU64,
    /// Connections accepted, whatever they carried.
    pub accepted: AtomicU64,
}

impl Stats {
    /// `requests=N connections=M accepted=K\n`
    pub fn render(&self) -> String {
        format!(
            "requests={} connections={} accepted={}\n",
            self.requests.load(Relaxed),
            self.connections.load(Relaxed),
            self.accepted.load(Relaxed)
        )
    }
}

/// State shared by every connection thread.
#[derive(Debug)]
pub struct Shared {
    pub opts: Options,
    pub stats: Stats,
    /// Sequence for the deterministic `error-rate` fault.
    pub error_seq: AtomicU64,
}

/// A bound upstream, not yet serving.
pub struct Server {
    listener: Option<TcpListener>,
    local_addr: SocketAddr,
    shared: Arc<Shared>,
}

impl Server {
    /// Binds `opts.listen`. In the `refuse` fault the socket is bound to learn the port and
    /// closed again, so connections to it are refused.
    pub fn bind(opts: Options) -> io::Result<Server> {
        let addr = opts.listen;
        let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
        socket.set_reuse_address(true)?;
        socket.bind(&addr.into())?;
        let local_addr = socket
            .local_addr()?
            .as_socket()
            .ok_or_else(|| io::Error::other("bound address is not an IP socket"))?;
        let listener = if opts.fault == Fault::Refuse {
            None
        } else {
            socket.listen(BACKLOG)?;
            Some(socket.into())
        };
        Ok(Server {
            listener,
            local_addr,
            shared: Arc::new(Shared {
                opts,
                stats: Stats::default(),
                error_seq: AtomicU64::new(0),
            }),
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    pub fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    /// Accepts forever (in `refuse`, sleeps forever). Returns only on a fatal error.
    pub fn serve(self) -> io::Result<()> {
        let Some(listener) = &self.listener else {
            loop {
                thread::sleep(Duration::from_secs(3600));
            }
        };
        loop {
            match listener.accept() {
                Ok((stream, _)) => self.spawn_conn(stream),
                // EMFILE and friends: back off instead of spinning.
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    if self.shared.opts.verbose {
                        eprintln!("ringway-upstream: accept: {e}");
                    }
                    thread::sleep(Duration::from_millis(10));
                }
            }
        }
    }

    fn spawn_conn(&self, stream: TcpStream) {
        self.shared.stats.accepted.fetch_add(1, Relaxed);
        let shared = Arc::clone(&self.shared);
        let spawned = thread::Builder::new()
            .name("conn".into())
            .stack_size(CONN_STACK_BYTES)
            .spawn(move || conn::serve(stream, &shared));
        if let Err(e) = spawned {
            // The stream moved into the failed closure and is closed with it.
            eprintln!("ringway-upstream: cannot spawn a connection thread: {e}");
        }
    }
}

/// Raises the soft open-files limit to the hard one (benchmarks hold thousands of
/// connections; the default soft limit is often 1024). Best effort.
pub fn raise_fd_limit() {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes one `rlimit` into the valid, exclusively borrowed `lim`.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return;
    }
    if lim.rlim_cur < lim.rlim_max {
        lim.rlim_cur = lim.rlim_max;
        // SAFETY: setrlimit only reads the valid `lim`; failure leaves the limit unchanged.
        let _ = unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) };
    }
}

/// Binds, prints `listening on IP:PORT` (flushed), then serves forever.
pub fn run(opts: Options) -> io::Result<()> {
    raise_fd_limit();
    let server = Server::bind(opts)?;
    let mut out = io::stdout().lock();
    writeln!(out, "listening on {}", server.local_addr())?;
    out.flush()?;
    drop(out);
    server.serve()
}
