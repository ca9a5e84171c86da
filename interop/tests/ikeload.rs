//! `ikeload` (our initiator in a closed loop) against a real strongSwan charon responder
//! in the gateway namespace: every handshake it counts is an IKE SA charon lists as
//! ESTABLISHED with an INSTALLED Child SA, and it measures charon's CPU.
//!
//! Needs root and the packages in scripts/setup; fails (does not skip) without them.

// Test helpers outside #[test] functions: a failed step is a failed test.
#![allow(clippy::expect_used, clippy::panic)]

use std::time::Duration;

use interop::{Charon, PskConnection, Topology};

#[test]
fn ikeload_establishes_sas_that_charon_lists() {
    const N: usize = 40;
    if let Err(e) = interop::check_prerequisites() {
        panic!("{e}");
    }
    interop::strongswan::remove_stale_namespaces();
    let topo = Topology::direct().expect("topology");
    let gw = Charon::start(&topo.gateway, "gw").expect("gateway charon");
    // All ikeload clients share one identity and leave out INITIAL_CONTACT; `unique =
    // never` keeps charon from replacing one with the next.
    // ikeload asks for a virtual IP from the gateway's pool: kernel-libipsec refuses a
    // Child SA whose selectors cover the peer's own IKE address.
    let conf = PskConnection::gateway(topo.gateway_addr)
        .to_swanctl_conf()
        .replacen("version = 2\n", "version = 2\n    unique = never\n", 1);
    // At most 4 half-open SAs: charon's default DoS protection blocks a source address
    // with more than 5 (charon.block_threshold) and the test keeps charon's defaults.
    gw.load(&conf).expect("load gateway config");
    let charon_pid = topo.gateway.pids().first().copied().expect("charon's pid");

    let out = topo
        .client
        .command(env!("CARGO_BIN_EXE_ikeload"))
        .args([
            "--target",
            &format!("{}:500", topo.gateway_addr),
            "--source",
            &topo.client_addr.to_string(),
            "--ports-per-source",
            "2",
            "--count",
            &N.to_string(),
            "--half-open",
            "4",
            "--timeout",
            "60",
            "--remote-ts",
            "10.1.0.0/24",
            "--psk",
            interop::strongswan::EXAMPLE_PSK,
            "--responder-pid",
            &charon_pid.to_string(),
            "--virtual-ip",
            "--json",
        ])
        .output()
        .expect("run ikeload");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "ikeload failed: {stdout}\n{}\n{}",
        String::from_utf8_lossy(&out.stderr),
        gw.log()
    );
    let j: serde_json::Value = serde_json::from_str(stdout.trim()).expect("JSON line");
    assert_eq!(j["established"].as_u64(), Some(N as u64), "{j}");
    assert_eq!(j["failed"].as_u64(), Some(0), "{j}");
    assert_eq!(j["children"].as_u64(), Some(N as u64), "{j}");
    assert!(j["rate"].as_f64().is_some_and(|r| r > 0.0), "{j}");
    assert!(j["responder_cpu_ms_per_sa"].as_f64().is_some(), "{j}");

    let sas = gw
        .wait_for_sas(Duration::from_secs(10), "charon to list every SA", |s| {
            s.len() == N
        })
        .expect("charon's SAs");
    for sa in &sas {
        assert_eq!(sa.state, "ESTABLISHED");
        assert_eq!(sa.remote_id, "client.example");
        assert_eq!(sa.remote_host, topo.client_addr.to_string());
        assert_eq!(interop::checks::installed_children(sa).len(), 1, "{sa:#?}");
        assert_eq!(sa.remote_vips.len(), 1, "{sa:#?}");
    }
}
