//! The IKE_AUTH exchange, responder side (RFC 7296 §1.2, §2.15, §2.17, §2.19; RFC 7427;
//! RFC 6311 §5 capability negotiation).

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Instant;

use subtle::ConstantTimeEq;

use crate::config::{ConnectionConfig, Identity, IpsecMode, LocalAuth, RemoteAuth};
use crate::crypto::auth::{
    SignatureScheme, decode_signature_auth, encode_signature_auth, psk_auth, signed_octets,
    verify_rsa,
};
use crate::endpoint::{Endpoint, HalfOpen, SaEvent, request_hash};
use crate::policy::proposal::select_child;
use crate::sa::{IkeSa, IkeSaState};
use crate::wire::{
    AuthMethod, AuthPayload, CertEncoding, CertPayload, CfgAttrType, CfgAttribute, CfgType,
    CpPayload, ExchangeType, HashAlgorithm, IdPayload, NotifyType, Payload, SaPayload, TsPayload,
};

use super::init::status_notify;

/// Why IKE_AUTH failed; each maps to what the response carries.
enum AuthFailure {
    /// AUTHENTICATION_FAILED (§2.21.2): the IKE SA is not created.
    Authentication,
}

/// What the peer sent in IKE_AUTH, sorted out.
#[derive(Default)]
struct AuthRequest<'a> {
    idi: Option<&'a IdPayload>,
    idr: Option<&'a IdPayload>,
    auth: Option<&'a AuthPayload>,
    certs: Vec<&'a CertPayload>,
    sa: Option<&'a SaPayload>,
    tsi: Option<&'a TsPayload>,
    tsr: Option<&'a TsPayload>,
    cp: Option<&'a CpPayload>,
    transport: bool,
    initial_contact: bool,
    mid_sync: bool,
    replay_sync: bool,
}

fn sort_out(payloads: &[Payload]) -> AuthRequest<'_> {
    let mut r = AuthRequest::default();
    for p in payloads {
        match p {
            Payload::IdI(x) => r.idi = Some(x),
            Payload::IdR(x) => r.idr = Some(x),
            Payload::Auth(x) => r.auth = Some(x),
            Payload::Cert(x) => r.certs.push(x),
            Payload::Sa(x) => r.sa = Some(x),
            Payload::TsI(x) => r.tsi = Some(x),
            Payload::TsR(x) => r.tsr = Some(x),
            Payload::Cp(x) if x.cfg_type == CfgType::REQUEST => r.cp = Some(x),
            Payload::Notify(n) => match n.notify_type {
                NotifyType::USE_TRANSPORT_MODE => r.transport = true,
                NotifyType::INITIAL_CONTACT => r.initial_contact = true,
                NotifyType::IKEV2_MESSAGE_ID_SYNC_SUPPORTED => r.mid_sync = true,
                NotifyType::IPSEC_REPLAY_COUNTER_SYNC_SUPPORTED => r.replay_sync = true,
                _ => {}
            },
            _ => {}
        }
    }
    r
}

impl Endpoint {
    pub(crate) fn handle_auth_request(
        &mut self,
        now: Instant,
        local: SocketAddr,
        remote: SocketAddr,
        our_spi: crate::wire::IkeSpi,
        data: &[u8],
    ) {
        let hash = request_hash(data);
        let Ok(view) = crate::wire::HeaderView::new_checked(data) else {
            return;
        };
        if view.message_id() != 1 {
            self.event(SaEvent::Dropped {
                reason: "invalid_message_id",
            });
            return;
        }
        let payloads = match self.open(our_spi.0, data) {
            Ok(Some((_, p))) => p,
            Ok(None) => return, // more fragments to come
            Err(e) => {
                // §2.21.2: a message that fails its integrity check is dropped; a
                // syntax error inside a verified message would get INVALID_SYNTAX, but
                // without an IKE SA to send it in we drop the half-open SA instead.
                let reason = match e {
                    crate::wire::DecodeError::Crypto(_) => "integrity_check_failed",
                    _ => "ike_auth_decode_error",
                };
                self.event(SaEvent::Dropped { reason });
                return;
            }
        };
        let Some(mut half) = self.half_open.remove(&our_spi.0) else {
            return;
        };
        // The IKE_SA_INIT index entry stays while the SA lives (§2.1).
        self.reassembly.remove(&our_spi.0);
        // The peer may have moved to port 4500 (§2.23): answer where it now speaks from.
        half.sa.local_addr = local;
        half.sa.remote_addr = remote;
        half.sa.last_heard = now;
        let req = sort_out(&payloads);
        match self.authenticate(now, &half, &req) {
            Ok((conn, remote_id)) => self.complete_auth(now, half, &req, conn, remote_id, hash),
            Err(AuthFailure::Authentication) => {
                let reply = vec![status_notify(NotifyType::AUTHENTICATION_FAILED, Vec::new())];
                if let Ok(dgrams) = self.seal(&half.sa, ExchangeType::IKE_AUTH, 1, true, &reply) {
                    for d in dgrams {
                        self.send(local, remote, d);
                    }
                }
                self.event(SaEvent::AuthFailed { remote });
            }
        }
    }

    /// Picks the connection and checks the peer's AUTH payload (§2.15).
    fn authenticate(
        &self,
        now: Instant,
        half: &HalfOpen,
        req: &AuthRequest<'_>,
    ) -> Result<(Arc<ConnectionConfig>, Identity), AuthFailure> {
        let (Some(idi), Some(auth)) = (req.idi, req.auth) else {
            // No AUTH means the initiator wants EAP, which we do not offer.
            return Err(AuthFailure::Authentication);
        };
        let remote_id = Identity {
            id_type: idi.id_type,
            data: idi.data.clone(),
        };
        let wants_psk = auth.method == AuthMethod::SHARED_KEY_MIC;
        let sa = &half.sa;
        let prf = self
            .config
            .provider
            .prf(sa.suite.prf)
            .ok_or(AuthFailure::Authentication)?;
        let octets = signed_octets(
            &half.init_request,
            &half.nr,
            prf,
            sa.keys.sk_pi.expose(),
            &idi.body(),
        );
        for conn in &self.config.connections {
            if let Some(idr) = req.idr
                && (idr.id_type != conn.local_id.id_type || idr.data != conn.local_id.data)
            {
                continue;
            }
            if !conn.remote_id.matches(&remote_id) || !suite_allowed(conn, sa) {
                continue;
            }
            let ok = match (&conn.remote_auth, wants_psk) {
                (RemoteAuth::Psk, true) => match self.find_psk(&conn.local_id, Some(&remote_id)) {
                    Some(psk) => {
                        let expected = psk_auth(prf, psk.expose(), &octets);
                        expected.len() == auth.data.len()
                            && bool::from(expected.expose().ct_eq(&auth.data))
                    }
                    None => false,
                },
                (RemoteAuth::Pubkey { cas }, false) => {
                    self.verify_peer_signature(now, cas, &remote_id, &req.certs, auth, &octets)
                }
                _ => false,
            };
            if ok {
                return Ok((conn.clone(), remote_id));
            }
        }
        Err(AuthFailure::Authentication)
    }

    /// Verifies a peer's signature AUTH (§2.15, RFC 7427) with the end-entity certificate
    /// it sent, after validating that certificate's chain to one of `cas`.
    pub(crate) fn verify_peer_signature(
        &self,
        now: Instant,
        cas: &[Vec<u8>],
        remote_id: &Identity,
        certs: &[&CertPayload],
        auth: &AuthPayload,
        octets: &[u8],
    ) -> bool {
        let mut x509 = certs
            .iter()
            .filter(|c| c.encoding == CertEncoding::X509_SIGNATURE);
        let Some(ee) = x509.next() else { return false };
        let intermediates: Vec<Vec<u8>> = x509.map(|c| c.data.clone()).collect();
        let wall = self.wall_clock(now);
        let Ok(cert) = crate::policy::cert::validate_chain(&ee.data, &intermediates, cas, wall)
        else {
            return false;
        };
        if !crate::policy::cert::identity_matches_cert(remote_id, &cert.end_entity) {
            return false;
        }
        let (scheme, sig) = match auth.method {
            AuthMethod::RSA_SIG => (SignatureScheme::RsaPkcs1Sha1, auth.data.as_slice()),
            AuthMethod::DIGITAL_SIGNATURE => match decode_signature_auth(&auth.data) {
                Ok(x) => x,
                Err(_) => return false,
            },
            _ => return false,
        };
        verify_rsa(&cert.spki_der(), scheme, octets, sig).is_ok()
    }

    /// Our AUTH payload (§2.15): PSK, or an RFC 7427 signature when the peer sent
    /// SIGNATURE_HASH_ALGORITHMS (else RSA_SIG with SHA-1, method 1).
    fn our_auth(
        &self,
        half: &HalfOpen,
        conn: &ConnectionConfig,
        remote_id: &Identity,
    ) -> Option<(Vec<Payload>, AuthPayload)> {
        let sa = &half.sa;
        let prf = self.config.provider.prf(sa.suite.prf)?;
        let idr = IdPayload {
            id_type: conn.local_id.id_type,
            data: conn.local_id.data.clone(),
        };
        let octets = signed_octets(
            &half.init_response,
            &half.ni,
            prf,
            sa.keys.sk_pr.expose(),
            &idr.body(),
        );
        match &conn.local_auth {
            LocalAuth::Psk => {
                let psk = self.find_psk(&conn.local_id, Some(remote_id))?;
                let data = psk_auth(prf, psk.expose(), &octets).expose().to_vec();
                Some((
                    vec![Payload::IdR(idr)],
                    AuthPayload {
                        method: AuthMethod::SHARED_KEY_MIC,
                        data,
                    },
                ))
            }
            LocalAuth::Pubkey { cert_chain, key } => {
                let mut out = vec![Payload::IdR(idr)];
                for c in cert_chain {
                    out.push(Payload::Cert(CertPayload {
                        encoding: CertEncoding::X509_SIGNATURE,
                        data: c.clone(),
                    }));
                }
                let wanted = [
                    HashAlgorithm::SHA2_256,
                    HashAlgorithm::SHA2_384,
                    HashAlgorithm::SHA2_512,
                ];
                let hash = wanted
                    .into_iter()
                    .find(|h| half.peer_hash_algorithms.contains(h));
                let auth = match hash {
                    Some(h) => {
                        let sig = key.sign(h, &octets).ok()?;
                        let scheme = match h {
                            HashAlgorithm::SHA2_384 => SignatureScheme::RsaPkcs1Sha384,
                            HashAlgorithm::SHA2_512 => SignatureScheme::RsaPkcs1Sha512,
                            _ => SignatureScheme::RsaPkcs1Sha256,
                        };
                        AuthPayload {
                            method: AuthMethod::DIGITAL_SIGNATURE,
                            data: encode_signature_auth(scheme, &sig),
                        }
                    }
                    None => AuthPayload {
                        method: AuthMethod::RSA_SIG,
                        data: key.sign(HashAlgorithm::SHA1, &octets).ok()?,
                    },
                };
                Some((out, auth))
            }
        }
    }

    fn complete_auth(
        &mut self,
        now: Instant,
        half: HalfOpen,
        req: &AuthRequest<'_>,
        conn: Arc<ConnectionConfig>,
        remote_id: Identity,
        hash: [u8; 32],
    ) {
        let Some((mut response, auth)) = self.our_auth(&half, &conn, &remote_id) else {
            let reply = vec![status_notify(NotifyType::AUTHENTICATION_FAILED, Vec::new())];
            if let Ok(d) = self.seal(&half.sa, ExchangeType::IKE_AUTH, 1, true, &reply) {
                for x in d {
                    self.send(half.sa.local_addr, half.sa.remote_addr, x);
                }
            }
            self.event(SaEvent::AuthFailed {
                remote: half.sa.remote_addr,
            });
            return;
        };
        response.push(Payload::Auth(auth));
        let HalfOpen { mut sa, ni, nr, .. } = half;
        sa.connection = conn.name.clone();
        sa.local_id = Some(conn.local_id.clone());
        sa.remote_id = Some(remote_id.clone());
        sa.state = IkeSaState::Established;
        sa.established_at = Some(now);
        sa.mid_sync = req.mid_sync;
        sa.replay_sync = req.replay_sync;
        sa.rekey_at = conn.rekey_time.and_then(|d| now.checked_add(d));
        sa.expire_at = conn.life_time.and_then(|d| now.checked_add(d));

        if req.initial_contact {
            self.delete_duplicates(&conn.name, &remote_id);
        }

        // The Child SA created with IKE_AUTH (§1.2), with a virtual IP if asked (§3.15).
        if let (Some(sa_offer), Some(tsi), Some(tsr)) = (req.sa, req.tsi, req.tsr) {
            let mut vip: Option<IpAddr> = None;
            let mut child_error: Option<NotifyType> = None;
            if let (Some(cp), Some(pool)) = (req.cp, conn.pool.as_ref()) {
                match self.lease_for(pool, &remote_id, cp) {
                    Some((addr, reply)) => {
                        vip = Some(addr);
                        response.push(Payload::Cp(reply));
                    }
                    None => child_error = Some(NotifyType::INTERNAL_ADDRESS_FAILURE),
                }
            } else if conn.pool.is_some() {
                // A pool is configured but the peer asked for nothing: RFC 7296 §3.15.4
                // lets us refuse, and without a virtual IP its traffic would not match.
                child_error = Some(NotifyType::FAILED_CP_REQUIRED);
            }
            if child_error.is_none() {
                match self.negotiate_auth_child(
                    now, &mut sa, &conn, sa_offer, tsi, tsr, vip, req, &ni, &nr,
                ) {
                    Ok(mut payloads) => response.append(&mut payloads),
                    Err(n) => child_error = Some(n),
                }
            }
            if let Some(n) = child_error {
                response.push(status_notify(n, Vec::new()));
                if let Some(addr) = vip.take() {
                    self.release_address(addr);
                }
            }
            sa.virtual_ip = vip;
        }
        // RFC 6311 §5: echo a capability only if the initiator asserted it.
        if req.mid_sync {
            response.push(status_notify(
                NotifyType::IKEV2_MESSAGE_ID_SYNC_SUPPORTED,
                Vec::new(),
            ));
        }
        if req.replay_sync {
            response.push(status_notify(
                NotifyType::IPSEC_REPLAY_COUNTER_SYNC_SUPPORTED,
                Vec::new(),
            ));
        }
        let Ok(datagrams) = self.seal(&sa, ExchangeType::IKE_AUTH, 1, true, &response) else {
            return;
        };
        sa.msgids.record_response(1, hash, datagrams.clone());
        for d in datagrams {
            self.send(sa.local_addr, sa.remote_addr, d);
        }
        let children = sa.children.clone();
        for c in &children {
            self.install_child(&sa, c, None);
        }
        self.event(SaEvent::IkeUp {
            id: sa.id(),
            connection: sa.connection.clone(),
            remote: sa.remote_addr,
        });
        self.event(SaEvent::Exchange {
            exchange: "IKE_AUTH",
        });
        self.put_sa(sa.local_spi().0, sa);
    }

    /// Leases an address from `pool` for a CP(REQUEST) and builds the CP(REPLY).
    fn lease_for(
        &mut self,
        pool: &str,
        id: &Identity,
        cp: &CpPayload,
    ) -> Option<(IpAddr, CpPayload)> {
        let wants_v4 = cp
            .attributes
            .iter()
            .any(|a| a.attr_type == CfgAttrType::INTERNAL_IP4_ADDRESS);
        let wants_v6 = cp
            .attributes
            .iter()
            .any(|a| a.attr_type == CfgAttrType::INTERNAL_IP6_ADDRESS);
        let p = self.pools.get_mut(pool)?;
        let addr = p.lease(id)?;
        let cfg = p.config().clone();
        let mut attrs = Vec::new();
        match addr {
            IpAddr::V4(a) if wants_v4 || !wants_v6 => {
                attrs.push(CfgAttribute {
                    attr_type: CfgAttrType::INTERNAL_IP4_ADDRESS,
                    value: a.octets().to_vec(),
                });
            }
            IpAddr::V6(a) if wants_v6 || !wants_v4 => {
                let mut v = a.octets().to_vec();
                v.push(128);
                attrs.push(CfgAttribute {
                    attr_type: CfgAttrType::INTERNAL_IP6_ADDRESS,
                    value: v,
                });
            }
            _ => {
                p.release(addr);
                return None;
            }
        }
        for dns in &cfg.dns {
            match dns {
                IpAddr::V4(d) => attrs.push(CfgAttribute {
                    attr_type: CfgAttrType::INTERNAL_IP4_DNS,
                    value: d.octets().to_vec(),
                }),
                IpAddr::V6(d) => attrs.push(CfgAttribute {
                    attr_type: CfgAttrType::INTERNAL_IP6_DNS,
                    value: d.octets().to_vec(),
                }),
            }
        }
        Some((
            addr,
            CpPayload {
                cfg_type: CfgType::REPLY,
                attributes: attrs,
            },
        ))
    }

    #[allow(clippy::too_many_arguments)]
    fn negotiate_auth_child(
        &mut self,
        now: Instant,
        sa: &mut IkeSa,
        conn: &ConnectionConfig,
        offer: &SaPayload,
        tsi: &TsPayload,
        tsr: &TsPayload,
        vip: Option<IpAddr>,
        req: &AuthRequest<'_>,
        ni: &[u8],
        nr: &[u8],
    ) -> Result<Vec<Payload>, NotifyType> {
        let (mut chosen, suite) = select_child(offer, &conn.esp_proposals, None, false)
            .map_err(|_| NotifyType::NO_PROPOSAL_CHOSEN)?;
        let peer_spi: [u8; 4] = chosen
            .spi
            .as_slice()
            .try_into()
            .map_err(|_| NotifyType::NO_PROPOSAL_CHOSEN)?;
        let remote_dynamic = vip.unwrap_or(sa.remote_addr.ip());
        let (ts_i, ts_r) = crate::policy::ts::narrow_responder(
            &conn.local_ts,
            &conn.remote_ts,
            &[sa.local_addr.ip()],
            &[remote_dynamic],
            tsi,
            tsr,
        )
        .map(|n| (n.tsi, n.tsr))
        .map_err(|_| NotifyType::TS_UNACCEPTABLE)?;
        let keys = self
            .child_keys(sa, &suite, None, ni, nr)
            .ok_or(NotifyType::NO_PROPOSAL_CHOSEN)?;
        let spi_in = self.fresh_child_spi();
        chosen.spi = spi_in.to_be_bytes().to_vec();
        let mode = if req.transport && conn.mode == IpsecMode::Transport {
            IpsecMode::Transport
        } else {
            IpsecMode::Tunnel
        };
        let reqid = self.fresh_reqid();
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
        sa.children.push(child);
        let mut out = Vec::new();
        if mode == IpsecMode::Transport {
            out.push(status_notify(NotifyType::USE_TRANSPORT_MODE, Vec::new()));
        }
        out.push(Payload::Sa(SaPayload {
            proposals: vec![chosen],
        }));
        out.push(Payload::TsI(TsPayload {
            selectors: ts_i
                .into_iter()
                .map(crate::wire::TrafficSelector::Ip)
                .collect(),
        }));
        out.push(Payload::TsR(TsPayload {
            selectors: ts_r
                .into_iter()
                .map(crate::wire::TrafficSelector::Ip)
                .collect(),
        }));
        Ok(out)
    }

    /// INITIAL_CONTACT (§2.4): the peer has no other IKE SA with us, so any we still hold
    /// for the same identity on the same connection are stale.
    fn delete_duplicates(&mut self, connection: &str, remote_id: &Identity) {
        let stale: Vec<u64> = self
            .sas
            .iter()
            .filter(|(_, s)| s.connection == connection && s.remote_id.as_ref() == Some(remote_id))
            .map(|(k, _)| *k)
            .collect();
        for spi in stale {
            self.destroy_ike_sa(spi, "initial_contact");
        }
    }
}

/// Whether the IKE suite negotiated in IKE_SA_INIT is one this connection accepts.
fn suite_allowed(conn: &ConnectionConfig, sa: &IkeSa) -> bool {
    conn.ike_proposals.iter().any(|p| {
        p.encr.contains(&sa.suite.encr)
            && (p.integ.contains(&sa.suite.integ)
                || (p.integ.is_empty() && sa.suite.encr.is_aead()))
            && p.prf.contains(&sa.suite.prf)
            && p.ke.contains(&sa.suite.ke)
    })
}
