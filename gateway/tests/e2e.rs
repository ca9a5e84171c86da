//! End to end: batond (ike::endpoint, memory data plane) on loopback UDP, and a client
//! built from ike's initiator.
#![allow(clippy::panic, clippy::unwrap_used)] // test helpers outside #[test] fns may panic on a failed expectation

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::{TempDir, ctl, drive, write_config};
use gateway::config::GatewayConfig;
use gateway::control::{IkeSaView, Request};
use gateway::daemon;
use ike::endpoint::{Endpoint, EndpointConfig, SaEvent};
use ike::initiator::InitiatorOptions;

const CLIENT: &str = r#"
[gateway]
listen = ["127.0.0.1"]
dataplane = "memory"

[[connection]]
name = "home"
proposals = ["aes128gcm16-prfsha256-x25519"]
esp_proposals = ["aes128gcm16"]
local_id = "client.example"
remote_id = "gw.example"
local_ts = ["dynamic"]
remote_ts = ["10.1.0.0/24"]

[[secret]]
ids = ["client.example", "gw.example"]
psk = "test-psk-0123456789"
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_establishes_an_sa_that_ikectl_lists_and_terminates() {
    let dir = TempDir::new("e2e");
    let cfg = write_config(&dir.0, false);
    let h = daemon::start(&cfg, None).await.unwrap();
    let gw = h.udp[0];

    // Hostile input first: nothing of it may stop the daemon or disturb what follows.
    let junk = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let natt = h.udp[1];
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    for i in 0..2000usize {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let len = (seed % 600) as usize;
        let mut d: Vec<u8> = (0..len)
            .map(|k| (seed >> (k % 56)) as u8 ^ k as u8)
            .collect();
        if i % 3 == 0 && d.len() >= 28 {
            d[17] = 0x20; // IKEv2 version
            d[18] = 34 + (i % 4) as u8; // a real exchange type
        }
        let to = if i % 2 == 0 { gw } else { natt };
        if to == natt && i % 4 == 1 && d.len() >= 4 {
            d[..4].copy_from_slice(&[0; 4]); // non-ESP marker: reaches the core
        }
        junk.send_to(&d, to).await.unwrap();
    }
    let st = ctl(&h.control_socket, Request::Status).await.unwrap();
    assert_eq!(st["ike_sas"].as_u64(), Some(0), "{st}");

    let c = GatewayConfig::parse(Path::new("client.toml"), CLIENT).unwrap();
    let mut ec = EndpointConfig::new(&ike::crypto::DEFAULT_PROVIDER);
    ec.connections = c.connections.clone();
    ec.secrets = c.secrets.clone();
    let now = Instant::now();
    let mut client = Endpoint::new(ec, now);
    let sock = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let local = sock.local_addr().unwrap();
    let opts = InitiatorOptions {
        request_virtual_ip: true,
        ..Default::default()
    };
    client
        .initiate(now, "home", local, gw, opts)
        .expect("initiate");
    let events = drive(&mut client, &sock, |e| {
        matches!(
            e,
            SaEvent::IkeUp { .. } | SaEvent::InitiationFailed { .. } | SaEvent::AuthFailed { .. }
        )
    })
    .await;
    assert!(
        matches!(events.last(), Some(SaEvent::IkeUp { .. })),
        "{events:?}"
    );

    let sas: Vec<IkeSaView> =
        serde_json::from_value(ctl(&h.control_socket, Request::ListSas).await.unwrap()).unwrap();
    assert_eq!(sas.len(), 1, "{sas:?}");
    let sa = &sas[0];
    assert_eq!((sa.connection.as_str(), sa.owner.as_str()), ("rw", "local"));
    assert_eq!(sa.remote_id, "client.example");
    assert_eq!(sa.remote_addr, local.to_string());
    assert_eq!(sa.virtual_ip.as_deref(), Some("10.8.0.1"));
    assert_eq!(sa.children.len(), 1);
    assert_eq!(sa.children[0].local_ts, vec!["10.1.0.0/24"]);
    assert_eq!(sa.children[0].remote_ts, vec!["10.8.0.1/32"]);
    let st = ctl(&h.control_socket, Request::Status).await.unwrap();
    assert_eq!(
        (st["ike_sas"].as_u64(), st["child_sas"].as_u64()),
        (Some(1), Some(1))
    );
    // The key log got this IKE SA's keys.
    let keys = std::fs::read_to_string(dir.0.join("ike.keys")).unwrap();
    assert_eq!(keys.lines().count(), 1, "{keys}");

    // Metrics count the real core's events.
    let addr = h.metrics.unwrap();
    let body = tokio::task::spawn_blocking(move || {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(addr).unwrap();
        s.write_all(b"GET /metrics HTTP/1.1\r\n\r\n").unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        out
    })
    .await
    .unwrap();
    for line in [
        "baton_ike_sas_established_total 1\n",
        "baton_ike_sas 1\n",
        "baton_child_sas 1\n",
    ] {
        assert!(body.contains(line), "metrics lack {line:?}:\n{body}");
    }
    assert!(body.contains("baton_exchanges_total{exchange="), "{body}");
    assert!(
        body.contains("baton_dropped_total{reason="),
        "the junk was counted: {body}"
    );

    // A reload keeps the established SA.
    let text = std::fs::read_to_string(&cfg).unwrap();
    std::fs::write(
        &cfg,
        format!("{text}\n[[connection]]\nname = \"site\"\nlocal_id = \"gw.example\"\n"),
    )
    .unwrap();
    ctl(&h.control_socket, Request::Reload).await.unwrap();
    let after: Vec<IkeSaView> =
        serde_json::from_value(ctl(&h.control_socket, Request::ListSas).await.unwrap()).unwrap();
    assert_eq!(
        after.iter().map(|s| &s.id).collect::<Vec<_>>(),
        vec![&sa.id],
        "reload dropped the SA"
    );

    // terminate: the gateway sends a Delete, the client answers, the SA is gone.
    ctl(&h.control_socket, Request::Terminate { sa: sa.id.clone() })
        .await
        .unwrap();
    let events = drive(&mut client, &sock, |e| matches!(e, SaEvent::IkeDown { .. })).await;
    assert!(
        matches!(events.last(), Some(SaEvent::IkeDown { .. })),
        "{events:?}"
    );
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let sas = ctl(&h.control_socket, Request::ListSas).await.unwrap();
        let st = ctl(&h.control_socket, Request::Status).await.unwrap();
        if sas.as_array().is_some_and(Vec::is_empty) && st["dataplane_sas"].as_u64() == Some(0) {
            break;
        }
        assert!(Instant::now() < deadline, "SA still listed: {sas}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificate_authentication_with_the_bundled_example() {
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples");
    let dir = TempDir::new("e2e-cert");
    let (ike, natt) = common::free_udp_ports();
    let text = std::fs::read_to_string(examples.join("gateway-cert.toml")).unwrap();
    let text = text
        .replace("ike_port = 5510", &format!("ike_port = {ike}"))
        .replace("natt_port = 5511", &format!("natt_port = {natt}"))
        .replace(
            "/tmp/baton-example-cert.sock",
            &dir.0.join("ctl.sock").display().to_string(),
        )
        .replace(
            "/tmp/baton-example-cert.keys",
            &dir.0.join("ike.keys").display().to_string(),
        )
        .replace(
            "\"certs/",
            &format!("\"{}/", examples.join("certs").display()),
        );
    let cfg = dir.0.join("gw.toml");
    std::fs::write(&cfg, text).unwrap();
    let h = daemon::start(&cfg, None).await.unwrap();

    let certs = examples.join("certs");
    let client_toml = format!(
        r#"
[gateway]
listen = ["127.0.0.1"]
dataplane = "memory"

[[connection]]
name = "home"
proposals = ["aes256gcm16-prfsha384-ecp384"]
esp_proposals = ["aes256gcm16"]
local_id = "client.example"
local_auth = "pubkey"
local_cert = "{c}/client.pem"
local_key = "{c}/client.key"
remote_id = "gw.example"
remote_auth = "pubkey"
remote_ca = "{c}/ca.pem"
local_ts = ["dynamic"]
remote_ts = ["0.0.0.0/0"]
"#,
        c = certs.display()
    );
    let c = GatewayConfig::parse(Path::new("client.toml"), &client_toml).unwrap();
    let mut ec = EndpointConfig::new(&ike::crypto::DEFAULT_PROVIDER);
    ec.connections = c.connections.clone();
    let now = Instant::now();
    let mut client = Endpoint::new(ec, now);
    client.set_wall_clock(now, std::time::SystemTime::now());
    let sock = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let local = sock.local_addr().unwrap();
    let opts = InitiatorOptions {
        request_virtual_ip: true,
        ..Default::default()
    };
    client
        .initiate(now, "home", local, h.udp[0], opts)
        .expect("initiate");
    let events = drive(&mut client, &sock, |e| {
        matches!(
            e,
            SaEvent::IkeUp { .. } | SaEvent::InitiationFailed { .. } | SaEvent::AuthFailed { .. }
        )
    })
    .await;
    assert!(
        matches!(events.last(), Some(SaEvent::IkeUp { .. })),
        "{events:?}"
    );
    let sas: Vec<IkeSaView> =
        serde_json::from_value(ctl(&h.control_socket, Request::ListSas).await.unwrap()).unwrap();
    assert_eq!(sas.len(), 1, "{sas:?}");
    assert_eq!(sas[0].connection, "rw-cert");
    assert_eq!(sas[0].remote_id, "client.example");
    assert_eq!(sas[0].virtual_ip.as_deref(), Some("10.9.0.1"));
    h.shutdown().await;
}
