//! Policies: `PolicySpec` ↔ XFRM_MSG_NEWPOLICY/UPDPOLICY/DELPOLICY and dumps.

use netlink_packet_xfrm::{
    Address, Id, UserPolicyId, UserPolicyInfo, UserTemplate, XfrmAttrs, XfrmMessage,
    constants::{
        XFRM_MSG_GETPOLICY, XFRM_POLICY_ALLOW, XFRM_POLICY_BLOCK, XFRM_POLICY_FWD, XFRM_POLICY_IN,
        XFRM_POLICY_OUT,
    },
    policy::{DelGetMessage, ModifyMessage},
};

use super::sa::{decode_selector, encode_selector, family, ip_of, mode_number, mode_of, proto_of};
use crate::types::{Direction, Mode, PolicyAction, PolicyId, PolicySpec, Template};

fn dir_number(d: Direction) -> u8 {
    match d {
        Direction::In => XFRM_POLICY_IN,
        Direction::Out => XFRM_POLICY_OUT,
        Direction::Fwd => XFRM_POLICY_FWD,
    }
}

fn dir_of(n: u8) -> Result<Direction, String> {
    match n {
        XFRM_POLICY_IN => Ok(Direction::In),
        XFRM_POLICY_OUT => Ok(Direction::Out),
        XFRM_POLICY_FWD => Ok(Direction::Fwd),
        other => Err(format!("policy direction {other} (socket policy?)")),
    }
}

fn template(t: &Template, selector_family: u16) -> UserTemplate {
    let mut u = UserTemplate {
        reqid: t.reqid,
        mode: mode_number(t.mode),
        ..Default::default()
    };
    u.id = Id {
        daddr: Address::default(),
        spi: 0,
        proto: t.proto.number(),
    };
    u.family = selector_family;
    if let (Mode::Tunnel, Some((src, dst))) = (t.mode, t.tunnel) {
        u.id.daddr = Address::from_ip(&dst);
        u.saddr = Address::from_ip(&src);
        u.family = family(&dst);
    }
    u
}

fn info(p: &PolicySpec) -> UserPolicyInfo {
    UserPolicyInfo {
        selector: encode_selector(&p.selector),
        priority: p.priority,
        direction: dir_number(p.dir),
        action: match p.action {
            PolicyAction::Allow => XFRM_POLICY_ALLOW,
            PolicyAction::Block => XFRM_POLICY_BLOCK,
        },
        ..Default::default()
    }
}

/// XFRM_MSG_NEWPOLICY (or UPDPOLICY with `update`).
pub(crate) fn add(p: &PolicySpec, update: bool) -> XfrmMessage {
    let fam = family(&p.selector.src.addr());
    let mut nlas = Vec::new();
    if !p.templates.is_empty() {
        nlas.push(XfrmAttrs::Template(
            p.templates.iter().map(|t| template(t, fam)).collect(),
        ));
    }
    let m = ModifyMessage {
        user_policy_info: info(p),
        nlas,
    };
    if update {
        XfrmMessage::UpdatePolicy(m)
    } else {
        XfrmMessage::AddPolicy(m)
    }
}

/// XFRM_MSG_DELPOLICY by selector and direction.
pub(crate) fn delete(id: &PolicyId) -> XfrmMessage {
    XfrmMessage::DeletePolicy(DelGetMessage {
        user_policy_id: UserPolicyId {
            selector: encode_selector(&id.selector),
            index: 0,
            direction: dir_number(id.dir),
        },
        nlas: vec![],
    })
}

/// XFRM_MSG_GETPOLICY dump (empty payload, as iproute2 sends it).
pub(crate) fn dump() -> XfrmMessage {
    XfrmMessage::Other((XFRM_MSG_GETPOLICY, vec![]))
}

/// A policy read back from the kernel.
pub(crate) fn decode(m: &ModifyMessage) -> Result<PolicySpec, String> {
    let i = &m.user_policy_info;
    let selector = decode_selector(&i.selector, i.selector.family)?;
    let mut templates = Vec::new();
    for nla in &m.nlas {
        if let XfrmAttrs::Template(ts) = nla {
            for t in ts {
                let mode = mode_of(t.mode)?;
                let tunnel = match mode {
                    Mode::Tunnel => {
                        Some((ip_of(&t.saddr, t.family)?, ip_of(&t.id.daddr, t.family)?))
                    }
                    Mode::Transport => None,
                };
                templates.push(Template {
                    proto: proto_of(t.id.proto)?,
                    mode,
                    reqid: t.reqid,
                    tunnel,
                });
            }
        }
    }
    Ok(PolicySpec {
        selector,
        dir: dir_of(i.direction)?,
        priority: i.priority,
        action: match i.action {
            XFRM_POLICY_BLOCK => PolicyAction::Block,
            _ => PolicyAction::Allow,
        },
        templates,
    })
}
