//! The `batond` command line: configuration errors exit non-zero with FILE:LINE:COL: KEY.

use std::path::Path;
use std::process::Command;

#[test]
fn check_accepts_every_bundled_example() {
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples");
    for name in [
        "gateway-psk.toml",
        "gateway-cert.toml",
        "cluster/gw1.toml",
        "cluster/gw2.toml",
        "cluster/gw3.toml",
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_batond"))
            .args(["--check", "--config"])
            .arg(examples.join(name))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(String::from_utf8_lossy(&out.stdout).contains(": OK ("));
    }
}

#[test]
fn bad_config_exits_1_with_location() {
    let dir = std::env::temp_dir().join(format!("baton-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("bad.toml");
    std::fs::write(
        &file,
        "[gateway]\nlisten = [\"127.0.0.1\"]\ncontrol_sockt = \"/tmp/x\"\n",
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_batond"))
        .arg("--config")
        .arg(&file)
        .output()
        .unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    let expected = format!(
        "batond: configuration error: {}:3:1: gateway.control_sockt: unknown field `control_sockt`",
        file.display()
    );
    assert!(err.starts_with(&expected), "{err}");
}
