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

pub mod channel;
pub mod replicator;
pub mod replog;
pub mod transport;

pub use heartbeat::{ClusterKey, KeyFileError, Membership, NodeId};
