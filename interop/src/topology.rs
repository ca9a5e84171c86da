//! Ready-made test networks: a client and a gateway on one link, or a client behind a
//! NAT namespace (nftables masquerade) in front of the gateway.

use std::net::Ipv4Addr;

use crate::Error;
use crate::netns::{Netns, run, veth};

/// The gateway's public address (TEST-NET-2, RFC 5737).
pub const GATEWAY_ADDR: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 1);
/// The client's address on the direct link.
pub const CLIENT_ADDR: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 2);
/// The NAT's public address, which the gateway sees as the client's.
pub const NAT_PUBLIC_ADDR: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 254);
/// The NAT's private-side address (the client's default gateway).
pub const NAT_PRIVATE_ADDR: Ipv4Addr = Ipv4Addr::new(192, 168, 77, 1);
/// The client's private address behind the NAT.
pub const CLIENT_PRIVATE_ADDR: Ipv4Addr = Ipv4Addr::new(192, 168, 77, 2);
/// An address of the network the gateway protects (10.1.0.0/24), on the gateway's `lo`
/// (strongSwan's kernel-libipsec needs a local source address inside its local TS).
pub const GATEWAY_LAN_ADDR: Ipv4Addr = Ipv4Addr::new(10, 1, 0, 1);

/// A client and a gateway namespace, optionally with a NAT namespace between them.
/// Everything is removed on drop.
#[derive(Debug)]
pub struct Topology {
    /// The client's (initiator's) namespace; its uplink is `eth0`.
    pub client: Netns,
    /// The gateway's (responder's) namespace; its link is `eth0`.
    pub gateway: Netns,
    /// The NAT between them, if any (`in0` private side, `out0` public side).
    pub nat: Option<Netns>,
    /// The gateway's address, to which the client connects.
    pub gateway_addr: Ipv4Addr,
    /// The client's own address.
    pub client_addr: Ipv4Addr,
    /// The address the gateway sees the client's packets come from.
    pub client_seen_addr: Ipv4Addr,
}

impl Topology {
    /// Client 198.51.100.2 — gateway 198.51.100.1 on one veth link.
    pub fn direct() -> Result<Self, Error> {
        let client = Netns::new("cl")?;
        let gateway = Netns::new("gw")?;
        veth(
            &gateway,
            "eth0",
            GATEWAY_ADDR,
            &client,
            "eth0",
            CLIENT_ADDR,
            24,
        )?;
        gateway.add_addr("lo", GATEWAY_LAN_ADDR, 32)?;
        Ok(Self {
            client,
            gateway,
            nat: None,
            gateway_addr: GATEWAY_ADDR,
            client_addr: CLIENT_ADDR,
            client_seen_addr: CLIENT_ADDR,
        })
    }

    /// Client 192.168.77.2 — NAT (192.168.77.1 | 198.51.100.254, masquerade) — gateway
    /// 198.51.100.1. The gateway sees the client as 198.51.100.254 with a rewritten
    /// source port, so IKE moves to port 4500 with UDP encapsulation (RFC 7296 §2.23,
    /// RFC 3948).
    pub fn behind_nat() -> Result<Self, Error> {
        let client = Netns::new("cl")?;
        let nat = Netns::new("nat")?;
        let gateway = Netns::new("gw")?;
        veth(
            &nat,
            "in0",
            NAT_PRIVATE_ADDR,
            &client,
            "eth0",
            CLIENT_PRIVATE_ADDR,
            24,
        )?;
        veth(
            &nat,
            "out0",
            NAT_PUBLIC_ADDR,
            &gateway,
            "eth0",
            GATEWAY_ADDR,
            24,
        )?;
        gateway.add_addr("lo", GATEWAY_LAN_ADDR, 32)?;
        client.default_route(NAT_PRIVATE_ADDR)?;
        nat.enable_forwarding()?;
        let rules = "table ip nat {\n chain postrouting {\n  type nat hook postrouting priority srcnat; policy accept;\n  oifname \"out0\" masquerade\n }\n}\n";
        let path = std::env::temp_dir().join(format!("{}.nft", nat.name()));
        std::fs::write(&path, rules)
            .map_err(|e| Error::new(format!("write {}: {e}", path.display())))?;
        let loaded = nat.exec("nft", &["-f", &path.to_string_lossy()]);
        let _ = std::fs::remove_file(&path);
        loaded?;
        Ok(Self {
            client,
            gateway,
            nat: Some(nat),
            gateway_addr: GATEWAY_ADDR,
            client_addr: CLIENT_PRIVATE_ADDR,
            client_seen_addr: NAT_PUBLIC_ADDR,
        })
    }

    /// The NAT's connection tracking table (`conntrack`-style text from nft), for logs.
    pub fn nat_ruleset(&self) -> Result<String, Error> {
        match &self.nat {
            Some(n) => n
                .exec("nft", &["list", "ruleset"])
                .map(|o| String::from_utf8_lossy(&o.stdout).into_owned()),
            None => Ok(String::new()),
        }
    }
}

/// Checks that the tools the harness drives are installed and that we are root; the
/// error names what is missing and how to get it (`scripts/setup`).
pub fn check_prerequisites() -> Result<(), Error> {
    let mut missing = Vec::new();
    let uid = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(1).map(str::to_owned))
        })
        .unwrap_or_default();
    if uid != "0" {
        missing.push("root (network namespaces need CAP_SYS_ADMIN; CI runs as root)".to_owned());
    }
    for (tool, package) in [
        ("ip", "iproute2"),
        ("unshare", "util-linux"),
        ("nft", "nftables"),
        ("swanctl", "strongswan-swanctl"),
        ("pki", "strongswan-pki"),
        ("tcpdump", "tcpdump"),
        ("ss", "iproute2"),
    ] {
        if run("sh", &["-c", &format!("command -v {tool}")]).is_err() {
            missing.push(format!("{tool} (apt install {package})"));
        }
    }
    for (path, package) in [
        (crate::strongswan::CHARON, "strongswan-charon"),
        (
            "/usr/lib/ipsec/plugins/libstrongswan-kernel-libipsec.so",
            "libcharon-extra-plugins",
        ),
        (
            "/usr/lib/ipsec/plugins/libstrongswan-openssl.so",
            "libstrongswan-standard-plugins",
        ),
        (
            "/usr/lib/ipsec/plugins/libstrongswan-kdf.so",
            "libstrongswan (5.9.8: kdf plugin)",
        ),
        ("/dev/net/tun", "a kernel with TUN (kernel-libipsec)"),
    ] {
        let libipsec = crate::strongswan::KernelInterface::from_env()
            == crate::strongswan::KernelInterface::Libipsec;
        if path == "/dev/net/tun" && !libipsec {
            continue; // kernel-netlink (inside the VM) needs no TUN device
        }
        if !std::path::Path::new(path).exists() {
            missing.push(format!("{path} ({package})"));
        }
    }
    if missing.is_empty() {
        Ok(())
    } else {
        Err(Error::new(format!(
            "interop prerequisites missing (run scripts/setup as root): {}",
            missing.join(", ")
        )))
    }
}
