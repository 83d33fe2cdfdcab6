//! [`WeightedSplit`]: `split = [{ cluster, weight }, …]` compiled to cumulative weights, so a
//! pick is one random draw and one binary search.
//!
//! Invariants: never empty; `cumulative` is strictly increasing (zero-weight entries are
//! dropped) and its last element is `total > 0`. Immutable after build; the per-core
//! [`FastRng`] passed to [`WeightedSplit::pick_cluster`] is owned by one worker.

use crate::base::FastRng;
use crate::config::{ClusterId, WeightedCluster};

#[derive(Debug, Clone)]
pub struct WeightedSplit {
    clusters: Box<[ClusterId]>,
    /// INVARIANT: same length as `clusters`, strictly increasing, last == total > 0.
    cumulative: Box<[u64]>,
}

impl WeightedSplit {
    /// `None` when `weights` is empty. Entries with weight 0 are never picked; when every
    /// weight is 0 the entries share traffic equally.
    pub fn new(weights: &[WeightedCluster]) -> Option<WeightedSplit> {
        if weights.is_empty() {
            return None;
        }
        let all_zero = weights.iter().all(|w| w.weight == 0);
        let mut clusters = Vec::with_capacity(weights.len());
        let mut cumulative = Vec::with_capacity(weights.len());
        let mut total = 0u64;
        for w in weights {
            let weight = if all_zero { 1 } else { u64::from(w.weight) };
            if weight == 0 {
                continue;
            }
            total += weight;
            clusters.push(w.cluster);
            cumulative.push(total);
        }
        Some(WeightedSplit {
            clusters: clusters.into(),
            cumulative: cumulative.into(),
        })
    }

    /// One weighted draw: cluster `i` with probability `weight_i / total`.
    #[inline]
    pub fn pick_cluster(&self, rng: &mut FastRng) -> ClusterId {
        let total = self.cumulative.last().copied().unwrap_or(0);
        let r = rng.below(total);
        let i = self.cumulative.partition_point(|&c| c <= r);
        match self.clusters.get(i).or(self.clusters.last()) {
            Some(&c) => c,
            None => {
                debug_assert!(false, "WeightedSplit is never empty");
                ClusterId(0)
            }
        }
    }

    /// The clusters that can be picked (positive weight), in file order.
    pub fn clusters(&self) -> &[ClusterId] {
        &self.clusters
    }
}
