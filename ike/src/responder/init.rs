//! The IKE_SA_INIT exchange, responder side (RFC 7296 §1.2, §2.6, §2.10, §2.23).

use std::net::SocketAddr;
use std::time::Instant;

use subtle::ConstantTimeEq;

use crate::config::IkeProposalConfig;
use crate::crypto::keys::{derive_ike_sa_keys, key_lengths, skeyseed};
use crate::endpoint::{Endpoint, HalfOpen, SaEvent, request_hash};
use crate::policy::proposal::{SelectError, select_ike};
use crate::sa::{IkeSa, IkeSaState, MessageIdWindow, SpiPair};
use crate::wire::{
    DecodeError, ExchangeType, Flags, HashAlgorithm, Header, IkeSpi, KePayload, Message,
    NoncePayload, NotifyPayload, NotifyType, Payload, PayloadType, Protection, ProtocolId,
    ResponderAction, SaPayload,
};

use super::nat::nat_detection_hash;

/// Hash algorithms we accept and offer for RFC 7427 signatures.
pub(crate) const OUR_SIGNATURE_HASHES: [HashAlgorithm; 3] = [
    HashAlgorithm::SHA2_256,
    HashAlgorithm::SHA2_384,
    HashAlgorithm::SHA2_512,
];

impl Endpoint {
    pub(crate) fn handle_init_request(
        &mut self,
        now: Instant,
        local: SocketAddr,
        remote: SocketAddr,
        data: &[u8],
    ) {
        let Ok(view) = crate::wire::HeaderView::new_checked(data) else {
            return;
        };
        let spi_i = view.spi_i();
        if view.message_id() != 0 || !view.flags().initiator() {
            self.event(SaEvent::Dropped {
                reason: "bad_ike_sa_init",
            });
            return;
        }
        // §2.1: a retransmitted IKE_SA_INIT gets the same response; once IKE_AUTH has
        // arrived for that SA, it is ignored.
        let hash = request_hash(data);
        if let Some(our) = self.init_index.get(&(remote.ip(), spi_i.0)).copied() {
            if let Some(h) = self.half_open.get(&our)
                && h.sa.msgids.last_response.as_ref().map(|c| c.request_hash) == Some(hash)
            {
                let resp = h.init_response.clone();
                self.send(local, remote, resp);
                self.event(SaEvent::RetransmitAnswered);
                return;
            }
            if self.half_open.contains_key(&our) || self.sas.contains_key(&our) {
                self.event(SaEvent::Dropped {
                    reason: "ike_sa_init_duplicate",
                });
                return;
            }
            // The SA it belonged to is gone: a new IKE_SA_INIT may reuse the SPI.
            self.init_index.remove(&(remote.ip(), spi_i.0));
        }
        let msg = match Message::decode(data) {
            Ok(m) => m,
            Err(e) => {
                self.answer_unprotected_error(local, remote, data, &e);
                return;
            }
        };
        if self.half_open.len() >= self.config.half_open_limit {
            self.event(SaEvent::Dropped {
                reason: "half_open_limit",
            });
            return;
        }
        let Some(ni) = msg.payloads.iter().find_map(|p| match p {
            Payload::Nonce(n) => Some(n.data.clone()),
            _ => None,
        }) else {
            self.event(SaEvent::Dropped {
                reason: "ike_sa_init_without_nonce",
            });
            return;
        };
        // §2.6: under load, demand proof that the initiator receives at its address.
        if self.half_open.len() >= self.config.cookie_threshold {
            let expected = self.cookie_for(&ni, remote, spi_i);
            let offered = msg.payloads.first().and_then(|p| match p {
                Payload::Notify(n) if n.notify_type == NotifyType::COOKIE => {
                    Some(n.data.as_slice())
                }
                _ => None,
            });
            let valid =
                offered.is_some_and(|c| self.cookie_valid(c, &ni, remote, spi_i, &expected));
            if !valid {
                let reply = plain_notify_reply(&msg.header, NotifyType::COOKIE, expected);
                self.send(local, remote, reply);
                self.event(SaEvent::Dropped {
                    reason: "cookie_required",
                });
                return;
            }
        }

        let sa_payload = msg.payloads.iter().find_map(|p| match p {
            Payload::Sa(s) => Some(s),
            _ => None,
        });
        let ke_payload = msg.payloads.iter().find_map(|p| match p {
            Payload::Ke(k) => Some(k),
            _ => None,
        });
        let (Some(sa_payload), Some(ke_payload)) = (sa_payload, ke_payload) else {
            let reply = plain_notify_reply(&msg.header, NotifyType::INVALID_SYNTAX, Vec::new());
            self.send(local, remote, reply);
            self.event(SaEvent::Dropped {
                reason: "ike_sa_init_missing_payload",
            });
            return;
        };
        let ours: Vec<IkeProposalConfig> = self
            .config
            .connections
            .iter()
            .flat_map(|c| c.ike_proposals.iter().cloned())
            .collect();
        let (chosen, suite) = match select_ike(
            sa_payload,
            &ours,
            Some(ke_payload.group),
            self.config.provider,
        ) {
            Ok(x) => x,
            Err(SelectError::InvalidKe(group)) => {
                // §1.2: tell the initiator which group we want; keep no state.
                let reply = plain_notify_reply(
                    &msg.header,
                    NotifyType::INVALID_KE_PAYLOAD,
                    group.0.to_be_bytes().to_vec(),
                );
                self.send(local, remote, reply);
                self.event(SaEvent::Dropped {
                    reason: "invalid_ke_payload",
                });
                return;
            }
            Err(_) => {
                let reply =
                    plain_notify_reply(&msg.header, NotifyType::NO_PROPOSAL_CHOSEN, Vec::new());
                self.send(local, remote, reply);
                self.event(SaEvent::Dropped {
                    reason: "no_proposal_chosen",
                });
                return;
            }
        };
        let Some(prf) = self.config.provider.prf(suite.prf) else {
            return;
        };
        let Some(ke_method) = self.config.provider.ke_method(suite.ke) else {
            return;
        };
        if ke_payload.data.len() != ke_method.public_value_len() {
            let reply = plain_notify_reply(&msg.header, NotifyType::INVALID_SYNTAX, Vec::new());
            self.send(local, remote, reply);
            self.event(SaEvent::Dropped {
                reason: "bad_ke_length",
            });
            return;
        }
        let Ok(kex) = ke_method.start() else { return };
        let our_public = kex.public_value().to_vec();
        let Ok(shared) = kex.complete(&ke_payload.data) else {
            let reply = plain_notify_reply(&msg.header, NotifyType::INVALID_SYNTAX, Vec::new());
            self.send(local, remote, reply);
            self.event(SaEvent::Dropped {
                reason: "bad_ke_value",
            });
            return;
        };

        let spi_r = self.fresh_ike_spi();
        let nr = self.random_nonce();
        let Ok(lens) = key_lengths(suite.encr.id, suite.encr.key_bits, suite.integ, prf) else {
            return;
        };
        let seed = skeyseed(prf, &ni, &nr, shared.expose());
        let Ok(keys) = derive_ike_sa_keys(prf, seed.expose(), &ni, &nr, spi_i, spi_r, &lens) else {
            return;
        };

        // NAT detection (§2.23): compare the peer's hashes with what we see.
        let mut nat_remote = false;
        let mut nat_local = false;
        let mut saw_src = false;
        let mut saw_dst = false;
        let mut peer_frag = false;
        let mut peer_hashes = Vec::new();
        let mut src_match = false;
        let mut dst_match = false;
        for p in &msg.payloads {
            if let Payload::Notify(n) = p {
                match n.notify_type {
                    NotifyType::NAT_DETECTION_SOURCE_IP => {
                        saw_src = true;
                        let h = nat_detection_hash(spi_i, IkeSpi::ZERO, remote);
                        src_match |= bool::from(h.as_slice().ct_eq(&n.data));
                    }
                    NotifyType::NAT_DETECTION_DESTINATION_IP => {
                        saw_dst = true;
                        let h = nat_detection_hash(spi_i, IkeSpi::ZERO, local);
                        dst_match |= bool::from(h.as_slice().ct_eq(&n.data));
                    }
                    NotifyType::IKEV2_FRAGMENTATION_SUPPORTED => peer_frag = true,
                    NotifyType::SIGNATURE_HASH_ALGORITHMS => {
                        peer_hashes = n
                            .data
                            .chunks_exact(2)
                            .map(|c| HashAlgorithm(u16::from_be_bytes([c[0], c[1]])))
                            .collect();
                    }
                    _ => {}
                }
            }
        }
        if saw_src && !src_match {
            nat_remote = true;
        }
        if saw_dst && !dst_match {
            nat_local = true;
        }
        let fragmentation = peer_frag && self.config.connections.iter().any(|c| c.fragmentation);

        // The response: SA, KE, Nr, NAT_D, and the extensions we support.
        let header = Header {
            spi_i,
            spi_r,
            next_payload: PayloadType::NONE,
            version: Header::VERSION_2_0,
            exchange: ExchangeType::IKE_SA_INIT,
            flags: Flags(Flags::RESPONSE),
            message_id: 0,
            length: 0,
        };
        let mut payloads = vec![
            Payload::Sa(SaPayload {
                proposals: vec![chosen],
            }),
            Payload::Ke(KePayload {
                group: suite.ke,
                data: our_public,
            }),
            Payload::Nonce(NoncePayload { data: nr.clone() }),
        ];
        if saw_src || saw_dst {
            payloads.push(status_notify(
                NotifyType::NAT_DETECTION_SOURCE_IP,
                nat_detection_hash(spi_i, spi_r, local).to_vec(),
            ));
            payloads.push(status_notify(
                NotifyType::NAT_DETECTION_DESTINATION_IP,
                nat_detection_hash(spi_i, spi_r, remote).to_vec(),
            ));
        }
        if fragmentation {
            payloads.push(status_notify(
                NotifyType::IKEV2_FRAGMENTATION_SUPPORTED,
                Vec::new(),
            ));
        }
        if !peer_hashes.is_empty() {
            let data = OUR_SIGNATURE_HASHES
                .iter()
                .flat_map(|h| h.0.to_be_bytes())
                .collect();
            payloads.push(status_notify(NotifyType::SIGNATURE_HASH_ALGORITHMS, data));
        }
        payloads.extend(self.certreq_payloads());
        let response = Message { header, payloads }.encode();

        let mut msgids = MessageIdWindow::after_ike_sa_init(false);
        msgids.last_response = Some(crate::sa::msgid::CachedResponse {
            message_id: 0,
            request_hash: hash,
            datagrams: vec![response.clone()],
        });
        let sa = IkeSa {
            spis: SpiPair { spi_i, spi_r },
            we_are_initiator: false,
            state: IkeSaState::HalfOpen,
            connection: String::new(),
            suite,
            keys,
            local_addr: local,
            remote_addr: remote,
            local_id: None,
            remote_id: None,
            nat_local,
            nat_remote,
            fragmentation,
            mid_sync: false,
            replay_sync: false,
            msgids,
            children: Vec::new(),
            virtual_ip: None,
            created_at: now,
            established_at: None,
            last_heard: now,
            retransmit_at: None,
            rekey_at: None,
            expire_at: None,
        };
        self.effects
            .push_back(crate::endpoint::Effect::KeyLog(super::keylog::line(&sa)));
        self.init_index.insert((remote.ip(), spi_i.0), spi_r.0);
        self.half_open.insert(
            spi_r.0,
            HalfOpen {
                sa,
                ni,
                nr,
                init_request: data.to_vec(),
                init_response: response.clone(),
                peer_hash_algorithms: peer_hashes,
                expires_at: now
                    .checked_add(self.config.half_open_timeout)
                    .unwrap_or(now),
            },
        );
        self.schedule(spi_r.0);
        self.send(local, remote, response);
        self.event(SaEvent::Exchange {
            exchange: "IKE_SA_INIT",
        });
    }

    /// The COOKIE for this initiator (§2.6): version of the secret, then
    /// prf(secret, Ni | IPi | SPIi).
    fn cookie_for(&self, ni: &[u8], remote: SocketAddr, spi_i: IkeSpi) -> Vec<u8> {
        cookie_value(
            &self.cookie_secret,
            self.cookie_secret_version,
            ni,
            remote,
            spi_i,
        )
    }

    fn cookie_valid(
        &self,
        offered: &[u8],
        _ni: &[u8],
        _remote: SocketAddr,
        _spi_i: IkeSpi,
        expected: &[u8],
    ) -> bool {
        offered.len() == expected.len() && bool::from(offered.ct_eq(expected))
    }

    /// Answers an undecodable datagram if RFC 7296 allows an unprotected answer.
    pub(crate) fn answer_unprotected_error(
        &mut self,
        local: SocketAddr,
        remote: SocketAddr,
        data: &[u8],
        err: &DecodeError,
    ) {
        let action = err.notify(Protection::Unprotected);
        let header = crate::wire::HeaderView::new_unchecked(data);
        let is_request = data.len() >= Header::LEN && !header.flags().response();
        match action {
            // §2.21.1: errors in IKE_SA_INIT requests may be answered unprotected.
            ResponderAction::Notify(t, d)
                if is_request && header.exchange() == ExchangeType::IKE_SA_INIT =>
            {
                let reply = plain_notify_reply(&header.header(), t, d);
                self.send(local, remote, reply);
                self.event(SaEvent::Dropped {
                    reason: "decode_error_answered",
                });
            }
            _ => self.event(SaEvent::Dropped {
                reason: "decode_error",
            }),
        }
    }

    fn certreq_payloads(&self) -> Vec<Payload> {
        let mut hashes = Vec::new();
        for c in &self.config.connections {
            if let crate::config::RemoteAuth::Pubkey { cas } = &c.remote_auth {
                for ca in cas {
                    if let Ok(h) = crate::policy::cert::certreq_hash(ca)
                        && !hashes.contains(&h)
                    {
                        hashes.push(h);
                    }
                }
            }
        }
        if hashes.is_empty() {
            return Vec::new();
        }
        vec![Payload::CertReq(crate::wire::CertReqPayload {
            encoding: crate::wire::CertEncoding::X509_SIGNATURE,
            data: hashes.concat(),
        })]
    }
}

/// A status or error notify about no SA (Protocol ID 0, no SPI).
pub(crate) fn status_notify(t: NotifyType, data: Vec<u8>) -> Payload {
    Payload::Notify(NotifyPayload {
        protocol: ProtocolId::NONE,
        spi: Vec::new(),
        notify_type: t,
        data,
    })
}

/// An unprotected IKE_SA_INIT response carrying one notify (§1.2, §2.6, §2.21.1).
pub(crate) fn plain_notify_reply(req: &Header, t: NotifyType, data: Vec<u8>) -> Vec<u8> {
    let header = Header {
        spi_i: req.spi_i,
        spi_r: IkeSpi::ZERO,
        next_payload: PayloadType::NONE,
        version: Header::VERSION_2_0,
        exchange: req.exchange,
        flags: Flags(Flags::RESPONSE),
        message_id: req.message_id,
        length: 0,
    };
    Message {
        header,
        payloads: vec![status_notify(t, data)],
    }
    .encode()
}

pub(crate) fn cookie_value(
    secret: &crate::crypto::SecretBytes,
    version: u16,
    ni: &[u8],
    remote: SocketAddr,
    spi_i: IkeSpi,
) -> Vec<u8> {
    let ip = match remote.ip() {
        std::net::IpAddr::V4(a) => a.octets().to_vec(),
        std::net::IpAddr::V6(a) => a.octets().to_vec(),
    };
    let spi = spi_i.to_bytes();
    use crate::crypto::Prf;
    let mac = crate::crypto::prf::HMAC_SHA2_256.compute(secret.expose(), &[ni, &ip, &spi]);
    let mut out = version.to_be_bytes().to_vec();
    out.extend_from_slice(mac.expose());
    out
}
