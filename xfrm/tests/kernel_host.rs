//! `KernelDataplane` against the host's kernel (XFRM without ESP), each test
//! in a fresh network namespace: policies work for real; SA installation must
//! fail with an error that names what the kernel lacks. Needs root (CI is).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests"
)]

mod common;

use common::{OWNED, all_cryptos, in_fresh_netns, ip, require_root, sa};
use xfrm::{
    Dataplane, Direction, Error, KernelDataplane, Mode, PolicyAction, PolicySpec, Prefix, Protocol,
    SaId, Selector, Spi, Template,
};

fn policy(dst: &str, dir: Direction, reqid: u32, action: PolicyAction) -> PolicySpec {
    PolicySpec {
        selector: Selector::new(
            Prefix::new(ip("10.1.0.0"), 24).unwrap(),
            Prefix::host(ip(dst)),
        )
        .unwrap(),
        dir,
        priority: 1000,
        action,
        templates: vec![Template {
            proto: Protocol::Esp,
            mode: Mode::Tunnel,
            reqid,
            tunnel: Some((ip("192.0.2.1"), ip("198.51.100.2"))),
        }],
    }
}

/// On a kernel without ESP, the error says so and names esp4/esp6, or names
/// the missing algorithm and its modules (the kernel checks algorithms first).
#[test]
fn sa_install_without_esp_names_the_missing_piece() {
    require_root("kernel_host tests");
    let results = in_fresh_netns(move || {
        let mut dp = KernelDataplane::open(OWNED).unwrap();
        let mut out = Vec::new();
        for (i, (name, crypto)) in all_cryptos(1).into_iter().enumerate() {
            for (dst, src) in [
                ("198.51.100.2", "192.0.2.1"),
                ("2001:db8::2", "2001:db8::1"),
            ] {
                let spec = sa(dst, src, 0x1000 + i as u32, OWNED.min, crypto.clone());
                let key_hex: String = match &spec.crypto {
                    xfrm::Crypto::Aead { key, .. } => {
                        key.expose().iter().map(|b| format!("{b:02x}")).collect()
                    }
                    xfrm::Crypto::EncAuth { enc_key, .. } => enc_key
                        .expose()
                        .iter()
                        .map(|b| format!("{b:02x}"))
                        .collect(),
                };
                assert!(
                    !format!("{spec:?}").contains(&key_hex[..8]),
                    "Debug shows key bytes"
                );
                out.push((
                    name,
                    dst,
                    key_hex,
                    dp.add_sa(&spec).map_err(|e| e.to_string()),
                    dp.add_sa(&spec),
                ));
            }
        }
        out
    });
    for (name, dst, key_hex, first, second) in results {
        if first.is_ok() {
            // A kernel with ESP (not this project's CI machines): the VM tests
            // cover installation; here a duplicate must be refused as Exists.
            assert!(
                matches!(second, Err(Error::Exists { .. })),
                "{name} {dst}: {second:?}"
            );
            continue;
        }
        let msg = first.expect_err("NEWSA cannot succeed on a kernel without ESP");
        let v6 = dst.contains(':');
        match second.expect_err("still no ESP") {
            Error::EspNotSupported { module, family, .. } => {
                assert_eq!(module, if v6 { "esp6" } else { "esp4" });
                assert_eq!(family, if v6 { "IPv6" } else { "IPv4" });
                assert!(msg.contains(module) && msg.contains("lacks ESP"), "{msg}");
            }
            Error::AlgorithmNotSupported {
                algorithm, modules, ..
            } => {
                assert!(
                    msg.contains("lacks the algorithm") && msg.contains(&algorithm),
                    "{msg}"
                );
                assert!(!modules.is_empty());
                assert!(
                    algorithm.contains("gcm")
                        || algorithm.contains("chacha")
                        || algorithm.contains("cbc"),
                    "{algorithm}"
                );
            }
            other => panic!("{name} {dst}: unexpected error {other:?} ({msg})"),
        }
        // Keys never appear in messages.
        assert!(!msg.contains(&key_hex[..8]), "{msg}");
        eprintln!("{name} {dst}: {msg}");
    }
}

#[test]
fn policies_add_list_update_delete_flush() {
    require_root("kernel_host tests");
    in_fresh_netns(|| {
        let mut dp = KernelDataplane::open(OWNED).unwrap();
        let out = policy(
            "10.8.0.5",
            Direction::Out,
            OWNED.min + 1,
            PolicyAction::Allow,
        );
        let inb = PolicySpec {
            selector: Selector::new(out.selector.dst, out.selector.src).unwrap(),
            dir: Direction::In,
            templates: vec![Template {
                tunnel: Some((ip("198.51.100.2"), ip("192.0.2.1"))),
                ..out.templates[0]
            }],
            ..out.clone()
        };
        let fwd_block = PolicySpec {
            dir: Direction::Fwd,
            action: PolicyAction::Block,
            ..inb.clone()
        };
        let foreign = policy("10.9.0.9", Direction::Out, 7, PolicyAction::Allow);
        for p in [&out, &inb, &fwd_block, &foreign] {
            dp.add_policy(p).unwrap();
        }
        assert!(matches!(dp.add_policy(&out), Err(Error::Exists { .. })));

        let mut listed = dp.list_policies().unwrap();
        listed.sort_by_key(|p| (p.priority, p.reqid(), format!("{:?}", p.dir)));
        assert_eq!(listed.len(), 4, "{listed:#?}");
        for p in [&out, &inb, &fwd_block, &foreign] {
            assert!(listed.contains(p), "{p:#?} not in {listed:#?}");
        }

        // Swap the block policy for an IPsec one (what a takeover does).
        let fwd_allow = PolicySpec {
            action: PolicyAction::Allow,
            ..fwd_block.clone()
        };
        dp.update_policy(&fwd_allow).unwrap();
        let listed = dp.list_policies().unwrap();
        assert!(listed.contains(&fwd_allow) && !listed.contains(&fwd_block));

        dp.delete_policy(&inb.id()).unwrap();
        let e = dp.delete_policy(&inb.id()).unwrap_err();
        assert!(e.is_not_found(), "{e}");
        assert!(e.to_string().contains("XFRM_MSG_DELPOLICY"), "{e}");

        let report = dp.flush_own().unwrap();
        assert_eq!(
            report.policies, 2,
            "out + fwd are ours, the reqid-7 one is not"
        );
        let left = dp.list_policies().unwrap();
        assert_eq!(left, vec![foreign]);
    });
}

#[test]
fn missing_sa_is_not_found() {
    require_root("kernel_host tests");
    in_fresh_netns(|| {
        let mut dp = KernelDataplane::open(OWNED).unwrap();
        let id = SaId::esp(ip("192.0.2.1"), Spi(0x4242));
        for e in [
            dp.get_sa(&id).unwrap_err(),
            dp.delete_sa(&id).unwrap_err(),
            dp.get_replay_state(&id).unwrap_err(),
        ] {
            assert!(e.is_not_found(), "{e}");
            assert!(e.to_string().contains("spi 0x00004242"), "{e}");
        }
        assert!(dp.list_sas().unwrap().is_empty());
        assert_eq!(dp.flush_own().unwrap(), Default::default());
    });
}

#[test]
fn ike_socket_bypass_and_espinudp() {
    require_root("kernel_host tests");
    in_fresh_netns(|| {
        let v4 = std::net::UdpSocket::bind("0.0.0.0:4500").unwrap();
        xfrm::enable_espinudp(&v4).unwrap();
        xfrm::bypass_ipsec(&v4, false).unwrap();
        let v6 = std::net::UdpSocket::bind("[::]:4501").unwrap();
        xfrm::enable_espinudp(&v6).unwrap();
        xfrm::bypass_ipsec(&v6, true).unwrap();
        // A TCP socket has no UDP_ENCAP: the error names what failed.
        let tcp = std::net::TcpListener::bind("0.0.0.0:0").unwrap();
        let e = xfrm::enable_espinudp(&tcp).unwrap_err();
        assert!(e.to_string().contains("UDP_ENCAP_ESPINUDP"), "{e}");
    });
}
