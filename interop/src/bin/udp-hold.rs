//! `udp-hold ADDR:PORT...` or `udp-hold --config FILE`: binds UDP sockets, prints
//! `bound`, and holds them until killed. A stand-in for a responder process when
//! testing the harness itself (it needs nothing beyond the Rust standard library).
//! With `--config`, it reads the first `listen = ["ADDR"]` line of a batond-style
//! TOML file and binds ADDR:500 and ADDR:4500, as batond would.

use std::net::UdpSocket;
use std::process::ExitCode;

fn addrs_from_config(path: &str) -> Result<Vec<String>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{path}: {e}"))?;
    let addr = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("listen = [\""))
        .and_then(|rest| rest.split('"').next())
        .ok_or_else(|| format!("{path}: no `listen = [\"ADDR\"]` line"))?;
    Ok(vec![format!("{addr}:500"), format!("{addr}:4500")])
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let addrs = match args.as_slice() {
        [flag, path] if flag == "--config" => match addrs_from_config(path) {
            Ok(a) => a,
            Err(e) => {
                eprintln!("udp-hold: {e}");
                return ExitCode::from(2);
            }
        },
        [] => {
            eprintln!("usage: udp-hold ADDR:PORT... | udp-hold --config FILE");
            return ExitCode::from(2);
        }
        _ => args,
    };
    let mut sockets = Vec::new();
    for a in &addrs {
        match UdpSocket::bind(a) {
            Ok(s) => sockets.push(s),
            Err(e) => {
                eprintln!("udp-hold: bind {a}: {e}");
                return ExitCode::FAILURE;
            }
        }
    }
    println!("bound {}", addrs.join(" "));
    loop {
        std::thread::park();
    }
}
