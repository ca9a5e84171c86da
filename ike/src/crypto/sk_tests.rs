//! Unit tests of the SK payload transforms.

use super::*;
use crate::crypto::Prf;
use crate::crypto::prf::{HMAC_SHA2_256, HMAC_SHA2_384, HMAC_SHA2_512};

fn hex(s: &str) -> Vec<u8> {
    let s: String = s.split_whitespace().collect();
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

/// One cipher of every offered suite, with fixed keys.
fn all_ciphers() -> Vec<Box<dyn SkCipher>> {
    vec![
        sk_cipher(EncrId::AES_GCM_16, 128, IntegId::NONE, &[1; 20], &[]).unwrap(),
        sk_cipher(EncrId::AES_GCM_16, 256, IntegId::NONE, &[2; 36], &[]).unwrap(),
        sk_cipher(EncrId::CHACHA20_POLY1305, 0, IntegId::NONE, &[3; 36], &[]).unwrap(),
        sk_cipher(
            EncrId::AES_CBC,
            128,
            IntegId::HMAC_SHA2_256_128,
            &[4; 16],
            &[5; 32],
        )
        .unwrap(),
        sk_cipher(
            EncrId::AES_CBC,
            256,
            IntegId::HMAC_SHA2_384_192,
            &[6; 32],
            &[7; 48],
        )
        .unwrap(),
        sk_cipher(
            EncrId::AES_CBC,
            256,
            IntegId::HMAC_SHA2_512_256,
            &[8; 32],
            &[9; 64],
        )
        .unwrap(),
    ]
}

const PREFIX: &[u8] = b"IKE header and SK generic header";

fn seal(c: &dyn SkCipher, pt: &[u8]) -> Vec<u8> {
    let mut out = PREFIX.to_vec();
    c.seal(pt, &mut out).unwrap();
    assert_eq!(out.len(), PREFIX.len() + c.sealed_len(pt.len()), "{c:?}");
    out.split_off(PREFIX.len())
}

#[test]
fn every_transform_round_trips() {
    for c in all_ciphers() {
        for len in [0, 1, 14, 15, 16, 17, 200, 1400] {
            let pt: Vec<u8> = (0..len).map(|i| i as u8).collect();
            let body = seal(&*c, &pt);
            assert_eq!(c.open(PREFIX, &body).unwrap(), pt, "{c:?} len {len}");
            // A fresh random IV each time: the same plaintext never seals the same way.
            assert_ne!(seal(&*c, &pt), body, "{c:?}");
        }
    }
}

#[test]
fn any_flipped_bit_fails_the_integrity_check() {
    for c in all_ciphers() {
        let body = seal(&*c, b"some inner payloads");
        for i in [0, 8, body.len() / 2, body.len() - 1] {
            let mut bad = body.clone();
            bad[i] ^= 0x01;
            assert_eq!(
                c.open(PREFIX, &bad).unwrap_err(),
                CryptoError::IntegrityCheckFailed,
                "{c:?} octet {i}"
            );
        }
        // The prefix (AAD / start of the ICV input) is covered too.
        assert_eq!(
            c.open(b"IKE header and SK generic headeR", &body)
                .unwrap_err(),
            CryptoError::IntegrityCheckFailed
        );
    }
}

#[test]
fn truncated_bodies_are_rejected() {
    for c in all_ciphers() {
        let body = seal(&*c, b"x");
        for n in [0, 1, 8, 16, body.len() - 1] {
            assert_eq!(
                c.open(PREFIX, &body[..n]).unwrap_err(),
                CryptoError::IntegrityCheckFailed,
                "{c:?} {n}"
            );
        }
    }
}

#[test]
fn aead_pad_length_larger_than_the_plaintext_is_rejected() {
    let key = [0x11u8; 20];
    let iv = [0x22u8; 8];
    let mut body = iv.to_vec();
    // Decrypts to 3 octets followed by pad length 200.
    body.extend(aead_seal(EncrId::AES_GCM_16, &key, &iv, PREFIX, &[1, 2, 3, 200]).unwrap());
    let c = AeadCipher::new(EncrId::AES_GCM_16, 128, &key).unwrap();
    assert_eq!(
        c.open(PREFIX, &body).unwrap_err(),
        CryptoError::InvalidPadding
    );
    // Pad length 3 with 3 octets before it: valid, empty plaintext.
    let mut body = iv.to_vec();
    body.extend(aead_seal(EncrId::AES_GCM_16, &key, &iv, PREFIX, &[1, 2, 3, 3]).unwrap());
    assert_eq!(c.open(PREFIX, &body).unwrap(), b"");
}

/// RFC 3602 §4 case #2 (AES-128-CBC, 32 octets), checked by hand against the RFC. The
/// plaintext 00..1f ends in 0x1f = 31, so all 31 octets before it are padding.
#[test]
fn cbc_decrypts_rfc3602_case2_and_checks_the_pad_length() {
    let key = hex("c286696d887c9aa0611bbb3e2025a45a");
    let iv = hex("562e17996d093d28ddb3ba695a2e6f58");
    let ct = hex("d296cd94c2cccf8a3a863028b5e1dc0a7586602d253cfff91b8266bea6d61ab1");
    let sk_a = [0x5a; 32];
    let c = CbcHmacCipher::new(128, IntegId::HMAC_SHA2_256_128, &key, &sk_a).unwrap();
    let mut signed = PREFIX.to_vec();
    signed.extend_from_slice(&iv);
    signed.extend_from_slice(&ct);
    let icv = integ_mac(IntegId::HMAC_SHA2_256_128, &sk_a, &signed).unwrap();
    let mut body = signed[PREFIX.len()..].to_vec();
    body.extend_from_slice(&icv);
    assert_eq!(c.open(PREFIX, &body).unwrap(), b"");

    // CBC: flipping bits of C1 flips the same bits of P2. Turn the pad length octet
    // 0x1f into 0xff: 255 octets of padding cannot fit in 31.
    let mut ct2 = ct.clone();
    ct2[15] ^= 0x1f ^ 0xff;
    let mut signed2 = PREFIX.to_vec();
    signed2.extend_from_slice(&iv);
    signed2.extend_from_slice(&ct2);
    let mut body2 = signed2[PREFIX.len()..].to_vec();
    body2.extend(integ_mac(IntegId::HMAC_SHA2_256_128, &sk_a, &signed2).unwrap());
    assert_eq!(
        c.open(PREFIX, &body2).unwrap_err(),
        CryptoError::InvalidPadding
    );
    // And 0x1f -> 0x1e: 30 octets of padding leave one octet of plaintext.
    let mut ct4 = ct.clone();
    ct4[15] ^= 0x01;
    let mut signed4 = PREFIX.to_vec();
    signed4.extend_from_slice(&iv);
    signed4.extend_from_slice(&ct4);
    let mut body4 = signed4[PREFIX.len()..].to_vec();
    body4.extend(integ_mac(IntegId::HMAC_SHA2_256_128, &sk_a, &signed4).unwrap());
    assert_eq!(c.open(PREFIX, &body4).unwrap().len(), 1);

    // A ciphertext that is not a whole number of blocks, with a valid ICV.
    let mut signed3 = PREFIX.to_vec();
    signed3.extend_from_slice(&iv);
    signed3.extend_from_slice(&ct[..20]);
    let mut body3 = signed3[PREFIX.len()..].to_vec();
    body3.extend(integ_mac(IntegId::HMAC_SHA2_256_128, &sk_a, &signed3).unwrap());
    assert_eq!(
        c.open(PREFIX, &body3).unwrap_err(),
        CryptoError::InvalidPadding
    );
}

/// The CBC seal lays out IV | AES-CBC(plaintext | zero padding | pad length) | ICV.
#[test]
fn cbc_seal_layout() {
    let key = [0x42u8; 16];
    let iv = [0x24u8; 16];
    let sk_a = [0x33u8; 32];
    let c = CbcHmacCipher::new(128, IntegId::HMAC_SHA2_256_128, &key, &sk_a).unwrap();
    let mut out = PREFIX.to_vec();
    c.seal_with_iv(&iv, b"hello", &mut out).unwrap();
    let body = &out[PREFIX.len()..];
    assert_eq!(body.len(), 16 + 16 + 16);
    assert_eq!(&body[..16], &iv);
    let mut block = body[16..32].to_vec();
    {
        use cbc::cipher::{BlockModeDecrypt, KeyIvInit};
        cbc::Decryptor::<Aes128>::new_from_slices(&key, &iv)
            .unwrap()
            .decrypt_padded::<NoPadding>(&mut block)
            .unwrap();
    }
    let mut expected = b"hello".to_vec();
    expected.extend_from_slice(&[0; 10]);
    expected.push(10);
    assert_eq!(block, expected);
    let icv = HMAC_SHA2_256.compute(&sk_a, &[&out[..PREFIX.len() + 32]]);
    assert_eq!(&body[32..], &icv.expose()[..16]);
}

/// GCM test case 3 of McGrew & Viega's GCM specification (AES-128, no AAD), split into
/// salt | IV as RFC 5282 does; checked by hand.
#[test]
fn aes_gcm_known_answer() {
    let mut key = hex("feffe9928665731c6d6a8f9467308308");
    key.extend(hex("cafebabe"));
    let iv: [u8; 8] = hex("facedbaddecaf888").try_into().unwrap();
    let pt = hex(
        "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a72
         1c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b391aafd255",
    );
    let expected = hex(
        "42831ec2217774244b7221b784d0d49ce3aa212f2c02a4e035c17e2329aca12e
         21d514b25466931c7d8f6a5aac84aa051ba30b396a0aac973d58e091473f5985
         4d5c2af327cd64a62cf35abd2ba6fab4",
    );
    let ct = aead_seal(EncrId::AES_GCM_16, &key, &iv, &[], &pt).unwrap();
    assert_eq!(ct, expected);
    assert_eq!(
        aead_open(EncrId::AES_GCM_16, &key, &iv, &[], &ct).unwrap(),
        pt
    );
    let mut bad = ct.clone();
    bad[0] ^= 1;
    assert_eq!(
        aead_open(EncrId::AES_GCM_16, &key, &iv, &[], &bad).unwrap_err(),
        CryptoError::IntegrityCheckFailed
    );
    assert!(aead_open(EncrId::AES_GCM_16, &key, &iv, &[], &ct[..15]).is_err());
}

#[test]
fn aead_seal_with_iv_matches_raw_aead() {
    let key = [0x77u8; 36];
    let iv = [0x01u8; 8];
    let c = AeadCipher::new(EncrId::CHACHA20_POLY1305, 256, &key).unwrap();
    let mut out = PREFIX.to_vec();
    c.seal_with_iv(&iv, b"payload", &mut out).unwrap();
    let raw = aead_seal(EncrId::CHACHA20_POLY1305, &key, &iv, PREFIX, b"payload\0").unwrap();
    assert_eq!(&out[PREFIX.len()..PREFIX.len() + 8], &iv);
    assert_eq!(&out[PREFIX.len() + 8..], &raw[..]);
    assert!(c.seal_with_iv(&[0; 7], b"", &mut out).is_err());
}

#[test]
fn integ_mac_is_the_truncated_hmac() {
    let data = b"data to protect";
    for (integ, prf, key_len, icv_len) in [
        (IntegId::HMAC_SHA2_256_128, &HMAC_SHA2_256, 32, 16),
        (IntegId::HMAC_SHA2_384_192, &HMAC_SHA2_384, 48, 24),
        (IntegId::HMAC_SHA2_512_256, &HMAC_SHA2_512, 64, 32),
    ] {
        let key = vec![0x0b; key_len];
        let mac = integ_mac(integ, &key, data).unwrap();
        assert_eq!(mac, prf.compute(&key, &[data]).expose()[..icv_len]);
        assert!(integ_mac(integ, &key[1..], data).is_err());
    }
    assert!(integ_mac(IntegId::HMAC_SHA1_96, &[0; 20], data).is_err());
}

#[test]
fn wrong_key_lengths_and_suites_are_refused() {
    use CryptoError::*;
    let err = |r: Result<Box<dyn SkCipher>, CryptoError>| r.unwrap_err();
    assert_eq!(
        err(sk_cipher(
            EncrId::AES_GCM_16,
            128,
            IntegId::NONE,
            &[0; 16],
            &[]
        )),
        InvalidKeyLength("AEAD key")
    );
    assert!(matches!(
        err(sk_cipher(
            EncrId::AES_GCM_16,
            192,
            IntegId::NONE,
            &[0; 28],
            &[]
        )),
        Unsupported(_)
    ));
    assert!(matches!(
        err(sk_cipher(
            EncrId::AES_GCM_16,
            128,
            IntegId::HMAC_SHA2_256_128,
            &[0; 20],
            &[0; 32]
        )),
        Unsupported(_)
    ));
    assert_eq!(
        err(sk_cipher(
            EncrId::AES_CBC,
            256,
            IntegId::HMAC_SHA2_256_128,
            &[0; 16],
            &[0; 32]
        )),
        InvalidKeyLength("AES-CBC key")
    );
    assert_eq!(
        err(sk_cipher(
            EncrId::AES_CBC,
            128,
            IntegId::HMAC_SHA2_256_128,
            &[0; 16],
            &[0; 16]
        )),
        InvalidKeyLength("integrity key")
    );
    assert!(matches!(
        err(sk_cipher(
            EncrId::AES_CBC,
            128,
            IntegId::NONE,
            &[0; 16],
            &[]
        )),
        Unsupported(_)
    ));
    assert!(matches!(
        err(sk_cipher(
            EncrId::TRIPLE_DES,
            0,
            IntegId::HMAC_SHA2_256_128,
            &[0; 24],
            &[0; 32]
        )),
        Unsupported(_)
    ));
    assert!(aead_seal(EncrId::AES_CBC, &[0; 20], &[0; 8], &[], b"").is_err());
    assert!(aead_seal(EncrId::CHACHA20_POLY1305, &[0; 20], &[0; 8], &[], b"").is_err());
}

#[test]
fn debug_output_shows_no_key_material() {
    let gcm = AeadCipher::new(EncrId::AES_GCM_16, 128, &[0xab; 20]).unwrap();
    let cbc =
        CbcHmacCipher::new(256, IntegId::HMAC_SHA2_256_128, &[0xab; 32], &[0xcd; 32]).unwrap();
    for s in [format!("{gcm:?}"), format!("{cbc:?}")] {
        assert!(
            !s.contains("171") && !s.to_lowercase().contains("ab, ab"),
            "{s}"
        );
        assert!(
            !s.contains("205") && !s.to_lowercase().contains("cd"),
            "{s}"
        );
    }
    assert!(format!("{gcm:?}").contains("AES_GCM_16"));
}
