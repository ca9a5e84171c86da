//! The IKE endpoint: routes datagrams to IKE SAs by SPI, admits new ones (with COOKIEs
//! under load, RFC 7296 §2.6), bounds half-open state, runs timers, and queues effects.
//!
//! Method kinds, in quinn's style: `handle_*` feed input (datagrams, timeouts, data-plane
//! notices, operator commands), `poll_*` drain output (`poll_effect`, `poll_timeout`), the
//! rest are getters. Time is always an argument; the endpoint never reads a clock.

pub mod effect;
pub(crate) mod outbound;
mod rekey;

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use sha2::{Digest, Sha256};

use crate::config::{ConnectionConfig, Identity, PoolConfig, PskEntry};
use crate::crypto::{CryptoProvider, SecretBytes};
use crate::policy::pool::AddressPool;
use crate::sa::{IkeSa, IkeSaId};
use crate::wire::{ExchangeType, HeaderView, IkeSpi, Reassembler};

pub use effect::*;

/// Configuration of an [`Endpoint`].
#[derive(Clone, Debug)]
pub struct EndpointConfig {
    /// Connections, tried in order when a peer authenticates.
    pub connections: Vec<Arc<ConnectionConfig>>,
    /// Pre-shared keys.
    pub secrets: Vec<PskEntry>,
    /// Address pools.
    pub pools: Vec<PoolConfig>,
    /// Above this many half-open IKE SAs, new IKE_SA_INIT requests must carry a COOKIE.
    pub cookie_threshold: usize,
    /// Hard cap on half-open IKE SAs; beyond it IKE_SA_INIT requests are dropped.
    pub half_open_limit: usize,
    /// A half-open IKE SA that has not completed IKE_AUTH after this long is dropped.
    pub half_open_timeout: Duration,
    /// Inbound ESP SPIs we may choose, inclusive (cluster nodes get disjoint ranges).
    pub spi_range: (u32, u32),
    /// Child SA request IDs (the kernel's link between SAs and policies) we may choose,
    /// inclusive. Cluster nodes get disjoint ranges: a node that takes an SA over keeps
    /// its reqid, which must not be one of its own Child SAs' (two Child SAs to peers
    /// behind one NAT address would share outbound SA lookups).
    pub reqid_range: (u32, u32),
    /// The NAT-T port (RFC 3948), where an initiator moves when a NAT is detected.
    pub natt_port: u16,
    /// Crypto implementations.
    pub provider: &'static CryptoProvider,
}

impl EndpointConfig {
    /// A configuration with the usual defaults for the limits.
    pub fn new(provider: &'static CryptoProvider) -> Self {
        Self {
            connections: Vec::new(),
            secrets: Vec::new(),
            pools: Vec::new(),
            cookie_threshold: 1_000,
            half_open_limit: 20_000,
            half_open_timeout: Duration::from_secs(30),
            spi_range: (0xc000_0000, 0xcfff_ffff),
            reqid_range: (1, u32::MAX),
            natt_port: 4500,
            provider,
        }
    }
}

/// An IKE SA between IKE_SA_INIT and IKE_AUTH: what IKE_AUTH needs to finish it.
#[derive(Debug)]
pub(crate) struct HalfOpen {
    pub(crate) sa: IkeSa,
    pub(crate) ni: Vec<u8>,
    pub(crate) nr: Vec<u8>,
    /// The IKE_SA_INIT request as received: the initiator's AUTH signs it (§2.15).
    pub(crate) init_request: Vec<u8>,
    /// Our IKE_SA_INIT response: our AUTH signs it.
    pub(crate) init_response: Vec<u8>,
    /// Hash algorithms from the peer's SIGNATURE_HASH_ALGORITHMS (RFC 7427).
    pub(crate) peer_hash_algorithms: Vec<crate::wire::HashAlgorithm>,
    pub(crate) expires_at: Instant,
}

/// The endpoint. See the module documentation.
#[derive(Debug)]
pub struct Endpoint {
    pub(crate) config: EndpointConfig,
    /// Established (and rekeyed-but-not-yet-deleted) IKE SAs by our SPI.
    pub(crate) sas: HashMap<u64, IkeSa>,
    /// Half-open IKE SAs by our SPI.
    pub(crate) half_open: HashMap<u64, HalfOpen>,
    /// IKE_SA_INIT retransmission lookup: (peer address, SPIi) → our SPI (§2.1). Kept
    /// while the SA lives, so a late IKE_SA_INIT copy is ignored after IKE_AUTH.
    pub(crate) init_index: HashMap<(IpAddr, u64), u64>,
    /// Inbound ESP SPIs in use (ours and, in a cluster, replicated ones).
    pub(crate) child_spis: HashSet<u32>,
    /// Address pools by name.
    pub(crate) pools: HashMap<String, AddressPool>,
    /// A cluster node's share of every pool, and whether pools are paused (see
    /// [`Endpoint::set_pool_filter`]); applied to pools added by a reconfiguration too.
    pub(crate) pool_filter: crate::policy::pool::Share,
    pub(crate) pools_paused: bool,
    /// RFC 7383 reassembly state per IKE SA.
    pub(crate) reassembly: HashMap<u64, Reassembler>,
    pub(crate) cookie_secret: SecretBytes,
    pub(crate) cookie_secret_version: u16,
    pub(crate) cookie_secret_rotated: Instant,
    pub(crate) next_reqid: u32,
    pub(crate) effects: VecDeque<Effect>,
    /// What each outstanding request of ours is for.
    pub(crate) pending: HashMap<u64, outbound::PendingRequest>,
    /// Maps `Instant`s to wall-clock time for certificate validity checks.
    pub(crate) wall_anchor: (Instant, SystemTime),
    /// Simultaneous Child SA rekeys (§2.8.1): (IKE SA, old inbound SPI) → the peer's
    /// replacement (its inbound SPI here) and the lower nonce of the peer's exchange.
    pub(crate) rekey_collisions: HashMap<(u64, u32), (u32, Vec<u8>)>,
    /// When we last sent a NAT-keepalive, for SAs where we are behind a NAT.
    pub(crate) keepalive_sent: HashMap<u64, Instant>,
    /// Deadlines by SA, earliest first. Entries go stale when a deadline moves later;
    /// a stale entry only causes a spurious wake-up, after which the SA is rescheduled.
    pub(crate) timers: BinaryHeap<Reverse<(Instant, u64)>>,
    /// Child SA rekeys waiting for our request in flight to finish, by IKE SA.
    pub(crate) deferred_rekeys: HashMap<u64, Vec<u32>>,
    /// IKE SAs we are initiating, by our SPI.
    pub(crate) initiating: HashMap<u64, crate::initiator::Initiating>,
    /// RFC 6311: the replay counter delta of our sync request in flight, by IKE SA, sent
    /// again with each retransmission (a new request).
    pub(crate) sync_replay: HashMap<u64, (u64, bool)>,
}

/// How often the COOKIE secret changes (RFC 7296 §2.6: "change the value of
/// <secret> frequently").
const COOKIE_SECRET_LIFETIME: Duration = Duration::from_secs(120);

/// NAT-keepalive interval (RFC 3948 §4 suggests 20 seconds).
pub(crate) const NAT_KEEPALIVE_INTERVAL: Duration = Duration::from_secs(20);

impl Endpoint {
    /// A new endpoint with no SAs.
    pub fn new(config: EndpointConfig, now: Instant) -> Self {
        let mut secret = vec![0u8; 32];
        (config.provider.fill_random)(&mut secret);
        let pools = config
            .pools
            .iter()
            .filter_map(|p| Some((p.name.clone(), AddressPool::new(p).ok()?)))
            .collect();
        Self {
            config,
            sas: HashMap::new(),
            half_open: HashMap::new(),
            init_index: HashMap::new(),
            child_spis: HashSet::new(),
            pools,
            pool_filter: crate::policy::pool::Share::default(),
            pools_paused: false,
            reassembly: HashMap::new(),
            cookie_secret: SecretBytes::new(secret),
            cookie_secret_version: 1,
            cookie_secret_rotated: now,
            next_reqid: 1,
            effects: VecDeque::new(),
            pending: HashMap::new(),
            wall_anchor: (now, SystemTime::UNIX_EPOCH),
            initiating: HashMap::new(),
            sync_replay: HashMap::new(),
            deferred_rekeys: HashMap::new(),
            timers: BinaryHeap::new(),
            keepalive_sent: HashMap::new(),
            rekey_collisions: HashMap::new(),
        }
    }

    /// Applies a new configuration without touching established SAs. Pools keep their
    /// leases; pools that disappeared stop handing out addresses.
    pub fn reconfigure(&mut self, config: EndpointConfig) {
        for p in &config.pools {
            if !self.pools.contains_key(&p.name)
                && let Ok(mut pool) = AddressPool::new(p)
            {
                pool.set_filter(self.pool_filter.0.clone());
                pool.set_paused(self.pools_paused);
                self.pools.insert(p.name.clone(), pool);
            }
        }
        self.config = config;
        // Liveness-check delays may have changed.
        let spis: Vec<u64> = self.sas.keys().copied().collect();
        for spi in spis {
            self.schedule(spi);
        }
    }

    /// Tells the endpoint that `now` is `wall` on the wall clock (for certificate
    /// validity). The gateway calls it at start; the core never reads a clock itself.
    pub fn set_wall_clock(&mut self, now: Instant, wall: SystemTime) {
        self.wall_anchor = (now, wall);
    }

    pub(crate) fn wall_clock(&self, now: Instant) -> SystemTime {
        let (at, wall) = self.wall_anchor;
        wall + now.saturating_duration_since(at)
    }

    /// The current configuration.
    pub fn config(&self) -> &EndpointConfig {
        &self.config
    }

    /// Next effect to execute, in order.
    pub fn poll_effect(&mut self) -> Option<Effect> {
        self.effects.pop_front()
    }

    /// Makes room for `additional` more IKE SAs (e.g. before a cluster takeover of many
    /// SAs at once, so the table is not rehashed while they arrive).
    pub fn reserve(&mut self, additional: usize) {
        self.sas.reserve(additional);
        self.child_spis.reserve(additional);
    }

    /// Number of established IKE SAs.
    pub fn ike_sa_count(&self) -> usize {
        self.sas.len()
    }

    /// Number of half-open IKE SAs.
    pub fn half_open_count(&self) -> usize {
        self.half_open.len()
    }

    /// The earliest instant at which [`Endpoint::handle_timeout`] has work to do.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let rotate = self
            .cookie_secret_rotated
            .checked_add(COOKIE_SECRET_LIFETIME);
        let next = self.timers.peek().map(|Reverse((t, _))| *t);
        match (next, rotate) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Runs every timer that is due at `now`. Spurious calls are harmless.
    pub fn handle_timeout(&mut self, now: Instant) {
        if now.saturating_duration_since(self.cookie_secret_rotated) >= COOKIE_SECRET_LIFETIME {
            self.rotate_cookie_secret(now);
        }
        let mut due = Vec::new();
        while let Some(Reverse((t, spi))) = self.timers.peek().copied() {
            if t > now {
                break;
            }
            self.timers.pop();
            due.push(spi);
        }
        due.sort_unstable();
        due.dedup();
        for spi in due {
            if self
                .half_open
                .get(&spi)
                .is_some_and(|h| h.expires_at <= now)
            {
                self.drop_half_open(spi);
                self.event(SaEvent::Dropped {
                    reason: "half_open_timeout",
                });
            } else if self.sas.contains_key(&spi) {
                self.run_sa_timers(now, spi);
            }
            self.schedule(spi);
        }
    }

    /// Inserts (or puts back) an IKE SA and schedules its next deadline.
    pub(crate) fn put_sa(&mut self, spi: u64, sa: IkeSa) {
        self.sas.insert(spi, sa);
        self.schedule(spi);
    }

    /// Queues the next deadline of the SA (or half-open SA) with our SPI `spi`.
    pub(crate) fn schedule(&mut self, spi: u64) {
        let next = match self.sas.get(&spi) {
            Some(sa) => [
                sa.retransmit_at,
                sa.rekey_at,
                sa.expire_at,
                self.dpd_deadline(sa),
                self.keepalive_deadline(spi, sa),
            ]
            .into_iter()
            .flatten()
            .min(),
            None => self.half_open.get(&spi).map(|h| h.expires_at),
        };
        if let Some(t) = next {
            self.timers.push(Reverse((t, spi)));
        }
        // Stale entries pile up on busy SAs; rebuild when they dominate.
        if self.timers.len() > 4 * (self.sas.len() + self.half_open.len()) + 4096 {
            let spis: Vec<u64> = self
                .sas
                .keys()
                .chain(self.half_open.keys())
                .copied()
                .collect();
            self.timers.clear();
            for s in spis {
                self.schedule(s);
            }
        }
    }

    /// Feeds one received IKE datagram (for the NAT-T port, with the non-ESP marker
    /// already removed). Never panics; anything malformed is dropped or answered as
    /// RFC 7296 says.
    pub fn handle_datagram(
        &mut self,
        now: Instant,
        local: SocketAddr,
        remote: SocketAddr,
        data: &[u8],
    ) {
        let view = match HeaderView::new_checked(data) {
            Ok(v) => v,
            Err(e) => {
                self.answer_unprotected_error(local, remote, data, &e);
                return;
            }
        };
        let flags = view.flags();
        if view.exchange() == ExchangeType::IKE_SA_INIT
            && !flags.response()
            && view.spi_r() == IkeSpi::ZERO
        {
            self.handle_init_request(now, local, remote, data);
            return;
        }
        // Our SPI is the responder SPI in messages from the original initiator.
        let our_spi = if flags.initiator() {
            view.spi_r()
        } else {
            view.spi_i()
        };
        if flags.response() && self.initiating.contains_key(&our_spi.0) {
            self.handle_initiator_response(now, our_spi, data);
            return;
        }
        if self.half_open.contains_key(&our_spi.0) {
            if !flags.response() && view.exchange() == ExchangeType::IKE_AUTH {
                self.handle_auth_request(now, local, remote, our_spi, data);
            } else if view.exchange() == ExchangeType::IKE_SA_INIT && !flags.response() {
                // IKE_SA_INIT retransmission carrying our SPI cannot happen (SPIr is zero
                // in requests); anything else before IKE_AUTH is out of order.
                self.event(SaEvent::Dropped {
                    reason: "unexpected_before_auth",
                });
            } else {
                self.event(SaEvent::Dropped {
                    reason: "unexpected_before_auth",
                });
            }
            return;
        }
        if !self.sas.contains_key(&our_spi.0) {
            // §2.21.4: an unknown SPI may get an unprotected INVALID_IKE_SPI, rate
            // limited; we stay silent, which RFC 7296 also allows, to avoid reflection.
            self.event(SaEvent::Dropped {
                reason: "unknown_spi",
            });
            return;
        }
        if flags.response() {
            self.handle_response(now, local, remote, our_spi, data);
        } else {
            self.handle_request(now, local, remote, our_spi, data);
        }
    }

    /// Starts a Delete of the IKE SA (operator `terminate`): its Child SAs are removed
    /// at once; the IKE SA goes when the peer answers or stops answering.
    pub fn terminate(&mut self, now: Instant, id: IkeSaId) -> bool {
        if self.sas.contains_key(&id.0) {
            self.start_ike_delete(now, id.0);
            true
        } else {
            false
        }
    }

    /// Notice from the data plane that a Child SA's soft lifetime expired (rekey it)
    /// or its hard lifetime (it is gone from the kernel).
    pub fn handle_child_expire(&mut self, now: Instant, spi_in: u32, hard: bool) {
        let Some(spi) = self
            .sas
            .iter()
            .find(|(_, sa)| sa.child_by_spi_in(spi_in).is_some())
            .map(|(k, _)| *k)
        else {
            return;
        };
        if hard {
            self.start_child_delete(now, spi, spi_in);
        } else {
            self.start_child_rekey(now, spi, spi_in);
        }
    }

    /// The IKE SAs for `ikectl list-sas`.
    pub fn list(&self, now: Instant) -> Vec<IkeSaInfo> {
        let mut v: Vec<IkeSaInfo> = self
            .sas
            .values()
            .map(|sa| crate::info::ike_sa_info(sa, now))
            .collect();
        v.sort_by_key(|i| i.id);
        v
    }

    /// One IKE SA for `ikectl show`.
    pub fn get(&self, now: Instant, id: IkeSaId) -> Option<IkeSaInfo> {
        self.sas
            .get(&id.0)
            .map(|sa| crate::info::ike_sa_info(sa, now))
    }

    /// Direct access to an IKE SA's state (for export and tests).
    pub fn ike_sa(&self, id: IkeSaId) -> Option<&IkeSa> {
        self.sas.get(&id.0)
    }

    pub(crate) fn event(&mut self, e: SaEvent) {
        self.effects.push_back(Effect::Event(e));
    }

    pub(crate) fn send(&mut self, local: SocketAddr, remote: SocketAddr, data: Vec<u8>) {
        self.effects.push_back(Effect::Send {
            local,
            remote,
            data,
        });
    }

    pub(crate) fn drop_half_open(&mut self, spi: u64) {
        if let Some(h) = self.half_open.remove(&spi) {
            self.init_index
                .remove(&(h.sa.remote_addr.ip(), h.sa.spis.spi_i.0));
        }
        self.reassembly.remove(&spi);
    }

    pub(crate) fn rotate_cookie_secret(&mut self, now: Instant) {
        let mut secret = vec![0u8; 32];
        (self.config.provider.fill_random)(&mut secret);
        self.cookie_secret = SecretBytes::new(secret);
        self.cookie_secret_version = self.cookie_secret_version.wrapping_add(1);
        self.cookie_secret_rotated = now;
    }

    /// A fresh IKE SPI not used by any SA on this endpoint.
    pub(crate) fn fresh_ike_spi(&self) -> IkeSpi {
        loop {
            let mut b = [0u8; 8];
            (self.config.provider.fill_random)(&mut b);
            let spi = IkeSpi::from_bytes(b);
            if spi != IkeSpi::ZERO
                && !self.sas.contains_key(&spi.0)
                && !self.half_open.contains_key(&spi.0)
            {
                return spi;
            }
        }
    }

    /// A fresh inbound ESP SPI from our range (RFC 4303: 1..=255 are reserved).
    pub(crate) fn fresh_child_spi(&mut self) -> u32 {
        let (lo, hi) = self.config.spi_range;
        let (lo, hi) = (lo.max(256), hi.max(lo.max(256)));
        let span = u64::from(hi - lo) + 1;
        loop {
            let mut b = [0u8; 4];
            (self.config.provider.fill_random)(&mut b);
            let off = u64::from(u32::from_be_bytes(b)) % span;
            let spi = lo + off as u32;
            if self.child_spis.insert(spi) {
                return spi;
            }
        }
    }

    pub(crate) fn fresh_reqid(&mut self) -> u32 {
        let (lo, hi) = self.config.reqid_range;
        let (lo, hi) = (lo.max(1), hi.max(lo.max(1)));
        if !(lo..=hi).contains(&self.next_reqid) {
            self.next_reqid = lo;
        }
        let r = self.next_reqid;
        self.next_reqid = if r >= hi { lo } else { r + 1 };
        r
    }

    /// After an import: never hand out a reqid at or below one in use in our range.
    pub(crate) fn note_reqid(&mut self, reqid: u32) {
        let (lo, hi) = self.config.reqid_range;
        if (lo..hi).contains(&reqid) {
            self.next_reqid = self.next_reqid.max(reqid + 1);
        }
    }

    pub(crate) fn random_nonce(&self) -> Vec<u8> {
        let mut n = vec![0u8; 32];
        (self.config.provider.fill_random)(&mut n);
        n
    }

    /// When the next NAT-keepalive of `sa` is due: every 20 s (RFC 3948 §4) while we are
    /// behind a NAT.
    pub(crate) fn keepalive_deadline(&self, spi: u64, sa: &IkeSa) -> Option<Instant> {
        if !sa.nat_local || sa.state != crate::sa::IkeSaState::Established {
            return None;
        }
        let last = self
            .keepalive_sent
            .get(&spi)
            .copied()
            .or(sa.established_at)?;
        last.checked_add(NAT_KEEPALIVE_INTERVAL)
    }

    /// When the next liveness check of `sa` is due, if DPD is configured.
    pub(crate) fn dpd_deadline(&self, sa: &IkeSa) -> Option<Instant> {
        if sa.msgids.outstanding.is_some() {
            return None;
        }
        let delay = self.connection(&sa.connection)?.dpd_delay?;
        Some(sa.last_heard + delay)
    }

    pub(crate) fn connection(&self, name: &str) -> Option<&Arc<ConnectionConfig>> {
        self.config.connections.iter().find(|c| c.name == name)
    }

    /// The PSK for a pair of identities (`[[secret]]`): an entry naming both wins over
    /// one naming only the peer, which wins over one naming only us; on a tie, the first.
    pub(crate) fn find_psk(
        &self,
        local: &Identity,
        remote: Option<&Identity>,
    ) -> Option<&SecretBytes> {
        let score = |ids: &[Identity]| {
            let r = remote.is_some_and(|r| ids.contains(r));
            2 * u8::from(r) + u8::from(ids.contains(local))
        };
        let mut best: Option<(u8, &SecretBytes)> = None;
        for e in &self.config.secrets {
            let s = score(&e.ids);
            if s > 0 && best.is_none_or(|(b, _)| s > b) {
                best = Some((s, &e.psk));
            }
        }
        best.map(|(_, psk)| psk)
    }

    /// Releases the pool lease of `addr`, if any pool holds it.
    pub(crate) fn release_address(&mut self, addr: IpAddr) {
        for p in self.pools.values_mut() {
            p.release(addr);
        }
    }
}

/// SHA-256 of a request datagram, for the retransmission check of §2.1.
pub(crate) fn request_hash(data: &[u8]) -> [u8; 32] {
    Sha256::digest(data).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reqids stay in the configured range (cluster nodes' ranges are disjoint), wrap
    /// inside it, and an import only moves allocation past reqids of our own range.
    #[test]
    fn reqids_stay_in_their_range() {
        let mut cfg = EndpointConfig::new(&crate::crypto::DEFAULT_PROVIDER);
        cfg.reqid_range = (100, 102);
        let mut ep = Endpoint::new(cfg, Instant::now());
        let got: Vec<u32> = (0..4).map(|_| ep.fresh_reqid()).collect();
        assert_eq!(got, vec![100, 101, 102, 100]);
        ep.note_reqid(7); // another node's reqid: ignored
        assert_eq!(ep.fresh_reqid(), 101);
        ep.note_reqid(101);
        assert_eq!(ep.fresh_reqid(), 102);
    }
}
