//! A batond cluster behind one shared VIP with real ESP flowing (issue 5): two gateways
//! with `dataplane = "xfrm"` under a real kernel (interop/vm/run-in-vm boots Debian's
//! kernel in qemu: the host kernel has XFRM but no ESP), a strongSwan client (charon,
//! kernel-netlink) and a server behind them; the network is drawn in
//! `cluster_vm/rig.rs`. A numbered UDP stream at 1,000 datagrams per second runs each
//! way (client -> server, server -> client's virtual IP) and every datagram's receive
//! time is recorded.
//!
//! Checks (each one's verdict is its own host test):
//! - `shared_vip_esp_baseline`: one batond (no `[cluster]`) behind the shared-VIP
//!   network: the tunnel comes up through the multicast MAC, the streams lose nothing
//!   but packets the emulated crypto reordered beyond a replay window (counted).
//!   It proves the network, the tools and the capture reader, so that a failure of the
//!   cluster checks is the cluster's.
//! - `failover_kill9_under_esp_traffic`: the owner's machine dies (SIGKILL of batond, its
//!   links down and its kernel's XFRM state flushed: see rig.rs); the survivor takes the
//!   SA over (`ikectl cluster` counters), synchronises Message IDs with strongSwan
//!   (RFC 6311), traffic flows again both ways; strongSwan's IKE SA is the same one.
//! - `transfer_under_esp_traffic`: the dead node comes back; `ikectl transfer` moves the
//!   SA to the other node under traffic; the target owns it, traffic flows, same IKE SA.
//! - `esp_on_wire_no_repeated_spi_seq`: tcpdump on the client's side of the VIP bridge
//!   across both: no ESP (SPI, sequence number) pair twice, one IKE_SA_INIT in all.
//!
//! A node's death is simulated as a machine's: its links go down and its batond gets
//! SIGKILL at the same moment, then its kernel's XFRM state and policies are flushed
//! (`ip -batch` started beforehand does the link and XFRM part; a killed batond alone
//! leaves its SAs in its namespace's kernel, which would keep encrypting and
//! decrypting). It comes back like a rebooted machine: empty XFRM, links up, a fresh
//! batond.
//!
//! Settings of the guest run (environment of the host test, passed through):
//! - `BATON_CLUSTER_VM_HEARTBEAT=<interval>x<multiplier>`, default `250msx8`: batond's
//!   own default (100 ms x 3, a node declared dead after 300 ms of silence) is shorter
//!   than the stalls of the emulated (TCG) guest on a loaded 2-core host, which then
//!   sees nodes flap; these checks are about ESP and ownership, not timing.
//! - `BATON_CLUSTER_VM_SYNC=ack|async`, default `ack`.
//! - `BATON_CLUSTER_VM_IKE=<IKE proposal>` of both ends, default
//!   `aes128gcm16-prfsha256-x25519`. strongSwan 5.9.8 answers IKEV2_MESSAGE_ID_SYNC at
//!   most once per IKE SA when the IKE SA uses an AEAD (its sequential IV generator
//!   refuses Message ID 0 twice: "encrypting encrypted payload failed, no IV or
//!   padding", and it destroys the IKE SA); a second takeover of the same SA (a flap,
//!   or the measurement's repeated kills) needs a non-AEAD IKE proposal such as
//!   `aes128-sha256-x25519`.
//! - `BATON_CLUSTER_VM_KEEP=DIR`: logs, records and the capture are copied to DIR.
//!
//! strongSwan's replay window is 1,024 (the guest's AES-GCM runs partly through cryptd
//! and reorders a 1,000/s stream by more than the default 32), and sockets in the guest
//! get 4 MiB receive buffers, so that only the network's losses count as losses.
//!
//! Interruptions and losses are printed by the checks; the measurement with 20 kills and
//! 20 transfers is `interop/vm/cluster-bench.sh` (this binary in bench mode).
//!
//! All checks share ONE guest boot (like esp_vm.rs): the first host test to run boots
//! the guest with `BATON_CLUSTER_VM_GUEST=1`, every host test then looks for its check's
//! verdict in the output. `BATON_CLUSTER_VM_ONLY=<substring>` restricts the checks run
//! in the guest. Needs root, as CI has.

// Test helpers outside #[test] functions: a failed step is a failed test.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

#[path = "vm_guest/mod.rs"]
mod vm_guest;

#[path = "cluster_vm/esp_pcap.rs"]
mod esp_pcap;
#[path = "cluster_vm/rig.rs"]
mod rig;
#[path = "cluster_vm/scenario.rs"]
mod scenario;
#[path = "cluster_vm/traffic.rs"]
mod traffic;

use std::sync::OnceLock;
use std::time::Instant;

/// Set inside the guest: run the checks (or, with `BATON_CLUSTER_VM_MODE=bench`, the
/// measurement).
const GUEST_ENV: &str = "BATON_CLUSTER_VM_GUEST";
/// Printed by the guest once every check has run (passed or not).
const ALL_RAN: &str = "CLUSTER-VM-ALL-CHECKS-RAN";

static VM_RUN: OnceLock<vm_guest::VmRun> = OnceLock::new();

fn vm_run() -> &'static vm_guest::VmRun {
    VM_RUN.get_or_init(|| {
        let mut vm_args: Vec<String> = ["-m", "2048", "-t", "1500"].map(String::from).into();
        // BATON_CLUSTER_VM_KEEP=DIR: the guest copies its logs and captures to DIR, shared
        // with the host, so they outlive the guest.
        let keep = std::env::var("BATON_CLUSTER_VM_KEEP").unwrap_or_default();
        if !keep.is_empty() {
            std::fs::create_dir_all(&keep).unwrap();
            vm_args.extend(["-w".to_owned(), keep.clone()]);
        }
        let mut env = vec![format!("BATON_CLUSTER_VM_KEEP={keep}")];
        env.extend(["HEARTBEAT", "SYNC", "IKE"].map(|k| {
            let k = format!("BATON_CLUSTER_VM_{k}");
            format!("{k}={}", std::env::var(&k).unwrap_or_default())
        }));
        env.extend([
            format!("{GUEST_ENV}=1"),
            "BATON_INTEROP_KERNEL=netlink".into(),
            format!(
                "BATON_CLUSTER_VM_ONLY={}",
                std::env::var("BATON_CLUSTER_VM_ONLY").unwrap_or_default()
            ),
        ]);
        vm_guest::boot("cluster_vm", &vm_args, &env, "cluster_vm_guest")
    })
}

/// The verdict of check `name` in the shared guest run.
fn expect_check(name: &str) {
    vm_guest::expect_check(vm_run(), "CLUSTER-VM-CHECK", name);
}

/// Inside the guest: runs every check (or the measurement). On the host: the guest
/// booted, every check ran and the run ended well.
#[test]
fn cluster_vm_guest() {
    if let Ok(tool) = std::env::var(traffic::TOOL_ENV) {
        traffic::run_tool(&tool);
        return;
    }
    vm_guest::require_root();
    if std::env::var_os(GUEST_ENV).is_some() {
        if let Err(e) = interop::check_prerequisites() {
            panic!("{e}");
        }
        // The throwaway guest's own (initial) namespace: sockets get 4 MiB receive
        // buffers, so an emulated CPU's stalls do not overflow the traffic sinks.
        std::fs::write("/proc/sys/net/core/rmem_default", "4194304")
            .expect("net.core.rmem_default");
        if std::env::var("BATON_CLUSTER_VM_MODE").as_deref() == Ok("bench") {
            scenario::bench_main();
        } else {
            guest_main();
        }
        return;
    }
    let run = vm_run();
    for line in run.text.lines().filter(|l| l.contains("CLUSTER-VM-CHECK ")) {
        println!("{line}");
    }
    assert!(
        run.text.contains(ALL_RAN),
        "the guest did not run all its checks ({:.1} s):\n{}",
        run.secs,
        run.text
    );
    assert!(
        run.success,
        "a check failed in the guest (see the other cluster_vm tests):\n{}",
        run.text
    );
}

#[test]
fn shared_vip_esp_baseline() {
    expect_check("shared_vip_baseline");
}

#[test]
fn failover_kill9_under_esp_traffic() {
    expect_check("failover");
}

#[test]
fn transfer_under_esp_traffic() {
    expect_check("transfer");
}

#[test]
fn esp_on_wire_no_repeated_spi_seq() {
    expect_check("esp_wire");
}

/// Prints one check's verdict in the form `expect_check` reads.
fn report(name: &str, ms: u128, r: &Result<String, String>) -> bool {
    match r {
        Ok(summary) => {
            println!("\nCLUSTER-VM-CHECK {name} PASS ({ms} ms): {summary}");
            true
        }
        Err(msg) => {
            println!(
                "\nCLUSTER-VM-CHECK {name} FAIL ({ms} ms):\n{msg}\nCLUSTER-VM-CHECK-END {name}"
            );
            false
        }
    }
}

/// A panic's message.
fn panic_text(p: &(dyn std::any::Any + Send)) -> String {
    p.downcast_ref::<String>()
        .cloned()
        .or_else(|| p.downcast_ref::<&str>().map(|s| (*s).to_owned()))
        .unwrap_or_default()
}

fn guest_main() {
    let only = std::env::var("BATON_CLUSTER_VM_ONLY").unwrap_or_default();
    let mut failed = Vec::new();
    if "shared_vip_baseline".contains(only.as_str()) {
        let t = Instant::now();
        let r = std::panic::catch_unwind(scenario::baseline_case).map_err(|p| panic_text(&*p));
        if !report("shared_vip_baseline", t.elapsed().as_millis(), &r) {
            failed.push("shared_vip_baseline");
        }
    }
    if only.is_empty() || "failover transfer esp_wire".contains(only.as_str()) {
        let t = Instant::now();
        let results = scenario::cluster_case();
        for (name, r) in [
            ("failover", &results.failover),
            ("transfer", &results.transfer),
            ("esp_wire", &results.wire),
        ] {
            if !report(name, t.elapsed().as_millis(), r) {
                failed.push(name);
            }
        }
    }
    println!("{ALL_RAN}");
    assert!(failed.is_empty(), "failed in the guest: {failed:?}");
}
