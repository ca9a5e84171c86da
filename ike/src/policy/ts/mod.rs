//! Traffic selector narrowing (RFC 7296 §2.9): what the responder answers in TSi/TSr,
//! given its configured selectors and the initiator's proposal.
//!
//! Each configured selector (with `dynamic` resolved to the peer's address or virtual IP,
//! or to ours) is intersected with each proposed one; intersections that lie inside
//! another intersection are dropped. That is how a proposal whose first selector is the
//! triggering packet's address (§2.9) and whose second is a wider range ends up narrowed
//! to the configured subnet, not to the single address. Nothing left means
//! TS_UNACCEPTABLE.

#[cfg(test)]
mod tests;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::config::TsConfig;
use crate::wire::payload::{IpTrafficSelector, NotifyPayload, TrafficSelector, TsPayload};
use crate::wire::registry::{NotifyType, ProtocolId};

/// The "any port" range.
pub const ANY_PORTS: (u16, u16) = (0, 65535);
/// RFC 7296 §3.13.1: start port 65535 and end port 0 mean OPAQUE (ports not available,
/// e.g. a non-initial fragment).
pub const OPAQUE_PORTS: (u16, u16) = (65535, 0);

/// Why traffic selectors could not be agreed on or built.
#[derive(Clone, PartialEq, Eq, Debug, thiserror::Error)]
pub enum TsError {
    /// No intersection between what the peer proposed and what is configured.
    #[error(
        "traffic selectors unacceptable: {side} proposed by the peer ({proposed}) do not overlap the configured ones ({configured})"
    )]
    Unacceptable {
        /// "TSi" or "TSr".
        side: &'static str,
        /// The peer's selectors, as text.
        proposed: String,
        /// Our selectors, as text.
        configured: String,
    },
    /// A configured subnet with a prefix longer than its address family allows.
    #[error("invalid subnet {addr}/{prefix_len}: the prefix length is at most {max}")]
    InvalidPrefix {
        /// Network address.
        addr: IpAddr,
        /// Prefix length given.
        prefix_len: u8,
        /// 32 or 128.
        max: u8,
    },
}

impl TsError {
    /// The notify to send: TS_UNACCEPTABLE (RFC 7296 §3.10.1); a configuration error, which
    /// should never reach the peer, maps to the same.
    pub fn notify_type(&self) -> NotifyType {
        NotifyType::TS_UNACCEPTABLE
    }

    /// The Notify payload for the error response (protocol NONE, no SPI, no data).
    pub fn to_notify(&self) -> NotifyPayload {
        NotifyPayload {
            protocol: ProtocolId::NONE,
            spi: Vec::new(),
            notify_type: self.notify_type(),
            data: Vec::new(),
        }
    }
}

/// An address as a number, with its width in bits (32 or 128).
fn to_num(a: IpAddr) -> (u128, u8) {
    match a {
        IpAddr::V4(v4) => (u128::from(u32::from(v4)), 32),
        IpAddr::V6(v6) => (u128::from(v6), 128),
    }
}

/// The address of `width` bits with value `n` (truncated to the width).
fn from_num(n: u128, width: u8) -> IpAddr {
    if width == 32 {
        IpAddr::V4(Ipv4Addr::from(
            u32::try_from(n & 0xffff_ffff).unwrap_or(u32::MAX),
        ))
    } else {
        IpAddr::V6(Ipv6Addr::from(n))
    }
}

/// Mask of the host part of a `prefix_len` prefix in a `width`-bit address.
fn host_mask(prefix_len: u8, width: u8) -> u128 {
    let host_bits = u32::from(width.saturating_sub(prefix_len));
    if host_bits >= 128 {
        u128::MAX
    } else {
        (1u128 << host_bits) - 1
    }
}

/// The first and last address of a subnet (host bits of `addr` are ignored).
pub fn subnet_to_range(addr: IpAddr, prefix_len: u8) -> Result<(IpAddr, IpAddr), TsError> {
    let (n, width) = to_num(addr);
    if prefix_len > width {
        return Err(TsError::InvalidPrefix {
            addr,
            prefix_len,
            max: width,
        });
    }
    let mask = host_mask(prefix_len, width);
    Ok((from_num(n & !mask, width), from_num(n | mask, width)))
}

/// The subnet that is exactly this range, if there is one (`None` for ranges such as
/// 10.0.0.1–10.0.0.9, or mixed families).
pub fn range_to_subnet(start: IpAddr, end: IpAddr) -> Option<(IpAddr, u8)> {
    let (s, w) = to_num(start);
    let (e, w2) = to_num(end);
    if w != w2 || s > e {
        return None;
    }
    let diff = s ^ e;
    // A subnet: the differing bits are exactly the low host bits, all 0 in s, all 1 in e.
    let host_bits = 128 - diff.leading_zeros();
    let mask = if host_bits >= 128 {
        u128::MAX
    } else {
        (1u128 << host_bits) - 1
    };
    if s & mask != 0 || e & mask != mask {
        return None;
    }
    let prefix = u8::try_from(u32::from(w).saturating_sub(host_bits)).ok()?;
    Some((start, prefix))
}

/// The fewest subnets that cover exactly `start..=end` (for kernel policies, which take
/// prefixes). At most 2 × (address width) subnets; empty for an empty or mixed range.
pub fn range_to_subnets(start: IpAddr, end: IpAddr) -> Vec<(IpAddr, u8)> {
    let (mut s, w) = to_num(start);
    let (e, w2) = to_num(end);
    let mut out = Vec::new();
    if w != w2 || s > e {
        return out;
    }
    loop {
        // The largest aligned block starting at s that does not pass e.
        let mut host_bits = if s == 0 {
            u32::from(w)
        } else {
            s.trailing_zeros().min(u32::from(w))
        };
        while host_bits > 0 {
            let last = s | host_mask_bits(host_bits);
            if last <= e {
                break;
            }
            host_bits -= 1;
        }
        let prefix = u8::try_from(u32::from(w) - host_bits).unwrap_or(w);
        out.push((from_num(s, w), prefix));
        let last = s | host_mask_bits(host_bits);
        if last >= e {
            return out;
        }
        s = last + 1;
    }
}

fn host_mask_bits(host_bits: u32) -> u128 {
    if host_bits >= 128 {
        u128::MAX
    } else {
        (1u128 << host_bits) - 1
    }
}

/// A selector for `start..=end`, any protocol and port.
fn any_proto(start: IpAddr, end: IpAddr) -> IpTrafficSelector {
    IpTrafficSelector {
        ip_protocol: 0,
        start_port: ANY_PORTS.0,
        end_port: ANY_PORTS.1,
        start_addr: start,
        end_addr: end,
    }
}

/// Our configured selectors as address ranges, `Dynamic` resolved to each of `dynamic`
/// (the peer's address or virtual IPs for remote_ts, our address for local_ts).
pub fn config_selectors(
    cfg: &[TsConfig],
    dynamic: &[IpAddr],
) -> Result<Vec<IpTrafficSelector>, TsError> {
    let mut out = Vec::new();
    for c in cfg {
        match *c {
            TsConfig::Subnet {
                addr,
                prefix_len,
                ip_protocol,
                ports,
            } => {
                let (start, end) = subnet_to_range(addr, prefix_len)?;
                out.push(IpTrafficSelector {
                    ip_protocol,
                    start_port: ports.0,
                    end_port: ports.1,
                    start_addr: start,
                    end_addr: end,
                });
            }
            TsConfig::Dynamic => out.extend(dynamic.iter().map(|&a| any_proto(a, a))),
        }
    }
    Ok(out)
}

/// Whether a selector from the wire is well formed: one address family, start ≤ end,
/// ports ordered (or OPAQUE).
pub fn is_valid(ts: &IpTrafficSelector) -> bool {
    let (s, w) = to_num(ts.start_addr);
    let (e, w2) = to_num(ts.end_addr);
    w == w2 && s <= e && (ts.start_port <= ts.end_port || is_opaque(ts))
}

fn is_opaque(ts: &IpTrafficSelector) -> bool {
    (ts.start_port, ts.end_port) == OPAQUE_PORTS
}

fn is_any_port(ts: &IpTrafficSelector) -> bool {
    (ts.start_port, ts.end_port) == ANY_PORTS
}

/// The intersection of two selectors: addresses, protocol (0 = any) and ports; `None` if
/// empty or of different address families.
pub fn intersect(a: &IpTrafficSelector, b: &IpTrafficSelector) -> Option<IpTrafficSelector> {
    if !is_valid(a) || !is_valid(b) {
        return None;
    }
    let (as_, w) = to_num(a.start_addr);
    let (ae, _) = to_num(a.end_addr);
    let (bs, w2) = to_num(b.start_addr);
    let (be, _) = to_num(b.end_addr);
    if w != w2 {
        return None;
    }
    let (s, e) = (as_.max(bs), ae.min(be));
    if s > e {
        return None;
    }
    let ip_protocol = match (a.ip_protocol, b.ip_protocol) {
        (0, p) | (p, 0) => p,
        (p, q) if p == q => p,
        _ => return None,
    };
    let (start_port, end_port) = if is_any_port(a) {
        (b.start_port, b.end_port)
    } else if is_any_port(b) || (is_opaque(a) && is_opaque(b)) {
        (a.start_port, a.end_port)
    } else if is_opaque(a) || is_opaque(b) {
        return None;
    } else {
        let (ps, pe) = (a.start_port.max(b.start_port), a.end_port.min(b.end_port));
        if ps > pe {
            return None;
        }
        (ps, pe)
    };
    Some(IpTrafficSelector {
        ip_protocol,
        start_port,
        end_port,
        start_addr: from_num(s, w),
        end_addr: from_num(e, w),
    })
}

/// Whether `outer` covers all traffic `inner` covers.
pub fn contains(outer: &IpTrafficSelector, inner: &IpTrafficSelector) -> bool {
    intersect(outer, inner).as_ref() == Some(inner)
}

/// The most intersections [`narrow`] collects; the removal of covered selectors is
/// quadratic, and a TS payload can hold thousands of selectors. Narrowing further than
/// the peer asked is always allowed (RFC 7296 §2.9), so stopping early is safe.
pub const MAX_NARROWED: usize = 256;

/// Narrows `proposed` to `configured` (already resolved): all pairwise intersections in
/// configured order (at most [`MAX_NARROWED`]), without duplicates and without those
/// inside another one. Unknown selector types and malformed selectors in the proposal are
/// ignored.
pub fn narrow(configured: &[IpTrafficSelector], proposed: &TsPayload) -> Vec<IpTrafficSelector> {
    let mut all: Vec<IpTrafficSelector> = Vec::new();
    'outer: for c in configured {
        for p in &proposed.selectors {
            let TrafficSelector::Ip(p) = p else { continue };
            if let Some(i) = intersect(c, p) {
                if all.len() >= MAX_NARROWED {
                    break 'outer;
                }
                all.push(i);
            }
        }
    }
    let mut out: Vec<IpTrafficSelector> = Vec::new();
    for (i, s) in all.iter().enumerate() {
        let covered = all
            .iter()
            .enumerate()
            .any(|(j, o)| j != i && contains(o, s) && (o != s || j < i));
        if !covered {
            out.push(*s);
        }
    }
    out
}

/// The narrowed selectors a responder returns.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct NarrowedTs {
    /// TSi: the initiator's (the peer's) side.
    pub tsi: Vec<IpTrafficSelector>,
    /// TSr: the responder's (our) side.
    pub tsr: Vec<IpTrafficSelector>,
}

impl NarrowedTs {
    /// TSi as a payload.
    pub fn tsi_payload(&self) -> TsPayload {
        ts_payload(&self.tsi)
    }

    /// TSr as a payload.
    pub fn tsr_payload(&self) -> TsPayload {
        ts_payload(&self.tsr)
    }
}

/// The responder's narrowing (RFC 7296 §2.9): the peer's TSi against our `remote_ts`
/// (`dynamic` = `remote_dynamic`: its address, or its virtual IPs when a pool assigned
/// them), its TSr against our `local_ts` (`dynamic` = `local_dynamic`, our address).
/// Either side coming out empty is [`TsError::Unacceptable`] (TS_UNACCEPTABLE).
pub fn narrow_responder(
    local_ts: &[TsConfig],
    remote_ts: &[TsConfig],
    local_dynamic: &[IpAddr],
    remote_dynamic: &[IpAddr],
    tsi: &TsPayload,
    tsr: &TsPayload,
) -> Result<NarrowedTs, TsError> {
    let remote = config_selectors(remote_ts, remote_dynamic)?;
    let local = config_selectors(local_ts, local_dynamic)?;
    let side = |name, proposed: &TsPayload, cfg: &[IpTrafficSelector]| {
        let n = narrow(cfg, proposed);
        if n.is_empty() {
            return Err(TsError::Unacceptable {
                side: name,
                proposed: payload_to_string(proposed),
                configured: list_to_string(cfg),
            });
        }
        Ok(n)
    };
    Ok(NarrowedTs {
        tsi: side("TSi", tsi, &remote)?,
        tsr: side("TSr", tsr, &local)?,
    })
}

/// A TS payload holding `selectors`.
pub fn ts_payload(selectors: &[IpTrafficSelector]) -> TsPayload {
    TsPayload {
        selectors: selectors.iter().copied().map(TrafficSelector::Ip).collect(),
    }
}

/// Text form for logs and `ikectl`: `10.1.0.0/24`, `10.1.0.1..10.1.0.9`, with
/// `[tcp/443]`, `[udp/500-501]`, `[47]` or `[tcp/OPAQUE]` when not any protocol/port.
pub fn ts_to_string(ts: &IpTrafficSelector) -> String {
    let mut s = match range_to_subnet(ts.start_addr, ts.end_addr) {
        Some((a, p)) => format!("{a}/{p}"),
        None => format!("{}..{}", ts.start_addr, ts.end_addr),
    };
    if ts.ip_protocol != 0 || !is_any_port(ts) {
        let proto = match ts.ip_protocol {
            0 => "any".to_owned(),
            1 => "icmp".to_owned(),
            6 => "tcp".to_owned(),
            17 => "udp".to_owned(),
            58 => "ipv6-icmp".to_owned(),
            n => n.to_string(),
        };
        let ports = if is_any_port(ts) {
            String::new()
        } else if is_opaque(ts) {
            "/OPAQUE".to_owned()
        } else if ts.start_port == ts.end_port {
            format!("/{}", ts.start_port)
        } else {
            format!("/{}-{}", ts.start_port, ts.end_port)
        };
        s.push_str(&format!("[{proto}{ports}]"));
    }
    s
}

fn list_to_string(l: &[IpTrafficSelector]) -> String {
    if l.is_empty() {
        return "none".to_owned();
    }
    l.iter().map(ts_to_string).collect::<Vec<_>>().join(" ")
}

/// All selectors of a payload as text (unknown types as `type N`).
pub fn payload_to_string(p: &TsPayload) -> String {
    if p.selectors.is_empty() {
        return "none".to_owned();
    }
    p.selectors
        .iter()
        .map(|s| match s {
            TrafficSelector::Ip(ts) => ts_to_string(ts),
            TrafficSelector::Unknown { ts_type, .. } => format!("type {}", ts_type.0),
        })
        .collect::<Vec<_>>()
        .join(" ")
}
