//! SAs: `SaSpec` ↔ XFRM_MSG_NEWSA/UPDSA/GETSA/DELSA/ALLOCSPI, attributes in
//! the order iproute2 sends them (algorithms, encapsulation, replay state,
//! replay thresholds), so the golden tests compare byte for byte.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use netlink_packet_xfrm::{
    Address, Alg, AlgAead, AlgAuth, EncapTmpl, Id, LifetimeConfig, Replay, ReplayEsn,
    Selector as NlSelector, UserSaId, UserSaInfo, UserSpiInfo, XfrmAttrs, XfrmMessage,
    constants::{
        AF_INET, AF_INET6, UDP_ENCAP_ESPINUDP, XFRM_INF, XFRM_MODE_TRANSPORT, XFRM_MODE_TUNNEL,
        XFRM_STATE_ESN,
    },
    state::{AllocSpiMessage, DelGetMessage, GetDumpMessage, ModifyMessage},
};

use crate::replay;
use crate::types::{
    AeadAlgorithm, AuthAlgorithm, Crypto, EncAlgorithm, Key, Lifetime, Mode, Prefix, Protocol,
    ReplayEventThresholds, ReplayState, SaCounters, SaId, SaInfo, SaSpec, SaStats, Selector, Spi,
    SpiRange, UdpEncap,
};

pub(crate) fn family(ip: &IpAddr) -> u16 {
    if ip.is_ipv4() { AF_INET } else { AF_INET6 }
}

pub(crate) fn ip_of(a: &Address, family: u16) -> Result<IpAddr, String> {
    match family {
        AF_INET => Ok(IpAddr::V4(Ipv4Addr::new(
            a.addr[0], a.addr[1], a.addr[2], a.addr[3],
        ))),
        AF_INET6 => Ok(IpAddr::V6(Ipv6Addr::from(a.addr))),
        f => Err(format!("unknown address family {f}")),
    }
}

pub(crate) fn mode_number(m: Mode) -> u8 {
    match m {
        Mode::Transport => XFRM_MODE_TRANSPORT,
        Mode::Tunnel => XFRM_MODE_TUNNEL,
    }
}

pub(crate) fn mode_of(n: u8) -> Result<Mode, String> {
    match n {
        XFRM_MODE_TRANSPORT => Ok(Mode::Transport),
        XFRM_MODE_TUNNEL => Ok(Mode::Tunnel),
        other => Err(format!(
            "mode {other} (baton uses transport and tunnel only)"
        )),
    }
}

pub(crate) fn proto_of(n: u8) -> Result<Protocol, String> {
    match n {
        50 => Ok(Protocol::Esp),
        other => Err(format!("IPsec protocol {other} (baton uses ESP only)")),
    }
}

pub(crate) fn encode_selector(s: &Selector) -> NlSelector {
    let port_mask = |p: u16| if p == 0 { 0 } else { u16::MAX };
    NlSelector {
        daddr: Address::from_ip(&s.dst.addr()),
        saddr: Address::from_ip(&s.src.addr()),
        dport: s.dst_port,
        dport_mask: port_mask(s.dst_port),
        sport: s.src_port,
        sport_mask: port_mask(s.src_port),
        family: family(&s.src.addr()),
        prefixlen_d: s.dst.len(),
        prefixlen_s: s.src.len(),
        proto: s.proto,
        ifindex: 0,
        user: 0,
    }
}

pub(crate) fn decode_selector(s: &NlSelector, fallback_family: u16) -> Result<Selector, String> {
    let fam = if s.family == 0 {
        fallback_family
    } else {
        s.family
    };
    let src = Prefix::new(ip_of(&s.saddr, fam)?, s.prefixlen_s).map_err(|e| e.to_string())?;
    let dst = Prefix::new(ip_of(&s.daddr, fam)?, s.prefixlen_d).map_err(|e| e.to_string())?;
    Ok(Selector {
        src,
        dst,
        proto: s.proto,
        src_port: s.sport & s.sport_mask,
        dst_port: s.dport & s.dport_mask,
    })
}

fn name64(name: &str) -> [u8; 64] {
    let mut out = [0u8; 64];
    for (o, b) in out.iter_mut().zip(name.bytes()) {
        *o = b;
    }
    out
}

fn name_of(raw: &[u8; 64]) -> String {
    let end = raw.iter().position(|&b| b == 0).unwrap_or(raw.len());
    String::from_utf8_lossy(raw.get(..end).unwrap_or_default()).into_owned()
}

fn bits(len: usize) -> u32 {
    u32::try_from(len * 8).unwrap_or(u32::MAX)
}

fn limit(v: Option<u64>) -> u64 {
    v.unwrap_or(XFRM_INF)
}

fn unlimit(v: u64) -> Option<u64> {
    (v != XFRM_INF).then_some(v)
}

fn secs(v: Option<u64>) -> u64 {
    v.unwrap_or(0)
}

fn unsecs(v: u64) -> Option<u64> {
    (v != 0).then_some(v)
}

/// Whether the SA gets `XFRMA_REPLAY_ESN_VAL` (kernel "bmp"/"esn" replay
/// modes) rather than the 32-bit legacy window, as iproute2 decides.
pub(crate) fn uses_esn_attr(sa: &SaSpec) -> bool {
    sa.esn || sa.replay_window > 32
}

fn sa_info(sa: &SaSpec) -> UserSaInfo {
    let fam = family(&sa.id.dst);
    let mut info = UserSaInfo::default();
    if let Some(sel) = &sa.selector {
        info.selector = encode_selector(sel);
    }
    info.id = Id {
        daddr: Address::from_ip(&sa.id.dst),
        spi: sa.id.spi.0,
        proto: sa.id.proto.number(),
    };
    info.saddr = Address::from_ip(&sa.src);
    let l: &Lifetime = &sa.lifetime;
    info.lifetime_cfg = LifetimeConfig {
        soft_byte_limit: limit(l.soft_bytes),
        hard_byte_limit: limit(l.hard_bytes),
        soft_packet_limit: limit(l.soft_packets),
        hard_packet_limit: limit(l.hard_packets),
        soft_add_expires_seconds: secs(l.soft_add_secs),
        hard_add_expires_seconds: secs(l.hard_add_secs),
        soft_use_expires_seconds: 0,
        hard_use_expires_seconds: 0,
    };
    info.reqid = sa.reqid;
    info.family = fam;
    info.mode = mode_number(sa.mode);
    info.replay_window = if uses_esn_attr(sa) {
        0
    } else {
        sa.replay_window as u8
    };
    info.flags = if sa.esn { XFRM_STATE_ESN } else { 0 };
    info
}

fn crypto_attrs(c: &Crypto, out: &mut Vec<XfrmAttrs>) {
    match c {
        Crypto::Aead { alg, key, icv_bits } => out.push(XfrmAttrs::EncryptionAlgAead(AlgAead {
            alg_name: name64(alg.kernel_name()),
            alg_key_len: bits(key.len()),
            alg_icv_len: *icv_bits,
            alg_key: key.expose().to_vec(),
        })),
        Crypto::EncAuth {
            enc,
            enc_key,
            auth,
            auth_key,
        } => {
            out.push(XfrmAttrs::EncryptionAlg(Alg {
                alg_name: name64(enc.kernel_name()),
                alg_key_len: bits(enc_key.len()),
                alg_key: enc_key.expose().to_vec(),
            }));
            out.push(XfrmAttrs::AuthenticationAlgTrunc(AlgAuth {
                alg_name: name64(auth.kernel_name()),
                alg_key_len: bits(auth_key.len()),
                alg_trunc_len: auth.key_and_trunc().1,
                alg_key: auth_key.expose().to_vec(),
            }));
        }
    }
}

/// The ESN replay attribute for `window` and `state` (circular kernel layout).
/// Like iproute2, the bitmap words are left out when all are zero (the kernel
/// zero-fills them).
pub(crate) fn esn_attr(window: u32, state: &ReplayState) -> ReplayEsn {
    let bmp_len = replay::window_words(window) as u32;
    let bmp = replay::to_circular(&state.bitmap, state.seq, window, bmp_len);
    ReplayEsn {
        bmp_len,
        oseq: state.oseq as u32,
        seq: state.seq as u32,
        oseq_hi: (state.oseq >> 32) as u32,
        seq_hi: (state.seq >> 32) as u32,
        replay_window: window,
        bmp: if bmp.iter().all(|&w| w == 0) {
            Vec::new()
        } else {
            bmp
        },
    }
}

pub(crate) fn legacy_attr(state: &ReplayState) -> Replay {
    Replay {
        oseq: state.oseq as u32,
        seq: state.seq as u32,
        bitmap: state.bitmap.first().copied().unwrap_or(0),
    }
}

fn sa_attrs(sa: &SaSpec) -> Vec<XfrmAttrs> {
    let mut nlas = Vec::with_capacity(6);
    crypto_attrs(&sa.crypto, &mut nlas);
    if let Some(e) = &sa.encap {
        nlas.push(XfrmAttrs::EncapsulationTemplate(EncapTmpl {
            encap_type: UDP_ENCAP_ESPINUDP,
            encap_sport: e.sport,
            encap_dport: e.dport,
            encap_oa: Address::default(),
        }));
    }
    let fresh = ReplayState::default();
    let state = sa.replay_state.as_ref().unwrap_or(&fresh);
    if uses_esn_attr(sa) {
        nlas.push(XfrmAttrs::ReplayStateEsn(esn_attr(sa.replay_window, state)));
    } else if *state != fresh
        && (state.oseq != 0 || state.seq != 0 || state.bitmap.iter().any(|&w| w != 0))
    {
        nlas.push(XfrmAttrs::ReplayState(legacy_attr(state)));
    }
    if let Some(t) = &sa.replay_events {
        nlas.push(XfrmAttrs::ReplayThreshold(t.packets));
        nlas.push(XfrmAttrs::EventTimeThreshold(t.timer_jiffies));
    }
    nlas
}

/// XFRM_MSG_NEWSA (or UPDSA with `update`).
pub(crate) fn add(sa: &SaSpec, update: bool) -> XfrmMessage {
    let m = ModifyMessage {
        user_sa_info: sa_info(sa),
        nlas: sa_attrs(sa),
    };
    if update {
        XfrmMessage::UpdateSa(m)
    } else {
        XfrmMessage::AddSa(m)
    }
}

pub(crate) fn sa_id(id: &SaId) -> UserSaId {
    let mut u = UserSaId {
        spi: id.spi.0,
        proto: id.proto.number(),
        ..Default::default()
    };
    u.destination(&id.dst);
    u
}

/// XFRM_MSG_DELSA. iproute2 adds XFRMA_SRCADDR; baton identifies SAs by
/// (dst, SPI, proto) alone, which is what the kernel's lookup needs.
pub(crate) fn delete(id: &SaId) -> XfrmMessage {
    XfrmMessage::DeleteSa(DelGetMessage {
        user_sa_id: sa_id(id),
        nlas: vec![],
    })
}

/// XFRM_MSG_GETSA for one SA.
pub(crate) fn get(id: &SaId) -> XfrmMessage {
    XfrmMessage::GetSa(DelGetMessage {
        user_sa_id: sa_id(id),
        nlas: vec![],
    })
}

/// XFRM_MSG_GETSA dump of all SAs.
pub(crate) fn dump() -> XfrmMessage {
    XfrmMessage::GetDumpSa(GetDumpMessage { nlas: vec![] })
}

/// XFRM_MSG_ALLOCSPI. The larval SA is created in tunnel mode; the SA that
/// replaces it (UPDSA) brings its own mode.
pub(crate) fn alloc_spi(
    src: IpAddr,
    dst: IpAddr,
    proto: Protocol,
    reqid: u32,
    range: SpiRange,
) -> XfrmMessage {
    let mut info = UserSaInfo::default();
    info.id.daddr = Address::from_ip(&dst);
    info.id.proto = proto.number();
    info.saddr = Address::from_ip(&src);
    info.family = family(&dst);
    info.mode = XFRM_MODE_TUNNEL;
    info.reqid = reqid;
    // Zero limits, as iproute2 sends: the kernel gives larval SAs its own
    // lifetime (xfrm_acq_expires).
    info.lifetime_cfg = LifetimeConfig {
        soft_byte_limit: 0,
        hard_byte_limit: 0,
        soft_packet_limit: 0,
        hard_packet_limit: 0,
        soft_add_expires_seconds: 0,
        hard_add_expires_seconds: 0,
        soft_use_expires_seconds: 0,
        hard_use_expires_seconds: 0,
    };
    let spi_info = UserSpiInfo {
        info,
        min: range.min(),
        max: range.max(),
    };
    XfrmMessage::AllocSpi(AllocSpiMessage {
        spi_info,
        nlas: vec![],
    })
}

/// The SA's identity and reqid, for any SA (used by `flush_own`).
pub(crate) fn brief(info: &UserSaInfo) -> Result<(SaId, u32), String> {
    let dst = ip_of(&info.id.daddr, info.family)?;
    let proto = proto_of(info.id.proto)?;
    Ok((
        SaId {
            dst,
            spi: Spi(info.id.spi),
            proto,
        },
        info.reqid,
    ))
}

fn alg_key(bytes: &[u8], key_bits: u32) -> Result<Key, String> {
    let n = (key_bits as usize).div_ceil(8);
    bytes
        .get(..n)
        .map(Key::from_slice)
        .ok_or_else(|| "algorithm key shorter than its length".into())
}

fn decode_crypto(nlas: &[XfrmAttrs]) -> Result<Crypto, String> {
    let mut enc = None;
    let mut auth = None;
    for nla in nlas {
        match nla {
            XfrmAttrs::EncryptionAlgAead(a) => {
                let name = name_of(&a.alg_name);
                let alg = [AeadAlgorithm::AesGcm, AeadAlgorithm::ChaCha20Poly1305]
                    .into_iter()
                    .find(|x| x.kernel_name() == name)
                    .ok_or_else(|| format!("AEAD {name} is not one baton uses"))?;
                return Ok(Crypto::Aead {
                    alg,
                    key: alg_key(&a.alg_key, a.alg_key_len)?,
                    icv_bits: a.alg_icv_len,
                });
            }
            XfrmAttrs::EncryptionAlg(a) => enc = Some(a),
            XfrmAttrs::AuthenticationAlgTrunc(a) => auth = Some(a),
            _ => {}
        }
    }
    let (Some(e), Some(a)) = (enc, auth) else {
        return Err("SA without AEAD or encryption+integrity algorithms".into());
    };
    let ename = name_of(&e.alg_name);
    if ename != EncAlgorithm::AesCbc.kernel_name() {
        return Err(format!("encryption {ename} is not one baton uses"));
    }
    let aname = name_of(&a.alg_name);
    let auth_alg = [
        AuthAlgorithm::HmacSha256,
        AuthAlgorithm::HmacSha384,
        AuthAlgorithm::HmacSha512,
    ]
    .into_iter()
    .find(|x| x.kernel_name() == aname)
    .ok_or_else(|| format!("integrity {aname} is not one baton uses"))?;
    Ok(Crypto::EncAuth {
        enc: EncAlgorithm::AesCbc,
        enc_key: alg_key(&e.alg_key, e.alg_key_len)?,
        auth: auth_alg,
        auth_key: alg_key(&a.alg_key, a.alg_key_len)?,
    })
}

/// Replay window and state from an SA's or an event's attributes.
pub(crate) fn decode_replay(nlas: &[XfrmAttrs], legacy_window: u32) -> (u32, ReplayState) {
    for nla in nlas {
        if let XfrmAttrs::ReplayStateEsn(r) = nla {
            let seq = (u64::from(r.seq_hi) << 32) | u64::from(r.seq);
            let oseq = (u64::from(r.oseq_hi) << 32) | u64::from(r.oseq);
            let bitmap = replay::from_circular(&r.bmp, seq, r.replay_window);
            return (r.replay_window, ReplayState { oseq, seq, bitmap });
        }
    }
    for nla in nlas {
        if let XfrmAttrs::ReplayState(r) = nla {
            let state = ReplayState {
                oseq: u64::from(r.oseq),
                seq: u64::from(r.seq),
                bitmap: vec![r.bitmap],
            };
            return (legacy_window, state);
        }
    }
    (
        legacy_window,
        ReplayState {
            bitmap: vec![0],
            ..Default::default()
        },
    )
}

/// An SA read back from the kernel.
pub(crate) fn decode(info: &UserSaInfo, nlas: &[XfrmAttrs]) -> Result<SaInfo, String> {
    let (id, reqid) = brief(info)?;
    let src = ip_of(&info.saddr, info.family)?;
    let crypto = decode_crypto(nlas)?;
    let encap = nlas.iter().find_map(|n| match n {
        XfrmAttrs::EncapsulationTemplate(e) if e.encap_type == UDP_ENCAP_ESPINUDP => {
            Some(UdpEncap {
                sport: e.encap_sport,
                dport: e.encap_dport,
            })
        }
        _ => None,
    });
    let (replay_window, state) = decode_replay(nlas, u32::from(info.replay_window));
    let packets = nlas.iter().find_map(|n| match n {
        XfrmAttrs::ReplayThreshold(v) => Some(*v),
        _ => None,
    });
    let timer = nlas.iter().find_map(|n| match n {
        XfrmAttrs::EventTimeThreshold(v) => Some(*v),
        _ => None,
    });
    let replay_events = match (packets, timer) {
        (None, None) => None,
        (p, t) => Some(ReplayEventThresholds {
            packets: p.unwrap_or(0),
            timer_jiffies: t.unwrap_or(0),
        }),
    };
    let sel = &info.selector;
    let unspecified = sel.prefixlen_s == 0
        && sel.prefixlen_d == 0
        && sel.proto == 0
        && sel.sport == 0
        && sel.dport == 0
        && sel.saddr == Address::default()
        && sel.daddr == Address::default();
    let selector = if unspecified {
        None
    } else {
        Some(decode_selector(sel, info.family)?)
    };
    let l = &info.lifetime_cfg;
    let spec = SaSpec {
        id,
        src,
        mode: mode_of(info.mode)?,
        reqid,
        crypto,
        encap,
        esn: info.flags & XFRM_STATE_ESN != 0,
        replay_window,
        lifetime: Lifetime {
            soft_bytes: unlimit(l.soft_byte_limit),
            hard_bytes: unlimit(l.hard_byte_limit),
            soft_packets: unlimit(l.soft_packet_limit),
            hard_packets: unlimit(l.hard_packet_limit),
            soft_add_secs: unsecs(l.soft_add_expires_seconds),
            hard_add_secs: unsecs(l.hard_add_expires_seconds),
        },
        selector,
        replay_state: Some(state),
        replay_events,
    };
    let c = &info.lifetime_cur;
    Ok(SaInfo {
        spec,
        counters: SaCounters {
            bytes: c.bytes,
            packets: c.packets,
            add_time: c.add_time,
            use_time: c.use_time,
        },
        stats: SaStats {
            replay_window: info.stats.replay_window,
            replay: info.stats.replay,
            integrity_failed: info.stats.integrity_failed,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::{ReplayEventThresholds, SaSpec};
    use crate::wire::{Expect, encode, parse_xfrm};

    fn round_trip(spec: &SaSpec) -> SaInfo {
        let req = encode(add(spec, false), 1, Expect::Ack);
        let ty = u16::from_ne_bytes([req.bytes[4], req.bytes[5]]);
        let Some(XfrmMessage::AddSa(m)) = parse_xfrm(ty, &req.bytes[16..]).unwrap() else {
            panic!("not a NEWSA")
        };
        decode(&m.user_sa_info, &m.nlas).unwrap()
    }

    #[test]
    fn encode_then_decode_gives_the_spec_back() {
        let crypto = Crypto::EncAuth {
            enc: EncAlgorithm::AesCbc,
            enc_key: Key::from_slice(&[7; 32]),
            auth: AuthAlgorithm::HmacSha512,
            auth_key: Key::from_slice(&[9; 64]),
        };
        let mut s = SaSpec::new(
            SaId::esp("2001:db8::1".parse().unwrap(), Spi(0xdead_beef)),
            "2001:db8::2".parse().unwrap(),
            Mode::Transport,
            77,
            crypto,
        );
        s.esn = true;
        s.replay_window = 256;
        s.encap = Some(UdpEncap {
            sport: 4500,
            dport: 1234,
        });
        s.lifetime = Lifetime {
            soft_packets: Some(10),
            hard_bytes: Some(99),
            ..Default::default()
        };
        s.replay_events = Some(ReplayEventThresholds {
            packets: 32,
            timer_jiffies: 500,
        });
        let mut bitmap = vec![0u32; 8];
        bitmap[0] = 0b1011;
        bitmap[7] = 1 << 31;
        s.replay_state = Some(ReplayState {
            oseq: (3 << 32) | 17,
            seq: (2 << 32) | 1000,
            bitmap,
        });
        s.selector = Some(Selector {
            proto: 6,
            src_port: 0,
            dst_port: 443,
            ..Selector::new(Prefix::host(s.src), Prefix::host(s.id.dst)).unwrap()
        });
        let got = round_trip(&s);
        assert_eq!(got.spec, s);

        // Legacy window with state, no ESN.
        let mut l = SaSpec::new(
            SaId::esp("192.0.2.1".parse().unwrap(), Spi(0x1000)),
            "192.0.2.2".parse().unwrap(),
            Mode::Tunnel,
            5,
            Crypto::Aead {
                alg: AeadAlgorithm::ChaCha20Poly1305,
                key: Key::from_slice(&[1; 36]),
                icv_bits: 128,
            },
        );
        l.replay_state = Some(ReplayState {
            oseq: 5,
            seq: 9,
            bitmap: vec![0b101],
        });
        assert_eq!(round_trip(&l).spec, l);
    }
}
