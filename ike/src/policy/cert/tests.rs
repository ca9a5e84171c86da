//! Certificates from `../testdata/gen.sh` (strongSwan pki + openssl, generated once).

use std::time::{Duration, SystemTime};

use super::*;
use crate::config::Identity;

const CA: &[u8] = include_bytes!("../testdata/ca.der");
const OTHER_CA: &[u8] = include_bytes!("../testdata/other_ca.der");
const INT: &[u8] = include_bytes!("../testdata/int.der");
const INT2: &[u8] = include_bytes!("../testdata/int2.der");
const EE: &[u8] = include_bytes!("../testdata/ee.der");
const EE_PSS: &[u8] = include_bytes!("../testdata/ee_pss.der");
const EE_DIRECT: &[u8] = include_bytes!("../testdata/ee_direct.der");
const EE_EXPIRED: &[u8] = include_bytes!("../testdata/ee_expired.der");
const EE_TOO_DEEP: &[u8] = include_bytes!("../testdata/ee_too_deep.der");
const LEAF_BY_EE: &[u8] = include_bytes!("../testdata/leaf_by_ee.der");
const NOKS_CA: &[u8] = include_bytes!("../testdata/noks_ca.der");
const EE_BY_NOKS: &[u8] = include_bytes!("../testdata/ee_by_noks.der");
const EC_CA: &[u8] = include_bytes!("../testdata/ec_ca.der");
const EE_ECDSA: &[u8] = include_bytes!("../testdata/ee_ecdsa.der");
const CRIT_CA: &[u8] = include_bytes!("../testdata/crit_ca.der");
const EE_CRIT: &[u8] = include_bytes!("../testdata/ee_crit.der");

/// 2030-01-01T00:00:00Z, inside every test certificate's validity except the expired one.
fn y2030() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_893_456_000)
}

fn v(x: &[u8]) -> Vec<u8> {
    x.to_vec()
}

fn id(s: &str) -> Identity {
    Identity::parse(s).unwrap()
}

#[test]
fn parses_the_fields_ike_needs() {
    let c = ParsedCert::from_der(EE).unwrap();
    assert_eq!(c.subject(), "C=CH, O=baton test, CN=client.example");
    assert_eq!(c.issuer(), "C=CH, O=baton test, CN=Intermediate CA");
    assert_eq!(
        c.alt_names(),
        vec![
            AltName::Dns("client.example".to_owned()),
            AltName::Email("alice@example.com".to_owned()),
            AltName::Ip("192.0.2.10".parse().unwrap()),
        ]
    );
    assert_eq!(c.common_names(), vec!["client.example".to_owned()]);
    // The SPKI is an rsaEncryption key of 2048 bits (294 octets of DER).
    let spki = c.spki_der();
    assert_eq!(spki.len(), 294);
    assert_eq!(&spki[..4], &[0x30, 0x82, 0x01, 0x22]);
    assert!(c.der() == EE);
    assert!(matches!(
        ParsedCert::from_der(&EE[..100]),
        Err(CertError::Malformed(_))
    ));
}

#[test]
fn valid_chains_through_intermediates_and_directly() {
    let ok = validate_chain(EE, &[v(INT)], &[v(CA)], y2030()).unwrap();
    assert_eq!(ok.issuers.len(), 2);
    assert_eq!(ok.anchor().unwrap().der(), CA);
    assert_eq!(ok.spki_der(), ParsedCert::from_der(EE).unwrap().spki_der());
    // The intermediate as the configured anchor also works.
    assert!(validate_chain(EE, &[], &[v(INT)], y2030()).is_ok());
    // Irrelevant extras (and junk) among the intermediates do not matter.
    assert!(
        validate_chain(
            EE,
            &[v(OTHER_CA), vec![1, 2, 3], v(INT)],
            &[v(OTHER_CA), v(CA)],
            y2030()
        )
        .is_ok()
    );
    // RSASSA-PSS (SHA-256) and sha512WithRSAEncryption signatures.
    assert!(validate_chain(EE_PSS, &[v(INT)], &[v(CA)], y2030()).is_ok());
    assert!(validate_chain(EE_DIRECT, &[], &[v(CA)], y2030()).is_ok());
}

#[test]
fn expired_and_not_yet_valid() {
    let err = validate_chain(EE_EXPIRED, &[v(INT)], &[v(CA)], y2030()).unwrap_err();
    assert!(
        matches!(
            err,
            CertError::Expired {
                not_after: 1_609_459_200,
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("expired.example"), "{err}");
    // Before the chain's validity (2025): the end entity is not yet valid.
    let early = SystemTime::UNIX_EPOCH + Duration::from_secs(1_735_689_600);
    assert!(matches!(
        validate_chain(EE, &[v(INT)], &[v(CA)], early),
        Err(CertError::NotYetValid { .. })
    ));
    // After 2036 everything has expired.
    let late = SystemTime::UNIX_EPOCH + Duration::from_secs(2_145_916_800);
    assert!(matches!(
        validate_chain(EE, &[v(INT)], &[v(CA)], late),
        Err(CertError::Expired { .. })
    ));
}

#[test]
fn wrong_ca_or_missing_intermediate() {
    let err = validate_chain(EE, &[v(INT)], &[v(OTHER_CA)], y2030()).unwrap_err();
    assert_eq!(
        err,
        CertError::UnknownIssuer {
            subject: "C=CH, O=baton test, CN=Intermediate CA".to_owned(),
            issuer: "C=CH, O=baton test, CN=Root CA".to_owned(),
        }
    );
    assert!(matches!(
        validate_chain(EE, &[], &[v(CA)], y2030()),
        Err(CertError::UnknownIssuer { .. })
    ));
    assert!(matches!(
        validate_chain(EE, &[v(INT)], &[], y2030()),
        Err(CertError::UnknownIssuer { .. })
    ));
}

#[test]
fn tampered_signature_and_tampered_content() {
    let mut sig = v(EE);
    let last = sig.len() - 1;
    sig[last] ^= 0x01;
    assert!(matches!(
        validate_chain(&sig, &[v(INT)], &[v(CA)], y2030()),
        Err(CertError::BadSignature { .. })
    ));
    // Change a character of the subject's CN inside tbsCertificate.
    let mut tbs = v(EE);
    let pos = tbs
        .windows(14)
        .position(|w| w == b"client.example")
        .unwrap();
    tbs[pos] = b'C';
    let err = validate_chain(&tbs, &[v(INT)], &[v(CA)], y2030()).unwrap_err();
    assert!(matches!(err, CertError::BadSignature { .. }), "{err}");
    // A tampered intermediate breaks the chain too.
    let mut int = v(INT);
    let last = int.len() - 1;
    int[last] ^= 0x80;
    assert!(validate_chain(EE, &[int], &[v(CA)], y2030()).is_err());
}

#[test]
fn issuer_constraints() {
    // Issued by an end entity: names chain and the signature verifies, but it is no CA.
    let err = validate_chain(LEAF_BY_EE, &[v(EE), v(INT)], &[v(CA)], y2030()).unwrap_err();
    assert_eq!(
        err,
        CertError::NotCa {
            issuer: "C=CH, O=baton test, CN=client.example".to_owned(),
            subject: "C=CH, O=baton test, CN=leaf.example".to_owned(),
        }
    );
    // A CA whose keyUsage lacks keyCertSign.
    assert!(matches!(
        validate_chain(EE_BY_NOKS, &[v(NOKS_CA)], &[v(CA)], y2030()),
        Err(CertError::NoCertSign { .. })
    ));
    // The intermediate has pathLenConstraint 0; a second intermediate below it is too many.
    let err = validate_chain(EE_TOO_DEEP, &[v(INT2), v(INT)], &[v(CA)], y2030()).unwrap_err();
    assert!(
        matches!(
            err,
            CertError::PathLenExceeded {
                allowed: 0,
                found: 1,
                ..
            }
        ),
        "{err}"
    );
    // ... but trusting the second intermediate directly is fine.
    assert!(validate_chain(EE_TOO_DEEP, &[], &[v(INT2)], y2030()).is_ok());
}

#[test]
fn identities_match_the_certificate() {
    let c = ParsedCert::from_der(EE).unwrap();
    assert!(identity_matches_cert(
        &id("C=CH, O=baton test, CN=client.example"),
        &c
    ));
    assert!(identity_matches_cert(
        &id("c=ch,o=BATON TEST,cn=client.example"),
        &c
    ));
    assert!(identity_matches_cert(&id("client.example"), &c));
    assert!(identity_matches_cert(&id("CLIENT.example"), &c));
    assert!(identity_matches_cert(&id("alice@example.com"), &c));
    assert!(identity_matches_cert(&id("192.0.2.10"), &c));

    assert!(!identity_matches_cert(
        &id("C=CH, O=baton test, CN=other.example"),
        &c
    ));
    assert!(!identity_matches_cert(&id("other.example"), &c));
    assert!(!identity_matches_cert(&id("bob@example.com"), &c));
    assert!(!identity_matches_cert(&id("192.0.2.11"), &c));
    assert!(!identity_matches_cert(&id("@#01020304"), &c));

    // No SAN at all: the FQDN may match the subject CN.
    let direct = ParsedCert::from_der(EE_DIRECT).unwrap();
    assert!(direct.alt_names().is_empty());
    assert!(identity_matches_cert(&id("direct.example"), &direct));
    // With dNSNames present, the CN fallback does not apply.
    let pss = ParsedCert::from_der(EE_PSS).unwrap();
    assert!(!identity_matches_cert(&id("pss.example.org"), &pss));
}

#[test]
fn certreq_hash_is_sha1_of_the_spki() {
    // `openssl x509 -inform DER -in ca.der -noout -pubkey | openssl pkey -pubin -outform DER
    //  | openssl sha1` (2026-11-21).
    let h = certreq_hash(CA).unwrap();
    let hex: String = h.iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(hex, "705516856c96c43b9510cced6f707ed27f8e10f0");
    assert_ne!(h, certreq_hash(OTHER_CA).unwrap());
    let data = certreq_data(&[v(CA), vec![0xff], v(OTHER_CA)]);
    assert_eq!(data.len(), 40);
    assert!(certreq_names(&data, CA));
    assert!(certreq_names(&data, OTHER_CA));
    assert!(!certreq_names(&data, INT));
    assert!(certreq_hash(&[0x30, 0x00]).is_err());
}

#[test]
fn pem_bundles_keep_the_exact_der() {
    fn b64(data: &[u8]) -> String {
        const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let mut s = String::new();
        for chunk in data.chunks(3) {
            let n =
                chunk.iter().fold(0u32, |a, &b| a << 8 | u32::from(b)) << (8 * (3 - chunk.len()));
            for i in 0..4 {
                if i <= chunk.len() {
                    s.push(char::from(T[((n >> (18 - 6 * i)) & 63) as usize]));
                } else {
                    s.push('=');
                }
            }
        }
        s.as_bytes()
            .chunks(64)
            .map(|l| std::str::from_utf8(l).unwrap().to_owned() + "\n")
            .collect()
    }
    let pem = format!(
        "subject text\n-----BEGIN CERTIFICATE-----\n{}-----END CERTIFICATE-----\n-----BEGIN CERTIFICATE-----\n{}-----END CERTIFICATE-----\n",
        b64(INT),
        b64(CA)
    );
    assert_eq!(
        pem_certificates(pem.as_bytes()).unwrap(),
        vec![v(INT), v(CA)]
    );
    assert!(pem_certificates(b"nothing here").is_err());
}

#[test]
fn unsupported_algorithms_and_extensions() {
    let err = validate_chain(EE_ECDSA, &[], &[v(EC_CA)], y2030()).unwrap_err();
    assert!(matches!(err, CertError::Unsupported { .. }), "{err}");
    assert!(err.to_string().contains("1.2.840.10045.4.3.2"), "{err}");
    let err = validate_chain(EE_CRIT, &[], &[v(CRIT_CA)], y2030()).unwrap_err();
    assert_eq!(
        err,
        CertError::UnsupportedCriticalExtension {
            subject: "C=CH, O=baton test, CN=crit.example".to_owned(),
            oid: "1.3.6.1.4.1.55555.1".to_owned(),
        }
    );
}

#[test]
fn end_entity_key_usage_must_allow_signatures() {
    // The intermediate's keyUsage is keyCertSign + cRLSign only: it cannot sign AUTH.
    let err = validate_chain(INT, &[], &[v(CA)], y2030()).unwrap_err();
    assert_eq!(
        err,
        CertError::NoDigitalSignature("C=CH, O=baton test, CN=Intermediate CA".to_owned())
    );
}
