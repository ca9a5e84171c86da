//! The lease-end table (`lease_seen`): what a node must remember to fence outbound
//! sequence numbers, and when it may forget it.
//!
//! A taker starts a Child SA's outbound sequence numbers above the highest lease end it
//! knows for its outbound SPI. The entry can go only when no Child SA with that SPI can
//! be used again: its `rpl/` record is deleted (tombstone: its owner deleted the Child
//! SA), no IKE SA record we hold lists it, we do not own it, and no other Child SA we
//! know has the same outbound SPI (peers choose it; two peers may pick the same value).

use super::node::ClusterNode;
use super::record;

impl ClusterNode {
    /// A Child SA we know (owned, or from its record) uses outbound SPI `spi_out`.
    pub(super) fn note_child(&mut self, spi_in: u32, spi_out: u32) {
        match self.child_out.insert(spi_in, spi_out) {
            Some(old) if old == spi_out => {}
            Some(old) => {
                // The inbound SPI now belongs to a new Child SA; the old entry stays
                // (pruning is only ever decided by `try_prune_lease`).
                *self.out_refs.entry(spi_out).or_default() += 1;
                self.unref_out(old, false);
            }
            None => *self.out_refs.entry(spi_out).or_default() += 1,
        }
    }

    fn unref_out(&mut self, spi_out: u32, prune: bool) {
        match self.out_refs.get_mut(&spi_out) {
            Some(n) if *n > 1 => *n -= 1,
            _ => {
                self.out_refs.remove(&spi_out);
                if prune {
                    self.lease_seen.remove(&spi_out);
                }
            }
        }
    }

    /// The Child SAs an IKE SA record of another owner lists (empty: the record is gone
    /// or ours now). Child SAs no longer listed may have their lease entries pruned.
    pub(super) fn set_record_kids(&mut self, spi: u64, kids: Vec<(u32, u32)>) {
        for (spi_in, _) in &kids {
            self.kid_ike.insert(*spi_in, spi);
        }
        let old = if kids.is_empty() {
            self.record_kids.remove(&spi).unwrap_or_default()
        } else {
            self.record_kids.insert(spi, kids).unwrap_or_default()
        };
        for (spi_in, _) in old {
            let still = self
                .record_kids
                .get(&spi)
                .is_some_and(|k| k.iter().any(|(s, _)| *s == spi_in));
            if !still && self.kid_ike.get(&spi_in) == Some(&spi) {
                self.kid_ike.remove(&spi_in);
                self.try_prune_lease(spi_in);
            }
        }
    }

    /// Forgets the lease entry of Child SA `spi_in` if it can never be used again.
    pub(super) fn try_prune_lease(&mut self, spi_in: u32) {
        if self.children.contains_key(&spi_in)
            || self.kid_ike.contains_key(&spi_in)
            || self.log.get(&record::child_key(spi_in)).is_some()
        {
            return;
        }
        if let Some(spi_out) = self.child_out.remove(&spi_in) {
            self.unref_out(spi_out, true);
        }
    }

    /// Entries in the lease-end table (for tests and `ikectl`).
    pub fn lease_table_len(&self) -> usize {
        self.lease_seen.len()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use heartbeat::NodeId;
    use ike::crypto::DEFAULT_PROVIDER;
    use ike::endpoint::{Endpoint, EndpointConfig};

    use super::*;
    use crate::replog::ReplConfig;
    use crate::sa::ClusterConfig;
    use crate::sa::record::ChildRecord;

    fn node() -> ClusterNode {
        let me = NodeId::new("gw1").unwrap();
        let cfg = ClusterConfig::new(me.clone(), vec![me]);
        let ep = Endpoint::new(EndpointConfig::new(&DEFAULT_PROVIDER), Instant::now());
        ClusterNode::new(cfg, ep, ReplConfig::default())
    }

    fn known(n: &mut ClusterNode, spi_in: u32, spi_out: u32, end: u64) {
        let rec = ChildRecord {
            spi_out,
            lease_start: 1,
            lease_end: end,
            ..ChildRecord::default()
        };
        n.log
            .publish(record::child_key(spi_in), rec.encode())
            .unwrap();
        let e = n.lease_seen.entry(spi_out).or_insert(0);
        *e = (*e).max(end);
        n.note_child(spi_in, spi_out);
    }

    #[test]
    fn a_lease_entry_goes_only_when_its_child_sa_can_never_be_used() {
        let mut n = node();
        known(&mut n, 1, 100, 5_000);
        known(&mut n, 2, 200, 7_000);
        // Another peer chose the same outbound SPI as Child SA 2.
        known(&mut n, 3, 200, 9_000);
        n.set_record_kids(42, vec![(1, 100), (2, 200)]);
        n.set_record_kids(43, vec![(3, 200)]);
        // Record live: kept.
        n.try_prune_lease(1);
        assert_eq!(n.lease_seen.get(&100), Some(&5_000));
        // Child record deleted but the IKE SA record still lists it: kept.
        n.log.delete(record::child_key(1));
        n.try_prune_lease(1);
        assert_eq!(n.lease_seen.get(&100), Some(&5_000));
        // The IKE SA record drops it: gone.
        n.set_record_kids(42, vec![(2, 200)]);
        assert_eq!(n.lease_seen.get(&100), None);
        // IKE SA record deleted while the child record lives: kept.
        n.set_record_kids(42, Vec::new());
        assert_eq!(n.lease_seen.get(&200), Some(&9_000));
        // Child record deleted too: still kept, Child SA 3 uses the same outbound SPI.
        n.log.delete(record::child_key(2));
        n.try_prune_lease(2);
        assert_eq!(n.lease_seen.get(&200), Some(&9_000));
        // Child SA 3 gone as well: now the entry goes.
        n.log.delete(record::child_key(3));
        n.set_record_kids(43, Vec::new());
        assert_eq!(n.lease_seen.get(&200), None);
        assert!(n.child_out.is_empty() && n.out_refs.is_empty() && n.kid_ike.is_empty());
        assert_eq!(n.lease_table_len(), 0);
    }
}
