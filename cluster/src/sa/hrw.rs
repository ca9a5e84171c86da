//! Rendezvous (highest random weight) hashing: every node computes the same owner
//! for a key from the same member set, and removing a member moves only its keys.

use heartbeat::NodeId;

/// splitmix64 finaliser: a fast, well-mixing 64-bit permutation (not cryptographic;
/// ownership needs agreement, not secrecy).
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// FNV-1a over a node name.
pub(crate) fn node_seed(node: &NodeId) -> u64 {
    node.as_str().bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// The weight of `node` for `key`.
fn weight(seed: u64, key: u64) -> u64 {
    mix(seed ^ mix(key))
}

/// The member with the highest weight for `key` (ties: the larger name).
pub(crate) fn owner<'a>(
    key: u64,
    members: impl IntoIterator<Item = &'a NodeId>,
) -> Option<&'a NodeId> {
    members
        .into_iter()
        .max_by_key(|n| (weight(node_seed(n), key), *n))
}

/// The HRW key of an established IKE SA: both SPIs.
pub(crate) fn sa_key(spi_i: u64, spi_r: u64) -> u64 {
    mix(spi_i) ^ spi_r.rotate_left(17)
}

/// The HRW key of a new IKE SA (IKE_SA_INIT: SPIr still zero) and of a half-open one:
/// the initiator's SPI and address, which every node sees in the datagram.
pub(crate) fn init_key(spi_i: u64, remote: std::net::IpAddr) -> u64 {
    let a = match remote {
        std::net::IpAddr::V4(a) => u64::from(u32::from(a)),
        std::net::IpAddr::V6(a) => {
            let v = u128::from(a);
            (v as u64) ^ ((v >> 64) as u64)
        }
    };
    mix(spi_i ^ mix(a))
}

/// The HRW key of a virtual IP address (its share of an address pool).
pub(crate) fn addr_key(addr: std::net::IpAddr) -> u64 {
    let v = match addr {
        std::net::IpAddr::V4(a) => u128::from(u32::from(a)),
        std::net::IpAddr::V6(a) => u128::from(a),
    };
    mix((v as u64) ^ mix((v >> 64) as u64 ^ 0x5ca1_ab1e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn balanced_and_minimal_movement() {
        let nodes: Vec<NodeId> = ["gw1", "gw2", "gw3"]
            .iter()
            .map(|n| NodeId::new(n).unwrap())
            .collect();
        let mut counts = [0usize; 3];
        let mut moved = 0;
        for k in 0..30_000u64 {
            let o = owner(k, &nodes).unwrap();
            let i = nodes.iter().position(|n| n == o).unwrap();
            counts[i] += 1;
            let o2 = owner(k, &nodes[..2]).unwrap();
            if i < 2 && o2 != o {
                moved += 1;
            }
        }
        for c in counts {
            assert!((9_000..11_000).contains(&c), "{counts:?}");
        }
        assert_eq!(moved, 0, "removing gw3 moves only gw3's keys");
    }
}
