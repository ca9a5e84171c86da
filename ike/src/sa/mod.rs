//! IKE SA and Child SA state as plain data.
//!
//! Everything an established IKE SA needs to carry on — keys, Message IDs, the last
//! response, Child SAs, negotiated extensions — lives in [`IkeSa`], so that it can be
//! exported to another node and resumed there (see [`crate::export`]). Deadlines are
//! kept as `Instant`s here and converted to relative durations on export.

pub mod msgid;

use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

use crate::config::{Identity, IpsecMode};
use crate::crypto::SecretBytes;
use crate::crypto::keys::IkeSaKeys;
use crate::policy::proposal::{ChildSuite, IkeSuite};
use crate::wire::{IkeSpi, IpTrafficSelector};

pub use msgid::MessageIdWindow;

/// Identifies an IKE SA on this node and across the cluster: the SPI pair is unique per
/// peer and survives a transfer between nodes, so the id is derived from it.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub struct IkeSaId(pub u64);

impl IkeSaId {
    /// The id of the IKE SA whose responder SPI (ours, as responder) is `spi`.
    pub fn from_local_spi(spi: IkeSpi) -> Self {
        Self(spi.0)
    }
}

impl core::fmt::Display for IkeSaId {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

/// The SPI pair of an IKE SA (RFC 7296 §2.6).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct SpiPair {
    /// Initiator's SPI.
    pub spi_i: IkeSpi,
    /// Responder's SPI.
    pub spi_r: IkeSpi,
}

/// Lifecycle of an IKE SA after IKE_SA_INIT.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum IkeSaState {
    /// IKE_SA_INIT done, waiting for IKE_AUTH.
    HalfOpen,
    /// Authenticated; Child SAs may exist.
    Established,
    /// Replaced by a rekeyed IKE SA; waits for the peer's Delete.
    Rekeyed,
    /// We sent a Delete and wait for the response.
    Deleting,
}

impl IkeSaState {
    /// Name for `ikectl`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::HalfOpen => "CONNECTING",
            Self::Established => "ESTABLISHED",
            Self::Rekeyed => "REKEYED",
            Self::Deleting => "DELETING",
        }
    }
}

/// Keys of one direction of a Child SA.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct ChildSaKeys {
    /// Encryption key (with the 4-octet salt for AEAD transforms).
    pub encr: SecretBytes,
    /// Integrity key (empty for AEAD).
    pub integ: SecretBytes,
}

/// Lifecycle of a Child SA.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum ChildSaState {
    /// Installed and carrying traffic.
    Installed,
    /// Replaced by a rekeyed Child SA; kept until the Delete exchange.
    Rekeyed,
}

impl ChildSaState {
    /// Name for `ikectl`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Installed => "INSTALLED",
            Self::Rekeyed => "REKEYED",
        }
    }
}

/// An ESP Child SA pair (RFC 7296 §1.3, §2.17).
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct ChildSa {
    /// Configuration name (the connection's).
    pub name: String,
    /// Inbound SPI (ours, chosen by us).
    pub spi_in: u32,
    /// Outbound SPI (the peer's).
    pub spi_out: u32,
    /// Request ID tying the SA to its policies; kept across rekeys.
    pub reqid: u32,
    /// Negotiated algorithms.
    pub suite: ChildSuite,
    /// Tunnel or transport.
    pub mode: IpsecMode,
    /// Keys for traffic we receive.
    pub keys_in: ChildSaKeys,
    /// Keys for traffic we send.
    pub keys_out: ChildSaKeys,
    /// Our traffic selectors (TSr when we are responder).
    pub local_ts: Vec<IpTrafficSelector>,
    /// The peer's traffic selectors.
    pub remote_ts: Vec<IpTrafficSelector>,
    /// State.
    pub state: ChildSaState,
    /// When it was installed.
    pub installed_at: Instant,
}

/// An IKE SA (RFC 7296 §1.2), established or on its way.
#[derive(Clone, Debug)]
pub struct IkeSa {
    /// SPIs.
    pub spis: SpiPair,
    /// Whether we were the original initiator (decides the I flag and key directions).
    pub we_are_initiator: bool,
    /// State.
    pub state: IkeSaState,
    /// Name of the connection the peer authenticated for (empty while half-open).
    pub connection: String,
    /// Negotiated algorithms.
    pub suite: IkeSuite,
    /// SK_d, SK_a*, SK_e*, SK_p*.
    pub keys: IkeSaKeys,
    /// Our address and port (the one the peer talks to).
    pub local_addr: SocketAddr,
    /// The peer's address and port.
    pub remote_addr: SocketAddr,
    /// Our identity.
    pub local_id: Option<Identity>,
    /// The peer's authenticated identity.
    pub remote_id: Option<Identity>,
    /// NAT in front of us (our NAT_DETECTION_DESTINATION_IP hash did not match).
    pub nat_local: bool,
    /// NAT in front of the peer.
    pub nat_remote: bool,
    /// The peer supports IKE fragmentation (RFC 7383) and so do we.
    pub fragmentation: bool,
    /// RFC 6311 IKEV2_MESSAGE_ID_SYNC negotiated.
    pub mid_sync: bool,
    /// RFC 6311 IPSEC_REPLAY_COUNTER_SYNC negotiated.
    pub replay_sync: bool,
    /// Message IDs and retransmission state.
    pub msgids: MessageIdWindow,
    /// Child SAs.
    pub children: Vec<ChildSa>,
    /// Virtual IP leased to the peer from a pool.
    pub virtual_ip: Option<IpAddr>,
    /// When IKE_SA_INIT completed.
    pub created_at: Instant,
    /// When the SA became established.
    pub established_at: Option<Instant>,
    /// Last time an authenticated message arrived from the peer.
    pub last_heard: Instant,
    /// Deadline of the pending retransmission of our outstanding request.
    pub retransmit_at: Option<Instant>,
    /// When we rekey this IKE SA.
    pub rekey_at: Option<Instant>,
    /// When we delete it if it has not been rekeyed.
    pub expire_at: Option<Instant>,
}

impl IkeSa {
    /// Our SPI in this SA.
    pub fn local_spi(&self) -> IkeSpi {
        if self.we_are_initiator {
            self.spis.spi_i
        } else {
            self.spis.spi_r
        }
    }

    /// The id of this SA.
    pub fn id(&self) -> IkeSaId {
        IkeSaId::from_local_spi(self.local_spi())
    }

    /// Finds a Child SA by our inbound SPI.
    pub fn child_by_spi_in(&self, spi: u32) -> Option<&ChildSa> {
        self.children.iter().find(|c| c.spi_in == spi)
    }

    /// Whether ESP must be UDP-encapsulated (RFC 3948): a NAT on either side.
    pub fn udp_encap(&self) -> bool {
        self.nat_local || self.nat_remote
    }
}
