//! meridian-driver-tokio: will run Meridian's node machines over real UDP and TCP
//! (issue 8). For now it only maps a socket address onto the core's opaque `Addr`.

use meridian_core::Addr;
use std::net::SocketAddr;

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn socket_addresses_fit_the_opaque_address() {
        assert_eq!(
            addr_of("127.0.0.1:7946".parse().unwrap()).as_bytes().len(),
            6
        );
        assert_eq!(addr_of("[::1]:7946".parse().unwrap()).as_bytes().len(), 18);
    }
}
