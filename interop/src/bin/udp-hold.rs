//! `udp-hold ADDR:PORT...`: binds each UDP address, prints `bound`, and holds the
//! sockets until killed. A stand-in for a responder process when testing the harness
//! itself (it needs nothing beyond the Rust standard library).

use std::net::UdpSocket;
use std::process::ExitCode;

fn main() -> ExitCode {
    let addrs: Vec<String> = std::env::args().skip(1).collect();
    if addrs.is_empty() {
        eprintln!("usage: udp-hold ADDR:PORT...");
        return ExitCode::from(2);
    }
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
    println!("bound");
    loop {
        std::thread::park();
    }
}
