//! Real strongSwan clients (Debian's charon, driven by swanctl, kernel-libipsec) against
//! batond (`dataplane = "memory"`) in its own network namespace (interop harness).
//! Every case compares strongSwan's view (vici list-sas) with batond's
//! (`ikectl --json list-sas`): same IKE SPIs, crossed identities, Child SA SPIs
//! mirrored, INSTALLED on both sides.
//!
//! Needs root and the packages in scripts/setup; fails (does not skip) without them.

// Test helpers outside #[test] functions: a failed step is a failed test.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use std::time::Duration;

use interop::strongswan::remove_stale_namespaces;
use interop::{Batond, Charon, IkeSaInfo, PskConnection, Responder, Topology, WorkDir};
use serde_json::Value as Json;

const WAIT: Duration = Duration::from_secs(15);
const GW_LISTEN: &str = "198.51.100.1";

fn prerequisites() {
    if let Err(e) = interop::check_prerequisites() {
        panic!("{e}");
    }
    remove_stale_namespaces();
}

/// batond with `gw_conn` (plus `extra_gateway` lines in `[gateway]`) in the gateway
/// namespace of `topo`.
fn start_batond(topo: &Topology, gw_conn: &PskConnection, extra_gateway: &str) -> Batond {
    let dir = WorkDir::new("batond").expect("workdir");
    let sock = Batond::socket_path(&dir);
    let mut toml = gw_conn.to_batond_toml(GW_LISTEN, &sock, "memory");
    if !extra_gateway.is_empty() {
        toml = toml.replacen("[gateway]\n", &format!("[gateway]\n{extra_gateway}\n"), 1);
    }
    Batond::start(
        &topo.gateway,
        dir,
        env!("CARGO_BIN_EXE_batond"),
        env!("CARGO_BIN_EXE_ikectl"),
        &toml,
        500,
    )
    .expect("start batond")
}

fn start_client(topo: &Topology, conn: &PskConnection) -> Charon {
    let client = Charon::start(&topo.client, "client").expect("start client charon");
    client.load_connection(conn).expect("load client config");
    client
}

fn only(sas: &[IkeSaInfo]) -> &IkeSaInfo {
    interop::checks::only_ike_sa(sas).unwrap_or_else(|e| panic!("{e}"))
}

fn installed(sa: &IkeSaInfo) -> Vec<&interop::ChildSaInfo> {
    interop::checks::installed_children(sa)
}

/// Both views of the one tunnel agree; returns them (client, gateway).
fn agree(client: &Charon, gw: &Batond) -> (IkeSaInfo, IkeSaInfo) {
    let c = client.list_sas().expect("client list-sas");
    let g = Responder::list_sas(gw).expect("ikectl list-sas");
    let (c, g) = (only(&c).clone(), only(&g).clone());
    if let Err(e) = interop::checks::views_agree(&c, &g) {
        panic!("{e}\n--- batond log ---\n{}", Responder::log(gw));
    }
    assert!(c.initiator, "{c:#?}");
    assert_eq!(c.local_id, "client.example");
    assert_eq!(g.local_id, "gw.example");
    assert_eq!(installed(&c)[0].remote_ts, vec!["10.1.0.0/24".to_owned()]);
    assert_eq!(installed(&g)[0].local_ts, vec!["10.1.0.0/24".to_owned()]);
    (c, g)
}

/// `ikectl --json list-sas` as JSON (for fields the shared record does not carry).
fn ikectl_json(gw: &Batond) -> Json {
    serde_json::from_str(&gw.ikectl(&["list-sas", "--json"]).expect("ikectl")).expect("json")
}

/// One PSK tunnel from a strongSwan client: SPIs, identities, virtual IP from the pool,
/// then `swanctl --terminate` removes it on batond too.
#[test]
fn psk_tunnel_with_virtual_ip_and_client_delete() {
    prerequisites();
    let topo = Topology::direct().expect("topology");
    let gw = start_batond(&topo, &PskConnection::gateway(topo.gateway_addr), "");
    let client = start_client(&topo, &PskConnection::client(topo.gateway_addr));
    client.initiate("home", "net").expect("initiate");

    let (c, g) = agree(&client, &gw);
    assert_eq!(g.remote_host, topo.client_seen_addr.to_string());
    assert_eq!(c.remote_host, topo.gateway_addr.to_string());
    // Remote access: strongSwan got the pool's first address (CP payload, RFC 7296 §3.15)
    // and batond reports it handed out that address.
    assert_eq!(c.local_vips, vec!["10.8.0.1".to_owned()]);
    assert_eq!(g.remote_vips, vec!["10.8.0.1".to_owned()]);
    assert_eq!(installed(&g)[0].remote_ts, vec!["10.8.0.1/32".to_owned()]);
    assert_eq!(installed(&c)[0].local_ts, vec!["10.8.0.1/32".to_owned()]);
    assert_eq!(g.name, "rw");

    client.terminate_ike("home").expect("terminate");
    interop::wait_for(WAIT, "batond to drop the IKE SA", || {
        Ok(Responder::list_sas(&gw)?.is_empty().then_some(()))
    })
    .expect("batond deleted the SA");
    assert!(client.list_sas().expect("list-sas").is_empty());
}

/// `ikectl terminate` deletes the IKE SA (INFORMATIONAL with Delete from batond), and
/// strongSwan drops it too.
#[test]
fn gateway_delete_reaches_strongswan() {
    prerequisites();
    let topo = Topology::direct().expect("topology");
    let gw = start_batond(&topo, &PskConnection::gateway(topo.gateway_addr), "");
    let client = start_client(&topo, &PskConnection::client(topo.gateway_addr));
    client.initiate("home", "net").expect("initiate");
    let (_, g) = agree(&client, &gw);

    let id = ikectl_json(&gw)[0]["id"].as_str().expect("id").to_owned();
    assert_eq!(g.uniqueid, id);
    gw.ikectl(&["terminate", &id]).expect("ikectl terminate");
    client
        .wait_for_sas(
            WAIT,
            "strongSwan to drop the IKE SA",
            <[IkeSaInfo]>::is_empty,
        )
        .expect("strongSwan deleted the SA");
    interop::wait_for(WAIT, "batond to forget the IKE SA", || {
        Ok(Responder::list_sas(&gw)?.is_empty().then_some(()))
    })
    .expect("batond deleted the SA");
    assert!(
        client.log().contains("received DELETE for IKE_SA"),
        "{}",
        client.log()
    );
}
