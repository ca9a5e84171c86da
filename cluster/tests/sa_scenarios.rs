//! Node death at every step: during a Child SA rekey, a delete, a transfer, an RFC 6311
//! sync (second failover), and successive deaths in 3- and 5-node clusters.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod sa_common;

use std::time::Duration;

use ike::endpoint::SaEvent;
use sa_common::Cluster;

fn cluster(nodes: usize, peers: usize) -> Cluster {
    let mut c = Cluster::new(nodes, |_| {});
    for _ in 0..peers {
        c.add_peer();
    }
    assert_eq!(c.established(), peers);
    c.traffic(200);
    c.check();
    c
}

/// Drops responses from the cluster to peer `p`'s address.
fn drop_responses_to(c: &mut Cluster, p: usize) {
    let addr = c.peers[p].addr;
    c.filter = Box::new(move |f| f.to != addr);
}

fn pass_all(c: &mut Cluster) {
    c.filter = Box::new(|_| true);
}

fn fail_owner_of(c: &mut Cluster, p: usize) -> usize {
    let o = c.owners_of_peer(p);
    assert_eq!(o.len(), 1);
    c.kill(o[0]);
    c.advance(Duration::from_millis(200));
    o[0]
}

/// After a disturbance: the peer's session goes on (liveness, Child and IKE rekey).
fn session_continues(c: &mut Cluster, p: usize) {
    c.advance(Duration::from_secs(2));
    c.check();
    assert!(c.liveness_ok(p), "liveness");
    assert!(c.child_rekey_ok(p), "child rekey");
    assert!(c.ike_rekey_ok(p), "IKE rekey");
    assert!(c.liveness_ok(p), "liveness after IKE rekey");
    c.traffic(100);
    c.check();
    assert_eq!(
        c.peer_event_count(p, |e| matches!(e, SaEvent::InitiationFailed { .. })),
        0
    );
}

#[test]
fn death_during_child_rekey() {
    let mut c = cluster(3, 3);
    let p = 0;
    drop_responses_to(&mut c, p);
    let id = c.peers[p].id.unwrap();
    let old = c.peers[p].ep.ike_sa(id).unwrap().children[0].spi_in;
    let now = c.now;
    assert!(c.peers[p].ep.create_child(now, id, Some(old)));
    c.run();
    pass_all(&mut c);
    fail_owner_of(&mut c, p);
    session_continues(&mut c, p);
}

#[test]
fn death_during_delete() {
    let mut c = cluster(3, 3);
    let p = 1;
    // A second Child SA, then its delete whose response is lost with the owner.
    let id = c.peers[p].id.unwrap();
    let now = c.now;
    assert!(c.peers[p].ep.create_child(now, id, None));
    c.run();
    assert_eq!(c.peers[p].ep.ike_sa(id).unwrap().children.len(), 2);
    drop_responses_to(&mut c, p);
    let second = c.peers[p].ep.ike_sa(id).unwrap().children[1].spi_in;
    assert!(c.peers[p].ep.delete_child(now, id, second));
    c.run();
    pass_all(&mut c);
    fail_owner_of(&mut c, p);
    session_continues(&mut c, p);
}

#[test]
fn death_of_target_during_transfer() {
    let mut c = cluster(3, 3);
    let p = 2;
    let src = c.owners_of_peer(p)[0];
    let dst = (src + 1) % 3;
    let gw = c.gw_id(p);
    let to = c.members[dst].name.clone();
    // The target dies right after the source published the hand-over record.
    let now = c.now;
    c.members[src].node.transfer(now, gw, &to).unwrap();
    // The target dies before the source has even read the replay states: the hand-over
    // record names a dead node, and HRW over the survivors takes it.
    c.kill(dst);
    c.advance(Duration::from_millis(200));
    session_continues(&mut c, p);
}

#[test]
fn death_of_source_during_transfer() {
    let mut c = cluster(3, 3);
    let p = 0;
    let src = c.owners_of_peer(p)[0];
    let dst = (src + 1) % 3;
    let gw = c.gw_id(p);
    let to = c.members[dst].name.clone();
    let now = c.now;
    c.members[src].node.transfer(now, gw, &to).unwrap();
    c.kill(src);
    c.advance(Duration::from_millis(200));
    session_continues(&mut c, p);
}

#[test]
fn second_failover_during_sync_uses_a_higher_m1() {
    // AES-CBC IKE SAs: a peer answers a second Message ID 0 sync there (with AES-GCM
    // the cluster sends none once the peer answered a sync: `aead_sa_*` in sa_failover).
    sa_common::use_cbc_ike_sas();
    // Five nodes: after two deaths three remain, enough to fence (a lease quorum).
    let mut c = cluster(5, 3);
    let p = 0;
    // First failover: the sync reaches the peer but its response is lost; the new
    // owner dies.
    let addr = c.peers[p].addr;
    c.filter = Box::new(move |f| f.from != addr);
    let gw = c.gw_id(p);
    let first = fail_owner_of(&mut c, p);
    let m1_first = c
        .members
        .iter()
        .flat_map(|m| m.events.iter())
        .find_map(|e| match e {
            cluster::sa::ClusterEvent::SyncStarted { m1, id, .. } if *id == gw => Some(*m1),
            _ => None,
        })
        .expect("first sync sent");
    pass_all(&mut c);
    let second = fail_owner_of(&mut c, p);
    assert_ne!(second, first);
    let last = c.owners_of_peer(p)[0];
    let m1_second = c.members[last]
        .events
        .iter()
        .filter_map(|e| match e {
            cluster::sa::ClusterEvent::SyncStarted { m1, id, .. } if *id == gw => Some(*m1),
            _ => None,
        })
        .next_back()
        .expect("second sync sent");
    assert!(m1_second > m1_first, "{m1_second} > {m1_first}");
    // The peer accepted the second sync (it would drop an M1 at or below the first).
    assert_eq!(
        c.peer_event_count(p, |e| matches!(
            e,
            SaEvent::Exchange {
                exchange: "IKEV2_MESSAGE_ID_SYNC"
            }
        )),
        2
    );
    session_continues(&mut c, p);
}

#[test]
fn five_nodes_successive_deaths_lose_no_sa() {
    let mut c = cluster(5, 15);
    for round in 0..2 {
        let victim = c.alive()[round];
        c.kill(victim);
        c.advance(Duration::from_millis(300));
        c.check();
        assert_eq!(c.established(), 15);
        for p in 0..15 {
            assert!(c.liveness_ok(p), "round {round} peer {p}");
        }
        c.traffic(200);
        c.check();
    }
    // A third death leaves 2 of 5: no view that intersects every lease quorum, so the
    // dead node's SAs are not taken over (fencing beats availability), and the rest
    // keep their owners.
    let victim = c.alive()[0];
    let orphans: Vec<usize> = (0..15)
        .filter(|p| c.owners_of_peer(*p) == vec![victim])
        .collect();
    c.kill(victim);
    c.advance(Duration::from_millis(300));
    for p in 0..15 {
        let n = c.owners_of_peer(p).len();
        assert_eq!(n, usize::from(!orphans.contains(&p)), "peer {p}");
    }
    assert!(c.wire.reused().is_empty());
}
