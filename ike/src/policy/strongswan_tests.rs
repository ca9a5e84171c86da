//! The policy decisions against real strongSwan 5.9.8 exchanges
//! (testvectors/data/strongswan, see its README): given the initiator's requests, we must
//! choose what strongSwan's responder chose, narrow traffic selectors as it did, and
//! validate the certificates its PKI made.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::config::{Identity, TsConfig};
use crate::crypto::DEFAULT_PROVIDER;
use crate::policy::cert::{
    ParsedCert, certreq_names, identity_matches_cert, pem_certificates, validate_chain,
};
use crate::policy::proposal::{
    accept_child_response, accept_ike_response, esp_spi, parse_esp_proposal, parse_ike_proposal,
    select_child, select_ike,
};
use crate::policy::ts::narrow_responder;
use crate::wire::decode_chain;
use crate::wire::payload::{Message, Payload, SaPayload, TsPayload};
use crate::wire::registry::{CertEncoding, CfgAttrType, PayloadType};

fn case_dir(case: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../testvectors/data/strongswan")
        .join(case)
}

fn read(dir: &Path, name: &str) -> Vec<u8> {
    std::fs::read(dir.join(name)).unwrap_or_else(|e| {
        panic!(
            "{}/{name}: {e} (the strongSwan captures are part of the repo)",
            dir.display()
        )
    })
}

/// The message files of `dir` whose name contains `what`, in order.
fn files(dir: &Path, what: &str) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(what) && n.ends_with(".bin") && !n.ends_with(".decrypted.bin"))
        .collect();
    v.sort();
    v
}

/// The plain payloads of the first message matching `what` (IKE_SA_INIT).
fn plain(dir: &Path, what: &str) -> Vec<Payload> {
    let f = files(dir, what);
    Message::decode(&read(dir, &f[0])).unwrap().payloads
}

/// The inner payloads of the first (possibly fragmented) encrypted message matching
/// `what`, from the decrypted files.
fn inner(dir: &Path, what: &str) -> Vec<Payload> {
    let names = files(dir, what);
    let first_msg = Message::decode(&read(dir, &names[0])).unwrap();
    let (first_inner, total) = match first_msg.payloads.last().unwrap() {
        Payload::Sk(sk) => (sk.first_inner, 1),
        Payload::Skf(f) => (f.first_inner, usize::from(f.total_fragments)),
        other => panic!("not encrypted: {other:?}"),
    };
    let mut plaintext = Vec::new();
    for n in names.iter().take(total) {
        plaintext.extend(read(dir, &n.replace(".bin", ".decrypted.bin")));
    }
    assert_ne!(first_inner, PayloadType::NONE);
    decode_chain(first_inner, &plaintext).unwrap()
}

fn sa(p: &[Payload]) -> &SaPayload {
    p.iter()
        .find_map(|p| {
            if let Payload::Sa(s) = p {
                Some(s)
            } else {
                None
            }
        })
        .unwrap()
}

fn tsi(p: &[Payload]) -> &TsPayload {
    p.iter()
        .find_map(|p| {
            if let Payload::TsI(t) = p {
                Some(t)
            } else {
                None
            }
        })
        .unwrap()
}

fn tsr(p: &[Payload]) -> &TsPayload {
    p.iter()
        .find_map(|p| {
            if let Payload::TsR(t) = p {
                Some(t)
            } else {
                None
            }
        })
        .unwrap()
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// Runs the IKE_SA_INIT and IKE_AUTH decisions of one capture and compares them with the
/// strongSwan responder's.
fn check_case(case: &str, ike: &str, esp: &str) {
    let dir = case_dir(case);
    let init_req = plain(&dir, "IKE_SA_INIT-request");
    let init_resp = plain(&dir, "IKE_SA_INIT-response");
    let peer_ke = init_req.iter().find_map(|p| {
        if let Payload::Ke(k) = p {
            Some(k.group)
        } else {
            None
        }
    });
    let ours = [parse_ike_proposal(ike).unwrap()];
    let (chosen, suite) = select_ike(sa(&init_req), &ours, peer_ke, &DEFAULT_PROVIDER)
        .unwrap_or_else(|e| panic!("{case}: {e}"));
    assert_eq!(
        sa(&init_resp).proposals,
        vec![chosen],
        "{case}: same IKE choice as strongSwan"
    );
    assert_eq!(
        accept_ike_response(sa(&init_req), sa(&init_resp)).unwrap(),
        suite
    );

    let auth_req = inner(&dir, "IKE_AUTH-request");
    let auth_resp = inner(&dir, "IKE_AUTH-response");
    let esp_cfg = [parse_esp_proposal(esp).unwrap()];
    let (chosen, child) = select_child(sa(&auth_req), &esp_cfg, None, false)
        .unwrap_or_else(|e| panic!("{case}: {e}"));
    let theirs = &sa(&auth_resp).proposals[0];
    assert_eq!(
        (chosen.number, &chosen.transforms),
        (theirs.number, &theirs.transforms),
        "{case}: same ESP choice as strongSwan"
    );
    assert_eq!(
        esp_spi(&chosen),
        esp_spi(&sa(&auth_req).proposals[0]),
        "peer's SPI kept"
    );
    let (accepted, spi_r) = accept_child_response(sa(&auth_req), sa(&auth_resp)).unwrap();
    assert_eq!(accepted, child);
    assert_eq!(Some(spi_r), esp_spi(theirs));

    // The virtual IP strongSwan assigned (CP reply), then the narrowing it did.
    let vip = auth_resp
        .iter()
        .find_map(|p| match p {
            Payload::Cp(cp) => cp
                .attributes
                .iter()
                .find(|a| a.attr_type == CfgAttrType::INTERNAL_IP4_ADDRESS)
                .and_then(|a| <[u8; 4]>::try_from(a.value.as_slice()).ok())
                .map(IpAddr::from),
            _ => None,
        })
        .unwrap_or_else(|| panic!("{case}: no virtual IP in the CP reply"));
    let local_ts = [TsConfig::Subnet {
        addr: ip("10.1.0.0"),
        prefix_len: 24,
        ip_protocol: 0,
        ports: (0, 65535),
    }];
    let n = narrow_responder(
        &local_ts,
        &[TsConfig::Dynamic],
        &[ip("198.51.100.1")],
        &[vip],
        tsi(&auth_req),
        tsr(&auth_req),
    )
    .unwrap_or_else(|e| panic!("{case}: {e}"));
    assert_eq!(
        &n.tsi_payload(),
        tsi(&auth_resp),
        "{case}: TSi as strongSwan narrowed it"
    );
    assert_eq!(
        &n.tsr_payload(),
        tsr(&auth_resp),
        "{case}: TSr as strongSwan narrowed it"
    );
}

#[test]
fn psk_aes128gcm16_x25519_matches_strongswan() {
    check_case(
        "psk-aes128gcm16-x25519",
        "aes128gcm16-prfsha256-x25519",
        "aes128gcm16",
    );
}

#[test]
fn psk_aes256_sha256_modp2048_matches_strongswan() {
    check_case(
        "psk-aes256-sha256-modp2048",
        "aes256-sha256-modp2048",
        "aes256-sha256",
    );
}

#[test]
fn psk_chacha20poly1305_ecp256_matches_strongswan() {
    check_case(
        "psk-chacha20poly1305-ecp256",
        "chacha20poly1305-prfsha256-ecp256",
        "chacha20poly1305",
    );
}

#[test]
fn rsa_aes256gcm16_ecp384_matches_strongswan() {
    check_case(
        "rsa-aes256gcm16-prfsha384-ecp384",
        "aes256gcm16-prfsha384-ecp384",
        "aes256gcm16",
    );
}

#[test]
fn rsa_chain_fragmentation_matches_strongswan() {
    check_case(
        "rsa-chain-fragmentation",
        "aes128gcm16-prfsha256-x25519",
        "aes128gcm16",
    );
}

/// The certificates strongSwan's PKI made and sent: chains validate, identities match, and
/// the CERTREQ hashes strongSwan sent name the CA as we compute it.
fn check_certs(case: &str) {
    let dir = case_dir(case);
    let ca = pem_certificates(&read(&dir, "certs/ca.crt"))
        .unwrap()
        .remove(0);
    let init_resp = plain(&dir, "IKE_SA_INIT-response");
    let certreq = init_resp
        .iter()
        .find_map(|p| {
            if let Payload::CertReq(c) = p {
                Some(c)
            } else {
                None
            }
        })
        .unwrap();
    assert_eq!(certreq.encoding, CertEncoding::X509_SIGNATURE);
    assert!(
        certreq_names(&certreq.data, &ca),
        "{case}: strongSwan's CERTREQ names the CA"
    );

    for (what, id_of) in [
        ("IKE_AUTH-request", "client.example"),
        ("IKE_AUTH-response", "gw.example"),
    ] {
        let payloads = inner(&dir, what);
        let certs: Vec<Vec<u8>> = payloads
            .iter()
            .filter_map(|p| match p {
                Payload::Cert(c) if c.encoding == CertEncoding::X509_SIGNATURE => {
                    Some(c.data.clone())
                }
                _ => None,
            })
            .collect();
        let mut intermediates = certs[1..].to_vec();
        if what.ends_with("request") && dir.join("certs/intermediate.crt").exists() {
            // The client sends only its own certificate; strongSwan's gateway has the
            // intermediate locally (`authorities`), and so would we.
            assert_eq!(certs.len(), 1);
            intermediates = pem_certificates(&read(&dir, "certs/intermediate.crt")).unwrap();
        }
        let ee = ParsedCert::from_der(&certs[0]).unwrap();
        let now = ee.not_before() + Duration::from_secs(3600);
        let v = validate_chain(&certs[0], &intermediates, std::slice::from_ref(&ca), now)
            .unwrap_or_else(|e| panic!("{case} {what}: {e}"));
        assert_eq!(v.anchor().unwrap().der(), ca.as_slice());
        let id = payloads
            .iter()
            .find_map(|p| match p {
                Payload::IdI(i) if what.ends_with("request") => Some(Identity::from_payload(i)),
                Payload::IdR(i) if what.ends_with("response") => Some(Identity::from_payload(i)),
                _ => None,
            })
            .unwrap();
        assert_eq!(id, Identity::parse(id_of).unwrap());
        assert!(identity_matches_cert(&id, &v.end_entity));
        assert!(!identity_matches_cert(
            &Identity::parse("other.example").unwrap(),
            &v.end_entity
        ));
        // Ten years later the chain has expired.
        let later = now + Duration::from_secs(11 * 365 * 86400);
        assert!(
            validate_chain(&certs[0], &intermediates, std::slice::from_ref(&ca), later).is_err()
        );
    }
}

#[test]
fn strongswan_certificates_validate() {
    check_certs("rsa-aes256gcm16-prfsha384-ecp384");
}

#[test]
fn strongswan_certificate_chain_with_intermediate_validates() {
    check_certs("rsa-chain-fragmentation");
}
