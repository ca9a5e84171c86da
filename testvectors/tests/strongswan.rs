//! Real strongSwan 5.9.8 sessions (captured into `data/strongswan/<case>/`, see its
//! README.md and each case's SOURCE.md) replayed through `ike`:
//! (a) SKEYSEED and every SK_* re-derived from the logged DH shared secret, nonces and SPIs
//!     (RFC 7296 §2.14; §2.18 for rekeyed IKE SAs) and compared with strongSwan's;
//! (b) every encrypted message decrypted with the SK cipher of its direction (messages from
//!     the original initiator use SK_ei/SK_ai) and its inner payloads decoded, SKF fragments
//!     through the reassembler (RFC 7383);
//! (c) every message re-encoded byte for byte, the outer chain and the inner chain;
//! (d) every AUTH payload recomputed (PSK, RFC 7296 §2.15) or its RFC 7427 signature
//!     verified with the CERT payload's key; every Child SA's KEYMAT (§2.17) re-derived.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod common;

use std::collections::BTreeMap;

use common::{Tally, data_path, trial, unhex};
use ike::crypto::{
    HMAC_SHA2_256, HMAC_SHA2_384, HMAC_SHA2_512, Prf, SignatureScheme, SkCipher, child_keymat,
    decode_signature_auth, derive_ike_sa_keys, key_lengths, psk_auth, signed_octets, sk_cipher,
    skeyseed, skeyseed_rekey, verify_rsa,
};
use ike::wire::{
    AuthMethod, CertEncoding, EncrId, IkeSpi, IntegId, Message, Payload, PayloadType, PrfId,
    Reassembler, decrypt_message, encode_chain,
};
use libtest_mimic::Failed;
use serde_json::Value;
use x509_cert::der::{Decode, Encode};

/// The captures this suite expects, all of which must be present (more may be).
const CASES: [&str; 6] = [
    "psk-aes128gcm16-x25519",
    "psk-aes256-sha256-modp2048",
    "psk-chacha20poly1305-ecp256",
    "psk-rekey-dpd-delete",
    "rsa-aes256gcm16-prfsha384-ecp384",
    "rsa-chain-fragmentation",
];

fn s<'a>(v: &'a Value, k: &str) -> &'a str {
    v[k].as_str()
        .unwrap_or_else(|| panic!("missing string field {k}"))
}

fn hx(v: &Value, k: &str) -> Vec<u8> {
    unhex(s(v, k)).unwrap()
}

/// Hex field, or empty for JSON null (sk_ai/sk_ar of AEAD SAs, absent Child SA keys).
fn hx_or_empty(v: &Value, k: &str) -> Vec<u8> {
    if v[k].is_null() { Vec::new() } else { hx(v, k) }
}

fn num(v: &Value, k: &str) -> u64 {
    v[k].as_u64()
        .unwrap_or_else(|| panic!("missing number field {k}"))
}

fn prf_of(id: u64) -> &'static dyn Prf {
    match PrfId(u16::try_from(id).unwrap()) {
        PrfId::HMAC_SHA2_256 => &HMAC_SHA2_256,
        PrfId::HMAC_SHA2_384 => &HMAC_SHA2_384,
        PrfId::HMAC_SHA2_512 => &HMAC_SHA2_512,
        other => panic!("PRF {other:?} not offered"),
    }
}

fn spi(v: &Value, k: &str) -> IkeSpi {
    IkeSpi::from_bytes(hx(v, k).try_into().unwrap())
}

/// The transforms of an SA entry: (encr, key_bits, integ).
fn transforms(sa: &Value) -> (EncrId, u16, IntegId) {
    let encr = EncrId(u16::try_from(num(&sa["encr"], "id")).unwrap());
    let bits = u16::try_from(num(&sa["encr"], "key_bits")).unwrap();
    let integ = if sa["integ"].is_null() {
        IntegId::NONE
    } else {
        IntegId(u16::try_from(num(&sa["integ"], "id")).unwrap())
    };
    (encr, bits, integ)
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

/// Our derivation of one IKE SA's keys, keyed by the keys.json field names.
type Derived = BTreeMap<&'static str, Vec<u8>>;

/// (a): SKEYSEED and SK_* from the shared secret, nonces and SPIs.
fn derive_ike_sa(sa: &Value, sas: &[Value], ours: &[Derived]) -> Result<Derived, String> {
    let prf = prf_of(num(&sa["prf"], "id"));
    let (ni, nr, shared) = (hx(sa, "ni"), hx(sa, "nr"), hx(sa, "dh_shared_secret"));
    let seed = match sa["rekeyed_from"].as_u64() {
        None => skeyseed(prf, &ni, &nr, &shared),
        Some(old) => {
            // §2.18: SKEYSEED = prf(SK_d (old), g^ir (new) | Ni | Nr), with the old SA's PRF
            // and our own SK_d (old) (itself checked against strongSwan's).
            let old = usize::try_from(old).unwrap();
            let old_prf = prf_of(num(&sas[old]["prf"], "id"));
            let old_sk_d = ours
                .get(old)
                .and_then(|d| d.get("sk_d"))
                .ok_or("old SA not derived")?;
            skeyseed_rekey(old_prf, old_sk_d, &shared, &ni, &nr)
        }
    };
    let (encr, bits, integ) = transforms(sa);
    let lens = key_lengths(encr, bits, integ, prf).map_err(|e| format!("key_lengths: {e}"))?;
    let k = derive_ike_sa_keys(
        prf,
        seed.expose(),
        &ni,
        &nr,
        spi(sa, "spi_i"),
        spi(sa, "spi_r"),
        &lens,
    )
    .map_err(|e| format!("derive_ike_sa_keys: {e}"))?;
    let mut d = Derived::new();
    d.insert("skeyseed", seed.expose().to_vec());
    for (name, key) in [
        ("sk_d", &k.sk_d),
        ("sk_ai", &k.sk_ai),
        ("sk_ar", &k.sk_ar),
        ("sk_ei", &k.sk_ei),
        ("sk_er", &k.sk_er),
        ("sk_pi", &k.sk_pi),
        ("sk_pr", &k.sk_pr),
    ] {
        d.insert(name, key.expose().to_vec());
    }
    Ok(d)
}

fn check_ike_sa(sa: &Value, d: &Derived) -> Result<(), String> {
    for (name, got) in d {
        eq(name, got, &hx_or_empty(sa, name))?;
    }
    Ok(())
}

/// (d) Child SAs: KEYMAT = prf+(SK_d, [g^ir (new) |] Ni | Nr), taken as encr_i | integ_i |
/// encr_r | integ_r (§2.17: initiator-to-responder keys first, encryption before integrity).
fn check_child_sa(c: &Value, sas: &[Value], ours: &[Derived]) -> Result<(), String> {
    let ike = usize::try_from(num(c, "ike_sa")).unwrap();
    let prf = prf_of(num(&sas[ike]["prf"], "id"));
    let sk_d = ours
        .get(ike)
        .and_then(|d| d.get("sk_d"))
        .ok_or("IKE SA not derived")?;
    let encr_len = usize::try_from(num(&c["encr"], "key_bytes_with_salt")).unwrap();
    let integ_len = if c["integ"].is_null() {
        0
    } else {
        usize::try_from(num(&c["integ"], "key_bytes")).unwrap()
    };
    let pfs = if c["pfs_shared_secret"].is_null() {
        None
    } else {
        Some(hx(c, "pfs_shared_secret"))
    };
    let keymat = child_keymat(
        prf,
        sk_d,
        pfs.as_deref(),
        &hx(c, "ni"),
        &hx(c, "nr"),
        2 * (encr_len + integ_len),
    )
    .map_err(|e| format!("child_keymat: {e}"))?;
    let km = keymat.expose();
    let (ei, rest) = km.split_at(encr_len);
    let (ai, rest) = rest.split_at(integ_len);
    let (er, ar) = rest.split_at(encr_len);
    eq("encr_key_i", ei, &hx(c, "encr_key_i"))?;
    eq("integ_key_i", ai, &hx_or_empty(c, "integ_key_i"))?;
    eq("encr_key_r", er, &hx(c, "encr_key_r"))?;
    eq("integ_key_r", ar, &hx_or_empty(c, "integ_key_r"))
}

/// The SK cipher for messages sent by the original initiator (`from_initiator`) or the
/// original responder of IKE SA `d`.
fn cipher_for(sa: &Value, d: &Derived, from_initiator: bool) -> Result<Box<dyn SkCipher>, String> {
    let (encr, bits, integ) = transforms(sa);
    let (e, a) = if from_initiator {
        ("sk_ei", "sk_ai")
    } else {
        ("sk_er", "sk_ar")
    };
    sk_cipher(encr, bits, integ, &d[e], &d[a]).map_err(|e| format!("sk_cipher: {e}"))
}

/// What one IKE_AUTH message contributes to AUTH checking, after decryption.
struct AuthMessage {
    from_initiator: bool,
    ike_sa: usize,
    payloads: Vec<Payload>,
}

/// (IKE SA index, sent by the original initiator, Message ID) of a fragmented message.
type FragmentKey = (usize, bool, u32);

/// A fragmented message in reassembly: the reassembler, the fragments' plaintext pieces
/// concatenated as captured, and fragment 1's first inner payload type.
struct Pending(Reassembler, Vec<u8>, PayloadType);

struct CaseRun {
    dir: std::path::PathBuf,
    keys: Value,
    ours: Vec<Derived>,
    reassemblers: BTreeMap<FragmentKey, Pending>,
    auth_messages: Vec<AuthMessage>,
    init_messages: BTreeMap<(usize, bool), Vec<u8>>,
}

impl CaseRun {
    fn read(&self, file: &str) -> Result<Vec<u8>, String> {
        std::fs::read(self.dir.join(file)).map_err(|e| format!("{file}: {e}"))
    }

    /// (b) + (c) for one message file.
    fn check_message(&mut self, m: &Value) -> Result<(), String> {
        let file = s(m, "file");
        let raw = self.read(file)?;
        let msg = Message::decode(&raw).map_err(|e| format!("decode: {e}"))?;
        eq("re-encoded message", &msg.encode(), &raw)?;
        let Some(ike) = m["ike_sa"].as_u64() else {
            // No IKE SA came of it (an IKE_SA_INIT refused with INVALID_KE_PAYLOAD and
            // its retried request): plaintext, checked above.
            if m["encrypted"].as_bool().unwrap_or(false) {
                return Err("encrypted message outside any IKE SA".into());
            }
            return Ok(());
        };
        let ike = usize::try_from(ike).unwrap();
        let from_initiator = msg.header.flags.initiator();
        if from_initiator != m["initiator_flag"].as_bool().unwrap() {
            return Err("Initiator flag differs from keys.json".into());
        }
        let exchange = s(m, "exchange");
        if exchange == "IKE_SA_INIT" {
            if msg
                .payloads
                .iter()
                .any(|p| matches!(p, Payload::Sk(_) | Payload::Skf(_)))
            {
                return Err("IKE_SA_INIT with SK".into());
            }
            self.init_messages
                .insert((ike, m["is_response"].as_bool().unwrap()), raw);
            return Ok(());
        }
        if !m["encrypted"].as_bool().unwrap_or(false) {
            return Ok(());
        }
        let sa = &self.keys["ike_sas"][ike];
        let d = self.ours.get(ike).ok_or("IKE SA keys not derived")?;
        let cipher = cipher_for(sa, d, from_initiator)?;
        let want_plain = self.read(s(m, "decrypted_file"))?;
        match msg.payloads.last() {
            Some(Payload::Sk(sk)) => {
                let (_, inner) =
                    decrypt_message(&raw, cipher.as_ref()).map_err(|e| format!("decrypt: {e}"))?;
                let (first, plain) = encode_chain(&inner);
                if first != sk.first_inner {
                    return Err(format!(
                        "inner chain starts with {first:?}, SK says {:?}",
                        sk.first_inner
                    ));
                }
                eq("re-encoded inner chain", &plain, &want_plain)?;
                self.note_auth(exchange, from_initiator, ike, inner);
                Ok(())
            }
            Some(Payload::Skf(skf)) => {
                // This fragment's own plaintext: prefix = IKE header + SKF header (8 octets).
                let prefix_len = 28 + 8;
                let piece = cipher
                    .open(&raw[..prefix_len], &raw[prefix_len..])
                    .map_err(|e| format!("open fragment: {e}"))?;
                eq("fragment plaintext", &piece, &want_plain)?;
                let key = (ike, from_initiator, msg.header.message_id);
                let entry = self
                    .reassemblers
                    .entry(key)
                    .or_insert_with(|| Pending(Reassembler::new(), Vec::new(), PayloadType::NONE));
                entry.1.extend_from_slice(&piece);
                if skf.fragment_number == 1 {
                    entry.2 = skf.first_inner;
                }
                match entry
                    .0
                    .handle_fragment(&raw, cipher.as_ref())
                    .map_err(|e| format!("reassembly: {e}"))?
                {
                    ike::wire::sk::FragmentOutcome::Stored { .. } => Ok(()),
                    ike::wire::sk::FragmentOutcome::Complete { payloads, .. } => {
                        let (first, plain) = encode_chain(&payloads);
                        if first != entry.2 {
                            return Err(format!(
                                "reassembled chain starts with {first:?}, fragment 1 says {:?}",
                                entry.2
                            ));
                        }
                        eq("re-encoded reassembled inner chain", &plain, &entry.1)?;
                        self.note_auth(exchange, from_initiator, ike, payloads);
                        Ok(())
                    }
                    other => Err(format!("unexpected reassembly outcome {other:?}")),
                }
            }
            other => Err(format!("encrypted message ends with {other:?}")),
        }
    }

    fn note_auth(
        &mut self,
        exchange: &str,
        from_initiator: bool,
        ike_sa: usize,
        payloads: Vec<Payload>,
    ) {
        if exchange == "IKE_AUTH" && payloads.iter().any(|p| matches!(p, Payload::Auth(_))) {
            self.auth_messages.push(AuthMessage {
                from_initiator,
                ike_sa,
                payloads,
            });
        }
    }

    /// (d) AUTH: PSK recomputed, or the RFC 7427 signature verified with the CERT's key.
    fn check_auth(&self, a: &AuthMessage) -> Result<(), String> {
        let sa = &self.keys["ike_sas"][a.ike_sa];
        let d = &self.ours[a.ike_sa];
        let prf = prf_of(num(&sa["prf"], "id"));
        // The signer's IKE_SA_INIT message, the peer's nonce, the signer's SK_p and ID.
        let (init, peer_nonce, sk_p) = if a.from_initiator {
            (
                self.init_messages.get(&(a.ike_sa, false)),
                hx(sa, "nr"),
                &d["sk_pi"],
            )
        } else {
            (
                self.init_messages.get(&(a.ike_sa, true)),
                hx(sa, "ni"),
                &d["sk_pr"],
            )
        };
        let init = init.ok_or("signer's IKE_SA_INIT message not captured")?;
        let id = a
            .payloads
            .iter()
            .find_map(|p| match p {
                Payload::IdI(id) if a.from_initiator => Some(id),
                Payload::IdR(id) if !a.from_initiator => Some(id),
                _ => None,
            })
            .ok_or("no ID payload of the signer")?;
        let auth = a
            .payloads
            .iter()
            .find_map(|p| {
                if let Payload::Auth(x) = p {
                    Some(x)
                } else {
                    None
                }
            })
            .ok_or("no AUTH payload")?;
        let octets = signed_octets(init, &peer_nonce, prf, sk_p, &id.body());
        let method = s(&self.keys["auth"], "method");
        match (method, auth.method) {
            ("psk", AuthMethod::SHARED_KEY_MIC) => {
                // swanctl's `secret = "..."` is the PSK as raw octets.
                let psk = s(&self.keys["auth"], "psk").as_bytes();
                eq("AUTH", psk_auth(prf, psk, &octets).expose(), &auth.data)
            }
            ("pubkey", AuthMethod::DIGITAL_SIGNATURE | AuthMethod::RSA_SIG) => {
                let cert = a
                    .payloads
                    .iter()
                    .find_map(|p| match p {
                        Payload::Cert(c) if c.encoding == CertEncoding::X509_SIGNATURE => Some(c),
                        _ => None,
                    })
                    .ok_or("no X.509 CERT payload")?;
                let parsed = x509_cert::Certificate::from_der(&cert.data)
                    .map_err(|e| format!("certificate: {e}"))?;
                let spki = parsed
                    .tbs_certificate()
                    .subject_public_key_info()
                    .to_der()
                    .map_err(|e| format!("SPKI: {e}"))?;
                let (scheme, sig) = if auth.method == AuthMethod::DIGITAL_SIGNATURE {
                    decode_signature_auth(&auth.data).map_err(|e| format!("RFC 7427 AUTH: {e}"))?
                } else {
                    (SignatureScheme::RsaPkcs1Sha1, auth.data.as_slice())
                };
                verify_rsa(&spki, scheme, &octets, sig)
                    .map_err(|e| format!("signature ({scheme:?}): {e}"))
            }
            (m, am) => Err(format!("auth method {am:?} with keys.json method {m}")),
        }
    }
}

fn run_case(name: &str) -> Result<(), Failed> {
    let dir = data_path(&format!("strongswan/{name}"));
    let keys_path = dir.join("keys.json");
    let text = std::fs::read_to_string(&keys_path).map_err(|e| {
        format!(
            "strongSwan capture missing: {} ({e}). The captures are made by interop/capture/capture-strongswan.sh; \
             this suite fails rather than passing with nothing to check.",
            keys_path.display()
        )
    })?;
    let keys: Value = serde_json::from_str(&text)?;

    // Every message file on disk must be listed, so none is silently left out.
    let listed: Vec<String> = keys["messages"]
        .as_array()
        .ok_or("no messages")?
        .iter()
        .map(|m| s(m, "file").to_owned())
        .collect();
    let mut on_disk: Vec<String> = std::fs::read_dir(&dir)?
        .filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
        .filter(|f| f.ends_with(".bin") && !f.ends_with(".decrypted.bin"))
        .collect();
    on_disk.sort();
    let mut listed_sorted = listed.clone();
    listed_sorted.sort();
    if on_disk != listed_sorted {
        return Err(format!(
            "{name}: message files {on_disk:?} differ from keys.json {listed_sorted:?}"
        )
        .into());
    }

    let sas = keys["ike_sas"].as_array().ok_or("no ike_sas")?.clone();
    let n_child = keys["child_sas"].as_array().map_or(0, Vec::len);
    let n_auth = keys["messages"].as_array().map_or(0, |ms| {
        ms.iter().filter(|m| !m["auth_verified"].is_null()).count()
    });
    let mut t = Tally::new(format!(
        "strongswan {name} ({} IKE SA keys, {n_child} Child SA KEYMATs, {} messages, {n_auth} AUTH)",
        sas.len(),
        listed.len()
    ));
    let mut ours: Vec<Derived> = Vec::new();
    for sa in &sas {
        let r = derive_ike_sa(sa, &sas, &ours);
        let case = format!("IKE SA {} keys", num(sa, "index"));
        match r {
            Ok(d) => {
                t.valid(case, check_ike_sa(sa, &d));
                ours.push(d);
            }
            Err(e) => {
                t.fail(case, e);
                ours.push(Derived::new());
            }
        }
    }
    for c in keys["child_sas"].as_array().ok_or("no child_sas")? {
        t.valid(
            format!("Child SA {} KEYMAT", s(c, "spi_i")),
            check_child_sa(c, &sas, &ours),
        );
    }

    let mut run = CaseRun {
        dir: dir.clone(),
        keys: keys.clone(),
        ours,
        reassemblers: BTreeMap::new(),
        auth_messages: Vec::new(),
        init_messages: BTreeMap::new(),
    };
    let messages = keys["messages"].as_array().ok_or("no messages")?.clone();
    for m in &messages {
        let r = run.check_message(m);
        t.valid(s(m, "file"), r);
    }
    let auths = std::mem::take(&mut run.auth_messages);
    for a in &auths {
        let who = if a.from_initiator {
            "initiator"
        } else {
            "responder"
        };
        t.valid(
            format!("AUTH of the {who} (IKE SA {})", a.ike_sa),
            run.check_auth(a),
        );
    }

    // Expected: every IKE SA, Child SA and message, and two AUTH payloads per IKE_AUTH
    // exchange (one per side) -- as listed in keys.json, whose files were cross-checked
    // against the folder above.
    let ike_auth_exchanges = messages
        .iter()
        .filter(|m| {
            s(m, "exchange") == "IKE_AUTH" && m["fragment"]["number"].as_u64().unwrap_or(1) == 1
        })
        .count();
    let expected = sas.len()
        + keys["child_sas"].as_array().map_or(0, Vec::len)
        + messages.len()
        + ike_auth_exchanges;
    if auths.len() != ike_auth_exchanges {
        t.fail(
            "AUTH payloads",
            format!(
                "found {} AUTH payloads in {ike_auth_exchanges} IKE_AUTH messages",
                auths.len()
            ),
        );
    }
    t.finish(expected, expected)
}

fn main() {
    // The known captures must all be there (a missing one fails its trial loudly); any
    // further capture folder with a keys.json (e.g. the in-VM `-xfrm` ones) runs too.
    let mut names: Vec<String> = CASES.iter().map(|&n| n.to_owned()).collect();
    if let Ok(entries) = std::fs::read_dir(data_path("strongswan")) {
        let mut extra: Vec<String> = entries
            .filter_map(Result::ok)
            .filter(|e| e.path().join("keys.json").is_file())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| !CASES.contains(&n.as_str()))
            .collect();
        extra.sort();
        names.extend(extra);
    }
    let trials = names
        .into_iter()
        .map(|name| trial(&format!("strongswan_{name}"), move || run_case(&name)))
        .collect();
    common::run(trials);
}
