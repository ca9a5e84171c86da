//! Sans-IO netlink framing for XFRM: building requests, and matching the
//! kernel's answers to them (a small request/answer correlator in the style of
//! netlink-proto's `Protocol`). No sockets here; `kernel.rs` does the I/O.

pub(crate) mod ae;
pub(crate) mod policy;
pub(crate) mod sa;

use netlink_packet_core::{
    NLM_F_ACK, NLM_F_DUMP, NLM_F_REQUEST, NetlinkHeader, NetlinkMessage, NetlinkPayload,
};
use netlink_packet_xfrm::{
    XFRM_ASYNC_EVENT_ID_LEN, XFRM_USER_EXPIRE_LEN, XFRM_USER_POLICY_INFO_LEN, XFRM_USER_SA_INFO_LEN,
};
use netlink_packet_xfrm::{
    XfrmAttrs, XfrmMessage,
    constants::{
        XFRM_MSG_EXPIRE, XFRM_MSG_NEWAE, XFRM_MSG_NEWPOLICY, XFRM_MSG_NEWSA, XFRM_MSG_UPDPOLICY,
        XFRM_MSG_UPDSA,
    },
};
use zeroize::{Zeroize, Zeroizing};

const NLMSG_HDRLEN: usize = 16;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const NLM_F_CAPPED: u16 = 0x100;
const NLM_F_ACK_TLVS: u16 = 0x200;
const NLMSGERR_ATTR_MSG: u16 = 1;

/// How a request is answered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Expect {
    /// An ACK (NLMSG_ERROR with code 0) or an error.
    Ack,
    /// One answer message (GETSA, GETAE, ALLOCSPI) or an error.
    Reply,
    /// A multipart dump ended by NLMSG_DONE.
    Dump,
}

/// A serialized request. The buffer may hold keys: it is zeroized on drop.
pub(crate) struct Request {
    pub(crate) bytes: Zeroizing<Vec<u8>>,
}

/// Removes key copies from a message built for the kernel or parsed from it.
pub(crate) fn scrub(msg: &mut XfrmMessage) {
    let nlas = match msg {
        XfrmMessage::AddSa(m) | XfrmMessage::UpdateSa(m) => &mut m.nlas,
        XfrmMessage::GetSa(m) | XfrmMessage::DeleteSa(m) => &mut m.nlas,
        _ => return,
    };
    for nla in nlas.iter_mut() {
        match nla {
            XfrmAttrs::EncryptionAlgAead(a) => a.alg_key.zeroize(),
            XfrmAttrs::EncryptionAlg(a) | XfrmAttrs::AuthenticationAlg(a) => a.alg_key.zeroize(),
            XfrmAttrs::AuthenticationAlgTrunc(a) => a.alg_key.zeroize(),
            _ => {}
        }
    }
}

/// Serializes `msg` with sequence number `seq`, then scrubs its key copies.
pub(crate) fn encode(msg: XfrmMessage, seq: u32, expect: Expect) -> Request {
    let mut header = NetlinkHeader::default();
    header.flags = NLM_F_REQUEST
        | match expect {
            Expect::Ack => NLM_F_ACK,
            Expect::Reply => 0,
            Expect::Dump => NLM_F_DUMP,
        };
    header.sequence_number = seq;
    let mut nl = NetlinkMessage::new(header, NetlinkPayload::InnerMessage(msg));
    nl.finalize();
    let mut bytes = Zeroizing::new(vec![0u8; nl.buffer_len()]);
    nl.serialize(&mut bytes);
    if let NetlinkPayload::InnerMessage(inner) = &mut nl.payload {
        scrub(inner);
    }
    Request { bytes }
}

/// The kernel's refusal of a request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Nack {
    /// Positive errno.
    pub(crate) errno: i32,
    /// Extended ACK message (NLMSGERR_ATTR_MSG), if the kernel sent one.
    pub(crate) message: Option<String>,
}

/// Progress of one request/answer exchange.
#[derive(Debug)]
pub(crate) enum Progress {
    /// More datagrams are needed.
    Pending,
    /// Complete, with the answer messages (none for a plain ACK).
    Done(Vec<XfrmMessage>),
    /// The kernel refused.
    Refused(Nack),
}

/// Matches the kernel's datagrams to one outstanding request by sequence
/// number; datagrams for other sequence numbers (stale answers) are skipped.
#[derive(Debug)]
pub(crate) struct Exchange {
    seq: u32,
    expect: Expect,
    answers: Vec<XfrmMessage>,
}

impl Exchange {
    pub(crate) fn new(seq: u32, expect: Expect) -> Self {
        Self {
            seq,
            expect,
            answers: Vec::new(),
        }
    }

    /// Feeds one received datagram (may hold several netlink messages).
    pub(crate) fn on_datagram(&mut self, buf: &[u8]) -> Result<Progress, String> {
        for msg in split(buf) {
            let (header, payload) = msg?;
            if header.seq != self.seq {
                continue;
            }
            match header.ty {
                NLMSG_ERROR => {
                    let nack = parse_error(header.flags, payload)?;
                    return Ok(match nack {
                        None if self.expect == Expect::Dump => continue,
                        None => Progress::Done(std::mem::take(&mut self.answers)),
                        Some(n) => Progress::Refused(n),
                    });
                }
                NLMSG_DONE => {
                    let code = payload
                        .get(..4)
                        .map_or(0, |b| i32::from_ne_bytes([b[0], b[1], b[2], b[3]]));
                    if code < 0 {
                        return Ok(Progress::Refused(Nack {
                            errno: -code,
                            message: None,
                        }));
                    }
                    return Ok(Progress::Done(std::mem::take(&mut self.answers)));
                }
                ty => {
                    if let Some(m) = parse_xfrm(ty, payload)? {
                        self.answers.push(m);
                    }
                    if self.expect == Expect::Reply {
                        return Ok(Progress::Done(std::mem::take(&mut self.answers)));
                    }
                }
            }
        }
        Ok(Progress::Pending)
    }
}

impl Drop for Exchange {
    fn drop(&mut self) {
        self.answers.iter_mut().for_each(scrub);
    }
}

#[derive(Clone, Copy, Debug)]
pub(crate) struct Header {
    pub(crate) ty: u16,
    pub(crate) flags: u16,
    pub(crate) seq: u32,
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    let s = b.get(at..at + 4)?;
    Some(u32::from_ne_bytes([s[0], s[1], s[2], s[3]]))
}

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    let s = b.get(at..at + 2)?;
    Some(u16::from_ne_bytes([s[0], s[1]]))
}

/// Splits a datagram into (header, payload) pairs, checking every length.
pub(crate) fn split(buf: &[u8]) -> impl Iterator<Item = Result<(Header, &[u8]), String>> {
    let mut off = 0usize;
    std::iter::from_fn(move || {
        let rest = buf.get(off..)?;
        if rest.is_empty() {
            return None;
        }
        let parsed = (|| {
            let len = u32_at(rest, 0)? as usize;
            let header = Header {
                ty: u16_at(rest, 4)?,
                flags: u16_at(rest, 6)?,
                seq: u32_at(rest, 8)?,
            };
            if len < NLMSG_HDRLEN {
                return None;
            }
            let payload = rest.get(NLMSG_HDRLEN..len)?;
            Some((header, payload, len))
        })();
        match parsed {
            Some((header, payload, len)) => {
                off = off.saturating_add((len + 3) & !3);
                Some(Ok((header, payload)))
            }
            None => {
                off = buf.len();
                Some(Err(format!("truncated netlink message at offset {off}")))
            }
        }
    })
}

/// Parses an NLMSG_ERROR payload: `None` for an ACK, else the errno and the
/// extended-ACK text.
fn parse_error(flags: u16, payload: &[u8]) -> Result<Option<Nack>, String> {
    let code = u32_at(payload, 0).ok_or("short NLMSG_ERROR")? as i32;
    if code == 0 {
        return Ok(None);
    }
    let mut message = None;
    if flags & NLM_F_ACK_TLVS != 0 {
        // After the code comes the request's header, and its payload unless capped.
        let orig_len = if flags & NLM_F_CAPPED != 0 {
            NLMSG_HDRLEN
        } else {
            u32_at(payload, 4).map_or(NLMSG_HDRLEN, |l| l as usize)
        };
        let mut off = 4 + ((orig_len + 3) & !3);
        while let (Some(len), Some(kind)) = (u16_at(payload, off), u16_at(payload, off + 2)) {
            let len = len as usize;
            if len < 4 {
                break;
            }
            if kind & 0x3fff == NLMSGERR_ATTR_MSG
                && let Some(v) = payload.get(off + 4..off + len)
            {
                let text = v.split(|&c| c == 0).next().unwrap_or_default();
                message = Some(String::from_utf8_lossy(text).into_owned());
            }
            off += (len + 3) & !3;
        }
    }
    Ok(Some(Nack {
        errno: code.checked_neg().unwrap_or(i32::MAX),
        message,
    }))
}

/// Decodes an XFRM message, after checking its fixed part is complete
/// (netlink-packet-xfrm slices without checking). Types baton does not use
/// are skipped.
pub(crate) fn parse_xfrm(ty: u16, payload: &[u8]) -> Result<Option<XfrmMessage>, String> {
    use netlink_packet_core::ParseableParametrized;
    let min = match ty {
        XFRM_MSG_NEWSA | XFRM_MSG_UPDSA => XFRM_USER_SA_INFO_LEN,
        XFRM_MSG_NEWPOLICY | XFRM_MSG_UPDPOLICY => XFRM_USER_POLICY_INFO_LEN,
        XFRM_MSG_NEWAE => XFRM_ASYNC_EVENT_ID_LEN,
        XFRM_MSG_EXPIRE => XFRM_USER_EXPIRE_LEN,
        _ => return Ok(None),
    };
    if payload.len() < min {
        return Err(format!(
            "XFRM message type {ty:#x} of {} bytes, need {min}",
            payload.len()
        ));
    }
    XfrmMessage::parse_with_param(payload, ty)
        .map(Some)
        .map_err(|e| format!("XFRM message type {ty:#x}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nlmsg(ty: u16, flags: u16, seq: u32, payload: &[u8]) -> Vec<u8> {
        let len = (16 + payload.len()) as u32;
        let mut v = Vec::new();
        v.extend_from_slice(&len.to_ne_bytes());
        v.extend_from_slice(&ty.to_ne_bytes());
        v.extend_from_slice(&flags.to_ne_bytes());
        v.extend_from_slice(&seq.to_ne_bytes());
        v.extend_from_slice(&0u32.to_ne_bytes());
        v.extend_from_slice(payload);
        while v.len() % 4 != 0 {
            v.push(0);
        }
        v
    }

    fn error_payload(code: i32, text: Option<&str>) -> Vec<u8> {
        let mut p = code.to_ne_bytes().to_vec();
        p.extend_from_slice(&nlmsg(0x10, 5, 7, &[])); // the echoed request header (capped)
        if let Some(t) = text {
            let mut attr = Vec::new();
            let len = (4 + t.len() + 1) as u16;
            attr.extend_from_slice(&len.to_ne_bytes());
            attr.extend_from_slice(&NLMSGERR_ATTR_MSG.to_ne_bytes());
            attr.extend_from_slice(t.as_bytes());
            attr.push(0);
            while attr.len() % 4 != 0 {
                attr.push(0);
            }
            p.extend_from_slice(&attr);
        }
        p
    }

    #[test]
    fn ack_completes_and_stale_answers_are_skipped() {
        let mut ex = Exchange::new(7, Expect::Ack);
        let mut dgram = nlmsg(NLMSG_ERROR, 0, 6, &error_payload(-17, None));
        dgram.extend(nlmsg(NLMSG_ERROR, 0, 7, &error_payload(0, None)));
        assert!(matches!(ex.on_datagram(&dgram), Ok(Progress::Done(v)) if v.is_empty()));
    }

    #[test]
    fn nack_carries_errno_and_extended_ack_text() {
        let mut ex = Exchange::new(7, Expect::Ack);
        let p = error_payload(-93, Some("Requested type not found"));
        let d = nlmsg(NLMSG_ERROR, NLM_F_CAPPED | NLM_F_ACK_TLVS, 7, &p);
        match ex.on_datagram(&d) {
            Ok(Progress::Refused(n)) => {
                assert_eq!(n.errno, 93);
                assert_eq!(n.message.as_deref(), Some("Requested type not found"));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn truncated_and_short_messages_are_errors_not_panics() {
        let mut ex = Exchange::new(1, Expect::Dump);
        let mut d = nlmsg(XFRM_MSG_NEWSA, 2, 1, &[0u8; 8]);
        assert!(ex.on_datagram(&d).is_err(), "short NEWSA must be refused");
        d.truncate(10);
        assert!(ex.on_datagram(&d).is_err());
        let bad_len = [0xffu8, 0xff, 0, 0, 0x10, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0];
        assert!(ex.on_datagram(&bad_len).is_err());
        assert!(matches!(ex.on_datagram(&[]), Ok(Progress::Pending)));
    }

    #[test]
    fn dump_runs_until_done() {
        let mut ex = Exchange::new(3, Expect::Dump);
        assert!(matches!(
            ex.on_datagram(&nlmsg(NLMSG_ERROR, 0, 3, &error_payload(0, None))),
            Ok(Progress::Pending)
        ));
        assert!(
            matches!(ex.on_datagram(&nlmsg(NLMSG_DONE, 2, 3, &0i32.to_ne_bytes())), Ok(Progress::Done(v)) if v.is_empty())
        );
    }
}

#[cfg(test)]
mod robustness {
    use super::*;

    /// Random and mutated kernel answers never panic the parser (the house
    /// rule: no panic on input, even from the kernel).
    #[test]
    fn random_datagrams_do_not_panic() {
        let mut rng = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move || {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng
        };
        // Seeds: real answers (encoded requests of each kind) to mutate.
        let sa = crate::types::SaSpec::new(
            crate::types::SaId::esp("10.0.0.1".parse().unwrap(), crate::types::Spi(0x1234)),
            "10.0.0.2".parse().unwrap(),
            crate::types::Mode::Tunnel,
            1,
            crate::types::Crypto::Aead {
                alg: crate::types::AeadAlgorithm::AesGcm,
                key: crate::types::Key::from_slice(&[1; 20]),
                icv_bits: 128,
            },
        );
        let seeds: Vec<Vec<u8>> = vec![
            encode(sa::add(&sa, false), 1, Expect::Dump).bytes.to_vec(),
            encode(ae::get(&sa.id), 1, Expect::Dump).bytes.to_vec(),
            encode(
                ae::set(
                    &sa.id,
                    ae::KernelReplay::Esn { window: 64 },
                    &Default::default(),
                ),
                1,
                Expect::Dump,
            )
            .bytes
            .to_vec(),
        ];
        for round in 0..3_000u32 {
            let mut d = seeds[(round % 3) as usize].clone();
            // Answer types the parser decodes: NEWSA, NEWPOLICY, NEWAE, EXPIRE, ERROR, DONE.
            let ty: u16 = [0x10, 0x13, 0x1e, 0x18, 2, 3][(next() % 6) as usize];
            d[4..6].copy_from_slice(&ty.to_ne_bytes());
            for _ in 0..(next() % 8) {
                let i = (next() as usize) % d.len();
                d[i] = next() as u8;
            }
            if next() % 4 == 0 {
                d.truncate((next() as usize) % d.len());
            }
            let mut ex = Exchange::new(1, Expect::Dump);
            let _ = ex.on_datagram(&d);
            for (h, p) in split(&d).map_while(Result::ok) {
                if let Ok(Some(m)) = parse_xfrm(h.ty, p) {
                    let _ = ae::event(&m);
                    if let XfrmMessage::AddSa(m) = &m {
                        let _ = sa::decode(&m.user_sa_info, &m.nlas);
                    }
                    if let XfrmMessage::AddPolicy(m) = &m {
                        let _ = policy::decode(m);
                    }
                }
            }
        }
    }
}
