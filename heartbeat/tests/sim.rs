//! Heartbeat detectors on a virtual clock over a simulated network.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use heartbeat::{
    ClusterKey, Detector, DetectorConfig, DownReason, MembershipEvent, NodeId, SessionState,
};

const MS: Duration = Duration::from_millis(1);

type DropFn = Box<dyn FnMut(usize, usize, Instant) -> bool>;

struct Sim {
    now: Instant,
    key: ClusterKey,
    names: Vec<NodeId>,
    nodes: Vec<Option<Detector>>,
    interval: Duration,
    mult: u8,
    latency: Duration,
    inflight: Vec<(Instant, usize, usize, Vec<u8>)>,
    drop: DropFn,
    /// (at, from, to, bytes) of every delivered datagram.
    delivered: Vec<(Instant, usize, usize, Vec<u8>)>,
    events: Vec<(Instant, usize, MembershipEvent)>,
}

impl Sim {
    fn new(n: usize, interval: Duration, mult: u8) -> Self {
        let names: Vec<NodeId> = (0..n)
            .map(|i| NodeId::new(&format!("gw{i}")).unwrap())
            .collect();
        let mut s = Self {
            now: Instant::now(),
            key: ClusterKey::from_bytes([7; 32]),
            names,
            nodes: Vec::new(),
            interval,
            mult,
            latency: MS,
            inflight: Vec::new(),
            drop: Box::new(|_, _, _| false),
            delivered: Vec::new(),
            events: Vec::new(),
        };
        for i in 0..n {
            let d = s.make(i, 1000 + i as u64);
            s.nodes.push(Some(d));
        }
        s
    }

    fn make(&self, i: usize, incarnation: u64) -> Detector {
        let peers = self
            .names
            .iter()
            .filter(|p| **p != self.names[i])
            .cloned()
            .collect();
        let mut cfg = DetectorConfig::new(self.names[i].clone(), peers);
        cfg.interval = self.interval;
        cfg.multiplier = self.mult;
        Detector::new(cfg, &self.key, incarnation, self.now)
    }

    fn pump(&mut self) {
        for i in 0..self.nodes.len() {
            let Some(d) = self.nodes[i].as_mut() else {
                continue;
            };
            d.handle_timeout(self.now);
            while let Some(t) = d.poll_transmit(self.now) {
                let to = self.names.iter().position(|x| *x == t.to).unwrap();
                if !(self.drop)(i, to, self.now) {
                    self.inflight
                        .push((self.now + self.latency, i, to, t.payload));
                }
            }
            while let Some(e) = d.poll_event() {
                self.events.push((self.now, i, e));
            }
        }
    }

    fn run_until(&mut self, end: Instant) {
        loop {
            let now = self.now;
            let due: Vec<_> = {
                let (due, rest): (Vec<_>, Vec<_>) =
                    self.inflight.drain(..).partition(|(at, ..)| *at <= now);
                self.inflight = rest;
                due
            };
            for (_, from, to, bytes) in due {
                if let Some(d) = self.nodes[to].as_mut() {
                    let _ = d.handle_datagram(now, &bytes);
                    self.delivered.push((now, from, to, bytes));
                }
            }
            self.pump();
            let next = self
                .inflight
                .iter()
                .map(|(at, ..)| *at)
                .chain(self.nodes.iter().flatten().filter_map(|d| d.poll_timeout()))
                .min();
            match next {
                Some(t) if t <= end => self.now = t.max(now),
                _ => {
                    self.now = end;
                    return;
                }
            }
        }
    }

    fn run_for(&mut self, d: Duration) {
        let end = self.now + d;
        self.run_until(end);
    }

    fn live(&self, i: usize) -> BTreeSet<NodeId> {
        self.nodes[i].as_ref().unwrap().membership().live.clone()
    }

    fn all(&self, idx: &[usize]) -> BTreeSet<NodeId> {
        idx.iter().map(|i| self.names[*i].clone()).collect()
    }

    fn downs(&self, at: usize, node: usize) -> Vec<(Instant, DownReason)> {
        self.events
            .iter()
            .filter_map(|(t, i, e)| match e {
                MembershipEvent::MemberDown {
                    node: n, reason, ..
                } if *i == at && *n == self.names[node] => Some((*t, *reason)),
                _ => None,
            })
            .collect()
    }

    fn ups(&self, at: usize, node: usize) -> Vec<Instant> {
        self.events
            .iter()
            .filter_map(|(t, i, e)| match e {
                MembershipEvent::MemberUp { node: n, .. } if *i == at && *n == self.names[node] => {
                    Some(*t)
                }
                _ => None,
            })
            .collect()
    }

    fn last_delivery(&self, from: usize, to: usize) -> Instant {
        self.delivered
            .iter()
            .rev()
            .find(|(_, f, t, _)| *f == from && *t == to)
            .map(|x| x.0)
            .unwrap()
    }
}

fn check_detection(interval: Duration, mult: u8) {
    let mut sim = Sim::new(2, interval, mult);
    sim.run_for(interval * 10);
    assert_eq!(sim.live(0), sim.all(&[0, 1]));
    assert_eq!(sim.live(1), sim.all(&[0, 1]));
    // Kill node 1 at an arbitrary phase.
    sim.run_for(interval / 3);
    let killed = sim.now;
    sim.nodes[1] = None;
    sim.run_for(interval * (u32::from(mult) + 3));
    let downs = sim.downs(0, 1);
    assert_eq!(downs.len(), 1, "{downs:?}");
    let (at, reason) = downs[0];
    assert_eq!(reason, DownReason::DetectionTimeout);
    let last = sim.last_delivery(1, 0);
    assert_eq!(
        at - last,
        interval * u32::from(mult),
        "detection counts from the last packet"
    );
    let after_kill = at - killed;
    let m = u32::from(mult);
    assert!(
        after_kill >= interval * (m - 1) && after_kill <= interval * m + interval,
        "detected {after_kill:?} after death, interval {interval:?} x {mult}"
    );
    assert_eq!(sim.live(0), sim.all(&[0]));
}

#[test]
fn detection_time_default_and_tuned() {
    check_detection(Duration::from_millis(100), 3);
    check_detection(Duration::from_millis(50), 5);
    check_detection(Duration::from_millis(10), 2);
}

#[test]
fn single_losses_do_not_flap() {
    let mut sim = Sim::new(3, Duration::from_millis(100), 3);
    sim.run_for(Duration::from_secs(1));
    let epochs: Vec<u64> = (0..3)
        .map(|i| sim.nodes[i].as_ref().unwrap().membership().epoch)
        .collect();
    assert_eq!(epochs, vec![2, 2, 2]);
    // From now on drop every other datagram on every link (50 % loss, never two in a row).
    let mut count = [[0u64; 3]; 3];
    sim.drop = Box::new(move |f, t, _| {
        count[f][t] += 1;
        count[f][t] % 2 == 0
    });
    sim.run_for(Duration::from_secs(30));
    for i in 0..3 {
        assert_eq!(sim.live(i), sim.all(&[0, 1, 2]));
        assert_eq!(
            sim.nodes[i].as_ref().unwrap().membership().epoch,
            2,
            "node {i} flapped"
        );
    }
    assert!(
        sim.events
            .iter()
            .all(|(.., e)| matches!(e, MembershipEvent::MemberUp { .. }))
    );
}

#[test]
fn two_losses_in_a_row_are_tolerated_three_are_not() {
    let mut sim = Sim::new(2, Duration::from_millis(100), 3);
    sim.run_for(Duration::from_secs(1));
    // Drop 1->0 for just under two intervals: at most two heartbeats lost.
    let start = sim.now;
    sim.drop =
        Box::new(move |f, _, at| f == 1 && at >= start && at < start + Duration::from_millis(190));
    sim.run_for(Duration::from_secs(2));
    assert!(sim.downs(0, 1).is_empty());
    // Now drop four intervals' worth: that is a real failure.
    let start = sim.now;
    sim.drop =
        Box::new(move |f, _, at| f == 1 && at >= start && at < start + Duration::from_millis(400));
    sim.run_for(Duration::from_secs(2));
    assert_eq!(sim.downs(0, 1).len(), 1);
    // ...and it comes back once heartbeats flow again.
    assert_eq!(sim.live(0), sim.all(&[0, 1]));
}

#[test]
fn asymmetric_loss_takes_the_member_out_on_both_sides() {
    let mut sim = Sim::new(2, Duration::from_millis(100), 3);
    sim.run_for(Duration::from_secs(1));
    assert_eq!(sim.live(0), sim.all(&[0, 1]));
    // 0 -> 1 is cut; 1 -> 0 still works.
    let cut = sim.now;
    sim.drop = Box::new(|f, t, _| f == 0 && t == 1);
    sim.run_for(Duration::from_secs(2));
    let d1 = sim.downs(1, 0);
    let d0 = sim.downs(0, 1);
    assert_eq!(d1.len(), 1);
    assert_eq!(d1[0].1, DownReason::DetectionTimeout);
    assert_eq!(
        d0.len(),
        1,
        "the side that still hears must drop the member too"
    );
    assert_eq!(d0[0].1, DownReason::PeerSignalledDown);
    assert!(d0[0].0 - cut <= Duration::from_millis(320));
    assert_eq!(sim.live(0), sim.all(&[0]));
    assert_eq!(sim.live(1), sim.all(&[1]));
    // Node 0 hears 1 but 1 does not hear 0: 0 stays in Init, never Up.
    assert_eq!(
        sim.nodes[0].as_ref().unwrap().peer_state(&sim.names[1]),
        Some(SessionState::Init)
    );
    assert_eq!(sim.ups(0, 1).len(), 1);
    // Heal: both come back.
    sim.drop = Box::new(|_, _, _| false);
    sim.run_for(Duration::from_secs(1));
    assert_eq!(sim.live(0), sim.all(&[0, 1]));
    assert_eq!(sim.live(1), sim.all(&[0, 1]));
}

#[test]
fn replayed_forged_and_foreign_packets_are_rejected() {
    let mut sim = Sim::new(2, Duration::from_millis(100), 3);
    sim.run_for(Duration::from_secs(1));
    let recorded: Vec<Vec<u8>> = sim
        .delivered
        .iter()
        .filter(|(_, f, t, _)| *f == 1 && *t == 0)
        .map(|x| x.3.clone())
        .collect();
    assert!(recorded.len() >= 9);
    // Node 1 dies; an attacker replays everything it ever sent to 0.
    sim.nodes[1] = None;
    sim.run_for(Duration::from_millis(500));
    assert_eq!(sim.live(0), sim.all(&[0]));
    let now = sim.now;
    let d0 = sim.nodes[0].as_mut().unwrap();
    let before = d0.stats().replayed;
    for p in &recorded {
        assert_eq!(
            d0.handle_datagram(now, p),
            Err(heartbeat::DropReason::Replay)
        );
    }
    assert_eq!(d0.stats().replayed - before, recorded.len() as u64);
    // Forged: any bit flipped.
    let mut forged = recorded.last().unwrap().clone();
    forged[10] ^= 1;
    assert_eq!(
        d0.handle_datagram(now, &forged),
        Err(heartbeat::DropReason::BadMac)
    );
    // Garbage of every length up to 300 bytes: dropped, no panic.
    for n in 0..300 {
        let junk: Vec<u8> = (0..n).map(|i| (i * 31 + n) as u8).collect();
        assert!(d0.handle_datagram(now, &junk).is_err());
    }
    // A node with the wrong key, and a node with the right key but not configured.
    let wrong_key = Detector::new(
        DetectorConfig::new(sim.names[1].clone(), vec![sim.names[0].clone()]),
        &ClusterKey::from_bytes([8; 32]),
        99_999,
        now,
    );
    let stranger = Detector::new(
        DetectorConfig::new(NodeId::new("gw9").unwrap(), vec![sim.names[0].clone()]),
        &sim.key,
        99_999,
        now,
    );
    for (mut d, want) in [
        (wrong_key, heartbeat::DropReason::BadMac),
        (stranger, heartbeat::DropReason::UnknownNode),
    ] {
        d.handle_timeout(now);
        let t = d.poll_transmit(now).unwrap();
        assert_eq!(
            sim.nodes[0]
                .as_mut()
                .unwrap()
                .handle_datagram(now, &t.payload),
            Err(want)
        );
    }
    sim.run_for(Duration::from_millis(500));
    assert_eq!(sim.live(0), sim.all(&[0]));
    assert_eq!(
        sim.ups(0, 1).len(),
        1,
        "replays must not bring the dead node back"
    );
}

#[test]
fn replays_from_before_our_reboot_cannot_bring_a_session_up() {
    let mut sim = Sim::new(2, Duration::from_millis(100), 3);
    sim.run_for(Duration::from_secs(1));
    let recorded: Vec<Vec<u8>> = sim
        .delivered
        .iter()
        .filter(|(_, f, t, _)| *f == 1 && *t == 0)
        .map(|x| x.3.clone())
        .collect();
    // Node 1 dies for good; node 0 reboots (new incarnation, no memory).
    sim.nodes[1] = None;
    sim.nodes[0] = Some(sim.make(0, 5000));
    let mut t = sim.now;
    for p in &recorded {
        t += Duration::from_millis(100);
        let d0 = sim.nodes[0].as_mut().unwrap();
        let _ = d0.handle_datagram(t, p);
        assert_ne!(d0.peer_state(&sim.names[1]), Some(SessionState::Up));
        assert!(d0.poll_event().is_none());
    }
}

#[test]
fn restarted_peer_is_reported_down_then_up() {
    let mut sim = Sim::new(2, Duration::from_millis(100), 3);
    sim.run_for(Duration::from_secs(1));
    // Node 1 restarts within 50 ms, far below the detection time.
    sim.nodes[1] = None;
    sim.run_for(Duration::from_millis(50));
    let restarted = sim.now;
    sim.nodes[1] = Some(sim.make(1, 2000));
    sim.run_for(Duration::from_secs(1));
    let downs = sim.downs(0, 1);
    assert_eq!(downs.len(), 1);
    assert_eq!(downs[0].1, DownReason::PeerRestarted);
    assert!(downs[0].0 - restarted < Duration::from_millis(10));
    let ups = sim.ups(0, 1);
    assert_eq!(ups.len(), 2);
    assert!(ups[1] > downs[0].0);
    assert_eq!(sim.live(0), sim.all(&[0, 1]));
    assert_eq!(sim.live(1), sim.all(&[0, 1]));
    assert_eq!(
        sim.nodes[0]
            .as_ref()
            .unwrap()
            .peer_incarnation(&sim.names[1]),
        Some(2000)
    );
}

#[test]
fn five_nodes_converge_partition_and_heal_with_monotonic_epochs() {
    let mut sim = Sim::new(5, Duration::from_millis(100), 3);
    sim.run_for(Duration::from_millis(500));
    for i in 0..5 {
        assert_eq!(sim.live(i), sim.all(&[0, 1, 2, 3, 4]), "node {i}");
        assert_eq!(sim.nodes[i].as_ref().unwrap().membership().epoch, 4);
    }
    // Node 3 dies.
    sim.nodes[3] = None;
    sim.run_for(Duration::from_millis(400));
    for i in [0, 1, 2, 4] {
        assert_eq!(sim.live(i), sim.all(&[0, 1, 2, 4]), "node {i}");
    }
    // Partition {0,1} | {2,4}.
    let side = |i: usize| i <= 1;
    sim.drop = Box::new(move |f, t, _| side(f) != side(t));
    sim.run_for(Duration::from_millis(500));
    assert_eq!(sim.live(0), sim.all(&[0, 1]));
    assert_eq!(sim.live(1), sim.all(&[0, 1]));
    assert_eq!(sim.live(2), sim.all(&[2, 4]));
    assert_eq!(sim.live(4), sim.all(&[2, 4]));
    // Heal, and node 3 comes back.
    sim.drop = Box::new(|_, _, _| false);
    sim.nodes[3] = Some(sim.make(3, 9000));
    sim.run_for(Duration::from_millis(500));
    for i in 0..5 {
        assert_eq!(sim.live(i), sim.all(&[0, 1, 2, 3, 4]), "node {i}");
    }
    // Epochs: strictly increasing per node, and each event's view is consistent.
    for i in 0..5 {
        let mut last = 0;
        for (_, n, e) in &sim.events {
            if *n != i {
                continue;
            }
            let view = match e {
                MembershipEvent::MemberUp { view, node } => {
                    assert!(view.live.contains(node));
                    view
                }
                MembershipEvent::MemberDown { view, node, .. } => {
                    assert!(!view.live.contains(node));
                    view
                }
            };
            if i == 3 && view.epoch == 1 {
                // Node 3 rebooted: a new incarnation starts its epochs afresh.
                last = 0;
            }
            assert_eq!(view.epoch, last + 1, "node {i}");
            last = view.epoch;
        }
        if i != 3 {
            assert_eq!(sim.nodes[i].as_ref().unwrap().membership().epoch, last);
        }
    }
}

#[test]
fn a_leaving_node_is_dropped_at_once_and_stays_out() {
    let mut sim = Sim::new(3, Duration::from_millis(100), 3);
    sim.run_for(Duration::from_secs(1));
    let left = sim.now;
    sim.nodes[2].as_mut().unwrap().leave();
    sim.run_for(Duration::from_secs(2));
    for i in [0, 1] {
        let downs = sim.downs(i, 2);
        assert_eq!(downs.len(), 1, "node {i}");
        assert_eq!(downs[0].1, DownReason::PeerLeft);
        assert!(
            downs[0].0 - left <= Duration::from_millis(2),
            "not immediate"
        );
        assert_eq!(sim.live(i), sim.all(&[0, 1]));
        assert_eq!(
            sim.ups(i, 2).len(),
            1,
            "it must not come back while leaving"
        );
    }
    assert_eq!(sim.live(2), sim.all(&[2]));
    // It restarts (new incarnation): it joins again.
    sim.nodes[2] = Some(sim.make(2, 7000));
    sim.run_for(Duration::from_millis(500));
    for i in 0..3 {
        assert_eq!(sim.live(i), sim.all(&[0, 1, 2]));
    }
}

#[test]
fn transmit_intervals_are_jittered_within_75_to_100_percent() {
    let mut sim = Sim::new(2, Duration::from_millis(100), 3);
    sim.run_for(Duration::from_secs(10));
    let times: Vec<Instant> = sim
        .delivered
        .iter()
        .filter(|(_, f, t, _)| *f == 0 && *t == 1)
        .map(|x| x.0)
        .collect();
    // Skip the start-up exchanges (state changes are sent at once).
    let gaps: Vec<Duration> = times.windows(2).skip(5).map(|w| w[1] - w[0]).collect();
    assert!(gaps.len() > 80);
    for g in &gaps {
        assert!(
            *g >= Duration::from_millis(75) && *g <= Duration::from_millis(100),
            "{g:?}"
        );
    }
    let distinct: BTreeSet<Duration> = gaps.iter().copied().collect();
    assert!(distinct.len() > 10, "no jitter: {distinct:?}");
}
