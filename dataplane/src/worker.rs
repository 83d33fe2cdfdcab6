//! One worker's state: everything a single executor thread owns — its io_uring driver, the
//! compiled view of the configuration, upstream pools, metrics shard, parking lot, queues —
//! in one [`Worker`] that the protocol code (`listener`, `proxy`, `l4`, `upstream`) borrows.
//!
//! This module sits below the protocol code and above the building blocks it aggregates
//! (`cluster`, `pool`, `route`, `policy`, `telemetry`, `transport`, `uring`): nothing here
//! knows HTTP or L4. `runtime` assembles a worker and runs its control loop.
//!
//! - `view`: [`View`], one configuration compiled for this worker.
//! - `control`: [`Shared`] and [`Control`], what crosses threads.
//! - `mirror_queue`: [`MirrorQueue`], shadow requests waiting for a sender.
//!
//! INVARIANT: a `Worker` never leaves its thread; everything in it is `Rc`/`Cell`/`RefCell`.
//! A config reload replaces `view` between requests; a request keeps the `Rc<View>` it
//! started with.

mod control;
mod mirror_queue;
mod view;

pub use control::{Control, Endpoints, Shared};
pub use mirror_queue::{MirrorJob, MirrorQueue, QUEUE_CAPACITY};
pub use view::{head_limits, ListenerView, View};

use std::cell::{Cell, RefCell};
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use crate::base::{ConnSlab, FastRng};
use crate::config::Config;
use crate::pool::Pools;
use crate::telemetry::access_log::{AccessLogs, CoreLog};
use crate::telemetry::MetricsShard;
use crate::transport::{ParkingLot, PipePool};
use crate::uring::Driver;

/// The state of one worker thread. See the module doc.
pub struct Worker {
    pub id: usize,
    pub driver: Rc<Driver>,
    pub shared: Arc<Shared>,
    pub view: RefCell<Rc<View>>,
    pub metrics: MetricsShard,
    pub pools: RefCell<Pools>,
    pub rng: RefCell<FastRng>,
    pub draining: Cell<bool>,
    /// While draining: close idle keep-alive connections at once (see `Control::Drain`).
    pub close_idle: Cell<bool>,
    /// Closed on drain: the accept loops stop (serving what they already accepted).
    pub stop_accepting: glommio::sync::Semaphore,
    pub active: Cell<usize>,
    pub request_seq: Cell<u64>,
    /// Per-process random prefix of generated request ids.
    pub id_prefix: u32,
    /// Executors in the process (process-wide limits are shared out by it).
    pub workers: usize,
    /// Control channels of every worker (this one included), for health broadcasts.
    pub peers: Vec<flume::Sender<Control>>,
    /// Mirrored requests waiting for a sender task.
    pub mirror: MirrorQueue,
    /// Idle keep-alive client connections held without a task.
    pub lot: ParkingLot,
    /// Idle pipes for spliced relays.
    pub pipes: PipePool,
    /// Page-backed blocks holding active connection tasks.
    pub conn_slab: ConnSlab,
    /// This core's session-ticket key, kept across certificate rotations and reloads.
    pub tickets: Arc<dyn rustls::server::ProducesTickets>,
    /// This core's access-log buffers (made when the first line is logged).
    pub access_log: std::cell::OnceCell<Option<CoreLog>>,
    /// Scratch for formatting one access-log line.
    pub log_line: RefCell<Vec<u8>>,
    /// This core's span buffers for the OTLP exporter (made when the first span is).
    pub span_log: std::cell::OnceCell<Option<CoreLog>>,
}

impl Worker {
    /// A worker over `driver` serving `config` with its resolved `endpoints`.
    pub fn new(
        id: usize,
        driver: Rc<Driver>,
        config: Arc<Config>,
        endpoints: &[Vec<SocketAddr>],
        shared: Arc<Shared>,
        peers: Vec<flume::Sender<Control>>,
        seed: u64,
    ) -> Worker {
        let listener_names: Vec<String> = config.listeners.iter().map(|l| l.name.clone()).collect();
        let cluster_names: Vec<String> = config.clusters.iter().map(|c| c.name.clone()).collect();
        let workers = shared.workers;
        Worker {
            id,
            driver,
            view: RefCell::new(Rc::new(View::new(config, endpoints, seed, workers))),
            shared,
            metrics: MetricsShard::new(&listener_names, &cluster_names),
            pools: RefCell::new(Pools::default()),
            rng: RefCell::new(FastRng::new(seed)),
            draining: Cell::new(false),
            close_idle: Cell::new(true),
            stop_accepting: glommio::sync::Semaphore::new(0),
            active: Cell::new(0),
            request_seq: Cell::new(0),
            id_prefix: (seed >> 16) as u32,
            workers,
            peers,
            mirror: MirrorQueue::default(),
            lot: ParkingLot::default(),
            pipes: PipePool::default(),
            conn_slab: ConnSlab::default(),
            tickets: crate::tls::per_core::ticketer(),
            access_log: std::cell::OnceCell::new(),
            log_line: RefCell::new(Vec::new()),
            span_log: std::cell::OnceCell::new(),
        }
    }

    /// Builds this core's TLS configs from `set` for the current view.
    pub fn install_tls(&self, set: &crate::tls::TlsSet) {
        let view = self.view();
        let tls = crate::tls::WorkerTls::build(set, &view.config, &self.tickets);
        *view.tls.borrow_mut() = Rc::new(tls);
    }

    /// This core's access-log buffers (`None`: the writer thread could not start).
    pub fn core_log(&self) -> Option<&CoreLog> {
        self.access_log
            .get_or_init(|| AccessLogs::global().map(AccessLogs::core))
            .as_ref()
    }

    /// This core's span buffers (`None`: the exporter thread could not start).
    pub fn core_spans(&self) -> Option<&CoreLog> {
        self.span_log
            .get_or_init(crate::telemetry::otlp::core)
            .as_ref()
    }

    /// The current view (a request keeps the one it started with).
    pub fn view(&self) -> Rc<View> {
        self.view.borrow().clone()
    }

    /// Installs `new`, carrying over what a reload keeps (see [`View::inherit`]).
    pub fn swap_view(&self, mut new: View) {
        new.inherit(&self.view());
        *self.view.borrow_mut() = Rc::new(new);
    }

    /// Draining, and idle connections are to close now rather than after one more request.
    pub fn closing_idle(&self) -> bool {
        self.draining.get() && self.close_idle.get()
    }

    pub fn conn_opened(&self) {
        self.active.set(self.active.get() + 1);
        self.shared.active[self.id].store(self.active.get(), Ordering::Relaxed);
    }

    pub fn conn_closed(&self) {
        self.active.set(self.active.get().saturating_sub(1));
        self.shared.active[self.id].store(self.active.get(), Ordering::Relaxed);
    }

    /// A request id: `<8 hex prefix>-<worker>-<16 hex sequence>`, formatted on the stack;
    /// returns its length in `out`.
    pub fn next_request_id(&self, out: &mut [u8; 32]) -> usize {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let seq = self.request_seq.get().wrapping_add(1);
        self.request_seq.set(seq);
        let mut n = 0;
        for i in (0..8).rev() {
            out[n] = HEX[((self.id_prefix >> (i * 4)) & 0xf) as usize];
            n += 1;
        }
        out[n] = b'-';
        out[n + 1] = HEX[self.id % 16];
        out[n + 2] = b'-';
        n += 3;
        for i in (0..16).rev() {
            out[n] = HEX[((seq >> (i * 4)) & 0xf) as usize];
            n += 1;
        }
        n
    }
}
