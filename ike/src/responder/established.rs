//! Requests inside an established IKE SA: dispatch, retransmissions, INFORMATIONAL
//! (RFC 7296 §1.4, §2.1, §2.4, §2.23).

use std::net::SocketAddr;
use std::time::Instant;

use crate::endpoint::{Endpoint, SaEvent, request_hash};
use crate::sa::IkeSa;
use crate::sa::msgid::RequestDisposition;
use crate::wire::{
    DecodeError, DeletePayload, ExchangeType, HeaderView, IkeSpi, Payload, PayloadType, Protection,
    ProtocolId, ResponderAction,
};

use super::init::status_notify;

/// What happens to the IKE SA once the response is sent.
pub(crate) enum AfterResponse {
    /// Keep it.
    Keep,
    /// Destroy it (the peer deleted it).
    Destroy,
}

impl Endpoint {
    pub(crate) fn handle_request(
        &mut self,
        now: Instant,
        local: SocketAddr,
        remote: SocketAddr,
        our_spi: IkeSpi,
        data: &[u8],
    ) {
        let Ok(view) = HeaderView::new_checked(data) else {
            return;
        };
        let mid = view.message_id();
        let exchange = view.exchange();
        if mid == 0
            && exchange == ExchangeType::INFORMATIONAL
            && let Some(sa) = self.sas.get(&our_spi.0)
            && sa.mid_sync
            // Before the other side sent any request, MID 0 may be its first ordinary
            // request; a sync carries nothing but the sync notifies (RFC 6311 §5.1).
            && (sa.msgids.peer_next_request != 0 || self.is_mid_sync_only(our_spi, data))
        {
            self.handle_mid_sync_request(now, local, remote, our_spi, data);
            return;
        }
        let hash = request_hash(data);
        let disposition = match self.sas.get(&our_spi.0) {
            Some(sa) => match &sa.msgids.last_response {
                // RFC 7383 §2.6.1: a retransmitted fragmented request is recognised by its
                // first fragment, which gets the whole response again.
                Some(c) if view.next_payload() == PayloadType::SKF && c.message_id == mid => {
                    if data.get(32..34) == Some(&[0, 1][..]) {
                        RequestDisposition::Retransmit(c.datagrams.clone())
                    } else {
                        RequestDisposition::Drop
                    }
                }
                _ => sa.msgids.classify_request(mid, &hash),
            },
            None => return,
        };
        match disposition {
            RequestDisposition::Retransmit(datagrams) => {
                // §2.1: resend the response, byte for byte, to where the request came from.
                for d in datagrams {
                    self.send(local, remote, d);
                }
                self.event(SaEvent::RetransmitAnswered);
                return;
            }
            RequestDisposition::Drop => {
                self.event(SaEvent::Dropped {
                    reason: "invalid_message_id",
                });
                return;
            }
            RequestDisposition::Process => {}
        }
        let payloads = match self.open(our_spi.0, data) {
            Ok(Some((_, p))) => Ok(p),
            Ok(None) => return,
            Err(DecodeError::Crypto(_)) => {
                self.event(SaEvent::Dropped {
                    reason: "integrity_check_failed",
                });
                return;
            }
            Err(e) => Err(e),
        };
        let Some(mut sa) = self.sas.remove(&our_spi.0) else {
            return;
        };
        sa.last_heard = now;
        // §2.23: a peer behind a NAT may change address; follow it on authenticated input.
        if sa.nat_remote && remote != sa.remote_addr {
            sa.remote_addr = remote;
            sa.local_addr = local;
        }
        let (response, after) = match payloads {
            Ok(p) => match exchange {
                ExchangeType::INFORMATIONAL => self.respond_informational(now, &mut sa, &p),
                ExchangeType::CREATE_CHILD_SA => self.respond_create_child(now, &mut sa, &p),
                _ => (Vec::new(), AfterResponse::Keep),
            },
            Err(e) => match e.notify(Protection::IntegrityVerified) {
                ResponderAction::Notify(t, d) => (vec![status_notify(t, d)], AfterResponse::Keep),
                ResponderAction::Drop => {
                    self.put_sa(our_spi.0, sa);
                    return;
                }
            },
        };
        match self.seal(&sa, exchange, mid, true, &response) {
            Ok(datagrams) => {
                if !sa.msgids.record_response(mid, hash, datagrams.clone()) {
                    // Message IDs exhausted (§2.2): the SA must go.
                    sa.expire_at = Some(now);
                }
                for d in datagrams {
                    self.send(sa.local_addr, sa.remote_addr, d);
                }
                self.event(SaEvent::Exchange {
                    exchange: exchange_name(exchange),
                });
            }
            Err(_) => self.event(SaEvent::Dropped {
                reason: "seal_failed",
            }),
        }
        let spi = our_spi.0;
        self.put_sa(spi, sa);
        if let AfterResponse::Destroy = after {
            self.destroy_ike_sa(spi, "deleted_by_peer");
        }
    }

    /// INFORMATIONAL request (§1.4): deletes, liveness checks, status notifies.
    fn respond_informational(
        &mut self,
        _now: Instant,
        sa: &mut IkeSa,
        payloads: &[Payload],
    ) -> (Vec<Payload>, AfterResponse) {
        let mut response = Vec::new();
        let mut after = AfterResponse::Keep;
        let mut our_deleted: Vec<Vec<u8>> = Vec::new();
        for p in payloads {
            let Payload::Delete(d) = p else { continue };
            match d.protocol {
                // §1.4.1: deleting the IKE SA deletes its Child SAs; the response is empty.
                ProtocolId::IKE => after = AfterResponse::Destroy,
                ProtocolId::ESP | ProtocolId::AH => {
                    for spi in &d.spis {
                        let Ok(b) = <[u8; 4]>::try_from(spi.as_slice()) else {
                            continue;
                        };
                        let spi_out = u32::from_be_bytes(b);
                        if let Some(pos) = sa.children.iter().position(|c| c.spi_out == spi_out) {
                            let child = sa.children.remove(pos);
                            let newer_same_reqid =
                                sa.children.iter().any(|c| c.reqid == child.reqid);
                            self.remove_child(sa, &child, newer_same_reqid);
                            our_deleted.push(child.spi_in.to_be_bytes().to_vec());
                        }
                    }
                }
                _ => {}
            }
        }
        if !our_deleted.is_empty() {
            response.push(Payload::Delete(DeletePayload {
                protocol: ProtocolId::ESP,
                spi_size: 4,
                spis: our_deleted,
            }));
        }
        (response, after)
    }
}

/// Exchange names for events.
pub(crate) fn exchange_name(e: ExchangeType) -> &'static str {
    match e {
        ExchangeType::IKE_SA_INIT => "IKE_SA_INIT",
        ExchangeType::IKE_AUTH => "IKE_AUTH",
        ExchangeType::CREATE_CHILD_SA => "CREATE_CHILD_SA",
        ExchangeType::INFORMATIONAL => "INFORMATIONAL",
        _ => "OTHER",
    }
}
