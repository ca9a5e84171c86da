//! The UDP sockets on the IKE port (500) and the NAT-T port (4500) of every listen address,
//! and the non-ESP marker of RFC 3948 §2.2 on the NAT-T port.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::UdpSocket;
use tokio::sync::mpsc;

use crate::metrics::{Metrics, PortLabel, ReasonLabel};

/// The four zero octets that precede IKE messages on the NAT-T port (RFC 3948 §2.2).
pub const NON_ESP_MARKER: [u8; 4] = [0; 4];

/// Largest datagram we read; IKE messages larger than this are not sent by sane peers
/// (RFC 7383 fragmentation exists so they need not be).
const MAX_DATAGRAM: usize = 65_535;

/// One bound socket.
#[derive(Debug, Clone)]
pub struct Bound {
    /// Where it is bound.
    pub local: SocketAddr,
    /// The socket.
    pub socket: Arc<UdpSocket>,
    /// Whether this is the NAT-T port (non-ESP marker framing).
    pub natt: bool,
}

/// A received IKE message, with the marker already removed.
#[derive(Debug)]
pub struct Datagram {
    /// Our address and port it arrived on.
    pub local: SocketAddr,
    /// Sender.
    pub remote: SocketAddr,
    /// The IKE message.
    pub data: Vec<u8>,
}

/// What to do with a datagram that arrived on the NAT-T port.
#[derive(Debug, PartialEq, Eq)]
pub enum NattFrame<'a> {
    /// An IKE message (marker removed).
    Ike(&'a [u8]),
    /// A NAT-keepalive (RFC 3948 §2.3): a single 0xFF octet.
    Keepalive,
    /// ESP in UDP (a non-zero SPI where the marker would be): the kernel's business.
    Esp,
    /// Too short to be anything.
    Runt,
}

/// Classifies a datagram from the NAT-T port.
pub fn classify_natt(data: &[u8]) -> NattFrame<'_> {
    match data {
        [0xff] => NattFrame::Keepalive,
        [0, 0, 0, 0, rest @ ..] => NattFrame::Ike(rest),
        d if d.len() < 4 => NattFrame::Runt,
        _ => NattFrame::Esp,
    }
}

/// Frames an IKE message for sending from `natt` or not.
pub fn frame(natt: bool, data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() + 4);
    if natt {
        out.extend_from_slice(&NON_ESP_MARKER);
    }
    out.extend_from_slice(data);
    out
}

pub(crate) fn port_label(natt: bool) -> PortLabel {
    PortLabel {
        port: if natt { "natt" } else { "ike" }.to_owned(),
    }
}

/// Receives on `b` forever, passing IKE messages to `tx`. Errors (e.g. ICMP port
/// unreachable surfacing as ECONNREFUSED) are logged and never stop the loop.
pub async fn receive_loop(b: Bound, tx: mpsc::Sender<Datagram>, metrics: Arc<Metrics>) {
    let mut buf = vec![0u8; MAX_DATAGRAM];
    loop {
        let (n, remote) = match b.socket.recv_from(&mut buf).await {
            Ok(x) => x,
            Err(e) => {
                tracing::debug!(local = %b.local, error = %e, "recv failed");
                tokio::time::sleep(Duration::from_millis(1)).await;
                continue;
            }
        };
        metrics
            .datagrams_in
            .get_or_create(&port_label(b.natt))
            .inc();
        let data = buf.get(..n).unwrap_or_default();
        let ike = if b.natt {
            match classify_natt(data) {
                NattFrame::Ike(m) => m,
                other => {
                    let reason = match other {
                        NattFrame::Keepalive => "nat_keepalive",
                        NattFrame::Esp => "esp_in_udp",
                        _ => "runt",
                    };
                    metrics
                        .datagrams_ignored
                        .get_or_create(&ReasonLabel {
                            reason: reason.into(),
                        })
                        .inc();
                    continue;
                }
            }
        } else {
            data
        };
        let d = Datagram {
            local: b.local,
            remote,
            data: ike.to_vec(),
        };
        if tx.send(d).await.is_err() {
            return; // the daemon is shutting down
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn natt_framing() {
        assert_eq!(classify_natt(&[0xff]), NattFrame::Keepalive);
        assert_eq!(classify_natt(&[0, 0, 0, 0, 1, 2]), NattFrame::Ike(&[1, 2]));
        assert_eq!(classify_natt(&[0, 0, 1, 0, 1, 2]), NattFrame::Esp);
        assert_eq!(classify_natt(&[0, 0]), NattFrame::Runt);
        assert_eq!(classify_natt(&[]), NattFrame::Runt);
        assert_eq!(frame(true, &[9]), vec![0, 0, 0, 0, 9]);
        assert_eq!(frame(false, &[9]), vec![9]);
    }
}
