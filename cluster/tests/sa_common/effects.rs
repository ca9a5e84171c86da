//! The executor of `ClusterEffect`s for the in-process cluster: what batond's
//! `ClusterCore` does against the kernel, against each node's `MemoryDataplane`.

use super::*;

impl Cluster {
    pub(super) fn exec(&mut self, i: usize, e: ClusterEffect) {
        if let Some(t) = &mut self.trace {
            t.push((i, e.clone()));
        }
        let now = self.now;
        match e {
            ClusterEffect::Ike(Effect::Send {
                local,
                remote,
                data,
            }) => {
                let f = InFlight {
                    from: local,
                    to: remote,
                    data,
                };
                if (self.filter)(&f)
                    && let Some(p) = self.peers.iter_mut().find(|p| p.addr == f.to)
                {
                    p.inbox.push_back((f.from, f.data));
                }
            }
            ClusterEffect::Ike(Effect::DeleteChild(cd)) => {
                let key = (cd.local_ts.clone(), cd.remote_ts.clone());
                let m = &mut self.members[i];
                if !cd.keep_policies && m.policies.get(&key) == Some(&Pol::Ipsec(cd.reqid)) {
                    m.policies.remove(&key);
                }
                let dp = &mut self.members[i].dp;
                let _ = dp.delete_sa(&SaId::esp(cd.local_addr, Spi(cd.spi_in)));
                let _ = dp.delete_sa(&SaId::esp(cd.remote_addr, Spi(cd.spi_out)));
            }
            ClusterEffect::Ike(Effect::Event(ev)) => self.members[i].ike_events.push(ev),
            ClusterEffect::Ike(_) => {}
            ClusterEffect::InstallChild(ci) => {
                let key = (ci.child.local_ts.clone(), ci.child.remote_ts.clone());
                let m = &mut self.members[i];
                m.policies.insert(key.clone(), Pol::Ipsec(ci.child.reqid));
                m.out_blocked.remove(&key);
                for half in [&ci.child.inbound, &ci.child.outbound] {
                    m.sa_sel
                        .insert(SaId::esp(half.dst, Spi(half.spi)), key.clone());
                }
                let dp = &mut self.members[i].dp;
                let mut sin = spec(&ci.child, true);
                sin.replay_state = ci.inbound_replay.clone();
                let mut sout = spec(&ci.child, false);
                sout.replay_state = ci.outbound_replay.clone();
                sout.lifetime.hard_packets = Some(ci.outbound_hard_packets);
                sout.lifetime.soft_packets = Some(ci.outbound_soft_packets);
                for s in [sin, sout] {
                    if dp.add_sa(&s).is_err() {
                        let _ = dp.delete_sa(&s.id);
                        dp.add_sa(&s).unwrap();
                    }
                }
            }
            ClusterEffect::BlockPolicies(bp) => {
                let m = &mut self.members[i];
                m.blocks += 1;
                let key = (bp.local_ts.clone(), bp.remote_ts.clone());
                m.out_blocked.remove(&key);
                m.policies.insert(key, Pol::Block);
            }
            ClusterEffect::CapOutbound {
                spi_out,
                dst,
                lease_end,
                margin,
            } => {
                let id = SaId::esp(dst, Spi(spi_out));
                let last = xfrm::cap_outbound(&mut self.members[i].dp, &id, lease_end, margin)
                    .unwrap_or(u64::from(u32::MAX));
                let st = ReplayState {
                    oseq: last,
                    seq: 0,
                    bitmap: Vec::new(),
                };
                self.members[i].node.handle_replay_state(now, spi_out, &st);
            }
            ClusterEffect::RemoveBlockPolicies(bp) => {
                let m = &mut self.members[i];
                m.blocks = m.blocks.saturating_sub(1);
                m.removals += 1;
                let key = (bp.local_ts.clone(), bp.remote_ts.clone());
                m.out_blocked.remove(&key);
                match m.policies.get(&key) {
                    Some(Pol::Block) => {
                        m.policies.remove(&key);
                    }
                    other => m.bad_removals.push(format!("{bp:?}: {other:?}")),
                }
            }
            ClusterEffect::ReadReplayState { spi, dst } => {
                let st = self.members[i]
                    .dp
                    .get_replay_state(&SaId::esp(dst, Spi(spi)))
                    .unwrap_or_default();
                self.members[i].node.handle_replay_state(now, spi, &st);
            }
            ClusterEffect::UpdateOutboundLease {
                spi_out,
                dst,
                hard_packets,
                soft_packets,
            } => {
                let dp = &mut self.members[i].dp;
                if let Ok(mut info) = dp.get_sa(&SaId::esp(dst, Spi(spi_out))) {
                    info.spec.lifetime.hard_packets = Some(hard_packets);
                    info.spec.lifetime.soft_packets = Some(soft_packets);
                    info.spec.replay_state = None;
                    dp.update_sa(&info.spec).unwrap();
                }
            }
            ClusterEffect::MoveOutboundLease {
                spi_out,
                dst,
                old_end,
                start,
                end,
            } => {
                let dp = &mut self.members[i].dp;
                // Gone already (hard-expired at its lease end) is fine.
                match xfrm::move_outbound_range(
                    dp,
                    &SaId::esp(dst, Spi(spi_out)),
                    old_end,
                    start,
                    end,
                ) {
                    Ok(()) | Err(xfrm::Error::NotFound { .. }) => {}
                    Err(e) => panic!("move {spi_out:08x}: {e}"),
                }
            }
            ClusterEffect::Replicate { to, data } => {
                if let Some(j) = self.members.iter().position(|m| m.name == to)
                    && self.link_up(i, j)
                {
                    self.members[j].inbox.push_back((i, data));
                }
            }
            ClusterEffect::Event(ev) => self.members[i].events.push(ev),
        }
    }
}
