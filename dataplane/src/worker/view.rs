//! [`View`]: one configuration compiled for one worker — route tables, per-route policy
//! state, per-cluster state — built off the hot path, swapped between requests.
//!
//! Invariant: a request keeps the `Rc<View>` it started with until it ends; a new view is
//! built whole before it replaces the old one, carrying over state that must survive a reload
//! (health results of endpoints that are still there).

use std::cell::RefCell;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::Arc;
use std::time::Instant;

use crate::cluster::ClusterState;
use crate::config::{Config, Limits};
use crate::http::HeadLimits;
use crate::policy::RouteState;
use crate::pool::TransportId;
use crate::route::RouteTable;
use crate::telemetry::access_log::{writer, ListenerLog};
use crate::telemetry::istio::IstioLabels;
use crate::tls::WorkerTls;

/// The compiled, per-worker view of one configuration.
pub struct View {
    pub config: Arc<Config>,
    pub listeners: Vec<ListenerView>,
    /// Indexed like `Config::clusters`. Shared with the previous view when a reload left the
    /// cluster unchanged (its balancer, breaker, outlier and endpoint counts carry on).
    pub clusters: Vec<Rc<ClusterState>>,
    /// The pool key part of each cluster's connections (its TLS settings), likewise.
    pub transports: Vec<TransportId>,
    /// This core's TLS configs for `config` (replaced on certificate rotation without
    /// rebuilding the view; a connection keeps the config it started with).
    pub tls: RefCell<Rc<WorkerTls>>,
    /// Istio metric labels of this config (`None`: `istio_metrics` off).
    pub istio: Option<IstioLabels>,
    /// Each listener's access log (`None`: off), indexed like `Config::listeners`.
    pub access_logs: Vec<Option<ListenerLog>>,
}

/// Views built so far in this process: the generation part of Istio series keys.
static GENERATION: AtomicU16 = AtomicU16::new(0);

/// One listener's compiled routes and limits.
pub struct ListenerView {
    pub routes: RouteTable,
    pub head_limits: HeadLimits,
    /// Per-core policy state of each route, indexed like `ListenerConfig::routes`; shared
    /// with the previous view when a reload left the route unchanged (rate-limit buckets,
    /// retry budgets carry on).
    pub route_states: Vec<Rc<RefCell<RouteState>>>,
    /// The `rule` label of a denial by the listener's rules that no single rule made
    /// (`<listener>.authz`), and likewise per route (`<listener>.routes[j].authz`).
    pub authz_name: Box<str>,
    pub route_authz_names: Vec<Box<str>>,
}

/// The codec's head limits of a listener's `[listeners.limits]`.
pub fn head_limits(l: &Limits) -> HeadLimits {
    HeadLimits {
        max_head_bytes: l.max_request_head_bytes,
        max_target_bytes: l.max_request_target_bytes,
        max_headers: l.max_headers,
    }
}

impl View {
    /// Compiles `config` over its resolved `endpoints` (per cluster) for one of `workers`.
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
                head_limits: head_limits(&l.limits),
                route_states: l
                    .routes
                    .iter()
                    .map(|r| Rc::new(RefCell::new(RouteState::new(&r.policy, workers, now))))
                    .collect(),
                authz_name: format!("{}.authz", l.name).into(),
                route_authz_names: (0..l.routes.len())
                    .map(|j| format!("{}.routes[{j}].authz", l.name).into())
                    .collect(),
            })
            .collect();
        let clusters = config
            .clusters
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let eps = endpoints.get(i).cloned().unwrap_or_default();
                Rc::new(ClusterState::new(c, eps, seed ^ (i as u64) << 32, workers))
            })
            .collect();
        let transports = config
            .clusters
            .iter()
            .map(TransportId::of_cluster)
            .collect();
        let generation = GENERATION.fetch_add(1, Ordering::Relaxed);
        crate::telemetry::otlp::configure(config.telemetry.otlp.as_ref());
        let istio = IstioLabels::new(&config, generation);
        let access_logs = config
            .listeners
            .iter()
            .map(|l| {
                l.access_log
                    .as_ref()
                    .map(|a| ListenerLog::new(a, writer::sink_id(&a.sink)))
            })
            .collect();
        View {
            config,
            listeners,
            clusters,
            transports,
            tls: RefCell::default(),
            istio,
            access_logs,
        }
    }

    /// Carries over from `old` what a reload keeps: the whole state of every cluster whose
    /// config and endpoints did not change (balancer, breaker, outlier ejections, counts), and
    /// of every route whose config did not change (rate limits, retry budgets); health results
    /// of endpoints still in a changed cluster of the same name.
    /// With the same configuration (an endpoint refresh) the TLS configs are kept too.
    pub fn inherit(&mut self, old: &View) {
        if Arc::ptr_eq(&self.config, &old.config) {
            *self.tls.borrow_mut() = old.tls.borrow().clone();
        }
        for (ci, c) in self.config.clusters.iter().enumerate() {
            let Some(oi) = old.config.clusters.iter().position(|o| o.name == c.name) else {
                continue;
            };
            let same = old.config.clusters[oi] == *c
                && old.clusters[oi].endpoints == self.clusters[ci].endpoints;
            if same {
                self.clusters[ci] = old.clusters[oi].clone();
            } else {
                self.clusters[ci].inherit_health(&old.clusters[oi]);
            }
        }
        for (li, l) in self.config.listeners.iter().enumerate() {
            let Some(oi) = old.config.listeners.iter().position(|o| o.name == l.name) else {
                continue;
            };
            let old_routes = &old.config.listeners[oi].routes;
            for (ri, r) in l.routes.iter().enumerate() {
                if old_routes.get(ri) == Some(r) {
                    if let Some(state) = old.listeners[oi].route_states.get(ri) {
                        self.listeners[li].route_states[ri] = state.clone();
                    }
                }
            }
        }
    }

    /// This core's TLS configs (cheap: an `Rc`).
    pub fn tls(&self) -> Rc<WorkerTls> {
        self.tls.borrow().clone()
    }

    /// The cluster named `name`, with its index.
    pub fn cluster_named(&self, name: &str) -> Option<(usize, &ClusterState)> {
        let i = self.config.clusters.iter().position(|c| c.name == name)?;
        Some((i, self.clusters.get(i)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_limits_are_the_codecs_defaults() {
        assert_eq!(head_limits(&Limits::default()), HeadLimits::DEFAULT);
    }
}
