//! Balancer behaviour: evenness, P2C's two distinct choices, ring stability and minimal
//! remapping, exclusion, unavailability, empty clusters.

use std::net::SocketAddr;

use super::*;
use crate::cluster::hash::hash_bytes;

const ALL: [LbPolicy; 4] = [
    LbPolicy::RoundRobin,
    LbPolicy::LeastRequest,
    LbPolicy::Random,
    LbPolicy::RingHash,
];

fn ctx_hash(hash: u64) -> PickContext<'static> {
    PickContext {
        hash,
        ..PickContext::ANY
    }
}

#[test]
fn empty_endpoint_list_returns_none() {
    for policy in ALL {
        let mut b = Balancer::new(policy, 0, 1);
        assert_eq!(b.pick(&PickContext::ANY), None, "{policy:?}");
        b.update_endpoints(2);
        assert!(b.pick(&PickContext::ANY).is_some(), "{policy:?}");
        b.update_endpoints(0);
        assert_eq!(b.pick(&ctx_hash(42)), None, "{policy:?}");
        assert!(b.is_empty());
    }
}

#[test]
fn round_robin_is_even_and_workers_start_at_different_offsets() {
    let mut b = Balancer::new(LbPolicy::RoundRobin, 5, 3);
    let mut counts = [0u32; 5];
    let mut last = None;
    for _ in 0..5_000 {
        let i = b.pick(&PickContext::ANY).unwrap();
        if let Some(prev) = last {
            assert_eq!(i, (prev + 1) % 5);
        }
        last = Some(i);
        counts[i] += 1;
    }
    assert_eq!(counts, [1_000; 5]);
    let firsts: std::collections::HashSet<usize> = (0..32)
        .map(|seed| {
            Balancer::new(LbPolicy::RoundRobin, 5, seed)
                .pick(&PickContext::ANY)
                .unwrap()
        })
        .collect();
    assert!(firsts.len() > 1, "every worker starts at {firsts:?}");
}

#[test]
fn random_is_roughly_uniform() {
    let mut b = Balancer::new(LbPolicy::Random, 4, 11);
    let mut counts = [0u32; 4];
    for _ in 0..40_000 {
        counts[b.pick(&PickContext::ANY).unwrap()] += 1;
    }
    for c in counts {
        assert!((9_400..=10_600).contains(&c), "{counts:?}");
    }
}

#[test]
fn p2c_candidates_are_always_distinct() {
    let mut rng = FastRng::new(5);
    for n in 2..12 {
        for _ in 0..2_000 {
            let (a, b) = p2c_candidates(&mut rng, n, &PickContext::ANY).unwrap();
            let b = b.unwrap();
            assert_ne!(a, b, "n={n}");
            assert!(a < n && b < n);
        }
    }
    // One endpoint: one candidate.
    assert_eq!(
        p2c_candidates(&mut rng, 1, &PickContext::ANY),
        Some((0, None))
    );
}

#[test]
fn p2c_prefers_the_less_loaded_endpoint() {
    // With two endpoints both are always compared, so the idle one always wins.
    let mut b = Balancer::new(LbPolicy::LeastRequest, 2, 8);
    for _ in 0..5 {
        b.on_request_start(1);
    }
    for _ in 0..1_000 {
        assert_eq!(b.pick(&PickContext::ANY), Some(0));
    }
    // Three endpoints, one idle: it is in 2 of the 3 pairs, so it wins ≈2/3 of picks, and
    // the busiest endpoint only ever wins a tie against the other busy one.
    let mut b = Balancer::new(LbPolicy::LeastRequest, 3, 8);
    for _ in 0..10 {
        b.on_request_start(1);
        b.on_request_start(2);
    }
    b.on_request_start(2);
    let mut counts = [0u32; 3];
    for _ in 0..30_000 {
        counts[b.pick(&PickContext::ANY).unwrap()] += 1;
    }
    assert!((19_000..=21_000).contains(&counts[0]), "{counts:?}");
    assert_eq!(counts[2], 0, "{counts:?}");
}

#[test]
fn p2c_breaks_ties_randomly_and_tracks_in_flight() {
    let mut b = Balancer::new(LbPolicy::LeastRequest, 2, 21);
    let mut counts = [0u32; 2];
    for _ in 0..10_000 {
        counts[b.pick(&PickContext::ANY).unwrap()] += 1;
    }
    assert!((4_500..=5_500).contains(&counts[0]), "{counts:?}");
    b.on_request_start(0);
    b.on_request_start(0);
    b.on_request_end(0);
    assert_eq!(b.in_flight(0), 1);
    b.on_request_end(0);
    b.on_request_end(0); // saturates
    b.on_request_start(99); // out of range: ignored
    assert_eq!(b.in_flight(0), 0);
}

#[test]
fn stale_request_ends_are_ignored_after_an_endpoint_update() {
    let mut b = Balancer::new(LbPolicy::LeastRequest, 3, 2);
    let generation = b.generation();
    b.on_request_start(1);
    b.update_endpoints(3);
    b.on_request_start(1);
    b.on_request_end_in(1, generation);
    assert_eq!(b.in_flight(1), 1);
    b.on_request_end_in(1, b.generation());
    assert_eq!(b.in_flight(1), 0);
}

#[test]
fn exclusion_picks_another_endpoint_when_there_is_one() {
    for policy in ALL {
        let mut b = Balancer::new(policy, 3, 4);
        for h in 0..500u64 {
            let ctx = PickContext {
                hash: hash_bytes(&h.to_le_bytes()),
                exclude: Some(1),
                unavailable: &[],
            };
            assert_ne!(b.pick(&ctx), Some(1), "{policy:?}");
        }
        // The excluded endpoint is still used when it is the only one.
        let mut single = Balancer::new(policy, 1, 4);
        let ctx = PickContext {
            exclude: Some(0),
            ..PickContext::ANY
        };
        assert_eq!(single.pick(&ctx), Some(0), "{policy:?}");
    }
}

#[test]
fn unavailable_endpoints_are_never_picked() {
    let down = [true, false, true, true];
    for policy in ALL {
        let mut b = Balancer::new(policy, 4, 6);
        for h in 0..500u64 {
            let ctx = PickContext {
                hash: hash_bytes(&h.to_le_bytes()),
                exclude: None,
                unavailable: &down,
            };
            assert_eq!(b.pick(&ctx), Some(1), "{policy:?}");
            // Excluding the only available endpoint still yields it; none available yields None.
            let ctx = PickContext {
                exclude: Some(1),
                ..ctx
            };
            assert_eq!(b.pick(&ctx), Some(1), "{policy:?}");
            let ctx = PickContext {
                unavailable: &[true; 4],
                ..ctx
            };
            assert_eq!(b.pick(&ctx), None, "{policy:?}");
        }
    }
}

#[test]
fn ring_hash_is_stable_for_equal_keys_across_workers() {
    let mut a = Balancer::new(LbPolicy::RingHash, 7, 1);
    let mut b = Balancer::new(LbPolicy::RingHash, 7, 999);
    for k in 0..2_000u64 {
        let ctx = ctx_hash(hash_bytes(&k.to_le_bytes()));
        let first = a.pick(&ctx);
        assert_eq!(a.pick(&ctx), first);
        assert_eq!(b.pick(&ctx), first);
    }
}

#[test]
fn ring_hash_spreads_keys_evenly() {
    let mut b = Balancer::new(LbPolicy::RingHash, 5, 1);
    let mut counts = [0u32; 5];
    for k in 0..50_000u64 {
        counts[b.pick(&ctx_hash(hash_bytes(&k.to_le_bytes()))).unwrap()] += 1;
    }
    for c in counts {
        assert!((8_000..=12_000).contains(&c), "{counts:?}");
    }
}

fn assignments(b: &mut Balancer, keys: u64) -> Vec<usize> {
    (0..keys)
        .map(|k| b.pick(&ctx_hash(hash_bytes(&k.to_le_bytes()))).unwrap())
        .collect()
}

#[test]
fn ring_hash_remaps_about_one_nth_of_keys_when_an_endpoint_is_added() {
    const KEYS: u64 = 20_000;
    for n in [3usize, 10] {
        let mut b = Balancer::new(LbPolicy::RingHash, n, 1);
        let before = assignments(&mut b, KEYS);
        b.update_endpoints(n + 1);
        let after = assignments(&mut b, KEYS);
        let moved = before.iter().zip(&after).filter(|(x, y)| x != y).count();
        // Every moved key moved to the new endpoint.
        assert!(before.iter().zip(&after).all(|(x, y)| x == y || *y == n));
        let expected = KEYS as f64 / (n + 1) as f64;
        let moved = moved as f64;
        assert!(
            moved > expected * 0.7 && moved < expected * 1.3,
            "n={n} moved {moved}, expected ≈{expected}"
        );
    }
}

#[test]
fn ring_hash_by_address_remaps_only_the_removed_endpoints_keys() {
    const KEYS: u64 = 20_000;
    let addrs: Vec<SocketAddr> = (0..6)
        .map(|i| format!("10.0.0.{}:8080", i + 1).parse().unwrap())
        .collect();
    let mut b = Balancer::with_addrs(LbPolicy::RingHash, &addrs, 1);
    let before: Vec<SocketAddr> = assignments(&mut b, KEYS)
        .iter()
        .map(|&i| addrs[i])
        .collect();
    let removed = addrs[2];
    let remaining: Vec<SocketAddr> = addrs.iter().copied().filter(|a| *a != removed).collect();
    b.update_endpoint_addrs(&remaining);
    let after: Vec<SocketAddr> = assignments(&mut b, KEYS)
        .iter()
        .map(|&i| remaining[i])
        .collect();
    for (x, y) in before.iter().zip(&after) {
        if *x != removed {
            assert_eq!(x, y, "a key not on the removed endpoint moved");
        }
    }
}

#[test]
fn ring_size_is_bounded_for_huge_clusters() {
    let mut ring = Ring::default();
    ring.rebuild_indexed(10);
    assert_eq!(ring.len(), 10 * DEFAULT_VNODES);
    ring.rebuild_indexed(MAX_RING_POINTS * 2);
    assert_eq!(ring.len(), MAX_RING_POINTS * 2);
    ring.rebuild_indexed(0);
    assert_eq!(ring.pick(&PickContext::ANY), None);
}
