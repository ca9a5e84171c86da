//! IKEv2 (RFC 7296): wire format, crypto suites, and the sans-IO protocol core.
//!
//! Nothing in this crate opens a socket, reads a clock or talks to the kernel:
//! time comes in as an argument, effects go out as values.

pub mod config;
pub mod crypto;
pub mod policy;
pub mod wire;
