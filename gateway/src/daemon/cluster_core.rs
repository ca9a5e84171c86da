//! The protocol core of a cluster node: [`cluster::sa::ClusterNode`] (which wraps the
//! IKE endpoint) with its data-plane effects executed on the node's [`xfrm::Dataplane`]
//! and its replication messages handed to the daemon, which owns the channel.
//!
//! DESIGN §4: every node sees every datagram on the shared VIP; the cluster node passes
//! on only what this node owns; only the owner holds a Child SA's XFRM SAs and IPsec
//! policies, the other nodes hold block policies for it.

use std::collections::VecDeque;
use std::time::{Duration, Instant, SystemTime};

use cluster::NodeId;
use cluster::channel::ChannelEvent;
use cluster::replog::ReplConfig;
use cluster::sa::{
    BlockPolicies, ClusterConfig, ClusterEffect, ClusterEvent, ClusterInstall, ClusterNode,
    SyncMode as NodeSyncMode,
};
use ike::endpoint::{Endpoint, EndpointConfig};
use ike::sa::IkeSaId;
use xfrm::{Dataplane, DataplaneEvent, OwnedRange, ReplayEventThresholds, ReplayState};

use super::child_effects::ChildSaExecutor;
use super::core::{ClusterInput, Core, Counts, Event, Output};
use super::dataplane::{self, InstallOptions};
use super::endpoint_core::{CLUSTER_OWNED, endpoint_config, view};
use crate::config::{ClusterSettings, GatewayConfig, SyncMode};
use crate::control::{ClusterCountersView, ClusterView, IkeSaView, MemberView};

/// How often the data plane is asked for events (replay checkpoints, expiries).
const DATAPLANE_POLL: Duration = Duration::from_millis(100);

/// Replay events: at most one per SA per this many jiffies (1 s at Debian's HZ=250),
/// or at once after this many packets. They are checkpoints for replication and
/// lease renewal, not per-packet state (DESIGN §4).
const REPLAY_EVENT_TIMER_JIFFIES: u32 = 250;

/// The inbound SPI range every node's share is cut from.
const SPI_SPACE: (u32, u32) = (0xc000_0000, 0xcfff_ffff);

/// Every configured node's name, this one included, sorted; errors name the key.
pub fn cluster_nodes(s: &ClusterSettings) -> Result<(NodeId, Vec<NodeId>), String> {
    let me = NodeId::new(&s.node).map_err(|e| format!("cluster.node: {e}"))?;
    let mut nodes = vec![me.clone()];
    for name in s.peers.keys() {
        nodes.push(NodeId::new(name).map_err(|e| format!("cluster.peers: {e}"))?);
    }
    nodes.sort();
    nodes.dedup();
    Ok((me, nodes))
}

/// This node's share of `space` (inclusive): disjoint from every other configured
/// node's share.
fn share(me: &NodeId, nodes: &[NodeId], space: (u32, u32)) -> (u32, u32) {
    let n = u32::try_from(nodes.len().max(1)).unwrap_or(u32::MAX);
    let i = nodes
        .iter()
        .position(|x| x == me)
        .and_then(|i| u32::try_from(i).ok())
        .unwrap_or(0);
    let width = (space.1 - space.0) / n;
    let lo = space.0 + i * width;
    (lo, lo + width - 1)
}

/// This node's share of the inbound SPI space: an SA keeps its SPI wherever it moves
/// and two nodes never pick the same.
pub fn spi_share(me: &NodeId, nodes: &[NodeId]) -> (u32, u32) {
    share(me, nodes, SPI_SPACE)
}

/// This node's share of Child SA reqids (within the kernel range [`CLUSTER_OWNED`]): a
/// Child SA taken over keeps its reqid, so reqids must be unique in the cluster.
pub fn reqid_share(me: &NodeId, nodes: &[NodeId]) -> (u32, u32) {
    share(me, nodes, (1, CLUSTER_OWNED.max - CLUSTER_OWNED.min))
}

fn node_endpoint_config(cfg: &GatewayConfig, shares: Shares) -> EndpointConfig {
    let mut c = endpoint_config(cfg);
    c.spi_range = shares.spis;
    c.reqid_range = shares.reqids;
    c
}

/// This node's SPI and reqid shares.
#[derive(Clone, Copy, Debug)]
struct Shares {
    spis: (u32, u32),
    reqids: (u32, u32),
}

/// A cluster node's core.
pub struct ClusterCore {
    node: ClusterNode,
    dataplane: Box<dyn Dataplane>,
    owned: OwnedRange,
    shares: Shares,
    /// Configured pool names (for `pools_paused`).
    pool_names: Vec<String>,
    out: VecDeque<Output>,
    children: ChildSaExecutor,
    next_dataplane_poll: Instant,
    replay_events: ReplayEventThresholds,
}

impl std::fmt::Debug for ClusterCore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterCore")
            .field("node", &self.node)
            .finish_non_exhaustive()
    }
}

impl ClusterCore {
    /// The core of node `[cluster] node` of `cfg`. `incarnation` is this boot's (the
    /// heartbeat's and the channel's): replication versions start above it.
    pub fn new(
        cfg: &GatewayConfig,
        dataplane: Box<dyn Dataplane>,
        now: Instant,
        incarnation: u64,
    ) -> Result<Self, String> {
        let s = cfg
            .cluster
            .as_ref()
            .ok_or_else(|| "no [cluster] section".to_owned())?;
        let (me, nodes) = cluster_nodes(s)?;
        let shares = Shares {
            spis: spi_share(&me, &nodes),
            reqids: reqid_share(&me, &nodes),
        };
        let mut ccfg = ClusterConfig::new(me, nodes);
        ccfg.sync = match s.sync {
            SyncMode::Ack => NodeSyncMode::Ack,
            SyncMode::Async => NodeSyncMode::Async,
        };
        ccfg.sync_rate = s.sync_rate;
        ccfg.transfer_rate = s.transfer_rate;
        let lease_chunk = ccfg.lease_chunk;
        let mut endpoint = Endpoint::new(node_endpoint_config(cfg, shares), now);
        endpoint.set_wall_clock(now, SystemTime::now());
        let repl = ReplConfig {
            counter_floor: incarnation,
            ..ReplConfig::default()
        };
        Ok(Self {
            node: ClusterNode::new(ccfg, endpoint, repl),
            dataplane,
            owned: CLUSTER_OWNED,
            shares,
            pool_names: cfg.pools.iter().map(|p| p.name.clone()).collect(),
            out: VecDeque::new(),
            children: ChildSaExecutor::new(CLUSTER_OWNED),
            next_dataplane_poll: now + DATAPLANE_POLL,
            replay_events: ReplayEventThresholds {
                // A quarter of a lease: a renewal (at half the lease) is never late by
                // more than that, whatever the packet rate.
                packets: u32::try_from(lease_chunk / 4).unwrap_or(u32::MAX),
                timer_jiffies: REPLAY_EVENT_TIMER_JIFFIES,
            },
        })
    }

    fn error(&mut self, message: String) {
        self.out
            .push_back(Output::Event(Event::DataplaneError { message }));
    }

    fn options(&self, ci: &ClusterInstall) -> InstallOptions {
        InstallOptions {
            inbound_replay: ci.inbound_replay.clone(),
            outbound_replay: ci.outbound_replay.clone(),
            outbound_packets: Some((ci.outbound_soft_packets, ci.outbound_hard_packets)),
            replay_events: Some(self.replay_events),
            replace_existing: true,
        }
    }

    /// Executes the cluster node's effects until none is left.
    fn pump(&mut self, now: Instant) {
        while let Some(e) = self.node.poll_effect() {
            match e {
                ClusterEffect::Ike(e) => {
                    self.children
                        .execute(self.dataplane.as_mut(), e, &mut self.out);
                }
                ClusterEffect::InstallChild(ci) => {
                    let opts = self.options(&ci);
                    let (t, sa, spi_in) = (Instant::now(), ci.child.ike_sa, ci.child.inbound.spi);
                    self.children
                        .install(self.dataplane.as_mut(), ci.child, opts, &mut self.out);
                    tracing::debug!(
                        %sa,
                        spi_in = format_args!("{spi_in:08x}"),
                        us = t.elapsed().as_micros(),
                        "Child SA installed in the data plane"
                    );
                }
                ClusterEffect::BlockPolicies(b) => {
                    if let Err(m) = with_block(self.dataplane.as_mut(), self.owned, &b, true) {
                        self.error(format!("block policies of {}: {m}", b.ike_sa));
                    }
                }
                ClusterEffect::CapOutbound {
                    spi_out,
                    dst,
                    lease_end,
                    margin,
                } => {
                    let t = Instant::now();
                    let id = xfrm::SaId::esp(dst, xfrm::Spi(spi_out));
                    let last =
                        match xfrm::cap_outbound(self.dataplane.as_mut(), &id, lease_end, margin) {
                            Ok(last) => last,
                            Err(e) => {
                                // Unknown counters: claim the whole 32-bit space as used so
                                // the target can never reuse a number (it rekeys instead).
                                self.error(format!("cap the outbound SA {spi_out:08x}: {e}"));
                                u64::from(u32::MAX)
                            }
                        };
                    tracing::debug!(
                        spi = format_args!("{spi_out:08x}"),
                        last,
                        step = "out_capped",
                        us = t.elapsed().as_micros(),
                        "transfer: outbound SA capped"
                    );
                    let st = ReplayState {
                        oseq: last,
                        seq: 0,
                        bitmap: Vec::new(),
                    };
                    self.node.handle_replay_state(now, spi_out, &st);
                }
                ClusterEffect::RemoveBlockPolicies(b) => {
                    if let Err(m) = with_block(self.dataplane.as_mut(), self.owned, &b, false) {
                        self.error(format!("remove block policies of {}: {m}", b.ike_sa));
                    }
                }
                ClusterEffect::ReadReplayState { spi, dst } => {
                    let id = xfrm::SaId::esp(dst, xfrm::Spi(spi));
                    let st = match self.dataplane.get_replay_state(&id) {
                        Ok(st) => st,
                        Err(e) => {
                            // Unknown counters: claim the whole 32-bit space as used so
                            // the receiver of a transfer can never reuse a number (it
                            // rekeys instead).
                            self.error(format!("read replay state of {spi:08x}: {e}"));
                            ReplayState {
                                oseq: u64::from(u32::MAX),
                                seq: 0,
                                bitmap: Vec::new(),
                            }
                        }
                    };
                    self.node.handle_replay_state(now, spi, &st);
                }
                ClusterEffect::UpdateOutboundLease {
                    spi_out,
                    dst,
                    hard_packets,
                    soft_packets,
                } => {
                    let id = xfrm::SaId::esp(dst, xfrm::Spi(spi_out));
                    let r = self.dataplane.get_sa(&id).and_then(|mut info| {
                        info.spec.lifetime.hard_packets = Some(hard_packets);
                        info.spec.lifetime.soft_packets = Some(soft_packets);
                        info.spec.replay_state = None;
                        self.dataplane.update_sa(&info.spec)
                    });
                    if let Err(e) = r {
                        self.error(format!("renew the lease of {spi_out:08x}: {e}"));
                    }
                }
                ClusterEffect::MoveOutboundLease {
                    spi_out,
                    dst,
                    old_end,
                    start,
                    end,
                } => {
                    let id = xfrm::SaId::esp(dst, xfrm::Spi(spi_out));
                    match xfrm::move_outbound_range(
                        self.dataplane.as_mut(),
                        &id,
                        old_end,
                        start,
                        end,
                    ) {
                        // Hard-expired at its lease end meanwhile: nothing to move.
                        Ok(()) | Err(xfrm::Error::NotFound { .. }) => {}
                        Err(e) => self.error(format!(
                            "move {spi_out:08x} above another node's sequence numbers: {e}"
                        )),
                    }
                }
                ClusterEffect::Replicate { to, data } => {
                    self.out.push_back(Output::Replicate { to, data });
                }
                ClusterEffect::Event(ev) => self.out.push_back(Output::Event(cluster_event(ev))),
            }
        }
    }

    fn poll_dataplane(&mut self, now: Instant) {
        let events = match self.dataplane.poll_events() {
            Ok(e) => e,
            Err(e) => {
                self.error(format!("events: {e}"));
                return;
            }
        };
        for e in events {
            match e {
                DataplaneEvent::SoftExpire { sa, .. } => {
                    self.node.handle_child_expire(now, sa.spi.0, false);
                }
                DataplaneEvent::HardExpire { sa, .. } => {
                    self.node.handle_child_expire(now, sa.spi.0, true);
                }
                DataplaneEvent::Replay { sa, state, .. } => {
                    self.node.handle_replay_checkpoint(now, sa.spi.0, &state);
                }
                DataplaneEvent::EventsLost => {
                    tracing::warn!("XFRM events were lost (socket buffer full)");
                }
            }
            self.pump(now);
        }
    }

    fn parse_id(&self, sa: &str) -> Result<IkeSaId, String> {
        u64::from_str_radix(sa, 16)
            .map(IkeSaId)
            .map_err(|_| format!("\"{sa}\" is not an IKE SA id"))
    }
}

fn with_block(
    dp: &mut dyn Dataplane,
    owned: OwnedRange,
    b: &BlockPolicies,
    on: bool,
) -> Result<(), String> {
    let f = if on {
        dataplane::block
    } else {
        dataplane::unblock
    };
    f(
        dp,
        owned,
        b.reqid,
        b.mode,
        (b.local_addr, b.remote_addr),
        (&b.local_ts, &b.remote_ts),
    )
}

fn cluster_event(e: ClusterEvent) -> Event {
    let (kind, sa, detail) = match e {
        ClusterEvent::TookOver { id, from } => {
            ("took_over", Some(id), format!("owner {from} is down"))
        }
        ClusterEvent::TransferredIn { id } => {
            ("transferred_in", Some(id), "Child SAs installed".to_owned())
        }
        ClusterEvent::TransferHandedOver { id, to } => (
            "transfer_handed_over",
            Some(id),
            format!("to {to}: outbound capped, counters sent; sending and receiving until it acks"),
        ),
        ClusterEvent::TransferredOut { id, to } => (
            "transferred_out",
            Some(id),
            format!("to {to}: it acked; our Child SAs removed"),
        ),
        ClusterEvent::LostOwnership { id, to } => (
            "lost_ownership",
            Some(id),
            format!("{to} holds a newer record"),
        ),
        ClusterEvent::SyncStarted { id, m1, p1 } => {
            ("sync_started", Some(id), format!("M1 {m1}, P1 {p1}"))
        }
        ClusterEvent::SyncRetransmitted { id, m1, p1 } => (
            "sync_retransmitted",
            Some(id),
            format!("new request, M1 {m1}, P1 {p1}"),
        ),
        ClusterEvent::SyncGaveUp { id } => (
            "sync_gave_up",
            Some(id),
            "the peer never answered IKEV2_MESSAGE_ID_SYNC; IKE SA deleted".to_owned(),
        ),
        ClusterEvent::AckTimeout => (
            "ack_timeout",
            None,
            "an IKE response left before its record was acknowledged".to_owned(),
        ),
    };
    Event::Cluster {
        kind,
        sa: sa.map(|i| i.to_string()),
        detail,
    }
}

impl Core for ClusterCore {
    fn name(&self) -> &'static str {
        "cluster::sa + ike::endpoint"
    }

    fn handle_datagram(
        &mut self,
        now: Instant,
        local: std::net::SocketAddr,
        remote: std::net::SocketAddr,
        data: &[u8],
    ) {
        if !self.node.handle_datagram(now, local, remote, data) {
            self.out.push_back(Output::Event(Event::Dropped {
                reason: "not_owner".into(),
            }));
        }
        self.pump(now);
    }

    fn handle_timeout(&mut self, now: Instant) {
        if now >= self.next_dataplane_poll {
            self.poll_dataplane(now);
            self.next_dataplane_poll = now + DATAPLANE_POLL;
        }
        self.node.handle_timeout(now);
        self.pump(now);
    }

    fn poll_timeout(&self) -> Option<Instant> {
        Some(
            self.node
                .poll_timeout()
                .map_or(self.next_dataplane_poll, |t| {
                    t.min(self.next_dataplane_poll)
                }),
        )
    }

    fn poll_output(&mut self) -> Option<Output> {
        self.out.pop_front()
    }

    fn terminate(&mut self, now: Instant, id: &str) -> bool {
        let Ok(id) = self.parse_id(id) else {
            return false;
        };
        if !self.node.owns(id) {
            return false;
        }
        let ok = self.node.endpoint_mut().terminate(now, id);
        self.node.flush(now);
        self.pump(now);
        ok
    }

    fn list(&self, now: Instant) -> Vec<IkeSaView> {
        let me = self.node.node().to_string();
        self.node
            .endpoint()
            .list(now)
            .into_iter()
            .map(|i| {
                let mut v = view(i);
                v.owner.clone_from(&me);
                v
            })
            .collect()
    }

    fn reconfigure(&mut self, config: &GatewayConfig) {
        self.pool_names = config.pools.iter().map(|p| p.name.clone()).collect();
        self.node
            .endpoint_mut()
            .reconfigure(node_endpoint_config(config, self.shares));
    }

    fn counts(&self) -> Counts {
        let ep = self.node.endpoint();
        Counts {
            ike_sas: ep.ike_sa_count(),
            half_open: ep.half_open_count(),
            child_sas: self.children.child_sas(),
        }
    }

    fn dataplane_sas(&mut self) -> Option<usize> {
        self.dataplane.list_sas().ok().map(|v| v.len())
    }

    fn handle_cluster(&mut self, now: Instant, input: ClusterInput) {
        match input {
            ClusterInput::Membership(m) => self.node.handle_membership(now, m),
            ClusterInput::Channel(ChannelEvent::PeerConnected { node, incarnation }) => {
                if let Err(e) = self.node.handle_peer_connected(now, &node, incarnation) {
                    tracing::warn!(%node, error = %e, "replication session refused");
                    self.out.push_back(Output::DisconnectPeer { node });
                }
            }
            ClusterInput::Channel(ChannelEvent::PeerDisconnected { node }) => {
                self.node.handle_peer_disconnected(now, &node);
            }
            ClusterInput::Channel(ChannelEvent::Message { node, msg }) => {
                if let Err(e) = self.node.handle_repl_message(now, &node, &msg) {
                    tracing::warn!(%node, error = %e, "replication: dropping the session");
                    self.out.push_back(Output::DisconnectPeer { node });
                }
            }
        }
        let first_new = self.out.len();
        self.pump(now);
        // A transfer's target: how long the handover record took from its arrival to
        // installed, to tell this node's work from the replication hop in the logs.
        let took = now.elapsed().as_micros();
        for o in self.out.iter_mut().skip(first_new) {
            if let Output::Event(Event::Cluster { kind, detail, .. }) = o
                && *kind == "transferred_in"
            {
                *detail = format!("{detail} ({took} us after the record arrived)");
            }
        }
    }

    fn shutdown(&mut self) {
        // The other nodes took (or are taking) our SAs over with fenced sequence
        // numbers; our kernel must stop encrypting and decrypting for them, as a dead
        // node's would.
        match self.dataplane.flush_own() {
            Ok(r) => tracing::info!(
                sas = r.sas,
                policies = r.policies,
                "removed this node's data-plane state"
            ),
            Err(e) => tracing::error!(error = %e, "cannot remove this node's data-plane state"),
        }
    }

    fn cluster_status(&self) -> Option<ClusterView> {
        let s = self.node.status();
        let k = s.counters;
        Some(ClusterView {
            node: s.node.to_string(),
            epoch: s.epoch,
            members: s
                .members
                .into_iter()
                .map(|m| MemberView {
                    node: m.node.to_string(),
                    live: m.live,
                    draining: m.draining,
                    sas_owned: m.sas_owned,
                    connected: m.connected,
                    replication_lag: m.replication_lag,
                })
                .collect(),
            records: s.records,
            queued_transfers: self.node.queued_transfers(),
            pools_paused: self.pool_names.iter().any(|n| {
                self.node
                    .endpoint()
                    .pool(n)
                    .is_some_and(ike::policy::pool::AddressPool::is_paused)
            }),
            counters: ClusterCountersView {
                not_owner: k.not_owner,
                takeovers: k.takeovers,
                syncs_started: k.syncs_started,
                syncs_completed: k.syncs_completed,
                sync_retransmissions: k.sync_retransmissions,
                syncs_failed: k.syncs_failed,
                syncs_skipped: k.syncs_skipped,
                ack_timeouts: k.ack_timeouts,
                held_datagrams: k.held_datagrams,
                transfers_out: k.transfers_out,
                transfers_in: k.transfers_in,
                lease_renewals: k.lease_renewals,
                jump_rekeys: k.jump_rekeys,
                lease_moves: k.lease_moves,
                message_id_merges: k.message_id_merges,
            },
        })
    }

    fn transfer(&mut self, now: Instant, id: &str, to: &str) -> Result<(), String> {
        let id = self.parse_id(id)?;
        let to = NodeId::new(to).map_err(|e| e.to_string())?;
        let r = self.node.transfer(now, id, &to).map_err(|e| e.to_string());
        self.pump(now);
        // The cutover (outbound capped, counters read, record queued) ran in this
        // call unless a lease renewal comes first.
        let took = now.elapsed().as_micros();
        for o in &mut self.out {
            if let Output::Event(Event::Cluster { kind, detail, .. }) = o
                && *kind == "transfer_handed_over"
            {
                *detail = format!("{detail} ({took} us after the command)");
            }
        }
        r
    }

    fn drain(&mut self, now: Instant, node: &str, on: bool) -> Result<(), String> {
        let node = NodeId::new(node).map_err(|e| e.to_string())?;
        if !self.node.status().members.iter().any(|m| m.node == node) {
            return Err(format!("no node \"{node}\" in this cluster"));
        }
        if on {
            self.node.drain(now, &node);
        } else {
            self.node.undrain(now, &node);
        }
        self.pump(now);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn spi_and_reqid_shares_are_disjoint_and_inside_their_spaces() {
        let nodes: Vec<NodeId> = ["a", "b", "c"]
            .iter()
            .map(|n| NodeId::new(n).unwrap())
            .collect();
        for (f, space) in [
            (spi_share as fn(&NodeId, &[NodeId]) -> (u32, u32), SPI_SPACE),
            (reqid_share, (1, CLUSTER_OWNED.max - CLUSTER_OWNED.min)),
        ] {
            let shares: Vec<(u32, u32)> = nodes.iter().map(|n| f(n, &nodes)).collect();
            for (i, (lo, hi)) in shares.iter().enumerate() {
                assert!(lo < hi && *lo >= space.0 && *hi <= space.1);
                for (lo2, hi2) in shares.iter().skip(i + 1) {
                    assert!(hi < lo2 || hi2 < lo, "{shares:x?} overlap");
                }
            }
        }
    }
}
