//! The decoded (owned) form of every IKEv2 payload (RFC 7296 §3.2–§3.16, RFC 7383 §2.5).
//!
//! These are plain data: the codec in [`super::codec`] turns bytes into them and back.
//! Encoding a decoded message reproduces the original bytes exactly, except for the
//! critical bit of known payloads, which RFC 7296 §2.5 tells senders to clear.

use std::net::IpAddr;

use super::registry::*;

/// The IKE SPI (8 octets, RFC 7296 §3.1). Zero means "not yet known" for the responder SPI.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct IkeSpi(pub u64);

impl IkeSpi {
    /// The unset SPI (SPIr of an IKE_SA_INIT request).
    pub const ZERO: Self = Self(0);

    /// Network-order bytes.
    pub fn to_bytes(self) -> [u8; 8] {
        self.0.to_be_bytes()
    }

    /// From network-order bytes.
    pub fn from_bytes(b: [u8; 8]) -> Self {
        Self(u64::from_be_bytes(b))
    }
}

impl core::fmt::Debug for IkeSpi {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

impl core::fmt::Display for IkeSpi {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

/// Header flags (RFC 7296 §3.1).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default, Debug)]
pub struct Flags(pub u8);

impl Flags {
    /// Set in messages sent by the original initiator of the IKE SA.
    pub const INITIATOR: u8 = 0x08;
    /// Set if the transmitter can speak a higher major version.
    pub const VERSION: u8 = 0x10;
    /// Set in responses.
    pub const RESPONSE: u8 = 0x20;

    /// Is the Initiator bit set?
    pub fn initiator(self) -> bool {
        self.0 & Self::INITIATOR != 0
    }

    /// Is the Response bit set?
    pub fn response(self) -> bool {
        self.0 & Self::RESPONSE != 0
    }
}

/// The fixed IKE header (RFC 7296 §3.1).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Header {
    /// IKE SA Initiator's SPI.
    pub spi_i: IkeSpi,
    /// IKE SA Responder's SPI.
    pub spi_r: IkeSpi,
    /// Type of the first payload.
    pub next_payload: PayloadType,
    /// Major version (2) and minor version (0), as one octet.
    pub version: u8,
    /// Exchange type.
    pub exchange: ExchangeType,
    /// Flags.
    pub flags: Flags,
    /// Message ID.
    pub message_id: u32,
    /// Length of the whole message including the header.
    pub length: u32,
}

impl Header {
    /// Length of the fixed header on the wire.
    pub const LEN: usize = 28;
    /// Major version 2, minor version 0.
    pub const VERSION_2_0: u8 = 0x20;
}

/// A transform attribute (RFC 7296 §3.3.5): TV when the AF bit is set, TLV otherwise.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum AttributeValue {
    /// AF=1, a two-octet value in place of the length.
    Tv(u16),
    /// AF=0, a variable-length value.
    Tlv(Vec<u8>),
}

/// A transform attribute.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct TransformAttribute {
    /// Attribute type (without the AF bit).
    pub attr_type: TransformAttributeType,
    /// Value.
    pub value: AttributeValue,
}

/// A transform substructure (RFC 7296 §3.3.2).
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Transform {
    /// Transform type.
    pub transform_type: TransformType,
    /// Transform ID, to be read in the registry of `transform_type`.
    pub id: u16,
    /// Attributes, in wire order.
    pub attributes: Vec<TransformAttribute>,
}

impl Transform {
    /// The Key Length attribute in bits, if present as TV.
    pub fn key_length(&self) -> Option<u16> {
        self.attributes
            .iter()
            .find_map(|a| match (a.attr_type, &a.value) {
                (TransformAttributeType::KEY_LENGTH, AttributeValue::Tv(v)) => Some(*v),
                _ => None,
            })
    }
}

/// A proposal substructure (RFC 7296 §3.3.1).
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Proposal {
    /// Proposal number (1 for the first, incremented by one).
    pub number: u8,
    /// Protocol the proposal is for.
    pub protocol: ProtocolId,
    /// SPI: empty in the initial IKE_SA_INIT, 8 octets for IKE rekey, 4 for ESP/AH.
    pub spi: Vec<u8>,
    /// Transforms, in wire order.
    pub transforms: Vec<Transform>,
}

/// Security Association payload (RFC 7296 §3.3).
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct SaPayload {
    /// Proposals, in wire order.
    pub proposals: Vec<Proposal>,
}

/// Key Exchange payload (RFC 7296 §3.4).
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct KePayload {
    /// The group the data belongs to.
    pub group: KeGroup,
    /// The public value.
    pub data: Vec<u8>,
}

/// Identification payload, IDi or IDr (RFC 7296 §3.5).
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct IdPayload {
    /// ID type.
    pub id_type: IdType,
    /// Identification data.
    pub data: Vec<u8>,
}

impl IdPayload {
    /// The payload body (ID type, 3 reserved octets, data): what RFC 7296 §2.15 calls IDx'
    /// and feeds to the PRF for AUTH.
    pub fn body(&self) -> Vec<u8> {
        let mut b = Vec::with_capacity(4 + self.data.len());
        b.extend_from_slice(&[self.id_type.0, 0, 0, 0]);
        b.extend_from_slice(&self.data);
        b
    }
}

/// Certificate payload (RFC 7296 §3.6).
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct CertPayload {
    /// Encoding.
    pub encoding: CertEncoding,
    /// Certificate data.
    pub data: Vec<u8>,
}

/// Certificate Request payload (RFC 7296 §3.7).
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct CertReqPayload {
    /// Encoding.
    pub encoding: CertEncoding,
    /// Certification authority: for X.509, concatenated SHA-1 hashes of CA public keys.
    pub data: Vec<u8>,
}

/// Authentication payload (RFC 7296 §3.8).
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct AuthPayload {
    /// Method.
    pub method: AuthMethod,
    /// Authentication data.
    pub data: Vec<u8>,
}

/// Nonce payload (RFC 7296 §3.9); 16 to 256 octets.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct NoncePayload {
    /// Nonce data.
    pub data: Vec<u8>,
}

/// Notify payload (RFC 7296 §3.10).
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct NotifyPayload {
    /// Protocol ID ([`ProtocolId::NONE`] when not about an SA).
    pub protocol: ProtocolId,
    /// SPI (empty when SPI Size is 0).
    pub spi: Vec<u8>,
    /// Notify Message Type.
    pub notify_type: NotifyType,
    /// Notification data.
    pub data: Vec<u8>,
}

/// Delete payload (RFC 7296 §3.11).
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct DeletePayload {
    /// Protocol of the SAs to delete.
    pub protocol: ProtocolId,
    /// SPI size: 0 for IKE, 4 for ESP and AH.
    pub spi_size: u8,
    /// SPIs, each `spi_size` octets.
    pub spis: Vec<Vec<u8>>,
}

/// Vendor ID payload (RFC 7296 §3.12).
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct VendorIdPayload {
    /// Vendor ID.
    pub data: Vec<u8>,
}

/// A traffic selector (RFC 7296 §3.13.1).
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum TrafficSelector {
    /// TS_IPV4_ADDR_RANGE or TS_IPV6_ADDR_RANGE.
    Ip(IpTrafficSelector),
    /// A TS type we do not know, kept so it round-trips.
    Unknown {
        /// TS type.
        ts_type: TsType,
        /// The selector body after the 4-octet type/length header.
        data: Vec<u8>,
    },
}

/// An address-range traffic selector. Both addresses have the same family.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct IpTrafficSelector {
    /// IP protocol (0 = any).
    pub ip_protocol: u8,
    /// First port (0 = any, with `end_port` 65535).
    pub start_port: u16,
    /// Last port.
    pub end_port: u16,
    /// First address.
    pub start_addr: IpAddr,
    /// Last address.
    pub end_addr: IpAddr,
}

/// Traffic Selector payload, TSi or TSr (RFC 7296 §3.13).
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct TsPayload {
    /// Selectors, in wire order.
    pub selectors: Vec<TrafficSelector>,
}

/// Encrypted and Authenticated payload (RFC 7296 §3.14), still encrypted.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct SkPayload {
    /// Type of the first payload inside.
    pub first_inner: PayloadType,
    /// IV, ciphertext (incl. padding and pad length) and ICV, as on the wire.
    pub data: Vec<u8>,
}

/// Encrypted and Authenticated Fragment payload (RFC 7383 §2.5), still encrypted.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct SkfPayload {
    /// Type of the first inner payload in fragment 1; [`PayloadType::NONE`] in the others.
    pub first_inner: PayloadType,
    /// Fragment number, starting at 1.
    pub fragment_number: u16,
    /// Total number of fragments.
    pub total_fragments: u16,
    /// IV, ciphertext and ICV.
    pub data: Vec<u8>,
}

/// A Configuration payload attribute (RFC 7296 §3.15.1).
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct CfgAttribute {
    /// Attribute type (15 bits; the reserved top bit is cleared).
    pub attr_type: CfgAttrType,
    /// Value (may be empty in a request).
    pub value: Vec<u8>,
}

/// Configuration payload (RFC 7296 §3.15).
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct CpPayload {
    /// CFG type.
    pub cfg_type: CfgType,
    /// Attributes, in wire order.
    pub attributes: Vec<CfgAttribute>,
}

/// EAP payload (RFC 7296 §3.16): the EAP message, uninterpreted.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct EapPayload {
    /// The EAP message (Code, Identifier, Length, Type, Type data).
    pub data: Vec<u8>,
}

/// One payload of a message's payload chain.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum Payload {
    /// SA.
    Sa(SaPayload),
    /// KE.
    Ke(KePayload),
    /// IDi.
    IdI(IdPayload),
    /// IDr.
    IdR(IdPayload),
    /// CERT.
    Cert(CertPayload),
    /// CERTREQ.
    CertReq(CertReqPayload),
    /// AUTH.
    Auth(AuthPayload),
    /// Ni, Nr.
    Nonce(NoncePayload),
    /// N.
    Notify(NotifyPayload),
    /// D.
    Delete(DeletePayload),
    /// V.
    VendorId(VendorIdPayload),
    /// TSi.
    TsI(TsPayload),
    /// TSr.
    TsR(TsPayload),
    /// SK (must be the last payload of its chain).
    Sk(SkPayload),
    /// SKF (must be the only payload of its message).
    Skf(SkfPayload),
    /// CP.
    Cp(CpPayload),
    /// EAP.
    Eap(EapPayload),
    /// A payload type we do not implement, kept so it round-trips. If `critical` is set
    /// the whole message must be rejected with UNSUPPORTED_CRITICAL_PAYLOAD (RFC 7296 §2.5);
    /// the decoder reports that as an error, so decoded unknown payloads are non-critical.
    Unknown {
        /// Payload type.
        payload_type: PayloadType,
        /// Critical bit as received.
        critical: bool,
        /// Payload body after the generic header.
        body: Vec<u8>,
    },
}

impl Payload {
    /// The payload type of this payload.
    pub fn payload_type(&self) -> PayloadType {
        match self {
            Self::Sa(_) => PayloadType::SA,
            Self::Ke(_) => PayloadType::KE,
            Self::IdI(_) => PayloadType::IDI,
            Self::IdR(_) => PayloadType::IDR,
            Self::Cert(_) => PayloadType::CERT,
            Self::CertReq(_) => PayloadType::CERTREQ,
            Self::Auth(_) => PayloadType::AUTH,
            Self::Nonce(_) => PayloadType::NONCE,
            Self::Notify(_) => PayloadType::NOTIFY,
            Self::Delete(_) => PayloadType::DELETE,
            Self::VendorId(_) => PayloadType::VENDOR_ID,
            Self::TsI(_) => PayloadType::TSI,
            Self::TsR(_) => PayloadType::TSR,
            Self::Sk(_) => PayloadType::SK,
            Self::Skf(_) => PayloadType::SKF,
            Self::Cp(_) => PayloadType::CP,
            Self::Eap(_) => PayloadType::EAP,
            Self::Unknown { payload_type, .. } => *payload_type,
        }
    }
}

/// A whole IKE message: header plus the (outer) payload chain.
///
/// For an encrypted message the chain ends with [`Payload::Sk`] (or is a single
/// [`Payload::Skf`]); the inner payloads are decoded separately after decryption.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Message {
    /// The header as received (its `length` and `next_payload` are recomputed on encode).
    pub header: Header,
    /// The payload chain, in wire order.
    pub payloads: Vec<Payload>,
}

/// The data of an IKEV2_MESSAGE_ID_SYNC notify (RFC 6311 §6.3): 12 octets.
///
/// Both Message IDs are relative to the sender of the notify: a request carries
/// (M1, P1), the response (P2, M2).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct MessageIdSyncData {
    /// Nonce Data, echoed unchanged in the response.
    pub nonce: u32,
    /// EXPECTED_SEND_REQ_MESSAGE_ID.
    pub expected_send_req_message_id: u32,
    /// EXPECTED_RECV_REQ_MESSAGE_ID.
    pub expected_recv_req_message_id: u32,
}

/// The data of an IPSEC_REPLAY_COUNTER_SYNC notify (RFC 6311 §6.4).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct ReplayCounterSyncData {
    /// Incoming IPsec SA delta value.
    pub delta: u64,
    /// Whether the Child SAs use ESN (8 octets on the wire) or not (4 octets).
    pub esn: bool,
}
