//! Glue between active health checks (`cluster::health`) and the workers: worker 0 runs one
//! checking loop per cluster that has `[clusters.health_check]`, and broadcasts the set of
//! unhealthy endpoints of that cluster to every worker (itself included) whenever it changes.
//! Each worker applies it to its own view (`ClusterView::health_down`); the balancer then
//! skips those endpoints (see `exchange`).
//!
//! Invariants: one loop per cluster name at a time; a loop ends when its cluster disappears or
//! loses its health check (after a reload), and a new one starts within a second for a cluster
//! that gains one.

use std::cell::RefCell;
use std::collections::HashSet;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Duration;

use crate::cluster::health::run_checks;
use crate::runtime::worker::Worker;
use crate::runtime::Control;
use crate::telemetry::PolicyEvent;

/// Starts and stops per-cluster checking loops as the configuration changes.
pub async fn run_checker(w: Rc<Worker>) {
    let running: Rc<RefCell<HashSet<String>>> = Rc::default();
    loop {
        let view = w.view();
        for c in &view.config.clusters {
            if c.resilience.health_check.is_none() || running.borrow().contains(&c.name) {
                continue;
            }
            running.borrow_mut().insert(c.name.clone());
            glommio::spawn_local(check_cluster(w.clone(), c.name.clone(), running.clone()))
                .detach();
        }
        drop(view);
        crate::uring::sleep(&w.driver, Duration::from_secs(1)).await;
    }
}

async fn check_cluster(w: Rc<Worker>, name: String, running: Rc<RefCell<HashSet<String>>>) {
    let view = w.view();
    let Some(cfg) = view.config.clusters.iter().find(|c| c.name == name) else {
        running.borrow_mut().remove(&name);
        return;
    };
    let Some(hc) = cfg.resilience.health_check.clone() else {
        running.borrow_mut().remove(&name);
        return;
    };
    drop(view);
    let host = hc.host.clone().unwrap_or_else(|| name.clone());
    let unhealthy: RefCell<Vec<SocketAddr>> = RefCell::default();
    let endpoints = |out: &mut Vec<SocketAddr>| {
        let view = w.view();
        let Some(i) = view.config.clusters.iter().position(|c| c.name == name) else {
            return false;
        };
        if view.config.clusters[i].resilience.health_check.as_ref() != Some(&hc) {
            return false; // removed or changed: a new loop picks up the new settings
        }
        out.extend_from_slice(&view.clusters[i].endpoints);
        // Forget endpoints that left the cluster.
        unhealthy.borrow_mut().retain(|a| out.contains(a));
        true
    };
    let on_change = |_: usize, addr: SocketAddr, healthy: bool| {
        {
            let mut u = unhealthy.borrow_mut();
            u.retain(|a| *a != addr);
            if !healthy {
                u.push(addr);
            }
        }
        let view = w.view();
        let idx = view.config.clusters.iter().position(|c| c.name == name);
        if !healthy {
            w.metrics.policy_event(idx, PolicyEvent::EndpointUnhealthy);
        }
        tracing::info!(cluster = %name, endpoint = %addr, healthy, "health check state changed");
        for p in &w.peers {
            let _ = p.send(Control::Health {
                cluster: name.clone(),
                unhealthy: unhealthy.borrow().clone(),
            });
        }
    };
    run_checks(
        &w.driver,
        endpoints,
        &hc,
        &host,
        w.id as u64 ^ 0x5eed,
        on_change,
    )
    .await;
    running.borrow_mut().remove(&name);
}
