//! Decoding of payload chains and payload bodies (RFC 7296 §3.2–§3.16, RFC 7383 §2.5).
//!
//! Bounds: every structure is read through a [`Reader`] limited to its own length; every
//! count is checked against a cap *and* against what the remaining octets can hold before
//! anything is allocated for it; every payload is at least its 4-octet generic header, so
//! a chain can neither loop nor overlap.

#![deny(clippy::indexing_slicing)]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::codec::Reader;
use super::error::DecodeError;
use super::header::HeaderView;
use super::payload::*;
use super::registry::*;

/// Most payloads accepted in one chain (outer message or SK plaintext).
pub const MAX_PAYLOADS: usize = 256;
/// Most proposals accepted in one SA payload.
pub const MAX_PROPOSALS: usize = 64;
/// Most transforms accepted in one proposal (the count field is one octet).
pub const MAX_TRANSFORMS: usize = 128;
/// Most attributes accepted in one transform.
pub const MAX_TRANSFORM_ATTRIBUTES: usize = 16;
/// Most traffic selectors accepted in one TS payload.
pub const MAX_SELECTORS: usize = 64;
/// Most attributes accepted in one CP payload.
pub const MAX_CP_ATTRIBUTES: usize = 128;

/// Length of the generic payload header.
pub const GENERIC_HEADER_LEN: usize = 4;

/// The critical bit of the generic payload header (RFC 7296 §3.2).
pub(crate) const CRITICAL: u8 = 0x80;

/// Where a chain sits: the outer chain of a message, or the plaintext of an SK payload.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum ChainKind {
    Outer,
    Inner,
}

impl Message {
    /// Decodes a whole datagram: the checked header, then the payload chain starting at
    /// the header's Next Payload. SK stays encrypted (see [`super::sk`]).
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let view = HeaderView::new_checked(bytes)?;
        let header = view.header();
        let payloads = decode_chain_kind(header.next_payload, view.payload(), ChainKind::Outer)?;
        Ok(Self { header, payloads })
    }
}

/// Decodes the plaintext of an SK payload (or of reassembled SKF fragments): a chain
/// starting with payload type `first`. SK and SKF may not appear inside it.
pub fn decode_chain(first: PayloadType, bytes: &[u8]) -> Result<Vec<Payload>, DecodeError> {
    decode_chain_kind(first, bytes, ChainKind::Inner)
}

fn decode_chain_kind(
    first: PayloadType,
    bytes: &[u8],
    kind: ChainKind,
) -> Result<Vec<Payload>, DecodeError> {
    let mut r = Reader::new(bytes, "payload chain");
    let mut next = first;
    let mut out = Vec::new();
    while next != PayloadType::NONE {
        if out.len() >= MAX_PAYLOADS {
            return Err(DecodeError::TooManyPayloads {
                limit: MAX_PAYLOADS,
            });
        }
        let this = next;
        let available = r.left();
        if available < GENERIC_HEADER_LEN {
            return Err(DecodeError::Truncated {
                within: "generic payload header",
            });
        }
        let next_field = PayloadType(r.u8()?);
        let critical = r.u8()? & CRITICAL != 0;
        let length = r.u16()?;
        let total = usize::from(length);
        if total < GENERIC_HEADER_LEN {
            return Err(DecodeError::PayloadTooShort {
                payload: this,
                length: total,
                minimum: GENERIC_HEADER_LEN,
            });
        }
        if total > available {
            return Err(DecodeError::PayloadLengthPastEnd {
                payload: this,
                length,
                available,
            });
        }
        let body = r.take(total - GENERIC_HEADER_LEN)?;
        match this {
            PayloadType::SK => {
                if kind == ChainKind::Inner {
                    return Err(DecodeError::NestedEncryptedPayload);
                }
                // The SK payload's Next Payload names its first inner payload; nothing
                // may follow it (RFC 7296 §3.14).
                if !r.is_empty() {
                    return Err(DecodeError::SkNotLast);
                }
                out.push(Payload::Sk(SkPayload {
                    first_inner: next_field,
                    data: body.to_vec(),
                }));
                return Ok(out);
            }
            PayloadType::SKF => {
                if kind == ChainKind::Inner {
                    return Err(DecodeError::NestedEncryptedPayload);
                }
                if !out.is_empty() || !r.is_empty() {
                    return Err(DecodeError::SkfNotAlone);
                }
                out.push(Payload::Skf(decode_skf(next_field, total, body)?));
                return Ok(out);
            }
            _ => {}
        }
        let payload = match decode_body(this, total, body)? {
            Some(p) => p,
            None if critical => {
                return Err(DecodeError::UnsupportedCriticalPayload { payload_type: this });
            }
            None => Payload::Unknown {
                payload_type: this,
                critical: false,
                body: body.to_vec(),
            },
        };
        out.push(payload);
        next = next_field;
    }
    r.expect_empty()?;
    Ok(out)
}

fn too_short(payload: PayloadType, total: usize, min_body: usize) -> DecodeError {
    DecodeError::PayloadTooShort {
        payload,
        length: total,
        minimum: GENERIC_HEADER_LEN + min_body,
    }
}

/// Decodes one known payload body; `None` for types we do not implement.
fn decode_body(pt: PayloadType, total: usize, body: &[u8]) -> Result<Option<Payload>, DecodeError> {
    let min_body = match pt {
        PayloadType::SA => 8,
        PayloadType::KE
        | PayloadType::IDI
        | PayloadType::IDR
        | PayloadType::AUTH
        | PayloadType::NOTIFY
        | PayloadType::DELETE
        | PayloadType::TSI
        | PayloadType::TSR
        | PayloadType::CP
        | PayloadType::EAP => 4,
        PayloadType::CERT | PayloadType::CERTREQ => 1,
        _ => 0,
    };
    if body.len() < min_body {
        return Err(too_short(pt, total, min_body));
    }
    let mut r = Reader::new(body, "payload body");
    let p = match pt {
        PayloadType::SA => Payload::Sa(decode_sa(&mut r)?),
        PayloadType::KE => {
            let group = KeGroup(r.u16()?);
            r.skip(2)?;
            Payload::Ke(KePayload {
                group,
                data: r.rest().to_vec(),
            })
        }
        PayloadType::IDI => Payload::IdI(decode_id(&mut r)?),
        PayloadType::IDR => Payload::IdR(decode_id(&mut r)?),
        PayloadType::CERT => Payload::Cert(CertPayload {
            encoding: CertEncoding(r.u8()?),
            data: r.rest().to_vec(),
        }),
        PayloadType::CERTREQ => Payload::CertReq(CertReqPayload {
            encoding: CertEncoding(r.u8()?),
            data: r.rest().to_vec(),
        }),
        PayloadType::AUTH => {
            let method = AuthMethod(r.u8()?);
            r.skip(3)?;
            Payload::Auth(AuthPayload {
                method,
                data: r.rest().to_vec(),
            })
        }
        PayloadType::NONCE => {
            // RFC 7296 §3.9: "between 16 and 256 octets, inclusive".
            if !(16..=256).contains(&body.len()) {
                return Err(DecodeError::NonceLength { len: body.len() });
            }
            Payload::Nonce(NoncePayload {
                data: r.rest().to_vec(),
            })
        }
        PayloadType::NOTIFY => Payload::Notify(decode_notify(&mut r)?),
        PayloadType::DELETE => Payload::Delete(decode_delete(&mut r)?),
        PayloadType::VENDOR_ID => Payload::VendorId(VendorIdPayload {
            data: r.rest().to_vec(),
        }),
        PayloadType::TSI => Payload::TsI(decode_ts(&mut r)?),
        PayloadType::TSR => Payload::TsR(decode_ts(&mut r)?),
        PayloadType::CP => Payload::Cp(decode_cp(&mut r)?),
        PayloadType::EAP => Payload::Eap(EapPayload {
            data: r.rest().to_vec(),
        }),
        _ => return Ok(None),
    };
    r.expect_empty()?;
    Ok(Some(p))
}

fn decode_sa(r: &mut Reader<'_>) -> Result<SaPayload, DecodeError> {
    let mut proposals = Vec::new();
    while !r.is_empty() {
        if proposals.len() >= MAX_PROPOSALS {
            return Err(DecodeError::TooManyProposals {
                limit: MAX_PROPOSALS,
            });
        }
        let mut head = r.sub(4, "proposal header")?;
        let last = head.u8()?;
        head.skip(1)?;
        let length = usize::from(head.u16()?);
        if length < 8 || length - 4 > r.left() {
            return Err(DecodeError::BadSubstructureLength {
                within: "proposal",
                length,
            });
        }
        let mut p = r.sub(length - 4, "proposal")?;
        // RFC 7296 §3.3.1: 0 if this is the last proposal, 2 if more follow.
        let expected_last = if r.is_empty() { 0 } else { 2 };
        if last != expected_last {
            return Err(DecodeError::BadLastSubstruc {
                within: "proposal",
                value: last,
            });
        }
        let number = p.u8()?;
        let protocol = ProtocolId(p.u8()?);
        let spi_size = usize::from(p.u8()?);
        let declared = usize::from(p.u8()?);
        let spi = p.take(spi_size)?.to_vec();
        let mut transforms = Vec::new();
        while !p.is_empty() {
            if transforms.len() >= MAX_TRANSFORMS {
                return Err(DecodeError::TooManyTransforms {
                    limit: MAX_TRANSFORMS,
                });
            }
            transforms.push(decode_transform(&mut p)?);
        }
        if declared != transforms.len() {
            return Err(DecodeError::CountMismatch {
                within: "proposal transforms",
                declared,
                found: transforms.len(),
            });
        }
        proposals.push(Proposal {
            number,
            protocol,
            spi,
            transforms,
        });
    }
    Ok(SaPayload { proposals })
}

fn decode_transform(p: &mut Reader<'_>) -> Result<Transform, DecodeError> {
    let mut head = p.sub(4, "transform header")?;
    let last = head.u8()?;
    head.skip(1)?;
    let length = usize::from(head.u16()?);
    if length < 8 || length - 4 > p.left() {
        return Err(DecodeError::BadSubstructureLength {
            within: "transform",
            length,
        });
    }
    let mut t = p.sub(length - 4, "transform")?;
    // RFC 7296 §3.3.2: 0 if this is the last transform, 3 if more follow.
    let expected_last = if p.is_empty() { 0 } else { 3 };
    if last != expected_last {
        return Err(DecodeError::BadLastSubstruc {
            within: "transform",
            value: last,
        });
    }
    let transform_type = TransformType(t.u8()?);
    t.skip(1)?;
    let id = t.u16()?;
    let mut attributes = Vec::new();
    while !t.is_empty() {
        if attributes.len() >= MAX_TRANSFORM_ATTRIBUTES {
            return Err(DecodeError::TooManyAttributes {
                limit: MAX_TRANSFORM_ATTRIBUTES,
            });
        }
        let ty = t.u16()?;
        let attr_type = TransformAttributeType(ty & 0x7fff);
        // AF bit set: TV format, the value sits where the length would be (§3.3.5).
        let value = if ty & 0x8000 != 0 {
            AttributeValue::Tv(t.u16()?)
        } else {
            let len = usize::from(t.u16()?);
            if len > t.left() {
                return Err(DecodeError::BadSubstructureLength {
                    within: "transform attribute",
                    length: len,
                });
            }
            AttributeValue::Tlv(t.take(len)?.to_vec())
        };
        attributes.push(TransformAttribute { attr_type, value });
    }
    Ok(Transform {
        transform_type,
        id,
        attributes,
    })
}

fn decode_id(r: &mut Reader<'_>) -> Result<IdPayload, DecodeError> {
    let id_type = IdType(r.u8()?);
    r.skip(3)?;
    Ok(IdPayload {
        id_type,
        data: r.rest().to_vec(),
    })
}

fn decode_notify(r: &mut Reader<'_>) -> Result<NotifyPayload, DecodeError> {
    let protocol = ProtocolId(r.u8()?);
    let spi_size = usize::from(r.u8()?);
    let notify_type = NotifyType(r.u16()?);
    let spi = r.take(spi_size)?.to_vec();
    Ok(NotifyPayload {
        protocol,
        spi,
        notify_type,
        data: r.rest().to_vec(),
    })
}

fn decode_delete(r: &mut Reader<'_>) -> Result<DeletePayload, DecodeError> {
    let protocol = ProtocolId(r.u8()?);
    let spi_size = r.u8()?;
    let count = usize::from(r.u16()?);
    let rest = r.rest();
    let spis = if spi_size == 0 {
        // IKE SA deletion carries no SPIs (§3.11). A non-zero count with zero-size SPIs
        // would make us allocate for octets that are not there.
        if count != 0 || !rest.is_empty() {
            return Err(DecodeError::BadDelete {
                reason: "SPI size 0 with SPIs",
            });
        }
        Vec::new()
    } else {
        let size = usize::from(spi_size);
        if rest.len() != size.saturating_mul(count) {
            return Err(DecodeError::BadDelete {
                reason: "SPI count times size differs from the payload length",
            });
        }
        rest.chunks_exact(size).map(<[u8]>::to_vec).collect()
    };
    Ok(DeletePayload {
        protocol,
        spi_size,
        spis,
    })
}

fn decode_ts(r: &mut Reader<'_>) -> Result<TsPayload, DecodeError> {
    let declared = usize::from(r.u8()?);
    r.skip(3)?;
    let mut selectors = Vec::new();
    while !r.is_empty() {
        if selectors.len() >= MAX_SELECTORS {
            return Err(DecodeError::TooManySelectors {
                limit: MAX_SELECTORS,
            });
        }
        let mut head = r.sub(4, "traffic selector header")?;
        let ts_type = TsType(head.u8()?);
        let ip_protocol = head.u8()?;
        let length = usize::from(head.u16()?);
        if length < 4 || length - 4 > r.left() {
            return Err(DecodeError::BadSubstructureLength {
                within: "traffic selector",
                length,
            });
        }
        let mut s = r.sub(length - 4, "traffic selector")?;
        let selector = match ts_type {
            TsType::IPV4_ADDR_RANGE | TsType::IPV6_ADDR_RANGE => {
                let v4 = ts_type == TsType::IPV4_ADDR_RANGE;
                let want = if v4 { 16 } else { 40 };
                if length != want {
                    return Err(DecodeError::BadTrafficSelector {
                        reason: if v4 {
                            "TS_IPV4_ADDR_RANGE length is not 16"
                        } else {
                            "TS_IPV6_ADDR_RANGE length is not 40"
                        },
                    });
                }
                let start_port = s.u16()?;
                let end_port = s.u16()?;
                let (start_addr, end_addr) = if v4 {
                    (
                        IpAddr::V4(Ipv4Addr::from(s.array::<4>()?)),
                        IpAddr::V4(Ipv4Addr::from(s.array::<4>()?)),
                    )
                } else {
                    (
                        IpAddr::V6(Ipv6Addr::from(s.array::<16>()?)),
                        IpAddr::V6(Ipv6Addr::from(s.array::<16>()?)),
                    )
                };
                TrafficSelector::Ip(IpTrafficSelector {
                    ip_protocol,
                    start_port,
                    end_port,
                    start_addr,
                    end_addr,
                })
            }
            _ => TrafficSelector::Unknown {
                ts_type,
                data: s.rest().to_vec(),
            },
        };
        s.expect_empty()?;
        selectors.push(selector);
    }
    if declared != selectors.len() {
        return Err(DecodeError::CountMismatch {
            within: "TS payload",
            declared,
            found: selectors.len(),
        });
    }
    Ok(TsPayload { selectors })
}

fn decode_cp(r: &mut Reader<'_>) -> Result<CpPayload, DecodeError> {
    let cfg_type = CfgType(r.u8()?);
    r.skip(3)?;
    let mut attributes = Vec::new();
    while !r.is_empty() {
        if attributes.len() >= MAX_CP_ATTRIBUTES {
            return Err(DecodeError::TooManyAttributes {
                limit: MAX_CP_ATTRIBUTES,
            });
        }
        let mut head = r.sub(4, "configuration attribute header")?;
        // The top bit is reserved (§3.15.1) and ignored on receipt.
        let attr_type = CfgAttrType(head.u16()? & 0x7fff);
        let len = usize::from(head.u16()?);
        if len > r.left() {
            return Err(DecodeError::BadSubstructureLength {
                within: "configuration attribute",
                length: len,
            });
        }
        attributes.push(CfgAttribute {
            attr_type,
            value: r.take(len)?.to_vec(),
        });
    }
    Ok(CpPayload {
        cfg_type,
        attributes,
    })
}

fn decode_skf(
    first_inner: PayloadType,
    total: usize,
    body: &[u8],
) -> Result<SkfPayload, DecodeError> {
    let mut r = Reader::new(body, "SKF payload");
    if r.left() < 4 {
        return Err(too_short(PayloadType::SKF, total, 4));
    }
    let fragment_number = r.u16()?;
    let total_fragments = r.u16()?;
    // RFC 7383 §2.5: numbering starts at 1 and never exceeds the total.
    if fragment_number == 0 || total_fragments == 0 || fragment_number > total_fragments {
        return Err(DecodeError::BadFragment {
            number: fragment_number,
            total: total_fragments,
        });
    }
    Ok(SkfPayload {
        first_inner,
        fragment_number,
        total_fragments,
        data: r.rest().to_vec(),
    })
}
