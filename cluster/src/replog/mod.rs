//! The replication log: a keyed store of versioned opaque records, kept equal on
//! every node. Sans-IO: it consumes and produces channel messages as bytes.
//!
//! # Model
//!
//! Each record is `key -> (version, payload | tombstone)`. A node writes with
//! [`ReplicationLog::publish`] or [`ReplicationLog::delete`]; the new version's
//! counter is one above every counter the node has seen (a Lamport clock), so a
//! write made after seeing a record always supersedes it. Every node applies a
//! received record only if its version is greater than the one it holds; versions
//! are ordered by `(counter, origin node name)`, so concurrent writes of one key
//! converge to the same winner on every node, whatever the delivery order.
//!
//! # Delivery
//!
//! The channel is reliable and ordered while a connection lasts (TCP + Noise).
//! Per peer, the log keeps a **coalescing send queue**: a key is queued at most
//! once, and what is sent is the newest version at the time of sending, so a key
//! updated 1,000 times while the link is busy costs one record on the wire, not
//! 1,000 (liveness and message-ID updates of many tunnels do not flood the link).
//! At most `max_inflight` records and about `max_inflight_bytes` bytes per peer are
//! unacknowledged at any time, which bounds the memory a slow peer ties up.
//!
//! **Acked** means: the peer has *applied* the record (or a newer version of the
//! same key) to its store. Receivers send the highest contiguous sequence number
//! they applied after each batch. [`ReplicationLog::is_acked_by_all_live`] is true
//! when every *live* peer has acked a version at least as new as the token's;
//! "live" is the membership given with [`ReplicationLog::set_live_members`] (from
//! the heartbeat), or the connected peers if none was given. This is what
//! `sync = "ack"` waits for before an IKE response leaves the node: a node that
//! takes over can then answer any retransmission. A live peer that is not
//! connected blocks the ack until it reconnects and resyncs, or until the
//! heartbeat removes it from the membership. `sync = "async"` publishes and goes on.
//!
//! **Bulk resync**: when a connection to a peer is (re)established, the log queues
//! every record (live ones and tombstones) the peer is not known to hold, then a
//! SnapshotEnd marker, then the live stream. When the peer restarted (new
//! incarnation), nothing is assumed known and everything is sent; when only the
//! connection broke, records the peer acked before are skipped (a delta resync).
//! Receiving a peer's SnapshotEnd raises [`ReplEvent::PeerSynced`].
//!
//! # Partitions
//!
//! During a partition each side keeps writing; nothing is lost or blocked in
//! `async` mode. When the partition heals, connections come back, both sides
//! resync, and every key converges to its highest version. If both sides wrote
//! the same key, the higher `(counter, origin)` wins and the other write is
//! discarded on every node: the SA-level layer must make sure one key has one
//! writer (the SA's owner) and fence ownership on membership changes.
//! Records normally reach peer C from their writer A directly (no flooding, so
//! each write crosses each link once). When a node loses its connection to A, it
//! relays A's records to its other peers that are not known to hold them, so a
//! write that A sent to B just before dying still reaches C. If only the A–C link
//! is broken while both still talk to B, C gets A's records when A–C reconnects or
//! when B loses A (the heartbeat then also reports A and C as down to each other).
//!
//! **Anti-entropy**: [`LogStats::digest`] is a digest of the whole store (every key
//! with its version), maintained incrementally. Equal stores have equal digests, so
//! comparing the nodes' digests while no writes are in flight detects silent
//! divergence (a bug, a lost write) without comparing records.
//!
//! Tombstones are kept until every configured peer acknowledged them, so a node
//! that was away cannot resurrect a deleted record; a peer that stays configured
//! but never returns keeps tombstones alive.
//!
//! A restarted node starts with an empty store. Its version counters start at its
//! boot incarnation (microseconds since the epoch, [`ReplConfig::counter_floor`]),
//! so its writes order after those of its previous life, like a hybrid logical
//! clock, as long as the nodes' clocks agree to within the restart time. Still, it
//! should not write keys it has not seen until it is synced with the live members
//! ([`ReplicationLog::is_synced_with_live`]).
//!
//! A collected tombstone is remembered (the last 65,536 per node) so that an older
//! copy of the record still on its way in another node's resync is not stored again.

mod log;
mod types;
pub mod wire;

pub use log::{LogStats, PeerStats, ReplConfig, ReplError, ReplEvent, ReplicationLog};
pub use types::{MAX_KEY, MAX_PAYLOAD, Record, RecordKey, Token, Version};
pub use wire::is_replication_message;
