use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

use super::*;
use crate::config::{Identity, PoolConfig};

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn pool(first: &str, last: &str) -> AddressPool {
    AddressPool::new(&PoolConfig {
        name: "vpn".to_owned(),
        first: ip(first),
        last: ip(last),
        prefix_len: 24,
        dns: vec![],
    })
    .unwrap()
}

fn who(n: usize) -> Identity {
    Identity::parse(&format!("user{n}@example.com")).unwrap()
}

#[test]
fn hands_out_in_order_and_returns_an_identity_its_address() {
    let mut p = pool("10.8.0.1", "10.8.0.3");
    assert_eq!(p.size(), 3);
    assert_eq!(p.lease(&who(1)), Some(ip("10.8.0.1")));
    assert_eq!(p.lease(&who(2)), Some(ip("10.8.0.2")));
    assert!(p.is_leased(ip("10.8.0.1")));
    assert!(!p.is_leased(ip("10.8.0.3")));
    assert_eq!(p.holder(ip("10.8.0.2")), Some(&who(2)));

    assert_eq!(p.release(ip("10.8.0.1")), Some(who(1)));
    assert_eq!(p.release(ip("10.8.0.1")), None, "double release");
    assert!(!p.is_leased(ip("10.8.0.1")));
    // A new identity gets a never-used address, not user1's.
    assert_eq!(p.lease(&who(3)), Some(ip("10.8.0.3")));
    // user1 reconnects: its address is still free.
    assert_eq!(p.lease(&who(1)), Some(ip("10.8.0.1")));
    // Full.
    assert_eq!(p.lease(&who(4)), None);
    assert_eq!(p.leased_count(), 3);
}

#[test]
fn a_leased_address_is_never_handed_out_twice() {
    let mut p = pool("10.8.0.1", "10.8.0.2");
    let a = p.lease(&who(1)).unwrap();
    // The same identity connecting again while its lease is active gets another address.
    let b = p.lease(&who(1)).unwrap();
    assert_ne!(a, b);
    assert_eq!(p.lease(&who(1)), None);
    // After releasing the newer one, the identity remembers the newer address.
    p.release(b);
    assert_eq!(p.lease(&who(1)), Some(b));
}

#[test]
fn reclaims_unclaimed_addresses_before_remembered_ones() {
    let mut p = pool("10.8.0.1", "10.8.0.3");
    for i in 1..=3 {
        p.lease(&who(i)).unwrap();
    }
    p.release(ip("10.8.0.1")); // user1 remembers .1
    p.release(ip("10.8.0.2")); // user2 remembers .2
    // user2 comes back elsewhere: takes .2 again; then user1 is not here, user 9 arrives.
    assert_eq!(p.lease(&who(2)), Some(ip("10.8.0.2")));
    // The only free address is user1's remembered one; it is reclaimed.
    assert_eq!(p.lease(&who(9)), Some(ip("10.8.0.1")));
    // user1 has lost its claim.
    p.release(ip("10.8.0.3"));
    assert_eq!(p.lease(&who(1)), Some(ip("10.8.0.3")));

    // Least recently released remembered address first.
    let mut p = pool("10.9.0.1", "10.9.0.3");
    for i in 1..=3 {
        p.lease(&who(i)).unwrap();
    }
    p.release(ip("10.9.0.3"));
    p.release(ip("10.9.0.1"));
    assert_eq!(p.lease(&who(7)), Some(ip("10.9.0.3")));
    assert_eq!(p.lease(&who(8)), Some(ip("10.9.0.1")));
}

#[test]
fn replicated_leases_are_respected() {
    let mut p = pool("10.8.0.1", "10.8.0.4");
    p.mark_leased(ip("10.8.0.1"), &who(10)).unwrap();
    p.mark_leased(ip("10.8.0.3"), &who(11)).unwrap();
    p.mark_leased(ip("10.8.0.3"), &who(11)).unwrap(); // idempotent
    assert!(matches!(
        p.mark_leased(ip("10.8.0.3"), &who(12)),
        Err(PoolError::AlreadyLeased { .. })
    ));
    let err = p.mark_leased(ip("10.9.0.1"), &who(12)).unwrap_err();
    assert_eq!(err.to_string(), "pool \"vpn\": 10.9.0.1 is not in the pool");
    assert!(p.mark_leased(ip("2001:db8::1"), &who(12)).is_err());
    // The cursor skips the replicated ones.
    assert_eq!(p.lease(&who(1)), Some(ip("10.8.0.2")));
    assert_eq!(p.lease(&who(2)), Some(ip("10.8.0.4")));
    assert_eq!(p.lease(&who(3)), None);
    // Released replicated leases become available and are remembered for their holder.
    p.release(ip("10.8.0.3"));
    assert_eq!(p.lease(&who(11)), Some(ip("10.8.0.3")));
    let leases: Vec<_> = p.leases().map(|(a, id)| (a, id.clone())).collect();
    assert_eq!(
        leases,
        vec![
            (ip("10.8.0.1"), who(10)),
            (ip("10.8.0.2"), who(1)),
            (ip("10.8.0.3"), who(11)),
            (ip("10.8.0.4"), who(2)),
        ]
    );
    // A pool rebuilt from the iteration holds the same leases (what a new node does).
    let mut q = pool("10.8.0.1", "10.8.0.4");
    for (a, id) in p.leases() {
        q.mark_leased(a, id).unwrap();
    }
    assert_eq!(q.lease(&who(99)), None);
}

#[test]
fn a_slash_16_is_exhausted_exactly_with_distinct_addresses() {
    let mut p = pool("10.16.0.0", "10.16.255.255");
    let mut seen = HashSet::new();
    for i in 0..65536 {
        let a = p.lease(&who(i)).unwrap();
        assert!(seen.insert(a), "{a} handed out twice");
    }
    assert_eq!(p.lease(&who(70000)), None);
    // Churn: release half, re-lease with new identities, still no duplicates.
    for i in (0..65536u32).step_by(2) {
        let a = IpAddr::V4(Ipv4Addr::from(0x0a10_0000 + i));
        assert!(p.release(a).is_some());
    }
    let mut again = HashSet::new();
    for i in 0..32768 {
        let a = p.lease(&who(100_000 + i)).unwrap();
        assert!(again.insert(a));
        assert_eq!(
            u32::from(match a {
                IpAddr::V4(v) => v,
                IpAddr::V6(_) => unreachable!(),
            }) % 2,
            0
        );
    }
    assert_eq!(p.lease(&who(1)), None);
}

#[test]
fn ipv6_pools_of_any_size() {
    let mut p = pool("2001:db8::", "2001:db8::ffff:ffff:ffff:ffff");
    assert_eq!(p.size(), 1u128 << 64);
    assert_eq!(p.lease(&who(1)), Some(ip("2001:db8::")));
    assert_eq!(p.lease(&who(2)), Some(ip("2001:db8::1")));
    p.mark_leased(ip("2001:db8::ffff:ffff:ffff:ffff"), &who(3))
        .unwrap();
    assert!(p.is_leased(ip("2001:db8::ffff:ffff:ffff:ffff")));
    assert!(!p.is_leased(ip("2001:db9::")));
    let mut all = pool("::", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff");
    assert_eq!(all.size(), u128::MAX);
    assert_eq!(all.lease(&who(1)), Some(ip("::")));
}

#[test]
fn invalid_ranges_are_rejected() {
    let cfg = |first: &str, last: &str| PoolConfig {
        name: "bad".to_owned(),
        first: ip(first),
        last: ip(last),
        prefix_len: 24,
        dns: vec![],
    };
    assert!(matches!(
        AddressPool::new(&cfg("10.0.0.9", "10.0.0.1")),
        Err(PoolError::InvalidRange { .. })
    ));
    assert!(AddressPool::new(&cfg("10.0.0.1", "::1")).is_err());
    assert_eq!(
        AddressPool::new(&cfg("10.0.0.1", "10.0.0.1"))
            .unwrap()
            .size(),
        1
    );
}

#[test]
fn a_filtered_pool_hands_out_only_its_share() {
    // Two nodes share one pool: node A takes the even addresses, node B the odd ones.
    let even: PoolFilter = Arc::new(|a| matches!(a, IpAddr::V4(v) if u32::from(v) % 2 == 0));
    let odd: PoolFilter = Arc::new(|a| matches!(a, IpAddr::V4(v) if u32::from(v) % 2 == 1));
    let mut a = pool("10.8.0.0", "10.8.0.9");
    let mut b = pool("10.8.0.0", "10.8.0.9");
    a.set_filter(Some(even));
    b.set_filter(Some(odd));
    let mut seen = HashSet::new();
    for i in 0..5 {
        assert!(seen.insert(a.lease(&who(i)).unwrap()));
        assert!(seen.insert(b.lease(&who(100 + i)).unwrap()));
    }
    assert_eq!(seen.len(), 10);
    assert_eq!(a.lease(&who(50)), None, "A's share is used up");
    assert!(a.is_in_share(ip("10.8.0.4")) && !a.is_in_share(ip("10.8.0.5")));
    // A takes over a client of B (a replicated lease): when that ends, A does not hand
    // the address out (it is B's), but B's own released address goes back to B.
    a.mark_leased(ip("10.8.0.3"), &who(101)).unwrap();
    assert!(a.release(ip("10.8.0.3")).is_some());
    assert_eq!(a.lease(&who(101)), None, "remembered, but not in A's share");
    assert!(b.release(ip("10.8.0.3")).is_some());
    assert_eq!(b.lease(&who(7)), Some(ip("10.8.0.3")));
    // A released address of A's own share comes back.
    assert!(a.release(ip("10.8.0.2")).is_some());
    assert_eq!(a.lease(&who(51)), Some(ip("10.8.0.2")));
    // Paused: nothing, then resumed.
    a.release(ip("10.8.0.2"));
    a.set_paused(true);
    assert_eq!(a.lease(&who(52)), None);
    a.set_paused(false);
    assert_eq!(a.lease(&who(52)), Some(ip("10.8.0.2")));
    // Removing the filter keeps the leases and finds the other addresses too.
    a.set_filter(None);
    assert_eq!(a.lease(&who(53)), Some(ip("10.8.0.1")));
    assert!(a.is_leased(ip("10.8.0.8")) && a.holder(ip("10.8.0.8")) == Some(&who(4)));
}
