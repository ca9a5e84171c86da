//! IKEv2 message encoding and decoding (RFC 7296 §3, RFC 7383).
//!
//! [`registry`] holds the IANA registries as newtypes, [`payload`] the decoded form of
//! every payload.

pub mod payload;
pub mod registry;

pub use payload::*;
pub use registry::*;
