//! The transport layer: a connected byte stream over the worker's io_uring driver, between
//! the protocol code (`proxy`, `l4`) and the driver (`uring`). The proxy never touches a raw
//! descriptor; everything it does with a connection goes through a [`Stream`].
//!
//! - `stream`: [`Stream`] — receive (into the driver's provided buffers, zero copy), vectored
//!   send of owned buffers (bounded by a deadline, buffers always returned), shutdown, a
//!   [`Stream::split`] into halves for tunnels, readiness for parking, byte counters. Plain
//!   TCP (or a Unix socket pair, the test double) is its first implementation; TLS
//!   (`tls_stream`, rustls in user space over the same socket) is the second, and the code
//!   that uses a stream does not know which it has (only splicing needs plaintext).
//! - `buf`: [`InBuf`] (received bytes not yet consumed), [`Window`] and [`Chain`] (send
//!   payloads built over received buffers).
//! - `splice`: zero-copy relay through a pipe, offered only between two plaintext streams.
//! - `park`: [`ParkingLot`], idle streams held without a task until they become readable.
//! - `addr`: what is known of a connection's addresses at accept ([`ConnInfo`]): peer, local,
//!   and the original destination of an intercepted connection (`SO_ORIGINAL_DST`); our own
//!   outgoing connections ([`OwnConnections`], for the loop guard).
//! - `proxy_protocol`: the PROXY protocol v1/v2 header, parsed and encoded (pure).
//! - `client_hello`: a TLS ClientHello inspected for its SNI and ALPN, for passthrough (pure).
//!
//! Invariants: a `Stream` owns its connection and closes it on drop; what a send borrowed
//! comes back to the caller on every outcome (completion, error, timeout); received bytes
//! are handed out in the order they arrived, once.
//! What lives elsewhere: HTTP framing (`http`), which endpoint to connect to (`upstream`).

pub mod addr;
pub mod buf;
pub mod client_hello;
pub mod park;
pub mod proxy_protocol;
pub mod splice;
mod stream;
mod tls_stream;

pub use crate::uring::{IoVecs, RecvBuf, SendError};
pub use addr::{ConnInfo, OwnConnections, OwnMark};
pub use buf::{Chain, InBuf, Window, CHAIN_MAX};
pub use park::ParkingLot;
pub use splice::{PipePool, SpliceError};
pub use stream::{connect_tcp, RecvHalf, SendHalf, Stream};
pub use tls_stream::TlsPeer;
