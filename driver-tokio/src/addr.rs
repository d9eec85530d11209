//! Socket addresses as the core's opaque [`Addr`] bytes, and back. A node binds one port
//! for both UDP (datagrams) and TCP (frames), so one address names it on both.

use meridian_core::Addr;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// Encode a socket address as the core's opaque address bytes (IPv4: 6, IPv6: 18).
pub fn addr_of(sa: SocketAddr) -> Addr {
    let mut buf = [0u8; 18];
    let len = match sa {
        SocketAddr::V4(v4) => {
            buf[..4].copy_from_slice(&v4.ip().octets());
            buf[4..6].copy_from_slice(&v4.port().to_be_bytes());
            6
        }
        SocketAddr::V6(v6) => {
            buf[..16].copy_from_slice(&v6.ip().octets());
            buf[16..18].copy_from_slice(&v6.port().to_be_bytes());
            18
        }
    };
    Addr::new(&buf[..len]).expect("fits")
}

/// The socket address an [`Addr`] names; `None` for bytes no socket address encodes to
/// (a hostile or simulator address).
pub fn socket_of(a: Addr) -> Option<SocketAddr> {
    let b = a.as_bytes();
    match b.len() {
        6 => {
            let ip = Ipv4Addr::new(b[0], b[1], b[2], b[3]);
            Some(SocketAddr::new(
                IpAddr::V4(ip),
                u16::from_be_bytes([b[4], b[5]]),
            ))
        }
        18 => {
            let ip: [u8; 16] = b[..16].try_into().ok()?;
            Some(SocketAddr::new(
                IpAddr::V6(Ipv6Addr::from(ip)),
                u16::from_be_bytes([b[16], b[17]]),
            ))
        }
        _ => None,
    }
}

/// A node's out-of-band probe socket is its main port plus this (membership.md §9).
pub const OOB_PORT_OFFSET: u16 = 100;

/// Where the node at `a` listens for OOB datagrams (`None` past the last port).
pub fn oob_socket_of(a: Addr) -> Option<SocketAddr> {
    let mut sa = socket_of(a)?;
    sa.set_port(sa.port().checked_add(OOB_PORT_OFFSET)?);
    Some(sa)
}

/// The main address of the node whose OOB socket is `sa` (what the core knows it by).
pub fn main_addr_of_oob(mut sa: SocketAddr) -> Option<Addr> {
    sa.set_port(sa.port().checked_sub(OOB_PORT_OFFSET)?);
    Some(addr_of(sa))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn socket_addresses_round_trip_through_the_opaque_address() {
        for s in ["127.0.0.1:7946", "[::1]:7946", "10.1.2.3:1"] {
            let sa: SocketAddr = s.parse().unwrap();
            assert_eq!(socket_of(addr_of(sa)), Some(sa));
        }
        assert_eq!(
            addr_of("127.0.0.1:7946".parse().unwrap()).as_bytes().len(),
            6
        );
        assert_eq!(socket_of(Addr::from_u32(7)), None);
    }

    #[test]
    fn the_oob_socket_is_the_main_port_plus_100_both_ways() {
        let main: SocketAddr = "127.0.0.1:7946".parse().unwrap();
        let oob = oob_socket_of(addr_of(main)).unwrap();
        assert_eq!(oob, "127.0.0.1:8046".parse().unwrap());
        assert_eq!(main_addr_of_oob(oob), Some(addr_of(main)));
        assert_eq!(oob_socket_of(addr_of("[::1]:65436".parse().unwrap())), None);
        assert_eq!(main_addr_of_oob("127.0.0.1:99".parse().unwrap()), None);
    }
}
