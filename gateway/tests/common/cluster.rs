//! A `batond` cluster behind a shared VIP (interop's [`SharedVip`]: a bridge, a
//! multicast MAC) with strongSwan clients, for the cluster netns tests; and a tiny UDP
//! probe the test binary runs inside a namespace by starting itself again.
#![allow(
    dead_code,
    unreachable_pub,
    missing_debug_implementations,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]

use std::net::{SocketAddr, UdpSocket};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use interop::cluster::{VIP, node_addr, node_name};
use interop::{Batond, Charon, IkeSaInfo, PskConnection, Responder, SharedVip, WorkDir};
use serde_json::Value as Json;

/// The replication and heartbeat port (TCP and UDP) of every node.
pub const CLUSTER_PORT: u16 = 4510;

/// Environment variable that turns the test binary into a UDP probe (see
/// [`udp_probe_if_asked`]).
pub const PROBE_ENV: &str = "BATON_UDP_PROBE";

/// When the test binary was started again by [`spawn_probe`] (the environment
/// variable [`PROBE_ENV`] is set), runs the probe it describes, prints its findings as
/// `probe: ...` lines and returns true: the calling test must return at once.
///
/// - `listen ADDR:PORT LABEL`: binds, waits (10 s) for one datagram, prints
///   `probe: got <payload> from <peer>`, answers `LABEL` from the bound address.
/// - `send ADDR:PORT TO:PORT N`: binds, sends `ping` to TO, prints
///   `probe: reply <payload> from <peer>` for each answer until N came or 3 s passed.
pub fn udp_probe_if_asked() -> bool {
    let Ok(spec) = std::env::var(PROBE_ENV) else {
        return false;
    };
    let words: Vec<&str> = spec.split_whitespace().collect();
    match words.as_slice() {
        ["listen", bind, label] => {
            let s = UdpSocket::bind(bind).expect("probe bind");
            s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
            let mut buf = [0u8; 1500];
            let (n, peer) = s.recv_from(&mut buf).expect("probe: nothing received");
            println!(
                "probe: got {} from {peer}",
                String::from_utf8_lossy(&buf[..n])
            );
            s.send_to(label.as_bytes(), peer).expect("probe reply");
        }
        ["send", bind, to, n] => {
            let want: usize = n.parse().expect("probe count");
            let s = UdpSocket::bind(bind).expect("probe bind");
            s.send_to(b"ping", to).expect("probe send");
            let deadline = Instant::now() + Duration::from_secs(3);
            let mut buf = [0u8; 1500];
            let mut got = 0;
            while got < want {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    break;
                }
                s.set_read_timeout(Some(left)).unwrap();
                let (len, peer) = match s.recv_from(&mut buf) {
                    Ok(r) => r,
                    Err(e) => {
                        println!("probe: error {e}");
                        break;
                    }
                };
                println!(
                    "probe: reply {} from {peer}",
                    String::from_utf8_lossy(&buf[..len])
                );
                got += 1;
            }
        }
        _ => panic!("bad {PROBE_ENV}: {spec}"),
    }
    true
}

/// Starts this test binary inside `ns` as a probe (`spec` as in
/// [`udp_probe_if_asked`]), running only `test` (whose body starts with
/// `if udp_probe_if_asked() { return; }`).
pub fn spawn_probe(ns: &interop::Netns, test: &str, spec: &str) -> Child {
    let exe = std::env::current_exe().expect("current_exe");
    ns.command(&exe.to_string_lossy())
        .args([test, "--exact", "--nocapture", "--test-threads", "1"])
        .env(PROBE_ENV, spec)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn probe")
}

/// The `probe: ` lines a finished probe printed (panics with its output if it failed).
pub fn probe_lines(child: Child) -> Vec<String> {
    let out = child.wait_with_output().expect("probe wait");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "probe failed ({}):\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
        .lines()
        // libtest's "test NAME ... " may precede the first line on the same line.
        .filter_map(|l| l.split_once("probe: ").map(|(_, r)| r.to_owned()))
        .collect()
}

/// Polls `cond` every 50 ms for up to `timeout`; panics naming `what` and the last
/// state `cond` described.
pub fn wait_until<T>(
    timeout: Duration,
    what: &str,
    mut cond: impl FnMut() -> Result<T, String>,
) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        let last = match cond() {
            Ok(v) => return v,
            Err(e) => e,
        };
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}; last: {last}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The IKE and ESP proposals of an AEAD client (the default).
pub const AEAD_SUITE: (&str, &str) = ("aes128gcm16-prfsha256-x25519", "aes128gcm16");
/// The IKE and ESP proposals of a client with AES-CBC and HMAC (random IVs).
pub const CBC_SUITE: (&str, &str) = ("aes256-sha256-x25519", "aes256-sha256");

/// The gateway connection every node serves: `gw.example` on the VIP, any
/// `*.example` client, [`AEAD_SUITE`] or [`CBC_SUITE`], virtual IPs from 10.8.0.0/24.
pub fn gateway_connection() -> PskConnection {
    let mut c = PskConnection::gateway(VIP);
    c.remote_id = "*.example".into();
    c.proposals = vec![AEAD_SUITE.0.into(), CBC_SUITE.0.into()];
    c.esp_proposals = vec![AEAD_SUITE.1.into(), CBC_SUITE.1.into()];
    c
}

/// Client `i`'s connection (`c<i>.example`) to the VIP with `suite` (IKE, ESP
/// proposals), with liveness checks every `dpd` if given.
pub fn client_connection(i: usize, suite: (&str, &str), dpd: Option<&str>) -> PskConnection {
    let mut c = PskConnection::client(VIP);
    c.local_id = format!("c{i}.example");
    c.proposals = vec![suite.0.into()];
    c.esp_proposals = vec![suite.1.into()];
    c.dpd_delay = dpd.map(str::to_owned);
    c
}

/// Missed heartbeats (100 ms apart) before a node is declared dead: 5 rather than the
/// default 3, because on a loaded 2-core host batond was seen to miss 300 ms of
/// heartbeats and declare a live node dead (a takeover of a live node's SA).
pub const HEARTBEAT_MULTIPLIER: u32 = 5;

/// The `[cluster]` section of node `i` of `n`.
pub fn cluster_section(i: usize, n: usize, key_file: &std::path::Path, sync: &str) -> String {
    let peers: Vec<String> = (0..n)
        .filter(|&j| j != i)
        .map(|j| format!("{} = \"{}:{CLUSTER_PORT}\"", node_name(j), node_addr(j)))
        .collect();
    format!(
        "\n[cluster]\nnode = \"{}\"\nlisten = \"{}:{CLUSTER_PORT}\"\npeers = {{ {} }}\nkey_file = {:?}\nvip = [\"{VIP}\"]\nsync = \"{sync}\"\nheartbeat_interval = \"100ms\"\nheartbeat_multiplier = {HEARTBEAT_MULTIPLIER}\n",
        node_name(i),
        node_addr(i),
        peers.join(", "),
        key_file.to_string_lossy()
    )
}

/// A cluster of `batond`s on a [`SharedVip`] and one strongSwan charon per client.
pub struct Cluster {
    /// Node `i` runs `gw<i+1>`; `None` once killed.
    pub nodes: Vec<Option<Batond>>,
    /// One charon per client namespace.
    pub clients: Vec<Charon>,
    /// Killed nodes (index, process record), kept so their logs show when a test fails.
    pub killed: Vec<(usize, Batond)>,
    /// Holds the cluster key.
    pub dir: WorkDir,
    /// The network (declared last: processes stop before their namespaces go).
    pub topo: SharedVip,
}

impl Cluster {
    /// Builds the network, writes one cluster key (`batond --gen-cluster-key`), starts
    /// a node on each node namespace (memory data plane) and waits until every node
    /// sees every other one live; then starts one charon (kernel-libipsec) per client
    /// with `charon_extra` in its strongswan.conf.
    pub fn start(nodes: usize, clients: usize, sync: &str, charon_extra: &str) -> Self {
        Self::start_with(nodes, clients, sync, charon_extra, &gateway_connection())
    }

    /// [`Cluster::start`] with `gw` as every node's connection.
    pub fn start_with(
        nodes: usize,
        clients: usize,
        sync: &str,
        charon_extra: &str,
        gw: &PskConnection,
    ) -> Self {
        let topo = SharedVip::new(nodes, clients).expect("shared-VIP topology");
        let dir = WorkDir::new("cluster").expect("workdir");
        let key = dir.path().join("cluster.key");
        gen_key(&key);
        let mut started = Vec::with_capacity(nodes);
        for (i, ns) in topo.nodes.iter().enumerate() {
            let d = WorkDir::new(&node_name(i)).expect("workdir");
            let sock = Batond::socket_path(&d);
            let toml = gw
                .to_batond_toml(&VIP.to_string(), &sock, "memory")
                // One secret naming only the gateway applies to every client.
                .replace(
                    "ids = [\"gw.example\", \"*.example\"]",
                    "ids = [\"gw.example\"]",
                )
                + &cluster_section(i, nodes, &key, sync);
            let b = Batond::start(
                ns,
                d,
                env!("CARGO_BIN_EXE_batond"),
                env!("CARGO_BIN_EXE_ikectl"),
                &toml,
                500,
            )
            .unwrap_or_else(|e| panic!("start {}: {e}", node_name(i)));
            started.push(Some(b));
        }
        let mut c = Self {
            nodes: started,
            clients: Vec::new(),
            killed: Vec::new(),
            dir,
            topo,
        };
        c.wait_all_live(nodes);
        for (i, ns) in c.topo.clients.iter().enumerate() {
            let ch = Charon::start_with(
                ns,
                &format!("client{i}"),
                interop::KernelInterface::Libipsec,
                charon_extra,
            )
            .expect("client charon");
            c.clients.push(ch);
        }
        c
    }

    /// Node `i`, which must be running.
    pub fn node(&self, i: usize) -> &Batond {
        self.nodes[i]
            .as_ref()
            .unwrap_or_else(|| panic!("{} was killed", node_name(i)))
    }

    /// Indices of the nodes still running.
    pub fn live(&self) -> Vec<usize> {
        (0..self.nodes.len())
            .filter(|&i| self.nodes[i].is_some())
            .collect()
    }

    /// `ikectl cluster --json` of node `i`.
    pub fn cluster_json(&self, i: usize) -> Result<Json, String> {
        let t = self
            .node(i)
            .ikectl(&["cluster", "--json"])
            .map_err(|e| e.to_string())?;
        serde_json::from_str(&t).map_err(|e| format!("{e}: {t}"))
    }

    /// Counter `name` of node `i`'s `ikectl cluster --json`.
    pub fn counter(&self, i: usize, name: &str) -> u64 {
        let j = self
            .cluster_json(i)
            .unwrap_or_else(|e| panic!("ikectl cluster: {e}"));
        j["counters"][name]
            .as_u64()
            .unwrap_or_else(|| panic!("no counter {name} in {j}"))
    }

    /// Waits (10 s) until every running node reports exactly the `want` running nodes
    /// (itself included) as live members, no other member as live, and its
    /// replication channel to every other live member connected (a node hands out
    /// virtual IPs only once it holds the live members' records).
    pub fn wait_all_live(&self, want: usize) {
        let live: Vec<String> = self.live().iter().map(|&i| node_name(i)).collect();
        assert_eq!(live.len(), want, "running nodes: {live:?}");
        for i in self.live() {
            wait_until(
                Duration::from_secs(10),
                &format!("{} to see {live:?} live", node_name(i)),
                || {
                    let j = self.cluster_json(i)?;
                    let members = j["members"].as_array().ok_or(format!("{j}"))?;
                    // The node itself counts as live whether or not it lists itself.
                    let mut seen: Vec<String> = members
                        .iter()
                        .filter(|m| m["live"].as_bool() == Some(true))
                        .filter_map(|m| m["node"].as_str().map(str::to_owned))
                        .chain(std::iter::once(node_name(i)))
                        .collect();
                    seen.sort();
                    seen.dedup();
                    let unconnected = members.iter().any(|m| {
                        m["live"].as_bool() == Some(true)
                            && m["node"].as_str() != Some(node_name(i).as_str())
                            && m["connected"].as_bool() != Some(true)
                    });
                    if seen == live && !unconnected {
                        Ok(())
                    } else {
                        Err(format!("{j}"))
                    }
                },
            );
        }
    }

    /// Every node's `ikectl list-sas --json` entries whose `spi_i` is `spi_i`, as
    /// (node index, record): the nodes holding that IKE SA as owner.
    pub fn holders(&self, spi_i: &str) -> Vec<(usize, IkeSaInfo)> {
        let mut out = Vec::new();
        for i in self.live() {
            let sas = Responder::list_sas(self.node(i))
                .unwrap_or_else(|e| panic!("{} list-sas: {e}", node_name(i)));
            for sa in sas {
                if sa.initiator_spi.eq_ignore_ascii_case(spi_i) {
                    out.push((i, sa));
                }
            }
        }
        out
    }

    /// The `owner` field node `i` reports for its SA with `spi_i`.
    pub fn owner_field(&self, i: usize, spi_i: &str) -> String {
        let t = self
            .node(i)
            .ikectl(&["list-sas", "--json"])
            .expect("ikectl");
        let j: Json = serde_json::from_str(&t).expect("json");
        j.as_array()
            .into_iter()
            .flatten()
            .find(|sa| {
                interop::responder::normalize_spi(&sa["spi_i"], 16).eq_ignore_ascii_case(spi_i)
            })
            .and_then(|sa| sa["owner"].as_str().map(str::to_owned))
            .unwrap_or_else(|| panic!("{} lists no SA {spi_i}: {t}", node_name(i)))
    }

    /// Waits (10 s) until exactly one running node holds the IKE SA `spi_i`; returns
    /// its index and record.
    pub fn wait_single_holder(&self, spi_i: &str, what: &str) -> (usize, IkeSaInfo) {
        wait_until(Duration::from_secs(10), what, || {
            let h = self.holders(spi_i);
            match h.as_slice() {
                [(i, sa)] => Ok((*i, sa.clone())),
                _ => Err(format!(
                    "holders {:?}",
                    h.iter().map(|(i, _)| node_name(*i)).collect::<Vec<_>>()
                )),
            }
        })
    }

    /// Kills node `i`'s batond with SIGKILL (no goodbye to anyone).
    pub fn kill(&mut self, i: usize) {
        self.topo
            .kill_in_node(i, "batond")
            .unwrap_or_else(|e| panic!("kill {}: {e}", node_name(i)));
        // Keep its log for failure messages, but never talk to it again.
        if let Some(b) = self.nodes[i].take() {
            self.killed.push((i, b));
        }
    }

    /// Every node's log (for failure messages).
    pub fn logs(&self) -> String {
        let mut s = String::new();
        for (i, b) in &self.killed {
            s += &format!(
                "----- {} (killed) -----\n{}\n",
                node_name(*i),
                tail(&Responder::log(b), 80)
            );
        }
        for i in self.live() {
            let counters = self
                .cluster_json(i)
                .map(|j| j.to_string())
                .unwrap_or_else(|e| e);
            s += &format!(
                "----- {} -----\n{}\nikectl cluster: {counters}\n",
                node_name(i),
                tail(&Responder::log(self.node(i)), 80)
            );
        }
        s
    }
}

fn tail(s: &str, n: usize) -> String {
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// Writes a new cluster key to `path` with `batond --gen-cluster-key`.
fn gen_key(path: &std::path::Path) {
    let out = Command::new(env!("CARGO_BIN_EXE_batond"))
        .arg("--gen-cluster-key")
        .arg(path)
        .output()
        .expect("run batond --gen-cluster-key");
    assert!(
        out.status.success() && path.exists(),
        "batond --gen-cluster-key failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A UDP address as a string (`10.0.0.1:9999`).
pub fn sock(addr: std::net::Ipv4Addr, port: u16) -> String {
    SocketAddr::from((addr, port)).to_string()
}
