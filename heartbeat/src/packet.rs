//! Heartbeat wire format (version 1), authenticated with HMAC-SHA256.
//!
//! ```text
//! 0      version (1)
//! 1      state of the sender's session toward the receiver: 0 Down, 1 Init, 2 Up,
//!        3 AdminDown (the sender is leaving the cluster on purpose)
//! 2      detection multiplier the sender asks the receiver to use
//! 3      sender name length S, then S bytes of name
//! ..     receiver name length R, then R bytes of name
//! ..     sender incarnation   u64 big-endian (boot time of the sender, µs since the epoch)
//! ..     sequence number      u64 big-endian (strictly increasing per incarnation)
//! ..     your incarnation     u64 big-endian (last incarnation heard from the receiver; 0 = none)
//! ..     transmit interval    u32 big-endian, microseconds
//! ..     HMAC-SHA256 (32 bytes) over every byte before it, keyed by the heartbeat key
//! ```
//!
//! Like BFD's "Your Discriminator" (RFC 5880 §4.1), *your incarnation* echoes what
//! the sender last heard from the receiver; the receiver only moves a session to Up
//! when it sees its own current incarnation echoed, so packets recorded during an
//! earlier boot of the receiver can never bring a session up. The MAC covers the
//! receiver's name, so a heartbeat sent to one node is useless at another.

use hmac::{KeyInit, Mac};

use crate::key::DerivedKey;
use crate::node::NodeId;

type HmacSha256 = hmac::Hmac<sha2::Sha256>;

/// Protocol version carried in byte 0.
pub const VERSION: u8 = 1;
/// Length of the MAC trailer.
pub const MAC_LEN: usize = 32;
/// Largest possible heartbeat; anything longer is malformed.
pub const MAX_PACKET: usize = 4 + 64 + 1 + 64 + 8 * 3 + 4 + MAC_LEN;

/// BFD-style session state (RFC 5880 §6.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SessionState {
    /// Nothing heard recently (or the peer said it hears nothing from us).
    Down,
    /// We hear the peer, the peer has not yet confirmed it hears us.
    Init,
    /// Both sides hear each other.
    Up,
    /// The node is leaving on purpose (shutdown, drain): take it out at once
    /// (RFC 5880 §6.8.16 AdminDown).
    AdminDown,
}

impl SessionState {
    fn to_wire(self) -> u8 {
        match self {
            Self::Down => 0,
            Self::Init => 1,
            Self::Up => 2,
            Self::AdminDown => 3,
        }
    }
    fn from_wire(b: u8) -> Option<Self> {
        match b {
            0 => Some(Self::Down),
            1 => Some(Self::Init),
            2 => Some(Self::Up),
            3 => Some(Self::AdminDown),
            _ => None,
        }
    }
}

/// A decoded heartbeat (before authentication is checked, see [`Packet::decode`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packet {
    /// Sender's session state toward the receiver.
    pub state: SessionState,
    /// Detection multiplier.
    pub detect_mult: u8,
    /// Sender name.
    pub sender: NodeId,
    /// Receiver name.
    pub receiver: NodeId,
    /// Sender incarnation.
    pub incarnation: u64,
    /// Sequence number.
    pub seq: u64,
    /// Last incarnation of the receiver the sender heard (0 = none).
    pub your_incarnation: u64,
    /// Sender's transmit interval in microseconds.
    pub interval_us: u32,
}

/// Why a datagram was not accepted as a heartbeat.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// Too short, too long, bad version, bad name or bad state byte.
    #[error("malformed heartbeat")]
    Malformed,
    /// The MAC does not verify.
    #[error("heartbeat MAC does not verify")]
    BadMac,
}

struct Reader<'a> {
    b: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.b.len() < n {
            return None;
        }
        let (h, t) = self.b.split_at(n);
        self.b = t;
        Some(h)
    }
    fn u8(&mut self) -> Option<u8> {
        self.take(1).and_then(|s| s.first().copied())
    }
    fn u32(&mut self) -> Option<u32> {
        self.take(4)
            .and_then(|s| s.try_into().ok())
            .map(u32::from_be_bytes)
    }
    fn u64(&mut self) -> Option<u64> {
        self.take(8)
            .and_then(|s| s.try_into().ok())
            .map(u64::from_be_bytes)
    }
    fn name(&mut self) -> Option<NodeId> {
        let n = self.u8()?;
        NodeId::from_wire(self.take(usize::from(n))?)
    }
}

impl Packet {
    /// Encodes and MACs the packet.
    pub fn encode(&self, key: &DerivedKey) -> Vec<u8> {
        let mut v = Vec::with_capacity(MAX_PACKET);
        v.push(VERSION);
        v.push(self.state.to_wire());
        v.push(self.detect_mult);
        for name in [&self.sender, &self.receiver] {
            let s = name.as_str().as_bytes();
            // NodeId guarantees len <= 64.
            v.push(u8::try_from(s.len()).unwrap_or(u8::MAX));
            v.extend_from_slice(s);
        }
        v.extend_from_slice(&self.incarnation.to_be_bytes());
        v.extend_from_slice(&self.seq.to_be_bytes());
        v.extend_from_slice(&self.your_incarnation.to_be_bytes());
        v.extend_from_slice(&self.interval_us.to_be_bytes());
        let tag = mac(key, &v);
        v.extend_from_slice(&tag);
        v
    }

    /// Parses and authenticates a datagram. The MAC is checked (in constant time)
    /// before any field is trusted; parsing never panics on any input.
    pub fn decode(bytes: &[u8], key: &DerivedKey) -> Result<Self, DecodeError> {
        if bytes.len() > MAX_PACKET || bytes.len() < MAC_LEN + 4 {
            return Err(DecodeError::Malformed);
        }
        let (body, tag) = bytes.split_at(bytes.len() - MAC_LEN);
        let mut m = <HmacSha256 as KeyInit>::new_from_slice(key.as_bytes())
            .map_err(|_| DecodeError::BadMac)?;
        m.update(body);
        m.verify_slice(tag).map_err(|_| DecodeError::BadMac)?;
        let mut r = Reader { b: body };
        let p = (|| {
            if r.u8()? != VERSION {
                return None;
            }
            let state = SessionState::from_wire(r.u8()?)?;
            let detect_mult = r.u8()?;
            let sender = r.name()?;
            let receiver = r.name()?;
            let p = Self {
                state,
                detect_mult,
                sender,
                receiver,
                incarnation: r.u64()?,
                seq: r.u64()?,
                your_incarnation: r.u64()?,
                interval_us: r.u32()?,
            };
            r.b.is_empty().then_some(p)
        })();
        p.ok_or(DecodeError::Malformed)
    }
}

fn mac(key: &DerivedKey, body: &[u8]) -> [u8; MAC_LEN] {
    let mut out = [0u8; MAC_LEN];
    if let Ok(mut m) = <HmacSha256 as KeyInit>::new_from_slice(key.as_bytes()) {
        m.update(body);
        out.copy_from_slice(&m.finalize().into_bytes());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::key::{ClusterKey, LABEL_HEARTBEAT};

    fn sample() -> Packet {
        Packet {
            state: SessionState::Init,
            detect_mult: 3,
            sender: NodeId::new("gw1").unwrap(),
            receiver: NodeId::new("gw2").unwrap(),
            incarnation: 7,
            seq: 9,
            your_incarnation: 5,
            interval_us: 100_000,
        }
    }

    #[test]
    fn roundtrip_and_tamper() {
        let key = ClusterKey::from_bytes([1; 32]).derive(LABEL_HEARTBEAT);
        let other = ClusterKey::from_bytes([2; 32]).derive(LABEL_HEARTBEAT);
        let p = sample();
        let b = p.encode(&key);
        assert_eq!(Packet::decode(&b, &key).unwrap(), p);
        assert_eq!(Packet::decode(&b, &other), Err(DecodeError::BadMac));
        for i in 0..b.len() {
            let mut t = b.clone();
            t[i] ^= 0x40;
            assert!(Packet::decode(&t, &key).is_err(), "flip at {i} accepted");
        }
        for n in 0..b.len() {
            assert!(Packet::decode(&b[..n], &key).is_err());
        }
        assert!(Packet::decode(&[0u8; 2000], &key).is_err());
    }
}
