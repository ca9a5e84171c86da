//! The RFC 6311 replay-counter path end to end, under a real kernel with ESP (qemu guest
//! of interop/vm/run-in-vm): a two-node batond cluster (`dataplane = "xfrm"`) behind a
//! shared VIP, and a client that is baton's own IKE initiator on the kernel data plane,
//! announcing IKEV2_MESSAGE_ID_SYNC_SUPPORTED and IPSEC_REPLAY_COUNTER_SYNC_SUPPORTED.
//!
//! The owner of the client's IKE SA dies (batond killed with SIGKILL, its namespace's
//! link taken down and XFRM state flushed, as a dead machine's kernel stops). The
//! survivor takes the SA over with its inbound replay window moved past the replicated
//! checkpoint by the replay delta and sends IKEV2_MESSAGE_ID_SYNC with
//! IPSEC_REPLAY_COUNTER_SYNC (RFC 6311 §5.2). The client applies the delta to its
//! kernel outbound SA (XFRM_MSG_NEWAE), so its ESP is accepted by the survivor:
//!
//! - `replay_counter_sync_applied`: traffic from the client reaches the survivor after
//!   the takeover, and the client's outbound sequence number jumped by the delta;
//! - `replay_counter_sync_needed` (control): the same with a client that ignores the
//!   delta: the survivor's replay window drops every packet, so the first check can
//!   only pass because the delta was applied.
//!
//! Guest network (namespaces): bridge br0 (multicast snooping off) joining gw1
//! (10.0.0.11), gw2 (10.0.0.12) — both also with the VIP 10.0.0.1/32 and 10.1.0.1/32 on
//! lo (the protected service) — and the client 10.0.0.100, whose neighbour entry maps
//! the VIP to a multicast MAC so every frame reaches both nodes.
//!
//! Needs root, qemu and the packages of scripts/setup, as CI has.

// Test helpers outside #[test] functions: a failed step is a failed test.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

#[path = "vm_guest/mod.rs"]
mod vm_guest;

use std::collections::VecDeque;
use std::net::{SocketAddr, UdpSocket};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use gateway::config::GatewayConfig;
use gateway::daemon::{dataplane, endpoint_core};
use ike::endpoint::{Effect, Endpoint, SaEvent};
use ike::initiator::InitiatorOptions;
use interop::{Netns, WorkDir};
use xfrm::{Dataplane, OwnedRange};

const GUEST_ENV: &str = "BATON_RFC6311_VM_GUEST";
const TOOL_ENV: &str = "BATON_RFC6311_TOOL";
const ALL_RAN: &str = "RFC6311-VM-ALL-CHECKS-RAN";
const VIP: &str = "10.0.0.1";
const CLIENT: &str = "10.0.0.100";
const SERVICE: &str = "10.1.0.1:9000";
const MCAST: &str = "01:00:5e:00:00:01";
const PSK: &str = "rfc6311-vm-test-psk";

// ---------------------------------------------------------------------------------
// Host side.

static VM_RUN: OnceLock<vm_guest::VmRun> = OnceLock::new();

fn vm_run() -> &'static vm_guest::VmRun {
    VM_RUN.get_or_init(|| {
        vm_guest::boot(
            "rfc6311_vm",
            &["-m", "1536", "-t", "900"].map(String::from),
            &[format!("{GUEST_ENV}=1")],
            "rfc6311_vm_guest",
        )
    })
}

fn expect_check(name: &str) {
    vm_guest::expect_check(vm_run(), "RFC6311-VM-CHECK", name);
}

/// Inside the guest: runs both checks. On the host: the guest ran them all.
#[test]
fn rfc6311_vm_guest() {
    if let Ok(tool) = std::env::var(TOOL_ENV) {
        run_tool(&tool);
        return;
    }
    vm_guest::require_root();
    if std::env::var_os(GUEST_ENV).is_some() {
        guest_main();
        return;
    }
    let run = vm_run();
    assert!(
        run.text.contains(ALL_RAN),
        "the guest did not run all its checks ({:.1} s):\n{}",
        run.secs,
        run.text
    );
}

#[test]
fn replay_counter_sync_applied() {
    expect_check("replay_counter_sync_applied");
}

#[test]
fn replay_counter_sync_needed() {
    expect_check("replay_counter_sync_needed");
}

// ---------------------------------------------------------------------------------
// Guest side.

fn guest_main() {
    for (name, apply) in [
        ("replay_counter_sync_applied", true),
        ("replay_counter_sync_needed", false),
    ] {
        let r = std::panic::catch_unwind(|| scenario(apply));
        match r {
            Ok(summary) => println!("RFC6311-VM-CHECK {name} PASS {summary}"),
            Err(e) => {
                let msg = e
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| e.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                    .unwrap_or_default();
                println!("RFC6311-VM-CHECK {name} FAIL\n{msg}\nRFC6311-VM-CHECK-END {name}");
            }
        }
    }
    println!("{ALL_RAN}");
}

fn sh(ns: &Netns, cmd: &str) -> String {
    let out = ns
        .exec("sh", &["-c", cmd])
        .unwrap_or_else(|e| panic!("{cmd}: {e}"));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Re-runs this test binary as a tool inside `ns`.
fn tool(ns: &Netns, args: &str, log: &Path) -> Child {
    let exe = std::env::current_exe().unwrap();
    let f = std::fs::File::create(log).unwrap();
    ns.command(exe.to_str().unwrap())
        .args([
            "--exact",
            "rfc6311_vm_guest",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(TOOL_ENV, args)
        .stdin(Stdio::null())
        .stdout(f.try_clone().unwrap())
        .stderr(f)
        .spawn()
        .unwrap()
}

fn gw_toml(n: u32, dir: &Path) -> String {
    let other = 3 - n;
    format!(
        r#"
[gateway]
listen = ["{VIP}"]
control_socket = "{d}/gw{n}.sock"
dataplane = "xfrm"
log_level = "info,cluster=debug"

[[connection]]
name = "svc"
local_id = "gw.example"
remote_id = "client.example"
local_ts = ["10.1.0.1/32"]
remote_ts = ["dynamic"]
# AES-CBC for IKE: a takeover after a heartbeat flap (a second sync of one IKE SA)
# still syncs; an AEAD IKE SA gets no second sync (docs/architecture.md).
proposals = ["aes128-sha256-x25519"]
esp_proposals = ["aes128gcm16"]

[[secret]]
ids = ["gw.example", "client.example"]
psk = "{PSK}"

[cluster]
node = "gw{n}"
listen = "10.0.0.1{n}:4510"
peers = {{ gw{other} = "10.0.0.1{other}:4510" }}
key_file = "{d}/cluster.key"
vip = ["{VIP}"]
# The guest is emulated (TCG) on a shared host and stalls for a second or more at
# times: shorter timers saw a live peer as dead (both nodes then took the SA over in
# turn). This test is about RFC 6311, not detection time.
heartbeat_interval = "500ms"
heartbeat_multiplier = 6
"#,
        d = dir.display()
    )
}

fn ikectl(dir: &Path, n: u32, args: &[&str]) -> serde_json::Value {
    let out = Command::new(env!("CARGO_BIN_EXE_ikectl"))
        .arg("--socket")
        .arg(dir.join(format!("gw{n}.sock")))
        .args(args)
        .arg("--json")
        .output()
        .unwrap();
    serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null)
}

fn received(path: &Path) -> u64 {
    std::fs::read_to_string(path)
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0)
}

fn wait(what: &str, secs: u64, mut f: impl FnMut() -> bool) {
    let end = Instant::now() + Duration::from_secs(secs);
    while !f() {
        assert!(
            Instant::now() < end,
            "timed out after {secs} s waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// One failover with a client that applies (or ignores) the replay delta. Returns a
/// one-line summary.
fn scenario(apply: bool) -> String {
    let dir = WorkDir::new("rfc6311").unwrap();
    let d = dir.path().to_path_buf();
    let lan = Netns::new("lan").unwrap();
    let gws = [Netns::new("gw1").unwrap(), Netns::new("gw2").unwrap()];
    let client = Netns::new("client").unwrap();
    lan.ip(&[
        "link",
        "add",
        "br0",
        "type",
        "bridge",
        "mcast_snooping",
        "0",
    ])
    .unwrap();
    lan.ip(&["link", "set", "br0", "up"]).unwrap();
    for (i, ns) in gws.iter().chain([&client]).enumerate() {
        let port = format!("p{i}");
        lan.ip(&[
            "link",
            "add",
            &port,
            "type",
            "veth",
            "peer",
            "name",
            "eth0",
            "netns",
            ns.name(),
        ])
        .unwrap();
        lan.ip(&["link", "set", &port, "master", "br0", "up"])
            .unwrap();
        ns.ip(&["link", "set", "eth0", "up"]).unwrap();
    }
    for (i, ns) in gws.iter().enumerate() {
        sh(
            ns,
            &format!(
                "ip addr add 10.0.0.1{n}/24 dev eth0 && ip addr add {VIP}/32 dev eth0 && \
                 ip maddr add {MCAST} dev eth0 && ip addr add 10.1.0.1/32 dev lo",
                n = i + 1
            ),
        );
    }
    sh(
        &client,
        &format!(
            "ip addr add {CLIENT}/24 dev eth0 && \
             ip neigh replace {VIP} lladdr {MCAST} dev eth0 nud permanent && \
             ip route add 10.1.0.1/32 via {VIP}"
        ),
    );

    let key = d.join("cluster.key");
    let st = Command::new(env!("CARGO_BIN_EXE_batond"))
        .arg("--gen-cluster-key")
        .arg(&key)
        .status()
        .unwrap();
    assert!(st.success());
    let mut daemons: Vec<Child> = Vec::new();
    for n in 1..=2u32 {
        let conf = dir.write(&format!("gw{n}.toml"), &gw_toml(n, &d)).unwrap();
        let log = std::fs::File::create(d.join(format!("gw{n}.log"))).unwrap();
        daemons.push(
            gws[n as usize - 1]
                .command(env!("CARGO_BIN_EXE_batond"))
                .arg("--config")
                .arg(&conf)
                .stdin(Stdio::null())
                .stdout(log.try_clone().unwrap())
                .stderr(log)
                .spawn()
                .unwrap(),
        );
    }
    let gw_logs = || {
        (1..=2)
            .map(|n| {
                format!(
                    "--- gw{n} log ---\n{}",
                    std::fs::read_to_string(d.join(format!("gw{n}.log"))).unwrap_or_default()
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    };
    wait("both nodes live on both nodes", 30, || {
        (1..=2).all(|n| {
            let v = ikectl(&d, n, &["cluster"]);
            v["members"].as_array().is_some_and(|m| {
                m.iter()
                    .all(|m| m["live"] == true && m["connected"] == true)
            })
        })
    });
    let mut recv: Vec<_> = (0..2)
        .map(|i| {
            let count = d.join(format!("recv{}", i + 1));
            let child = tool(
                &gws[i],
                &format!("recv {}", count.display()),
                &d.join(format!("recv{}.log", i + 1)),
            );
            (count, child)
        })
        .collect();
    let stop = d.join("stop");
    let client_log = d.join("client.log");
    let mut client_tool = tool(
        &client,
        &format!("client {apply} {}", stop.display()),
        &client_log,
    );
    let client_text = || std::fs::read_to_string(&client_log).unwrap_or_default();
    let counts: Vec<std::path::PathBuf> = recv.iter().map(|r| r.0.clone()).collect();
    let got = |i: usize| received(&counts[i]);
    let diag = |what: &str| {
        format!(
            "{what}\n--- client ---\n{}\n{}\nreceived: gw1 {}, gw2 {}",
            client_text(),
            gw_logs(),
            got(0),
            got(1)
        )
    };
    let t = Instant::now();
    while !(client_text().contains("IKE-UP") && (got(0) > 20 || got(1) > 20)) {
        assert!(
            t.elapsed() < Duration::from_secs(60),
            "{}",
            diag("no traffic through the tunnel before the failover")
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // Let the dead node's replay checkpoint reach the survivor (events: 1 s timer).
    std::thread::sleep(Duration::from_millis(1500));
    // The owner now (a heartbeat flap in the emulated guest may have moved the SA: a
    // rejoining node gets its fair share), from what each node lists as its own.
    let lists = |n: u32| {
        ikectl(&d, n, &["list-sas"])
            .as_array()
            .is_some_and(|a| !a.is_empty())
    };
    let owner = match (lists(1), lists(2)) {
        (true, false) => 0,
        (false, true) => 1,
        other => panic!("{}", diag(&format!("not exactly one owner: {other:?}"))),
    };
    let survivor = 1 - owner;

    // The owner dies: process, link and kernel state.
    daemons[owner].kill().unwrap();
    sh(
        &gws[owner],
        "ip link set eth0 down; ip xfrm state flush; ip xfrm policy flush",
    );
    let s = survivor as u32 + 1;
    let t = Instant::now();
    while ikectl(&d, s, &["cluster"])["counters"]["syncs_completed"]
        .as_u64()
        .unwrap_or(0)
        < 1
    {
        assert!(
            t.elapsed() < Duration::from_secs(15),
            "{}",
            diag(&format!(
                "no RFC 6311 sync answered within 15 s; survivor gw{s}: {}",
                ikectl(&d, s, &["cluster"])
            ))
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let c0 = got(survivor);
    std::thread::sleep(Duration::from_secs(3));
    let c1 = got(survivor);
    let text = client_text();
    let oseq = max_oseq(&sh(&client, "ip -s xfrm state"));
    std::fs::write(&stop, b"").unwrap();
    let _ = client_tool.wait();
    for mut d in daemons {
        let _ = d.kill();
    }
    for (_, c) in &mut recv {
        let _ = c.kill();
    }
    let after = c1 - c0;
    if apply {
        assert!(
            text.contains("REPLAY-DELTA-APPLIED"),
            "{}",
            diag("the client did not apply IPSEC_REPLAY_COUNTER_SYNC")
        );
        assert!(
            oseq >= 1 << 20,
            "{}",
            diag(&format!("client oseq {oseq:#x}: no jump"))
        );
        assert!(
            after >= 100,
            "{}",
            diag(&format!("only {after} packets reached the survivor in 3 s"))
        );
    } else {
        assert!(
            text.contains("REPLAY-DELTA-IGNORED"),
            "{}",
            diag("the control client saw no IPSEC_REPLAY_COUNTER_SYNC")
        );
        assert_eq!(
            after,
            0,
            "{}",
            diag("the survivor accepted packets below its replay window")
        );
    }
    format!(
        "owner gw{} died; survivor gw{s} received {after} packets in 3 s after the sync; client oseq {oseq:#x}",
        owner + 1
    )
}

/// Highest `oseq` in `ip -s xfrm state` output.
fn max_oseq(text: &str) -> u64 {
    text.split("oseq ")
        .skip(1)
        .filter_map(|s| {
            let v = s.split([',', ' ', '\n']).next()?;
            u64::from_str_radix(v.trim_start_matches("0x"), 16).ok()
        })
        .max()
        .unwrap_or(0)
}

// ---------------------------------------------------------------------------------
// Tools (this binary re-run inside a namespace).

fn run_tool(args: &str) {
    let a: Vec<&str> = args.split_whitespace().collect();
    match a.as_slice() {
        ["recv", count] => recv_tool(Path::new(count)),
        ["client", apply, stop] => client_tool(*apply == "true", Path::new(stop)),
        other => panic!("unknown tool {other:?}"),
    }
}

/// Counts UDP datagrams to the service address into `count` (rewritten as they come).
fn recv_tool(count: &Path) {
    let s = UdpSocket::bind(SERVICE).unwrap();
    let mut n = 0u64;
    let mut buf = [0u8; 2048];
    loop {
        if s.recv(&mut buf).is_ok() {
            n += 1;
            let _ = std::fs::write(count, n.to_string());
        }
    }
}

/// baton's IKE initiator with the kernel data plane, announcing RFC 6311 support;
/// sends 100 UDP datagrams/s to the service once the tunnel is up.
fn client_tool(apply: bool, stop: &Path) {
    let toml = format!(
        r#"
[gateway]
listen = ["{CLIENT}"]
dataplane = "xfrm"
control_socket = "/tmp/unused-rfc6311-client.sock"

[[connection]]
name = "home"
local_id = "client.example"
remote_id = "gw.example"
local_ts = ["dynamic"]
remote_ts = ["10.1.0.1/32"]
# AES-CBC for IKE: a takeover after a heartbeat flap (a second sync of one IKE SA)
# still syncs; an AEAD IKE SA gets no second sync (docs/architecture.md).
proposals = ["aes128-sha256-x25519"]
esp_proposals = ["aes128gcm16"]

[[secret]]
ids = ["gw.example", "client.example"]
psk = "{PSK}"
"#
    );
    let cfg = GatewayConfig::parse(Path::new("client.toml"), &toml).unwrap();
    let now = Instant::now();
    let mut ep = Endpoint::new(endpoint_core::endpoint_config(&cfg), now);
    let local: SocketAddr = format!("{CLIENT}:500").parse().unwrap();
    let remote: SocketAddr = format!("{VIP}:500").parse().unwrap();
    let sock = UdpSocket::bind(local).unwrap();
    xfrm::bypass_ipsec(&sock, false).unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(20)))
        .unwrap();
    let owned = OwnedRange::default();
    let mut dp = xfrm::KernelDataplane::open(owned).unwrap();
    ep.initiate(
        now,
        "home",
        local,
        remote,
        InitiatorOptions {
            mid_sync: true,
            replay_sync: true,
            ..Default::default()
        },
    )
    .unwrap();
    let mut sender: Option<std::thread::JoinHandle<()>> = None;
    let mut buf = vec![0u8; 65536];
    let mut pending: VecDeque<Effect> = VecDeque::new();
    while !stop.exists() {
        let now = Instant::now();
        if ep.poll_timeout().is_some_and(|t| t <= now) {
            ep.handle_timeout(now);
        }
        if let Ok((n, from)) = sock.recv_from(&mut buf) {
            ep.handle_datagram(Instant::now(), local, from, &buf[..n]);
        }
        while let Some(e) = ep.poll_effect() {
            pending.push_back(e);
        }
        while let Some(e) = pending.pop_front() {
            match e {
                Effect::Send { remote, data, .. } => {
                    let _ = sock.send_to(&data, remote);
                }
                Effect::InstallChild(ci) => {
                    dataplane::install(&mut dp, owned, &ci).unwrap();
                    println!(
                        "CHILD-INSTALLED {:08x}/{:08x}",
                        ci.inbound.spi, ci.outbound.spi
                    );
                }
                Effect::DeleteChild(cd) => {
                    let _ = dataplane::delete(&mut dp, owned, &cd);
                }
                Effect::AdvanceOutboundSequence {
                    spi_out,
                    dst,
                    delta,
                } => {
                    if apply {
                        let id = xfrm::SaId::esp(dst, xfrm::Spi(spi_out));
                        let mut st = dp.get_replay_state(&id).unwrap();
                        st.oseq = st.oseq.saturating_add(delta);
                        dp.set_replay_state(&id, &st).unwrap();
                        println!("REPLAY-DELTA-APPLIED {spi_out:08x} +{delta} -> {}", st.oseq);
                    } else {
                        println!("REPLAY-DELTA-IGNORED {spi_out:08x} +{delta}");
                    }
                }
                Effect::Event(ev) => {
                    println!("EVENT {ev:?}");
                    if matches!(ev, SaEvent::IkeUp { .. }) && sender.is_none() {
                        println!("IKE-UP");
                        let stop = stop.to_path_buf();
                        sender = Some(std::thread::spawn(move || {
                            let s = UdpSocket::bind(format!("{CLIENT}:0")).unwrap();
                            let mut seq = 0u64;
                            while !stop.exists() {
                                seq += 1;
                                let _ = s.send_to(&seq.to_be_bytes(), SERVICE);
                                std::thread::sleep(Duration::from_millis(10));
                            }
                        }));
                    }
                }
                Effect::KeyLog(_) | Effect::NatKeepalive { .. } => {}
            }
        }
    }
    if let Some(s) = sender {
        let _ = s.join();
    }
}
