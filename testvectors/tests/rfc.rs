//! Known answers transcribed from RFCs (and the GCM specification) into `data/rfc/`:
//! RFC 7748 (X25519), RFC 5903 (ECP groups), RFC 3526 + Python `pow` (MODP groups),
//! RFC 4231 and RFC 4868 (HMAC-SHA-2 PRFs and integrity), RFC 7634 / RFC 8439 / GCM spec
//! (the SK payload AEADs). See `data/rfc/SOURCE.md` for where each value comes from.

// Test harness (harness = false, so not cfg(test)): panics and unwraps are the failure path.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod common;

use common::{Tally, read_data, trial, unhex};
use ike::crypto::{
    AeadCipher, HMAC_SHA2_256, HMAC_SHA2_384, HMAC_SHA2_512, Prf, aead_open, aead_seal, integ_mac,
    ke_from_private,
};
use ike::wire::{
    EncrId, IntegId, KeGroup, Message, NotifyType, Payload, PayloadType, ProtocolId,
    decrypt_message,
};
use libtest_mimic::Failed;
use serde_json::Value;

fn json(rel: &str) -> Result<Value, Failed> {
    Ok(serde_json::from_str(&read_data(rel)?)?)
}

fn s<'a>(v: &'a Value, k: &str) -> &'a str {
    v[k].as_str()
        .unwrap_or_else(|| panic!("missing string field {k} in {v}"))
}

fn h(v: &Value, k: &str) -> Vec<u8> {
    unhex(s(v, k)).unwrap()
}

fn arr<'a>(v: &'a Value, k: &str) -> &'a [Value] {
    v[k].as_array()
        .map(Vec::as_slice)
        .unwrap_or_else(|| panic!("missing array {k}"))
}

fn eq(what: &str, got: &[u8], want: &[u8]) -> Result<(), String> {
    if got == want {
        Ok(())
    } else {
        Err(format!(
            "{what}: got {}, want {}",
            hex::encode(got),
            hex::encode(want)
        ))
    }
}

/// One DH side: our public value from `private`, then the shared secret with `peer`.
fn dh(group: KeGroup, private: &[u8], peer: &[u8]) -> Result<(Vec<u8>, Vec<u8>), String> {
    let ke = ke_from_private(group, private).map_err(|e| format!("ke_from_private: {e}"))?;
    let public = ke.public_value().to_vec();
    let shared = ke.complete(peer).map_err(|e| format!("complete: {e}"))?;
    Ok((public, shared.expose().to_vec()))
}

fn rfc7748() -> Result<(), Failed> {
    let d = json("rfc/rfc7748.json")?;
    let mut t = Tally::new("rfc7748.json (X25519, RFC 7748 §5.2, §6.1)");
    for c in arr(&d["x25519_function"], "cases") {
        let r = ke_from_private(KeGroup::CURVE25519, &h(c, "scalar"))
            .and_then(|ke| ke.complete(&h(c, "u")))
            .map_err(|e| e.to_string())
            .and_then(|out| eq("X25519(k, u)", out.expose(), &h(c, "output")));
        t.valid(s(c, "name"), r);
    }
    // §5.2 iterated: k = u = 9; (k, u) <- (X25519(k, u), k).
    let it = &d["x25519_iterated"];
    let mut k = h(it, "start");
    let mut u = k.clone();
    let mut done = 0u64;
    for c in arr(it, "cases") {
        let n = c["iterations"].as_u64().unwrap();
        let mut err = None;
        while done < n {
            match ke_from_private(KeGroup::CURVE25519, &k).and_then(|ke| ke.complete(&u)) {
                Ok(out) => {
                    u = std::mem::replace(&mut k, out.expose().to_vec());
                }
                Err(e) => {
                    err = Some(format!("iteration {done}: {e}"));
                    break;
                }
            }
            done += 1;
        }
        let r = match err {
            Some(e) => Err(e),
            None => eq("k", &k, &h(c, "k")),
        };
        t.valid(format!("§5.2 after {n} iteration(s)"), r);
        if t.ran() != t.valid_passed {
            break;
        }
    }
    let c = &d["x25519_dh"];
    for (me, peer) in [("alice", "bob"), ("bob", "alice")] {
        let r = dh(
            KeGroup::CURVE25519,
            &h(c, &format!("{me}_private")),
            &h(c, &format!("{peer}_public")),
        )
        .and_then(|(public, shared)| {
            eq("public", &public, &h(c, &format!("{me}_public")))?;
            eq("shared", &shared, &h(c, "shared"))
        });
        t.valid(format!("§6.1 {me}"), r);
    }
    t.finish(6, 6)
}

fn rfc5903() -> Result<(), Failed> {
    let d = json("rfc/rfc5903.json")?;
    let mut t = Tally::new("rfc5903.json (ECP-256/384 DH, RFC 5903 §8)");
    for c in arr(&d, "cases") {
        let group = KeGroup(u16::try_from(c["group"].as_u64().unwrap()).unwrap());
        for (me, mine, peer) in [("i", "gi", "gr"), ("r", "gr", "gi")] {
            let r = dh(group, &h(c, me), &h(c, peer)).and_then(|(public, shared)| {
                eq("public value (x | y)", &public, &h(c, mine))?;
                eq("shared secret (x of g^ir)", &shared, &h(c, "girx"))
            });
            t.valid(format!("§{} as {me}", s(c, "section")), r);
        }
    }
    t.finish(4, 4)
}

/// Reads a prime from `rfc3526-modp.txt` (the RFC's own layout: 8-digit hex groups).
fn rfc3526_prime(text: &str, bits: usize) -> Result<Vec<u8>, Failed> {
    let section = text
        .split(&format!("{bits}-bit MODP Group"))
        .nth(1)
        .and_then(|rest| rest.split("The generator is").next())
        .ok_or("section not found")?;
    let digits: String = section
        .split_whitespace()
        .filter(|w| w.len() == 8 && w.chars().all(|c| c.is_ascii_hexdigit()))
        .collect();
    let p = unhex(&digits)?;
    if p.len() != bits / 8 {
        return Err(format!("{bits}-bit prime has {} octets", p.len()).into());
    }
    Ok(p)
}

/// `p + delta` (delta in -1..=1) as a big-endian number of the same length; `None` on
/// overflow out of that length.
fn add_small(p: &[u8], delta: i8) -> Option<Vec<u8>> {
    let mut v = p.to_vec();
    match delta {
        0 => {}
        1 => {
            for b in v.iter_mut().rev() {
                let (n, carry) = b.overflowing_add(1);
                *b = n;
                if !carry {
                    return Some(v);
                }
            }
            return None;
        }
        -1 => {
            for b in v.iter_mut().rev() {
                let (n, borrow) = b.overflowing_sub(1);
                *b = n;
                if !borrow {
                    return Some(v);
                }
            }
            return None;
        }
        _ => return None,
    }
    Some(v)
}

fn rfc3526() -> Result<(), Failed> {
    let text = read_data("rfc/rfc3526-modp.txt")?;
    let d = json("rfc/modp_dh.json")?;
    let mut t = Tally::new(
        "rfc3526-modp.txt + modp_dh.json (MODP 2048/3072: primes, Python-pow DH, peer value checks)",
    );
    for (bits, group) in [(2048, KeGroup::MODP_2048), (3072, KeGroup::MODP_3072)] {
        let p = rfc3526_prime(&text, bits)?;
        let len = p.len();
        // Our prime must be the RFC's: g^a for the known answers below only matches mod
        // the right p, and p - 1 / p / p + 1 are rejected only if our bounds are p's.
        let cases: Vec<&Value> = arr(&d, "cases")
            .iter()
            .filter(|c| c["group"].as_u64() == Some(u64::from(group.0)))
            .collect();
        for c in &cases {
            for (me, mine, peer) in [("a", "ga", "gb"), ("b", "gb", "ga")] {
                let r = dh(group, &h(c, me), &h(c, peer)).and_then(|(public, shared)| {
                    eq("public value", &public, &h(c, mine))?;
                    eq("shared secret", &shared, &h(c, "shared"))
                });
                t.valid(
                    format!(
                        "{group:?} {}-octet exponent, side {me}",
                        c["exponent_octets"]
                    ),
                    r,
                );
            }
        }
        // Our modulus is exactly this p: with private exponent 2, (p - 2)^2 mod q = 4 only
        // if q divides p(p - 4); together with "p - 2 accepted, p - 1 and p rejected" below
        // this pins q = p.
        let four = {
            let mut v = vec![0u8; len];
            v[len - 1] = 4;
            v
        };
        let r = dh(
            group,
            &[2],
            &add_small(&add_small(&p, -1).unwrap(), -1).unwrap(),
        )
        .and_then(|(public, shared)| {
            eq("g^2", &public, &four)?;
            eq("(p - 2)^2 mod p", &shared, &four)
        });
        t.valid(format!("{group:?} prime is RFC 3526's: (p - 2)^2 = 4"), r);
        // RFC 7296 §3.4 / NIST SP 800-56A 5.6.2.3.1: reject 0, 1, p - 1 and >= p; a value
        // of the wrong length is malformed.
        let private = h(cases.first().ok_or("no DH case for group")?, "a");
        let one = {
            let mut v = vec![0u8; len];
            v[len - 1] = 1;
            v
        };
        let bad: Vec<(&str, Vec<u8>)> = vec![
            ("0", vec![0u8; len]),
            ("1", one),
            ("p - 1", add_small(&p, -1).unwrap()),
            ("p", p.clone()),
            ("p + 1", add_small(&p, 1).unwrap()),
            ("all ones (> p)", vec![0xff; len]),
            ("one octet short", vec![0x02; len - 1]),
            ("one octet long", [vec![0u8], h(cases[0], "gb")].concat()),
        ];
        for (what, peer) in bad {
            let accepted = ke_from_private(group, &private)
                .and_then(|ke| ke.complete(&peer))
                .is_ok();
            t.invalid(format!("{group:?} peer value {what}"), accepted);
        }
    }
    t.finish(26, 26)
}

fn prf_for(hash: &str) -> &'static dyn Prf {
    match hash {
        "sha256" => &HMAC_SHA2_256,
        "sha384" => &HMAC_SHA2_384,
        "sha512" => &HMAC_SHA2_512,
        other => panic!("unknown hash {other}"),
    }
}

fn integ_for(hash: &str) -> IntegId {
    match hash {
        "sha256" => IntegId::HMAC_SHA2_256_128,
        "sha384" => IntegId::HMAC_SHA2_384_192,
        "sha512" => IntegId::HMAC_SHA2_512_256,
        other => panic!("unknown hash {other}"),
    }
}

fn rfc4231() -> Result<(), Failed> {
    let d = json("rfc/rfc4231.json")?;
    let mut t = Tally::new("rfc4231.json (HMAC-SHA-256/384/512 via Prf, RFC 4231 §4.2-§4.8)");
    for c in arr(&d, "cases") {
        let prf = prf_for(s(c, "hash"));
        let out = prf.compute(&h(c, "key"), &[&h(c, "data")]);
        let want = h(c, "mac");
        let got = out.expose().get(..want.len()).unwrap_or_default();
        let r = if out.len() == prf.output_len() {
            eq("prf", got, &want)
        } else {
            Err(format!(
                "output length {} != {}",
                out.len(),
                prf.output_len()
            ))
        };
        t.valid(format!("{} test case {}", s(c, "hash"), c["test_case"]), r);
    }
    t.finish(21, 21)
}

fn rfc4868() -> Result<(), Failed> {
    let d = json("rfc/rfc4868.json")?;
    let mut t = Tally::new("rfc4868.json (PRF_HMAC_SHA2_* and AUTH_HMAC_SHA2_*, RFC 4868 §2.7.2)");
    for c in arr(&d, "cases") {
        let hash = s(c, "hash");
        let (key, data, mac) = (h(c, "key"), h(c, "data"), h(c, "mac"));
        let icv_len = usize::try_from(c["truncated_bits"].as_u64().unwrap()).unwrap() / 8;
        let r = eq("prf", prf_for(hash).compute(&key, &[&data]).expose(), &mac).and_then(|()| {
            let icv = integ_mac(integ_for(hash), &key, &data).map_err(|e| e.to_string())?;
            eq("truncated ICV", &icv, &mac[..icv_len])
        });
        t.valid(s(c, "name"), r);
    }
    t.finish(11, 11)
}

fn encr_of(c: &Value) -> EncrId {
    EncrId(u16::try_from(c["encr"].as_u64().unwrap()).unwrap())
}

/// RFC 7634 Appendix B is a whole IKEv2 message: header + SK header (the AAD) + IV +
/// ciphertext + ICV. Seal the inner payload through the SK cipher with the RFC's IV and
/// compare the datagram; then decode it and decrypt it back through ike::wire.
fn rfc7634_ike_message(c: &Value) -> Result<(), String> {
    let key = [h(c, "key"), h(c, "salt")].concat();
    let cipher = AeadCipher::new(encr_of(c), 256, &key).map_err(|e| e.to_string())?;
    let plaintext = h(c, "plaintext");
    // The RFC's plaintext ends with the pad length octet (0); seal_with_iv appends it.
    let (inner, pad) = plaintext.split_at(plaintext.len() - 1);
    if pad != [0] {
        return Err("RFC plaintext does not end with pad length 0".into());
    }
    let mut datagram = h(c, "aad");
    cipher
        .seal_with_iv(&h(c, "iv"), inner, &mut datagram)
        .map_err(|e| e.to_string())?;
    let want = [h(c, "aad"), h(c, "iv"), h(c, "ciphertext"), h(c, "tag")].concat();
    eq("sealed IKE message", &datagram, &want)?;

    let msg = Message::decode(&datagram).map_err(|e| format!("decode: {e}"))?;
    eq("re-encoded IKE message", &msg.encode(), &datagram)?;
    match msg.payloads.as_slice() {
        [Payload::Sk(sk)] if sk.first_inner == PayloadType::NOTIFY => {}
        other => return Err(format!("outer chain: {other:?}")),
    }
    let (_, payloads) = decrypt_message(&datagram, &cipher).map_err(|e| format!("decrypt: {e}"))?;
    match payloads.as_slice() {
        [Payload::Notify(n)]
            if n.notify_type == NotifyType::SET_WINDOW_SIZE
                && n.protocol == ProtocolId::NONE
                && n.data == [0, 0, 0, 10] => {}
        other => return Err(format!("inner chain: {other:?}")),
    }
    // A flipped ICV bit must fail the integrity check.
    let mut forged = datagram.clone();
    *forged.last_mut().unwrap() ^= 1;
    if decrypt_message(&forged, &cipher).is_ok() {
        return Err("forged ICV accepted".into());
    }
    Ok(())
}

fn aead_case(c: &Value) -> Result<(), String> {
    let encr = encr_of(c);
    let key = [h(c, "key"), h(c, "salt")].concat();
    let iv: [u8; 8] = h(c, "iv").try_into().map_err(|_| "IV is not 8 octets")?;
    let (aad, pt) = (h(c, "aad"), h(c, "plaintext"));
    let want = [h(c, "ciphertext"), h(c, "tag")].concat();
    let sealed = aead_seal(encr, &key, &iv, &aad, &pt).map_err(|e| format!("seal: {e}"))?;
    eq("ciphertext | tag", &sealed, &want)?;
    let opened = aead_open(encr, &key, &iv, &aad, &want).map_err(|e| format!("open: {e}"))?;
    eq("opened plaintext", &opened, &pt)?;
    let mut forged = want.clone();
    *forged.last_mut().unwrap() ^= 0x80;
    if aead_open(encr, &key, &iv, &aad, &forged).is_ok() {
        return Err("forged tag accepted".into());
    }
    if c["ike_message"].as_bool() == Some(true) {
        rfc7634_ike_message(c)?;
    }
    Ok(())
}

fn rfc_aead() -> Result<(), Failed> {
    let d = json("rfc/rfc_aead.json")?;
    let mut t =
        Tally::new("rfc_aead.json (RFC 7634 App. A/B, RFC 8439 §2.8.2, GCM spec cases 1-4, 13-16)");
    for c in arr(&d, "cases") {
        t.valid(s(c, "source"), aead_case(c));
    }
    t.finish(11, 11)
}

fn main() {
    common::run(vec![
        trial("rfc7748_x25519", rfc7748),
        trial("rfc5903_ecp", rfc5903),
        trial("rfc3526_modp", rfc3526),
        trial("rfc4231_hmac", rfc4231),
        trial("rfc4868_prf_integ", rfc4868),
        trial("rfc_aead", rfc_aead),
    ]);
}
