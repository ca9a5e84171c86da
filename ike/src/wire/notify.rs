//! Typed notification data for the notifies the gateway acts on, and helpers to find
//! notifies in a chain. Unknown notify types stay raw in [`NotifyPayload`] and round-trip.

#![deny(clippy::indexing_slicing)]

use super::codec::Reader;
use super::error::{DecodeError, EncodeError};
use super::payload::*;
use super::registry::*;

/// Length of a NAT_DETECTION_*_IP hash (SHA-1, RFC 7296 §2.23).
pub const NAT_DETECTION_HASH_LEN: usize = 20;
/// Longest COOKIE accepted or sent (RFC 7296 §2.6: 1 to 64 octets).
pub const MAX_COOKIE_LEN: usize = 64;

impl NotifyPayload {
    /// A notify that is not about an SA (Protocol ID 0, no SPI).
    pub fn new(notify_type: NotifyType, data: Vec<u8>) -> Self {
        Self {
            protocol: ProtocolId::NONE,
            spi: Vec::new(),
            notify_type,
            data,
        }
    }

    fn bad(&self) -> DecodeError {
        DecodeError::BadNotifyData {
            notify_type: self.notify_type,
            len: self.data.len(),
        }
    }

    fn expect_type(&self, t: NotifyType) -> Result<(), DecodeError> {
        if self.notify_type == t {
            Ok(())
        } else {
            Err(self.bad())
        }
    }

    /// IKEV2_MESSAGE_ID_SYNC (RFC 6311 §6.3).
    pub fn message_id_sync(d: &MessageIdSyncData) -> Self {
        Self::new(NotifyType::IKEV2_MESSAGE_ID_SYNC, d.to_bytes().to_vec())
    }

    /// The data of an IKEV2_MESSAGE_ID_SYNC notify.
    pub fn as_message_id_sync(&self) -> Result<MessageIdSyncData, DecodeError> {
        self.expect_type(NotifyType::IKEV2_MESSAGE_ID_SYNC)?;
        MessageIdSyncData::decode(&self.data)
    }

    /// IPSEC_REPLAY_COUNTER_SYNC (RFC 6311 §6.4).
    pub fn replay_counter_sync(d: &ReplayCounterSyncData) -> Self {
        Self::new(NotifyType::IPSEC_REPLAY_COUNTER_SYNC, d.encode())
    }

    /// The data of an IPSEC_REPLAY_COUNTER_SYNC notify.
    pub fn as_replay_counter_sync(&self) -> Result<ReplayCounterSyncData, DecodeError> {
        self.expect_type(NotifyType::IPSEC_REPLAY_COUNTER_SYNC)?;
        ReplayCounterSyncData::decode(&self.data)
    }

    /// SET_WINDOW_SIZE (RFC 7296 §2.3): 4 octets.
    pub fn set_window_size(window: u32) -> Self {
        Self::new(NotifyType::SET_WINDOW_SIZE, window.to_be_bytes().to_vec())
    }

    /// The window size of a SET_WINDOW_SIZE notify.
    pub fn as_set_window_size(&self) -> Result<u32, DecodeError> {
        self.expect_type(NotifyType::SET_WINDOW_SIZE)?;
        let b = <[u8; 4]>::try_from(self.data.as_slice()).map_err(|_| self.bad())?;
        Ok(u32::from_be_bytes(b))
    }

    /// SIGNATURE_HASH_ALGORITHMS (RFC 7427 §4): a list of 2-octet hash identifiers.
    pub fn signature_hash_algorithms(algs: &[HashAlgorithm]) -> Self {
        let data = algs.iter().flat_map(|a| a.0.to_be_bytes()).collect();
        Self::new(NotifyType::SIGNATURE_HASH_ALGORITHMS, data)
    }

    /// The hash algorithms of a SIGNATURE_HASH_ALGORITHMS notify (odd length is an error).
    pub fn as_signature_hash_algorithms(&self) -> Result<Vec<HashAlgorithm>, DecodeError> {
        self.expect_type(NotifyType::SIGNATURE_HASH_ALGORITHMS)?;
        if !self.data.len().is_multiple_of(2) {
            return Err(self.bad());
        }
        Ok(self
            .data
            .chunks_exact(2)
            .filter_map(|c| <[u8; 2]>::try_from(c).ok())
            .map(|c| HashAlgorithm(u16::from_be_bytes(c)))
            .collect())
    }

    /// NAT_DETECTION_SOURCE_IP (RFC 7296 §2.23).
    pub fn nat_detection_source_ip(hash: [u8; NAT_DETECTION_HASH_LEN]) -> Self {
        Self::new(NotifyType::NAT_DETECTION_SOURCE_IP, hash.to_vec())
    }

    /// NAT_DETECTION_DESTINATION_IP (RFC 7296 §2.23).
    pub fn nat_detection_destination_ip(hash: [u8; NAT_DETECTION_HASH_LEN]) -> Self {
        Self::new(NotifyType::NAT_DETECTION_DESTINATION_IP, hash.to_vec())
    }

    /// The SHA-1 hash of a NAT_DETECTION_SOURCE_IP or _DESTINATION_IP notify (only its
    /// length is checked here; comparing it is the protocol layer's job).
    pub fn as_nat_detection_hash(&self) -> Result<[u8; NAT_DETECTION_HASH_LEN], DecodeError> {
        if self.notify_type != NotifyType::NAT_DETECTION_SOURCE_IP
            && self.notify_type != NotifyType::NAT_DETECTION_DESTINATION_IP
        {
            return Err(self.bad());
        }
        <[u8; NAT_DETECTION_HASH_LEN]>::try_from(self.data.as_slice()).map_err(|_| self.bad())
    }

    /// COOKIE (RFC 7296 §2.6): 1 to 64 octets.
    pub fn cookie(cookie: &[u8]) -> Result<Self, EncodeError> {
        if cookie.is_empty() || cookie.len() > MAX_COOKIE_LEN {
            return Err(EncodeError::Invalid {
                within: "COOKIE notify",
                reason: "length outside 1..=64",
            });
        }
        Ok(Self::new(NotifyType::COOKIE, cookie.to_vec()))
    }

    /// The data of a COOKIE notify (1 to 64 octets).
    pub fn as_cookie(&self) -> Result<&[u8], DecodeError> {
        self.expect_type(NotifyType::COOKIE)?;
        if self.data.is_empty() || self.data.len() > MAX_COOKIE_LEN {
            return Err(self.bad());
        }
        Ok(&self.data)
    }

    /// INVALID_KE_PAYLOAD (RFC 7296 §3.10.1): the 2-octet group the responder wants.
    pub fn invalid_ke_payload(group: KeGroup) -> Self {
        Self::new(
            NotifyType::INVALID_KE_PAYLOAD,
            group.0.to_be_bytes().to_vec(),
        )
    }

    /// The group of an INVALID_KE_PAYLOAD notify.
    pub fn as_invalid_ke_payload(&self) -> Result<KeGroup, DecodeError> {
        self.expect_type(NotifyType::INVALID_KE_PAYLOAD)?;
        let b = <[u8; 2]>::try_from(self.data.as_slice()).map_err(|_| self.bad())?;
        Ok(KeGroup(u16::from_be_bytes(b)))
    }

    /// REKEY_SA (RFC 7296 §1.3.3): names the Child SA being rekeyed by protocol and SPI.
    pub fn rekey_sa(protocol: ProtocolId, spi: u32) -> Self {
        Self {
            protocol,
            spi: spi.to_be_bytes().to_vec(),
            notify_type: NotifyType::REKEY_SA,
            data: Vec::new(),
        }
    }

    /// The protocol (ESP or AH) and 4-octet SPI of a REKEY_SA notify.
    pub fn as_rekey_sa(&self) -> Result<(ProtocolId, u32), DecodeError> {
        self.expect_type(NotifyType::REKEY_SA)?;
        if self.protocol != ProtocolId::ESP && self.protocol != ProtocolId::AH {
            return Err(self.bad());
        }
        let spi = <[u8; 4]>::try_from(self.spi.as_slice()).map_err(|_| self.bad())?;
        Ok((self.protocol, u32::from_be_bytes(spi)))
    }

    /// UNSUPPORTED_CRITICAL_PAYLOAD (RFC 7296 §3.10.1): one octet, the payload type.
    pub fn unsupported_critical_payload(payload_type: PayloadType) -> Self {
        Self::new(
            NotifyType::UNSUPPORTED_CRITICAL_PAYLOAD,
            vec![payload_type.0],
        )
    }

    /// The payload type named by an UNSUPPORTED_CRITICAL_PAYLOAD notify.
    pub fn as_unsupported_critical_payload(&self) -> Result<PayloadType, DecodeError> {
        self.expect_type(NotifyType::UNSUPPORTED_CRITICAL_PAYLOAD)?;
        match self.data.as_slice() {
            [t] => Ok(PayloadType(*t)),
            _ => Err(self.bad()),
        }
    }
}

impl MessageIdSyncData {
    /// Length on the wire (RFC 6311 §6.3).
    pub const LEN: usize = 12;

    /// Nonce, EXPECTED_SEND_REQ_MESSAGE_ID, EXPECTED_RECV_REQ_MESSAGE_ID, network order.
    pub fn to_bytes(&self) -> [u8; Self::LEN] {
        let mut b = [0; Self::LEN];
        for (dst, v) in b.chunks_exact_mut(4).zip([
            self.nonce,
            self.expected_send_req_message_id,
            self.expected_recv_req_message_id,
        ]) {
            dst.copy_from_slice(&v.to_be_bytes());
        }
        b
    }

    /// Decodes exactly 12 octets.
    pub fn decode(data: &[u8]) -> Result<Self, DecodeError> {
        let bad = || DecodeError::BadNotifyData {
            notify_type: NotifyType::IKEV2_MESSAGE_ID_SYNC,
            len: data.len(),
        };
        if data.len() != Self::LEN {
            return Err(bad());
        }
        let mut r = Reader::new(data, "IKEV2_MESSAGE_ID_SYNC data");
        Ok(Self {
            nonce: r.u32()?,
            expected_send_req_message_id: r.u32()?,
            expected_recv_req_message_id: r.u32()?,
        })
    }
}

impl ReplayCounterSyncData {
    /// 4 octets without ESN, 8 with (RFC 6311 §6.4). Without ESN the delta is truncated
    /// to 32 bits, as the field is.
    pub fn encode(&self) -> Vec<u8> {
        if self.esn {
            self.delta.to_be_bytes().to_vec()
        } else {
            // Truncation to the 32-bit field is the wire format without ESN.
            #[allow(clippy::cast_possible_truncation)]
            let d = self.delta as u32;
            d.to_be_bytes().to_vec()
        }
    }

    /// Decodes 4 octets (no ESN) or 8 (ESN).
    pub fn decode(data: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(data, "IPSEC_REPLAY_COUNTER_SYNC data");
        match data.len() {
            4 => Ok(Self {
                delta: u64::from(r.u32()?),
                esn: false,
            }),
            8 => Ok(Self {
                delta: r.u64()?,
                esn: true,
            }),
            len => Err(DecodeError::BadNotifyData {
                notify_type: NotifyType::IPSEC_REPLAY_COUNTER_SYNC,
                len,
            }),
        }
    }
}

/// All notifies of a chain, in order.
pub fn notifies(payloads: &[Payload]) -> impl Iterator<Item = &NotifyPayload> {
    payloads.iter().filter_map(|p| match p {
        Payload::Notify(n) => Some(n),
        _ => None,
    })
}

/// The first notify of type `t` in a chain.
pub fn find_notify(payloads: &[Payload], t: NotifyType) -> Option<&NotifyPayload> {
    notifies(payloads).find(|n| n.notify_type == t)
}

/// The first error notify (type below 16384) in a chain.
pub fn find_error_notify(payloads: &[Payload]) -> Option<&NotifyPayload> {
    notifies(payloads).find(|n| n.notify_type.is_error())
}
