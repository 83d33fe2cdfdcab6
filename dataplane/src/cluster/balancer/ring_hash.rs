//! The consistent-hash ring of the `ring_hash` policy (Karger et al.; ketama layout).
//!
//! Each endpoint gets `vnodes` points at `hash_bytes(key_le ‖ vnode_le)` where `key` is the
//! endpoint's identity — [`hash_socket_addr`] of its address, or [`hash_bytes`] of its index
//! as a little-endian u64 when only a count is known — and `vnode` a little-endian u32.
//! A request hash is served by the first point at or after it (wrapping), skipping points
//! of ineligible endpoints. Adding or removing one endpoint moves only the keys that land on
//! its points: ≈1/n of them.
//!
//! Invariants: `hashes` is sorted ascending (ties by owner), `owners[i]` owns `hashes[i]`,
//! both have the same length. Per-core and rebuilt only on an endpoint change (allocates).

use std::net::SocketAddr;

use super::PickContext;
use crate::cluster::hash::{hash_bytes, hash_socket_addr};

/// Points per endpoint (as ketama). ≈5% load spread between endpoints at 160.
pub const DEFAULT_VNODES: usize = 160;
/// Upper bound on ring size; very large clusters get fewer points per endpoint (at least 1).
pub const MAX_RING_POINTS: usize = 1 << 17;

#[derive(Debug, Clone, Default)]
pub(super) struct Ring {
    hashes: Vec<u64>,
    owners: Vec<u32>,
}

impl Ring {
    pub(super) fn rebuild_indexed(&mut self, n: usize) {
        self.rebuild((0..n).map(|i| hash_bytes(&(i as u64).to_le_bytes())), n);
    }

    pub(super) fn rebuild_addrs(&mut self, addrs: &[SocketAddr]) {
        self.rebuild(addrs.iter().map(|a| hash_socket_addr(*a)), addrs.len());
    }

    fn rebuild(&mut self, keys: impl Iterator<Item = u64>, n: usize) {
        let vnodes = MAX_RING_POINTS
            .checked_div(n)
            .map_or(0, |v| v.clamp(1, DEFAULT_VNODES));
        let mut points: Vec<(u64, u32)> = Vec::with_capacity(n.saturating_mul(vnodes));
        for (owner, key) in keys.enumerate() {
            let Ok(owner) = u32::try_from(owner) else {
                break;
            };
            let mut buf = [0u8; 12];
            buf[..8].copy_from_slice(&key.to_le_bytes());
            for v in 0..vnodes as u32 {
                buf[8..].copy_from_slice(&v.to_le_bytes());
                points.push((hash_bytes(&buf), owner));
            }
        }
        points.sort_unstable();
        self.hashes = points.iter().map(|p| p.0).collect();
        self.owners = points.iter().map(|p| p.1).collect();
    }

    #[inline]
    pub(super) fn pick(&self, ctx: &PickContext<'_>) -> Option<usize> {
        let len = self.hashes.len();
        let start = self.hashes.partition_point(|&h| h < ctx.hash);
        (0..len)
            .filter_map(|k| self.owners.get((start + k) % len))
            .map(|&o| o as usize)
            .find(|&o| ctx.is_eligible(o))
    }

    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.hashes.len()
    }
}
