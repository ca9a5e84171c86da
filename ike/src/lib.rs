//! IKEv2 (RFC 7296): wire format, crypto suites, and the sans-IO protocol core.
//!
//! Nothing in this crate opens a socket, reads a clock or talks to the kernel:
//! time comes in as an argument, effects go out as values.

pub mod config;
pub mod crypto;
pub mod policy;
pub mod wire;

pub mod endpoint;
pub mod export;
pub mod info;
pub mod initiator;
mod responder;
pub mod sa;

/// Largest IKE datagram we send before fragmenting, when the connection does not say
/// (RFC 7383 §2.5.1 suggests staying below the path MTU; 1280 fits IPv6's minimum).
pub const DEFAULT_FRAGMENT_SIZE: usize = 1280;
