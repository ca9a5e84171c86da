//! RFC 6311 sync after a takeover when the sync exchange loses datagrams: each
//! retransmission is a new request (fresh nonce, larger M1), replicated before it
//! leaves, still one sync per SA per failover (§7), bounded.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod sa_common;

use std::cell::Cell;
use std::rc::Rc;
use std::time::Duration;

use cluster::sa::{ClusterEvent, SyncMode};
use ike::endpoint::SaEvent;
use ike::sa::IkeSaId;
use sa_common::{Cluster, InFlight};

/// An INFORMATIONAL message with Message ID 0 after IKE_SA_INIT: an RFC 6311 sync.
fn is_sync(f: &InFlight, response: bool) -> bool {
    let d = &f.data;
    d.len() > 27 && d[18] == 37 && (d[19] & 0x20 != 0) == response && d[20..24] == [0, 0, 0, 0]
}

/// Drops the first `n` sync datagrams of the given direction; counts all of them.
fn drop_first_syncs(c: &mut Cluster, response: bool, n: usize) -> Rc<Cell<usize>> {
    let seen = Rc::new(Cell::new(0));
    let s = seen.clone();
    c.filter = Box::new(move |f| {
        if !is_sync(f, response) {
            return true;
        }
        s.set(s.get() + 1);
        s.get() > n
    });
    seen
}

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

fn starts(c: &Cluster, i: usize, id: IkeSaId) -> Vec<u32> {
    c.members[i]
        .events
        .iter()
        .filter_map(|e| match e {
            ClusterEvent::SyncStarted { id: x, m1, .. } if *x == id => Some(*m1),
            _ => None,
        })
        .collect()
}

fn retransmissions(c: &Cluster, i: usize, id: IkeSaId) -> Vec<u32> {
    c.members[i]
        .events
        .iter()
        .filter_map(|e| match e {
            ClusterEvent::SyncRetransmitted { id: x, m1, .. } if *x == id => Some(*m1),
            _ => None,
        })
        .collect()
}

/// Two nodes, one peer on the node that dies; the first sync datagram in the given
/// direction is lost.
fn lost_sync_datagram(response: bool, sync: SyncMode) {
    let mut c = Cluster::new(2, |cfg| cfg.sync = sync);
    let p = c.add_peer();
    let dead = c.owners_of_peer(p)[0];
    let survivor = 1 - dead;
    let gw = c.gw_id(p);
    let seen = drop_first_syncs(&mut c, response, 1);
    c.kill(dead);
    c.advance(Duration::from_millis(200));
    assert_eq!(seen.get(), 1, "the first sync datagram was lost");
    assert_eq!(synced_on_peer(&c, p), usize::from(response));
    let first = starts(&c, survivor, gw);
    assert_eq!(first.len(), 1);
    // The retransmission timer (RFC 7296 §2.4) fires: a new request.
    c.advance(Duration::from_secs(5));
    let again = retransmissions(&c, survivor, gw);
    assert_eq!(again.len(), 1, "one retransmission");
    assert!(again[0] > first[0], "larger M1: {again:?} > {first:?}");
    // The peer accepted it (a strict peer drops a copy with an M1 it has seen).
    assert_eq!(synced_on_peer(&c, p), 1 + usize::from(response));
    let n = c.members[survivor].node.counters();
    assert_eq!(n.syncs_started, 1, "still one sync for this failover (§7)");
    assert_eq!(n.syncs_completed, 1);
    assert_eq!(n.sync_retransmissions, 1);
    assert_eq!(n.syncs_failed, 0);
    let sa = c.members[survivor].node.endpoint().ike_sa(gw).unwrap();
    assert!(sa.msgids.sync_pending.is_none());
    // Message IDs agree: the peer's requests are answered, and ours are too.
    assert!(c.liveness_ok(p));
    assert!(c.child_rekey_ok(p));
    let now = c.now;
    assert!(
        c.members[survivor]
            .node
            .endpoint_mut()
            .send_liveness(now, gw)
    );
    c.members[survivor].node.flush(now);
    c.run();
    let sa = c.members[survivor].node.endpoint().ike_sa(gw).unwrap();
    assert!(
        sa.msgids.outstanding.is_none(),
        "the peer answered our request"
    );
    c.check();
}

#[test]
fn a_lost_sync_request_is_sent_again_as_a_new_request() {
    lost_sync_datagram(false, SyncMode::Ack);
}

#[test]
fn a_lost_sync_response_is_recovered_by_a_new_request() {
    lost_sync_datagram(true, SyncMode::Ack);
}

#[test]
fn async_mode_retransmits_syncs_too() {
    lost_sync_datagram(true, SyncMode::Async);
}

#[test]
fn an_unanswered_sync_gives_up_after_bounded_attempts() {
    let mut c = Cluster::new(2, |_| {});
    let p = c.add_peer();
    let dead = c.owners_of_peer(p)[0];
    let survivor = 1 - dead;
    let gw = c.gw_id(p);
    let seen = drop_first_syncs(&mut c, false, usize::MAX);
    c.kill(dead);
    c.advance(Duration::from_secs(600));
    let m1s = retransmissions(&c, survivor, gw);
    assert!(!m1s.is_empty() && m1s.len() <= 6, "{m1s:?}");
    assert!(m1s.windows(2).all(|w| w[1] > w[0]), "{m1s:?}");
    assert_eq!(seen.get(), 1 + m1s.len());
    let n = c.members[survivor].node.counters();
    assert_eq!(n.syncs_started, 1);
    assert_eq!(n.syncs_failed, 1);
    assert!(
        c.members[survivor]
            .events
            .iter()
            .any(|e| matches!(e, ClusterEvent::SyncGaveUp { id } if *id == gw))
    );
    assert!(!c.members[survivor].node.owns(gw));
    assert!(c.members[survivor].node.endpoint().ike_sa(gw).is_none());
}

#[test]
fn a_second_failover_never_reuses_an_unanswered_attempt() {
    // AES-CBC IKE SAs: the second owner syncs again (an AEAD SA whose peer saw a sync
    // request gets none: its answer would repeat a Message-ID-derived IV).
    sa_common::use_cbc_ike_sas();
    // Three nodes; quorum 3 so that the last survivor may still take over (it must
    // know every lease: DESIGN "fencing").
    let mut c = Cluster::new(3, |cfg| cfg.lease_quorum = 3);
    let p = c.add_peer();
    let gw = c.gw_id(p);
    let first_owner = c.owners_of_peer(p)[0];
    let seen = drop_first_syncs(&mut c, false, usize::MAX);
    c.kill(first_owner);
    c.advance(Duration::from_millis(200));
    let second = c.owners_of_peer(p)[0];
    // One retransmission, lost too.
    c.advance(Duration::from_secs(5));
    let mut used: Vec<u32> = starts(&c, second, gw);
    used.extend(retransmissions(&c, second, gw));
    assert_eq!(used.len(), 2, "{used:?}");
    assert_eq!(seen.get(), 2);
    c.kill(second);
    c.filter = Box::new(|_| true);
    c.advance(Duration::from_millis(200));
    let third = c.owners_of_peer(p)[0];
    let m1 = starts(&c, third, gw);
    assert_eq!(m1.len(), 1);
    assert!(
        used.iter().all(|u| m1[0] > *u),
        "the new owner's M1 {m1:?} is above every replicated attempt {used:?}"
    );
    assert_eq!(synced_on_peer(&c, p), 1);
    assert!(c.liveness_ok(p));
    c.check();
}

#[test]
fn a_sync_retransmission_waits_for_replication_even_in_async_mode() {
    let mut c = Cluster::new(3, |cfg| cfg.sync = SyncMode::Async);
    let p = c.add_peer();
    let gw = c.gw_id(p);
    let dead = c.owners_of_peer(p)[0];
    let seen = drop_first_syncs(&mut c, false, 1);
    c.kill(dead);
    c.advance(Duration::from_millis(200));
    let owner = c.owners_of_peer(p)[0];
    let other = (0..3).find(|i| *i != dead && *i != owner).unwrap();
    assert_eq!(seen.get(), 1);
    assert_eq!(c.members[owner].node.counters().ack_timeouts, 0);
    // Replication to the other live node breaks (the heartbeat still sees it): the
    // retransmitted sync cannot be acked, so it waits for the bounded hold.
    let (now, name) = (c.now, c.members[other].name.clone());
    c.members[owner].node.handle_peer_disconnected(now, &name);
    c.members[owner].connected.remove(&other);
    let mut held = false;
    for _ in 0..100 {
        c.advance(Duration::from_millis(50));
        held |= c.members[owner].node.held_datagrams() > 0;
        if seen.get() > 1 {
            break;
        }
    }
    assert!(held, "the new attempt was held for its record's ack");
    assert_eq!(seen.get(), 2, "then sent");
    assert_eq!(c.members[owner].node.counters().ack_timeouts, 1);
    assert_eq!(retransmissions(&c, owner, gw).len(), 1);
    assert_eq!(synced_on_peer(&c, p), 1);
}
