//! The responder against our own initiator, in-process on a virtual clock: every
//! exchange, retransmissions, export/import into another endpoint, and hostile input.

mod common;

use std::time::Duration;

use common::*;
use ike::endpoint::{Effect, SaEvent};
use ike::initiator::InitiatorOptions;
use ike::sa::IkeSaId;
use ike::wire::{ExchangeType, HeaderView, KeGroup};

fn gateway_sa(net: &Net) -> IkeSaId {
    net.nodes[1].ep.list(net.now)[0].id
}

#[test]
fn psk_handshake_installs_mirrored_child_sas() {
    let (net, _) = established_pair();
    let c = net.installs(0);
    let g = net.installs(1);
    assert_eq!((c.len(), g.len()), (1, 1));
    let (c, g) = (c[0], g[0]);
    // What one side sends on, the other receives on, with the same keys.
    assert_eq!(c.outbound.spi, g.inbound.spi);
    assert_eq!(c.inbound.spi, g.outbound.spi);
    assert_eq!(c.outbound.keys, g.inbound.keys);
    assert_eq!(c.inbound.keys, g.outbound.keys);
    assert_ne!(c.inbound.keys, c.outbound.keys);
    assert_eq!(g.outbound.keys.encr.len(), 20, "AES-GCM-128 key plus salt");
    let info = &net.nodes[1].ep.list(net.now)[0];
    assert_eq!(info.state, "ESTABLISHED");
    assert_eq!(info.remote_id, "client.example");
    assert_eq!(info.children[0].local_ts, vec!["10.1.0.0/24".to_string()]);
    assert_eq!(info.children[0].remote_ts, vec!["192.0.2.2/32".to_string()]);
    assert!(
        info.mid_sync,
        "RFC 6311 support echoed because the initiator asserted it"
    );
}

#[test]
fn retransmitted_ike_auth_gets_the_same_response_and_is_not_processed_again() {
    let (mut net, _) = established_pair();
    let auth_request = net.nodes[0]
        .sent
        .iter()
        .find(|d| {
            HeaderView::new_checked(d.as_slice()).unwrap().exchange() == ExchangeType::IKE_AUTH
        })
        .unwrap()
        .clone();
    let first_response = net.nodes[1].sent.last().unwrap().clone();
    let before = net.installs(1).len();
    net.inject(0, 1, &auth_request);
    assert_eq!(
        net.nodes[1].sent.last().unwrap(),
        &first_response,
        "byte-identical resend"
    );
    assert_eq!(net.installs(1).len(), before, "request not processed twice");
    assert!(
        net.nodes[1]
            .effects
            .iter()
            .any(|e| matches!(e, Effect::Event(SaEvent::RetransmitAnswered)))
    );
}

#[test]
fn liveness_child_creation_and_deletes_from_the_initiator() {
    let (mut net, id) = established_pair();
    let now = net.now;
    assert!(net.nodes[0].ep.send_liveness(now, id));
    net.run();
    assert!(
        net.nodes[0]
            .ep
            .ike_sa(id)
            .unwrap()
            .msgids
            .outstanding
            .is_none(),
        "liveness answered"
    );

    assert!(net.nodes[0].ep.create_child(now, id, None));
    net.run();
    assert_eq!(net.installs(1).len(), 2);
    assert_eq!(net.nodes[1].ep.list(now)[0].children.len(), 2);

    let spi = net.nodes[0].ep.ike_sa(id).unwrap().children[1].spi_in;
    assert!(net.nodes[0].ep.delete_child(now, id, spi));
    net.run();
    assert_eq!(net.nodes[1].ep.list(now)[0].children.len(), 1);
    assert_eq!(net.deletes(1).len(), 1);

    assert!(net.nodes[0].ep.terminate(now, id));
    net.run();
    assert_eq!(
        net.nodes[1].ep.ike_sa_count(),
        0,
        "gateway removed the IKE SA"
    );
    assert_eq!(
        net.nodes[0].ep.ike_sa_count(),
        0,
        "client removed it after the response"
    );
    assert_eq!(
        net.deletes(1).len(),
        2,
        "remaining Child SA removed with it"
    );
}

#[test]
fn child_sa_rekey_and_ike_sa_rekey_started_by_the_client() {
    let (mut net, id) = established_pair();
    let now = net.now;
    let old = net.nodes[0].ep.ike_sa(id).unwrap().children[0].spi_in;
    assert!(net.nodes[0].ep.create_child(now, id, Some(old)));
    net.run();
    let g = net.installs(1);
    assert_eq!(g.len(), 2);
    assert!(
        g[1].replaces.is_some(),
        "rekey installs the new SA as a replacement"
    );
    assert_eq!(g[1].reqid, g[0].reqid, "policies are kept across the rekey");
    // The client deleted the old Child SA after the rekey.
    assert_eq!(net.deletes(1).len(), 1);
    assert!(net.deletes(1)[0].keep_policies);
    assert_eq!(net.nodes[1].ep.list(now)[0].children.len(), 1);

    assert!(net.nodes[0].ep.rekey_ike(now, id));
    net.run();
    assert_eq!(
        net.nodes[1].ep.ike_sa_count(),
        1,
        "old IKE SA deleted, new one remains"
    );
    let info = &net.nodes[1].ep.list(now)[0];
    assert_ne!(info.id, IkeSaId(0));
    assert_eq!(info.children.len(), 1, "Child SA moved to the new IKE SA");
    // The new IKE SA works: a liveness check on it is answered.
    let new_id = net.nodes[0].ep.list(now)[0].id;
    assert_ne!(new_id, id);
    assert!(net.nodes[0].ep.send_liveness(now, new_id));
    net.run();
    assert!(
        net.nodes[0]
            .ep
            .ike_sa(new_id)
            .unwrap()
            .msgids
            .outstanding
            .is_none()
    );
    assert_eq!(
        net.nodes[0]
            .ep
            .ike_sa(new_id)
            .unwrap()
            .msgids
            .our_next_request,
        1
    );
}

#[test]
fn gateway_terminate_deletes_on_both_sides() {
    let (mut net, _) = established_pair();
    let now = net.now;
    let gid = gateway_sa(&net);
    assert!(net.nodes[1].ep.terminate(now, gid));
    net.run();
    assert_eq!(net.nodes[1].ep.ike_sa_count(), 0);
    assert_eq!(net.nodes[0].ep.ike_sa_count(), 0);
    assert_eq!(net.deletes(1).len(), 1);
}

#[test]
fn exported_context_carries_the_session_on_in_another_endpoint() {
    let (mut net, id) = established_pair();
    let now = net.now;
    let gid = gateway_sa(&net);
    let record = net.nodes[1].ep.export(gid, now).unwrap();
    let auth_request = net.nodes[0]
        .sent
        .iter()
        .find(|d| {
            HeaderView::new_checked(d.as_slice()).unwrap().exchange() == ExchangeType::IKE_AUTH
        })
        .unwrap()
        .clone();
    let auth_response = net.nodes[1]
        .sent
        .iter()
        .find(|d| {
            HeaderView::new_checked(d.as_slice()).unwrap().exchange() == ExchangeType::IKE_AUTH
        })
        .unwrap()
        .clone();
    // Node 2 takes the gateway's address; node 1 goes away.
    let cfg = gateway_config(gateway_conn(&[KeGroup::CURVE25519], None));
    let n2 = net.add(cfg, "198.51.100.9:500");
    net.nodes[1].addr = "203.0.113.99:500".parse().unwrap();
    net.nodes[n2].addr = "198.51.100.1:500".parse().unwrap();
    let imported = net.nodes[n2].ep.import(now, &record).unwrap();
    assert_eq!(imported, gid);

    // A retransmission of an old request is answered byte for byte by the new owner.
    net.inject(0, n2, &auth_request);
    assert_eq!(net.nodes[n2].sent.last().unwrap(), &auth_response);
    assert!(net.installs(n2).is_empty(), "not processed again");

    // The peer's next INFORMATIONAL and CREATE_CHILD_SA are handled.
    assert!(net.nodes[0].ep.send_liveness(now, id));
    net.run();
    assert!(
        net.nodes[0]
            .ep
            .ike_sa(id)
            .unwrap()
            .msgids
            .outstanding
            .is_none()
    );
    assert!(net.nodes[0].ep.create_child(now, id, None));
    net.run();
    assert_eq!(net.installs(n2).len(), 1);
    assert_eq!(net.nodes[n2].ep.list(now)[0].children.len(), 2);
    // And a Child SA created by the new owner is usable from the client's side.
    assert_eq!(net.nodes[0].ep.ike_sa(id).unwrap().children.len(), 2);
}

#[test]
fn export_import_round_trips_every_field() {
    let (net, _) = established_pair();
    let now = net.now;
    let gid = gateway_sa(&net);
    let record = net.nodes[1].ep.export(gid, now).unwrap();
    let sa = ike::export::read_sa(&record, now).unwrap();
    let orig = net.nodes[1].ep.ike_sa(gid).unwrap();
    assert_eq!(sa.spis, orig.spis);
    assert_eq!(sa.keys.sk_d, orig.keys.sk_d);
    assert_eq!(sa.msgids, orig.msgids);
    assert_eq!(sa.children, orig.children);
    assert_eq!(sa.local_id, orig.local_id);
    assert_eq!(ike::export::write_sa(&sa, now), record);
    // Truncated or padded records are refused, never a panic.
    for cut in [0, 4, 6, record.len() / 2, record.len() - 1] {
        assert!(ike::export::read_sa(&record[..cut], now).is_err());
    }
    let mut padded = record.clone();
    padded.push(0);
    assert!(ike::export::read_sa(&padded, now).is_err());
}

#[test]
fn invalid_ke_payload_makes_the_initiator_retry_with_our_group() {
    let mut net = Net::new();
    let mut client = client_conn(KeGroup::CURVE25519, "client.example");
    client.ike_proposals[0].ke = vec![KeGroup::CURVE25519, KeGroup::ECP_256];
    net.add(client_config(client, PSK), "192.0.2.2:500");
    net.add(
        gateway_config(gateway_conn(&[KeGroup::ECP_256], None)),
        "198.51.100.1:500",
    );
    let (l, r, now) = (net.nodes[0].addr, net.nodes[1].addr, net.now);
    net.nodes[0]
        .ep
        .initiate(now, "home", l, r, InitiatorOptions::default())
        .unwrap();
    net.run();
    assert_eq!(net.nodes[1].ep.ike_sa_count(), 1);
    assert!(net.nodes[1].effects.iter().any(|e| matches!(
        e,
        Effect::Event(SaEvent::Dropped {
            reason: "invalid_ke_payload"
        })
    )));
}

#[test]
fn cookies_are_demanded_under_load_and_accepted() {
    let mut net = Net::new();
    net.add(
        client_config(client_conn(KeGroup::CURVE25519, "client.example"), PSK),
        "192.0.2.2:500",
    );
    let mut cfg = gateway_config(gateway_conn(&[KeGroup::CURVE25519], None));
    cfg.cookie_threshold = 0;
    net.add(cfg, "198.51.100.1:500");
    let (l, r, now) = (net.nodes[0].addr, net.nodes[1].addr, net.now);
    net.nodes[0]
        .ep
        .initiate(now, "home", l, r, InitiatorOptions::default())
        .unwrap();
    net.run();
    assert_eq!(net.nodes[1].ep.ike_sa_count(), 1);
    assert!(net.nodes[1].effects.iter().any(|e| matches!(
        e,
        Effect::Event(SaEvent::Dropped {
            reason: "cookie_required"
        })
    )));
}

#[test]
fn wrong_psk_is_refused_with_authentication_failed() {
    let mut net = Net::new();
    net.add(
        client_config(
            client_conn(KeGroup::CURVE25519, "client.example"),
            b"not the right key!!!",
        ),
        "192.0.2.2:500",
    );
    net.add(
        gateway_config(gateway_conn(&[KeGroup::CURVE25519], None)),
        "198.51.100.1:500",
    );
    let (l, r, now) = (net.nodes[0].addr, net.nodes[1].addr, net.now);
    let id = net.nodes[0]
        .ep
        .initiate(now, "home", l, r, InitiatorOptions::default())
        .unwrap();
    net.run();
    assert_eq!(net.nodes[1].ep.ike_sa_count(), 0);
    assert_eq!(net.nodes[1].ep.half_open_count(), 0);
    assert!(
        net.nodes[1]
            .effects
            .iter()
            .any(|e| matches!(e, Effect::Event(SaEvent::AuthFailed { .. })))
    );
    assert!(net.nodes[0].effects.iter().any(|e| matches!(
        e,
        Effect::Event(SaEvent::InitiationFailed { id: i, .. }) if *i == id
    )));
}

#[test]
fn virtual_ips_come_from_the_pool_and_are_not_handed_out_twice() {
    let mut net = Net::new();
    net.add(
        client_config(client_conn(KeGroup::CURVE25519, "client.example"), PSK),
        "192.0.2.2:500",
    );
    net.add(
        gateway_config(gateway_conn(&[KeGroup::CURVE25519], Some("vpn"))),
        "198.51.100.1:500",
    );
    net.add(
        client_config(client_conn(KeGroup::CURVE25519, "client2.example"), PSK),
        "192.0.2.3:500",
    );
    let opts = InitiatorOptions {
        request_virtual_ip: true,
        ..Default::default()
    };
    let now = net.now;
    let (a, b, g) = (net.nodes[0].addr, net.nodes[2].addr, net.nodes[1].addr);
    let id_a = net.nodes[0].ep.initiate(now, "home", a, g, opts).unwrap();
    let id_b = net.nodes[2].ep.initiate(now, "home", b, g, opts).unwrap();
    net.run();
    let va = net.nodes[0].ep.ike_sa(id_a).unwrap().virtual_ip.unwrap();
    let vb = net.nodes[2].ep.ike_sa(id_b).unwrap().virtual_ip.unwrap();
    assert_ne!(va, vb);
    let infos = net.nodes[1].ep.list(now);
    assert_eq!(infos.len(), 2);
    for i in &infos {
        let v = i.virtual_ip.unwrap();
        assert_eq!(
            i.children[0].remote_ts,
            vec![format!("{v}/32")],
            "TS narrowed to the virtual IP"
        );
    }
}

#[test]
fn hostile_datagrams_are_dropped_without_disturbing_other_sas() {
    let (mut net, id) = established_pair();
    let now = net.now;
    // A flipped bit in the SK payload of a liveness request: dropped, no answer.
    net.filter = Box::new(|f| {
        if f.data.len() > 40 {
            let n = f.data.len();
            f.data[n - 20] ^= 0x01;
        }
        true
    });
    let sent_before = net.nodes[1].sent.len();
    assert!(net.nodes[0].ep.send_liveness(now, id));
    net.run();
    assert_eq!(
        net.nodes[1].sent.len(),
        sent_before,
        "forged request gets no answer"
    );
    assert!(net.nodes[1].effects.iter().any(|e| matches!(
        e,
        Effect::Event(SaEvent::Dropped {
            reason: "integrity_check_failed"
        })
    )));
    net.filter = Box::new(|_| true);

    let good = net.nodes[0].sent.last().unwrap().clone();
    // Garbage of every length, truncations of a valid message, an unknown SPI.
    for len in 0..64 {
        net.inject(0, 1, &vec![0xA5; len]);
    }
    for cut in 0..good.len() {
        net.inject(0, 1, &good[..cut]);
    }
    let mut unknown = good.clone();
    unknown[8..16].copy_from_slice(&[9; 8]);
    net.inject(0, 1, &unknown);
    // A replayed IKE_SA_INIT is ignored once IKE_AUTH has completed.
    let init = net.nodes[0].sent[0].clone();
    let sent_before = net.nodes[1].sent.len();
    net.inject(0, 1, &init);
    assert_eq!(net.nodes[1].sent.len(), sent_before);
    assert_eq!(net.nodes[1].ep.ike_sa_count(), 1);

    // The real retransmission (unmodified) still gets its answer; the SA is intact.
    net.advance(Duration::from_secs(5));
    assert!(
        net.nodes[0]
            .ep
            .ike_sa(id)
            .unwrap()
            .msgids
            .outstanding
            .is_none(),
        "SA still works"
    );
}

#[test]
fn unanswered_liveness_checks_end_the_sa() {
    let (mut net, id) = established_pair();
    let now = net.now;
    net.filter = Box::new(|_| false);
    assert!(net.nodes[0].ep.send_liveness(now, id));
    for _ in 0..20 {
        net.advance(Duration::from_secs(30));
    }
    assert_eq!(net.nodes[0].ep.ike_sa_count(), 0);
    assert!(net.deletes(0).len() == 1, "Child SA removed with it");
}

#[test]
fn kernel_soft_expire_makes_the_gateway_rekey_the_child_sa() {
    let (mut net, id) = established_pair();
    let now = net.now;
    let spi_in = net.nodes[1].ep.list(now)[0].children[0].spi_in;
    net.nodes[1].ep.handle_child_expire(now, spi_in, false);
    net.run();
    let g = net.installs(1);
    assert_eq!(g.len(), 2);
    assert_eq!(g[1].replaces.map(|r| r.0), Some(spi_in));
    let c = net.installs(0);
    assert_eq!(c.len(), 2, "the client installed the rekeyed Child SA too");
    assert_eq!(c[1].outbound.keys, g[1].inbound.keys);
    assert_eq!(c[1].inbound.keys, g[1].outbound.keys);
    // The gateway deleted the old Child SA once the new one was up.
    assert_eq!(net.nodes[1].ep.list(now)[0].children.len(), 1);
    assert_eq!(net.nodes[0].ep.ike_sa(id).unwrap().children.len(), 1);
    assert_eq!(
        net.nodes[1].ep.list(now)[0].children[0].spi_in,
        g[1].inbound.spi
    );
}

#[test]
fn rekey_time_makes_the_gateway_rekey_the_ike_sa() {
    let mut net = Net::new();
    net.add(
        client_config(client_conn(KeGroup::CURVE25519, "client.example"), PSK),
        "192.0.2.2:500",
    );
    let mut gw = gateway_conn(&[KeGroup::CURVE25519], None);
    gw.rekey_time = Some(Duration::from_secs(60));
    net.add(gateway_config(gw), "198.51.100.1:500");
    let (l, r, now) = (net.nodes[0].addr, net.nodes[1].addr, net.now);
    let old = net.nodes[0]
        .ep
        .initiate(now, "home", l, r, InitiatorOptions::default())
        .unwrap();
    net.run();
    let gw_old = net.nodes[1].ep.list(now)[0].id;
    net.advance(Duration::from_secs(61));
    let now = net.now;
    let g = net.nodes[1].ep.list(now);
    assert_eq!(g.len(), 1, "old IKE SA deleted after the rekey");
    assert_ne!(g[0].id, gw_old);
    assert_eq!(g[0].children.len(), 1, "Child SA inherited");
    let c = net.nodes[0].ep.list(now);
    assert_eq!(c.len(), 1);
    assert_ne!(c[0].id, old);
    assert!(net.nodes[0].ep.send_liveness(now, c[0].id));
    net.run();
    assert!(
        net.nodes[0]
            .ep
            .ike_sa(c[0].id)
            .unwrap()
            .msgids
            .outstanding
            .is_none()
    );
}

#[test]
fn simultaneous_child_sa_rekeys_leave_exactly_one_pair() {
    let (mut net, id) = established_pair();
    let now = net.now;
    let c_old = net.nodes[0].ep.ike_sa(id).unwrap().children[0].spi_in;
    let g_old = net.nodes[1].ep.list(now)[0].children[0].spi_in;
    // Both sides start rekeying the same Child SA before either request arrives.
    assert!(net.nodes[0].ep.create_child(now, id, Some(c_old)));
    net.nodes[1].ep.handle_child_expire(now, g_old, false);
    net.run();
    let c = net.nodes[0].ep.ike_sa(id).unwrap().children.clone();
    let gid = net.nodes[1].ep.list(now)[0].id;
    let g = net.nodes[1].ep.ike_sa(gid).unwrap().children.clone();
    assert_eq!(c.len(), 1, "client kept one Child SA: {c:#?}");
    assert_eq!(g.len(), 1, "gateway kept one Child SA");
    assert_ne!(c[0].spi_in, c_old, "the old pair is gone");
    assert_eq!(c[0].spi_in, g[0].spi_out, "both kept the same pair");
    assert_eq!(c[0].keys_out, g[0].keys_in);
    assert!(net.nodes.iter().any(|n| n.effects.iter().any(|e| matches!(
        e,
        Effect::Event(SaEvent::Dropped {
            reason: "simultaneous_rekey_redundant"
        })
    ))));
}

#[test]
fn corrupt_replication_records_are_refused_never_a_panic() {
    let (net, _) = established_pair();
    let now = net.now;
    let gid = net.nodes[1].ep.list(now)[0].id;
    let record = net.nodes[1].ep.export(gid, now).unwrap();
    let mut refused = 0;
    for i in 0..record.len() {
        for v in [0x00, 0x7f, 0xff] {
            let mut r = record.clone();
            r[i] = v;
            if ike::export::read_sa(&r, now).is_err() {
                refused += 1;
            }
        }
    }
    assert!(refused > 0);
    // A time far in the future is still a time; bytes past the record are not.
    let mut r = record.clone();
    let n = r.len();
    r[n - 1] = 1; // expire_at present ...
    r.extend_from_slice(&i64::MAX.to_be_bytes()); // ... and absurdly far away
    assert!(ike::export::read_sa(&r, now).is_ok());
    r.push(0);
    assert!(ike::export::read_sa(&r, now).is_err());
}

#[test]
fn idle_sas_get_liveness_checks_and_dead_peers_are_removed() {
    let mut net = Net::new();
    net.add(
        client_config(client_conn(KeGroup::CURVE25519, "client.example"), PSK),
        "192.0.2.2:500",
    );
    let mut gw = gateway_conn(&[KeGroup::CURVE25519], None);
    gw.dpd_delay = Some(Duration::from_secs(30));
    net.add(gateway_config(gw), "198.51.100.1:500");
    let (l, r, now) = (net.nodes[0].addr, net.nodes[1].addr, net.now);
    net.nodes[0]
        .ep
        .initiate(now, "home", l, r, InitiatorOptions::default())
        .unwrap();
    net.run();
    let deadline = net.nodes[1]
        .ep
        .poll_timeout()
        .expect("a liveness check is scheduled");
    assert_eq!(deadline, now + Duration::from_secs(30));
    let before = net.nodes[1].sent.len();
    net.advance(Duration::from_secs(31));
    assert_eq!(
        net.nodes[1].sent.len(),
        before + 1,
        "one liveness check sent"
    );
    assert_eq!(net.nodes[1].ep.ike_sa_count(), 1, "answered: the SA stays");
    // The client goes away: checks go unanswered and the SA is removed.
    net.filter = Box::new(|f| f.to.ip().to_string() != "192.0.2.2");
    for _ in 0..40 {
        net.advance(Duration::from_secs(15));
    }
    assert_eq!(net.nodes[1].ep.ike_sa_count(), 0);
    assert_eq!(net.deletes(1).len(), 1, "its Child SA removed");
}

#[test]
fn a_gateway_behind_nat_sends_nat_keepalives() {
    let mut net = Net::new();
    net.add(
        client_config(client_conn(KeGroup::CURVE25519, "client.example"), PSK),
        "192.0.2.2:500",
    );
    net.add(
        gateway_config(gateway_conn(&[KeGroup::CURVE25519], None)),
        "198.51.100.1:500",
    );
    // The gateway sits behind a destination NAT: clients dial 203.0.113.1.
    let public: std::net::IpAddr = "203.0.113.1".parse().unwrap();
    let private: std::net::IpAddr = "198.51.100.1".parse().unwrap();
    net.filter = Box::new(move |f| {
        if f.to.ip() == public {
            f.to.set_ip(private);
        }
        if f.from.ip() == private {
            f.from.set_ip(public);
        }
        true
    });
    let now = net.now;
    let l = net.nodes[0].addr;
    let id = net.nodes[0]
        .ep
        .initiate(
            now,
            "home",
            l,
            std::net::SocketAddr::new(public, 500),
            InitiatorOptions::default(),
        )
        .unwrap();
    net.run();
    let gid = net.nodes[1].ep.list(now)[0].id;
    assert!(
        net.nodes[1].ep.ike_sa(gid).unwrap().nat_local,
        "the gateway sees its own NAT"
    );
    assert!(!net.nodes[0].ep.ike_sa(id).unwrap().nat_local);
    let keepalives = |net: &Net, i: usize| {
        net.nodes[i]
            .effects
            .iter()
            .filter(|e| matches!(e, Effect::NatKeepalive { .. }))
            .count()
    };
    net.advance(Duration::from_secs(19));
    assert_eq!(keepalives(&net, 1), 0);
    net.advance(Duration::from_secs(2));
    assert_eq!(keepalives(&net, 1), 1, "one keepalive after 20 s");
    net.advance(Duration::from_secs(20));
    assert_eq!(keepalives(&net, 1), 2, "and every 20 s after that");
    assert_eq!(keepalives(&net, 0), 0, "the client is not behind a NAT");
}
