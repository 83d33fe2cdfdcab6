//! One worker: the state a single executor thread owns (driver, compiled config view, pools,
//! balancers, metrics shard) and its control loop.
//!
//! INVARIANT: a `Worker` never leaves its thread; everything in it is `Rc`/`Cell`/`RefCell`.
//! A config reload replaces `view` between requests; a request keeps the `Rc<View>` it
//! started with.

use std::cell::{Cell, RefCell};
use std::net::SocketAddr;
use std::os::fd::RawFd;
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::cluster::balancer::Balancer;
use crate::cluster::breaker::CircuitBreaker;
use crate::cluster::outlier::OutlierDetector;
use crate::cluster::rng::FastRng;
use crate::config::{Config, LbPolicy};
use crate::http::HeadLimits;
use crate::policy::RouteState;
use crate::pool::Pools;
use crate::route::RouteTable;
use crate::runtime::{Control, Shared};
use crate::telemetry::MetricsShard;
use crate::uring::{Driver, DriverConfig};

/// The compiled, per-worker view of one configuration.
pub struct View {
    pub config: Arc<Config>,
    pub listeners: Vec<ListenerView>,
    pub clusters: Vec<ClusterView>,
}

pub struct ListenerView {
    pub routes: RouteTable,
    pub head_limits: HeadLimits,
    /// Per-core policy state of each route, indexed like `ListenerConfig::routes`.
    pub route_states: Vec<RefCell<RouteState>>,
}

pub struct ClusterView {
    pub endpoints: Vec<SocketAddr>,
    pub balancer: RefCell<Balancer>,
    pub breaker: Option<CircuitBreaker>,
    pub outlier: Option<RefCell<OutlierDetector>>,
    /// `true` = failed active health checks (set from the checker's broadcasts).
    pub health_down: RefCell<Vec<bool>>,
    /// Scratch: health ∪ ejected, handed to the balancer as `unavailable`.
    pub unavailable: RefCell<Vec<bool>>,
}

impl View {
    pub fn new(
        config: Arc<Config>,
        endpoints: &[Vec<SocketAddr>],
        seed: u64,
        workers: usize,
    ) -> View {
        let now = Instant::now();
        let listeners = config
            .listeners
            .iter()
            .map(|l| ListenerView {
                routes: RouteTable::new(l),
                head_limits: HeadLimits::from_config(&l.limits),
                route_states: l
                    .routes
                    .iter()
                    .map(|r| RefCell::new(RouteState::new(&r.policy, workers, now)))
                    .collect(),
            })
            .collect();
        let clusters = config
            .clusters
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let eps = endpoints.get(i).cloned().unwrap_or_default();
                let policy: LbPolicy = c.lb;
                let res = &c.resilience;
                ClusterView {
                    balancer: RefCell::new(Balancer::with_addrs(
                        policy,
                        &eps,
                        seed ^ (i as u64) << 32,
                    )),
                    breaker: res
                        .circuit_breaker
                        .as_ref()
                        .map(|b| CircuitBreaker::new(b, workers)),
                    outlier: res
                        .outlier_detection
                        .map(|o| RefCell::new(OutlierDetector::new(o, eps.len()))),
                    health_down: RefCell::new(vec![false; eps.len()]),
                    unavailable: RefCell::new(Vec::with_capacity(eps.len())),
                    endpoints: eps,
                }
            })
            .collect();
        View {
            config,
            listeners,
            clusters,
        }
    }
}

pub struct Worker {
    pub id: usize,
    pub driver: Rc<Driver>,
    pub shared: Arc<Shared>,
    pub view: RefCell<Rc<View>>,
    pub metrics: MetricsShard,
    pub pools: RefCell<Pools>,
    pub rng: RefCell<FastRng>,
    pub draining: Cell<bool>,
    pub active: Cell<usize>,
    pub request_seq: Cell<u64>,
    /// Per-process random prefix of generated request ids.
    pub id_prefix: u32,
    /// Executors in the process (process-wide limits are shared out by it).
    pub workers: usize,
    /// Control channels of every worker (this one included), for health broadcasts.
    pub peers: Vec<flume::Sender<Control>>,
    /// Mirrored requests waiting for a sender task.
    pub mirror: crate::proxy::mirror::MirrorQueue,
    /// Idle keep-alive client connections held without a task.
    pub lot: crate::proxy::park::ParkingLot,
    /// Idle pipes for spliced body relays.
    pub pipes: crate::proxy::splice::PipePool,
    /// Page-backed blocks holding active connection tasks.
    pub conn_slab: crate::proxy::conn_slab::ConnSlab,
}

impl Worker {
    pub fn view(&self) -> Rc<View> {
        self.view.borrow().clone()
    }

    pub fn conn_opened(&self) {
        self.active.set(self.active.get() + 1);
        self.shared.active[self.id].store(self.active.get(), Ordering::Relaxed);
    }

    pub fn conn_closed(&self) {
        self.active.set(self.active.get().saturating_sub(1));
        self.shared.active[self.id].store(self.active.get(), Ordering::Relaxed);
    }
}

fn seed(id: usize) -> u64 {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    t ^ ((id as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15))
}

/// Installs `new`, carrying over health-check results of endpoints that are still there
/// (requests in flight keep the old view until they finish).
fn swap_view(w: &Worker, new: View) {
    let old = w.view();
    for (ci, c) in new.config.clusters.iter().enumerate() {
        let Some(oi) = old.config.clusters.iter().position(|o| o.name == c.name) else {
            continue;
        };
        let (oc, nc) = (&old.clusters[oi], &new.clusters[ci]);
        let old_down = oc.health_down.borrow();
        let mut new_down = nc.health_down.borrow_mut();
        for (i, addr) in nc.endpoints.iter().enumerate() {
            if let Some(j) = oc.endpoints.iter().position(|a| a == addr) {
                new_down[i] = old_down.get(j).copied().unwrap_or(false);
            }
        }
    }
    drop(old);
    *w.view.borrow_mut() = Rc::new(new);
}

/// Keeps pooled connections only to endpoints that still exist (pools of unchanged endpoints
/// survive a reload).
fn retain_known_endpoints(w: &Worker, eps: &[Vec<SocketAddr>]) {
    w.pools
        .borrow_mut()
        .retain_endpoints(|a| eps.iter().any(|c| c.contains(&a)));
}

/// Runs worker `id` until told to stop. Errors are reported to the starter as text.
pub async fn run(
    id: usize,
    config: Arc<Config>,
    endpoints: Arc<Vec<Vec<SocketAddr>>>,
    listener_fds: Vec<RawFd>,
    shared: Arc<Shared>,
    control: flume::Receiver<Control>,
    peers: Vec<flume::Sender<Control>>,
) -> Result<(), String> {
    let io = &config.runtime.io;
    let driver = Driver::new(DriverConfig {
        ring_entries: io.ring_entries,
        recv_buffers: io.recv_buffers,
        recv_buffer_size: io.recv_buffer_size,
    })
    .map_err(|e| e.to_string())?;
    driver.set_idle_hook(super::memory::collect, super::memory::COLLECT_EVERY);
    glommio::spawn_local(driver.clone().run()).detach();
    let s = seed(id);
    let listener_names: Vec<String> = config.listeners.iter().map(|l| l.name.clone()).collect();
    let cluster_names: Vec<String> = config.clusters.iter().map(|c| c.name.clone()).collect();
    let w = Rc::new(Worker {
        id,
        driver: driver.clone(),
        shared: shared.clone(),
        view: RefCell::new(Rc::new(View::new(
            config.clone(),
            &endpoints,
            s,
            shared.workers,
        ))),
        metrics: MetricsShard::new(&listener_names, &cluster_names),
        pools: RefCell::new(Pools::default()),
        rng: RefCell::new(FastRng::new(s)),
        draining: Cell::new(false),
        active: Cell::new(0),
        request_seq: Cell::new(0),
        id_prefix: (s >> 16) as u32,
        workers: shared.workers,
        peers,
        mirror: Default::default(),
        lot: Default::default(),
        pipes: Default::default(),
        conn_slab: Default::default(),
    });
    crate::proxy::mirror::spawn_senders(&w);
    let parking = glommio::spawn_local(crate::proxy::park::run(w.clone()));
    if id == 0 {
        glommio::spawn_local(crate::proxy::health::run_checker(w.clone())).detach();
    }
    let mut accepts = Vec::new();
    for (i, fd) in listener_fds.iter().enumerate() {
        accepts.push(glommio::spawn_local(crate::listener::accept_loop(
            w.clone(),
            i,
            *fd,
        )));
    }
    // Expire idle upstream connections even when no request comes to do it.
    let sweeper = {
        let w = w.clone();
        glommio::spawn_local(async move {
            loop {
                crate::uring::sleep(&w.driver, Duration::from_secs(1)).await;
                let view = w.view();
                let now = Instant::now();
                let mut pools = w.pools.borrow_mut();
                for (c, cv) in view.config.clusters.iter().zip(view.clusters.iter()) {
                    for addr in &cv.endpoints {
                        pools.sweep(*addr, c.pool.idle_timeout, now);
                    }
                }
            }
        })
    };
    shared.ready_workers.fetch_add(1, Ordering::AcqRel);
    while let Ok(msg) = control.recv_async().await {
        match msg {
            Control::Scrape(reply) => {
                let _ = reply.send(w.metrics.snapshot());
            }
            Control::Reload(cfg, eps) => {
                swap_view(&w, View::new(cfg, &eps, seed(id), w.workers));
                retain_known_endpoints(&w, &eps);
            }
            Control::Endpoints(eps) => {
                let cfg = w.view().config.clone();
                swap_view(&w, View::new(cfg, &eps, seed(id), w.workers));
                retain_known_endpoints(&w, &eps);
            }
            Control::Health { cluster, unhealthy } => {
                let view = w.view();
                let found = view.config.clusters.iter().position(|c| c.name == cluster);
                if let Some(cv) = found.and_then(|i| view.clusters.get(i)) {
                    let mut down = cv.health_down.borrow_mut();
                    for (i, addr) in cv.endpoints.iter().enumerate() {
                        if let Some(d) = down.get_mut(i) {
                            *d = unhealthy.contains(addr);
                        }
                    }
                }
            }
            Control::Drain => {
                w.draining.set(true);
                accepts.clear(); // cancels the accept loops
                for fd in &listener_fds {
                    // SAFETY: the listener descriptors are owned by this worker; the accept
                    // operations on them were cancelled above.
                    unsafe { libc::close(*fd) };
                }
                w.pools.borrow_mut().clear();
            }
            Control::Stop => break,
        }
    }
    drop(sweeper);
    drop(parking);
    drop(accepts);
    w.pools.borrow_mut().clear();
    shared.stopped_workers.fetch_add(1, Ordering::AcqRel);
    driver.stop();
    Ok(())
}
