//! Validates the harness with strongSwan on both sides: charon as a stand-in responder
//! in the gateway namespace, charon as the client. Later the responder side becomes
//! batond (started with `interop::Daemon::spawn`), the client side stays as it is.
//!
//! Needs root and the packages in scripts/setup; fails (does not skip) without them.

// Test helpers outside #[test] functions: a failed step is a failed test.
#![allow(clippy::expect_used, clippy::panic)]

use std::time::Duration;

use interop::strongswan::remove_stale_namespaces;
use interop::{Batond, Charon, Daemon, IkeSaInfo, PskConnection, Responder, Topology, WorkDir};

const WAIT: Duration = Duration::from_secs(10);

fn prerequisites() {
    if let Err(e) = interop::check_prerequisites() {
        panic!("{e}");
    }
    remove_stale_namespaces();
}

/// A charon responder and a charon client on `topo`, connection loaded on both sides.
fn pair(topo: &Topology, client_conn: &PskConnection) -> (Charon, Charon) {
    let gw = Charon::start(&topo.gateway, "gw").expect("start gateway charon");
    gw.load(&PskConnection::gateway(topo.gateway_addr).to_swanctl_conf())
        .expect("load gateway config");
    let client = Charon::start(&topo.client, "client").expect("start client charon");
    client
        .load(&client_conn.to_swanctl_conf())
        .expect("load client config");
    (gw, client)
}

fn only_ike_sa(sas: &[IkeSaInfo]) -> &IkeSaInfo {
    interop::checks::only_ike_sa(sas).unwrap_or_else(|e| panic!("{e}"))
}

fn installed_children(sa: &IkeSaInfo) -> Vec<&interop::ChildSaInfo> {
    interop::checks::installed_children(sa)
}

/// The client's and the gateway's views of one tunnel agree (interop::checks), and the
/// Child SA carries the configured selectors.
fn assert_views_agree(client: &IkeSaInfo, gw: &IkeSaInfo) {
    if let Err(e) = interop::checks::views_agree(client, gw) {
        panic!("{e}");
    }
    assert!(client.initiator && !gw.initiator);
    assert_eq!(client.local_id, "client.example");
    assert_eq!(gw.local_id, "gw.example");
    assert_eq!(
        installed_children(client)[0].remote_ts,
        vec!["10.1.0.0/24".to_owned()]
    );
    assert_eq!(
        installed_children(gw)[0].local_ts,
        vec!["10.1.0.0/24".to_owned()]
    );
}

#[test]
fn psk_tunnel_establishes() {
    prerequisites();
    let topo = Topology::direct().expect("topology");
    let (gw, client) = pair(&topo, &PskConnection::client(topo.gateway_addr));
    let capture = interop::Capture::start(&topo.gateway, gw.dir(), "ike", "eth0").expect("tcpdump");
    client.initiate("home", "net").expect("initiate");

    let c_sas = client.list_sas().expect("client list-sas");
    let g_sas = gw.list_sas().expect("gateway list-sas");
    let (c, g) = (only_ike_sa(&c_sas), only_ike_sa(&g_sas));
    assert_views_agree(c, g);
    assert_eq!(g.remote_host, topo.client_seen_addr.to_string());
    assert_eq!(c.remote_host, topo.gateway_addr.to_string());
    // Remote access: the gateway handed out the first address of its pool (CP payload).
    assert_eq!(c.local_vips, vec!["10.8.0.1".to_owned()]);
    assert_eq!(g.remote_vips, vec!["10.8.0.1".to_owned()]);
    assert_eq!(
        installed_children(c)[0].encr_alg.as_deref(),
        Some("AES_GCM_16")
    );

    // On the wire: IKE_SA_INIT on 500, then IKE_AUTH on 4500 behind the non-ESP marker
    // (kernel-libipsec makes charon float to 4500), all with the SPI charon reports.
    let wire = capture.finish().expect("capture");
    let kinds: Vec<(Option<u8>, bool, u16)> = wire
        .iter()
        .map(|d| (d.exchange_type(), d.is_response(), d.dport))
        .collect();
    assert_eq!(
        kinds,
        vec![
            (Some(34), false, 500),
            (Some(34), true, 500),
            (Some(35), false, 4500),
            (Some(35), true, 4500)
        ],
        "{wire:#?}"
    );
    assert!(wire[2].non_esp_marker && !wire[0].non_esp_marker);
    let spi_i: String = wire[0]
        .spi_i()
        .expect("spi")
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(spi_i, c.initiator_spi);

    // Deleting from the client removes the SA on the gateway too.
    client.terminate_ike("home").expect("terminate");
    gw.wait_for_sas(
        WAIT,
        "the gateway to drop the IKE SA",
        <[IkeSaInfo]>::is_empty,
    )
    .expect("gateway SA deleted");
    assert!(client.list_sas().expect("client list-sas").is_empty());
}

#[test]
fn psk_tunnel_through_nat() {
    prerequisites();
    let topo = Topology::behind_nat().expect("NAT topology");
    let (gw, client) = pair(&topo, &PskConnection::client(topo.gateway_addr));
    client
        .initiate("home", "net")
        .expect("initiate through NAT");

    let c_sas = client.list_sas().expect("client list-sas");
    let g_sas = gw.list_sas().expect("gateway list-sas");
    let (c, g) = (only_ike_sa(&c_sas), only_ike_sa(&g_sas));
    assert_views_agree(c, g);
    // The gateway sees the NAT's address, the client its private one: the masquerade
    // really sits in the path, and both sides detected it (RFC 7296 §2.23).
    assert_eq!(g.remote_host, "198.51.100.254");
    assert_eq!(c.local_host, "192.168.77.2");
    assert!(
        c.nat_local,
        "client should detect that it is behind a NAT: {c:#?}"
    );
    assert!(
        g.nat_remote,
        "gateway should detect the NAT in front of the client: {g:#?}"
    );
    assert_eq!(g.local_port, "4500");
    let nat = topo.nat_ruleset().expect("nft ruleset");
    assert!(nat.contains("masquerade"), "{nat}");
}

#[test]
fn child_sa_rekey_and_ike_rekey() {
    prerequisites();
    let topo = Topology::direct().expect("topology");
    let (gw, client) = pair(&topo, &PskConnection::client(topo.gateway_addr));
    client.initiate("home", "net").expect("initiate");
    let before = client.list_sas().expect("list-sas");
    let old_child = installed_children(only_ike_sa(&before))[0].clone();

    client.rekey_child("net").expect("rekey child");
    // The rekey's initiator deletes the old Child SA (RFC 7296 §2.8); strongSwan keeps
    // the old inbound SA around for charon.delete_rekeyed_delay (5 s) in a non-INSTALLED
    // state, so look for exactly one INSTALLED Child SA with new SPIs.
    let after = client
        .wait_for_sas(WAIT, "a new installed Child SA", |sas| {
            sas.len() == 1 && {
                let inst = installed_children(&sas[0]);
                inst.len() == 1 && inst[0].spi_in != old_child.spi_in
            }
        })
        .expect("child rekeyed");
    let new_child = installed_children(&after[0])[0].clone();
    let g = gw
        .wait_for_sas(WAIT, "the gateway's new Child SA", |sas| {
            sas.len() == 1 && {
                let inst = installed_children(&sas[0]);
                inst.len() == 1 && inst[0].spi_out == new_child.spi_in
            }
        })
        .expect("gateway child");
    assert_views_agree(&after[0], &g[0]);
    assert_ne!(new_child.spi_out, old_child.spi_out);
    assert!(
        after[0]
            .children
            .iter()
            .all(|c| c.spi_in != old_child.spi_in || c.state != "INSTALLED"),
        "the old Child SA is no longer installed: {after:#?}"
    );

    // IKE SA rekey: new SPIs on both sides, the Child SA moves over.
    let old_spi_i = after[0].initiator_spi.clone();
    client.rekey_ike("home").expect("rekey IKE SA");
    let c = client
        .wait_for_sas(WAIT, "a new IKE SA", |sas| {
            sas.len() == 1 && sas[0].state == "ESTABLISHED" && sas[0].initiator_spi != old_spi_i
        })
        .expect("IKE rekeyed");
    let g = gw
        .wait_for_sas(WAIT, "the gateway's new IKE SA", |sas| {
            sas.len() == 1 && sas[0].initiator_spi == c[0].initiator_spi
        })
        .expect("gateway IKE rekeyed");
    assert_views_agree(&c[0], &g[0]);
    assert_ne!(c[0].responder_spi, after[0].responder_spi);
    // Rekeying the IKE SA moves the Child SAs over unchanged (RFC 7296 §2.18).
    assert_eq!(installed_children(&c[0])[0].spi_in, new_child.spi_in);
}

#[test]
fn responder_process_lives_in_its_namespace_and_stops() {
    prerequisites();
    let topo = Topology::direct().expect("topology");
    let dir = WorkDir::new("daemon").expect("workdir");
    // A stand-in responder that binds UDP 500 in the gateway namespace.
    let mut d = Daemon::spawn(
        &topo.gateway,
        dir.path(),
        "udp-hold",
        env!("CARGO_BIN_EXE_udp-hold"),
        &["198.51.100.1:500", "198.51.100.1:4500"],
    )
    .expect("spawn");
    interop::wait_for(WAIT, "UDP 500 bound in the gateway namespace", || {
        d.check_running()?;
        Ok(interop::udp_port_bound(&topo.gateway, 500)?.then_some(()))
    })
    .expect("port bound");
    assert!(
        !interop::udp_port_bound(&topo.client, 500).expect("ss"),
        "namespaces must be separate"
    );
    let pid = d.pid().expect("pid");
    assert!(
        topo.gateway.pids().contains(&pid),
        "the daemon runs inside the gateway namespace"
    );
    let status = d.stop(Duration::from_secs(2)).expect("stop");
    assert!(!status.success(), "SIGTERM ends the stand-in: {status}");
    assert!(d.log().contains("bound 198.51.100.1:500"));
    assert!(!topo.gateway.pids().contains(&pid));
}

#[test]
fn wrong_psk_is_refused_and_the_error_says_why() {
    prerequisites();
    let topo = Topology::direct().expect("topology");
    let mut conn = PskConnection::client(topo.gateway_addr);
    conn.psk = "not the gateway's key".into();
    let (gw, client) = pair(&topo, &conn);
    let err = client
        .initiate("home", "net")
        .expect_err("a wrong PSK must not establish");
    // swanctl streams charon's log of the attempt: the reason is in the error.
    assert!(err.to_string().contains("AUTHENTICATION_FAILED"), "{err}");
    assert!(
        gw.log()
            .contains("verification of AUTH payload with pre-shared key failed")
            || gw.log().contains("tried 1 shared key"),
        "gateway log:\n{}",
        gw.log()
    );
    gw.wait_for_sas(WAIT, "no IKE SA on the gateway", <[IkeSaInfo]>::is_empty)
        .expect("gateway keeps nothing");
}

#[test]
fn batond_runner_starts_a_responder_and_reads_ikectl_json() {
    prerequisites();
    let topo = Topology::direct().expect("topology");
    // Until batond exists: a stand-in that binds what the config's `listen` says, and an
    // `ikectl` that prints DESIGN §5's JSON. The runner itself is what is under test.
    let tools = WorkDir::new("fake-ikectl").expect("workdir");
    let json = r#"[{"id":1,"connection":"rw","state":"ESTABLISHED","local_id":"gw.example","remote_id":"client.example","local_addr":"198.51.100.1:4500","remote_addr":"198.51.100.2:4500","spi_i":"00000000000000aa","spi_r":"00000000000000bb","owner":"gw1","children":[]}]"#;
    let ikectl = tools
        .write("ikectl", &format!("#!/bin/sh\n[ \"$1\" = --socket ] && [ \"$3\" = list-sas ] && [ \"$4\" = --json ] || exit 9\necho '{json}'\n"))
        .expect("write ikectl");
    interop::netns::run("chmod", &["+x", &ikectl.to_string_lossy()]).expect("chmod");

    let dir = WorkDir::new("batond").expect("workdir");
    let sock = Batond::socket_path(&dir);
    let toml =
        PskConnection::gateway(topo.gateway_addr).to_batond_toml("198.51.100.1", &sock, "memory");
    let mut gw = Batond::start(
        &topo.gateway,
        dir,
        env!("CARGO_BIN_EXE_udp-hold"),
        &ikectl.to_string_lossy(),
        &toml,
        500,
    )
    .expect("start the stand-in");
    assert!(interop::udp_port_bound(&topo.gateway, 4500).expect("ss"));
    assert!(gw.dir().join("batond.toml").exists());
    let sas = Responder::list_sas(&gw).expect("list-sas through ikectl");
    assert_eq!(sas.len(), 1);
    assert_eq!(sas[0].initiator_spi, "00000000000000aa");
    assert_eq!(sas[0].remote_host, "198.51.100.2");
    assert!(Responder::log(&gw).contains("bound 198.51.100.1:500 198.51.100.1:4500"));
    gw.stop().expect("stop");
}

#[test]
fn certificate_tunnel_establishes() {
    prerequisites();
    let pki = interop::TestPki::new(2048).expect("test CA");
    let gw_cert = pki.issue("gw.example").expect("gateway cert");
    let client_cert = pki.issue("client.example").expect("client cert");
    let topo = Topology::direct().expect("topology");

    let mut gw_conn = PskConnection::gateway(topo.gateway_addr);
    gw_conn.proposals = vec!["aes256gcm16-prfsha384-ecp384".into()];
    gw_conn.esp_proposals = vec!["aes256gcm16".into()];
    gw_conn.pubkey = Some(pki.auth(&gw_cert));
    let mut cl_conn = PskConnection::client(topo.gateway_addr);
    cl_conn.proposals = gw_conn.proposals.clone();
    cl_conn.esp_proposals = gw_conn.esp_proposals.clone();
    cl_conn.pubkey = Some(pki.auth(&client_cert));
    // The batond form of the same gateway names the PEM files.
    let toml = gw_conn.to_batond_toml("198.51.100.1", std::path::Path::new("/tmp/s"), "memory");
    assert!(
        toml.contains("local_auth = \"pubkey\"") && !toml.contains("[[secret]]"),
        "{toml}"
    );

    let gw = Charon::start(&topo.gateway, "gw").expect("gateway charon");
    gw.load_connection(&gw_conn).expect("load gateway");
    let client = Charon::start(&topo.client, "client").expect("client charon");
    client.load_connection(&cl_conn).expect("load client");
    client
        .initiate("home", "net")
        .expect("initiate with certificates");

    let c_sas = client.list_sas().expect("list-sas");
    let g_sas = gw.list_sas().expect("list-sas");
    assert_views_agree(only_ike_sa(&c_sas), only_ike_sa(&g_sas));
    // Authenticated by signature: charon logs which method verified the peer.
    assert!(
        client
            .log()
            .contains("authentication of 'gw.example' with RSA"),
        "client log:\n{}",
        client.log()
    );
    assert_eq!(
        interop::vici::flatten(&g_sas[0].raw)
            .get("encr-keysize")
            .map(String::as_str),
        Some("256")
    );
}
