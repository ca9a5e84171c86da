//! A deterministic two-or-more-endpoint network on a virtual clock (quinn's `Pair`,
//! generalised): datagrams are delivered between endpoints in order, effects other than
//! sends are collected per endpoint, and tests can drop, duplicate or tamper with
//! datagrams in flight.
#![allow(dead_code, clippy::unwrap_used, clippy::panic)] // test support code: failing loudly is the point

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ike::config::{
    ConnectionConfig, EncrAlg, EspProposalConfig, Identity, IdentityPattern, IkeProposalConfig,
    IpsecMode, LocalAuth, PoolConfig, PskEntry, RemoteAuth, TsConfig,
};
use ike::crypto::{DEFAULT_PROVIDER, SecretBytes};
use ike::endpoint::{Effect, Endpoint, EndpointConfig};
use ike::wire::{EncrId, EsnId, IdType, KeGroup, PrfId};

pub(crate) const PSK: &[u8] = b"0123456789abcdef0123";

pub(crate) fn fqdn(s: &str) -> Identity {
    Identity {
        id_type: IdType::FQDN,
        data: s.as_bytes().to_vec(),
    }
}

pub(crate) fn ike_proposal(group: KeGroup) -> IkeProposalConfig {
    IkeProposalConfig {
        encr: vec![EncrAlg {
            id: EncrId::AES_GCM_16,
            key_bits: 128,
        }],
        integ: vec![],
        prf: vec![PrfId::HMAC_SHA2_256],
        ke: vec![group],
    }
}

pub(crate) fn esp_proposal() -> EspProposalConfig {
    EspProposalConfig {
        encr: vec![EncrAlg {
            id: EncrId::AES_GCM_16,
            key_bits: 128,
        }],
        integ: vec![],
        ke: vec![],
        esn: vec![EsnId::NO_ESN],
    }
}

pub(crate) fn subnet(s: &str, len: u8) -> TsConfig {
    TsConfig::Subnet {
        addr: s.parse().unwrap(),
        prefix_len: len,
        ip_protocol: 0,
        ports: (0, 65535),
    }
}

/// The gateway's side of a road-warrior PSK connection.
pub(crate) fn gateway_conn(groups: &[KeGroup], pool: Option<&str>) -> ConnectionConfig {
    ConnectionConfig {
        name: "rw".into(),
        ike_proposals: groups.iter().map(|g| ike_proposal(*g)).collect(),
        esp_proposals: vec![esp_proposal()],
        local_id: fqdn("gw.example"),
        local_auth: LocalAuth::Psk,
        remote_id: IdentityPattern::Any,
        remote_auth: RemoteAuth::Psk,
        local_ts: vec![subnet("10.1.0.0", 24)],
        remote_ts: vec![TsConfig::Dynamic],
        pool: pool.map(str::to_owned),
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

/// The client's side.
pub(crate) fn client_conn(group: KeGroup, id: &str) -> ConnectionConfig {
    ConnectionConfig {
        name: "home".into(),
        ike_proposals: vec![ike_proposal(group)],
        esp_proposals: vec![esp_proposal()],
        local_id: fqdn(id),
        local_auth: LocalAuth::Psk,
        remote_id: IdentityPattern::Exact(fqdn("gw.example")),
        remote_auth: RemoteAuth::Psk,
        local_ts: vec![TsConfig::Dynamic],
        remote_ts: vec![subnet("10.1.0.0", 24)],
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

pub(crate) fn secrets(psk: &[u8]) -> Vec<PskEntry> {
    vec![PskEntry {
        ids: vec![
            fqdn("gw.example"),
            fqdn("client.example"),
            fqdn("client2.example"),
        ],
        psk: SecretBytes::from_slice(psk),
    }]
}

pub(crate) fn gateway_config(conn: ConnectionConfig) -> EndpointConfig {
    let mut c = EndpointConfig::new(&DEFAULT_PROVIDER);
    c.connections = vec![Arc::new(conn)];
    c.secrets = secrets(PSK);
    c.pools = vec![PoolConfig {
        name: "vpn".into(),
        first: "10.8.0.1".parse().unwrap(),
        last: "10.8.0.254".parse().unwrap(),
        prefix_len: 24,
        dns: vec!["10.1.0.53".parse().unwrap()],
    }];
    c
}

pub(crate) fn client_config(conn: ConnectionConfig, psk: &[u8]) -> EndpointConfig {
    let mut c = EndpointConfig::new(&DEFAULT_PROVIDER);
    c.connections = vec![Arc::new(conn)];
    c.secrets = secrets(psk);
    c.spi_range = (0xa000_0000, 0xafff_ffff);
    c
}

/// One endpoint on the virtual network.
pub(crate) struct Node {
    pub ep: Endpoint,
    pub addr: SocketAddr,
    /// Every non-send effect, in order.
    pub effects: Vec<Effect>,
    /// Every datagram it sent, in order.
    pub sent: Vec<Vec<u8>>,
    inbox: VecDeque<(SocketAddr, Vec<u8>)>,
}

/// A datagram in flight, which a test may inspect, drop or change.
pub(crate) struct InFlight {
    pub from: SocketAddr,
    pub to: SocketAddr,
    pub data: Vec<u8>,
}

pub(crate) struct Net {
    pub nodes: Vec<Node>,
    pub now: Instant,
    /// Decides the fate of every datagram: return `false` to drop it.
    pub filter: Box<dyn FnMut(&mut InFlight) -> bool>,
}

impl Net {
    pub(crate) fn new() -> Self {
        Self {
            nodes: Vec::new(),
            now: Instant::now(),
            filter: Box::new(|_| true),
        }
    }

    pub(crate) fn add(&mut self, config: EndpointConfig, addr: &str) -> usize {
        let ep = Endpoint::new(config, self.now);
        self.nodes.push(Node {
            ep,
            addr: addr.parse().unwrap(),
            effects: Vec::new(),
            sent: Vec::new(),
            inbox: VecDeque::new(),
        });
        self.nodes.len() - 1
    }

    /// Moves effects out of every endpoint and delivers datagrams until nothing moves.
    pub(crate) fn run(&mut self) {
        for _ in 0..10_000 {
            let mut moved = false;
            for i in 0..self.nodes.len() {
                while let Some(e) = self.nodes[i].ep.poll_effect() {
                    moved = true;
                    match e {
                        Effect::Send {
                            local,
                            remote,
                            data,
                        } => {
                            self.nodes[i].sent.push(data.clone());
                            let mut f = InFlight {
                                from: local,
                                to: remote,
                                data,
                            };
                            if (self.filter)(&mut f)
                                && let Some(n) =
                                    self.nodes.iter_mut().find(|n| n.addr.ip() == f.to.ip())
                            {
                                n.inbox.push_back((f.from, f.data));
                            }
                        }
                        other => self.nodes[i].effects.push(other),
                    }
                }
            }
            for i in 0..self.nodes.len() {
                while let Some((from, data)) = self.nodes[i].inbox.pop_front() {
                    moved = true;
                    let local = self.nodes[i].addr;
                    let now = self.now;
                    self.nodes[i].ep.handle_datagram(now, local, from, &data);
                }
            }
            if !moved {
                return;
            }
        }
        panic!("network did not settle");
    }

    /// Advances the virtual clock, runs due timers, and delivers what follows.
    pub(crate) fn advance(&mut self, d: Duration) {
        self.now += d;
        let now = self.now;
        for n in &mut self.nodes {
            n.ep.handle_timeout(now);
        }
        self.run();
    }

    /// Delivers a raw datagram to node `to` as if sent by node `from`.
    pub(crate) fn inject(&mut self, from: usize, to: usize, data: &[u8]) {
        let (src, dst, now) = (self.nodes[from].addr, self.nodes[to].addr, self.now);
        self.nodes[to].ep.handle_datagram(now, dst, src, data);
        self.run();
    }

    pub(crate) fn installs(&self, i: usize) -> Vec<&ike::endpoint::ChildInstall> {
        self.nodes[i]
            .effects
            .iter()
            .filter_map(|e| {
                if let Effect::InstallChild(c) = e {
                    Some(c.as_ref())
                } else {
                    None
                }
            })
            .collect()
    }

    pub(crate) fn deletes(&self, i: usize) -> Vec<&ike::endpoint::ChildDelete> {
        self.nodes[i]
            .effects
            .iter()
            .filter_map(|e| {
                if let Effect::DeleteChild(c) = e {
                    Some(c.as_ref())
                } else {
                    None
                }
            })
            .collect()
    }
}

/// A client (node 0, 192.0.2.2) and a gateway (node 1, 198.51.100.1) with an
/// established IKE SA between them.
pub(crate) fn established_pair() -> (Net, ike::sa::IkeSaId) {
    let mut net = Net::new();
    net.add(
        client_config(client_conn(KeGroup::CURVE25519, "client.example"), PSK),
        "192.0.2.2:500",
    );
    net.add(
        gateway_config(gateway_conn(&[KeGroup::CURVE25519], None)),
        "198.51.100.1:500",
    );
    let (l, r, now) = (net.nodes[0].addr, net.nodes[1].addr, net.now);
    let id = net.nodes[0]
        .ep
        .initiate(
            now,
            "home",
            l,
            r,
            ike::initiator::InitiatorOptions {
                mid_sync: true,
                ..Default::default()
            },
        )
        .unwrap();
    net.run();
    assert_eq!(net.nodes[0].ep.ike_sa_count(), 1, "client established");
    assert_eq!(net.nodes[1].ep.ike_sa_count(), 1, "gateway established");
    (net, id)
}
