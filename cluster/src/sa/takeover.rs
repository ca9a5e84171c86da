//! Takeover of a dead owner's SAs (DESIGN §4; RFC 6311 §5, §7, §9) and of SAs handed
//! over by a transfer.

use std::time::{Duration, Instant};

use heartbeat::NodeId;
use ike::endpoint::Effect;
use ike::sa::IkeSaId;
use xfrm::ReplayState;

use super::node::{ClusterNode, InstallOverride};
use super::record::{self, ChildRecord, SaRecord};
use super::{ClusterEffect, ClusterEvent};

/// RFC 6311 §5.2: a rekey SHOULD follow an outbound sequence jump this large.
const REKEY_JUMP: u64 = 1 << 30;

impl ClusterNode {
    /// Takes over every SA whose recorded owner is not live and that HRW over the live
    /// members gives to us. Waits (retried on `PeerSynced` and timeouts) until we hold
    /// what the live members hold, so the leases we fence against are the latest.
    pub(super) fn take_over_orphans(&mut self, now: Instant) {
        if !self.log.is_synced_with_live() {
            self.takeover_pending = true;
            return;
        }
        if !self.fenced_takeover_possible() {
            return;
        }
        self.takeover_pending = false;
        let me = self.cfg.node.clone();
        let mine: Vec<u64> = self
            .index
            .iter()
            .filter(|(spi, o)| {
                !self.owned.contains(spi)
                    && !self.membership.live.contains(&o.node)
                    && self.effective_owner(**spi, o) == me
            })
            .map(|(spi, _)| *spi)
            .collect();
        // Room for all of them first: no rehashing of large tables mid-takeover.
        let n = mine.len();
        self.endpoint.reserve(n);
        self.owned.reserve(n);
        self.children.reserve(n);
        self.by_spi_out.reserve(n);
        self.overrides.reserve(n);
        for spi in mine {
            self.take_over(now, spi);
        }
    }

    /// Fencing: a takeover needs our knowledge (us + synced live members) to intersect
    /// every quorum that can have granted a lease renewal, so that we know the latest
    /// lease end; and the log synced with every live member.
    pub(super) fn fenced_takeover_possible(&self) -> bool {
        let n = self.cfg.nodes.len();
        self.log.is_synced_with_live() && self.membership.live.len() + self.quorum() > n
    }

    /// Imports the SA's record and makes it live here: leases and replay windows on its
    /// Child SAs, installs (which swap block policies for IPsec ones), ownership record,
    /// and, after a failover, an RFC 6311 sync (eager at the configured rate, or lazy).
    pub(super) fn take_over(&mut self, now: Instant, spi: u64) {
        let key = record::ike_key(spi);
        let Some(rec) = self.log.get(&key).and_then(SaRecord::decode) else {
            return;
        };
        // A transfer of ours to a node that died: our old kernel SAs go first.
        self.abort_transfer(spi);
        let Ok(id) = self.endpoint.import(now, &rec.ike) else {
            return;
        };
        let Some(sa) = self.endpoint.ike_sa(id) else {
            return;
        };
        let (negotiated, replay_sync, spi_i) = (sa.mid_sync, sa.replay_sync, sa.spis.spi_i.0);
        // A peer may derive its AEAD IVs from Message IDs (strongSwan does; RFC 5282 §3.1
        // forbids an IV twice under a key): once it has answered a request of ours on
        // these keys, it cannot answer a Message ID 0 sync without repeating an IV, and
        // strongSwan then destroys the IKE SA. The replicated Message IDs (exact in `ack`
        // mode) carry such an SA on instead.
        let answerable = !ike::crypto::is_aead(sa.suite.encr.id) || sa.msgids.our_next_request == 0;
        let mid_sync = negotiated && answerable;
        if negotiated && !answerable && rec.owner != self.cfg.node {
            self.counters.syncs_skipped += 1;
        }
        let kids: Vec<(u32, u32, bool)> = sa
            .children
            .iter()
            .map(|c| (c.spi_in, c.spi_out, c.suite.esn))
            .collect();
        let transfer = rec.owner == self.cfg.node;
        let chunk = self.cfg.lease_chunk.max(1);
        let mut jumps = Vec::new();
        for (spi_in, spi_out, esn) in kids {
            let cr = self
                .log
                .get(&record::child_key(spi_in))
                .and_then(ChildRecord::decode)
                .unwrap_or_default();
            let max_seq = if esn { u64::MAX } else { u64::from(u32::MAX) };
            let exact = rec.exact.iter().find(|e| e.spi_in == spi_in);
            let ov = if let Some(e) = exact.filter(|_| transfer) {
                // Transfer: the source stopped at `oseq` and handed us the rest of its
                // lease (renewed first, with the quorum, when little was left); its
                // window is exact, nothing to skip. Never past the granted lease end: a
                // taker after our death fences against the ends the quorum knows.
                let start = e.oseq.saturating_add(1);
                InstallOverride {
                    inbound: ReplayState {
                        oseq: 0,
                        seq: e.seq,
                        bitmap: e.bitmap.clone(),
                    },
                    lease_start: start,
                    lease_end: e.lease_end.max(start).min(max_seq),
                    oseq: e.oseq,
                }
            } else {
                // Failover fencing: start above every lease end we know of (the
                // implicit first lease of any Child SA is [1, chunk]), in this node's
                // slot of the next round, so concurrent takers never overlap.
                let l_max = cr
                    .lease_end
                    .max(chunk)
                    .max(self.lease_seen.get(&spi_out).copied().unwrap_or(0));
                let (start, end) = self.slot_above(l_max, max_seq);
                if start.saturating_sub(cr.oseq) > REKEY_JUMP || end <= start {
                    jumps.push(spi_in);
                }
                // Inbound (§5.2): with replay counter sync the peer skips
                // `replay_delta`; the window starts past it, so packets the dead node
                // accepted after its last checkpoint cannot be replayed to us.
                let mut inbound = cr.inbound_state();
                if replay_sync && mid_sync {
                    inbound.seq = inbound.seq.saturating_add(self.cfg.replay_delta);
                    inbound.bitmap.clear();
                }
                InstallOverride {
                    inbound,
                    lease_start: start,
                    lease_end: end,
                    oseq: cr.oseq,
                }
            };
            self.overrides.insert(spi_in, ov);
        }
        let from = rec.owner.clone();
        self.owned.insert(spi);
        // Its virtual IP: leased in our pool by the import, counted as ours now.
        self.track_owned_vip(spi);
        self.endpoint.reinstall_children(id);
        if transfer {
            self.counters.transfers_in += 1;
            // An operator's transfer: an explicit override of the hash that
            // rebalancing must not undo (drain and rebalancing transfers are not pinned).
            if rec.pinned {
                self.pinned.insert(spi);
            }
        } else {
            self.counters.takeovers += 1;
            self.effects
                .push_back(ClusterEffect::Event(ClusterEvent::TookOver { id, from }));
            if mid_sync {
                // §7: at most one sync per SA per failover event.
                if self.sync_due.insert(spi) && self.cfg.sync_rate.is_some() {
                    self.sync_queue.push_back(spi);
                    if self.sync_next.is_none() {
                        self.sync_next = Some(now);
                    }
                }
            }
            if !jumps.is_empty() {
                self.rekey_after_sync.insert(spi, jumps);
                if !mid_sync {
                    self.rekey_after_jump(now, spi);
                }
            }
        }
        // The record with us as owner: the imported context is what the endpoint holds
        // now, so it is republished as is (no export of each of 100,000 SAs).
        self.index.insert(
            spi,
            super::node::Owner {
                node: self.cfg.node.clone(),
                spi_i,
            },
        );
        let out = SaRecord {
            owner: self.cfg.node.clone(),
            epoch: self.membership.epoch,
            exact: Vec::new(),
            pinned: transfer && rec.pinned,
            ike: rec.ike,
        };
        let _ = self.log.publish(key, out.encode());
        self.skip_publish = Some(spi);
        // Child SA installs (with the leases and windows above) and their records.
        self.pump(now, false);
        self.skip_publish = None;
        // The installs replaced our block policies for its Child SAs; forget them (a
        // stale one no Child SA of ours uses is removed).
        self.unblock_sa(spi);
        // Its Child SAs are ours now (their leases stay known through `children`).
        self.set_record_kids(spi, Vec::new());
        if transfer {
            // After the installs: the source removes its inbound SAs once we ack the
            // record, and our ack leaves after these effects.
            self.effects
                .push_back(ClusterEffect::Event(ClusterEvent::TransferredIn { id }));
        }
        // What nodes that owned it during a partition did with it.
        self.merge_left_facts(now, spi);
    }

    /// RFC 6311 §5.1: M1 = replicated next sender Message ID (or above the last sync
    /// attempt) + the peer's window + margin; P1 = the replicated next expected request.
    /// The attempt is replicated and acked before the request leaves (§5.1 SHOULD).
    /// Unanswered, the endpoint sends a new request (fresh nonce, M1 a window higher),
    /// which the pump holds for its record's ack the same way; it is the same sync, so
    /// it is not counted as a new one (§7), and after the bounded number of attempts the
    /// IKE SA is deleted ([`super::ClusterEvent::SyncGaveUp`]).
    pub(super) fn start_sync(&mut self, now: Instant, spi: u64) {
        if !self.sync_due.remove(&spi) {
            return;
        }
        let id = IkeSaId(spi);
        let Some(sa) = self.endpoint.ike_sa(id) else {
            return;
        };
        let m = &sa.msgids;
        let mut base = m.our_next_request;
        if let Some(p) = &m.sync_pending {
            base = base.max(p.m1.saturating_add(1));
        }
        // Each node syncs in its own slot above that: two nodes that both take the SA
        // over in a split brain (from the same replicated state) never send the same M1
        // (RFC 6311 §5.1: above anything ever used); the peer drops the lower one.
        let step = m.peer_window.max(1).saturating_add(self.cfg.mid_margin);
        let slot = self.slot_index();
        let m1 = base
            .saturating_add(step)
            .saturating_add(step.saturating_mul(slot));
        let p1 = m.peer_next_request;
        let esn = sa.children.iter().any(|c| c.suite.esn);
        let replay = sa.replay_sync.then_some((self.cfg.replay_delta, esn));
        if self.endpoint.start_message_id_sync(now, id, m1, p1, replay) {
            self.counters.syncs_started += 1;
            self.effects
                .push_back(ClusterEffect::Event(ClusterEvent::SyncStarted {
                    id,
                    m1,
                    p1,
                }));
            self.pump(now, true);
        }
    }

    /// Eager syncs at the configured rate.
    pub(super) fn run_sync_queue(&mut self, now: Instant) {
        let Some(mut t) = self.sync_next else {
            return;
        };
        let interval = self.sync_interval();
        // No bursts after idle: at most 100 ms worth of syncs at once.
        let floor = now.checked_sub(Duration::from_millis(100)).unwrap_or(now);
        t = t.max(floor);
        while t <= now {
            let Some(spi) = self.sync_queue.pop_front() else {
                break;
            };
            if !self.sync_due.contains(&spi) {
                continue;
            }
            self.start_sync(now, spi);
            t += interval;
        }
        self.sync_next = (!self.sync_queue.is_empty()).then_some(t);
    }

    /// §5.2: after a large jump, rekey the Child SAs (new SPIs, new keys, counters from 1).
    pub(super) fn rekey_after_jump(&mut self, now: Instant, spi: u64) {
        let Some(list) = self.rekey_after_sync.remove(&spi) else {
            return;
        };
        for spi_in in list {
            if self.endpoint.create_child(now, IkeSaId(spi), Some(spi_in)) {
                self.counters.jump_rekeys += 1;
            }
        }
    }

    /// Another node's newer record owns an SA we hold (a partition healed and its write
    /// won): remove ours without touching the wire, block its policies.
    pub(super) fn lose_ownership(&mut self, now: Instant, spi: u64, to: NodeId) {
        let id = IkeSaId(spi);
        if let Some(sa) = self.endpoint.ike_sa(id).cloned() {
            for c in &sa.children {
                // Ours no longer: the block policy is tracked like a standby's.
                self.drop_owned_child(c.spi_in);
                let (bp, del) = super::standby::block_and_delete(&sa, c);
                // Always asked: the policy is ours (IPsec) until now.
                self.register_block(&bp);
                self.effects
                    .push_back(ClusterEffect::BlockPolicies(Box::new(bp)));
                self.effects
                    .push_back(ClusterEffect::Ike(Effect::DeleteChild(Box::new(del))));
            }
        }
        let _ = self.endpoint.release(id, now);
        self.owned.remove(&spi);
        self.sync_due.remove(&spi);
        self.held.retain(|_| true);
        self.effects
            .push_back(ClusterEffect::Event(ClusterEvent::LostOwnership { id, to }));
    }
}
