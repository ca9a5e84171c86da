//! The initiator role (RFC 7296 §1.2), enough for tests, `ikeload` and the RFC 6311 peer
//! side: IKE_SA_INIT with COOKIE and INVALID_KE_PAYLOAD retries, IKE_AUTH with PSK or
//! certificates, a virtual IP request, and the RFC 6311 capability announcements.
//! Established SAs live in the same [`Endpoint`] as responder SAs, keyed by our SPI.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Instant;

use subtle::ConstantTimeEq;

use crate::config::{ConnectionConfig, LocalAuth, RemoteAuth, TsConfig};
use crate::crypto::KeyExchange;
use crate::crypto::auth::{SignatureScheme, encode_signature_auth, psk_auth, signed_octets};
use crate::crypto::keys::{derive_ike_sa_keys, key_lengths, skeyseed};
use crate::endpoint::{Effect, Endpoint, SaEvent};
use crate::policy::proposal::{
    accept_child_response, accept_ike_response, esp_sa_payload, ike_sa_payload,
};
use crate::responder::init::status_notify;
use crate::responder::nat::nat_detection_hash;
use crate::sa::{IkeSa, IkeSaId, IkeSaState, MessageIdWindow, SpiPair};
use crate::wire::{
    AuthMethod, AuthPayload, CertEncoding, CertPayload, CfgAttrType, CfgAttribute, CfgType,
    CpPayload, ExchangeType, Flags, HashAlgorithm, Header, HeaderView, IdPayload, IkeSpi,
    IpTrafficSelector, KeGroup, KePayload, Message, NoncePayload, NotifyType, Payload, PayloadType,
    SaPayload, TrafficSelector, TsPayload,
};

/// What the initiator asks for beyond its connection.
#[derive(Clone, Copy, Debug, Default)]
pub struct InitiatorOptions {
    /// Send CP(CFG_REQUEST) for an IPv4 virtual IP.
    pub request_virtual_ip: bool,
    /// Announce IKEV2_MESSAGE_ID_SYNC_SUPPORTED (RFC 6311 §5).
    pub mid_sync: bool,
    /// Announce IPSEC_REPLAY_COUNTER_SYNC_SUPPORTED.
    pub replay_sync: bool,
    /// Leave out INITIAL_CONTACT (RFC 7296 §2.4) from IKE_AUTH, so the responder keeps
    /// other IKE SAs with the same identity: a load generator sets up many IKE SAs
    /// under one identity (one certificate) and wants all of them kept.
    pub omit_initial_contact: bool,
}

/// Why an initiation failed, as reported in [`InitiatorOutcome`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum InitiatorFailure {
    /// The responder answered with this error notify.
    Notify(NotifyType),
    /// The responder's AUTH did not verify.
    PeerAuthentication,
    /// Nothing usable came back.
    Protocol(&'static str),
}

/// An IKE SA we are setting up.
pub(crate) struct Initiating {
    conn: Arc<ConnectionConfig>,
    opts: InitiatorOptions,
    spi_i: IkeSpi,
    local: SocketAddr,
    remote: SocketAddr,
    ni: Vec<u8>,
    group: KeGroup,
    kex: Option<Box<dyn KeyExchange>>,
    cookie: Option<Vec<u8>>,
    sent_sa: SaPayload,
    init_request: Vec<u8>,
    /// After IKE_SA_INIT: the SA being authenticated and what IKE_AUTH needs.
    auth: Option<AuthStage>,
    retries: u32,
}

struct AuthStage {
    sa: IkeSa,
    nr: Vec<u8>,
    init_response: Vec<u8>,
    child_spi_in: u32,
    sent_child_sa: SaPayload,
    auth_request: Vec<Vec<u8>>,
}

impl core::fmt::Debug for Initiating {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Initiating")
            .field("spi_i", &self.spi_i)
            .field("remote", &self.remote)
            .finish()
    }
}

fn ts_payload(cfg: &[TsConfig], dynamic: IpAddr) -> TsPayload {
    let selectors = cfg
        .iter()
        .map(|t| match *t {
            TsConfig::Subnet {
                addr,
                prefix_len,
                ip_protocol,
                ports,
            } => {
                let (start, end) =
                    crate::policy::ts::subnet_to_range(addr, prefix_len).unwrap_or((addr, addr));
                IpTrafficSelector {
                    ip_protocol,
                    start_port: ports.0,
                    end_port: ports.1,
                    start_addr: start,
                    end_addr: end,
                }
            }
            TsConfig::Dynamic => IpTrafficSelector {
                ip_protocol: 0,
                start_port: 0,
                end_port: 65535,
                start_addr: dynamic,
                end_addr: dynamic,
            },
        })
        .map(TrafficSelector::Ip)
        .collect();
    TsPayload { selectors }
}

fn ip_selectors(p: &TsPayload) -> Vec<IpTrafficSelector> {
    p.selectors
        .iter()
        .filter_map(|t| match t {
            TrafficSelector::Ip(x) => Some(*x),
            TrafficSelector::Unknown { .. } => None,
        })
        .collect()
}

impl Endpoint {
    /// Starts an IKE SA to `remote` for connection `conn_name` (as initiator). Returns the
    /// id the SA will have once established.
    pub fn initiate(
        &mut self,
        now: Instant,
        conn_name: &str,
        local: SocketAddr,
        remote: SocketAddr,
        opts: InitiatorOptions,
    ) -> Option<IkeSaId> {
        let conn = self.connection(conn_name)?.clone();
        let group = *conn.ike_proposals.first()?.ke.first()?;
        let spi_i = self.fresh_ike_spi();
        let ni = self.random_nonce();
        let sent_sa = ike_sa_payload(&conn.ike_proposals, &[]);
        let mut st = Initiating {
            conn,
            opts,
            spi_i,
            local,
            remote,
            ni,
            group,
            kex: None,
            cookie: None,
            sent_sa,
            init_request: Vec::new(),
            auth: None,
            retries: 0,
        };
        self.send_init(now, &mut st)?;
        self.initiating.insert(spi_i.0, st);
        Some(IkeSaId::from_local_spi(spi_i))
    }

    fn send_init(&mut self, _now: Instant, st: &mut Initiating) -> Option<()> {
        let method = self.config.provider.ke_method(st.group)?;
        let kex = method.start().ok()?;
        let header = Header {
            spi_i: st.spi_i,
            spi_r: IkeSpi::ZERO,
            next_payload: PayloadType::NONE,
            version: Header::VERSION_2_0,
            exchange: ExchangeType::IKE_SA_INIT,
            flags: Flags(Flags::INITIATOR),
            message_id: 0,
            length: 0,
        };
        let mut payloads = Vec::new();
        if let Some(c) = &st.cookie {
            payloads.push(status_notify(NotifyType::COOKIE, c.clone()));
        }
        payloads.push(Payload::Sa(st.sent_sa.clone()));
        payloads.push(Payload::Ke(KePayload {
            group: st.group,
            data: kex.public_value().to_vec(),
        }));
        payloads.push(Payload::Nonce(NoncePayload {
            data: st.ni.clone(),
        }));
        payloads.push(status_notify(
            NotifyType::NAT_DETECTION_SOURCE_IP,
            nat_detection_hash(st.spi_i, IkeSpi::ZERO, st.local).to_vec(),
        ));
        payloads.push(status_notify(
            NotifyType::NAT_DETECTION_DESTINATION_IP,
            nat_detection_hash(st.spi_i, IkeSpi::ZERO, st.remote).to_vec(),
        ));
        if st.conn.fragmentation {
            payloads.push(status_notify(
                NotifyType::IKEV2_FRAGMENTATION_SUPPORTED,
                Vec::new(),
            ));
        }
        let hashes = [
            HashAlgorithm::SHA2_256,
            HashAlgorithm::SHA2_384,
            HashAlgorithm::SHA2_512,
        ];
        payloads.push(status_notify(
            NotifyType::SIGNATURE_HASH_ALGORITHMS,
            hashes.iter().flat_map(|h| h.0.to_be_bytes()).collect(),
        ));
        let bytes = Message { header, payloads }.encode();
        st.kex = Some(kex);
        st.init_request = bytes.clone();
        self.send(st.local, st.remote, bytes);
        Some(())
    }

    /// Resends the pending IKE_SA_INIT or IKE_AUTH request of an SA we are initiating
    /// (the caller's retransmission timer; tests drive it explicitly).
    pub fn retransmit_initiation(&mut self, id: IkeSaId) -> bool {
        let Some(st) = self.initiating.get(&id.0) else {
            return false;
        };
        let datagrams = match &st.auth {
            Some(a) => a.auth_request.clone(),
            None => vec![st.init_request.clone()],
        };
        let (l, r) = (st.local, st.remote);
        for d in datagrams {
            self.send(l, r, d);
        }
        true
    }

    /// A response to our IKE_SA_INIT or IKE_AUTH.
    pub(crate) fn handle_initiator_response(&mut self, now: Instant, our_spi: IkeSpi, data: &[u8]) {
        let Some(mut st) = self.initiating.remove(&our_spi.0) else {
            return;
        };
        let Ok(view) = HeaderView::new_checked(data) else {
            self.initiating.insert(our_spi.0, st);
            return;
        };
        let keep = match (view.exchange(), st.auth.is_some()) {
            (ExchangeType::IKE_SA_INIT, false) => self.on_init_response(now, &mut st, data),
            (ExchangeType::IKE_AUTH, true) => self.on_auth_response(now, &mut st, data),
            _ => Ok(true),
        };
        match keep {
            Ok(true) => {
                self.initiating.insert(our_spi.0, st);
            }
            Ok(false) => {}
            Err(f) => self
                .effects
                .push_back(Effect::Event(SaEvent::InitiationFailed {
                    id: IkeSaId::from_local_spi(st.spi_i),
                    reason: f,
                })),
        }
    }

    fn on_init_response(
        &mut self,
        now: Instant,
        st: &mut Initiating,
        data: &[u8],
    ) -> Result<bool, InitiatorFailure> {
        let msg = Message::decode(data)
            .map_err(|_| InitiatorFailure::Protocol("undecodable IKE_SA_INIT response"))?;
        for p in &msg.payloads {
            if let Payload::Notify(n) = p {
                match n.notify_type {
                    NotifyType::COOKIE if st.retries < 3 => {
                        st.retries += 1;
                        st.cookie = Some(n.data.clone());
                        self.send_init(now, st)
                            .ok_or(InitiatorFailure::Protocol("cannot resend"))?;
                        return Ok(true);
                    }
                    NotifyType::INVALID_KE_PAYLOAD if st.retries < 3 => {
                        let g = <[u8; 2]>::try_from(n.data.as_slice())
                            .map_err(|_| InitiatorFailure::Protocol("bad INVALID_KE_PAYLOAD"))?;
                        st.retries += 1;
                        st.group = KeGroup(u16::from_be_bytes(g));
                        self.send_init(now, st)
                            .ok_or(InitiatorFailure::Notify(NotifyType::INVALID_KE_PAYLOAD))?;
                        return Ok(true);
                    }
                    t if t.is_error() => return Err(InitiatorFailure::Notify(t)),
                    _ => {}
                }
            }
        }
        let chosen = msg.payloads.iter().find_map(|p| {
            if let Payload::Sa(s) = p {
                Some(s)
            } else {
                None
            }
        });
        let ke = msg.payloads.iter().find_map(|p| {
            if let Payload::Ke(k) = p {
                Some(k)
            } else {
                None
            }
        });
        let nr = msg.payloads.iter().find_map(|p| {
            if let Payload::Nonce(n) = p {
                Some(n.data.clone())
            } else {
                None
            }
        });
        let (Some(chosen), Some(ke), Some(nr)) = (chosen, ke, nr) else {
            return Err(InitiatorFailure::Protocol(
                "IKE_SA_INIT response lacks SA, KE or Nonce",
            ));
        };
        let suite = accept_ike_response(&st.sent_sa, chosen)
            .map_err(|_| InitiatorFailure::Protocol("bad proposal"))?;
        let kex = st
            .kex
            .take()
            .ok_or(InitiatorFailure::Protocol("no key exchange"))?;
        let shared = kex
            .complete(&ke.data)
            .map_err(|_| InitiatorFailure::Protocol("bad KE"))?;
        let prf = self
            .config
            .provider
            .prf(suite.prf)
            .ok_or(InitiatorFailure::Protocol("prf"))?;
        let spi_r = msg.header.spi_r;
        let lens = key_lengths(suite.encr.id, suite.encr.key_bits, suite.integ, prf)
            .map_err(|_| InitiatorFailure::Protocol("keys"))?;
        let seed = skeyseed(prf, &st.ni, &nr, shared.expose());
        let keys = derive_ike_sa_keys(prf, seed.expose(), &st.ni, &nr, st.spi_i, spi_r, &lens)
            .map_err(|_| InitiatorFailure::Protocol("keys"))?;
        let mut nat_local = false;
        let mut nat_remote = false;
        let mut frag = false;
        for p in &msg.payloads {
            if let Payload::Notify(n) = p {
                match n.notify_type {
                    NotifyType::NAT_DETECTION_SOURCE_IP => {
                        nat_remote |= n.data != nat_detection_hash(st.spi_i, spi_r, st.remote);
                    }
                    NotifyType::NAT_DETECTION_DESTINATION_IP => {
                        nat_local |= n.data != nat_detection_hash(st.spi_i, spi_r, st.local);
                    }
                    NotifyType::IKEV2_FRAGMENTATION_SUPPORTED => frag = st.conn.fragmentation,
                    _ => {}
                }
            }
        }
        let mut sa = IkeSa {
            spis: SpiPair {
                spi_i: st.spi_i,
                spi_r,
            },
            we_are_initiator: true,
            state: IkeSaState::HalfOpen,
            connection: st.conn.name.clone(),
            suite,
            keys,
            local_addr: st.local,
            remote_addr: st.remote,
            local_id: Some(st.conn.local_id.clone()),
            remote_id: None,
            nat_local,
            nat_remote,
            fragmentation: frag,
            mid_sync: false,
            replay_sync: false,
            msgids: MessageIdWindow::after_ike_sa_init(true),
            children: Vec::new(),
            virtual_ip: None,
            created_at: now,
            established_at: None,
            last_heard: now,
            retransmit_at: None,
            rekey_at: None,
            expire_at: None,
        };
        // RFC 7296 §2.23: behind a NAT, both sides move to the NAT-T port.
        if nat_local || nat_remote {
            sa.local_addr.set_port(self.config.natt_port);
            sa.remote_addr.set_port(self.config.natt_port);
        }
        self.effects
            .push_back(Effect::KeyLog(crate::responder::keylog::line(&sa)));

        // IKE_AUTH request.
        let idi = IdPayload {
            id_type: st.conn.local_id.id_type,
            data: st.conn.local_id.data.clone(),
        };
        let octets = signed_octets(
            &st.init_request,
            &nr,
            prf,
            sa.keys.sk_pi.expose(),
            &idi.body(),
        );
        let mut payloads = vec![Payload::IdI(idi)];
        match &st.conn.local_auth {
            LocalAuth::Psk => {
                let psk = self
                    .find_psk(&st.conn.local_id, st.conn.remote_id_exact())
                    .ok_or(InitiatorFailure::Protocol("no PSK"))?;
                let data = psk_auth(prf, psk.expose(), &octets).expose().to_vec();
                payloads.push(Payload::Auth(AuthPayload {
                    method: AuthMethod::SHARED_KEY_MIC,
                    data,
                }));
            }
            LocalAuth::Pubkey { cert_chain, key } => {
                for c in cert_chain {
                    payloads.push(Payload::Cert(CertPayload {
                        encoding: CertEncoding::X509_SIGNATURE,
                        data: c.clone(),
                    }));
                }
                let sig = key
                    .sign(HashAlgorithm::SHA2_256, &octets)
                    .map_err(|_| InitiatorFailure::Protocol("sign"))?;
                payloads.push(Payload::Auth(AuthPayload {
                    method: AuthMethod::DIGITAL_SIGNATURE,
                    data: encode_signature_auth(SignatureScheme::RsaPkcs1Sha256, &sig),
                }));
            }
        }
        if let Some(id) = st.conn.remote_id_exact() {
            payloads.insert(
                1,
                Payload::IdR(IdPayload {
                    id_type: id.id_type,
                    data: id.data.clone(),
                }),
            );
        }
        if !st.opts.omit_initial_contact {
            payloads.insert(0, status_notify(NotifyType::INITIAL_CONTACT, Vec::new()));
        }
        if st.opts.request_virtual_ip {
            payloads.push(Payload::Cp(CpPayload {
                cfg_type: CfgType::REQUEST,
                attributes: vec![
                    CfgAttribute {
                        attr_type: CfgAttrType::INTERNAL_IP4_ADDRESS,
                        value: Vec::new(),
                    },
                    CfgAttribute {
                        attr_type: CfgAttrType::INTERNAL_IP4_DNS,
                        value: Vec::new(),
                    },
                ],
            }));
        }
        let child_spi_in = self.fresh_child_spi();
        let sent_child_sa = esp_sa_payload(&st.conn.esp_proposals, child_spi_in, false);
        payloads.push(Payload::Sa(sent_child_sa.clone()));
        let tsi_dyn = if st.opts.request_virtual_ip {
            IpAddr::from([0, 0, 0, 0])
        } else {
            st.local.ip()
        };
        let mut tsi = ts_payload(&st.conn.local_ts, tsi_dyn);
        if st.opts.request_virtual_ip {
            for t in &mut tsi.selectors {
                if let TrafficSelector::Ip(x) = t
                    && x.start_addr == x.end_addr
                {
                    x.end_addr = IpAddr::from([255, 255, 255, 255]);
                }
            }
        }
        payloads.push(Payload::TsI(tsi));
        payloads.push(Payload::TsR(ts_payload(&st.conn.remote_ts, st.remote.ip())));
        if st.opts.mid_sync {
            payloads.push(status_notify(
                NotifyType::IKEV2_MESSAGE_ID_SYNC_SUPPORTED,
                Vec::new(),
            ));
        }
        if st.opts.replay_sync {
            payloads.push(status_notify(
                NotifyType::IPSEC_REPLAY_COUNTER_SYNC_SUPPORTED,
                Vec::new(),
            ));
        }
        let datagrams = self
            .seal(&sa, ExchangeType::IKE_AUTH, 1, false, &payloads)
            .map_err(|_| InitiatorFailure::Protocol("seal"))?;
        for d in &datagrams {
            self.send(sa.local_addr, sa.remote_addr, d.clone());
        }
        sa.msgids.our_next_request = 2;
        // Keyed by our SPI so the IKE_AUTH response (and `open`) find the keys.
        self.half_open_initiator_keys(&sa);
        st.auth = Some(AuthStage {
            sa,
            nr,
            init_response: data.to_vec(),
            child_spi_in,
            sent_child_sa,
            auth_request: datagrams,
        });
        Ok(true)
    }

    fn on_auth_response(
        &mut self,
        now: Instant,
        st: &mut Initiating,
        data: &[u8],
    ) -> Result<bool, InitiatorFailure> {
        let spi = st.spi_i.0;
        let payloads = match self.open(spi, data) {
            Ok(Some((_, p))) => p,
            Ok(None) => return Ok(true),
            Err(_) => return Ok(true), // forged or corrupt: keep waiting
        };
        self.sas.remove(&spi);
        let stage = st
            .auth
            .take()
            .ok_or(InitiatorFailure::Protocol("no auth stage"))?;
        let AuthStage {
            mut sa,
            nr,
            init_response,
            child_spi_in,
            sent_child_sa,
            ..
        } = stage;
        if let Some(t) = payloads.iter().find_map(|p| match p {
            Payload::Notify(n) if n.notify_type == NotifyType::AUTHENTICATION_FAILED => {
                Some(n.notify_type)
            }
            _ => None,
        }) {
            return Err(InitiatorFailure::Notify(t));
        }
        let idr = payloads.iter().find_map(|p| {
            if let Payload::IdR(i) = p {
                Some(i)
            } else {
                None
            }
        });
        let auth = payloads.iter().find_map(|p| {
            if let Payload::Auth(a) = p {
                Some(a)
            } else {
                None
            }
        });
        let (Some(idr), Some(auth)) = (idr, auth) else {
            return Err(InitiatorFailure::Protocol(
                "IKE_AUTH response lacks IDr or AUTH",
            ));
        };
        let prf = self
            .config
            .provider
            .prf(sa.suite.prf)
            .ok_or(InitiatorFailure::Protocol("prf"))?;
        let octets = signed_octets(
            &init_response,
            &st.ni,
            prf,
            sa.keys.sk_pr.expose(),
            &idr.body(),
        );
        let remote_id = crate::config::Identity {
            id_type: idr.id_type,
            data: idr.data.clone(),
        };
        let ok = match &st.conn.remote_auth {
            RemoteAuth::Psk => self
                .find_psk(&st.conn.local_id, Some(&remote_id))
                .is_some_and(|psk| {
                    let expected = psk_auth(prf, psk.expose(), &octets);
                    auth.method == AuthMethod::SHARED_KEY_MIC
                        && expected.len() == auth.data.len()
                        && bool::from(expected.expose().ct_eq(&auth.data))
                }),
            RemoteAuth::Pubkey { cas } => {
                let certs: Vec<&CertPayload> = payloads
                    .iter()
                    .filter_map(|p| {
                        if let Payload::Cert(c) = p {
                            Some(c)
                        } else {
                            None
                        }
                    })
                    .collect();
                self.verify_peer_signature(now, cas, &remote_id, &certs, auth, &octets)
            }
        };
        if !ok || !st.conn.remote_id.matches(&remote_id) {
            return Err(InitiatorFailure::PeerAuthentication);
        }
        sa.remote_id = Some(remote_id);
        sa.state = IkeSaState::Established;
        sa.established_at = Some(now);
        sa.last_heard = now;
        for p in &payloads {
            match p {
                Payload::Notify(n)
                    if n.notify_type == NotifyType::IKEV2_MESSAGE_ID_SYNC_SUPPORTED =>
                {
                    sa.mid_sync = st.opts.mid_sync;
                }
                Payload::Notify(n)
                    if n.notify_type == NotifyType::IPSEC_REPLAY_COUNTER_SYNC_SUPPORTED =>
                {
                    sa.replay_sync = st.opts.replay_sync;
                }
                Payload::Cp(cp) if cp.cfg_type == CfgType::REPLY => {
                    for a in &cp.attributes {
                        if a.attr_type == CfgAttrType::INTERNAL_IP4_ADDRESS
                            && let Ok(b) = <[u8; 4]>::try_from(a.value.as_slice())
                        {
                            sa.virtual_ip = Some(IpAddr::from(b));
                        }
                    }
                }
                _ => {}
            }
        }
        let chosen = payloads.iter().find_map(|p| {
            if let Payload::Sa(s) = p {
                Some(s)
            } else {
                None
            }
        });
        let tsi = payloads.iter().find_map(|p| {
            if let Payload::TsI(t) = p {
                Some(t)
            } else {
                None
            }
        });
        let tsr = payloads.iter().find_map(|p| {
            if let Payload::TsR(t) = p {
                Some(t)
            } else {
                None
            }
        });
        if let (Some(chosen), Some(tsi), Some(tsr)) = (chosen, tsi, tsr)
            && let Ok((suite, spi_out)) = accept_child_response(&sent_child_sa, chosen)
            && let Some(keys) = self.child_keys(&sa, &suite, None, &st.ni, &nr)
        {
            let reqid = self.fresh_reqid();
            let child = crate::responder::new_child(
                &st.conn.name,
                child_spi_in,
                spi_out,
                reqid,
                suite,
                crate::config::IpsecMode::Tunnel,
                keys,
                true,
                (ip_selectors(tsi), ip_selectors(tsr)),
                now,
            );
            self.install_child(&sa, &child, None);
            sa.children.push(child);
        }
        self.event(SaEvent::IkeUp {
            id: sa.id(),
            connection: sa.connection.clone(),
            remote: sa.remote_addr,
        });
        self.put_sa(spi, sa);
        Ok(false)
    }

    /// While IKE_AUTH is in flight, [`Endpoint::open`] finds the keys through `sas`.
    fn half_open_initiator_keys(&mut self, sa: &IkeSa) {
        self.put_sa(sa.local_spi().0, sa.clone());
    }

    /// Whether an SA we initiate is still being set up.
    pub fn is_initiating(&self, id: IkeSaId) -> bool {
        self.initiating.contains_key(&id.0)
    }
}
