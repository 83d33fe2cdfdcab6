//! [`MetricsShard`]: the metrics of one worker core, recorded without atomics, locks, hashing,
//! formatting or allocation.
//!
//! The shard is built once per config generation from the listener and cluster names (in config
//! order); callers then record by index (`ListenerConfig` position, `ClusterId`). It is shared
//! within its core as `Rc<MetricsShard>`: every method takes `&self`, counters are `Cell<u64>`,
//! histograms sit in a `RefCell` that is borrowed only inside one call (never across an await).
//!
//! INVARIANT: `requests.len() == listeners.len() * (clusters.len() + 1) * StatusClass::COUNT`;
//! cluster slot 0 is "no cluster" (direct responses, errors before a cluster was chosen), slot
//! `c + 1` is cluster `c`.
//!
//! An out-of-range index is a caller bug: `debug_assert!` in tests, ignored in release.

use std::cell::{Cell, RefCell};
use std::time::Duration;

use hdrhistogram::Histogram;

use super::snapshot::{ClusterMetrics, ListenerMetrics, MetricsSnapshot};
use super::{duration_to_us, new_latency_histogram, ErrorKind, PolicyEvent, StatusClass};

/// Per-listener counters.
#[derive(Default)]
struct ListenerCells {
    connections_opened: Cell<u64>,
    connections_closed: Cell<u64>,
    bytes_received: Cell<u64>,
    bytes_sent: Cell<u64>,
}

/// Per-cluster counters and the upstream latency histogram.
struct ClusterCells {
    bytes_sent: Cell<u64>,
    bytes_received: Cell<u64>,
    connects_ok: Cell<u64>,
    connects_failed: Cell<u64>,
    pool_reuses: Cell<u64>,
    latency_sum_us: Cell<u64>,
    /// INVARIANT: bounds of [`new_latency_histogram`], fully allocated, never auto-resized.
    latency: RefCell<Histogram<u64>>,
}

/// The metrics of one worker core. See the module doc.
pub struct MetricsShard {
    listener_names: Vec<String>,
    cluster_names: Vec<String>,
    listeners: Box<[ListenerCells]>,
    clusters: Box<[ClusterCells]>,
    /// `[listener][cluster slot][status class]`, flattened; see the module invariant.
    requests: Box<[Cell<u64>]>,
    errors: [Cell<u64>; ErrorKind::COUNT],
    /// `[cluster slot][event]`, flattened; slot 0 = no cluster, slot c + 1 = cluster c.
    policy: Box<[Cell<u64>]>,
    /// TLS and authorization counters with run-time labels.
    pub security: super::security::SecurityCounters,
    /// Istio's standard metrics (recorded only when a view has `istio_metrics` on).
    pub istio: super::istio::IstioShard,
}

#[inline]
fn bump(cell: &Cell<u64>, n: u64) {
    cell.set(cell.get().wrapping_add(n));
}

impl MetricsShard {
    /// A shard for the given listener and cluster names, in config order. All memory
    /// (counters and one latency histogram per cluster) is allocated here.
    pub fn new(listeners: &[String], clusters: &[String]) -> MetricsShard {
        let request_cells = listeners.len() * (clusters.len() + 1) * StatusClass::COUNT;
        MetricsShard {
            listener_names: listeners.to_vec(),
            cluster_names: clusters.to_vec(),
            listeners: listeners.iter().map(|_| ListenerCells::default()).collect(),
            clusters: clusters
                .iter()
                .map(|_| ClusterCells {
                    bytes_sent: Cell::new(0),
                    bytes_received: Cell::new(0),
                    connects_ok: Cell::new(0),
                    connects_failed: Cell::new(0),
                    pool_reuses: Cell::new(0),
                    latency_sum_us: Cell::new(0),
                    latency: RefCell::new(new_latency_histogram()),
                })
                .collect(),
            requests: (0..request_cells).map(|_| Cell::new(0)).collect(),
            errors: Default::default(),
            policy: (0..(clusters.len() + 1) * PolicyEvent::COUNT)
                .map(|_| Cell::new(0))
                .collect(),
            security: Default::default(),
            istio: Default::default(),
        }
    }

    /// Counts `label` in `family` for listener `listener`.
    pub fn security_event(&self, family: super::SecurityFamily, listener: usize, label: &str) {
        if let Some(name) = self.listener_names.get(listener) {
            self.security.bump(family, name, label);
        }
    }

    /// Counts an upstream TLS handshake `result` for cluster `cluster`.
    pub fn upstream_tls(&self, cluster: usize, result: &str) {
        if let Some(name) = self.cluster_names.get(cluster) {
            self.security
                .bump(super::SecurityFamily::UpstreamHandshake, name, result);
        }
    }

    /// Listener names, in index order.
    pub fn listener_names(&self) -> &[String] {
        &self.listener_names
    }

    /// Cluster names, in index order.
    pub fn cluster_names(&self) -> &[String] {
        &self.cluster_names
    }

    fn listener(&self, listener: usize) -> Option<&ListenerCells> {
        let cells = self.listeners.get(listener);
        debug_assert!(cells.is_some(), "listener index {listener} out of range");
        cells
    }

    fn cluster(&self, cluster: usize) -> Option<&ClusterCells> {
        let cells = self.clusters.get(cluster);
        debug_assert!(cells.is_some(), "cluster index {cluster} out of range");
        cells
    }

    /// A request on `listener` finished with `status`, through `cluster` if one was chosen.
    /// `upstream_latency` (request sent to response head received, or whatever the proxy
    /// measures) is recorded into the cluster's histogram when both are given.
    #[inline]
    pub fn request_done(
        &self,
        listener: usize,
        cluster: Option<usize>,
        status: u16,
        upstream_latency: Option<Duration>,
    ) {
        let slot = match cluster {
            None => 0,
            Some(c) if c < self.clusters.len() => c + 1,
            Some(c) => {
                debug_assert!(false, "cluster index {c} out of range");
                return;
            }
        };
        if listener >= self.listeners.len() {
            debug_assert!(false, "listener index {listener} out of range");
            return;
        }
        let index = (listener * (self.clusters.len() + 1) + slot) * StatusClass::COUNT
            + StatusClass::of(status).index();
        if let Some(cell) = self.requests.get(index) {
            bump(cell, 1);
        }
        if let (Some(c), Some(latency)) = (cluster, upstream_latency) {
            if let Some(cells) = self.clusters.get(c) {
                let us = duration_to_us(latency);
                bump(&cells.latency_sum_us, us);
                // Saturates at the histogram's 60 s bound; never allocates (no auto-resize).
                cells.latency.borrow_mut().saturating_record(us);
            }
        }
    }

    /// A downstream connection was accepted on `listener`.
    #[inline]
    pub fn connection_opened(&self, listener: usize) {
        if let Some(cells) = self.listener(listener) {
            bump(&cells.connections_opened, 1);
        }
    }

    /// A downstream connection on `listener` was closed.
    #[inline]
    pub fn connection_closed(&self, listener: usize) {
        if let Some(cells) = self.listener(listener) {
            bump(&cells.connections_closed, 1);
        }
    }

    /// `n` bytes were read from downstream clients of `listener`.
    #[inline]
    pub fn bytes_received(&self, listener: usize, n: u64) {
        if let Some(cells) = self.listener(listener) {
            bump(&cells.bytes_received, n);
        }
    }

    /// `n` bytes were written to downstream clients of `listener`.
    #[inline]
    pub fn bytes_sent(&self, listener: usize, n: u64) {
        if let Some(cells) = self.listener(listener) {
            bump(&cells.bytes_sent, n);
        }
    }

    /// A new upstream connection to an endpoint of `cluster` succeeded (`ok`) or failed.
    #[inline]
    pub fn upstream_connect(&self, cluster: usize, ok: bool) {
        if let Some(cells) = self.cluster(cluster) {
            bump(
                if ok {
                    &cells.connects_ok
                } else {
                    &cells.connects_failed
                },
                1,
            );
        }
    }

    /// Bytes sent to and received from endpoints of `cluster`.
    #[inline]
    pub fn upstream_bytes(&self, cluster: usize, sent: u64, received: u64) {
        if let Some(cells) = self.cluster(cluster) {
            bump(&cells.bytes_sent, sent);
            bump(&cells.bytes_received, received);
        }
    }

    /// A request to `cluster` reused an idle pooled connection instead of connecting.
    #[inline]
    pub fn upstream_pool_reuse(&self, cluster: usize) {
        if let Some(cells) = self.cluster(cluster) {
            bump(&cells.pool_reuses, 1);
        }
    }

    /// The proxy failed or refused a request for `kind`.
    #[inline]
    pub fn proxy_error(&self, kind: ErrorKind) {
        if let Some(cell) = self.errors.get(kind.index()) {
            bump(cell, 1);
        }
    }

    /// A traffic policy acted (see [`PolicyEvent`]), for `cluster` or for no cluster.
    #[inline]
    pub fn policy_event(&self, cluster: Option<usize>, event: PolicyEvent) {
        let slot = cluster.map_or(0, |c| c + 1);
        if let Some(cell) = self.policy.get(slot * PolicyEvent::COUNT + event.index()) {
            bump(cell, 1);
        }
    }

    /// A copy of every counter and histogram, as owned `Send` data (admin path; allocates).
    pub fn snapshot(&self) -> MetricsSnapshot {
        let listeners = self
            .listener_names
            .iter()
            .zip(self.listeners.iter())
            .map(|(name, c)| ListenerMetrics {
                name: name.clone(),
                connections_opened: c.connections_opened.get(),
                connections_closed: c.connections_closed.get(),
                bytes_received: c.bytes_received.get(),
                bytes_sent: c.bytes_sent.get(),
            })
            .collect();
        let clusters = self
            .cluster_names
            .iter()
            .zip(self.clusters.iter())
            .map(|(name, c)| ClusterMetrics {
                name: name.clone(),
                upstream_connects_ok: c.connects_ok.get(),
                upstream_bytes_sent: c.bytes_sent.get(),
                upstream_bytes_received: c.bytes_received.get(),
                upstream_connects_failed: c.connects_failed.get(),
                upstream_pool_reuses: c.pool_reuses.get(),
                latency_sum_us: c.latency_sum_us.get(),
                latency: c.latency.borrow().clone(),
                policy: [0; PolicyEvent::COUNT],
            })
            .collect::<Vec<_>>();
        let mut clusters = clusters;
        let mut policy_none = [0u64; PolicyEvent::COUNT];
        for (slot, chunk) in self.policy.chunks_exact(PolicyEvent::COUNT).enumerate() {
            let counts = match slot {
                0 => &mut policy_none,
                c => match clusters.get_mut(c - 1) {
                    Some(m) => &mut m.policy,
                    None => continue,
                },
            };
            for (count, cell) in counts.iter_mut().zip(chunk) {
                *count = cell.get();
            }
        }
        let requests = self
            .requests
            .chunks_exact(StatusClass::COUNT)
            .map(|chunk| {
                let mut counts = [0u64; StatusClass::COUNT];
                for (count, cell) in counts.iter_mut().zip(chunk) {
                    *count = cell.get();
                }
                counts
            })
            .collect();
        let mut errors = [0u64; ErrorKind::COUNT];
        for (count, cell) in errors.iter_mut().zip(self.errors.iter()) {
            *count = cell.get();
        }
        let mut snap = MetricsSnapshot::from_parts(listeners, clusters, requests, errors);
        snap.set_policy_none(policy_none);
        snap.security = self.security.snapshot();
        snap.istio = self.istio.snapshot();
        snap
    }
}
