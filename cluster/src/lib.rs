//! Replication of SA context between baton cluster nodes.
//!
//! Layers, bottom up (each is a separate module so the SA-level logic can be
//! added beside them):
//! - [`transport`]: sans-IO Noise session (handshake, Hello, framing, encryption).
//! - [`channel`]: tokio driver keeping one encrypted TCP connection to every peer.
//! - [`replog`]: sans-IO replication log of versioned opaque records (coalescing
//!   send queues, acks, bulk resync, ack tracking for `sync = "ack"`).
//! - [`replicator`]: a tokio task running a [`replog::ReplicationLog`] over a
//!   [`channel::Channel`], with an async handle.
//!
//! Node names and the cluster key come from the `heartbeat` crate and are re-exported.
//!
//! # Wiring (what the gateway does with `[cluster]`)
//!
//! - `key_file` → [`ClusterKey::load`] (format in [`heartbeat::key`]). Both the
//!   heartbeat MAC key and the channel PSK are derived from it.
//! - One incarnation per boot ([`heartbeat::driver::boot_incarnation`]) goes to both
//!   the heartbeat [`heartbeat::Detector`] and [`channel::ChannelConfig`].
//! - `listen` / `peers` addresses: the channel uses TCP and the heartbeat UDP on the
//!   same address and port.
//! - Membership events from the heartbeat → [`replicator::Replicator::set_live_members`]
//!   (so `sync = "ack"` waits exactly for the live members), and to the SA layer for
//!   takeover.
//! - `sync = "ack"`: publish, then [`replicator::Replicator::wait_acked`] (bounded by a
//!   timeout) before the IKE response leaves; `sync = "async"`: publish only.

mod bytes;
pub mod channel;
pub mod replicator;
pub mod replog;
pub mod sa;
pub mod transport;

pub use heartbeat::{ClusterKey, KeyFileError, Membership, NodeId};
