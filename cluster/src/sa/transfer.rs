//! Transfer of a live IKE SA to another node with exact counters, drain, rebalancing
//! on join, and the `ikectl cluster` status.

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

/// A transfer out in progress.
#[derive(Debug)]
pub(super) struct Transfer {
    to: NodeId,
    /// SPIs (inbound and outbound of every Child SA) whose replay state is awaited.
    waiting: Vec<u32>,
    states: HashMap<u32, ReplayState>,
    /// Child SA deletes to run once the target acked.
    deletes: Vec<ChildDelete>,
    /// Set when the record naming the target is published.
    token: Option<Token>,
    /// An operator's transfer (pinned at the target), not drain or rebalancing.
    pinned: bool,
}

impl ClusterNode {
    /// Moves owned IKE SA `id` to live node `to` with exact counters: its policies go to
    /// block, the exact replay states are read (answers via
    /// [`ClusterNode::handle_replay_state`]), the record names `to`, and once `to` acked
    /// it our Child SAs are removed. No RFC 6311 is needed: the Message IDs are exact.
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
        let Some(sa) = self.endpoint.ike_sa(id).cloned() else {
            return Err(CommandError::NotOwned(id));
        };
        let mut t = Transfer {
            to: to.clone(),
            waiting: Vec::new(),
            states: HashMap::new(),
            deletes: Vec::new(),
            token: None,
            pinned,
        };
        for c in &sa.children {
            // Stop sending first (block policy), then read: the outbound counter read is
            // then final. Tracked like a standby's (the SA will be another node's).
            let bp = BlockPolicies {
                ike_sa: id,
                reqid: c.reqid,
                mode: c.mode,
                local_addr: sa.local_addr.ip(),
                remote_addr: sa.remote_addr.ip(),
                local_ts: c.local_ts.clone(),
                remote_ts: c.remote_ts.clone(),
            };
            self.register_block(&bp);
            self.effects
                .push_back(ClusterEffect::BlockPolicies(Box::new(bp)));
            for (spi, dst) in [
                (c.spi_in, sa.local_addr.ip()),
                (c.spi_out, sa.remote_addr.ip()),
            ] {
                t.waiting.push(spi);
                self.effects
                    .push_back(ClusterEffect::ReadReplayState { spi, dst });
            }
            t.deletes.push(ChildDelete {
                ike_sa: id,
                reqid: c.reqid,
                spi_in: c.spi_in,
                spi_out: c.spi_out,
                local_addr: sa.local_addr.ip(),
                remote_addr: sa.remote_addr.ip(),
                keep_policies: true,
                local_ts: c.local_ts.clone(),
                remote_ts: c.remote_ts.clone(),
            });
        }
        self.transfers.insert(id.0, t);
        self.advance_transfers(now);
        Ok(())
    }

    /// The answer to a [`ClusterEffect::ReadReplayState`].
    pub fn handle_replay_state(&mut self, now: Instant, spi: u32, state: &ReplayState) {
        for t in self.transfers.values_mut() {
            if let Some(p) = t.waiting.iter().position(|s| *s == spi) {
                t.waiting.swap_remove(p);
                t.states.insert(spi, state.clone());
                break;
            }
        }
        // The target continues in our lease; with little of it left, renew it (quorum
        // acked) first: the target must never send past a lease the quorum granted.
        if let Some(&spi_in) = self.by_spi_out.get(&spi)
            && let Some(c) = self.children.get(&spi_in)
            && c.granted_end.saturating_sub(state.oseq) < self.cfg.lease_chunk / 2
            && self.membership.live.len() >= self.quorum()
        {
            self.start_renewal(spi_in);
        }
        self.check_progress(now);
    }

    /// Whether a transfer's Child SAs wait for a lease renewal (that can still be
    /// granted: with too few live members it is given up and the target starts with
    /// what is left).
    fn renewal_pending(&self, t: &Transfer) -> bool {
        self.membership.live.len() >= self.quorum()
            && t.deletes.iter().any(|d| {
                self.children
                    .get(&d.spi_in)
                    .is_some_and(|c| c.renewing.is_some())
            })
    }

    /// Publishes transfers whose states are all read; finishes those the target acked.
    pub(super) fn advance_transfers(&mut self, now: Instant) {
        let ready: Vec<u64> = self
            .transfers
            .iter()
            .filter(|(_, t)| t.waiting.is_empty() && t.token.is_none() && !self.renewal_pending(t))
            .map(|(k, _)| *k)
            .collect();
        for spi in ready {
            self.hand_over(now, spi);
        }
        let done: Vec<u64> = self
            .transfers
            .iter()
            .filter(|(_, t)| {
                t.token
                    .as_ref()
                    .is_some_and(|tok| self.log.is_acked_by(&t.to, tok))
            })
            .map(|(k, _)| *k)
            .collect();
        for spi in done {
            if let Some(t) = self.transfers.remove(&spi) {
                for d in t.deletes {
                    self.effects
                        .push_back(ClusterEffect::Ike(Effect::DeleteChild(Box::new(d))));
                }
                self.counters.transfers_out += 1;
                self.effects
                    .push_back(ClusterEffect::Event(ClusterEvent::TransferredOut {
                        id: IkeSaId(spi),
                        to: t.to,
                    }));
            }
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
        self.index
            .insert(spi, super::node::Owner { node: to, spi_i });
        let tok = self.log.publish(record::ike_key(spi), rec.encode()).ok();
        if let Some(t) = self.transfers.get_mut(&spi) {
            t.token = tok;
        }
        if !self.membership.live.contains(&to_live) {
            // The target died meanwhile: the record names a dead node, so HRW over the
            // live members takes the SA, as after any death (maybe this node).
            self.take_over_orphans(now);
        }
    }

    /// Drops a transfer out of `spi` (its target died); removes the Child SAs it left
    /// in our data plane.
    pub(super) fn abort_transfer(&mut self, spi: u64) {
        if let Some(t) = self.transfers.remove(&spi) {
            for d in t.deletes {
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
