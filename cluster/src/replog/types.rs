//! Record keys, versions, records, tokens.

use std::cmp::Ordering;
use std::fmt;

use heartbeat::NodeId;

/// Longest record key, bytes.
pub const MAX_KEY: usize = 255;
/// Largest record payload, bytes: a record must fit in one channel message
/// together with its header ([`crate::transport::MAX_MESSAGE`] minus headroom).
pub const MAX_PAYLOAD: usize = 65_000;

/// The key of a replicated record: 1 to 255 opaque bytes. The layer above picks
/// a namespace scheme (e.g. a type byte followed by an IKE SA's SPIs).
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RecordKey(std::sync::Arc<[u8]>);

impl RecordKey {
    /// A key from bytes, if 1..=255 long.
    pub fn new(bytes: &[u8]) -> Option<Self> {
        (!bytes.is_empty() && bytes.len() <= MAX_KEY).then(|| Self(bytes.into()))
    }

    /// A 16-byte big-endian key (sorts like the integer).
    pub fn from_u128(v: u128) -> Self {
        Self(std::sync::Arc::new(v.to_be_bytes()))
    }

    /// The key bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for RecordKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RecordKey(")?;
        for b in self.0.iter() {
            write!(f, "{b:02x}")?;
        }
        write!(f, ")")
    }
}

/// A record version: a Lamport counter and the node that wrote it. Versions are
/// totally ordered by `(counter, origin)`, so two concurrent writes of one key on
/// different nodes are resolved the same way everywhere (last writer wins, ties
/// broken by node name).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Version {
    /// Lamport counter: larger than every counter the writer had seen.
    pub counter: u64,
    /// The writer.
    pub origin: NodeId,
}

impl Ord for Version {
    fn cmp(&self, other: &Self) -> Ordering {
        self.counter
            .cmp(&other.counter)
            .then_with(|| self.origin.cmp(&other.origin))
    }
}

impl PartialOrd for Version {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// A stored record: a version and a payload, or a tombstone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// Version.
    pub version: Version,
    /// Payload; `None` for a deleted record (tombstone).
    pub value: Option<Vec<u8>>,
}

/// Names one write (key + version): what `sync = "ack"` waits on.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Token {
    /// The key written.
    pub key: RecordKey,
    /// The version written.
    pub version: Version,
}
