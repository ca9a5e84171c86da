//! Failover of IKE SAs between cluster nodes: ownership, replication, takeover with
//! RFC 6311 sync, and the invariants after each step.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod sa_common;

use std::time::Duration;

use cluster::sa::{ClusterEvent, SyncMode};
use ike::endpoint::SaEvent;
use sa_common::Cluster;

fn synced_on_peer(c: &Cluster, p: usize) -> usize {
    c.peer_event_count(p, |e| {
        matches!(
            e,
            SaEvent::Exchange {
                exchange: "IKEV2_MESSAGE_ID_SYNC"
            }
        )
    })
}

/// Establishes `n` peers and returns the cluster.
fn cluster_with_peers(nodes: usize, n: usize, sync: SyncMode) -> Cluster {
    let mut c = Cluster::new(nodes, |cfg| cfg.sync = sync);
    for _ in 0..n {
        c.add_peer();
    }
    assert_eq!(c.established(), n, "all peers established");
    c.check();
    c
}

#[test]
fn new_sas_are_claimed_by_exactly_one_node_and_replicated() {
    // 20 peers: the chance that HRW puts all on one node is 2^-19.
    let c = cluster_with_peers(2, 20, SyncMode::Ack);
    let mut per_node = [0usize; 2];
    for p in 0..20 {
        let o = c.owners_of_peer(p);
        per_node[o[0]] += 1;
        // The record is on the other node too, naming the owner.
        let id = c.gw_id(p);
        for m in &c.members {
            assert_eq!(m.node.owner_of(id).as_ref(), Some(&c.members[o[0]].name));
        }
    }
    assert!(
        per_node.iter().all(|n| *n > 0),
        "HRW spreads SAs: {per_node:?}"
    );
    // Each standby asked for block policies for the other node's Child SAs.
    for (i, m) in c.members.iter().enumerate() {
        assert_eq!(m.blocks, per_node[1 - i], "node {i}");
    }
    assert_eq!(c.max_accepting, 1);
}

#[test]
fn two_nodes_failover_after_establishment() {
    let mut c = cluster_with_peers(2, 6, SyncMode::Ack);
    c.traffic(500);
    let p = 0;
    let dead = c.owners_of_peer(p)[0];
    let survivor = 1 - dead;
    let before_init = c.peers[p].ep.ike_sa(c.peers[p].id.unwrap()).unwrap().spis;
    c.kill(dead);
    c.advance(Duration::from_millis(200));
    c.check();
    assert_eq!(c.owners_of_peer(p), vec![survivor]);
    assert!(
        c.members[survivor]
            .events
            .iter()
            .any(|e| matches!(e, ClusterEvent::TookOver { .. }))
    );
    // The peer accepted the RFC 6311 sync, exactly once.
    assert_eq!(synced_on_peer(&c, p), 1, "peer answered one sync");
    assert!(
        c.members[survivor]
            .ike_events
            .iter()
            .any(|e| matches!(e, SaEvent::MessageIdsSynced { .. }))
    );
    // ESP continues on the survivor above the dead node's lease; no reuse.
    c.traffic(500);
    c.check();
    // Message IDs continue: liveness, Child SA rekey and IKE SA rekey succeed.
    assert!(c.liveness_ok(p), "liveness after takeover");
    assert!(c.child_rekey_ok(p), "child rekey after takeover");
    c.traffic(100);
    assert!(c.ike_rekey_ok(p), "IKE rekey after takeover");
    assert!(c.liveness_ok(p), "liveness after IKE rekey");
    c.check();
    // The same session: no new IKE_SA_INIT from the peer.
    let sa = c.peers[p].ep.ike_sa(c.peers[p].id.unwrap()).unwrap();
    assert_ne!(sa.spis, before_init, "rekeyed IKE SA has new SPIs");
    assert!(
        !c.peers[p]
            .events
            .iter()
            .any(|e| matches!(e, SaEvent::InitiationFailed { .. })),
    );
    // Every other peer is owned by the survivor and answers.
    for q in 1..6 {
        assert_eq!(c.owners_of_peer(q), vec![survivor]);
        assert!(c.liveness_ok(q), "peer {q}");
    }
    c.check();
}

#[test]
fn async_mode_sends_at_once_and_failover_still_syncs() {
    let mut c = cluster_with_peers(2, 4, SyncMode::Async);
    let dead = c.owners_of_peer(0)[0];
    c.kill(dead);
    c.advance(Duration::from_millis(200));
    c.check();
    for p in 0..4 {
        assert!(c.liveness_ok(p), "peer {p}");
    }
}

#[test]
fn ack_mode_holds_responses_until_acked() {
    let mut c = cluster_with_peers(2, 1, SyncMode::Ack);
    let owner = c.owners_of_peer(0)[0];
    let other = 1 - owner;
    // Cut replication only (heartbeat still says live): responses wait, then leave
    // after the bounded wait, counted.
    let id = c.peers[0].id.unwrap();
    let (now, name) = (c.now, c.members[other].name.clone());
    c.members[owner].node.handle_peer_disconnected(now, &name);
    c.members[owner].connected.remove(&other);
    let now = c.now;
    c.peers[0].ep.send_liveness(now, id);
    c.run();
    assert_eq!(c.members[owner].node.held_datagrams(), 1, "response held");
    c.advance(Duration::from_millis(300));
    assert_eq!(c.members[owner].node.held_datagrams(), 0);
    assert_eq!(c.members[owner].node.counters().ack_timeouts, 1);
    assert!(
        c.peers[0]
            .ep
            .ike_sa(id)
            .unwrap()
            .msgids
            .outstanding
            .is_none()
    );
}

fn is_ike_auth(d: &[u8], response: bool) -> bool {
    d.len() > 19 && d[18] == 35 && (d[19] & 0x20 != 0) == response
}

#[test]
fn node_death_before_ike_auth_peer_reinitiates_with_survivor() {
    let mut c = Cluster::new(2, |_| {});
    // IKE_SA_INIT is answered, then the owner dies before the IKE_AUTH request arrives:
    // the half-open SA is not replicated.
    c.filter = Box::new(|f| !is_ike_auth(&f.data, false));
    let p = c.add_peer();
    let owner = (0..2)
        .find(|i| c.members[*i].node.endpoint().half_open_count() == 1)
        .expect("one node holds the half-open SA");
    c.kill(owner);
    c.filter = Box::new(|_| true);
    // The survivor does not know the half-open SA: retransmissions go unanswered, and
    // the peer starts over.
    for _ in 0..3 {
        c.retransmit_initiation(p);
        c.advance(Duration::from_secs(1));
    }
    assert_eq!(c.established(), 0);
    c.initiate(p);
    assert_eq!(c.established(), 1);
    assert_eq!(c.owners_of_peer(p), vec![1 - owner]);
    assert!(c.liveness_ok(p));
    c.check();
}

#[test]
fn node_death_after_ike_auth_request_survivor_answers_the_retransmission() {
    let mut c = Cluster::new(2, |_| {});
    // The owner completes IKE_AUTH (record replicated and acked) but dies before its
    // response reaches the peer; the peer's retransmission gets the cached response from
    // the survivor, byte for byte (RFC 7296 §2.1).
    c.filter = Box::new(|f| !is_ike_auth(&f.data, true));
    let p = c.add_peer();
    let owner = (0..2)
        .find(|i| c.members[*i].node.endpoint().ike_sa_count() == 1)
        .expect("one node completed IKE_AUTH");
    assert_eq!(c.established(), 0);
    c.kill(owner);
    c.filter = Box::new(|_| true);
    c.advance(Duration::from_millis(300));
    c.retransmit_initiation(p);
    assert_eq!(c.established(), 1, "established through the survivor");
    assert_eq!(c.owners_of_peer(p), vec![1 - owner]);
    assert!(c.liveness_ok(p));
    assert!(c.child_rekey_ok(p));
    c.check();
}

#[test]
fn lazy_sync_runs_on_the_first_datagram_only() {
    let mut c = Cluster::new(2, |cfg| cfg.sync_rate = None);
    for _ in 0..4 {
        c.add_peer();
    }
    let dead = c.owners_of_peer(0)[0];
    let survivor = 1 - dead;
    let moved: Vec<usize> = (0..4)
        .filter(|p| c.owners_of_peer(*p) == vec![dead])
        .collect();
    c.kill(dead);
    c.advance(Duration::from_secs(1));
    c.check();
    // No sync before the peer speaks (RFC 6311 §7 lazy mode).
    assert_eq!(c.members[survivor].node.counters().syncs_started, 0);
    for (k, p) in moved.iter().enumerate() {
        assert!(c.liveness_ok(*p));
        assert!(c.liveness_ok(*p));
        // One sync per SA per failover, however many datagrams follow.
        assert_eq!(
            c.members[survivor].node.counters().syncs_started,
            k as u64 + 1
        );
        assert_eq!(synced_on_peer(&c, *p), 1);
    }
    c.check();
}

/// The gateway's own liveness check on the SA owned by `p`'s owner; true when answered.
fn gateway_liveness_ok(c: &mut Cluster, p: usize) -> bool {
    let owner = c.owners_of_peer(p)[0];
    let id = c.gw_id(p);
    // A request of the gateway's own may still be in flight (its liveness timer).
    c.advance(Duration::from_millis(100));
    let now = c.now;
    let before = c.members[owner]
        .node
        .endpoint()
        .ike_sa(id)
        .unwrap()
        .msgids
        .our_next_request;
    assert!(
        c.members[owner].node.endpoint_mut().send_liveness(now, id),
        "{:?}\n{:?}",
        c.members[owner].ike_events,
        c.peers[p].events
    );
    c.members[owner].node.flush(now);
    c.run();
    c.advance(Duration::from_millis(100));
    let sa = c.members[owner].node.endpoint().ike_sa(id).unwrap();
    sa.msgids.our_next_request == before + 1 && sa.msgids.outstanding.is_none()
}

/// An AEAD IKE SA whose peer already answered our requests cannot answer a Message ID 0
/// sync (strongSwan derives AEAD IVs from Message IDs and refuses to repeat one, then
/// destroys the IKE SA): the survivor does not send one, and the replicated Message IDs
/// (`ack` mode: exact) carry the SA on — both directions' requests are answered.
#[test]
fn aead_sa_after_gateway_requests_fails_over_without_a_sync() {
    let mut c = cluster_with_peers(2, 1, SyncMode::Ack);
    let p = 0;
    assert!(gateway_liveness_ok(&mut c, p), "gateway liveness before");
    let dead = c.owners_of_peer(p)[0];
    let survivor = 1 - dead;
    c.kill(dead);
    c.advance(Duration::from_millis(200));
    c.check();
    assert_eq!(c.owners_of_peer(p), vec![survivor]);
    let k = c.members[survivor].node.counters();
    assert_eq!((k.takeovers, k.syncs_started, k.syncs_skipped), (1, 0, 1));
    assert_eq!(synced_on_peer(&c, p), 0, "no sync reached the peer");
    assert!(
        gateway_liveness_ok(&mut c, p),
        "gateway liveness after takeover"
    );
    assert!(c.liveness_ok(p), "peer liveness after takeover");
    assert!(c.child_rekey_ok(p), "child rekey after takeover");
    assert!(
        gateway_liveness_ok(&mut c, p),
        "gateway liveness after rekey"
    );
    c.check();
}
