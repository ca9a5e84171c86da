//! batond in-process: the control protocol, ikectl, reload, the NAT-T framing of the
//! effect executor, the key log and metrics, on loopback with random ports.

#![allow(clippy::panic)] // a missing prerequisite fails with a message

mod common;

use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use common::{ScriptedCore, TempDir, ctl, sample_sa, write_config};
use gateway::control::{IkeSaView, Request, StatusView};
use gateway::daemon;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn control_protocol_round_trip() {
    let dir = TempDir::new("ctl");
    let cfg = write_config(&dir.0, false);
    let (core, seen) = ScriptedCore::new(vec![
        sample_sa("aaaa000000000001"),
        sample_sa("bbbb000000000002"),
    ]);
    let h = daemon::start(&cfg, Some(Box::new(core))).await.unwrap();
    let sock = h.control_socket.clone();

    let mode = std::fs::metadata(&sock).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "control socket must be 0600");

    let st: StatusView =
        serde_json::from_value(ctl(&sock, Request::Status).await.unwrap()).unwrap();
    assert_eq!(st.connections, vec!["rw"]);
    assert_eq!(st.dataplane, "memory");
    assert_eq!((st.ike_sas, st.child_sas), (2, 2));
    assert_eq!(st.node, "local");
    assert_eq!(st.listen.len(), 2);

    let sas: Vec<IkeSaView> =
        serde_json::from_value(ctl(&sock, Request::ListSas).await.unwrap()).unwrap();
    assert_eq!(sas.len(), 2);
    assert!(
        sas.iter().all(|s| s.owner == "local"),
        "owner is filled in by the daemon"
    );

    // A unique prefix selects one SA; an unknown or ambiguous one is refused.
    let one: IkeSaView = serde_json::from_value(
        ctl(&sock, Request::Show { sa: "BBBB".into() })
            .await
            .unwrap(),
    )
    .unwrap();
    assert_eq!(one.id, "bbbb000000000002");
    let e = ctl(&sock, Request::Show { sa: "cccc".into() })
        .await
        .unwrap_err();
    assert_eq!(e, "no IKE SA \"cccc\" (see ikectl list-sas)");
    let e = ctl(
        &sock,
        Request::Show {
            sa: "aaaa0000000000019".into(),
        },
    )
    .await
    .unwrap_err();
    assert!(e.starts_with("no IKE SA"), "{e}");

    ctl(
        &sock,
        Request::Terminate {
            sa: "aaaa000000000001".into(),
        },
    )
    .await
    .unwrap();
    assert_eq!(seen.lock().unwrap().terminated, vec!["aaaa000000000001"]);
    let e = ctl(&sock, Request::Terminate { sa: "dddd".into() })
        .await
        .unwrap_err();
    assert!(e.contains("no IKE SA \"dddd\""), "{e}");

    for req in [
        Request::Cluster,
        Request::Transfer {
            sa: "aaaa".into(),
            to: "gw2".into(),
        },
        Request::Drain { node: "gw2".into() },
    ] {
        let e = ctl(&sock, req).await.unwrap_err();
        assert!(e.starts_with("not in a cluster"), "{e}");
    }

    // Malformed requests get an error line and the connection stays usable.
    let sock2 = sock.clone();
    let answers = tokio::task::spawn_blocking(move || {
        let mut s = std::os::unix::net::UnixStream::connect(&sock2).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        s.write_all(b"not json\n{\"cmd\":\"status\"}\n").unwrap();
        s.shutdown(std::net::Shutdown::Write).unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        out
    })
    .await
    .unwrap();
    let lines: Vec<&str> = answers.lines().collect();
    assert_eq!(lines.len(), 2, "{answers}");
    assert!(
        lines[0].starts_with("{\"ok\":false,\"error\":\"invalid request"),
        "{}",
        lines[0]
    );
    assert!(lines[1].starts_with("{\"ok\":true"), "{}", lines[1]);

    h.shutdown().await;
    assert!(!sock.exists(), "control socket removed on shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ikectl_json_list_sas_has_the_contract_fields() {
    let dir = TempDir::new("ikectl");
    let cfg = write_config(&dir.0, false);
    let (core, _) = ScriptedCore::new(vec![sample_sa("aaaa000000000001")]);
    let h = daemon::start(&cfg, Some(Box::new(core))).await.unwrap();
    let sock = h.control_socket.clone();
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_ikectl"))
            .args(["--socket", sock.to_str().unwrap(), "list-sas", "--json"])
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let sa = &v.as_array().unwrap()[0];
    // DESIGN §5: the fields tests and operators rely on.
    for k in [
        "id",
        "connection",
        "state",
        "local_id",
        "remote_id",
        "local_addr",
        "remote_addr",
        "spi_i",
        "spi_r",
        "owner",
        "children",
    ] {
        assert!(sa.get(k).is_some(), "list-sas --json lacks {k}: {sa}");
    }
    assert_eq!(sa["owner"], "local");
    let child = &sa["children"][0];
    for k in [
        "name",
        "spi_in",
        "spi_out",
        "local_ts",
        "remote_ts",
        "state",
    ] {
        assert!(child.get(k).is_some(), "child lacks {k}: {child}");
    }
    assert_eq!(child["local_ts"][0], "10.1.0.0/24");

    // Human output: a table with a header and one row.
    let sock = h.control_socket.clone();
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_ikectl"))
            .args(["--socket", sock.to_str().unwrap(), "list-sas"])
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.starts_with("ID "), "{text}");
    assert!(text.contains("aaaa000000000001  rw"), "{text}");

    // An unknown SA: message and exit status 1.
    let sock = h.control_socket.clone();
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_ikectl"))
            .args(["--socket", sock.to_str().unwrap(), "show", "ffff"])
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "ikectl: no IKE SA \"ffff\" (see ikectl list-sas)\n"
    );
    h.shutdown().await;
}

#[test]
fn ikectl_without_a_daemon_fails_clearly() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_ikectl"))
        .args(["--socket", "/nonexistent/baton.sock", "status"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.starts_with("ikectl: cannot connect to batond at /nonexistent/baton.sock"),
        "{err}"
    );
    assert!(err.contains("is batond running?"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_keeps_sas_and_rejects_bad_config() {
    let dir = TempDir::new("reload");
    let cfg = write_config(&dir.0, false);
    let (core, seen) = ScriptedCore::new(vec![sample_sa("aaaa000000000001")]);
    let h = daemon::start(&cfg, Some(Box::new(core))).await.unwrap();
    let sock = h.control_socket.clone();

    // Add a connection and reload: the core is reconfigured, the SA is still there.
    let text = std::fs::read_to_string(&cfg).unwrap();
    std::fs::write(
        &cfg,
        format!("{text}\n[[connection]]\nname = \"site\"\nlocal_id = \"gw.example\"\n"),
    )
    .unwrap();
    let r = ctl(&sock, Request::Reload).await.unwrap();
    assert_eq!(r["connections"], serde_json::json!(["rw", "site"]));
    assert_eq!(
        seen.lock().unwrap().reconfigured,
        vec![vec!["rw".to_owned(), "site".to_owned()]]
    );
    let sas: Vec<IkeSaView> =
        serde_json::from_value(ctl(&sock, Request::ListSas).await.unwrap()).unwrap();
    assert_eq!(sas.len(), 1);

    // A broken file: the error names file:line:key, and the running config stays.
    let good = std::fs::read_to_string(&cfg).unwrap();
    std::fs::write(&cfg, good.replace("pool = \"vpn\"", "pool = \"nope\"")).unwrap();
    let e = ctl(&sock, Request::Reload).await.unwrap_err();
    let canonical = std::fs::canonicalize(&cfg).unwrap();
    let expected_prefix = format!(
        "reload failed, keeping the running configuration: {}:",
        canonical.display()
    );
    assert!(e.starts_with(&expected_prefix), "{e}");
    assert!(
        e.contains(": connection.pool: connection \"rw\" uses pool \"nope\""),
        "{e}"
    );
    let st: StatusView =
        serde_json::from_value(ctl(&sock, Request::Status).await.unwrap()).unwrap();
    assert_eq!(st.connections, vec!["rw", "site"]);
    assert_eq!(st.reloads, 1);
    assert_eq!(
        seen.lock().unwrap().reconfigured.len(),
        1,
        "a bad file never reaches the core"
    );
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn natt_framing_keylog_and_metrics() {
    let dir = TempDir::new("natt");
    let cfg = write_config(&dir.0, false);
    let (core, seen) = ScriptedCore::new(Vec::new());
    let h = daemon::start(&cfg, Some(Box::new(core))).await.unwrap();
    let (ike, natt) = (h.udp[0], h.udp[1]);
    let peer = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let mut buf = [0u8; 2048];

    // Port 500: the message goes to the core as is and comes back as is.
    peer.send_to(b"hello-ike", ike).await.unwrap();
    let (n, from) = tokio::time::timeout(Duration::from_secs(5), peer.recv_from(&mut buf))
        .await
        .unwrap()
        .unwrap();
    assert_eq!((&buf[..n], from), (&b"hello-ike"[..], ike));

    // Port 4500: keepalives and ESP-in-UDP never reach the core; IKE loses its marker
    // on the way in and gets it back on the way out (RFC 3948 §2.2).
    peer.send_to(&[0xff], natt).await.unwrap();
    peer.send_to(&[0x12, 0x34, 0x56, 0x78, 0, 0, 0, 1], natt)
        .await
        .unwrap();
    peer.send_to(&[0, 0, 0, 0, b'n', b'a', b't'], natt)
        .await
        .unwrap();
    let (n, from) = tokio::time::timeout(Duration::from_secs(5), peer.recv_from(&mut buf))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (&buf[..n], from),
        (&[0u8, 0, 0, 0, b'n', b'a', b't'][..], natt)
    );

    // Garbage is dropped by the core and the daemon keeps answering.
    peer.send_to(b"garbage", ike).await.unwrap();
    let st = ctl(&h.control_socket, Request::Status).await.unwrap();
    assert_eq!(st["ike_sas"], 0);
    {
        let seen = seen.lock().unwrap();
        let payloads: Vec<&[u8]> = seen.datagrams.iter().map(|d| d.2.as_slice()).collect();
        assert_eq!(payloads, vec![&b"hello-ike"[..], b"nat", b"garbage"]);
        assert_eq!(seen.datagrams[1].0, natt);
    }

    // Key log: one line per echoed message, file mode 0600.
    let keylog = dir.0.join("ike.keys");
    let text = std::fs::read_to_string(&keylog).unwrap();
    assert_eq!(
        text,
        format!(
            "{} key line\n{} key line\n",
            hex::encode("hello-ike"),
            hex::encode("nat")
        )
    );
    assert_eq!(
        std::fs::metadata(&keylog).unwrap().permissions().mode() & 0o777,
        0o600
    );

    // Metrics over HTTP.
    let addr = h.metrics.unwrap();
    let body = tokio::task::spawn_blocking(move || {
        let mut s = std::net::TcpStream::connect(addr).unwrap();
        s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
            .unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        out
    })
    .await
    .unwrap();
    assert!(body.starts_with("HTTP/1.1 200 OK"), "{body}");
    for line in [
        "baton_build_info{version=\"0.1.0\"} 1",
        "baton_datagrams_received_total{port=\"ike\"} 2",
        "baton_datagrams_received_total{port=\"natt\"} 3",
        "baton_datagrams_ignored_total{reason=\"nat_keepalive\"} 1",
        "baton_datagrams_ignored_total{reason=\"esp_in_udp\"} 1",
        "baton_datagrams_sent_total{port=\"natt\"} 1",
        "baton_exchanges_total{exchange=\"IKE_SA_INIT\"} 2",
        "baton_dropped_total{reason=\"invalid_syntax\"} 1",
    ] {
        assert!(body.contains(line), "metrics lack {line}:\n{body}");
    }
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_reports_port_in_use() {
    let dir = TempDir::new("inuse");
    let cfg = write_config(&dir.0, false);
    let text = std::fs::read_to_string(&cfg).unwrap();
    let port: u16 = text
        .lines()
        .find_map(|l| l.strip_prefix("ike_port = "))
        .unwrap()
        .parse()
        .unwrap();
    let _squatter = std::net::UdpSocket::bind(("127.0.0.1", port)).unwrap();
    let e = daemon::start(&cfg, None).await.unwrap_err().to_string();
    assert!(
        e.starts_with(&format!("cannot bind UDP 127.0.0.1:{port}: ")),
        "{e}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ipv6_and_ipv4_listen_addresses_answer_from_their_own_socket() {
    let dir = TempDir::new("v6");
    let cfg = write_config(&dir.0, false);
    let text = std::fs::read_to_string(&cfg).unwrap();
    std::fs::write(
        &cfg,
        text.replace(
            "listen = [\"127.0.0.1\"]",
            "listen = [\"127.0.0.1\", \"::1\"]",
        ),
    )
    .unwrap();
    let (core, _) = ScriptedCore::new(Vec::new());
    let h = match daemon::start(&cfg, Some(Box::new(core))).await {
        Ok(h) => h,
        Err(e) => {
            panic!("binding [::1] failed ({e}); this test needs IPv6 on the loopback interface")
        }
    };
    assert_eq!(
        h.udp.len(),
        4,
        "IKE and NAT-T ports on each of the two addresses: {:?}",
        h.udp
    );
    let v6_ike = h
        .udp
        .iter()
        .find(|a| a.is_ipv6() && a.port() == h.udp[0].port())
        .copied()
        .unwrap();
    let peer = tokio::net::UdpSocket::bind("[::1]:0").await.unwrap();
    peer.send_to(b"over-ipv6", v6_ike).await.unwrap();
    let mut buf = [0u8; 64];
    let (n, from) = tokio::time::timeout(Duration::from_secs(5), peer.recv_from(&mut buf))
        .await
        .unwrap()
        .unwrap();
    assert_eq!((&buf[..n], from), (&b"over-ipv6"[..], v6_ike));
    h.shutdown().await;
}
