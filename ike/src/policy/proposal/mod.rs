//! IKE and ESP proposals: strongSwan's proposal syntax (`aes128gcm16-prfsha256-x25519`),
//! the responder's selection (RFC 7296 §2.7, §3.3.6) and the initiator's side (building
//! SA payloads, checking the responder's choice).
//!
//! Selection follows *our* preference order: for each configured proposal, in order, the
//! first of the peer's proposals that can be satisfied wins, and within it each transform
//! type takes the first of our algorithms the peer offered. The chosen proposal is
//! returned exactly as it must be echoed (the peer's proposal number, SPI, one transform
//! of each type with its attributes).

mod initiator;
mod parse;
mod select;
#[cfg(test)]
mod tests;

pub use initiator::{accept_child_response, accept_ike_response, esp_sa_payload, ike_sa_payload};
pub use parse::{ProposalError, parse_esp_proposal, parse_ike_proposal};
pub use select::{select_child, select_ike};

use crate::config::EncrAlg;
use crate::wire::payload::{NotifyPayload, Proposal, SaPayload, Transform};
use crate::wire::registry::{
    EncrId, EsnId, IntegId, KeGroup, NotifyType, PrfId, ProtocolId, TransformType,
};

/// The algorithms of a negotiated IKE SA.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct IkeSuite {
    /// Encryption algorithm with its key size.
    pub encr: EncrAlg,
    /// Integrity algorithm; [`IntegId::NONE`] for AEAD encryption.
    pub integ: IntegId,
    /// Pseudorandom function.
    pub prf: PrfId,
    /// Key exchange method.
    pub ke: KeGroup,
}

/// The algorithms of a negotiated Child SA (ESP).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct ChildSuite {
    /// Encryption algorithm with its key size.
    pub encr: EncrAlg,
    /// Integrity algorithm; [`IntegId::NONE`] for AEAD encryption.
    pub integ: IntegId,
    /// Key exchange method when the exchange carries one (PFS), `None` otherwise.
    pub ke: Option<KeGroup>,
    /// Whether extended sequence numbers are used (RFC 4303 §2.2.1).
    pub esn: bool,
}

/// Why no proposal could be agreed on.
#[derive(Clone, PartialEq, Eq, Debug, thiserror::Error)]
pub enum SelectError {
    /// None of the peer's proposals is acceptable (NO_PROPOSAL_CHOSEN, RFC 7296 §3.10.1).
    #[error("no proposal chosen: none of the peer's proposals matches the configured ones")]
    NoProposalChosen,
    /// A proposal is acceptable, but with a different key exchange method than the one the
    /// peer's KE payload used; the peer must retry with this one (RFC 7296 §1.2, §3.10.1).
    #[error("the peer's KE payload uses another group than the proposal we choose; asking for {0}")]
    InvalidKe(KeGroup),
    /// The responder's answer to our SA payload is not a valid choice among what we sent.
    #[error("invalid proposal in the response: {0}")]
    BadResponse(String),
}

impl SelectError {
    /// The notify type to send (RFC 7296 §3.10.1). A bad response has no notify of its
    /// own; NO_PROPOSAL_CHOSEN is what an initiator reports if it reports anything.
    pub fn notify_type(&self) -> NotifyType {
        match self {
            Self::NoProposalChosen | Self::BadResponse(_) => NotifyType::NO_PROPOSAL_CHOSEN,
            Self::InvalidKe(_) => NotifyType::INVALID_KE_PAYLOAD,
        }
    }

    /// The notification data: for INVALID_KE_PAYLOAD the accepted group as two octets in
    /// network order (RFC 7296 §3.10.1), empty otherwise.
    pub fn notify_data(&self) -> Vec<u8> {
        match self {
            Self::InvalidKe(g) => g.0.to_be_bytes().to_vec(),
            Self::NoProposalChosen | Self::BadResponse(_) => Vec::new(),
        }
    }

    /// The Notify payload to put in the error response (protocol NONE, no SPI).
    pub fn to_notify(&self) -> NotifyPayload {
        NotifyPayload {
            protocol: ProtocolId::NONE,
            spi: Vec::new(),
            notify_type: self.notify_type(),
            data: self.notify_data(),
        }
    }
}

/// The ESP SPI of a proposal, if it has exactly 4 octets (RFC 7296 §3.3.1).
pub fn esp_spi(proposal: &Proposal) -> Option<u32> {
    let b: [u8; 4] = proposal.spi.as_slice().try_into().ok()?;
    Some(u32::from_be_bytes(b))
}

/// One line describing an SA payload for logs, e.g.
/// `#1 IKE: AES_GCM_16_128/PRF_HMAC_SHA2_256/CURVE25519, #2 IKE: AES_CBC_256/...`, so an
/// operator can see what a peer offered when nothing matched.
pub fn sa_to_string(sa: &SaPayload) -> String {
    let mut out = String::new();
    for (i, p) in sa.proposals.iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        out.push_str(&format!("#{} {}:", p.number, p.protocol));
        for (j, t) in p.transforms.iter().enumerate() {
            out.push(if j == 0 { ' ' } else { '/' });
            out.push_str(&transform_to_string(t));
        }
    }
    out
}

/// One transform in registry names, with the key length appended (`AES_CBC_256`).
fn transform_to_string(t: &Transform) -> String {
    let name = match t.transform_type {
        TransformType::ENCR => format!("{}", EncrId(t.id)),
        TransformType::PRF => format!("PRF_{}", PrfId(t.id)),
        TransformType::INTEG => format!("{}", IntegId(t.id)),
        TransformType::KE => format!("{}", KeGroup(t.id)),
        TransformType::ESN => format!("{}", EsnId(t.id)),
        other => format!("{other}:{}", t.id),
    };
    match t.key_length() {
        Some(bits) => format!("{name}_{bits}"),
        None => name,
    }
}
