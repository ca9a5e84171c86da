//! Transfer of a live IKE SA to another node with exact counters, drain, rebalancing
//! on join, and the `ikectl cluster` status.
//!
//! A transfer is make-before-break both ways (docs/architecture.md, "Transfer, drain,
//! join"):
//!
//! 1. Renewing (only if the lease has little left): the outbound lease is renewed with
//!    the quorum first, while traffic still flows here, so that the target never starts
//!    on a lease it would have to renew before its first packets.
//! 2. Cutover: each outbound SA is capped in the data plane a margin past its sequence
//!    number (its last usable number is the counter handed over), the inbound windows
//!    are read (XFRM_MSG_GETAE), and the record naming the target is published at once.
//! 3. Overlap: we keep sending (up to the cap) and delivering until the target acks
//!    the record. The target starts above the cap and acks only after its installs
//!    (its effects run before its replication messages leave), so nothing is lost;
//!    a packet meanwhile may be delivered or sent by both nodes (each under its own
//!    sequence numbers: the bounded overlap).
//! 4. The ack: our policies go to block and our Child SAs are removed.

use std::collections::HashMap;
use std::time::Instant;

use heartbeat::NodeId;
use ike::endpoint::{ChildDelete, Effect};
use ike::sa::IkeSaId;
use xfrm::ReplayState;

use super::node::ClusterNode;
use super::record::{self, ExactCounters, SaRecord};
use super::{
    BlockPolicies, ClusterEffect, ClusterEvent, ClusterStatus, CommandError, MemberStatus,
};
use crate::replog::Token;

/// Where a transfer out stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// Renewing an outbound lease with little left first; nothing blocked yet.
    Renewing,
    /// The outbound SAs are capped; the replay states are being read.
    Reading,
    /// The record naming the target is published; we send (up to the caps) and deliver
    /// until the target acks it.
    HandedOver,
}

/// A transfer out in progress.
#[derive(Debug)]
pub(super) struct Transfer {
    to: NodeId,
    phase: Phase,
    /// SPIs (inbound and outbound of every Child SA) whose replay state is awaited.
    waiting: Vec<u32>,
    states: HashMap<u32, ReplayState>,
    /// Per Child SA: its policies (all to block once the target acked) and the delete
    /// of its SAs that follows.
    children: Vec<(BlockPolicies, ChildDelete)>,
    /// Set when the record naming the target is published.
    token: Option<Token>,
    /// An operator's transfer (pinned at the target), not drain or rebalancing.
    pinned: bool,
    /// A lease renewal is waited for until then at most (the SA's IKE datagrams are
    /// not answered meanwhile); then the target gets what is left.
    renewal_deadline: Instant,
}

impl ClusterNode {
    /// Moves owned IKE SA `id` to live node `to`: its outbound SAs are capped a margin
    /// past their sequence numbers and the inbound windows read (answers via
    /// [`ClusterNode::handle_replay_state`]), the record names `to` with the caps and
    /// windows, and once `to` acked it (it has installed, starting above the caps) our
    /// policies go to block and our Child SAs are removed. No RFC 6311 is needed: the
    /// Message IDs are exact.
    ///
    /// This is the operator's transfer: the SA stays on `to` when nodes join later
    /// (rebalancing leaves it alone); drain still moves it.
    pub fn transfer(&mut self, now: Instant, id: IkeSaId, to: &NodeId) -> Result<(), CommandError> {
        self.start_transfer(now, id, to, true)
    }

    pub(super) fn start_transfer(
        &mut self,
        now: Instant,
        id: IkeSaId,
        to: &NodeId,
        pinned: bool,
    ) -> Result<(), CommandError> {
        if !self.owned.contains(&id.0) {
            return Err(CommandError::NotOwned(id));
        }
        if *to == self.cfg.node || !self.membership.live.contains(to) {
            return Err(CommandError::NotLive(to.clone()));
        }
        if self.transfers.contains_key(&id.0) {
            return Err(CommandError::Busy(id));
        }
        let Some(sa) = self.endpoint.ike_sa(id) else {
            return Err(CommandError::NotOwned(id));
        };
        let kids: Vec<u32> = sa.children.iter().map(|c| c.spi_in).collect();
        // The target continues in our lease and must never send past what the quorum
        // granted. A lease with little left is renewed now, before the cutover. The last
        // checkpoint may be behind by up to a quarter lease (the replay event
        // threshold), hence three quarters.
        let chunk = self.cfg.lease_chunk;
        let short = |c: &super::node::OwnedChild| {
            c.granted_end.saturating_sub(c.rec.oseq) < chunk / 2 + chunk / 4
        };
        if self.membership.live.len() >= self.quorum() {
            for spi_in in kids {
                if self.children.get(&spi_in).is_some_and(short) {
                    self.start_renewal(spi_in);
                }
            }
        }
        self.transfers.insert(
            id.0,
            Transfer {
                to: to.clone(),
                phase: Phase::Renewing,
                waiting: Vec::new(),
                states: HashMap::new(),
                children: Vec::new(),
                token: None,
                pinned,
                renewal_deadline: now + self.cfg.ack_timeout,
            },
        );
        self.advance_transfers(now);
        Ok(())
    }

    /// Cutover: caps the outbound SA of every Child SA of `spi` a margin past its
    /// current sequence number, in the kernel (the cap's last usable number comes back
    /// as its final `oseq`: the target starts above it), and reads the inbound windows.
    /// Everything stays in place: we keep sending (up to the cap) and delivering until
    /// the target has installed, so neither direction has a gap.
    fn cut_over(&mut self, spi: u64) {
        let id = IkeSaId(spi);
        let Some(sa) = self.endpoint.ike_sa(id).cloned() else {
            self.transfers.remove(&spi);
            return;
        };
        let mut children = Vec::with_capacity(sa.children.len());
        let mut waiting = Vec::with_capacity(2 * sa.children.len());
        for c in &sa.children {
            let (bp, del) = super::standby::block_and_delete(&sa, c);
            // Tracked like a standby's from now on (the SA will be another node's); the
            // policies go to block once the target acked.
            self.register_block(&bp);
            let lease_end = self.children.get(&c.spi_in).map_or(0, |o| o.granted_end);
            waiting.push(c.spi_out);
            self.effects.push_back(ClusterEffect::CapOutbound {
                spi_out: c.spi_out,
                dst: sa.remote_addr.ip(),
                lease_end,
                margin: self.transfer_margin(),
            });
            waiting.push(c.spi_in);
            self.effects.push_back(ClusterEffect::ReadReplayState {
                spi: c.spi_in,
                dst: sa.local_addr.ip(),
            });
            children.push((bp, del));
        }
        if let Some(t) = self.transfers.get_mut(&spi) {
            t.phase = Phase::Reading;
            t.waiting = waiting;
            t.children = children;
        }
    }

    /// Whether owned Child SA `spi_in` is in a transfer past its cutover: its outbound
    /// SA is capped, and its data-plane limit must not be raised again (the target
    /// starts above the cap).
    pub(super) fn is_capped(&self, spi_in: u32) -> bool {
        self.transfers.values().any(|t| {
            t.phase != Phase::Renewing && t.children.iter().any(|(_, d)| d.spi_in == spi_in)
        })
    }

    /// Outbound packets a transfer's source may still send after its cutover, while the
    /// target installs (one replication hop): a sixteenth of a lease (65,536 packets
    /// with the default lease: over a minute at 1,000 packets/s), skipped by the target
    /// whatever is used of it. Only a hop longer than that leaves a gap.
    fn transfer_margin(&self) -> u64 {
        (self.cfg.lease_chunk / 16).max(1)
    }

    /// The answer to a [`ClusterEffect::ReadReplayState`] or
    /// [`ClusterEffect::CapOutbound`].
    pub fn handle_replay_state(&mut self, now: Instant, spi: u32, state: &ReplayState) {
        for t in self.transfers.values_mut() {
            if let Some(p) = t.waiting.iter().position(|s| *s == spi) {
                t.waiting.swap_remove(p);
                t.states.insert(spi, state.clone());
                break;
            }
        }
        self.check_progress(now);
    }

    /// Whether a renewal of a Child SA of IKE SA `spi` waits for a quorum that can
    /// still grant it (with too few live members it is given up and the target
    /// starts with what is left).
    fn renewal_pending(&self, spi: u64) -> bool {
        self.membership.live.len() >= self.quorum()
            && self.endpoint.ike_sa(IkeSaId(spi)).is_some_and(|sa| {
                sa.children.iter().any(|c| {
                    self.children
                        .get(&c.spi_in)
                        .is_some_and(|ch| ch.renewing.is_some())
                })
            })
    }

    /// After the cutover's read: a lease that is (nearly) used up all the same (more
    /// than a quarter lease sent since the last checkpoint) is renewed before the
    /// handover. Returns whether the handover must wait for it.
    fn renew_before_handover(&mut self, now: Instant, spi: u64) -> bool {
        let Some(t) = self.transfers.get(&spi) else {
            return false;
        };
        if now >= t.renewal_deadline || self.membership.live.len() < self.quorum() {
            return false;
        }
        let kids: Vec<(u32, u64)> = t
            .children
            .iter()
            .map(|(_, d)| {
                let oseq = t.states.get(&d.spi_out).map_or(0, |s| s.oseq);
                (d.spi_in, oseq)
            })
            .collect();
        let quarter = self.cfg.lease_chunk / 4;
        let mut wait = false;
        for (spi_in, oseq) in kids {
            let Some(c) = self.children.get(&spi_in) else {
                continue;
            };
            if c.granted_end.saturating_sub(oseq) >= quarter || oseq > c.granted_end {
                // Enough left: a renewal still on its way is not waited for (the target
                // renews on its own when it needs to). Or the counter is unknown (read
                // as the whole space used): no renewal helps, the target rekeys.
                continue;
            }
            if c.renewing.is_none() {
                self.start_renewal(spi_in);
            }
            wait = true;
        }
        wait
    }

    /// Moves every transfer on: cutover once its leases are renewed, handover once its
    /// states are read, removal of our Child SAs once the target acked.
    pub(super) fn advance_transfers(&mut self, now: Instant) {
        if self.transfers.is_empty() {
            return;
        }
        let mut cancel = Vec::new();
        let mut cut = Vec::new();
        let mut read = Vec::new();
        let mut done = Vec::new();
        let mut orphaned = Vec::new();
        for (spi, t) in &self.transfers {
            let live = self.membership.live.contains(&t.to);
            match t.phase {
                // Nothing blocked yet: a target that died is simply not used.
                Phase::Renewing if !live => cancel.push(*spi),
                Phase::Renewing if now >= t.renewal_deadline || !self.renewal_pending(*spi) => {
                    cut.push(*spi);
                }
                Phase::Renewing => {}
                Phase::Reading if t.waiting.is_empty() => read.push(*spi),
                Phase::Reading => {}
                Phase::HandedOver => {
                    if t.token
                        .as_ref()
                        .is_some_and(|tok| self.log.is_acked_by(&t.to, tok))
                    {
                        done.push(*spi);
                    } else if !live {
                        // The target died before it acked: HRW over the live members
                        // owns the SA now (if that is us, the takeover already removed
                        // this transfer); ours must stop delivering.
                        orphaned.push(*spi);
                    }
                }
            }
        }
        for spi in cancel {
            self.transfers.remove(&spi);
        }
        for spi in cut {
            self.cut_over(spi);
            // The answers may have come already (a data plane that reads at once).
            if self
                .transfers
                .get(&spi)
                .is_some_and(|t| t.phase == Phase::Reading && t.waiting.is_empty())
            {
                read.push(spi);
            }
        }
        for spi in read {
            if !self.renew_before_handover(now, spi) {
                self.hand_over(now, spi);
            }
        }
        for spi in orphaned {
            if let Some(t) = self.transfers.remove(&spi) {
                self.remove_transferred(t.children);
            }
        }
        for spi in done {
            if let Some(t) = self.transfers.remove(&spi) {
                self.remove_transferred(t.children);
                self.counters.transfers_out += 1;
                self.effects
                    .push_back(ClusterEffect::Event(ClusterEvent::TransferredOut {
                        id: IkeSaId(spi),
                        to: t.to,
                    }));
            }
        }
    }

    /// The end of the overlap: our policies go to block, then our SAs go.
    fn remove_transferred(&mut self, children: Vec<(BlockPolicies, ChildDelete)>) {
        for (bp, d) in children {
            self.effects
                .push_back(ClusterEffect::BlockPolicies(Box::new(bp)));
            self.effects
                .push_back(ClusterEffect::Ike(Effect::DeleteChild(Box::new(d))));
        }
    }

    fn hand_over(&mut self, now: Instant, spi: u64) {
        let id = IkeSaId(spi);
        let Some(t) = self.transfers.get(&spi) else {
            return;
        };
        let to = t.to.clone();
        let to_live = to.clone();
        let mut exact = Vec::new();
        let spi_i = self.endpoint.ike_sa(id).map_or(0, |sa| sa.spis.spi_i.0);
        if let Some(sa) = self.endpoint.ike_sa(id) {
            for c in &sa.children {
                let inb = t.states.get(&c.spi_in).cloned().unwrap_or_default();
                let out = t.states.get(&c.spi_out).cloned().unwrap_or_default();
                let lease_end = self
                    .children
                    .get(&c.spi_in)
                    .map_or(out.oseq, |ch| ch.granted_end);
                exact.push(ExactCounters {
                    spi_in: c.spi_in,
                    oseq: out.oseq,
                    seq: inb.seq,
                    bitmap: inb.bitmap,
                    lease_end,
                });
            }
        }
        let Some(ike) = self.endpoint.release(id, now) else {
            self.transfers.remove(&spi);
            return;
        };
        for e in &exact {
            self.drop_owned_child(e.spi_in);
        }
        self.owned.remove(&spi);
        self.pinned.remove(&spi);
        self.sync_due.remove(&spi);
        let pinned = self.transfers.get(&spi).is_some_and(|t| t.pinned);
        let rec = SaRecord {
            owner: to.clone(),
            epoch: self.membership.epoch,
            exact,
            pinned,
            ike,
        };
        self.index.insert(
            spi,
            super::node::Owner {
                node: to.clone(),
                spi_i,
            },
        );
        let tok = self.log.publish(record::ike_key(spi), rec.encode()).ok();
        if let Some(t) = self.transfers.get_mut(&spi) {
            t.token = tok;
            t.phase = Phase::HandedOver;
        }
        self.effects
            .push_back(ClusterEffect::Event(ClusterEvent::TransferHandedOver {
                id,
                to,
            }));
        if !self.membership.live.contains(&to_live) {
            // The target died meanwhile: the record names a dead node, so HRW over the
            // live members takes the SA, as after any death (maybe this node).
            self.take_over_orphans(now);
        }
    }

    /// When a transfer waiting for a lease renewal gives up waiting.
    pub(super) fn transfer_timeout(&self) -> Option<Instant> {
        self.transfers
            .values()
            .filter(|t| {
                t.phase == Phase::Renewing || (t.phase == Phase::Reading && t.waiting.is_empty())
            })
            .map(|t| t.renewal_deadline)
            .min()
    }

    /// Drops a transfer out of `spi` (its target died and the SA comes back to us);
    /// removes the Child SAs it left in our data plane (the takeover installs them
    /// anew, with fenced counters, and its policies replace ours).
    pub(super) fn abort_transfer(&mut self, spi: u64) {
        if let Some(t) = self.transfers.remove(&spi) {
            for (_, d) in t.children {
                self.effects
                    .push_back(ClusterEffect::Ike(Effect::DeleteChild(Box::new(d))));
            }
        }
    }

    /// Announces that `node` is draining: it takes no new SAs, and (on that node) every
    /// SA it owns is transferred to HRW over the other live members at the transfer rate.
    pub fn drain(&mut self, now: Instant, node: &NodeId) {
        let _ = self.log.publish(record::drain_key(node), Vec::new());
        self.draining.insert(node.clone());
        if *node == self.cfg.node {
            self.start_drain(now);
        }
        self.check_progress(now);
    }

    /// Ends a drain of `node`.
    pub fn undrain(&mut self, now: Instant, node: &NodeId) {
        self.log.delete(record::drain_key(node));
        self.draining.remove(node);
        self.check_progress(now);
    }

    pub(super) fn start_drain(&mut self, now: Instant) {
        let mut spis: Vec<u64> = self.owned.iter().copied().collect();
        spis.sort_unstable();
        for spi in spis {
            let spi_i = self.index.get(&spi).map_or(0, |o| o.spi_i);
            let to = self.hrw_owner(super::hrw::sa_key(spi_i, spi));
            if to != self.cfg.node {
                self.transfer_queue.push_back((spi, to));
            }
        }
        self.transfer_next.get_or_insert(now);
    }

    /// Fair share for joining nodes: our SAs whose HRW over the new live set is a new
    /// node are transferred to it, at the transfer rate.
    pub(super) fn rebalance_to(&mut self, joined: &[NodeId]) {
        let mut spis: Vec<u64> = self.owned.iter().copied().collect();
        spis.sort_unstable();
        for spi in spis {
            if self.pinned.contains(&spi) {
                continue;
            }
            let spi_i = self.index.get(&spi).map_or(0, |o| o.spi_i);
            let to = self.hrw_owner(super::hrw::sa_key(spi_i, spi));
            if joined.contains(&to) {
                self.transfer_queue.push_back((spi, to));
            }
        }
    }

    pub(super) fn run_transfer_queue(&mut self, now: Instant) {
        if self.transfer_queue.is_empty() {
            self.transfer_next = None;
            return;
        }
        let rate = u64::from(self.cfg.transfer_rate.max(1));
        let interval = std::time::Duration::from_nanos(1_000_000_000 / rate);
        let floor = now
            .checked_sub(std::time::Duration::from_millis(100))
            .unwrap_or(now);
        let mut t = self.transfer_next.unwrap_or(now).max(floor).min(now);
        while t <= now {
            let Some((spi, to)) = self.transfer_queue.pop_front() else {
                break;
            };
            if self.owned.contains(&spi)
                && self.membership.live.contains(&to)
                && self.start_transfer(now, IkeSaId(spi), &to, false).is_ok()
            {
                t += interval;
            }
        }
        self.transfer_next = (!self.transfer_queue.is_empty()).then_some(t);
    }

    /// Transfers queued by drain or rebalancing and not yet started.
    pub fn queued_transfers(&self) -> usize {
        self.transfer_queue.len()
    }

    /// `ikectl cluster`: members, epoch, SAs owned per node, replication lag.
    pub fn status(&self) -> ClusterStatus {
        let mut owned: HashMap<NodeId, usize> = HashMap::new();
        for (spi, o) in &self.index {
            *owned.entry(self.effective_owner(*spi, o)).or_default() += 1;
        }
        let members = self
            .cfg
            .nodes
            .iter()
            .map(|n| {
                let stats = self.log.peer_stats(n);
                MemberStatus {
                    node: n.clone(),
                    live: self.membership.live.contains(n),
                    draining: self.draining.contains(n),
                    sas_owned: owned.get(n).copied().unwrap_or(0),
                    connected: *n == self.cfg.node || stats.as_ref().is_some_and(|s| s.connected),
                    replication_lag: stats.map(|s| s.lag()),
                }
            })
            .collect();
        ClusterStatus {
            node: self.cfg.node.clone(),
            epoch: self.membership.epoch,
            members,
            records: self.index.len(),
            counters: self.counters(),
        }
    }
}
