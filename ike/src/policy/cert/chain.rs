//! Certificate path validation (RFC 5280 §6, the parts a VPN gateway needs): from the end
//! entity through the intermediates the peer sent up to one of the configured trust
//! anchors, checking signatures, validity periods, name chaining, basicConstraints,
//! keyUsage and pathLenConstraint.

use std::time::SystemTime;

use der::Encode;
use x509_cert::ext::pkix::{BasicConstraints, KeyUsage};

use super::{CertError, ParsedCert};
use crate::crypto::{CryptoError, SignatureScheme, decode_signature_auth, verify_rsa};
use crate::policy::identity::dn_equal;

/// The longest chain accepted, end entity and trust anchor included.
pub const MAX_CHAIN_DEPTH: usize = 8;

/// A certificate whose chain up to a trust anchor checked out.
#[derive(Clone, Debug)]
pub struct ValidatedCert {
    /// The end entity.
    pub end_entity: ParsedCert,
    /// Its issuers, from the one that signed it up to the trust anchor (last).
    pub issuers: Vec<ParsedCert>,
}

impl ValidatedCert {
    /// The end entity's SubjectPublicKeyInfo (DER), to verify the peer's AUTH payload.
    pub fn spki_der(&self) -> Vec<u8> {
        self.end_entity.spki_der()
    }

    /// The trust anchor the chain ends at.
    pub fn anchor(&self) -> Option<&ParsedCert> {
        self.issuers.last()
    }
}

/// Extensions we process or that carry nothing to enforce here; any other extension
/// marked critical makes the certificate unacceptable (RFC 5280 §4.2).
const KNOWN_EXTENSIONS: &[&str] = &[
    "2.5.29.14", // subjectKeyIdentifier
    "2.5.29.15", // keyUsage
    "2.5.29.17", // subjectAltName
    "2.5.29.19", // basicConstraints
    "2.5.29.32", // certificatePolicies (no policy checking: any policy is acceptable)
    "2.5.29.35", // authorityKeyIdentifier
    "2.5.29.37", // extKeyUsage
];

fn check_critical_extensions(cert: &ParsedCert) -> Result<(), CertError> {
    let exts = cert.x509().tbs_certificate().extensions();
    for e in exts.map(|v| v.as_slice()).unwrap_or_default() {
        let oid = e.extn_id.to_string();
        if e.critical && !KNOWN_EXTENSIONS.contains(&oid.as_str()) {
            return Err(CertError::UnsupportedCriticalExtension {
                subject: cert.subject(),
                oid,
            });
        }
    }
    Ok(())
}

/// One DER TLV at the start of `b`: (the whole TLV, its value, what follows).
fn tlv(b: &[u8]) -> Option<(&[u8], &[u8], &[u8])> {
    let (&first_len, after_tag) = b.get(1..)?.split_first()?;
    let (len, hdr) = if first_len < 0x80 {
        (usize::from(first_len), 2)
    } else {
        let n = usize::from(first_len & 0x7f);
        if n == 0 || n > 4 {
            return None;
        }
        let len_bytes = after_tag.get(..n)?;
        let len = len_bytes
            .iter()
            .fold(0usize, |acc, &x| (acc << 8) | usize::from(x));
        (len, 2 + n)
    };
    let end = hdr.checked_add(len)?;
    Some((b.get(..end)?, b.get(hdr..end)?, b.get(end..)?))
}

/// The tbsCertificate octets exactly as signed: the first element of the outer SEQUENCE.
fn tbs_bytes(der: &[u8]) -> Option<&[u8]> {
    let (_, body, _) = tlv(der)?;
    let (tbs, _, _) = tlv(body)?;
    Some(tbs)
}

/// The signature scheme of `cert`'s signatureAlgorithm (through the RFC 7427 decoder,
/// which knows the RSA PKCS#1 and PSS identifiers) and the signature value.
fn signature_of(cert: &ParsedCert) -> Result<(SignatureScheme, Vec<u8>), CertError> {
    let x = cert.x509();
    let unsupported = |what: String| CertError::Unsupported {
        subject: cert.subject(),
        what,
    };
    if x.signature_algorithm() != x.tbs_certificate().signature() {
        return Err(CertError::Malformed(format!(
            "certificate \"{}\": signatureAlgorithm differs from the signature field of tbsCertificate",
            cert.subject()
        )));
    }
    let alg = x
        .signature_algorithm()
        .to_der()
        .map_err(|e| CertError::Malformed(e.to_string()))?;
    let sig = x.signature().as_bytes().ok_or_else(|| {
        CertError::Malformed(format!(
            "certificate \"{}\": signature has unused bits",
            cert.subject()
        ))
    })?;
    let len = u8::try_from(alg.len())
        .map_err(|_| unsupported("signature algorithm identifier too long".to_owned()))?;
    let mut blob = vec![len];
    blob.extend_from_slice(&alg);
    blob.extend_from_slice(sig);
    let (scheme, _) = decode_signature_auth(&blob).map_err(|e| match e {
        CryptoError::Unsupported(what) => unsupported(format!(
            "signature algorithm {} is not supported ({what})",
            x.signature_algorithm().oid
        )),
        _ => unsupported(format!(
            "signature algorithm {} is not supported",
            x.signature_algorithm().oid
        )),
    })?;
    if scheme == SignatureScheme::RsaPkcs1Sha1 {
        return Err(unsupported("SHA-1 signatures are not accepted".to_owned()));
    }
    Ok((scheme, sig.to_vec()))
}

/// Checks that `issuer` may have issued `cert`, with `below` intermediate CAs between
/// the issuer and the end entity, and that its signature on `cert` verifies.
fn check_issued_by(
    cert: &ParsedCert,
    issuer: &ParsedCert,
    below: usize,
    now: SystemTime,
) -> Result<(), CertError> {
    let (scheme, sig) = signature_of(cert)?;
    let tbs = tbs_bytes(cert.der())
        .ok_or_else(|| CertError::Malformed("cannot locate tbsCertificate".to_owned()))?;
    verify_rsa(&issuer.spki_der(), scheme, tbs, &sig).map_err(|e| match e {
        CryptoError::Unsupported(what) => CertError::Unsupported {
            subject: issuer.subject(),
            what: format!("public key: {what}"),
        },
        _ => CertError::BadSignature {
            subject: cert.subject(),
            issuer: issuer.subject(),
        },
    })?;
    let tbs_i = issuer.x509().tbs_certificate();
    let bc = tbs_i.get_extension::<BasicConstraints>().ok().flatten();
    let Some((_, bc)) = bc.filter(|(_, bc)| bc.ca) else {
        return Err(CertError::NotCa {
            issuer: issuer.subject(),
            subject: cert.subject(),
        });
    };
    if let Some(allowed) = bc.path_len_constraint
        && below > usize::from(allowed)
    {
        return Err(CertError::PathLenExceeded {
            issuer: issuer.subject(),
            allowed,
            found: below,
        });
    }
    match tbs_i.get_extension::<KeyUsage>() {
        Ok(Some((_, ku))) if !ku.key_cert_sign() => {
            return Err(CertError::NoCertSign {
                issuer: issuer.subject(),
                subject: cert.subject(),
            });
        }
        Err(e) => {
            return Err(CertError::Malformed(format!(
                "keyUsage of \"{}\": {e}",
                issuer.subject()
            )));
        }
        _ => {}
    }
    check_critical_extensions(issuer)?;
    issuer.check_validity(now)
}

/// Validates `end_entity` (DER) up to one of `trust_anchors` (DER CA certificates),
/// through any of `intermediates` (DER, in any order, as the peer sent them), at `now`.
///
/// Checks: every certificate's validity period, names chaining (issuer = subject of the
/// next, compared normalised), signatures (RSA PKCS#1 v1.5 with SHA-256/384/512, RSASSA-PSS),
/// basicConstraints cA and pathLenConstraint on every issuer, keyCertSign on issuers with
/// keyUsage, digitalSignature on an end entity with keyUsage, no unknown critical
/// extension, at most [`MAX_CHAIN_DEPTH`] certificates. The first error met is returned.
pub fn validate_chain(
    end_entity: &[u8],
    intermediates: &[Vec<u8>],
    trust_anchors: &[Vec<u8>],
    now: SystemTime,
) -> Result<ValidatedCert, CertError> {
    let ee = ParsedCert::from_der(end_entity)?;
    ee.check_validity(now)?;
    check_critical_extensions(&ee)?;
    if let Ok(Some((_, ku))) = ee.x509().tbs_certificate().get_extension::<KeyUsage>()
        && !ku.digital_signature()
        && !ku.non_repudiation()
    {
        return Err(CertError::NoDigitalSignature(ee.subject()));
    }
    // Unparseable extras from the peer are ignored; a bad anchor cannot be used.
    let pool: Vec<ParsedCert> = intermediates
        .iter()
        .filter_map(|d| ParsedCert::from_der(d).ok())
        .collect();
    let anchors: Vec<ParsedCert> = trust_anchors
        .iter()
        .filter_map(|d| ParsedCert::from_der(d).ok())
        .collect();
    let mut used = vec![false; pool.len()];
    let mut issuers: Vec<ParsedCert> = Vec::new();
    let mut current = ee.clone();
    loop {
        if issuers.len() + 2 > MAX_CHAIN_DEPTH {
            return Err(CertError::TooDeep(MAX_CHAIN_DEPTH));
        }
        let issuer_name = current.issuer_der();
        let below = issuers.len();
        let mut last_err: Option<CertError> = None;
        for a in anchors
            .iter()
            .filter(|a| dn_equal(&a.subject_der(), &issuer_name))
        {
            match check_issued_by(&current, a, below, now) {
                Ok(()) => {
                    issuers.push(a.clone());
                    return Ok(ValidatedCert {
                        end_entity: ee,
                        issuers,
                    });
                }
                Err(e) => last_err = Some(e),
            }
        }
        let mut next = None;
        for (i, c) in pool.iter().enumerate() {
            if used.get(i).copied().unwrap_or(true) || !dn_equal(&c.subject_der(), &issuer_name) {
                continue;
            }
            match check_issued_by(&current, c, below, now) {
                Ok(()) => {
                    next = Some(i);
                    break;
                }
                Err(e) => last_err = Some(e),
            }
        }
        let Some(i) = next else {
            return Err(last_err.unwrap_or_else(|| CertError::UnknownIssuer {
                subject: current.subject(),
                issuer: current.issuer(),
            }));
        };
        if let Some(u) = used.get_mut(i) {
            *u = true;
        }
        let Some(c) = pool.get(i) else {
            return Err(CertError::TooDeep(MAX_CHAIN_DEPTH));
        };
        issuers.push(c.clone());
        current = c.clone();
    }
}
