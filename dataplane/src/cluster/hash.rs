//! The one fixed 64-bit hash Ringway uses for consistent hashing (ring_hash keys and ring
//! points): FNV-1a 64 followed by the MurmurHash3 `fmix64` finalizer.
//!
//! Invariant: the function is part of the documented behaviour — the same key maps to the
//! same endpoint across restarts, cores, machines and Ringway versions, so it never changes
//! (pinned by test vectors). FNV-1a alone mixes short inputs poorly into the high bits that
//! decide ring positions; `fmix64` fixes the avalanche. Not DoS-resistant: a client that
//! picks its own hash key can only choose its own endpoint, which it can do anyway.

use std::net::{IpAddr, SocketAddr};

/// FNV-1a 64-bit offset basis.
pub const FNV_OFFSET_BASIS: u64 = 0xcbf2_9ce4_8422_2325;
/// FNV-1a 64-bit prime.
pub const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

/// Plain FNV-1a 64 over `bytes`.
#[inline]
pub fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h = FNV_OFFSET_BASIS;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(FNV_PRIME);
    }
    h
}

/// MurmurHash3's 64-bit finalizer: a bijection with full avalanche.
#[inline]
pub const fn fmix64(mut k: u64) -> u64 {
    k ^= k >> 33;
    k = k.wrapping_mul(0xff51_afd7_ed55_8ccd);
    k ^= k >> 33;
    k = k.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    k ^= k >> 33;
    k
}

/// `fmix64(fnv1a(bytes))`: the hash of a request key or ring point.
#[inline]
pub fn hash_bytes(bytes: &[u8]) -> u64 {
    fmix64(fnv1a(bytes))
}

/// Hash of an IP address: its 4 (IPv4, also IPv4-mapped IPv6) or 16 octets.
#[inline]
pub fn hash_ip(ip: IpAddr) -> u64 {
    match ip.to_canonical() {
        IpAddr::V4(v4) => hash_bytes(&v4.octets()),
        IpAddr::V6(v6) => hash_bytes(&v6.octets()),
    }
}

/// Stable identity of an endpoint address: its canonical IP octets then the port (big-endian).
#[inline]
pub fn hash_socket_addr(addr: SocketAddr) -> u64 {
    let mut buf = [0u8; 18];
    let port = addr.port().to_be_bytes();
    let len = match addr.ip().to_canonical() {
        IpAddr::V4(v4) => {
            buf[..4].copy_from_slice(&v4.octets());
            buf[4..6].copy_from_slice(&port);
            6
        }
        IpAddr::V6(v6) => {
            buf[..16].copy_from_slice(&v6.octets());
            buf[16..18].copy_from_slice(&port);
            18
        }
    };
    hash_bytes(&buf[..len])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv1a_matches_reference_vectors() {
        assert_eq!(fnv1a(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a(b"foobar"), 0x8594_4171_f739_67e8);
    }

    #[test]
    fn hash_bytes_is_pinned() {
        // Changing these values breaks the documented endpoint affinity of ring_hash.
        assert_eq!(hash_bytes(b""), fmix64(0xcbf2_9ce4_8422_2325));
        assert_eq!(hash_bytes(b"a"), 0x82a2_a958_a9be_ce5b);
        assert_eq!(hash_bytes(b"user-42"), 0xa395_32c7_ab05_1e8d);
    }

    #[test]
    fn ipv4_mapped_ipv6_hashes_like_ipv4() {
        let v4: IpAddr = "10.1.2.3".parse().unwrap();
        let mapped: IpAddr = "::ffff:10.1.2.3".parse().unwrap();
        assert_eq!(hash_ip(v4), hash_ip(mapped));
        let a: SocketAddr = "10.1.2.3:80".parse().unwrap();
        let b: SocketAddr = "10.1.2.3:81".parse().unwrap();
        assert_ne!(hash_socket_addr(a), hash_socket_addr(b));
    }
}
