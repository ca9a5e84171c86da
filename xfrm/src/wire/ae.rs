//! Replay state and counters through XFRM_MSG_GETAE/NEWAE (kernel
//! documentation networking/xfrm_sync), and the multicast events
//! (XFRMNLGRP_EXPIRE, XFRMNLGRP_AEVENTS).

use netlink_packet_xfrm::{
    AsyncEventId, XfrmAttrs, XfrmMessage,
    constants::{XFRM_AE_CE, XFRM_AE_CR, XFRM_AE_CU, XFRM_AE_RVAL},
    monitor::{GetAsyncEventMessage, NewAsyncEventMessage},
};

use super::sa::{brief, esn_attr, legacy_attr, proto_of, sa_id};
use crate::types::{DataplaneEvent, ReplayEventCause, ReplayState, SaCounters, SaId, Spi};

/// The kernel's replay layout of an SA, as a GETAE answer shows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum KernelReplay {
    /// `XFRMA_REPLAY_VAL`: 32-bit counters, one bitmap word.
    Legacy,
    /// `XFRMA_REPLAY_ESN_VAL` with this window (bits).
    Esn { window: u32 },
}

/// What a GETAE answer (or an AEVENTS message) carries.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct AeAnswer {
    pub(crate) sa: SaId,
    pub(crate) reqid: u32,
    pub(crate) flags: u32,
    pub(crate) layout: KernelReplay,
    pub(crate) state: ReplayState,
    pub(crate) counters: SaCounters,
}

fn ae_id(id: &SaId, flags: u32) -> AsyncEventId {
    AsyncEventId {
        sa_id: sa_id(id),
        flags,
        ..Default::default()
    }
}

/// XFRM_MSG_GETAE. (The kernel answers with XFRM_MSG_NEWAE.)
pub(crate) fn get(id: &SaId) -> XfrmMessage {
    XfrmMessage::GetAsyncEvent(GetAsyncEventMessage { id: ae_id(id, 0) })
}

/// XFRM_MSG_NEWAE setting the replay state, in the SA's kernel layout. The
/// request needs NLM_F_REPLACE; ESN bitmaps are sent whole because the
/// kernel checks their length against the SA's.
pub(crate) fn set(id: &SaId, layout: KernelReplay, state: &ReplayState) -> XfrmMessage {
    let attr = match layout {
        KernelReplay::Legacy => XfrmAttrs::ReplayState(legacy_attr(state)),
        KernelReplay::Esn { window } => {
            let mut esn = esn_attr(window, state);
            esn.bmp.resize(esn.bmp_len as usize, 0);
            XfrmAttrs::ReplayStateEsn(esn)
        }
    };
    XfrmMessage::NewAsyncEvent(NewAsyncEventMessage {
        id: ae_id(id, XFRM_AE_RVAL),
        nlas: vec![attr],
    })
}

/// Decodes a NEWAE message (GETAE answer or AEVENTS multicast).
pub(crate) fn decode(m: &NewAsyncEventMessage) -> Result<AeAnswer, String> {
    let s = &m.id.sa_id;
    let dst = super::sa::ip_of(&s.daddr, s.family)?;
    let sa = SaId {
        dst,
        spi: Spi(s.spi),
        proto: proto_of(s.proto)?,
    };
    let mut layout = KernelReplay::Legacy;
    let mut state = ReplayState {
        bitmap: vec![0],
        ..Default::default()
    };
    let mut counters = SaCounters::default();
    let mut seen_replay = false;
    for nla in &m.nlas {
        match nla {
            XfrmAttrs::ReplayStateEsn(r) => {
                layout = KernelReplay::Esn {
                    window: r.replay_window,
                };
                seen_replay = true;
            }
            XfrmAttrs::ReplayState(_) => seen_replay = true,
            XfrmAttrs::LifetimeBytes(l) => {
                counters = SaCounters {
                    bytes: l.bytes,
                    packets: l.packets,
                    add_time: l.add_time,
                    use_time: l.use_time,
                };
            }
            _ => {}
        }
    }
    if !seen_replay {
        return Err("NEWAE without replay state".into());
    }
    let (_, decoded) = super::sa::decode_replay(&m.nlas, 32);
    state.oseq = decoded.oseq;
    state.seq = decoded.seq;
    state.bitmap = decoded.bitmap;
    Ok(AeAnswer {
        sa,
        reqid: m.id.reqid,
        flags: m.id.flags,
        layout,
        state,
        counters,
    })
}

fn cause(flags: u32) -> ReplayEventCause {
    if flags & XFRM_AE_CR != 0 {
        ReplayEventCause::Threshold
    } else if flags & XFRM_AE_CE != 0 {
        ReplayEventCause::Timer
    } else if flags & XFRM_AE_CU != 0 {
        ReplayEventCause::Update
    } else {
        ReplayEventCause::Other(flags)
    }
}

/// Turns a multicast message into an event; `None` for messages that are not
/// ESP expire or replay events.
pub(crate) fn event(msg: &XfrmMessage) -> Result<Option<DataplaneEvent>, String> {
    match msg {
        XfrmMessage::Expire(e) => {
            let Ok((sa, reqid)) = brief(&e.expire.state) else {
                return Ok(None);
            };
            Ok(Some(if e.expire.hard != 0 {
                DataplaneEvent::HardExpire { sa, reqid }
            } else {
                DataplaneEvent::SoftExpire { sa, reqid }
            }))
        }
        XfrmMessage::NewAsyncEvent(m) => {
            let a = decode(m)?;
            Ok(Some(DataplaneEvent::Replay {
                sa: a.sa,
                reqid: a.reqid,
                state: a.state,
                counters: a.counters,
                cause: cause(a.flags),
            }))
        }
        _ => Ok(None),
    }
}
