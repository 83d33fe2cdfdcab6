//! Assembling and running one worker: create its driver, build its [`Worker`] state, start
//! its tasks (accept loops, parking lot, mirror senders, pool sweeper, health checker on
//! worker 0) and serve its control channel until told to stop.
//!
//! The state itself lives in `crate::worker`; this file only wires it up.

use crate::telemetry::access_log::writer::FLUSH_EVERY;
use std::net::SocketAddr;
use std::os::fd::RawFd;
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::config::Config;
use crate::uring::{Driver, DriverConfig};
use crate::worker::{Control, Shared, View, Worker};

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
        .retain_endpoints(|k| eps.iter().any(|c| c.contains(&k.addr)));
}

/// What a worker serves: a configuration with its resolved endpoints and TLS material.
pub struct Serving {
    pub config: Arc<Config>,
    pub endpoints: Arc<Vec<Vec<SocketAddr>>>,
    pub tls: Arc<crate::tls::TlsSet>,
}

/// Runs worker `id` until told to stop. Errors are reported to the starter as text.
/// `listener_fds` are (listener index, listening socket): one per listener, and more after a
/// hot restart from a predecessor that ran more workers.
pub async fn run(
    id: usize,
    serving: Serving,
    listener_fds: Vec<(usize, RawFd)>,
    shared: Arc<Shared>,
    control: flume::Receiver<Control>,
    peers: Vec<flume::Sender<Control>>,
) -> Result<(), String> {
    let Serving {
        config,
        endpoints,
        tls,
    } = serving;
    let io = &config.runtime.io;
    let driver = Driver::new(DriverConfig {
        ring_entries: io.ring_entries,
        recv_buffers: io.recv_buffers,
        recv_buffer_size: io.recv_buffer_size,
    })
    .map_err(|e| e.to_string())?;
    driver.set_idle_hook(super::memory::collect, super::memory::COLLECT_EVERY);
    glommio::spawn_local(driver.clone().run()).detach();
    let w = Rc::new(Worker::new(
        id,
        driver.clone(),
        config,
        &endpoints,
        shared.clone(),
        peers,
        seed(id),
    ));
    w.install_tls(&tls);
    crate::proxy::mirror::spawn_senders(&w);
    let parking = glommio::spawn_local(crate::proxy::park::run(w.clone()));
    if id == 0 {
        glommio::spawn_local(crate::upstream::health::run_checker(w.clone())).detach();
    }
    let mut accepts = Vec::new();
    for &(i, fd) in &listener_fds {
        accepts.push(glommio::spawn_local(crate::listener::accept_loop(
            w.clone(),
            i,
            fd,
        )));
    }
    // Expire idle upstream connections even when no request comes to do it.
    let sweeper = {
        let w = w.clone();
        glommio::spawn_local(async move {
            loop {
                crate::uring::sleep(&w.driver, Duration::from_secs(1)).await;
                w.pools.borrow_mut().sweep(Instant::now());
            }
        })
    };
    // Hand access-log buffers to the writer once their oldest line is FLUSH_EVERY old.
    let log_flusher = {
        let w = w.clone();
        glommio::spawn_local(async move {
            loop {
                crate::uring::sleep(&w.driver, FLUSH_EVERY).await;
                for core in [w.access_log.get(), w.span_log.get()]
                    .into_iter()
                    .flatten()
                    .flatten()
                {
                    core.flush_stale(Instant::now());
                }
            }
        })
    };
    shared.ready_workers.fetch_add(1, Ordering::AcqRel);
    while let Ok(msg) = control.recv_async().await {
        match msg {
            Control::Scrape(reply) => {
                let mut snap = w.metrics.snapshot();
                snap.certificates = w.view().tls().certificates.clone();
                let _ = reply.send(snap);
            }
            Control::Clusters(reply) => {
                let view = w.view();
                let pools = w.pools.borrow();
                let status = view
                    .config
                    .clusters
                    .iter()
                    .zip(&view.clusters)
                    .map(|(c, s)| s.status(&c.name, |a| pools.idle_for(a)))
                    .collect();
                let _ = reply.send(status);
            }
            Control::Reload(cfg, eps, tls) => {
                w.swap_view(View::new(cfg, &eps, seed(id), w.workers));
                w.install_tls(&tls);
                retain_known_endpoints(&w, &eps);
            }
            Control::Tls(tls) => w.install_tls(&tls),
            Control::Endpoints(eps) => {
                let cfg = w.view().config.clone();
                w.swap_view(View::new(cfg, &eps, seed(id), w.workers));
                retain_known_endpoints(&w, &eps);
            }
            Control::Ejected {
                cluster,
                addr,
                until,
            } => {
                if let Some((_, c)) = w.view().cluster_named(&cluster) {
                    c.eject_from_peer(addr, until);
                }
            }
            Control::Health { cluster, unhealthy } => {
                if let Some((_, c)) = w.view().cluster_named(&cluster) {
                    c.set_unhealthy(&unhealthy);
                }
            }
            Control::Drain { close_idle } => {
                w.close_idle.set(close_idle);
                w.draining.set(true);
                // The accept loops end after serving what they had accepted.
                w.stop_accepting.close();
                for task in accepts.drain(..) {
                    task.await;
                }
                for (_, fd) in &listener_fds {
                    // SAFETY: the listener descriptors are owned by this worker; the accept
                    // operations on them were cancelled above. After a handover the socket
                    // lives on in the successor, which holds its own descriptor.
                    unsafe { libc::close(*fd) };
                }
                w.pools.borrow_mut().clear();
            }
            Control::Stop => break,
        }
    }
    drop(sweeper);
    drop(log_flusher);
    for core in [w.access_log.get(), w.span_log.get()]
        .into_iter()
        .flatten()
        .flatten()
    {
        core.flush_all();
    }
    drop(parking);
    drop(accepts);
    w.pools.borrow_mut().clear();
    shared.stopped_workers.fetch_add(1, Ordering::AcqRel);
    driver.stop();
    Ok(())
}
