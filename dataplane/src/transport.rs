//! The transport layer: a connected byte stream over the worker's io_uring driver, between
//! the protocol code (`proxy`, `l4`) and the driver (`uring`). The proxy never touches a raw
//! descriptor; everything it does with a connection goes through a [`Stream`].
//!
//! - `stream`: [`Stream`] — receive (into the driver's provided buffers, zero copy), vectored
//!   send of owned buffers (bounded by a deadline, buffers always returned), shutdown, a
//!   [`Stream::split`] into halves for tunnels, readiness for parking, byte counters. Plain
//!   TCP (or a Unix socket pair, the test double) is its first implementation; a TLS stream
//!   is a second variant of the same type and needs no change in the code that uses it.
//! - `buf`: [`InBuf`] (received bytes not yet consumed), [`Window`] and [`Chain`] (send
//!   payloads built over received buffers).
//! - `splice`: zero-copy relay through a pipe, offered only between two plaintext streams.
//! - `park`: [`ParkingLot`], idle streams held without a task until they become readable.
//! - `addr`: what is known of a connection's addresses at accept ([`ConnInfo`]): peer, local,
//!   and the original destination of an intercepted connection (`SO_ORIGINAL_DST`); our own
//!   outgoing connections ([`OwnConnections`], for the loop guard).
//! - `proxy_protocol`: the PROXY protocol v1/v2 header, parsed and encoded (pure).
//!
//! Invariants: a `Stream` owns its connection and closes it on drop; what a send borrowed
//! comes back to the caller on every outcome (completion, error, timeout); received bytes
//! are handed out in the order they arrived, once.
//! What lives elsewhere: HTTP framing (`http`), which endpoint to connect to (`upstream`).

pub mod addr;
pub mod buf;
pub mod park;
pub mod proxy_protocol;
pub mod splice;
mod stream;

pub use crate::uring::{IoVecs, RecvBuf, SendError};
pub use addr::{ConnInfo, OwnConnections, OwnMark};
pub use buf::{Chain, InBuf, Window, CHAIN_MAX};
pub use park::ParkingLot;
pub use splice::{PipePool, SpliceError};
pub use stream::{connect_tcp, RecvHalf, SendHalf, Stream};
