//! Configuration parsing: the bundled examples parse, and every kind of error names the
//! file, the line and column, the key and what is wrong.
#![allow(clippy::panic)] // test helpers outside #[test] fns may panic on a failed expectation

use std::path::{Path, PathBuf};

use gateway::config::{DataplaneKind, GatewayConfig};
use ike::config::{IdentityPattern, LocalAuth, RemoteAuth, TsConfig};

fn examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples")
}

const BASE: &str = r#"
[gateway]
listen = ["127.0.0.1"]
dataplane = "memory"

[[connection]]
name = "rw"
local_id = "gw.example"
remote_ts = ["dynamic"]
pool = "vpn"

[[secret]]
ids = ["gw.example"]
psk = "s3cret-psk-value-that-must-not-leak"

[pool.vpn]
addrs = "10.8.0.0/24"
"#;

/// Parses `text` as `/etc/baton/test.toml` and returns the error's text.
fn error_of(text: &str) -> String {
    match GatewayConfig::parse(Path::new("/etc/baton/test.toml"), text) {
        Ok(_) => panic!("expected an error for:\n{text}"),
        Err(e) => {
            let s = e.to_string();
            assert!(!s.contains("s3cret"), "secret leaked: {s}");
            s
        }
    }
}

#[test]
fn bundled_examples_parse() {
    let psk = GatewayConfig::load(&examples().join("gateway-psk.toml")).unwrap();
    assert_eq!(psk.gateway.dataplane, DataplaneKind::Memory);
    assert_eq!((psk.gateway.ike_port, psk.gateway.natt_port), (5500, 5501));
    assert_eq!(psk.connections.len(), 1);
    let rw = &psk.connections[0];
    assert_eq!(rw.name, "rw");
    assert_eq!(rw.ike_proposals.len(), 2);
    assert_eq!(rw.remote_id, IdentityPattern::Any);
    assert_eq!(rw.remote_ts, vec![TsConfig::Dynamic]);
    assert_eq!(
        rw.rekey_time,
        Some(std::time::Duration::from_secs(4 * 3600))
    );
    assert_eq!(psk.pools[0].first.to_string(), "10.8.0.1");
    assert_eq!(
        psk.secrets[0].psk.expose(),
        b"example-only-0123456789abcdef"
    );

    let cert = GatewayConfig::load(&examples().join("gateway-cert.toml")).unwrap();
    let c = &cert.connections[0];
    match &c.local_auth {
        LocalAuth::Pubkey { cert_chain, .. } => assert_eq!(cert_chain.len(), 1),
        LocalAuth::Psk => panic!("expected pubkey"),
    }
    assert!(matches!(&c.remote_auth, RemoteAuth::Pubkey { cas } if cas.len() == 1));
    assert!(cert.gateway.keylog.is_some());

    let node = GatewayConfig::load(&examples().join("cluster/gw1.toml")).unwrap();
    let cl = node.cluster.unwrap();
    assert_eq!(cl.node, "gw1");
    assert_eq!(cl.peers.len(), 2);
    assert_eq!(cl.key_file, PathBuf::from("/tmp/baton-demo/cluster.key"));
    assert_eq!(cl.vip, node.gateway.listen);
    assert_eq!(node.secrets[0].psk.expose(), b"example-only-cluster-psk");
}

#[test]
fn minimal_config_gets_defaults() {
    let c = GatewayConfig::parse(Path::new("t.toml"), BASE).unwrap();
    assert_eq!((c.gateway.ike_port, c.gateway.natt_port), (500, 4500));
    assert_eq!(
        c.gateway.control_socket,
        PathBuf::from("/run/baton/ikectl.sock")
    );
    assert_eq!(c.connections[0].ike_proposals.len(), 3);
    assert_eq!(c.connections[0].esp_proposals.len(), 3);
    assert!(c.connections[0].fragmentation);
}

#[test]
fn syntax_error_names_line_and_column() {
    let e = error_of("[gateway]\nlisten = [\"127.0.0.1\"\n");
    assert!(e.starts_with("/etc/baton/test.toml:2:"), "{e}");
}

#[test]
fn unknown_key_is_named() {
    let text = BASE.replace(
        "dataplane = \"memory\"",
        "dataplane = \"memory\"\nlisen = [\"x\"]",
    );
    let e = error_of(&text);
    assert!(
        e.starts_with("/etc/baton/test.toml:5:1: gateway.lisen: unknown field `lisen`"),
        "{e}"
    );

    let text = BASE.replace("pool = \"vpn\"", "pool = \"vpn\"\nrekey = \"1h\"");
    let e = error_of(&text);
    assert!(
        e.starts_with("/etc/baton/test.toml:11:1: connection.rekey: unknown field `rekey`"),
        "{e}"
    );

    let e = error_of(&format!("{BASE}\n[bogus]\nx = 1\n"));
    assert!(e.contains("unknown field `bogus`"), "{e}");
}

#[test]
fn wrong_type_and_missing_key() {
    let text = BASE.replace("dataplane = \"memory\"", "ike_port = \"five hundred\"");
    let e = error_of(&text);
    assert!(
        e.starts_with("/etc/baton/test.toml:4:12: gateway.ike_port: invalid type"),
        "{e}"
    );

    let text = BASE.replace("local_id = \"gw.example\"\n", "");
    let e = error_of(&text);
    assert!(e.contains("missing field `local_id`"), "{e}");
    assert!(e.contains(": connection"), "{e}");
}

#[test]
fn unknown_pool_is_reported_at_its_key() {
    let e = error_of(&BASE.replace("pool = \"vpn\"", "pool = \"vnp\""));
    assert_eq!(
        e,
        "/etc/baton/test.toml:10:8: connection.pool: connection \"rw\" uses pool \"vnp\", \
         which is not defined (defined: vpn)"
    );
}

#[test]
fn missing_psk_is_reported() {
    let e = error_of(&BASE.replace("ids = [\"gw.example\"]", "ids = [\"other.example\"]"));
    assert_eq!(
        e,
        "/etc/baton/test.toml:8:12: connection.local_auth: connection \"rw\" authenticates \
         with a PSK but no [[secret]] lists \"gw.example\""
    );
}

#[test]
fn bad_cidr_is_reported() {
    let e = error_of(&BASE.replace("addrs = \"10.8.0.0/24\"", "addrs = \"10.8.0.1/24\""));
    assert_eq!(
        e,
        "/etc/baton/test.toml:17:9: pool.vpn.addrs: \"10.8.0.1/24\" has host bits set; \
         did you mean 10.8.0.0/24?"
    );
    let text = BASE.replace(
        "remote_ts = [\"dynamic\"]",
        "local_ts = [\"10.1.0.0/40\"]\nremote_ts = [\"dynamic\"]",
    );
    let e = error_of(&text);
    assert!(
        e.starts_with("/etc/baton/test.toml:9:13: connection.local_ts: "),
        "{e}"
    );
    assert!(e.contains("prefix length must be 0..=32"), "{e}");
}

#[test]
fn missing_cert_file_is_reported() {
    let text = BASE.replace(
        "local_id = \"gw.example\"",
        "local_id = \"gw.example\"\nlocal_auth = \"pubkey\"\nlocal_cert = \"nope.pem\"\nlocal_key = \"nope.key\"",
    );
    let e = error_of(&text);
    assert!(
        e.starts_with(
            "/etc/baton/test.toml:10:14: connection.local_cert: cannot read /etc/baton/nope.pem"
        ),
        "{e}"
    );
}

#[test]
fn bad_values_are_reported() {
    let e = error_of(&BASE.replace("pool = \"vpn\"", "pool = \"vpn\"\nrekey_time = \"4 hours\""));
    assert!(
        e.starts_with("/etc/baton/test.toml:11:14: connection.rekey_time: invalid duration"),
        "{e}"
    );
    let e = error_of(&BASE.replace("dataplane = \"memory\"", "dataplane = \"dpdk\""));
    assert!(
        e.contains("gateway.dataplane: unknown data plane \"dpdk\""),
        "{e}"
    );
    let e = error_of(&BASE.replace(
        "local_id = \"gw.example\"",
        "local_id = \"gw.example\"\nproposals = [\"aes128gcm16-sha999\"]",
    ));
    assert!(
        e.starts_with("/etc/baton/test.toml:9:14: connection.proposals: unknown algorithm \"sha999\" in proposal"),
        "{e}"
    );
    let e = error_of(&BASE.replace("listen = [\"127.0.0.1\"]", "listen = [\"127.0.0.300\"]"));
    assert!(
        e.starts_with(
            "/etc/baton/test.toml:3:11: gateway.listen: \"127.0.0.300\" is not an IP address"
        ),
        "{e}"
    );
}

#[test]
fn psk_never_appears_in_errors_or_debug() {
    // A PSK of the wrong type: the message must not echo the value.
    let e = error_of(&BASE.replace(
        "psk = \"s3cret-psk-value-that-must-not-leak\"",
        "psk = [\"s3cret\"]",
    ));
    assert!(e.contains("secret.psk: must be a string"), "{e}");
    let e = error_of(&BASE.replace(
        "psk = \"s3cret-psk-value-that-must-not-leak\"",
        "psk = \"0xs3cret\"",
    ));
    assert!(
        e.contains("secret.psk: 0x... must be followed by hex digits"),
        "{e}"
    );
    let c = GatewayConfig::parse(Path::new("t.toml"), BASE).unwrap();
    let dbg = format!("{c:?}");
    assert!(!dbg.contains("s3cret"), "Debug leaks the PSK");
}

#[test]
fn unreadable_file_is_reported() {
    let e = GatewayConfig::load(Path::new("/nonexistent/baton.toml"))
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with("/nonexistent/baton.toml: cannot read the configuration file"),
        "{e}"
    );
}

#[test]
fn cluster_vip_must_be_bound_by_every_node() {
    let cluster = "\n[cluster]\nnode = \"gw1\"\nlisten = \"127.0.0.1:4510\"\nkey_file = \"k\"\n";
    let e = error_of(&format!("{BASE}{cluster}vip = [\"192.0.2.1\"]\n"));
    assert!(
        e.contains(":23:8: cluster.vip: 192.0.2.1 is not in gateway.listen"),
        "{e}"
    );
    let ok = GatewayConfig::parse(
        Path::new("t.toml"),
        &format!("{BASE}{cluster}vip = [\"127.0.0.1\"]\n"),
    )
    .unwrap();
    assert_eq!(ok.cluster.unwrap().vip.len(), 1);
}

#[test]
fn cluster_rates_default_and_lazy_sync() {
    let cluster = "\n[cluster]\nnode = \"gw1\"\nlisten = \"127.0.0.1:4510\"\nkey_file = \"k\"\n";
    let c = GatewayConfig::parse(Path::new("t.toml"), &format!("{BASE}{cluster}"))
        .unwrap()
        .cluster
        .unwrap();
    assert_eq!((c.sync_rate, c.transfer_rate), (Some(2_000), 1_000));
    let lazy = GatewayConfig::parse(
        Path::new("t.toml"),
        &format!("{BASE}{cluster}sync_rate = 0\ntransfer_rate = 50\n"),
    )
    .unwrap()
    .cluster
    .unwrap();
    assert_eq!((lazy.sync_rate, lazy.transfer_rate), (None, 50));
    let e = error_of(&format!("{BASE}{cluster}transfer_rate = 0\n"));
    assert!(
        e.contains("cluster.transfer_rate: must be 1..=1000000"),
        "{e}"
    );
}
