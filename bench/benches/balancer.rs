//! One pick per balancer policy for 3 and 50 endpoints (least_request also counts the
//! request start and end, as the proxy does).

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use ringway::base::FastRng;
use ringway::cluster::hash::hash_bytes;
use ringway::cluster::{Balancer, PickContext};
use ringway::config::LbPolicy;
use ringway_bench::Group;

ringway_bench::count_allocations!();

fn bench_balancers(c: &mut Criterion) {
    let policies = [
        ("round_robin", LbPolicy::RoundRobin),
        ("least_request", LbPolicy::LeastRequest),
        ("random", LbPolicy::Random),
        ("ring_hash", LbPolicy::RingHash),
    ];
    let mut g = Group::new(c, "balancer_pick");
    for n in [3usize, 50] {
        for (name, policy) in policies {
            let mut balancer = Balancer::new(policy, n, 7);
            let mut keys = FastRng::new(3);
            g.bench(format!("{name}/{n}"), || {
                let ctx = PickContext {
                    hash: hash_bytes(&keys.next_u64().to_le_bytes()),
                    ..PickContext::ANY
                };
                let picked = balancer.pick(black_box(&ctx));
                if let Some(i) = picked {
                    balancer.on_request_start(i);
                    balancer.on_request_end(i);
                }
                black_box(picked)
            });
        }
    }
    // Retry path: one endpoint excluded and a fifth of them ejected.
    let unavailable: Vec<bool> = (0..50).map(|i| i % 5 == 0).collect();
    for (name, policy) in policies {
        let mut balancer = Balancer::new(policy, 50, 7);
        let mut keys = FastRng::new(3);
        g.bench(format!("{name}_excl_ejected/50"), || {
            let ctx = PickContext {
                hash: hash_bytes(&keys.next_u64().to_le_bytes()),
                exclude: Some(1),
                unavailable: &unavailable,
            };
            black_box(balancer.pick(black_box(&ctx)))
        });
    }
    g.finish();
}

criterion_group!(benches, bench_balancers);
criterion_main!(benches);
