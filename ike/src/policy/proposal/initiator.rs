//! The initiator's side: SA payloads built from our configuration, and the check that the
//! responder's choice is one of the things we offered (RFC 7296 §3.3.6).

use super::select::Offer;
use super::{ChildSuite, IkeSuite, SelectError, esp_spi};
use crate::config::{EncrAlg, EspProposalConfig, IkeProposalConfig};
use crate::wire::payload::{AttributeValue, Proposal, SaPayload, Transform, TransformAttribute};
use crate::wire::registry::{
    EsnId, IntegId, KeGroup, ProtocolId, TransformAttributeType, TransformType,
};

fn transform(transform_type: TransformType, id: u16) -> Transform {
    Transform {
        transform_type,
        id,
        attributes: Vec::new(),
    }
}

fn encr_transform(e: EncrAlg) -> Transform {
    let mut t = transform(TransformType::ENCR, e.id.0);
    if e.key_bits != 0 {
        t.attributes.push(TransformAttribute {
            attr_type: TransformAttributeType::KEY_LENGTH,
            value: AttributeValue::Tv(e.key_bits),
        });
    }
    t
}

/// Splits a configured proposal's encryption algorithms into the AEAD group and the
/// non-AEAD group: RFC 7296 §3.3 does not allow both in one proposal on the wire.
fn split_encr(encr: &[EncrAlg]) -> [Vec<EncrAlg>; 2] {
    let aead = encr.iter().copied().filter(|e| e.is_aead()).collect();
    let plain = encr.iter().copied().filter(|e| !e.is_aead()).collect();
    [aead, plain]
}

/// Pushes a proposal numbered after the last one (RFC 7296 §3.3.1: numbers start at 1).
fn push_proposal(
    out: &mut SaPayload,
    protocol: ProtocolId,
    spi: &[u8],
    transforms: Vec<Transform>,
) {
    let number = u8::try_from(out.proposals.len() + 1).unwrap_or(u8::MAX);
    out.proposals.push(Proposal {
        number,
        protocol,
        spi: spi.to_vec(),
        transforms,
    });
}

/// The SA payload offering `ours` for an IKE SA (empty `spi` in IKE_SA_INIT, our new
/// 8-octet SPI for a rekey). A configured proposal mixing AEAD and non-AEAD encryption
/// becomes two proposals; at most 255 proposals are emitted.
pub fn ike_sa_payload(ours: &[IkeProposalConfig], spi: &[u8]) -> SaPayload {
    let mut out = SaPayload {
        proposals: Vec::new(),
    };
    for cfg in ours {
        for encr in split_encr(&cfg.encr) {
            let Some(first) = encr.first() else { continue };
            if out.proposals.len() >= 255 {
                return out;
            }
            let mut ts: Vec<Transform> = encr.iter().map(|&e| encr_transform(e)).collect();
            ts.extend(cfg.prf.iter().map(|p| transform(TransformType::PRF, p.0)));
            if !first.is_aead() {
                ts.extend(
                    cfg.integ
                        .iter()
                        .map(|i| transform(TransformType::INTEG, i.0)),
                );
            }
            ts.extend(cfg.ke.iter().map(|g| transform(TransformType::KE, g.0)));
            push_proposal(&mut out, ProtocolId::IKE, spi, ts);
        }
    }
    out
}

/// The SA payload offering `ours` for an ESP Child SA with our inbound `spi`; `with_ke`
/// adds the configured KE methods (CREATE_CHILD_SA with PFS; never in IKE_AUTH).
pub fn esp_sa_payload(ours: &[EspProposalConfig], spi: u32, with_ke: bool) -> SaPayload {
    let mut out = SaPayload {
        proposals: Vec::new(),
    };
    for cfg in ours {
        for encr in split_encr(&cfg.encr) {
            let Some(first) = encr.first() else { continue };
            if out.proposals.len() >= 255 {
                return out;
            }
            let mut ts: Vec<Transform> = encr.iter().map(|&e| encr_transform(e)).collect();
            if !first.is_aead() {
                ts.extend(
                    cfg.integ
                        .iter()
                        .map(|i| transform(TransformType::INTEG, i.0)),
                );
            }
            if with_ke {
                ts.extend(cfg.ke.iter().map(|g| transform(TransformType::KE, g.0)));
            }
            if cfg.esn.is_empty() {
                ts.push(transform(TransformType::ESN, EsnId::NO_ESN.0));
            } else {
                ts.extend(cfg.esn.iter().map(|e| transform(TransformType::ESN, e.0)));
            }
            push_proposal(&mut out, ProtocolId::ESP, &spi.to_be_bytes(), ts);
        }
    }
    out
}

fn bad(msg: impl Into<String>) -> SelectError {
    SelectError::BadResponse(msg.into())
}

/// The single chosen proposal, checked against what we sent: one proposal, with the
/// number and protocol of one we sent, at most one transform per type, each one we offered
/// in that proposal (same ID and attributes).
fn chosen_offer<'a>(
    sent: &SaPayload,
    chosen: &'a SaPayload,
    allowed: &[TransformType],
) -> Result<Offer<'a>, SelectError> {
    let [p] = chosen.proposals.as_slice() else {
        return Err(bad(format!(
            "{} proposals in the responder's SA payload, exactly one expected",
            chosen.proposals.len()
        )));
    };
    let ours = sent
        .proposals
        .iter()
        .find(|s| s.number == p.number && s.protocol == p.protocol)
        .ok_or_else(|| {
            bad(format!(
                "proposal #{} ({}) was not offered",
                p.number, p.protocol
            ))
        })?;
    for (i, t) in p.transforms.iter().enumerate() {
        if p.transforms[..i]
            .iter()
            .any(|u| u.transform_type == t.transform_type)
        {
            return Err(bad(format!(
                "more than one transform of type {}",
                t.transform_type
            )));
        }
        if !ours.transforms.contains(t) {
            return Err(bad(format!(
                "transform {} {} was not offered in proposal #{}",
                t.transform_type, t.id, p.number
            )));
        }
    }
    let offer = Offer::new(p, allowed)
        .ok_or_else(|| bad("transform type not allowed for this protocol"))?;
    if offer.encr.len() + offer.integ.len() + offer.prf.len() + offer.ke.len() + offer.esn.len()
        != p.transforms.len()
    {
        return Err(bad("a transform carries attributes we cannot read"));
    }
    Ok(offer)
}

/// Encryption and integrity of a chosen proposal: exactly one encryption; integrity
/// absent or NONE for AEAD, present otherwise.
fn encr_integ(o: &Offer<'_>) -> Result<(EncrAlg, IntegId), SelectError> {
    let &[(encr, _)] = o.encr.as_slice() else {
        return Err(bad("no encryption algorithm chosen"));
    };
    let integ = o.integ.first().map(|(i, _)| *i).unwrap_or(IntegId::NONE);
    match (encr.is_aead(), integ == IntegId::NONE) {
        (true, false) => Err(bad("integrity algorithm chosen with AEAD encryption")),
        (false, true) => Err(bad("no integrity algorithm chosen for non-AEAD encryption")),
        _ => Ok((encr, integ)),
    }
}

/// Checks the responder's SA payload against the one we `sent` for an IKE SA and returns
/// the negotiated suite.
pub fn accept_ike_response(sent: &SaPayload, chosen: &SaPayload) -> Result<IkeSuite, SelectError> {
    let o = chosen_offer(
        sent,
        chosen,
        &[
            TransformType::ENCR,
            TransformType::PRF,
            TransformType::INTEG,
            TransformType::KE,
        ],
    )?;
    if o.proposal.protocol != ProtocolId::IKE {
        return Err(bad("not an IKE proposal"));
    }
    let (encr, integ) = encr_integ(&o)?;
    let prf = o.prf.first().ok_or_else(|| bad("no PRF chosen"))?.0;
    let ke =
        o.ke.first()
            .map(|(g, _)| *g)
            .filter(|&g| g != KeGroup::NONE)
            .ok_or_else(|| bad("no key exchange method chosen"))?;
    Ok(IkeSuite {
        encr,
        integ,
        prf,
        ke,
    })
}

/// Checks the responder's SA payload against the one we `sent` for an ESP Child SA and
/// returns the negotiated suite and the responder's SPI (our outbound SPI). A KE method
/// must be chosen if every proposal we sent required one.
pub fn accept_child_response(
    sent: &SaPayload,
    chosen: &SaPayload,
) -> Result<(ChildSuite, u32), SelectError> {
    let o = chosen_offer(
        sent,
        chosen,
        &[
            TransformType::ENCR,
            TransformType::INTEG,
            TransformType::KE,
            TransformType::ESN,
        ],
    )?;
    if o.proposal.protocol != ProtocolId::ESP {
        return Err(bad("not an ESP proposal"));
    }
    let spi = esp_spi(o.proposal).ok_or_else(|| bad("ESP SPI is not 4 octets"))?;
    let (encr, integ) = encr_integ(&o)?;
    let esn = o
        .esn
        .first()
        .ok_or_else(|| bad("no ESN transform chosen"))?
        .0;
    let ke =
        o.ke.first()
            .map(|(g, _)| *g)
            .filter(|&g| g != KeGroup::NONE);
    let sent_p = sent
        .proposals
        .iter()
        .find(|s| s.number == o.proposal.number);
    let ke_required = sent_p.is_some_and(|s| {
        let kes: Vec<u16> = s
            .transforms
            .iter()
            .filter(|t| t.transform_type == TransformType::KE)
            .map(|t| t.id)
            .collect();
        !kes.is_empty() && !kes.contains(&KeGroup::NONE.0)
    });
    if ke_required && ke.is_none() {
        return Err(bad("no key exchange method chosen, but we required PFS"));
    }
    Ok((
        ChildSuite {
            encr,
            integ,
            ke,
            esn: esn == EsnId::ESN,
        },
        spi,
    ))
}
