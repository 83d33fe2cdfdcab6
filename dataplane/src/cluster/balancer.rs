//! [`Balancer`]: one worker's choice of endpoint within one cluster.
//!
//! Policies (config `lb`):
//! - `round_robin`: a cursor; each worker starts at a seed-derived offset so cores do not all
//!   send their first request to endpoint 0.
//! - `least_request`: power of two choices over this core's in-flight counts — two distinct
//!   random endpoints, the one with fewer in-flight requests wins, ties broken randomly.
//! - `random`: uniform.
//! - `ring_hash`: consistent hashing (`ring_hash` module) of [`PickContext::hash`].
//!
//! Every pick skips endpoints marked unavailable in [`PickContext::unavailable`] (hard) and
//! avoids [`PickContext::exclude`] (soft: the excluded endpoint is still returned when it is
//! the only available one, so a retry on a single-endpoint cluster still happens).
//! `None` means no endpoint is available (empty cluster or all unavailable): answer 503.
//!
//! Per-core invariant: a `Balancer` is owned by one worker and never shared (`&mut self`, no
//! atomics); its in-flight counts are this core's only. `pick` is O(1) (ring_hash O(log n))
//! plus a bounded scan when endpoints are unavailable, and never allocates;
//! `update_endpoints*` allocates and runs between requests.

mod ring_hash;
#[cfg(test)]
mod tests;

use std::net::SocketAddr;

use crate::base::FastRng;
use crate::config::LbPolicy;
use ring_hash::Ring;
pub use ring_hash::{DEFAULT_VNODES, MAX_RING_POINTS};

/// Per-request inputs to a pick.
#[derive(Debug, Clone, Copy, Default)]
pub struct PickContext<'a> {
    /// The request's ring_hash key ([`crate::cluster::hash_key`]); ignored by other policies.
    pub hash: u64,
    /// Prefer any other endpoint (a retry after this one failed).
    pub exclude: Option<usize>,
    /// `unavailable[i] == true`: endpoint `i` is ejected and never picked. Indices past the
    /// end are available, so an empty slice means "all available".
    pub unavailable: &'a [bool],
}

impl<'a> PickContext<'a> {
    /// Any endpoint, hash 0.
    pub const ANY: PickContext<'static> = PickContext {
        hash: 0,
        exclude: None,
        unavailable: &[],
    };

    #[inline]
    fn is_available(&self, i: usize) -> bool {
        !self.unavailable.get(i).copied().unwrap_or(false)
    }

    #[inline]
    fn is_eligible(&self, i: usize) -> bool {
        self.exclude != Some(i) && self.is_available(i)
    }
}

/// One cluster's load balancer on one worker.
#[derive(Debug, Clone)]
pub struct Balancer {
    rng: FastRng,
    endpoints: usize,
    /// Bumped by every `update_endpoints*`; see [`Balancer::on_request_end_in`].
    generation: u64,
    state: State,
}

#[derive(Debug, Clone)]
enum State {
    RoundRobin {
        /// INVARIANT: `< endpoints` (or 0 when empty).
        cursor: usize,
    },
    LeastRequest {
        /// INVARIANT: `len() == endpoints`; requests started in the current generation.
        in_flight: Vec<u32>,
    },
    Random,
    RingHash(Ring),
}

impl Balancer {
    /// A balancer over `endpoints` endpoints identified by index (see
    /// [`update_endpoints`](Self::update_endpoints)). `seed` should differ per worker.
    pub fn new(policy: LbPolicy, endpoints: usize, seed: u64) -> Balancer {
        let mut b = Balancer::empty(policy, seed);
        b.update_endpoints(endpoints);
        b
    }

    /// A balancer over the given addresses; ring_hash then keys its ring on the addresses,
    /// so removing an endpoint from the middle remaps only that endpoint's keys.
    pub fn with_addrs(policy: LbPolicy, addrs: &[SocketAddr], seed: u64) -> Balancer {
        let mut b = Balancer::empty(policy, seed);
        b.update_endpoint_addrs(addrs);
        b
    }

    fn empty(policy: LbPolicy, seed: u64) -> Balancer {
        let state = match policy {
            LbPolicy::RoundRobin => State::RoundRobin { cursor: 0 },
            LbPolicy::LeastRequest => State::LeastRequest {
                in_flight: Vec::new(),
            },
            LbPolicy::Random => State::Random,
            LbPolicy::RingHash => State::RingHash(Ring::default()),
        };
        Balancer {
            rng: FastRng::new(seed),
            endpoints: 0,
            generation: 0,
            state,
        }
    }

    /// The endpoint set changed to `n` endpoints identified by index: ring_hash keys its ring
    /// on indices (adding or removing the last endpoint remaps ≈1/n of keys; prefer
    /// [`update_endpoint_addrs`](Self::update_endpoint_addrs) when addresses are known).
    /// Resets in-flight counts and starts a new generation. Allocates.
    pub fn update_endpoints(&mut self, n: usize) {
        self.rebuild(n, |ring| ring.rebuild_indexed(n));
    }

    /// The endpoint set changed to `addrs` (index `i` = `addrs[i]`). Allocates.
    pub fn update_endpoint_addrs(&mut self, addrs: &[SocketAddr]) {
        self.rebuild(addrs.len(), |ring| ring.rebuild_addrs(addrs));
    }

    fn rebuild(&mut self, n: usize, build_ring: impl FnOnce(&mut Ring)) {
        self.endpoints = n;
        self.generation = self.generation.wrapping_add(1);
        match &mut self.state {
            State::RoundRobin { cursor } => *cursor = self.rng.below_usize(n),
            State::LeastRequest { in_flight } => {
                in_flight.clear();
                in_flight.resize(n, 0);
            }
            State::Random => {}
            State::RingHash(ring) => build_ring(ring),
        }
    }

    /// The configured policy.
    pub fn policy(&self) -> LbPolicy {
        match self.state {
            State::RoundRobin { .. } => LbPolicy::RoundRobin,
            State::LeastRequest { .. } => LbPolicy::LeastRequest,
            State::Random => LbPolicy::Random,
            State::RingHash(_) => LbPolicy::RingHash,
        }
    }

    /// Number of endpoints.
    pub fn len(&self) -> usize {
        self.endpoints
    }

    pub fn is_empty(&self) -> bool {
        self.endpoints == 0
    }

    /// Changes on every endpoint update; pass it back to [`on_request_end_in`](Self::on_request_end_in).
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// An index into the cluster's current endpoint list, or `None` when no endpoint is
    /// available. Never allocates.
    #[inline]
    pub fn pick(&mut self, ctx: &PickContext<'_>) -> Option<usize> {
        let n = self.endpoints;
        if n == 0 {
            return None;
        }
        let picked = match &mut self.state {
            State::RoundRobin { cursor } => round_robin(cursor, n, ctx),
            State::Random => random_eligible(&mut self.rng, n, ctx, None),
            State::LeastRequest { in_flight } => p2c(&mut self.rng, in_flight, n, ctx),
            State::RingHash(ring) => ring.pick(ctx),
        };
        // Exclusion is a preference: fall back to the excluded endpoint if it is the only one.
        picked.or(ctx.exclude.filter(|&e| e < n && ctx.is_available(e)))
    }

    /// A request was sent to endpoint `idx` (least_request counts it).
    #[inline]
    pub fn on_request_start(&mut self, idx: usize) {
        if let State::LeastRequest { in_flight } = &mut self.state {
            if let Some(c) = in_flight.get_mut(idx) {
                *c = c.saturating_add(1);
            }
        }
    }

    /// A request to endpoint `idx` finished (started in the current generation).
    #[inline]
    pub fn on_request_end(&mut self, idx: usize) {
        if let State::LeastRequest { in_flight } = &mut self.state {
            if let Some(c) = in_flight.get_mut(idx) {
                *c = c.saturating_sub(1);
            }
        }
    }

    /// A request to endpoint `idx`, started when [`generation`](Self::generation) was
    /// `generation`, finished. Ignored if the endpoint set changed since (its index may
    /// now name another endpoint), so counts never drift across updates.
    #[inline]
    pub fn on_request_end_in(&mut self, idx: usize, generation: u64) {
        if generation == self.generation {
            self.on_request_end(idx);
        }
    }

    /// This core's in-flight count for `idx` (least_request; 0 for other policies).
    pub fn in_flight(&self, idx: usize) -> u32 {
        match &self.state {
            State::LeastRequest { in_flight } => in_flight.get(idx).copied().unwrap_or(0),
            _ => 0,
        }
    }
}

#[inline]
fn round_robin(cursor: &mut usize, n: usize, ctx: &PickContext<'_>) -> Option<usize> {
    for _ in 0..n {
        let i = *cursor;
        *cursor = if i + 1 >= n { 0 } else { i + 1 };
        if ctx.is_eligible(i) {
            return Some(i);
        }
    }
    None
}

/// Random draws before falling back to a scan (only when many endpoints are unavailable).
const RANDOM_TRIES: usize = 4;

/// A uniformly random eligible index other than `not` (`not < n`), if any.
#[inline]
fn random_eligible(
    rng: &mut FastRng,
    n: usize,
    ctx: &PickContext<'_>,
    not: Option<usize>,
) -> Option<usize> {
    let others = if not.is_some() { n - 1 } else { n };
    if others == 0 {
        return None;
    }
    // Map 0..others onto 0..n skipping `not`: uniform over the others, never `not`.
    let skip = |j: usize| match not {
        Some(x) if j >= x => j + 1,
        _ => j,
    };
    for _ in 0..RANDOM_TRIES {
        let i = skip(rng.below_usize(others));
        if ctx.is_eligible(i) {
            return Some(i);
        }
    }
    let start = rng.below_usize(others);
    (0..others)
        .map(|k| skip((start + k) % others))
        .find(|&i| ctx.is_eligible(i))
}

/// Power of two choices: two distinct eligible endpoints, fewer in-flight wins, ties random.
#[inline]
fn p2c(rng: &mut FastRng, in_flight: &[u32], n: usize, ctx: &PickContext<'_>) -> Option<usize> {
    let (a, b) = p2c_candidates(rng, n, ctx)?;
    let Some(b) = b else { return Some(a) };
    let load = |i: usize| in_flight.get(i).copied().unwrap_or(0);
    Some(match load(a).cmp(&load(b)) {
        std::cmp::Ordering::Less => a,
        std::cmp::Ordering::Greater => b,
        std::cmp::Ordering::Equal => {
            if rng.coin() {
                a
            } else {
                b
            }
        }
    })
}

/// The two P2C candidates: `a` eligible, `b` eligible and `!= a` when one exists.
#[inline]
fn p2c_candidates(
    rng: &mut FastRng,
    n: usize,
    ctx: &PickContext<'_>,
) -> Option<(usize, Option<usize>)> {
    let a = random_eligible(rng, n, ctx, None)?;
    Some((a, random_eligible(rng, n, ctx, Some(a))))
}
