//! baton's kernel data plane.
//!
//! The [`Dataplane`] trait is what the gateway and the cluster drive: SPI
//! allocation, SA and policy installation, replay state and counters
//! (XFRM_MSG_GETAE/NEWAE, kernel documentation networking/xfrm_sync), and the
//! kernel's expire and replay events. Two implementations:
//!
//! - [`KernelDataplane`]: the Linux kernel over a NETLINK_XFRM socket, built on
//!   `netlink-packet-xfrm` with a typed layer of our own ([`SaSpec`],
//!   [`PolicySpec`]) whose keys are zeroized and never printed;
//! - [`MemoryDataplane`]: a faithful in-memory model (SAD, SPD, larval SPIs,
//!   replay windows, lifetimes, replay events) with simulated traffic, for
//!   tests and benchmarks.
//!
//! Requests are built and answers matched without I/O (the `wire` module);
//! only `kernel.rs` touches sockets.

mod dataplane;
mod error;
mod kernel;
mod lease;
mod memory;
pub mod replay;
mod socket;
mod types;
mod wire;

pub use dataplane::Dataplane;
pub use error::{Error, Result};
pub use kernel::{EventMonitor, KernelDataplane, MAX_EVENTS_PER_POLL};
pub use lease::{cap_outbound, move_outbound_range};
pub use memory::{LARVAL_LIFETIME_SECS, MemoryDataplane, SeqRange, Wire};
pub use replay::Received;
pub use socket::{bypass_ipsec, enable_espinudp};
pub use types::*;

/// Byte-level access to the request encoder, for golden tests against
/// iproute2 and for debugging. Not part of the stable interface.
#[doc(hidden)]
pub mod encode {
    use crate::types::{PolicyId, PolicySpec, Protocol, SaId, SaSpec, SpiRange};
    use crate::wire::{self, Expect, ae, policy, sa};
    use std::net::IpAddr;
    use zeroize::Zeroizing;

    fn bytes(
        msg: netlink_packet_xfrm::XfrmMessage,
        seq: u32,
        expect: Expect,
    ) -> Zeroizing<Vec<u8>> {
        wire::encode(msg, seq, expect).bytes
    }

    /// XFRM_MSG_NEWSA as `add_sa` sends it.
    pub fn new_sa(s: &SaSpec, seq: u32) -> Zeroizing<Vec<u8>> {
        bytes(sa::add(s, false), seq, Expect::Ack)
    }

    /// XFRM_MSG_DELSA.
    pub fn delete_sa(id: &SaId, seq: u32) -> Zeroizing<Vec<u8>> {
        bytes(sa::delete(id), seq, Expect::Ack)
    }

    /// XFRM_MSG_ALLOCSPI.
    pub fn alloc_spi(
        src: IpAddr,
        dst: IpAddr,
        reqid: u32,
        range: SpiRange,
        seq: u32,
    ) -> Zeroizing<Vec<u8>> {
        bytes(
            sa::alloc_spi(src, dst, Protocol::Esp, reqid, range),
            seq,
            Expect::Reply,
        )
    }

    /// XFRM_MSG_NEWPOLICY.
    pub fn new_policy(p: &PolicySpec, seq: u32) -> Zeroizing<Vec<u8>> {
        bytes(policy::add(p, false), seq, Expect::Ack)
    }

    /// XFRM_MSG_DELPOLICY.
    pub fn delete_policy(id: &PolicyId, seq: u32) -> Zeroizing<Vec<u8>> {
        bytes(policy::delete(id), seq, Expect::Ack)
    }

    /// XFRM_MSG_GETAE.
    pub fn get_ae(id: &SaId, seq: u32) -> Zeroizing<Vec<u8>> {
        bytes(ae::get(id), seq, Expect::Reply)
    }
}
