//! Virtual IP pools in a cluster: a virtual IP is never handed out twice, across nodes,
//! after a takeover, after a restart, and it comes back when its SA is deleted.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod sa_common;

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::Duration;

use sa_common::Cluster;

/// Addresses assigned to established peers, checked for duplicates.
fn assigned(c: &Cluster) -> Vec<(usize, IpAddr)> {
    let mut seen: HashMap<IpAddr, usize> = HashMap::new();
    let mut v = Vec::new();
    for p in 0..c.peers.len() {
        if let Some(a) = c.vip(p) {
            if let Some(q) = seen.insert(a, p) {
                panic!("{a} assigned to peers {q} and {p}");
            }
            v.push((p, a));
        }
    }
    v
}

fn share(c: &Cluster, i: usize, addrs: &[IpAddr]) -> usize {
    let pool = c.members[i].node.endpoint().pool("vpn").unwrap();
    addrs.iter().filter(|a| pool.is_in_share(**a)).count()
}

fn pool_addrs(n: u8) -> Vec<IpAddr> {
    (1..=n).map(|k| IpAddr::from([10, 9, 0, k])).collect()
}

fn many_clients_one_small_pool(nodes: usize) {
    let mut c = Cluster::with_pool(nodes, "10.9.0.1", "10.9.0.16", |_| {});
    let all = pool_addrs(16);
    // The shares partition the pool.
    let shares: Vec<usize> = (0..nodes).map(|i| share(&c, i, &all)).collect();
    assert_eq!(shares.iter().sum::<usize>(), 16, "{shares:?}");
    for a in &all {
        let holders = (0..nodes)
            .filter(|i| {
                c.members[*i]
                    .node
                    .endpoint()
                    .pool("vpn")
                    .unwrap()
                    .is_in_share(*a)
            })
            .count();
        assert_eq!(holders, 1, "{a}");
    }
    // More clients than addresses: every node runs out of its share.
    for _ in 0..28 {
        c.add_peer();
    }
    c.check();
    let got = assigned(&c);
    for (i, &share_i) in shares.iter().enumerate() {
        let owned: Vec<usize> = (0..c.peers.len())
            .filter(|p| c.owners_of_peer(*p) == vec![i])
            .collect();
        let with_vip: Vec<IpAddr> = got
            .iter()
            .filter(|(p, _)| owned.contains(p))
            .map(|(_, a)| *a)
            .collect();
        // Each node hands out exactly its share (or one per client), nothing else.
        assert_eq!(
            with_vip.len(),
            share_i.min(owned.len()),
            "node {i}: {} clients, share {share_i}",
            owned.len(),
        );
        let pool = c.members[i].node.endpoint().pool("vpn").unwrap();
        assert!(with_vip.iter().all(|a| pool.is_in_share(*a)), "node {i}");
    }
    assert!(got.len() >= 8, "{} addresses assigned", got.len());
}

#[test]
fn two_nodes_never_lease_an_address_twice() {
    many_clients_one_small_pool(2);
}

#[test]
fn three_nodes_never_lease_an_address_twice() {
    many_clients_one_small_pool(3);
}

#[test]
fn a_taken_over_address_is_not_handed_to_a_new_client() {
    let mut c = Cluster::with_pool(2, "10.9.0.1", "10.9.0.16", |_| {});
    for _ in 0..6 {
        c.add_peer();
    }
    let got = assigned(&c);
    let before = got.clone();
    let (p, x) = got[0];
    let dead = c.owners_of_peer(p)[0];
    let survivor = 1 - dead;
    // The standby recorded the lease from the replicated record.
    let leased = |c: &Cluster, i: usize| {
        c.members[i]
            .node
            .endpoint()
            .pool("vpn")
            .unwrap()
            .is_leased(x)
    };
    assert!(leased(&c, survivor));
    c.kill(dead);
    c.advance(Duration::from_millis(300));
    assert_eq!(c.owners_of_peer(p), vec![survivor]);
    assert!(leased(&c, survivor));
    assert!(c.liveness_ok(p));
    // The dead node comes back with empty state; x is in its share, and its client is
    // still connected through the survivor: it learns the lease before handing out.
    c.revive(dead);
    assert!(
        leased(&c, dead),
        "the restarted node learnt the lease of {x}"
    );
    for _ in 0..14 {
        c.add_peer();
    }
    c.check();
    let again = assigned(&c);
    assert!(again.contains(&(p, x)));
    // The restarted node hands out exactly the free part of its share.
    let all = pool_addrs(16);
    let pool = c.members[dead].node.endpoint().pool("vpn").unwrap();
    let held_before = before
        .iter()
        .filter(|(q, a)| c.vip(*q) == Some(*a) && pool.is_in_share(*a))
        .count();
    let new_on_dead = (6..c.peers.len())
        .filter(|q| c.owners_of_peer(*q) == vec![dead])
        .count();
    let assigned_by_dead = again
        .iter()
        .filter(|(q, _)| *q >= 6 && c.owners_of_peer(*q) == vec![dead])
        .count();
    assert_eq!(
        assigned_by_dead,
        new_on_dead.min(share(&c, dead, &all) - held_before)
    );
    assert!(c.liveness_ok(p));
}

#[test]
fn a_transferred_address_is_released_everywhere_on_delete() {
    let mut c = Cluster::with_pool(2, "10.9.0.1", "10.9.0.8", |_| {});
    let p = c.add_peer();
    let x = c.vip(p).unwrap();
    let src = c.owners_of_peer(p)[0];
    let dst = 1 - src;
    let to = c.members[dst].name.clone();
    let (now, gw) = (c.now, c.gw_id(p));
    c.members[src].node.transfer(now, gw, &to).unwrap();
    c.run();
    assert_eq!(c.owners_of_peer(p), vec![dst]);
    let leased = |c: &Cluster, i: usize| {
        c.members[i]
            .node
            .endpoint()
            .pool("vpn")
            .unwrap()
            .is_leased(x)
    };
    assert!(leased(&c, src) && leased(&c, dst));
    // The peer deletes its IKE SA: the new owner and the old one both free the address.
    let id = c.peers[p].id.unwrap();
    let now = c.now;
    assert!(c.peers[p].ep.terminate(now, id));
    c.run();
    c.advance(Duration::from_millis(100));
    assert!(c.peers[p].ep.ike_sa(id).is_none());
    assert!(!leased(&c, dst), "released by the owner");
    assert!(!leased(&c, src), "released by the tombstone");
}
