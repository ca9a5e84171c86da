//! Takeover benchmark of the cluster SA layer (in-process, MemoryDataplane).
//!
//! `cargo run --release -p cluster --example takeover_bench [N...]`
//!
//! 1. Replication bytes per SA setup and per exchange: 200 real IKE SAs set up by ike
//!    initiators against a 2-node cluster (`sync = "ack"`), then one liveness exchange
//!    each; bytes sent on the replication channel by the owners, divided.
//! 2. Takeover time for N SAs (default 10,000 and 100,000): node gw1 owns N SAs (copies
//!    of a real SA with distinct SPIs, adopted and replicated to gw2); gw1 dies; the time
//!    from gw2's membership change until every Child SA is installed in gw2's
//!    MemoryDataplane (leases, replay windows; RFC 6311 syncs then run at their own
//!    bounded rate and are not included). Median of 3 runs.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a benchmark: fail loudly

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use cluster::replog::ReplConfig;
use cluster::sa::{ClusterConfig, ClusterEffect, ClusterNode};
use cluster::{Membership, NodeId};
use ike::config::{
    ConnectionConfig, EncrAlg, EspProposalConfig, Identity, IdentityPattern, IkeProposalConfig,
    IpsecMode, LocalAuth, PskEntry, RemoteAuth, TsConfig,
};
use ike::crypto::{DEFAULT_PROVIDER, SecretBytes};
use ike::endpoint::{Effect, Endpoint, EndpointConfig};
use ike::initiator::InitiatorOptions;
use ike::wire::{EncrId, EsnId, IdType, IkeSpi, KeGroup, PrfId};
use xfrm::{AeadAlgorithm, Crypto, Dataplane, Key, Mode, OwnedRange, SaId, SaSpec, Spi};

const VIP: &str = "198.51.100.1:500";

fn fqdn(s: &str) -> Identity {
    Identity {
        id_type: IdType::FQDN,
        data: s.as_bytes().to_vec(),
    }
}

fn conn(name: &str, local: &str, remote: IdentityPattern, gw: bool) -> ConnectionConfig {
    let gcm = EncrAlg {
        id: EncrId::AES_GCM_16,
        key_bits: 128,
    };
    let net = TsConfig::Subnet {
        addr: "10.1.0.0".parse().unwrap(),
        prefix_len: 24,
        ip_protocol: 0,
        ports: (0, 65535),
    };
    ConnectionConfig {
        name: name.into(),
        ike_proposals: vec![IkeProposalConfig {
            encr: vec![gcm],
            integ: vec![],
            prf: vec![PrfId::HMAC_SHA2_256],
            ke: vec![KeGroup::CURVE25519],
        }],
        esp_proposals: vec![EspProposalConfig {
            encr: vec![gcm],
            integ: vec![],
            ke: vec![],
            esn: vec![EsnId::NO_ESN],
        }],
        local_id: fqdn(local),
        local_auth: LocalAuth::Psk,
        remote_id: remote,
        remote_auth: RemoteAuth::Psk,
        local_ts: vec![if gw { net } else { TsConfig::Dynamic }],
        remote_ts: vec![if gw { TsConfig::Dynamic } else { net }],
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

fn config(c: ConnectionConfig, peers: usize, spi_base: u32) -> EndpointConfig {
    let mut e = EndpointConfig::new(&DEFAULT_PROVIDER);
    e.connections = vec![Arc::new(c)];
    e.secrets = vec![PskEntry {
        ids: std::iter::once(fqdn("gw.example"))
            .chain((0..peers).map(|i| fqdn(&format!("c{i}.example"))))
            .collect(),
        psk: SecretBytes::from_slice(b"0123456789abcdef0123"),
    }];
    e.spi_range = (spi_base, spi_base + 0x00ff_ffff);
    e
}

struct Bench {
    now: Instant,
    nodes: Vec<ClusterNode>,
    dps: Vec<xfrm::MemoryDataplane>,
    alive: Vec<bool>,
    peers: Vec<(Endpoint, SocketAddr)>,
    inbox: Vec<VecDeque<Vec<u8>>>,
    peer_inbox: HashMap<SocketAddr, VecDeque<Vec<u8>>>,
    installs: usize,
}

fn spec(ci: &ike::endpoint::ChildInstall, inbound: bool) -> SaSpec {
    let half = if inbound { &ci.inbound } else { &ci.outbound };
    let mut s = SaSpec::new(
        SaId::esp(half.dst, Spi(half.spi)),
        half.src,
        Mode::Tunnel,
        OwnedRange::default().min + (ci.reqid & 0xffff),
        Crypto::Aead {
            alg: AeadAlgorithm::AesGcm,
            key: Key::from_slice(half.keys.encr.expose()),
            icv_bits: 128,
        },
    );
    s.replay_window = if inbound { 128 } else { 0 };
    s
}

impl Bench {
    fn new(sync_ack: bool) -> Self {
        let now = Instant::now();
        let names: Vec<NodeId> = ["gw1", "gw2"]
            .iter()
            .map(|n| NodeId::new(n).unwrap())
            .collect();
        let mut nodes: Vec<ClusterNode> = names
            .iter()
            .enumerate()
            .map(|(i, n)| {
                let mut cfg = ClusterConfig::new(n.clone(), names.clone());
                if !sync_ack {
                    cfg.sync = cluster::sa::SyncMode::Async;
                }
                let ep = Endpoint::new(
                    config(
                        conn("rw", "gw.example", IdentityPattern::Any, true),
                        1000,
                        0xc000_0000 + (i as u32) * 0x0100_0000,
                    ),
                    now,
                );
                ClusterNode::new(cfg, ep, ReplConfig::default())
            })
            .collect();
        for (i, n) in nodes.iter_mut().enumerate() {
            n.handle_peer_connected(now, &names[1 - i], 1).unwrap();
            n.handle_membership(
                now,
                Membership {
                    epoch: 1,
                    live: names.iter().cloned().collect(),
                },
            );
        }
        Self {
            now,
            nodes,
            dps: (0..2)
                .map(|i| xfrm::MemoryDataplane::new(OwnedRange::default(), i + 1))
                .collect(),
            alive: vec![true, true],
            peers: Vec::new(),
            inbox: vec![VecDeque::new(), VecDeque::new()],
            peer_inbox: HashMap::new(),
            installs: 0,
        }
    }

    fn run(&mut self) {
        loop {
            let mut moved = false;
            for i in 0..2 {
                if !self.alive[i] {
                    continue;
                }
                while let Some(e) = self.nodes[i].poll_effect() {
                    moved = true;
                    match e {
                        ClusterEffect::Replicate { data, .. } if self.alive[1 - i] => {
                            self.inbox[1 - i].push_back(data);
                        }
                        ClusterEffect::InstallChild(ci) => {
                            let mut a = spec(&ci.child, true);
                            a.replay_state = ci.inbound_replay.clone();
                            let mut b = spec(&ci.child, false);
                            b.replay_state = ci.outbound_replay.clone();
                            b.lifetime.hard_packets = Some(ci.outbound_hard_packets);
                            let _ = self.dps[i].add_sa(&a);
                            let _ = self.dps[i].add_sa(&b);
                            self.installs += 1;
                        }
                        ClusterEffect::Ike(Effect::Send { remote, data, .. }) => {
                            self.peer_inbox.entry(remote).or_default().push_back(data);
                        }
                        _ => {}
                    }
                }
                let from = NodeId::new(if i == 0 { "gw2" } else { "gw1" }).unwrap();
                while let Some(m) = self.inbox[i].pop_front() {
                    moved = true;
                    let now = self.now;
                    self.nodes[i].handle_repl_message(now, &from, &m).unwrap();
                }
            }
            for (ep, addr) in &mut self.peers {
                while let Some(e) = ep.poll_effect() {
                    if let Effect::Send { data, .. } = e {
                        moved = true;
                        for i in 0..2 {
                            if self.alive[i] {
                                self.nodes[i].handle_datagram(
                                    self.now,
                                    VIP.parse().unwrap(),
                                    *addr,
                                    &data,
                                );
                            }
                        }
                    }
                }
                if let Some(q) = self.peer_inbox.get_mut(addr) {
                    while let Some(d) = q.pop_front() {
                        moved = true;
                        ep.handle_datagram(self.now, *addr, VIP.parse().unwrap(), &d);
                    }
                }
            }
            if !moved {
                return;
            }
        }
    }

    fn repl_bytes(&self) -> u64 {
        self.nodes
            .iter()
            .flat_map(|n| n.log().all_peer_stats())
            .map(|(_, s)| s.bytes_sent)
            .sum()
    }
}

fn replication_bytes() -> (f64, f64) {
    let mut b = Bench::new(true);
    let n = 200;
    let before = b.repl_bytes();
    for i in 0..n {
        let addr: SocketAddr = format!("192.0.2.{}:{}", 1 + i % 250, 500 + i)
            .parse()
            .unwrap();
        let mut ep = Endpoint::new(
            config(
                conn(
                    "home",
                    &format!("c{i}.example"),
                    IdentityPattern::Exact(fqdn("gw.example")),
                    false,
                ),
                1000,
                0xa000_0000,
            ),
            b.now,
        );
        ep.initiate(
            b.now,
            "home",
            addr,
            VIP.parse().unwrap(),
            InitiatorOptions {
                mid_sync: true,
                replay_sync: true,
                ..Default::default()
            },
        )
        .unwrap();
        b.peers.push((ep, addr));
        b.run();
    }
    let setup = b.repl_bytes() - before;
    let before = b.repl_bytes();
    let now = b.now;
    for (ep, _) in &mut b.peers {
        let id = ep.list(now)[0].id;
        assert!(ep.send_liveness(now, id));
    }
    b.run();
    let exch = b.repl_bytes() - before;
    (setup as f64 / n as f64, exch as f64 / n as f64)
}

fn takeover(n: usize) -> (Duration, usize) {
    let mut b = Bench::new(false);
    // One real SA, exported as the template.
    let addr: SocketAddr = "192.0.2.1:500".parse().unwrap();
    let mut ep = Endpoint::new(
        config(
            conn(
                "home",
                "c0.example",
                IdentityPattern::Exact(fqdn("gw.example")),
                false,
            ),
            1,
            0xa000_0000,
        ),
        b.now,
    );
    ep.initiate(
        b.now,
        "home",
        addr,
        VIP.parse().unwrap(),
        InitiatorOptions {
            mid_sync: true,
            replay_sync: true,
            ..Default::default()
        },
    )
    .unwrap();
    b.peers.push((ep, addr));
    b.run();
    let owner = (0..2)
        .find(|i| b.nodes[*i].endpoint().ike_sa_count() == 1)
        .unwrap();
    let id = b.nodes[owner].endpoint().list(b.now)[0].id;
    let template = b.nodes[owner].endpoint().export(id, b.now).unwrap();
    b.peers.clear();
    // gw1 adopts n copies with distinct SPIs.
    let src = 0;
    for k in 0..n as u64 {
        let mut sa = ike::export::read_sa(&template, b.now).unwrap();
        sa.spis.spi_i = IkeSpi(0x1000_0000_0000_0000 + k);
        sa.spis.spi_r = IkeSpi(0x2000_0000_0000_0000 + k);
        sa.msgids.last_response = None;
        for c in &mut sa.children {
            c.spi_in = 0xc000_0000 + k as u32;
            c.spi_out = 0xa000_0000 + k as u32;
        }
        let rec = ike::export::write_sa(&sa, b.now);
        b.nodes[src].adopt(b.now, &rec).unwrap();
        if k % 1000 == 999 {
            b.run();
        }
    }
    b.run();
    assert_eq!(b.nodes[1].status().records, n + 1);
    // gw1 dies; gw2 learns it from the heartbeat.
    b.alive[0] = false;
    b.installs = 0;
    let t0 = Instant::now();
    let now = b.now;
    b.nodes[1].handle_peer_disconnected(now, &NodeId::new("gw1").unwrap());
    b.nodes[1].handle_membership(
        now,
        Membership {
            epoch: 2,
            live: [NodeId::new("gw2").unwrap()].into_iter().collect(),
        },
    );
    b.run();
    let dt = t0.elapsed();
    (dt, b.installs)
}

fn main() {
    let sizes: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let sizes = if sizes.is_empty() {
        vec![10_000, 100_000]
    } else {
        sizes
    };
    let (setup, exch) = replication_bytes();
    println!("replication bytes per SA setup (sync=ack, 200 SAs): {setup:.0}");
    println!("replication bytes per exchange (liveness, 200 SAs): {exch:.0}");
    for n in sizes {
        let mut runs = Vec::new();
        for _ in 0..3 {
            let (dt, installs) = takeover(n);
            assert!(installs >= n, "every Child SA installed on the survivor");
            runs.push(dt);
        }
        runs.sort();
        println!(
            "takeover of {n} SAs: median {:.3} s (runs: {})",
            runs[1].as_secs_f64(),
            runs.iter()
                .map(|d| format!("{:.3}", d.as_secs_f64()))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
}
