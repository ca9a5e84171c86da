//! Real peers against baton: network namespaces and veth links with per-test names, a
//! NAT namespace (nftables masquerade), strongSwan charon instances (own
//! strongswan.conf, vici socket and `/run` each) driven by `swanctl` and read back over
//! vici, and arbitrary daemons (the responder under test) started inside a namespace.
//!
//! Everything is cleaned up on drop, also when a test panics; a failing test prints the
//! tails of the logs involved and keeps their directory. Needs root and the Debian
//! packages listed in `scripts/setup`; [`check_prerequisites`] says what is missing.
//!
//! A test against a responder looks like:
//!
//! ```no_run
//! # fn main() -> Result<(), interop::Error> {
//! use interop::{Topology, Charon, Daemon, PskConnection};
//! let topo = Topology::direct()?;
//! // the responder under test (here: any program) in the gateway namespace
//! let dir = interop::WorkDir::new("responder")?;
//! let _responder = Daemon::spawn(&topo.gateway, dir.path(), "batond", "batond", &["--config", "gw.toml"])?;
//! let client = Charon::start(&topo.client, "client")?;
//! client.load(&PskConnection::client(topo.gateway_addr).to_swanctl_conf())?;
//! client.initiate("home", "net")?;
//! let sas = client.list_sas()?;
//! assert_eq!(sas.first().map(|s| s.state.as_str()), Some("ESTABLISHED"));
//! # Ok(()) }
//! ```

pub mod capture;
pub mod checks;
pub mod cluster;
pub mod netns;
pub mod pki;
pub mod process;
pub mod responder;
pub mod strongswan;
pub mod topology;
pub mod vici;

pub use capture::{Capture, IkeDatagram};
pub use cluster::SharedVip;
pub use netns::{Netns, veth};
pub use pki::TestPki;
pub use process::{Daemon, WorkDir, udp_port_bound, wait_for};
pub use responder::{Batond, Responder, parse_ikectl_list_sas};
pub use strongswan::{Charon, KernelInterface, PskConnection, PubkeyAuth};
pub use topology::{Topology, check_prerequisites};
pub use vici::{ChildSaInfo, IkeSaInfo};

/// What went wrong, in words meant for a test's failure message (the command, its
/// output, and log tails where they help).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error(String);

impl Error {
    /// An error with this message.
    pub fn new(msg: impl Into<String>) -> Self {
        Self(msg.into())
    }
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Error {}
