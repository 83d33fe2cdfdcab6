//! Ringway: a thread-per-core, io_uring HTTP/1.1 proxy.
//!
//! Data flows one way: `listener` accepts on each worker's own socket, `proxy` drives a
//! connection (codec in `http`, choice of upstream in `route` and `cluster`, upstream
//! connections from `pool`), all socket I/O through the worker's own ring in `uring`.
//! `runtime` builds the workers; `telemetry` and `admin` observe them; `config` feeds them.
#![deny(clippy::undocumented_unsafe_blocks)]

pub mod admin;
pub mod cluster;
pub mod config;
pub mod http;
pub mod listener;
pub mod policy;
pub mod pool;
pub mod proxy;
pub mod route;
pub mod runtime;
pub mod telemetry;
pub mod uring;
