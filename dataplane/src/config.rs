//! Configuration: the TOML file of CONFIG.md, parsed (`raw`), validated with line numbers
//! (`validate`) into the typed, immutable [`Config`] of `model`.
//!
//! Invariant: a [`Config`] that exists is valid — every cluster reference resolved to a
//! [`ClusterId`], every duration and size parsed and bounded. Nothing downstream re-checks.

pub mod model;

pub use model::*;
