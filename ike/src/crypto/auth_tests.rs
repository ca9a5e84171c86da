//! Unit tests of AUTH data, RSA signatures and RFC 7427 encodings.

use super::*;
use crate::crypto::prf::HMAC_SHA2_256;

const PKCS8_PEM: &str = include_str!("testdata/rsa2048.pkcs8.pem");
const PKCS1_PEM: &str = include_str!("testdata/rsa2048.pkcs1.pem");
const SPKI: &[u8] = include_bytes!("testdata/rsa2048.spki.der");
const MSG: &[u8] = include_bytes!("testdata/msg.bin");
/// Made by OpenSSL (see testdata/README.md).
const OPENSSL_SHA256_PKCS1: &[u8] = include_bytes!("testdata/msg.sha256.pkcs1.sig");
const OPENSSL_SHA1_PKCS1: &[u8] = include_bytes!("testdata/msg.sha1.pkcs1.sig");
const OPENSSL_SHA384_PSS: &[u8] = include_bytes!("testdata/msg.sha384.pss.sig");

const ALL: [SignatureScheme; 7] = [
    SignatureScheme::RsaPkcs1Sha1,
    SignatureScheme::RsaPkcs1Sha256,
    SignatureScheme::RsaPkcs1Sha384,
    SignatureScheme::RsaPkcs1Sha512,
    SignatureScheme::RsaPssSha256,
    SignatureScheme::RsaPssSha384,
    SignatureScheme::RsaPssSha512,
];

fn b64(s: &str) -> Vec<u8> {
    pem::base64_decode(s.as_bytes()).unwrap().to_vec()
}

#[test]
fn psk_auth_is_two_nested_prfs() {
    let octets = b"RealMessage1 | NonceRData | MACedIDForI";
    let inner = HMAC_SHA2_256.compute(b"secret", &[b"Key Pad for IKEv2"]);
    let expected = HMAC_SHA2_256.compute(inner.expose(), &[octets]);
    assert_eq!(psk_auth(&HMAC_SHA2_256, b"secret", octets), expected);
    assert_ne!(psk_auth(&HMAC_SHA2_256, b"Secret", octets), expected);
}

#[test]
fn signed_octets_layout() {
    let out = signed_octets(b"msg", b"nonce", &HMAC_SHA2_256, b"skp", b"\x02\0\0\0id");
    let mac = HMAC_SHA2_256.compute(b"skp", &[b"\x02\0\0\0id"]);
    assert_eq!(&out[..8], b"msgnonce");
    assert_eq!(&out[8..], mac.expose());
}

#[test]
fn pem_pkcs8_and_pkcs1_load_the_same_key() {
    let a = RsaSigningKey::from_pem(PKCS8_PEM).unwrap();
    let b = RsaSigningKey::from_pem(PKCS1_PEM).unwrap();
    assert_eq!(a.public_modulus_len(), 256);
    assert_eq!(a.public_key_spki(), SPKI);
    assert_eq!(b.public_key_spki(), SPKI);
    let dbg = format!("{a:?}");
    assert!(dbg.contains("2048") && dbg.len() < 60, "{dbg}");
}

/// PKCS#1 v1.5 is deterministic: ring's signature must equal OpenSSL's byte for byte.
#[test]
fn pkcs1_signature_matches_openssl() {
    let key = RsaSigningKey::from_pem(PKCS8_PEM).unwrap();
    let sig = key.sign(SignatureScheme::RsaPkcs1Sha256, MSG).unwrap();
    assert_eq!(sig, OPENSSL_SHA256_PKCS1);
}

#[test]
fn openssl_signatures_verify() {
    verify_rsa(
        SPKI,
        SignatureScheme::RsaPkcs1Sha256,
        MSG,
        OPENSSL_SHA256_PKCS1,
    )
    .unwrap();
    verify_rsa(SPKI, SignatureScheme::RsaPkcs1Sha1, MSG, OPENSSL_SHA1_PKCS1).unwrap();
    verify_rsa(SPKI, SignatureScheme::RsaPssSha384, MSG, OPENSSL_SHA384_PSS).unwrap();
    // Wrong scheme, wrong message, altered signature.
    assert_eq!(
        verify_rsa(SPKI, SignatureScheme::RsaPssSha256, MSG, OPENSSL_SHA384_PSS),
        Err(CryptoError::BadSignature)
    );
    assert!(
        verify_rsa(
            SPKI,
            SignatureScheme::RsaPkcs1Sha256,
            b"other",
            OPENSSL_SHA256_PKCS1
        )
        .is_err()
    );
    let mut bad = OPENSSL_SHA256_PKCS1.to_vec();
    bad[100] ^= 1;
    assert!(verify_rsa(SPKI, SignatureScheme::RsaPkcs1Sha256, MSG, &bad).is_err());
}

#[test]
fn every_scheme_signs_and_verifies_except_sha1_signing() {
    let key = RsaSigningKey::from_pem(PKCS1_PEM).unwrap();
    for scheme in ALL {
        match key.sign(scheme, MSG) {
            Ok(sig) => {
                assert_eq!(sig.len(), 256);
                verify_rsa(SPKI, scheme, MSG, &sig).unwrap();
                assert!(verify_rsa(SPKI, scheme, b"message to sigN", &sig).is_err());
            }
            Err(e) => {
                assert_eq!(scheme, SignatureScheme::RsaPkcs1Sha1);
                assert!(matches!(e, CryptoError::Unsupported(_)));
            }
        }
    }
}

#[test]
fn key_loading_errors() {
    use CryptoError::InvalidKey;
    assert!(matches!(
        RsaSigningKey::from_pem("nothing"),
        Err(InvalidKey(_))
    ));
    assert!(matches!(
        RsaSigningKey::from_pem("-----BEGIN CERTIFICATE-----\nZg==\n-----END CERTIFICATE-----\n"),
        Err(InvalidKey(_))
    ));
    assert!(matches!(
        RsaSigningKey::from_pem(
            "-----BEGIN ENCRYPTED PRIVATE KEY-----\nZg==\n-----END ENCRYPTED PRIVATE KEY-----\n"
        ),
        Err(InvalidKey(_))
    ));
    // Truncated Base64 body.
    let truncated: String = PKCS8_PEM
        .lines()
        .filter(|l| l.len() != 64 || l.starts_with('-'))
        .collect::<Vec<_>>()
        .join("\n");
    assert!(RsaSigningKey::from_pem(&truncated).is_err());
    // PKCS#8 DER given as PKCS#1 and vice versa.
    let pkcs8 = pem::parse_all(PKCS8_PEM).unwrap().remove(0).der;
    let pkcs1 = pem::parse_all(PKCS1_PEM).unwrap().remove(0).der;
    assert!(RsaSigningKey::from_pkcs1_der(&pkcs8).is_err());
    assert!(RsaSigningKey::from_pkcs8_der(&pkcs1).is_err());
    assert!(RsaSigningKey::from_pkcs8_der(&pkcs8).is_ok());
    assert!(RsaSigningKey::from_pkcs1_der(&pkcs1).is_ok());
    // An error message never includes key material.
    let e = RsaSigningKey::from_pkcs1_der(&pkcs8)
        .unwrap_err()
        .to_string();
    assert!(e.len() < 80, "{e}");
}

#[test]
fn spki_errors() {
    assert!(matches!(
        verify_rsa(
            &SPKI[..100],
            SignatureScheme::RsaPkcs1Sha256,
            MSG,
            OPENSSL_SHA256_PKCS1
        ),
        Err(CryptoError::InvalidKey(_))
    ));
    // An EC (id-ecPublicKey) SPKI: unsupported, not a panic.
    let alg = der_tlv(
        0x30,
        &[
            &[0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01][..],
            &[0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07],
        ]
        .concat(),
    );
    let mut point = vec![0x00, 0x04];
    point.extend_from_slice(&[0x11; 64]);
    let ec = der_tlv(0x30, &[alg, der_tlv(0x03, &point)].concat());
    assert!(matches!(
        verify_rsa(
            &ec,
            SignatureScheme::RsaPkcs1Sha256,
            MSG,
            OPENSSL_SHA256_PKCS1
        ),
        Err(CryptoError::Unsupported(_))
    ));
}

/// RFC 7427 Appendix A.1 encodings, checked by hand, and the PSS form that OpenSSL prints
/// for RSASSA-PSS with SHA-256 and a 32-octet salt (the A.4.3 layout).
#[test]
fn rfc7427_algorithm_identifiers() {
    let prefix = [
        0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01,
    ];
    for (scheme, last) in [
        (SignatureScheme::RsaPkcs1Sha1, 0x05),
        (SignatureScheme::RsaPkcs1Sha256, 0x0b),
        (SignatureScheme::RsaPkcs1Sha384, 0x0c),
        (SignatureScheme::RsaPkcs1Sha512, 0x0d),
    ] {
        let mut want = prefix.to_vec();
        want.extend_from_slice(&[last, 0x05, 0x00]);
        assert_eq!(algorithm_identifier(scheme), want, "{scheme:?}");
    }
    assert_eq!(
        algorithm_identifier(SignatureScheme::RsaPssSha256),
        b64(
            "MEEGCSqGSIb3DQEBCjA0oA8wDQYJYIZIAWUDBAIBBQChHDAaBgkqhkiG9w0BAQgwDQYJYIZIAWUDBAIBBQCiAwIBIA=="
        )
    );
    let pss512 = algorithm_identifier(SignatureScheme::RsaPssSha512);
    assert_eq!(pss512.len(), 67);
    assert_eq!(pss512[66], 64);
}

#[test]
fn rfc7427_auth_data_round_trips() {
    let sig = [0x5au8; 256];
    for scheme in ALL {
        let data = encode_signature_auth(scheme, &sig);
        assert_eq!(usize::from(data[0]), algorithm_identifier(scheme).len());
        let (s, v) = decode_signature_auth(&data).unwrap();
        assert_eq!((s, v), (scheme, &sig[..]));
        assert_eq!(s.hash_algorithm(), scheme.hash_algorithm());
    }
    assert_eq!(
        SignatureScheme::RsaPssSha384.hash_algorithm(),
        HashAlgorithm::SHA2_384
    );
}

#[test]
fn rfc7427_decode_accepts_absent_null_parameters() {
    // sha256WithRSAEncryption without parameters.
    let ai = [
        0x30, 0x0b, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0b,
    ];
    let mut data2 = vec![ai.len() as u8];
    data2.extend_from_slice(&ai);
    data2.push(0xaa);
    assert_eq!(
        decode_signature_auth(&data2).unwrap(),
        (SignatureScheme::RsaPkcs1Sha256, &[0xaa][..])
    );
    // PSS hash identifiers without NULL (RFC 4055 allows both).
    let hash = [
        0x30, 0x0b, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01,
    ];
    let mgf = der_tlv(0x30, &[OID_MGF1, &hash].concat());
    let mut params = der_tlv(0xa0, &hash);
    params.extend(der_tlv(0xa1, &mgf));
    params.extend(der_tlv(0xa2, &der_tlv(0x02, &[32])));
    params.extend(der_tlv(0xa3, &der_tlv(0x02, &[1])));
    let ai = der_tlv(0x30, &[OID_RSASSA_PSS, &der_tlv(0x30, &params)].concat());
    let mut d = vec![ai.len() as u8];
    d.extend_from_slice(&ai);
    d.push(1);
    assert_eq!(
        decode_signature_auth(&d).unwrap().0,
        SignatureScheme::RsaPssSha256
    );
}

#[test]
fn rfc7427_decode_errors() {
    use CryptoError::{BadSignature, Unsupported};
    let good = encode_signature_auth(SignatureScheme::RsaPssSha256, &[1; 8]);
    assert_eq!(decode_signature_auth(&[]), Err(BadSignature));
    // Length octet pointing past the end; truncated identifier; no signature.
    assert_eq!(decode_signature_auth(&[200, 0x30]), Err(BadSignature));
    assert_eq!(decode_signature_auth(&good[..30]), Err(BadSignature));
    assert_eq!(
        decode_signature_auth(&good[..good.len() - 8]),
        Err(BadSignature)
    );
    // ecdsa-with-SHA256 (RFC 7427 A.3.1): well formed, not implemented.
    let ecdsa = [
        0x0c, 0x30, 0x0a, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x02, 0xff,
    ];
    assert!(matches!(decode_signature_auth(&ecdsa), Err(Unsupported(_))));
    // RSASSA-PSS with default parameters (SHA-1, RFC 7427 A.4.2): not implemented.
    let pss_default = [
        0x0f, 0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0a, 0x30,
        0x00, 0xff,
    ];
    assert!(matches!(
        decode_signature_auth(&pss_default),
        Err(Unsupported(_))
    ));
    // PSS with salt 20 instead of 32.
    let mut salt20 = good.clone();
    let pos = salt20.iter().position(|&b| b == 0xa2).unwrap();
    assert_eq!(salt20[pos + 4], 32);
    salt20[pos + 4] = 20;
    assert!(matches!(
        decode_signature_auth(&salt20),
        Err(Unsupported(_))
    ));
    // Non-minimal DER length.
    let mut long = vec![0x10, 0x30, 0x81, 0x0d];
    long.extend_from_slice(&[
        0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0b,
    ]);
    long.extend_from_slice(&[0x05, 0x00, 0xff]);
    assert_eq!(decode_signature_auth(&long), Err(BadSignature));
    // Trailing garbage inside the identifier.
    let mut extra = vec![0x10, 0x30, 0x0e];
    extra.extend_from_slice(&[
        0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0b,
    ]);
    extra.extend_from_slice(&[0x05, 0x00, 0x00, 0xff]);
    assert_eq!(decode_signature_auth(&extra), Err(BadSignature));
}

/// Sign, encode for RFC 7427, decode, verify: the path IKE_AUTH takes.
#[test]
fn rfc7427_end_to_end() {
    let key = RsaSigningKey::from_pem(PKCS8_PEM).unwrap();
    let octets = signed_octets(
        b"IKE_SA_INIT",
        b"Nr",
        &HMAC_SHA2_256,
        b"SK_pi",
        b"\x02\0\0\0me",
    );
    let sig = key.sign(SignatureScheme::RsaPssSha512, &octets).unwrap();
    let auth = encode_signature_auth(SignatureScheme::RsaPssSha512, &sig);
    let (scheme, value) = decode_signature_auth(&auth).unwrap();
    verify_rsa(SPKI, scheme, &octets, value).unwrap();
}
