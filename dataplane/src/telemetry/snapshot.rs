//! [`MetricsSnapshot`]: an owned, `Send` copy of one or more [`MetricsShard`]s, made on the admin
//! path, merged across cores, rendered by `prometheus`.
//!
//! Merging is by name, not by index, so snapshots of shards built from different config
//! generations (a reload added or removed a cluster) still merge correctly: counters add,
//! histograms `add`, names present on one side only are appended.
//!
//! INVARIANT: `requests.len() == listeners.len() * (clusters.len() + 1)`; entry
//! `l * (clusters.len() + 1) + slot` holds listener `l`'s counts for cluster slot `slot`
//! (0 = no cluster, `c + 1` = `clusters[c]`), one count per [`StatusClass`].
//!
//! [`MetricsShard`]: super::MetricsShard

use hdrhistogram::Histogram;

use super::{new_latency_histogram, ErrorKind, PolicyEvent, StatusClass};

/// Downstream counters of one listener.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ListenerMetrics {
    pub name: String,
    pub connections_opened: u64,
    pub connections_closed: u64,
    pub bytes_received: u64,
    pub bytes_sent: u64,
}

impl ListenerMetrics {
    /// Connections open now (opened minus closed, never negative).
    pub fn connections_active(&self) -> u64 {
        self.connections_opened
            .saturating_sub(self.connections_closed)
    }

    fn add(&mut self, other: &ListenerMetrics) {
        self.connections_opened = self
            .connections_opened
            .wrapping_add(other.connections_opened);
        self.connections_closed = self
            .connections_closed
            .wrapping_add(other.connections_closed);
        self.bytes_received = self.bytes_received.wrapping_add(other.bytes_received);
        self.bytes_sent = self.bytes_sent.wrapping_add(other.bytes_sent);
    }
}

/// Upstream counters and latency of one cluster.
#[derive(Clone, Debug)]
pub struct ClusterMetrics {
    pub name: String,
    pub upstream_connects_ok: u64,
    pub upstream_bytes_sent: u64,
    pub upstream_bytes_received: u64,
    pub upstream_connects_failed: u64,
    pub upstream_pool_reuses: u64,
    /// Exact sum of recorded latencies in µs (the histogram's own values are bucketed).
    pub latency_sum_us: u64,
    /// Upstream latency in µs (see `telemetry::new_latency_histogram`).
    pub latency: Histogram<u64>,
    /// Policy events for this cluster, indexed by [`PolicyEvent::index`].
    pub policy: [u64; PolicyEvent::COUNT],
}

impl ClusterMetrics {
    fn empty(name: &str) -> ClusterMetrics {
        ClusterMetrics {
            name: name.to_owned(),
            upstream_connects_ok: 0,
            upstream_bytes_sent: 0,
            upstream_bytes_received: 0,
            upstream_connects_failed: 0,
            upstream_pool_reuses: 0,
            latency_sum_us: 0,
            latency: new_latency_histogram(),
            policy: [0; PolicyEvent::COUNT],
        }
    }

    fn add(&mut self, other: &ClusterMetrics) {
        self.upstream_connects_ok = self
            .upstream_connects_ok
            .wrapping_add(other.upstream_connects_ok);
        self.upstream_connects_failed = self
            .upstream_connects_failed
            .wrapping_add(other.upstream_connects_failed);
        self.upstream_bytes_sent = self
            .upstream_bytes_sent
            .wrapping_add(other.upstream_bytes_sent);
        self.upstream_bytes_received = self
            .upstream_bytes_received
            .wrapping_add(other.upstream_bytes_received);
        self.upstream_pool_reuses = self
            .upstream_pool_reuses
            .wrapping_add(other.upstream_pool_reuses);
        self.latency_sum_us = self.latency_sum_us.wrapping_add(other.latency_sum_us);
        for (a, b) in self.policy.iter_mut().zip(other.policy.iter()) {
            *a = a.wrapping_add(*b);
        }
        // Both sides have the same fixed bounds, so `add` cannot fail; if it ever did, the
        // latency of this merge is dropped rather than panicking the admin task.
        if self.latency.add(&other.latency).is_err() {
            debug_assert!(false, "latency histograms with different bounds");
        }
    }
}

/// Owned copy of metrics; see the module doc.
#[derive(Clone, Debug, Default)]
pub struct MetricsSnapshot {
    listeners: Vec<ListenerMetrics>,
    clusters: Vec<ClusterMetrics>,
    requests: Vec<[u64; StatusClass::COUNT]>,
    errors: [u64; ErrorKind::COUNT],
    /// Policy events with no cluster (e.g. rate limiting on a direct route).
    policy_none: [u64; PolicyEvent::COUNT],
    /// TLS and authorization counters (see `telemetry::security`).
    pub security: Vec<super::security::SecuritySeries>,
    /// Every certificate the workers' TLS material holds (deduplicated on merge).
    pub certificates: Vec<super::CertExpiry>,
    /// Istio's standard metrics, by label text.
    pub istio: super::istio::IstioSnapshot,
}

impl MetricsSnapshot {
    /// Assemble a snapshot; `requests` must follow the module invariant (it is padded or cut
    /// to fit if not, in release).
    pub(crate) fn from_parts(
        listeners: Vec<ListenerMetrics>,
        clusters: Vec<ClusterMetrics>,
        mut requests: Vec<[u64; StatusClass::COUNT]>,
        errors: [u64; ErrorKind::COUNT],
    ) -> MetricsSnapshot {
        let want = listeners.len() * (clusters.len() + 1);
        debug_assert_eq!(requests.len(), want);
        requests.resize(want, [0; StatusClass::COUNT]);
        MetricsSnapshot {
            listeners,
            clusters,
            requests,
            errors,
            policy_none: [0; PolicyEvent::COUNT],
            security: Vec::new(),
            certificates: Vec::new(),
            istio: Default::default(),
        }
    }

    pub(crate) fn set_policy_none(&mut self, counts: [u64; PolicyEvent::COUNT]) {
        self.policy_none = counts;
    }

    /// Count of `event` for cluster `cluster` (`None`: events without a cluster); 0 when the
    /// name is unknown.
    pub fn policy_count(&self, cluster: Option<&str>, event: PolicyEvent) -> u64 {
        let counts = match cluster {
            None => &self.policy_none,
            Some(name) => match self.clusters.iter().find(|c| c.name == name) {
                Some(c) => &c.policy,
                None => return 0,
            },
        };
        counts[event.index()]
    }

    /// Events without a cluster, indexed by [`PolicyEvent::index`].
    pub fn policy_none(&self) -> &[u64; PolicyEvent::COUNT] {
        &self.policy_none
    }

    /// Per-listener counters.
    pub fn listeners(&self) -> &[ListenerMetrics] {
        &self.listeners
    }

    /// Per-cluster counters and histograms.
    pub fn clusters(&self) -> &[ClusterMetrics] {
        &self.clusters
    }

    /// Error counts, indexed by [`ErrorKind::index`].
    pub fn errors(&self) -> &[u64; ErrorKind::COUNT] {
        &self.errors
    }

    /// The count of `kind` errors.
    pub fn error_count(&self, kind: ErrorKind) -> u64 {
        self.errors.get(kind.index()).copied().unwrap_or(0)
    }

    /// Request counts per status class for listener index `listener` and cluster index
    /// `cluster` (`None`: requests answered without a cluster); `None` if out of range.
    pub fn requests(
        &self,
        listener: usize,
        cluster: Option<usize>,
    ) -> Option<&[u64; StatusClass::COUNT]> {
        if listener >= self.listeners.len() {
            return None;
        }
        let slot = match cluster {
            None => 0,
            Some(c) if c < self.clusters.len() => c + 1,
            Some(_) => return None,
        };
        self.requests
            .get(listener * (self.clusters.len() + 1) + slot)
    }

    /// Request count by names: listener `listener`, cluster `cluster` (`None`: no cluster),
    /// status class `class`. 0 when a name is unknown.
    pub fn request_count(&self, listener: &str, cluster: Option<&str>, class: StatusClass) -> u64 {
        let Some(l) = self.listeners.iter().position(|m| m.name == listener) else {
            return 0;
        };
        let c = match cluster {
            None => None,
            Some(name) => match self.clusters.iter().position(|m| m.name == name) {
                Some(c) => Some(c),
                None => return 0,
            },
        };
        self.requests(l, c)
            .and_then(|counts| counts.get(class.index()))
            .copied()
            .unwrap_or(0)
    }

    /// Add `other` into `self`, matching listeners and clusters by name.
    pub fn merge(&mut self, other: &MetricsSnapshot) {
        super::security::merge(&mut self.security, &other.security);
        self.istio.merge(&other.istio);
        for c in &other.certificates {
            if !self.certificates.contains(c) {
                self.certificates.push(c.clone());
            }
        }
        // Map other's indices to ours, appending names we lack.
        let listener_map: Vec<usize> = other
            .listeners
            .iter()
            .map(|l| self.listener_index_or_insert(&l.name))
            .collect();
        let cluster_map: Vec<usize> = other
            .clusters
            .iter()
            .map(|c| self.cluster_index_or_insert(&c.name))
            .collect();

        for (theirs, &ours) in other.listeners.iter().zip(&listener_map) {
            if let Some(mine) = self.listeners.get_mut(ours) {
                mine.add(theirs);
            }
        }
        for (theirs, &ours) in other.clusters.iter().zip(&cluster_map) {
            if let Some(mine) = self.clusters.get_mut(ours) {
                mine.add(theirs);
            }
        }

        let their_slots = other.clusters.len() + 1;
        let our_slots = self.clusters.len() + 1;
        for (l_theirs, &l_ours) in listener_map.iter().enumerate() {
            for slot_theirs in 0..their_slots {
                let slot_ours = match slot_theirs.checked_sub(1) {
                    None => 0,
                    Some(c) => match cluster_map.get(c) {
                        Some(&c_ours) => c_ours + 1,
                        None => continue,
                    },
                };
                let (Some(src), Some(dst)) = (
                    other.requests.get(l_theirs * their_slots + slot_theirs),
                    self.requests.get_mut(l_ours * our_slots + slot_ours),
                ) else {
                    debug_assert!(false, "request matrix out of shape");
                    continue;
                };
                for (d, s) in dst.iter_mut().zip(src) {
                    *d = d.wrapping_add(*s);
                }
            }
        }

        for (d, s) in self.errors.iter_mut().zip(&other.errors) {
            *d = d.wrapping_add(*s);
        }
        for (d, s) in self.policy_none.iter_mut().zip(&other.policy_none) {
            *d = d.wrapping_add(*s);
        }
    }

    fn listener_index_or_insert(&mut self, name: &str) -> usize {
        if let Some(i) = self.listeners.iter().position(|l| l.name == name) {
            return i;
        }
        // Listeners are the outer dimension: a new listener's rows go at the end.
        self.listeners.push(ListenerMetrics {
            name: name.to_owned(),
            ..ListenerMetrics::default()
        });
        let slots = self.clusters.len() + 1;
        self.requests
            .extend(std::iter::repeat_n([0; StatusClass::COUNT], slots));
        self.listeners.len() - 1
    }

    fn cluster_index_or_insert(&mut self, name: &str) -> usize {
        if let Some(i) = self.clusters.iter().position(|c| c.name == name) {
            return i;
        }
        // Clusters are the inner dimension: re-lay the matrix with one more slot per row.
        let old_slots = self.clusters.len() + 1;
        self.clusters.push(ClusterMetrics::empty(name));
        let mut requests = Vec::with_capacity(self.listeners.len() * (old_slots + 1));
        for row in self.requests.chunks(old_slots) {
            requests.extend_from_slice(row);
            requests.push([0; StatusClass::COUNT]);
        }
        self.requests = requests;
        self.clusters.len() - 1
    }
}
