//! Decode and encode errors, and the one mapping from a decode error to what the
//! responder does about it (RFC 7296 §2.5, §2.21, §3.10.1).

use crate::crypto::CryptoError;

use super::registry::{NotifyType, PayloadType};

/// Why an IKE message (or one of its parts) could not be decoded.
///
/// Decoding never panics and never reads outside the datagram: every malformed input
/// ends up as one of these.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// The datagram is shorter than the 28-octet IKE header.
    #[error("datagram of {len} octets is shorter than the 28-octet IKE header")]
    TruncatedHeader {
        /// Datagram length.
        len: usize,
    },
    /// The major version is not 2 (RFC 7296 §2.5). `version` is the whole version octet.
    #[error("unsupported IKE version {major}.{minor}", major = version >> 4, minor = version & 0x0f)]
    UnsupportedMajorVersion {
        /// Major version in the high nibble, minor in the low one.
        version: u8,
    },
    /// The header's Length field disagrees with the datagram. We require equality:
    /// RFC 7296 §3.1 defines Length as the length of the total message, one UDP datagram
    /// carries exactly one message, and octets beyond Length would not be covered by the
    /// SK integrity check, so trailing octets are rejected rather than ignored.
    #[error("header length {header} != datagram length {datagram}")]
    LengthMismatch {
        /// Length field of the header.
        header: u32,
        /// Octets actually received.
        datagram: usize,
    },
    /// A structure ran out of octets while being read.
    #[error("truncated {within}")]
    Truncated {
        /// The structure being read.
        within: &'static str,
    },
    /// A structure had octets left over after its last field.
    #[error("{extra} trailing octets in {within}")]
    TrailingData {
        /// The structure being read.
        within: &'static str,
        /// Octets left over.
        extra: usize,
    },
    /// A payload's length runs past the end of its message (or of the SK plaintext).
    #[error("{payload} payload length {length} runs past the end ({available} octets left)")]
    PayloadLengthPastEnd {
        /// Payload type.
        payload: PayloadType,
        /// Payload Length field.
        length: u16,
        /// Octets left in the chain, including the generic header.
        available: usize,
    },
    /// A payload's length is below the minimum for its type (at least the 4-octet
    /// generic header, so a zero length can never loop).
    #[error("{payload} payload length {length} is below its minimum {minimum}")]
    PayloadTooShort {
        /// Payload type.
        payload: PayloadType,
        /// Payload Length field.
        length: usize,
        /// Minimum for this type.
        minimum: usize,
    },
    /// A substructure (proposal, transform, attribute, selector, CP attribute) has a
    /// length field below its minimum or past its container.
    #[error("bad {within} length {length}")]
    BadSubstructureLength {
        /// The substructure.
        within: &'static str,
        /// Its length field.
        length: usize,
    },
    /// The SK payload is not the last payload of its message (RFC 7296 §3.14).
    #[error("SK payload is not the last payload")]
    SkNotLast,
    /// The SKF payload is not the only payload of its message (RFC 7383 §2.5).
    #[error("SKF payload is not the only payload")]
    SkfNotAlone,
    /// An SK or SKF payload inside an SK payload's plaintext.
    #[error("encrypted payload nested inside an encrypted payload")]
    NestedEncryptedPayload,
    /// A message that should be protected has no SK payload (or has payloads outside it).
    #[error("expected exactly one SK payload, found {found}")]
    ExpectedSk {
        /// The message's first payload type.
        found: PayloadType,
    },
    /// A payload type we do not know, with the critical bit set (RFC 7296 §2.5).
    #[error("unsupported critical payload {payload_type}")]
    UnsupportedCriticalPayload {
        /// The unknown payload type.
        payload_type: PayloadType,
    },
    /// More payloads in one chain than we accept.
    #[error("more than {limit} payloads")]
    TooManyPayloads {
        /// The cap.
        limit: usize,
    },
    /// More proposals in one SA payload than we accept.
    #[error("more than {limit} proposals")]
    TooManyProposals {
        /// The cap.
        limit: usize,
    },
    /// More transforms in one proposal than we accept.
    #[error("more than {limit} transforms in a proposal")]
    TooManyTransforms {
        /// The cap.
        limit: usize,
    },
    /// More attributes in one transform or CP payload than we accept.
    #[error("more than {limit} attributes")]
    TooManyAttributes {
        /// The cap.
        limit: usize,
    },
    /// More traffic selectors in one TS payload than we accept.
    #[error("more than {limit} traffic selectors")]
    TooManySelectors {
        /// The cap.
        limit: usize,
    },
    /// A count field disagrees with the substructures actually present.
    #[error("{within}: count field says {declared}, found {found}")]
    CountMismatch {
        /// The structure.
        within: &'static str,
        /// The count field.
        declared: usize,
        /// What was found.
        found: usize,
    },
    /// A Last Substruc field is wrong (RFC 7296 §3.3.1, §3.3.2).
    #[error("bad last-substructure field {value} in {within}")]
    BadLastSubstruc {
        /// The substructure.
        within: &'static str,
        /// The field.
        value: u8,
    },
    /// A traffic selector is malformed (wrong length for its type).
    #[error("bad traffic selector: {reason}")]
    BadTrafficSelector {
        /// What is wrong.
        reason: &'static str,
    },
    /// A Delete payload whose SPI size, count and length disagree.
    #[error("bad delete payload: {reason}")]
    BadDelete {
        /// What is wrong.
        reason: &'static str,
    },
    /// A nonce outside 16..=256 octets (RFC 7296 §3.9).
    #[error("nonce of {len} octets is outside 16..=256")]
    NonceLength {
        /// Nonce length.
        len: usize,
    },
    /// An SKF payload with fragment number 0, total 0, or number > total (RFC 7383 §2.5).
    #[error("bad fragment number {number} of {total}")]
    BadFragment {
        /// Fragment Number.
        number: u16,
        /// Total Fragments.
        total: u16,
    },
    /// A fragmented message exceeds the reassembly limits (fragment count or size).
    #[error("fragment reassembly limit: {reason}")]
    ReassemblyLimit {
        /// Which limit.
        reason: &'static str,
    },
    /// Notify data of the wrong length or shape for its type.
    #[error("bad notification data for {notify_type} ({len} octets)")]
    BadNotifyData {
        /// The notify type.
        notify_type: NotifyType,
        /// Data length.
        len: usize,
    },
    /// A malformation found by [`super::decrypt_message`] or the
    /// [`super::Reassembler`] in the unprotected framing around SK/SKF, before the
    /// integrity check could run. Always dropped, whatever [`Protection`] the caller
    /// passes: nothing about it is authenticated.
    #[error("{0} (before the integrity check)")]
    Unverified(Box<Self>),
    /// The SK/SKF payload failed to decrypt or verify.
    #[error("SK payload: {0}")]
    Crypto(#[from] CryptoError),
}

/// Whether the octets that failed to decode were integrity-protected: RFC 7296 §3.10.1
/// allows INVALID_SYNTAX only "in an encrypted packet if the Message ID and cryptographic
/// checksum were valid", so the same syntax error is answered inside an IKE SA and dropped
/// outside one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protection {
    /// Plain octets: an IKE_SA_INIT message, or the outer layer of any message.
    Unprotected,
    /// The decrypted plaintext of an SK/SKF payload whose ICV verified.
    IntegrityVerified,
}

/// What the responder does about a request that failed to decode.
///
/// Nothing is ever sent in reply to a response (RFC 7296 §2.21.1): that check is the
/// caller's, as it depends on the Response flag of a header that may itself be the
/// problem.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ResponderAction {
    /// Drop the datagram silently.
    Drop,
    /// Answer with a Notify of this type and data.
    Notify(NotifyType, Vec<u8>),
}

impl DecodeError {
    /// The underlying error, without the [`DecodeError::Unverified`] wrapper.
    pub fn root(&self) -> &Self {
        match self {
            Self::Unverified(e) => e.root(),
            e => e,
        }
    }

    /// Marks an error found before the integrity check. Header-level errors keep their
    /// own variant (their mapping does not depend on protection).
    pub(crate) fn unverified(self) -> Self {
        match self {
            Self::TruncatedHeader { .. }
            | Self::UnsupportedMajorVersion { .. }
            | Self::LengthMismatch { .. }
            | Self::ReassemblyLimit { .. }
            | Self::Unverified(_)
            | Self::Crypto(_) => self,
            e => Self::Unverified(Box::new(e)),
        }
    }

    /// The one mapping from a decode error to the responder's reaction.
    ///
    /// - Unknown critical payload: UNSUPPORTED_CRITICAL_PAYLOAD with the payload type as
    ///   its one octet of data (RFC 7296 §2.5, §3.10.1), protected or not.
    /// - Major version above 2: INVALID_MAJOR_VERSION, unauthenticated, no data (§2.5; the
    ///   version we speak goes in the reply header). A lower major version (IKEv1) is
    ///   dropped.
    /// - Reassembly limits exceeded: drop (the peer will retransmit or give up; a
    ///   resource limit of ours is not the peer's syntax error).
    /// - Anything found before the integrity check of an SK/SKF message
    ///   ([`DecodeError::Unverified`]): drop.
    /// - Failed integrity check: drop (§2.21.2: forged or corrupted, never answered).
    /// - Any other malformation: INVALID_SYNTAX if it was found in integrity-verified
    ///   plaintext, else drop (§3.10.1 forbids INVALID_SYNTAX in unprotected replies, and
    ///   answering forged datagrams is a DoS amplifier).
    pub fn notify(&self, protection: Protection) -> ResponderAction {
        match self {
            Self::UnsupportedCriticalPayload { payload_type } => ResponderAction::Notify(
                NotifyType::UNSUPPORTED_CRITICAL_PAYLOAD,
                vec![payload_type.0],
            ),
            Self::UnsupportedMajorVersion { version } if version >> 4 > 2 => {
                ResponderAction::Notify(NotifyType::INVALID_MAJOR_VERSION, Vec::new())
            }
            Self::UnsupportedMajorVersion { .. }
            | Self::TruncatedHeader { .. }
            | Self::LengthMismatch { .. }
            | Self::ReassemblyLimit { .. }
            | Self::Unverified(_)
            | Self::Crypto(_) => ResponderAction::Drop,
            _ => match protection {
                Protection::IntegrityVerified => {
                    ResponderAction::Notify(NotifyType::INVALID_SYNTAX, Vec::new())
                }
                Protection::Unprotected => ResponderAction::Drop,
            },
        }
    }
}

/// Why a message could not be encoded.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EncodeError {
    /// A payload (or substructure) is longer than its 16-bit length field allows.
    #[error("{payload} payload is too long for its 16-bit length field")]
    PayloadTooLong {
        /// The payload type.
        payload: PayloadType,
    },
    /// A count (proposals' transforms, selectors, SPIs) does not fit its field.
    #[error("too many items for the count field of {within}")]
    CountTooLarge {
        /// The structure.
        within: &'static str,
    },
    /// A field value is not representable (e.g. an SPI longer than 255 octets, a TS whose
    /// addresses are of different families).
    #[error("invalid {within}: {reason}")]
    Invalid {
        /// The structure.
        within: &'static str,
        /// What is wrong.
        reason: &'static str,
    },
    /// SK or SKF not last / not alone, or nested inside an SK plaintext.
    #[error("SK/SKF payload in an invalid position")]
    MisplacedEncryptedPayload,
    /// The whole message exceeds the 32-bit length field.
    #[error("message too long")]
    MessageTooLong,
    /// `max_datagram_len` cannot hold even one fragment carrying one octet.
    #[error("maximum datagram length {max_datagram_len} is too small for a fragment")]
    DatagramTooSmall {
        /// The limit given.
        max_datagram_len: usize,
    },
    /// The message would need more fragments than allowed.
    #[error("message needs {needed} fragments, more than {limit}")]
    TooManyFragments {
        /// Fragments needed.
        needed: usize,
        /// The cap.
        limit: usize,
    },
    /// The cipher produced a different length than it announced with `sealed_len`.
    #[error("cipher sealed {got} octets, announced {expected}")]
    CipherLengthMismatch {
        /// `sealed_len`.
        expected: usize,
        /// Actually appended.
        got: usize,
    },
    /// Sealing failed.
    #[error("seal: {0}")]
    Crypto(#[from] CryptoError),
}
