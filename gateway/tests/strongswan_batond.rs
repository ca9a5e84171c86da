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

/// A gateway that accepts every suite the cases below offer, one at a time.
fn all_suites_gateway(topo: &Topology) -> PskConnection {
    let mut gw = PskConnection::gateway(topo.gateway_addr);
    gw.proposals = vec![
        "aes128gcm16-prfsha256-x25519-ecp256-ecp384-modp2048".into(),
        "aes256gcm16-prfsha384-x25519-ecp256-ecp384-modp2048".into(),
        "chacha20poly1305-prfsha256-x25519-ecp256-ecp384-modp2048".into(),
        "aes256-sha256-x25519-ecp256-ecp384-modp2048".into(),
    ];
    gw.esp_proposals = vec![
        "aes128gcm16".into(),
        "aes256gcm16".into(),
        "chacha20poly1305".into(),
        "aes256-sha256".into(),
    ];
    gw
}

/// strongSwan offers exactly `ike`/`esp`; the tunnel comes up and strongSwan reports
/// the algorithms it negotiated (vici `encr-alg`, `dh-group`, ...), which must be the
/// ones it offered: batond chose them.
fn suite_case(ike: &str, esp: &str, expect_ike: &[(&str, &str)], expect_esp: &[(&str, &str)]) {
    prerequisites();
    let topo = Topology::direct().expect("topology");
    let gw = start_batond(&topo, &all_suites_gateway(&topo), "");
    let mut conn = PskConnection::client(topo.gateway_addr);
    conn.proposals = vec![ike.into()];
    conn.esp_proposals = vec![esp.into()];
    let client = start_client(&topo, &conn);
    client.initiate("home", "net").expect("initiate");
    let (c, _) = agree(&client, &gw);
    let ike_seen = interop::vici::flatten(&c.raw);
    for (k, v) in expect_ike {
        assert_eq!(
            ike_seen.get(*k).map(String::as_str),
            Some(*v),
            "IKE {k} for {ike}: {ike_seen:#?}"
        );
    }
    let child_raw = c
        .raw
        .section("child-sas")
        .and_then(|s| s.sections().next().map(|(_, s)| s.clone()))
        .expect("child-sas in vici");
    let esp_seen = interop::vici::flatten(&child_raw);
    for (k, v) in expect_esp {
        assert_eq!(
            esp_seen.get(*k).map(String::as_str),
            Some(*v),
            "ESP {k} for {esp}: {esp_seen:#?}"
        );
    }
    // batond reports a proposal for the IKE SA and the Child SA.
    let j = ikectl_json(&gw);
    assert!(
        !j[0]["proposal"].as_str().unwrap_or_default().is_empty(),
        "{j}"
    );
}

#[test]
fn suite_aes128gcm16_x25519() {
    suite_case(
        "aes128gcm16-prfsha256-x25519",
        "aes128gcm16",
        &[
            ("encr-alg", "AES_GCM_16"),
            ("encr-keysize", "128"),
            ("prf-alg", "PRF_HMAC_SHA2_256"),
            ("dh-group", "CURVE_25519"),
        ],
        &[("encr-alg", "AES_GCM_16"), ("encr-keysize", "128")],
    );
}

#[test]
fn suite_aes256gcm16_ecp256() {
    suite_case(
        "aes256gcm16-prfsha384-ecp256",
        "aes256gcm16",
        &[
            ("encr-alg", "AES_GCM_16"),
            ("encr-keysize", "256"),
            ("prf-alg", "PRF_HMAC_SHA2_384"),
            ("dh-group", "ECP_256"),
        ],
        &[("encr-alg", "AES_GCM_16"), ("encr-keysize", "256")],
    );
}

#[test]
fn suite_chacha20poly1305_ecp384() {
    suite_case(
        "chacha20poly1305-prfsha256-ecp384",
        "chacha20poly1305",
        &[
            ("encr-alg", "CHACHA20_POLY1305"),
            ("prf-alg", "PRF_HMAC_SHA2_256"),
            ("dh-group", "ECP_384"),
        ],
        &[("encr-alg", "CHACHA20_POLY1305")],
    );
}

#[test]
fn suite_aes256_sha256_modp2048() {
    suite_case(
        "aes256-sha256-modp2048",
        "aes256-sha256",
        &[
            ("encr-alg", "AES_CBC"),
            ("encr-keysize", "256"),
            ("integ-alg", "HMAC_SHA2_256_128"),
            ("prf-alg", "PRF_HMAC_SHA2_256"),
            ("dh-group", "MODP_2048"),
        ],
        &[
            ("encr-alg", "AES_CBC"),
            ("encr-keysize", "256"),
            ("integ-alg", "HMAC_SHA2_256_128"),
        ],
    );
}

/// The remaining key exchange methods with the default AEAD, so each of x25519, ecp256,
/// ecp384 and modp2048 is negotiated once with AES-GCM too.
#[test]
fn groups_x25519_ecp256_ecp384_modp2048_with_aes_gcm() {
    prerequisites();
    let topo = Topology::direct().expect("topology");
    let gw = start_batond(&topo, &all_suites_gateway(&topo), "");
    let client = Charon::start(&topo.client, "client").expect("charon");
    for (group, name) in [
        ("x25519", "CURVE_25519"),
        ("ecp256", "ECP_256"),
        ("ecp384", "ECP_384"),
        ("modp2048", "MODP_2048"),
    ] {
        let mut conn = PskConnection::client(topo.gateway_addr);
        conn.proposals = vec![format!("aes128gcm16-prfsha256-{group}")];
        client.load_connection(&conn).expect("load");
        client.initiate("home", "net").expect("initiate");
        let (c, _) = agree(&client, &gw);
        assert_eq!(
            interop::vici::flatten(&c.raw)
                .get("dh-group")
                .map(String::as_str),
            Some(name)
        );
        client.terminate_ike("home").expect("terminate");
        interop::wait_for(WAIT, "batond to drop the IKE SA", || {
            Ok(Responder::list_sas(&gw)?.is_empty().then_some(()))
        })
        .expect("deleted");
    }
}

/// Runs strongSwan's `pki` with `args` (plus `--in input`) and writes its stdout to `out`.
fn pki(args: &[&str], input: Option<&std::path::Path>, out: &std::path::Path) {
    let mut cmd = std::process::Command::new("pki");
    cmd.args(args);
    if let Some(i) = input {
        cmd.arg("--in").arg(i);
    }
    let o = cmd.output().expect("run pki");
    assert!(
        o.status.success(),
        "pki {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    std::fs::write(out, &o.stdout).expect("write pki output");
}

/// An RSA-4096 chain: root CA → intermediate CA → gateway certificate (batond sends the
/// gateway and intermediate certificates), and a client certificate from the root.
fn rsa4096_chain(dir: &std::path::Path) -> (interop::PubkeyAuth, interop::PubkeyAuth) {
    let f = |n: &str| dir.join(n);
    let s = |p: std::path::PathBuf| p.to_string_lossy().into_owned();
    for k in ["root.key", "int.key", "gw.key", "client.key"] {
        pki(
            &[
                "--gen",
                "--type",
                "rsa",
                "--size",
                "4096",
                "--outform",
                "pem",
            ],
            None,
            &f(k),
        );
    }
    pki(
        &[
            "--self",
            "--ca",
            "--lifetime",
            "30",
            "--dn",
            "C=XX, O=baton test, CN=chain root",
            "--outform",
            "pem",
        ],
        Some(&f("root.key")),
        &f("root.pem"),
    );
    let issue = |key: &str, ca: &str, ca_key: &str, dn: &str, extra: &[&str], out: &str| {
        pki(
            &["--pub", "--outform", "pem"],
            Some(&f(key)),
            &f(&format!("{out}.pub")),
        );
        let mut a = vec![
            "--issue",
            "--lifetime",
            "30",
            "--type",
            "pub",
            "--outform",
            "pem",
            "--dn",
            dn,
        ];
        let (ca, ca_key) = (s(f(ca)), s(f(ca_key)));
        a.extend(["--cacert", ca.as_str(), "--cakey", ca_key.as_str()]);
        a.extend_from_slice(extra);
        pki(&a, Some(&f(&format!("{out}.pub"))), &f(out));
    };
    issue(
        "int.key",
        "root.pem",
        "root.key",
        "C=XX, O=baton test, CN=chain intermediate",
        &["--ca"],
        "int.pem",
    );
    issue(
        "gw.key",
        "int.pem",
        "int.key",
        "C=XX, O=baton test, CN=gw.example",
        &["--san", "gw.example"],
        "gw.pem",
    );
    issue(
        "client.key",
        "root.pem",
        "root.key",
        "C=XX, O=baton test, CN=client.example",
        &["--san", "client.example"],
        "client.pem",
    );
    // batond's local_cert: end entity first, then the intermediate.
    let chain = format!(
        "{}{}",
        std::fs::read_to_string(f("gw.pem")).expect("gw.pem"),
        std::fs::read_to_string(f("int.pem")).expect("int.pem")
    );
    std::fs::write(f("gw-chain.pem"), chain).expect("write chain");
    (
        interop::PubkeyAuth {
            local_cert: f("gw-chain.pem"),
            local_key: f("gw.key"),
            remote_ca: f("root.pem"),
        },
        interop::PubkeyAuth {
            local_cert: f("client.pem"),
            local_key: f("client.key"),
            remote_ca: f("root.pem"),
        },
    )
}

fn cert_case(
    rsa_bits: u32,
    fragment_size: Option<u32>,
) -> (Charon, Batond, Vec<interop::IkeDatagram>, Topology) {
    prerequisites();
    let pki_dir = WorkDir::new("chain").expect("workdir");
    // Kept until the end of the test: its directory holds the PEM files.
    let pki = interop::TestPki::new(2048).expect("test CA");
    let (gw_auth, client_auth) = if rsa_bits == 4096 {
        rsa4096_chain(pki_dir.path())
    } else {
        let gw_cert = pki.issue("gw.example").expect("gateway cert");
        let client_cert = pki.issue("client.example").expect("client cert");
        (pki.auth(&gw_cert), pki.auth(&client_cert))
    };
    let topo = Topology::direct().expect("topology");
    let mut gw_conn = PskConnection::gateway(topo.gateway_addr);
    gw_conn.pubkey = Some(gw_auth);
    let mut cl_conn = PskConnection::client(topo.gateway_addr);
    cl_conn.pubkey = Some(client_auth);
    let extra = fragment_size
        .map(|n| format!("fragment_size = {n}"))
        .unwrap_or_default();
    let gw = start_batond(&topo, &gw_conn, &extra);
    let client = Charon::start_with(
        &topo.client,
        "client",
        interop::KernelInterface::Libipsec,
        &extra,
    )
    .expect("client charon");
    client.load_connection(&cl_conn).expect("load client");
    let capture = interop::Capture::start(&topo.gateway, gw.dir(), "ike", "eth0").expect("tcpdump");
    client
        .initiate("home", "net")
        .expect("initiate with certificates");
    agree(&client, &gw);
    // Signature authentication both ways (RFC 7427): charon logs how it verified batond.
    assert!(
        client
            .log()
            .contains("authentication of 'gw.example' with RSA"),
        "client log:\n{}",
        client.log()
    );
    let wire = capture.finish().expect("capture");
    (client, gw, wire, topo)
}

#[test]
fn rsa_certificates() {
    let (client, _gw, wire, _topo) = cert_case(2048, None);
    // Both IKE_AUTH messages were on the wire with the SPIs strongSwan reports.
    let sas = client.list_sas().expect("list-sas");
    let spi_i: String = wire
        .iter()
        .find(|d| d.exchange_type() == Some(35))
        .and_then(|d| d.spi_i())
        .expect("an IKE_AUTH datagram")
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(spi_i, only(&sas).initiator_spi);
}

/// An RSA-4096 chain (batond sends its certificate and the intermediate CA, each side a
/// 512-byte signature) with
/// fragment_size = 576 on both sides: IKE_AUTH travels in several encrypted fragments
/// (SKF payloads, RFC 7383) in both directions and is reassembled by both.
#[test]
fn rsa4096_certificates_fragmented() {
    let (client, _gw, wire, _topo) = cert_case(4096, Some(576));
    let auth: Vec<_> = wire
        .iter()
        .filter(|d| d.exchange_type() == Some(35))
        .collect();
    // Next payload of the IKE header is SKF (53) in every IKE_AUTH datagram.
    let skf = |d: &&&interop::IkeDatagram| d.ike.get(16) == Some(&53);
    let req = auth.iter().filter(|d| !d.is_response()).filter(skf).count();
    let resp = auth.iter().filter(|d| d.is_response()).filter(skf).count();
    assert!(
        req >= 2 && resp >= 2,
        "fragments: {req} requests, {resp} responses: {wire:#?}"
    );
    for d in &wire {
        assert!(
            d.ike.len() + 8 + 4 <= 576 + 28,
            "datagram over fragment_size: {}",
            d.ike.len()
        );
    }
    assert!(
        client.log().contains("received fragment #"),
        "{}",
        client.log()
    );
}

/// strongSwan rekeys the Child SA, then the IKE SA (CREATE_CHILD_SA, RFC 7296 §1.3.3,
/// §1.3.2); batond follows with the same new SPIs.
#[test]
fn child_and_ike_rekey_started_by_strongswan() {
    prerequisites();
    let topo = Topology::direct().expect("topology");
    let gw = start_batond(&topo, &PskConnection::gateway(topo.gateway_addr), "");
    let client = start_client(&topo, &PskConnection::client(topo.gateway_addr));
    client.initiate("home", "net").expect("initiate");
    let (before, _) = agree(&client, &gw);
    let old_child = installed(&before)[0].clone();

    client.rekey_child("net").expect("rekey child");
    let after = client
        .wait_for_sas(WAIT, "a new installed Child SA", |sas| {
            sas.len() == 1 && {
                let inst = installed(&sas[0]);
                inst.len() == 1 && inst[0].spi_in != old_child.spi_in
            }
        })
        .expect("child rekeyed");
    let new_child = installed(&after[0])[0].clone();
    interop::wait_for(WAIT, "batond's new Child SA", || {
        let g = Responder::list_sas(&gw)?;
        Ok((g.len() == 1
            && g[0].children.len() == 1
            && g[0].children[0].spi_out == new_child.spi_in)
            .then_some(()))
    })
    .unwrap_or_else(|e| panic!("{e}\n{}", Responder::log(&gw)));
    let (c1, _) = agree(&client, &gw);
    assert_ne!(installed(&c1)[0].spi_out, old_child.spi_out);

    let old_spi_i = c1.initiator_spi.clone();
    client.rekey_ike("home").expect("rekey IKE SA");
    client
        .wait_for_sas(WAIT, "a new IKE SA", |sas| {
            sas.len() == 1 && sas[0].state == "ESTABLISHED" && sas[0].initiator_spi != old_spi_i
        })
        .expect("IKE rekeyed");
    interop::wait_for(WAIT, "batond's new IKE SA", || {
        let g = Responder::list_sas(&gw)?;
        Ok((g.len() == 1 && g[0].initiator_spi != old_spi_i).then_some(()))
    })
    .unwrap_or_else(|e| panic!("{e}\n{}", Responder::log(&gw)));
    let (c2, g2) = agree(&client, &gw);
    assert_ne!(c2.responder_spi, c1.responder_spi);
    // The Child SA moved over unchanged (RFC 7296 §2.18).
    assert_eq!(installed(&c2)[0].spi_in, new_child.spi_in);
    assert_eq!(installed(&g2)[0].spi_out, new_child.spi_in);
}

/// Reads batond's Prometheus text from inside its namespace (bash's /dev/tcp: nothing
/// beyond Debian's base system).
fn metrics(topo: &Topology, addr: &str) -> String {
    let (host, port) = addr.split_once(':').expect("addr");
    let script = format!(
        "exec 3<>/dev/tcp/{host}/{port} && printf 'GET /metrics HTTP/1.0\\r\\nHost: x\\r\\n\\r\\n' >&3 && cat <&3"
    );
    let out = topo
        .gateway
        .exec("bash", &["-c", &script])
        .expect("metrics");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Sum of the samples of metric `name` whose line contains `label` (case-insensitive).
fn metric_value(text: &str, name: &str, label: &str) -> f64 {
    let label = label.to_ascii_lowercase();
    text.lines()
        .filter(|l| {
            l.strip_prefix(name)
                .is_some_and(|r| r.starts_with([' ', '{']))
                && l.to_ascii_lowercase().contains(&label)
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// strongSwan checks liveness every second (empty INFORMATIONAL, RFC 7296 §2.4); batond
/// answers, strongSwan's IKE SA stays, and batond's metrics count the exchanges.
#[test]
fn liveness_checks_are_answered() {
    prerequisites();
    let topo = Topology::direct().expect("topology");
    let maddr = "198.51.100.1:9753";
    let gw = start_batond(
        &topo,
        &PskConnection::gateway(topo.gateway_addr),
        &format!("metrics = {maddr:?}"),
    );
    let mut conn = PskConnection::client(topo.gateway_addr);
    conn.dpd_delay = Some("1s".into());
    let client = start_client(&topo, &conn);
    client.initiate("home", "net").expect("initiate");
    let (c0, _) = agree(&client, &gw);
    let answered = |t: &str| metric_value(t, "baton_exchanges_total", "informational");
    let mut last = String::new();
    interop::wait_for(
        Duration::from_secs(20),
        "batond to answer 3 liveness checks",
        || {
            last = metrics(&topo, maddr);
            Ok((answered(&last) >= 3.0).then_some(()))
        },
    )
    .unwrap_or_else(|e| panic!("{e}\n{last}\n{}", client.log()));
    assert!(
        client
            .log()
            .matches("parsed INFORMATIONAL response")
            .count()
            >= 3,
        "{}",
        client.log()
    );
    let (c1, _) = agree(&client, &gw);
    assert_eq!(
        (c1.initiator_spi, c1.responder_spi),
        (c0.initiator_spi, c0.responder_spi)
    );
    assert_eq!(metric_value(&last, "baton_ike_sas", ""), 1.0, "{last}");
}

/// A strongSwan client behind the NAT namespace (nftables masquerade): batond sees the
/// NAT's address, both detect the NAT (RFC 7296 §2.23), IKE moves to port 4500.
#[test]
fn client_behind_nat() {
    prerequisites();
    let topo = Topology::behind_nat().expect("NAT topology");
    let gw = start_batond(&topo, &PskConnection::gateway(topo.gateway_addr), "");
    let client = start_client(&topo, &PskConnection::client(topo.gateway_addr));
    client
        .initiate("home", "net")
        .expect("initiate through NAT");
    let (c, g) = agree(&client, &gw);
    assert_eq!(g.remote_host, "198.51.100.254");
    assert_eq!(c.local_host, "192.168.77.2");
    assert_eq!(g.local_port, "4500");
    assert!(c.nat_local, "{c:#?}");
    assert!(g.nat_remote, "{g:#?}");
    assert!(topo.nat_ruleset().expect("nft").contains("masquerade"));
}

/// 100 strongSwan clients at once (one charon, 100 connections with their own
/// identities, all started on load): 100 IKE SAs with one Child SA and a distinct
/// virtual IP each, the same on both sides.
#[test]
fn hundred_clients_at_once() {
    const N: usize = 100;
    prerequisites();
    let topo = Topology::direct().expect("topology");
    let mut gw_conn = PskConnection::gateway(topo.gateway_addr);
    gw_conn.remote_id = "*.example".into();
    let dir = WorkDir::new("batond").expect("workdir");
    let sock = Batond::socket_path(&dir);
    // One secret naming only the gateway's identity applies to every peer
    // (docs/configuration.md, [[secret]]).
    let toml = gw_conn.to_batond_toml(GW_LISTEN, &sock, "memory").replace(
        "ids = [\"gw.example\", \"*.example\"]",
        "ids = [\"gw.example\"]",
    );
    let gw = Batond::start(
        &topo.gateway,
        dir,
        env!("CARGO_BIN_EXE_batond"),
        env!("CARGO_BIN_EXE_ikectl"),
        &toml,
        500,
    )
    .expect("start batond");

    let client = Charon::start(&topo.client, "client").expect("charon");
    let mut conf = String::from("connections {\n");
    for i in 0..N {
        conf += &format!(
            "  h{i} {{\n    version = 2\n    remote_addrs = {}\n    proposals = aes128gcm16-prfsha256-x25519\n    vips = 0.0.0.0\n    local {{\n      auth = psk\n      id = c{i}.example\n    }}\n    remote {{\n      auth = psk\n      id = gw.example\n    }}\n    children {{\n      net {{\n        remote_ts = 10.1.0.0/24\n        esp_proposals = aes128gcm16\n        start_action = start\n      }}\n    }}\n  }}\n",
            topo.gateway_addr
        );
    }
    conf += &format!(
        "}}\nsecrets {{\n  ike-gw {{\n    id-1 = gw.example\n    secret = \"{}\"\n  }}\n}}\n",
        interop::strongswan::EXAMPLE_PSK
    );
    client.load(&conf).expect("load 100 connections");

    let up = |sas: &[IkeSaInfo]| {
        sas.len() == N
            && sas
                .iter()
                .all(|s| s.state == "ESTABLISHED" && installed(s).len() == 1)
    };
    let c_sas = client
        .wait_for_sas(Duration::from_secs(90), "100 established IKE SAs", up)
        .unwrap_or_else(|e| panic!("{e}\n{}", Responder::log(&gw)));
    let mut g_sas = Vec::new();
    interop::wait_for(WAIT, "batond to list 100 IKE SAs", || {
        g_sas = Responder::list_sas(&gw)?;
        Ok(up(&g_sas).then_some(()))
    })
    .unwrap_or_else(|e| panic!("{e}: {} on batond", g_sas.len()));

    let mut vips = std::collections::BTreeSet::new();
    for c in &c_sas {
        let g = g_sas
            .iter()
            .find(|g| g.initiator_spi == c.initiator_spi)
            .unwrap_or_else(|| panic!("batond lacks {c:#?}"));
        interop::checks::views_agree(c, g).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(c.local_vips, g.remote_vips);
        assert_eq!(c.local_vips.len(), 1, "{c:#?}");
        vips.insert(c.local_vips[0].clone());
    }
    assert_eq!(vips.len(), N, "every client got its own address");
    let ids: std::collections::BTreeSet<_> = g_sas.iter().map(|g| g.remote_id.clone()).collect();
    assert_eq!(ids.len(), N);
}

/// Wireshark (tshark) decrypts the IKE_AUTH exchange of a run with the keys batond
/// wrote to its key log (`keylog`, ikev2_decryption_table lines): the initiator's
/// identity shows in the decrypted IDi payload.
#[test]
fn tshark_decrypts_ike_auth_with_batonds_key_log() {
    prerequisites();
    let tshark = std::process::Command::new("tshark")
        .arg("--version")
        .output();
    assert!(
        tshark.is_ok_and(|o| o.status.success()),
        "tshark is missing (scripts/setup installs it)"
    );
    let topo = Topology::direct().expect("topology");
    let gw = start_batond(&topo, &PskConnection::gateway(topo.gateway_addr), "");
    let capture = interop::Capture::start(&topo.gateway, gw.dir(), "ike", "eth0").expect("tcpdump");
    let pcap = capture.pcap_path().to_owned();
    let client = start_client(&topo, &PskConnection::client(topo.gateway_addr));
    client.initiate("home", "net").expect("initiate");
    let (c, _) = agree(&client, &gw);
    let wire = capture.finish().expect("capture");
    assert!(wire.iter().any(|d| d.exchange_type() == Some(35)));

    let keys = std::fs::read_to_string(gw.dir().join("ike.keys")).expect("key log");
    let line = keys
        .lines()
        .find(|l| l.starts_with(&c.initiator_spi))
        .unwrap_or_else(|| panic!("no key log line for {}: {keys}", c.initiator_spi));
    let pcap_s = pcap.to_string_lossy().into_owned();
    let run = |uat: Option<&str>| {
        let mut cmd = std::process::Command::new("tshark");
        cmd.args(["-n", "-r", &pcap_s, "-V", "-Y", "isakmp.exchangetype == 35"]);
        if let Some(u) = uat {
            cmd.args(["-o", &format!("uat:ikev2_decryption_table:{u}")]);
        }
        let out = cmd.output().expect("run tshark");
        assert!(
            out.status.success(),
            "tshark: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    // Without the keys the identities stay hidden: the check below can fail.
    let opaque = run(None);
    assert!(!opaque.contains("client.example"), "{opaque}");
    let clear = run(Some(line));
    assert!(
        clear.contains("Identification - Initiator")
            && clear.contains("Identification Data:client.example"),
        "tshark did not decrypt IDi with {line}:\n{clear}"
    );
    assert!(clear.contains("gw.example"), "{clear}");
}

/// `swanctl --terminate --child` deletes only the Child SA (INFORMATIONAL with a Delete
/// for the ESP SPI, RFC 7296 §1.4.1): batond drops it and keeps the IKE SA.
#[test]
fn child_delete_from_strongswan_keeps_the_ike_sa() {
    prerequisites();
    let topo = Topology::direct().expect("topology");
    let gw = start_batond(&topo, &PskConnection::gateway(topo.gateway_addr), "");
    let client = start_client(&topo, &PskConnection::client(topo.gateway_addr));
    client.initiate("home", "net").expect("initiate");
    let (c0, _) = agree(&client, &gw);
    client.terminate_child("net").expect("terminate child");
    let mut g = Vec::new();
    interop::wait_for(WAIT, "batond to drop the Child SA", || {
        g = Responder::list_sas(&gw)?;
        Ok((g.len() == 1 && g[0].children.is_empty()).then_some(()))
    })
    .unwrap_or_else(|e| panic!("{e}: {g:#?}"));
    assert_eq!(g[0].initiator_spi, c0.initiator_spi);
    assert_eq!(g[0].state, "ESTABLISHED");
    let c = client.list_sas().expect("list-sas");
    assert_eq!(only(&c).initiator_spi, c0.initiator_spi);
    assert!(installed(only(&c)).is_empty(), "{c:#?}");
}
