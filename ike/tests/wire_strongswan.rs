//! Every IKE message captured from real strongSwan 5.9.8 peers
//! (testvectors/data/strongswan, see its README) decodes, and re-encodes octet for octet:
//! the outer message, and the decrypted SK/SKF plaintexts as inner chains. Decryption
//! itself is tested with the crypto module.

#![allow(clippy::expect_used, clippy::unwrap_used)] // test helpers: a failure is a test failure

use std::path::{Path, PathBuf};

use ike::crypto::{SkCipher, sk_cipher};
use ike::wire::*;

fn captures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../testvectors/data/strongswan")
}

fn case_dirs() -> Vec<PathBuf> {
    let root = captures();
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(&root)
        .map_err(|e| {
            format!(
                "{}: {e} (the strongSwan captures are part of the repo)",
                root.display()
            )
        })
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    assert!(
        dirs.len() >= 6,
        "expected the six capture cases, found {dirs:?}"
    );
    dirs
}

/// (encrypted or plain message file, its decrypted plaintext file if any), in capture order.
fn messages(dir: &Path) -> Vec<(PathBuf, Option<PathBuf>)> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            let n = p.file_name().unwrap().to_string_lossy().into_owned();
            n.ends_with(".bin") && !n.ends_with(".decrypted.bin")
        })
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|f| {
            let d = f.with_extension("decrypted.bin");
            let d = d.exists().then_some(d);
            (f, d)
        })
        .collect()
}

#[test]
fn every_captured_message_round_trips() {
    let mut count = 0;
    let mut seen = std::collections::BTreeSet::new();
    for dir in case_dirs() {
        for (file, _) in messages(&dir) {
            let raw = std::fs::read(&file).unwrap();
            let m = Message::decode(&raw).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
            assert_eq!(m.encode(), raw, "{}", file.display());
            assert_eq!(m.try_encode().unwrap(), raw, "{}", file.display());
            for p in &m.payloads {
                seen.insert(p.payload_type());
            }
            count += 1;
        }
    }
    assert!(count >= 50, "only {count} messages");
    // The captures exercise the outer payloads of IKE_SA_INIT and the SK/SKF envelopes.
    for t in [
        PayloadType::SA,
        PayloadType::KE,
        PayloadType::NONCE,
        PayloadType::NOTIFY,
        PayloadType::SK,
        PayloadType::SKF,
    ] {
        assert!(seen.contains(&t), "no {t} payload in the captures");
    }
}

#[test]
fn every_decrypted_plaintext_round_trips_as_an_inner_chain() {
    let mut count = 0;
    let mut seen = std::collections::BTreeSet::new();
    for dir in case_dirs() {
        // Fragments of one message are concatenated in fragment order (RFC 7383 §2.6).
        let mut pending: Option<(PayloadType, Vec<u8>, u16)> = None;
        for (file, dec) in messages(&dir) {
            let Some(dec) = dec else { continue };
            let raw = std::fs::read(&file).unwrap();
            let plain = std::fs::read(&dec).unwrap();
            let m = Message::decode(&raw).unwrap();
            let chain = match m.payloads.last() {
                Some(Payload::Sk(sk)) => Some((sk.first_inner, plain)),
                Some(Payload::Skf(f)) => {
                    if f.fragment_number == 1 {
                        pending = Some((f.first_inner, Vec::new(), f.total_fragments));
                    }
                    let (first, mut buf, total) = pending.take().expect("fragment 1 first");
                    buf.extend_from_slice(&plain);
                    if f.fragment_number == total {
                        Some((first, buf))
                    } else {
                        pending = Some((first, buf, total));
                        None
                    }
                }
                other => panic!("{}: not encrypted: {other:?}", file.display()),
            };
            let Some((first, bytes)) = chain else {
                continue;
            };
            let payloads =
                decode_chain(first, &bytes).unwrap_or_else(|e| panic!("{}: {e}", dec.display()));
            assert_eq!(encode_chain(&payloads), (first, bytes), "{}", dec.display());
            for p in &payloads {
                seen.insert(p.payload_type());
            }
            count += 1;
        }
        assert!(pending.is_none(), "{}: incomplete fragments", dir.display());
    }
    assert!(count >= 30, "only {count} plaintexts");
    for t in [
        PayloadType::IDI,
        PayloadType::IDR,
        PayloadType::AUTH,
        PayloadType::SA,
        PayloadType::TSI,
        PayloadType::TSR,
        PayloadType::NOTIFY,
        PayloadType::DELETE,
        PayloadType::CERT,
        PayloadType::CERTREQ,
        PayloadType::NONCE,
        PayloadType::KE,
    ] {
        assert!(seen.contains(&t), "no {t} payload in the plaintexts");
    }
}

#[test]
fn captured_ike_sa_init_has_the_expected_shape() {
    let raw = std::fs::read(captures().join("psk-aes128gcm16-x25519/01-IKE_SA_INIT-request.bin"))
        .unwrap();
    let v = HeaderView::new_checked(&raw[..]).unwrap();
    assert_eq!(v.exchange(), ExchangeType::IKE_SA_INIT);
    assert!(v.flags().initiator());
    assert_eq!(v.spi_r(), IkeSpi::ZERO);
    let m = Message::decode(&raw).unwrap();
    let Payload::Sa(sa) = &m.payloads[0] else {
        panic!("SA first")
    };
    let t = &sa.proposals[0].transforms;
    assert!(t.iter().any(|t| t.transform_type == TransformType::ENCR
        && t.id == EncrId::AES_GCM_16.0
        && t.key_length() == Some(128)));
    assert!(
        t.iter()
            .any(|t| t.transform_type == TransformType::KE && t.id == KeGroup::CURVE25519.0)
    );
    let ke = m.payloads.iter().find_map(|p| match p {
        Payload::Ke(k) => Some(k),
        _ => None,
    });
    assert_eq!(ke.unwrap().data.len(), 32);
    for t in [
        NotifyType::NAT_DETECTION_SOURCE_IP,
        NotifyType::NAT_DETECTION_DESTINATION_IP,
    ] {
        find_notify(&m.payloads, t)
            .unwrap()
            .as_nat_detection_hash()
            .unwrap();
    }
}

/// The first string value of `key` in `json` (keys.json lists `ike_sas[0]` first).
fn json_str(json: &str, key: &str) -> Option<String> {
    let at = json.find(&format!("\"{key}\": \""))? + key.len() + 5;
    Some(json[at..].split('"').next()?.to_owned())
}

/// The first number value of `key` after `anchor` in `json`.
fn json_num(json: &str, anchor: &str, key: &str) -> Option<u16> {
    let from = json.find(anchor)?;
    let rest = &json[from..];
    let at = rest.find(&format!("\"{key}\": "))? + key.len() + 4;
    rest[at..]
        .split([',', '\n', '}'])
        .next()?
        .trim()
        .parse()
        .ok()
}

fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

/// The SK ciphers (initiator → responder, responder → initiator) of the first IKE SA.
fn first_ike_sa_ciphers(dir: &Path) -> (Box<dyn SkCipher>, Box<dyn SkCipher>) {
    let json = std::fs::read_to_string(dir.join("keys.json")).unwrap();
    let encr = EncrId(json_num(&json, "\"encr\": {", "id").unwrap());
    let bits = json_num(&json, "\"encr\": {", "key_bits").unwrap();
    let integ = if json.contains("\"integ\": null") {
        IntegId::NONE
    } else {
        IntegId(json_num(&json, "\"integ\": {", "id").unwrap())
    };
    let key = |k: &str| json_str(&json, k).map(|h| hex(&h)).unwrap_or_default();
    let make = |e: &str, a: &str| sk_cipher(encr, bits, integ, &key(e), &key(a)).unwrap();
    (make("sk_ei", "sk_ai"), make("sk_er", "sk_ar"))
}

/// The IKE_AUTH exchange of every capture, decrypted with the keys strongSwan logged:
/// SK messages through `decrypt_message`, SKF fragments through the `Reassembler`. This
/// checks our prefix/AAD framing against a real implementation.
#[test]
fn captured_ike_auth_decrypts_with_the_logged_keys() {
    let mut sk = 0;
    let mut reassembled = 0;
    for dir in case_dirs() {
        let (ci, cr) = first_ike_sa_ciphers(&dir);
        let mut ri = Reassembler::new();
        let mut rr = Reassembler::new();
        for (file, dec) in messages(&dir) {
            let name = file.file_name().unwrap().to_string_lossy().into_owned();
            if !name.contains("IKE_AUTH") {
                continue;
            }
            let request = name.contains("request");
            let (c, r) = if request {
                (&ci, &mut ri)
            } else {
                (&cr, &mut rr)
            };
            let raw = std::fs::read(&file).unwrap();
            let inner = if name.contains("-frag") {
                match r.handle_fragment(&raw, c.as_ref()) {
                    Ok(FragmentOutcome::Complete { payloads, .. }) => payloads,
                    Ok(FragmentOutcome::Stored { .. }) => continue,
                    other => panic!("{name}: {other:?}"),
                }
            } else {
                let (_, payloads) = decrypt_message(&raw, c.as_ref())
                    .map_err(|e| format!("{name}: {e}"))
                    .unwrap();
                let plain = std::fs::read(dec.unwrap()).unwrap();
                assert_eq!(encode_chain(&payloads).1, plain, "{name}");
                payloads
            };
            if name.contains("-frag") {
                reassembled += 1;
            } else {
                sk += 1;
            }
            assert!(
                inner.iter().any(|p| matches!(p, Payload::Auth(_))),
                "{name}: no AUTH"
            );
        }
    }
    assert!(sk >= 10, "{sk} SK messages");
    // rsa-chain-fragmentation(-xfrm): a fragmented request and response each.
    assert!(
        reassembled >= 2 && reassembled % 2 == 0,
        "{reassembled} reassembled messages"
    );
}
