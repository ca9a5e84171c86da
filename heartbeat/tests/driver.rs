//! The tokio driver over real UDP sockets on 127.0.0.1.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use heartbeat::driver::{Heartbeat, boot_incarnation};
use heartbeat::{ClusterKey, Detector, DetectorConfig, MembershipEvent, NodeId};
use tokio::net::UdpSocket;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_over_loopback() {
    let key = ClusterKey::generate();
    let names: Vec<NodeId> = ["a", "b", "c"]
        .iter()
        .map(|n| NodeId::new(n).unwrap())
        .collect();
    let mut sockets = Vec::new();
    for _ in 0..3 {
        sockets.push(UdpSocket::bind("127.0.0.1:0").await.unwrap());
    }
    let addrs: Vec<_> = sockets.iter().map(|s| s.local_addr().unwrap()).collect();
    let mut nodes = Vec::new();
    for (i, sock) in sockets.into_iter().enumerate() {
        let peers: BTreeMap<NodeId, _> = (0..3)
            .filter(|j| *j != i)
            .map(|j| (names[j].clone(), addrs[j]))
            .collect();
        let mut cfg = DetectorConfig::new(names[i].clone(), peers.keys().cloned().collect());
        // Short timers keep the test fast; 5 x 30 ms tolerates a loaded CI machine.
        cfg.interval = Duration::from_millis(30);
        cfg.multiplier = 5;
        let det = Detector::new(cfg, &key, boot_incarnation(), Instant::now());
        nodes.push(Heartbeat::spawn(sock, det, peers).unwrap());
    }
    let all: BTreeSet<NodeId> = names.iter().cloned().collect();
    let deadline = Instant::now() + Duration::from_secs(5);
    while nodes.iter().any(|(h, _)| h.membership().live != all) {
        assert!(Instant::now() < deadline, "no convergence");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // Garbage to a node's port is dropped and counted, the node keeps going.
    let junk = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    for n in 0..50u8 {
        junk.send_to(&vec![n; usize::from(n) * 7], addrs[0])
            .await
            .unwrap();
    }
    // Stop c: a and b see it go.
    let (c, _) = nodes.pop().unwrap();
    drop(c);
    let stopped = Instant::now();
    let (a, mut a_events) = nodes.remove(0);
    loop {
        let ev = tokio::time::timeout(Duration::from_secs(5), a_events.recv())
            .await
            .unwrap()
            .unwrap();
        // (A starved scheduler may make others flap; wait for c specifically.)
        if let MembershipEvent::MemberDown { node, view, .. } = ev
            && node == names[2]
        {
            assert!(!view.live.contains(&names[2]));
            break;
        }
    }
    assert!(stopped.elapsed() < Duration::from_secs(2));
    // b leaves on purpose: a drops it at once, not after the detection time.
    let (b, _) = nodes.remove(0);
    let left = Instant::now();
    b.leave();
    loop {
        let ev = tokio::time::timeout(Duration::from_secs(5), a_events.recv())
            .await
            .unwrap()
            .unwrap();
        if let MembershipEvent::MemberDown { node, reason, view } = ev
            && node == names[1]
        {
            assert_eq!(reason, heartbeat::DownReason::PeerLeft);
            assert_eq!(view.live, BTreeSet::from([names[0].clone()]));
            break;
        }
    }
    // The reason (PeerLeft, not DetectionTimeout) proves it was the announcement;
    // the bound is loose for loaded CI machines.
    assert!(
        left.elapsed() < Duration::from_secs(1),
        "{:?}",
        left.elapsed()
    );
    let s = a.stats();
    assert!(s.malformed + s.bad_mac >= 49, "{s:?}");
    assert!(s.accepted > 4, "{s:?}");
}
