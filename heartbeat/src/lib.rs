//! BFD-style failure detection and membership for baton cluster nodes.
//!
//! Every node sends an authenticated heartbeat to every configured peer each
//! `heartbeat_interval` (default 100 ms). A peer is declared Down after
//! `heartbeat_multiplier` (default 3) intervals without a valid heartbeat, i.e. at most
//! 300 ms after it died with the defaults (strongSwan's HA plugin needs 2.1 s).
//!
//! Guarantees, for operators:
//! - **Three-way sessions** (Down / Init / Up, as in BFD, RFC 5880 §6.2): a node is
//!   counted live only when both directions work, so a one-way link failure takes the
//!   member out on both sides.
//! - **No flapping on loss**: one lost heartbeat never takes a member down; it takes
//!   `multiplier` consecutive losses.
//! - **Authenticated**: HMAC-SHA256 over every heartbeat with a key derived from the
//!   cluster key; strictly increasing (incarnation, sequence) per sender, so recorded
//!   heartbeats cannot be replayed, and heartbeats from before a node's reboot cannot
//!   bring that node's sessions up. Forged, replayed or foreign packets are dropped and
//!   counted ([`Stats`]).
//! - **Restarts are seen**: a peer that reboots faster than the detection time is still
//!   reported Down ([`DownReason::PeerRestarted`]) then Up, because it lost its state.
//! - **Planned leave**: a node that shuts down or is drained announces AdminDown
//!   ([`Detector::leave`]); peers drop it at once ([`DownReason::PeerLeft`]) instead of
//!   waiting for the detection time, and do not bring it back until it restarts.
//! - **Epochs**: every change of the live set increments [`Membership::epoch`].
//!
//! The core ([`Detector`]) is sans-IO: time is passed in, datagrams go in and out as
//! bytes. [`driver`] runs it on a tokio UDP socket.

pub mod detector;
pub mod driver;
pub mod key;
pub mod node;
pub mod packet;

pub use detector::{
    Detector, DetectorConfig, DownReason, DropReason, Membership, MembershipEvent, Stats, Transmit,
};
pub use key::{ClusterKey, DerivedKey, KeyFileError};
pub use node::{InvalidNodeId, NodeId};
pub use packet::SessionState;
