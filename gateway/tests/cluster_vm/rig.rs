//! The guest's network: gateways behind one shared VIP, a strongSwan client in front and
//! a server behind them.
//!
//! ```text
//!                 bridge "pub" (mcast_snooping 0)                bridge "lan"
//! client 10.0.0.100 ──┬── gw1 eth0 10.0.0.11 + VIP 10.0.0.1/32 ── lan0 10.1.0.254 ──┬── server
//!   (virtual IP       └── gw2 eth0 10.0.0.12 + VIP 10.0.0.1/32 ── lan0 10.1.0.254 ──┘   10.1.0.2
//!    from 10.8.0.0/24)
//! ```
//!
//! The client reaches the VIP through a permanent neighbour entry to the multicast MAC
//! 01:00:5e:00:00:01, the server reaches the shared inside address 10.1.0.254 the same
//! way, and every gateway accepts that MAC (`ip maddr add`), so every node sees every
//! IKE datagram, every ESP packet from the client and every packet towards the client
//! (DESIGN §4): the owner decrypts or encrypts, the others drop (no inbound SA, block
//! policy). The kernel forwards only frames addressed to this host (`ip_forward` drops
//! other packet types), so each gateway marks multicast-MAC frames carrying a unicast
//! IPv4 destination as its own (nftables `meta pkttype set`, which is how the nftables
//! cluster match is deployed too); without that, decrypted traffic would not be routed.
//! Node addresses 10.0.0.11/.12 carry heartbeat and replication.
//!
//! A node "dies" by its links going down and SIGKILL of its batond at the same moment,
//! then its kernel's XFRM state and policies flushed: a killed batond alone would leave its
//! SAs in its namespace's kernel, which would keep encrypting and decrypting — a dead
//! machine's kernel does not. It comes back as a rebooted machine: empty XFRM, links
//! up, routes again, a fresh batond.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use interop::{Charon, Daemon, KernelInterface, Netns, PskConnection, WorkDir};
use serde_json::Value as Json;

use super::traffic::now_us;

/// The shared VIP (IKE and ESP).
pub(crate) const VIP: &str = "10.0.0.1";
/// The client's own address.
pub(crate) const CLIENT: &str = "10.0.0.100";
/// The shared inside address (the server's default gateway).
pub(crate) const LAN_GW: &str = "10.1.0.254";
/// The server behind the gateways.
pub(crate) const SERVER: &str = "10.1.0.2";
/// The pool the gateways hand virtual IPs from (in a cluster each node from its own
/// share of it).
const POOL_PREFIX: &str = "10.8.0.";
/// The MAC every node accepts for the VIP and the inside address.
const MCAST_MAC: &str = "01:00:5e:00:00:01";
/// Replication and heartbeat port.
const CLUSTER_PORT: u16 = 4510;

/// `key`'s value, or `default` if unset or empty.
pub(crate) fn env_or(key: &str, default: &str) -> String {
    std::env::var(key)
        .ok()
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| default.to_owned())
}

/// The IKE proposal of both ends: `BATON_CLUSTER_VM_IKE`, else AES-GCM (the harness's).
pub(crate) fn ike_proposals() -> Vec<String> {
    vec![env_or(
        "BATON_CLUSTER_VM_IKE",
        "aes128gcm16-prfsha256-x25519",
    )]
}

/// The heartbeat timers: `BATON_CLUSTER_VM_HEARTBEAT=<interval>x<multiplier>` (e.g.
/// `100msx3`, batond's default), else [`DEFAULT_HEARTBEAT`].
pub(crate) fn heartbeat() -> (String, u32) {
    let spec = std::env::var("BATON_CLUSTER_VM_HEARTBEAT").unwrap_or_default();
    let spec = if spec.is_empty() {
        DEFAULT_HEARTBEAT
    } else {
        &spec
    };
    let (i, m) = spec
        .split_once('x')
        .expect("heartbeat: <interval>x<multiplier>");
    (i.to_owned(), m.parse().expect("heartbeat multiplier"))
}

/// The checks' heartbeat timers. batond's default (100 ms x 3) declares a node dead
/// after 300 ms of silence, which the emulated guest's stalls exceed (see the module
/// comment of cluster_vm.rs): these checks are about ESP, not about timing.
pub(crate) const DEFAULT_HEARTBEAT: &str = "250msx8";

/// The nftables rule of every gateway (see the module comment).
const PKTTYPE_NFT: &str = "table ip baton_vip {\n chain pre {\n  type filter hook prerouting priority -300; policy accept;\n  meta pkttype multicast ip daddr != 224.0.0.0/4 meta pkttype set unicast\n }\n}\n";

fn ip(ns: &Netns, args: &[&str]) {
    ns.ip(args)
        .unwrap_or_else(|e| panic!("ip {args:?} in {}: {e}", ns.name()));
}

fn sh(ns: &Netns, script: &str) -> String {
    let out = ns
        .exec("sh", &["-c", script])
        .unwrap_or_else(|e| panic!("{script} in {}: {e}", ns.name()));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Puts `ns`'s new interface `ifname` on bridge `bridge` of the switch namespace.
fn plug(switch: &Netns, bridge: &str, port: &str, ns: &Netns, ifname: &str) {
    ip(
        ns,
        &[
            "link",
            "add",
            ifname,
            "type",
            "veth",
            "peer",
            "name",
            port,
            "netns",
            switch.name(),
        ],
    );
    ip(switch, &["link", "set", port, "master", bridge, "up"]);
    ip(ns, &["link", "set", ifname, "up"]);
}

/// One gateway: its namespace and its batond (a child of ours, so a kill is one
/// syscall with no process start in between).
#[derive(Debug)]
pub(crate) struct Node {
    /// Cluster node name (`gw1`).
    pub(crate) name: String,
    /// Its own address (heartbeat, replication).
    pub(crate) addr: String,
    batond: Option<Child>,
    /// `ip -n <ns> -batch -`, started beforehand and waiting on its stdin, so that the
    /// links go down at the kill without a process start in between (which takes
    /// seconds on a loaded emulated guest).
    reaper: Option<Child>,
    config: PathBuf,
    socket: PathBuf,
    dir: PathBuf,
    starts: u32,
    /// After `batond`: the process goes before its namespace.
    pub(crate) ns: Netns,
}

impl Node {
    fn new(name: &str, addr: &str, dir: &Path) -> Self {
        Self {
            name: name.to_owned(),
            addr: addr.to_owned(),
            batond: None,
            reaper: None,
            config: dir.join(format!("{name}.toml")),
            socket: dir.join(format!("{name}.sock")),
            dir: dir.to_owned(),
            starts: 0,
            ns: Netns::new(name).expect("gateway namespace"),
        }
    }

    /// Addresses, routes, forwarding: what a (re)booted machine configures.
    fn configure(&self) {
        let ns = &self.ns;
        for (dev, addrs) in [
            (
                "eth0",
                vec![format!("{}/24", self.addr), format!("{VIP}/32")],
            ),
            ("lan0", vec![format!("{LAN_GW}/24")]),
        ] {
            ip(ns, &["link", "set", dev, "up"]);
            for a in addrs {
                // `replace`: on a revived node the addresses are still there.
                ip(ns, &["addr", "replace", &a, "dev", dev]);
            }
            let _ = ns.ip(&["maddr", "add", MCAST_MAC, "dev", dev]);
        }
        // Replies to the virtual IPs leave towards the client, where the owner's out
        // policy takes them into ESP and the others' block policy drops them.
        ip(ns, &["route", "replace", "10.8.0.0/24", "via", CLIENT]);
        sh(ns, "echo 1 > /proc/sys/net/ipv4/ip_forward");
    }

    /// Writes this node's configuration: `base` (gateway, connection, pool) plus
    /// `cluster` (a `[cluster]` table or nothing).
    pub(crate) fn write_config(&self, base_for: impl Fn(&Path) -> String, cluster: &str) {
        let text = format!("{}\n{cluster}", base_for(&self.socket));
        std::fs::write(&self.config, text).expect("write config");
    }

    /// Starts batond and waits until it has bound IKE on the VIP.
    pub(crate) fn start(&mut self) {
        self.starts += 1;
        if self.reaper.is_none() {
            let reaper = interop::netns::command("ip")
                .args(["-n", self.ns.name(), "-force", "-batch", "-"])
                .stdin(Stdio::piped())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("spawn ip -batch");
            self.reaper = Some(reaper);
        }
        let log = self.dir.join(format!("{}-{}.log", self.name, self.starts));
        let out = File::create(&log).expect("log");
        let err = out.try_clone().expect("log");
        let child = self
            .ns
            .command(env!("CARGO_BIN_EXE_batond"))
            .args(["--config", &self.config.to_string_lossy()])
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .expect("spawn batond");
        self.batond = Some(child);
        let ns = &self.ns;
        let batond = &mut self.batond;
        interop::wait_for(Duration::from_secs(20), "batond to bind UDP 500", || {
            if let Some(status) = batond.as_mut().and_then(|c| c.try_wait().ok().flatten()) {
                return Err(interop::Error::new(format!(
                    "batond exited ({status}): {}",
                    std::fs::read_to_string(&log).unwrap_or_default()
                )));
            }
            Ok(interop::udp_port_bound(ns, 500)?.then_some(()))
        })
        .unwrap_or_else(|e| panic!("{}: {e}", self.name));
    }

    /// Whether batond runs.
    pub(crate) fn running(&mut self) -> bool {
        self.batond
            .as_mut()
            .is_some_and(|c| c.try_wait().is_ok_and(|s| s.is_none()))
    }

    /// The machine dies: its links go down and batond gets SIGKILL at the same moment,
    /// then the kernel's XFRM state and policies go. Returns the time of the kill (µs)
    /// and how long until the links were down and the state flushed (ms).
    pub(crate) fn die(&mut self) -> (u64, f64) {
        let mut child = self.batond.take().expect("batond running");
        let mut reaper = self.reaper.take().expect("ip -batch running");
        let mut stdin = reaper.stdin.take().expect("ip -batch stdin");
        let t = now_us();
        stdin
            .write_all(b"link set eth0 down\nlink set lan0 down\n")
            .expect("links down");
        child.kill().expect("SIGKILL batond");
        stdin
            .write_all(b"xfrm state flush\nxfrm policy flush\n")
            .expect("XFRM flush");
        drop(stdin);
        let _ = reaper.wait();
        let rest = (now_us() - t) as f64 / 1000.0;
        let _ = child.wait();
        (t, rest)
    }

    /// The machine comes back (empty kernel state, links up) and batond starts.
    pub(crate) fn revive(&mut self) {
        self.configure();
        self.start();
    }

    /// Runs `ikectl --socket <sock> --json args...`; the parsed JSON or the error text.
    pub(crate) fn ikectl(&self, args: &[&str]) -> Result<Json, String> {
        let out = Command::new(env!("CARGO_BIN_EXE_ikectl"))
            .arg("--socket")
            .arg(&self.socket)
            .args(args)
            .arg("--json")
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("ikectl: {e}"))?;
        let text = String::from_utf8_lossy(&out.stdout);
        if !out.status.success() {
            return Err(format!(
                "ikectl {args:?} on {} ({}): {text}{}",
                self.name,
                out.status,
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        serde_json::from_str(&text).map_err(|e| format!("ikectl {args:?} JSON: {e}: {text}"))
    }

    /// The IKE SAs this node lists (a node lists only the SAs it owns).
    pub(crate) fn sas(&self) -> Vec<interop::IkeSaInfo> {
        self.ikectl(&["list-sas"])
            .ok()
            .and_then(|j| interop::parse_ikectl_list_sas(&j.to_string()).ok())
            .unwrap_or_default()
    }

    /// `ikectl cluster --json`, or the error.
    pub(crate) fn cluster(&self) -> Result<Json, String> {
        self.ikectl(&["cluster"])
    }

    /// The whole log of every start so far.
    pub(crate) fn log(&self) -> String {
        (1..=self.starts)
            .map(|i| {
                let p = self.dir.join(format!("{}-{i}.log", self.name));
                format!(
                    "--- {} log (start {i}) ---\n{}",
                    self.name,
                    std::fs::read_to_string(p).unwrap_or_default()
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// The log of the current start.
    pub(crate) fn current_log(&self) -> String {
        std::fs::read_to_string(self.dir.join(format!("{}-{}.log", self.name, self.starts)))
            .unwrap_or_default()
    }

    /// `ip -s xfrm state` and policies, for a failure message.
    pub(crate) fn kernel(&self) -> String {
        sh(
            &self.ns,
            "ip -s xfrm state; ip xfrm policy; grep -v ' 0$' /proc/net/xfrm_stat; ip -br link",
        )
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        for mut c in [self.batond.take(), self.reaper.take()]
            .into_iter()
            .flatten()
        {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// The whole network with its gateways (not yet started).
#[derive(Debug)]
pub(crate) struct Rig {
    // Field order: processes before the namespaces they run in.
    /// The strongSwan client, once started.
    pub(crate) charon: Option<Charon>,
    /// tcpdump on the client's side of the VIP bridge, once started.
    pub(crate) capture: Option<Daemon>,
    /// The gateways.
    pub(crate) nodes: Vec<Node>,
    /// The client's virtual IP, once connected.
    pub(crate) client_vip: String,
    /// The client's namespace (eth0 on the VIP bridge).
    pub(crate) client: Netns,
    /// The server's namespace.
    pub(crate) server: Netns,
    /// The bridges (held, not read: they live as long as the rig).
    #[allow(dead_code)]
    pub(crate) switch: Netns,
    /// Configs, logs, the capture, the stream records.
    pub(crate) dir: WorkDir,
}

impl Rig {
    /// Bridges, the client, the server and `n` gateways (gw1, gw2, ...).
    pub(crate) fn new(n: usize) -> Self {
        let dir = WorkDir::new("cluster-vm").expect("workdir");
        let switch = Netns::new("sw").expect("switch namespace");
        for br in ["pub", "lan"] {
            ip(
                &switch,
                &["link", "add", br, "type", "bridge", "mcast_snooping", "0"],
            );
            ip(&switch, &["link", "set", br, "up"]);
        }
        let client = Netns::new("cl").expect("client namespace");
        plug(&switch, "pub", "pcl", &client, "eth0");
        ip(
            &client,
            &["addr", "add", &format!("{CLIENT}/24"), "dev", "eth0"],
        );
        ip(
            &client,
            &[
                "neigh",
                "add",
                VIP,
                "lladdr",
                MCAST_MAC,
                "dev",
                "eth0",
                "nud",
                "permanent",
            ],
        );
        let server = Netns::new("srv").expect("server namespace");
        plug(&switch, "lan", "psrv", &server, "eth0");
        ip(
            &server,
            &["addr", "add", &format!("{SERVER}/24"), "dev", "eth0"],
        );
        ip(
            &server,
            &[
                "neigh",
                "add",
                LAN_GW,
                "lladdr",
                MCAST_MAC,
                "dev",
                "eth0",
                "nud",
                "permanent",
            ],
        );
        ip(&server, &["route", "add", "default", "via", LAN_GW]);
        let mut nodes = Vec::new();
        for i in 1..=n {
            let node = Node::new(&format!("gw{i}"), &format!("10.0.0.{}", 10 + i), dir.path());
            plug(&switch, "pub", &format!("p{i}"), &node.ns, "eth0");
            plug(&switch, "lan", &format!("l{i}"), &node.ns, "lan0");
            let nft = dir.path().join(format!("gw{i}.nft"));
            std::fs::write(&nft, PKTTYPE_NFT).expect("nft file");
            node.ns
                .exec("nft", &["-f", &nft.to_string_lossy()])
                .expect("nft pkttype rule");
            node.configure();
            nodes.push(node);
        }
        Self {
            charon: None,
            capture: None,
            nodes,
            client_vip: String::new(),
            client,
            server,
            switch,
            dir,
        }
    }

    /// The `[cluster]` table of node `i` (all nodes are peers of each other).
    pub(crate) fn cluster_toml(&self, i: usize, key_file: &Path, sync: &str) -> String {
        let me = &self.nodes[i];
        let (interval, multiplier) = heartbeat();
        let peers: Vec<String> = self
            .nodes
            .iter()
            .filter(|n| n.name != me.name)
            .map(|n| format!("{} = \"{}:{CLUSTER_PORT}\"", n.name, n.addr))
            .collect();
        format!(
            "[cluster]\nnode = {:?}\nlisten = \"{}:{CLUSTER_PORT}\"\npeers = {{ {} }}\nkey_file = {:?}\nvip = [\"{VIP}\"]\nsync = {sync:?}\nheartbeat_interval = {interval:?}\nheartbeat_multiplier = {multiplier}\n",
            me.name,
            me.addr,
            peers.join(", "),
            key_file.to_string_lossy()
        )
    }

    /// A fresh cluster key file (64 hex digits).
    pub(crate) fn write_cluster_key(&self) -> PathBuf {
        let mut key = [0u8; 32];
        let mut f = File::open("/dev/urandom").expect("urandom");
        std::io::Read::read_exact(&mut f, &mut key).expect("random key");
        let path = self.dir.path().join("cluster.key");
        std::fs::write(&path, format!("{}\n", hex::encode(key))).expect("key file");
        path
    }

    /// Writes every node's config (`cluster`: with a `[cluster]` table) and starts the
    /// nodes.
    pub(crate) fn start_nodes(&mut self, cluster: bool) {
        let key = self.write_cluster_key();
        let base = |sock: &Path| {
            let mut c = PskConnection::gateway(VIP.parse().expect("VIP"));
            c.proposals = ike_proposals();
            c.to_batond_toml(VIP, sock, "xfrm")
        };
        let sync = env_or("BATON_CLUSTER_VM_SYNC", "ack");
        for i in 0..self.nodes.len() {
            let table = if cluster {
                self.cluster_toml(i, &key, &sync)
            } else {
                String::new()
            };
            self.nodes[i].write_config(base, &table);
        }
        for n in &mut self.nodes {
            n.start();
        }
    }

    /// Starts tcpdump on the client's uplink: ESP, ESP in UDP and IKE, headers only.
    pub(crate) fn start_capture(&mut self) {
        let pcap = self.pcap_path();
        let mut d = Daemon::spawn(
            &self.client,
            self.dir.path(),
            "tcpdump",
            "tcpdump",
            &[
                "-i",
                "eth0",
                "-n",
                "-U",
                "-B",
                "8192",
                "-Z",
                "root",
                "-s",
                "96",
                "-w",
                &pcap.to_string_lossy(),
                "esp or udp port 500 or udp port 4500",
            ],
        )
        .expect("start tcpdump");
        interop::wait_for(Duration::from_secs(20), "tcpdump to listen", || {
            d.check_running()?;
            Ok(d.log().contains("listening on").then_some(()))
        })
        .expect("tcpdump listening");
        self.capture = Some(d);
    }

    /// Where the capture goes.
    pub(crate) fn pcap_path(&self) -> PathBuf {
        self.dir.path().join("client-side.pcap")
    }

    /// Stops tcpdump (it writes its counters to its log) and parses the capture.
    pub(crate) fn finish_capture(&mut self) -> (super::esp_pcap::Wire, String) {
        let mut d = self.capture.take().expect("capture running");
        // tcpdump under emulation lags behind the traffic: let it write out what the
        // kernel has queued for it (the file stops growing) before stopping it, or those
        // packets are lost to the check without being counted as dropped.
        let size = || std::fs::metadata(self.pcap_path()).map_or(0, |m| m.len());
        let mut last = (size(), Instant::now());
        while last.1.elapsed() < Duration::from_millis(1500) {
            std::thread::sleep(Duration::from_millis(100));
            let now = size();
            if now != last.0 {
                last = (now, Instant::now());
            }
        }
        d.stop(Duration::from_secs(5)).expect("stop tcpdump");
        let counters = d
            .log()
            .lines()
            .filter(|l| l.contains("packets"))
            .collect::<Vec<_>>()
            .join("; ");
        let bytes = std::fs::read(self.pcap_path()).expect("read pcap");
        let wire = super::esp_pcap::parse(&bytes).unwrap_or_else(|e| panic!("{e}"));
        (wire, counters)
    }

    /// Starts charon (kernel-netlink: real ESP), brings the tunnel up and routes the
    /// protected network through it with the virtual IP as source.
    pub(crate) fn connect_client(&mut self) -> interop::IkeSaInfo {
        let charon = Charon::start_with(&self.client, "client", KernelInterface::Netlink, "")
            .expect("start charon");
        // The guest's AES-GCM runs partly asynchronously (cryptd, under emulation), which
        // reorders a 1,000 datagrams/s stream by more than strongSwan's default 32-packet
        // replay window: a window of 1,024 keeps reordering from counting as loss.
        let mut conn = PskConnection::client(VIP.parse().expect("VIP"));
        conn.proposals = ike_proposals();
        let conf = conn.to_swanctl_conf().replace(
            "        esp_proposals",
            "        replay_window = 1024\n        esp_proposals",
        );
        assert!(conf.contains("replay_window = 1024"), "{conf}");
        charon.load(&conf).expect("load client config");
        let up = charon.initiate("home", "net");
        self.charon = Some(charon);
        if let Err(e) = up {
            panic!("initiate: {e}\n{}", self.logs());
        }
        let sa = self.client_sa();
        let vip = match sa.local_vips.as_slice() {
            [one] if one.starts_with(POOL_PREFIX) => one.clone(),
            other => panic!("client's virtual IP: {other:?}, expected one from 10.8.0.0/24"),
        };
        let addrs = sh(&self.client, "ip -4 addr");
        if !addrs.contains(&format!("inet {vip}/")) {
            ip(
                &self.client,
                &["addr", "add", &format!("{vip}/32"), "dev", "lo"],
            );
        }
        ip(
            &self.client,
            &["route", "add", "10.1.0.0/24", "via", VIP, "src", &vip],
        );
        self.client_vip = vip;
        sa
    }

    /// The client's only IKE SA.
    pub(crate) fn client_sa(&self) -> interop::IkeSaInfo {
        let sas = self
            .charon
            .as_ref()
            .expect("charon")
            .list_sas()
            .expect("client list-sas");
        interop::checks::only_ike_sa(&sas)
            .unwrap_or_else(|e| panic!("{e}"))
            .clone()
    }

    /// Index of the node that lists an SA now, if exactly one does.
    pub(crate) fn owner(&self) -> Option<usize> {
        let owners: Vec<usize> = (0..self.nodes.len())
            .filter(|&i| !self.nodes[i].sas().is_empty())
            .collect();
        match owners.as_slice() {
            [one] => Some(*one),
            _ => None,
        }
    }

    /// With `BATON_CLUSTER_VM_KEEP=DIR` (a directory shared with the host), copies the
    /// regular files of the work directory and charon's to `DIR/<label>/`.
    pub(crate) fn keep(&self, label: &str) {
        let Ok(keep) = std::env::var("BATON_CLUSTER_VM_KEEP") else {
            return;
        };
        if keep.is_empty() {
            return;
        }
        let to = Path::new(&keep).join(label);
        let _ = std::fs::create_dir_all(&to);
        let mut dirs = vec![self.dir.path().to_owned()];
        if let Some(c) = &self.charon {
            dirs.push(c.dir().to_owned());
        }
        for d in dirs {
            for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
                if e.file_type().is_ok_and(|t| t.is_file()) {
                    let _ = std::fs::copy(e.path(), to.join(e.file_name()));
                }
            }
        }
    }

    /// Every node's log, kernel state and the tail of charon's log.
    pub(crate) fn logs(&self) -> String {
        let mut s = String::new();
        for n in &self.nodes {
            s += &n.log();
            s += &format!("\n--- {} kernel ---\n{}\n", n.name, n.kernel());
        }
        if let Some(c) = &self.charon {
            let log = c.log();
            let lines: Vec<&str> = log.lines().collect();
            s += &format!(
                "--- charon log (tail) ---\n{}\n",
                lines[lines.len().saturating_sub(150)..].join("\n")
            );
        }
        s += &format!(
            "--- client kernel ---\n{}",
            sh(
                &self.client,
                "ip -s xfrm state; ip xfrm policy; grep -v ' 0$' /proc/net/xfrm_stat; ip -4 addr; ip route; grep Udp: /proc/net/snmp"
            )
        );
        s
    }
}
