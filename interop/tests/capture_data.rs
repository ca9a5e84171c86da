//! Keeps testvectors/data/strongswan/ consistent with itself: every message file is the
//! datagram the pcap holds, its IKE header agrees with the index in keys.json, and the
//! key material has the lengths the negotiated transforms call for. (Decryption and key
//! derivation are checked by the ike crate's tests and by interop/capture/extract.py.)
//! Needs no root.

#![allow(clippy::expect_used, clippy::panic, clippy::unwrap_used)]

use std::path::{Path, PathBuf};

use serde_json::Value;

fn cases() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../testvectors/data/strongswan");
    let mut v: Vec<PathBuf> = std::fs::read_dir(&root)
        .expect("testvectors/data/strongswan")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.join("keys.json").exists())
        .collect();
    v.sort();
    v
}

fn hex_len(v: &Value) -> usize {
    v.as_str().map_or(0, |s| s.len() / 2)
}

#[test]
fn every_capture_matches_its_index_and_pcap() {
    let cases = cases();
    assert!(
        cases.len() >= 6,
        "expected the six captured cases, found {cases:?}"
    );
    for dir in cases {
        let name = dir.file_name().unwrap().to_string_lossy().into_owned();
        let keys: Value =
            serde_json::from_str(&std::fs::read_to_string(dir.join("keys.json")).unwrap()).unwrap();
        let wire = interop::capture::parse_pcap(&std::fs::read(dir.join("capture.pcap")).unwrap())
            .unwrap();
        let messages = keys["messages"].as_array().unwrap();
        assert_eq!(wire.len(), messages.len(), "{name}: pcap vs index");
        for (m, d) in messages.iter().zip(&wire) {
            let file = m["file"].as_str().unwrap();
            let bytes = std::fs::read(dir.join(file)).unwrap();
            assert_eq!(
                bytes, d.ike,
                "{name}/{file}: file differs from the captured datagram"
            );
            let len = u32::from_be_bytes(bytes[24..28].try_into().unwrap()) as usize;
            assert_eq!(len, bytes.len(), "{name}/{file}: IKE length field");
            let hex: String = bytes[0..16].iter().map(|b| format!("{b:02x}")).collect();
            assert_eq!(&hex[..16], m["spi_i"].as_str().unwrap(), "{name}/{file}");
            assert_eq!(&hex[16..], m["spi_r"].as_str().unwrap(), "{name}/{file}");
            assert_eq!(
                u64::from(bytes[18]),
                m["exchange_type"].as_u64().unwrap(),
                "{name}/{file}"
            );
            assert_eq!(
                bytes[19] & 0x20 != 0,
                m["is_response"].as_bool().unwrap(),
                "{name}/{file}"
            );
            assert_eq!(
                u64::from(d.message_id().unwrap()),
                m["message_id"].as_u64().unwrap()
            );
            assert_eq!(
                d.non_esp_marker,
                m["non_esp_marker_stripped"].as_bool().unwrap()
            );
            if m["encrypted"].as_bool().unwrap() {
                let plain = m["decrypted_file"].as_str().expect("decrypted_file");
                assert!(dir.join(plain).exists(), "{name}/{plain}");
            }
        }
        for sa in keys["ike_sas"].as_array().unwrap() {
            let e = sa["encr"]["key_bytes_with_salt"].as_u64().unwrap() as usize;
            assert_eq!(hex_len(&sa["sk_ei"]), e, "{name}: SK_ei length");
            assert_eq!(hex_len(&sa["sk_er"]), e, "{name}: SK_er length");
            let prf = sa["prf"]["key_bytes"].as_u64().unwrap() as usize;
            for k in ["sk_d", "sk_pi", "sk_pr", "skeyseed"] {
                assert_eq!(hex_len(&sa[k]), prf, "{name}: {k} length");
            }
            let integ = sa["integ"]["key_bytes"].as_u64().unwrap_or(0) as usize;
            assert_eq!(hex_len(&sa["sk_ai"]), integ, "{name}: SK_ai length");
            assert_eq!(hex_len(&sa["spi_i"]), 8);
            assert!(
                hex_len(&sa["ni"]) >= 16 && hex_len(&sa["nr"]) >= 16,
                "{name}: nonces (RFC 7296 §2.10)"
            );
        }
        for c in keys["child_sas"].as_array().unwrap() {
            assert_eq!(hex_len(&c["spi_i"]), 4, "{name}: ESP SPI");
            let e = c["encr"]["key_bytes_with_salt"].as_u64().unwrap() as usize;
            assert_eq!(hex_len(&c["encr_key_i"]), e, "{name}: ESP key length");
        }
        let psk_or_cert = &keys["auth"]["method"];
        assert!(
            psk_or_cert == "psk" || dir.join(keys["auth"]["ca_cert"].as_str().unwrap()).exists()
        );
    }
}
