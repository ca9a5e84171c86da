//! strongSwan's proposal syntax: algorithm keywords joined by `-`, several of a type allowed
//! (`aes128-aes256-sha256-sha384-prfsha256-modp3072-ecp256`).

use crate::config::{EncrAlg, EspProposalConfig, IkeProposalConfig};
use crate::wire::registry::{EncrId, EsnId, IntegId, KeGroup, PrfId};

/// Why a proposal string was rejected. Every variant names the proposal (and the token)
/// so an operator can find the mistake.
#[derive(Clone, PartialEq, Eq, Debug, thiserror::Error)]
pub enum ProposalError {
    /// The string is empty or has an empty algorithm between two `-`.
    #[error("empty algorithm name in proposal \"{proposal}\"")]
    EmptyToken {
        /// The whole proposal string.
        proposal: String,
    },
    /// A keyword we do not know.
    #[error("unknown algorithm \"{token}\" in proposal \"{proposal}\"")]
    UnknownAlgorithm {
        /// The offending keyword.
        token: String,
        /// The whole proposal string.
        proposal: String,
    },
    /// A known keyword that has no place in this kind of proposal (`esn` in IKE, a PRF in ESP).
    #[error("\"{token}\" is not valid in an {kind} proposal (\"{proposal}\")")]
    WrongKind {
        /// The offending keyword.
        token: String,
        /// "IKE" or "ESP".
        kind: &'static str,
        /// The whole proposal string.
        proposal: String,
    },
    /// A mandatory transform type is missing.
    #[error("proposal \"{proposal}\" has no {what}")]
    Missing {
        /// What is missing, in words.
        what: &'static str,
        /// The whole proposal string.
        proposal: String,
    },
    /// Only combined-mode (AEAD) encryption, but integrity algorithms as well (RFC 7296 §3.3).
    #[error(
        "proposal \"{proposal}\" combines AEAD encryption ({encr}) with an integrity algorithm; \
         AEAD algorithms provide their own integrity, remove \"{integ}\""
    )]
    AeadWithIntegrity {
        /// The AEAD keyword.
        encr: String,
        /// The integrity keyword.
        integ: String,
        /// The whole proposal string.
        proposal: String,
    },
}

/// One keyword, decoded.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Keyword {
    Encr(EncrAlg),
    Integ(IntegId),
    Prf(PrfId),
    Ke(KeGroup),
    Esn(EsnId),
}

/// Decodes one keyword (case-insensitive).
fn keyword(token: &str) -> Option<Keyword> {
    let t = token.to_ascii_lowercase();
    let encr = |id, key_bits| Some(Keyword::Encr(EncrAlg { id, key_bits }));
    if let Some(rest) = t.strip_prefix("aes") {
        // aes, aes128, aes192, aes256: CBC; aesNNNgcmII / aesNNNccmII: combined modes with an
        // ICV of II octets (or bits: gcm64/96/128 are strongSwan's aliases).
        let (bits_str, mode) = match rest.find(|c: char| !c.is_ascii_digit()) {
            Some(i) => rest.split_at(i),
            None => (rest, ""),
        };
        let bits = match bits_str {
            "" if mode.is_empty() => 128,
            "128" => 128,
            "192" => 192,
            "256" => 256,
            _ => return None,
        };
        return match mode {
            "" => encr(EncrId::AES_CBC, bits),
            "gcm8" | "gcm64" => encr(EncrId::AES_GCM_8, bits),
            "gcm12" | "gcm96" => encr(EncrId::AES_GCM_12, bits),
            "gcm" | "gcm16" | "gcm128" => encr(EncrId::AES_GCM_16, bits),
            "ccm8" | "ccm64" => encr(EncrId::AES_CCM_8, bits),
            "ccm12" | "ccm96" => encr(EncrId::AES_CCM_12, bits),
            "ccm" | "ccm16" | "ccm128" => encr(EncrId::AES_CCM_16, bits),
            "ctr" => encr(EncrId::AES_CTR, bits),
            _ => None,
        };
    }
    let k = match t.as_str() {
        "chacha20poly1305" => Keyword::Encr(EncrAlg {
            id: EncrId::CHACHA20_POLY1305,
            key_bits: 0,
        }),
        "sha1" | "sha" => Keyword::Integ(IntegId::HMAC_SHA1_96),
        "sha256" | "sha2_256" => Keyword::Integ(IntegId::HMAC_SHA2_256_128),
        "sha384" | "sha2_384" => Keyword::Integ(IntegId::HMAC_SHA2_384_192),
        "sha512" | "sha2_512" => Keyword::Integ(IntegId::HMAC_SHA2_512_256),
        "prfsha1" => Keyword::Prf(PrfId::HMAC_SHA1),
        "prfsha256" | "prfsha2_256" => Keyword::Prf(PrfId::HMAC_SHA2_256),
        "prfsha384" | "prfsha2_384" => Keyword::Prf(PrfId::HMAC_SHA2_384),
        "prfsha512" | "prfsha2_512" => Keyword::Prf(PrfId::HMAC_SHA2_512),
        "modp1024" => Keyword::Ke(KeGroup::MODP_1024),
        "modp1536" => Keyword::Ke(KeGroup::MODP_1536),
        "modp2048" => Keyword::Ke(KeGroup::MODP_2048),
        "modp3072" => Keyword::Ke(KeGroup::MODP_3072),
        "modp4096" => Keyword::Ke(KeGroup::MODP_4096),
        "modp6144" => Keyword::Ke(KeGroup::MODP_6144),
        "modp8192" => Keyword::Ke(KeGroup::MODP_8192),
        "ecp256" => Keyword::Ke(KeGroup::ECP_256),
        "ecp384" => Keyword::Ke(KeGroup::ECP_384),
        "ecp521" => Keyword::Ke(KeGroup::ECP_521),
        "x25519" | "curve25519" => Keyword::Ke(KeGroup::CURVE25519),
        "x448" | "curve448" => Keyword::Ke(KeGroup::CURVE448),
        "esn" => Keyword::Esn(EsnId::ESN),
        "noesn" => Keyword::Esn(EsnId::NO_ESN),
        _ => return None,
    };
    Some(k)
}

/// The PRF strongSwan derives from an integrity keyword when no `prf…` keyword is given.
fn prf_for_integ(integ: IntegId) -> Option<PrfId> {
    match integ {
        IntegId::HMAC_SHA1_96 => Some(PrfId::HMAC_SHA1),
        IntegId::HMAC_SHA2_256_128 => Some(PrfId::HMAC_SHA2_256),
        IntegId::HMAC_SHA2_384_192 => Some(PrfId::HMAC_SHA2_384),
        IntegId::HMAC_SHA2_512_256 => Some(PrfId::HMAC_SHA2_512),
        _ => None,
    }
}

/// The keywords of one proposal, split by transform type, each list in the order written
/// and without repeats; `first_*` remember the keyword text for error messages.
#[derive(Default)]
struct Parsed {
    encr: Vec<EncrAlg>,
    integ: Vec<IntegId>,
    prf: Vec<PrfId>,
    ke: Vec<KeGroup>,
    esn: Vec<EsnId>,
    aead_token: Option<String>,
    integ_token: Option<String>,
}

fn push_unique<T: PartialEq>(v: &mut Vec<T>, x: T) {
    if !v.contains(&x) {
        v.push(x);
    }
}

/// Splits and decodes; `kind` is "IKE" or "ESP" and decides which types are allowed.
fn tokenize(proposal: &str, kind: &'static str) -> Result<Parsed, ProposalError> {
    let mut p = Parsed::default();
    for token in proposal.trim().split('-') {
        if token.is_empty() {
            return Err(ProposalError::EmptyToken {
                proposal: proposal.to_owned(),
            });
        }
        let wrong_kind = || ProposalError::WrongKind {
            token: token.to_owned(),
            kind,
            proposal: proposal.to_owned(),
        };
        match keyword(token) {
            None => {
                return Err(ProposalError::UnknownAlgorithm {
                    token: token.to_owned(),
                    proposal: proposal.to_owned(),
                });
            }
            Some(Keyword::Encr(e)) => {
                if e.is_aead() && p.aead_token.is_none() {
                    p.aead_token = Some(token.to_owned());
                }
                push_unique(&mut p.encr, e);
            }
            Some(Keyword::Integ(i)) => {
                if p.integ_token.is_none() {
                    p.integ_token = Some(token.to_owned());
                }
                push_unique(&mut p.integ, i);
            }
            Some(Keyword::Prf(f)) if kind == "IKE" => push_unique(&mut p.prf, f),
            Some(Keyword::Esn(e)) if kind == "ESP" => push_unique(&mut p.esn, e),
            Some(Keyword::Prf(_) | Keyword::Esn(_)) => return Err(wrong_kind()),
            Some(Keyword::Ke(g)) => push_unique(&mut p.ke, g),
        }
    }
    Ok(p)
}

/// Checks the encryption/integrity combination shared by IKE and ESP: some encryption; a
/// non-AEAD algorithm needs integrity; AEAD-only proposals take none (RFC 7296 §3.3).
fn check_encr_integ(p: &Parsed, proposal: &str) -> Result<(), ProposalError> {
    if p.encr.is_empty() {
        return Err(ProposalError::Missing {
            what: "encryption algorithm (e.g. aes128gcm16 or aes256)",
            proposal: proposal.to_owned(),
        });
    }
    let any_plain = p.encr.iter().any(|e| !e.is_aead());
    if any_plain && p.integ.is_empty() {
        return Err(ProposalError::Missing {
            what: "integrity algorithm, which non-AEAD encryption needs (e.g. sha256)",
            proposal: proposal.to_owned(),
        });
    }
    if !any_plain && !p.integ.is_empty() {
        return Err(ProposalError::AeadWithIntegrity {
            encr: p.aead_token.clone().unwrap_or_default(),
            integ: p.integ_token.clone().unwrap_or_default(),
            proposal: proposal.to_owned(),
        });
    }
    Ok(())
}

/// The proposal `default` expands to for IKE: AEAD and CBC suites with the PRFs and key
/// exchange methods the crypto provider implements.
const IKE_DEFAULT: &str = "aes128gcm16-aes256gcm16-chacha20poly1305-aes128-aes256-sha256-sha384-sha512-prfsha256-prfsha384-prfsha512-x25519-ecp256-ecp384-modp3072-modp2048";
/// The proposal `default` expands to for ESP (no PFS).
const ESP_DEFAULT: &str =
    "aes128gcm16-aes256gcm16-chacha20poly1305-aes128-aes256-sha256-sha384-sha512";

/// Parses an IKE proposal, e.g. `aes128gcm16-prfsha256-x25519` or `aes256-sha256-modp2048`.
///
/// As in strongSwan, when no `prf…` keyword is given the integrity keywords also name the
/// PRFs (`sha256` means HMAC_SHA2_256_128 and PRF_HMAC_SHA2_256); in an AEAD-only proposal
/// without `prf…` keywords they name only the PRFs. `default` is a broad built-in set.
pub fn parse_ike_proposal(proposal: &str) -> Result<IkeProposalConfig, ProposalError> {
    let text = if proposal.trim().eq_ignore_ascii_case("default") {
        IKE_DEFAULT
    } else {
        proposal
    };
    let mut p = tokenize(text, "IKE")?;
    if p.prf.is_empty() {
        p.prf = p.integ.iter().filter_map(|&i| prf_for_integ(i)).collect();
        if !p.encr.is_empty() && p.encr.iter().all(|e| e.is_aead()) {
            // `aes256gcm16-sha384-ecp384`: the integrity keyword is the PRF.
            p.integ.clear();
        }
    }
    check_encr_integ(&p, proposal)?;
    if p.prf.is_empty() {
        return Err(ProposalError::Missing {
            what: "pseudorandom function (e.g. prfsha256)",
            proposal: proposal.to_owned(),
        });
    }
    if p.ke.is_empty() {
        return Err(ProposalError::Missing {
            what: "key exchange method (e.g. x25519, ecp256 or modp2048)",
            proposal: proposal.to_owned(),
        });
    }
    Ok(IkeProposalConfig {
        encr: p.encr,
        integ: p.integ,
        prf: p.prf,
        ke: p.ke,
    })
}

/// Parses an ESP proposal, e.g. `aes128gcm16`, `aes256-sha256`, `aes128gcm16-x25519` (PFS on
/// rekey) or `aes128gcm16-esn`. Without `esn`/`noesn` the proposal means "no ESN".
/// `default` is a broad built-in set without PFS.
pub fn parse_esp_proposal(proposal: &str) -> Result<EspProposalConfig, ProposalError> {
    let text = if proposal.trim().eq_ignore_ascii_case("default") {
        ESP_DEFAULT
    } else {
        proposal
    };
    let p = tokenize(text, "ESP")?;
    check_encr_integ(&p, proposal)?;
    Ok(EspProposalConfig {
        encr: p.encr,
        integ: p.integ,
        ke: p.ke,
        esn: p.esn,
    })
}
