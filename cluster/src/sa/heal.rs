//! After a partition heals: what the other side did with an SA we kept.
//!
//! In a split brain both sides may own an SA (each takes the other's over). The side
//! whose record loses steps back (`lose_ownership`); the side whose record wins goes
//! on, but must not go on *below* what the other side did meanwhile:
//! - its outbound ESP sequence numbers: the other side sent in a higher slot, and the
//!   peer's anti-replay window (RFC 4303 §3.4.3) now drops everything lower, so the
//!   outbound SA moves above every lease known for it (then is rekeyed);
//! - its Message IDs: the other side's requests (an RFC 6311 sync, a liveness check)
//!   moved the peer's expected Message ID; a lower one is taken for an old
//!   retransmission and never answered (RFC 7296 §2.2).

use std::time::Instant;

use ike::sa::IkeSaId;

use super::ClusterEffect;
use super::node::ClusterNode;
use super::record::{self, ChildRecord, ExactCounters, SaRecord};
use crate::replog::RecordKey;

impl ClusterNode {
    /// This node's position in the configured node list: its slot in every round of
    /// sequence leases and of RFC 6311 M1 values.
    pub(super) fn slot_index(&self) -> u32 {
        self.cfg
            .nodes
            .iter()
            .position(|x| *x == self.cfg.node)
            .and_then(|k| u32::try_from(k).ok())
            .unwrap_or(0)
    }

    /// The range of one chunk in this node's slot of the first round above `l_max`
    /// (see docs/architecture.md, "No (SPI, sequence number) pair is ever used twice"):
    /// `(start, end)`, with `end < start` when no such range fits under `max_seq`.
    pub(super) fn slot_above(&self, l_max: u64, max_seq: u64) -> (u64, u64) {
        let n = u64::try_from(self.cfg.nodes.len().max(1)).unwrap_or(1);
        let k = u64::from(self.slot_index());
        let chunk = self.cfg.lease_chunk.max(1);
        let round = n.saturating_mul(chunk);
        let r = l_max / round + 1;
        let start = r
            .saturating_mul(round)
            .saturating_add(k.saturating_mul(chunk))
            .saturating_add(1);
        let end = start.saturating_add(chunk - 1).min(max_seq);
        (start, end)
    }

    /// A record we hold won over another node's concurrent write of the same key:
    /// keep the facts of the losing write that must never go backwards.
    pub(super) fn overruled(&mut self, now: Instant, key: &RecordKey, value: &[u8]) {
        if record::child_key_spi(key).is_some() {
            if let Some(rec) = ChildRecord::decode(value) {
                let e = self.lease_seen.entry(rec.spi_out).or_insert(0);
                *e = (*e).max(rec.lease_end);
                self.move_above_foreign_lease(now, rec.spi_out);
            }
            return;
        }
        // An older write of our own carries nothing we do not hold (and reading an IKE
        // SA record is not free: resyncs bring such copies).
        if let (Some(spi), Some(rec)) = (record::ike_key_spi(key), SaRecord::decode(value))
            && rec.owner != self.cfg.node
        {
            self.merge_facts(now, spi, &rec);
        }
    }

    /// Our record of IKE SA `spi` lost to another node's concurrent write: we step back
    /// (`lose_ownership`, by the caller), and leave what we did with it meanwhile for the
    /// owner to merge (`was/` record): our Message IDs and our Child SAs' lease ends.
    /// Our losing write may never reach the owner: we replaced it before sending it.
    pub(super) fn leave_facts(&mut self, now: Instant, spi: u64) {
        let id = IkeSaId(spi);
        let Some(ike) = self.endpoint.export(id, now) else {
            return;
        };
        let exact = self
            .endpoint
            .ike_sa(id)
            .map(|sa| {
                sa.children
                    .iter()
                    .filter_map(|c| self.children.get(&c.spi_in).map(|o| (c.spi_in, o)))
                    .map(|(spi_in, o)| ExactCounters {
                        spi_in,
                        oseq: o.rec.oseq,
                        seq: o.rec.seq,
                        bitmap: Vec::new(),
                        lease_end: o.rec.lease_end.max(o.granted_end),
                    })
                    .collect()
            })
            .unwrap_or_default();
        let rec = SaRecord {
            owner: self.cfg.node.clone(),
            epoch: self.membership.epoch,
            exact,
            pinned: false,
            ike,
        };
        let _ = self
            .log
            .publish(record::was_key(spi, &self.cfg.node), rec.encode());
        self.was_spis.insert(spi);
    }

    /// A `was/` record of IKE SA `spi` went: it stays listed while any node's remains.
    pub(super) fn forget_was(&mut self, spi: u64) {
        let any = self
            .cfg
            .nodes
            .iter()
            .any(|n| self.log.get(&record::was_key(spi, n)).is_some());
        if !any {
            self.was_spis.remove(&spi);
        }
    }

    /// A `was/` record: the owner merges it, then deletes it.
    pub(super) fn was_changed(&mut self, now: Instant, key: &RecordKey) {
        if let Some(spi) = record::was_key_spi(key)
            && self.owned.contains(&spi)
        {
            self.merge_was(now, spi, key.clone());
            self.forget_was(spi);
        }
    }

    /// A Child or IKE SA just became ours (takeover, transfer): facts any node left for
    /// its owner (`was/` records, ours included) are merged now.
    pub(super) fn merge_left_facts(&mut self, now: Instant, spi: u64) {
        if !self.was_spis.remove(&spi) {
            return;
        }
        let keys: Vec<RecordKey> = self
            .cfg
            .nodes
            .iter()
            .map(|n| record::was_key(spi, n))
            .collect();
        for key in keys {
            self.merge_was(now, spi, key);
        }
    }

    /// Merges the `was/` record under `key` (if present) into IKE SA `spi`, then
    /// deletes it.
    fn merge_was(&mut self, now: Instant, spi: u64, key: RecordKey) {
        if let Some(rec) = self.log.get(&key).and_then(SaRecord::decode) {
            self.merge_facts(now, spi, &rec);
            self.log.delete(key);
        }
    }

    /// Merges what another node did with IKE SA `spi` (which we own) while it owned it
    /// too: its Message IDs, and the lease ends of its Child SAs (from `rec.exact`, and
    /// from the Child records we hold).
    fn merge_facts(&mut self, now: Instant, spi: u64, rec: &SaRecord) {
        // Our own facts too: an SA we stepped back from may come back to us (a transfer
        // after the heal) with the other side's state.
        if !self.owned.contains(&spi) {
            return;
        }
        let Ok(other) = ike::export::read_sa(&rec.ike, now) else {
            return;
        };
        if self
            .endpoint
            .merge_message_ids(now, IkeSaId(spi), &other.msgids)
        {
            self.counters.message_id_merges += 1;
            self.touched_extra.push(spi);
        }
        let mut ends: Vec<(u32, u64)> = Vec::new();
        for e in &rec.exact {
            if let Some(c) = self.children.get(&e.spi_in) {
                ends.push((c.rec.spi_out, e.lease_end));
            }
        }
        for c in &other.children {
            if let Some(cr) = self
                .log
                .get(&record::child_key(c.spi_in))
                .and_then(ChildRecord::decode)
            {
                ends.push((cr.spi_out, cr.lease_end));
            }
        }
        for (spi_out, end) in ends {
            let e = self.lease_seen.entry(spi_out).or_insert(0);
            *e = (*e).max(end);
            self.move_above_foreign_lease(now, spi_out);
        }
        self.pump(now, false);
    }

    /// If another node's lease on our outbound SA `spi_out` reaches above ours (it
    /// owned the SA too, during a partition), moves the SA to our slot above it and
    /// rekeys the Child SA (new SPIs and keys, counters from 1; RFC 6311 §5.2 asks the
    /// same after a large jump).
    pub(super) fn move_above_foreign_lease(&mut self, now: Instant, spi_out: u32) {
        let Some(&spi_in) = self.by_spi_out.get(&spi_out) else {
            return;
        };
        let seen = self.lease_seen.get(&spi_out).copied().unwrap_or(0);
        let Some(c) = self.children.get(&spi_in) else {
            return;
        };
        if seen <= c.rec.lease_end || self.is_capped(spi_in) {
            return;
        }
        let max_seq = if c.esn { u64::MAX } else { u64::from(u32::MAX) };
        let (ike, dst, old_end) = (c.ike, c.dst, c.granted_end);
        let (start, end) = self.slot_above(seen, max_seq);
        if end >= start {
            if let Some(c) = self.children.get_mut(&spi_in) {
                c.renewing = None;
                c.moved = true;
                c.granted_end = end;
                c.rec.lease_start = start;
                c.rec.lease_end = end;
                c.rec.oseq = start - 1;
                let payload = c.rec.encode();
                let _ = self.log.publish(record::child_key(spi_in), payload);
            }
            self.renewing.remove(&spi_in);
            let e = self.lease_seen.entry(spi_out).or_insert(0);
            *e = (*e).max(end);
            self.counters.lease_moves += 1;
            self.effects.push_back(ClusterEffect::MoveOutboundLease {
                spi_out,
                dst,
                old_end,
                start,
                end,
            });
        }
        // No room left (or after the move): new SAs, fresh counters. If the IKE SA is
        // busy, the soft packet lifetime of the moved range triggers the rekey later.
        if self.endpoint.create_child(now, IkeSaId(ike), Some(spi_in)) {
            self.counters.jump_rekeys += 1;
        }
        self.pump(now, false);
    }
}
