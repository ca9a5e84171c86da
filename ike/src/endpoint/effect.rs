//! What the protocol core asks the outside world to do.
//!
//! The core never touches a socket or the kernel; it returns these values and the
//! gateway executes them in order.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use crate::config::IpsecMode;
use crate::policy::proposal::ChildSuite;
use crate::sa::{ChildSaKeys, IkeSaId};
use crate::wire::IpTrafficSelector;

/// One direction of a Child SA to install.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChildSaHalf {
    /// SPI.
    pub spi: u32,
    /// Source address of the ESP packets.
    pub src: IpAddr,
    /// Destination address of the ESP packets.
    pub dst: IpAddr,
    /// Keys.
    pub keys: ChildSaKeys,
}

/// Install a Child SA pair (and its policies, keyed by `reqid`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChildInstall {
    /// The IKE SA it belongs to.
    pub ike_sa: IkeSaId,
    /// Child name (connection name).
    pub name: String,
    /// Policy request ID; the same across rekeys of one Child SA.
    pub reqid: u32,
    /// Algorithms.
    pub suite: ChildSuite,
    /// Tunnel or transport.
    pub mode: IpsecMode,
    /// Traffic we receive.
    pub inbound: ChildSaHalf,
    /// Traffic we send.
    pub outbound: ChildSaHalf,
    /// UDP encapsulation ports (ours, the peer's) when behind NAT (RFC 3948).
    pub encap: Option<(u16, u16)>,
    /// Our traffic selectors.
    pub local_ts: Vec<IpTrafficSelector>,
    /// The peer's traffic selectors.
    pub remote_ts: Vec<IpTrafficSelector>,
    /// Soft lifetime (the kernel's soft expire drives our rekey).
    pub soft_lifetime: Option<Duration>,
    /// Hard lifetime.
    pub hard_lifetime: Option<Duration>,
    /// On a rekey, the inbound/outbound SPIs of the Child SA this one replaces (its
    /// policies stay; the old SAs are removed by a later [`ChildDelete`]).
    pub replaces: Option<(u32, u32)>,
}

/// Remove a Child SA pair (and, unless it was rekeyed, its policies).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChildDelete {
    /// The IKE SA it belonged to.
    pub ike_sa: IkeSaId,
    /// Policy request ID.
    pub reqid: u32,
    /// Inbound SPI.
    pub spi_in: u32,
    /// Outbound SPI.
    pub spi_out: u32,
    /// Our address (destination of inbound ESP).
    pub local_addr: IpAddr,
    /// The peer's address.
    pub remote_addr: IpAddr,
    /// Whether a newer Child SA with the same `reqid` still uses the policies.
    pub keep_policies: bool,
    /// Our traffic selectors (to find the policies).
    pub local_ts: Vec<IpTrafficSelector>,
    /// The peer's traffic selectors.
    pub remote_ts: Vec<IpTrafficSelector>,
}

/// Something that happened, for logs and metrics.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SaEvent {
    /// An IKE SA was established.
    IkeUp {
        /// Which.
        id: IkeSaId,
        /// Connection name.
        connection: String,
        /// Peer address.
        remote: SocketAddr,
    },
    /// An IKE SA went away.
    IkeDown {
        /// Which.
        id: IkeSaId,
        /// Why, for the log.
        reason: &'static str,
    },
    /// An IKE SA was rekeyed into a new one.
    IkeRekeyed {
        /// The old SA.
        old: IkeSaId,
        /// The new SA.
        new: IkeSaId,
    },
    /// A Child SA was installed.
    ChildUp {
        /// Its IKE SA.
        ike_sa: IkeSaId,
        /// Inbound SPI.
        spi_in: u32,
        /// Whether it replaces another (rekey).
        rekey: bool,
    },
    /// A Child SA was deleted.
    ChildDown {
        /// Its IKE SA.
        ike_sa: IkeSaId,
        /// Inbound SPI.
        spi_in: u32,
    },
    /// A request was answered.
    Exchange {
        /// Exchange type name.
        exchange: &'static str,
    },
    /// A retransmitted request got the cached response again.
    RetransmitAnswered,
    /// A datagram was dropped or refused; `reason` is a stable label for metrics.
    Dropped {
        /// Why.
        reason: &'static str,
    },
    /// RFC 6311: the peer answered our Message ID sync; the SA's counters are agreed.
    MessageIdsSynced {
        /// Which.
        id: IkeSaId,
    },
    /// An IKE SA we initiated could not be set up.
    InitiationFailed {
        /// Which.
        id: IkeSaId,
        /// Why.
        reason: crate::initiator::InitiatorFailure,
    },
    /// An IKE_AUTH failed to authenticate.
    AuthFailed {
        /// Peer address.
        remote: SocketAddr,
    },
}

/// An effect for the gateway to execute.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Effect {
    /// Send a datagram (the gateway adds the non-ESP marker on the NAT-T port).
    Send {
        /// Our address and port to send from.
        local: SocketAddr,
        /// Destination.
        remote: SocketAddr,
        /// The IKE message.
        data: Vec<u8>,
    },
    /// Install a Child SA pair.
    InstallChild(Box<ChildInstall>),
    /// Remove a Child SA pair.
    DeleteChild(Box<ChildDelete>),
    /// RFC 6311 §5.2 (peer side): move the outbound ESP sequence number of this Child SA
    /// forward by `delta`, as the cluster that took over our IKE SA asked.
    AdvanceOutboundSequence {
        /// Outbound SPI.
        spi_out: u32,
        /// Destination of the outbound SA.
        dst: IpAddr,
        /// How far to move.
        delta: u64,
    },
    /// RFC 3948 §4: we are behind a NAT; send a NAT-keepalive (the single octet 0xFF,
    /// without the non-ESP marker) from our NAT-T socket so the mapping stays open.
    NatKeepalive {
        /// Our NAT-T address.
        local: SocketAddr,
        /// The peer.
        remote: SocketAddr,
    },
    /// A line for the Wireshark `ikev2_decryption_table` key log.
    KeyLog(String),
    /// Something happened.
    Event(SaEvent),
}

/// A Child SA as `ikectl` shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChildSaInfo {
    /// Name.
    pub name: String,
    /// Inbound SPI.
    pub spi_in: u32,
    /// Outbound SPI.
    pub spi_out: u32,
    /// Our selectors, as text (`10.1.0.0/24`, or a range).
    pub local_ts: Vec<String>,
    /// The peer's selectors.
    pub remote_ts: Vec<String>,
    /// State name.
    pub state: &'static str,
    /// Algorithms, as text.
    pub proposal: String,
}

/// An IKE SA as `ikectl` shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IkeSaInfo {
    /// Id.
    pub id: IkeSaId,
    /// Connection name.
    pub connection: String,
    /// State name.
    pub state: &'static str,
    /// Our identity, as text.
    pub local_id: String,
    /// The peer's identity, as text.
    pub remote_id: String,
    /// Our address.
    pub local_addr: SocketAddr,
    /// The peer's address.
    pub remote_addr: SocketAddr,
    /// Initiator SPI, hex.
    pub spi_i: String,
    /// Responder SPI, hex.
    pub spi_r: String,
    /// Algorithms, as text.
    pub proposal: String,
    /// Virtual IP handed to the peer.
    pub virtual_ip: Option<IpAddr>,
    /// NAT detected on the peer's side.
    pub nat_remote: bool,
    /// Seconds since establishment.
    pub established_secs: Option<u64>,
    /// RFC 6311 Message ID sync negotiated.
    pub mid_sync: bool,
    /// Child SAs.
    pub children: Vec<ChildSaInfo>,
}
