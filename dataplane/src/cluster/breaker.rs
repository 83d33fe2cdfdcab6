//! [`CircuitBreaker`]: one cluster's concurrency limits on one core
//! (`[clusters.circuit_breaker]`), Envoy style: a request over a limit fails fast with 503
//! and `x-ringway-overloaded: <limit name>` instead of queueing.
//!
//! Three gauges, each with its own limit (the process-wide limit shared out between workers:
//! each gets ⌈limit / workers⌉, so the process admits at most `limit + workers - 1`):
//! - `max_requests`: requests in flight to the cluster (from before the pick until the last
//!   response byte, retries included — a retry reuses its request's slot);
//! - `max_pending_requests`: requests waiting for an upstream connection (no idle pooled
//!   connection; a new one is being opened);
//! - `max_connections`: upstream connections open (pooled idle ones included).
//!
//! # API and phases
//! ```text
//! before pick     let req = breaker.try_start_request()?;     Err(Overload) -> 503
//! pool miss       let wait = breaker.try_start_pending()?;    while connecting
//!                 let conn = breaker.try_open_connection()?;  kept with the pooled connection
//!                 drop(wait) once connected (or failed)
//! response done   drop(req) (or req.finish())
//! conn closed     drop(conn)
//! ```
//! Guards release their slot on drop; for code that cannot hold a guard (a connection owned
//! by a pool slab) use [`CircuitBreaker::try_acquire`] / [`CircuitBreaker::release`] with a
//! [`BreakerLimit`], or [`ConnectionGuard::forget`] + `release` later.
//!
//! Invariants: a `CircuitBreaker` is a cheap per-core handle (`Rc` of `Cell`s; `Clone` shares
//! the same gauges), never sent to another thread. Acquiring, releasing and guards never
//! allocate (a guard holds an `Rc` clone). Releasing below zero saturates at zero (a
//! mismatched release is a bug, caught by `debug_assert!`).

use std::cell::Cell;
use std::rc::Rc;

use crate::config::CircuitBreaker as BreakerConfig;

/// Which limit a request hit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BreakerLimit {
    Connections = 0,
    PendingRequests = 1,
    Requests = 2,
}

impl BreakerLimit {
    pub const ALL: [BreakerLimit; 3] = [
        BreakerLimit::Connections,
        BreakerLimit::PendingRequests,
        BreakerLimit::Requests,
    ];

    /// The config key, also the `x-ringway-overloaded` value and the metrics label.
    pub const fn as_str(self) -> &'static str {
        match self {
            BreakerLimit::Connections => "max_connections",
            BreakerLimit::PendingRequests => "max_pending_requests",
            BreakerLimit::Requests => "max_requests",
        }
    }
}

/// A request was refused by the circuit breaker: answer 503 with
/// `x-ringway-overloaded: {which}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("circuit breaker open: {which}")]
pub struct Overload {
    /// [`BreakerLimit::as_str`] of `limit`.
    pub which: &'static str,
    pub limit: BreakerLimit,
}

#[derive(Debug, Default)]
struct Gauges {
    /// Indexed by `BreakerLimit as usize`.
    limit: [Cell<u32>; 3],
    current: [Cell<u32>; 3],
    rejected: [Cell<u64>; 3],
}

/// One cluster's circuit breaker on one core.
#[derive(Debug, Clone)]
pub struct CircuitBreaker {
    gauges: Rc<Gauges>,
}

/// This core's share of a process-wide limit: ⌈limit / workers⌉ (workers 0 counts as 1).
#[inline]
pub fn per_worker_limit(limit: u32, workers: usize) -> u32 {
    let workers = u32::try_from(workers.max(1)).unwrap_or(u32::MAX);
    limit.div_ceil(workers)
}

impl CircuitBreaker {
    /// The breaker of one of `workers` workers for `cfg`.
    pub fn new(cfg: &BreakerConfig, workers: usize) -> CircuitBreaker {
        let b = CircuitBreaker {
            gauges: Rc::new(Gauges::default()),
        };
        b.set_limits(cfg, workers);
        b
    }

    /// New limits (reload); current gauges and counters are kept, so a lowered limit only
    /// refuses new work.
    pub fn set_limits(&self, cfg: &BreakerConfig, workers: usize) {
        let g = &self.gauges;
        g.limit[BreakerLimit::Connections as usize]
            .set(per_worker_limit(cfg.max_connections, workers));
        g.limit[BreakerLimit::PendingRequests as usize]
            .set(per_worker_limit(cfg.max_pending_requests, workers));
        g.limit[BreakerLimit::Requests as usize].set(per_worker_limit(cfg.max_requests, workers));
    }

    /// Takes one slot of `which`, or counts a rejection.
    #[inline]
    pub fn try_acquire(&self, which: BreakerLimit) -> Result<(), Overload> {
        let i = which as usize;
        let g = &self.gauges;
        let cur = g.current[i].get();
        if cur >= g.limit[i].get() {
            g.rejected[i].set(g.rejected[i].get() + 1);
            return Err(Overload {
                which: which.as_str(),
                limit: which,
            });
        }
        g.current[i].set(cur + 1);
        Ok(())
    }

    /// Gives back one slot of `which` taken by [`try_acquire`](Self::try_acquire).
    #[inline]
    pub fn release(&self, which: BreakerLimit) {
        let c = &self.gauges.current[which as usize];
        debug_assert!(c.get() > 0, "circuit breaker release without acquire");
        c.set(c.get().saturating_sub(1));
    }

    #[inline]
    fn guard(&self, which: BreakerLimit) -> Result<Guard, Overload> {
        self.try_acquire(which)?;
        Ok(Guard {
            gauges: Some(self.gauges.clone()),
            which,
        })
    }

    /// A request starts (before the pick); the slot is held until the guard drops.
    #[inline]
    pub fn try_start_request(&self) -> Result<RequestGuard, Overload> {
        self.guard(BreakerLimit::Requests)
            .map(|g| RequestGuard { _slot: g })
    }

    /// A request waits for a new upstream connection.
    #[inline]
    pub fn try_start_pending(&self) -> Result<PendingGuard, Overload> {
        self.guard(BreakerLimit::PendingRequests)
            .map(|g| PendingGuard { _slot: g })
    }

    /// A new upstream connection may be opened; keep the guard with the connection.
    #[inline]
    pub fn try_open_connection(&self) -> Result<ConnectionGuard, Overload> {
        self.guard(BreakerLimit::Connections)
            .map(|slot| ConnectionGuard { slot })
    }

    /// Slots of `which` in use on this core.
    pub fn current(&self, which: BreakerLimit) -> u32 {
        self.gauges.current[which as usize].get()
    }

    /// This core's limit for `which`.
    pub fn limit(&self, which: BreakerLimit) -> u32 {
        self.gauges.limit[which as usize].get()
    }

    /// Refusals because of `which` so far on this core.
    pub fn rejected(&self, which: BreakerLimit) -> u64 {
        self.gauges.rejected[which as usize].get()
    }
}

#[derive(Debug)]
struct Guard {
    /// `None` once forgotten.
    gauges: Option<Rc<Gauges>>,
    which: BreakerLimit,
}

impl Drop for Guard {
    fn drop(&mut self) {
        if let Some(g) = &self.gauges {
            let c = &g.current[self.which as usize];
            c.set(c.get().saturating_sub(1));
        }
    }
}

/// Holds one `max_requests` slot until dropped.
#[derive(Debug)]
pub struct RequestGuard {
    _slot: Guard,
}

impl RequestGuard {
    /// The request finished (same as dropping the guard).
    pub fn finish(self) {}
}

/// Holds one `max_pending_requests` slot until dropped.
#[derive(Debug)]
pub struct PendingGuard {
    _slot: Guard,
}

impl PendingGuard {
    /// The connection arrived (or failed): same as dropping the guard.
    pub fn end(self) {}
}

/// Holds one `max_connections` slot until dropped.
#[derive(Debug)]
pub struct ConnectionGuard {
    slot: Guard,
}

impl ConnectionGuard {
    /// Keeps the slot taken without a guard; release it later with
    /// `breaker.release(BreakerLimit::Connections)`.
    pub fn forget(mut self) {
        self.slot.gauges = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(conns: u32, pending: u32, reqs: u32) -> BreakerConfig {
        BreakerConfig {
            max_connections: conns,
            max_pending_requests: pending,
            max_requests: reqs,
        }
    }

    #[test]
    fn per_worker_limit_rounds_up() {
        assert_eq!(per_worker_limit(10, 4), 3);
        assert_eq!(per_worker_limit(8, 4), 2);
        assert_eq!(per_worker_limit(1, 16), 1);
        assert_eq!(per_worker_limit(0, 4), 0);
        assert_eq!(per_worker_limit(7, 0), 7);
        assert_eq!(per_worker_limit(u32::MAX, usize::MAX), 1);
    }

    #[test]
    fn requests_over_the_limit_are_refused_and_counted() {
        let b = CircuitBreaker::new(&cfg(100, 100, 5), 2); // 3 per worker
        let held: Vec<_> = (0..3).map(|_| b.try_start_request().unwrap()).collect();
        let err = b.try_start_request().unwrap_err();
        assert_eq!(err.which, "max_requests");
        assert_eq!(err.limit, BreakerLimit::Requests);
        assert_eq!(b.rejected(BreakerLimit::Requests), 1);
        assert_eq!(b.current(BreakerLimit::Requests), 3);
        drop(held);
        assert_eq!(b.current(BreakerLimit::Requests), 0);
        b.try_start_request().unwrap().finish();
        assert_eq!(b.current(BreakerLimit::Requests), 0);
    }

    #[test]
    fn each_limit_is_independent_and_named() {
        let b = CircuitBreaker::new(&cfg(1, 1, 1), 1);
        let _r = b.try_start_request().unwrap();
        let _p = b.try_start_pending().unwrap();
        let _c = b.try_open_connection().unwrap();
        assert_eq!(b.try_start_request().unwrap_err().which, "max_requests");
        assert_eq!(
            b.try_start_pending().unwrap_err().which,
            "max_pending_requests"
        );
        assert_eq!(
            b.try_open_connection().unwrap_err().which,
            "max_connections"
        );
        for l in BreakerLimit::ALL {
            assert_eq!(b.rejected(l), 1);
            assert_eq!(b.limit(l), 1);
        }
    }

    #[test]
    fn explicit_acquire_release_and_forgotten_guards() {
        let b = CircuitBreaker::new(&cfg(2, 1, 1), 1);
        b.try_acquire(BreakerLimit::Connections).unwrap();
        b.try_open_connection().unwrap().forget();
        assert_eq!(b.current(BreakerLimit::Connections), 2);
        assert!(b.try_acquire(BreakerLimit::Connections).is_err());
        b.release(BreakerLimit::Connections);
        b.release(BreakerLimit::Connections);
        assert_eq!(b.current(BreakerLimit::Connections), 0);
    }

    #[test]
    fn clones_share_gauges_and_reload_keeps_them() {
        let b = CircuitBreaker::new(&cfg(4, 4, 4), 1);
        let c = b.clone();
        let g = c.try_start_request().unwrap();
        assert_eq!(b.current(BreakerLimit::Requests), 1);
        b.set_limits(&cfg(4, 4, 1), 1);
        assert!(b.try_start_request().is_err());
        drop(g);
        assert!(b.try_start_request().is_ok());
    }

    #[test]
    fn zero_limit_refuses_everything() {
        let b = CircuitBreaker::new(&cfg(0, 0, 0), 4);
        assert!(b.try_start_request().is_err());
        assert!(b.try_open_connection().is_err());
    }
}
