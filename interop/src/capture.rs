//! Packet capture inside a namespace (`tcpdump`, Debian package tcpdump) and a reader
//! for the IKE datagrams in it, so a test can check what went over the wire: exchange
//! types, ports, the non-ESP marker on 4500 (RFC 3948 §2.2), byte-identical
//! retransmissions (RFC 7296 §2.1), fragments (RFC 7383).

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::Error;
use crate::netns::Netns;
use crate::process::{Daemon, wait_for};

/// A running `tcpdump` on `iface` of a namespace, writing UDP 500/4500 to a pcap file.
#[derive(Debug)]
pub struct Capture {
    daemon: Daemon,
    pcap: PathBuf,
}

/// One UDP datagram to or from port 500 or 4500 that carries IKE.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IkeDatagram {
    /// Source address.
    pub src: Ipv4Addr,
    /// Destination address.
    pub dst: Ipv4Addr,
    /// UDP source port.
    pub sport: u16,
    /// UDP destination port.
    pub dport: u16,
    /// Whether a 4-byte non-ESP marker preceded the IKE header (port 4500).
    pub non_esp_marker: bool,
    /// The IKE message from its header on.
    pub ike: Vec<u8>,
}

impl IkeDatagram {
    /// The exchange type (34 IKE_SA_INIT, 35 IKE_AUTH, 36 CREATE_CHILD_SA, 37 INFORMATIONAL).
    pub fn exchange_type(&self) -> Option<u8> {
        self.ike.get(18).copied()
    }

    /// Whether the Response flag is set (RFC 7296 §3.1).
    pub fn is_response(&self) -> bool {
        self.ike.get(19).is_some_and(|f| f & 0x20 != 0)
    }

    /// The Message ID.
    pub fn message_id(&self) -> Option<u32> {
        let b = self.ike.get(20..24)?;
        Some(u32::from_be_bytes([
            b.first().copied()?,
            b.get(1).copied()?,
            b.get(2).copied()?,
            b.get(3).copied()?,
        ]))
    }

    /// The initiator's SPI.
    pub fn spi_i(&self) -> Option<&[u8]> {
        self.ike.get(0..8)
    }
}

impl Capture {
    /// Starts tcpdump in `ns` on `iface`, writing to `<dir>/<label>.pcap`, and waits
    /// until it listens.
    pub fn start(ns: &Netns, dir: &Path, label: &str, iface: &str) -> Result<Self, Error> {
        let pcap = dir.join(format!("{label}.pcap"));
        let pcap_s = pcap.to_string_lossy().into_owned();
        let mut daemon = Daemon::spawn(
            ns,
            dir,
            label,
            "tcpdump",
            &[
                "-i",
                iface,
                "-n",
                "-U",
                "--immediate-mode",
                "-Z",
                "root",
                "-s",
                "0",
                "-w",
                &pcap_s,
                "udp port 500 or udp port 4500",
            ],
        )?;
        wait_for(Duration::from_secs(10), "tcpdump to listen", || {
            daemon.check_running()?;
            Ok(daemon.log().contains("listening on").then_some(()))
        })?;
        Ok(Self { daemon, pcap })
    }

    /// Stops tcpdump (flushing the file) and returns the IKE datagrams captured.
    pub fn finish(mut self) -> Result<Vec<IkeDatagram>, Error> {
        // tcpdump writes each packet as it comes (-U); SIGTERM makes it close the file.
        self.daemon.stop(Duration::from_secs(2))?;
        let bytes = std::fs::read(&self.pcap)
            .map_err(|e| Error::new(format!("read {}: {e}", self.pcap.display())))?;
        parse_pcap(&bytes)
    }

    /// The pcap file's path.
    pub fn pcap_path(&self) -> &Path {
        &self.pcap
    }
}

fn u16_at(b: &[u8], at: usize, le: bool) -> Option<u16> {
    let x = [*b.get(at)?, *b.get(at + 1)?];
    Some(if le {
        u16::from_le_bytes(x)
    } else {
        u16::from_be_bytes(x)
    })
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

/// Reads a classic pcap (Ethernet or Linux cooked link type) and returns the IPv4 UDP
/// datagrams on port 500 or 4500 that carry IKE (on 4500: those with the non-ESP
/// marker; ESP and NAT keepalives are skipped).
pub fn parse_pcap(b: &[u8]) -> Result<Vec<IkeDatagram>, Error> {
    let bad = |what: &str| Error::new(format!("pcap: {what}"));
    let le = match b.get(0..4) {
        Some([0xd4, 0xc3, 0xb2, 0xa1]) => true,
        Some([0xa1, 0xb2, 0xc3, 0xd4]) => false,
        _ => return Err(bad("not a classic pcap file")),
    };
    let link = u32_at(b, 20, le).ok_or_else(|| bad("short header"))?;
    let l2 = match link {
        1 => 14,
        113 => 16,
        other => return Err(bad(&format!("link type {other} not supported"))),
    };
    let mut out = Vec::new();
    let mut off = 24usize;
    while off < b.len() {
        let incl = u32_at(b, off + 8, le).ok_or_else(|| bad("truncated record header"))? as usize;
        let pkt = b
            .get(off + 16..off + 16 + incl)
            .ok_or_else(|| bad("truncated record"))?;
        off += 16 + incl;
        // Ethertype (or cooked protocol) must be IPv4.
        if u16_at(pkt, l2 - 2, false) != Some(0x0800) {
            continue;
        }
        let Some(ip) = pkt.get(l2..) else { continue };
        let (Some(&vihl), Some(&proto)) = (ip.first(), ip.get(9)) else {
            continue;
        };
        if vihl >> 4 != 4 || proto != 17 {
            continue;
        }
        let ihl = usize::from(vihl & 15) * 4;
        let total = usize::from(u16_at(ip, 2, false).unwrap_or(0));
        let (Some(src), Some(dst)) = (ip.get(12..16), ip.get(16..20)) else {
            continue;
        };
        let Some(udp) = ip.get(ihl..total.min(ip.len())) else {
            continue;
        };
        let (Some(sport), Some(dport), Some(ulen)) = (
            u16_at(udp, 0, false),
            u16_at(udp, 2, false),
            u16_at(udp, 4, false),
        ) else {
            continue;
        };
        let Some(payload) = udp.get(8..usize::from(ulen)) else {
            continue;
        };
        let natt = sport == 4500 || dport == 4500;
        let (marker, ike) = if natt {
            match payload.split_at_checked(4) {
                Some(([0, 0, 0, 0], rest)) => (true, rest),
                _ => continue, // ESP (non-zero SPI) or a NAT keepalive
            }
        } else {
            (false, payload)
        };
        if ike.len() < 28 {
            continue;
        }
        let (Ok(src), Ok(dst)) = (<[u8; 4]>::try_from(src), <[u8; 4]>::try_from(dst)) else {
            continue;
        };
        out.push(IkeDatagram {
            src: Ipv4Addr::from(src),
            dst: Ipv4Addr::from(dst),
            sport,
            dport,
            non_esp_marker: marker,
            ike: ike.to_vec(),
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_committed_strongswan_capture() {
        // A capture made by interop/capture/capture-strongswan.sh; its message files
        // are the same datagrams, so the reader must reproduce them exactly.
        let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../testvectors/data/strongswan/psk-aes128gcm16-x25519");
        let pcap = std::fs::read(dir.join("capture.pcap")).unwrap();
        let d = parse_pcap(&pcap).unwrap();
        assert_eq!(d.len(), 6);
        assert_eq!(d[0].exchange_type(), Some(34));
        assert!(!d[0].is_response() && d[1].is_response());
        assert_eq!((d[0].sport, d[0].non_esp_marker), (500, false));
        assert_eq!((d[2].dport, d[2].non_esp_marker), (4500, true));
        assert_eq!(d[2].message_id(), Some(1));
        assert_eq!(
            d[0].ike,
            std::fs::read(dir.join("01-IKE_SA_INIT-request.bin")).unwrap()
        );
        assert_eq!(
            d[3].ike,
            std::fs::read(dir.join("04-IKE_AUTH-response.bin")).unwrap()
        );
    }

    #[test]
    fn rejects_garbage() {
        assert!(parse_pcap(b"nope").is_err());
        let mut truncated = vec![0xd4, 0xc3, 0xb2, 0xa1];
        truncated.extend([0; 16]);
        truncated.extend(1u32.to_le_bytes());
        truncated.extend([0; 8]); // a record header that claims more than is there
        truncated.extend(1000u32.to_le_bytes());
        assert!(parse_pcap(&truncated).is_err());
    }
}
