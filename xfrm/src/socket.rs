//! Per-socket IPsec bypass for the IKE sockets.
//!
//! The kernel checks the inbound policy of a UDP datagram before it looks at
//! ESP-in-UDP encapsulation (`udp_queue_rcv_one_skb`): when an IPsec policy
//! covers the peer's address (host-to-host or transport-mode tunnels, or any
//! traffic selector that includes the gateway itself), IKE and NAT-T packets
//! on ports 500/4500 arrive in the clear and would be dropped as
//! XfrmInTmplMismatch. A socket policy with action "allow" and no templates
//! exempts the socket, in both directions; IKE daemons install it on every
//! IKE socket.

use std::os::fd::{AsFd, AsRawFd};

use netlink_packet_core::Emitable;
use netlink_packet_xfrm::{
    UserPolicyInfo, XFRM_USER_POLICY_INFO_LEN,
    constants::{AF_INET, AF_INET6, XFRM_POLICY_ALLOW, XFRM_POLICY_IN, XFRM_POLICY_OUT},
};

use crate::error::{Error, Result};

/// `IP_XFRM_POLICY` and `IPV6_XFRM_POLICY` from the kernel's uapi in.h/in6.h.
const IP_XFRM_POLICY: libc::c_int = 17;
const IPV6_XFRM_POLICY: libc::c_int = 35;

/// Exempts `sock` (a UDP socket of family IPv6 when `ipv6`, else IPv4) from
/// IPsec policies in both directions.
pub fn bypass_ipsec<S: AsFd>(sock: &S, ipv6: bool) -> Result<()> {
    let (level, name, family) = if ipv6 {
        (libc::IPPROTO_IPV6, IPV6_XFRM_POLICY, AF_INET6)
    } else {
        (libc::IPPROTO_IP, IP_XFRM_POLICY, AF_INET)
    };
    for dir in [XFRM_POLICY_IN, XFRM_POLICY_OUT] {
        let mut info = UserPolicyInfo {
            direction: dir,
            action: XFRM_POLICY_ALLOW,
            ..Default::default()
        };
        info.selector.family = family;
        let mut buf = [0u8; XFRM_USER_POLICY_INFO_LEN];
        info.emit(&mut buf);
        let fd = sock.as_fd().as_raw_fd();
        let rc = setsockopt(fd, level, name, &buf);
        if rc != 0 {
            return Err(Error::Io {
                op: format!(
                    "setting the {} IPsec bypass policy on the IKE socket",
                    if dir == XFRM_POLICY_IN {
                        "inbound"
                    } else {
                        "outbound"
                    }
                ),
                source: std::io::Error::last_os_error(),
            });
        }
    }
    Ok(())
}

/// `SOL_UDP`, `UDP_ENCAP` and `UDP_ENCAP_ESPINUDP` from the kernel's uapi udp.h.
const SOL_UDP: libc::c_int = 17;
const UDP_ENCAP: libc::c_int = 100;
const UDP_ENCAP_ESPINUDP: libc::c_int = 2;

/// Marks a UDP socket (the NAT-T socket, port 4500) for ESP-in-UDP
/// (RFC 3948): the kernel then decapsulates datagrams whose first four bytes
/// are a non-zero SPI and passes only IKE (non-ESP marker) to the socket.
/// Inbound ESP-in-UDP is only decapsulated on such a socket.
pub fn enable_espinudp<S: AsFd>(sock: &S) -> Result<()> {
    let v = UDP_ENCAP_ESPINUDP.to_ne_bytes();
    if setsockopt(sock.as_fd().as_raw_fd(), SOL_UDP, UDP_ENCAP, &v) != 0 {
        return Err(Error::Io {
            op: "enabling ESP-in-UDP (UDP_ENCAP_ESPINUDP) on the NAT-T socket".into(),
            source: std::io::Error::last_os_error(),
        });
    }
    Ok(())
}

#[allow(
    unsafe_code,
    reason = "setsockopt(2) has no safe wrapper in std; see SAFETY"
)]
fn setsockopt(fd: libc::c_int, level: libc::c_int, name: libc::c_int, value: &[u8]) -> libc::c_int {
    let Ok(len) = libc::socklen_t::try_from(value.len()) else {
        return -1;
    };
    // SAFETY: `fd` is borrowed from a live socket for the duration of the
    // call; `value` is a valid, initialised buffer of exactly `len` bytes that
    // the kernel only reads.
    unsafe { libc::setsockopt(fd, level, name, value.as_ptr().cast(), len) }
}
