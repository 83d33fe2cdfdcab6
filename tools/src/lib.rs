//! Tools around the Ringway proxy, as a library so their pieces are unit-tested.
//!
//! - [`upstream`]: the test and fault upstream behind the `ringway-upstream` binary
//!   (integration tests, benchmarks and the README quickstart all run it).
//! - [`load`]: the load generator behind the `ringway-load` binary (wrk2-like, epoll).
//! - [`tcp`]: the TCP test peer and load driver behind `ringway-tcp` (L4 tests, benchmarks).
//! - [`plot`]: the bar charts of the comparison driver (`ringway-plot`, drawn with plotters).
//!
//! Everything here is plain `std` threads (the upstream: a thread per connection; the load
//! generator: a thread per core with epoll); no async runtime.

#![deny(clippy::undocumented_unsafe_blocks)]

pub mod alloc;
pub mod load;
pub mod plot;
pub mod tcp;
pub mod upstream;
