//! Hot restart: a running Ringway hands its listening sockets to a successor process over a
//! Unix socket (the way Envoy's hot restart and Pingora's graceful upgrade do), then drains.
//!
//! ```text
//!  successor                         predecessor (listening on --upgrade-socket)
//!  connect ─────── "UPGRADE 1\n" ──▶ (refuses with "BUSY ..." while draining)
//!          ◀── description + fds ─── one sendmsg: JSON text, SCM_RIGHTS descriptors
//!  start workers on the inherited sockets (a failure here: it closes, the predecessor serves on)
//!          ──────── "READY\n" ─────▶ unlinks the socket path
//!          ◀────── "DRAINING\n" ──── stops accepting, drains, exits
//!  binds --upgrade-socket itself (ready for the next upgrade)
//! ```
//!
//! Invariants: the listening sockets never close while either process runs, so no connection
//! in a kernel accept queue is lost and no connect is refused; the predecessor starts to drain
//! only after the successor serves; at most [`MAX_FDS`] descriptors move in one message.

use std::io::{self, BufRead, BufReader, IoSlice, IoSliceMut, Write};
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::time::Duration;

use nix::sys::socket::{recvmsg, sendmsg, ControlMessage, ControlMessageOwned, MsgFlags};
use serde::{Deserialize, Serialize};

/// Most descriptors handed over (the kernel's SCM_MAX_FD is 253).
pub const MAX_FDS: usize = 250;
const HELLO: &str = "UPGRADE 1\n";
/// How long each step of the exchange may take.
const STEP_TIMEOUT: Duration = Duration::from_secs(30);
const MAX_DESCRIPTION: usize = 64 * 1024;

/// Why a handover failed.
#[derive(Debug, thiserror::Error)]
pub enum HandoverError {
    #[error("no running ringway accepts upgrades at {path}: {source}")]
    Connect { path: String, source: io::Error },
    #[error("the running ringway refused the upgrade: {0}")]
    Refused(String),
    #[error("upgrade exchange failed: {0}")]
    Io(#[from] io::Error),
    #[error("upgrade exchange failed: {0}")]
    Protocol(String),
    #[error("cannot listen for upgrades at {path}: {source}")]
    Listen { path: String, source: io::Error },
}

/// One listening socket and what it is for.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct SocketInfo {
    /// Listener name; `None` for the admin listener.
    pub listener: Option<String>,
    pub bind: SocketAddr,
}

#[derive(Serialize, Deserialize)]
struct Description {
    sockets: Vec<SocketInfo>,
}

/// Sockets received from a predecessor (owned: closed on drop unless taken).
#[derive(Debug, Default)]
pub struct Inherited {
    pub sockets: Vec<(SocketInfo, RawFd)>,
}

impl Inherited {
    /// Takes the descriptors for listener `name` at `bind` (in the predecessor's order).
    pub fn take_listener(&mut self, name: &str, bind: SocketAddr) -> Vec<RawFd> {
        self.take(|s| s.listener.as_deref() == Some(name) && s.bind == bind)
    }

    /// Takes the admin listener's descriptor if it was bound to `bind`.
    pub fn take_admin(&mut self, bind: SocketAddr) -> Option<RawFd> {
        self.take(|s| s.listener.is_none() && s.bind == bind).pop()
    }

    fn take(&mut self, pred: impl Fn(&SocketInfo) -> bool) -> Vec<RawFd> {
        let (hit, rest): (Vec<_>, Vec<_>) = std::mem::take(&mut self.sockets)
            .into_iter()
            .partition(|(s, _)| pred(s));
        self.sockets = rest;
        hit.into_iter().map(|(_, fd)| fd).collect()
    }
}

impl Drop for Inherited {
    fn drop(&mut self) {
        for (s, fd) in self.sockets.drain(..) {
            tracing::warn!(listener = ?s.listener, bind = %s.bind, "inherited socket not used by the new config; closed");
            // SAFETY: the descriptor was received over SCM_RIGHTS and is owned by us alone.
            unsafe { libc::close(fd) };
        }
    }
}

/// Closes descriptors received over SCM_RIGHTS that will not be used.
fn close_all(fds: Vec<RawFd>) {
    for fd in fds {
        // SAFETY: received descriptors are ours alone, closed once (moved in).
        unsafe { libc::close(fd) };
    }
}

/// The successor's side, between receiving the sockets and telling the predecessor it serves.
pub struct Takeover {
    stream: BufReader<UnixStream>,
    pub inherited: Inherited,
}

/// Connects to the predecessor at `path` and receives its listening sockets.
pub fn take_over(path: &Path) -> Result<Takeover, HandoverError> {
    let stream = UnixStream::connect(path).map_err(|source| HandoverError::Connect {
        path: path.display().to_string(),
        source,
    })?;
    stream.set_read_timeout(Some(STEP_TIMEOUT))?;
    stream.set_write_timeout(Some(STEP_TIMEOUT))?;
    (&stream).write_all(HELLO.as_bytes())?;
    let mut buf = vec![0u8; MAX_DESCRIPTION];
    let mut cmsg = nix::cmsg_space!([RawFd; MAX_FDS]);
    let (n, fds) = {
        let mut iov = [IoSliceMut::new(&mut buf)];
        let msg = recvmsg::<()>(
            stream.as_raw_fd(),
            &mut iov,
            Some(&mut cmsg),
            MsgFlags::MSG_CMSG_CLOEXEC,
        )
        .map_err(io::Error::from)?;
        let mut fds = Vec::new();
        for c in msg.cmsgs() {
            if let ControlMessageOwned::ScmRights(r) = c {
                fds.extend(r);
            }
        }
        (msg.bytes, fds)
    };
    let Ok(text) = std::str::from_utf8(&buf[..n]) else {
        close_all(fds);
        return Err(HandoverError::Protocol(
            "the description is not UTF-8".into(),
        ));
    };
    if let Some(reason) = text.strip_prefix("BUSY ") {
        close_all(fds);
        return Err(HandoverError::Refused(reason.trim().to_string()));
    }
    let desc: Description = match serde_json::from_str(text) {
        Ok(d) => d,
        Err(e) => {
            close_all(fds);
            return Err(HandoverError::Protocol(format!("bad description: {e}")));
        }
    };
    if desc.sockets.len() != fds.len() {
        let received = fds.len();
        close_all(fds);
        return Err(HandoverError::Protocol(format!(
            "{} sockets described, {received} received",
            desc.sockets.len()
        )));
    }
    let inherited = Inherited {
        sockets: desc.sockets.into_iter().zip(fds).collect(),
    };
    Ok(Takeover {
        stream: BufReader::new(stream),
        inherited,
    })
}

impl Takeover {
    /// Tells the predecessor this process serves, and waits until it drains.
    pub fn ready(mut self) -> Result<(), HandoverError> {
        self.stream.get_mut().write_all(b"READY\n")?;
        let mut line = String::new();
        self.stream.read_line(&mut line)?;
        match line.trim() {
            "DRAINING" => Ok(()),
            other => Err(HandoverError::Protocol(format!(
                "unexpected answer {other:?}"
            ))),
        }
    }
}

/// The predecessor's side: a listener for one successor at a time.
pub struct UpgradeListener {
    listener: UnixListener,
    path: PathBuf,
}

impl UpgradeListener {
    /// Listens at `path`, replacing a stale socket file nobody answers on.
    pub fn bind(path: &Path) -> Result<UpgradeListener, HandoverError> {
        let err = |source| HandoverError::Listen {
            path: path.display().to_string(),
            source,
        };
        if path.exists() {
            if UnixStream::connect(path).is_ok() {
                return Err(err(io::Error::new(
                    io::ErrorKind::AddrInUse,
                    "another ringway listens there",
                )));
            }
            std::fs::remove_file(path).map_err(err)?;
        }
        let listener = UnixListener::bind(path).map_err(err)?;
        Ok(UpgradeListener {
            listener,
            path: path.to_path_buf(),
        })
    }

    /// Serves successors until one takes over: for each, `offer()` gives the sockets to hand
    /// over (or `Err(reason)` to refuse: e.g. while draining). Returns once a successor said
    /// READY and was told DRAINING; the socket path is removed by then.
    pub fn serve(self, offer: impl Fn() -> Result<Vec<(SocketInfo, RawFd)>, String>) {
        for conn in self.listener.incoming() {
            let Ok(conn) = conn else { continue };
            match self.hand_over(conn, &offer) {
                Ok(true) => return,
                Ok(false) => {}
                Err(e) => tracing::warn!(error = %e, "upgrade attempt failed; still serving"),
            }
        }
    }

    fn hand_over(
        &self,
        conn: UnixStream,
        offer: &impl Fn() -> Result<Vec<(SocketInfo, RawFd)>, String>,
    ) -> io::Result<bool> {
        conn.set_read_timeout(Some(STEP_TIMEOUT))?;
        conn.set_write_timeout(Some(STEP_TIMEOUT))?;
        let mut reader = BufReader::new(conn.try_clone()?);
        let mut hello = String::new();
        reader.read_line(&mut hello)?;
        if hello != HELLO {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("bad greeting {hello:?}"),
            ));
        }
        let sockets = match offer() {
            Ok(s) if s.len() <= MAX_FDS => s,
            Ok(s) => {
                let reason = format!("BUSY {} sockets are more than {MAX_FDS}\n", s.len());
                (&conn).write_all(reason.as_bytes())?;
                return Ok(false);
            }
            Err(reason) => {
                (&conn).write_all(format!("BUSY {reason}\n").as_bytes())?;
                return Ok(false);
            }
        };
        let desc = Description {
            sockets: sockets.iter().map(|(s, _)| s.clone()).collect(),
        };
        let text = serde_json::to_string(&desc).map_err(io::Error::other)?;
        let fds: Vec<RawFd> = sockets.iter().map(|(_, fd)| *fd).collect();
        let iov = [IoSlice::new(text.as_bytes())];
        let cmsg = [ControlMessage::ScmRights(&fds)];
        sendmsg::<()>(conn.as_raw_fd(), &iov, &cmsg, MsgFlags::empty(), None)
            .map_err(io::Error::from)?;
        tracing::info!(sockets = fds.len(), "listening sockets sent to a successor");
        let mut ready = String::new();
        reader.read_line(&mut ready)?;
        if ready != "READY\n" {
            tracing::warn!("the successor did not start; still serving");
            return Ok(false);
        }
        let _ = std::fs::remove_file(&self.path);
        (&conn).write_all(b"DRAINING\n")?;
        Ok(true)
    }
}
