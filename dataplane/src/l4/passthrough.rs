//! TLS passthrough: the cluster of a `tcp` listener's connection chosen by the server name in
//! its ClientHello (`[[listeners.sni_routes]]`), without terminating TLS (Envoy's
//! tls_inspector with `server_names` filter chains, HAProxy's `req.ssl_sni`).
//!
//! Invariants: the bytes read to inspect the ClientHello stay in the connection's input and
//! are relayed first, unchanged; at most [`MAX_CLIENT_HELLO`] bytes are read, within
//! [`CLIENT_HELLO_TIMEOUT`]; a connection that is not TLS goes to the listener's `cluster`;
//! a malformed ClientHello closes the connection.

use std::time::{Duration, Instant};

use crate::config::{ClusterId, ListenerConfig};
use crate::tls::per_core::host_matches;
use crate::transport::client_hello::{inspect, Inspect, MAX_CLIENT_HELLO};
use crate::transport::{InBuf, Stream};
use crate::uring::timeout_at;
use crate::worker::Worker;

/// How long a client may take to send its ClientHello.
pub const CLIENT_HELLO_TIMEOUT: Duration = Duration::from_secs(10);

/// The cluster for this connection (`None`: the listener's default) and the result label;
/// `Err(label)` when the connection must close.
pub async fn route(
    w: &Worker,
    client: &mut Stream,
    inb: &mut InBuf,
    l: &ListenerConfig,
) -> Result<(Option<ClusterId>, &'static str), &'static str> {
    let deadline = Instant::now() + CLIENT_HELLO_TIMEOUT;
    loop {
        match inspect(inb.bytes()) {
            Inspect::Hello(h) => {
                let Some(name) = h.server_name else {
                    return Ok((None, "no_sni"));
                };
                let hit = l
                    .sni_routes
                    .iter()
                    .find(|r| r.server_names.iter().any(|m| host_matches(m, name)));
                return Ok(match hit {
                    Some(r) => (Some(r.cluster), "matched"),
                    None => (None, "default"),
                });
            }
            Inspect::NotTls => return Ok((None, "not_tls")),
            Inspect::Malformed => return Err("malformed"),
            Inspect::NeedMore if inb.len() >= MAX_CLIENT_HELLO => return Err("malformed"),
            Inspect::NeedMore => {}
        }
        match timeout_at(&w.driver, deadline, client.recv()).await {
            Ok(Ok(Some(b))) => inb.push(b),
            Ok(Ok(None)) | Ok(Err(_)) => return Err("closed"),
            Err(_) => return Err("timeout"),
        }
    }
}
