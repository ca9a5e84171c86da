//! N replication logs over a simulated network of reliable, ordered links that can
//! break (TCP semantics: a broken connection loses what was in flight; a new one
//! starts a new session with a bulk resync).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use cluster::NodeId;
use cluster::replog::{Record, RecordKey, ReplConfig, ReplEvent, ReplicationLog, Token};

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

struct Net {
    names: Vec<NodeId>,
    nodes: Vec<ReplicationLog>,
    incarnation: Vec<u64>,
    /// Boots so far, cluster-wide: stands for the wall clock at boot.
    boots: u64,
    up: BTreeSet<(usize, usize)>,
    wires: BTreeMap<(usize, usize), VecDeque<Vec<u8>>>,
    events: Vec<Vec<ReplEvent>>,
    rng: Rng,
    cfg: ReplConfig,
}

impl Net {
    fn new(n: usize, seed: u64) -> Self {
        Self::with_config(n, seed, ReplConfig::default())
    }

    fn with_config(n: usize, seed: u64, cfg: ReplConfig) -> Self {
        let names: Vec<NodeId> = (0..n)
            .map(|i| NodeId::new(&format!("n{i}")).unwrap())
            .collect();
        let nodes = (0..n).map(|i| Self::make(&names, i, &cfg, 1)).collect();
        let mut net = Self {
            names,
            nodes,
            incarnation: vec![1; n],
            boots: 1,
            up: BTreeSet::new(),
            wires: BTreeMap::new(),
            events: vec![Vec::new(); n],
            rng: Rng(seed | 1),
            cfg,
        };
        for a in 0..n {
            for b in a + 1..n {
                net.connect(a, b);
            }
        }
        net
    }

    /// A log whose counters start at its boot "time" (boot number × 10^6 here),
    /// as the replicator does with real boot times.
    fn make(names: &[NodeId], i: usize, cfg: &ReplConfig, boot: u64) -> ReplicationLog {
        let cfg = ReplConfig {
            counter_floor: boot * 1_000_000,
            ..cfg.clone()
        };
        ReplicationLog::new(names[i].clone(), names.iter().cloned(), cfg)
    }

    fn connect(&mut self, a: usize, b: usize) {
        let (a, b) = (a.min(b), a.max(b));
        if !self.up.insert((a, b)) {
            return;
        }
        self.wires.insert((a, b), VecDeque::new());
        self.wires.insert((b, a), VecDeque::new());
        let (na, nb) = (self.names[a].clone(), self.names[b].clone());
        let (ia, ib) = (self.incarnation[a], self.incarnation[b]);
        self.nodes[a].peer_connected(&nb, ib).unwrap();
        self.nodes[b].peer_connected(&na, ia).unwrap();
    }

    fn disconnect(&mut self, a: usize, b: usize) {
        let (a, b) = (a.min(b), a.max(b));
        if !self.up.remove(&(a, b)) {
            return;
        }
        // Whatever was in flight on the dead connection is lost.
        self.wires.remove(&(a, b));
        self.wires.remove(&(b, a));
        let (na, nb) = (self.names[a].clone(), self.names[b].clone());
        self.nodes[a].peer_disconnected(&nb);
        self.nodes[b].peer_disconnected(&na);
    }

    fn partition(&mut self, side: &[usize]) {
        let n = self.nodes.len();
        for a in 0..n {
            for b in a + 1..n {
                if side.contains(&a) != side.contains(&b) {
                    self.disconnect(a, b);
                }
            }
        }
    }

    fn heal(&mut self) {
        let n = self.nodes.len();
        for a in 0..n {
            for b in a + 1..n {
                self.connect(a, b);
            }
        }
    }

    fn restart(&mut self, i: usize) {
        for j in 0..self.nodes.len() {
            if j != i {
                self.disconnect(i, j);
            }
        }
        self.incarnation[i] += 1;
        self.boots += 1;
        self.nodes[i] = Self::make(&self.names, i, &self.cfg, self.boots);
        self.events[i].clear();
    }

    fn idx(&self, n: &NodeId) -> usize {
        self.names.iter().position(|x| x == n).unwrap()
    }

    /// Moves messages: every node's output onto its wires, then delivers a random
    /// number of messages from random wires (order kept within a wire).
    fn step(&mut self) -> bool {
        let mut moved = false;
        for i in 0..self.nodes.len() {
            while let Some((to, msg)) = self.nodes[i].poll_transmit() {
                let j = self.idx(&to);
                self.wires
                    .get_mut(&(i, j))
                    .expect("transmit to a connected peer")
                    .push_back(msg);
                moved = true;
            }
            while let Some(e) = self.nodes[i].poll_event() {
                self.events[i].push(e);
            }
        }
        let busy: Vec<(usize, usize)> = self
            .wires
            .iter()
            .filter(|(_, q)| !q.is_empty())
            .map(|(k, _)| *k)
            .collect();
        for (from, to) in busy {
            let k = 1 + self.rng.below(3);
            for _ in 0..k {
                let Some(msg) = self.wires.get_mut(&(from, to)).unwrap().pop_front() else {
                    break;
                };
                let name = self.names[from].clone();
                self.nodes[to].handle_message(&name, &msg).unwrap();
                moved = true;
            }
        }
        moved
    }

    /// Puts every node's pending output on the wires without delivering anything.
    fn flush(&mut self) {
        for i in 0..self.nodes.len() {
            while let Some((to, msg)) = self.nodes[i].poll_transmit() {
                let j = self.idx(&to);
                self.wires.get_mut(&(i, j)).unwrap().push_back(msg);
            }
            while let Some(e) = self.nodes[i].poll_event() {
                self.events[i].push(e);
            }
        }
    }

    /// Delivers everything queued on the wire `from -> to`.
    fn deliver(&mut self, from: usize, to: usize) {
        let name = self.names[from].clone();
        while let Some(msg) = self.wires.get_mut(&(from, to)).unwrap().pop_front() {
            self.nodes[to].handle_message(&name, &msg).unwrap();
        }
    }

    fn settle(&mut self) {
        for _ in 0..100_000 {
            if !self.step() {
                return;
            }
        }
        panic!("did not settle");
    }

    fn contents(&self, i: usize) -> BTreeMap<RecordKey, Record> {
        self.nodes[i]
            .iter()
            .map(|(k, r)| (k.clone(), r.clone()))
            .collect()
    }

    fn assert_converged(&self, among: &[usize]) {
        let first = self.contents(among[0]);
        for &i in &among[1..] {
            let other = self.contents(i);
            let mut diff: Vec<_> = first
                .iter()
                .filter(|(k, r)| other.get(*k) != Some(*r))
                .map(|(k, r)| (k, Some(r), other.get(k)))
                .collect();
            diff.extend(
                other
                    .iter()
                    .filter(|(k, _)| !first.contains_key(*k))
                    .map(|(k, r)| (k, None, Some(r))),
            );
            assert!(
                diff.is_empty(),
                "node {i} differs from node {}: {diff:?}",
                among[0]
            );
        }
    }
}

fn key(n: u64) -> RecordKey {
    RecordKey::from_u128(u128::from(n))
}

fn random_writes(
    net: &mut Net,
    rounds: usize,
    keys: u64,
) -> BTreeMap<RecordKey, (Token, Option<Vec<u8>>)> {
    let n = net.nodes.len();
    let mut last = BTreeMap::new();
    for r in 0..rounds {
        let i = net.rng.below(n as u64) as usize;
        let k = key(net.rng.below(keys));
        let t = if net.rng.below(10) == 0 {
            let t = net.nodes[i].delete(k.clone());
            (t, None)
        } else {
            let v = format!("{i}:{r}").into_bytes();
            (net.nodes[i].publish(k.clone(), v.clone()).unwrap(), Some(v))
        };
        // Highest version wins, everywhere.
        match last.get(&k) {
            Some((old, _)) if old_version_wins(old, &t.0) => {}
            _ => {
                last.insert(k, t);
            }
        }
        if net.rng.below(4) == 0 {
            net.step();
        }
    }
    last
}

fn old_version_wins(old: &Token, new: &Token) -> bool {
    old.version > new.version
}

fn check_winners(net: &Net, want: &BTreeMap<RecordKey, (Token, Option<Vec<u8>>)>) {
    for i in 0..net.nodes.len() {
        for (k, (t, v)) in want {
            let got = net.nodes[i].get(k).map(<[u8]>::to_vec);
            assert_eq!(&got, v, "node {i} key {k:?}");
            if let Some(r) = net.nodes[i].record(k) {
                assert_eq!(r.version, t.version);
            }
        }
    }
}

#[test]
fn converges_with_2_3_5_nodes_under_concurrent_writes() {
    for (n, seed) in [(2, 11), (3, 22), (5, 33)] {
        let mut net = Net::new(n, seed);
        let want = random_writes(&mut net, 3000, 300);
        net.settle();
        net.assert_converged(&(0..n).collect::<Vec<_>>());
        check_winners(&net, &want);
        // Acks came back for everything: no lag anywhere.
        for i in 0..n {
            for (_, s) in net.nodes[i].all_peer_stats() {
                assert_eq!(s.lag(), 0);
                assert!(s.synced);
            }
        }
    }
}

#[test]
fn queued_updates_of_one_key_are_coalesced() {
    let mut net = Net::new(2, 5);
    net.settle();
    for v in 0..1000u32 {
        net.nodes[0]
            .publish(key(1), v.to_be_bytes().to_vec())
            .unwrap();
    }
    let lag = net.nodes[0].peer_stats(&net.names[1]).unwrap();
    assert_eq!(lag.queued, 1, "1,000 updates of one key queue once");
    let before = lag.records_sent;
    net.settle();
    let after = net.nodes[0].peer_stats(&net.names[1]).unwrap().records_sent;
    assert_eq!(after - before, 1);
    assert_eq!(net.nodes[1].get(&key(1)), Some(&999u32.to_be_bytes()[..]));
}

#[test]
fn inflight_window_is_respected() {
    let cfg = ReplConfig {
        max_inflight: 100,
        ..ReplConfig::default()
    };
    let mut net = Net::with_config(2, 6, cfg);
    net.settle();
    for i in 0..1000 {
        net.nodes[0].publish(key(i), vec![1; 10]).unwrap();
    }
    let mut sent = 0;
    while let Some((_, msg)) = net.nodes[0].poll_transmit() {
        sent += 1;
        net.wires.get_mut(&(0, 1)).unwrap().push_back(msg);
    }
    assert!(sent >= 1);
    let s = net.nodes[0].peer_stats(&net.names[1]).unwrap();
    assert_eq!(s.inflight, 100);
    assert_eq!(s.queued, 900);
    net.settle();
    assert_eq!(net.nodes[1].len(), 1000);
}

#[test]
fn inflight_bytes_are_bounded() {
    let cfg = ReplConfig {
        max_inflight_bytes: 200_000,
        ..ReplConfig::default()
    };
    let mut net = Net::with_config(2, 6, cfg);
    net.settle();
    for i in 0..100 {
        net.nodes[0].publish(key(i), vec![1; 30_000]).unwrap();
    }
    let mut bytes = 0;
    while let Some((_, msg)) = net.nodes[0].poll_transmit() {
        bytes += msg.len();
        net.wires.get_mut(&(0, 1)).unwrap().push_back(msg);
    }
    // Stops at the first record that reaches the limit: under limit + one record.
    assert!(bytes < 200_000 + 31_000, "{bytes}");
    assert!(bytes >= 200_000);
    net.settle();
    assert_eq!(net.nodes[1].len(), 100);
}

#[test]
fn ack_means_every_live_peer_applied_it() {
    let mut net = Net::new(3, 7);
    net.settle();
    let t = net.nodes[0].publish(key(9), b"sa".to_vec()).unwrap();
    net.nodes[0].track(t.clone());
    assert!(!net.nodes[0].is_acked_by_all_live(&t));
    // Deliver to node 1 only: hold the 0->2 wire.
    let held = net.wires.get_mut(&(0, 2)).unwrap().split_off(0);
    let _ = held;
    while let Some((to, msg)) = net.nodes[0].poll_transmit() {
        let j = net.idx(&to);
        if j == 1 {
            net.nodes[1]
                .handle_message(&net.names[0].clone(), &msg)
                .unwrap();
        } else {
            net.wires.get_mut(&(0, j)).unwrap().push_back(msg);
        }
    }
    let (to, ack) = net.nodes[1].poll_transmit().unwrap();
    assert_eq!(to, net.names[0]);
    net.nodes[0]
        .handle_message(&net.names[1].clone(), &ack)
        .unwrap();
    assert!(net.nodes[0].is_acked_by(&net.names[1], &t));
    assert!(
        !net.nodes[0].is_acked_by_all_live(&t),
        "node 2 has not applied it yet"
    );
    assert!(net.nodes[0].poll_event().is_none());
    // Node 2 gets it.
    net.settle();
    assert!(net.nodes[0].is_acked_by_all_live(&t));
    let acked: Vec<_> = net.events[0]
        .iter()
        .filter(|e| matches!(e, ReplEvent::Acked(x) if *x == t))
        .collect();
    assert_eq!(acked.len(), 1);

    // With the heartbeat saying only {0, 1} are live, node 1's ack is enough.
    let live: BTreeSet<NodeId> = [net.names[0].clone(), net.names[1].clone()].into();
    net.nodes[0].set_live_members(&live);
    net.disconnect(0, 2);
    let t2 = net.nodes[0].publish(key(10), b"x".to_vec()).unwrap();
    net.nodes[0].track(t2.clone());
    net.settle();
    assert!(net.nodes[0].is_acked_by_all_live(&t2));
    // A live member that is disconnected blocks the ack until it resyncs.
    let all: BTreeSet<NodeId> = net.names.iter().cloned().collect();
    net.nodes[0].set_live_members(&all);
    let t3 = net.nodes[0].publish(key(11), b"y".to_vec()).unwrap();
    net.nodes[0].track(t3.clone());
    net.settle();
    assert!(!net.nodes[0].is_acked_by_all_live(&t3));
    net.connect(0, 2);
    net.settle();
    assert!(net.nodes[0].is_acked_by_all_live(&t3));
    assert!(net.events[0].contains(&ReplEvent::Acked(t3)));
}

#[test]
fn partition_and_heal_converge_to_the_highest_versions() {
    let mut net = Net::new(5, 8);
    let mut want = random_writes(&mut net, 500, 100);
    net.settle();
    net.partition(&[0, 1]);
    // Both sides keep writing, including the same keys.
    let more = random_writes(&mut net, 1500, 100);
    net.settle();
    assert_ne!(
        net.nodes[0].stats().digest,
        net.nodes[2].stats().digest,
        "diverged sides must have different digests"
    );
    net.assert_converged(&[0, 1]);
    net.assert_converged(&[2, 3, 4]);
    net.heal();
    net.settle();
    net.assert_converged(&[0, 1, 2, 3, 4]);
    for (k, t) in more {
        match want.get(&k) {
            Some(old) if old.0.version > t.0.version => {}
            _ => {
                want.insert(k, t);
            }
        }
    }
    check_winners(&net, &want);
}

#[test]
fn restarted_node_gets_a_bulk_resync_and_a_reconnect_only_a_delta() {
    let mut net = Net::new(3, 9);
    for i in 0..1000 {
        net.nodes[(i % 3) as usize]
            .publish(key(i), vec![(i % 251) as u8; 40])
            .unwrap();
    }
    net.settle();
    net.restart(2);
    assert_eq!(net.nodes[2].len(), 0);
    net.connect(0, 2);
    net.connect(1, 2);
    net.settle();
    net.assert_converged(&[0, 1, 2]);
    let synced: Vec<_> = net.events[2]
        .iter()
        .filter(|e| matches!(e, ReplEvent::PeerSynced(_)))
        .collect();
    assert_eq!(synced.len(), 2);
    assert!(net.nodes[2].is_synced_with_live());
    // Both peers sent their whole store to the new incarnation.
    let s0 = net.nodes[0].peer_stats(&net.names[2]).unwrap();
    assert!(s0.records_sent >= 1000, "{s0:?}");

    // Node 1 loses its connections (no restart) while node 0 writes 10 records.
    // The first reconnect may resend records node 0 got from node 2 (it cannot know
    // node 1 has them too); after that node 0 knows node 1's whole store.
    net.disconnect(0, 1);
    net.connect(0, 1);
    net.settle();
    net.disconnect(0, 1);
    net.disconnect(1, 2);
    let before = net.nodes[0].peer_stats(&net.names[1]).unwrap().records_sent;
    for i in 5000..5010 {
        net.nodes[0].publish(key(i), b"new".to_vec()).unwrap();
    }
    net.connect(0, 1);
    net.connect(1, 2);
    net.settle();
    net.assert_converged(&[0, 1, 2]);
    let after = net.nodes[0].peer_stats(&net.names[1]).unwrap().records_sent;
    assert_eq!(
        after - before,
        10,
        "same incarnation: only what it missed is resent"
    );
}

#[test]
fn tombstones_are_collected_once_everyone_has_them() {
    let mut net = Net::new(3, 10);
    net.nodes[0].publish(key(1), b"a".to_vec()).unwrap();
    net.settle();
    net.nodes[0].delete(key(1));
    net.settle();
    for i in 0..3 {
        assert_eq!(net.nodes[i].get(&key(1)), None);
        assert_eq!(net.nodes[i].stats().tombstones, 0, "node {i}");
        assert!(net.nodes[i].record(&key(1)).is_none());
    }
    // With a configured peer away, the tombstone is kept so it cannot resurrect.
    net.nodes[1].publish(key(2), b"b".to_vec()).unwrap();
    net.settle();
    net.disconnect(1, 2);
    net.disconnect(0, 2);
    net.nodes[1].delete(key(2));
    net.settle();
    assert_eq!(net.nodes[1].stats().tombstones, 1);
    net.heal();
    net.settle();
    for i in 0..3 {
        assert_eq!(
            net.nodes[i].get(&key(2)),
            None,
            "node {i}: deleted record came back"
        );
        assert_eq!(net.nodes[i].stats().tombstones, 0);
    }
}

#[test]
fn garbage_and_protocol_violations_are_errors_not_panics() {
    let mut net = Net::new(2, 12);
    net.settle();
    let from = net.names[1].clone();
    let mut rng = Rng(99);
    for n in 0..500 {
        let mut junk: Vec<u8> = (0..n).map(|_| rng.next() as u8).collect();
        if let Some(b) = junk.first_mut() {
            *b = [1, 2, 3, 4][n % 4];
        }
        let _ = net.nodes[0].handle_message(&from, &junk);
    }
    // Ack of something never sent.
    let mut ack = vec![2u8];
    ack.extend_from_slice(&1000u64.to_be_bytes());
    assert!(net.nodes[0].handle_message(&from, &ack).is_err());
    // Unknown node.
    let stranger = NodeId::new("zz").unwrap();
    assert!(net.nodes[0].handle_message(&stranger, &ack).is_err());
    assert!(net.nodes[0].publish(key(1), vec![0; 70_000]).is_err());
}

/// Random writes, deletes, link breaks, partitions and restarts; after healing,
/// every node holds the same records, and every acked token is held by everyone.
#[test]
fn chaos_converges_for_many_seeds() {
    for seed in 1..=100u64 {
        let n = 2 + (seed % 4) as usize;
        let mut net = Net::new(n, seed * 7919);
        let mut tracked: Vec<(usize, Token)> = Vec::new();
        for round in 0..400 {
            let i = net.rng.below(n as u64) as usize;
            match net.rng.below(100) {
                0..=59 => {
                    let k = key(net.rng.below(50));
                    let t = net.nodes[i]
                        .publish(k, format!("{seed}/{round}").into_bytes())
                        .unwrap();
                    if net.rng.below(5) == 0 {
                        net.nodes[i].track(t.clone());
                        tracked.push((i, t));
                    }
                }
                60..=69 => {
                    let k = key(net.rng.below(50));
                    net.nodes[i].delete(k);
                }
                70..=79 => {
                    let j = net.rng.below(n as u64) as usize;
                    if i != j {
                        net.disconnect(i, j);
                    }
                }
                80..=84 => {
                    let side: Vec<usize> = (0..n).filter(|_| net.rng.below(2) == 0).collect();
                    net.partition(&side);
                }
                85..=87 => {
                    net.restart(i);
                    tracked.retain(|(o, _)| *o != i);
                }
                _ => net.heal(),
            }
            for _ in 0..net.rng.below(4) {
                net.step();
            }
        }
        net.heal();
        net.settle();
        net.assert_converged(&(0..n).collect::<Vec<_>>());
        for (o, t) in &tracked {
            // Every tracked write resolved: acked by all live peers, or overwritten
            // by another node first. (Whether it is *still* known to be acked
            // depends on later restarts: a restarted peer's knowledge starts over.)
            let acked = net.events[*o].contains(&ReplEvent::Acked(t.clone()));
            let superseded = net.events[*o].contains(&ReplEvent::Superseded(t.clone()));
            assert!(acked || superseded, "seed {seed}: {t:?} never resolved");
            // Nothing went backwards: every node holds this version or a newer one
            // (or nothing, if a deletion was collected everywhere).
            for j in 0..n {
                if let Some(r) = net.nodes[j].record(&t.key) {
                    assert!(
                        r.version >= t.version,
                        "seed {seed}: node {j} is behind a tracked write"
                    );
                }
            }
        }
        for i in 0..n {
            assert!(net.nodes[i].is_synced_with_live(), "seed {seed} node {i}");
            for (_, s) in net.nodes[i].all_peer_stats() {
                assert_eq!(s.lag(), 0, "seed {seed}");
            }
        }
    }
}

#[test]
fn late_copies_of_a_collected_tombstone_do_not_linger() {
    let mut net = Net::new(3, 13);
    net.nodes[1].publish(key(1), b"x".to_vec()).unwrap();
    net.settle();
    net.disconnect(0, 2);
    net.disconnect(1, 2);
    net.nodes[1].delete(key(1));
    net.settle();
    assert_eq!(net.nodes[0].stats().tombstones, 1);
    assert_eq!(
        net.nodes[1].stats().tombstones,
        1,
        "kept: node 2 has not seen it"
    );
    // Node 2 comes back; both 0 and 1 queue their resync (with the tombstone) to it.
    net.connect(0, 2);
    net.connect(1, 2);
    net.flush();
    // Node 1's resync arrives first, node 2 acks, node 1 collects and says Forget...
    net.deliver(1, 2);
    net.flush();
    net.deliver(2, 1);
    net.flush();
    assert_eq!(net.nodes[1].stats().tombstones, 0);
    net.deliver(1, 2);
    assert_eq!(net.nodes[2].stats().tombstones, 0);
    // ...and only then node 0's resync, carrying the old tombstone, arrives.
    net.deliver(0, 2);
    assert_eq!(net.nodes[2].stats().tombstones, 0, "late copy stored again");
    net.settle();
    for i in 0..3 {
        assert_eq!(net.nodes[i].stats().tombstones, 0, "node {i}");
    }
    net.assert_converged(&[0, 1, 2]);
}

#[test]
fn a_write_that_only_reached_one_peer_is_relayed_when_its_writer_dies() {
    let mut net = Net::new(3, 14);
    net.settle();
    net.nodes[0]
        .publish(key(7), b"last words".to_vec())
        .unwrap();
    net.flush();
    // Node 1 gets it; node 0 dies before its message to node 2 is delivered.
    net.deliver(0, 1);
    net.restart(0);
    net.settle();
    assert_eq!(net.nodes[2].get(&key(7)), Some(&b"last words"[..]));
    // And the restarted node 0 gets it back on reconnect.
    net.heal();
    net.settle();
    net.assert_converged(&[0, 1, 2]);
}
