//! Active health checking (`[clusters.health_check]`) and the per-cluster availability mask.
//!
//! - [`HealthState`]: per-endpoint state machine. Endpoints start healthy.
//!   ```text
//!   healthy   --(unhealthy_threshold consecutive failed probes)-->  unhealthy
//!   unhealthy --(healthy_threshold consecutive good probes)------->  healthy
//!   ```
//!   A result that agrees with the current state resets the opposite streak.
//! - The probes and the checking loop that feed it live in `upstream::health` (they connect
//!   through the one upstream path).
//! - [`merge_unavailable`]: health mask + outlier ejection mask → the balancer's
//!   `PickContext::unavailable`, applying `when_all_unhealthy`.
//!
//! # Integration
//! ```text
//! one worker per cluster   upstream::health::run_checks(driver, endpoints, hc, host, seed,
//!                              |idx, addr, healthy| broadcast to every worker)
//! every worker             on message: if addrs[idx] == addr { health.set_healthy(idx, healthy) }
//! before pick              match merge_unavailable(health.unavailable(), outlier.unavailable(now),
//!                                                  &mut mask, policy.when_all_unhealthy) {
//!                              Availability::AllDown => 503,
//!                              _ => balancer.pick(&PickContext { unavailable: &mask, .. }) }
//! endpoint set changes     health.update_endpoints(n) (all healthy again; so does run_checks)
//! ```
//! Invariants: per core (`&mut self`, no sharing); masks are indexed like the endpoints;
//! `report`, `set_healthy`, `unavailable` and `merge_unavailable` never allocate (once the
//! output `Vec` has grown).

#[cfg(test)]
mod tests;

use crate::config::{AllUnhealthy, HealthCheck};

/// The health of one cluster's endpoints as seen by one worker.
#[derive(Debug, Clone)]
pub struct HealthState {
    /// INVARIANT: `>= 1`.
    healthy_threshold: u32,
    /// INVARIANT: `>= 1`.
    unhealthy_threshold: u32,
    /// Consecutive results contradicting the current state. INVARIANT: `len() == n`.
    streak: Vec<u32>,
    /// `true` = unhealthy. INVARIANT: `len() == n`.
    unavailable: Vec<bool>,
    /// INVARIANT: number of `true` in `unavailable`.
    unhealthy: usize,
    went_unhealthy: u64,
    went_healthy: u64,
}

impl HealthState {
    /// `n` healthy endpoints with `hc`'s thresholds.
    pub fn new(hc: &HealthCheck, n: usize) -> HealthState {
        HealthState::with_thresholds(hc.healthy_threshold, hc.unhealthy_threshold, n)
    }

    /// `n` healthy endpoints; thresholds of 0 count as 1.
    pub fn with_thresholds(healthy: u32, unhealthy: u32, n: usize) -> HealthState {
        HealthState {
            healthy_threshold: healthy.max(1),
            unhealthy_threshold: unhealthy.max(1),
            streak: vec![0; n],
            unavailable: vec![false; n],
            unhealthy: 0,
            went_unhealthy: 0,
            went_healthy: 0,
        }
    }

    /// The endpoint set changed to `n` endpoints: all healthy, streaks cleared.
    pub fn update_endpoints(&mut self, n: usize) {
        self.streak.clear();
        self.streak.resize(n, 0);
        self.unavailable.clear();
        self.unavailable.resize(n, false);
        self.unhealthy = 0;
    }

    /// One probe result for endpoint `idx`; `Some(healthy)` when the endpoint changed state.
    /// Unknown indices are ignored.
    pub fn report(&mut self, idx: usize, ok: bool) -> Option<bool> {
        let healthy = !*self.unavailable.get(idx)?;
        let streak = self.streak.get_mut(idx)?;
        if ok == healthy {
            *streak = 0;
            return None;
        }
        *streak = streak.saturating_add(1);
        let threshold = if healthy {
            self.unhealthy_threshold
        } else {
            self.healthy_threshold
        };
        if *streak < threshold {
            return None;
        }
        self.set_healthy(idx, ok);
        Some(ok)
    }

    /// Sets endpoint `idx`'s state (a transition broadcast by the checking worker).
    pub fn set_healthy(&mut self, idx: usize, healthy: bool) {
        let (Some(u), Some(s)) = (self.unavailable.get_mut(idx), self.streak.get_mut(idx)) else {
            return;
        };
        *s = 0;
        let unavailable = !healthy;
        if *u == unavailable {
            return;
        }
        *u = unavailable;
        if healthy {
            self.unhealthy = self.unhealthy.saturating_sub(1);
            self.went_healthy += 1;
        } else {
            self.unhealthy += 1;
            self.went_unhealthy += 1;
        }
    }

    /// Whether endpoint `idx` is healthy (unknown indices are).
    pub fn is_healthy(&self, idx: usize) -> bool {
        !self.unavailable.get(idx).copied().unwrap_or(false)
    }

    /// `true` = unhealthy, indexed like the endpoints.
    pub fn unavailable(&self) -> &[bool] {
        &self.unavailable
    }

    /// Endpoints unhealthy right now.
    pub fn unhealthy_count(&self) -> usize {
        self.unhealthy
    }

    /// Transitions to unhealthy so far on this core.
    pub fn went_unhealthy_count(&self) -> u64 {
        self.went_unhealthy
    }

    /// Transitions to healthy so far on this core.
    pub fn went_healthy_count(&self) -> u64 {
        self.went_healthy
    }

    pub fn len(&self) -> usize {
        self.unavailable.len()
    }

    pub fn is_empty(&self) -> bool {
        self.unavailable.is_empty()
    }
}

/// Whether a request can be sent to the cluster at all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Availability {
    /// Pick among the endpoints not marked in the mask.
    Some,
    /// Every endpoint is down but `fail_open`: the mask marks none (Envoy's panic mode).
    AllDownFailOpen,
    /// Every endpoint is down and `reject`: answer 503.
    AllDown,
}

/// `out[i] = health[i] || ejected[i]` (missing entries count as available; `out` is as long
/// as the longer input). When every endpoint is down, `FailOpen` clears `out` to all
/// available and `Reject` reports [`Availability::AllDown`]. An empty cluster is
/// `Availability::Some` (the balancer then finds nothing). No allocation once `out` has grown.
#[inline]
pub fn merge_unavailable(
    health: &[bool],
    ejected: &[bool],
    out: &mut Vec<bool>,
    when_all_unhealthy: AllUnhealthy,
) -> Availability {
    out.clear();
    let n = health.len().max(ejected.len());
    if n == 0 {
        return Availability::Some;
    }
    let (long, short) = if health.len() >= ejected.len() {
        (health, ejected)
    } else {
        (ejected, health)
    };
    out.extend_from_slice(long);
    for (o, &s) in out.iter_mut().zip(short) {
        *o |= s;
    }
    let down = out.iter().filter(|&&u| u).count();
    if down < n {
        return Availability::Some;
    }
    match when_all_unhealthy {
        AllUnhealthy::FailOpen => {
            out.fill(false);
            Availability::AllDownFailOpen
        }
        AllUnhealthy::Reject => Availability::AllDown,
    }
}
