//! [`ClusterStatus`]: what one core knows of each endpoint of each cluster — health, outlier
//! ejection, requests in flight, idle pooled connections, requests and failures — as plain
//! `Send` data for the admin's `/clusters`, and its merge across cores.
//!
//! Invariant: merging is by cluster name and endpoint address (cores built from one config
//! list the same endpoints; after a reload the lists may briefly differ and are unioned).

use serde::Serialize;

/// One endpoint as one core (or, merged, every core) sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EndpointStatus {
    pub address: String,
    /// Not failed by active health checks (merged: on every core).
    pub healthy: bool,
    /// Ejected by outlier detection (merged: on any core).
    pub ejected: bool,
    /// Merged: cores on which the endpoint is ejected.
    pub ejected_cores: u32,
    pub in_flight: u64,
    pub idle_connections: u64,
    /// Tries sent to it since the view was built (the last reload).
    pub requests: u64,
    /// Tries that failed (5xx, connect failure, reset, per-try timeout).
    pub failures: u64,
}

/// One cluster's endpoints.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ClusterStatus {
    pub name: String,
    pub endpoints: Vec<EndpointStatus>,
}

/// Merges per-core lists into one (see the module doc).
pub fn merge(cores: &[Vec<ClusterStatus>]) -> Vec<ClusterStatus> {
    let mut out: Vec<ClusterStatus> = Vec::new();
    for core in cores {
        for c in core {
            let i = match out.iter().position(|m| m.name == c.name) {
                Some(i) => i,
                None => {
                    out.push(ClusterStatus {
                        name: c.name.clone(),
                        endpoints: Vec::new(),
                    });
                    out.len() - 1
                }
            };
            let merged = &mut out[i].endpoints;
            for e in &c.endpoints {
                match merged.iter_mut().find(|m| m.address == e.address) {
                    Some(m) => {
                        m.healthy &= e.healthy;
                        m.ejected |= e.ejected;
                        m.ejected_cores += e.ejected_cores;
                        m.in_flight += e.in_flight;
                        m.idle_connections += e.idle_connections;
                        m.requests += e.requests;
                        m.failures += e.failures;
                    }
                    None => merged.push(e.clone()),
                }
            }
        }
    }
    out
}
