//! Recording into a `MetricsShard` never allocates: a counting global allocator watches every
//! recording method over many calls after construction.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::time::Duration;

use ringway::telemetry::{ErrorKind, MetricsShard, StatusClass};

struct Counting;

thread_local! {
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

// SAFETY: every method forwards to `System` unchanged; the thread-local counter is a `Cell`
// with a const initializer, so bumping it never allocates or re-enters the allocator.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let _ = ALLOCATIONS.try_with(|c| c.set(c.get() + 1));
        // SAFETY: same contract as our caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as our caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let _ = ALLOCATIONS.try_with(|c| c.set(c.get() + 1));
        // SAFETY: same contract as our caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn allocations() -> u64 {
    ALLOCATIONS.with(Cell::get)
}

#[test]
fn recording_never_allocates() {
    let listeners: Vec<String> = vec!["edge".into(), "internal".into()];
    let clusters: Vec<String> = vec!["web".into(), "api".into(), "batch".into()];
    let shard = MetricsShard::new(&listeners, &clusters);

    let before = allocations();
    for i in 0..100_000u64 {
        let listener = (i % 2) as usize;
        let cluster = match i % 4 {
            3 => None,
            c => Some(c as usize),
        };
        let status = [200u16, 204, 301, 404, 503, 101][(i % 6) as usize];
        let latency = Duration::from_micros((i * 7919) % 90_000_000);
        shard.request_done(listener, cluster, status, Some(latency));
        shard.connection_opened(listener);
        shard.bytes_received(listener, i);
        shard.bytes_sent(listener, i * 2);
        shard.connection_closed(listener);
        shard.upstream_connect((i % 3) as usize, i % 5 != 0);
        shard.upstream_pool_reuse((i % 3) as usize);
        shard.proxy_error(ErrorKind::ALL[(i % ErrorKind::COUNT as u64) as usize]);
    }
    let after = allocations();
    assert_eq!(after - before, 0, "recording allocated");

    let snapshot = shard.snapshot();
    let total: u64 = ["web", "api", "batch"]
        .iter()
        .map(Some)
        .chain([None])
        .flat_map(|c| {
            let snapshot = &snapshot;
            ["edge", "internal"].into_iter().flat_map(move |l| {
                StatusClass::ALL
                    .into_iter()
                    .map(move |class| snapshot.request_count(l, c.copied(), class))
            })
        })
        .sum();
    assert_eq!(total, 100_000);
}
