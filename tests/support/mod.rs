//! The integration-test harness: real processes on loopback, raw bytes on the wire.
//!
//! Each `tests/*.rs` target says `mod support;` and uses what it needs:
//! - [`Upstream`]: a `ringway-upstream` process (test and fault upstream), killed on drop;
//! - [`Proxy`]: a `ringway` process started from a TOML config, ready once `/ready` is 200;
//! - [`Nginx`]: an nginx baseline, only where `/usr/sbin/nginx` exists;
//! - [`Rig`]: a `ringway` on free ports from a one-listener [`Spec`] (the `proxy_*` targets);
//! - [`TcpPeer`]: a `ringway-tcp` echo/source/sink peer for L4 tests; [`metric`] reads one
//!   `/metrics` sample;
//! - [`RawUpstream`]: an in-test upstream that records every byte it receives;
//! - [`Pki`]: a throw-away CA writing PEM certificates and keys for TLS tests;
//! - `tls_client`: a blocking rustls client (handshake, keep-alive GET) for TLS tests;
//! - [`Client`]: a blocking HTTP/1.1 client with timeouts, for requests and assertions;
//! - [`free_port`], [`rss_kib`]: small system helpers.
//!
//! Invariants: no fixed ports, no global kill, every wait bounded by a deadline, every
//! child process killed when its handle drops. See `tests/README.md`.
#![allow(dead_code, unused_imports)] // each test target uses a different part of the harness

pub mod client;
pub mod nginx;
pub mod pki;
pub mod proxy;
pub mod raw_upstream;
pub mod rig;
pub mod sys;
pub mod tcp_peer;
pub mod tls_client;
pub mod upstream;

pub use client::{Client, Response};
pub use nginx::Nginx;
pub use pki::{Leaf, LeafSpec, Pki};
pub use proxy::Proxy;
pub use raw_upstream::{RawUpstream, Received};
pub use rig::{config, pattern_chunk, Rig, Spec, PATTERN_CHUNK_LEN};
pub use sys::{fd_count, free_port, ringway_bin, rss_kib, upstream_bin, wait_for_port};
pub use tcp_peer::{metric, TcpPeer};
pub use upstream::{Upstream, UpstreamStats};
