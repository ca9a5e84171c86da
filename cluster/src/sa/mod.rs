//! The SA layer of a cluster node: ownership of IKE SAs, replication of owned SAs,
//! takeover after a node's death (RFC 6311), transfer, drain and rebalancing.
//!
//! [`ClusterNode`] is sans-IO like [`ike::endpoint::Endpoint`], which it wraps: time is
//! an argument, effects come out of [`ClusterNode::poll_effect`] as values (IKE
//! datagrams, data-plane requests, replication messages) and the gateway executes them.
//!
//! # Ownership
//! Every IKE SA has one owner, written in its replicated record. A new IKE_SA_INIT is
//! claimed by rendezvous hashing (HRW) of (SPIi, peer address) over the live members
//! that are not draining; every node sees every datagram and
//! [`ClusterNode::handle_datagram`] passes on only what this node owns. When an owner
//! dies, HRW of the SPI pair over the survivors names the new owner, on every survivor
//! alike; a record naming a live owner (e.g. after a transfer) always wins.
//!
//! # Standbys
//! A node keeps the records of SAs it does not own without importing them: it asks for
//! block policies for their Child SAs ([`ClusterEffect::BlockPolicies`], so it never
//! forwards a tunnel's traffic in the clear) and for their removal when the Child SAs are
//! gone ([`ClusterEffect::RemoveBlockPolicies`]: record deleted by its owner, or Child SA
//! deleted), unless another record or a Child SA of ours still uses those selectors.
//!
//! # RFC 6311 sync after a takeover
//! (M1, P1, nonce) of every attempt is replicated and acked before the request leaves
//! (§5.1 SHOULD). An unanswered request is retransmitted as a new one (fresh nonce, M1 a
//! peer window higher): a peer that processed it but lost its response must drop a copy
//! whose M1 it has seen. Retransmissions are the same sync (§7: one per SA per
//! failover); after the RFC 7296 number of attempts the IKE SA is deleted
//! ([`ClusterEvent::SyncGaveUp`]).
//!
//! # Virtual IP pools
//! Every pool is split among the *configured* nodes by HRW of each address over all of
//! them, live or not ([`ClusterNode::new`] installs the filter on the endpoint's pools):
//! a node hands out only its own share, so two nodes never lease the same address, even
//! in a partition. The cost: while a node is down, its share of the free addresses is not
//! handed out by anyone (size pools for it). Leases of other nodes' SAs are recorded from
//! their replicated records (and released by their tombstones), and a node hands out
//! nothing until it holds every live member's records (after a restart it learns which
//! addresses of its share survivors still use).
//!
//! # Sequence number fencing
//! Outbound ESP sequence numbers are leased: see `docs/architecture.md` ("Cluster") for
//! the argument that no (SPI, sequence number) pair is used twice.

mod heal;
mod hrw;
mod leases;
mod node;
mod record;
mod standby;
mod takeover;
mod transfer;

use std::net::IpAddr;
use std::time::Duration;

use heartbeat::NodeId;
use ike::config::IpsecMode;
use ike::endpoint::{ChildInstall, Effect};
use ike::sa::IkeSaId;
use ike::wire::IpTrafficSelector;
use xfrm::ReplayState;

pub use node::ClusterNode;

/// When an IKE response may leave the node (DESIGN §4, `[cluster] sync`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SyncMode {
    /// Hold IKE datagrams until the record they create is acked by every live member
    /// (bounded by [`ClusterConfig::ack_timeout`]): a node that takes over never holds
    /// stale Message IDs.
    Ack,
    /// Send at once; replication follows (lower latency; a takeover may rely on RFC 6311
    /// to repair Message IDs).
    Async,
}

/// Configuration of a [`ClusterNode`].
#[derive(Clone, Debug)]
pub struct ClusterConfig {
    /// This node.
    pub node: NodeId,
    /// Every configured node, this one included.
    pub nodes: Vec<NodeId>,
    /// `ack` or `async`.
    pub sync: SyncMode,
    /// Longest hold of an IKE datagram in `ack` mode (then it leaves anyway, counted).
    pub ack_timeout: Duration,
    /// Outbound sequence numbers granted per lease (and per takeover slot).
    pub lease_chunk: u64,
    /// Acks (this node included) a lease renewal needs; 0 means a majority of
    /// [`ClusterConfig::nodes`].
    pub lease_quorum: usize,
    /// Eager RFC 6311 syncs per second after a takeover; `None`: lazily, on the first
    /// datagram of each SA (RFC 6311 §7).
    pub sync_rate: Option<u32>,
    /// Added to the replicated sender Message ID on top of the peer's window (RFC 6311
    /// §5.1 RECOMMENDED: at least the window).
    pub mid_margin: u32,
    /// IPSEC_REPLAY_COUNTER_SYNC delta asked of the peer after a takeover (RFC 6311 §5.2).
    pub replay_delta: u64,
    /// SAs handed over per second by drain and rebalancing.
    pub transfer_rate: u32,
}

impl ClusterConfig {
    /// Defaults: `ack`, 200 ms ack timeout, leases of 2^20 packets, majority quorum,
    /// 2,000 syncs/s, margin 16, replay delta 2^20, 1,000 transfers/s.
    pub fn new(node: NodeId, nodes: Vec<NodeId>) -> Self {
        Self {
            node,
            nodes,
            sync: SyncMode::Ack,
            ack_timeout: Duration::from_millis(200),
            lease_chunk: 1 << 20,
            lease_quorum: 0,
            sync_rate: Some(2_000),
            mid_margin: 16,
            replay_delta: 1 << 20,
            transfer_rate: 1_000,
        }
    }
}

/// A Child SA install decorated by the cluster layer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClusterInstall {
    /// What the IKE core asks to install.
    pub child: ChildInstall,
    /// Initial replay state of the inbound SA (takeover: the replicated checkpoint,
    /// moved past the replay delta asked of the peer; transfer: the exact window).
    pub inbound_replay: Option<ReplayState>,
    /// Initial replay state of the outbound SA: `oseq` is the last sequence number
    /// *considered used*, so the first packet goes out with `oseq + 1`.
    pub outbound_replay: Option<ReplayState>,
    /// XFRM hard packet lifetime of the outbound SA: the kernel refuses to send past
    /// the lease end (`oseq + hard_packets`).
    pub outbound_hard_packets: u64,
    /// XFRM soft packet lifetime of the outbound SA (three quarters of the lease): if
    /// the lease cannot be renewed (no quorum), the soft expiry makes the IKE core
    /// rekey the Child SA, whose new SAs start with a fresh lease.
    pub outbound_soft_packets: u64,
}

/// Policies of one Child SA, to be switched to block (a non-owner never forwards a
/// tunnel's traffic in the clear).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BlockPolicies {
    /// Its IKE SA.
    pub ike_sa: IkeSaId,
    /// Policy request ID.
    pub reqid: u32,
    /// Tunnel or transport.
    pub mode: IpsecMode,
    /// Our address.
    pub local_addr: IpAddr,
    /// The peer's address.
    pub remote_addr: IpAddr,
    /// Our selectors.
    pub local_ts: Vec<IpTrafficSelector>,
    /// The peer's selectors.
    pub remote_ts: Vec<IpTrafficSelector>,
}

/// Something for the gateway to do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ClusterEffect {
    /// An IKE core effect: `Send`, `DeleteChild`, `AdvanceOutboundSequence`, `KeyLog`,
    /// `Event` (never `InstallChild`: see [`ClusterEffect::InstallChild`]).
    Ike(Effect),
    /// Install a Child SA pair with the given replay states and lease, and its IPsec
    /// policies (replacing block policies with the same selectors).
    InstallChild(Box<ClusterInstall>),
    /// Replace the IPsec policies of a Child SA with block policies.
    BlockPolicies(Box<BlockPolicies>),
    /// A transfer's cutover: cap the outbound SA at `margin` packets past its current
    /// sequence number (never past `lease_end`), and hand the last sequence number it can
    /// still use to [`ClusterNode::handle_replay_state`] as `oseq` (see
    /// `xfrm::cap_outbound`). The SA goes on sending until the target has installed
    /// (which starts above it), so the outbound direction has no gap either.
    CapOutbound {
        /// Outbound SPI.
        spi_out: u32,
        /// Destination (the peer).
        dst: IpAddr,
        /// The lease end the data plane enforces now.
        lease_end: u64,
        /// Packets the SA may still send.
        margin: u64,
    },
    /// Remove the block policies of a Child SA that is gone (its record was deleted
    /// by its owner); policies this node's own Child SAs use are never named here.
    RemoveBlockPolicies(Box<BlockPolicies>),
    /// Read the replay state of the SA with this SPI (XFRM_MSG_GETAE) and hand it to
    /// [`ClusterNode::handle_replay_state`].
    ReadReplayState {
        /// SPI of the SA.
        spi: u32,
        /// Destination address of the SA.
        dst: IpAddr,
    },
    /// A renewed lease: set the hard packet lifetime of the outbound SA
    /// (XFRM_MSG_UPDSA) to `hard_packets`, counted from its install.
    UpdateOutboundLease {
        /// Outbound SPI.
        spi_out: u32,
        /// Destination (the peer).
        dst: IpAddr,
        /// New hard packet limit.
        hard_packets: u64,
        /// New soft packet limit (three quarters of the lease).
        soft_packets: u64,
    },
    /// Move an outbound SA to a new range of sequence numbers: it continues at `start`
    /// and never sends past `end` (see `xfrm::move_outbound_range`). After a partition
    /// healed, the owner continues above what the other side sent on it meanwhile.
    MoveOutboundLease {
        /// Outbound SPI.
        spi_out: u32,
        /// Destination (the peer).
        dst: IpAddr,
        /// The lease end the data plane enforces now.
        old_end: u64,
        /// First sequence number of the new range.
        start: u64,
        /// Last sequence number of the new range.
        end: u64,
    },
    /// Send a replication message to a peer node on the channel.
    Replicate {
        /// The node.
        to: NodeId,
        /// The message.
        data: Vec<u8>,
    },
    /// Something happened at the cluster level.
    Event(ClusterEvent),
}

/// Cluster-level events (logs, metrics).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ClusterEvent {
    /// This node took an IKE SA over after its owner's death.
    TookOver {
        /// Which.
        id: IkeSaId,
        /// The previous owner.
        from: NodeId,
    },
    /// An IKE SA was handed to us by a transfer (its Child SAs are installed).
    TransferredIn {
        /// Which.
        id: IkeSaId,
    },
    /// A transfer out handed IKE SA `id` over: our outbound SAs are capped, the counters
    /// are read and the record naming `to` is published; we send (up to the caps) and
    /// deliver until `to` acks it ([`ClusterEvent::TransferredOut`]).
    TransferHandedOver {
        /// Which.
        id: IkeSaId,
        /// The target.
        to: NodeId,
    },
    /// An IKE SA we owned was handed to another node, which acked the handover (it
    /// has installed): our Child SAs are removed.
    TransferredOut {
        /// Which.
        id: IkeSaId,
        /// The new owner.
        to: NodeId,
    },
    /// Another node's newer record owns an SA we held (partition healed): ours is gone.
    LostOwnership {
        /// Which.
        id: IkeSaId,
        /// The winner.
        to: NodeId,
    },
    /// An RFC 6311 sync was sent for an SA.
    SyncStarted {
        /// Which.
        id: IkeSaId,
        /// Our next sender Message ID (M1).
        m1: u32,
        /// The peer's next request Message ID (P1).
        p1: u32,
    },
    /// An RFC 6311 sync request went unanswered and was sent again as a new request
    /// (fresh nonce, larger M1, replicated before it left): still the same sync, not a
    /// new one (§7: one per SA per failover).
    SyncRetransmitted {
        /// Which.
        id: IkeSaId,
        /// The new M1.
        m1: u32,
        /// P1 (unchanged).
        p1: u32,
    },
    /// The peer never answered the RFC 6311 sync: the IKE SA was deleted.
    SyncGaveUp {
        /// Which.
        id: IkeSaId,
    },
    /// An `ack`-mode hold timed out: the datagrams left unacked.
    AckTimeout,
}

/// Why an operator command was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CommandError {
    /// This node does not own the SA.
    #[error("IKE SA {0} is not owned by this node")]
    NotOwned(IkeSaId),
    /// The target is not a live member (or is this node).
    #[error("node {0} is not a live peer")]
    NotLive(NodeId),
    /// A transfer of this SA is already running.
    #[error("IKE SA {0} is already being transferred")]
    Busy(IkeSaId),
}

/// One member in [`ClusterStatus`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemberStatus {
    /// Name.
    pub node: NodeId,
    /// Live in our membership view.
    pub live: bool,
    /// Announced draining.
    pub draining: bool,
    /// IKE SAs it owns, by our records.
    pub sas_owned: usize,
    /// Replication connection up (always true for this node).
    pub connected: bool,
    /// Replication lag toward it in records (queued + unacked); `None` for this node.
    pub replication_lag: Option<usize>,
}

/// What `ikectl cluster` shows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClusterStatus {
    /// This node.
    pub node: NodeId,
    /// Membership epoch.
    pub epoch: u64,
    /// Every configured node.
    pub members: Vec<MemberStatus>,
    /// IKE SA records held (all owners).
    pub records: usize,
    /// Counters.
    pub counters: ClusterCounters,
}

/// Counters of a [`ClusterNode`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ClusterCounters {
    /// Datagrams dropped because another node owns them.
    pub not_owner: u64,
    /// IKE SAs taken over after a death.
    pub takeovers: u64,
    /// RFC 6311 syncs sent.
    pub syncs_started: u64,
    /// RFC 6311 syncs answered by the peer.
    pub syncs_completed: u64,
    /// RFC 6311 syncs not sent after a takeover although negotiated: an AEAD IKE SA whose
    /// peer already answered our requests cannot answer a Message ID 0 sync (its
    /// Message-ID-derived IV would repeat); the replicated Message IDs carry it on.
    pub syncs_skipped: u64,
    /// RFC 6311 sync requests sent again (as new requests) after no answer.
    pub sync_retransmissions: u64,
    /// RFC 6311 syncs never answered (their IKE SA was deleted).
    pub syncs_failed: u64,
    /// `ack` holds that timed out.
    pub ack_timeouts: u64,
    /// Datagrams currently held.
    pub held_datagrams: usize,
    /// Transfers out completed.
    pub transfers_out: u64,
    /// Transfers in.
    pub transfers_in: u64,
    /// Lease renewals granted (quorum acked).
    pub lease_renewals: u64,
    /// Child SA rekeys scheduled after a large sequence jump (RFC 6311 §5.2).
    pub jump_rekeys: u64,
    /// Outbound SAs moved above another node's range after a partition healed.
    pub lease_moves: u64,
    /// IKE SAs whose Message IDs moved up to what another node used on them during a
    /// partition.
    pub message_id_merges: u64,
}
