//! The runbook's demo (docs/operations.md "Try it on one machine") works as written:
//! `examples/cluster/demo.sh` with this build's batond and ikectl brings up three nodes
//! behind one VIP, a strongSwan client connects, the owner is killed with SIGKILL, and
//! another node carries the same IKE SA on after an RFC 6311 Message ID sync that
//! strongSwan answered; the killed node comes back and the SA still has one owner.
//!
//! Needs root, iproute2 and strongSwan (scripts/setup); fails (does not skip) without them.

// Test helpers outside #[test] functions: a failed step is a failed test.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

fn demo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/cluster/demo.sh")
}

fn run(args: &[&str]) -> String {
    let bin = Path::new(env!("CARGO_BIN_EXE_batond"))
        .parent()
        .unwrap()
        .to_path_buf();
    let out = Command::new("sh")
        .arg(demo())
        .args(args)
        .env("BATON_BIN", &bin)
        .output()
        .expect("run demo.sh");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "demo.sh {args:?} failed:\n{text}");
    text
}

/// Stops the demo even when an assertion fails.
struct Down;

impl Drop for Down {
    fn drop(&mut self) {
        let _ = Command::new("sh")
            .arg(demo())
            .arg("down")
            .env(
                "BATON_BIN",
                Path::new(env!("CARGO_BIN_EXE_batond")).parent().unwrap(),
            )
            .output();
    }
}

/// (IKE SA id, owner) of every ESTABLISHED row in `demo.sh status`.
fn owners(status: &str) -> Vec<(String, String)> {
    status
        .lines()
        .filter(|l| l.contains("ESTABLISHED"))
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f[0].to_owned(), f[f.len() - 1].to_owned())
        })
        .collect()
}

fn wait_status(what: &str, ok: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let s = run(&["status"]);
        if ok(&s) {
            return s;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}:\n{s}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn runbook_demo_fails_over_without_renegotiation() {
    if let Err(e) = interop::check_prerequisites() {
        panic!("{e}");
    }
    let _ = run(&["down"]);
    let _down = Down;
    let up = run(&["up"]);
    assert!(up.contains("started gw3"), "{up}");
    wait_status("three live, connected members on every node", |s| {
        s.matches("gw3 (this node)  up").count() == 1 && !s.contains("disconnected")
    });

    let client = run(&["client"]);
    assert!(
        client.contains("initiate completed successfully"),
        "{client}"
    );
    let before = wait_status("the client's IKE SA", |s| owners(s).len() == 1);
    let (id, owner) = owners(&before).remove(0);

    run(&["kill", &owner]);
    let after = wait_status("a takeover answered by strongSwan", |s| {
        s.contains("RFC 6311 syncs 1 started / 1 answered")
            && owners(s).iter().any(|(i, o)| *i == id && *o != owner)
    });
    assert!(after.contains("takeovers 1"), "{after}");
    assert_eq!(owners(&after).len(), 1, "one owner only:\n{after}");

    // The client kept its IKE SA: one IKE_SA_INIT in its whole log.
    let log = std::fs::read_to_string("/tmp/baton-demo/client/charon.log").unwrap();
    assert_eq!(
        log.matches("generating IKE_SA_INIT request").count(),
        1,
        "the client renegotiated:\n{log}"
    );
    assert!(log.contains("responder requested MID sync"), "{log}");

    // The killed node comes back; the SA keeps exactly one owner.
    run(&["start", &owner]);
    let back = wait_status("the restarted node live again, one owner", |s| {
        !s.contains("down ") && !s.contains("disconnected") && owners(s).len() == 1
    });
    let o = owners(&back);
    assert_eq!(o.len(), 1, "{back}");
    assert_eq!(o[0].0, id);
}
