//! What is known of a connection's addresses: [`ConnInfo`], filled in at accept.
//!
//! - `peer`: the client as the socket sees it, replaced by the source a PROXY protocol header
//!   names when the listener requires one (`l4::proxy_protocol`).
//! - `local`: the address the connection arrived at (for a TPROXY listener: the address the
//!   client asked for).
//! - `original_dst`: where an intercepted connection was going before iptables redirected it
//!   to the listener: `SO_ORIGINAL_DST` for `REDIRECT` (the conntrack entry), the local address
//!   for `TPROXY`. `None` when the listener does not intercept.
//!
//! - [`OwnConnections`]: the local ports of this process's own connections to original
//!   destinations, so that our own traffic redirected back to us is recognised (a loop).
//!
//! Invariant: reading addresses never fails the connection; an address that cannot be read is
//! the unspecified address (logged by the caller if it matters).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::RawFd;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

pub use crate::config::Interception;

/// Addresses of one downstream connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnInfo {
    pub peer: SocketAddr,
    pub local: SocketAddr,
    pub original_dst: Option<SocketAddr>,
}

const UNSPECIFIED: SocketAddr = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0));

/// `SO_ORIGINAL_DST` (linux/netfilter_ipv4.h) and `IP6T_SO_ORIGINAL_DST`
/// (linux/netfilter_ipv6/ip6_tables.h): both 80.
const SO_ORIGINAL_DST: libc::c_int = 80;

impl ConnInfo {
    /// The addresses of an accepted socket.
    pub fn of_accepted(fd: RawFd, interception: Interception) -> ConnInfo {
        let peer = sock_name(fd, libc::getpeername).unwrap_or(UNSPECIFIED);
        let local = sock_name(fd, libc::getsockname).unwrap_or(UNSPECIFIED);
        let original_dst = match interception {
            Interception::None => None,
            Interception::Redirect => Some(original_dst(fd, local).unwrap_or(local)),
            Interception::Tproxy => Some(local),
        };
        ConnInfo {
            peer,
            local,
            original_dst,
        }
    }

    /// For tests and tools: a connection from `peer` to `local`, not intercepted.
    pub fn direct(peer: SocketAddr, local: SocketAddr) -> ConnInfo {
        ConnInfo {
            peer,
            local,
            original_dst: None,
        }
    }
}

/// The local address of a connected socket (unspecified if it cannot be read).
pub fn local_addr(fd: RawFd) -> SocketAddr {
    sock_name(fd, libc::getsockname).unwrap_or(UNSPECIFIED)
}

/// Where this process's own upstream connections to original destinations come from: per
/// local port, a hash of the destination (0 = none). An intercepted connection whose peer
/// port holds the hash of its own original destination is our own connection, redirected
/// back to us by iptables: relaying it would loop. Shared by all workers (one atomic store per
/// such connection opened and closed; nothing per request).
pub struct OwnConnections {
    /// INVARIANT: 65536 entries, indexed by local port.
    slots: Box<[AtomicU64]>,
}

impl std::fmt::Debug for OwnConnections {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("OwnConnections")
    }
}

impl Default for OwnConnections {
    fn default() -> Self {
        // Zeroed memory (calloc: pages are resident only once touched).
        let zeroed: Box<[u64]> = vec![0u64; 1 << 16].into_boxed_slice();
        let raw = Box::into_raw(zeroed) as *mut [AtomicU64];
        // SAFETY: AtomicU64 has the same size, alignment and bit validity as u64, and the
        // allocation is the one `zeroed` owned, now owned by this Box alone.
        let slots = unsafe { Box::from_raw(raw) };
        OwnConnections { slots }
    }
}

fn dst_tag(dst: SocketAddr) -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h =
        std::hash::BuildHasherDefault::<std::collections::hash_map::DefaultHasher>::default()
            .build_hasher();
    std::hash::Hash::hash(&dst, &mut h);
    h.finish() | 1
}

impl OwnConnections {
    /// Notes our connection from local port `port` to `dst` until the mark drops.
    pub fn mark(self: &Arc<Self>, port: u16, dst: SocketAddr) -> OwnMark {
        self.slots[usize::from(port)].store(dst_tag(dst), Ordering::Relaxed);
        OwnMark {
            table: self.clone(),
            port,
        }
    }

    /// Whether a connection from `peer` whose original destination is `dst` is one of ours.
    pub fn is_own(&self, peer: SocketAddr, dst: SocketAddr) -> bool {
        self.slots[usize::from(peer.port())].load(Ordering::Relaxed) == dst_tag(dst)
    }
}

/// One of our connections in [`OwnConnections`]; unmarks on drop.
pub struct OwnMark {
    table: Arc<OwnConnections>,
    port: u16,
}

impl Drop for OwnMark {
    fn drop(&mut self) {
        self.table.slots[usize::from(self.port)].store(0, Ordering::Relaxed);
    }
}

type NameFn =
    unsafe extern "C" fn(libc::c_int, *mut libc::sockaddr, *mut libc::socklen_t) -> libc::c_int;

fn sock_name(fd: RawFd, f: NameFn) -> Option<SocketAddr> {
    // SAFETY: all-zero is a valid sockaddr_storage.
    let mut ss: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
    // SAFETY: `ss` is large enough for any socket address and `len` says so.
    let rc = unsafe {
        f(
            fd,
            (&mut ss as *mut libc::sockaddr_storage).cast(),
            &mut len,
        )
    };
    if rc != 0 {
        return None;
    }
    from_storage(&ss)
}

/// The destination a `REDIRECT`ed connection had (the same family as `local`).
fn original_dst(fd: RawFd, local: SocketAddr) -> Option<SocketAddr> {
    // SAFETY: all-zero is a valid sockaddr_storage.
    let mut ss: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
    let level = if local.is_ipv6() {
        libc::SOL_IPV6
    } else {
        libc::SOL_IP
    };
    // SAFETY: `ss` is large enough for the sockaddr_in/sockaddr_in6 the option returns.
    let rc = unsafe {
        libc::getsockopt(
            fd,
            level,
            SO_ORIGINAL_DST,
            (&mut ss as *mut libc::sockaddr_storage).cast(),
            &mut len,
        )
    };
    if rc != 0 {
        return None;
    }
    from_storage(&ss)
}

fn from_storage(ss: &libc::sockaddr_storage) -> Option<SocketAddr> {
    match ss.ss_family as libc::c_int {
        libc::AF_INET => {
            // SAFETY: the family says the storage holds a sockaddr_in.
            let a: &libc::sockaddr_in = unsafe { &*(ss as *const _ as *const libc::sockaddr_in) };
            let ip = Ipv4Addr::from(u32::from_be(a.sin_addr.s_addr));
            Some(SocketAddr::new(IpAddr::V4(ip), u16::from_be(a.sin_port)))
        }
        libc::AF_INET6 => {
            // SAFETY: the family says the storage holds a sockaddr_in6.
            let a: &libc::sockaddr_in6 = unsafe { &*(ss as *const _ as *const libc::sockaddr_in6) };
            let ip = Ipv6Addr::from(a.sin6_addr.s6_addr);
            Some(SocketAddr::V6(SocketAddrV6::new(
                ip,
                u16::from_be(a.sin6_port),
                a.sin6_flowinfo,
                a.sin6_scope_id,
            )))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsRawFd;

    #[test]
    fn reads_peer_and_local_of_a_loopback_connection() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let c = std::net::TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let (s, _) = l.accept().unwrap();
        let info = ConnInfo::of_accepted(s.as_raw_fd(), Interception::None);
        assert_eq!(info.peer, c.local_addr().unwrap());
        assert_eq!(info.local, l.local_addr().unwrap());
        assert_eq!(info.original_dst, None);
        // Not redirected: the original destination is where the client connected.
        let info = ConnInfo::of_accepted(s.as_raw_fd(), Interception::Redirect);
        assert_eq!(info.original_dst, Some(l.local_addr().unwrap()));
        let info = ConnInfo::of_accepted(s.as_raw_fd(), Interception::Tproxy);
        assert_eq!(info.original_dst, Some(l.local_addr().unwrap()));
    }

    #[test]
    fn own_connections_are_recognised_by_port_and_destination() {
        let own = Arc::new(OwnConnections::default());
        let dst: SocketAddr = "10.0.0.5:80".parse().unwrap();
        let mark = own.mark(40000, dst);
        assert!(own.is_own("10.0.0.9:40000".parse().unwrap(), dst));
        assert!(!own.is_own("10.0.0.9:40001".parse().unwrap(), dst));
        assert!(!own.is_own(
            "10.0.0.9:40000".parse().unwrap(),
            "10.0.0.6:80".parse().unwrap()
        ));
        drop(mark);
        assert!(!own.is_own("10.0.0.9:40000".parse().unwrap(), dst));
    }

    #[test]
    fn an_unreadable_descriptor_gives_unspecified_addresses() {
        let info = ConnInfo::of_accepted(-1, Interception::None);
        assert_eq!(info.peer, UNSPECIFIED);
        assert_eq!(info.local, UNSPECIFIED);
    }
}
