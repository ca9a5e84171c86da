//! Our XFRM requests compared byte for byte with what iproute2 6.1 sends for
//! the same objects (captured by tests/golden/capture.sh; the command lines are
//! there). The netlink sequence number and port id are masked.

// Test helpers outside #[test] fns: clippy.toml's test allowances do not reach them.
#![allow(clippy::unwrap_used, clippy::panic)]

use std::net::IpAddr;

use xfrm::{
    AeadAlgorithm, AuthAlgorithm, Crypto, Direction, EncAlgorithm, Key, Lifetime, Mode,
    PolicyAction, PolicyId, PolicySpec, Prefix, ReplayState, SaId, SaSpec, Selector, Spi, SpiRange,
    Template, UdpEncap, encode,
};

fn golden(name: &str) -> Vec<u8> {
    let path = format!("{}/tests/golden/{name}.hex", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    text.split_whitespace()
        .map(|h| u8::from_str_radix(h, 16).unwrap())
        .collect()
}

fn masked(b: &[u8]) -> Vec<u8> {
    let mut v = b.to_vec();
    v[8..16].fill(0); // nlmsg_seq, nlmsg_pid
    v
}

fn assert_same(name: &str, ours: &[u8], theirs: &[u8]) {
    let (a, b) = (masked(ours), masked(theirs));
    if a != b {
        let first = a
            .iter()
            .zip(&b)
            .position(|(x, y)| x != y)
            .unwrap_or(a.len().min(b.len()));
        panic!(
            "{name}: ours {} bytes, iproute2 {} bytes, first difference at offset {first:#x}\nours:     {:02x?}\niproute2: {:02x?}",
            a.len(),
            b.len(),
            &a[first.saturating_sub(8)..(first + 24).min(a.len())],
            &b[first.saturating_sub(8)..(first + 24).min(b.len())],
        );
    }
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn key(range: std::ops::Range<u8>) -> Key {
    Key::from_slice(&range.collect::<Vec<u8>>())
}

#[test]
fn aead_tunnel_sa_with_encap_and_lifetimes() {
    let mut sa = SaSpec::new(
        SaId::esp(ip("198.51.100.2"), Spi(0xc001_0001)),
        ip("192.0.2.1"),
        Mode::Tunnel,
        65537,
        Crypto::Aead {
            alg: AeadAlgorithm::AesGcm,
            key: key(0..20),
            icv_bits: 128,
        },
    );
    sa.encap = Some(UdpEncap {
        sport: 4500,
        dport: 4500,
    });
    sa.lifetime = Lifetime {
        soft_bytes: Some(900_000),
        hard_bytes: Some(1_000_000),
        soft_add_secs: Some(3000),
        hard_add_secs: Some(3600),
        ..Default::default()
    };
    assert_same(
        "sa_aead_tunnel_encap",
        &encode::new_sa(&sa, 1),
        &golden("sa_aead_tunnel_encap"),
    );
}

#[test]
fn cbc_hmac_transport_sa_with_selector() {
    let mut sa = SaSpec::new(
        SaId::esp(ip("198.51.100.2"), Spi(0xc001_0002)),
        ip("192.0.2.1"),
        Mode::Transport,
        65538,
        Crypto::EncAuth {
            enc: EncAlgorithm::AesCbc,
            enc_key: key(0..16),
            auth: AuthAlgorithm::HmacSha256,
            auth_key: key(0x20..0x40),
        },
    );
    let mut sel = Selector::new(
        Prefix::host(ip("192.0.2.1")),
        Prefix::host(ip("198.51.100.2")),
    )
    .unwrap();
    sel.proto = 17;
    sa.selector = Some(sel);
    assert_same(
        "sa_cbc_hmac_transport",
        &encode::new_sa(&sa, 1),
        &golden("sa_cbc_hmac_transport"),
    );
}

#[test]
fn esn_sa_with_initial_replay_state() {
    let mut sa = SaSpec::new(
        SaId::esp(ip("2001:db8::2"), Spi(0xc001_0003)),
        ip("2001:db8::1"),
        Mode::Tunnel,
        65539,
        Crypto::Aead {
            alg: AeadAlgorithm::ChaCha20Poly1305,
            key: key(0..36),
            icv_bits: 128,
        },
    );
    sa.esn = true;
    sa.replay_window = 128;
    // replay-seq 0x10 replay-oseq 0x20 replay-seq-hi 0x1 replay-oseq-hi 0x2, empty bitmap.
    sa.replay_state = Some(ReplayState {
        oseq: (2 << 32) | 0x20,
        seq: (1 << 32) | 0x10,
        bitmap: vec![0; 4],
    });
    assert_same(
        "sa_esn_replay_state",
        &encode::new_sa(&sa, 1),
        &golden("sa_esn_replay_state"),
    );
}

fn client_selector() -> Selector {
    Selector::new(
        Prefix::new(ip("10.1.0.0"), 24).unwrap(),
        Prefix::host(ip("10.8.0.5")),
    )
    .unwrap()
}

#[test]
fn out_policy_with_tunnel_template() {
    let p = PolicySpec {
        selector: client_selector(),
        dir: Direction::Out,
        priority: 1000,
        action: PolicyAction::Allow,
        templates: vec![Template {
            proto: xfrm::Protocol::Esp,
            mode: Mode::Tunnel,
            reqid: 65537,
            tunnel: Some((ip("192.0.2.1"), ip("198.51.100.2"))),
        }],
    };
    assert_same(
        "policy_out_tmpl",
        &encode::new_policy(&p, 1),
        &golden("policy_out_tmpl"),
    );
}

#[test]
fn fwd_block_policy() {
    let p = PolicySpec {
        selector: client_selector(),
        dir: Direction::Fwd,
        priority: 1000,
        action: PolicyAction::Block,
        templates: vec![],
    };
    assert_same(
        "policy_fwd_block",
        &encode::new_policy(&p, 1),
        &golden("policy_fwd_block"),
    );
}

#[test]
fn policy_delete() {
    let id = PolicyId {
        selector: client_selector(),
        dir: Direction::Out,
    };
    assert_same(
        "policy_delete",
        &encode::delete_policy(&id, 1),
        &golden("policy_delete"),
    );
}

#[test]
fn alloc_spi() {
    let range = SpiRange::new(0xc001_0000, 0xc001_ffff).unwrap();
    let ours = encode::alloc_spi(ip("198.51.100.2"), ip("192.0.2.1"), 65537, range, 1);
    assert_same("allocspi", &ours, &golden("allocspi"));
}

#[test]
fn sa_delete_without_srcaddr() {
    // Deliberate difference: iproute2 appends XFRMA_SRCADDR (type 13, 20
    // bytes); baton identifies SAs by (dst, SPI, proto), which is all the
    // kernel's lookup needs. Compare with that attribute cut off.
    let mut theirs = golden("sa_delete");
    assert_eq!(
        u16::from_ne_bytes([theirs[16 + 24 + 2], theirs[16 + 24 + 3]]),
        13
    );
    theirs.truncate(16 + 24);
    theirs[0..4].copy_from_slice(&(40u32).to_ne_bytes());
    let ours = encode::delete_sa(&SaId::esp(ip("198.51.100.2"), Spi(0xc001_0001)), 1);
    assert_same("sa_delete", &ours, &theirs);
}
