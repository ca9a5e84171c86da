//! The responder's choice among the initiator's proposals (RFC 7296 §2.7, §3.3.6).

use super::{ChildSuite, IkeSuite, SelectError};
use crate::config::{EncrAlg, EspProposalConfig, IkeProposalConfig};
use crate::crypto::CryptoProvider;
use crate::wire::payload::{AttributeValue, Proposal, SaPayload, Transform};
use crate::wire::registry::{
    EncrId, EsnId, IntegId, KeGroup, PrfId, ProtocolId, TransformAttributeType, TransformType,
};

/// A peer's proposal with its transforms sorted by type. Transforms we cannot read (an
/// attribute we do not understand, a Key Length that is not TV) are left out: RFC 7296
/// §3.3.6 says to reject such a transform, not the whole proposal.
pub(super) struct Offer<'a> {
    pub(super) proposal: &'a Proposal,
    pub(super) encr: Vec<(EncrAlg, &'a Transform)>,
    pub(super) integ: Vec<(IntegId, &'a Transform)>,
    pub(super) prf: Vec<(PrfId, &'a Transform)>,
    pub(super) ke: Vec<(KeGroup, &'a Transform)>,
    pub(super) esn: Vec<(EsnId, &'a Transform)>,
}

impl<'a> Offer<'a> {
    /// Sorts `proposal`'s transforms; `None` if it holds a transform type outside `allowed`
    /// (an unknown type makes the whole proposal unacceptable, RFC 7296 §3.3.6).
    pub(super) fn new(proposal: &'a Proposal, allowed: &[TransformType]) -> Option<Self> {
        let mut o = Offer {
            proposal,
            encr: Vec::new(),
            integ: Vec::new(),
            prf: Vec::new(),
            ke: Vec::new(),
            esn: Vec::new(),
        };
        for t in &proposal.transforms {
            if !allowed.contains(&t.transform_type) {
                return None;
            }
            let attrs_ok = t.attributes.iter().all(|a| {
                a.attr_type == TransformAttributeType::KEY_LENGTH
                    && matches!(a.value, AttributeValue::Tv(_))
            });
            if !attrs_ok || t.attributes.len() > 1 {
                continue;
            }
            match t.transform_type {
                TransformType::ENCR => o.encr.push((
                    EncrAlg {
                        id: EncrId(t.id),
                        key_bits: t.key_length().unwrap_or(0),
                    },
                    t,
                )),
                TransformType::INTEG => o.integ.push((IntegId(t.id), t)),
                TransformType::PRF => o.prf.push((PrfId(t.id), t)),
                TransformType::KE => o.ke.push((KeGroup(t.id), t)),
                TransformType::ESN => o.esn.push((EsnId(t.id), t)),
                _ => return None,
            }
        }
        Some(o)
    }
}

/// The first of `ours` (our preference) that `offered` holds and `ok` accepts.
fn pick<'a, T: Copy + PartialEq>(
    ours: &[T],
    offered: &[(T, &'a Transform)],
    mut ok: impl FnMut(T) -> bool,
) -> Option<(T, &'a Transform)> {
    ours.iter().find_map(|&x| {
        offered
            .iter()
            .find(|(y, _)| *y == x)
            .filter(|_| ok(x))
            .map(|&(y, t)| (y, t))
    })
}

/// Chooses the integrity transform to go with `encr`: none (or the peer's NONE) for AEAD,
/// otherwise the first of ours the peer offered that `ok` accepts. `None`: no match.
#[allow(clippy::option_option)]
fn pick_integ<'a>(
    encr: EncrAlg,
    ours: &[IntegId],
    offered: &[(IntegId, &'a Transform)],
    ok: impl FnMut(IntegId) -> bool,
) -> Option<(IntegId, Option<&'a Transform>)> {
    if encr.is_aead() {
        // RFC 7296 §3.3: with a combined-mode cipher the integrity transform MUST be absent
        // or NONE.
        if offered.is_empty() {
            return Some((IntegId::NONE, None));
        }
        return offered
            .iter()
            .find(|(i, _)| *i == IntegId::NONE)
            .map(|&(i, t)| (i, Some(t)));
    }
    let ours: Vec<IntegId> = ours
        .iter()
        .copied()
        .filter(|&i| i != IntegId::NONE)
        .collect();
    pick(&ours, offered, ok).map(|(i, t)| (i, Some(t)))
}

/// Key lengths for asking the crypto provider whether it can build an SK cipher: encryption
/// key octets including the AEAD salt (RFC 5282 §7.1, RFC 7634 §2).
fn encr_key_octets(encr: EncrAlg) -> Option<usize> {
    let aes = |salt| match encr.key_bits {
        128 | 192 | 256 => Some(usize::from(encr.key_bits) / 8 + salt),
        _ => None,
    };
    match encr.id {
        EncrId::AES_CBC | EncrId::AES_CTR => aes(0),
        EncrId::AES_GCM_8 | EncrId::AES_GCM_12 | EncrId::AES_GCM_16 => aes(4),
        EncrId::AES_CCM_8 | EncrId::AES_CCM_12 | EncrId::AES_CCM_16 => aes(3),
        EncrId::CHACHA20_POLY1305 if encr.key_bits == 0 || encr.key_bits == 256 => Some(36),
        _ => None,
    }
}

/// Integrity key octets (RFC 4868 §2.1.1).
fn integ_key_octets(integ: IntegId) -> Option<usize> {
    match integ {
        IntegId::NONE => Some(0),
        IntegId::HMAC_SHA1_96 => Some(20),
        IntegId::HMAC_SHA2_256_128 => Some(32),
        IntegId::HMAC_SHA2_384_192 => Some(48),
        IntegId::HMAC_SHA2_512_256 => Some(64),
        _ => None,
    }
}

/// Whether `provider` can protect SK payloads with this encryption/integrity pair: asks its
/// SK cipher factory with all-zero keys of the right length.
fn sk_supported(provider: &CryptoProvider, encr: EncrAlg, integ: IntegId) -> bool {
    let (Some(e), Some(a)) = (encr_key_octets(encr), integ_key_octets(integ)) else {
        return false;
    };
    (provider.sk_cipher)(encr.id, encr.key_bits, integ, &vec![0; e], &vec![0; a]).is_ok()
}

/// The KE choice within one matching proposal: the peer's KE group if it is among the
/// candidates (saves a round trip, RFC 7296 §1.2), else our first candidate.
fn pick_ke<'a>(
    candidates: &[(KeGroup, &'a Transform)],
    peer_ke: Option<KeGroup>,
) -> Option<(KeGroup, &'a Transform)> {
    candidates
        .iter()
        .find(|(g, _)| Some(*g) == peer_ke)
        .or_else(|| candidates.first())
        .copied()
}

/// The proposal to echo: the peer's number, protocol and SPI, and the chosen transforms
/// in the peer's wire order.
fn echo(p: &Proposal, chosen: &[&Transform]) -> Proposal {
    Proposal {
        number: p.number,
        protocol: p.protocol,
        spi: p.spi.clone(),
        transforms: p
            .transforms
            .iter()
            .filter(|t| chosen.iter().any(|c| std::ptr::eq(*c, *t)))
            .cloned()
            .collect(),
    }
}

/// Matches one of our IKE proposals against one of the peer's.
fn match_ike(
    cfg: &IkeProposalConfig,
    offer: &Offer<'_>,
    peer_ke: Option<KeGroup>,
    provider: &CryptoProvider,
) -> Option<(Proposal, IkeSuite)> {
    let prf = pick(&cfg.prf, &offer.prf, |id| provider.prf(id).is_some())?;
    let ke_candidates: Vec<_> = cfg
        .ke
        .iter()
        .filter(|&&g| g != KeGroup::NONE && provider.ke_method(g).is_some())
        .filter_map(|&g| offer.ke.iter().find(|(x, _)| *x == g).copied())
        .collect();
    let ke = pick_ke(&ke_candidates, peer_ke)?;
    for &encr in &cfg.encr {
        let Some(&(_, encr_t)) = offer.encr.iter().find(|(e, _)| *e == encr) else {
            continue;
        };
        let Some((integ, integ_t)) = pick_integ(encr, &cfg.integ, &offer.integ, |i| {
            sk_supported(provider, encr, i)
        }) else {
            continue;
        };
        if !sk_supported(provider, encr, integ) {
            continue;
        }
        let mut chosen = vec![encr_t, prf.1, ke.1];
        chosen.extend(integ_t);
        let suite = IkeSuite {
            encr,
            integ,
            prf: prf.0,
            ke: ke.0,
        };
        return Some((echo(offer.proposal, &chosen), suite));
    }
    None
}

/// Chooses the IKE SA proposal to accept (IKE_SA_INIT, or an IKE SA rekey in
/// CREATE_CHILD_SA), by our preference order among what the peer `offered`, using only
/// algorithms `supported` implements.
///
/// `peer_ke` is the group of the peer's KE payload. If the best acceptable proposal needs
/// another group that the peer offered, the answer is [`SelectError::InvalidKe`] with that
/// group (RFC 7296 §1.2); within a proposal the peer's group is preferred when we accept
/// it, to save the round trip.
///
/// The returned proposal is what goes in the response's SA payload; it keeps the peer's
/// SPI, which for an IKE SA rekey the caller replaces with its own new SPI.
pub fn select_ike(
    offered: &SaPayload,
    ours: &[IkeProposalConfig],
    peer_ke: Option<KeGroup>,
    supported: &CryptoProvider,
) -> Result<(Proposal, IkeSuite), SelectError> {
    const ALLOWED: &[TransformType] = &[
        TransformType::ENCR,
        TransformType::PRF,
        TransformType::INTEG,
        TransformType::KE,
    ];
    let offers: Vec<Offer<'_>> = offered
        .proposals
        .iter()
        .filter(|p| p.protocol == ProtocolId::IKE && (p.spi.is_empty() || p.spi.len() == 8))
        .filter_map(|p| Offer::new(p, ALLOWED))
        .collect();
    for cfg in ours {
        for offer in &offers {
            if let Some((proposal, suite)) = match_ike(cfg, offer, peer_ke, supported) {
                if Some(suite.ke) != peer_ke {
                    return Err(SelectError::InvalidKe(suite.ke));
                }
                return Ok((proposal, suite));
            }
        }
    }
    Err(SelectError::NoProposalChosen)
}

/// Matches one of our ESP proposals against one of the peer's.
fn match_child(
    cfg: &EspProposalConfig,
    offer: &Offer<'_>,
    peer_ke: Option<KeGroup>,
    pfs_required: bool,
) -> Option<(Proposal, ChildSuite)> {
    // ESN is a mandatory transform type for ESP (RFC 7296 §3.3.3).
    let our_esn: &[EsnId] = if cfg.esn.is_empty() {
        &[EsnId::NO_ESN]
    } else {
        &cfg.esn
    };
    let esn = pick(our_esn, &offer.esn, |_| true)?;
    let ke: Option<(Option<KeGroup>, Option<&Transform>)> = match peer_ke {
        // No KE payload: the IKE_AUTH Child SA, where KE transforms are ignored (RFC 7296
        // §1.2), or a CREATE_CHILD_SA without PFS, which our configured groups forbid.
        None if pfs_required && !cfg.ke.is_empty() => None,
        None => Some((None, None)),
        Some(_) => {
            let candidates: Vec<_> = cfg
                .ke
                .iter()
                .filter(|&&g| g != KeGroup::NONE)
                .filter_map(|&g| offer.ke.iter().find(|(x, _)| *x == g).copied())
                .collect();
            match pick_ke(&candidates, peer_ke) {
                Some((g, t)) => Some((Some(g), Some(t))),
                // We have no PFS configured; acceptable only if the peer also offers NONE.
                None if cfg.ke.is_empty() => offer
                    .ke
                    .iter()
                    .find(|(g, _)| *g == KeGroup::NONE)
                    .map(|&(_, t)| (None, Some(t))),
                None => None,
            }
        }
    };
    let (ke, ke_t) = ke?;
    for &encr in &cfg.encr {
        let Some(&(_, encr_t)) = offer.encr.iter().find(|(e, _)| *e == encr) else {
            continue;
        };
        let Some((integ, integ_t)) = pick_integ(encr, &cfg.integ, &offer.integ, |_| true) else {
            continue;
        };
        let mut chosen = vec![encr_t, esn.1];
        chosen.extend(integ_t);
        chosen.extend(ke_t);
        let suite = ChildSuite {
            encr,
            integ,
            ke,
            esn: esn.0 == EsnId::ESN,
        };
        return Some((echo(offer.proposal, &chosen), suite));
    }
    None
}

/// Chooses the ESP proposal for a Child SA, by our preference order among what the peer
/// `offered`.
///
/// `peer_ke` is the group of the peer's KE payload (`None` in IKE_AUTH, where KE transforms
/// in the offer are ignored, RFC 7296 §1.2). `pfs_required` is true in CREATE_CHILD_SA:
/// then our proposals configured with KE methods require the peer's KE payload. A
/// proposal configured without KE methods accepts a KE only if the peer also offers NONE.
/// If the choice needs another group than `peer_ke` the answer is
/// [`SelectError::InvalidKe`].
///
/// Only ESP proposals with a 4-octet SPI are considered; the returned proposal keeps the
/// peer's SPI (our outbound SPI, see [`super::esp_spi`]); the caller puts its own inbound
/// SPI in the response. AH is not supported.
pub fn select_child(
    offered: &SaPayload,
    ours: &[EspProposalConfig],
    peer_ke: Option<KeGroup>,
    pfs_required: bool,
) -> Result<(Proposal, ChildSuite), SelectError> {
    const ALLOWED: &[TransformType] = &[
        TransformType::ENCR,
        TransformType::INTEG,
        TransformType::KE,
        TransformType::ESN,
    ];
    let offers: Vec<Offer<'_>> = offered
        .proposals
        .iter()
        .filter(|p| p.protocol == ProtocolId::ESP && p.spi.len() == 4)
        .filter_map(|p| Offer::new(p, ALLOWED))
        .collect();
    for cfg in ours {
        for offer in &offers {
            if let Some((proposal, suite)) = match_child(cfg, offer, peer_ke, pfs_required) {
                if let Some(g) = suite.ke
                    && Some(g) != peer_ke
                {
                    return Err(SelectError::InvalidKe(g));
                }
                return Ok((proposal, suite));
            }
        }
    }
    Err(SelectError::NoProposalChosen)
}
