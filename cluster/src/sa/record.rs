//! Replicated records of the SA layer and their keys.
//!
//! - `ike/<our SPI>` ([`SaRecord`]): owner, ownership epoch, exact counters when the
//!   record hands the SA over (transfer), whether an operator placed it (the top bit of
//!   the exact-counter count: rebalancing leaves such an SA alone), and the IKE SA export record
//!   ([`ike::export::write_sa`]), which carries both Message ID counters, the cached
//!   response, RFC 6311 flags and any sync attempt in progress (RFC 6311 §5.1 SHOULD).
//! - `rpl/<inbound SPI>` ([`ChildRecord`]): the outbound sequence lease and the latest
//!   replay checkpoint of one Child SA.
//! - `drn/<node>`: the node is draining (an empty payload).
//! - `was/<our SPI><node>` ([`SaRecord`]): what a node did with an IKE SA it owned
//!   during a partition, once its record lost (see `heal.rs`).
//!
//! Layouts are big-endian; decoders are bounded by the payload and never panic.

use heartbeat::NodeId;
use xfrm::ReplayState;

use crate::bytes::Reader;
use crate::replog::RecordKey;

const SA_MAGIC: &[u8; 4] = b"BCS1";
const CHILD_MAGIC: &[u8; 4] = b"BCC1";

/// Key of the IKE SA record.
pub(crate) fn ike_key(spi: u64) -> RecordKey {
    let mut k = b"ike/".to_vec();
    k.extend_from_slice(&spi.to_be_bytes());
    RecordKey::new(&k).unwrap_or_else(|| RecordKey::from_u128(u128::from(spi)))
}

/// The SPI of an `ike/` key.
pub(crate) fn ike_key_spi(key: &RecordKey) -> Option<u64> {
    let b = key.as_bytes();
    let rest = b.strip_prefix(b"ike/")?;
    Some(u64::from_be_bytes(rest.try_into().ok()?))
}

/// Key of a Child SA's lease and replay checkpoint record.
pub(crate) fn child_key(spi_in: u32) -> RecordKey {
    let mut k = b"rpl/".to_vec();
    k.extend_from_slice(&spi_in.to_be_bytes());
    RecordKey::new(&k).unwrap_or_else(|| RecordKey::from_u128(u128::from(spi_in)))
}

/// The inbound SPI of an `rpl/` key.
pub(crate) fn child_key_spi(key: &RecordKey) -> Option<u32> {
    let rest = key.as_bytes().strip_prefix(b"rpl/")?;
    Some(u32::from_be_bytes(rest.try_into().ok()?))
}

/// Key of what `node` did with IKE SA `spi` while a partition made it an owner too,
/// written when its record lost (an [`SaRecord`] with its Message IDs and, in `exact`,
/// its Child SAs' lease ends), for the owner to merge: the losing write itself may
/// never reach the owner (replaced before it was sent).
pub(crate) fn was_key(spi: u64, node: &NodeId) -> RecordKey {
    let mut k = b"was/".to_vec();
    k.extend_from_slice(&spi.to_be_bytes());
    k.extend_from_slice(node.as_str().as_bytes());
    RecordKey::new(&k).unwrap_or_else(|| RecordKey::from_u128(u128::from(spi)))
}

/// The IKE SA SPI of a `was/` key.
pub(crate) fn was_key_spi(key: &RecordKey) -> Option<u64> {
    let rest = key.as_bytes().strip_prefix(b"was/")?;
    Some(u64::from_be_bytes(rest.get(..8)?.try_into().ok()?))
}

/// Key of a drain marker.
pub(crate) fn drain_key(node: &NodeId) -> RecordKey {
    let mut k = b"drn/".to_vec();
    k.extend_from_slice(node.as_str().as_bytes());
    RecordKey::new(&k).unwrap_or_else(|| RecordKey::from_u128(0))
}

/// The node of a `drn/` key.
pub(crate) fn drain_key_node(key: &RecordKey) -> Option<NodeId> {
    NodeId::from_wire(key.as_bytes().strip_prefix(b"drn/")?)
}

/// Exact counters of one Child SA, read from the data plane by the node that hands
/// the SA over (transfer): the target continues exactly where the source stopped.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ExactCounters {
    pub spi_in: u32,
    /// Last outbound sequence number the source used.
    pub oseq: u64,
    /// Inbound window (top and bitmap).
    pub seq: u64,
    pub bitmap: Vec<u32>,
    /// The source's outbound lease end.
    pub lease_end: u64,
}

/// The `ike/<spi>` record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct SaRecord {
    pub owner: NodeId,
    pub epoch: u64,
    pub exact: Vec<ExactCounters>,
    /// Placed by an operator's transfer (an explicit override of the hash).
    pub pinned: bool,
    pub ike: Vec<u8>,
}

/// Top bit of the exact-counter count: the SA is pinned (records without it decode as
/// not pinned, so the layout stays readable both ways).
const PINNED_FLAG: u16 = 0x8000;

/// The `rpl/<spi_in>` record.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct ChildRecord {
    pub spi_out: u32,
    /// First outbound sequence number of the current owner's lease.
    pub lease_start: u64,
    /// Last outbound sequence number the owner may use (asked for: a renewal in
    /// progress is already counted, which only makes a taker start higher).
    pub lease_end: u64,
    /// Latest checkpoint: outbound sequence number, inbound top and bitmap.
    pub oseq: u64,
    pub seq: u64,
    pub bitmap: Vec<u32>,
}

impl ChildRecord {
    /// The checkpoint as an xfrm replay state.
    pub(crate) fn inbound_state(&self) -> ReplayState {
        ReplayState {
            oseq: 0,
            seq: self.seq,
            bitmap: self.bitmap.clone(),
        }
    }
}

fn put_bitmap(out: &mut Vec<u8>, b: &[u32]) {
    let n = u16::try_from(b.len()).unwrap_or(u16::MAX);
    out.extend_from_slice(&n.to_be_bytes());
    for w in b.iter().take(usize::from(n)) {
        out.extend_from_slice(&w.to_be_bytes());
    }
}

impl SaRecord {
    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.ike.len() + 64);
        out.extend_from_slice(SA_MAGIC);
        let name = self.owner.as_str().as_bytes();
        out.push(u8::try_from(name.len()).unwrap_or(0));
        out.extend_from_slice(name);
        out.extend_from_slice(&self.epoch.to_be_bytes());
        let n = u16::try_from(self.exact.len())
            .unwrap_or(u16::MAX)
            .min(PINNED_FLAG - 1);
        let flagged = if self.pinned { n | PINNED_FLAG } else { n };
        out.extend_from_slice(&flagged.to_be_bytes());
        for e in self.exact.iter().take(usize::from(n)) {
            out.extend_from_slice(&e.spi_in.to_be_bytes());
            out.extend_from_slice(&e.oseq.to_be_bytes());
            out.extend_from_slice(&e.seq.to_be_bytes());
            out.extend_from_slice(&e.lease_end.to_be_bytes());
            put_bitmap(&mut out, &e.bitmap);
        }
        out.extend_from_slice(&self.ike);
        out
    }

    pub(crate) fn decode(b: &[u8]) -> Option<Self> {
        let mut r = Reader::new(b);
        if r.take(4)? != SA_MAGIC {
            return None;
        }
        let len = usize::from(r.u8()?);
        let owner = NodeId::from_wire(r.take(len)?)?;
        let epoch = r.u64()?;
        let flagged = r.u16()?;
        let (n, pinned) = (flagged & !PINNED_FLAG, flagged & PINNED_FLAG != 0);
        let mut exact = Vec::new();
        for _ in 0..n {
            exact.push(ExactCounters {
                spi_in: r.u32()?,
                oseq: r.u64()?,
                seq: r.u64()?,
                lease_end: r.u64()?,
                bitmap: r.bitmap()?,
            });
        }
        Some(Self {
            owner,
            epoch,
            exact,
            pinned,
            ike: r.rest().to_vec(),
        })
    }

    /// Owner and initiator SPI without copying the IKE record (for the ownership index).
    pub(crate) fn peek(b: &[u8]) -> Option<(NodeId, u64)> {
        let mut r = Reader::new(b);
        if r.take(4)? != SA_MAGIC {
            return None;
        }
        let len = usize::from(r.u8()?);
        let owner = NodeId::from_wire(r.take(len)?)?;
        let _epoch = r.u64()?;
        let n = r.u16()? & !PINNED_FLAG;
        for _ in 0..n {
            r.take(28)?;
            let words = usize::from(r.u16()?);
            r.take(words.checked_mul(4)?)?;
        }
        // ike::export layout: "BKSA", format version (u16), SPIi (u64), SPIr (u64).
        r.take(6)?;
        Some((owner, r.u64()?))
    }
}

impl ChildRecord {
    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(48 + 4 * self.bitmap.len());
        out.extend_from_slice(CHILD_MAGIC);
        out.extend_from_slice(&self.spi_out.to_be_bytes());
        for v in [self.lease_start, self.lease_end, self.oseq, self.seq] {
            out.extend_from_slice(&v.to_be_bytes());
        }
        put_bitmap(&mut out, &self.bitmap);
        out
    }

    pub(crate) fn decode(b: &[u8]) -> Option<Self> {
        let mut r = Reader::new(b);
        if r.take(4)? != CHILD_MAGIC {
            return None;
        }
        let rec = Self {
            spi_out: r.u32()?,
            lease_start: r.u64()?,
            lease_end: r.u64()?,
            oseq: r.u64()?,
            seq: r.u64()?,
            bitmap: r.bitmap()?,
        };
        r.rest().is_empty().then_some(rec)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_and_reject_garbage() {
        let rec = SaRecord {
            owner: NodeId::new("gw2").unwrap(),
            epoch: 7,
            exact: vec![ExactCounters {
                spi_in: 0xc000_0001,
                oseq: 99,
                seq: 1234,
                bitmap: vec![1, 2, 3, 4],
                lease_end: 1 << 20,
            }],
            pinned: false,
            ike: b"BKSA\x00\x01\x00\x00\x00\x00\x00\x00\x00\x2a rest".to_vec(),
        };
        let b = rec.encode();
        assert_eq!(SaRecord::decode(&b), Some(rec.clone()));
        assert_eq!(SaRecord::peek(&b), Some((rec.owner.clone(), 42)));
        let pinned = SaRecord {
            pinned: true,
            ..rec.clone()
        };
        let bp = pinned.encode();
        assert_eq!(SaRecord::decode(&bp), Some(pinned));
        assert_eq!(SaRecord::peek(&bp), Some((rec.owner.clone(), 42)));
        for n in 0..b.len().min(60) {
            assert!(SaRecord::peek(&b[..n]).is_none() || n >= 50);
        }
        let c = ChildRecord {
            spi_out: 5,
            lease_start: 1,
            lease_end: 10,
            oseq: 3,
            seq: 4,
            bitmap: vec![9],
        };
        assert_eq!(ChildRecord::decode(&c.encode()), Some(c.clone()));
        let mut bad = c.encode();
        bad.push(0);
        assert!(ChildRecord::decode(&bad).is_none());
        assert!(ChildRecord::decode(b"BCC1").is_none());
        assert_eq!(ike_key_spi(&ike_key(77)), Some(77));
        assert_eq!(child_key_spi(&child_key(0xc000_0005)), Some(0xc000_0005));
        assert_eq!(child_key_spi(&ike_key(5)), None);
        let n = NodeId::new("gw-3").unwrap();
        assert_eq!(was_key_spi(&was_key(0x1234, &n)), Some(0x1234));
        assert_eq!(was_key_spi(&ike_key(0x1234)), None);
        assert_eq!(drain_key_node(&drain_key(&n)), Some(n));
    }
}
