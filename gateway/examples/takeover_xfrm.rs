//! Takeover benchmark with batond's own cluster core on the kernel data plane (XFRM).
//!
//! The survivor is `gateway::daemon::cluster_core::ClusterCore`, the core batond runs in
//! cluster mode, on an `xfrm::KernelDataplane` opened as batond opens it (with events,
//! `flush_own` first); every `ClusterEffect` is executed by batond's code: both SAs of a
//! Child SA with their replicated replay state, the outbound sequence lease as soft/hard
//! packet lifetimes and rate-limited replay events, then its out/in/fwd tunnel policies
//! (which replace the block policies the survivor held as a non-owner, DESIGN §4).
//!
//! 1. A real IKE SA (AES-GCM-128, one Child SA) is set up by an `ike` initiator against a
//!    plain responder; its record is the template.
//! 2. Node gw1 (a `cluster::sa::ClusterNode`, memory only) adopts N copies with distinct
//!    IKE SPIs, Child SA SPIs, reqids, peer addresses and peer traffic selectors (one
//!    client address each, so every Child SA has its own policies), and replicates them
//!    to gw2 (the `ClusterCore`), which installs block policies for them.
//! 3. gw1 dies: the time from gw2's membership change until every Child SA is installed
//!    (2 SAs + 3 policies each) is the takeover time. The RFC 6311 syncs that follow run
//!    at their own bounded rate and are not included (as in `cluster`'s `takeover_bench`).
//!
//! The kernel needs ESP, so on this project's machines it runs in the VM:
//!
//! ```text
//! cargo build --release -p gateway --example takeover_xfrm
//! interop/vm/run-in-vm -m 4096 -- target/release/examples/takeover_xfrm 10000
//! target/release/examples/takeover_xfrm --memory 10000   # the same harness, MemoryDataplane
//! ```
//!
//! Arguments: sizes (default 10000), `--runs R` (default 3), `--memory`.
//!
//! Each run prints the data plane calls made during the takeover with their mean cost.
//! With the kernel's default SPD hash thresholds these policies (a /24 on one side) are
//! not hashed and their cost per call grows with their number; `ip xfrm policy set
//! hthresh4 24 32` before the run makes them hashed (see `docs/benchmarks.md`).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a benchmark: fail loudly

use std::collections::VecDeque;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cluster::replog::ReplConfig;
use cluster::sa::{ClusterConfig, ClusterEffect, ClusterNode, SyncMode};
use cluster::{Membership, NodeId};
use gateway::config::GatewayConfig;
use gateway::daemon::cluster_core::ClusterCore;
use gateway::daemon::core::{ClusterInput, Core, Event, Output};
use gateway::daemon::endpoint_core::endpoint_config;
use ike::config::{
    ConnectionConfig, EncrAlg, EspProposalConfig, Identity, IdentityPattern, IkeProposalConfig,
    IpsecMode, LocalAuth, PskEntry, RemoteAuth, TsConfig,
};
use ike::crypto::{DEFAULT_PROVIDER, SecretBytes};
use ike::endpoint::{Effect, Endpoint, EndpointConfig};
use ike::initiator::InitiatorOptions;
use ike::wire::{EncrId, EsnId, IdType, IkeSpi, IpTrafficSelector, KeGroup, PrfId};
use xfrm::{
    Dataplane, DataplaneEvent, FlushReport, OwnedRange, PolicyId, PolicySpec, Protocol,
    ReplayState, SaCounters, SaId, SaInfo, SaSpec, Spi, SpiRange,
};

const VIP: &str = "198.51.100.1:500";
const PSK: &str = "bench-only-psk-0123456789";

fn gw_config(node: &str, peer: &str) -> GatewayConfig {
    let text = format!(
        r#"
[gateway]
listen = ["198.51.100.1"]
dataplane = "xfrm"

[[connection]]
name = "rw"
local_id = "gw.example"
remote_id = "*"
local_ts = ["10.1.0.0/24"]
remote_ts = ["dynamic"]

[[secret]]
ids = ["gw.example", "c0.example"]
psk = "{PSK}"

[cluster]
node = "{node}"
listen = "192.0.2.250:4510"
peers = {{ {peer} = "192.0.2.251:4510" }}
key_file = "/nonexistent/cluster.key"
vip = ["198.51.100.1"]
sync = "async"
"#
    );
    GatewayConfig::parse(Path::new("/bench/gw.toml"), &text).unwrap()
}

fn fqdn(s: &str) -> Identity {
    Identity {
        id_type: IdType::FQDN,
        data: s.as_bytes().to_vec(),
    }
}

fn initiator_config() -> EndpointConfig {
    let gcm = EncrAlg {
        id: EncrId::AES_GCM_16,
        key_bits: 128,
    };
    let mut e = EndpointConfig::new(&DEFAULT_PROVIDER);
    e.connections = vec![Arc::new(ConnectionConfig {
        name: "home".into(),
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
        local_id: fqdn("c0.example"),
        local_auth: LocalAuth::Psk,
        remote_id: IdentityPattern::Exact(fqdn("gw.example")),
        remote_auth: RemoteAuth::Psk,
        local_ts: vec![TsConfig::Dynamic],
        remote_ts: vec![TsConfig::Subnet {
            addr: "10.1.0.0".parse().unwrap(),
            prefix_len: 24,
            ip_protocol: 0,
            ports: (0, 65535),
        }],
        pool: None,
        mode: IpsecMode::Tunnel,
        rekey_time: None,
        child_rekey_time: None,
        child_life_time: None,
        life_time: None,
        dpd_delay: None,
        fragmentation: true,
        fragment_size: 1280,
    })];
    e.secrets = vec![PskEntry {
        ids: vec![fqdn("gw.example"), fqdn("c0.example")],
        psk: SecretBytes::from_slice(PSK.as_bytes()),
    }];
    e.spi_range = (0xa000_0000, 0xa0ff_ffff);
    e
}

/// One real IKE SA with one Child SA, set up against a plain responder with gw2's
/// configuration; its exported record.
fn template(now: Instant) -> Vec<u8> {
    let addr: SocketAddr = "192.0.2.1:500".parse().unwrap();
    let vip: SocketAddr = VIP.parse().unwrap();
    let mut resp = Endpoint::new(endpoint_config(&gw_config("gw2", "gw1")), now);
    let mut init = Endpoint::new(initiator_config(), now);
    init.initiate(
        now,
        "home",
        addr,
        vip,
        InitiatorOptions {
            mid_sync: true,
            replay_sync: true,
            ..Default::default()
        },
    )
    .unwrap();
    loop {
        let mut moved = false;
        while let Some(e) = init.poll_effect() {
            if let Effect::Send { data, .. } = e {
                moved = true;
                resp.handle_datagram(now, vip, addr, &data);
            }
        }
        while let Some(e) = resp.poll_effect() {
            if let Effect::Send { data, .. } = e {
                moved = true;
                init.handle_datagram(now, addr, vip, &data);
            }
        }
        if !moved {
            break;
        }
    }
    let list = resp.list(now);
    assert_eq!(list.len(), 1, "template IKE SA established");
    resp.export(list[0].id, now).unwrap()
}

/// Kernel calls made by the survivor's core: count, successes, time inside.
#[derive(Clone, Copy, Default, Debug)]
struct Op {
    calls: u64,
    ok: u64,
    time: Duration,
}

#[derive(Clone, Copy, Default, Debug)]
struct Stats {
    add_sa: Op,
    delete_sa: Op,
    add_policy: Op,
    update_policy: Op,
    delete_policy: Op,
    other: Op,
}

impl Stats {
    fn calls(&self) -> u64 {
        [
            self.add_sa,
            self.delete_sa,
            self.add_policy,
            self.update_policy,
            self.delete_policy,
            self.other,
        ]
        .iter()
        .map(|o| o.calls)
        .sum()
    }

    fn time(&self) -> Duration {
        [
            self.add_sa,
            self.delete_sa,
            self.add_policy,
            self.update_policy,
            self.delete_policy,
            self.other,
        ]
        .iter()
        .map(|o| o.time)
        .sum()
    }
}

/// The survivor's data plane, with every call counted and timed (a clock read per
/// netlink round trip: negligible next to it).
struct Counting {
    inner: Box<dyn Dataplane>,
    stats: Arc<Mutex<Stats>>,
}

impl Counting {
    fn op<T>(
        &mut self,
        which: fn(&mut Stats) -> &mut Op,
        f: impl FnOnce(&mut dyn Dataplane) -> xfrm::Result<T>,
    ) -> xfrm::Result<T> {
        let t = Instant::now();
        let r = f(self.inner.as_mut());
        let dt = t.elapsed();
        let mut s = self.stats.lock().unwrap();
        let o = which(&mut s);
        o.calls += 1;
        o.ok += u64::from(r.is_ok());
        o.time += dt;
        r
    }
}

impl Dataplane for Counting {
    fn alloc_spi(
        &mut self,
        src: IpAddr,
        dst: IpAddr,
        proto: Protocol,
        reqid: u32,
        range: SpiRange,
    ) -> xfrm::Result<Spi> {
        self.op(
            |s| &mut s.other,
            |d| d.alloc_spi(src, dst, proto, reqid, range),
        )
    }
    fn add_sa(&mut self, sa: &SaSpec) -> xfrm::Result<()> {
        self.op(|s| &mut s.add_sa, |d| d.add_sa(sa))
    }
    fn update_sa(&mut self, sa: &SaSpec) -> xfrm::Result<()> {
        self.op(|s| &mut s.other, |d| d.update_sa(sa))
    }
    fn delete_sa(&mut self, id: &SaId) -> xfrm::Result<()> {
        self.op(|s| &mut s.delete_sa, |d| d.delete_sa(id))
    }
    fn get_sa(&mut self, id: &SaId) -> xfrm::Result<SaInfo> {
        self.op(|s| &mut s.other, |d| d.get_sa(id))
    }
    fn list_sas(&mut self) -> xfrm::Result<Vec<SaInfo>> {
        self.inner.list_sas()
    }
    fn add_policy(&mut self, p: &PolicySpec) -> xfrm::Result<()> {
        self.op(|s| &mut s.add_policy, |d| d.add_policy(p))
    }
    fn update_policy(&mut self, p: &PolicySpec) -> xfrm::Result<()> {
        self.op(|s| &mut s.update_policy, |d| d.update_policy(p))
    }
    fn delete_policy(&mut self, id: &PolicyId) -> xfrm::Result<()> {
        self.op(|s| &mut s.delete_policy, |d| d.delete_policy(id))
    }
    fn list_policies(&mut self) -> xfrm::Result<Vec<PolicySpec>> {
        self.inner.list_policies()
    }
    fn get_replay_state(&mut self, id: &SaId) -> xfrm::Result<ReplayState> {
        self.op(|s| &mut s.other, |d| d.get_replay_state(id))
    }
    fn set_replay_state(&mut self, id: &SaId, st: &ReplayState) -> xfrm::Result<()> {
        self.op(|s| &mut s.other, |d| d.set_replay_state(id, st))
    }
    fn get_counters(&mut self, id: &SaId) -> xfrm::Result<SaCounters> {
        self.op(|s| &mut s.other, |d| d.get_counters(id))
    }
    fn poll_events(&mut self) -> xfrm::Result<Vec<DataplaneEvent>> {
        self.inner.poll_events()
    }
    fn flush_own(&mut self) -> xfrm::Result<FlushReport> {
        self.inner.flush_own()
    }
}

/// The survivor's data plane, opened as batond opens it (`dataplane = "xfrm"`:
/// subscribed to events, baton's leftovers flushed), or a `MemoryDataplane`.
fn open_dataplane(memory: bool) -> Box<dyn Dataplane> {
    let owned = OwnedRange::default();
    if memory {
        return Box::new(xfrm::MemoryDataplane::new(owned, 7));
    }
    let mut dp = xfrm::KernelDataplane::open_with_events(owned).unwrap();
    let t = Instant::now();
    let r = dp.flush_own().unwrap();
    if r.sas > 0 || r.policies > 0 {
        println!(
            "  flush_own: {} SAs, {} policies of the previous run removed in {:.1} s",
            r.sas,
            r.policies,
            t.elapsed().as_secs_f64()
        );
    }
    Box::new(dp)
}

struct Run {
    now: Instant,
    gw1: ClusterNode,
    gw2: ClusterCore,
    gw1_alive: bool,
    errors: usize,
    dataplane_sas: usize,
}

impl Run {
    /// Moves replication messages between gw1 and gw2 until both are quiet.
    fn pump(&mut self) {
        let (n1, n2) = (NodeId::new("gw1").unwrap(), NodeId::new("gw2").unwrap());
        loop {
            let mut to_gw2 = VecDeque::new();
            while let Some(e) = self.gw1.poll_effect() {
                if let ClusterEffect::Replicate { data, .. } = e {
                    to_gw2.push_back(data);
                }
            }
            let mut moved = !to_gw2.is_empty();
            for msg in to_gw2 {
                if self.gw1_alive {
                    self.gw2.handle_cluster(
                        self.now,
                        ClusterInput::Channel(cluster::channel::ChannelEvent::Message {
                            node: n1.clone(),
                            msg,
                        }),
                    );
                }
            }
            while let Some(o) = self.gw2.poll_output() {
                moved = true;
                match o {
                    Output::Replicate { data, .. } if self.gw1_alive => {
                        self.gw1.handle_repl_message(self.now, &n2, &data).unwrap();
                    }
                    Output::Event(Event::DataplaneError { message }) => {
                        if self.errors < 5 {
                            eprintln!("  data plane error: {message}");
                        }
                        self.errors += 1;
                    }
                    Output::DisconnectPeer { node } => panic!("gw2 dropped {node}"),
                    _ => {}
                }
            }
            if !moved {
                return;
            }
        }
    }
}

fn v4(a: u32) -> IpAddr {
    IpAddr::V4(Ipv4Addr::from(a))
}

/// One takeover of `n` SAs; returns (time, kernel calls during the takeover).
fn takeover(n: usize, memory: bool, template: &[u8]) -> (Duration, Stats, Stats) {
    let now = Instant::now();
    let (n1, n2) = (NodeId::new("gw1").unwrap(), NodeId::new("gw2").unwrap());
    let stats = Arc::new(Mutex::new(Stats::default()));
    let dp = Counting {
        inner: open_dataplane(memory),
        stats: stats.clone(),
    };
    let gw2 = ClusterCore::new(&gw_config("gw2", "gw1"), Box::new(dp), now, 1).unwrap();
    let mut cfg1 = ClusterConfig::new(n1.clone(), vec![n1.clone(), n2.clone()]);
    cfg1.sync = SyncMode::Async;
    let ep1 = Endpoint::new(endpoint_config(&gw_config("gw1", "gw2")), now);
    let gw1 = ClusterNode::new(cfg1, ep1, ReplConfig::default());
    let mut r = Run {
        now,
        gw1,
        gw2,
        gw1_alive: true,
        errors: 0,
        dataplane_sas: 0,
    };
    let both = Membership {
        epoch: 1,
        live: [n1.clone(), n2.clone()].into_iter().collect(),
    };
    r.gw1.handle_peer_connected(now, &n2, 1).unwrap();
    r.gw1.handle_membership(now, both.clone());
    r.gw2.handle_cluster(
        now,
        ClusterInput::Channel(cluster::channel::ChannelEvent::PeerConnected {
            node: n1.clone(),
            incarnation: 1,
        }),
    );
    r.gw2.handle_cluster(now, ClusterInput::Membership(both));
    r.pump();
    // gw1 adopts n copies: distinct SPIs, reqids, peers and peer selectors.
    let t_setup = Instant::now();
    for k in 0..n as u32 {
        let mut sa = ike::export::read_sa(template, now).unwrap();
        sa.spis.spi_i = IkeSpi(0x1000_0000_0000_0000 + u64::from(k));
        sa.spis.spi_r = IkeSpi(0x2000_0000_0000_0000 + u64::from(k));
        sa.msgids.last_response = None;
        // 100.64.0.0/10: one address per client (up to 4M).
        sa.remote_addr = SocketAddr::new(v4(0x6440_0000 + k), 500);
        for c in &mut sa.children {
            c.spi_in = 0xc000_0000 + k;
            c.spi_out = 0xa000_0000 + k;
            c.reqid = 1 + k;
            // 10.128.0.0/9: the client's own address as its traffic selector.
            let ts_addr = v4(0x0a80_0000 + k);
            c.remote_ts = vec![IpTrafficSelector {
                ip_protocol: 0,
                start_port: 0,
                end_port: 65535,
                start_addr: ts_addr,
                end_addr: ts_addr,
            }];
        }
        let rec = ike::export::write_sa(&sa, now);
        r.gw1.adopt(now, &rec).unwrap();
        if k % 1000 == 999 {
            r.pump();
        }
    }
    r.pump();
    assert_eq!(r.errors, 0, "no data plane error before the takeover");
    let before = *stats.lock().unwrap();
    println!(
        "  setup: {n} SAs adopted by gw1 and replicated to gw2 in {:.2} s; gw2's data plane: {} policies added, {} updated (block policies)",
        t_setup.elapsed().as_secs_f64(),
        before.add_policy.ok,
        before.update_policy.ok,
    );
    *stats.lock().unwrap() = Stats::default();
    // gw1 dies; gw2 learns it from the heartbeat and its channel.
    r.gw1_alive = false;
    let t0 = Instant::now();
    r.gw2.handle_cluster(
        now,
        ClusterInput::Channel(cluster::channel::ChannelEvent::PeerDisconnected {
            node: n1.clone(),
        }),
    );
    r.gw2.handle_cluster(
        now,
        ClusterInput::Membership(Membership {
            epoch: 2,
            live: [n2.clone()].into_iter().collect(),
        }),
    );
    r.pump();
    let dt = t0.elapsed();
    let during = *stats.lock().unwrap();
    assert_eq!(r.errors, 0, "no data plane error during the takeover");
    r.dataplane_sas = r.gw2.dataplane_sas().unwrap_or(0);
    assert!(
        r.dataplane_sas >= 2 * n,
        "every Child SA's 2 SAs installed on the survivor ({} SAs)",
        r.dataplane_sas
    );
    (dt, before, during)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let memory = args.iter().any(|a| a == "--memory");
    let runs = args
        .iter()
        .position(|a| a == "--runs")
        .and_then(|i| args.get(i + 1))
        .map_or(3, |s| s.parse::<usize>().unwrap());
    let mut sizes: Vec<usize> = Vec::new();
    let mut skip = false;
    for a in &args {
        if std::mem::take(&mut skip) {
            continue;
        }
        if a == "--runs" {
            skip = true;
        } else if let Ok(n) = a.parse() {
            sizes.push(n);
        }
    }
    if sizes.is_empty() {
        sizes.push(10_000);
    }
    if !memory && std::env::var_os("BATON_VM_GUEST").is_none() {
        eprintln!(
            "takeover_xfrm flushes and fills the kernel's XFRM tables and needs ESP: run it in the VM\n  interop/vm/run-in-vm -m 4096 -- {} {}\nor with --memory",
            std::env::args().next().unwrap_or_default(),
            args.join(" ")
        );
        std::process::exit(2);
    }
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    println!(
        "takeover_xfrm: data plane {}, kernel {}, {runs} run(s) per size",
        if memory { "memory" } else { "xfrm" },
        kernel.trim()
    );
    let t = template(Instant::now());
    for n in sizes {
        let mut times = Vec::new();
        for run in 0..runs {
            let (dt, before, d) = takeover(n, memory, &t);
            let objects = d.add_sa.ok + d.add_policy.ok + d.update_policy.ok;
            println!(
                "  run {run}: takeover of {n} SAs in {:.3} s: {objects} data plane objects installed ({:.0}/s): {} SAs added, {} policies added + {} updated (of {} adds refused: existing block policy); {} data plane calls, {:.3} s inside them ({:.0} us/call); block policies before: {}",
                dt.as_secs_f64(),
                objects as f64 / dt.as_secs_f64(),
                d.add_sa.ok,
                d.add_policy.ok,
                d.update_policy.ok,
                d.add_policy.calls - d.add_policy.ok,
                d.calls(),
                d.time().as_secs_f64(),
                d.time().as_secs_f64() * 1e6 / d.calls().max(1) as f64,
                before.add_policy.ok + before.update_policy.ok,
            );
            println!(
                "    per op: add_sa {:.0} us, add_policy {:.0} us, update_policy {:.0} us, other {} calls {:.0} us; outside the data plane {:.3} s",
                us(d.add_sa),
                us(d.add_policy),
                us(d.update_policy),
                d.other.calls,
                us(d.other),
                (dt.saturating_sub(d.time())).as_secs_f64()
            );
            times.push((dt, objects));
        }
        times.sort();
        let (med, objects) = times[times.len() / 2];
        println!(
            "takeover of {n} SAs ({}): median {:.3} s, {:.0} data plane objects/s (runs: {})",
            if memory { "memory" } else { "xfrm" },
            med.as_secs_f64(),
            objects as f64 / med.as_secs_f64(),
            times
                .iter()
                .map(|(d, _)| format!("{:.3}", d.as_secs_f64()))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
}

fn us(o: Op) -> f64 {
    o.time.as_secs_f64() * 1e6 / o.calls.max(1) as f64
}
