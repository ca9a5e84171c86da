//! Shared helpers for the real-kernel tests: network namespaces, specs.
#![allow(
    dead_code,
    unsafe_code,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    unreachable_pub,
    reason = "test helpers; unsafe only for the unshare/setns syscalls, see SAFETY"
)]

use std::net::IpAddr;
use std::os::fd::AsRawFd;

use xfrm::{
    AeadAlgorithm, AuthAlgorithm, Crypto, EncAlgorithm, Key, Mode, OwnedRange, SaId, SaSpec, Spi,
};

/// The reqid range the tests treat as baton's.
pub const OWNED: OwnedRange = OwnedRange {
    min: 0x4241_0000,
    max: 0x4241_ffff,
};

/// Panics with a clear message unless running as root.
pub fn require_root(what: &str) {
    // SAFETY: geteuid has no preconditions and cannot fail.
    let euid = unsafe { libc::geteuid() };
    assert!(
        euid == 0,
        "{what} needs root (CAP_NET_ADMIN for XFRM netlink and network namespaces); run the tests as root, as CI does"
    );
}

/// Runs `f` on a new thread inside a fresh, empty network namespace.
pub fn in_fresh_netns<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    std::thread::spawn(move || {
        // SAFETY: unshare(CLONE_NEWNET) only moves this thread into a new
        // network namespace; it touches no memory of ours.
        let rc = unsafe { libc::unshare(libc::CLONE_NEWNET) };
        assert_eq!(
            rc,
            0,
            "unshare(CLONE_NEWNET): {}",
            std::io::Error::last_os_error()
        );
        f()
    })
    .join()
    .unwrap_or_else(|e| std::panic::resume_unwind(e))
}

/// Moves the current thread into the named namespace (`ip netns add NAME`).
pub fn enter_named_netns(name: &str) {
    let f = std::fs::File::open(format!("/run/netns/{name}")).expect("open /run/netns/NAME");
    // SAFETY: setns on a valid namespace fd (kept open for the call) only
    // changes this thread's network namespace.
    let rc = unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) };
    assert_eq!(rc, 0, "setns({name}): {}", std::io::Error::last_os_error());
}

/// Runs a shell command, panicking with its output if it fails.
pub fn sh(cmd: &str) -> String {
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg(cmd)
        .output()
        .expect("spawn sh");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "`{cmd}` failed ({}):\n{text}",
        out.status
    );
    text
}

pub fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// Deterministic key bytes, different per `tag`.
pub fn key(len: usize, tag: u8) -> Key {
    Key::from_slice(
        &(0..len)
            .map(|i| (i as u8).wrapping_mul(7) ^ tag)
            .collect::<Vec<u8>>(),
    )
}

/// The four transforms baton installs, with fresh keys.
pub fn all_cryptos(tag: u8) -> Vec<(&'static str, Crypto)> {
    vec![
        (
            "aes128gcm16",
            Crypto::Aead {
                alg: AeadAlgorithm::AesGcm,
                key: key(20, tag),
                icv_bits: 128,
            },
        ),
        (
            "aes256gcm16",
            Crypto::Aead {
                alg: AeadAlgorithm::AesGcm,
                key: key(36, tag),
                icv_bits: 128,
            },
        ),
        (
            "chacha20poly1305",
            Crypto::Aead {
                alg: AeadAlgorithm::ChaCha20Poly1305,
                key: key(36, tag),
                icv_bits: 128,
            },
        ),
        (
            "aes128-sha256",
            Crypto::EncAuth {
                enc: EncAlgorithm::AesCbc,
                enc_key: key(16, tag),
                auth: AuthAlgorithm::HmacSha256,
                auth_key: key(32, tag ^ 0x5a),
            },
        ),
    ]
}

/// A plain ESP tunnel SA.
pub fn sa(dst: &str, src: &str, spi: u32, reqid: u32, crypto: Crypto) -> SaSpec {
    SaSpec::new(
        SaId::esp(ip(dst), Spi(spi)),
        ip(src),
        Mode::Tunnel,
        reqid,
        crypto,
    )
}

/// A UDP socket on port 4500 set up as an IKE daemon sets up its NAT-T
/// socket, in the current thread's namespace: ESP-in-UDP enabled (the kernel
/// only decapsulates RFC 3948 packets arriving on such a socket) and IPsec
/// bypassed (else host-to-host policies would drop the UDP datagrams before
/// the decapsulation sees them).
pub fn udp_encap_socket() -> std::net::UdpSocket {
    let sock = std::net::UdpSocket::bind("0.0.0.0:4500").expect("bind udp/4500");
    xfrm::enable_espinudp(&sock).expect("UDP_ENCAP");
    xfrm::bypass_ipsec(&sock, false).expect("bypass policy");
    sock
}
