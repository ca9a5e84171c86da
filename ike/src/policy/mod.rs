//! The responder's policy decisions as pure functions: proposal parsing and selection
//! (RFC 7296 §2.7, §3.3), traffic selector narrowing (§2.9), identities (§3.5), virtual IP
//! pools (§3.15) and X.509 certificate validation (RFC 5280).
//!
//! Nothing here does I/O or reads a clock: time is passed in, results come back as values,
//! so the state machines in [`crate`] and the gateway can call them from anywhere.

pub mod cert;
pub mod identity;
pub mod pool;
pub mod proposal;
pub mod ts;

#[cfg(test)]
mod strongswan_tests;
