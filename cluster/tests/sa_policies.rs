//! Block policies of standbys (DESIGN §4): asked for every replicated Child SA, removed
//! when the Child SA is gone (its record deleted by its owner, or the Child SA deleted),
//! kept while another record still needs them, never removed for our own Child SAs;
//! and the lease-end table, pruned of Child SAs that can never be used again.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod sa_common;

use std::time::Duration;

use sa_common::{Cluster, Pol, Selectors};

/// The selectors of peer `p`'s first Child SA, as the gateway sees them.
fn selectors(c: &Cluster, p: usize) -> Selectors {
    let sa = c.peers[p].ep.ike_sa(c.peers[p].id.unwrap()).unwrap();
    let ch = &sa.children[0];
    // The peer's local selectors are the gateway's remote ones.
    (ch.remote_ts.clone(), ch.local_ts.clone())
}

fn policy(c: &Cluster, i: usize, sel: &Selectors) -> Option<Pol> {
    c.members[i].policies.get(sel).copied()
}

#[test]
fn a_deleted_ike_sa_loses_its_block_policies_on_standbys() {
    let mut c = Cluster::new(3, |_| {});
    for _ in 0..4 {
        c.add_peer();
    }
    let p = 0;
    let owner = c.owners_of_peer(p)[0];
    let sel = selectors(&c, p);
    for i in 0..3 {
        let want = if i == owner {
            Pol::Ipsec(
                c.members[owner]
                    .node
                    .endpoint()
                    .ike_sa(c.gw_id(p))
                    .unwrap()
                    .children[0]
                    .reqid,
            )
        } else {
            Pol::Block
        };
        assert_eq!(policy(&c, i, &sel), Some(want), "node {i}");
    }
    let blocks: Vec<usize> = c.members.iter().map(|m| m.blocks).collect();
    let id = c.peers[p].id.unwrap();
    let now = c.now;
    assert!(c.peers[p].ep.terminate(now, id));
    c.run();
    c.advance(Duration::from_millis(100));
    assert!(c.peers[p].ep.ike_sa(id).is_none());
    for (i, before) in blocks.iter().enumerate() {
        assert_eq!(policy(&c, i, &sel), None, "node {i}: gone everywhere");
        let expect = before - usize::from(i != owner);
        assert_eq!(c.members[i].blocks, expect, "node {i}: only that SA's");
    }
    // The other peers' policies are untouched.
    for q in 1..4 {
        let sel = selectors(&c, q);
        let o = c.owners_of_peer(q)[0];
        for i in (0..3).filter(|i| *i != o) {
            assert_eq!(policy(&c, i, &sel), Some(Pol::Block), "peer {q} node {i}");
        }
    }
    c.check();
}

#[test]
fn a_deleted_child_sa_loses_its_block_policies_the_ike_sa_stays() {
    let mut c = Cluster::new(2, |_| {});
    let p = c.add_peer();
    let owner = c.owners_of_peer(p)[0];
    let standby = 1 - owner;
    let sel = selectors(&c, p);
    assert_eq!(policy(&c, standby, &sel), Some(Pol::Block));
    let id = c.peers[p].id.unwrap();
    let spi = c.peers[p].ep.ike_sa(id).unwrap().children[0].spi_in;
    let now = c.now;
    assert!(c.peers[p].ep.delete_child(now, id, spi));
    c.run();
    assert!(c.peers[p].ep.ike_sa(id).unwrap().children.is_empty());
    assert_eq!(policy(&c, standby, &sel), None);
    assert_eq!(c.members[standby].blocks, 0);
    assert!(c.liveness_ok(p));
    c.check();
}

#[test]
fn rekeys_keep_the_block_policies() {
    let mut c = Cluster::new(2, |_| {});
    let p = c.add_peer();
    let owner = c.owners_of_peer(p)[0];
    let standby = 1 - owner;
    let sel = selectors(&c, p);
    // IKE SA rekey: the old record is deleted, the new one blocks the same policy.
    assert!(c.ike_rekey_ok(p));
    assert_eq!(policy(&c, standby, &sel), Some(Pol::Block));
    // Child SA rekey: same selectors, same reqid.
    assert!(c.child_rekey_ok(p));
    assert_eq!(policy(&c, standby, &sel), Some(Pol::Block));
    assert_eq!(c.members[standby].blocks, 1);
    assert_eq!(c.members[standby].removals, 0, "never removed meanwhile");
    c.check();
}

#[test]
fn never_removed_for_child_sas_we_own() {
    let mut c = Cluster::new(2, |_| {});
    let p = c.add_peer();
    let a = c.owners_of_peer(p)[0];
    let b = 1 - a;
    let sel = selectors(&c, p);
    let gw = c.gw_id(p);
    // There and back: each end blocks, then owns and installs.
    for (from, to) in [(a, b), (b, a)] {
        let (now, name) = (c.now, c.members[to].name.clone());
        c.members[from].node.transfer(now, gw, &name).unwrap();
        c.run();
        assert_eq!(c.owners_of_peer(p), vec![to]);
        assert!(matches!(policy(&c, to, &sel), Some(Pol::Ipsec(_))));
        assert_eq!(policy(&c, from, &sel), Some(Pol::Block));
        c.check();
    }
    // Failover: the survivor's installs replace its block; nothing removes them.
    c.kill(a);
    c.advance(Duration::from_millis(200));
    assert_eq!(c.owners_of_peer(p), vec![b]);
    assert!(matches!(policy(&c, b, &sel), Some(Pol::Ipsec(_))));
    assert!(c.liveness_ok(p));
    // The peer deletes the SA on its owner: the owner's own policies go with the Child
    // SA (not by a block-policy removal).
    let id = c.peers[p].id.unwrap();
    let now = c.now;
    assert!(c.peers[p].ep.terminate(now, id));
    c.run();
    assert_eq!(policy(&c, b, &sel), None);
    c.check();
}

/// Lease-end table entries (fencing, DESIGN "No (SPI, sequence) pair used twice") of
/// deleted Child SAs go; those of live Child SAs stay, and fencing still holds.
#[test]
fn lease_entries_of_deleted_child_sas_are_pruned() {
    let mut c = Cluster::new(2, |_| {});
    for _ in 0..4 {
        c.add_peer();
    }
    c.traffic(300);
    let table = |c: &Cluster| -> Vec<usize> {
        c.members.iter().map(|m| m.node.lease_table_len()).collect()
    };
    assert_eq!(
        table(&c),
        vec![4, 4],
        "one entry per Child SA on every node"
    );
    // A Child SA rekey: the old Child SA is deleted, the new one has an entry.
    assert!(c.child_rekey_ok(0));
    assert!(c.child_rekey_ok(1));
    assert_eq!(table(&c), vec![4, 4]);
    // An IKE SA deleted by its peer: its Child SA's entry goes everywhere.
    let id = c.peers[2].id.unwrap();
    let now = c.now;
    assert!(c.peers[2].ep.terminate(now, id));
    c.run();
    assert_eq!(table(&c), vec![3, 3]);
    // Fencing with the remaining entries: a failover reuses no (SPI, sequence) pair.
    c.traffic(300);
    let dead = c.owners_of_peer(0)[0];
    c.kill(dead);
    c.advance(Duration::from_millis(200));
    c.traffic(300);
    c.check();
    for p in [0, 1, 3] {
        assert!(c.liveness_ok(p), "peer {p}");
    }
}
