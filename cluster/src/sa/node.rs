//! [`ClusterNode`]: state, inputs, the effect pump, `ack` holds.

use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use heartbeat::{Membership, NodeId};
use ike::endpoint::{Effect, Endpoint, SaEvent};
use ike::sa::IkeSaId;
use ike::wire::{ExchangeType, HeaderView, IkeSpi};
use xfrm::ReplayState;

use super::record::{self, ChildRecord, SaRecord};
use super::{
    ClusterConfig, ClusterCounters, ClusterEffect, ClusterEvent, ClusterInstall, SyncMode, hrw,
};
use crate::replog::{ReplConfig, ReplError, ReplEvent, ReplicationLog, Token};

/// Ownership index entry for one IKE SA record.
#[derive(Clone, Debug)]
pub(super) struct Owner {
    pub node: NodeId,
    pub spi_i: u64,
}

/// An owned Child SA: its lease and latest checkpoint.
#[derive(Clone, Debug)]
pub(super) struct OwnedChild {
    pub dst: IpAddr,
    pub rec: ChildRecord,
    /// Lease end the data plane enforces now.
    pub granted_end: u64,
    /// A renewal waiting for its quorum: (token, new end).
    pub renewing: Option<(Token, u64)>,
    /// Its policies (selectors), see [`super::standby::policy_key`].
    pub policy: u64,
    /// Its IKE SA (our SPI).
    pub ike: u64,
    /// Extended sequence numbers (64-bit).
    pub esn: bool,
    /// Moved to a new range since its install (`MoveOutboundLease`): the kernel's
    /// packet count no longer maps to sequence numbers, so no lease renewal; it is
    /// rekeyed instead.
    pub moved: bool,
}

/// Replay state and lease to put on a Child SA install (takeover, transfer).
#[derive(Clone, Debug)]
pub(super) struct InstallOverride {
    pub inbound: ReplayState,
    pub lease_start: u64,
    pub lease_end: u64,
    pub oseq: u64,
}

/// IKE datagrams held until their records are acked.
#[derive(Debug)]
pub(super) struct Held {
    pub tokens: Vec<Token>,
    pub deadline: Instant,
    pub effects: Vec<Effect>,
}

/// A cluster node's SA layer. See the [module documentation](super).
pub struct ClusterNode {
    pub(super) cfg: ClusterConfig,
    pub(super) endpoint: Endpoint,
    pub(super) log: ReplicationLog,
    pub(super) membership: Membership,
    /// Nodes that announced draining.
    pub(super) draining: BTreeSet<NodeId>,
    /// Every IKE SA record by our SPI: who owns it.
    pub(super) index: HashMap<u64, Owner>,
    /// IKE SAs in our endpoint (we own them).
    pub(super) owned: HashSet<u64>,
    /// Owned Child SAs by inbound SPI, and outbound → inbound.
    pub(super) children: HashMap<u32, OwnedChild>,
    pub(super) by_spi_out: HashMap<u32, u32>,
    /// Highest lease end ever seen per outbound SPI (never decreases while a Child SA
    /// with that SPI may be used; see `leases.rs` for when an entry goes).
    pub(super) lease_seen: HashMap<u32, u64>,
    /// Every Child SA we know (owned, or by its `rpl/` record): inbound → outbound SPI,
    /// and how many of them use each outbound SPI.
    pub(super) child_out: HashMap<u32, u32>,
    pub(super) out_refs: HashMap<u32, u32>,
    /// Child SAs (inbound, outbound SPI) listed by each IKE SA record of another owner,
    /// and the IKE SA listing each.
    pub(super) record_kids: HashMap<u64, Vec<(u32, u32)>>,
    pub(super) kid_ike: HashMap<u32, u64>,
    /// Inbound SPIs of Child SAs with a lease renewal waiting for its quorum.
    pub(super) renewing: HashSet<u32>,
    /// IKE SAs (our SPI) with a `was/` record in the log (see `heal.rs`): a takeover
    /// looks for them only then (the log is a large ordered map).
    pub(super) was_spis: HashSet<u64>,
    /// Block policies requested for Child SAs of other owners, by IKE SA; how many of
    /// them name each policy (selectors); how many owned Child SAs use each policy.
    pub(super) blocked: HashMap<u64, Vec<super::BlockPolicies>>,
    pub(super) block_refs: HashMap<u64, u32>,
    pub(super) owned_policies: HashMap<u64, u32>,
    /// Block policies no record uses any more, removed after the current batch.
    pub(super) unblock_pending: HashMap<u64, super::BlockPolicies>,
    /// An SA whose record was just published by a takeover (skip it in the next pump).
    pub(super) skip_publish: Option<u64>,
    /// IKE SAs an operator transfer placed here against the hash: rebalancing after a
    /// node joins leaves them where they are (an explicit override); drain moves them.
    pub(super) pinned: HashSet<u64>,
    /// SAs whose state changed without an effect (a response to our request cleared its
    /// outstanding request): published by the next pump.
    pub(super) touched_extra: Vec<u64>,
    pub(super) overrides: HashMap<u32, InstallOverride>,
    pub(super) effects: VecDeque<ClusterEffect>,
    pub(super) held: VecDeque<Held>,
    /// RFC 6311: SAs taken over and not yet synced (at most one sync per failover).
    pub(super) sync_queue: VecDeque<u64>,
    pub(super) sync_due: HashSet<u64>,
    pub(super) sync_next: Option<Instant>,
    /// Child SAs to rekey once their IKE SA is synced (§5.2 after a large jump).
    pub(super) rekey_after_sync: HashMap<u64, Vec<u32>>,
    pub(super) transfers: HashMap<u64, super::transfer::Transfer>,
    pub(super) transfer_queue: VecDeque<(u64, NodeId)>,
    pub(super) transfer_next: Option<Instant>,
    /// A takeover waits until we hold what the live members hold.
    pub(super) takeover_pending: bool,
    /// Pools hand out nothing until we hold the live members' records (their leases).
    pub(super) pools_paused: bool,
    /// Virtual IP of every IKE SA we know (owned or replicated), and how many use each.
    pub(super) sa_vips: HashMap<u64, IpAddr>,
    pub(super) vip_refs: HashMap<IpAddr, u32>,
    pub(super) counters: ClusterCounters,
}

impl std::fmt::Debug for ClusterNode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterNode")
            .field("node", &self.cfg.node)
            .field("epoch", &self.membership.epoch)
            .field("owned", &self.owned.len())
            .field("records", &self.index.len())
            .finish_non_exhaustive()
    }
}

impl ClusterNode {
    /// A node wrapping `endpoint` (give each node a disjoint `spi_range`), replicating
    /// to the other configured nodes with `repl`. Only this node is live until
    /// [`ClusterNode::handle_membership`].
    ///
    /// The endpoint's address pools are restricted to this node's share: the addresses
    /// whose HRW over all of [`ClusterConfig::nodes`] (live or not) is this node, so no
    /// address is ever leased by two nodes, even in a partition. While a node is down its
    /// share of the free addresses stays unused until it returns (see the
    /// [module documentation](super)).
    pub fn new(cfg: ClusterConfig, mut endpoint: Endpoint, repl: ReplConfig) -> Self {
        endpoint.set_pool_filter(Some(super::standby::pool_share(&cfg)));
        let peers: Vec<NodeId> = cfg.nodes.clone();
        let log = ReplicationLog::new(cfg.node.clone(), peers, repl);
        let membership = Membership {
            epoch: 0,
            live: [cfg.node.clone()].into_iter().collect(),
        };
        Self {
            cfg,
            endpoint,
            log,
            membership,
            draining: BTreeSet::new(),
            index: HashMap::new(),
            owned: HashSet::new(),
            children: HashMap::new(),
            by_spi_out: HashMap::new(),
            lease_seen: HashMap::new(),
            child_out: HashMap::new(),
            out_refs: HashMap::new(),
            record_kids: HashMap::new(),
            kid_ike: HashMap::new(),
            renewing: HashSet::new(),
            was_spis: HashSet::new(),
            skip_publish: None,
            touched_extra: Vec::new(),
            pinned: HashSet::new(),
            blocked: HashMap::new(),
            block_refs: HashMap::new(),
            owned_policies: HashMap::new(),
            unblock_pending: HashMap::new(),
            overrides: HashMap::new(),
            effects: VecDeque::new(),
            held: VecDeque::new(),
            sync_queue: VecDeque::new(),
            sync_due: HashSet::new(),
            sync_next: None,
            rekey_after_sync: HashMap::new(),
            transfers: HashMap::new(),
            transfer_queue: VecDeque::new(),
            transfer_next: None,
            takeover_pending: false,
            pools_paused: false,
            sa_vips: HashMap::new(),
            vip_refs: HashMap::new(),
            counters: ClusterCounters::default(),
        }
    }

    /// This node's name.
    pub fn node(&self) -> &NodeId {
        &self.cfg.node
    }

    /// The wrapped IKE endpoint (read-only: inputs go through the cluster node).
    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    /// The wrapped IKE endpoint, for operator actions on owned SAs (`initiate`,
    /// `terminate`, `send_liveness`...); call [`ClusterNode::flush`] afterwards so their
    /// effects are replicated and released.
    pub fn endpoint_mut(&mut self) -> &mut Endpoint {
        &mut self.endpoint
    }

    /// The replication log (read-only).
    pub fn log(&self) -> &ReplicationLog {
        &self.log
    }

    /// Whether this node owns IKE SA `id` now.
    pub fn owns(&self, id: IkeSaId) -> bool {
        self.owned.contains(&id.0)
    }

    /// The owner of IKE SA `id` by this node's view (records, live members, HRW).
    pub fn owner_of(&self, id: IkeSaId) -> Option<NodeId> {
        if self.owned.contains(&id.0) {
            return Some(self.cfg.node.clone());
        }
        let o = self.index.get(&id.0)?;
        Some(self.effective_owner(id.0, o))
    }

    /// The outbound sequence-number lease end the quorum granted for owned Child SA
    /// `spi_in` (the kernel stops sending there).
    pub fn granted_lease_end(&self, spi_in: u32) -> Option<u64> {
        self.children.get(&spi_in).map(|c| c.granted_end)
    }

    /// Counters.
    pub fn counters(&self) -> ClusterCounters {
        let mut c = self.counters.clone();
        c.held_datagrams = self.held.iter().map(|h| h.effects.len()).sum();
        c
    }

    /// Live members that are not draining: candidates for new and moved SAs.
    pub(super) fn candidates(&self) -> impl Iterator<Item = &NodeId> {
        self.membership
            .live
            .iter()
            .filter(|n| !self.draining.contains(*n))
    }

    pub(super) fn hrw_owner(&self, key: u64) -> NodeId {
        let c: Vec<&NodeId> = self.candidates().collect();
        let pick = if c.is_empty() {
            hrw::owner(key, self.membership.live.iter())
        } else {
            hrw::owner(key, c)
        };
        pick.cloned().unwrap_or_else(|| self.cfg.node.clone())
    }

    /// A recorded owner that is live keeps the SA; a dead owner's SA goes to HRW of the
    /// SPI pair over the live members.
    pub(super) fn effective_owner(&self, spi: u64, o: &Owner) -> NodeId {
        if self.membership.live.contains(&o.node) {
            o.node.clone()
        } else {
            self.hrw_owner(hrw::sa_key(o.spi_i, spi))
        }
    }

    // ----- inputs ---------------------------------------------------------------------

    /// One IKE datagram received on the shared address. Returns whether this node owns
    /// it (and passed it to the endpoint); other nodes' datagrams are dropped here.
    pub fn handle_datagram(
        &mut self,
        now: Instant,
        local: SocketAddr,
        remote: SocketAddr,
        data: &[u8],
    ) -> bool {
        let Ok(view) = HeaderView::new_checked(data) else {
            return false;
        };
        let flags = view.flags();
        let spi_i = view.spi_i();
        let new_sa = view.exchange() == ExchangeType::IKE_SA_INIT
            && !flags.response()
            && view.spi_r() == IkeSpi::ZERO;
        let our_spi = if flags.initiator() {
            view.spi_r().0
        } else {
            spi_i.0
        };
        let owner = if new_sa {
            self.hrw_owner(hrw::init_key(spi_i.0, remote.ip()))
        } else if self.owned.contains(&our_spi) {
            self.cfg.node.clone()
        } else if let Some(o) = self.index.get(&our_spi) {
            self.effective_owner(our_spi, o)
        } else {
            // Half-open (not replicated): the node that took the IKE_SA_INIT.
            self.hrw_owner(hrw::init_key(spi_i.0, remote.ip()))
        };
        if owner != self.cfg.node || self.transfers.contains_key(&our_spi) {
            self.counters.not_owner += 1;
            return false;
        }
        if !new_sa && !self.owned.contains(&our_spi) && self.index.contains_key(&our_spi) {
            // Ownership came to us (membership change not yet processed): take over now,
            // under the same fencing rule as any takeover; a minority must not answer.
            if !self.fenced_takeover_possible() {
                self.counters.not_owner += 1;
                return false;
            }
            self.take_over(now, our_spi);
        }
        if self.sync_due.contains(&our_spi) && self.cfg.sync_rate.is_none() {
            // RFC 6311 §7 lazy mode: sync on the first datagram after the failover.
            self.start_sync(now, our_spi);
        }
        self.endpoint.handle_datagram(now, local, remote, data);
        if flags.response() {
            // The answer to our request: no datagram leaves, but the record must no
            // longer carry the request as outstanding (a new owner would resend it).
            self.touched_extra.push(our_spi);
        }
        self.pump(now, false);
        self.flush_unblocks();
        true
    }

    /// Runs timers: the endpoint's, eager syncs, transfers, `ack` holds, lease renewals.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.endpoint.handle_timeout(now);
        self.pump(now, false);
        if self.takeover_pending {
            self.take_over_orphans(now);
        }
        self.run_sync_queue(now);
        self.run_transfer_queue(now);
        self.check_progress(now);
    }

    /// The data plane reports that an SA of a Child SA (inbound or outbound SPI) reached
    /// its soft lifetime (rekey) or hard lifetime (gone).
    pub fn handle_child_expire(&mut self, now: Instant, spi: u32, hard: bool) {
        let spi_in = self.by_spi_out.get(&spi).copied().unwrap_or(spi);
        self.endpoint.handle_child_expire(now, spi_in, hard);
        self.pump(now, false);
    }

    /// New membership from the heartbeat: SAs of dead owners that HRW gives us are
    /// taken over; a joining node gets its fair share.
    pub fn handle_membership(&mut self, now: Instant, m: Membership) {
        let old = std::mem::replace(&mut self.membership, m);
        self.membership.live.insert(self.cfg.node.clone());
        let peers: BTreeSet<NodeId> = self
            .membership
            .live
            .iter()
            .filter(|n| **n != self.cfg.node)
            .cloned()
            .collect();
        self.log.set_live_members(&peers);
        self.take_over_orphans(now);
        let joined: Vec<NodeId> = self
            .membership
            .live
            .difference(&old.live)
            .cloned()
            .collect();
        if !joined.is_empty() {
            self.rebalance_to(&joined);
            self.transfer_next.get_or_insert(now);
        }
        self.check_progress(now);
    }

    /// A replication connection to `peer` is up (its Hello carried `incarnation`).
    pub fn handle_peer_connected(
        &mut self,
        now: Instant,
        peer: &NodeId,
        incarnation: u64,
    ) -> Result<(), ReplError> {
        self.log.peer_connected(peer, incarnation)?;
        self.check_progress(now);
        Ok(())
    }

    /// The replication connection to `peer` is gone.
    pub fn handle_peer_disconnected(&mut self, now: Instant, peer: &NodeId) {
        self.log.peer_disconnected(peer);
        self.check_progress(now);
    }

    /// A replication message from `from`. On error, drop the connection to `from`.
    pub fn handle_repl_message(
        &mut self,
        now: Instant,
        from: &NodeId,
        data: &[u8],
    ) -> Result<(), ReplError> {
        let r = self.log.handle_message(from, data);
        self.drain_repl_events(now);
        self.check_progress(now);
        r
    }

    /// An asynchronous replay checkpoint from the kernel (XFRM replay event) for the SA
    /// with this SPI (inbound: top and bitmap; outbound: sequence number). Replicated
    /// (coalesced); renews the outbound lease when half of it is used.
    pub fn handle_replay_checkpoint(&mut self, now: Instant, spi: u32, state: &ReplayState) {
        let (spi_in, outbound) = match self.by_spi_out.get(&spi) {
            Some(i) => (*i, true),
            None => (spi, false),
        };
        let Some(c) = self.children.get_mut(&spi_in) else {
            return;
        };
        if outbound {
            c.rec.oseq = c.rec.oseq.max(state.oseq);
        } else if state.seq >= c.rec.seq {
            c.rec.seq = state.seq;
            c.rec.bitmap = state.bitmap.clone();
        }
        let half = c.rec.lease_start + (c.granted_end.saturating_sub(c.rec.lease_start)) / 2;
        if outbound && c.renewing.is_none() && c.rec.oseq >= half {
            self.start_renewal(spi_in);
        } else {
            let _ = self.log.publish(record::child_key(spi_in), c.rec.encode());
        }
        self.check_progress(now);
    }

    /// Asks the quorum for the next lease of Child SA `spi_in` (granted in
    /// `grant_renewals` once acked, then the kernel limit is raised).
    pub(super) fn start_renewal(&mut self, spi_in: u32) {
        let chunk = self.cfg.lease_chunk;
        let Some(c) = self.children.get_mut(&spi_in) else {
            return;
        };
        if c.renewing.is_some() || c.moved {
            return;
        }
        let new_end = c.granted_end.saturating_add(chunk);
        c.rec.lease_end = c.rec.lease_end.max(new_end);
        let payload = c.rec.encode();
        if let Ok(t) = self.log.publish(record::child_key(spi_in), payload)
            && let Some(c) = self.children.get_mut(&spi_in)
        {
            c.renewing = Some((t, new_end));
            self.renewing.insert(spi_in);
        }
        self.note_lease(spi_in);
    }

    /// Takes an exported IKE SA record (`ike::export`) as owned by this node: imports
    /// it, installs its Child SAs (fresh leases) and replicates it. For migrating SAs from
    /// a standalone gateway, and for benchmarks.
    pub fn adopt(
        &mut self,
        now: Instant,
        record: &[u8],
    ) -> Result<IkeSaId, ike::export::ImportError> {
        let id = self.endpoint.import(now, record)?;
        self.owned.insert(id.0);
        self.track_owned_vip(id.0);
        self.endpoint.reinstall_children(id);
        self.pump(now, false);
        Ok(id)
    }

    /// Queues every pending effect of the endpoint after an operator action on it
    /// (see [`ClusterNode::endpoint_mut`]).
    pub fn flush(&mut self, now: Instant) {
        self.pump(now, false);
        self.check_progress(now);
    }

    // ----- outputs --------------------------------------------------------------------

    /// The next effect to execute, in order; replication messages come last.
    pub fn poll_effect(&mut self) -> Option<ClusterEffect> {
        if let Some(e) = self.effects.pop_front() {
            return Some(e);
        }
        self.log
            .poll_transmit()
            .map(|(to, data)| ClusterEffect::Replicate { to, data })
    }

    /// When [`ClusterNode::handle_timeout`] has work next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let held = self.held.iter().map(|h| h.deadline).min();
        let sync = self.sync_next.filter(|_| !self.sync_queue.is_empty());
        let transfer = self
            .transfer_next
            .filter(|_| !self.transfer_queue.is_empty());
        [
            self.endpoint.poll_timeout(),
            held,
            sync,
            transfer,
            self.transfer_timeout(),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    // ----- internals ------------------------------------------------------------------

    /// Moves the endpoint's effects out: kernel effects go at once (decorated with
    /// leases), records of touched SAs are published, and IKE datagrams are held in
    /// `ack` mode (or always, with `force_hold`, for RFC 6311 sync requests) until the
    /// records are acked by all live members.
    pub(super) fn pump(&mut self, now: Instant, force_hold: bool) {
        let mut touched: Vec<u64> = std::mem::take(&mut self.touched_extra);
        let mut sends: Vec<Effect> = Vec::new();
        let mut sync_sends = false;
        while let Some(e) = self.endpoint.poll_effect() {
            match e {
                Effect::Send {
                    local,
                    remote,
                    data,
                } => {
                    if let Ok(v) = HeaderView::new_checked(&data[..]) {
                        touched.push(v.spi_r().0);
                        touched.push(v.spi_i().0);
                        if v.message_id() == 0 && !v.flags().response() {
                            sync_sends |= self.note_sync_send([v.spi_r().0, v.spi_i().0], &data);
                        }
                    }
                    sends.push(Effect::Send {
                        local,
                        remote,
                        data,
                    });
                }
                Effect::InstallChild(ci) => {
                    touched.push(ci.ike_sa.0);
                    let inst = self.decorate_install(*ci);
                    self.effects
                        .push_back(ClusterEffect::InstallChild(Box::new(inst)));
                }
                Effect::DeleteChild(cd) => {
                    touched.push(cd.ike_sa.0);
                    self.forget_child(cd.spi_in);
                    self.effects
                        .push_back(ClusterEffect::Ike(Effect::DeleteChild(cd)));
                }
                Effect::Event(ev) => {
                    match &ev {
                        SaEvent::IkeUp { id, .. } => {
                            self.owned.insert(id.0);
                            self.track_owned_vip(id.0);
                            touched.push(id.0);
                        }
                        SaEvent::IkeRekeyed { old, new } => {
                            if self.pinned.remove(&old.0) {
                                self.pinned.insert(new.0);
                            }
                            self.owned.insert(new.0);
                            self.track_owned_vip(new.0);
                            touched.push(old.0);
                            touched.push(new.0);
                        }
                        SaEvent::IkeDown { id, reason } => {
                            self.untrack_vip(id.0);
                            touched.push(id.0);
                            if *reason == "peer_not_responding_to_sync" {
                                self.counters.syncs_failed += 1;
                                self.effects.push_back(ClusterEffect::Event(
                                    ClusterEvent::SyncGaveUp { id: *id },
                                ));
                            }
                        }
                        SaEvent::MessageIdsSynced { id } => {
                            self.counters.syncs_completed += 1;
                            touched.push(id.0);
                            self.rekey_after_jump(now, id.0);
                        }
                        _ => {}
                    }
                    self.effects
                        .push_back(ClusterEffect::Ike(Effect::Event(ev)));
                }
                other => self.effects.push_back(ClusterEffect::Ike(other)),
            }
        }
        touched.sort_unstable();
        touched.dedup();
        let mut tokens = Vec::new();
        for spi in touched {
            if let Some(t) = self.publish_sa(now, spi) {
                tokens.push(t);
            }
        }
        if sends.is_empty() {
            return;
        }
        // RFC 6311 §5.1 SHOULD: every sync request (first or retransmitted) is replicated
        // before it leaves, so a second failover never replays its M1 or nonce.
        let hold = force_hold || sync_sends || self.cfg.sync == SyncMode::Ack;
        if hold && !tokens.is_empty() {
            self.held.push_back(Held {
                tokens,
                deadline: now + self.cfg.ack_timeout,
                effects: sends,
            });
            self.release_held(now);
        } else {
            self.effects
                .extend(sends.into_iter().map(ClusterEffect::Ike));
        }
    }

    /// Whether `data` (a Message ID 0 request) is the RFC 6311 sync request in flight of
    /// one of our SAs; a retransmission (a new request the endpoint made after no
    /// answer) is counted and reported.
    fn note_sync_send(&mut self, spis: [u64; 2], data: &[u8]) -> bool {
        for spi in spis {
            let Some(a) = self
                .endpoint
                .ike_sa(IkeSaId(spi))
                .and_then(|sa| sa.msgids.sync_pending.as_ref())
                .filter(|a| a.datagrams.iter().any(|d| d[..] == *data))
            else {
                continue;
            };
            if a.transmissions > 1 {
                let (m1, p1) = (a.m1, a.p1);
                self.counters.sync_retransmissions += 1;
                self.effects
                    .push_back(ClusterEffect::Event(ClusterEvent::SyncRetransmitted {
                        id: IkeSaId(spi),
                        m1,
                        p1,
                    }));
            }
            return true;
        }
        false
    }

    /// Publishes the record of an SA we own, or its tombstone if it is gone from our
    /// endpoint. Returns the write's token.
    pub(super) fn publish_sa(&mut self, now: Instant, spi: u64) -> Option<Token> {
        if !self.owned.contains(&spi) || self.skip_publish == Some(spi) {
            return None;
        }
        let Some(ike) = self.endpoint.export(IkeSaId(spi), now) else {
            self.pinned.remove(&spi);
            self.owned.remove(&spi);
            self.index.remove(&spi);
            self.sync_due.remove(&spi);
            return Some(self.log.delete(record::ike_key(spi)));
        };
        let spi_i = self
            .endpoint
            .ike_sa(IkeSaId(spi))
            .map_or(0, |sa| sa.spis.spi_i.0);
        let rec = SaRecord {
            owner: self.cfg.node.clone(),
            epoch: self.membership.epoch,
            exact: Vec::new(),
            pinned: self.pinned.contains(&spi),
            ike,
        };
        self.index.insert(
            spi,
            Owner {
                node: self.cfg.node.clone(),
                spi_i,
            },
        );
        self.log.publish(record::ike_key(spi), rec.encode()).ok()
    }

    /// Adds the replay state and outbound lease to an install; records the Child SA.
    fn decorate_install(&mut self, child: ike::endpoint::ChildInstall) -> ClusterInstall {
        let spi_in = child.inbound.spi;
        let spi_out = child.outbound.spi;
        let ov = self.overrides.remove(&spi_in);
        let (start, end, oseq, inbound) = match &ov {
            Some(o) => (o.lease_start, o.lease_end, o.oseq, Some(o.inbound.clone())),
            // A new Child SA: nobody else has its keys; the implicit first lease is
            // [1, chunk] (a taker of it starts above every lease it knows, at least chunk).
            None => (1, self.cfg.lease_chunk, 0, None),
        };
        let rec = ChildRecord {
            spi_out,
            lease_start: start,
            lease_end: end,
            oseq: start.saturating_sub(1),
            seq: inbound.as_ref().map_or(0, |s| s.seq),
            bitmap: inbound.as_ref().map_or_else(Vec::new, |s| s.bitmap.clone()),
        };
        let _ = oseq;
        let _ = self.log.publish(record::child_key(spi_in), rec.encode());
        self.by_spi_out.insert(spi_out, spi_in);
        self.note_child(spi_in, spi_out);
        let policy = super::standby::policy_key(&child.local_ts, &child.remote_ts);
        *self.owned_policies.entry(policy).or_default() += 1;
        if let Some(old) = self.children.insert(
            spi_in,
            OwnedChild {
                dst: child.outbound.dst,
                rec,
                granted_end: end,
                renewing: None,
                policy,
                ike: child.ike_sa.0,
                esn: child.suite.esn,
                moved: false,
            },
        ) {
            self.unref_owned_policy(old.policy);
        }
        self.note_lease(spi_in);
        ClusterInstall {
            outbound_replay: (start > 1).then(|| ReplayState {
                oseq: start - 1,
                seq: 0,
                bitmap: Vec::new(),
            }),
            inbound_replay: inbound,
            outbound_hard_packets: end.saturating_sub(start).saturating_add(1),
            outbound_soft_packets: soft_packets(start, end),
            child,
        }
    }

    fn note_lease(&mut self, spi_in: u32) {
        if let Some(c) = self.children.get(&spi_in) {
            let e = self.lease_seen.entry(c.rec.spi_out).or_insert(0);
            *e = (*e).max(c.rec.lease_end);
        }
    }

    pub(super) fn forget_child(&mut self, spi_in: u32) {
        if self.drop_owned_child(spi_in).is_some() {
            self.log.delete(record::child_key(spi_in));
            self.try_prune_lease(spi_in);
        }
    }

    /// Removes an owned Child SA from our tables (deleted, or handed to another node).
    pub(super) fn drop_owned_child(&mut self, spi_in: u32) -> Option<OwnedChild> {
        let c = self.children.remove(&spi_in)?;
        self.by_spi_out.remove(&c.rec.spi_out);
        self.unref_owned_policy(c.policy);
        Some(c)
    }

    fn unref_owned_policy(&mut self, policy: u64) {
        match self.owned_policies.get_mut(&policy) {
            Some(n) if *n > 1 => *n -= 1,
            _ => {
                self.owned_policies.remove(&policy);
            }
        }
    }

    pub(super) fn quorum(&self) -> usize {
        if self.cfg.lease_quorum > 0 {
            self.cfg.lease_quorum
        } else {
            self.cfg.nodes.len() / 2 + 1
        }
    }

    /// Releases held datagrams whose records are acked (or timed out), grants lease
    /// renewals that reached their quorum, advances transfers.
    pub(super) fn check_progress(&mut self, now: Instant) {
        self.update_pool_pause();
        self.flush_unblocks();
        self.release_held(now);
        self.grant_renewals();
        self.advance_transfers(now);
    }

    fn release_held(&mut self, now: Instant) {
        let mut keep = VecDeque::new();
        while let Some(h) = self.held.pop_front() {
            let acked = h
                .tokens
                .iter()
                .all(|t| self.log.is_acked_by_all_live(t) || self.log.is_superseded(t));
            if acked || h.deadline <= now {
                if !acked {
                    self.counters.ack_timeouts += 1;
                    self.effects
                        .push_back(ClusterEffect::Event(ClusterEvent::AckTimeout));
                }
                self.effects
                    .extend(h.effects.into_iter().map(ClusterEffect::Ike));
            } else {
                keep.push_back(h);
            }
        }
        self.held = keep;
    }

    fn grant_renewals(&mut self) {
        if self.renewing.is_empty() {
            return;
        }
        let quorum = self.quorum();
        let peers: Vec<NodeId> = self
            .cfg
            .nodes
            .iter()
            .filter(|n| **n != self.cfg.node)
            .cloned()
            .collect();
        let mut granted = Vec::new();
        self.renewing.retain(|s| self.children.contains_key(s));
        for spi_in in &self.renewing {
            let Some(c) = self.children.get(spi_in) else {
                continue;
            };
            if let Some((t, end)) = &c.renewing {
                let acks = 1 + peers.iter().filter(|p| self.log.is_acked_by(p, t)).count();
                if acks >= quorum {
                    granted.push((*spi_in, *end));
                }
            }
        }
        for (spi_in, end) in granted {
            self.renewing.remove(&spi_in);
            // On its way to another node: the renewed end is the target's; our SA stays
            // at its transfer cap.
            let capped = self.is_capped(spi_in);
            if let Some(c) = self.children.get_mut(&spi_in) {
                c.renewing = None;
                c.granted_end = end;
                self.counters.lease_renewals += 1;
                if capped {
                    continue;
                }
                self.effects.push_back(ClusterEffect::UpdateOutboundLease {
                    spi_out: c.rec.spi_out,
                    dst: c.dst,
                    hard_packets: end.saturating_sub(c.rec.lease_start).saturating_add(1),
                    soft_packets: soft_packets(c.rec.lease_start, end),
                });
            }
        }
    }

    fn drain_repl_events(&mut self, now: Instant) {
        while let Some(ev) = self.log.poll_event() {
            match ev {
                ReplEvent::Changed { key, deleted, .. } => self.record_changed(now, &key, deleted),
                ReplEvent::PeerSynced(_) => {
                    if self.takeover_pending {
                        self.take_over_orphans(now);
                    }
                }
                ReplEvent::Overruled { key, value } => self.overruled(now, &key, &value),
                ReplEvent::Acked(_) | ReplEvent::Superseded(_) => {}
            }
        }
    }

    fn record_changed(&mut self, now: Instant, key: &crate::replog::RecordKey, deleted: bool) {
        if let Some(node) = record::drain_key_node(key) {
            if deleted {
                self.draining.remove(&node);
            } else {
                self.draining.insert(node.clone());
                if node == self.cfg.node {
                    self.start_drain(now);
                }
            }
            return;
        }
        if let Some(spi) = record::was_key_spi(key) {
            if deleted {
                self.forget_was(spi);
            } else {
                self.was_spis.insert(spi);
                self.was_changed(now, key);
            }
            return;
        }
        if let Some(spi_in) = record::child_key_spi(key) {
            match self.log.get(key).and_then(ChildRecord::decode) {
                Some(rec) => {
                    let e = self.lease_seen.entry(rec.spi_out).or_insert(0);
                    *e = (*e).max(rec.lease_end);
                    self.note_child(spi_in, rec.spi_out);
                    self.move_above_foreign_lease(now, rec.spi_out);
                }
                None if deleted => self.try_prune_lease(spi_in),
                None => {}
            }
            return;
        }
        let Some(spi) = record::ike_key_spi(key) else {
            return;
        };
        if deleted {
            self.index.remove(&spi);
            // Facts left for its owner are moot now.
            if self.was_spis.remove(&spi) {
                let keys: Vec<_> = self
                    .cfg
                    .nodes
                    .iter()
                    .map(|n| record::was_key(spi, n))
                    .collect();
                for k in keys {
                    if self.log.get(&k).is_some() {
                        self.log.delete(k);
                    }
                }
            }
            if !self.owned.contains(&spi) {
                // Its owner deleted it, with its Child SAs: their block policies go
                // (not those our own Child SAs use), the virtual IP is free again (if no
                // other SA, e.g. its rekeyed successor, holds it), and the lease entries
                // of its Child SAs whose records are deleted too.
                self.unblock_sa(spi);
                self.untrack_vip(spi);
                self.set_record_kids(spi, Vec::new());
            }
            return;
        }
        let Some((owner, spi_i)) = self.log.get(key).and_then(SaRecord::peek) else {
            return;
        };
        self.index.insert(
            spi,
            Owner {
                node: owner.clone(),
                spi_i,
            },
        );
        if owner != self.cfg.node && !self.owned.contains(&spi) {
            self.standby_record(now, spi);
        }
        let dead_owner = !self.membership.live.contains(&owner);
        if owner == self.cfg.node && !self.owned.contains(&spi) {
            // Handed to us (transfer or rebalancing).
            self.take_over(now, spi);
        } else if dead_owner && !self.owned.contains(&spi) {
            // Written for (or by) a node that is gone, e.g. a transfer to a node that died
            // meanwhile: HRW over the live members decides, as after any death.
            self.take_over_orphans(now);
        } else if owner != self.cfg.node && self.owned.contains(&spi) {
            // Another node's newer write owns it (a partition healed): step back, and
            // leave what we did with it meanwhile for the owner to merge.
            self.leave_facts(now, spi);
            self.lose_ownership(now, spi, owner);
            self.standby_record(now, spi);
        }
    }

    /// The set of held sends, for tests of the `ack` behaviour.
    pub fn held_datagrams(&self) -> usize {
        self.held.iter().map(|h| h.effects.len()).sum()
    }

    pub(super) fn sync_interval(&self) -> Duration {
        let rate = self.cfg.sync_rate.unwrap_or(1).max(1);
        Duration::from_nanos(1_000_000_000 / u64::from(rate))
    }
}

/// Soft packet limit for a lease [start, end]: three quarters of it (renewal starts at
/// one half, so with a quorum the soft limit is never reached).
fn soft_packets(start: u64, end: u64) -> u64 {
    let len = end.saturating_sub(start).saturating_add(1);
    (len / 4).saturating_mul(3).max(1)
}
