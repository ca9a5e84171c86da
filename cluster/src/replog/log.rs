//! The replication log state machine (see the module docs of [`crate::replog`]).

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};

use heartbeat::NodeId;

use super::types::{MAX_PAYLOAD, Record, RecordKey, Token, Version};
use super::wire::{self, ReplMessage};
use crate::transport::MAX_MESSAGE;

/// Tuning knobs.
#[derive(Debug, Clone)]
pub struct ReplConfig {
    /// Most unacknowledged records per peer (flow control; default 8192).
    pub max_inflight: usize,
    /// Most unacknowledged record bytes per peer (default 4 MiB): bounds the memory
    /// a slow peer can tie up, whatever the record sizes.
    pub max_inflight_bytes: usize,
    /// Target size of one Records message (default 60,000 bytes, at most
    /// [`MAX_MESSAGE`]); one record larger than this still goes alone.
    pub max_batch_bytes: usize,
    /// Lowest version counter this node writes with (default 0). The replicator
    /// sets it to the boot incarnation (µs since the epoch), so the writes of a
    /// restarted node order after everything written before it restarted, as in a
    /// hybrid logical clock.
    pub counter_floor: u64,
}

impl Default for ReplConfig {
    fn default() -> Self {
        Self {
            max_inflight: 8192,
            max_inflight_bytes: 4 << 20,
            max_batch_bytes: 60_000,
            counter_floor: 0,
        }
    }
}

/// Errors. On `handle_message` errors the caller should drop the connection to
/// that peer (it broke the protocol); the log stays consistent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReplError {
    /// The node is not a configured peer.
    #[error("unknown peer {0}")]
    UnknownPeer(NodeId),
    /// A message from a peer that is not connected (per `peer_connected`).
    #[error("peer {0} is not connected")]
    NotConnected(NodeId),
    /// The message does not decode.
    #[error("malformed replication message")]
    Malformed,
    /// The message breaks the protocol (sequence gap, ack of unsent data...).
    #[error("replication protocol violation: {0}")]
    Protocol(&'static str),
    /// Payload over [`MAX_PAYLOAD`].
    #[error("payload of {0} bytes exceeds {MAX_PAYLOAD}")]
    PayloadTooLarge(usize),
    /// The replicator task is gone (only from [`crate::replicator::Replicator`]).
    #[error("replicator stopped")]
    Stopped,
}

/// Something the owner should know.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReplEvent {
    /// A record written by another node was applied (read it with `record`).
    Changed {
        /// Key.
        key: RecordKey,
        /// The version now stored.
        version: Version,
        /// Whether it is a tombstone.
        deleted: bool,
    },
    /// A tracked token (see [`ReplicationLog::track`]) is now acked by all live peers.
    Acked(Token),
    /// A tracked token's key was overwritten by a newer write from another node
    /// (e.g. after a takeover) before all live peers acked it: it will never be
    /// acked as such, and waiting for it is pointless.
    Superseded(Token),
    /// The peer's bulk resync to us is complete: we hold everything it held.
    PeerSynced(NodeId),
    /// A record another node wrote was not applied because the version we hold is
    /// newer: a concurrent write (both sides of a partition wrote the key). Its facts
    /// may still matter to the caller (a lease end it granted itself, Message IDs it
    /// used), so the value is handed over once.
    Overruled {
        /// Key.
        key: RecordKey,
        /// The losing write's value.
        value: Vec<u8>,
    },
}

/// Per-peer counters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PeerStats {
    /// Connected now.
    pub connected: bool,
    /// The peer's resync to us completed on this connection.
    pub synced: bool,
    /// Bytes of replication messages sent to / received from the peer.
    pub bytes_sent: u64,
    /// See `bytes_sent`.
    pub bytes_received: u64,
    /// Records sent.
    pub records_sent: u64,
    /// Records received.
    pub records_received: u64,
    /// Records received that were newer than ours and applied.
    pub records_applied: u64,
    /// Acks sent / received.
    pub acks_sent: u64,
    /// See `acks_sent`.
    pub acks_received: u64,
    /// Connections (each starts a resync).
    pub sessions: u64,
    /// Keys waiting to be sent.
    pub queued: usize,
    /// Records sent and not yet acked.
    pub inflight: usize,
}

impl PeerStats {
    /// Replication lag in records: queued plus unacknowledged.
    pub fn lag(&self) -> usize {
        self.queued + self.inflight
    }
}

/// Whole-log counters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogStats {
    /// Live records stored.
    pub live_records: usize,
    /// Tombstones stored.
    pub tombstones: usize,
    /// Local writes (publish + delete).
    pub published: u64,
    /// Remote records applied.
    pub applied: u64,
    /// Remote records ignored because ours was newer or equal.
    pub stale: u64,
    /// Tombstones collected.
    pub tombstones_collected: u64,
    /// Digest of the whole store (every key with its version and whether it is a
    /// tombstone), kept up to date incrementally. Two nodes whose stores are equal
    /// have equal digests; compare them when no writes are in flight (e.g. in
    /// `ikectl cluster`) to catch silent divergence.
    pub digest: u128,
}

enum Pending {
    Key(RecordKey),
    SnapshotEnd,
}

struct Peer {
    connected: bool,
    incarnation: Option<u64>,
    /// The newest version of each key this peer is known to hold.
    known: HashMap<RecordKey, Version>,
    queue: VecDeque<Pending>,
    queued: HashSet<RecordKey>,
    inflight: VecDeque<(u64, RecordKey, Version, usize)>,
    inflight_bytes: usize,
    control: VecDeque<Vec<u8>>,
    next_seq: u64,
    recv_seq: u64,
    ack_sent: u64,
    synced: bool,
    stats: PeerStats,
}

impl Peer {
    fn new() -> Self {
        Self {
            connected: false,
            incarnation: None,
            known: HashMap::new(),
            queue: VecDeque::new(),
            queued: HashSet::new(),
            inflight: VecDeque::new(),
            inflight_bytes: 0,
            control: VecDeque::new(),
            next_seq: 1,
            recv_seq: 0,
            ack_sent: 0,
            synced: false,
            stats: PeerStats::default(),
        }
    }

    fn knows(&self, key: &RecordKey, v: &Version) -> bool {
        self.known.get(key).is_some_and(|k| k >= v)
    }

    fn learn(&mut self, key: &RecordKey, v: &Version) {
        match self.known.get_mut(key) {
            Some(k) if *k >= *v => {}
            Some(k) => *k = v.clone(),
            None => {
                self.known.insert(key.clone(), v.clone());
            }
        }
    }

    fn enqueue(&mut self, key: &RecordKey) {
        if self.queued.insert(key.clone()) {
            self.queue.push_back(Pending::Key(key.clone()));
        }
    }
}

/// The replication log of one node. See [`crate::replog`] for the guarantees.
///
/// Drive it with `peer_connected` / `peer_disconnected` / `handle_message` from
/// the channel, and after every input drain [`poll_transmit`](Self::poll_transmit)
/// (send each message on the channel) and [`poll_event`](Self::poll_event).
pub struct ReplicationLog {
    local: NodeId,
    cfg: ReplConfig,
    store: BTreeMap<RecordKey, Record>,
    lamport: u64,
    peers: BTreeMap<NodeId, Peer>,
    live: Option<BTreeSet<NodeId>>,
    waiting: Vec<Token>,
    events: VecDeque<ReplEvent>,
    rr: usize,
    stats: LogStats,
    forgotten: HashMap<RecordKey, Version>,
    forgotten_order: VecDeque<RecordKey>,
}

/// How many collected tombstones are remembered to reject late copies.
const FORGOTTEN_CAP: usize = 65_536;

impl std::fmt::Debug for ReplicationLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReplicationLog")
            .field("local", &self.local)
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

impl ReplicationLog {
    /// A log for node `local` replicating to `peers` (the local node is ignored if listed).
    pub fn new(local: NodeId, peers: impl IntoIterator<Item = NodeId>, cfg: ReplConfig) -> Self {
        let mut cfg = cfg;
        cfg.max_batch_bytes = cfg.max_batch_bytes.clamp(1024, MAX_MESSAGE);
        cfg.max_inflight = cfg.max_inflight.max(1);
        cfg.max_inflight_bytes = cfg.max_inflight_bytes.max(1);
        let peers = peers
            .into_iter()
            .filter(|p| *p != local)
            .map(|p| (p, Peer::new()))
            .collect();
        Self {
            local,
            lamport: cfg.counter_floor,
            cfg,
            store: BTreeMap::new(),
            peers,
            live: None,
            waiting: Vec::new(),
            events: VecDeque::new(),
            rr: 0,
            stats: LogStats::default(),
            forgotten: HashMap::new(),
            forgotten_order: VecDeque::new(),
        }
    }

    /// This node.
    pub fn local(&self) -> &NodeId {
        &self.local
    }

    /// Writes `payload` under `key`; returns the write's token.
    pub fn publish(&mut self, key: RecordKey, payload: Vec<u8>) -> Result<Token, ReplError> {
        if payload.len() > MAX_PAYLOAD {
            return Err(ReplError::PayloadTooLarge(payload.len()));
        }
        Ok(self.write(key, Some(payload)))
    }

    /// Deletes `key` (stores a tombstone); returns the write's token.
    pub fn delete(&mut self, key: RecordKey) -> Token {
        self.write(key, None)
    }

    fn write(&mut self, key: RecordKey, value: Option<Vec<u8>>) -> Token {
        self.lamport += 1;
        let version = Version {
            counter: self.lamport,
            origin: self.local.clone(),
        };
        self.stats.published += 1;
        self.store_record(
            &key,
            Record {
                version: version.clone(),
                value,
            },
        );
        for p in self.peers.values_mut().filter(|p| p.connected) {
            p.enqueue(&key);
        }
        Token { key, version }
    }

    fn store_record(&mut self, key: &RecordKey, rec: Record) {
        let new_dead = rec.value.is_none();
        self.stats.digest ^= entry_digest(key, &rec);
        match self.store.insert(key.clone(), rec) {
            Some(old) => {
                self.stats.digest ^= entry_digest(key, &old);
                self.count_change(old.value.is_none(), new_dead);
            }
            None if new_dead => self.stats.tombstones += 1,
            None => self.stats.live_records += 1,
        }
    }

    fn count_change(&mut self, old_dead: bool, new_dead: bool) {
        match (old_dead, new_dead) {
            (true, false) => {
                self.stats.tombstones -= 1;
                self.stats.live_records += 1;
            }
            (false, true) => {
                self.stats.tombstones += 1;
                self.stats.live_records -= 1;
            }
            _ => {}
        }
    }

    /// The live payload under `key`.
    pub fn get(&self, key: &RecordKey) -> Option<&[u8]> {
        self.store.get(key).and_then(|r| r.value.as_deref())
    }

    /// The stored record under `key`, tombstones included.
    pub fn record(&self, key: &RecordKey) -> Option<&Record> {
        self.store.get(key)
    }

    /// Live records in key order.
    pub fn iter(&self) -> impl Iterator<Item = (&RecordKey, &Record)> {
        self.store.iter().filter(|(_, r)| r.value.is_some())
    }

    /// Number of live records.
    pub fn len(&self) -> usize {
        self.stats.live_records
    }

    /// Whether there is no live record.
    pub fn is_empty(&self) -> bool {
        self.stats.live_records == 0
    }

    /// A connection to `peer` is up (its Hello said `incarnation`): starts a bulk
    /// resync toward it and resets the stream state of both directions.
    pub fn peer_connected(&mut self, peer: &NodeId, incarnation: u64) -> Result<(), ReplError> {
        let p = self
            .peers
            .get_mut(peer)
            .ok_or_else(|| ReplError::UnknownPeer(peer.clone()))?;
        if p.incarnation != Some(incarnation) {
            // A new boot of the peer holds nothing we sent to the old one.
            p.known.clear();
            p.incarnation = Some(incarnation);
        }
        p.connected = true;
        p.synced = false;
        p.queue.clear();
        p.queued.clear();
        p.inflight.clear();
        p.inflight_bytes = 0;
        p.control.clear();
        p.next_seq = 1;
        p.recv_seq = 0;
        p.ack_sent = 0;
        p.stats.sessions += 1;
        for (k, r) in &self.store {
            if !p.knows(k, &r.version) {
                p.enqueue(k);
            }
        }
        p.queue.push_back(Pending::SnapshotEnd);
        Ok(())
    }

    /// The connection to `peer` is gone.
    ///
    /// Records written by `peer` are then relayed to the other connected peers that
    /// are not known to hold them: `peer` may have died after sending a write to us
    /// but before sending it to them, and nobody else would ever send it.
    pub fn peer_disconnected(&mut self, peer: &NodeId) {
        if let Some(p) = self.peers.get_mut(peer) {
            p.connected = false;
            p.synced = false;
            p.queue.clear();
            p.queued.clear();
            p.inflight.clear();
            p.inflight_bytes = 0;
            p.control.clear();
        }
        let store = &self.store;
        for (name, p) in &mut self.peers {
            if !p.connected || name == peer {
                continue;
            }
            for (k, r) in store {
                if r.version.origin == *peer && !p.knows(k, &r.version) {
                    p.enqueue(k);
                }
            }
        }
        self.check_waiting();
    }

    /// Sets the live members (from the heartbeat). Acks are then awaited from
    /// exactly these peers; unknown names and the local node are ignored.
    pub fn set_live_members(&mut self, live: &BTreeSet<NodeId>) {
        let set = live
            .iter()
            .filter(|n| self.peers.contains_key(*n))
            .cloned()
            .collect();
        self.live = Some(set);
        self.check_waiting();
    }

    fn required(&self) -> Vec<&NodeId> {
        match &self.live {
            Some(l) => l.iter().collect(),
            None => self
                .peers
                .iter()
                .filter(|(_, p)| p.connected)
                .map(|(n, _)| n)
                .collect(),
        }
    }

    /// Whether `peer` holds the token's write (or a newer version of the key).
    pub fn is_acked_by(&self, peer: &NodeId, token: &Token) -> bool {
        if !self.store.contains_key(&token.key) {
            // Only a tombstone every peer acknowledged is ever removed.
            return true;
        }
        self.peers
            .get(peer)
            .is_some_and(|p| p.knows(&token.key, &token.version))
    }

    /// Whether every live peer holds the token's write: what `sync = "ack"` waits for.
    pub fn is_acked_by_all_live(&self, token: &Token) -> bool {
        self.required()
            .into_iter()
            .all(|p| self.is_acked_by(p, token))
    }

    /// Raises [`ReplEvent::Acked`] once the token is acked by all live peers, or
    /// [`ReplEvent::Superseded`] if another node overwrites the key first (at the
    /// next `poll_event` if either is already the case).
    pub fn track(&mut self, token: Token) {
        self.waiting.push(token);
        self.check_waiting();
    }

    /// Stops tracking a token (the caller gave up waiting).
    pub fn untrack(&mut self, token: &Token) {
        self.waiting.retain(|t| t != token);
    }

    fn check_waiting(&mut self) {
        if self.waiting.is_empty() {
            return;
        }
        let waiting = std::mem::take(&mut self.waiting);
        for t in waiting {
            if self.is_acked_by_all_live(&t) {
                self.events.push_back(ReplEvent::Acked(t));
            } else if self.is_superseded(&t) {
                self.events.push_back(ReplEvent::Superseded(t));
            } else {
                self.waiting.push(t);
            }
        }
    }

    /// Whether another node wrote a newer version of the token's key. (A newer
    /// write by the same node does not count: its acks imply this token's.)
    pub fn is_superseded(&self, token: &Token) -> bool {
        self.store
            .get(&token.key)
            .is_some_and(|r| r.version > token.version && r.version.origin != token.version.origin)
    }

    /// Whether every live peer is connected and has completed its resync to us.
    pub fn is_synced_with_live(&self) -> bool {
        let req: Vec<NodeId> = self.required().into_iter().cloned().collect();
        req.iter()
            .all(|n| self.peers.get(n).is_some_and(|p| p.connected && p.synced))
    }

    /// Processes one replication message from `from`.
    pub fn handle_message(&mut self, from: &NodeId, msg: &[u8]) -> Result<(), ReplError> {
        let p = self
            .peers
            .get_mut(from)
            .ok_or_else(|| ReplError::UnknownPeer(from.clone()))?;
        if !p.connected {
            return Err(ReplError::NotConnected(from.clone()));
        }
        p.stats.bytes_received += msg.len() as u64;
        match wire::decode(msg).ok_or(ReplError::Malformed)? {
            ReplMessage::Records { first_seq, records } => {
                if first_seq != p.recv_seq + 1 || records.is_empty() {
                    return Err(ReplError::Protocol("sequence gap"));
                }
                p.recv_seq += records.len() as u64;
                p.stats.records_received += records.len() as u64;
                for (key, rec) in records {
                    self.apply(from, key, rec);
                }
                self.check_waiting();
            }
            ReplMessage::Ack { seq } => {
                if seq >= p.next_seq {
                    return Err(ReplError::Protocol("ack of unsent data"));
                }
                p.stats.acks_received += 1;
                let mut acked = Vec::new();
                while p.inflight.front().is_some_and(|(s, ..)| *s <= seq) {
                    if let Some((_, k, v, len)) = p.inflight.pop_front() {
                        p.inflight_bytes -= len;
                        p.learn(&k, &v);
                        acked.push((k, v));
                    }
                }
                for (k, v) in acked {
                    self.maybe_collect(&k, &v);
                }
                self.check_waiting();
            }
            ReplMessage::SnapshotEnd { clock } => {
                self.lamport = self.lamport.max(clock);
                if !p.synced {
                    p.synced = true;
                    self.events.push_back(ReplEvent::PeerSynced(from.clone()));
                }
            }
            ReplMessage::Forget { key, version } => {
                if self
                    .store
                    .get(&key)
                    .is_some_and(|r| r.value.is_none() && r.version == version)
                {
                    self.remove_tombstone(&key);
                }
            }
        }
        Ok(())
    }

    fn apply(&mut self, from: &NodeId, key: RecordKey, rec: Record) {
        if !self.store.contains_key(&key)
            && self.forgotten.get(&key).is_some_and(|f| *f >= rec.version)
        {
            // Older than a deletion we collected: a copy that was already on its way
            // when every node acknowledged the deletion (e.g. in a resync batch).
            // Storing it would resurrect the record. If it is a tombstone the sender
            // still keeps, tell it to drop it too.
            self.stats.stale += 1;
            if rec.value.is_none()
                && let Some(p) = self.peers.get_mut(from)
            {
                p.control.push_back(wire::encode_forget(&key, &rec.version));
            }
            return;
        }
        if let Some(p) = self.peers.get_mut(from) {
            p.learn(&key, &rec.version);
        }
        self.lamport = self.lamport.max(rec.version.counter);
        let newer = self
            .store
            .get(&key)
            .is_none_or(|cur| cur.version < rec.version);
        if !newer {
            self.stats.stale += 1;
            // Another write than ours (not the same version coming round again).
            if let (Some(cur), Some(value)) = (self.store.get(&key), rec.value)
                && cur.version != rec.version
            {
                self.events.push_back(ReplEvent::Overruled { key, value });
            }
            return;
        }
        self.stats.applied += 1;
        if let Some(p) = self.peers.get_mut(from) {
            p.stats.records_applied += 1;
        }
        let ev = ReplEvent::Changed {
            key: key.clone(),
            version: rec.version.clone(),
            deleted: rec.value.is_none(),
        };
        self.store_record(&key, rec);
        self.events.push_back(ev);
    }

    /// Collects our own tombstone once every configured peer holds it.
    fn maybe_collect(&mut self, key: &RecordKey, v: &Version) {
        let Some(r) = self.store.get(key) else { return };
        if r.value.is_some() || r.version != *v || v.origin != self.local {
            return;
        }
        if !self.peers.values().all(|p| p.knows(key, v)) {
            return;
        }
        let forget = wire::encode_forget(key, v);
        for p in self.peers.values_mut().filter(|p| p.connected) {
            p.control.push_back(forget.clone());
        }
        self.remove_tombstone(key);
    }

    fn remove_tombstone(&mut self, key: &RecordKey) {
        if let Some(old) = self.store.remove(key) {
            self.stats.digest ^= entry_digest(key, &old);
            self.stats.tombstones -= 1;
            self.stats.tombstones_collected += 1;
            // Copies of this tombstone may still be in flight (in a peer's resync):
            // remember it so they are not stored again.
            if self.forgotten.insert(key.clone(), old.version).is_none() {
                self.forgotten_order.push_back(key.clone());
            }
            while self.forgotten_order.len() > FORGOTTEN_CAP {
                if let Some(k) = self.forgotten_order.pop_front() {
                    self.forgotten.remove(&k);
                }
            }
        }
        for p in self.peers.values_mut() {
            p.known.remove(key);
        }
    }

    /// The next message to send: `(peer, bytes)` for the channel.
    pub fn poll_transmit(&mut self) -> Option<(NodeId, Vec<u8>)> {
        let n = self.peers.len();
        for i in 0..n {
            let idx = (self.rr + i) % n;
            let Some(name) = self.peers.keys().nth(idx).cloned() else {
                continue;
            };
            if let Some(msg) = self.transmit_to(&name) {
                self.rr = idx + 1;
                if let Some(p) = self.peers.get_mut(&name) {
                    p.stats.bytes_sent += msg.len() as u64;
                }
                return Some((name, msg));
            }
        }
        None
    }

    fn transmit_to(&mut self, name: &NodeId) -> Option<Vec<u8>> {
        let store = &self.store;
        let cfg = &self.cfg;
        let clock = self.lamport;
        let p = self.peers.get_mut(name)?;
        if !p.connected {
            return None;
        }
        if let Some(c) = p.control.pop_front() {
            return Some(c);
        }
        if p.recv_seq > p.ack_sent {
            p.ack_sent = p.recv_seq;
            p.stats.acks_sent += 1;
            return Some(wire::encode_ack(p.recv_seq));
        }
        let mut buf = Vec::new();
        let mut count: u16 = 0;
        while p.inflight.len() < cfg.max_inflight
            && p.inflight_bytes < cfg.max_inflight_bytes
            && count < u16::MAX
        {
            let key = match p.queue.front() {
                None => break,
                Some(Pending::SnapshotEnd) => {
                    if count > 0 {
                        break;
                    }
                    p.queue.pop_front();
                    return Some(wire::encode_snapshot_end(clock));
                }
                Some(Pending::Key(k)) => k.clone(),
            };
            let Some(rec) = store.get(&key) else {
                // Collected since it was queued.
                p.queue.pop_front();
                p.queued.remove(&key);
                continue;
            };
            if p.knows(&key, &rec.version) {
                p.queue.pop_front();
                p.queued.remove(&key);
                continue;
            }
            let len = wire::record_len(&key, rec);
            if count > 0 && buf.len() + len > cfg.max_batch_bytes {
                break;
            }
            if count == 0 {
                wire::start_records(&mut buf, p.next_seq);
            }
            wire::push_record(&mut buf, &key, rec);
            p.queue.pop_front();
            p.queued.remove(&key);
            p.inflight
                .push_back((p.next_seq, key, rec.version.clone(), len));
            p.inflight_bytes += len;
            p.next_seq += 1;
            count += 1;
        }
        if count == 0 {
            return None;
        }
        wire::set_count(&mut buf, count);
        p.stats.records_sent += u64::from(count);
        Some(buf)
    }

    /// The next event.
    pub fn poll_event(&mut self) -> Option<ReplEvent> {
        self.events.pop_front()
    }

    /// Counters for `peer`.
    pub fn peer_stats(&self, peer: &NodeId) -> Option<PeerStats> {
        self.peers.get(peer).map(|p| {
            let mut s = p.stats.clone();
            s.connected = p.connected;
            s.synced = p.synced;
            s.queued = p.queue.len();
            s.inflight = p.inflight.len();
            s
        })
    }

    /// Counters for every configured peer.
    pub fn all_peer_stats(&self) -> Vec<(NodeId, PeerStats)> {
        self.peers
            .keys()
            .filter_map(|n| self.peer_stats(n).map(|s| (n.clone(), s)))
            .collect()
    }

    /// Whole-log counters.
    pub fn stats(&self) -> &LogStats {
        &self.stats
    }
}

/// 128 bits of SHA-256 over one store entry; the store digest is their XOR.
fn entry_digest(key: &RecordKey, rec: &Record) -> u128 {
    use sha2::Digest as _;
    let mut h = sha2::Sha256::new();
    let k = key.as_bytes();
    h.update([u8::try_from(k.len()).unwrap_or(u8::MAX)]);
    h.update(k);
    h.update(rec.version.counter.to_be_bytes());
    h.update(rec.version.origin.as_str().as_bytes());
    h.update([u8::from(rec.value.is_none())]);
    let out = h.finalize();
    let mut b = [0u8; 16];
    if let Some(s) = out.get(..16) {
        b.copy_from_slice(s);
    }
    u128::from_be_bytes(b)
}
