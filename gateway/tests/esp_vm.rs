//! Real ESP traffic between a strongSwan client (charon with kernel-netlink) and batond
//! (`dataplane = "xfrm"`) under a real kernel with ESP (interop/vm/run-in-vm boots
//! Debian's kernel in qemu: the host kernel has XFRM but no ESP).
//!
//! Network inside the guest (interop harness namespaces):
//!
//! ```text
//! client 198.51.100.2 (virtual IP 10.8.0.1 from batond's pool)
//!   [optionally behind the NAT namespace: 192.168.77.2 -> masquerade 198.51.100.254]
//!     |
//! gateway 198.51.100.1 (batond) --- lan0 10.1.0.254/24 --- server 10.1.0.2
//! ```
//!
//! The client uses the virtual IP batond hands out (CP payload, RFC 7296 §3.15), so the
//! Child SA's selectors are 10.8.0.1/32 <-> 10.1.0.0/24, and all traffic below crosses
//! the gateway's ESP SAs: ping, 200 UDP datagrams with sequence numbers, 1 MiB over TCP
//! (content hash compared), and the SAs' packet counters (`ip -s xfrm state` in the
//! gateway namespace) must have grown by at least what was sent.
//!
//! All checks share ONE guest boot: the first host test to run boots the guest once
//! (`esp_vm_guest` inside, with `BATON_ESP_VM_GUEST=1`), every host test then looks for
//! its own check's verdict in that run's output. Traffic endpoints are this same test
//! binary re-run with `BATON_ESP_TOOL` (no extra packages). Needs root, as CI has.
//! `BATON_ESP_VM_ONLY=<substring>` restricts the checks run in the guest.

// Test helpers outside #[test] functions: a failed step is a failed test.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

#[path = "vm_guest/mod.rs"]
mod vm_guest;

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::path::Path;
use std::process::{Child, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use interop::{
    Batond, Charon, IkeSaInfo, KernelInterface, Netns, PskConnection, Responder, Topology, WorkDir,
    veth,
};

/// Set inside the guest: run the checks.
const GUEST_ENV: &str = "BATON_ESP_VM_GUEST";
/// Set on a traffic-tool child process: `<tool> <args...>`.
const TOOL_ENV: &str = "BATON_ESP_TOOL";
/// Printed by the guest once every check has run (passed or not).
const ALL_RAN: &str = "ESP-VM-ALL-CHECKS-RAN";
const GW_LISTEN: &str = "198.51.100.1";
const SERVER: Ipv4Addr = Ipv4Addr::new(10, 1, 0, 2);
const SERVER_GW: Ipv4Addr = Ipv4Addr::new(10, 1, 0, 254);
const VIP: &str = "10.8.0.1";
const WAIT: Duration = Duration::from_secs(30);

// ---------------------------------------------------------------------------------
// Host side: one guest boot shared by all tests.

static VM_RUN: OnceLock<vm_guest::VmRun> = OnceLock::new();

fn vm_run() -> &'static vm_guest::VmRun {
    VM_RUN.get_or_init(|| {
        vm_guest::boot(
            "esp_vm",
            &["-m", "1536", "-t", "1500"].map(String::from),
            &[
                format!("{GUEST_ENV}=1"),
                "BATON_INTEROP_KERNEL=netlink".into(),
                format!(
                    "BATON_ESP_VM_ONLY={}",
                    std::env::var("BATON_ESP_VM_ONLY").unwrap_or_default()
                ),
            ],
            "esp_vm_guest",
        )
    })
}

/// The verdict of check `name` in the shared guest run: passes if the guest printed
/// `ESP-VM-CHECK <name> PASS`, otherwise fails with the check's own failure message.
fn expect_check(name: &str) {
    vm_guest::expect_check(vm_run(), "ESP-VM-CHECK", name);
}

/// Inside the guest: runs every check. On the host: the guest booted, every check ran
/// and the run ended well (any failing check fails this too, besides its own test).
#[test]
fn esp_vm_guest() {
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
    assert!(
        run.success,
        "a check failed in the guest (see the other esp_vm tests):\n{}",
        run.text
    );
}

#[test]
fn esp_aes128gcm16_ping_udp_tcp() {
    expect_check("esp_aes128gcm16");
}

#[test]
fn esp_aes256gcm16_ping_udp_tcp() {
    expect_check("esp_aes256gcm16");
}

#[test]
fn esp_chacha20poly1305_ping_udp_tcp() {
    expect_check("esp_chacha20poly1305");
}

#[test]
fn esp_aes256_sha256_ping_udp_tcp() {
    expect_check("esp_aes256-sha256");
}

#[test]
fn child_rekey_under_traffic_loses_nothing() {
    expect_check("child_rekey_under_traffic");
}

#[test]
fn nat_t_udp_encapsulated_esp() {
    expect_check("nat_t_espinudp");
}

// ---------------------------------------------------------------------------------
// Guest side.

fn guest_main() {
    let checks: Vec<(String, Box<dyn Fn() -> String>)> = vec![
        (
            "esp_aes128gcm16".into(),
            Box::new(|| proposal_case("aes128gcm16")),
        ),
        (
            "esp_aes256gcm16".into(),
            Box::new(|| proposal_case("aes256gcm16")),
        ),
        (
            "esp_chacha20poly1305".into(),
            Box::new(|| proposal_case("chacha20poly1305")),
        ),
        (
            "esp_aes256-sha256".into(),
            Box::new(|| proposal_case("aes256-sha256")),
        ),
        ("child_rekey_under_traffic".into(), Box::new(rekey_case)),
        ("nat_t_espinudp".into(), Box::new(nat_case)),
    ];
    if let Err(e) = interop::check_prerequisites() {
        panic!("{e}");
    }
    let only = std::env::var("BATON_ESP_VM_ONLY").unwrap_or_default();
    let mut failed = Vec::new();
    for (name, check) in &checks {
        if !name.contains(only.as_str()) {
            continue;
        }
        let t = Instant::now();
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(check)) {
            Ok(summary) => println!(
                "\nESP-VM-CHECK {name} PASS ({} ms): {summary}",
                t.elapsed().as_millis()
            ),
            Err(p) => {
                let msg = p
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| p.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                    .unwrap_or_default();
                println!(
                    "\nESP-VM-CHECK {name} FAIL ({} ms):\n{msg}\nESP-VM-CHECK-END {name}",
                    t.elapsed().as_millis()
                );
                failed.push(name.clone());
            }
        }
    }
    println!("{ALL_RAN}");
    assert!(failed.is_empty(), "failed in the guest: {failed:?}");
}

/// One client, batond and a server behind the gateway, with a tunnel up.
struct Tunnel {
    // Field order: processes stop before their namespaces go.
    client: Charon,
    gw: Batond,
    server: Netns,
    topo: Topology,
    /// Gateway's view of the Child SA: (spi_in, spi_out) as 8 hex digits.
    spis: (String, String),
}

fn ip_out(ns: &Netns, args: &[&str]) -> String {
    let out = ns
        .ip(args)
        .unwrap_or_else(|e| panic!("ip {args:?} in {}: {e}", ns.name()));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn setup(nat: bool, esp: &str, child_rekey: Option<&str>) -> Tunnel {
    let topo = if nat {
        Topology::behind_nat()
    } else {
        Topology::direct()
    }
    .expect("topology");
    // The protected network behind the gateway, with a server in it.
    let server = Netns::new("srv").expect("server namespace");
    veth(
        &topo.gateway,
        "lan0",
        SERVER_GW,
        &server,
        "eth0",
        SERVER,
        24,
    )
    .expect("lan veth");
    server.default_route(SERVER_GW).expect("server route");
    topo.gateway.enable_forwarding().expect("forwarding");
    // Replies to the virtual IPs leave towards the client (where the out policy
    // takes them into ESP); batond installs no routes.
    let toward_client = topo.client_seen_addr.to_string();
    topo.gateway
        .ip(&["route", "add", "10.8.0.0/24", "via", &toward_client])
        .expect("gateway route to the pool");

    step("namespaces ready");
    let dir = WorkDir::new("batond").expect("workdir");
    let sock = Batond::socket_path(&dir);
    let mut gw_conn = PskConnection::gateway(topo.gateway_addr);
    gw_conn.esp_proposals = vec![esp.into()];
    let toml = gw_conn.to_batond_toml(GW_LISTEN, &sock, "xfrm");
    let gw = Batond::start(
        &topo.gateway,
        dir,
        env!("CARGO_BIN_EXE_batond"),
        env!("CARGO_BIN_EXE_ikectl"),
        &toml,
        500,
    )
    .expect("start batond");

    step("batond started");
    let client = Charon::start_with(&topo.client, "client", KernelInterface::Netlink, "")
        .expect("start charon");
    let mut conn = PskConnection::client(topo.gateway_addr);
    conn.esp_proposals = vec![esp.into()];
    conn.child_rekey_time = child_rekey.map(str::to_owned);
    client.load_connection(&conn).expect("load client config");
    step("charon started");
    if let Err(e) = client.initiate("home", "net") {
        panic!("initiate: {e}\n--- batond log ---\n{}", Responder::log(&gw));
    }
    step("tunnel up");
    let c = client.list_sas().expect("client list-sas");
    let g = Responder::list_sas(&gw).expect("ikectl list-sas");
    let (c, g) = (only(&c), only(&g));
    if let Err(e) = interop::checks::views_agree(c, g) {
        panic!("{e}\n--- batond log ---\n{}", Responder::log(&gw));
    }
    assert_eq!(c.local_vips, vec![VIP.to_owned()], "client's virtual IP");
    let gc = &interop::checks::installed_children(g)[0];
    let spis = (gc.spi_in.clone(), gc.spi_out.clone());

    // charon (kernel-netlink) puts the virtual IP on its uplink; the harness runs it
    // with install_routes = no, so route the protected network with the VIP as source.
    let addrs = ip_out(&topo.client, &["-4", "addr"]);
    if !addrs.contains(&format!("inet {VIP}/")) {
        topo.client
            .ip(&["addr", "add", &format!("{VIP}/32"), "dev", "lo"])
            .expect("virtual IP on lo");
    }
    let next_hop = if nat {
        interop::topology::NAT_PRIVATE_ADDR
    } else {
        topo.gateway_addr
    }
    .to_string();
    topo.client
        .ip(&["route", "add", "10.1.0.0/24", "via", &next_hop, "src", VIP])
        .expect("client route to the protected network");
    Tunnel {
        client,
        gw,
        server,
        topo,
        spis,
    }
}

/// A progress line with the guest's uptime, to see where the time goes under TCG.
fn step(what: &str) {
    let up = std::fs::read_to_string("/proc/uptime").unwrap_or_default();
    println!("[{} s] {what}", up.split_whitespace().next().unwrap_or("?"));
}

/// Logs and kernel state of both ends, for a failure message.
fn diagnostics(t: &Tunnel) -> String {
    let log_tail = |log: String| {
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(60)..].join("\n")
    };
    let ns_state = |ns: &Netns| {
        ns.exec(
            "sh",
            &[
                "-c",
                "ss -uanp; ip -s xfrm state; ip xfrm policy; grep -v ' 0$' /proc/net/xfrm_stat",
            ],
        )
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_else(|e| e.to_string())
    };
    format!(
        "--- batond log ---\n{}\n--- charon log (tail) ---\n{}\n--- gateway kernel ---\n{}\n--- client kernel ---\n{}",
        Responder::log(&t.gw),
        log_tail(t.client.log()),
        ns_state(&t.topo.gateway),
        ns_state(&t.topo.client)
    )
}

fn only(sas: &[IkeSaInfo]) -> &IkeSaInfo {
    interop::checks::only_ike_sa(sas).unwrap_or_else(|e| panic!("{e}"))
}

/// One SA in `ip -s xfrm state` output.
#[derive(Debug, Clone)]
struct KernelSa {
    spi: String,
    text: String,
    bytes: u64,
    packets: u64,
}

fn kernel_sas(ns: &Netns) -> Vec<KernelSa> {
    let text = ip_out(ns, &["-s", "xfrm", "state"]);
    let mut blocks: Vec<String> = Vec::new();
    for line in text.lines() {
        if line.starts_with("src ") || blocks.is_empty() {
            blocks.push(String::new());
        }
        if let Some(b) = blocks.last_mut() {
            b.push_str(line);
            b.push('\n');
        }
    }
    blocks
        .into_iter()
        .filter_map(|b| {
            let spi = b
                .split_whitespace()
                .skip_while(|w| *w != "spi")
                .nth(1)?
                .trim_start_matches("0x")
                .chars()
                .take(8)
                .collect::<String>();
            // "lifetime current:\n  84(bytes), 1(packets)"
            let cur = b.split("lifetime current:").nth(1)?.lines().nth(1)?;
            let num = |unit: &str| {
                cur.split(',')
                    .find(|p| p.contains(unit))
                    .and_then(|p| p.trim().split('(').next())
                    .and_then(|n| n.parse::<u64>().ok())
            };
            Some(KernelSa {
                spi,
                bytes: num("(bytes)")?,
                packets: num("(packets)")?,
                text: b,
            })
        })
        .collect()
}

fn kernel_sa(ns: &Netns, spi: &str) -> Option<KernelSa> {
    kernel_sas(ns).into_iter().find(|s| s.spi == spi)
}

/// The kernel algorithm names `ip xfrm state` shows for an ESP proposal.
fn kernel_alg(esp: &str) -> &'static [&'static str] {
    match esp {
        "aes128gcm16" => &["rfc4106(gcm(aes))", "(160 bits) 128"],
        "aes256gcm16" => &["rfc4106(gcm(aes))", "(288 bits) 128"],
        "chacha20poly1305" => &["rfc7539esp(chacha20,poly1305)", "(288 bits) 128"],
        "aes256-sha256" => &["cbc(aes)", "(256 bits)", "hmac(sha256)", "(256 bits) 128"],
        _ => &[],
    }
}

fn self_exe() -> String {
    std::env::current_exe()
        .unwrap()
        .to_string_lossy()
        .into_owned()
}

/// Starts this binary as traffic tool `tool` inside `ns`.
fn spawn_tool(ns: &Netns, tool: &str) -> Child {
    ns.command(&self_exe())
        .args(["--exact", "esp_vm_guest", "--nocapture", "--test-threads=1"])
        .env(TOOL_ENV, tool)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn tool {tool}: {e}"))
}

/// Waits for a tool and returns its `TOOL-RESULT` line's fields.
fn tool_result(child: Child, what: &str) -> Vec<(String, String)> {
    let out = child.wait_with_output().expect("wait for tool");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let line = text
        .lines()
        .find_map(|l| l.split_once("TOOL-RESULT ").map(|(_, r)| r))
        .unwrap_or_else(|| panic!("{what}: no result ({}):\n{text}", out.status));
    line.split_whitespace()
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

fn field<'a>(r: &'a [(String, String)], k: &str) -> &'a str {
    r.iter()
        .find(|(key, _)| key == k)
        .map_or("", |(_, v)| v.as_str())
}

fn num(r: &[(String, String)], k: &str) -> u64 {
    field(r, k).parse().unwrap_or(u64::MAX)
}

fn wait_udp_bound(ns: &Netns, port: u16) {
    interop::wait_for(Duration::from_secs(20), "a traffic sink to bind", || {
        Ok(interop::udp_port_bound(ns, port)?.then_some(()))
    })
    .expect("sink bound");
}

fn wait_tcp_listening(ns: &Netns, port: u16) {
    let suffix = format!(":{port}");
    interop::wait_for(Duration::from_secs(20), "a TCP sink to listen", || {
        let out = ns.exec("ss", &["-H", "-tln"])?;
        Ok(String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| l.split_whitespace().nth(3))
            .any(|a| a.ends_with(&suffix))
            .then_some(()))
    })
    .expect("tcp sink listening");
}

/// `busybox ping` (no iputils-ping needed) from `ns`; panics unless all replies came.
fn ping(ns: &Netns, dst: Ipv4Addr, count: u32) -> String {
    let out = ns
        .command("busybox")
        .args([
            "ping",
            "-c",
            &count.to_string(),
            "-W",
            "5",
            &dst.to_string(),
        ])
        .output()
        .expect("busybox ping");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        text.contains(&format!("{count} packets received")),
        "ping {dst} from {} lost replies:\n{text}{}",
        ns.name(),
        String::from_utf8_lossy(&out.stderr)
    );
    text.lines()
        .find(|l| l.contains("round-trip"))
        .unwrap_or("")
        .to_owned()
}

/// `count` datagrams at `interval_ms` from `from` to `to_ns`'s `dst:port`; returns the
/// sink's result after checking that every one arrived.
fn udp_stream(
    from: &Netns,
    to_ns: &Netns,
    dst: &str,
    port: u16,
    count: u64,
    interval_ms: u64,
) -> Vec<(String, String)> {
    let sink = spawn_tool(
        to_ns,
        &format!(
            "udp-sink 0.0.0.0:{port} {count} {}",
            20 + count * interval_ms / 1000 * 2
        ),
    );
    wait_udp_bound(to_ns, port);
    let source = spawn_tool(
        from,
        &format!("udp-source {dst}:{port} {count} {interval_ms}"),
    );
    let s = tool_result(source, "udp source");
    assert_eq!(num(&s, "sent"), count, "udp source: {s:?}");
    let r = tool_result(sink, "udp sink");
    assert_eq!(
        num(&r, "received"),
        count,
        "UDP {dst}:{port}: {} of {count} datagrams arrived; missing sequence numbers {}",
        field(&r, "received"),
        field(&r, "missing")
    );
    r
}

/// `bytes` over TCP from `from` to `to_ns`'s `dst:port`; the sink's byte count and
/// content hash must match the source's.
fn tcp_transfer(from: &Netns, to_ns: &Netns, dst: &str, port: u16, bytes: u64) {
    let sink = spawn_tool(to_ns, &format!("tcp-sink 0.0.0.0:{port}"));
    wait_tcp_listening(to_ns, port);
    let source = spawn_tool(from, &format!("tcp-source {dst}:{port} {bytes}"));
    let s = tool_result(source, "tcp source");
    let r = tool_result(sink, "tcp sink");
    assert_eq!(num(&s, "bytes"), bytes, "tcp source: {s:?}");
    assert_eq!(
        (num(&r, "bytes"), field(&r, "hash")),
        (bytes, field(&s, "hash")),
        "TCP transfer to {dst}:{port}: received {r:?}, sent {s:?}"
    );
}

/// Case 1: tunnel with `esp`, then ping, 200 UDP datagrams and 1 MiB of TCP from the
/// client's virtual IP to the server; the gateway's SAs counted it.
fn proposal_case(esp: &str) -> String {
    let t = setup(false, esp, None);
    let (spi_in, spi_out) = t.spis.clone();
    for spi in [&spi_in, &spi_out] {
        let sa = kernel_sa(&t.topo.gateway, spi).unwrap_or_else(|| {
            panic!(
                "gateway's SA {spi} not in its kernel:\n{}",
                ip_out(&t.topo.gateway, &["-s", "xfrm", "state"])
            )
        });
        for want in kernel_alg(esp) {
            assert!(
                sa.text.contains(want),
                "SA {spi} for {esp}: no {want:?} in\n{}",
                sa.text
            );
        }
        assert_eq!(sa.packets, 0, "SA {spi} counted packets before any traffic");
    }
    let rtt = ping(&t.topo.client, SERVER, 5);
    step("ping done");
    udp_stream(&t.topo.client, &t.server, &SERVER.to_string(), 7000, 200, 5);
    step("udp done");
    tcp_transfer(
        &t.topo.client,
        &t.server,
        &SERVER.to_string(),
        7001,
        1 << 20,
    );
    step("tcp done");
    let sa_in = kernel_sa(&t.topo.gateway, &spi_in).expect("inbound SA");
    let sa_out = kernel_sa(&t.topo.gateway, &spi_out).expect("outbound SA");
    // In: 5 echo requests + 200 datagrams + >= 1 MiB of TCP segments (>= 1 MiB / MTU).
    let min_in = 5 + 200 + (1 << 20) / 1500;
    assert!(
        sa_in.packets >= min_in && sa_in.bytes >= 1 << 20,
        "gateway's inbound SA {spi_in} counted {} packets / {} bytes, expected >= {min_in} / 1 MiB:\n{}",
        sa_in.packets,
        sa_in.bytes,
        sa_in.text
    );
    assert!(
        sa_out.packets >= 5 + 10,
        "gateway's outbound SA {spi_out} counted {} packets (echo replies, TCP ACKs):\n{}",
        sa_out.packets,
        sa_out.text
    );
    // And the client's kernel used the same SPIs the other way round.
    let c_in = kernel_sa(&t.topo.client, &spi_out).expect("client's inbound SA");
    assert_eq!(c_in.packets, sa_out.packets, "client in vs gateway out");
    format!(
        "{esp}: in {spi_in} {} pkts/{} B, out {spi_out} {} pkts/{} B; ping {rtt}",
        sa_in.packets, sa_in.bytes, sa_out.packets, sa_out.bytes
    )
}

/// Case 2: `swanctl --rekey --child` during UDP streams both ways at 100 datagrams/s
/// (each datagram numbered): the streams run until the new SAs have carried traffic,
/// none may be lost, and the new SPIs are the ones in use afterwards.
fn rekey_case() -> String {
    let t = setup(false, "aes128gcm16", None);
    let (old_in, old_out) = t.spis.clone();
    let stop = WorkDir::new("streams").expect("workdir");
    let stop_file = stop.path().join("stop");
    let stop_arg = stop_file.to_string_lossy().into_owned();
    let max = 100_000;
    let up_sink = spawn_tool(&t.server, &format!("udp-sink 0.0.0.0:7100 {max} 600"));
    let down_sink = spawn_tool(&t.topo.client, &format!("udp-sink 0.0.0.0:7101 {max} 600"));
    wait_udp_bound(&t.server, 7100);
    wait_udp_bound(&t.topo.client, 7101);
    let up = spawn_tool(
        &t.topo.client,
        &format!("udp-source {SERVER}:7100 {max} 10 {stop_arg}"),
    );
    let down = spawn_tool(
        &t.server,
        &format!("udp-source {VIP}:7101 {max} 10 {stop_arg}"),
    );
    // Both streams flowing through the old SAs first.
    interop::wait_for(WAIT, "the streams to use the first SAs", || {
        let i = kernel_sa(&t.topo.gateway, &old_in).map_or(0, |s| s.packets);
        let o = kernel_sa(&t.topo.gateway, &old_out).map_or(0, |s| s.packets);
        Ok((i >= 50 && o >= 50).then_some(()))
    })
    .expect("traffic on the first SAs");
    step("streams flowing; rekeying");
    t.client
        .rekey_child("net")
        .expect("swanctl --rekey --child");
    let rekeyed = t
        .client
        .wait_for_sas(WAIT, "the rekeyed Child SA to be installed alone", |sas| {
            sas.len() == 1
                && sas[0].children.len() == 1
                && sas[0].children[0].state == "INSTALLED"
                && sas[0].children[0].spi_out != old_in
        })
        .unwrap_or_else(|e| panic!("{e}\n{}", diagnostics(&t)));
    step("rekeyed");
    let (new_in, new_out) = {
        let c = &rekeyed[0].children[0];
        (c.spi_out.clone(), c.spi_in.clone()) // the gateway's view
    };
    // Keep streaming until the new SAs have carried 100 datagrams each way.
    let carried = interop::wait_for(WAIT, "the streams to move to the new SAs", || {
        let i = kernel_sa(&t.topo.gateway, &new_in).map_or(0, |s| s.packets);
        let o = kernel_sa(&t.topo.gateway, &new_out).map_or(0, |s| s.packets);
        Ok((i >= 100 && o >= 100).then_some((i, o)))
    });
    std::fs::write(&stop_file, b"").expect("stop file");
    step("streams stopped");
    let r_up = tool_result(up, "udp source up");
    let r_down = tool_result(down, "udp source down");
    let s_up = tool_result(up_sink, "udp sink up");
    let s_down = tool_result(down_sink, "udp sink down");
    let (new_in_pkts, new_out_pkts) = carried.unwrap_or_else(|e| {
        panic!(
            "{e}: new SAs {new_in}/{new_out} carried too little; gateway's SAs:\n{}\n--- batond log ---\n{}",
            ip_out(&t.topo.gateway, &["-s", "xfrm", "state"]),
            Responder::log(&t.gw)
        )
    });
    for (what, s, r) in [
        ("client -> server", &r_up, &s_up),
        ("server -> client", &r_down, &s_down),
    ] {
        let sent = num(s, "sent");
        assert!(
            sent >= 200 && sent < max && num(s, "errors") == 0,
            "{what}: source {s:?}"
        );
        assert_eq!(
            (num(r, "received"), field(r, "missing")),
            (sent, "-"),
            "{what}: {} of {sent} datagrams arrived across the rekey; missing sequence numbers {}\n--- batond log ---\n{}",
            field(r, "received"),
            field(r, "missing"),
            Responder::log(&t.gw)
        );
    }
    // batond agrees on the new SPIs, and the old SAs leave the gateway's kernel.
    let g = Responder::list_sas(&t.gw).expect("ikectl");
    let gc = interop::checks::installed_children(only(&g));
    assert_eq!(gc.len(), 1, "gateway children after rekey: {g:#?}");
    assert_eq!(
        (gc[0].spi_in.as_str(), gc[0].spi_out.as_str()),
        (new_in.as_str(), new_out.as_str()),
        "gateway's and client's SPIs after rekey"
    );
    interop::wait_for(WAIT, "the old SAs to leave the gateway's kernel", || {
        Ok((kernel_sa(&t.topo.gateway, &old_in).is_none()
            && kernel_sa(&t.topo.gateway, &old_out).is_none())
        .then_some(()))
    })
    .expect("old SAs deleted");
    format!(
        "{}+{} datagrams, 0 lost (sends the client's kernel refused and the source retried: {}, {}); SPIs {old_in}/{old_out} -> {new_in}/{new_out}; new SAs carried >= {new_in_pkts} in / {new_out_pkts} out pkts",
        num(&r_up, "sent"),
        num(&r_down, "sent"),
        field(&r_up, "retried"),
        field(&r_up, "last_error")
    )
}

/// Case 3: the client behind the NAT namespace: ESP in UDP (RFC 3948) on both sides.
fn nat_case() -> String {
    let t = setup(true, "aes128gcm16", None);
    let g = Responder::list_sas(&t.gw).expect("ikectl");
    let g = only(&g);
    assert_eq!(g.remote_host, t.topo.client_seen_addr.to_string(), "{g:#?}");
    let (spi_in, spi_out) = t.spis.clone();
    for spi in [&spi_in, &spi_out] {
        let sa = kernel_sa(&t.topo.gateway, spi).expect("SA in kernel");
        assert!(
            sa.text.contains("encap type espinudp"),
            "gateway's SA {spi} is not UDP-encapsulated:\n{}",
            sa.text
        );
    }
    let rtt = ping(&t.topo.client, SERVER, 5);
    udp_stream(&t.topo.client, &t.server, &SERVER.to_string(), 7200, 200, 5);
    udp_stream(&t.server, &t.topo.client, VIP, 7201, 200, 5);
    let sa_in = kernel_sa(&t.topo.gateway, &spi_in).expect("inbound SA");
    let sa_out = kernel_sa(&t.topo.gateway, &spi_out).expect("outbound SA");
    assert!(
        sa_in.packets >= 205 && sa_out.packets >= 205,
        "gateway's SAs counted in {} / out {} packets, expected >= 205 each:\n{}{}",
        sa_in.packets,
        sa_out.packets,
        sa_in.text,
        sa_out.text
    );
    let encap_line = sa_in
        .text
        .lines()
        .find(|l| l.contains("encap"))
        .unwrap_or("")
        .trim()
        .to_owned();
    format!(
        "IKE from {}:{}; {encap_line}; in {} / out {} pkts; ping {rtt}",
        g.remote_host, g.remote_port, sa_in.packets, sa_out.packets
    )
}

// ---------------------------------------------------------------------------------
// Traffic tools (this binary with BATON_ESP_TOOL set, inside a namespace).

fn run_tool(spec: &str) {
    let args: Vec<&str> = spec.split_whitespace().collect();
    let arg = |i: usize| {
        *args
            .get(i)
            .unwrap_or_else(|| panic!("tool {spec}: arg {i}"))
    };
    let addr = |i: usize| arg(i).parse::<SocketAddr>().expect("address");
    let n = |i: usize| arg(i).parse::<u64>().expect("number");
    let result = match arg(0) {
        "udp-sink" => udp_sink(addr(1), n(2), Duration::from_secs(n(3))),
        "udp-source" => udp_source(
            addr(1),
            n(2),
            Duration::from_millis(n(3)),
            args.get(4).map(Path::new),
        ),
        "tcp-sink" => tcp_sink(addr(1)),
        "tcp-source" => tcp_source(addr(1), n(2)),
        other => panic!("unknown tool {other}"),
    };
    // On a line of its own: libtest has printed "test esp_vm_guest ... " before.
    println!("\nTOOL-RESULT {result}");
}

const DATAGRAM: usize = 200;

/// Receives datagrams carrying a big-endian sequence number until `count` distinct
/// ones arrived or `limit` passed (then 3 s of silence after the last one also ends).
fn udp_sink(bind: SocketAddr, count: u64, limit: Duration) -> String {
    let sock = UdpSocket::bind(bind).expect("bind");
    sock.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let start = Instant::now();
    let mut seen = vec![false; usize::try_from(count).unwrap()];
    let (mut distinct, mut dups) = (0u64, 0u64);
    let mut last = None::<Instant>;
    let mut buf = [0u8; 2048];
    while distinct < count && start.elapsed() < limit {
        if last.is_some_and(|l| l.elapsed() > Duration::from_secs(3)) {
            break;
        }
        let Ok(len) = sock.recv(&mut buf) else {
            continue;
        };
        last = Some(Instant::now());
        let Some(seq) = buf
            .get(..8)
            .filter(|_| len >= 8)
            .map(|b| u64::from_be_bytes(b.try_into().unwrap()))
        else {
            continue;
        };
        match usize::try_from(seq).ok().and_then(|i| seen.get_mut(i)) {
            Some(s) if !*s => {
                *s = true;
                distinct += 1;
            }
            _ => dups += 1,
        }
    }
    // Missing: below the highest number seen (a stream may have been stopped early).
    let top = seen.iter().rposition(|s| *s).map_or(0, |i| i + 1);
    let missing: Vec<String> = seen[..top]
        .iter()
        .enumerate()
        .filter(|(_, s)| !**s)
        .map(|(i, _)| i.to_string())
        .take(50)
        .collect();
    format!(
        "received={distinct} dups={dups} missing={}",
        if missing.is_empty() {
            "-".to_owned()
        } else {
            missing.join(",")
        }
    )
}

/// Sends `count` numbered datagrams, one per `interval`, or fewer if `stop` appears.
fn udp_source(dst: SocketAddr, count: u64, interval: Duration, stop: Option<&Path>) -> String {
    let sock = UdpSocket::bind("0.0.0.0:0").expect("bind");
    let start = Instant::now();
    let (mut sent, mut errors, mut retried) = (0, 0, 0);
    let mut last_error = "-".to_owned();
    let mut buf = [0x5au8; DATAGRAM];
    for seq in 0..count {
        if stop.is_some_and(Path::exists) {
            break;
        }
        // Paced against the start, so a slow moment does not stretch the stream.
        let due = start + interval * u32::try_from(seq).unwrap();
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        buf[..8].copy_from_slice(&seq.to_be_bytes());
        // A send the local kernel refuses (e.g. EAGAIN while its IPsec SAs change) is
        // retried for up to 100 ms and counted: the application saw it, it is no loss
        // on the way; the sink counts what the network lost.
        let mut tries = 0;
        loop {
            match sock.send_to(&buf, dst) {
                Ok(_) => {
                    sent += 1;
                    break;
                }
                Err(e) => {
                    last_error = format!("seq{seq}:{}", e.kind()).replace(' ', "_");
                    tries += 1;
                    if tries > 100 {
                        errors += 1;
                        break;
                    }
                    retried += 1;
                    std::thread::sleep(Duration::from_millis(1));
                }
            }
        }
    }
    format!("sent={sent} errors={errors} retried={retried} last_error={last_error}")
}

/// FNV-1a over the stream, to compare what arrived with what was sent.
fn fnv(h: &mut u64, data: &[u8]) {
    for b in data {
        *h ^= u64::from(*b);
        *h = h.wrapping_mul(0x0100_0000_01b3);
    }
}

fn tcp_sink(bind: SocketAddr) -> String {
    let l = TcpListener::bind(bind).expect("bind");
    let (mut s, _) = l.accept().expect("accept");
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let mut h = 0xcbf2_9ce4_8422_2325u64;
    let mut total = 0u64;
    let mut buf = vec![0u8; 65536];
    loop {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(k) => {
                fnv(&mut h, &buf[..k]);
                total += k as u64;
            }
            Err(e) => return format!("bytes={total} hash={h:016x} error={e}"),
        }
    }
    format!("bytes={total} hash={h:016x}")
}

fn tcp_source(dst: SocketAddr, bytes: u64) -> String {
    let mut s = TcpStream::connect_timeout(&dst, Duration::from_secs(20)).expect("connect");
    s.set_write_timeout(Some(Duration::from_secs(60))).unwrap();
    let mut h = 0xcbf2_9ce4_8422_2325u64;
    let mut sent = 0u64;
    let mut chunk = vec![0u8; 16384];
    while sent < bytes {
        let k = usize::try_from((bytes - sent).min(chunk.len() as u64)).unwrap();
        for (i, b) in chunk[..k].iter_mut().enumerate() {
            // A pattern that differs per position, so reordering would change the hash.
            *b = ((sent + i as u64) * 31 % 251) as u8;
        }
        s.write_all(&chunk[..k]).expect("write");
        fnv(&mut h, &chunk[..k]);
        sent += k as u64;
    }
    s.shutdown(std::net::Shutdown::Write).unwrap();
    // Wait for the sink to close: everything was read.
    let _ = s.read(&mut [0u8; 1]);
    format!("bytes={sent} hash={h:016x}")
}
