//! CREATE_CHILD_SA, responder side (RFC 7296 §1.3): a new Child SA, a Child SA rekey
//! (§1.3.3) and an IKE SA rekey (§1.3.2, §2.18).

use std::time::Instant;

use crate::crypto::SecretBytes;
use crate::crypto::keys::{derive_ike_sa_keys, key_lengths, skeyseed_rekey};
use crate::endpoint::{Effect, Endpoint, SaEvent};
use crate::policy::proposal::{SelectError, select_child, select_ike};
use crate::sa::{ChildSaState, IkeSa, IkeSaState, MessageIdWindow, SpiPair};
use crate::wire::{
    IkeSpi, KeGroup, KePayload, NoncePayload, NotifyType, Payload, ProtocolId, SaPayload,
    TrafficSelector, TsPayload,
};

use super::established::AfterResponse;
use super::init::status_notify;

struct ChildRequest<'a> {
    sa: Option<&'a SaPayload>,
    ni: Option<&'a [u8]>,
    ke: Option<&'a KePayload>,
    tsi: Option<&'a TsPayload>,
    tsr: Option<&'a TsPayload>,
    rekey_spi: Option<u32>,
    transport: bool,
}

fn sort_out(payloads: &[Payload]) -> ChildRequest<'_> {
    let mut r = ChildRequest {
        sa: None,
        ni: None,
        ke: None,
        tsi: None,
        tsr: None,
        rekey_spi: None,
        transport: false,
    };
    for p in payloads {
        match p {
            Payload::Sa(x) => r.sa = Some(x),
            Payload::Nonce(x) => r.ni = Some(&x.data),
            Payload::Ke(x) => r.ke = Some(x),
            Payload::TsI(x) => r.tsi = Some(x),
            Payload::TsR(x) => r.tsr = Some(x),
            Payload::Notify(n) if n.notify_type == NotifyType::REKEY_SA => {
                r.rekey_spi = <[u8; 4]>::try_from(n.spi.as_slice())
                    .ok()
                    .map(u32::from_be_bytes);
            }
            Payload::Notify(n) if n.notify_type == NotifyType::USE_TRANSPORT_MODE => {
                r.transport = true;
            }
            _ => {}
        }
    }
    r
}

fn error(n: NotifyType) -> (Vec<Payload>, AfterResponse) {
    (vec![status_notify(n, Vec::new())], AfterResponse::Keep)
}

fn invalid_ke(g: KeGroup) -> (Vec<Payload>, AfterResponse) {
    (
        vec![status_notify(
            NotifyType::INVALID_KE_PAYLOAD,
            g.0.to_be_bytes().to_vec(),
        )],
        AfterResponse::Keep,
    )
}

impl Endpoint {
    pub(crate) fn respond_create_child(
        &mut self,
        now: Instant,
        sa: &mut IkeSa,
        payloads: &[Payload],
    ) -> (Vec<Payload>, AfterResponse) {
        let req = sort_out(payloads);
        let (Some(offer), Some(ni)) = (req.sa, req.ni) else {
            return error(NotifyType::INVALID_SYNTAX);
        };
        if sa.state != IkeSaState::Established {
            // §2.25: a rekeyed or deleting IKE SA takes no new Child SAs.
            return error(NotifyType::TEMPORARY_FAILURE);
        }
        let is_ike_rekey = offer
            .proposals
            .first()
            .is_some_and(|p| p.protocol == ProtocolId::IKE);
        if is_ike_rekey {
            return self.respond_ike_rekey(now, sa, offer, ni, req.ke);
        }
        let Some(conn) = self.connection(&sa.connection).cloned() else {
            return error(NotifyType::NO_PROPOSAL_CHOSEN);
        };
        let old = match req.rekey_spi {
            // The REKEY_SA SPI is the one the rekeying side receives on: our outbound SPI.
            Some(spi) => match sa
                .children
                .iter()
                .position(|c| c.spi_out == spi || c.spi_in == spi)
            {
                Some(i) => Some(i),
                None => return error(NotifyType::CHILD_SA_NOT_FOUND),
            },
            None => None,
        };
        let peer_ke = req.ke.map(|k| k.group);
        let (mut chosen, suite) =
            match select_child(offer, &conn.esp_proposals, peer_ke, peer_ke.is_some()) {
                Ok(x) => x,
                Err(SelectError::InvalidKe(g)) => return invalid_ke(g),
                Err(_) => return error(NotifyType::NO_PROPOSAL_CHOSEN),
            };
        let Ok(peer_spi) = <[u8; 4]>::try_from(chosen.spi.as_slice()) else {
            return error(NotifyType::NO_PROPOSAL_CHOSEN);
        };
        let (Some(tsi), Some(tsr)) = (req.tsi, req.tsr) else {
            return error(NotifyType::INVALID_SYNTAX);
        };
        let remote_dynamic = sa.virtual_ip.unwrap_or(sa.remote_addr.ip());
        let Ok((ts_i, ts_r)) = crate::policy::ts::narrow_responder(
            &conn.local_ts,
            &conn.remote_ts,
            &[sa.local_addr.ip()],
            &[remote_dynamic],
            tsi,
            tsr,
        )
        .map(|n| (n.tsi, n.tsr)) else {
            return error(NotifyType::TS_UNACCEPTABLE);
        };
        // PFS (§1.3.1): a KE of the chosen group makes a fresh shared secret.
        let mut out_ke = None;
        let shared: Option<SecretBytes> = match (suite.ke, req.ke) {
            (Some(g), Some(ke)) => {
                let Some(m) = self.config.provider.ke_method(g) else {
                    return error(NotifyType::NO_PROPOSAL_CHOSEN);
                };
                let Ok(kex) = m.start() else {
                    return error(NotifyType::NO_PROPOSAL_CHOSEN);
                };
                out_ke = Some(KePayload {
                    group: g,
                    data: kex.public_value().to_vec(),
                });
                match kex.complete(&ke.data) {
                    Ok(s) => Some(s),
                    Err(_) => return error(NotifyType::INVALID_SYNTAX),
                }
            }
            _ => None,
        };
        let nr = self.random_nonce();
        let Some(keys) = self.child_keys(sa, &suite, shared.as_ref(), ni, &nr) else {
            return error(NotifyType::NO_PROPOSAL_CHOSEN);
        };
        let spi_in = self.fresh_child_spi();
        chosen.spi = spi_in.to_be_bytes().to_vec();
        let (reqid, mode) = match old {
            Some(i) => sa
                .children
                .get(i)
                .map(|c| (c.reqid, c.mode))
                .unwrap_or((self.fresh_reqid(), conn.mode)),
            None => {
                let mode = if req.transport && conn.mode == crate::config::IpsecMode::Transport {
                    crate::config::IpsecMode::Transport
                } else {
                    crate::config::IpsecMode::Tunnel
                };
                (self.fresh_reqid(), mode)
            }
        };
        let child = super::new_child(
            &conn.name,
            spi_in,
            u32::from_be_bytes(peer_spi),
            reqid,
            suite,
            mode,
            keys,
            false,
            (ts_r.clone(), ts_i.clone()),
            now,
        );
        let replaces = old.and_then(|i| sa.children.get_mut(i)).map(|c| {
            c.state = ChildSaState::Rekeyed;
            (c.spi_in, c.spi_out)
        });
        // §2.8.1: we are rekeying the same Child SA ourselves; remember the peer's
        // exchange so the redundant pair can be found when ours completes.
        if let Some((old_in, _)) = replaces {
            let ours_pending = matches!(
                self.pending.get(&sa.local_spi().0),
                Some(crate::endpoint::outbound::PendingRequest::CreateChild { rekey_of: Some(o), .. }) if *o == old_in
            );
            if ours_pending {
                let low = ni.min(nr.as_slice()).to_vec();
                self.rekey_collisions
                    .insert((sa.local_spi().0, old_in), (child.spi_in, low));
            }
        }
        self.install_child(sa, &child, replaces);
        sa.children.push(child);

        let mut response = Vec::new();
        if mode == crate::config::IpsecMode::Transport {
            response.push(status_notify(NotifyType::USE_TRANSPORT_MODE, Vec::new()));
        }
        response.push(Payload::Sa(SaPayload {
            proposals: vec![chosen],
        }));
        response.push(Payload::Nonce(NoncePayload { data: nr }));
        if let Some(k) = out_ke {
            response.push(Payload::Ke(k));
        }
        response.push(Payload::TsI(TsPayload {
            selectors: ts_i.into_iter().map(TrafficSelector::Ip).collect(),
        }));
        response.push(Payload::TsR(TsPayload {
            selectors: ts_r.into_iter().map(TrafficSelector::Ip).collect(),
        }));
        (response, AfterResponse::Keep)
    }

    /// IKE SA rekey (§1.3.2, §2.18): a new IKE SA with new SPIs and keys inherits the
    /// Child SAs; the old one waits for the initiator's Delete.
    fn respond_ike_rekey(
        &mut self,
        now: Instant,
        sa: &mut IkeSa,
        offer: &SaPayload,
        ni: &[u8],
        ke: Option<&KePayload>,
    ) -> (Vec<Payload>, AfterResponse) {
        let Some(conn) = self.connection(&sa.connection).cloned() else {
            return error(NotifyType::NO_PROPOSAL_CHOSEN);
        };
        let Some(ke) = ke else {
            return error(NotifyType::INVALID_SYNTAX);
        };
        let (mut chosen, suite) = match select_ike(
            offer,
            &conn.ike_proposals,
            Some(ke.group),
            self.config.provider,
        ) {
            Ok(x) => x,
            Err(SelectError::InvalidKe(g)) => return invalid_ke(g),
            Err(_) => return error(NotifyType::NO_PROPOSAL_CHOSEN),
        };
        let Ok(peer_spi) = <[u8; 8]>::try_from(chosen.spi.as_slice()) else {
            return error(NotifyType::INVALID_SYNTAX);
        };
        let (Some(old_prf), Some(new_prf), Some(m)) = (
            self.config.provider.prf(sa.suite.prf),
            self.config.provider.prf(suite.prf),
            self.config.provider.ke_method(suite.ke),
        ) else {
            return error(NotifyType::NO_PROPOSAL_CHOSEN);
        };
        let Ok(kex) = m.start() else {
            return error(NotifyType::NO_PROPOSAL_CHOSEN);
        };
        let our_public = kex.public_value().to_vec();
        let Ok(shared) = kex.complete(&ke.data) else {
            return error(NotifyType::INVALID_SYNTAX);
        };
        let nr = self.random_nonce();
        let new_spi_r = self.fresh_ike_spi();
        // The rekey initiator's SPI becomes SPIi of the new SA (we are its responder).
        let new_spi_i = IkeSpi::from_bytes(peer_spi);
        let Ok(lens) = key_lengths(suite.encr.id, suite.encr.key_bits, suite.integ, new_prf) else {
            return error(NotifyType::NO_PROPOSAL_CHOSEN);
        };
        let seed = skeyseed_rekey(old_prf, sa.keys.sk_d.expose(), shared.expose(), ni, &nr);
        let Ok(keys) =
            derive_ike_sa_keys(new_prf, seed.expose(), ni, &nr, new_spi_i, new_spi_r, &lens)
        else {
            return error(NotifyType::NO_PROPOSAL_CHOSEN);
        };
        chosen.spi = new_spi_r.to_bytes().to_vec();
        let mut new_sa = sa.clone();
        new_sa.spis = SpiPair {
            spi_i: new_spi_i,
            spi_r: new_spi_r,
        };
        // The new SA's roles follow the rekey exchange: its initiator is the peer.
        new_sa.we_are_initiator = false;
        new_sa.suite = suite;
        new_sa.keys = keys;
        new_sa.msgids = MessageIdWindow {
            peer_window: 1,
            ..MessageIdWindow::default()
        };
        new_sa.children = std::mem::take(&mut sa.children);
        new_sa.established_at = Some(now);
        new_sa.last_heard = now;
        new_sa.retransmit_at = None;
        new_sa.rekey_at = conn.rekey_time.and_then(|d| now.checked_add(d));
        new_sa.expire_at = conn.life_time.and_then(|d| now.checked_add(d));
        sa.state = IkeSaState::Rekeyed;
        sa.rekey_at = None;
        // Keep the old SA only until the peer deletes it; give up after a while.
        sa.expire_at = Some(now + std::time::Duration::from_secs(60));
        self.effects
            .push_back(Effect::KeyLog(super::keylog::line(&new_sa)));
        self.event(SaEvent::IkeRekeyed {
            old: sa.id(),
            new: new_sa.id(),
        });
        self.put_sa(new_spi_r.0, new_sa);

        let response = vec![
            Payload::Sa(SaPayload {
                proposals: vec![chosen],
            }),
            Payload::Nonce(NoncePayload { data: nr }),
            Payload::Ke(KePayload {
                group: suite.ke,
                data: our_public,
            }),
        ];
        (response, AfterResponse::Keep)
    }
}
