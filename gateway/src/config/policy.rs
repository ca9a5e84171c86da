//! Proposal strings (strongSwan syntax) and identities, parsed by `ike::policy`; these
//! wrappers only turn its errors into the text of a configuration error.

use ike::config::{EspProposalConfig, Identity, IdentityPattern, IkeProposalConfig};

/// An IKE proposal such as `aes128gcm16-prfsha256-x25519`.
pub fn parse_ike_proposal(s: &str) -> Result<IkeProposalConfig, String> {
    ike::policy::proposal::parse_ike_proposal(s).map_err(|e| e.to_string())
}

/// An ESP proposal such as `aes128gcm16` or `aes256-sha256-modp2048-esn`.
pub fn parse_esp_proposal(s: &str) -> Result<EspProposalConfig, String> {
    ike::policy::proposal::parse_esp_proposal(s).map_err(|e| e.to_string())
}

/// An exact identity (RFC 7296 §3.5): FQDN, email, IP address, DN, `keyid:#HEX`.
pub fn parse_identity(s: &str) -> Result<Identity, String> {
    Identity::parse(s).map_err(|e| e.to_string())
}

/// A remote identity: `*`, a glob, or an exact identity.
pub fn parse_identity_pattern(s: &str) -> Result<IdentityPattern, String> {
    IdentityPattern::parse(s).map_err(|e| e.to_string())
}
