//! [`FastRng`]: a tiny, non-cryptographic per-core PRNG (wyrand) for load-balancing and
//! weighted-split decisions.
//!
//! Per-core invariant: every worker owns its own generators (`&mut self`, no atomics, no
//! sharing); seed each one differently ([`FastRng::from_entropy`] or
//! [`FastRng::new`] with a per-worker seed) so cores do not make identical choices.
//! Not for anything security-relevant (request ids that must be unguessable, tokens).

use std::hash::{BuildHasher, Hasher};
use std::time::{SystemTime, UNIX_EPOCH};

/// wyrand (Wang Yi, public domain): a 64-bit counter mixed through one 128-bit multiply.
/// Every seed, including 0, gives a full-period stream (period 2^64).
#[derive(Debug, Clone)]
pub struct FastRng {
    state: u64,
}

const WY_INCREMENT: u64 = 0xa076_1d64_78bd_642f;
const WY_MIX: u64 = 0xe703_7ed1_a0b4_28db;

impl FastRng {
    /// A generator with a fixed seed (reproducible; tests and benches).
    pub const fn new(seed: u64) -> Self {
        FastRng { state: seed }
    }

    /// A generator seeded from the clock, the current thread and std's per-process random
    /// keys; two calls (also on the same thread) give different streams.
    pub fn from_entropy() -> Self {
        let mut h = std::hash::RandomState::new().build_hasher();
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        h.write_u128(nanos);
        std::hash::Hash::hash(&std::thread::current().id(), &mut h);
        let local = 0u8;
        h.write_usize(std::ptr::addr_of!(local) as usize);
        FastRng::new(h.finish())
    }

    /// The next 64 uniformly distributed bits.
    #[inline]
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(WY_INCREMENT);
        let t = u128::from(self.state) * u128::from(self.state ^ WY_MIX);
        ((t >> 64) as u64) ^ (t as u64)
    }

    /// A value in `0..n` (Lemire's multiply-shift; bias at most `n / 2^64`, negligible).
    /// Returns 0 when `n == 0`.
    #[inline]
    pub fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }

    /// [`below`](Self::below) for indices.
    #[inline]
    pub fn below_usize(&mut self, n: usize) -> usize {
        self.below(n as u64) as usize
    }

    /// A fair coin.
    #[inline]
    pub fn coin(&mut self) -> bool {
        self.next_u64() >> 63 == 1
    }
}

#[cfg(test)]
mod tests {
    use super::FastRng;

    #[test]
    fn below_stays_in_range_and_zero_is_zero() {
        let mut rng = FastRng::new(7);
        for n in [1u64, 2, 3, 10, 1000, u64::MAX] {
            for _ in 0..1000 {
                assert!(rng.below(n) < n);
            }
        }
        assert_eq!(rng.below(0), 0);
    }

    #[test]
    fn below_is_roughly_uniform() {
        let mut rng = FastRng::new(1);
        let mut counts = [0u32; 10];
        for _ in 0..100_000 {
            counts[rng.below_usize(10)] += 1;
        }
        for c in counts {
            assert!((9_500..=10_500).contains(&c), "{counts:?}");
        }
    }

    #[test]
    fn same_seed_same_stream_and_entropy_seeds_differ() {
        let (mut a, mut b) = (FastRng::new(42), FastRng::new(42));
        for _ in 0..100 {
            assert_eq!(a.next_u64(), b.next_u64());
        }
        let (mut x, mut y) = (FastRng::from_entropy(), FastRng::from_entropy());
        assert_ne!(x.next_u64(), y.next_u64());
    }
}
