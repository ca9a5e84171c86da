//! Proposal strings (strongSwan syntax) and identities, as the configuration writes them.
//!
//! These are the gateway's own parsers until `ike::policy` lands with the shared ones;
//! every call site goes through the four functions below so the switch is one file.

use std::net::IpAddr;

use ike::config::Identity;
use ike::config::{EncrAlg, EspProposalConfig, IdentityPattern, IkeProposalConfig};
use ike::wire::registry::{EncrId, EsnId, IdType, IntegId, KeGroup, PrfId};

/// One token of a proposal string.
enum Token {
    Encr(EncrAlg),
    Integ(IntegId),
    Prf(PrfId),
    Ke(KeGroup),
    Esn(EsnId),
}

fn token(t: &str) -> Option<Token> {
    let encr = |id, key_bits| Some(Token::Encr(EncrAlg { id, key_bits }));
    match t {
        "aes128" => encr(EncrId::AES_CBC, 128),
        "aes192" => encr(EncrId::AES_CBC, 192),
        "aes256" => encr(EncrId::AES_CBC, 256),
        "aes128gcm16" | "aes128gcm128" | "aes128gcm" => encr(EncrId::AES_GCM_16, 128),
        "aes192gcm16" | "aes192gcm128" | "aes192gcm" => encr(EncrId::AES_GCM_16, 192),
        "aes256gcm16" | "aes256gcm128" | "aes256gcm" => encr(EncrId::AES_GCM_16, 256),
        "aes128gcm12" | "aes128gcm96" => encr(EncrId::AES_GCM_12, 128),
        "aes256gcm12" | "aes256gcm96" => encr(EncrId::AES_GCM_12, 256),
        "aes128gcm8" | "aes128gcm64" => encr(EncrId::AES_GCM_8, 128),
        "aes256gcm8" | "aes256gcm64" => encr(EncrId::AES_GCM_8, 256),
        "chacha20poly1305" => encr(EncrId::CHACHA20_POLY1305, 0),
        "sha1" | "sha" => Some(Token::Integ(IntegId::HMAC_SHA1_96)),
        "sha256" | "sha2_256" => Some(Token::Integ(IntegId::HMAC_SHA2_256_128)),
        "sha384" | "sha2_384" => Some(Token::Integ(IntegId::HMAC_SHA2_384_192)),
        "sha512" | "sha2_512" => Some(Token::Integ(IntegId::HMAC_SHA2_512_256)),
        "prfsha1" => Some(Token::Prf(PrfId::HMAC_SHA1)),
        "prfsha256" => Some(Token::Prf(PrfId::HMAC_SHA2_256)),
        "prfsha384" => Some(Token::Prf(PrfId::HMAC_SHA2_384)),
        "prfsha512" => Some(Token::Prf(PrfId::HMAC_SHA2_512)),
        "modp2048" => Some(Token::Ke(KeGroup::MODP_2048)),
        "modp3072" => Some(Token::Ke(KeGroup::MODP_3072)),
        "modp4096" => Some(Token::Ke(KeGroup::MODP_4096)),
        "ecp256" => Some(Token::Ke(KeGroup::ECP_256)),
        "ecp384" => Some(Token::Ke(KeGroup::ECP_384)),
        "ecp521" => Some(Token::Ke(KeGroup::ECP_521)),
        "x25519" | "curve25519" => Some(Token::Ke(KeGroup::CURVE25519)),
        "esn" => Some(Token::Esn(EsnId::ESN)),
        "noesn" => Some(Token::Esn(EsnId::NO_ESN)),
        _ => None,
    }
}

/// The PRF strongSwan implies for an integrity algorithm when none is written.
fn prf_for(integ: IntegId) -> Option<PrfId> {
    match integ {
        IntegId::HMAC_SHA1_96 => Some(PrfId::HMAC_SHA1),
        IntegId::HMAC_SHA2_256_128 => Some(PrfId::HMAC_SHA2_256),
        IntegId::HMAC_SHA2_384_192 => Some(PrfId::HMAC_SHA2_384),
        IntegId::HMAC_SHA2_512_256 => Some(PrfId::HMAC_SHA2_512),
        _ => None,
    }
}

fn push_unique<T: PartialEq>(v: &mut Vec<T>, x: T) {
    if !v.contains(&x) {
        v.push(x);
    }
}

/// Parses an IKE proposal such as `aes128gcm16-prfsha256-x25519` or
/// `aes256-sha256-modp2048` (the PRF defaults to the integrity algorithm's hash).
pub fn parse_ike_proposal(s: &str) -> Result<IkeProposalConfig, String> {
    let mut p = IkeProposalConfig::default();
    for t in s.split('-') {
        match token(t) {
            Some(Token::Encr(e)) => push_unique(&mut p.encr, e),
            Some(Token::Integ(i)) => push_unique(&mut p.integ, i),
            Some(Token::Prf(f)) => push_unique(&mut p.prf, f),
            Some(Token::Ke(k)) => push_unique(&mut p.ke, k),
            Some(Token::Esn(_)) => {
                return Err(format!("\"{s}\": \"{t}\" is for ESP proposals only"));
            }
            None => return Err(format!("\"{s}\": unknown algorithm \"{t}\"")),
        }
    }
    if p.encr.is_empty() {
        return Err(format!(
            "\"{s}\": no encryption algorithm (e.g. aes128gcm16, aes256)"
        ));
    }
    if p.ke.is_empty() {
        return Err(format!(
            "\"{s}\": no key exchange method (e.g. x25519, modp2048)"
        ));
    }
    let all_aead = p.encr.iter().all(|e| e.is_aead());
    let any_aead = p.encr.iter().any(|e| e.is_aead());
    if any_aead && !all_aead {
        return Err(format!(
            "\"{s}\": AEAD and non-AEAD encryption cannot share a proposal"
        ));
    }
    if all_aead && !p.integ.is_empty() {
        return Err(format!(
            "\"{s}\": an AEAD algorithm takes no integrity algorithm"
        ));
    }
    if !all_aead && p.integ.is_empty() {
        return Err(format!("\"{s}\": no integrity algorithm (e.g. sha256)"));
    }
    if p.prf.is_empty() {
        p.prf = p.integ.iter().filter_map(|i| prf_for(*i)).collect();
        if p.prf.is_empty() {
            return Err(format!("\"{s}\": no PRF (e.g. prfsha256)"));
        }
    }
    Ok(p)
}

/// Parses an ESP proposal such as `aes128gcm16`, `aes256-sha256-modp2048` (PFS) or
/// `aes256gcm16-esn`.
pub fn parse_esp_proposal(s: &str) -> Result<EspProposalConfig, String> {
    let mut p = EspProposalConfig::default();
    for t in s.split('-') {
        match token(t) {
            Some(Token::Encr(e)) => push_unique(&mut p.encr, e),
            Some(Token::Integ(i)) => push_unique(&mut p.integ, i),
            Some(Token::Ke(k)) => push_unique(&mut p.ke, k),
            Some(Token::Esn(e)) => push_unique(&mut p.esn, e),
            Some(Token::Prf(_)) => return Err(format!("\"{s}\": \"{t}\": ESP takes no PRF")),
            None => return Err(format!("\"{s}\": unknown algorithm \"{t}\"")),
        }
    }
    if p.encr.is_empty() {
        return Err(format!(
            "\"{s}\": no encryption algorithm (e.g. aes128gcm16)"
        ));
    }
    let all_aead = p.encr.iter().all(|e| e.is_aead());
    if p.encr.iter().any(|e| e.is_aead()) && !all_aead {
        return Err(format!(
            "\"{s}\": AEAD and non-AEAD encryption cannot share a proposal"
        ));
    }
    if all_aead && !p.integ.is_empty() {
        return Err(format!(
            "\"{s}\": an AEAD algorithm takes no integrity algorithm"
        ));
    }
    if !all_aead && p.integ.is_empty() {
        return Err(format!("\"{s}\": no integrity algorithm (e.g. sha256)"));
    }
    Ok(p)
}

/// Parses an identity: an IP address (ID_IPV4_ADDR / ID_IPV6_ADDR), `user@domain`
/// (ID_RFC822_ADDR), `keyid:HEX` (ID_KEY_ID), `fqdn:NAME`/`email:ADDR` to force a type,
/// or a host name (ID_FQDN). RFC 7296 §3.5.
pub fn parse_identity(s: &str) -> Result<Identity, String> {
    let s = s.trim();
    if s.is_empty() {
        return Err("empty identity".into());
    }
    if s.contains('*') {
        return Err(format!(
            "\"{s}\": a pattern with '*' is only allowed for remote_id"
        ));
    }
    let id = |id_type, data: &[u8]| {
        Ok(Identity {
            id_type,
            data: data.to_vec(),
        })
    };
    if let Some(rest) = s.strip_prefix("fqdn:") {
        return id(IdType::FQDN, rest.as_bytes());
    }
    if let Some(rest) = s.strip_prefix("email:") {
        return id(IdType::RFC822_ADDR, rest.as_bytes());
    }
    if let Some(rest) = s.strip_prefix("keyid:") {
        let hex = rest.strip_prefix("0x").unwrap_or(rest);
        let data = hex::decode(hex).map_err(|_| format!("\"{s}\": keyid must be hex"))?;
        return id(IdType::KEY_ID, &data);
    }
    if s.contains('=') && (s.contains(',') || s.contains('/')) {
        return Err(format!(
            "\"{s}\": distinguished-name identities are not supported yet; use an FQDN, \
             an email address or an IP address"
        ));
    }
    match s.parse::<IpAddr>() {
        Ok(IpAddr::V4(a)) => id(IdType::IPV4_ADDR, &a.octets()),
        Ok(IpAddr::V6(a)) => id(IdType::IPV6_ADDR, &a.octets()),
        Err(_) if s.contains('@') => id(IdType::RFC822_ADDR, s.as_bytes()),
        Err(_) => {
            let ok = s
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'));
            if ok {
                id(IdType::FQDN, s.as_bytes())
            } else {
                Err(format!(
                    "\"{s}\" is not a valid identity (FQDN, email, IP address)"
                ))
            }
        }
    }
}

/// Parses a remote identity: `*` (anyone), a glob with `*`, or an exact identity.
pub fn parse_identity_pattern(s: &str) -> Result<IdentityPattern, String> {
    let s = s.trim();
    if s == "*" || s == "%any" {
        Ok(IdentityPattern::Any)
    } else if s.contains('*') {
        Ok(IdentityPattern::Glob(s.to_owned()))
    } else {
        parse_identity(s).map(IdentityPattern::Exact)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ike_proposals() {
        let p = parse_ike_proposal("aes128gcm16-prfsha256-x25519").unwrap();
        assert_eq!(
            p.encr,
            vec![EncrAlg {
                id: EncrId::AES_GCM_16,
                key_bits: 128
            }]
        );
        assert!(p.integ.is_empty());
        assert_eq!(p.prf, vec![PrfId::HMAC_SHA2_256]);
        assert_eq!(p.ke, vec![KeGroup::CURVE25519]);
        let p = parse_ike_proposal("aes256-sha256-modp2048").unwrap();
        assert_eq!(p.prf, vec![PrfId::HMAC_SHA2_256]);
        assert_eq!(p.integ, vec![IntegId::HMAC_SHA2_256_128]);
        assert!(
            parse_ike_proposal("aes128gcm16-x25519")
                .unwrap_err()
                .contains("no PRF")
        );
        assert!(
            parse_ike_proposal("aes999-sha256-x25519")
                .unwrap_err()
                .contains("\"aes999\"")
        );
    }

    #[test]
    fn esp_proposals() {
        let p = parse_esp_proposal("chacha20poly1305").unwrap();
        assert_eq!(p.encr[0].id, EncrId::CHACHA20_POLY1305);
        let p = parse_esp_proposal("aes256-sha256-modp2048-esn").unwrap();
        assert_eq!(p.ke, vec![KeGroup::MODP_2048]);
        assert_eq!(p.esn, vec![EsnId::ESN]);
        assert!(
            parse_esp_proposal("aes256")
                .unwrap_err()
                .contains("no integrity")
        );
    }

    #[test]
    fn identities() {
        assert_eq!(parse_identity("gw.example").unwrap().id_type, IdType::FQDN);
        assert_eq!(
            parse_identity("a@b.example").unwrap().id_type,
            IdType::RFC822_ADDR
        );
        let ip = parse_identity("192.0.2.1").unwrap();
        assert_eq!(
            (ip.id_type, ip.data),
            (IdType::IPV4_ADDR, vec![192, 0, 2, 1])
        );
        assert_eq!(parse_identity_pattern("*").unwrap(), IdentityPattern::Any);
        assert_eq!(
            parse_identity_pattern("*@example.com").unwrap(),
            IdentityPattern::Glob("*@example.com".into())
        );
        assert!(parse_identity("bad id!").is_err());
    }
}
