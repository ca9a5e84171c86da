//! The host side shared by the real-kernel test binaries (`esp_vm`, `cluster_vm`,
//! `rfc6311_vm`): one guest boot of interop/vm/run-in-vm runs the binary's guest test,
//! which prints `<PREFIX> <check> PASS` or `<PREFIX> <check> FAIL` ... `<PREFIX>-END
//! <check>` per check; each host test then looks up its own check's verdict.

use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::Command;
use std::time::Instant;

/// What one guest run printed.
pub(crate) struct VmRun {
    /// stdout and stderr.
    pub(crate) text: String,
    /// The guest run's exit status was success.
    pub(crate) success: bool,
    /// How long the run took.
    pub(crate) secs: f64,
}

/// These tests need root (network namespaces, XFRM, qemu), as CI runs them.
pub(crate) fn require_root() {
    let euid = std::fs::metadata("/proc/self")
        .map(|m| m.uid())
        .unwrap_or(u32::MAX);
    assert_eq!(
        euid, 0,
        "this test needs root (network namespaces, XFRM, qemu); run the tests as root, as CI does"
    );
}

/// Boots the guest with `vm_args` (before `--`) and runs this binary's test
/// `guest_test` inside it with the environment `env` (`NAME=value`).
pub(crate) fn boot(label: &str, vm_args: &[String], env: &[String], guest_test: &str) -> VmRun {
    require_root();
    let exe = std::env::current_exe().expect("the test binary's path");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../interop/vm/run-in-vm");
    let start = Instant::now();
    let out = Command::new(&script)
        .args(vm_args)
        .args(["--", "env"])
        .args(env)
        .arg(&exe)
        .args(["--exact", guest_test, "--nocapture", "--test-threads=1"])
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", script.display()));
    let secs = start.elapsed().as_secs_f64();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    println!("{label}: the guest run took {secs:.1} s ({})", out.status);
    VmRun {
        text,
        success: out.status.success(),
        secs,
    }
}

/// Passes if the guest printed `<prefix> <name> PASS`; otherwise fails with the
/// check's own failure text (or the whole output if it never reported).
pub(crate) fn expect_check(run: &VmRun, prefix: &str, name: &str) {
    let pass = format!("{prefix} {name} PASS");
    if let Some(line) = run.text.lines().find(|l| l.contains(&pass)) {
        println!("{line} (guest run {:.1} s)", run.secs);
        return;
    }
    let begin = format!("{prefix} {name} FAIL");
    let end = format!("{prefix}-END {name}");
    if let Some(i) = run.text.find(&begin) {
        let rest = &run.text[i..];
        let detail = rest.find(&end).map_or(rest, |j| &rest[..j]);
        panic!("{detail}");
    }
    panic!(
        "check {name} did not report (guest run {:.1} s, success {}); guest output:\n{}",
        run.secs, run.success, run.text
    );
}
