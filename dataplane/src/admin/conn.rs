//! The admin accept loop and per-connection handling.
//!
//! One task per connection, spawned into the task queue the accept loop runs in (the low-share
//! admin queue when started through `admin::spawn`). A semaphore bounds the live connections
//! to [`AdminLimits::max_connections`]; the loop stops accepting while it is exhausted.
//!
//! Per connection: read the head (each read bounded by [`AdminLimits::read_timeout`], the
//! whole head by [`AdminLimits::head_deadline`], the size by `MAX_HEAD_BYTES`), answer once
//! with `Connection: close`,
//! then close gracefully: shut down the write side and drain what the client still sends for
//! a moment, so that an unread request body does not turn the close into a reset that could
//! destroy the response in flight (RFC 9112 §9.6).

use std::io;
use std::rc::Rc;
use std::time::Duration;

use futures_lite::{AsyncReadExt, AsyncWriteExt};
use glommio::net::{TcpListener, TcpStream};
use glommio::sync::Semaphore;

use super::http::{
    self, Endpoint, Format, Parsed, Status, APPLICATION_JSON, MAX_HEAD_BYTES, TEXT_HTML, TEXT_PLAIN,
};
use super::views;
use super::{AdminLimits, AdminState};
use crate::telemetry::{render_prometheus, PROMETHEUS_CONTENT_TYPE};

/// Pause after a failed `accept` (e.g. out of file descriptors) before trying again.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);
/// How long a closing connection drains unread client bytes.
const LINGER: Duration = Duration::from_secs(1);
/// Most unread client bytes drained while closing.
const LINGER_MAX_BYTES: usize = 64 * 1024;

/// Serve admin requests on `listener` with the default [`AdminLimits`] until the task running
/// this is dropped.
pub async fn serve(listener: TcpListener, state: Rc<dyn AdminState>) {
    serve_with(listener, state, AdminLimits::default()).await;
}

/// [`serve`] with explicit limits.
pub async fn serve_with(listener: TcpListener, state: Rc<dyn AdminState>, limits: AdminLimits) {
    let permits = Rc::new(Semaphore::new(limits.max_connections.max(1) as u64));
    loop {
        let permit = match permits.acquire_static_permit(1).await {
            Ok(permit) => permit,
            // Only a closed semaphore fails, and nothing closes this one.
            Err(_) => return,
        };
        let stream = match listener.accept().await {
            Ok(stream) => stream,
            Err(error) => {
                tracing::warn!(%error, "admin accept failed");
                glommio::timer::sleep(ACCEPT_BACKOFF).await;
                continue;
            }
        };
        let state = Rc::clone(&state);
        glommio::spawn_local(async move {
            let _permit = permit;
            handle(stream, state, limits).await;
        })
        .detach();
    }
}

/// Answer the one request on `stream`, then close it.
async fn handle(mut stream: TcpStream, state: Rc<dyn AdminState>, limits: AdminLimits) {
    if stream.set_read_timeout(Some(limits.read_timeout)).is_err()
        || stream
            .set_write_timeout(Some(limits.write_timeout))
            .is_err()
    {
        return;
    }
    let head = read_head(&mut stream);
    let parsed = match glommio::timer::timeout(limits.head_deadline, head).await {
        Ok(Some(parsed)) => parsed,
        // The client went away before sending a whole head: nobody to answer.
        Ok(None) => return,
        Err(_) => Parsed::Reject(Status::RequestTimeout),
    };
    let response = match parsed {
        Parsed::Request(endpoint) => answer(endpoint, &*state).await,
        Parsed::Reject(status) => http::error_response(status),
        Parsed::Partial => http::error_response(Status::BadRequest),
    };
    if stream.write_all(&response).await.is_err() || stream.flush().await.is_err() {
        return;
    }
    linger_close(stream).await;
}

/// Read until the head parses (or is rejected). `Ok(None)`: the peer closed or the socket
/// failed; `Err`: a read timed out (for `glommio::timer::timeout`).
async fn read_head(stream: &mut TcpStream) -> glommio::Result<Option<Parsed>, ()> {
    let mut buf = vec![0u8; MAX_HEAD_BYTES];
    let mut filled = 0;
    loop {
        let Some(spare) = buf.get_mut(filled..) else {
            return Ok(Some(Parsed::Reject(Status::HeaderFieldsTooLarge)));
        };
        if spare.is_empty() {
            return Ok(Some(Parsed::Reject(Status::HeaderFieldsTooLarge)));
        }
        match stream.read(spare).await {
            Ok(0) => return Ok(None),
            Ok(n) => filled = filled.saturating_add(n).min(buf.len()),
            Err(e) if is_timeout(&e) => {
                return Ok(Some(Parsed::Reject(Status::RequestTimeout)));
            }
            Err(_) => return Ok(None),
        }
        let head = buf.get(..filled).unwrap_or_default();
        match http::parse_head(head) {
            Parsed::Partial => continue,
            done => return Ok(Some(done)),
        }
    }
}

fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock
    )
}

/// The full response for a well-formed request to `endpoint`.
async fn answer(endpoint: Endpoint, state: &dyn AdminState) -> Vec<u8> {
    match endpoint {
        Endpoint::Dashboard => http::response(Status::Ok, TEXT_HTML, views::DASHBOARD.as_bytes()),
        Endpoint::Index => http::response(Status::Ok, TEXT_PLAIN, http::INDEX_BODY.as_bytes()),
        Endpoint::Ready => {
            if state.ready() && !state.draining() {
                http::response(Status::Ok, TEXT_PLAIN, b"ready\n")
            } else if state.draining() {
                http::response(Status::ServiceUnavailable, TEXT_PLAIN, b"draining\n")
            } else {
                http::response(Status::ServiceUnavailable, TEXT_PLAIN, b"not ready\n")
            }
        }
        Endpoint::Metrics => {
            let snapshot = state.metrics().await;
            let mut body = String::with_capacity(16 * 1024);
            render_prometheus(&snapshot, &mut body);
            http::response(Status::Ok, PROMETHEUS_CONTENT_TYPE, body.as_bytes())
        }
        Endpoint::Stats(format) => {
            let snapshot = state.metrics().await;
            let mut text = String::with_capacity(16 * 1024);
            render_prometheus(&snapshot, &mut text);
            match format {
                Format::Json => {
                    http::response(Status::Ok, APPLICATION_JSON, views::stats_json(&text).as_bytes())
                }
                Format::Text => {
                    http::response(Status::Ok, TEXT_PLAIN, views::stats_text(&text).as_bytes())
                }
            }
        }
        Endpoint::Clusters(format) => {
            let cores = state.clusters().await;
            let body = match format {
                Format::Json => views::clusters_json(&cores),
                Format::Text => views::clusters_text(&cores),
            };
            let kind = if format == Format::Json { APPLICATION_JSON } else { TEXT_PLAIN };
            http::response(Status::Ok, kind, body.as_bytes())
        }
        Endpoint::Certs => {
            let snapshot = state.metrics().await;
            let body = views::certs_json(&snapshot.certificates, views::unix_now());
            http::response(Status::Ok, APPLICATION_JSON, body.as_bytes())
        }
        Endpoint::Config => {
            let text = state.config_text();
            http::response(Status::Ok, TEXT_PLAIN, text.as_bytes())
        }
        Endpoint::Logging => {
            let body = format!("log filter: {}\n", state.log_filter());
            http::response(Status::Ok, TEXT_PLAIN, body.as_bytes())
        }
        Endpoint::SetLogging(level) => match state.set_log_filter(level.as_str()) {
            Ok(()) => {
                tracing::warn!(level = level.as_str(), "log level changed from the admin API");
                let body = format!("log filter: {}\n", level.as_str());
                http::response(Status::Ok, TEXT_PLAIN, body.as_bytes())
            }
            Err(e) => http::response(Status::ServiceUnavailable, TEXT_PLAIN, format!("{e}\n").as_bytes()),
        },
        Endpoint::Reload => match state.reload() {
            Ok(()) => http::response(
                Status::Accepted,
                TEXT_PLAIN,
                b"reload requested; the outcome is logged and counted in ringway_config_reloads_total\n",
            ),
            Err(e) => http::response(Status::ServiceUnavailable, TEXT_PLAIN, format!("{e}\n").as_bytes()),
        },
    }
}

/// Shut down our write side, then discard what the client still sends, briefly.
async fn linger_close(mut stream: TcpStream) {
    if stream.shutdown(std::net::Shutdown::Write).await.is_err() {
        return;
    }
    let drain = async {
        let mut scratch = [0u8; 1024];
        let mut drained = 0usize;
        while drained < LINGER_MAX_BYTES {
            match stream.read(&mut scratch).await {
                Ok(0) | Err(_) => break,
                Ok(n) => drained = drained.saturating_add(n),
            }
        }
        Ok(())
    };
    let _ = glommio::timer::timeout(LINGER, drain).await;
}
