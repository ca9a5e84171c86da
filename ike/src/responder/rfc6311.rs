//! RFC 6311, the peer side: answering IKEV2_MESSAGE_ID_SYNC from a gateway cluster
//! that took over our IKE SA (§5.1), and IPSEC_REPLAY_COUNTER_SYNC (§5.2).

use std::net::SocketAddr;
use std::time::Instant;

use crate::endpoint::outbound::PendingRequest;
use crate::endpoint::{Effect, Endpoint, SaEvent};
use crate::sa::IkeSaId;
use crate::sa::msgid::{MessageIdWindow, RETRANSMIT_TRIES, SyncAttempt};
use crate::wire::{
    ExchangeType, IkeSpi, MessageIdSyncData, NotifyType, Payload, ReplayCounterSyncData,
};

use super::init::status_notify;

impl Endpoint {
    /// A Message ID 0 INFORMATIONAL request in an SA that negotiated Message ID sync.
    pub(crate) fn handle_mid_sync_request(
        &mut self,
        _now: Instant,
        local: SocketAddr,
        remote: SocketAddr,
        our_spi: IkeSpi,
        data: &[u8],
    ) {
        let Ok(Some((_, payloads))) = self.open(our_spi.0, data) else {
            self.event(SaEvent::Dropped {
                reason: "mid_sync_undecryptable",
            });
            return;
        };
        // §5.1: nothing but the sync notify, optionally with the replay counter notify.
        let mut sync = None;
        let mut replay = None;
        for p in &payloads {
            match p {
                Payload::Notify(n) if n.notify_type == NotifyType::IKEV2_MESSAGE_ID_SYNC => {
                    sync = MessageIdSyncData::decode(&n.data).ok();
                }
                Payload::Notify(n) if n.notify_type == NotifyType::IPSEC_REPLAY_COUNTER_SYNC => {
                    replay = ReplayCounterSyncData::decode(&n.data).ok();
                }
                _ => {
                    self.event(SaEvent::Dropped {
                        reason: "mid_sync_extra_payload",
                    });
                    return;
                }
            }
        }
        let Some(req) = sync else {
            self.event(SaEvent::Dropped {
                reason: "mid_sync_malformed",
            });
            return;
        };
        let Some(mut sa) = self.sas.remove(&our_spi.0) else {
            return;
        };
        let m1 = req.expected_send_req_message_id;
        let p1 = req.expected_recv_req_message_id;
        // §5.1: drop M1 at or below the highest value seen from the cluster, counting
        // earlier sync requests, so a replayed sync cannot rewind us.
        let highest_seen = sa.msgids.peer_next_request.checked_sub(1);
        let replayed = highest_seen.is_some_and(|h| m1 <= h)
            || sa.msgids.peer_sync_highest.is_some_and(|h| m1 <= h);
        if replayed {
            self.put_sa(our_spi.0, sa);
            self.event(SaEvent::Dropped {
                reason: "mid_sync_replayed",
            });
            return;
        }
        let m2 = m1.max(sa.msgids.peer_next_request);
        let p2 = p1.max(sa.msgids.our_next_request);
        let reply = MessageIdSyncData {
            nonce: req.nonce,
            expected_send_req_message_id: p2,
            expected_recv_req_message_id: m2,
        };
        let response = vec![status_notify(
            NotifyType::IKEV2_MESSAGE_ID_SYNC,
            reply.to_bytes().to_vec(),
        )];
        let sealed = self.seal(&sa, ExchangeType::INFORMATIONAL, 0, true, &response);
        // §9: adopt the agreed counters; stop waiting for anything in flight.
        sa.msgids.peer_sync_highest = Some(m1);
        sa.msgids.peer_next_request = m2;
        sa.msgids.our_next_request = p2;
        sa.msgids.outstanding = None;
        sa.msgids.last_response = None;
        sa.retransmit_at = None;
        self.pending.remove(&our_spi.0);
        // §5.2: the cluster asks us to move our outbound ESP sequence numbers forward.
        if let Some(r) = replay.filter(|_| sa.replay_sync) {
            for c in &sa.children {
                self.effects.push_back(Effect::AdvanceOutboundSequence {
                    spi_out: c.spi_out,
                    dst: sa.remote_addr.ip(),
                    delta: r.delta,
                });
            }
        }
        if let Ok(datagrams) = sealed {
            for d in datagrams {
                self.send(local, remote, d);
            }
        }
        self.put_sa(our_spi.0, sa);
        self.event(SaEvent::Exchange {
            exchange: "IKEV2_MESSAGE_ID_SYNC",
        });
    }

    /// Whether a protected message holds IKEV2_MESSAGE_ID_SYNC and otherwise at most
    /// IPSEC_REPLAY_COUNTER_SYNC (§5.1: a sync request carries nothing else).
    pub(crate) fn is_mid_sync_only(&mut self, our_spi: IkeSpi, data: &[u8]) -> bool {
        let Ok(Some((_, payloads))) = self.open(our_spi.0, data) else {
            return false;
        };
        let is = |p: &Payload, t: NotifyType| matches!(p, Payload::Notify(n) if n.notify_type == t);
        payloads
            .iter()
            .any(|p| is(p, NotifyType::IKEV2_MESSAGE_ID_SYNC))
            && payloads.iter().all(|p| {
                is(p, NotifyType::IKEV2_MESSAGE_ID_SYNC)
                    || is(p, NotifyType::IPSEC_REPLAY_COUNTER_SYNC)
            })
    }

    /// Cluster side (§5.1, §5.2): after taking IKE SA `id` over, tell the peer which
    /// Message IDs to use. `m1` must exceed anything the previous owner can have sent
    /// (the caller adds at least the peer's window to the replicated counter), `p1` is at
    /// least one more than the last request we know the peer sent. With `replay_delta`,
    /// IPSEC_REPLAY_COUNTER_SYNC asks the peer to move its outbound ESP sequence numbers
    /// (our inbound) forward by that much (`esn` selects the 8-octet form).
    ///
    /// The attempt (M1, P1, nonce) is stored in the SA before anything is sent, so the
    /// caller can replicate it first. Unanswered, it is retransmitted as a *new* request
    /// (fresh nonce, larger M1; see [`Endpoint::handle_timeout`]) up to the usual number
    /// of retransmissions, then the IKE SA is deleted (`peer_not_responding_to_sync`).
    /// Returns false if the SA did not negotiate RFC 6311 Message ID sync or does not
    /// exist.
    pub fn start_message_id_sync(
        &mut self,
        now: Instant,
        id: IkeSaId,
        m1: u32,
        p1: u32,
        replay_delta: Option<(u64, bool)>,
    ) -> bool {
        self.send_sync_attempt(now, id.0, m1, p1, replay_delta, 1)
    }

    /// Builds, stores and sends one sync request (transmission number `transmissions`).
    fn send_sync_attempt(
        &mut self,
        now: Instant,
        spi: u64,
        m1: u32,
        p1: u32,
        replay_delta: Option<(u64, bool)>,
        transmissions: u32,
    ) -> bool {
        let Some(mut sa) = self.sas.remove(&spi) else {
            return false;
        };
        if !sa.mid_sync {
            self.put_sa(spi, sa);
            return false;
        }
        let mut nonce = [0u8; 4];
        (self.config.provider.fill_random)(&mut nonce);
        let nonce = u32::from_be_bytes(nonce);
        let data = MessageIdSyncData {
            nonce,
            expected_send_req_message_id: m1,
            expected_recv_req_message_id: p1,
        };
        let mut payloads = vec![status_notify(
            NotifyType::IKEV2_MESSAGE_ID_SYNC,
            data.to_bytes().to_vec(),
        )];
        let replay_delta = replay_delta.filter(|_| sa.replay_sync);
        if let Some((delta, esn)) = replay_delta {
            payloads.push(status_notify(
                NotifyType::IPSEC_REPLAY_COUNTER_SYNC,
                ReplayCounterSyncData { delta, esn }.encode(),
            ));
        }
        let Ok(datagrams) = self.seal(&sa, ExchangeType::INFORMATIONAL, 0, false, &payloads) else {
            self.put_sa(spi, sa);
            return false;
        };
        // §8.1: from now on only requests inside the window we declared are accepted; the
        // request in flight of the previous owner is abandoned.
        sa.msgids.peer_next_request = p1;
        sa.msgids.our_next_request = m1;
        sa.msgids.outstanding = None;
        sa.msgids.sync_pending = Some(SyncAttempt {
            nonce,
            m1,
            p1,
            datagrams: datagrams.clone(),
            transmissions,
        });
        sa.retransmit_at = Some(now + crate::sa::msgid::retransmit_delay(transmissions));
        self.pending.remove(&spi);
        match replay_delta {
            Some(r) => {
                // Entries of SAs deleted mid-sync are swept now and then.
                if self.sync_replay.len() > self.sas.len() + 1024 {
                    let sas = &self.sas;
                    self.sync_replay.retain(|k, _| sas.contains_key(k));
                }
                self.sync_replay.insert(spi, r);
            }
            None => {
                self.sync_replay.remove(&spi);
            }
        }
        for d in datagrams {
            self.send(sa.local_addr, sa.remote_addr, d);
        }
        self.put_sa(spi, sa);
        true
    }

    /// Our sync request went unanswered. RFC 6311 says nothing of retransmission; a peer
    /// that processed it (and whose response was lost) must drop an identical copy, since
    /// its M1 is no longer above the highest it has seen (§5.1), so each retransmission
    /// is a new request: fresh nonce, M1 one peer window higher, the same P1 and replay
    /// delta. After the RFC 7296 §2.4 number of retransmissions the SA is deleted.
    pub(crate) fn retransmit_message_id_sync(&mut self, now: Instant, spi: u64) {
        let Some(sa) = self.sas.get(&spi) else {
            return;
        };
        let Some(attempt) = sa.msgids.sync_pending.as_ref() else {
            return;
        };
        if attempt.transmissions > RETRANSMIT_TRIES {
            self.sync_replay.remove(&spi);
            self.destroy_ike_sa(spi, "peer_not_responding_to_sync");
            return;
        }
        let m1 = attempt.m1.saturating_add(sa.msgids.peer_window.max(1));
        let (p1, n) = (attempt.p1, attempt.transmissions.saturating_add(1));
        let replay = self.sync_replay.get(&spi).copied();
        if !self.send_sync_attempt(now, spi, m1, p1, replay, n) {
            self.sync_replay.remove(&spi);
            self.destroy_ike_sa(spi, "peer_not_responding_to_sync");
        }
    }

    /// A Message ID 0 INFORMATIONAL response: the answer to our sync request if the
    /// nonce matches (§5.1: otherwise dropped silently; a second valid response is
    /// discarded too, §11).
    pub(crate) fn handle_mid_sync_response(&mut self, now: Instant, our_spi: IkeSpi, data: &[u8]) {
        let Ok(Some((_, payloads))) = self.open(our_spi.0, data) else {
            self.event(SaEvent::Dropped {
                reason: "mid_sync_undecryptable",
            });
            return;
        };
        let Some(sa) = self.sas.get_mut(&our_spi.0) else {
            return;
        };
        let Some(attempt) = sa.msgids.sync_pending.as_ref() else {
            self.event(SaEvent::Dropped {
                reason: "unexpected_mid_sync_response",
            });
            return;
        };
        let mut reply = None;
        for p in &payloads {
            reply = match p {
                Payload::Notify(n) if n.notify_type == NotifyType::IKEV2_MESSAGE_ID_SYNC => {
                    MessageIdSyncData::decode(&n.data).ok()
                }
                _ => None,
            };
            if reply.is_none() {
                break;
            }
        }
        let Some(r) = reply.filter(|r| r.nonce == attempt.nonce) else {
            self.event(SaEvent::Dropped {
                reason: "mid_sync_bad_response",
            });
            return;
        };
        // The response carries (P2, M2): the peer's next send and expected receive.
        let (p2, m2) = (
            r.expected_send_req_message_id,
            r.expected_recv_req_message_id,
        );
        // Never backwards: a Message ID once used is never used again (RFC 7296 §2.2).
        sa.msgids.our_next_request = m2.max(attempt.m1).max(sa.msgids.our_next_request);
        sa.msgids.peer_next_request = p2.max(attempt.p1);
        sa.msgids.sync_pending = None;
        sa.msgids.last_response = None;
        sa.retransmit_at = None;
        sa.last_heard = now;
        let id = sa.id();
        self.sync_replay.remove(&our_spi.0);
        self.event(SaEvent::MessageIdsSynced { id });
        self.schedule(our_spi.0);
    }

    /// Cluster side: another node used IKE SA `id` concurrently (both sides of a
    /// partition owned it) and our copy won. Message IDs it used with the peer must not
    /// be used again (RFC 7296 §2.2), and the peer's requests it answered are behind us:
    /// both counters move to the larger of the two. A request of ours in flight under a
    /// Message ID the other side also used will never be answered (the peer took the
    /// other one, or ignores ours as an old retransmission): it is withdrawn, and a rekey
    /// or delete is started again under a fresh Message ID (a liveness check is not: the
    /// peer answered the other side). Returns whether anything moved.
    pub fn merge_message_ids(
        &mut self,
        now: Instant,
        id: IkeSaId,
        other: &MessageIdWindow,
    ) -> bool {
        let Some(sa) = self.sas.get_mut(&id.0) else {
            return false;
        };
        let m = &mut sa.msgids;
        let mut ours = other.our_next_request;
        if let Some(p) = &other.sync_pending {
            // Its sync may have reached the peer: M1 counts as used.
            ours = ours.max(p.m1.saturating_add(1));
        }
        if let Some(o) = &other.outstanding {
            ours = ours.max(o.message_id.saturating_add(1));
        }
        let moved = ours > m.our_next_request || other.peer_next_request > m.peer_next_request;
        m.our_next_request = m.our_next_request.max(ours);
        m.peer_next_request = m.peer_next_request.max(other.peer_next_request);
        // Dead: the other side used its Message ID, for another request (the same one,
        // still in flight on both sides, is alive).
        let dead = m.outstanding.as_ref().is_some_and(|o| {
            o.message_id < other.our_next_request
                && !other
                    .outstanding
                    .as_ref()
                    .is_some_and(|x| x.message_id == o.message_id && x.datagrams == o.datagrams)
        });
        if !dead {
            return moved;
        }
        m.outstanding = None;
        sa.retransmit_at = None;
        sa.last_heard = now;
        self.schedule(id.0);
        match self.pending.remove(&id.0) {
            Some(PendingRequest::CreateChild { rekey_of, .. }) => {
                let _ = self.create_child(now, id, rekey_of);
            }
            Some(PendingRequest::RekeyIke { .. }) => {
                let _ = self.rekey_ike(now, id);
            }
            Some(PendingRequest::DeleteChild(spi_in)) => {
                let _ = self.delete_child(now, id, spi_in);
            }
            Some(PendingRequest::DeleteIke) => {
                let _ = self.terminate(now, id);
            }
            Some(PendingRequest::Liveness) | None => {}
        }
        true
    }
}
