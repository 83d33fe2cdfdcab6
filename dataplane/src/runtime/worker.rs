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
use crate::cluster::rng::FastRng;
use crate::config::{Config, LbPolicy};
use crate::http::HeadLimits;
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
}

pub struct ClusterView {
    pub endpoints: Vec<SocketAddr>,
    pub balancer: RefCell<Balancer>,
}

impl View {
    pub fn new(config: Arc<Config>, endpoints: &[Vec<SocketAddr>], seed: u64) -> View {
        let listeners = config
            .listeners
            .iter()
            .map(|l| ListenerView {
                routes: RouteTable::new(l),
                head_limits: HeadLimits::from_config(&l.limits),
            })
            .collect();
        let clusters = config
            .clusters
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let eps = endpoints.get(i).cloned().unwrap_or_default();
                let policy: LbPolicy = c.lb;
                ClusterView {
                    balancer: RefCell::new(Balancer::with_addrs(
                        policy,
                        &eps,
                        seed ^ (i as u64) << 32,
                    )),
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
) -> Result<(), String> {
    let io = &config.runtime.io;
    let driver = Driver::new(DriverConfig {
        ring_entries: io.ring_entries,
        recv_buffers: io.recv_buffers,
        recv_buffer_size: io.recv_buffer_size,
    })
    .map_err(|e| e.to_string())?;
    glommio::spawn_local(driver.clone().run()).detach();
    let s = seed(id);
    let listener_names: Vec<String> = config.listeners.iter().map(|l| l.name.clone()).collect();
    let cluster_names: Vec<String> = config.clusters.iter().map(|c| c.name.clone()).collect();
    let w = Rc::new(Worker {
        id,
        driver: driver.clone(),
        shared: shared.clone(),
        view: RefCell::new(Rc::new(View::new(config.clone(), &endpoints, s))),
        metrics: MetricsShard::new(&listener_names, &cluster_names),
        pools: RefCell::new(Pools::default()),
        rng: RefCell::new(FastRng::new(s)),
        draining: Cell::new(false),
        active: Cell::new(0),
        request_seq: Cell::new(0),
        id_prefix: (s >> 16) as u32,
    });
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
                *w.view.borrow_mut() = Rc::new(View::new(cfg, &eps, seed(id)));
                retain_known_endpoints(&w, &eps);
            }
            Control::Endpoints(eps) => {
                let cfg = w.view().config.clone();
                *w.view.borrow_mut() = Rc::new(View::new(cfg, &eps, seed(id)));
                retain_known_endpoints(&w, &eps);
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
    drop(accepts);
    w.pools.borrow_mut().clear();
    shared.stopped_workers.fetch_add(1, Ordering::AcqRel);
    driver.stop();
    Ok(())
}
