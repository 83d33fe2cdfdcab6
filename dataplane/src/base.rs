//! Leaf helpers every layer may use, with no dependency on any other module of the crate.
//!
//! - `rng`: [`FastRng`], the per-core PRNG behind every random choice (balancers, splits,
//!   sampling, jitter).
//! - `conn_slab`: [`ConnSlab`], page-backed per-worker memory for connection tasks.
//! - `decimal`: formatting integers on the stack (no allocation).
//!
//! Invariant: nothing here imports another module of the crate; nothing here is shared
//! between threads (per-core state is `Rc`/`Cell`).

pub mod conn_slab;
pub mod decimal;
pub mod rng;

pub use conn_slab::{ConnSlab, ConnTask};
pub use rng::FastRng;
