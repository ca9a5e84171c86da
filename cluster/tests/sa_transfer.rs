//! Transfer with exact counters, drain, and fair share for a joining node.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod sa_common;

use std::time::Duration;

use cluster::sa::{ClusterEffect, ClusterEvent};
use sa_common::{Cluster, Pol};
use xfrm::{Dataplane, SaId, Spi};

/// A transfer's source may send this many packets past its cutover (a sixteenth of
/// the default lease of 2^20); the target starts above.
const MARGIN: u64 = (1 << 20) / 16;

/// Highest outbound sequence number sent and packets sent on the SAs toward `ip`.
fn outbound(c: &mut Cluster, ip: std::net::IpAddr) -> Vec<(SaId, u64)> {
    let mut v = Vec::new();
    for m in c.members.iter_mut() {
        for s in m.dp.list_sas().unwrap_or_default() {
            if s.spec.id.dst == ip {
                v.push((s.spec.id, c.wire.sent_count(&s.spec.id)));
            }
        }
    }
    v
}

#[test]
fn transfer_moves_a_live_sa_with_exact_counters() {
    let mut c = Cluster::new(2, |_| {});
    let p = c.add_peer();
    c.traffic(777);
    let src = c.owners_of_peer(p)[0];
    let dst = 1 - src;
    let gw = c.gw_id(p);
    let to = c.members[dst].name.clone();
    let now = c.now;
    c.members[src].node.transfer(now, gw, &to).unwrap();
    c.run();
    c.check();
    assert_eq!(c.owners_of_peer(p), vec![dst]);
    assert!(
        c.members[src]
            .events
            .iter()
            .any(|e| matches!(e, ClusterEvent::TransferredOut { .. }))
    );
    // The source removed its SAs; the target continues exactly where it stopped.
    let peer_ip = c.peers[p].addr.ip();
    assert!(
        c.members[src]
            .dp
            .list_sas()
            .unwrap()
            .iter()
            .all(|s| s.spec.id.dst != peer_ip)
    );
    c.traffic(223);
    let out = outbound(&mut c, peer_ip);
    assert_eq!(out.len(), 1);
    let (id, sent) = out[0];
    let st = c.members[dst].dp.get_replay_state(&id).unwrap();
    assert_eq!(sent, 1_000, "no reuse: 777 + 223 sent exactly once");
    // The target starts above the source's transfer cap (777 + the margin).
    assert_eq!(st.oseq, 777 + MARGIN + 223);
    // Inbound: the target's window continues at the peer's counter (nothing lost).
    let spi_in = *c.peers[p].esp_out.keys().next().unwrap();
    let vip = sa_common::VIP.parse::<std::net::SocketAddr>().unwrap().ip();
    let inb = c.members[dst]
        .dp
        .get_replay_state(&SaId::esp(vip, Spi(spi_in)))
        .unwrap();
    assert_eq!(inb.seq, 1_000);
    // No RFC 6311 sync was needed; IKE continues.
    assert_eq!(c.members[dst].node.counters().syncs_started, 0);
    assert!(c.liveness_ok(p));
    assert!(c.child_rekey_ok(p));
    c.check();
}

#[test]
fn drain_empties_a_node() {
    let mut c = Cluster::new(3, |_| {});
    for _ in 0..12 {
        c.add_peer();
    }
    c.traffic(100);
    let name = c.members[0].name.clone();
    let now = c.now;
    c.members[0].node.drain(now, &name);
    c.run();
    c.advance(Duration::from_millis(500));
    c.check();
    let st = c.members[0].node.status();
    assert_eq!(st.members[0].sas_owned, 0, "{st:?}");
    assert!(st.members[0].draining);
    for p in 0..12 {
        assert_ne!(c.owners_of_peer(p), vec![0]);
        assert!(c.liveness_ok(p), "peer {p}");
    }
    // New SAs avoid the draining node.
    for _ in 0..6 {
        let p = c.add_peer();
        assert_ne!(c.owners_of_peer(p), vec![0]);
    }
    c.traffic(100);
    c.check();
}

#[test]
fn joining_node_gets_a_fair_share() {
    let mut c = Cluster::new(3, |_| {});
    c.kill(2);
    for _ in 0..60 {
        c.add_peer();
    }
    c.traffic(100);
    assert!((0..60).all(|p| c.owners_of_peer(p) != vec![2]));
    // Node 3 comes back (a new incarnation) and gets about a third.
    c.revive(2);
    c.advance(Duration::from_millis(500));
    c.check();
    // About a third (binomial: mean 20, sd 3.7; this range fails once in ~1,000 runs).
    let got = (0..60).filter(|p| c.owners_of_peer(*p) == vec![2]).count();
    assert!((8..=32).contains(&got), "joiner owns {got} of 60");
    for p in 0..60 {
        assert!(c.liveness_ok(p), "peer {p}");
    }
    c.traffic(100);
    c.check();
    let st = c.members[0].node.status();
    assert_eq!(st.members.iter().map(|m| m.sas_owned).sum::<usize>(), 60);
}

/// An operator's transfer is an explicit override of the hash: when a node joins
/// later, rebalancing moves SAs placed by the hash, not those the operator placed.
/// (Before: the target handed them to the joiner when the hash named it.)
#[test]
fn operator_transfers_survive_a_rejoin() {
    let mut c = Cluster::new(3, |_| {});
    c.kill(2);
    for _ in 0..40 {
        c.add_peer();
    }
    // Peers 0..20: moved by hand to the node the hash did not pick.
    for p in 0..20 {
        let o = c.owners_of_peer(p)[0];
        let gw = c.gw_id(p);
        let to = c.members[1 - o].name.clone();
        let now = c.now;
        c.members[o].node.transfer(now, gw, &to).unwrap();
        c.run();
    }
    let placed: Vec<Vec<usize>> = (0..20).map(|p| c.owners_of_peer(p)).collect();
    c.revive(2);
    c.advance(Duration::from_millis(500));
    c.check();
    let now: Vec<Vec<usize>> = (0..20).map(|p| c.owners_of_peer(p)).collect();
    assert_eq!(now, placed, "rebalancing undid the operator's placements");
    // The others were rebalanced as usual (each goes to the joiner with probability
    // 1/3: none of 20 does once in ~3,000 runs).
    assert!((20..40).any(|q| c.owners_of_peer(q) == vec![2]));
    for p in [0, 19, 20, 39] {
        assert!(c.liveness_ok(p), "peer {p}");
    }
}

/// A transfer hands the target the rest of the source's lease, never more: the target
/// must not send past a lease end the quorum granted (a node taking over after the
/// target's death fences against the ends it knows). Before, the target extended the
/// lease to a full chunk on its own. Traffic then goes on past the old lease end on the
/// target through ordinary renewals, with no (SPI, sequence number) pair used twice.
#[test]
fn transfer_hands_over_the_granted_lease_only() {
    const CHUNK: u64 = 4_096;
    let mut c = Cluster::new(3, |cfg| cfg.lease_chunk = CHUNK);
    let p = c.add_peer();
    let src = c.owners_of_peer(p)[0];
    let dst = (src + 1) % 3;
    c.traffic(1_000);
    let gw = c.gw_id(p);
    let spi_in = c.members[src].node.endpoint().ike_sa(gw).unwrap().children[0].spi_in;
    let granted = c.members[src].node.granted_lease_end(spi_in).unwrap();
    assert!(
        granted < 1_001 + CHUNK - 1,
        "the case needs less than a chunk left"
    );
    let to = c.members[dst].name.clone();
    let now = c.now;
    c.members[src].node.transfer(now, gw, &to).unwrap();
    c.run();
    assert_eq!(c.owners_of_peer(p), vec![dst]);
    assert_eq!(
        c.members[dst].node.granted_lease_end(spi_in),
        Some(granted),
        "the target's lease ends where the quorum granted the source's"
    );
    for _ in 0..10 {
        c.traffic(1_000);
    }
    assert!(c.members[dst].node.counters().lease_renewals >= 2);
    assert!(c.wire.reused().is_empty(), "reused: {:?}", c.wire.reused());
    c.check();
    assert!(c.liveness_ok(p));
}

/// The selectors of peer `p`'s first Child SA, as the gateway sees them.
fn selectors(c: &Cluster, p: usize) -> sa_common::Selectors {
    let sa = c.peers[p].ep.ike_sa(c.peers[p].id.unwrap()).unwrap();
    let ch = &sa.children[0];
    (ch.remote_ts.clone(), ch.local_ts.clone())
}

/// (inbound SA at the gateways, outbound SA toward the peer) of peer `p`'s first Child SA.
fn child_sas(c: &Cluster, p: usize) -> (SaId, SaId) {
    let sa = c.peers[p].ep.ike_sa(c.peers[p].id.unwrap()).unwrap();
    let ch = &sa.children[0];
    let vip = sa_common::VIP.parse::<std::net::SocketAddr>().unwrap().ip();
    // The peer's outbound SPI is the gateway's inbound one.
    (
        SaId::esp(vip, Spi(ch.spi_out)),
        SaId::esp(c.peers[p].addr.ip(), Spi(ch.spi_in)),
    )
}

/// Position in the trace of the first effect of node `i` that `f` matches.
fn first(c: &Cluster, i: usize, f: impl Fn(&ClusterEffect) -> bool) -> Option<usize> {
    c.trace
        .as_ref()
        .unwrap()
        .iter()
        .position(|(n, e)| *n == i && f(e))
}

/// Make-before-break both ways, step by step. After the source's cutover it still
/// sends (its outbound SA capped in the data plane at a margin past its sequence
/// number) and delivers; the target installs with its first outbound sequence number
/// above the cap, while the source still sends and delivers (a bounded overlap: both
/// nodes deliver the peer's packets, both send ours, each under its own sequence
/// numbers); the target's ack makes the source block and remove. No packet is lost in
/// either direction at any step, and no (SPI, sequence number) pair is sent twice.
///
/// Before (break-before-make): the source blocked in, out and fwd at the cutover and
/// what arrived before the target installed was delivered and sent by no node.
#[test]
fn transfer_is_make_before_break_both_ways() {
    let mut c = Cluster::new(2, |_| {});
    let p = c.add_peer();
    c.traffic(500);
    let src = c.owners_of_peer(p)[0];
    let dst = 1 - src;
    let gw = c.gw_id(p);
    let sel = selectors(&c, p);
    let (sa_in, sa_out) = child_sas(&c, p);
    c.inbound_lost = 0;
    c.inbound_dup = 0;
    c.outbound_lost = 0;
    c.outbound_dup = 0;
    let to = c.members[dst].name.clone();
    let now = c.now;
    c.members[src].node.transfer(now, gw, &to).unwrap();

    // 1. The source alone: cutover and handover; the record waits in the target's inbox.
    c.step(src);
    let s = &mut c.members[src];
    assert!(
        matches!(s.policies.get(&sel), Some(Pol::Ipsec(_))),
        "policies must stay IPsec until the target installed: {:?}",
        s.policies.get(&sel)
    );
    assert!(s.dp.get_sa(&sa_in).is_ok(), "inbound SA removed too early");
    assert_eq!(s.dp.get_replay_state(&sa_out).unwrap().oseq, 500);
    assert!(c.members[dst].dp.get_sa(&sa_out).is_err());
    c.send_traffic(100);
    assert_eq!(
        (c.inbound_lost, c.inbound_dup),
        (0, 0),
        "the source delivers"
    );
    assert_eq!(
        (c.outbound_lost, c.outbound_dup),
        (0, 0),
        "the source sends"
    );
    assert_eq!(c.wire.sent_count(&sa_out), 600);

    // 2. The target alone: it installs above the cap; its ack waits in the source's inbox.
    c.step(dst);
    let t = &mut c.members[dst];
    assert!(matches!(t.policies.get(&sel), Some(Pol::Ipsec(_))));
    assert_eq!(
        t.dp.get_replay_state(&sa_out).unwrap().oseq,
        500 + MARGIN,
        "the target's first outbound sequence number must be above the source's cap"
    );
    assert_eq!(t.dp.get_replay_state(&sa_in).unwrap().seq, 500);
    assert!(c.members[src].dp.get_sa(&sa_in).is_ok());
    c.send_traffic(100);
    assert_eq!(
        (c.inbound_lost, c.inbound_dup),
        (0, 100),
        "overlap: both deliver"
    );
    assert_eq!(
        (c.outbound_lost, c.outbound_dup),
        (0, 100),
        "overlap: both send"
    );

    // 3. The ack: the source blocks everything and removes its SAs.
    c.run();
    let s = &mut c.members[src];
    assert_eq!(s.policies.get(&sel), Some(&Pol::Block));
    assert!(s.dp.get_sa(&sa_in).is_err() && s.dp.get_sa(&sa_out).is_err());
    c.send_traffic(100);
    c.run();
    assert_eq!((c.inbound_lost, c.inbound_dup), (0, 100));
    assert_eq!((c.outbound_lost, c.outbound_dup), (0, 100));
    assert_eq!(c.owners_of_peer(p), vec![dst]);
    // 1..=700 by the source, then 500+MARGIN+1.. by the target: exactly once each.
    assert_eq!(c.wire.sent_count(&sa_out), 700 + 200);
    assert_eq!(
        c.members[dst].dp.get_replay_state(&sa_out).unwrap().oseq,
        500 + MARGIN + 200
    );
    assert_eq!(c.members[dst].dp.get_replay_state(&sa_in).unwrap().seq, 800);
    c.check();
    assert!(c.liveness_ok(p));
    assert!(c.child_rekey_ok(p));
    c.check();
}

/// The data plane holds a transfer's source to its cap: when the target takes longer
/// than the margin to install, the source stops at the cap (those packets are lost,
/// the only way a transfer loses any) and never sends a number the target will use.
#[test]
fn transfer_source_never_sends_past_its_cap() {
    const CHUNK: u64 = 4_096;
    let mut c = Cluster::new(2, |cfg| cfg.lease_chunk = CHUNK);
    let p = c.add_peer();
    c.traffic(100);
    let src = c.owners_of_peer(p)[0];
    let dst = 1 - src;
    let gw = c.gw_id(p);
    let (_, sa_out) = child_sas(&c, p);
    c.outbound_lost = 0;
    let to = c.members[dst].name.clone();
    let now = c.now;
    c.members[src].node.transfer(now, gw, &to).unwrap();
    c.step(src);
    c.send_traffic(1_000);
    let cap = 100 + CHUNK / 16;
    // It stopped at the cap (the SA hard-expired there, as in the kernel).
    assert_eq!(c.wire.sent_count(&sa_out), cap);
    assert_eq!(c.outbound_lost, 1_000 - CHUNK / 16);
    c.run();
    c.send_traffic(100);
    assert_eq!(
        c.members[dst].dp.get_replay_state(&sa_out).unwrap().oseq,
        cap + 100
    );
    assert!(c.wire.reused().is_empty(), "reused: {:?}", c.wire.reused());
    c.check();
}

/// The order of the data-plane effects of a transfer left to run on its own, there and
/// back: the source caps its outbound SA (and learns the cap) and neither blocks its
/// policies nor removes its SAs before the target installed.
#[test]
fn transfer_effects_are_ordered() {
    let mut c = Cluster::new(2, |_| {});
    let p = c.add_peer();
    c.traffic(300);
    let gw = c.gw_id(p);
    let (sa_in, sa_out) = child_sas(&c, p);
    let a = c.owners_of_peer(p)[0];
    let mut sent = 300;
    for (src, dst) in [(a, 1 - a), (1 - a, a)] {
        c.trace = Some(Vec::new());
        let to = c.members[dst].name.clone();
        let now = c.now;
        c.members[src].node.transfer(now, gw, &to).unwrap();
        c.run();
        assert_eq!(c.owners_of_peer(p), vec![dst]);
        let cap = first(
            &c,
            src,
            |e| matches!(e, ClusterEffect::CapOutbound { spi_out, .. } if *spi_out == sa_out.spi.0),
        )
        .expect("no cap of the outbound SA");
        assert!(
            first(
                &c,
                src,
                |e| matches!(e, ClusterEffect::BlockPolicies(b) if b.ike_sa == gw)
            )
            .is_some_and(|b| b > cap)
        );
        let installed = first(
            &c,
            dst,
            |e| matches!(e, ClusterEffect::InstallChild(ci) if ci.child.inbound.spi == sa_in.spi.0),
        )
        .expect("target never installed");
        let block_all = first(
            &c,
            src,
            |e| matches!(e, ClusterEffect::BlockPolicies(b) if b.ike_sa == gw),
        )
        .expect("source never blocked in/fwd");
        let deleted = first(&c, src, |e| {
            matches!(e, ClusterEffect::Ike(ike::endpoint::Effect::DeleteChild(d)) if d.spi_in == sa_in.spi.0)
        })
        .expect("source never removed its SAs");
        assert!(
            installed < block_all && block_all < deleted,
            "install {installed}, source block {block_all}, source delete {deleted}"
        );
        assert!(
            c.members[src]
                .events
                .iter()
                .any(|e| matches!(e, ClusterEvent::TransferHandedOver { id, .. } if *id == gw))
        );
        c.traffic(100);
        sent += 100;
        assert_eq!(c.wire.sent_count(&sa_out), sent);
        c.check();
    }
}

/// A lease with little left is renewed (with the quorum) before the cutover: the
/// renewal's kernel update comes before the cap, and the target continues in the
/// renewed lease.
#[test]
fn short_lease_is_renewed_before_the_cutover() {
    const CHUNK: u64 = 4_096;
    let mut c = Cluster::new(2, |cfg| cfg.lease_chunk = CHUNK);
    let p = c.add_peer();
    let src = c.owners_of_peer(p)[0];
    let dst = 1 - src;
    // Past a quarter of the lease (less than three quarters left), before the
    // renewal at half of it.
    c.traffic(1_500);
    let gw = c.gw_id(p);
    let spi_in = c.members[src].node.endpoint().ike_sa(gw).unwrap().children[0].spi_in;
    assert_eq!(c.members[src].node.granted_lease_end(spi_in), Some(CHUNK));
    assert_eq!(c.members[src].node.counters().lease_renewals, 0);
    c.trace = Some(Vec::new());
    let to = c.members[dst].name.clone();
    let now = c.now;
    c.members[src].node.transfer(now, gw, &to).unwrap();
    c.run();
    assert_eq!(c.owners_of_peer(p), vec![dst]);
    let renewed = first(&c, src, |e| {
        matches!(e, ClusterEffect::UpdateOutboundLease { .. })
    })
    .expect("no renewal");
    let cap = first(&c, src, |e| matches!(e, ClusterEffect::CapOutbound { .. })).unwrap();
    assert!(renewed < cap);
    assert_eq!(
        c.members[dst].node.granted_lease_end(spi_in),
        Some(2 * CHUNK)
    );
    c.traffic(1_000);
    c.check();
}

/// The target dies in the middle of a transfer (before the source's cutover ran, or
/// after its handover, before the target acked): the transfer still ends with exactly
/// one owner, traffic goes on with no (SPI, sequence number) pair used twice, and a
/// source that is not the new owner no longer holds or delivers the Child SA.
#[test]
fn transfer_with_a_node_dying_mid_way_ends_with_one_owner() {
    for nodes in [2, 3] {
        for after_handover in [false, true] {
            let mut c = Cluster::new(nodes, |_| {});
            let p = c.add_peer();
            c.traffic(200);
            let src = c.owners_of_peer(p)[0];
            let dst = (src + 1) % nodes;
            let gw = c.gw_id(p);
            let sel = selectors(&c, p);
            let (sa_in, _) = child_sas(&c, p);
            let to = c.members[dst].name.clone();
            let now = c.now;
            c.members[src].node.transfer(now, gw, &to).unwrap();
            if after_handover {
                c.step(src);
            }
            c.kill(dst);
            c.advance(Duration::from_millis(500));
            let case = format!("{nodes} nodes, killed after the handover: {after_handover}");
            let owners = c.owners_of_peer(p);
            assert_eq!(owners.len(), 1, "{case}: owners {owners:?}");
            let owner = owners[0];
            assert_ne!(owner, dst);
            if owner != src {
                let s = &mut c.members[src];
                assert!(s.dp.get_sa(&sa_in).is_err(), "{case}: source kept its SA");
                assert_eq!(s.policies.get(&sel), Some(&Pol::Block), "{case}");
            }
            c.inbound_lost = 0;
            c.traffic(200);
            assert_eq!(c.inbound_lost, 0, "{case}");
            assert!(c.liveness_ok(p), "{case}");
            c.traffic(100);
            c.check();
        }
    }
}

/// A renewal the quorum does not grant in time (here: no other node runs) delays the
/// cutover by the ack timeout at most: then the target gets what is left of the lease
/// the quorum granted, and nothing more.
#[test]
fn transfer_waits_for_a_lease_renewal_only_so_long() {
    const CHUNK: u64 = 4_096;
    let mut c = Cluster::new(2, |cfg| cfg.lease_chunk = CHUNK);
    let p = c.add_peer();
    let src = c.owners_of_peer(p)[0];
    let dst = 1 - src;
    c.traffic(1_500);
    let gw = c.gw_id(p);
    let spi_in = c.members[src].node.endpoint().ike_sa(gw).unwrap().children[0].spi_in;
    c.trace = Some(Vec::new());
    let capped = |c: &Cluster| first(c, src, |e| matches!(e, ClusterEffect::CapOutbound { .. }));
    let to = c.members[dst].name.clone();
    let now = c.now;
    c.members[src].node.transfer(now, gw, &to).unwrap();
    c.step(src);
    assert!(capped(&c).is_none(), "renewing: no cutover yet");
    let later = now + Duration::from_millis(250);
    assert!(
        c.members[src]
            .node
            .poll_timeout()
            .is_some_and(|t| t <= later)
    );
    c.now = later;
    c.members[src].node.handle_timeout(later);
    c.step(src);
    assert!(capped(&c).is_some(), "no cutover after the timeout");
    c.run();
    assert_eq!(c.owners_of_peer(p), vec![dst]);
    assert_eq!(c.members[dst].node.granted_lease_end(spi_in), Some(CHUNK));
    c.traffic(1_000);
    c.check();
}

/// A lease renewal the quorum grants after the cutover (the exact read found little
/// left) is the target's: it must not raise the source's cap. Between the grant and the
/// target's install, the source sends as much as it can; the target then starts above
/// the cap, and no (SPI, sequence number) pair is used twice.
#[test]
fn a_renewal_granted_after_the_cutover_does_not_raise_the_cap() {
    const CHUNK: u64 = 4_096;
    let mut c = Cluster::new(2, |cfg| cfg.lease_chunk = CHUNK);
    let p = c.add_peer();
    c.traffic(100);
    let src = c.owners_of_peer(p)[0];
    let dst = 1 - src;
    let gw = c.gw_id(p);
    let (_, sa_out) = child_sas(&c, p);
    let spi_in = c.members[src].node.endpoint().ike_sa(gw).unwrap().children[0].spi_in;
    // Sent but not yet checkpointed (no run): the transfer starts without a renewal,
    // and the exact read at the cutover finds less than a quarter lease left.
    c.send_traffic(2_900);
    let to = c.members[dst].name.clone();
    let now = c.now;
    c.members[src].node.transfer(now, gw, &to).unwrap();
    c.step(src); // cap, read, renewal asked of the quorum
    c.step(dst); // the target acks the renewal
    c.step(src); // granted; handed over
    assert_eq!(
        c.members[src].node.granted_lease_end(spi_in),
        None,
        "handed over"
    );
    let cap = 3_000 + CHUNK / 16;
    c.send_traffic(2_000);
    assert_eq!(
        c.wire.sent_count(&sa_out),
        cap,
        "the source went past its cap"
    );
    c.run();
    assert_eq!(c.owners_of_peer(p), vec![dst]);
    assert_eq!(
        c.members[dst].node.granted_lease_end(spi_in),
        Some(2 * CHUNK)
    );
    c.send_traffic(100);
    assert!(c.wire.reused().is_empty(), "reused: {:?}", c.wire.reused());
    c.check();
}
