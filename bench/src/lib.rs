//! Shared pieces of the benchmarks: a counting global allocator and [`Group`], whose benchmarks report
//! each benchmark's heap allocations per operation next to criterion's timing.
//!
//! Every bench binary installs the allocator with [`count_allocations!`]; [`Group::bench`] first runs
//! the operation [`ALLOC_RUNS`] times with counting switched on for the calling thread (after a
//! warm-up, so one-time growth of reusable buffers is not counted) and prints
//! `allocations/op <group>/<name>: <n>`, then hands the same closure to criterion. The hot
//! path's building blocks are expected to print 0.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering};

use criterion::measurement::WallTime;
use criterion::{BenchmarkGroup, Criterion};

/// Operations counted per benchmark.
pub const ALLOC_RUNS: u64 = 10_000;

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

thread_local! {
    static COUNTING: Cell<bool> = const { Cell::new(false) };
}

/// The system allocator, counting allocations (and reallocations) made by a thread that
/// switched counting on.
pub struct CountingAllocator;

impl CountingAllocator {
    fn count() {
        if COUNTING.with(Cell::get) {
            ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        }
    }
}

// SAFETY: every call is forwarded unchanged to `System`; counting touches no allocation.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        Self::count();
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        Self::count();
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        Self::count();
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { System.dealloc(ptr, layout) }
    }
}

/// Installs [`CountingAllocator`] as the bench binary's global allocator.
#[macro_export]
macro_rules! count_allocations {
    () => {
        #[global_allocator]
        static GLOBAL: $crate::CountingAllocator = $crate::CountingAllocator;
    };
}

/// Heap allocations per call of `op` over [`ALLOC_RUNS`] calls, after a warm-up of 100.
pub fn allocations_per_op<O>(mut op: impl FnMut() -> O) -> f64 {
    for _ in 0..100 {
        std::hint::black_box(op());
    }
    let before = ALLOCATIONS.load(Ordering::Relaxed);
    COUNTING.with(|c| c.set(true));
    for _ in 0..ALLOC_RUNS {
        std::hint::black_box(op());
    }
    COUNTING.with(|c| c.set(false));
    (ALLOCATIONS.load(Ordering::Relaxed) - before) as f64 / ALLOC_RUNS as f64
}

/// A criterion benchmark group whose benchmarks also report their allocations per call.
pub struct Group<'a> {
    inner: BenchmarkGroup<'a, WallTime>,
    name: String,
}

impl<'a> Group<'a> {
    pub fn new(c: &'a mut Criterion, name: &str) -> Group<'a> {
        Group {
            inner: c.benchmark_group(name),
            name: name.to_owned(),
        }
    }

    /// The criterion group (throughput and other settings).
    pub fn criterion(&mut self) -> &mut BenchmarkGroup<'a, WallTime> {
        &mut self.inner
    }

    /// Prints `op`'s allocations per call, then benchmarks it under `name`.
    pub fn bench<O>(&mut self, name: impl Into<String>, mut op: impl FnMut() -> O) {
        let name = name.into();
        let per_op = allocations_per_op(&mut op);
        println!("allocations/op {}/{name}: {per_op}", self.name);
        self.inner.bench_function(name, |b| b.iter(&mut op));
    }

    pub fn finish(self) {
        self.inner.finish();
    }
}

#[cfg(test)]
mod tests {
    crate::count_allocations!();

    #[test]
    fn counts_the_allocations_of_an_operation() {
        assert_eq!(super::allocations_per_op(|| 1 + 1), 0.0);
        assert_eq!(super::allocations_per_op(|| vec![1u8; 64]), 1.0);
        let mut v: Vec<u8> = Vec::new();
        // Reused capacity: only the warm-up allocates.
        assert_eq!(
            super::allocations_per_op(|| {
                v.clear();
                v.extend_from_slice(&[1; 64]);
            }),
            0.0
        );
    }
}
