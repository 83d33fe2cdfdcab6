//! Per-request cost of the policy building blocks, each as the proxy calls it once per
//! request: an unconfigured route (all `None`), token bucket take, retry budget record + try,
//! circuit breaker start/finish, outlier record + mask, fault decision, mask merge.

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion};
use ringway::base::FastRng;
use ringway::cluster::{merge_unavailable, CircuitBreaker, Outcome, OutlierDetector};
use ringway::config::{
    AllUnhealthy, CircuitBreaker as BreakerConfig, FaultPolicy, OutlierDetection, Percent,
    RateLimit, RoutePolicy,
};
use ringway::policy::retry::RetryBudget;
use ringway::policy::{fault, RouteState, TokenBucket};
use ringway_bench::Group;

ringway_bench::count_allocations!();

fn bench_policy(c: &mut Criterion) {
    let mut g = Group::new(c, "policy");
    let t0 = Instant::now();
    let step = Duration::from_micros(10);

    let mut route = RouteState::new(&RoutePolicy::default(), 4, t0);
    let breaker: Option<CircuitBreaker> = None;
    let mut outlier: Option<OutlierDetector> = None;
    let mut rng = FastRng::new(1);
    g.bench("unconfigured_route", || {
        let r = black_box(&mut route);
        let admitted = r.admit(t0).is_ok();
        let fault = r.fault(&mut rng);
        r.record_request(t0);
        let guard = black_box(&breaker).as_ref().map(|b| b.try_start_request());
        let mask = black_box(&mut outlier)
            .as_mut()
            .map(|o| o.unavailable(t0).len());
        black_box((admitted, fault, guard.is_some(), mask))
    });

    let limit = RateLimit {
        requests_per_second: 1_000_000,
        burst: 1000,
    };
    let mut bucket = TokenBucket::new(&limit, 4, t0);
    let mut now = t0;
    g.bench("token_bucket_take", || {
        now += step;
        black_box(bucket.try_take(black_box(now)))
    });

    let mut budget = RetryBudget::with_params(20, 10, 10, 4, t0);
    let mut now = t0;
    g.bench("budget_record_try", || {
        now += step;
        budget.record_request(now);
        black_box(budget.try_retry(black_box(now)))
    });

    let breaker = CircuitBreaker::new(
        &BreakerConfig {
            max_connections: 1024,
            max_pending_requests: 1024,
            max_requests: 1024,
        },
        4,
    );
    g.bench("breaker_start_finish", || {
        let guard = black_box(&breaker).try_start_request();
        black_box(&guard);
        drop(guard);
    });

    let cfg = OutlierDetection {
        consecutive_5xx: 5,
        consecutive_gateway_failure: 5,
        base_ejection_time: Duration::from_millis(50),
        max_ejection_time: Duration::from_secs(1),
        max_ejection_percent: 50,
    };
    let mut detector = OutlierDetector::new(cfg, 50);
    let mut now = t0;
    let mut i = 0usize;
    g.bench("outlier_record_unavailable_50", || {
        now += step;
        i = (i + 1) % 50;
        // Mostly successes, a failing endpoint every few hundred requests.
        let outcome = if rng.below(100) < 3 {
            Outcome::GatewayFailure
        } else {
            Outcome::Success
        };
        detector.record(i, outcome, now);
        black_box(detector.unavailable(now).len())
    });

    let fp = FaultPolicy {
        delay: Some(Duration::from_millis(5)),
        delay_percent: Percent(10_000),
        abort_status: Some(503),
        abort_percent: Percent(1_000),
    };
    g.bench("fault_decide", || {
        black_box(fault::decide(black_box(&fp), &mut rng))
    });

    let health: Vec<bool> = (0..50).map(|i| i % 7 == 0).collect();
    let ejected: Vec<bool> = (0..50).map(|i| i % 11 == 0).collect();
    let mut out = Vec::with_capacity(50);
    g.bench("merge_unavailable_50", || {
        black_box(merge_unavailable(
            black_box(&health),
            black_box(&ejected),
            &mut out,
            AllUnhealthy::FailOpen,
        ))
    });
    g.finish();
}

criterion_group!(benches, bench_policy);
criterion_main!(benches);
