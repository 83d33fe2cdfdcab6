//! The bidirectional relay of an L4 connection: client → upstream and upstream → client at
//! once, each direction until its source ends, with half-close passed through.
//!
//! ```text
//!  direction:  recv (multishot, into provided buffers) ─▶ one vectored send per batch
//!                 │ a full buffer arrived (a bulk stream) and both ends are plaintext
//!                 ▼
//!              pause the receive, send what it had delivered, then splice until EOF
//!  source EOF ─▶ shutdown(SHUT_WR) of the sink; the other direction goes on
//!  error on either side ─▶ both directions end (the caller closes both streams)
//!  no byte in either direction for `idle` ─▶ both end (RelayEnd::Idle)
//! ```
//!
//! Small messages (request/response protocols) stay on the receive path, where the ring
//! batches completions and sends without a system call each; bulk transfers move by splice,
//! never through user memory. Memory per connection is bounded: at most one batch of receive
//! buffers (or one pipe) per direction is in flight, whatever the peers do.

use std::cell::Cell;
use std::future::Future;
use std::time::{Duration, Instant};

use crate::transport::splice::{Pump, Pumped};
use crate::transport::{Chain, InBuf, PipePool, RecvHalf, SendHalf, SpliceError, Stream, Window};
use crate::uring::{timeout, Driver};

/// How the relay ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RelayEnd {
    /// Both directions reached end of stream.
    Closed,
    /// No byte moved either way for the idle timeout.
    Idle,
    /// The client reset, failed or stopped reading.
    Client,
    /// The upstream reset, failed or stopped reading.
    Upstream,
}

/// Which way bytes go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    ToUpstream,
    ToClient,
}

/// How one direction ended, when not by end of stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stop {
    Idle,
    /// The source failed.
    Source,
    /// The sink failed or stopped reading.
    Sink,
}

/// What both directions share: when a byte last moved, and the connection's limits.
struct Shared<'a> {
    driver: &'a std::rc::Rc<Driver>,
    pipes: &'a PipePool,
    idle: Duration,
    activity: Cell<Instant>,
    /// Both streams are plaintext: bulk transfers may be spliced.
    splice: bool,
    on_moved: &'a dyn Fn(Direction, u64),
}

impl Shared<'_> {
    fn touch(&self) {
        self.activity.set(Instant::now());
    }

    /// How long a wait may last before the connection counts as idle.
    fn wait(&self) -> Duration {
        (self.activity.get() + self.idle).saturating_duration_since(Instant::now())
    }

    fn is_idle(&self) -> bool {
        self.wait().is_zero()
    }
}

/// Relays between `client` (whose already received bytes are `client_bytes`) and `upstream`
/// until both directions end, one fails, or nothing moves for `idle`. `on_moved` is told of
/// every batch written.
pub async fn run(
    driver: &std::rc::Rc<Driver>,
    pipes: &PipePool,
    client: &mut Stream,
    client_bytes: InBuf,
    upstream: &mut Stream,
    idle: Duration,
    on_moved: &dyn Fn(Direction, u64),
) -> RelayEnd {
    let splice = client.is_plaintext() && upstream.is_plaintext();
    // The upstream side (where bulk downloads come from) receives one buffer at a time: a
    // multishot receive would let one fast sender fill many of the worker's buffers in a
    // single ring wait before the throttle sees them, while the client does not read. The
    // client side keeps its multishot receive for small messages unless nothing can be
    // spliced, where it too goes one buffer at a time.
    upstream.receive_on_demand();
    if !splice {
        client.receive_on_demand();
    }
    let shared = Shared {
        driver,
        pipes,
        idle,
        activity: Cell::new(Instant::now()),
        splice,
        on_moved,
    };
    let (mut c_rx, c_tx) = client.split();
    let (mut u_rx, u_tx) = upstream.split();
    let up = direction(
        &shared,
        &mut c_rx,
        &u_tx,
        client_bytes,
        Direction::ToUpstream,
    );
    let down = direction(
        &shared,
        &mut u_rx,
        &c_tx,
        InBuf::default(),
        Direction::ToClient,
    );
    // Both run until each ends; the first failure ends the other as well.
    let mut up = std::pin::pin!(up);
    let mut down = std::pin::pin!(down);
    let mut up_done: Option<Result<(), Stop>> = None;
    let mut down_done: Option<Result<(), Stop>> = None;
    std::future::poll_fn(|cx| {
        if up_done.is_none() {
            if let std::task::Poll::Ready(r) = up.as_mut().poll(cx) {
                up_done = Some(r);
            }
        }
        if down_done.is_none() {
            if let std::task::Poll::Ready(r) = down.as_mut().poll(cx) {
                down_done = Some(r);
            }
        }
        let failed = matches!(up_done, Some(Err(_))) || matches!(down_done, Some(Err(_)));
        if failed || (up_done.is_some() && down_done.is_some()) {
            std::task::Poll::Ready(())
        } else {
            std::task::Poll::Pending
        }
    })
    .await;
    match (up_done, down_done) {
        (Some(Err(Stop::Idle)), _) | (_, Some(Err(Stop::Idle))) => RelayEnd::Idle,
        (Some(Err(Stop::Source)), _) | (_, Some(Err(Stop::Sink))) => RelayEnd::Client,
        (Some(Err(Stop::Sink)), _) | (_, Some(Err(Stop::Source))) => RelayEnd::Upstream,
        _ => RelayEnd::Closed,
    }
}

/// One direction: `pending` first, then received batches, then (for a bulk stream) splice;
/// at the source's end of stream the sink's sending side is shut down.
async fn direction(
    sh: &Shared<'_>,
    from: &mut RecvHalf<'_>,
    to: &SendHalf<'_>,
    pending: InBuf,
    dir: Direction,
) -> Result<(), Stop> {
    if !pending.is_empty() {
        let len = pending.len();
        let win = Window { inb: pending, len };
        send(sh, to, win, len, dir).await?;
    }
    let full = sh.driver.buffer_size();
    loop {
        let b = match timeout(sh.driver, sh.wait(), from.recv()).await {
            Err(_) if sh.is_idle() => return Err(Stop::Idle),
            Err(_) => continue, // the other direction moved meanwhile
            Ok(Err(_)) => return Err(Stop::Source),
            Ok(Ok(None)) => {
                to.shutdown_write();
                return Ok(());
            }
            Ok(Ok(Some(b))) => b,
        };
        sh.touch();
        let mut bulk = b.len() >= full;
        let mut chain = Chain::default();
        let mut total = b.len();
        chain.push(b, total);
        // Everything already received joins the same send (a bulk stream goes to the
        // splice path at once instead, so it holds as few receive buffers as possible).
        while !bulk && !chain.is_full() && from.has_pending() {
            match from.recv().await {
                Ok(Some(b)) => {
                    bulk |= b.len() >= full;
                    total += b.len();
                    let n = b.len();
                    chain.push(b, n);
                }
                Ok(None) => {
                    send(sh, to, chain, total, dir).await?;
                    to.shutdown_write();
                    return Ok(());
                }
                Err(_) => return Err(Stop::Source),
            }
        }
        send(sh, to, chain, total, dir).await?;
        if bulk && sh.splice {
            return by_splice(sh, from, to, dir).await;
        }
    }
}

/// Sends `payload` (`len` bytes) to `to`, within the idle timeout.
async fn send<T: crate::transport::IoVecs>(
    sh: &Shared<'_>,
    to: &SendHalf<'_>,
    payload: T,
    len: usize,
    dir: Direction,
) -> Result<(), Stop> {
    let (r, _) = to.send(payload, Some(Instant::now() + sh.idle)).await;
    r.map_err(|_| Stop::Sink)?;
    sh.touch();
    (sh.on_moved)(dir, len as u64);
    Ok(())
}

/// The rest of a bulk direction: stop receiving (what was delivered goes first), then splice
/// until the source ends.
async fn by_splice(
    sh: &Shared<'_>,
    from: &mut RecvHalf<'_>,
    to: &SendHalf<'_>,
    dir: Direction,
) -> Result<(), Stop> {
    from.pause_recv().await;
    loop {
        let mut chain = Chain::default();
        let mut total = 0;
        let mut eof = false;
        while !chain.is_full() {
            match from.take_queued() {
                Ok(Some(b)) => {
                    total += b.len();
                    let n = b.len();
                    chain.push(b, n);
                }
                Ok(None) => break,
                Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                    eof = true;
                    break;
                }
                Err(_) => return Err(Stop::Source),
            }
        }
        if chain.is_empty() && !eof {
            break;
        }
        if !chain.is_empty() {
            send(sh, to, chain, total, dir).await?;
        }
        if eof {
            to.shutdown_write();
            return Ok(());
        }
    }
    let mut pump = match Pump::new(sh.pipes) {
        Ok(p) => p,
        // No pipe: carry on receiving and sending.
        Err(_) => return copy_rest(sh, from, to, dir).await,
    };
    loop {
        match pump.run(from, to, sh.wait(), &sh.activity).await {
            Ok(Pumped::Finished(n)) => {
                (sh.on_moved)(dir, n);
                pump.finish(sh.pipes);
                to.shutdown_write();
                return Ok(());
            }
            Ok(Pumped::Stalled(n)) => {
                (sh.on_moved)(dir, n);
                if sh.is_idle() {
                    return Err(Stop::Idle);
                }
            }
            Ok(Pumped::Progress(n)) => (sh.on_moved)(dir, n),
            Err(SpliceError::Sink) => return Err(Stop::Sink),
            Err(_) => return Err(Stop::Source),
        }
    }
}

/// The receive path without splicing (after a splice could not start).
async fn copy_rest(
    sh: &Shared<'_>,
    from: &mut RecvHalf<'_>,
    to: &SendHalf<'_>,
    dir: Direction,
) -> Result<(), Stop> {
    loop {
        let b = match timeout(sh.driver, sh.wait(), from.recv()).await {
            Err(_) if sh.is_idle() => return Err(Stop::Idle),
            Err(_) => continue,
            Ok(Err(_)) => return Err(Stop::Source),
            Ok(Ok(None)) => {
                to.shutdown_write();
                return Ok(());
            }
            Ok(Ok(Some(b))) => b,
        };
        let n = b.len();
        send(sh, to, b, n, dir).await?;
    }
}
