//! Tools around the Ringway proxy, as a library so their pieces are unit-tested.
//!
//! - [`upstream`]: the test and fault upstream behind the `ringway-upstream` binary
//!   (integration tests, benchmarks and the README quickstart all run it).
//!
//! Everything here is plain `std` (a thread per connection); no async runtime.

#![deny(clippy::undocumented_unsafe_blocks)]

pub mod upstream;
