//! CREATE_CHILD_SA started by us (RFC 7296 §1.3): a new Child SA, a Child SA rekey
//! (§1.3.3, old SA deleted after the new one is installed) and an IKE SA rekey
//! (§1.3.2, §2.18).

use std::time::Instant;

use crate::crypto::SecretBytes;
use crate::crypto::keys::{derive_ike_sa_keys, key_lengths, skeyseed_rekey};
use crate::policy::proposal::{
    accept_child_response, accept_ike_response, esp_sa_payload, ike_sa_payload,
};
use crate::sa::{ChildSaState, IkeSaId, IkeSaState, MessageIdWindow, SpiPair};
use crate::wire::{
    ExchangeType, IkeSpi, KePayload, NoncePayload, NotifyPayload, NotifyType, Payload, ProtocolId,
    SaPayload, TrafficSelector, TsPayload,
};

use super::outbound::PendingRequest;
use super::{Effect, Endpoint, SaEvent};

fn ip_selectors(p: &TsPayload) -> Vec<crate::wire::IpTrafficSelector> {
    p.selectors
        .iter()
        .filter_map(|t| {
            if let TrafficSelector::Ip(x) = t {
                Some(*x)
            } else {
                None
            }
        })
        .collect()
}

impl Endpoint {
    /// Creates a new Child SA in IKE SA `id` with the selectors of an existing one, or
    /// rekeys Child SA `rekey_of` (its inbound SPI). PFS when the connection's first ESP
    /// proposal names a key exchange method.
    pub fn create_child(&mut self, now: Instant, id: IkeSaId, rekey_of: Option<u32>) -> bool {
        let Some(sa) = self.sas.get(&id.0) else {
            return false;
        };
        if sa.state != IkeSaState::Established || !sa.msgids.can_send_request() {
            return false;
        }
        let Some(conn) = self.connection(&sa.connection).cloned() else {
            return false;
        };
        let template = match rekey_of {
            Some(s) => sa.child_by_spi_in(s).cloned(),
            None => sa.children.first().cloned(),
        };
        let Some(template) = template else {
            return false;
        };
        let group = conn
            .esp_proposals
            .first()
            .and_then(|p| p.ke.first().copied());
        let kex = match group.and_then(|g| self.config.provider.ke_method(g)) {
            Some(m) => match m.start() {
                Ok(k) => Some(k),
                Err(_) => return false,
            },
            None => None,
        };
        let spi_in = self.fresh_child_spi();
        let ni = self.random_nonce();
        let sent_sa = esp_sa_payload(&conn.esp_proposals, spi_in, kex.is_some());
        let mut payloads = Vec::new();
        if let Some(old) = rekey_of {
            payloads.push(Payload::Notify(NotifyPayload {
                protocol: ProtocolId::ESP,
                spi: old.to_be_bytes().to_vec(),
                notify_type: NotifyType::REKEY_SA,
                data: Vec::new(),
            }));
        }
        payloads.push(Payload::Sa(sent_sa.clone()));
        payloads.push(Payload::Nonce(NoncePayload { data: ni.clone() }));
        if let (Some(k), Some(g)) = (&kex, group) {
            payloads.push(Payload::Ke(KePayload {
                group: g,
                data: k.public_value().to_vec(),
            }));
        }
        // Our selectors are TSi when we start the exchange.
        let wrap = |v: &[crate::wire::IpTrafficSelector]| TsPayload {
            selectors: v.iter().copied().map(TrafficSelector::Ip).collect(),
        };
        payloads.push(Payload::TsI(wrap(&template.local_ts)));
        payloads.push(Payload::TsR(wrap(&template.remote_ts)));
        let pending = PendingRequest::CreateChild {
            rekey_of,
            spi_in,
            ni,
            sent_sa,
            kex,
        };
        self.start_request(now, id.0, ExchangeType::CREATE_CHILD_SA, payloads, pending)
    }

    /// Rekeys IKE SA `id` (§1.3.2): a new IKE SA replaces it, inheriting its Child SAs.
    pub fn rekey_ike(&mut self, now: Instant, id: IkeSaId) -> bool {
        let Some(sa) = self.sas.get(&id.0) else {
            return false;
        };
        if sa.state != IkeSaState::Established || !sa.msgids.can_send_request() {
            return false;
        }
        let Some(conn) = self.connection(&sa.connection).cloned() else {
            return false;
        };
        let group = sa.suite.ke;
        let Some(m) = self.config.provider.ke_method(group) else {
            return false;
        };
        let Ok(kex) = m.start() else { return false };
        let new_spi_i = self.fresh_ike_spi();
        let ni = self.random_nonce();
        let sent_sa = ike_sa_payload(&conn.ike_proposals, &new_spi_i.to_bytes());
        let payloads = vec![
            Payload::Sa(sent_sa.clone()),
            Payload::Nonce(NoncePayload { data: ni.clone() }),
            Payload::Ke(KePayload {
                group,
                data: kex.public_value().to_vec(),
            }),
        ];
        // Reserve the new SPI so nothing else takes it while the exchange runs.
        let pending = PendingRequest::RekeyIke {
            new_spi_i,
            ni,
            sent_sa,
            kex,
        };
        self.start_request(now, id.0, ExchangeType::CREATE_CHILD_SA, payloads, pending)
    }

    #[allow(clippy::too_many_arguments)]
    pub(crate) fn finish_create_child(
        &mut self,
        now: Instant,
        spi: u64,
        rekey_of: Option<u32>,
        spi_in: u32,
        ni: &[u8],
        sent_sa: &SaPayload,
        kex: Option<Box<dyn crate::crypto::KeyExchange>>,
        payloads: &[Payload],
    ) {
        let find = |f: fn(&Payload) -> bool| payloads.iter().find(|p| f(p));
        let chosen = find(|p| matches!(p, Payload::Sa(_)));
        let nr = find(|p| matches!(p, Payload::Nonce(_)));
        let ke = find(|p| matches!(p, Payload::Ke(_)));
        let tsi = find(|p| matches!(p, Payload::TsI(_)));
        let tsr = find(|p| matches!(p, Payload::TsR(_)));
        let (
            Some(Payload::Sa(chosen)),
            Some(Payload::Nonce(nr)),
            Some(Payload::TsI(tsi)),
            Some(Payload::TsR(tsr)),
        ) = (chosen, nr, tsi, tsr)
        else {
            self.child_spis.remove(&spi_in);
            self.event(SaEvent::Dropped {
                reason: "create_child_sa_failed",
            });
            return;
        };
        let Ok((suite, spi_out)) = accept_child_response(sent_sa, chosen) else {
            self.child_spis.remove(&spi_in);
            self.event(SaEvent::Dropped {
                reason: "create_child_sa_bad_proposal",
            });
            return;
        };
        let shared: Option<SecretBytes> = match (kex, ke) {
            (Some(k), Some(Payload::Ke(ke))) => match k.complete(&ke.data) {
                Ok(s) => Some(s),
                Err(_) => return,
            },
            _ => None,
        };
        let Some(mut sa) = self.sas.remove(&spi) else {
            return;
        };
        let Some(keys) = self.child_keys(&sa, &suite, shared.as_ref(), ni, &nr.data) else {
            self.put_sa(spi, sa);
            return;
        };
        let old = rekey_of.and_then(|s| sa.children.iter_mut().find(|c| c.spi_in == s));
        let (reqid, mode, name) = match old {
            Some(c) => {
                c.state = ChildSaState::Rekeyed;
                (c.reqid, c.mode, c.name.clone())
            }
            None => (
                self.fresh_reqid(),
                crate::config::IpsecMode::Tunnel,
                sa.connection.clone(),
            ),
        };
        let replaces = rekey_of
            .and_then(|s| sa.child_by_spi_in(s))
            .map(|c| (c.spi_in, c.spi_out));
        let child = crate::responder::new_child(
            &name,
            spi_in,
            spi_out,
            reqid,
            suite,
            mode,
            keys,
            true,
            (ip_selectors(tsi), ip_selectors(tsr)),
            now,
        );
        self.install_child(&sa, &child, replaces);
        sa.children.push(child);
        self.put_sa(spi, sa);
        let Some(old) = rekey_of else { return };
        // §2.8.1: if the peer rekeyed the same Child SA at the same time, the pair created
        // by the exchange holding the lowest of the four nonces is redundant and is
        // deleted by whoever started that exchange.
        if let Some((_, theirs_low)) = self.rekey_collisions.remove(&(spi, old)) {
            let ours_low = ni.min(nr.data.as_slice());
            if ours_low < theirs_low.as_slice() {
                self.start_child_delete(now, spi, spi_in);
                self.event(SaEvent::Dropped {
                    reason: "simultaneous_rekey_redundant",
                });
                return;
            }
        }
        // §1.3.3: the side that rekeyed deletes the old Child SA.
        self.start_child_delete(now, spi, old);
    }

    #[allow(clippy::too_many_arguments)]
    pub(crate) fn finish_ike_rekey(
        &mut self,
        now: Instant,
        spi: u64,
        new_spi_i: IkeSpi,
        ni: &[u8],
        sent_sa: &SaPayload,
        kex: Box<dyn crate::crypto::KeyExchange>,
        payloads: &[Payload],
    ) {
        let chosen = payloads.iter().find_map(|p| {
            if let Payload::Sa(s) = p {
                Some(s)
            } else {
                None
            }
        });
        let nr = payloads.iter().find_map(|p| {
            if let Payload::Nonce(n) = p {
                Some(&n.data)
            } else {
                None
            }
        });
        let ke = payloads.iter().find_map(|p| {
            if let Payload::Ke(k) = p {
                Some(k)
            } else {
                None
            }
        });
        let (Some(chosen), Some(nr), Some(ke)) = (chosen, nr, ke) else {
            self.event(SaEvent::Dropped {
                reason: "ike_rekey_failed",
            });
            return;
        };
        let Some(peer_spi) = chosen
            .proposals
            .first()
            .and_then(|p| <[u8; 8]>::try_from(p.spi.as_slice()).ok())
        else {
            return;
        };
        let Ok(suite) = accept_ike_response(sent_sa, chosen) else {
            return;
        };
        let Ok(shared) = kex.complete(&ke.data) else {
            return;
        };
        let Some(mut old) = self.sas.remove(&spi) else {
            return;
        };
        let (Some(old_prf), Some(new_prf)) = (
            self.config.provider.prf(old.suite.prf),
            self.config.provider.prf(suite.prf),
        ) else {
            self.put_sa(spi, old);
            return;
        };
        let new_spi_r = IkeSpi::from_bytes(peer_spi);
        let Ok(lens) = key_lengths(suite.encr.id, suite.encr.key_bits, suite.integ, new_prf) else {
            self.put_sa(spi, old);
            return;
        };
        let seed = skeyseed_rekey(old_prf, old.keys.sk_d.expose(), shared.expose(), ni, nr);
        let Ok(keys) =
            derive_ike_sa_keys(new_prf, seed.expose(), ni, nr, new_spi_i, new_spi_r, &lens)
        else {
            self.put_sa(spi, old);
            return;
        };
        let mut new_sa = old.clone();
        new_sa.spis = SpiPair {
            spi_i: new_spi_i,
            spi_r: new_spi_r,
        };
        new_sa.we_are_initiator = true;
        new_sa.suite = suite;
        new_sa.keys = keys;
        new_sa.msgids = MessageIdWindow {
            peer_window: 1,
            ..MessageIdWindow::default()
        };
        new_sa.children = std::mem::take(&mut old.children);
        new_sa.established_at = Some(now);
        new_sa.last_heard = now;
        new_sa.retransmit_at = None;
        old.state = IkeSaState::Rekeyed;
        self.effects
            .push_back(Effect::KeyLog(crate::responder::keylog::line(&new_sa)));
        self.event(SaEvent::IkeRekeyed {
            old: old.id(),
            new: new_sa.id(),
        });
        self.put_sa(new_spi_i.0, new_sa);
        self.put_sa(spi, old);
        // §1.3.2: the rekey initiator deletes the old IKE SA.
        self.start_ike_delete(now, spi);
    }
}
