//! Per-worker accept loops: multishot accept on the worker's own SO_REUSEPORT socket, the
//! connection limit, and one task per accepted connection.
//!
//! INVARIANT: every accepted descriptor is either handed to a connection task (which owns
//! and closes it) or closed here.

use std::os::fd::RawFd;
use std::rc::Rc;
use std::time::Duration;

use crate::transport::addr::Interception;
use crate::transport::{ConnInfo, Stream};
use crate::uring::{sleep, Accept};
use crate::worker::Worker;

/// The answer to a connection over `max_connections`: sent with one non-blocking `send` (the
/// socket buffer of a fresh connection always has room), then the descriptor is closed.
const OVERLOADED: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\nserver: ringway\r\ncontent-type: text/plain\r\ncontent-length: 29\r\nconnection: close\r\n\r\ntoo many connections; retry\r\n";

fn reject_overloaded(fd: RawFd) {
    // SAFETY: a descriptor we just accepted and nobody else has seen; the buffer is static.
    unsafe {
        libc::send(
            fd,
            OVERLOADED.as_ptr().cast(),
            OVERLOADED.len(),
            libc::MSG_NOSIGNAL | libc::MSG_DONTWAIT,
        );
        libc::shutdown(fd, libc::SHUT_WR);
        libc::close(fd);
    }
}

/// Accepts on `fd` until the task is dropped.
pub async fn accept_loop(w: Rc<Worker>, listener: usize, fd: RawFd) {
    let mut acc = Accept::new(w.driver.clone(), fd);
    let mut warned = false;
    loop {
        match acc.accept().await {
            Ok(cfd) => {
                warned = false;
                let view = w.view();
                let max = view
                    .config
                    .listeners
                    .get(listener)
                    .map_or(usize::MAX, |l| l.limits.max_connections);
                if w.shared.active_connections() >= max {
                    w.metrics
                        .proxy_error(crate::telemetry::ErrorKind::Overloaded);
                    reject_overloaded(cfd);
                    continue;
                }
                let info = ConnInfo::of_accepted(cfd, Interception::None);
                let stream = Stream::from_fd(w.driver.clone(), cfd);
                glommio::spawn_local(crate::proxy::serve(w.clone(), listener, stream, info))
                    .detach();
            }
            Err(e) => {
                // EMFILE/ENFILE/ENOMEM: back off instead of spinning; the backlog holds clients.
                if !warned {
                    tracing::warn!(error = %e, "accept failed; backing off");
                    warned = true;
                }
                sleep(&w.driver, Duration::from_millis(50)).await;
            }
        }
    }
}
