//! An in-process cluster on a virtual clock: N `ClusterNode`s sharing one address,
//! each with a `MemoryDataplane` on one shared `Wire`, a replication network whose
//! links can be cut (partitions) and whose nodes can die, and ike initiators as peers.
//! Membership is what each node can reach (what the heartbeat would report).
#![allow(
    dead_code,
    unreachable_pub,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)] // test support code: failing loudly is the point

use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cluster::replog::ReplConfig;
use cluster::sa::{ClusterConfig, ClusterEffect, ClusterEvent, ClusterNode, SyncMode};
use cluster::{Membership, NodeId};
use ike::config::{
    ConnectionConfig, EncrAlg, EspProposalConfig, Identity, IdentityPattern, IkeProposalConfig,
    IpsecMode, LocalAuth, PoolConfig, PskEntry, RemoteAuth, TsConfig,
};
use ike::crypto::{DEFAULT_PROVIDER, SecretBytes};
use ike::endpoint::{ChildInstall, Effect, Endpoint, EndpointConfig, SaEvent};
use ike::initiator::InitiatorOptions;
use ike::sa::IkeSaId;
use ike::wire::{EncrId, EsnId, IdType, IntegId, IpTrafficSelector, KeGroup, PrfId};
use xfrm::{
    AeadAlgorithm, Crypto, Dataplane, Key, Mode, OwnedRange, ReplayEventThresholds, ReplayState,
    SaId, SaSpec, Spi, Wire,
};

mod effects;

pub const VIP: &str = "198.51.100.1:500";
const PSK: &[u8] = b"0123456789abcdef0123";
const MAX_PEERS: usize = 64;

fn fqdn(s: &str) -> Identity {
    Identity {
        id_type: IdType::FQDN,
        data: s.as_bytes().to_vec(),
    }
}

thread_local! {
    /// IKE SAs with AES-CBC + HMAC instead of AES-GCM for the clusters built on this
    /// thread (each test has its own): a cluster sends RFC 6311 syncs to AEAD IKE SAs
    /// only while the peer has answered none of our requests (IVs from Message IDs).
    static IKE_CBC: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Makes the clusters built next on this thread negotiate AES-CBC IKE SAs.
pub fn use_cbc_ike_sas() {
    IKE_CBC.with(|c| c.set(true));
}

fn proposals() -> (IkeProposalConfig, EspProposalConfig) {
    let gcm = EncrAlg {
        id: EncrId::AES_GCM_16,
        key_bits: 128,
    };
    let cbc = IKE_CBC.with(std::cell::Cell::get);
    (
        IkeProposalConfig {
            encr: vec![if cbc {
                EncrAlg {
                    id: EncrId::AES_CBC,
                    key_bits: 128,
                }
            } else {
                gcm
            }],
            integ: if cbc {
                vec![IntegId::HMAC_SHA2_256_128]
            } else {
                vec![]
            },
            prf: vec![PrfId::HMAC_SHA2_256],
            ke: vec![KeGroup::CURVE25519],
        },
        EspProposalConfig {
            encr: vec![gcm],
            integ: vec![],
            ke: vec![],
            esn: vec![EsnId::NO_ESN],
        },
    )
}

fn subnet(s: &str, len: u8) -> TsConfig {
    TsConfig::Subnet {
        addr: s.parse().unwrap(),
        prefix_len: len,
        ip_protocol: 0,
        ports: (0, 65535),
    }
}

fn conn(name: &str, local: &str, remote: IdentityPattern, gw: bool) -> ConnectionConfig {
    let (ike, esp) = proposals();
    ConnectionConfig {
        name: name.into(),
        ike_proposals: vec![ike],
        esp_proposals: vec![esp],
        local_id: fqdn(local),
        local_auth: LocalAuth::Psk,
        remote_id: remote,
        remote_auth: RemoteAuth::Psk,
        local_ts: if gw {
            vec![subnet("10.1.0.0", 24)]
        } else {
            vec![TsConfig::Dynamic]
        },
        remote_ts: if gw {
            vec![TsConfig::Dynamic]
        } else {
            vec![subnet("10.1.0.0", 24)]
        },
        pool: None,
        mode: IpsecMode::Tunnel,
        rekey_time: None,
        child_rekey_time: None,
        child_life_time: None,
        life_time: None,
        dpd_delay: None,
        fragmentation: true,
        fragment_size: 1280,
    }
}

fn secrets() -> Vec<PskEntry> {
    vec![PskEntry {
        ids: std::iter::once(fqdn("gw.example"))
            .chain((0..MAX_PEERS).map(|i| fqdn(&format!("client{i}.example"))))
            .collect(),
        psk: SecretBytes::from_slice(PSK),
    }]
}

/// A gateway endpoint for node `i` (disjoint inbound SPI ranges per node).
pub fn gateway_endpoint(i: usize, now: Instant) -> Endpoint {
    gateway_endpoint_with_pool(i, now, None)
}

/// A gateway endpoint for node `i` whose connection assigns virtual IPs from `pool`.
pub fn gateway_endpoint_with_pool(i: usize, now: Instant, pool: Option<&PoolConfig>) -> Endpoint {
    let mut c = EndpointConfig::new(&DEFAULT_PROVIDER);
    let mut gw = conn("rw", "gw.example", IdentityPattern::Any, true);
    if let Some(p) = pool {
        gw.pool = Some(p.name.clone());
        c.pools = vec![p.clone()];
    }
    c.connections = vec![Arc::new(gw)];
    c.secrets = secrets();
    let base = 0xc000_0000u32 + (i as u32) * 0x0100_0000;
    c.spi_range = (base, base + 0x00ff_ffff);
    Endpoint::new(c, now)
}

fn peer_endpoint(i: usize, now: Instant) -> Endpoint {
    let mut c = EndpointConfig::new(&DEFAULT_PROVIDER);
    c.connections = vec![Arc::new(conn(
        "home",
        &format!("client{i}.example"),
        IdentityPattern::Exact(fqdn("gw.example")),
        false,
    ))];
    c.secrets = secrets();
    c.spi_range = (0xa000_0000, 0xafff_ffff);
    Endpoint::new(c, now)
}

pub struct Member {
    pub name: NodeId,
    pub cfg: ClusterConfig,
    pub node: ClusterNode,
    pub dp: xfrm::MemoryDataplane,
    pub alive: bool,
    pub epoch: u64,
    pub view: BTreeSet<NodeId>,
    pub connected: BTreeSet<usize>,
    pub incarnation: u64,
    pub events: Vec<ClusterEvent>,
    pub ike_events: Vec<SaEvent>,
    /// Block-policy requests executed (removals subtracted).
    pub blocks: usize,
    /// The node's policies by selectors (local, remote), as the kernel keys them.
    pub policies: HashMap<Selectors, Pol>,
    /// Block-policy removals that named a policy an owned Child SA uses, or none.
    pub bad_removals: Vec<String>,
    /// Block-policy removals executed.
    pub removals: usize,
    /// Selectors whose OUT policy alone was switched to block (a transfer's source
    /// between its cutover and the target's ack); in and fwd stay as in `policies`.
    pub out_blocked: HashSet<Selectors>,
    /// The selectors of each installed SA (outbound and inbound), to apply policies to
    /// traffic.
    pub sa_sel: HashMap<SaId, Selectors>,
    inbox: VecDeque<(usize, Vec<u8>)>,
}

impl Member {
    /// Whether this node's policies let traffic of `sel` through the SAs, for the given
    /// direction (out: sending; in: delivering what was decrypted).
    pub fn passes(&self, sel: &Selectors, out: bool) -> bool {
        matches!(self.policies.get(sel), Some(Pol::Ipsec(_)))
            && !(out && self.out_blocked.contains(sel))
    }
}

/// A policy's selectors: (local, remote).
pub type Selectors = (Vec<IpTrafficSelector>, Vec<IpTrafficSelector>);

/// What a node's policy for some selectors does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pol {
    /// Traffic is dropped (a standby's).
    Block,
    /// Traffic goes through the Child SA with this reqid (the owner's).
    Ipsec(u32),
}

pub struct Peer {
    pub ep: Endpoint,
    pub addr: SocketAddr,
    pub id: Option<IkeSaId>,
    pub events: Vec<SaEvent>,
    /// Peer's outbound ESP: SPI (the gateway's inbound SPI) → last sequence number sent.
    pub esp_out: HashMap<u32, u64>,
    inbox: VecDeque<(SocketAddr, Vec<u8>)>,
}

pub struct InFlight {
    pub from: SocketAddr,
    pub to: SocketAddr,
    pub data: Vec<u8>,
}

pub struct Cluster {
    pub now: Instant,
    pub members: Vec<Member>,
    pub peers: Vec<Peer>,
    pub wire: Wire,
    /// Cut replication/heartbeat links (unordered pairs, low index first).
    pub cut: HashSet<(usize, usize)>,
    /// Decides the fate of every IKE datagram: return false to drop it.
    pub filter: Box<dyn FnMut(&InFlight) -> bool>,
    /// How many nodes accepted each peer datagram (max over the run).
    pub max_accepting: usize,
    /// The gateways' address pool; peers then ask for a virtual IP.
    pub pool: Option<PoolConfig>,
    /// When set, every effect the nodes execute, in order, with the node's index.
    pub trace: Option<Vec<(usize, ClusterEffect)>>,
    /// Peer ESP packets no node delivered (no SA, replayed, or an in policy that
    /// blocks), and packets more than one node delivered, since the counters were reset.
    pub inbound_lost: u64,
    /// See `inbound_lost`.
    pub inbound_dup: u64,
    /// `send_traffic`, toward each peer: packets of a round no node sent (lost) or
    /// more than one node sent (duplicated; each under its own sequence number).
    pub outbound_lost: u64,
    /// See `outbound_lost`.
    pub outbound_dup: u64,
}

fn owned_range(i: usize) -> OwnedRange {
    let _ = i;
    OwnedRange::default()
}

impl Cluster {
    /// `n` nodes, all alive and connected; `cfg` adjusts each node's configuration.
    pub fn new(n: usize, tweak: impl Fn(&mut ClusterConfig)) -> Self {
        Self::build(n, None, tweak)
    }

    /// `n` nodes whose gateway connection assigns virtual IPs `first..=last`.
    pub fn with_pool(
        n: usize,
        first: &str,
        last: &str,
        tweak: impl Fn(&mut ClusterConfig),
    ) -> Self {
        let pool = PoolConfig {
            name: "vpn".into(),
            first: first.parse().unwrap(),
            last: last.parse().unwrap(),
            prefix_len: 24,
            dns: vec![],
        };
        Self::build(n, Some(pool), tweak)
    }

    fn build(n: usize, pool: Option<PoolConfig>, tweak: impl Fn(&mut ClusterConfig)) -> Self {
        let now = Instant::now();
        let wire = Wire::new();
        let names: Vec<NodeId> = (1..=n)
            .map(|i| NodeId::new(&format!("gw{i}")).unwrap())
            .collect();
        let members = names
            .iter()
            .enumerate()
            .map(|(i, name)| {
                let mut cfg = ClusterConfig::new(name.clone(), names.clone());
                tweak(&mut cfg);
                let node = ClusterNode::new(
                    cfg.clone(),
                    gateway_endpoint_with_pool(i, now, pool.as_ref()),
                    ReplConfig::default(),
                );
                let mut dp = xfrm::MemoryDataplane::new(owned_range(i), 7 + i as u64);
                dp.attach_wire(wire.clone());
                Member {
                    name: name.clone(),
                    cfg,
                    node,
                    dp,
                    alive: true,
                    epoch: 0,
                    view: [name.clone()].into_iter().collect(),
                    connected: BTreeSet::new(),
                    incarnation: 1,
                    events: Vec::new(),
                    ike_events: Vec::new(),
                    blocks: 0,
                    policies: HashMap::new(),
                    bad_removals: Vec::new(),
                    removals: 0,
                    out_blocked: HashSet::new(),
                    sa_sel: HashMap::new(),
                    inbox: VecDeque::new(),
                }
            })
            .collect();
        let mut c = Self {
            now,
            members,
            peers: Vec::new(),
            wire,
            cut: HashSet::new(),
            filter: Box::new(|_| true),
            max_accepting: 0,
            pool,
            trace: None,
            inbound_lost: 0,
            inbound_dup: 0,
            outbound_lost: 0,
            outbound_dup: 0,
        };
        c.update_links();
        c.run();
        c
    }

    fn link_up(&self, a: usize, b: usize) -> bool {
        let key = (a.min(b), a.max(b));
        self.members[a].alive && self.members[b].alive && !self.cut.contains(&key)
    }

    /// Re-evaluates connections and membership views after a change.
    pub fn update_links(&mut self) {
        let n = self.members.len();
        let now = self.now;
        for a in 0..n {
            if !self.members[a].alive {
                continue;
            }
            for b in 0..n {
                if a == b {
                    continue;
                }
                let up = self.link_up(a, b);
                let was = self.members[a].connected.contains(&b);
                let peer = self.members[b].name.clone();
                let inc = self.members[b].incarnation;
                if up && !was {
                    self.members[a].connected.insert(b);
                    self.members[a]
                        .node
                        .handle_peer_connected(now, &peer, inc)
                        .unwrap();
                } else if !up && was {
                    self.members[a].connected.remove(&b);
                    self.members[a].node.handle_peer_disconnected(now, &peer);
                    self.members[a].inbox.retain(|(f, _)| *f != b);
                }
            }
        }
        for a in 0..n {
            if !self.members[a].alive {
                continue;
            }
            let view: BTreeSet<NodeId> = (0..n)
                .filter(|b| *b == a || self.link_up(a, *b))
                .map(|b| self.members[b].name.clone())
                .collect();
            if view != self.members[a].view {
                let m = &mut self.members[a];
                m.epoch += 1;
                m.view = view.clone();
                m.node.handle_membership(
                    now,
                    Membership {
                        epoch: m.epoch,
                        live: view,
                    },
                );
            }
        }
    }

    pub fn kill(&mut self, i: usize) {
        self.members[i].alive = false;
        self.members[i].inbox.clear();
        self.update_links();
        self.run();
    }

    /// The peer retransmits its IKE_SA_INIT or IKE_AUTH request (the initiator's
    /// retransmissions are driven by its user).
    pub fn retransmit_initiation(&mut self, p: usize) {
        let id = self.peers[p].id.unwrap();
        assert!(self.peers[p].ep.retransmit_initiation(id));
        self.run();
    }

    /// Restarts a dead node with empty state (a new incarnation) and connects it.
    pub fn revive(&mut self, i: usize) {
        let now = self.now;
        let m = &mut self.members[i];
        m.node = ClusterNode::new(
            m.cfg.clone(),
            gateway_endpoint_with_pool(i, now, self.pool.as_ref()),
            ReplConfig::default(),
        );
        m.dp = xfrm::MemoryDataplane::new(owned_range(i), 70 + i as u64);
        m.dp.attach_wire(self.wire.clone());
        m.alive = true;
        m.policies.clear();
        m.out_blocked.clear();
        m.sa_sel.clear();
        m.bad_removals.clear();
        m.blocks = 0;
        m.incarnation += 1;
        m.epoch = 0;
        m.view = [m.name.clone()].into_iter().collect();
        m.connected.clear();
        m.inbox.clear();
        self.update_links();
        self.run();
    }

    pub fn partition(&mut self, a: &[usize], b: &[usize]) {
        for x in a {
            for y in b {
                self.cut.insert(((*x).min(*y), (*x).max(*y)));
            }
        }
        self.update_links();
        self.run();
    }

    pub fn heal(&mut self) {
        self.cut.clear();
        self.update_links();
        self.run();
    }

    /// Adds a peer (ike initiator) and starts its IKE SA.
    pub fn add_peer(&mut self) -> usize {
        let i = self.peers.len();
        let addr: SocketAddr = format!("192.0.2.{}:500", 10 + i).parse().unwrap();
        self.peers.push(Peer {
            ep: peer_endpoint(i, self.now),
            addr,
            id: None,
            events: Vec::new(),
            esp_out: HashMap::new(),
            inbox: VecDeque::new(),
        });
        self.initiate(i);
        i
    }

    pub fn initiate(&mut self, p: usize) {
        let now = self.now;
        let addr = self.peers[p].addr;
        let id = self.peers[p].ep.initiate(
            now,
            "home",
            addr,
            VIP.parse().unwrap(),
            InitiatorOptions {
                mid_sync: true,
                replay_sync: true,
                request_virtual_ip: self.pool.is_some(),
                ..Default::default()
            },
        );
        self.peers[p].id = id;
        self.run();
    }

    fn dp_events(&mut self, i: usize) -> bool {
        let now = self.now;
        let evs = self.members[i].dp.poll_events().unwrap();
        let any = !evs.is_empty();
        for ev in evs {
            match ev {
                xfrm::DataplaneEvent::Replay { sa, state, .. } => {
                    self.members[i]
                        .node
                        .handle_replay_checkpoint(now, sa.spi.0, &state);
                }
                xfrm::DataplaneEvent::SoftExpire { sa, .. } => {
                    self.members[i]
                        .node
                        .handle_child_expire(now, sa.spi.0, false);
                }
                xfrm::DataplaneEvent::HardExpire { sa, .. } => {
                    self.members[i]
                        .node
                        .handle_child_expire(now, sa.spi.0, true);
                }
                _ => {}
            }
        }
        any
    }

    /// One pass over node `i`: its data plane events, its effects (replication
    /// messages go to the other nodes' inboxes), its inbox. Returns whether anything
    /// moved.
    fn member_pass(&mut self, i: usize) -> bool {
        if !self.members[i].alive {
            return false;
        }
        let mut moved = self.dp_events(i);
        while let Some(e) = self.members[i].node.poll_effect() {
            moved = true;
            self.exec(i, e);
        }
        while let Some((from, data)) = self.members[i].inbox.pop_front() {
            moved = true;
            let name = self.members[from].name.clone();
            let now = self.now;
            self.members[i]
                .node
                .handle_repl_message(now, &name, &data)
                .unwrap();
        }
        moved
    }

    /// Runs node `i` alone until it has nothing left to do: what it sends to the other
    /// nodes waits in their inboxes, what it sends to peers in theirs.
    pub fn step(&mut self, i: usize) {
        for _ in 0..100_000 {
            if !self.member_pass(i) {
                return;
            }
        }
        panic!("node {i} did not settle");
    }

    /// Moves effects and datagrams until nothing moves.
    pub fn run(&mut self) {
        for _ in 0..100_000 {
            let mut moved = false;
            for i in 0..self.members.len() {
                moved |= self.member_pass(i);
            }
            for p in 0..self.peers.len() {
                while let Some(e) = self.peers[p].ep.poll_effect() {
                    moved = true;
                    self.peer_effect(p, e);
                }
                while let Some((from, data)) = self.peers[p].inbox.pop_front() {
                    moved = true;
                    let (now, addr) = (self.now, self.peers[p].addr);
                    self.peers[p].ep.handle_datagram(now, addr, from, &data);
                }
            }
            if !moved {
                return;
            }
        }
        panic!("cluster did not settle");
    }

    fn peer_effect(&mut self, p: usize, e: Effect) {
        match e {
            Effect::Send {
                local,
                remote,
                data,
            } => {
                let f = InFlight {
                    from: local,
                    to: remote,
                    data,
                };
                if !(self.filter)(&f) {
                    return;
                }
                let now = self.now;
                let mut accepted = 0;
                for m in self.members.iter_mut().filter(|m| m.alive) {
                    if m.node.handle_datagram(now, f.to, f.from, &f.data) {
                        accepted += 1;
                    }
                }
                if self.cut.is_empty() {
                    self.max_accepting = self.max_accepting.max(accepted);
                }
            }
            Effect::InstallChild(ci) => {
                self.peers[p].esp_out.insert(ci.outbound.spi, 0);
            }
            Effect::DeleteChild(cd) => {
                self.peers[p].esp_out.remove(&cd.spi_out);
            }
            Effect::AdvanceOutboundSequence { spi_out, delta, .. } => {
                if let Some(s) = self.peers[p].esp_out.get_mut(&spi_out) {
                    *s += delta;
                }
            }
            Effect::Event(ev) => {
                if let SaEvent::IkeRekeyed { old, new } = &ev
                    && self.peers[p].id == Some(*old)
                {
                    self.peers[p].id = Some(*new);
                }
                self.peers[p].events.push(ev);
            }
            Effect::KeyLog(_) | Effect::NatKeepalive { .. } => {}
        }
    }

    /// Advances the virtual clock by `d` in steps of at most 50 ms, running timers.
    pub fn advance(&mut self, d: Duration) {
        let end = self.now + d;
        while self.now < end {
            self.now = (self.now + Duration::from_millis(50)).min(end);
            let now = self.now;
            for m in self.members.iter_mut().filter(|m| m.alive) {
                m.node.handle_timeout(now);
            }
            for p in &mut self.peers {
                p.ep.handle_timeout(now);
            }
            self.run();
        }
    }

    /// Every alive node sends `n` packets on each outbound SA it holds whose out
    /// policy is IPsec, and every peer sends `n` packets on each of its Child SAs to
    /// every alive node (the shared address); then everything runs.
    pub fn traffic(&mut self, n: u64) {
        self.send_traffic(n);
        self.run();
    }

    /// [`Cluster::traffic`] without running anything afterwards. A node holding the
    /// inbound SA decrypts a peer packet (its replay window moves) and delivers it if
    /// its in policy is IPsec; packets no node delivers count in `inbound_lost`, those
    /// two or more nodes deliver in `inbound_dup`.
    pub fn send_traffic(&mut self, n: u64) {
        let peer_ips: Vec<IpAddr> = self.peers.iter().map(|p| p.addr.ip()).collect();
        // Per peer: packets each node sent toward it this round.
        let mut sent_to: HashMap<IpAddr, Vec<u64>> = HashMap::new();
        for m in self.members.iter_mut().filter(|m| m.alive) {
            let ids: Vec<SaId> =
                m.dp.list_sas()
                    .unwrap()
                    .into_iter()
                    .map(|s| s.spec.id)
                    .filter(|id| peer_ips.contains(&id.dst))
                    .filter(|id| m.sa_sel.get(id).is_none_or(|sel| m.passes(sel, true)))
                    .collect();
            let mut by_peer: HashMap<IpAddr, u64> = HashMap::new();
            for id in ids {
                let k = m.dp.send(&id, n, 100).map_or(0, |r| r.count);
                *by_peer.entry(id.dst).or_default() += k;
            }
            for (ip, k) in by_peer {
                sent_to.entry(ip).or_default().push(k);
            }
        }
        for ip in &peer_ips {
            let counts = sent_to.remove(ip).unwrap_or_default();
            let most = counts.iter().copied().max().unwrap_or(0);
            self.outbound_lost += n.saturating_sub(most);
            self.outbound_dup += counts.iter().sum::<u64>() - most;
        }
        let vip: IpAddr = VIP.parse::<SocketAddr>().unwrap().ip();
        for p in &mut self.peers {
            for (spi, seq) in p.esp_out.iter_mut() {
                let first = *seq + 1;
                *seq += n;
                let id = SaId::esp(vip, Spi(*spi));
                for s in first..first + n {
                    let mut delivered = 0;
                    for m in self.members.iter_mut().filter(|m| m.alive) {
                        let ok = matches!(m.dp.receive(&id, s, 100), Ok(xfrm::Received::Accepted));
                        if ok && m.sa_sel.get(&id).is_none_or(|sel| m.passes(sel, false)) {
                            delivered += 1;
                        }
                    }
                    match delivered {
                        0 => self.inbound_lost += 1,
                        1 => {}
                        _ => self.inbound_dup += 1,
                    }
                }
            }
        }
    }

    pub fn alive(&self) -> Vec<usize> {
        (0..self.members.len())
            .filter(|i| self.members[*i].alive)
            .collect()
    }

    /// Index of the alive node owning the gateway side of peer `p`'s IKE SA.
    pub fn owners_of_peer(&self, p: usize) -> Vec<usize> {
        let Some(sa) = self.peers[p].id.and_then(|id| self.peers[p].ep.ike_sa(id)) else {
            return Vec::new();
        };
        let gw = IkeSaId(sa.spis.spi_r.0);
        self.alive()
            .into_iter()
            .filter(|i| self.members[*i].node.owns(gw))
            .collect()
    }

    pub fn gw_id(&self, p: usize) -> IkeSaId {
        let sa = self.peers[p].ep.ike_sa(self.peers[p].id.unwrap()).unwrap();
        IkeSaId(sa.spis.spi_r.0)
    }

    /// The invariants after each step: every established peer SA has exactly one owner
    /// among the alive nodes, and no (SPI, sequence number) pair was used twice.
    pub fn check(&self) {
        for p in 0..self.peers.len() {
            if self.peers[p]
                .id
                .and_then(|id| self.peers[p].ep.ike_sa(id))
                .is_none()
            {
                continue;
            }
            let owners = self.owners_of_peer(p);
            assert_eq!(owners.len(), 1, "peer {p}: owners {owners:?}");
        }
        assert!(
            self.wire.reused().is_empty(),
            "reused: {:?}",
            self.wire.reused()
        );
        assert!(
            self.max_accepting <= 1,
            "a datagram was accepted by two nodes"
        );
        for m in self.members.iter().filter(|m| m.alive) {
            assert!(
                m.bad_removals.is_empty(),
                "{}: {:?}",
                m.name,
                m.bad_removals
            );
        }
    }

    /// The peer's next request is answered: a liveness check completes.
    pub fn liveness_ok(&mut self, p: usize) -> bool {
        let id = self.peers[p].id.unwrap();
        let before = self.peers[p].ep.ike_sa(id).unwrap().msgids.our_next_request;
        let now = self.now;
        assert!(self.peers[p].ep.send_liveness(now, id));
        self.run();
        let sa = self.peers[p].ep.ike_sa(id).unwrap();
        sa.msgids.our_next_request == before + 1 && sa.msgids.outstanding.is_none()
    }

    /// Child SA rekey by the peer; true if the peer has a new Child SA afterwards.
    pub fn child_rekey_ok(&mut self, p: usize) -> bool {
        let id = self.peers[p].id.unwrap();
        let old = self.peers[p].ep.ike_sa(id).unwrap().children[0].spi_in;
        let now = self.now;
        assert!(self.peers[p].ep.create_child(now, id, Some(old)));
        self.run();
        self.advance(Duration::from_millis(100));
        let sa = self.peers[p].ep.ike_sa(id).unwrap();
        sa.msgids.outstanding.is_none()
            && sa.children.iter().all(|c| c.spi_in != old)
            && !sa.children.is_empty()
    }

    /// IKE SA rekey by the peer; true if it has a new IKE SA (the same session) after.
    pub fn ike_rekey_ok(&mut self, p: usize) -> bool {
        let id = self.peers[p].id.unwrap();
        let now = self.now;
        assert!(self.peers[p].ep.rekey_ike(now, id));
        self.run();
        self.advance(Duration::from_millis(100));
        let new = self.peers[p].id.unwrap();
        new != id && self.peers[p].ep.ike_sa(new).is_some()
    }

    pub fn peer_event_count(&self, p: usize, f: impl Fn(&SaEvent) -> bool) -> usize {
        self.peers[p].events.iter().filter(|e| f(e)).count()
    }

    /// The virtual IP peer `p` was assigned, if any.
    pub fn vip(&self, p: usize) -> Option<IpAddr> {
        let sa = self.peers[p]
            .id
            .and_then(|id| self.peers[p].ep.ike_sa(id))?;
        sa.virtual_ip
    }

    /// Peers whose IKE SA is established.
    pub fn established(&self) -> usize {
        self.peers
            .iter()
            .filter(|p| {
                p.id.and_then(|id| p.ep.ike_sa(id))
                    .is_some_and(|sa| sa.state == ike::sa::IkeSaState::Established)
            })
            .count()
    }
}

fn spec(ci: &ChildInstall, inbound: bool) -> SaSpec {
    let half = if inbound { &ci.inbound } else { &ci.outbound };
    let mut s = SaSpec::new(
        SaId::esp(half.dst, Spi(half.spi)),
        half.src,
        Mode::Tunnel,
        OwnedRange::default().min + ci.reqid,
        Crypto::Aead {
            alg: AeadAlgorithm::AesGcm,
            key: Key::from_slice(half.keys.encr.expose()),
            icv_bits: 128,
        },
    );
    s.replay_window = if inbound { 128 } else { 0 };
    s.replay_events = Some(ReplayEventThresholds {
        packets: 100,
        timer_jiffies: 0,
    });
    s
}

pub fn ack_mode(c: &mut ClusterConfig) {
    c.sync = SyncMode::Ack;
}
