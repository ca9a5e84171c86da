//! The seam between the daemon and the sans-IO protocol core.
//!
//! The daemon drives anything that implements [`Core`]: datagrams and timeouts go in,
//! [`Output`]s come out (quinn's `handle_*` / `poll_*` split, DESIGN §1). The protocol
//! core (`ike::endpoint::Endpoint`) plugs in through an adapter that also executes its
//! data-plane effects ([`super::endpoint_core`]); tests plug in scripted cores.

use std::net::SocketAddr;
use std::time::Instant;

use cluster::NodeId;

use crate::config::GatewayConfig;
use crate::control::{ClusterView, IkeSaView};

/// Something the core asks the daemon to do.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum Output {
    /// Send `data` (an IKE message) from `local` to `remote`; on the NAT-T port the
    /// daemon prepends the non-ESP marker (RFC 3948 §2.2).
    Send {
        /// Our address and port.
        local: SocketAddr,
        /// Destination.
        remote: SocketAddr,
        /// The IKE message.
        data: Vec<u8>,
    },
    /// Send a NAT-keepalive (RFC 3948 §4: the octet 0xFF, no non-ESP marker) from our
    /// NAT-T address `local` to `remote`: we are behind a NAT.
    NatKeepalive {
        /// Our NAT-T address and port.
        local: SocketAddr,
        /// The peer.
        remote: SocketAddr,
    },
    /// One line for the Wireshark `ikev2_decryption_table` key log.
    KeyLog(String),
    /// Send a replication message to a cluster peer on the channel.
    Replicate {
        /// The node.
        to: NodeId,
        /// The message.
        data: Vec<u8>,
    },
    /// Drop the replication session with a peer that broke the protocol (it is
    /// re-established, with a bulk resync).
    DisconnectPeer {
        /// The node.
        node: NodeId,
    },
    /// Something happened, for logs and metrics.
    Event(Event),
}

/// Events for logs and metrics.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum Event {
    /// An IKE SA was established.
    IkeUp {
        /// Id.
        id: String,
        /// Connection.
        connection: String,
        /// Peer.
        remote: SocketAddr,
    },
    /// An IKE SA went away.
    IkeDown {
        /// Id.
        id: String,
        /// Why.
        reason: String,
    },
    /// An IKE SA was rekeyed.
    IkeRekeyed {
        /// Old id.
        old: String,
        /// New id.
        new: String,
    },
    /// A Child SA was installed.
    ChildUp {
        /// Its IKE SA.
        ike_sa: String,
        /// Inbound SPI.
        spi_in: u32,
        /// Whether it replaced another.
        rekey: bool,
    },
    /// A Child SA was removed.
    ChildDown {
        /// Its IKE SA.
        ike_sa: String,
        /// Inbound SPI.
        spi_in: u32,
    },
    /// A request was answered.
    Exchange {
        /// Exchange type name.
        exchange: String,
    },
    /// A retransmitted request got the cached response.
    RetransmitAnswered,
    /// A datagram was dropped or refused.
    Dropped {
        /// Stable label.
        reason: String,
    },
    /// RFC 6311 Message ID synchronisation completed for an IKE SA.
    MessageIdsSynced {
        /// Id.
        id: String,
    },
    /// An IKE_AUTH failed.
    AuthFailed {
        /// Peer.
        remote: SocketAddr,
    },
    /// The data plane refused an operation.
    DataplaneError {
        /// What failed.
        message: String,
    },
    /// Something happened at the cluster level (takeover, transfer, sync...).
    Cluster {
        /// Stable label (`took_over`, `transferred_in`, `transferred_out`,
        /// `lost_ownership`, `sync_started`, `sync_retransmitted`, `sync_gave_up`,
        /// `ack_timeout`).
        kind: &'static str,
        /// The IKE SA, if any.
        sa: Option<String>,
        /// Human-readable detail.
        detail: String,
    },
}

/// Inputs from the cluster's I/O, which the daemon owns (sockets, tasks).
#[derive(Clone, Debug)]
pub enum ClusterInput {
    /// From the replication channel.
    Channel(cluster::channel::ChannelEvent),
    /// A new membership view from the heartbeat.
    Membership(cluster::Membership),
}

/// Counts for `ikectl status` and the gauges.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct Counts {
    /// Established IKE SAs.
    pub ike_sas: usize,
    /// Half-open IKE SAs.
    pub half_open: usize,
    /// Child SAs.
    pub child_sas: usize,
}

/// A protocol core the daemon can drive. Time is always an argument.
pub trait Core: Send {
    /// Short description for `ikectl status`.
    fn name(&self) -> &'static str;
    /// One received IKE message (non-ESP marker already removed).
    fn handle_datagram(&mut self, now: Instant, local: SocketAddr, remote: SocketAddr, data: &[u8]);
    /// Runs due timers; spurious calls are harmless.
    fn handle_timeout(&mut self, now: Instant);
    /// When [`Core::handle_timeout`] next has work.
    fn poll_timeout(&self) -> Option<Instant>;
    /// Next output, in order.
    fn poll_output(&mut self) -> Option<Output>;
    /// Operator `terminate`: starts deleting the IKE SA `id`; false if unknown.
    fn terminate(&mut self, now: Instant, id: &str) -> bool;
    /// Every IKE SA.
    fn list(&self, now: Instant) -> Vec<IkeSaView>;
    /// Applies a new configuration, keeping established SAs.
    fn reconfigure(&mut self, config: &GatewayConfig);
    /// Current counts.
    fn counts(&self) -> Counts;
    /// SAs held by the data plane (kernel or memory), for `ikectl status`; `None` when
    /// this core has no data plane.
    fn dataplane_sas(&mut self) -> Option<usize> {
        None
    }
    /// An input from the cluster's I/O (ignored by a standalone core).
    fn handle_cluster(&mut self, _now: Instant, _input: ClusterInput) {}
    /// The daemon stops (after a cluster node announced that it leaves).
    fn shutdown(&mut self) {}
    /// `ikectl cluster`; `None` when not clustered.
    fn cluster_status(&self) -> Option<ClusterView> {
        None
    }
    /// `ikectl transfer`: starts moving owned IKE SA `id` to node `to`.
    fn transfer(&mut self, _now: Instant, _id: &str, _to: &str) -> Result<(), String> {
        Err("not in a cluster".into())
    }
    /// `ikectl drain` (`undrain` when `on` is false).
    fn drain(&mut self, _now: Instant, _node: &str, _on: bool) -> Result<(), String> {
        Err("not in a cluster".into())
    }
}
