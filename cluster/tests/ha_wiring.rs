//! Heartbeat + replicator wired as the gateway will wire them: membership views
//! drive which peers `sync = "ack"` waits for. Real UDP and TCP on 127.0.0.1.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use cluster::channel::ChannelConfig;
use cluster::replicator::Replicator;
use cluster::replog::{RecordKey, ReplConfig};
use cluster::{ClusterKey, NodeId};
use heartbeat::driver::{Heartbeat, boot_incarnation};
use heartbeat::{Detector, DetectorConfig, MembershipEvent};
use tokio::runtime::Runtime;

struct Node {
    rt: Runtime,
    hb: Heartbeat,
    rep: Arc<Replicator>,
}

fn start(name: &NodeId, addrs: &BTreeMap<NodeId, SocketAddr>, key: &ClusterKey) -> Node {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let incarnation = boot_incarnation();
    let peers: BTreeMap<NodeId, SocketAddr> = addrs
        .iter()
        .filter(|(n, _)| *n != name)
        .map(|(n, a)| (n.clone(), *a))
        .collect();
    let (hb, rep) = rt.block_on(async {
        // Same address and port: UDP for the heartbeat, TCP for the channel.
        let sock = tokio::net::UdpSocket::bind(addrs[name]).await.unwrap();
        let mut dcfg = DetectorConfig::new(name.clone(), peers.keys().cloned().collect());
        dcfg.interval = Duration::from_millis(20);
        let det = Detector::new(dcfg, key, incarnation, Instant::now());
        let (hb, mut hb_events) = Heartbeat::spawn(sock, det, peers.clone()).unwrap();
        let ccfg = ChannelConfig::new(name.clone(), addrs[name], peers, key.clone(), incarnation);
        let (rep, _events) = Replicator::start(ccfg, ReplConfig::default())
            .await
            .unwrap();
        let rep = Arc::new(rep);
        rep.set_live_members(hb.membership().live).unwrap();
        let r = rep.clone();
        tokio::spawn(async move {
            while let Some(ev) = hb_events.recv().await {
                let view = match ev {
                    MembershipEvent::MemberUp { view, .. }
                    | MembershipEvent::MemberDown { view, .. } => view,
                };
                if r.set_live_members(view.live).is_err() {
                    return;
                }
            }
        });
        (hb, rep)
    });
    Node { rt, hb, rep }
}

#[test]
fn ack_waits_for_live_members_and_stops_waiting_for_dead_ones() {
    let key = ClusterKey::generate();
    let addrs: BTreeMap<NodeId, SocketAddr> = ["a", "b", "c"]
        .iter()
        .map(|n| {
            // A port free for both TCP and UDP.
            loop {
                let t = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
                let addr = t.local_addr().unwrap();
                if std::net::UdpSocket::bind(addr).is_ok() {
                    break (NodeId::new(n).unwrap(), addr);
                }
            }
        })
        .collect();
    let names: Vec<NodeId> = addrs.keys().cloned().collect();
    let a = start(&names[0], &addrs, &key);
    let b = start(&names[1], &addrs, &key);
    let c = start(&names[2], &addrs, &key);
    let all: BTreeSet<NodeId> = names.iter().cloned().collect();
    let end = Instant::now() + Duration::from_secs(10);
    while [&a, &b, &c].iter().any(|n| {
        n.hb.membership().live != all
            || n.rt
                .block_on(n.rep.stats())
                .unwrap()
                .1
                .iter()
                .any(|(_, s)| !s.connected)
    }) {
        assert!(Instant::now() < end, "cluster did not form");
        std::thread::sleep(Duration::from_millis(10));
    }
    // All live: an acked write is on every node when the ack returns.
    let t =
        a.rt.block_on(
            a.rep
                .publish_acked(RecordKey::from_u128(1), b"one".to_vec()),
        )
        .unwrap();
    for n in [&b, &c] {
        let r = n.rt.block_on(n.rep.get(t.key.clone())).unwrap().unwrap();
        assert_eq!(r.version, t.version);
    }

    // c dies. Until the heartbeat declares it down, acks wait for it; then they don't.
    drop(c);
    let t0 = Instant::now();
    let t = a.rt.block_on(async {
        tokio::time::timeout(
            Duration::from_secs(5),
            a.rep
                .publish_acked(RecordKey::from_u128(2), b"two".to_vec()),
        )
        .await
    });
    let waited = t0.elapsed();
    let t = t
        .expect("ack must complete once c is declared down")
        .unwrap();
    let live = a.hb.membership().live;
    assert!(
        !live.contains(&names[2]),
        "ack returned while c was still counted live"
    );
    assert!(waited < Duration::from_secs(1), "{waited:?}");
    let r = b.rt.block_on(b.rep.get(t.key.clone())).unwrap().unwrap();
    assert_eq!(r.value.as_deref(), Some(&b"two"[..]));
}
