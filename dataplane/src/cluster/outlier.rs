//! [`OutlierDetector`]: passive ejection of misbehaving endpoints (`[clusters.outlier_detection]`),
//! one per cluster per core, fed by the proxy with the outcome of every upstream try.
//!
//! # Rules (Envoy's consecutive-5xx / consecutive-gateway-failure detectors)
//! - [`Outcome::Success`] (any non-5xx response) resets both counters of the endpoint.
//! - [`Outcome::Status5xx`] counts towards `consecutive_5xx`; a 502/503/504 also counts
//!   towards `consecutive_gateway_failure`, any other 5xx resets that counter.
//! - [`Outcome::GatewayFailure`] (connect failure, reset, per-try timeout) counts as a 503
//!   would: towards both counters (Envoy without `split_external_local_origin_errors`).
//! - A counter reaching its threshold (0 = that detector is off) ejects the endpoint for
//!   `base_ejection_time × n`, at most `max_ejection_time`, where n is the number of times it
//!   has been ejected. n decays by one for every `base_ejection_time` the endpoint then stays
//!   un-ejected, so a long-healthy endpoint starts over at `base`.
//! - At most ⌊endpoints × max_ejection_percent / 100⌋ endpoints are ejected at once; when that
//!   is 0 (one endpoint at 50%) nothing is ejected. An ejection refused by this cap is counted
//!   ([`OutlierDetector::overflow_count`]) and the counters keep running, so the endpoint is
//!   ejected on its next failure once room frees up.
//! - Outcomes for an ejected endpoint (requests that were in flight) are ignored.
//!
//! # Phases
//! ```text
//! before pick     let mask = detector.unavailable(now);   // un-ejects expired endpoints
//!                 (merge with health: cluster::health::merge_unavailable) -> PickContext.unavailable
//! after each try  detector.record(idx, Outcome::…, now)
//! endpoints set   detector.update_endpoints(n)            // new set: all state reset
//! ```
//! Invariants: per core, `&mut self`; `unavailable.len() == endpoints.len() == n`;
//! `ejected == count of true in unavailable`. `record` and `unavailable` never allocate
//! (`unavailable` scans only when the earliest ejection has expired).

use std::time::{Duration, Instant};

use crate::config::OutlierDetection;

/// The outcome of one upstream try, as outlier detection sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// A response below 500.
    Success,
    /// A 5xx response (502, 503, 504 are also gateway failures).
    Status5xx(u16),
    /// Connect failure, reset before a response, or per-try timeout.
    GatewayFailure,
}

impl Outcome {
    /// The outcome of a response status.
    #[inline]
    pub fn from_status(status: u16) -> Outcome {
        if (500..=599).contains(&status) {
            Outcome::Status5xx(status)
        } else {
            Outcome::Success
        }
    }
}

/// Why an endpoint was ejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EjectReason {
    Consecutive5xx,
    ConsecutiveGatewayFailure,
}

#[derive(Debug, Clone, Copy, Default)]
struct Endpoint {
    consecutive_5xx: u32,
    consecutive_gateway: u32,
    /// Ejections so far (decayed), the n of `base × n`.
    times_ejected: u32,
    /// While ejected: until when; after: when it was un-ejected.
    until: Option<Instant>,
}

/// One cluster's outlier detection on one core.
#[derive(Debug, Clone)]
pub struct OutlierDetector {
    cfg: OutlierDetection,
    endpoints: Vec<Endpoint>,
    /// INVARIANT: `len() == endpoints.len()`; `true` = ejected.
    unavailable: Vec<bool>,
    /// INVARIANT: number of `true` in `unavailable`.
    ejected: usize,
    /// Earliest `until` of an ejected endpoint.
    next_expiry: Option<Instant>,
    ejections_5xx: u64,
    ejections_gateway: u64,
    overflow: u64,
}

impl OutlierDetector {
    /// A detector over `endpoints` endpoints (by index, as the balancer's).
    pub fn new(cfg: OutlierDetection, endpoints: usize) -> OutlierDetector {
        let mut d = OutlierDetector {
            cfg,
            endpoints: Vec::new(),
            unavailable: Vec::new(),
            ejected: 0,
            next_expiry: None,
            ejections_5xx: 0,
            ejections_gateway: 0,
            overflow: 0,
        };
        d.update_endpoints(endpoints);
        d
    }

    /// The endpoint set changed to `n` endpoints: every endpoint starts un-ejected with clean
    /// counters (lifetime ejection counts are kept). Allocates when growing.
    pub fn update_endpoints(&mut self, n: usize) {
        self.endpoints.clear();
        self.endpoints.resize(n, Endpoint::default());
        self.unavailable.clear();
        self.unavailable.resize(n, false);
        self.ejected = 0;
        self.next_expiry = None;
    }

    /// New settings (reload); current ejections stay until they expire.
    pub fn set_config(&mut self, cfg: OutlierDetection) {
        self.cfg = cfg;
    }

    /// Records the outcome of a try on endpoint `idx`; returns the reason if it ejected it.
    /// Unknown indices are ignored.
    #[inline]
    pub fn record(&mut self, idx: usize, outcome: Outcome, now: Instant) -> Option<EjectReason> {
        if self.unavailable.get(idx).copied().unwrap_or(true) {
            return None;
        }
        let ep = self.endpoints.get_mut(idx)?;
        let (is_5xx, is_gateway) = match outcome {
            Outcome::Success => (false, false),
            Outcome::Status5xx(s) => (true, (502..=504).contains(&s)),
            Outcome::GatewayFailure => (true, true),
        };
        if !is_5xx {
            ep.consecutive_5xx = 0;
            ep.consecutive_gateway = 0;
            return None;
        }
        ep.consecutive_5xx = ep.consecutive_5xx.saturating_add(1);
        ep.consecutive_gateway = if is_gateway {
            ep.consecutive_gateway.saturating_add(1)
        } else {
            0
        };
        let gw = self.cfg.consecutive_gateway_failure;
        let sx = self.cfg.consecutive_5xx;
        let reason = if gw > 0 && ep.consecutive_gateway >= gw {
            EjectReason::ConsecutiveGatewayFailure
        } else if sx > 0 && ep.consecutive_5xx >= sx {
            EjectReason::Consecutive5xx
        } else {
            return None;
        };
        self.eject(idx, reason, now).then_some(reason)
    }

    fn eject(&mut self, idx: usize, reason: EjectReason, now: Instant) -> bool {
        let n = self.endpoints.len();
        let max = n.saturating_mul(self.cfg.max_ejection_percent.min(100) as usize) / 100;
        if self.ejected >= max {
            self.overflow += 1;
            return false;
        }
        let base = self.cfg.base_ejection_time;
        let Some(ep) = self.endpoints.get_mut(idx) else {
            return false;
        };
        // Decay: one step per `base` spent un-ejected since the last ejection ended.
        if let (Some(ended), false) = (ep.until, base.is_zero()) {
            let healthy = now.saturating_duration_since(ended);
            let steps = healthy.as_nanos() / base.as_nanos();
            ep.times_ejected = ep
                .times_ejected
                .saturating_sub(u32::try_from(steps).unwrap_or(u32::MAX));
        }
        ep.times_ejected = ep.times_ejected.saturating_add(1);
        let dur = base
            .saturating_mul(ep.times_ejected)
            .min(self.cfg.max_ejection_time.max(base));
        let until = now
            .checked_add(dur)
            .or_else(|| now.checked_add(Duration::from_secs(86_400 * 365)))
            .unwrap_or(now);
        ep.until = Some(until);
        ep.consecutive_5xx = 0;
        ep.consecutive_gateway = 0;
        if let Some(u) = self.unavailable.get_mut(idx) {
            *u = true;
        }
        self.ejected += 1;
        self.next_expiry = Some(self.next_expiry.map_or(until, |e| e.min(until)));
        match reason {
            EjectReason::Consecutive5xx => self.ejections_5xx += 1,
            EjectReason::ConsecutiveGatewayFailure => self.ejections_gateway += 1,
        }
        true
    }

    /// Until when endpoint `idx` is ejected (as of the last check), if it is.
    pub fn ejected_until(&self, idx: usize) -> Option<Instant> {
        match self.unavailable.get(idx) {
            Some(true) => self.endpoints.get(idx).and_then(|e| e.until),
            _ => None,
        }
    }

    /// Another core ejected endpoint `idx` until `until`: take it out here too (within
    /// `max_ejection_percent`; not counted as this core's ejection). False if it could not.
    pub fn eject_from_peer(&mut self, idx: usize, until: Instant) -> bool {
        if self.unavailable.get(idx).copied().unwrap_or(true) {
            // Already ejected here (or unknown): keep the later end.
            if let Some(ep) = self.endpoints.get_mut(idx) {
                ep.until = ep.until.max(Some(until));
            }
            return false;
        }
        let n = self.endpoints.len();
        let max = n.saturating_mul(self.cfg.max_ejection_percent.min(100) as usize) / 100;
        if self.ejected >= max {
            return false;
        }
        let Some(ep) = self.endpoints.get_mut(idx) else {
            return false;
        };
        ep.until = Some(until);
        ep.consecutive_5xx = 0;
        ep.consecutive_gateway = 0;
        self.unavailable[idx] = true;
        self.ejected += 1;
        self.next_expiry = Some(self.next_expiry.map_or(until, |e| e.min(until)));
        true
    }

    /// The ejection mask at `now` (expired ejections are lifted first), indexed like the
    /// endpoints; usable as `PickContext::unavailable`.
    #[inline]
    pub fn unavailable(&mut self, now: Instant) -> &[bool] {
        if matches!(self.next_expiry, Some(e) if now >= e) {
            self.expire(now);
        }
        &self.unavailable
    }

    fn expire(&mut self, now: Instant) {
        let mut next: Option<Instant> = None;
        for (ep, u) in self.endpoints.iter_mut().zip(self.unavailable.iter_mut()) {
            if !*u {
                continue;
            }
            match ep.until {
                Some(until) if now >= until => {
                    *u = false;
                    self.ejected -= 1;
                }
                Some(until) => next = Some(next.map_or(until, |e| e.min(until))),
                None => {}
            }
        }
        self.next_expiry = next;
    }

    /// The mask as of the last [`unavailable`](Self::unavailable) / [`record`](Self::record).
    pub fn mask(&self) -> &[bool] {
        &self.unavailable
    }

    /// Endpoints ejected right now (as of the last call).
    pub fn ejected_count(&self) -> usize {
        self.ejected
    }

    /// Whether endpoint `idx` is ejected (as of the last call).
    pub fn is_ejected(&self, idx: usize) -> bool {
        self.unavailable.get(idx).copied().unwrap_or(false)
    }

    /// Ejections so far on this core, all reasons.
    pub fn ejections_total(&self) -> u64 {
        self.ejections_5xx + self.ejections_gateway
    }

    /// Ejections so far on this core for `reason`.
    pub fn ejections(&self, reason: EjectReason) -> u64 {
        match reason {
            EjectReason::Consecutive5xx => self.ejections_5xx,
            EjectReason::ConsecutiveGatewayFailure => self.ejections_gateway,
        }
    }

    /// Ejections refused because `max_ejection_percent` was reached.
    pub fn overflow_count(&self) -> u64 {
        self.overflow
    }

    pub fn len(&self) -> usize {
        self.endpoints.len()
    }

    pub fn is_empty(&self) -> bool {
        self.endpoints.is_empty()
    }
}

#[cfg(test)]
mod tests;
