use std::net::IpAddr;

use super::*;
use crate::config::TsConfig;
use crate::wire::payload::{IpTrafficSelector, TrafficSelector, TsPayload};
use crate::wire::registry::{NotifyType, TsType};

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn range(a: &str, b: &str) -> IpTrafficSelector {
    IpTrafficSelector {
        ip_protocol: 0,
        start_port: 0,
        end_port: 65535,
        start_addr: ip(a),
        end_addr: ip(b),
    }
}

fn subnet(s: &str) -> IpTrafficSelector {
    let (a, p) = s.split_once('/').unwrap();
    let (start, end) = subnet_to_range(ip(a), p.parse().unwrap()).unwrap();
    IpTrafficSelector {
        start_addr: start,
        end_addr: end,
        ..range(a, a)
    }
}

fn cfg(s: &str) -> TsConfig {
    if s == "dynamic" {
        return TsConfig::Dynamic;
    }
    let (a, p) = s.split_once('/').unwrap();
    TsConfig::Subnet {
        addr: ip(a),
        prefix_len: p.parse().unwrap(),
        ip_protocol: 0,
        ports: (0, 65535),
    }
}

fn payload(sels: &[IpTrafficSelector]) -> TsPayload {
    ts_payload(sels)
}

#[test]
fn subnet_and_range_conversions() {
    assert_eq!(
        subnet_to_range(ip("10.1.0.77"), 24).unwrap(),
        (ip("10.1.0.0"), ip("10.1.0.255"))
    );
    assert_eq!(
        subnet_to_range(ip("0.0.0.0"), 0).unwrap(),
        (ip("0.0.0.0"), ip("255.255.255.255"))
    );
    assert_eq!(
        subnet_to_range(ip("::"), 0).unwrap().1,
        ip("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff")
    );
    assert_eq!(
        subnet_to_range(ip("2001:db8::1"), 64).unwrap(),
        (ip("2001:db8::"), ip("2001:db8::ffff:ffff:ffff:ffff"))
    );
    assert_eq!(
        subnet_to_range(ip("10.0.0.1"), 32).unwrap(),
        (ip("10.0.0.1"), ip("10.0.0.1"))
    );
    assert!(matches!(
        subnet_to_range(ip("10.0.0.0"), 33),
        Err(TsError::InvalidPrefix { max: 32, .. })
    ));

    assert_eq!(
        range_to_subnet(ip("10.1.0.0"), ip("10.1.0.255")),
        Some((ip("10.1.0.0"), 24))
    );
    assert_eq!(
        range_to_subnet(ip("10.1.0.5"), ip("10.1.0.5")),
        Some((ip("10.1.0.5"), 32))
    );
    assert_eq!(
        range_to_subnet(ip("0.0.0.0"), ip("255.255.255.255")),
        Some((ip("0.0.0.0"), 0))
    );
    assert_eq!(
        range_to_subnet(ip("::"), ip("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff")),
        Some((ip("::"), 0))
    );
    assert_eq!(range_to_subnet(ip("10.1.0.1"), ip("10.1.0.9")), None);
    assert_eq!(range_to_subnet(ip("10.1.0.128"), ip("10.1.1.127")), None);
    assert_eq!(range_to_subnet(ip("10.1.0.9"), ip("10.1.0.1")), None);
    assert_eq!(range_to_subnet(ip("10.1.0.0"), ip("::1")), None);

    assert_eq!(
        range_to_subnets(ip("10.0.0.1"), ip("10.0.0.9")),
        vec![
            (ip("10.0.0.1"), 32),
            (ip("10.0.0.2"), 31),
            (ip("10.0.0.4"), 30),
            (ip("10.0.0.8"), 31)
        ]
    );
    assert_eq!(
        range_to_subnets(ip("0.0.0.0"), ip("255.255.255.255")),
        vec![(ip("0.0.0.0"), 0)]
    );
    assert_eq!(
        range_to_subnets(ip("255.255.255.255"), ip("255.255.255.255")),
        vec![(ip("255.255.255.255"), 32)]
    );
    assert_eq!(
        range_to_subnets(ip("::"), ip("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff")),
        vec![(ip("::"), 0)]
    );
    // Worst case stays within 2 × width.
    let worst = range_to_subnets(ip("0.0.0.1"), ip("255.255.255.254"));
    assert_eq!(worst.len(), 62);
    assert!(range_to_subnets(ip("10.0.0.2"), ip("10.0.0.1")).is_empty());
}

#[test]
fn intersection_of_addresses_protocols_and_ports() {
    let a = subnet("10.0.0.0/8");
    let b = range("10.1.2.3", "11.0.0.0");
    assert_eq!(intersect(&a, &b), Some(range("10.1.2.3", "10.255.255.255")));
    assert_eq!(
        intersect(&subnet("10.0.0.0/24"), &subnet("10.0.1.0/24")),
        None
    );
    assert_eq!(
        intersect(&subnet("10.0.0.0/8"), &subnet("2001:db8::/32")),
        None
    );

    let tcp443 = IpTrafficSelector {
        ip_protocol: 6,
        start_port: 443,
        end_port: 443,
        ..subnet("0.0.0.0/0")
    };
    let tcp_high = IpTrafficSelector {
        ip_protocol: 6,
        start_port: 400,
        end_port: 65535,
        ..subnet("10.0.0.0/8")
    };
    let udp = IpTrafficSelector {
        ip_protocol: 17,
        ..subnet("10.0.0.0/8")
    };
    let got = intersect(&tcp443, &tcp_high).unwrap();
    assert_eq!(
        (got.ip_protocol, got.start_port, got.end_port),
        (6, 443, 443)
    );
    assert_eq!(got.start_addr, ip("10.0.0.0"));
    assert_eq!(intersect(&tcp443, &udp), None);
    let got = intersect(&udp, &a).unwrap();
    assert_eq!(
        got.ip_protocol, 17,
        "any protocol narrows to the specific one"
    );
    let tcp_low = IpTrafficSelector {
        start_port: 1,
        end_port: 100,
        ..tcp_high
    };
    assert_eq!(intersect(&tcp_low, &tcp_high), None);

    // OPAQUE ports intersect with "any" and with OPAQUE only.
    let opaque = IpTrafficSelector {
        start_port: 65535,
        end_port: 0,
        ..tcp_high
    };
    assert_eq!(
        intersect(&opaque, &a).map(|t| (t.start_port, t.end_port)),
        Some((65535, 0))
    );
    assert_eq!(intersect(&opaque, &opaque), Some(opaque));
    assert_eq!(intersect(&opaque, &tcp_high), None);

    // Malformed selectors never intersect.
    assert_eq!(intersect(&range("10.0.0.9", "10.0.0.1"), &a), None);
    assert_eq!(intersect(&range("10.0.0.1", "::1"), &a), None);

    assert!(contains(&a, &subnet("10.1.0.0/16")));
    assert!(!contains(&subnet("10.1.0.0/16"), &a));
}

#[test]
fn road_warrior_gets_our_subnet_and_its_virtual_ip() {
    // The client asks for everything on both sides (it does not know its virtual IP yet).
    let tsi = payload(&[subnet("0.0.0.0/0")]);
    let tsr = payload(&[subnet("0.0.0.0/0")]);
    let n = narrow_responder(
        &[cfg("10.1.0.0/24")],
        &[cfg("dynamic")],
        &[ip("198.51.100.1")],
        &[ip("10.8.0.5")],
        &tsi,
        &tsr,
    )
    .unwrap();
    assert_eq!(n.tsi, vec![range("10.8.0.5", "10.8.0.5")]);
    assert_eq!(n.tsr, vec![subnet("10.1.0.0/24")]);
    assert_eq!(
        n.tsi_payload().selectors,
        vec![TrafficSelector::Ip(range("10.8.0.5", "10.8.0.5"))]
    );

    // Windows also proposes the IPv6 whole space and an unknown TS type: ignored.
    let tsr = TsPayload {
        selectors: vec![
            TrafficSelector::Ip(subnet("0.0.0.0/0")),
            TrafficSelector::Ip(subnet("::/0")),
            TrafficSelector::Unknown {
                ts_type: TsType(13),
                data: vec![1, 2, 3],
            },
        ],
    };
    let n = narrow_responder(
        &[cfg("10.1.0.0/24")],
        &[cfg("dynamic")],
        &[ip("198.51.100.1")],
        &[ip("10.8.0.5")],
        &tsi,
        &tsr,
    )
    .unwrap();
    assert_eq!(n.tsr, vec![subnet("10.1.0.0/24")]);
}

#[test]
fn packet_selector_first_is_narrowed_to_the_configured_subnet() {
    // RFC 7296 §2.9: TSi[0]/TSr[0] describe the packet that triggered the SA.
    let tsi = payload(&[range("10.2.0.7", "10.2.0.7"), subnet("10.2.0.0/16")]);
    let tsr = payload(&[range("10.1.0.9", "10.1.0.9"), subnet("10.1.0.0/16")]);
    let n = narrow_responder(
        &[cfg("10.1.0.0/24")],
        &[cfg("10.2.0.0/24")],
        &[],
        &[],
        &tsi,
        &tsr,
    )
    .unwrap();
    assert_eq!(n.tsi, vec![subnet("10.2.0.0/24")]);
    assert_eq!(n.tsr, vec![subnet("10.1.0.0/24")]);

    // When the configured side is narrower than the proposal but does not contain the
    // packet, the packet selector is dropped and the configured subnet remains.
    let tsi = payload(&[range("10.2.9.7", "10.2.9.7"), subnet("10.2.0.0/16")]);
    let n = narrow(&config_selectors(&[cfg("10.2.0.0/24")], &[]).unwrap(), &tsi);
    assert_eq!(n, vec![subnet("10.2.0.0/24")]);
}

#[test]
fn site_to_site_with_several_subnets_and_ipv6() {
    let local = [
        cfg("10.1.0.0/24"),
        cfg("10.3.0.0/24"),
        cfg("2001:db8:1::/48"),
    ];
    let remote = [cfg("10.2.0.0/24"), cfg("2001:db8:2::/48")];
    // The peer proposes exactly the mirror of our config, in another order.
    let tsi = payload(&[subnet("2001:db8:2::/48"), subnet("10.2.0.0/24")]);
    let tsr = payload(&[
        subnet("10.3.0.0/24"),
        subnet("10.1.0.0/24"),
        subnet("2001:db8:1::/48"),
    ]);
    let n = narrow_responder(&local, &remote, &[], &[], &tsi, &tsr).unwrap();
    assert_eq!(
        n.tsi,
        vec![subnet("10.2.0.0/24"), subnet("2001:db8:2::/48")]
    );
    assert_eq!(
        n.tsr,
        vec![
            subnet("10.1.0.0/24"),
            subnet("10.3.0.0/24"),
            subnet("2001:db8:1::/48")
        ]
    );

    // The peer asks for less than we allow: its smaller subnet is kept.
    let tsr = payload(&[subnet("10.1.0.128/25")]);
    let n = narrow_responder(&local, &remote, &[], &[], &tsi, &tsr).unwrap();
    assert_eq!(n.tsr, vec![subnet("10.1.0.128/25")]);

    // Nothing in common on one side: TS_UNACCEPTABLE, with both sides in the message.
    let tsr = payload(&[subnet("192.168.0.0/16")]);
    let err = narrow_responder(&local, &remote, &[], &[], &tsi, &tsr).unwrap_err();
    assert_eq!(err.notify_type(), NotifyType::TS_UNACCEPTABLE);
    assert_eq!(err.to_notify().notify_type, NotifyType::TS_UNACCEPTABLE);
    let msg = err.to_string();
    assert!(
        msg.contains("TSr") && msg.contains("192.168.0.0/16") && msg.contains("10.1.0.0/24"),
        "{msg}"
    );
}

#[test]
fn protocol_restricted_config_narrows_the_proposal() {
    let local = [TsConfig::Subnet {
        addr: ip("10.1.0.10"),
        prefix_len: 32,
        ip_protocol: 6,
        ports: (443, 443),
    }];
    let n = narrow_responder(
        &local,
        &[cfg("dynamic")],
        &[],
        &[ip("203.0.113.9")],
        &payload(&[subnet("0.0.0.0/0")]),
        &payload(&[subnet("10.1.0.0/24")]),
    )
    .unwrap();
    assert_eq!(n.tsr.len(), 1);
    assert_eq!(
        (n.tsr[0].ip_protocol, n.tsr[0].start_port, n.tsr[0].end_port),
        (6, 443, 443)
    );
    assert_eq!(ts_to_string(&n.tsr[0]), "10.1.0.10/32[tcp/443]");
    assert_eq!(n.tsi, vec![range("203.0.113.9", "203.0.113.9")]);

    // Dynamic with no address to resolve to matches nothing.
    assert!(
        narrow_responder(
            &local,
            &[cfg("dynamic")],
            &[],
            &[],
            &payload(&[subnet("0.0.0.0/0")]),
            &payload(&[subnet("10.1.0.0/24")])
        )
        .is_err()
    );
}

#[test]
fn duplicates_are_removed_and_text_forms() {
    let configured = [subnet("10.0.0.0/8"), subnet("10.1.0.0/16")];
    let n = narrow(
        &configured,
        &payload(&[subnet("10.1.0.0/16"), subnet("10.1.0.0/16")]),
    );
    assert_eq!(n, vec![subnet("10.1.0.0/16")]);
    assert_eq!(
        ts_to_string(&range("10.0.0.1", "10.0.0.9")),
        "10.0.0.1..10.0.0.9"
    );
    assert_eq!(ts_to_string(&subnet("2001:db8::/32")), "2001:db8::/32");
    let udp = IpTrafficSelector {
        ip_protocol: 17,
        start_port: 500,
        end_port: 501,
        ..subnet("10.0.0.0/8")
    };
    assert_eq!(ts_to_string(&udp), "10.0.0.0/8[udp/500-501]");
    let opaque = IpTrafficSelector {
        start_port: 65535,
        end_port: 0,
        ..udp
    };
    assert_eq!(ts_to_string(&opaque), "10.0.0.0/8[udp/OPAQUE]");
    assert_eq!(payload_to_string(&TsPayload { selectors: vec![] }), "none");
}

#[test]
fn huge_proposals_are_bounded() {
    // 5000 host selectors (a 64 KiB payload holds about 2700 IPv4 ones): the answer is
    // capped and comes back quickly.
    let sels: Vec<IpTrafficSelector> = (0..5000u32)
        .map(|i| {
            let a = IpAddr::V4(Ipv4Addr::from(0x0a01_0000 + i));
            IpTrafficSelector {
                start_addr: a,
                end_addr: a,
                ..range("10.1.0.0", "10.1.0.0")
            }
        })
        .collect();
    let configured = config_selectors(&[cfg("10.0.0.0/8")], &[]).unwrap();
    let n = narrow(&configured, &payload(&sels));
    assert_eq!(n.len(), MAX_NARROWED);
    assert_eq!(n[0], sels[0]);
}
