//! NAT detection (RFC 7296 §2.23).

use std::net::{IpAddr, SocketAddr};

use sha1::{Digest, Sha1};

use crate::wire::IkeSpi;

/// SHA-1(SPIi | SPIr | IP address | port), the data of NAT_DETECTION_*_IP notifies.
pub(crate) fn nat_detection_hash(spi_i: IkeSpi, spi_r: IkeSpi, addr: SocketAddr) -> [u8; 20] {
    let mut h = Sha1::new();
    h.update(spi_i.to_bytes());
    h.update(spi_r.to_bytes());
    match addr.ip() {
        IpAddr::V4(a) => h.update(a.octets()),
        IpAddr::V6(a) => h.update(a.octets()),
    }
    h.update(addr.port().to_be_bytes());
    h.finalize().into()
}
