//! `MemoryDataplane` follows the kernel's rules: larval SPIs, EEXIST/ESRCH,
//! sequence numbers that never wrap, the replay window, lifetimes, replay
//! events, flush_own; and the shared `Wire` catches any reused (SPI, seq).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests"
)]

mod common;

use common::{OWNED, all_cryptos, ip, sa};
use xfrm::{
    Dataplane, DataplaneEvent, Direction, Error, Lifetime, MemoryDataplane, Mode, PolicyAction,
    PolicySpec, Prefix, Protocol, Received, ReplayEventCause, ReplayEventThresholds, ReplayState,
    SaId, SaSpec, Selector, Spi, SpiRange, Template, UdpEncap, Wire,
};

fn gcm_sa(spi: u32) -> SaSpec {
    sa(
        "192.0.2.1",
        "198.51.100.2",
        spi,
        OWNED.min,
        all_cryptos(1).remove(0).1,
    )
}

#[test]
fn alloc_spi_stays_in_range_and_reserves() {
    let mut dp = MemoryDataplane::new(OWNED, 42);
    let range = SpiRange::new(0x1000, 0x100f).unwrap();
    let (peer, us) = (ip("198.51.100.2"), ip("192.0.2.1"));
    let mut got = std::collections::HashSet::new();
    for _ in 0..16 {
        let spi = dp
            .alloc_spi(peer, us, Protocol::Esp, OWNED.min, range)
            .unwrap();
        assert!(range.contains(spi));
        assert!(got.insert(spi), "{spi} handed out twice");
    }
    let e = dp
        .alloc_spi(peer, us, Protocol::Esp, OWNED.min, range)
        .unwrap_err();
    assert!(matches!(e, Error::SpiRangeExhausted { .. }), "{e}");
    // Another destination has its own SPI space.
    dp.alloc_spi(peer, ip("192.0.2.9"), Protocol::Esp, OWNED.min, range)
        .unwrap();
    // Installing over a larval SPI works once; a second add is EEXIST.
    let spi = *got.iter().next().unwrap();
    let s = SaSpec::new(
        SaId::esp(us, spi),
        peer,
        Mode::Tunnel,
        OWNED.min,
        all_cryptos(2).remove(1).1,
    );
    dp.add_sa(&s).unwrap();
    assert!(dp.add_sa(&s).unwrap_err().is_exists());
    // Larval SAs expire after xfrm_acq_expires; the SPI becomes free again.
    dp.advance_time(xfrm::LARVAL_LIFETIME_SECS);
    let again = dp
        .alloc_spi(peer, us, Protocol::Esp, OWNED.min, range)
        .unwrap();
    assert_ne!(again, spi);
}

#[test]
fn disjoint_ranges_never_collide_across_nodes() {
    let ranges = [
        SpiRange::new(0xc000_0000, 0xc000_00ff).unwrap(),
        SpiRange::new(0xc000_0100, 0xc000_01ff).unwrap(),
    ];
    let mut nodes: Vec<_> = (0..2).map(|i| MemoryDataplane::new(OWNED, i)).collect();
    let mut all = std::collections::HashSet::new();
    for (dp, range) in nodes.iter_mut().zip(ranges) {
        for _ in 0..200 {
            let spi = dp
                .alloc_spi(
                    ip("10.0.0.2"),
                    ip("10.0.0.1"),
                    Protocol::Esp,
                    OWNED.min,
                    range,
                )
                .unwrap();
            assert!(all.insert(spi));
        }
    }
}

#[test]
fn get_update_delete_follow_the_kernel() {
    let mut dp = MemoryDataplane::new(OWNED, 1);
    let mut s = gcm_sa(0x2000);
    s.encap = Some(UdpEncap {
        sport: 4500,
        dport: 4500,
    });
    dp.add_sa(&s).unwrap();
    let got = dp.get_sa(&s.id).unwrap();
    assert_eq!(got.spec.crypto, s.crypto);
    assert_eq!(
        got.spec.replay_state,
        Some(ReplayState {
            bitmap: vec![0],
            ..Default::default()
        })
    );
    let mut upd = s.clone();
    upd.encap = Some(UdpEncap {
        sport: 4500,
        dport: 40000,
    });
    upd.lifetime.soft_add_secs = Some(10);
    dp.update_sa(&upd).unwrap();
    assert_eq!(dp.get_sa(&s.id).unwrap().spec.encap, upd.encap);
    upd.encap = None;
    assert!(matches!(
        dp.update_sa(&upd),
        Err(Error::Kernel { errno: 22, .. })
    ));
    dp.delete_sa(&s.id).unwrap();
    assert!(dp.delete_sa(&s.id).unwrap_err().is_not_found());
    assert!(dp.update_sa(&s).unwrap_err().is_not_found());
    // Invalid specs never get in.
    let mut bad = gcm_sa(0x2001);
    bad.esn = true;
    bad.replay_window = 0;
    assert!(matches!(dp.add_sa(&bad), Err(Error::Invalid(_))));
}

#[test]
fn outbound_sequence_numbers_advance_and_never_wrap() {
    let mut dp = MemoryDataplane::new(OWNED, 1);
    let s = gcm_sa(0x3000);
    dp.add_sa(&s).unwrap();
    let r1 = dp.send(&s.id, 10, 100).unwrap();
    let r2 = dp.send(&s.id, 5, 100).unwrap();
    assert_eq!((r1.first, r1.last, r2.first, r2.last), (1, 10, 11, 15));
    assert_eq!(dp.get_counters(&s.id).unwrap().packets, 15);
    assert_eq!(dp.get_counters(&s.id).unwrap().bytes, 1500);
    // Without ESN the last usable number is 2^32 - 1 (RFC 4303 §3.3.3).
    dp.set_replay_state(
        &s.id,
        &ReplayState {
            oseq: u64::from(u32::MAX) - 2,
            seq: 0,
            bitmap: vec![0],
        },
    )
    .unwrap();
    let r = dp.send(&s.id, 10, 1).unwrap();
    assert_eq!(
        (r.first, r.last, r.count),
        (u64::from(u32::MAX) - 1, u64::from(u32::MAX), 2)
    );
    assert!(matches!(
        dp.send(&s.id, 1, 1),
        Err(Error::SequenceExhausted { .. })
    ));
    // With ESN, 64 bits.
    let mut e = gcm_sa(0x3001);
    e.esn = true;
    dp.add_sa(&e).unwrap();
    dp.set_replay_state(
        &e.id,
        &ReplayState {
            oseq: u64::from(u32::MAX),
            seq: 0,
            bitmap: vec![0],
        },
    )
    .unwrap();
    assert_eq!(dp.send(&e.id, 2, 1).unwrap().last, u64::from(u32::MAX) + 2);
}

#[test]
fn wire_reports_reused_sequence_numbers_across_nodes() {
    let wire = Wire::new();
    let s = gcm_sa(0x3100);
    let mut owner = MemoryDataplane::new(OWNED, 1);
    let mut standby = MemoryDataplane::new(OWNED, 2);
    owner.attach_wire(wire.clone());
    standby.attach_wire(wire.clone());
    owner.add_sa(&s).unwrap();
    owner.send(&s.id, 100, 1).unwrap();
    // A takeover that moves the counter forward by a margin: no reuse.
    let mut taken = s.clone();
    taken.replay_state = Some(ReplayState {
        oseq: owner.get_replay_state(&s.id).unwrap().oseq + 50,
        seq: 0,
        bitmap: vec![0],
    });
    standby.add_sa(&taken).unwrap();
    standby.send(&s.id, 10, 1).unwrap();
    assert!(wire.reused().is_empty());
    assert_eq!(wire.sent_count(&s.id), 110);
    // The old owner keeps sending (a partition): packets 101..=160 overlap 151..=160.
    owner.send(&s.id, 60, 1).unwrap();
    let reused = wire.reused();
    assert_eq!(reused.len(), 1);
    assert_eq!((reused[0].1.first, reused[0].1.last), (151, 160));
}

#[test]
fn inbound_window_and_statistics() {
    let mut dp = MemoryDataplane::new(OWNED, 1);
    let mut s = gcm_sa(0x4000);
    s.replay_window = 64;
    dp.add_sa(&s).unwrap();
    for n in [1, 2, 5, 3] {
        assert_eq!(dp.receive(&s.id, n, 50).unwrap(), Received::Accepted);
    }
    assert_eq!(dp.receive(&s.id, 2, 50).unwrap(), Received::Replayed);
    assert_eq!(dp.receive(&s.id, 200, 50).unwrap(), Received::Accepted);
    assert_eq!(dp.receive(&s.id, 100, 50).unwrap(), Received::TooOld);
    let info = dp.get_sa(&s.id).unwrap();
    assert_eq!(
        (
            info.stats.replay,
            info.stats.replay_window,
            info.counters.packets
        ),
        (1, 1, 5)
    );
    let st = info.spec.replay_state.unwrap();
    assert_eq!(st.seq, 200);
    assert!(st.received(200) && !st.received(199));
    assert!(
        dp.receive(&s.id, 1 << 33, 1).is_err(),
        "64-bit numbers need ESN"
    );
}

#[test]
fn lifetimes_raise_soft_then_hard_expire() {
    let mut dp = MemoryDataplane::new(OWNED, 1);
    let mut s = gcm_sa(0x5000);
    s.lifetime = Lifetime {
        soft_packets: Some(10),
        hard_packets: Some(20),
        ..Default::default()
    };
    dp.add_sa(&s).unwrap();
    dp.send(&s.id, 9, 1).unwrap();
    assert!(dp.poll_events().unwrap().is_empty());
    dp.send(&s.id, 1, 1).unwrap();
    assert_eq!(
        dp.poll_events().unwrap(),
        vec![DataplaneEvent::SoftExpire {
            sa: s.id,
            reqid: OWNED.min
        }]
    );
    let r = dp.send(&s.id, 50, 1).unwrap();
    assert_eq!(r.count, 10, "packets past the hard limit are not sent");
    assert_eq!(
        dp.poll_events().unwrap(),
        vec![DataplaneEvent::HardExpire {
            sa: s.id,
            reqid: OWNED.min
        }]
    );
    assert!(dp.get_sa(&s.id).unwrap_err().is_not_found());
    // By time.
    let mut t = gcm_sa(0x5001);
    t.lifetime = Lifetime {
        soft_add_secs: Some(100),
        hard_add_secs: Some(120),
        ..Default::default()
    };
    dp.add_sa(&t).unwrap();
    dp.advance_time(99);
    assert!(dp.poll_events().unwrap().is_empty());
    dp.advance_time(1);
    assert!(matches!(
        dp.poll_events().unwrap()[..],
        [DataplaneEvent::SoftExpire { .. }]
    ));
    dp.advance_time(20);
    assert!(matches!(
        dp.poll_events().unwrap()[..],
        [DataplaneEvent::HardExpire { .. }]
    ));
    assert_eq!(dp.sa_count(), 0);
}

#[test]
fn replay_events_at_packet_threshold_and_timer() {
    let mut dp = MemoryDataplane::new(OWNED, 1);
    let mut s = gcm_sa(0x6000);
    s.replay_events = Some(ReplayEventThresholds {
        packets: 4,
        timer_jiffies: 250,
    });
    dp.add_sa(&s).unwrap();
    dp.send(&s.id, 3, 1).unwrap();
    assert!(dp.poll_events().unwrap().is_empty());
    dp.send(&s.id, 1, 1).unwrap();
    let evs = dp.poll_events().unwrap();
    assert!(
        matches!(&evs[..], [DataplaneEvent::Replay { cause: ReplayEventCause::Threshold, state, .. }] if state.oseq == 4)
    );
    dp.send(&s.id, 1, 1).unwrap();
    dp.advance_time(1);
    let evs = dp.poll_events().unwrap();
    assert!(
        matches!(&evs[..], [DataplaneEvent::Replay { cause: ReplayEventCause::Timer, state, .. }] if state.oseq == 5)
    );
    dp.advance_time(1);
    assert!(
        dp.poll_events().unwrap().is_empty(),
        "no change, no timer event"
    );
    // Events of SAs outside the owned range are not delivered.
    let mut f = gcm_sa(0x6001);
    f.reqid = 7;
    f.replay_events = s.replay_events;
    dp.add_sa(&f).unwrap();
    dp.send(&f.id, 10, 1).unwrap();
    assert!(dp.poll_events().unwrap().is_empty());
}

#[test]
fn policies_and_flush_own() {
    let mut dp = MemoryDataplane::new(OWNED, 1);
    let sel = Selector::new(
        Prefix::new(ip("10.1.0.0"), 24).unwrap(),
        Prefix::host(ip("10.8.0.5")),
    )
    .unwrap();
    let tmpl = |reqid| Template {
        proto: Protocol::Esp,
        mode: Mode::Tunnel,
        reqid,
        tunnel: Some((ip("192.0.2.1"), ip("198.51.100.2"))),
    };
    let out = PolicySpec {
        selector: sel,
        dir: Direction::Out,
        priority: 5,
        action: PolicyAction::Allow,
        templates: vec![tmpl(OWNED.min)],
    };
    let block = PolicySpec {
        dir: Direction::Fwd,
        action: PolicyAction::Block,
        templates: vec![tmpl(OWNED.min)],
        ..out.clone()
    };
    let foreign = PolicySpec {
        dir: Direction::In,
        templates: vec![tmpl(3)],
        ..out.clone()
    };
    for p in [&out, &block, &foreign] {
        dp.add_policy(p).unwrap();
    }
    assert!(dp.add_policy(&out).unwrap_err().is_exists());
    let bad = PolicySpec {
        templates: vec![Template {
            tunnel: None,
            ..tmpl(1)
        }],
        ..out.clone()
    };
    assert!(matches!(dp.add_policy(&bad), Err(Error::Invalid(_))));
    dp.update_policy(&PolicySpec {
        action: PolicyAction::Allow,
        ..block.clone()
    })
    .unwrap();
    assert_eq!(dp.policy_count(), 3);
    dp.add_sa(&gcm_sa(0x7000)).unwrap();
    let mut f = gcm_sa(0x7001);
    f.reqid = 3;
    dp.add_sa(&f).unwrap();
    let r = dp.flush_own().unwrap();
    assert_eq!((r.sas, r.policies), (1, 2));
    assert_eq!(dp.list_policies().unwrap(), vec![foreign]);
    assert_eq!(dp.list_sas().unwrap().len(), 1);
    assert!(dp.get_sa(&SaId::esp(ip("192.0.2.1"), Spi(0x7001))).is_ok());
}

#[test]
fn debug_never_prints_keys() {
    let s = gcm_sa(0x8000);
    let dp = {
        let mut dp = MemoryDataplane::new(OWNED, 1);
        dp.add_sa(&s).unwrap();
        dp
    };
    let xfrm::Crypto::Aead { key, .. } = &s.crypto else {
        unreachable!()
    };
    let hex: String = key.expose().iter().map(|b| format!("{b:02x}")).collect();
    let dec: String = format!("{:?}", key.expose());
    for text in [format!("{s:?}"), format!("{dp:?}"), format!("{s:#?}")] {
        assert!(
            !text.contains(&hex[..10]) && !text.contains(&dec[..12]),
            "{text}"
        );
        assert!(text.contains("key bytes redacted"));
    }
}

#[test]
fn dataplane_is_object_safe_for_the_gateway() {
    // The gateway picks `dataplane = "xfrm" | "memory"` at run time.
    let mut dp: Box<dyn Dataplane> = Box::new(MemoryDataplane::new(OWNED, 3));
    dp.add_sa(&gcm_sa(0x9000)).unwrap();
    assert_eq!(dp.list_sas().unwrap().len(), 1);
}

#[test]
fn injected_failures_and_in_order_receive() {
    let mut dp = MemoryDataplane::new(OWNED, 1);
    let s = gcm_sa(0xa000);
    dp.fail_next(2, 105);
    for _ in 0..2 {
        let e = dp.add_sa(&s).unwrap_err();
        assert!(matches!(e, Error::Kernel { errno: 105, .. }), "{e}");
        assert!(e.to_string().contains("injected"), "{e}");
    }
    dp.add_sa(&s).unwrap();
    assert_eq!(dp.receive_range(&s.id, 1, 40, 10).unwrap(), 40);
    assert_eq!(
        dp.receive_range(&s.id, 35, 10, 10).unwrap(),
        4,
        "35..=40 are replays"
    );
    assert_eq!(dp.get_replay_state(&s.id).unwrap().seq, 44);
}

#[test]
fn an_outbound_sa_moved_to_a_new_range_continues_at_its_start_and_stops_at_its_end() {
    let wire = Wire::new();
    let mut dp = MemoryDataplane::new(OWNED, 7);
    dp.attach_wire(wire.clone());
    let mut s = gcm_sa(0x2000);
    s.lifetime = Lifetime {
        hard_packets: Some(100),
        soft_packets: Some(75),
        ..Lifetime::default()
    };
    dp.add_sa(&s).unwrap();
    let id = s.id;
    let r = dp.send(&id, 60, 100).unwrap();
    assert_eq!((r.first, r.last), (1, 60));
    // Its range is [1, 100] (hard limit 100 packets); move it to [1001, 1050].
    xfrm::move_outbound_range(&mut dp, &id, 100, 1001, 1050).unwrap();
    let r = dp.send(&id, 10, 100).unwrap();
    assert_eq!((r.first, r.last), (1001, 1010));
    // Never past the new end, however much is asked.
    let r = dp.send(&id, 1_000, 100).unwrap();
    assert_eq!(r.last, 1050, "{r:?}");
    assert!(dp.send(&id, 1, 100).map_or(true, |r| r.count == 0));
    assert!(wire.reused().is_empty());
    // Backwards or empty moves are refused.
    assert!(xfrm::move_outbound_range(&mut dp, &id, 1050, 1050, 2000).is_err());
    assert!(xfrm::move_outbound_range(&mut dp, &id, 1050, 3000, 2000).is_err());
}

#[test]
fn a_capped_outbound_sa_stops_at_the_returned_sequence_number() {
    let wire = Wire::new();
    let mut dp = MemoryDataplane::new(OWNED, 8);
    dp.attach_wire(wire.clone());
    let mut s = gcm_sa(0x2100);
    s.lifetime = Lifetime {
        hard_packets: Some(1_000),
        soft_packets: Some(750),
        ..Lifetime::default()
    };
    dp.add_sa(&s).unwrap();
    let id = s.id;
    dp.send(&id, 100, 100).unwrap();
    let last = xfrm::cap_outbound(&mut dp, &id, 1_000, 50).unwrap();
    assert_eq!(last, 150);
    let r = dp.send(&id, 1_000, 100).unwrap();
    assert_eq!((r.first, r.last), (101, 150));
    // Near the lease end the cap is the lease end.
    let mut s = gcm_sa(0x2101);
    s.lifetime.hard_packets = Some(1_000);
    dp.add_sa(&s).unwrap();
    dp.send(&s.id, 990, 100).unwrap();
    assert_eq!(
        xfrm::cap_outbound(&mut dp, &s.id, 1_000, 50).unwrap(),
        1_000
    );
    assert_eq!(dp.send(&s.id, 100, 100).unwrap().last, 1_000);
    assert!(wire.reused().is_empty());
}
