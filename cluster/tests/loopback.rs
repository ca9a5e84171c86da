//! The real driver over TCP on 127.0.0.1: three nodes, each in its own tokio runtime.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::io::{Read as _, Write as _};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use cluster::channel::ChannelConfig;
use cluster::replicator::{Replicator, ReplicatorEvent};
use cluster::replog::{RecordKey, ReplConfig, ReplEvent};
use cluster::{ClusterKey, NodeId};
use tokio::runtime::Runtime;
use tokio::sync::mpsc::UnboundedReceiver;

struct Node {
    rt: Runtime,
    rep: Replicator,
    events: UnboundedReceiver<ReplicatorEvent>,
}

impl Node {
    fn start(name: &NodeId, addrs: &BTreeMap<NodeId, SocketAddr>, key: &ClusterKey) -> Self {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let peers = addrs
            .iter()
            .filter(|(n, _)| *n != name)
            .map(|(n, a)| (n.clone(), *a))
            .collect();
        let mut cfg = ChannelConfig::new(
            name.clone(),
            addrs[name],
            peers,
            key.clone(),
            heartbeat::driver::boot_incarnation(),
        );
        cfg.handshake_timeout = Duration::from_millis(500);
        let (rep, events) = rt
            .block_on(Replicator::start(cfg, ReplConfig::default()))
            .unwrap();
        Self { rt, rep, events }
    }

    fn live_records(&self) -> usize {
        self.rt.block_on(self.rep.stats()).unwrap().0.live_records
    }

    fn connected(&self) -> usize {
        let (_, peers) = self.rt.block_on(self.rep.stats()).unwrap();
        peers.iter().filter(|(_, s)| s.connected).count()
    }

    fn drain_events(&mut self) -> Vec<ReplicatorEvent> {
        let mut v = Vec::new();
        while let Ok(e) = self.events.try_recv() {
            v.push(e);
        }
        v
    }
}

fn wait_for(what: &str, secs: u64, mut f: impl FnMut() -> bool) {
    let end = Instant::now() + Duration::from_secs(secs);
    while !f() {
        assert!(Instant::now() < end, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn addrs(names: &[&str]) -> BTreeMap<NodeId, SocketAddr> {
    names
        .iter()
        .map(|n| {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            (NodeId::new(n).unwrap(), l.local_addr().unwrap())
        })
        .collect()
}

fn key(i: u64) -> RecordKey {
    RecordKey::from_u128(u128::from(i))
}

#[test]
fn three_nodes_replicate_survive_a_kill_and_resync_on_restart() {
    let key_ = ClusterKey::generate();
    let addrs = addrs(&["a", "b", "c"]);
    let names: Vec<NodeId> = addrs.keys().cloned().collect();
    let a = Node::start(&names[0], &addrs, &key_);
    let b = Node::start(&names[1], &addrs, &key_);
    let c = Node::start(&names[2], &addrs, &key_);
    wait_for("full mesh", 10, || {
        [&a, &b, &c].iter().all(|n| n.connected() == 2)
    });

    // 10,000 records from a, the last one acked by everyone.
    let mut last = None;
    for i in 0..10_000u64 {
        let payload = format!("record {i} ").repeat(8).into_bytes();
        last = Some(a.rt.block_on(a.rep.publish(key(i), payload)).unwrap());
    }
    let t = last.unwrap();
    a.rt.block_on(async {
        tokio::time::timeout(Duration::from_secs(30), a.rep.wait_acked(t)).await
    })
    .expect("ack within 30 s")
    .unwrap();
    for n in [&a, &b, &c] {
        assert_eq!(n.live_records(), 10_000);
    }

    // Kill c: drop its whole runtime (sockets and tasks die with it).
    drop(c);
    wait_for("a and b see c go", 15, || {
        a.connected() == 1 && b.connected() == 1
    });
    // Writes while c is away: 1,000 new records and 100 deletes, on a and b.
    for i in 10_000..10_500u64 {
        a.rt.block_on(a.rep.publish(key(i), b"while c was down".to_vec()))
            .unwrap();
        b.rt.block_on(b.rep.publish(key(i + 500), b"from b".to_vec()))
            .unwrap();
    }
    for i in 0..100u64 {
        b.rt.block_on(b.rep.delete(key(i))).unwrap();
    }
    wait_for("a and b agree", 15, || {
        a.live_records() == 10_900 && b.live_records() == 10_900
    });

    // Restart c: a new incarnation with an empty store gets a bulk resync.
    let mut c = Node::start(&names[2], &addrs, &key_);
    wait_for("c resynced", 30, || c.live_records() == 10_900);
    let snap_a = a.rt.block_on(a.rep.snapshot()).unwrap();
    let snap_c = c.rt.block_on(c.rep.snapshot()).unwrap();
    assert_eq!(snap_a, snap_c);
    // The delete reached c (as a tombstone, or already collected everywhere).
    let deleted = c.rt.block_on(c.rep.get(key(5))).unwrap();
    assert!(
        deleted.is_none_or(|r| r.value.is_none()),
        "delete reached c"
    );
    wait_for("c synced with both", 10, || {
        c.rt.block_on(c.rep.is_synced_with_live()).unwrap()
    });
    // Anti-entropy check: the three store digests agree once writes settle.
    wait_for("equal digests", 10, || {
        let d: Vec<u128> = [&a, &b, &c]
            .iter()
            .map(|n| n.rt.block_on(n.rep.stats()).unwrap().0.digest)
            .collect();
        d[0] == d[1] && d[1] == d[2]
    });
    let synced: Vec<NodeId> = c
        .drain_events()
        .into_iter()
        .filter_map(|e| match e {
            ReplicatorEvent::Repl(ReplEvent::PeerSynced(n)) => Some(n),
            _ => None,
        })
        .collect();
    assert_eq!(synced.len(), 2, "{synced:?}");
}

#[test]
fn wrong_cluster_key_is_rejected() {
    let addrs = addrs(&["a", "b"]);
    let names: Vec<NodeId> = addrs.keys().cloned().collect();
    let a = Node::start(&names[0], &addrs, &ClusterKey::generate());
    let b = Node::start(&names[1], &addrs, &ClusterKey::generate());
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(a.connected(), 0);
    assert_eq!(b.connected(), 0);
    let (_, peers) = b.rt.block_on(b.rep.stats()).unwrap();
    assert_eq!(
        peers[0].1.sessions, 0,
        "no session may start with a wrong key"
    );
    // Same setup with the right key connects (the test above can fail).
    drop((a, b));
    let k = ClusterKey::generate();
    let a = Node::start(&names[0], &addrs, &k);
    let b = Node::start(&names[1], &addrs, &k);
    wait_for("connect with the right key", 10, || {
        a.connected() == 1 && b.connected() == 1
    });
}

#[test]
fn garbage_on_the_port_does_not_hurt_the_node() {
    let k = ClusterKey::generate();
    let addrs = addrs(&["a", "b"]);
    let names: Vec<NodeId> = addrs.keys().cloned().collect();
    let a = Node::start(&names[0], &addrs, &k);
    let b = Node::start(&names[1], &addrs, &k);
    wait_for("connected", 10, || a.connected() == 1 && b.connected() == 1);
    let target = addrs[&names[1]];
    let mut junk_conns = Vec::new();
    let mut seed = 0x9e3779b97f4a7c15u64;
    for round in 0..20usize {
        let mut s = std::net::TcpStream::connect(target).unwrap();
        let data: Vec<u8> = match round % 4 {
            // Random bytes.
            0 => (0..round * 97 + 1)
                .map(|_| {
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    seed as u8
                })
                .collect(),
            // A maximal length prefix followed by too little data.
            1 => [&[0xff, 0xff][..], &[0u8; 100][..]].concat(),
            // A zero-length frame.
            2 => vec![0, 0],
            // A plausible-sized first handshake message of zeros.
            _ => [&[0, 48][..], &[0u8; 48][..]].concat(),
        };
        let _ = s.write_all(&data);
        junk_conns.push(s);
    }
    // Every junk connection gets closed (bad data now, or the handshake deadline).
    for mut s in junk_conns {
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut buf = [0u8; 256];
        let closed = loop {
            match s.read(&mut buf) {
                Ok(0) => break true,
                Ok(_) => continue,
                Err(e)
                    if e.kind() == std::io::ErrorKind::WouldBlock
                        || e.kind() == std::io::ErrorKind::TimedOut =>
                {
                    break false;
                }
                Err(_) => break true,
            }
        };
        assert!(closed, "junk connection left open");
    }
    // A flood of idle connections: those over the cap are closed at once, the rest
    // at the handshake deadline (500 ms here).
    let flood: Vec<std::net::TcpStream> = (0..100)
        .map(|_| std::net::TcpStream::connect(target).unwrap())
        .collect();
    let start = Instant::now();
    for mut s in flood {
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut buf = [0u8; 16];
        match s.read(&mut buf) {
            Ok(0) => {}
            Err(e) => assert!(
                !matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ),
                "idle connection left open"
            ),
            Ok(n) => panic!("server sent {n} bytes to an idle client"),
        }
    }
    assert!(
        start.elapsed() < Duration::from_secs(3),
        "{:?}",
        start.elapsed()
    );
    // The real session is untouched and replication still works.
    assert_eq!(b.connected(), 1);
    let t =
        a.rt.block_on(a.rep.publish_acked(key(1), b"still fine".to_vec()))
            .unwrap();
    assert_eq!(t.version.origin, names[0]);
    let got = b.rt.block_on(b.rep.get(key(1))).unwrap().unwrap();
    assert_eq!(got.value.as_deref(), Some(&b"still fine"[..]));
}
