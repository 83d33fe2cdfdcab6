//! Ringway: a thread-per-core, io_uring L7/L4 proxy.
//!
//! Data flows one way: `listener` accepts on each worker's own socket and hands a
//! `transport::Stream` to `proxy` (HTTP/1.1: codec in `http`, routing in `route`, policies in
//! `policy`) or `l4` (TCP relays); both reach upstreams through `upstream` (pick over `cluster`
//! state, connections from `pool`); all socket I/O goes through the worker's own ring in
//! `uring`. `worker` holds one core's state; `runtime` assembles workers; `telemetry` and
//! `admin` observe them; `config` feeds them; `base` holds the leaf helpers.
//!
//! Layers, top to bottom (a module uses only those below it):
//! `runtime` → `admin`, `listener` → `proxy`, `l4` → `upstream` → `worker` →
//! `route`, `policy`, `cluster`, `pool` → `http`, `transport` → `uring`, `telemetry`,
//! `config`, `base`.
#![deny(clippy::undocumented_unsafe_blocks)]

pub mod admin;
pub mod base;
pub mod cluster;
pub mod config;
pub mod http;
pub mod l4;
pub mod listener;
pub mod policy;
pub mod pool;
pub mod proxy;
pub mod route;
pub mod runtime;
pub mod telemetry;
pub mod tls;
pub mod transport;
pub mod upstream;
pub mod uring;
pub mod worker;
