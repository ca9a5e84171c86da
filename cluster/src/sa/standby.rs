//! What a node keeps of the IKE SAs other nodes own (DESIGN §4): block policies for
//! their Child SAs, the leases of their virtual IPs, and this node's share of the
//! address pools.

use std::hash::{Hash, Hasher};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;

use ike::endpoint::ChildDelete;
use ike::policy::pool::PoolFilter;
use ike::sa::{ChildSa, IkeSa, IkeSaId};
use ike::wire::IpTrafficSelector;

use super::node::ClusterNode;
use super::record::{self, SaRecord};
use super::{BlockPolicies, ClusterConfig, ClusterEffect, hrw};

/// This node's share of every address pool: the addresses whose HRW over all configured
/// nodes (live or not) is this node. Fixed for the configuration, so two nodes never
/// hand out the same address, whoever is reachable.
pub(super) fn pool_share(cfg: &ClusterConfig) -> PoolFilter {
    let nodes = cfg.nodes.clone();
    let me = cfg.node.clone();
    Arc::new(move |addr: IpAddr| hrw::owner(hrw::addr_key(addr), &nodes) == Some(&me))
}

/// Identifies the policies of a Child SA: the kernel keys them by selectors.
pub(super) fn policy_key(local: &[IpTrafficSelector], remote: &[IpTrafficSelector]) -> u64 {
    let mut h = std::hash::DefaultHasher::new();
    (local, remote).hash(&mut h);
    h.finish()
}

fn same_policy(a: &BlockPolicies, b: &BlockPolicies) -> bool {
    a.reqid == b.reqid && a.local_ts == b.local_ts && a.remote_ts == b.remote_ts
}

/// The block policies of Child SA `c` of IKE SA `sa` (our SPI `id`).
fn block_policies(id: IkeSaId, sa: &IkeSa, c: &ChildSa) -> BlockPolicies {
    BlockPolicies {
        ike_sa: id,
        reqid: c.reqid,
        mode: c.mode,
        local_addr: sa.local_addr.ip(),
        remote_addr: sa.remote_addr.ip(),
        local_ts: c.local_ts.clone(),
        remote_ts: c.remote_ts.clone(),
    }
}

/// The block policies and the delete (policies kept: they go to block) of Child SA `c`
/// of IKE SA `sa`: what a node that hands a Child SA over, or loses it, switches and
/// removes.
pub(super) fn block_and_delete(sa: &IkeSa, c: &ChildSa) -> (BlockPolicies, ChildDelete) {
    let id = sa.id();
    let bp = block_policies(id, sa, c);
    let del = ChildDelete {
        ike_sa: id,
        reqid: c.reqid,
        spi_in: c.spi_in,
        spi_out: c.spi_out,
        local_addr: sa.local_addr.ip(),
        remote_addr: sa.remote_addr.ip(),
        keep_policies: true,
        local_ts: c.local_ts.clone(),
        remote_ts: c.remote_ts.clone(),
    };
    (bp, del)
}

impl ClusterNode {
    /// The record of an SA another node owns changed: decoded once, it asks for block
    /// policies for its Child SAs and records the lease of its virtual IP.
    pub(super) fn standby_record(&mut self, now: Instant, spi: u64) {
        let Some(rec) = self
            .log
            .get(&record::ike_key(spi))
            .and_then(SaRecord::decode)
        else {
            return;
        };
        let Ok(sa) = ike::export::read_sa(&rec.ike, now) else {
            return;
        };
        self.block_standby_policies(spi, &sa);
        self.set_record_kids(
            spi,
            sa.children.iter().map(|c| (c.spi_in, c.spi_out)).collect(),
        );
        if let (Some(vip), Some(rid)) = (sa.virtual_ip, sa.remote_id.as_ref()) {
            // A clash (another identity holds it here) only happens after a partition
            // in which both sides leased outside their share; keep ours.
            let _ = self.endpoint.mark_address_leased(&sa.connection, vip, rid);
        }
        self.track_vip(spi, sa.virtual_ip);
    }

    /// DESIGN §4: a standby holds a block policy for every replicated Child SA, so it
    /// never forwards a tunnel's traffic in the clear; asked once per (IKE SA, reqid,
    /// selectors). Those of Child SAs gone from the record are removed.
    fn block_standby_policies(&mut self, spi: u64, sa: &IkeSa) {
        let mut now_blocked = Vec::with_capacity(sa.children.len());
        for c in &sa.children {
            let bp = block_policies(IkeSaId(spi), sa, c);
            if self.register_block(&bp) {
                self.effects
                    .push_back(ClusterEffect::BlockPolicies(Box::new(bp.clone())));
            }
            now_blocked.push(bp);
        }
        let Some(list) = self.blocked.get_mut(&spi) else {
            return;
        };
        let (keep, gone): (Vec<_>, Vec<_>) = std::mem::take(list)
            .into_iter()
            .partition(|b| now_blocked.iter().any(|n| same_policy(n, b)));
        *list = keep;
        for b in gone {
            self.unref_block(b);
        }
    }

    /// Records a block policy for IKE SA `bp.ike_sa`. Returns whether the selectors were
    /// not blocked yet (by this or another record, e.g. of its rekeyed predecessor): only
    /// then must the data plane be asked.
    pub(super) fn register_block(&mut self, bp: &BlockPolicies) -> bool {
        let list = self.blocked.entry(bp.ike_sa.0).or_default();
        if list.iter().any(|b| same_policy(b, bp)) {
            return false;
        }
        list.push(bp.clone());
        let key = policy_key(&bp.local_ts, &bp.remote_ts);
        let n = self.block_refs.entry(key).or_default();
        *n += 1;
        // A removal still pending means the policy is in place.
        *n == 1 && !self.unblock_pending.contains_key(&key)
    }

    /// IKE SA `spi` is gone (its record deleted by its owner) or ours now (its Child SAs
    /// installed here replaced the block policies): forget its block policies, and ask
    /// for the removal of those no other SA's record and no Child SA of ours uses.
    pub(super) fn unblock_sa(&mut self, spi: u64) {
        for b in self.blocked.remove(&spi).unwrap_or_default() {
            self.unref_block(b);
        }
    }

    fn unref_block(&mut self, b: BlockPolicies) {
        let key = policy_key(&b.local_ts, &b.remote_ts);
        match self.block_refs.get_mut(&key) {
            Some(n) if *n > 1 => {
                // Another record (e.g. the IKE SA's rekeyed successor) still blocks it.
                *n -= 1;
            }
            _ => {
                self.block_refs.remove(&key);
                // Decided once the replication batch is processed: the record that
                // blocks it next (a rekeyed IKE SA's successor, whose key may come later
                // in the batch) keeps the policy without a gap.
                self.unblock_pending.insert(key, b);
            }
        }
    }

    /// Asks for the removal of block policies that no record and no Child SA of ours
    /// uses (after a batch of record changes).
    pub(super) fn flush_unblocks(&mut self) {
        for (key, b) in std::mem::take(&mut self.unblock_pending) {
            if !self.block_refs.contains_key(&key) && !self.owned_policies.contains_key(&key) {
                self.effects
                    .push_back(ClusterEffect::RemoveBlockPolicies(Box::new(b)));
            }
        }
    }

    /// An SA of ours appeared (IKE_AUTH, rekey, import): count its virtual IP.
    pub(super) fn track_owned_vip(&mut self, spi: u64) {
        let vip = self
            .endpoint
            .ike_sa(IkeSaId(spi))
            .and_then(|sa| sa.virtual_ip);
        self.track_vip(spi, vip);
    }

    /// Sets the virtual IP of IKE SA `spi` (owned or replicated); an address no SA uses
    /// any more is released from our pool.
    pub(super) fn track_vip(&mut self, spi: u64, vip: Option<IpAddr>) {
        let old = match vip {
            Some(v) => self.sa_vips.insert(spi, v),
            None => self.sa_vips.remove(&spi),
        };
        if old == vip {
            return;
        }
        if let Some(v) = vip {
            *self.vip_refs.entry(v).or_default() += 1;
        }
        if let Some(o) = old {
            self.unref_vip(o);
        }
    }

    /// IKE SA `spi` is gone (deleted here, or its record deleted by its owner).
    pub(super) fn untrack_vip(&mut self, spi: u64) {
        if let Some(v) = self.sa_vips.remove(&spi) {
            self.unref_vip(v);
        }
    }

    fn unref_vip(&mut self, v: IpAddr) {
        match self.vip_refs.get_mut(&v) {
            Some(n) if *n > 1 => *n -= 1,
            _ => {
                self.vip_refs.remove(&v);
                // The endpoint already released the leases of its own deleted SAs;
                // this ends those recorded from other nodes' records.
                self.endpoint.release_address_lease(v);
            }
        }
    }

    /// Pools are paused while we do not hold every live member's records: after a
    /// restart, addresses of our share that survivors still use are learnt first.
    pub(super) fn update_pool_pause(&mut self) {
        let pause = !self.log.is_synced_with_live();
        if pause != self.pools_paused {
            self.pools_paused = pause;
            self.endpoint.set_pools_paused(pause);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use heartbeat::{Membership, NodeId};
    use ike::config::PoolConfig;
    use ike::crypto::DEFAULT_PROVIDER;
    use ike::endpoint::{Endpoint, EndpointConfig};

    use super::*;
    use crate::replog::ReplConfig;

    fn node(me: &NodeId, all: &[NodeId], now: Instant) -> ClusterNode {
        let mut c = EndpointConfig::new(&DEFAULT_PROVIDER);
        c.pools = vec![PoolConfig {
            name: "vpn".into(),
            first: "10.9.0.1".parse().unwrap(),
            last: "10.9.0.64".parse().unwrap(),
            prefix_len: 24,
            dns: vec![],
        }];
        let cfg = ClusterConfig::new(me.clone(), all.to_vec());
        ClusterNode::new(cfg, Endpoint::new(c, now), ReplConfig::default())
    }

    fn paused(n: &ClusterNode) -> bool {
        n.endpoint().pool("vpn").unwrap().is_paused()
    }

    /// Delivers replication messages between the two nodes until none is left (only
    /// from `a` to `b` with `to_b_only`; `b`'s stay queued).
    fn exchange(now: Instant, a: &mut ClusterNode, b: &mut ClusterNode, to_b_only: bool) {
        loop {
            let mut moved = false;
            while let Some(e) = a.poll_effect() {
                if let ClusterEffect::Replicate { data, .. } = e {
                    moved = true;
                    let from = a.node().clone();
                    b.handle_repl_message(now, &from, &data).unwrap();
                }
            }
            while let Some(e) = (!to_b_only).then(|| b.poll_effect()).flatten() {
                if let ClusterEffect::Replicate { data, .. } = e {
                    moved = true;
                    let from = b.node().clone();
                    a.handle_repl_message(now, &from, &data).unwrap();
                }
            }
            if !moved {
                return;
            }
        }
    }

    #[test]
    fn pools_hand_out_nothing_until_the_live_members_records_are_held() {
        let now = Instant::now();
        let (n1, n2) = (NodeId::new("gw1").unwrap(), NodeId::new("gw2").unwrap());
        let all = [n1.clone(), n2.clone()];
        let mut a = node(&n1, &all, now);
        let mut b = node(&n2, &all, now);
        // Alone: nothing to learn.
        assert!(!paused(&a));
        let live: BTreeSet<NodeId> = all.iter().cloned().collect();
        for (x, peer) in [(&mut a, &n2), (&mut b, &n1)] {
            x.handle_peer_connected(now, peer, 1).unwrap();
            x.handle_membership(
                now,
                Membership {
                    epoch: 1,
                    live: live.clone(),
                },
            );
        }
        // gw2 is live, its records not yet received: gw1 must not hand out addresses.
        assert!(paused(&a) && paused(&b));
        // gw2's snapshot reaches gw1 (gw1's does not reach gw2).
        exchange(now, &mut b, &mut a, true);
        assert!(!paused(&a), "gw1 holds gw2's records");
        assert!(paused(&b), "gw2 does not hold gw1's yet");
        exchange(now, &mut a, &mut b, false);
        assert!(!paused(&b));
        // The shares are disjoint and cover the pool.
        let (pa, pb) = (
            a.endpoint().pool("vpn").unwrap(),
            b.endpoint().pool("vpn").unwrap(),
        );
        let addrs: Vec<IpAddr> = (1..=64u8).map(|k| IpAddr::from([10, 9, 0, k])).collect();
        assert!(
            addrs
                .iter()
                .all(|x| pa.is_in_share(*x) != pb.is_in_share(*x))
        );
        let na = addrs.iter().filter(|x| pa.is_in_share(**x)).count();
        assert!((16..=48).contains(&na), "{na} of 64 for gw1");
    }

    fn block(spi: u64, reqid: u32, host: u8) -> BlockPolicies {
        let ts = |a: [u8; 4]| IpTrafficSelector {
            ip_protocol: 0,
            start_port: 0,
            end_port: 65535,
            start_addr: IpAddr::from(a),
            end_addr: IpAddr::from(a),
        };
        BlockPolicies {
            ike_sa: IkeSaId(spi),
            reqid,
            mode: ike::config::IpsecMode::Tunnel,
            local_addr: IpAddr::from([198, 51, 100, 1]),
            remote_addr: IpAddr::from([192, 0, 2, host]),
            local_ts: vec![ts([10, 1, 0, 0])],
            remote_ts: vec![ts([192, 0, 2, host])],
        }
    }

    fn removals(n: &mut ClusterNode) -> Vec<BlockPolicies> {
        n.flush_unblocks();
        let mut v = Vec::new();
        while let Some(e) = n.poll_effect() {
            if let ClusterEffect::RemoveBlockPolicies(b) = e {
                v.push(*b);
            }
        }
        v
    }

    #[test]
    fn a_block_policy_goes_when_no_record_and_no_child_sa_of_ours_uses_it() {
        let now = Instant::now();
        let me = NodeId::new("gw1").unwrap();
        let mut n = node(&me, std::slice::from_ref(&me), now);
        // An IKE SA and its rekeyed successor (another record) block the same selectors.
        assert!(n.register_block(&block(1, 7, 10)));
        assert!(!n.register_block(&block(2, 7, 10)), "already blocked");
        assert!(!n.register_block(&block(1, 7, 10)));
        n.unblock_sa(1);
        assert!(removals(&mut n).is_empty(), "the successor still needs it");
        n.unblock_sa(2);
        assert_eq!(removals(&mut n), vec![block(2, 7, 10)]);
        // Removed and blocked again within one batch: no gap, no request.
        assert!(n.register_block(&block(3, 7, 11)));
        n.unblock_sa(3);
        assert!(!n.register_block(&block(4, 7, 11)), "still in place");
        assert!(removals(&mut n).is_empty());
        // A Child SA of ours uses the selectors: never removed.
        let b = block(5, 9, 12);
        n.owned_policies
            .insert(policy_key(&b.local_ts, &b.remote_ts), 1);
        assert!(n.register_block(&b));
        n.unblock_sa(5);
        assert!(removals(&mut n).is_empty());
    }
}
