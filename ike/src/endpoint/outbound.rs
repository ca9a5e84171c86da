//! Requests we start inside an established IKE SA (liveness checks, deletes), their
//! responses and retransmissions, and the per-SA timers (RFC 7296 §1.4, §2.4).

use std::net::SocketAddr;
use std::time::Instant;

use crate::sa::IkeSaId;
use crate::sa::msgid::{RETRANSMIT_TRIES, retransmit_delay};
use crate::sa::{IkeSaState, msgid::OutstandingRequest};
use crate::wire::{DeletePayload, ExchangeType, HeaderView, IkeSpi, Payload, ProtocolId};

use super::{Endpoint, SaEvent};

/// What our outstanding request was for, so its response can be acted on. Kept beside
/// the SA (not in it): a request in flight is not replicated; after a takeover the new
/// owner simply starts over.
pub(crate) enum PendingRequest {
    /// An empty INFORMATIONAL (liveness check).
    Liveness,
    /// Delete of the whole IKE SA.
    DeleteIke,
    /// Delete of the Child SA with this inbound SPI.
    DeleteChild(u32),
    /// CREATE_CHILD_SA for a new Child SA, or a rekey of the one with inbound SPI
    /// `rekey_of`.
    CreateChild {
        rekey_of: Option<u32>,
        spi_in: u32,
        ni: Vec<u8>,
        sent_sa: crate::wire::SaPayload,
        kex: Option<Box<dyn crate::crypto::KeyExchange>>,
    },
    /// CREATE_CHILD_SA rekeying the IKE SA (§1.3.2) to our new SPI `new_spi_i`.
    RekeyIke {
        new_spi_i: IkeSpi,
        ni: Vec<u8>,
        sent_sa: crate::wire::SaPayload,
        kex: Box<dyn crate::crypto::KeyExchange>,
    },
}

impl core::fmt::Debug for PendingRequest {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::Liveness => f.write_str("Liveness"),
            Self::DeleteIke => f.write_str("DeleteIke"),
            Self::DeleteChild(s) => write!(f, "DeleteChild({s:08x})"),
            Self::CreateChild {
                rekey_of, spi_in, ..
            } => {
                write!(
                    f,
                    "CreateChild {{ rekey_of: {rekey_of:?}, spi_in: {spi_in:08x} }}"
                )
            }
            Self::RekeyIke { new_spi_i, .. } => write!(f, "RekeyIke {{ new_spi_i: {new_spi_i} }}"),
        }
    }
}

impl Endpoint {
    /// Sends an empty INFORMATIONAL (liveness check, §1.4) in IKE SA `id`.
    pub fn send_liveness(&mut self, now: Instant, id: IkeSaId) -> bool {
        self.start_request(
            now,
            id.0,
            ExchangeType::INFORMATIONAL,
            Vec::new(),
            PendingRequest::Liveness,
        )
    }

    /// Deletes Child SA `spi_in` of IKE SA `id` (§1.4.1).
    pub fn delete_child(&mut self, now: Instant, id: IkeSaId, spi_in: u32) -> bool {
        if self
            .sas
            .get(&id.0)
            .is_none_or(|s| s.child_by_spi_in(spi_in).is_none())
        {
            return false;
        }
        self.start_child_delete(now, id.0, spi_in);
        true
    }

    /// Sends a new request in IKE SA `spi`, if none is outstanding.
    pub(crate) fn start_request(
        &mut self,
        now: Instant,
        spi: u64,
        exchange: ExchangeType,
        payloads: Vec<Payload>,
        pending: PendingRequest,
    ) -> bool {
        let Some(sa) = self.sas.get(&spi) else {
            return false;
        };
        if !sa.msgids.can_send_request() {
            return false;
        }
        let mid = sa.msgids.our_next_request;
        let Ok(datagrams) = self.seal(sa, exchange, mid, false, &payloads) else {
            return false;
        };
        let (local, remote) = (sa.local_addr, sa.remote_addr);
        let Some(sa) = self.sas.get_mut(&spi) else {
            return false;
        };
        sa.msgids.start_request(|_| datagrams.clone());
        sa.retransmit_at = Some(now + retransmit_delay(1));
        self.pending.insert(spi, pending);
        self.schedule(spi);
        for d in datagrams {
            self.send(local, remote, d);
        }
        true
    }

    pub(crate) fn start_ike_delete(&mut self, now: Instant, spi: u64) {
        let payloads = vec![Payload::Delete(DeletePayload {
            protocol: ProtocolId::IKE,
            spi_size: 0,
            spis: Vec::new(),
        })];
        // Child SAs go at once: the operator wants the tunnel down now.
        if let Some(mut sa) = self.sas.remove(&spi) {
            let children = std::mem::take(&mut sa.children);
            for c in &children {
                self.remove_child(&sa, c, false);
            }
            sa.state = IkeSaState::Deleting;
            // A pending request would block ours: forget it (its response is ignored).
            sa.msgids.outstanding = None;
            self.put_sa(spi, sa);
        }
        if !self.start_request(
            now,
            spi,
            ExchangeType::INFORMATIONAL,
            payloads,
            PendingRequest::DeleteIke,
        ) {
            self.destroy_ike_sa(spi, "terminated");
        }
    }

    pub(crate) fn start_child_delete(&mut self, now: Instant, spi: u64, spi_in: u32) {
        let payloads = vec![Payload::Delete(DeletePayload {
            protocol: ProtocolId::ESP,
            spi_size: 4,
            spis: vec![spi_in.to_be_bytes().to_vec()],
        })];
        self.start_request(
            now,
            spi,
            ExchangeType::INFORMATIONAL,
            payloads,
            PendingRequest::DeleteChild(spi_in),
        );
    }

    /// A Child SA reached its soft lifetime. Until we initiate rekeys ourselves, the
    /// initiator's own rekey (strongSwan rekeys before our lifetimes by default) replaces
    /// it; if it reaches the hard lifetime we delete it cleanly.
    /// A Child SA reached its soft lifetime (the kernel's soft expire): rekey it (§1.3.3),
    /// now if no request of ours is in flight, else as soon as its response arrives.
    pub(crate) fn start_child_rekey(&mut self, now: Instant, spi: u64, spi_in: u32) {
        let installed = self
            .sas
            .get(&spi)
            .and_then(|sa| sa.child_by_spi_in(spi_in))
            .is_some_and(|c| c.state == crate::sa::ChildSaState::Installed);
        if !installed {
            return; // already rekeyed (by the peer, or by us)
        }
        if !self.create_child(now, IkeSaId(spi), Some(spi_in)) {
            let d = self.deferred_rekeys.entry(spi).or_default();
            if !d.contains(&spi_in) {
                d.push(spi_in);
            }
        }
    }

    /// Starts the next deferred Child SA rekey of IKE SA `spi`, if any.
    fn run_deferred(&mut self, now: Instant, spi: u64) {
        let Some(list) = self.deferred_rekeys.get_mut(&spi) else {
            return;
        };
        let Some(spi_in) = list.pop() else { return };
        if list.is_empty() {
            self.deferred_rekeys.remove(&spi);
        }
        self.start_child_rekey(now, spi, spi_in);
    }

    pub(crate) fn handle_response(
        &mut self,
        now: Instant,
        _local: SocketAddr,
        _remote: SocketAddr,
        our_spi: IkeSpi,
        data: &[u8],
    ) {
        let Ok(view) = HeaderView::new_checked(data) else {
            return;
        };
        let mid = view.message_id();
        if mid == 0
            && view.exchange() == ExchangeType::INFORMATIONAL
            && let Some(sa) = self.sas.get(&our_spi.0)
            && sa.msgids.sync_pending.is_some()
        {
            self.handle_mid_sync_response(now, our_spi, data);
            return;
        }
        match self.sas.get(&our_spi.0) {
            Some(sa)
                if sa
                    .msgids
                    .outstanding
                    .as_ref()
                    .is_some_and(|o| o.message_id == mid) => {}
            _ => {
                self.event(SaEvent::Dropped {
                    reason: "unexpected_response",
                });
                return;
            }
        }
        let payloads = match self.open(our_spi.0, data) {
            Ok(Some((_, p))) => p,
            Ok(None) => return,
            Err(_) => {
                self.event(SaEvent::Dropped {
                    reason: "integrity_check_failed",
                });
                return;
            }
        };
        let spi = our_spi.0;
        if let Some(sa) = self.sas.get_mut(&spi) {
            sa.msgids.accept_response(mid);
            sa.retransmit_at = None;
            sa.last_heard = now;
        }
        match self.pending.remove(&spi) {
            Some(PendingRequest::DeleteIke) => self.destroy_ike_sa(spi, "terminated"),
            Some(PendingRequest::DeleteChild(spi_in)) => {
                if let Some(mut sa) = self.sas.remove(&spi) {
                    if let Some(pos) = sa.children.iter().position(|c| c.spi_in == spi_in) {
                        let child = sa.children.remove(pos);
                        let keep = sa.children.iter().any(|c| c.reqid == child.reqid);
                        self.remove_child(&sa, &child, keep);
                    }
                    self.put_sa(spi, sa);
                }
            }
            Some(PendingRequest::CreateChild {
                rekey_of,
                spi_in,
                ni,
                sent_sa,
                kex,
            }) => {
                self.finish_create_child(now, spi, rekey_of, spi_in, &ni, &sent_sa, kex, &payloads);
            }
            Some(PendingRequest::RekeyIke {
                new_spi_i,
                ni,
                sent_sa,
                kex,
            }) => {
                self.finish_ike_rekey(now, spi, new_spi_i, &ni, &sent_sa, kex, &payloads);
            }
            Some(PendingRequest::Liveness) | None => {}
        }
        self.run_deferred(now, spi);
        self.schedule(spi);
    }

    /// Runs the timers of one IKE SA.
    pub(crate) fn run_sa_timers(&mut self, now: Instant, spi: u64) {
        if let Some(sa) = self.sas.get(&spi)
            && self.keepalive_deadline(spi, sa).is_some_and(|t| t <= now)
        {
            let (local, remote) = (sa.local_addr, sa.remote_addr);
            self.keepalive_sent.insert(spi, now);
            self.effects
                .push_back(super::Effect::NatKeepalive { local, remote });
        }
        let Some(sa) = self.sas.get(&spi) else { return };
        if sa.expire_at.is_some_and(|t| t <= now) {
            self.destroy_ike_sa(spi, "lifetime_expired");
            return;
        }
        if sa.retransmit_at.is_some_and(|t| t <= now) && sa.msgids.sync_pending.is_some() {
            // RFC 6311 §5.1: a new request each time (see `retransmit_message_id_sync`).
            self.retransmit_message_id_sync(now, spi);
            return;
        }
        if sa.retransmit_at.is_some_and(|t| t <= now) {
            let (local, remote) = (sa.local_addr, sa.remote_addr);
            let Some(sa) = self.sas.get_mut(&spi) else {
                return;
            };
            let Some(OutstandingRequest {
                datagrams,
                transmissions,
                ..
            }) = sa.msgids.outstanding.as_mut()
            else {
                sa.retransmit_at = None;
                return;
            };
            if *transmissions > RETRANSMIT_TRIES {
                self.pending.remove(&spi);
                self.destroy_ike_sa(spi, "peer_not_responding");
                return;
            }
            *transmissions += 1;
            let n = *transmissions;
            let datagrams = datagrams.clone();
            sa.retransmit_at = Some(now + retransmit_delay(n));
            for d in datagrams {
                self.send(local, remote, d);
            }
            return;
        }
        if sa.rekey_at.is_some_and(|t| t <= now) {
            // §2.18: we rekey at `rekey_time`; if a request of ours is in flight, retry
            // shortly after.
            let started = self.rekey_ike(now, IkeSaId(spi));
            if let Some(sa) = self.sas.get_mut(&spi) {
                sa.rekey_at = if started {
                    None
                } else {
                    Some(now + std::time::Duration::from_secs(1))
                };
            }
            return;
        }
        if self.dpd_deadline(sa).is_some_and(|t| t <= now) && sa.state == IkeSaState::Established {
            self.start_request(
                now,
                spi,
                ExchangeType::INFORMATIONAL,
                Vec::new(),
                PendingRequest::Liveness,
            );
            // A liveness check that cannot start (request in flight) waits for it.
            if let Some(sa) = self.sas.get_mut(&spi)
                && sa.msgids.outstanding.is_none()
            {
                sa.last_heard = now;
            }
        }
    }
}
