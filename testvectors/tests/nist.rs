//! NIST CAVP response files (subsets, see `data/nist/SOURCE.md`) against `ike::crypto`:
//! AES-GCM (96-bit IV, 128-bit tag) through the raw AEAD KAT entry points, AES-CBC
//! through the SK payload cipher (`CbcHmacCipher::seal_with_iv` / `open`), and the KAS ECC
//! CDH primitive (P-256 / P-384) through the key exchange.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod common;

use common::{RspRecord, Tally, parse_rsp, read_data, trial, unhex};
use ike::crypto::{CbcHmacCipher, aead_open, aead_seal, ke_from_private};
use ike::wire::{EncrId, IntegId, KeGroup};
use libtest_mimic::Failed;

fn records(file: &str) -> Result<Vec<RspRecord>, Failed> {
    Ok(parse_rsp(&read_data(&format!("nist/{file}"))?))
}

fn id(file: &str, r: &RspRecord) -> String {
    let sect: Vec<String> = r
        .section
        .iter()
        .filter(|(k, _)| ["KEYLEN", "PTLEN", "AADLEN", "ENCRYPT", "DECRYPT"].contains(&k.as_str()))
        .map(|(k, v)| {
            if v.is_empty() {
                k.clone()
            } else {
                format!("{k}={v}")
            }
        })
        .collect();
    format!(
        "{file} [{}] COUNT {}",
        sect.join(" "),
        r.fields.get("COUNT").map_or("?", String::as_str)
    )
}

/// key | salt and the 8-octet IV from a 12-octet GCM IV (RFC 5282 §4 nonce layout).
fn gcm_key_iv(r: &RspRecord) -> Result<(Vec<u8>, [u8; 8]), Failed> {
    let iv = r.hex("IV")?;
    if iv.len() != 12 {
        return Err(format!("IV of {} octets", iv.len()).into());
    }
    let (salt, iv8) = iv.split_at(4);
    Ok(([r.hex("KEY")?, salt.to_vec()].concat(), iv8.try_into()?))
}

fn gcm_check(r: &RspRecord) -> Result<Result<(), String>, Failed> {
    let (key, iv) = gcm_key_iv(r)?;
    let (pt, aad) = (r.hex("PT")?, r.hex("AAD")?);
    let want = [r.hex("CT")?, r.hex("TAG")?].concat();
    Ok((|| {
        let sealed = aead_seal(EncrId::AES_GCM_16, &key, &iv, &aad, &pt)
            .map_err(|e| format!("seal: {e}"))?;
        if sealed != want {
            return Err(format!(
                "sealed {} != {}",
                hex::encode(&sealed),
                hex::encode(&want)
            ));
        }
        match aead_open(EncrId::AES_GCM_16, &key, &iv, &aad, &want) {
            Ok(p) if p == pt => Ok(()),
            Ok(_) => Err("opened to a different plaintext".to_owned()),
            Err(e) => Err(format!("open: {e}")),
        }
    })())
}

fn gcm_encrypt(file: &'static str) -> Result<(), Failed> {
    let mut t = Tally::new(format!("nist {file}"));
    for r in records(file)? {
        let res = gcm_check(&r)?;
        t.valid(id(file, &r), res);
    }
    t.finish(375, 375)
}

fn gcm_decrypt(file: &'static str, expected_fail: usize) -> Result<(), Failed> {
    let mut t = Tally::new(format!("nist {file}"));
    for r in records(file)? {
        if r.has("FAIL") {
            let (key, iv) = gcm_key_iv(&r)?;
            let ct_tag = [r.hex("CT")?, r.hex("TAG")?].concat();
            let opened = aead_open(EncrId::AES_GCM_16, &key, &iv, &r.hex("AAD")?, &ct_tag);
            t.invalid(id(file, &r), opened.is_ok());
        } else {
            let res = gcm_check(&r)?;
            t.valid(id(file, &r), res);
        }
    }
    if t.invalid_rejected != expected_fail {
        return Err(format!(
            "{file}: {} FAIL records rejected, expected {expected_fail}",
            t.invalid_rejected
        )
        .into());
    }
    t.finish(375, 375)
}

/// An arbitrary stand-in for the IKE header + SK header that prefixes the SK body: the
/// ICV covers it, the CBC output does not depend on it.
const PREFIX: &[u8] = b"IKE header and SK payload header";
const SK_A: [u8; 32] = [0x5a; 32];

fn cbc_case(bits: u16, r: &RspRecord) -> Result<Result<(), String>, Failed> {
    let (key, iv, pt, ct) = (
        r.hex("KEY")?,
        r.hex("IV")?,
        r.hex("PLAINTEXT")?,
        r.hex("CIPHERTEXT")?,
    );
    Ok((|| {
        let c = CbcHmacCipher::new(bits, IntegId::HMAC_SHA2_256_128, &key, &SK_A)
            .map_err(|e| format!("new: {e}"))?;
        let mut out = PREFIX.to_vec();
        c.seal_with_iv(&iv, &pt, &mut out)
            .map_err(|e| format!("seal_with_iv: {e}"))?;
        let body = &out[PREFIX.len()..];
        // IV | CBC(plaintext | padding | pad length) | ICV: with a block-aligned plaintext
        // the SK padding adds one whole block, and CBC is prefix-preserving, so NIST's
        // ciphertext is the first len(PLAINTEXT) octets after the IV.
        if body.get(..16) != Some(iv.as_slice()) {
            return Err("IV not at the start of the SK body".into());
        }
        let got = body.get(16..16 + ct.len()).unwrap_or_default();
        if got != ct.as_slice() {
            return Err(format!(
                "ciphertext {} != {}",
                hex::encode(got),
                hex::encode(&ct)
            ));
        }
        match ike::crypto::SkCipher::open(&c, PREFIX, body) {
            Ok(p) if p == pt => Ok(()),
            Ok(p) => Err(format!("opened to {}", hex::encode(p))),
            Err(e) => Err(format!("open: {e}")),
        }
    })())
}

fn cbc(file: &'static str, bits: u16, expected: usize) -> Result<(), Failed> {
    let mut t = Tally::new(format!("nist {file}"));
    for r in records(file)? {
        let res = cbc_case(bits, &r)?;
        t.valid(id(file, &r), res);
    }
    t.finish(expected, expected)
}

/// Big-endian field element of `n` octets (CAVP prints full-length values, but be lenient).
fn fe(hex: &str, n: usize) -> Result<Vec<u8>, Failed> {
    let v = unhex(hex)?;
    if v.len() > n {
        return Err(format!("{hex} longer than {n} octets").into());
    }
    Ok([vec![0u8; n - v.len()], v].concat())
}

fn kas(file: &'static str) -> Result<(), Failed> {
    let mut t = Tally::new(format!(
        "nist {file} (KAS ECC CDH primitive, P-256 + P-384)"
    ));
    for r in records(file)? {
        let (group, n) = if r.last_section.starts_with("EC -") {
            (KeGroup::ECP_256, 32)
        } else if r.last_section.starts_with("ED -") {
            (KeGroup::ECP_384, 48)
        } else {
            t.skip("curve not offered");
            continue;
        };
        let case = format!(
            "{file} [{}] COUNT {} ({})",
            r.last_section,
            r.get("COUNT")?,
            r.get("RESULT")?
        );
        let d_iut = fe(r.get("DSIUT")?, n)?;
        let q_iut = [fe(r.get("QSIUTX")?, n)?, fe(r.get("QSIUTY")?, n)?].concat();
        let q_cavs = [fe(r.get("QSCAVSX")?, n)?, fe(r.get("QSCAVSY")?, n)?].concat();
        let z = fe(r.get("Z")?, n)?;
        let ke = ke_from_private(group, &d_iut);
        let public_ok = ke
            .as_ref()
            .is_ok_and(|k| k.public_value() == q_iut.as_slice());
        let shared = ke.and_then(|k| k.complete(&q_cavs));
        let z_ok = shared.as_ref().is_ok_and(|s| s.expose() == z.as_slice());
        let result = r.get("RESULT")?;
        if result.starts_with('P') {
            t.valid(
                case,
                match (public_ok, &shared, z_ok) {
                    (true, Ok(_), true) => Ok(()),
                    (false, _, _) => Err("our public value from dsIUT differs from QsIUT".into()),
                    (_, Err(e), _) => Err(format!("complete: {e}")),
                    (_, Ok(s), false) => Err(format!("Z {}", hex::encode(s.expose()))),
                },
            );
        } else if result.starts_with("F (1 ") || result.starts_with("F (2 ") {
            // The CAVS public key is not a valid point: complete() must refuse it.
            t.invalid(case, shared.is_ok());
        } else if result.starts_with("F (5 ")
            || result.starts_with("F (6 ")
            || result.starts_with("F (7 ")
        {
            // The listed IUT public key is not dsIUT·G: ours must differ from it.
            t.invalid(case, public_ok);
        } else if result.starts_with("F (8 ") {
            // Z was altered: our Z must differ.
            t.invalid(case, z_ok);
        } else {
            t.fail(case, "unknown Result code");
        }
    }
    t.finish(60, 60)
}

fn main() {
    let mut trials = vec![
        trial("gcm_encrypt_128", || {
            gcm_encrypt("gcmEncryptExtIV128_iv96_tag128.rsp")
        }),
        trial("gcm_encrypt_256", || {
            gcm_encrypt("gcmEncryptExtIV256_iv96_tag128.rsp")
        }),
        trial("gcm_decrypt_128", || {
            gcm_decrypt("gcmDecrypt128_iv96_tag128.rsp", 196)
        }),
        trial("gcm_decrypt_256", || {
            gcm_decrypt("gcmDecrypt256_iv96_tag128.rsp", 191)
        }),
        trial("kas_ecc_cdh_init", || {
            kas("KASValidityTest_ECCStaticUnified_NOKC_ZZOnly_init_P256_P384.fax")
        }),
        trial("kas_ecc_cdh_resp", || {
            kas("KASValidityTest_ECCStaticUnified_NOKC_ZZOnly_resp_P256_P384.fax")
        }),
    ];
    let cbc_files: [(&'static str, u16, usize); 10] = [
        ("CBCGFSbox128.rsp", 128, 14),
        ("CBCGFSbox256.rsp", 256, 10),
        ("CBCKeySbox128.rsp", 128, 42),
        ("CBCKeySbox256.rsp", 256, 32),
        ("CBCVarKey128.rsp", 128, 256),
        ("CBCVarKey256.rsp", 256, 512),
        ("CBCVarTxt128.rsp", 128, 256),
        ("CBCVarTxt256.rsp", 256, 256),
        ("CBCMMT128.rsp", 128, 20),
        ("CBCMMT256.rsp", 256, 20),
    ];
    for (file, bits, n) in cbc_files {
        trials.push(trial(
            &format!("aes_cbc_{}", file.trim_end_matches(".rsp")),
            move || cbc(file, bits, n),
        ));
    }
    common::run(trials);
}
