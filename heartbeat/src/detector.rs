//! The sans-IO failure detector.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::{Duration, Instant};

use crate::key::{ClusterKey, DerivedKey, LABEL_HEARTBEAT};
use crate::node::NodeId;
use crate::packet::{DecodeError, Packet, SessionState};

/// Detector settings; `[cluster] heartbeat_interval` and `heartbeat_multiplier`.
#[derive(Debug, Clone)]
pub struct DetectorConfig {
    /// This node.
    pub node: NodeId,
    /// The other configured nodes.
    pub peers: Vec<NodeId>,
    /// Transmit interval (default 100 ms).
    pub interval: Duration,
    /// Detection multiplier (default 3): a peer is Down after `multiplier` intervals
    /// without a valid heartbeat.
    pub multiplier: u8,
}

impl DetectorConfig {
    /// Default timers: 100 ms × 3.
    pub fn new(node: NodeId, peers: Vec<NodeId>) -> Self {
        Self {
            node,
            peers,
            interval: Duration::from_millis(100),
            multiplier: 3,
        }
    }
}

/// The live members as this node sees them. `epoch` grows by one on every change,
/// so two views with the same epoch *from the same node* are identical. `live`
/// always contains the local node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Membership {
    /// Change counter, starting at 0 (only the local node live).
    pub epoch: u64,
    /// Nodes currently Up, plus this node.
    pub live: BTreeSet<NodeId>,
}

/// Why a member went down.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DownReason {
    /// Nothing valid heard for `multiplier × interval`.
    DetectionTimeout,
    /// The peer's heartbeat says it no longer hears us (its session went Down).
    PeerSignalledDown,
    /// The peer came back with a new incarnation: it restarted and lost its state,
    /// even if that was faster than the detection time.
    PeerRestarted,
    /// The peer announced it is leaving (AdminDown): shutdown or drain.
    PeerLeft,
    /// This node is leaving ([`Detector::leave`]).
    LocalLeave,
}

/// A membership change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MembershipEvent {
    /// `node` came Up; `view` is the new membership.
    MemberUp {
        /// The node.
        node: NodeId,
        /// The view after the change.
        view: Membership,
    },
    /// `node` went Down; `view` is the new membership.
    MemberDown {
        /// The node.
        node: NodeId,
        /// Why.
        reason: DownReason,
        /// The view after the change.
        view: Membership,
    },
}

/// A heartbeat to send: the driver maps `to` to the peer's configured address.
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use]
pub struct Transmit {
    /// Destination node.
    pub to: NodeId,
    /// Datagram payload.
    pub payload: Vec<u8>,
}

/// Why a datagram was dropped; every case is also counted in [`Stats`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DropReason {
    /// Not a well-formed heartbeat.
    #[error("malformed")]
    Malformed,
    /// MAC did not verify (wrong key or forged).
    #[error("bad MAC")]
    BadMac,
    /// Addressed to another node.
    #[error("addressed to another node")]
    WrongReceiver,
    /// Sender is not a configured peer (or claims to be us).
    #[error("unknown sender")]
    UnknownNode,
    /// Sequence number not above the last accepted one of this incarnation.
    #[error("replayed")]
    Replay,
    /// Incarnation older than one already heard from that peer.
    #[error("stale incarnation")]
    StaleIncarnation,
}

/// Counters, for metrics.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    /// Heartbeats produced by `poll_transmit`.
    pub sent: u64,
    /// Heartbeats accepted.
    pub accepted: u64,
    /// Dropped: malformed.
    pub malformed: u64,
    /// Dropped: bad MAC.
    pub bad_mac: u64,
    /// Dropped: addressed to another node.
    pub wrong_receiver: u64,
    /// Dropped: unknown sender.
    pub unknown_node: u64,
    /// Dropped: replay.
    pub replayed: u64,
    /// Dropped: stale incarnation.
    pub stale_incarnation: u64,
}

#[derive(Debug)]
struct Peer {
    state: SessionState,
    remote_incarnation: u64,
    last_seq: u64,
    last_rx: Option<Instant>,
    remote_interval: Duration,
    detect_deadline: Option<Instant>,
    next_tx: Instant,
    tx_due: bool,
}

/// BFD-style failure detector for one node (RFC 5880 spirit: three-way Down/Init/Up
/// session per peer, detection time = multiplier × interval, keyed authentication
/// with sequence numbers as in RFC 5880 §6.7.3 "meticulous keyed" auth).
///
/// Sans-IO: feed it [`handle_datagram`](Self::handle_datagram) and
/// [`handle_timeout`](Self::handle_timeout); drain [`poll_transmit`](Self::poll_transmit)
/// and [`poll_event`](Self::poll_event); sleep until [`poll_timeout`](Self::poll_timeout).
/// `now` must never go backwards.
///
/// Detection: a session goes Down exactly `multiplier × max(local interval, peer's
/// interval)` after the last valid heartbeat from that peer; since the peer sends
/// at least once per interval (each interval is shortened by a random 0-25 %,
/// RFC 5880 §6.8.7), a dead peer is declared Down between `(multiplier-1) × interval`
/// and `multiplier × interval` after it died. A session only comes Up when both
/// sides hear each other (the peer echoes our current incarnation), so one stray or
/// replayed packet never brings a member up, and a single lost packet never takes
/// one down (it needs `multiplier` in a row).
#[derive(Debug)]
pub struct Detector {
    cfg: DetectorConfig,
    key: DerivedKey,
    incarnation: u64,
    seq: u64,
    peers: BTreeMap<NodeId, Peer>,
    membership: Membership,
    events: VecDeque<MembershipEvent>,
    stats: Stats,
    leaving: bool,
    /// State of the jitter generator (splitmix64), seeded from the incarnation.
    rng: u64,
}

const MIN_INTERVAL: Duration = Duration::from_millis(1);
const MAX_INTERVAL: Duration = Duration::from_secs(60);

impl Detector {
    /// A detector whose first heartbeats are due at `now`.
    ///
    /// `incarnation` identifies this boot and must be larger than that of any
    /// previous boot of this node (the driver uses the boot wall-clock time in
    /// microseconds); peers reject heartbeats from older incarnations as replays.
    /// Zero is reserved ("none") and replaced by 1.
    pub fn new(cfg: DetectorConfig, key: &ClusterKey, incarnation: u64, now: Instant) -> Self {
        let mut cfg = cfg;
        cfg.interval = cfg.interval.clamp(MIN_INTERVAL, MAX_INTERVAL);
        cfg.multiplier = cfg.multiplier.max(1);
        let peers = cfg
            .peers
            .iter()
            .filter(|p| **p != cfg.node)
            .map(|p| {
                (
                    p.clone(),
                    Peer {
                        state: SessionState::Down,
                        remote_incarnation: 0,
                        last_seq: 0,
                        last_rx: None,
                        remote_interval: cfg.interval,
                        detect_deadline: None,
                        next_tx: now,
                        tx_due: true,
                    },
                )
            })
            .collect();
        let membership = Membership {
            epoch: 0,
            live: BTreeSet::from([cfg.node.clone()]),
        };
        Self {
            key: key.derive(LABEL_HEARTBEAT),
            incarnation: incarnation.max(1),
            seq: 0,
            peers,
            membership,
            events: VecDeque::new(),
            stats: Stats::default(),
            leaving: false,
            rng: incarnation ^ 0x9e37_79b9_7f4a_7c15,
            cfg,
        }
    }

    /// This node.
    pub fn node(&self) -> &NodeId {
        &self.cfg.node
    }

    /// This boot's incarnation.
    pub fn incarnation(&self) -> u64 {
        self.incarnation
    }

    /// The current membership view.
    pub fn membership(&self) -> &Membership {
        &self.membership
    }

    /// Session state toward `peer` (None if not configured).
    pub fn peer_state(&self, peer: &NodeId) -> Option<SessionState> {
        self.peers.get(peer).map(|p| p.state)
    }

    /// Last incarnation heard from `peer` (0 = never heard).
    pub fn peer_incarnation(&self, peer: &NodeId) -> Option<u64> {
        self.peers.get(peer).map(|p| p.remote_incarnation)
    }

    /// Counters.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// Processes one received datagram. Returns the authenticated sender, or why it
    /// was dropped. Never panics, whatever the bytes.
    pub fn handle_datagram(&mut self, now: Instant, bytes: &[u8]) -> Result<NodeId, DropReason> {
        let r = self.accept(now, bytes);
        let s = &mut self.stats;
        match r {
            Ok(_) => s.accepted += 1,
            Err(DropReason::Malformed) => s.malformed += 1,
            Err(DropReason::BadMac) => s.bad_mac += 1,
            Err(DropReason::WrongReceiver) => s.wrong_receiver += 1,
            Err(DropReason::UnknownNode) => s.unknown_node += 1,
            Err(DropReason::Replay) => s.replayed += 1,
            Err(DropReason::StaleIncarnation) => s.stale_incarnation += 1,
        }
        r
    }

    fn accept(&mut self, now: Instant, bytes: &[u8]) -> Result<NodeId, DropReason> {
        let pkt = Packet::decode(bytes, &self.key).map_err(|e| match e {
            DecodeError::Malformed => DropReason::Malformed,
            DecodeError::BadMac => DropReason::BadMac,
        })?;
        if pkt.receiver != self.cfg.node {
            return Err(DropReason::WrongReceiver);
        }
        if pkt.incarnation == 0 {
            return Err(DropReason::Malformed);
        }
        let Some(peer) = self.peers.get_mut(&pkt.sender) else {
            return Err(DropReason::UnknownNode);
        };
        // Meticulous replay protection (RFC 5880 §6.7.3): strictly increasing
        // (incarnation, seq) per sender.
        if pkt.incarnation < peer.remote_incarnation {
            return Err(DropReason::StaleIncarnation);
        }
        if pkt.incarnation == peer.remote_incarnation && pkt.seq <= peer.last_seq {
            return Err(DropReason::Replay);
        }
        let mut down_reason = None;
        if peer.remote_incarnation != 0 && pkt.incarnation > peer.remote_incarnation {
            // The peer rebooted: whatever it held is gone.
            if peer.state != SessionState::Down {
                if peer.state == SessionState::Up {
                    down_reason = Some(DownReason::PeerRestarted);
                }
                peer.state = SessionState::Down;
            }
        }
        peer.remote_incarnation = pkt.incarnation;
        peer.last_seq = pkt.seq;
        peer.last_rx = Some(now);
        peer.remote_interval =
            Duration::from_micros(u64::from(pkt.interval_us)).clamp(MIN_INTERVAL, MAX_INTERVAL);
        let detect = self.cfg.interval.max(peer.remote_interval) * u32::from(self.cfg.multiplier);
        peer.detect_deadline = Some(now + detect);

        // A state the peer reports about a previous boot of ours means nothing.
        let remote = if pkt.your_incarnation == self.incarnation {
            pkt.state
        } else {
            SessionState::Down
        };
        let old = peer.state;
        // RFC 5880 §6.8.6 state table. While we leave, every session stays AdminDown.
        let new = match (old, remote) {
            (SessionState::AdminDown, _) => SessionState::AdminDown,
            (SessionState::Up, SessionState::AdminDown) => {
                down_reason = Some(DownReason::PeerLeft);
                SessionState::Down
            }
            (_, SessionState::AdminDown) => SessionState::Down,
            (SessionState::Down, SessionState::Down) => SessionState::Init,
            (SessionState::Down, SessionState::Init) => SessionState::Up,
            (SessionState::Down, SessionState::Up) => SessionState::Down,
            (SessionState::Init, SessionState::Down) => SessionState::Init,
            (SessionState::Init, _) => SessionState::Up,
            (SessionState::Up, SessionState::Down) => {
                down_reason = Some(DownReason::PeerSignalledDown);
                SessionState::Down
            }
            (SessionState::Up, _) => SessionState::Up,
        };
        peer.state = new;
        if new != old || down_reason.is_some() {
            // Tell the peer at once rather than at the next interval.
            peer.tx_due = true;
        }
        let sender = pkt.sender;
        if let Some(reason) = down_reason {
            self.member_down(&sender, reason);
        }
        if new == SessionState::Up && old != SessionState::Up {
            self.member_up(&sender);
        }
        Ok(sender)
    }

    fn member_up(&mut self, node: &NodeId) {
        if self.membership.live.insert(node.clone()) {
            self.membership.epoch += 1;
            self.events.push_back(MembershipEvent::MemberUp {
                node: node.clone(),
                view: self.membership.clone(),
            });
        }
    }

    fn member_down(&mut self, node: &NodeId, reason: DownReason) {
        if self.membership.live.remove(node) {
            self.membership.epoch += 1;
            self.events.push_back(MembershipEvent::MemberDown {
                node: node.clone(),
                reason,
                view: self.membership.clone(),
            });
        }
    }

    /// Runs expired timers: detection timeouts and periodic transmissions. Safe to
    /// call at any time (early calls do nothing).
    pub fn handle_timeout(&mut self, now: Instant) {
        let interval = self.cfg.interval;
        let mut downs = Vec::new();
        for (id, p) in &mut self.peers {
            if p.detect_deadline.is_some_and(|d| d <= now) {
                p.detect_deadline = None;
                if p.state == SessionState::Up {
                    downs.push(id.clone());
                }
                if !matches!(p.state, SessionState::Down | SessionState::AdminDown) {
                    p.state = SessionState::Down;
                    p.tx_due = true;
                }
            }
            if p.next_tx <= now {
                p.tx_due = true;
                // RFC 5880 §6.8.7: each interval shortened by 0-25 % at random, so
                // nodes started together do not send in lockstep.
                let step = jitter(&mut self.rng, interval);
                p.next_tx += step;
                if p.next_tx <= now {
                    // We were not called for a while: don't burst to catch up.
                    p.next_tx = now + step;
                }
            }
        }
        for id in downs {
            self.member_down(&id, DownReason::DetectionTimeout);
        }
    }

    /// Leaves the cluster on purpose (shutdown, `ikectl drain`): every session goes
    /// AdminDown and a heartbeat saying so is queued for every peer at once, so
    /// peers take this node out immediately instead of after the detection time.
    /// Keep polling transmits for a few intervals (peers may miss one packet), then
    /// stop. The local view drops to just this node.
    pub fn leave(&mut self) {
        self.leaving = true;
        let mut downs = Vec::new();
        for (id, p) in &mut self.peers {
            if p.state == SessionState::Up {
                downs.push(id.clone());
            }
            p.state = SessionState::AdminDown;
            p.tx_due = true;
        }
        for id in downs {
            self.member_down(&id, DownReason::LocalLeave);
        }
    }

    /// Whether [`leave`](Self::leave) was called.
    pub fn is_leaving(&self) -> bool {
        self.leaving
    }

    /// The next heartbeat to send, if one is due.
    pub fn poll_transmit(&mut self, _now: Instant) -> Option<Transmit> {
        let (to, peer) = self.peers.iter_mut().find(|(_, p)| p.tx_due)?;
        peer.tx_due = false;
        self.seq += 1;
        let pkt = Packet {
            state: peer.state,
            detect_mult: self.cfg.multiplier,
            sender: self.cfg.node.clone(),
            receiver: to.clone(),
            incarnation: self.incarnation,
            seq: self.seq,
            your_incarnation: peer.remote_incarnation,
            interval_us: u32::try_from(self.cfg.interval.as_micros()).unwrap_or(u32::MAX),
        };
        self.stats.sent += 1;
        Some(Transmit {
            to: to.clone(),
            payload: pkt.encode(&self.key),
        })
    }

    /// When [`handle_timeout`](Self::handle_timeout) should next be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.peers
            .values()
            .flat_map(|p| [Some(p.next_tx), p.detect_deadline])
            .flatten()
            .min()
    }

    /// The next membership event.
    pub fn poll_event(&mut self) -> Option<MembershipEvent> {
        self.events.pop_front()
    }
}

/// `interval` reduced by a pseudo-random 0-25 % (splitmix64 step).
fn jitter(state: &mut u64, interval: Duration) -> Duration {
    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^= z >> 31;
    let permille = 750 + u32::try_from(z % 251).unwrap_or(0);
    interval * permille / 1000
}
