//! X.509 certificates for IKE_AUTH (RFC 7296 §3.6, §3.7; RFC 5280): parsing, the fields
//! IKE needs (public key, subject, subjectAltNames), chain validation up to configured
//! trust anchors, identity matching and CERTREQ hashes.
//!
//! Signatures are checked with [`crate::crypto::verify_rsa`]: sha256/384/512WithRSAEncryption
//! and RSASSA-PSS. SHA-1 signatures are refused; ECDSA is reported as unsupported.
//! Revocation (CRL, OCSP) is not checked.

mod chain;
#[cfg(test)]
mod tests;

pub use chain::{MAX_CHAIN_DEPTH, ValidatedCert, validate_chain};

use std::net::IpAddr;
use std::time::SystemTime;

use der::{Decode, Encode};
use sha1::{Digest, Sha1};
use x509_cert::Certificate;
use x509_cert::ext::pkix::SubjectAltName;
use x509_cert::ext::pkix::name::GeneralName;

use crate::config::Identity;
use crate::policy::identity::{dn_equal, dn_to_string};
use crate::wire::registry::IdType;

/// Why a certificate or chain was refused. Messages name the certificate by its subject.
#[derive(Clone, PartialEq, Eq, Debug, thiserror::Error)]
pub enum CertError {
    /// Not a DER X.509 certificate (or PEM without one).
    #[error("malformed certificate: {0}")]
    Malformed(String),
    /// `now` is after notAfter.
    #[error("certificate \"{subject}\" expired (not valid after {not_after})")]
    Expired {
        /// Subject DN.
        subject: String,
        /// notAfter, seconds since the Unix epoch.
        not_after: u64,
    },
    /// `now` is before notBefore.
    #[error("certificate \"{subject}\" is not yet valid (not valid before {not_before})")]
    NotYetValid {
        /// Subject DN.
        subject: String,
        /// notBefore, seconds since the Unix epoch.
        not_before: u64,
    },
    /// No trust anchor or intermediate with the issuer's name whose key verifies it.
    #[error(
        "certificate \"{subject}\": issuer \"{issuer}\" is not a trusted CA and not among the intermediates"
    )]
    UnknownIssuer {
        /// Subject DN.
        subject: String,
        /// Issuer DN.
        issuer: String,
    },
    /// The signature does not verify with the issuer's key.
    #[error("certificate \"{subject}\": signature does not verify with the key of \"{issuer}\"")]
    BadSignature {
        /// Subject DN.
        subject: String,
        /// Issuer DN.
        issuer: String,
    },
    /// An issuer without basicConstraints cA.
    #[error(
        "certificate \"{issuer}\" issued \"{subject}\" but is not a CA (basicConstraints cA is not set)"
    )]
    NotCa {
        /// The issuer's subject DN.
        issuer: String,
        /// The issued certificate's subject DN.
        subject: String,
    },
    /// An issuer whose keyUsage lacks keyCertSign.
    #[error(
        "certificate \"{issuer}\" issued \"{subject}\" but its keyUsage does not allow keyCertSign"
    )]
    NoCertSign {
        /// The issuer's subject DN.
        issuer: String,
        /// The issued certificate's subject DN.
        subject: String,
    },
    /// More intermediates below a CA than its pathLenConstraint allows.
    #[error(
        "certificate \"{issuer}\" allows {allowed} intermediate CA(s) below it, the chain has {found}"
    )]
    PathLenExceeded {
        /// The constraining CA.
        issuer: String,
        /// Its pathLenConstraint.
        allowed: u8,
        /// Intermediates found below it.
        found: usize,
    },
    /// The chain is longer than [`MAX_CHAIN_DEPTH`].
    #[error("certificate chain longer than {0} certificates")]
    TooDeep(usize),
    /// The end entity's keyUsage does not allow signatures.
    #[error("certificate \"{0}\": keyUsage allows neither digitalSignature nor nonRepudiation")]
    NoDigitalSignature(String),
    /// A critical extension we do not process (RFC 5280 §4.2).
    #[error("certificate \"{subject}\" has an unsupported critical extension {oid}")]
    UnsupportedCriticalExtension {
        /// Subject DN.
        subject: String,
        /// The extension's OID.
        oid: String,
    },
    /// A signature or key algorithm we do not implement (ECDSA, ...) or refuse (SHA-1).
    #[error("certificate \"{subject}\": {what}")]
    Unsupported {
        /// Subject DN.
        subject: String,
        /// What is not supported.
        what: String,
    },
}

/// A name from the subjectAltName extension that IKE identities can match.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum AltName {
    /// dNSName.
    Dns(String),
    /// rfc822Name.
    Email(String),
    /// iPAddress.
    Ip(IpAddr),
}

/// A parsed X.509 certificate, with its original DER.
#[derive(Clone, Debug)]
pub struct ParsedCert {
    der: Vec<u8>,
    cert: Certificate,
}

/// Seconds since the Unix epoch (0 before it).
fn unix(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl ParsedCert {
    /// Parses a DER certificate.
    pub fn from_der(der: &[u8]) -> Result<Self, CertError> {
        let cert = Certificate::from_der(der).map_err(|e| CertError::Malformed(e.to_string()))?;
        Ok(Self {
            der: der.to_vec(),
            cert,
        })
    }

    /// The certificate as received (DER).
    pub fn der(&self) -> &[u8] {
        &self.der
    }

    /// The decoded certificate.
    pub fn x509(&self) -> &Certificate {
        &self.cert
    }

    /// The SubjectPublicKeyInfo, DER (what [`crate::crypto::verify_rsa`] takes).
    pub fn spki_der(&self) -> Vec<u8> {
        self.cert
            .tbs_certificate()
            .subject_public_key_info()
            .to_der()
            .unwrap_or_default()
    }

    /// The subject Name, DER (the data of an ID_DER_ASN1_DN identity).
    pub fn subject_der(&self) -> Vec<u8> {
        self.cert
            .tbs_certificate()
            .subject()
            .to_der()
            .unwrap_or_default()
    }

    /// The issuer Name, DER.
    pub fn issuer_der(&self) -> Vec<u8> {
        self.cert
            .tbs_certificate()
            .issuer()
            .to_der()
            .unwrap_or_default()
    }

    /// The subject as text (`C=CH, O=Example, CN=gw`).
    pub fn subject(&self) -> String {
        dn_to_string(&self.subject_der()).unwrap_or_else(|| "<unprintable DN>".to_owned())
    }

    /// The issuer as text.
    pub fn issuer(&self) -> String {
        dn_to_string(&self.issuer_der()).unwrap_or_else(|| "<unprintable DN>".to_owned())
    }

    /// notBefore.
    pub fn not_before(&self) -> SystemTime {
        self.cert
            .tbs_certificate()
            .validity()
            .not_before
            .to_system_time()
    }

    /// notAfter.
    pub fn not_after(&self) -> SystemTime {
        self.cert
            .tbs_certificate()
            .validity()
            .not_after
            .to_system_time()
    }

    /// Checks `now` against the validity period (RFC 5280 §4.1.2.5).
    pub fn check_validity(&self, now: SystemTime) -> Result<(), CertError> {
        if now < self.not_before() {
            return Err(CertError::NotYetValid {
                subject: self.subject(),
                not_before: unix(self.not_before()),
            });
        }
        if now > self.not_after() {
            return Err(CertError::Expired {
                subject: self.subject(),
                not_after: unix(self.not_after()),
            });
        }
        Ok(())
    }

    /// The dNSName, rfc822Name and iPAddress entries of subjectAltName (others skipped; a
    /// malformed extension yields none).
    pub fn alt_names(&self) -> Vec<AltName> {
        let Ok(Some((_, SubjectAltName(names)))) = self
            .cert
            .tbs_certificate()
            .get_extension::<SubjectAltName>()
        else {
            return Vec::new();
        };
        names
            .iter()
            .filter_map(|n| match n {
                GeneralName::DnsName(s) => Some(AltName::Dns(s.to_string())),
                GeneralName::Rfc822Name(s) => Some(AltName::Email(s.to_string())),
                GeneralName::IpAddress(o) => {
                    let b = o.as_bytes();
                    if let Ok(v4) = <[u8; 4]>::try_from(b) {
                        Some(AltName::Ip(IpAddr::from(v4)))
                    } else {
                        <[u8; 16]>::try_from(b)
                            .ok()
                            .map(|v6| AltName::Ip(IpAddr::from(v6)))
                    }
                }
                _ => None,
            })
            .collect()
    }

    /// The subject's commonName values, as text.
    pub fn common_names(&self) -> Vec<String> {
        const CN: der::oid::ObjectIdentifier = der::oid::ObjectIdentifier::new_unwrap("2.5.4.3");
        self.cert
            .tbs_certificate()
            .subject()
            .iter()
            .filter(|atv| atv.oid == CN)
            .filter_map(|atv| {
                std::str::from_utf8(atv.value.value())
                    .ok()
                    .map(str::to_owned)
            })
            .collect()
    }
}

/// Whether the certificate may stand for `id` (RFC 7296 §3.5; RFC 4945 §3.1 for the
/// rules): an ID_DER_ASN1_DN equal to the subject; an ID_FQDN, ID_RFC822_ADDR or IP address
/// among the subjectAltNames. For ID_FQDN, when the certificate has no dNSName at all, a
/// subject commonName equal to the FQDN is accepted as a fallback (certificates from older
/// CAs carry the host name only there). FQDN and e-mail compare without letter case.
pub fn identity_matches_cert(id: &Identity, cert: &ParsedCert) -> bool {
    let text = || String::from_utf8_lossy(&id.data).into_owned();
    match id.id_type {
        IdType::DER_ASN1_DN => dn_equal(&id.data, &cert.subject_der()),
        IdType::FQDN => {
            let want = text();
            let names = cert.alt_names();
            let has_dns = names.iter().any(|n| matches!(n, AltName::Dns(_)));
            names
                .iter()
                .any(|n| matches!(n, AltName::Dns(d) if d.eq_ignore_ascii_case(&want)))
                || (!has_dns
                    && cert
                        .common_names()
                        .iter()
                        .any(|cn| cn.eq_ignore_ascii_case(&want)))
        }
        IdType::RFC822_ADDR => {
            let want = text();
            cert.alt_names()
                .iter()
                .any(|n| matches!(n, AltName::Email(e) if e.eq_ignore_ascii_case(&want)))
        }
        IdType::IPV4_ADDR | IdType::IPV6_ADDR => {
            let addr = match id.data.len() {
                4 => <[u8; 4]>::try_from(id.data.as_slice())
                    .ok()
                    .map(IpAddr::from),
                16 => <[u8; 16]>::try_from(id.data.as_slice())
                    .ok()
                    .map(IpAddr::from),
                _ => None,
            };
            addr.is_some_and(|a| cert.alt_names().contains(&AltName::Ip(a)))
        }
        _ => false,
    }
}

/// The CERTREQ entry for a CA (RFC 7296 §3.7): SHA-1 of the DER SubjectPublicKeyInfo of
/// its certificate.
pub fn certreq_hash(ca_der: &[u8]) -> Result<[u8; 20], CertError> {
    let ca = ParsedCert::from_der(ca_der)?;
    Ok(Sha1::digest(ca.spki_der()).into())
}

/// The Certification Authority field of a CERTREQ payload for these CAs: their hashes
/// concatenated. CAs that do not parse are left out.
pub fn certreq_data(cas: &[Vec<u8>]) -> Vec<u8> {
    cas.iter()
        .filter_map(|c| certreq_hash(c).ok())
        .flatten()
        .collect()
}

/// Whether a received CERTREQ's data names the CA `ca_der` (so we send the chain up to it).
pub fn certreq_names(data: &[u8], ca_der: &[u8]) -> bool {
    certreq_hash(ca_der).is_ok_and(|h| data.chunks_exact(20).any(|c| c == h))
}

/// The DER certificates of a PEM bundle (`-----BEGIN CERTIFICATE-----` blocks), in order,
/// exactly as encoded (not re-encoded, so their signatures still verify). Other blocks
/// (keys, text between blocks) are skipped.
pub fn pem_certificates(pem: &[u8]) -> Result<Vec<Vec<u8>>, CertError> {
    const BEGIN: &[u8] = b"-----BEGIN CERTIFICATE-----";
    const END: &[u8] = b"-----END CERTIFICATE-----";
    let find = |hay: &[u8], needle: &[u8]| hay.windows(needle.len()).position(|w| w == needle);
    let mut out = Vec::new();
    let mut rest = pem;
    while let Some(start) = find(rest, BEGIN) {
        let block = rest.get(start..).unwrap_or_default();
        let end = find(block, END)
            .ok_or_else(|| CertError::Malformed("PEM certificate without END line".to_owned()))?
            + END.len();
        let (label, der) = der::pem::decode_vec(block.get(..end).unwrap_or_default())
            .map_err(|e| CertError::Malformed(format!("PEM: {e}")))?;
        if label == "CERTIFICATE" {
            ParsedCert::from_der(&der)?;
            out.push(der);
        }
        rest = block.get(end..).unwrap_or_default();
    }
    if out.is_empty() {
        return Err(CertError::Malformed(
            "no certificate in PEM data".to_owned(),
        ));
    }
    Ok(out)
}
