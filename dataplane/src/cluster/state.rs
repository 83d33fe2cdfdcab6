//! [`ClusterState`]: one cluster's per-core state — its resolved endpoints, balancer, circuit
//! breaker, outlier detector and health mask — and the pick over them.
//!
//! ```text
//! pick(hash, exclude):  health mask ∪ ejections ─▶ merge_unavailable (when_all_unhealthy)
//!                       ─▶ balancer.pick ─▶ in-flight += 1   (Picked, returned by the caller)
//! end(picked):          in-flight -= 1 (ignored if the endpoint set changed meanwhile)
//! record(idx, outcome): outlier detector; true when it ejected the endpoint
//! ```
//!
//! Invariants: owned by one worker (`RefCell`s, never borrowed across an await); masks are
//! indexed like `endpoints`; nothing here allocates after construction.

use std::cell::RefCell;
use std::net::SocketAddr;
use std::time::Instant;

use super::balancer::{Balancer, PickContext};
use super::breaker::CircuitBreaker;
use super::health::{merge_unavailable, Availability};
use super::outlier::{Outcome, OutlierDetector};
use super::status::{ClusterStatus, EndpointStatus};
use crate::config::{AllUnhealthy, ClusterConfig, LbPolicy};

/// Per-core state of one cluster.
pub struct ClusterState {
    pub endpoints: Vec<SocketAddr>,
    pub balancer: RefCell<Balancer>,
    pub breaker: Option<CircuitBreaker>,
    pub outlier: Option<RefCell<OutlierDetector>>,
    /// `true` = failed active health checks (set from the checker's broadcasts).
    pub health_down: RefCell<Vec<bool>>,
    /// Scratch: health ∪ ejected, handed to the balancer as `unavailable`.
    unavailable: RefCell<Vec<bool>>,
    /// Per endpoint: (tries sent, tries failed, tries in flight), for `/clusters`.
    counts: RefCell<Vec<(u64, u64, u64)>>,
}

/// An endpoint chosen by [`ClusterState::pick`]: its index, and the balancer generation the
/// in-flight count was taken in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pick {
    pub index: usize,
    pub addr: SocketAddr,
    generation: u64,
}

/// Why no endpoint could be picked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NoEndpoint;

impl ClusterState {
    /// State for `config` over its resolved `endpoints`, on one of `workers` workers.
    pub fn new(
        config: &ClusterConfig,
        endpoints: Vec<SocketAddr>,
        seed: u64,
        workers: usize,
    ) -> ClusterState {
        let policy: LbPolicy = config.lb;
        let res = &config.resilience;
        ClusterState {
            balancer: RefCell::new(Balancer::with_addrs(policy, &endpoints, seed)),
            breaker: res
                .circuit_breaker
                .as_ref()
                .map(|b| CircuitBreaker::new(b, workers)),
            outlier: res
                .outlier_detection
                .map(|o| RefCell::new(OutlierDetector::new(o, endpoints.len()))),
            health_down: RefCell::new(vec![false; endpoints.len()]),
            unavailable: RefCell::new(Vec::with_capacity(endpoints.len())),
            counts: RefCell::new(vec![(0, 0, 0); endpoints.len()]),
            endpoints,
        }
    }

    /// Picks an endpoint that is neither unhealthy nor ejected (unless all are and the
    /// cluster fails open), preferring one other than `exclude`, and counts it in flight.
    /// Every `Ok` must be paired with [`ClusterState::end`].
    pub fn pick(
        &self,
        when_all: AllUnhealthy,
        hash: u64,
        exclude: Option<usize>,
    ) -> Result<Pick, NoEndpoint> {
        let mut unavailable = self.unavailable.borrow_mut();
        let availability = match &self.outlier {
            Some(o) => {
                let mut o = o.borrow_mut();
                let ejected = o.unavailable(Instant::now());
                merge_unavailable(
                    &self.health_down.borrow(),
                    ejected,
                    &mut unavailable,
                    when_all,
                )
            }
            None => merge_unavailable(&self.health_down.borrow(), &[], &mut unavailable, when_all),
        };
        if availability == Availability::AllDown {
            return Err(NoEndpoint);
        }
        let mut b = self.balancer.borrow_mut();
        let index = b
            .pick(&PickContext {
                hash,
                exclude,
                unavailable: &unavailable,
            })
            .ok_or(NoEndpoint)?;
        let addr = *self.endpoints.get(index).ok_or(NoEndpoint)?;
        b.on_request_start(index);
        if let Some(c) = self.counts.borrow_mut().get_mut(index) {
            c.0 += 1;
            c.2 += 1;
        }
        Ok(Pick {
            index,
            addr,
            generation: b.generation(),
        })
    }

    /// The request picked by `p` ended (however it ended).
    pub fn end(&self, p: &Pick) {
        if let Some(c) = self.counts.borrow_mut().get_mut(p.index) {
            c.2 = c.2.saturating_sub(1);
        }
        self.balancer
            .borrow_mut()
            .on_request_end_in(p.index, p.generation);
    }

    /// Another core ejected the endpoint at `addr` until `until`: eject it here too.
    pub fn eject_from_peer(&self, addr: SocketAddr, until: Instant) {
        if let (Some(o), Some(i)) = (
            &self.outlier,
            self.endpoints.iter().position(|a| *a == addr),
        ) {
            o.borrow_mut().eject_from_peer(i, until);
        }
    }

    /// Feeds the outlier detector; `Some(until)` when this outcome ejected the endpoint.
    pub fn record(&self, index: usize, outcome: Outcome) -> Option<Instant> {
        if outcome != Outcome::Success {
            if let Some(c) = self.counts.borrow_mut().get_mut(index) {
                c.1 += 1;
            }
        }
        let o = self.outlier.as_ref()?;
        let mut o = o.borrow_mut();
        o.record(index, outcome, Instant::now())?;
        o.ejected_until(index)
    }

    /// This core's view of every endpoint; `idle(addr)` counts its pooled connections.
    pub fn status(&self, name: &str, idle: impl Fn(SocketAddr) -> usize) -> ClusterStatus {
        let down = self.health_down.borrow();
        let counts = self.counts.borrow();
        let outlier = self.outlier.as_ref().map(|o| o.borrow());
        let endpoints = self
            .endpoints
            .iter()
            .enumerate()
            .map(|(i, addr)| {
                let ejected = outlier.as_ref().is_some_and(|o| o.is_ejected(i));
                let (requests, failures, in_flight) = counts.get(i).copied().unwrap_or_default();
                EndpointStatus {
                    address: addr.to_string(),
                    healthy: !down.get(i).copied().unwrap_or(false),
                    ejected,
                    ejected_cores: u32::from(ejected),
                    in_flight,
                    idle_connections: idle(*addr) as u64,
                    requests,
                    failures,
                }
            })
            .collect();
        ClusterStatus {
            name: name.to_string(),
            endpoints,
        }
    }

    /// Applies the active health checker's verdict: exactly `unhealthy` are down.
    pub fn set_unhealthy(&self, unhealthy: &[SocketAddr]) {
        let mut down = self.health_down.borrow_mut();
        for (i, addr) in self.endpoints.iter().enumerate() {
            if let Some(d) = down.get_mut(i) {
                *d = unhealthy.contains(addr);
            }
        }
    }

    /// Carries health results of endpoints still present over from `old` (after a reload).
    pub fn inherit_health(&self, old: &ClusterState) {
        let old_down = old.health_down.borrow();
        let mut new_down = self.health_down.borrow_mut();
        for (i, addr) in self.endpoints.iter().enumerate() {
            if let Some(j) = old.endpoints.iter().position(|a| a == addr) {
                new_down[i] = old_down.get(j).copied().unwrap_or(false);
            }
        }
    }
}
