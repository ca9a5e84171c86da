//! Node identities.

use std::fmt;
use std::sync::Arc;

/// Longest node name accepted, in bytes. Names travel in every heartbeat and every
/// replication record, so they are kept short.
pub const MAX_NODE_NAME: usize = 64;

/// The name of a cluster node, as written in the configuration (`node = "gw1"`).
///
/// Cheap to clone (a shared string). Ordering is the byte order of the name; it is
/// used for deterministic tie-breaks (which node dials, which record wins a tie).
/// A valid name is 1 to [`MAX_NODE_NAME`] bytes of ASCII letters, digits, `.`, `-`, `_`.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NodeId(Arc<str>);

/// A node name that is empty, too long or has a character outside `[A-Za-z0-9._-]`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid node name {0:?}: use 1 to 64 characters out of A-Z a-z 0-9 . - _")]
pub struct InvalidNodeId(pub String);

impl NodeId {
    /// Checks and wraps a node name.
    pub fn new(name: &str) -> Result<Self, InvalidNodeId> {
        if Self::is_valid(name.as_bytes()) {
            Ok(Self(Arc::from(name)))
        } else {
            Err(InvalidNodeId(name.to_owned()))
        }
    }

    /// Parses a name received from the network.
    pub fn from_wire(bytes: &[u8]) -> Option<Self> {
        if Self::is_valid(bytes) {
            std::str::from_utf8(bytes).ok().map(|s| Self(Arc::from(s)))
        } else {
            None
        }
    }

    fn is_valid(b: &[u8]) -> bool {
        !b.is_empty()
            && b.len() <= MAX_NODE_NAME
            && b.iter()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'-' | b'_'))
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "NodeId({})", &self.0)
    }
}

impl std::str::FromStr for NodeId {
    type Err = InvalidNodeId;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::new(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation() {
        assert!(NodeId::new("gw1").is_ok());
        assert!(NodeId::new("gw-1.a_b").is_ok());
        assert!(NodeId::new("").is_err());
        assert!(NodeId::new("gw 1").is_err());
        assert!(NodeId::new(&"a".repeat(65)).is_err());
        assert!(NodeId::from_wire(&[0xff, 0x41]).is_none());
        assert!(NodeId::new("a").unwrap() < NodeId::new("b").unwrap());
    }
}
