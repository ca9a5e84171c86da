//! What a capture on the client's side of the VIP bridge shows: every ESP packet's
//! (SPI, sequence number) pair (RFC 4303 §2: the first 8 bytes of the ESP header; ESP in
//! UDP on port 4500 when NAT-T is used, RFC 3948 §2.2) and the IKE_SA_INIT requests
//! (RFC 7296 §3.1, exchange type 34), so a test can say that no pair went over the wire
//! twice and that no tunnel was renegotiated.
//!
//! The file comes from tcpdump: nothing in it is trusted, a malformed record ends the
//! parse with an error, never a panic.

use std::collections::HashMap;

/// One ESP packet on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct EspPacket {
    /// Source MAC address (which node sent it: all share the VIP), zero if the link
    /// type has none.
    pub(crate) src_mac: [u8; 6],
    /// Source IPv4 address.
    pub(crate) src: [u8; 4],
    /// Destination IPv4 address.
    pub(crate) dst: [u8; 4],
    /// Security Parameters Index.
    pub(crate) spi: u32,
    /// ESP sequence number (the low 32 bits; RFC 4303 §2.2).
    pub(crate) seq: u32,
    /// Capture time in microseconds since the epoch.
    pub(crate) t_us: u64,
}

/// What a capture holds.
#[derive(Debug, Default)]
pub(crate) struct Wire {
    /// Every ESP packet, in capture order.
    pub(crate) esp: Vec<EspPacket>,
    /// Capture times (µs) of IKE_SA_INIT requests (initiator to responder).
    pub(crate) ike_sa_init_requests: Vec<u64>,
    /// IKE messages of any kind.
    pub(crate) ike_messages: usize,
}

impl Wire {
    /// (SPI, sequence) pairs seen more than once, with how often (at most 20 listed).
    pub(crate) fn repeated_pairs(&self) -> Vec<(u32, u32, usize)> {
        let mut seen: HashMap<(u32, u32), usize> = HashMap::with_capacity(self.esp.len());
        for p in &self.esp {
            *seen.entry((p.spi, p.seq)).or_default() += 1;
        }
        let mut rep: Vec<(u32, u32, usize)> = seen
            .into_iter()
            .filter(|(_, n)| *n > 1)
            .map(|((s, q), n)| (s, q, n))
            .collect();
        rep.sort_unstable();
        rep.truncate(20);
        rep
    }

    /// Packets per SPI, sorted by SPI.
    pub(crate) fn per_spi(&self) -> Vec<(u32, usize)> {
        let mut m: HashMap<u32, usize> = HashMap::new();
        for p in &self.esp {
            *m.entry(p.spi).or_default() += 1;
        }
        let mut v: Vec<(u32, usize)> = m.into_iter().collect();
        v.sort_unstable();
        v
    }
}

fn be16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*b.get(at)?, *b.get(at + 1)?]))
}

fn be32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes([
        *b.get(at)?,
        *b.get(at + 1)?,
        *b.get(at + 2)?,
        *b.get(at + 3)?,
    ]))
}

fn u32_at(b: &[u8], at: usize, le: bool) -> Option<u32> {
    let x = [
        *b.get(at)?,
        *b.get(at + 1)?,
        *b.get(at + 2)?,
        *b.get(at + 3)?,
    ];
    Some(if le {
        u32::from_le_bytes(x)
    } else {
        u32::from_be_bytes(x)
    })
}

fn addr(b: &[u8], at: usize) -> Option<[u8; 4]> {
    b.get(at..at + 4)?.try_into().ok()
}

/// Reads a classic pcap (Ethernet or Linux cooked link type, micro- or nanosecond
/// timestamps). Packets may be cut short by the snap length: only the headers are read.
pub(crate) fn parse(b: &[u8]) -> Result<Wire, String> {
    let (le, nanos) = match b.get(0..4) {
        Some([0xd4, 0xc3, 0xb2, 0xa1]) => (true, false),
        Some([0xa1, 0xb2, 0xc3, 0xd4]) => (false, false),
        Some([0x4d, 0x3c, 0xb2, 0xa1]) => (true, true),
        Some([0xa1, 0xb2, 0x3c, 0x4d]) => (false, true),
        _ => return Err("pcap: not a classic pcap file".into()),
    };
    let link = u32_at(b, 20, le).ok_or("pcap: short file header")?;
    let l2 = match link {
        1 => 14,
        113 => 16,
        other => return Err(format!("pcap: link type {other} not supported")),
    };
    let mut wire = Wire::default();
    let mut off = 24usize;
    while off < b.len() {
        let rec = |i: usize| u32_at(b, off + i, le).ok_or("pcap: truncated record header");
        let (sec, frac, incl) = (rec(0)?, rec(4)?, rec(8)?);
        let incl = usize::try_from(incl).map_err(|_| "pcap: record length")?;
        let pkt = b
            .get(off + 16..off + 16 + incl)
            .ok_or("pcap: truncated record")?;
        off += 16 + incl;
        let t_us = u64::from(sec) * 1_000_000 + u64::from(if nanos { frac / 1000 } else { frac });
        if be16(pkt, l2 - 2) != Some(0x0800) {
            continue; // not IPv4
        }
        let Some(ip) = pkt.get(l2..) else { continue };
        let (Some(&vihl), Some(&proto)) = (ip.first(), ip.get(9)) else {
            continue;
        };
        if vihl >> 4 != 4 {
            continue;
        }
        let ihl = usize::from(vihl & 15) * 4;
        let (Some(src), Some(dst)) = (addr(ip, 12), addr(ip, 16)) else {
            continue;
        };
        let Some(l4) = ip.get(ihl..) else { continue };
        let esp_at = match proto {
            50 => Some(0),
            17 => {
                let (Some(sport), Some(dport)) = (be16(l4, 0), be16(l4, 2)) else {
                    continue;
                };
                let natt = sport == 4500 || dport == 4500;
                let ike_at = match (natt, be32(l4, 8)) {
                    // RFC 3948 §2.2: a zero "SPI" is the non-ESP marker before IKE.
                    (true, Some(0)) => Some(12),
                    (true, Some(_)) => None,
                    // Shorter: a one-byte 0xFF NAT-keepalive (RFC 3948 §2.3).
                    (true, None) => continue,
                    (false, _) if sport == 500 || dport == 500 => Some(8),
                    (false, _) => continue,
                };
                match ike_at {
                    Some(at) => {
                        wire.ike_messages += 1;
                        // Header: exchange type at 18, flags at 19 (R = 0x20).
                        let (xchg, flags) = (l4.get(at + 18), l4.get(at + 19));
                        if xchg == Some(&34) && flags.is_some_and(|f| f & 0x20 == 0) {
                            wire.ike_sa_init_requests.push(t_us);
                        }
                        None
                    }
                    None => Some(8),
                }
            }
            _ => None,
        };
        let Some(at) = esp_at else { continue };
        let (Some(spi), Some(seq)) = (be32(l4, at), be32(l4, at + 4)) else {
            continue;
        };
        // Ethernet: the source MAC; Linux cooked: the link-layer address, also at 6.
        let src_mac = pkt
            .get(6..12)
            .and_then(|m| <[u8; 6]>::try_from(m).ok())
            .unwrap_or([0; 6]);
        wire.esp.push(EspPacket {
            src_mac,
            src,
            dst,
            spi,
            seq,
            t_us,
        });
    }
    Ok(wire)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A little-endian, microsecond pcap with Ethernet framing around `ip` packets.
    fn pcap(ips: &[Vec<u8>]) -> Vec<u8> {
        let mut f = vec![0xd4, 0xc3, 0xb2, 0xa1, 2, 0, 4, 0];
        f.extend([0; 8]);
        f.extend(65535u32.to_le_bytes());
        f.extend(1u32.to_le_bytes());
        for (i, ip) in ips.iter().enumerate() {
            let mut frame = vec![0u8; 12];
            frame.extend([0x08, 0x00]);
            frame.extend(ip);
            f.extend(10u32.to_le_bytes());
            f.extend(u32::try_from(i).unwrap().to_le_bytes());
            f.extend(u32::try_from(frame.len()).unwrap().to_le_bytes());
            f.extend(u32::try_from(frame.len()).unwrap().to_le_bytes());
            f.extend(frame);
        }
        f
    }

    fn ipv4(proto: u8, l4: &[u8]) -> Vec<u8> {
        let mut ip = vec![0x45, 0, 0, 0, 0, 0, 0, 0, 64, proto, 0, 0];
        ip.extend([10, 0, 0, 100, 10, 0, 0, 1]);
        ip.extend(l4);
        ip
    }

    fn esp(spi: u32, seq: u32) -> Vec<u8> {
        let mut e = spi.to_be_bytes().to_vec();
        e.extend(seq.to_be_bytes());
        e.extend([0xab; 24]);
        ipv4(50, &e)
    }

    fn udp(sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
        let mut u = sport.to_be_bytes().to_vec();
        u.extend(dport.to_be_bytes());
        u.extend(u16::try_from(8 + payload.len()).unwrap().to_be_bytes());
        u.extend([0, 0]);
        u.extend(payload);
        ipv4(17, &u)
    }

    fn ike_header(xchg: u8, flags: u8) -> Vec<u8> {
        let mut h = vec![0x11; 16];
        h.extend([33, 0x20, xchg, flags, 0, 0, 0, 0, 0, 0, 0, 28]);
        h
    }

    #[test]
    fn finds_esp_pairs_and_their_repeats() {
        let w = parse(&pcap(&[
            esp(0xc000_0001, 1),
            esp(0xc000_0001, 2),
            esp(7, 1),
        ]))
        .unwrap();
        assert_eq!(w.esp.len(), 3);
        assert_eq!((w.esp[1].spi, w.esp[1].seq), (0xc000_0001, 2));
        assert_eq!(w.esp[1].t_us, 10_000_001);
        assert!(w.repeated_pairs().is_empty());
        assert_eq!(w.per_spi(), vec![(7, 1), (0xc000_0001, 2)]);

        let w = parse(&pcap(&[esp(5, 9), esp(6, 9), esp(5, 9), esp(5, 9)])).unwrap();
        assert_eq!(w.repeated_pairs(), vec![(5, 9, 3)]);
    }

    #[test]
    fn esp_in_udp_ike_and_keepalives() {
        let mut natt_esp = 0x0102_0304u32.to_be_bytes().to_vec();
        natt_esp.extend(42u32.to_be_bytes());
        natt_esp.extend([0; 16]);
        let mut natt_ike = vec![0, 0, 0, 0];
        natt_ike.extend(ike_header(35, 0x08));
        let w = parse(&pcap(&[
            udp(500, 500, &ike_header(34, 0x08)),   // IKE_SA_INIT request
            udp(500, 500, &ike_header(34, 0x20)),   // its response
            udp(4500, 4500, &natt_esp),             // ESP in UDP
            udp(4500, 4500, &natt_ike),             // IKE_AUTH after the marker
            udp(4500, 4500, &[0xff]),               // NAT-keepalive
            udp(53, 53, &[1, 2, 3, 4, 5, 6, 7, 8]), // anything else
        ]))
        .unwrap();
        assert_eq!(w.ike_messages, 3);
        assert_eq!(w.ike_sa_init_requests.len(), 1);
        assert_eq!(w.esp.len(), 1);
        assert_eq!((w.esp[0].spi, w.esp[0].seq), (0x0102_0304, 42));
    }

    #[test]
    fn refuses_garbage_without_panicking() {
        assert!(parse(b"nope").is_err());
        let mut f = pcap(&[esp(1, 1)]);
        f.truncate(f.len() - 5);
        assert!(parse(&f).is_err());
        // Records too short for any header are skipped, not read past their end.
        let w = parse(&pcap(&[vec![0x45], ipv4(50, &[1, 2]), vec![]])).unwrap();
        assert!(w.esp.is_empty());
    }
}
