//! A shared-VIP test network for a gateway cluster (DESIGN §4): N node namespaces and
//! some client namespaces on one Linux bridge, every node holding the same virtual IP,
//! and every client reaching that VIP through a multicast MAC address, so the bridge
//! floods each datagram to every node (the steering a real cluster gets from a
//! multicast MAC or an nftables `cluster` match).
//!
//! ```text
//!   client0 10.0.0.100 ─┐                      ┌─ node0 10.0.0.11 (+ VIP 10.0.0.1 on lo)
//!   client1 10.0.0.101 ─┼── br0 (namespace lan) ┼─ node1 10.0.0.12 (+ VIP)
//!                        │   mcast_snooping 0    └─ node2 10.0.0.13 (+ VIP)
//!   neighbour 10.0.0.1 -> 01:00:5e:42:00:01 (permanent) in every client
//! ```
//!
//! The VIP sits on each node's `lo` with `arp_ignore = 1` / `arp_announce = 2` on the
//! uplink (the LVS direct-routing arrangement): no node ever answers ARP for it, so
//! no client or switch can learn one node's unicast MAC for the VIP and silently stop
//! the flooding. A node's uplink joins the multicast MAC (`ip maddr add`) as a real
//! NIC would need to; the kernel then delivers unicast IP in an L2 multicast frame
//! (`drop_unicast_in_l2_multicast` is 0 by default, RFC 1122 §3.3.6 leaves it open).

use std::net::Ipv4Addr;

use crate::Error;
use crate::netns::{Netns, run, signal};

/// The virtual IP every node holds and clients connect to.
pub const VIP: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
/// The multicast MAC clients send VIP traffic to (IPv4 multicast range 01:00:5e, so
/// bridges flood it; not a group any host joins by itself).
pub const VIP_MAC: &str = "01:00:5e:42:00:01";
/// The LAN's prefix length.
pub const LAN_PREFIX: u8 = 24;
/// An address of the network the gateways protect, on each node's `lo` (as in
/// [`crate::topology::GATEWAY_LAN_ADDR`]).
pub const NODE_LAN_ADDR: Ipv4Addr = crate::topology::GATEWAY_LAN_ADDR;

/// Node `i`'s own address (heartbeat and replication): 10.0.0.11, .12, ...
pub fn node_addr(i: usize) -> Ipv4Addr {
    Ipv4Addr::new(
        10,
        0,
        0,
        11u8.saturating_add(u8::try_from(i).unwrap_or(u8::MAX)),
    )
}

/// Client `i`'s address: 10.0.0.100, .101, ...
pub fn client_addr(i: usize) -> Ipv4Addr {
    Ipv4Addr::new(
        10,
        0,
        0,
        100u8.saturating_add(u8::try_from(i).unwrap_or(u8::MAX)),
    )
}

/// Node names as a cluster config uses them: `gw1`, `gw2`, ...
pub fn node_name(i: usize) -> String {
    format!("gw{}", i.saturating_add(1))
}

/// The shared-VIP network. Everything is removed on drop.
#[derive(Debug)]
pub struct SharedVip {
    /// The nodes' namespaces; uplink `eth0`, VIP on `lo`.
    pub nodes: Vec<Netns>,
    /// The clients' namespaces; uplink `eth0`.
    pub clients: Vec<Netns>,
    /// The namespace holding the bridge `br0` and its ports (`n0`.., `c0`..). Declared
    /// last: the others go first, which also removes their veth pairs.
    pub lan: Netns,
}

impl SharedVip {
    /// `nodes` gateway namespaces and `clients` client namespaces on one bridge.
    pub fn new(nodes: usize, clients: usize) -> Result<Self, Error> {
        if nodes == 0 || nodes > 50 || clients > 100 {
            return Err(Error::new(format!(
                "SharedVip::new({nodes}, {clients}): 1..=50 nodes, at most 100 clients"
            )));
        }
        let lan = Netns::new("lan")?;
        lan.ip(&[
            "link",
            "add",
            "br0",
            "type",
            "bridge",
            "mcast_snooping",
            "0",
            "stp_state",
            "0",
        ])?;
        lan.ip(&["link", "set", "br0", "up"])?;
        let mut topo = Self {
            nodes: Vec::with_capacity(nodes),
            clients: Vec::with_capacity(clients),
            lan,
        };
        for i in 0..nodes {
            let ns = Netns::new(&format!("n{i}"))?;
            topo.attach(&ns, &format!("n{i}"))?;
            ns.add_addr("eth0", node_addr(i), LAN_PREFIX)?;
            ns.add_addr("lo", VIP, 32)?;
            ns.add_addr("lo", NODE_LAN_ADDR, 32)?;
            // Never answer ARP for the VIP (it is on lo, not eth0), and use the node's
            // own address as the source of its ARP requests.
            ns.exec(
                "sh",
                &[
                    "-c",
                    "for k in all eth0; do echo 1 > /proc/sys/net/ipv4/conf/$k/arp_ignore; \
                     echo 2 > /proc/sys/net/ipv4/conf/$k/arp_announce; done",
                ],
            )?;
            ns.ip(&["maddr", "add", VIP_MAC, "dev", "eth0"])?;
            topo.nodes.push(ns);
        }
        for i in 0..clients {
            let ns = Netns::new(&format!("c{i}"))?;
            topo.attach(&ns, &format!("c{i}"))?;
            ns.add_addr("eth0", client_addr(i), LAN_PREFIX)?;
            ns.ip(&[
                "neigh",
                "replace",
                &VIP.to_string(),
                "lladdr",
                VIP_MAC,
                "dev",
                "eth0",
                "nud",
                "permanent",
            ])?;
            topo.clients.push(ns);
        }
        Ok(topo)
    }

    /// A veth pair: `port` on the bridge in `lan`, `eth0` in `ns`.
    fn attach(&self, ns: &Netns, port: &str) -> Result<(), Error> {
        self.lan.ip(&[
            "link",
            "add",
            port,
            "type",
            "veth",
            "peer",
            "name",
            "eth0",
            "netns",
            ns.name(),
        ])?;
        self.lan.ip(&["link", "set", port, "master", "br0", "up"])?;
        Ok(())
    }

    /// Kills (SIGKILL, by process id) every process named `comm` in node `i`'s
    /// namespace (e.g. `"batond"`): a node dying without a word to anyone. Returns the
    /// ids killed; an error if there was none.
    pub fn kill_in_node(&self, i: usize, comm: &str) -> Result<Vec<u32>, Error> {
        let ns = self
            .nodes
            .get(i)
            .ok_or_else(|| Error::new(format!("no node {i}")))?;
        let mut killed = Vec::new();
        for pid in ns.pids() {
            let name = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
            if name.trim() == comm {
                signal(pid, "KILL")?;
                killed.push(pid);
            }
        }
        if killed.is_empty() {
            return Err(Error::new(format!(
                "no process named {comm} in {} (pids {:?})",
                ns.name(),
                ns.pids()
            )));
        }
        Ok(killed)
    }

    /// The bridge's forwarding database (`bridge fdb`), for failure messages.
    pub fn fdb(&self) -> String {
        run(
            "ip",
            &["netns", "exec", self.lan.name(), "bridge", "fdb", "show"],
        )
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_else(|e| e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses() {
        assert_eq!(node_addr(0), Ipv4Addr::new(10, 0, 0, 11));
        assert_eq!(node_addr(2), Ipv4Addr::new(10, 0, 0, 13));
        assert_eq!(client_addr(1), Ipv4Addr::new(10, 0, 0, 101));
        assert_eq!(node_name(0), "gw1");
        assert!(SharedVip::new(0, 1).is_err());
    }
}
