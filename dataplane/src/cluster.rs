//! Upstream clusters: choosing an endpoint for a request and keeping endpoint lists fresh.
//!
//! - `hash`: the fixed, documented 64-bit hash of ring_hash keys and ring points.
//! - `balancer`: [`Balancer`] — round_robin, least_request (P2C), random, ring_hash.
//! - `dns`: blocking name resolution and the [`DnsRefresher`] thread (never on a worker).
//! - `breaker`: [`CircuitBreaker`] — per-core share of the cluster's concurrency limits.
//! - `outlier`: [`OutlierDetector`] — passive ejection on consecutive failures.
//! - `health`: [`HealthState`] and [`merge_unavailable`] (health + ejection → the balancer's
//!   unavailable mask); the probes themselves go through `upstream::health`.
//! - `state`: [`ClusterState`], one cluster's per-core state and the pick over it.
//!
//! Per-core invariant: balancer and RNG state is owned by exactly one worker and never
//! shared — no `Arc`, `Mutex` or atomics; methods take `&mut self`. Each worker keeps its own
//! in-flight counts and cursors, so decisions are per core (as in Envoy's per-worker load
//! balancers). Picks never allocate, format or block; rebuilding on an endpoint change does
//! allocate and happens between requests. Health/outlier ejection is an input here (a
//! per-core "unavailable" mask in [`PickContext`]), computed elsewhere.

pub mod balancer;
pub mod breaker;
pub mod dns;
pub mod hash;
pub mod health;
pub mod outlier;
pub mod state;
pub mod status;

use std::net::IpAddr;

pub use balancer::{Balancer, PickContext};
pub use breaker::{BreakerLimit, CircuitBreaker, Overload};
pub use dns::{DnsError, DnsRefresher, DnsTarget};
pub use health::{merge_unavailable, Availability, HealthState};
pub use outlier::{Outcome, OutlierDetector};
pub use state::{ClusterState, NoEndpoint, Pick};

use crate::config::HashKey;
use crate::http::RequestView;

/// The ring_hash key of a request: [`hash::hash_bytes`] of the configured header's value, or
/// [`hash::hash_ip`] of the client IP when the key is `ClientIp` or the header is absent.
#[inline]
pub fn hash_key(key: &HashKey, client_ip: IpAddr, req: &impl RequestView) -> u64 {
    match key {
        HashKey::Header(name) => match req.header(name) {
            Some(value) => hash::hash_bytes(value),
            None => hash::hash_ip(client_ip),
        },
        HashKey::ClientIp => hash::hash_ip(client_ip),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::RequestParts;

    #[test]
    fn hash_key_uses_header_then_falls_back_to_client_ip() {
        let ip: IpAddr = "192.0.2.7".parse().unwrap();
        let with = RequestParts {
            path: b"/",
            headers: &[("X-User", b"alice")],
            ..Default::default()
        };
        let without = RequestParts {
            path: b"/",
            ..Default::default()
        };
        let key = HashKey::Header("x-user".into());
        assert_eq!(hash_key(&key, ip, &with), hash::hash_bytes(b"alice"));
        assert_eq!(hash_key(&key, ip, &without), hash::hash_ip(ip));
        assert_eq!(hash_key(&HashKey::ClientIp, ip, &with), hash::hash_ip(ip));
    }
}
