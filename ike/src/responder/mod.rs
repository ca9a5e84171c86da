//! The responder side of every exchange, plus the SK helpers both roles share.

mod auth;
mod child;
mod established;
pub(crate) mod init;
pub(crate) mod keylog;
pub(crate) mod nat;
mod rfc6311;

use std::time::Instant;

use crate::crypto::SecretBytes;
use crate::crypto::SkCipher;
use crate::crypto::keys::{child_keymat, encr_key_len, integ_key_len};
use crate::endpoint::{ChildInstall, ChildSaHalf, Effect, Endpoint, SaEvent};
use crate::policy::proposal::ChildSuite;
use crate::sa::{ChildSa, ChildSaKeys, ChildSaState, IkeSa};
use crate::wire::{
    DecodeError, ExchangeType, Flags, Header, Payload, PayloadType, encrypt_fragments,
    encrypt_message,
};

/// Why an SK message could not be built.
#[derive(Debug)]
pub(crate) struct SealError;

/// The cipher for messages we send in `sa`.
pub(crate) fn outbound_cipher(
    ep: &Endpoint,
    sa: &IkeSa,
) -> Result<Box<dyn SkCipher>, crate::crypto::CryptoError> {
    let k = &sa.keys;
    let (e, a) = if sa.we_are_initiator {
        (&k.sk_ei, &k.sk_ai)
    } else {
        (&k.sk_er, &k.sk_ar)
    };
    (ep.config.provider.sk_cipher)(
        sa.suite.encr.id,
        sa.suite.encr.key_bits,
        sa.suite.integ,
        e.expose(),
        a.expose(),
    )
}

/// The cipher for messages we receive in `sa`.
pub(crate) fn inbound_cipher(
    ep: &Endpoint,
    sa: &IkeSa,
) -> Result<Box<dyn SkCipher>, crate::crypto::CryptoError> {
    let k = &sa.keys;
    let (e, a) = if sa.we_are_initiator {
        (&k.sk_er, &k.sk_ar)
    } else {
        (&k.sk_ei, &k.sk_ai)
    };
    (ep.config.provider.sk_cipher)(
        sa.suite.encr.id,
        sa.suite.encr.key_bits,
        sa.suite.integ,
        e.expose(),
        a.expose(),
    )
}

impl Endpoint {
    /// Builds the datagrams of an encrypted message of `sa` (fragmented per RFC 7383 when
    /// negotiated and the message is larger than the connection's fragment size).
    pub(crate) fn seal(
        &self,
        sa: &IkeSa,
        exchange: ExchangeType,
        message_id: u32,
        response: bool,
        payloads: &[Payload],
    ) -> Result<Vec<Vec<u8>>, SealError> {
        let mut flags = 0;
        if sa.we_are_initiator {
            flags |= Flags::INITIATOR;
        }
        if response {
            flags |= Flags::RESPONSE;
        }
        let header = Header {
            spi_i: sa.spis.spi_i,
            spi_r: sa.spis.spi_r,
            next_payload: PayloadType::NONE,
            version: Header::VERSION_2_0,
            exchange,
            flags: Flags(flags),
            message_id,
            length: 0,
        };
        let cipher = outbound_cipher(self, sa).map_err(|_| SealError)?;
        let whole = encrypt_message(&header, payloads, cipher.as_ref()).map_err(|_| SealError)?;
        let frag_size = self
            .connection(&sa.connection)
            .map(|c| c.fragment_size)
            .unwrap_or(crate::DEFAULT_FRAGMENT_SIZE);
        if sa.fragmentation && whole.len() > frag_size {
            encrypt_fragments(&header, payloads, cipher.as_ref(), frag_size).map_err(|_| SealError)
        } else {
            Ok(vec![whole])
        }
    }

    /// Decrypts a request or response of the SA with our SPI `spi` (held in `sas` or
    /// `half_open`). `Ok(None)` means a fragment was stored and more are needed.
    pub(crate) fn open(
        &mut self,
        spi: u64,
        data: &[u8],
    ) -> Result<Option<(Header, Vec<Payload>)>, DecodeError> {
        let cipher = {
            let Some(sa) = self
                .sas
                .get(&spi)
                .or_else(|| self.half_open.get(&spi).map(|h| &h.sa))
            else {
                return Ok(None);
            };
            inbound_cipher(self, sa).map_err(DecodeError::Crypto)?
        };
        let view = crate::wire::HeaderView::new_checked(data)?;
        if view.next_payload() == PayloadType::SKF {
            let r = self.reassembly.entry(spi).or_default();
            return match r.handle_fragment(data, cipher.as_ref())? {
                crate::wire::FragmentOutcome::Complete { header, payloads } => {
                    Ok(Some((header, payloads)))
                }
                _ => Ok(None),
            };
        }
        crate::wire::decrypt_message(data, cipher.as_ref()).map(Some)
    }

    /// Child SA keys for `suite` (RFC 7296 §2.17): initiator-to-responder keys first,
    /// encryption before integrity. Returns (keys for traffic from the initiator, keys
    /// for traffic from the responder).
    pub(crate) fn child_keys(
        &self,
        ike: &IkeSa,
        suite: &ChildSuite,
        shared: Option<&SecretBytes>,
        ni: &[u8],
        nr: &[u8],
    ) -> Option<(ChildSaKeys, ChildSaKeys)> {
        let prf = self.config.provider.prf(ike.suite.prf)?;
        let e = encr_key_len(suite.encr.id, suite.encr.key_bits)?;
        let a = integ_key_len(suite.integ)?;
        let keymat = child_keymat(
            prf,
            ike.keys.sk_d.expose(),
            shared.map(|s| s.expose()),
            ni,
            nr,
            2 * (e + a),
        )
        .ok()?;
        let km = keymat.expose();
        let take = |from: usize, len: usize| {
            SecretBytes::from_slice(km.get(from..from + len).unwrap_or(&[]))
        };
        let i2r = ChildSaKeys {
            encr: take(0, e),
            integ: take(e, a),
        };
        let r2i = ChildSaKeys {
            encr: take(e + a, e),
            integ: take(2 * e + a, a),
        };
        Some((i2r, r2i))
    }

    /// Queues the kernel install of `child` (of `ike`).
    pub(crate) fn install_child(
        &mut self,
        ike: &IkeSa,
        child: &ChildSa,
        replaces: Option<(u32, u32)>,
    ) {
        let conn = self.connection(&ike.connection).cloned();
        let encap = ike
            .udp_encap()
            .then(|| (ike.local_addr.port(), ike.remote_addr.port()));
        let install = ChildInstall {
            ike_sa: ike.id(),
            name: child.name.clone(),
            reqid: child.reqid,
            suite: child.suite,
            mode: child.mode,
            inbound: ChildSaHalf {
                spi: child.spi_in,
                src: ike.remote_addr.ip(),
                dst: ike.local_addr.ip(),
                keys: child.keys_in.clone(),
            },
            outbound: ChildSaHalf {
                spi: child.spi_out,
                src: ike.local_addr.ip(),
                dst: ike.remote_addr.ip(),
                keys: child.keys_out.clone(),
            },
            encap,
            local_ts: child.local_ts.clone(),
            remote_ts: child.remote_ts.clone(),
            soft_lifetime: conn.as_ref().and_then(|c| c.child_rekey_time),
            hard_lifetime: conn.as_ref().and_then(|c| c.child_life_time),
            replaces,
        };
        self.effects
            .push_back(Effect::InstallChild(Box::new(install)));
        self.event(SaEvent::ChildUp {
            ike_sa: ike.id(),
            spi_in: child.spi_in,
            rekey: replaces.is_some(),
        });
    }

    /// Queues the kernel removal of `child` (of `ike`).
    pub(crate) fn remove_child(&mut self, ike: &IkeSa, child: &ChildSa, keep_policies: bool) {
        self.child_spis.remove(&child.spi_in);
        self.effects.push_back(Effect::DeleteChild(Box::new(
            crate::endpoint::ChildDelete {
                ike_sa: ike.id(),
                reqid: child.reqid,
                spi_in: child.spi_in,
                spi_out: child.spi_out,
                local_addr: ike.local_addr.ip(),
                remote_addr: ike.remote_addr.ip(),
                keep_policies,
                local_ts: child.local_ts.clone(),
                remote_ts: child.remote_ts.clone(),
            },
        )));
        self.event(SaEvent::ChildDown {
            ike_sa: ike.id(),
            spi_in: child.spi_in,
        });
    }

    /// Removes an IKE SA and everything it owns (Child SAs, lease).
    pub(crate) fn destroy_ike_sa(&mut self, spi: u64, reason: &'static str) {
        let Some(sa) = self.sas.remove(&spi) else {
            return;
        };
        self.keepalive_sent.remove(&spi);
        let init_key = (sa.remote_addr.ip(), sa.spis.spi_i.0);
        if self.init_index.get(&init_key) == Some(&spi) {
            self.init_index.remove(&init_key);
        }
        for c in &sa.children {
            self.remove_child(&sa, c, false);
        }
        if let Some(vip) = sa.virtual_ip {
            // A rekeyed SA hands its lease to its successor, which still references it.
            if !self.sas.values().any(|o| o.virtual_ip == Some(vip)) {
                self.release_address(vip);
            }
        }
        self.reassembly.remove(&spi);
        self.event(SaEvent::IkeDown {
            id: sa.id(),
            reason,
        });
    }
}

/// A freshly negotiated Child SA's state.
#[allow(clippy::too_many_arguments)] // reason: one call per exchange, every field distinct
pub(crate) fn new_child(
    name: &str,
    spi_in: u32,
    spi_out: u32,
    reqid: u32,
    suite: ChildSuite,
    mode: crate::config::IpsecMode,
    keys: (ChildSaKeys, ChildSaKeys),
    we_are_initiator: bool,
    ts: (
        Vec<crate::wire::IpTrafficSelector>,
        Vec<crate::wire::IpTrafficSelector>,
    ),
    now: Instant,
) -> ChildSa {
    let (i2r, r2i) = keys;
    let (keys_in, keys_out) = if we_are_initiator {
        (r2i, i2r)
    } else {
        (i2r, r2i)
    };
    ChildSa {
        name: name.to_owned(),
        spi_in,
        spi_out,
        reqid,
        suite,
        mode,
        keys_in,
        keys_out,
        local_ts: ts.0,
        remote_ts: ts.1,
        state: ChildSaState::Installed,
        installed_at: now,
    }
}
