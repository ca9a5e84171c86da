//! The gateway: `batond` (the IKEv2 daemon) and `ikectl` (its control CLI).
//!
//! Everything with a socket, a clock, a file or a signal lives here; the protocol itself
//! is the sans-IO [`ike`] crate, which this crate drives (DESIGN §1).

pub mod config;
pub mod control;
pub mod daemon;
pub mod keylog;
pub mod metrics;
