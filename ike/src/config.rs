//! Responder configuration as the protocol core sees it: already parsed and validated.
//!
//! The gateway turns its TOML (DESIGN §5) into these types; nothing here reads a file.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use crate::crypto::{CryptoError, SecretBytes};
use crate::wire::registry::{EncrId, EsnId, HashAlgorithm, IdType, IntegId, KeGroup, PrfId};

/// Our private key, as the responder uses it for IKE_AUTH (RFC 7296 §2.15, RFC 7427).
/// Implemented over a constant-time signer (never the `rsa` crate).
pub trait LocalSigner: Send + Sync + core::fmt::Debug {
    /// Signs `octets` with `hash` (RSASSA-PKCS1-v1_5) and returns the raw signature.
    fn sign(&self, hash: HashAlgorithm, octets: &[u8]) -> Result<Vec<u8>, CryptoError>;
}

/// An encryption algorithm with its key size in bits (0 when the transform has no
/// Key Length attribute, as for ChaCha20-Poly1305).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct EncrAlg {
    /// Transform ID.
    pub id: EncrId,
    /// Key Length attribute in bits, 0 if none is sent.
    pub key_bits: u16,
}

impl EncrAlg {
    /// Whether this is a combined-mode (AEAD) algorithm that takes no integrity transform.
    pub fn is_aead(self) -> bool {
        matches!(
            self.id,
            EncrId::AES_GCM_8 | EncrId::AES_GCM_12 | EncrId::AES_GCM_16 | EncrId::CHACHA20_POLY1305
        ) || matches!(
            self.id,
            EncrId::AES_CCM_8 | EncrId::AES_CCM_12 | EncrId::AES_CCM_16
        )
    }
}

/// One configured IKE proposal (strongSwan syntax `aes128gcm16-prfsha256-x25519`): every
/// algorithm listed for a transform type is acceptable, in the order given.
#[derive(Clone, PartialEq, Eq, Debug, Default)]
pub struct IkeProposalConfig {
    /// Encryption algorithms.
    pub encr: Vec<EncrAlg>,
    /// Integrity algorithms (empty for AEAD-only proposals).
    pub integ: Vec<IntegId>,
    /// PRFs.
    pub prf: Vec<PrfId>,
    /// Key exchange methods.
    pub ke: Vec<KeGroup>,
}

/// One configured ESP proposal (strongSwan syntax `aes128gcm16`, `aes256-sha256-modp2048`,
/// optional `-esn`/`-noesn`); `ke` non-empty means PFS is required on rekey.
#[derive(Clone, PartialEq, Eq, Debug, Default)]
pub struct EspProposalConfig {
    /// Encryption algorithms.
    pub encr: Vec<EncrAlg>,
    /// Integrity algorithms (empty for AEAD).
    pub integ: Vec<IntegId>,
    /// Key exchange methods for PFS (empty: no PFS).
    pub ke: Vec<KeGroup>,
    /// ESN choices; empty means "no ESN" only.
    pub esn: Vec<EsnId>,
}

/// An IKE identity (RFC 7296 §3.5) as configured.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct Identity {
    /// ID type.
    pub id_type: IdType,
    /// Identification data as it goes on the wire.
    pub data: Vec<u8>,
}

/// A remote identity to accept: an exact identity, or a pattern where `*` matches any
/// run of characters in the identity's text form (`*` alone matches anyone).
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum IdentityPattern {
    /// Any identity.
    Any,
    /// Exactly this identity.
    Exact(Identity),
    /// A glob over the identity's text form, e.g. `*@example.com`.
    Glob(String),
}

/// How we authenticate ourselves.
#[derive(Clone, Debug)]
pub enum LocalAuth {
    /// Pre-shared key, looked up in the secrets by (local id, remote id).
    Psk,
    /// RSA signature with our certificate chain (end entity first, DER) and key.
    Pubkey {
        /// Certificate chain, end entity first, DER.
        cert_chain: Vec<Vec<u8>>,
        /// Private key (constant-time signing).
        key: Arc<dyn LocalSigner>,
    },
}

/// How the peer must authenticate.
#[derive(Clone, Debug)]
pub enum RemoteAuth {
    /// Pre-shared key.
    Psk,
    /// A certificate issued (directly or through intermediates the peer sends) by one of
    /// these CA certificates (DER).
    Pubkey {
        /// Trust anchors, DER.
        cas: Vec<Vec<u8>>,
    },
}

/// A configured traffic selector.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum TsConfig {
    /// A subnet, optionally restricted to an IP protocol and port range.
    Subnet {
        /// Network address.
        addr: IpAddr,
        /// Prefix length.
        prefix_len: u8,
        /// IP protocol, 0 = any.
        ip_protocol: u8,
        /// Port range (0..=65535 for any).
        ports: (u16, u16),
    },
    /// The peer's own address, or its virtual IP when a pool assigns one.
    Dynamic,
}

/// IPsec mode of the Child SAs.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Default)]
pub enum IpsecMode {
    /// Tunnel mode (the default).
    #[default]
    Tunnel,
    /// Transport mode (RFC 7296 §1.3.1 USE_TRANSPORT_MODE).
    Transport,
}

/// One `[[connection]]`.
#[derive(Clone, Debug)]
pub struct ConnectionConfig {
    /// Name, for logs, `ikectl` and replication records.
    pub name: String,
    /// IKE proposals, in our preference order.
    pub ike_proposals: Vec<IkeProposalConfig>,
    /// ESP proposals, in our preference order.
    pub esp_proposals: Vec<EspProposalConfig>,
    /// Our identity.
    pub local_id: Identity,
    /// How we authenticate.
    pub local_auth: LocalAuth,
    /// Who may connect.
    pub remote_id: IdentityPattern,
    /// How they authenticate.
    pub remote_auth: RemoteAuth,
    /// Our side of the Child SA.
    pub local_ts: Vec<TsConfig>,
    /// Their side of the Child SA.
    pub remote_ts: Vec<TsConfig>,
    /// Name of the address pool for virtual IPs, if any.
    pub pool: Option<String>,
    /// Child SA mode.
    pub mode: IpsecMode,
    /// Rekey the IKE SA after this long (we initiate).
    pub rekey_time: Option<Duration>,
    /// Rekey Child SAs after this long (we initiate; the kernel's soft expiry also drives it).
    pub child_rekey_time: Option<Duration>,
    /// Hard lifetime of Child SAs (kernel hard expiry).
    pub child_life_time: Option<Duration>,
    /// Delete the IKE SA after this long without a rekey.
    pub life_time: Option<Duration>,
    /// Send a liveness check after this long without hearing from the peer.
    pub dpd_delay: Option<Duration>,
    /// Offer IKE fragmentation (RFC 7383) when the initiator supports it.
    pub fragmentation: bool,
    /// Largest IKE datagram we send before fragmenting (RFC 7383 §2.5.1).
    pub fragment_size: usize,
}

impl ConnectionConfig {
    /// The remote identity when the connection names exactly one (sent as IDr by an
    /// initiator).
    pub fn remote_id_exact(&self) -> Option<&Identity> {
        match &self.remote_id {
            IdentityPattern::Exact(i) => Some(i),
            _ => None,
        }
    }
}

/// A pre-shared key for a set of identities (`[[secret]]`): it applies when both the
/// local and the remote identity are in `ids` (or `ids` holds only one of them).
#[derive(Clone, Debug)]
pub struct PskEntry {
    /// Identities this key is for.
    pub ids: Vec<Identity>,
    /// The key.
    pub psk: SecretBytes,
}

/// An address pool for virtual IPs (`[pool.NAME]`).
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct PoolConfig {
    /// Name.
    pub name: String,
    /// First address handed out.
    pub first: IpAddr,
    /// Last address handed out.
    pub last: IpAddr,
    /// Prefix length of the pool's network (for INTERNAL_IP4_NETMASK).
    pub prefix_len: u8,
    /// DNS servers sent with the address.
    pub dns: Vec<IpAddr>,
}
