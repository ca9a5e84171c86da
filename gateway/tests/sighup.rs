//! SIGHUP reloads the configuration (in its own test binary: the signal goes to the
//! whole process).

mod common;

use std::time::Duration;

use common::{ScriptedCore, TempDir, ctl, sample_sa, write_config};
use gateway::control::{IkeSaView, Request, StatusView};
use gateway::daemon;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reloads_and_keeps_sas() {
    let dir = TempDir::new("hup");
    let cfg = write_config(&dir.0, false);
    let (core, seen) = ScriptedCore::new(vec![sample_sa("aaaa000000000001")]);
    let h = daemon::start(&cfg, Some(Box::new(core))).await.unwrap();
    let text = std::fs::read_to_string(&cfg).unwrap();
    std::fs::write(
        &cfg,
        format!("{text}\n[[connection]]\nname = \"site\"\nlocal_id = \"gw.example\"\n"),
    )
    .unwrap();

    // `kill` as the shell builtin, so no procps is needed.
    let status = std::process::Command::new("sh")
        .args(["-c", &format!("kill -HUP {}", std::process::id())])
        .status()
        .unwrap();
    assert!(status.success());

    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let st: StatusView =
            serde_json::from_value(ctl(&h.control_socket, Request::Status).await.unwrap()).unwrap();
        if st.reloads == 1 {
            assert_eq!(st.connections, vec!["rw", "site"]);
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "SIGHUP did not reload within 10 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(seen.lock().unwrap().reconfigured.len(), 1);
    let sas: Vec<IkeSaView> =
        serde_json::from_value(ctl(&h.control_socket, Request::ListSas).await.unwrap()).unwrap();
    assert_eq!(sas.len(), 1, "established SAs survive a reload");
    h.shutdown().await;
}
