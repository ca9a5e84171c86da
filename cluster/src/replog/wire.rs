//! Replication messages, carried as channel application messages.
//!
//! The first byte is the message type. `0x01..=0x1f` belong to the replication
//! log; higher layers use other values on the same channel and dispatch on it
//! ([`is_replication_message`]).
//!
//! ```text
//! 0x01 Records      first_seq u64, count u16, then count × record:
//!                   key_len u8, key, counter u64, origin_len u8, origin,
//!                   flags u8 (bit 0: tombstone), [payload_len u32, payload]
//! 0x02 Ack          seq u64: highest sequence applied, contiguous from 1
//! 0x03 SnapshotEnd  clock u64: every record of the bulk resync has been sent; the
//!                   sender's version counter, so a restarted receiver's next writes
//!                   order after everything the sender ever saw (collected tombstones too)
//! 0x04 Forget       key_len u8, key, counter u64, origin_len u8, origin: the writer
//!                   of this tombstone collected it (every node has it); drop it too
//! ```

use heartbeat::NodeId;

use super::types::{MAX_KEY, MAX_PAYLOAD, Record, RecordKey, Version};
use crate::bytes::Reader;

pub(crate) const T_RECORDS: u8 = 0x01;
pub(crate) const T_ACK: u8 = 0x02;
pub(crate) const T_SNAPSHOT_END: u8 = 0x03;
pub(crate) const T_FORGET: u8 = 0x04;

/// Whether a channel message belongs to the replication log.
pub fn is_replication_message(msg: &[u8]) -> bool {
    matches!(msg.first(), Some(0x01..=0x1f))
}

/// A decoded replication message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ReplMessage {
    Records {
        first_seq: u64,
        records: Vec<(RecordKey, Record)>,
    },
    Ack {
        seq: u64,
    },
    SnapshotEnd {
        clock: u64,
    },
    Forget {
        key: RecordKey,
        version: Version,
    },
}

/// Bytes one record takes on the wire.
pub(crate) fn record_len(key: &RecordKey, rec: &Record) -> usize {
    1 + key.as_bytes().len()
        + 8
        + 1
        + rec.version.origin.as_str().len()
        + 1
        + rec.value.as_ref().map_or(0, |v| 4 + v.len())
}

#[cfg(test)]
pub(crate) const RECORDS_HEADER: usize = 1 + 8 + 2;

pub(crate) fn start_records(buf: &mut Vec<u8>, first_seq: u64) {
    buf.push(T_RECORDS);
    buf.extend_from_slice(&first_seq.to_be_bytes());
    buf.extend_from_slice(&[0, 0]);
}

pub(crate) fn set_count(buf: &mut [u8], count: u16) {
    if let Some(c) = buf.get_mut(9..11) {
        c.copy_from_slice(&count.to_be_bytes());
    }
}

pub(crate) fn push_record(buf: &mut Vec<u8>, key: &RecordKey, rec: &Record) {
    let k = key.as_bytes();
    buf.push(u8::try_from(k.len()).unwrap_or(u8::MAX));
    buf.extend_from_slice(k);
    buf.extend_from_slice(&rec.version.counter.to_be_bytes());
    let o = rec.version.origin.as_str().as_bytes();
    buf.push(u8::try_from(o.len()).unwrap_or(u8::MAX));
    buf.extend_from_slice(o);
    match &rec.value {
        None => buf.push(1),
        Some(v) => {
            buf.push(0);
            buf.extend_from_slice(&u32::try_from(v.len()).unwrap_or(u32::MAX).to_be_bytes());
            buf.extend_from_slice(v);
        }
    }
}

pub(crate) fn encode_forget(key: &RecordKey, version: &Version) -> Vec<u8> {
    let mut v = vec![T_FORGET];
    let k = key.as_bytes();
    v.push(u8::try_from(k.len()).unwrap_or(u8::MAX));
    v.extend_from_slice(k);
    v.extend_from_slice(&version.counter.to_be_bytes());
    let o = version.origin.as_str().as_bytes();
    v.push(u8::try_from(o.len()).unwrap_or(u8::MAX));
    v.extend_from_slice(o);
    v
}

pub(crate) fn encode_snapshot_end(clock: u64) -> Vec<u8> {
    let mut v = vec![T_SNAPSHOT_END];
    v.extend_from_slice(&clock.to_be_bytes());
    v
}

pub(crate) fn encode_ack(seq: u64) -> Vec<u8> {
    let mut v = vec![T_ACK];
    v.extend_from_slice(&seq.to_be_bytes());
    v
}

/// Decodes a replication message; `None` if malformed in any way.
pub(crate) fn decode(msg: &[u8]) -> Option<ReplMessage> {
    let mut r = Reader::new(msg);
    let m = match r.u8()? {
        T_RECORDS => {
            let first_seq = r.u64()?;
            let count = r.u16()?;
            // Each record takes at least 12 bytes: bound the allocation by the input.
            let mut records = Vec::with_capacity(usize::from(count).min(r.rest().len() / 12));
            for _ in 0..count {
                let kl = usize::from(r.u8()?);
                if kl == 0 || kl > MAX_KEY {
                    return None;
                }
                let key = RecordKey::new(r.take(kl)?)?;
                let counter = r.u64()?;
                let ol = usize::from(r.u8()?);
                let origin = NodeId::from_wire(r.take(ol)?)?;
                let value = match r.u8()? {
                    1 => None,
                    0 => {
                        let n = usize::try_from(r.u32()?).ok()?;
                        if n > MAX_PAYLOAD {
                            return None;
                        }
                        Some(r.take(n)?.to_vec())
                    }
                    _ => return None,
                };
                let version = Version { counter, origin };
                records.push((key, Record { version, value }));
            }
            ReplMessage::Records { first_seq, records }
        }
        T_ACK => ReplMessage::Ack { seq: r.u64()? },
        T_SNAPSHOT_END => ReplMessage::SnapshotEnd { clock: r.u64()? },
        T_FORGET => {
            let kl = usize::from(r.u8()?);
            let key = RecordKey::new(r.take(kl)?)?;
            let counter = r.u64()?;
            let ol = usize::from(r.u8()?);
            let origin = NodeId::from_wire(r.take(ol)?)?;
            ReplMessage::Forget {
                key,
                version: Version { counter, origin },
            }
        }
        _ => return None,
    };
    r.rest().is_empty().then_some(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip_and_truncation() {
        let key = RecordKey::from_u128(42);
        let live = Record {
            version: Version {
                counter: 9,
                origin: NodeId::new("gw1").unwrap(),
            },
            value: Some(b"payload".to_vec()),
        };
        let dead = Record {
            version: Version {
                counter: 10,
                origin: NodeId::new("gw2").unwrap(),
            },
            value: None,
        };
        let mut buf = Vec::new();
        start_records(&mut buf, 5);
        push_record(&mut buf, &key, &live);
        push_record(&mut buf, &key, &dead);
        set_count(&mut buf, 2);
        assert_eq!(
            buf.len(),
            RECORDS_HEADER + record_len(&key, &live) + record_len(&key, &dead)
        );
        let want = ReplMessage::Records {
            first_seq: 5,
            records: vec![(key.clone(), live), (key, dead)],
        };
        assert_eq!(decode(&buf), Some(want));
        for n in 0..buf.len() {
            assert_eq!(decode(&buf[..n]), None);
        }
        let mut extra = buf.clone();
        extra.push(0);
        assert_eq!(decode(&extra), None);
        assert_eq!(decode(&encode_ack(7)), Some(ReplMessage::Ack { seq: 7 }));
        assert_eq!(
            decode(&encode_snapshot_end(9)),
            Some(ReplMessage::SnapshotEnd { clock: 9 })
        );
        assert_eq!(decode(&[T_SNAPSHOT_END]), None);
        assert_eq!(decode(&[0x55]), None);
        let v = Version {
            counter: 3,
            origin: NodeId::new("gw3").unwrap(),
        };
        let f = encode_forget(&RecordKey::from_u128(1), &v);
        assert_eq!(
            decode(&f),
            Some(ReplMessage::Forget {
                key: RecordKey::from_u128(1),
                version: v
            })
        );
        // A count far beyond the data must not allocate for it.
        let mut huge = vec![T_RECORDS];
        huge.extend_from_slice(&1u64.to_be_bytes());
        huge.extend_from_slice(&u16::MAX.to_be_bytes());
        assert_eq!(decode(&huge), None);
    }
}
