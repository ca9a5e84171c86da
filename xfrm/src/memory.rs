//! `MemoryDataplane`: an in-memory model of the kernel's SAD and SPD for tests
//! and benchmarks. It follows the kernel's rules where they matter to baton:
//! larval SAs from ALLOCSPI replaced by the SA install, EEXIST/ESRCH/ENOENT
//! cases, outbound sequence numbers that never wrap (RFC 4303 §3.3.3), the
//! inbound replay window (RFC 4303 §3.4.3), soft/hard lifetimes, and replay
//! events with packet thresholds (kernel doc networking/xfrm_sync).
//!
//! Traffic is simulated with [`MemoryDataplane::send`] and
//! [`MemoryDataplane::receive`]; time with [`MemoryDataplane::advance_time`].

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use crate::dataplane::Dataplane;
use crate::error::{Error, Result};
use crate::replay::{self, Received};
use crate::types::{
    DataplaneEvent, FlushReport, OwnedRange, PolicyId, PolicySpec, Protocol, ReplayEventCause,
    ReplayState, SaCounters, SaId, SaInfo, SaSpec, SaStats, Spi, SpiRange,
};

/// How long a larval SA from `alloc_spi` lives (the kernel's
/// `net.core.xfrm_acq_expires` default).
pub const LARVAL_LIFETIME_SECS: u64 = 30;
/// Events kept before the oldest are dropped and `EventsLost` is reported.
const EVENT_QUEUE: usize = 65_536;

/// Sequence numbers used by one [`MemoryDataplane::send`] call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SeqRange {
    /// First sequence number sent.
    pub first: u64,
    /// Last sequence number sent.
    pub last: u64,
    /// Packets sent (`last - first + 1`, or 0 when nothing could be sent).
    pub count: u64,
}

/// A simulated wire shared by several [`MemoryDataplane`]s (cluster nodes):
/// it records every outbound (SA, sequence number) sent through any of them
/// and reports any pair sent twice — with AES-GCM a repeated (SPI, sequence
/// number) means a repeated IV (RFC 4106 §3), which must never happen.
#[derive(Clone, Debug, Default)]
pub struct Wire(Arc<Mutex<WireLog>>);

#[derive(Debug, Default)]
struct WireLog {
    /// Per SA, disjoint sorted ranges of sequence numbers sent.
    sent: HashMap<SaId, Vec<(u64, u64)>>,
    reused: Vec<(SaId, SeqRange)>,
    /// Per SA, every range sent, in the order sent (what the peer receives, in order).
    history: HashMap<SaId, Vec<(u64, u64)>>,
}

impl Wire {
    /// An empty wire.
    pub fn new() -> Self {
        Self::default()
    }

    fn log(&self) -> std::sync::MutexGuard<'_, WireLog> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn record(&self, id: SaId, first: u64, last: u64) {
        let mut log = self.log();
        log.history.entry(id).or_default().push((first, last));
        let mut reused = Vec::new();
        let ranges = log.sent.entry(id).or_default();
        for &(a, b) in ranges.iter() {
            if first <= b && a <= last {
                let (lo, hi) = (first.max(a), last.min(b));
                reused.push((
                    id,
                    SeqRange {
                        first: lo,
                        last: hi,
                        count: hi - lo + 1,
                    },
                ));
            }
        }
        ranges.push((first, last));
        ranges.sort_unstable();
        let mut merged: Vec<(u64, u64)> = Vec::with_capacity(ranges.len());
        for &(a, b) in ranges.iter() {
            match merged.last_mut() {
                Some(m) if a <= m.1.saturating_add(1) => m.1 = m.1.max(b),
                _ => merged.push((a, b)),
            }
        }
        *ranges = merged;
        log.reused.extend(reused);
    }

    /// Every (SA, sequence numbers) that was sent more than once.
    pub fn reused(&self) -> Vec<(SaId, SeqRange)> {
        self.log().reused.clone()
    }

    /// How many packets a peer with an anti-replay window of `window` (RFC 4303
    /// §3.4.3) receiving everything sent, in the order sent, drops as too old: those
    /// sent below the highest sequence number already sent on the SA by more than the
    /// window. A node sending on an SA below another node's earlier sends on it (a
    /// partition healed, a takeover) is silently cut off by the peer.
    pub fn behind_window(&self, window: u64) -> u64 {
        let log = self.log();
        let mut dropped = 0;
        for ranges in log.history.values() {
            let mut top = 0u64;
            for &(first, last) in ranges {
                // Packets with seq + window <= top are dropped (top itself is still in).
                let limit = top.saturating_sub(window);
                if first <= limit && top > 0 {
                    dropped += limit.min(last) - first + 1;
                }
                top = top.max(last);
            }
        }
        dropped
    }

    /// How many distinct sequence numbers were sent on `id`.
    pub fn sent_count(&self, id: &SaId) -> u64 {
        self.log()
            .sent
            .get(id)
            .map_or(0, |r| r.iter().map(|(a, b)| b - a + 1).sum())
    }
}

#[derive(Clone, Debug)]
struct MemSa {
    spec: SaSpec,
    state: ReplayState,
    /// State at the last replay event (the kernel's `preplay`).
    notified: ReplayState,
    counters: SaCounters,
    stats: SaStats,
    added_at: u64,
    soft_expired: bool,
}

#[derive(Clone, Copy, Debug)]
struct Larval {
    reqid: u32,
    expires_at: u64,
}

/// The in-memory data plane.
#[derive(Clone, Debug)]
pub struct MemoryDataplane {
    owned: OwnedRange,
    sas: HashMap<SaId, MemSa>,
    larval: HashMap<SaId, Larval>,
    policies: HashMap<PolicyId, PolicySpec>,
    events: Vec<DataplaneEvent>,
    now: u64,
    rng: u64,
    wire: Option<Wire>,
    /// Injected failures: (calls left, errno).
    fail: Option<(usize, i32)>,
}

impl MemoryDataplane {
    /// An empty data plane; `seed` makes SPI allocation reproducible.
    pub fn new(owned: OwnedRange, seed: u64) -> Self {
        Self {
            owned,
            sas: HashMap::new(),
            larval: HashMap::new(),
            policies: HashMap::new(),
            events: Vec::new(),
            now: 0,
            rng: seed | 1,
            wire: None,
            fail: None,
        }
    }

    /// Records every packet this data plane sends on `wire` (shared with
    /// other nodes' data planes), so tests can check no (SPI, sequence
    /// number) pair is ever used twice.
    pub fn attach_wire(&mut self, wire: Wire) {
        self.wire = Some(wire);
    }

    fn next_random(&mut self) -> u64 {
        // xorshift64*: reproducible, good enough to scatter SPIs.
        self.rng ^= self.rng >> 12;
        self.rng ^= self.rng << 25;
        self.rng ^= self.rng >> 27;
        self.rng.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn push_event(&mut self, ev: DataplaneEvent) {
        if self.events.len() >= EVENT_QUEUE {
            self.events.clear();
            self.events.push(DataplaneEvent::EventsLost);
        }
        self.events.push(ev);
    }

    fn spi_taken(&self, id: &SaId) -> bool {
        self.sas.contains_key(id) || self.larval.contains_key(id)
    }

    fn install(&mut self, spec: &SaSpec) {
        let words = replay::window_words(spec.replay_window);
        let mut state = spec.replay_state.clone().unwrap_or_default();
        state.bitmap.resize(words, 0);
        let mut stored = spec.clone();
        stored.replay_state = None;
        self.sas.insert(
            spec.id,
            MemSa {
                spec: stored,
                notified: state.clone(),
                state,
                counters: SaCounters {
                    add_time: self.now,
                    ..Default::default()
                },
                stats: SaStats::default(),
                added_at: self.now,
                soft_expired: false,
            },
        );
    }

    fn sa_mut(&mut self, id: &SaId, op: &str) -> Result<&mut MemSa> {
        self.sas.get_mut(id).ok_or_else(|| Error::NotFound {
            op: format!("{op} SA {id}"),
            kernel_message: None,
        })
    }

    /// Kernel order: hard limits drop the SA, soft limits warn once.
    fn check_lifetime(&mut self, id: &SaId) {
        let Some(sa) = self.sas.get_mut(id) else {
            return;
        };
        let l = sa.spec.lifetime;
        let c = sa.counters;
        let age = self.now.saturating_sub(sa.added_at);
        let reached = |limit: Option<u64>, v: u64| limit.is_some_and(|x| v >= x);
        let reqid = sa.spec.reqid;
        if reached(l.hard_bytes, c.bytes)
            || reached(l.hard_packets, c.packets)
            || reached(l.hard_add_secs, age)
        {
            self.sas.remove(id);
            self.push_event(DataplaneEvent::HardExpire { sa: *id, reqid });
            return;
        }
        if !sa.soft_expired
            && (reached(l.soft_bytes, c.bytes)
                || reached(l.soft_packets, c.packets)
                || reached(l.soft_add_secs, age))
        {
            sa.soft_expired = true;
            self.push_event(DataplaneEvent::SoftExpire { sa: *id, reqid });
        }
    }

    /// The kernel's replay notification rule: an event when either sequence
    /// number moved by at least the threshold since the last event.
    fn check_replay_event(&mut self, id: &SaId, cause: ReplayEventCause) {
        let Some(sa) = self.sas.get_mut(id) else {
            return;
        };
        let Some(t) = sa.spec.replay_events else {
            return;
        };
        let moved = sa
            .state
            .seq
            .saturating_sub(sa.notified.seq)
            .max(sa.state.oseq.saturating_sub(sa.notified.oseq));
        let due = match cause {
            ReplayEventCause::Threshold => t.packets != 0 && moved >= u64::from(t.packets),
            ReplayEventCause::Timer => t.timer_jiffies != 0 && sa.state != sa.notified,
            _ => true,
        };
        if !due {
            return;
        }
        sa.notified = sa.state.clone();
        let ev = DataplaneEvent::Replay {
            sa: *id,
            reqid: sa.spec.reqid,
            state: sa.state.clone(),
            counters: sa.counters,
            cause,
        };
        self.push_event(ev);
    }

    /// Sends `packets` packets of `bytes` bytes each on an outbound SA: the
    /// sequence numbers advance (never wrapping: without ESN the SA is
    /// exhausted at 2^32 - 1, RFC 4303 §3.3.3), counters grow, lifetimes and
    /// replay events are checked. Packets past a hard limit are not sent.
    pub fn send(&mut self, id: &SaId, packets: u64, bytes: u64) -> Result<SeqRange> {
        let now = self.now;
        let sa = self.sa_mut(id, "sending on")?;
        let max_seq = if sa.spec.esn {
            u64::MAX
        } else {
            u64::from(u32::MAX)
        };
        let l = sa.spec.lifetime;
        let room_seq = max_seq - sa.state.oseq;
        if room_seq == 0 && packets > 0 {
            return Err(Error::SequenceExhausted {
                op: format!("sending on SA {id}"),
            });
        }
        let room_pkts = l
            .hard_packets
            .map_or(u64::MAX, |h| h.saturating_sub(sa.counters.packets));
        let room_bytes = match (l.hard_bytes, bytes) {
            (Some(h), b) if b > 0 => h.saturating_sub(sa.counters.bytes).div_ceil(b),
            _ => u64::MAX,
        };
        let n = packets.min(room_seq).min(room_pkts).min(room_bytes);
        let first = sa.state.oseq + 1;
        sa.state.oseq += n;
        sa.counters.packets += n;
        sa.counters.bytes = sa.counters.bytes.saturating_add(n.saturating_mul(bytes));
        if n > 0 && sa.counters.use_time == 0 {
            sa.counters.use_time = now.max(1);
        }
        let range = SeqRange {
            first,
            last: first + n - u64::from(n > 0),
            count: n,
        };
        if let (Some(w), true) = (&self.wire, n > 0) {
            w.record(*id, range.first, range.last);
        }
        self.check_replay_event(id, ReplayEventCause::Threshold);
        self.check_lifetime(id);
        Ok(range)
    }

    /// Receives one packet with sequence number `seq` (the full 64-bit value
    /// with ESN) of `bytes` bytes on an inbound SA.
    pub fn receive(&mut self, id: &SaId, seq: u64, bytes: u64) -> Result<Received> {
        let now = self.now;
        let sa = self.sa_mut(id, "receiving on")?;
        if !sa.spec.esn && seq > u64::from(u32::MAX) {
            return Err(Error::invalid(format!(
                "SA {id}: sequence number {seq} needs ESN"
            )));
        }
        let outcome = replay::receive(&mut sa.state, sa.spec.replay_window, seq);
        match outcome {
            Received::Accepted => {
                sa.counters.packets += 1;
                sa.counters.bytes = sa.counters.bytes.saturating_add(bytes);
                if sa.counters.use_time == 0 {
                    sa.counters.use_time = now.max(1);
                }
            }
            Received::Replayed => sa.stats.replay += 1,
            Received::TooOld => sa.stats.replay_window += 1,
        }
        if outcome == Received::Accepted {
            self.check_replay_event(id, ReplayEventCause::Threshold);
            self.check_lifetime(id);
        }
        Ok(outcome)
    }

    /// Advances the model's clock: add-time lifetimes, larval SA expiry and
    /// replay event timers.
    pub fn advance_time(&mut self, secs: u64) {
        self.now += secs;
        let now = self.now;
        self.larval.retain(|_, l| l.expires_at > now);
        let ids: Vec<SaId> = self.sas.keys().copied().collect();
        for id in ids {
            self.check_replay_event(&id, ReplayEventCause::Timer);
            self.check_lifetime(&id);
        }
    }

    /// Makes the next `calls` data plane calls (any `Dataplane` method but
    /// `poll_events`) fail as if the kernel answered `errno`, to exercise the
    /// callers' error paths.
    pub fn fail_next(&mut self, calls: usize, errno: i32) {
        self.fail = (calls > 0).then_some((calls, errno));
    }

    fn injected(&mut self, op: &str) -> Result<()> {
        let Some((left, errno)) = self.fail else {
            return Ok(());
        };
        self.fail = (left > 1).then_some((left - 1, errno));
        Err(Error::Kernel {
            op: format!("{op} (injected failure)"),
            errno,
            kernel_message: None,
        })
    }

    /// Receives `count` packets in order from `first` on, `bytes` each;
    /// returns how many were accepted (see [`MemoryDataplane::receive`]).
    pub fn receive_range(&mut self, id: &SaId, first: u64, count: u64, bytes: u64) -> Result<u64> {
        let mut accepted = 0;
        for n in first..first.saturating_add(count) {
            if self.receive(id, n, bytes)? == Received::Accepted {
                accepted += 1;
            }
        }
        Ok(accepted)
    }

    /// Number of installed SAs (larval ones excluded).
    pub fn sa_count(&self) -> usize {
        self.sas.len()
    }

    /// Number of installed policies.
    pub fn policy_count(&self) -> usize {
        self.policies.len()
    }
}

impl Dataplane for MemoryDataplane {
    fn alloc_spi(
        &mut self,
        src: IpAddr,
        dst: IpAddr,
        proto: Protocol,
        reqid: u32,
        range: SpiRange,
    ) -> Result<Spi> {
        self.injected("alloc_spi")?;
        let op = || {
            format!(
                "allocating an SPI in {:#x}..={:#x} for {src} -> {dst}",
                range.min(),
                range.max()
            )
        };
        if src.is_ipv4() != dst.is_ipv4() {
            return Err(Error::invalid(format!("{}: address families differ", op())));
        }
        let id_of = |spi| SaId {
            dst,
            spi: Spi(spi),
            proto,
        };
        let mut pick = None;
        for _ in 0..16 {
            let spi = range.min() + (self.next_random() % range.len()) as u32;
            if !self.spi_taken(&id_of(spi)) {
                pick = Some(spi);
                break;
            }
        }
        if pick.is_none() {
            pick = (range.min()..=range.max()).find(|&s| !self.spi_taken(&id_of(s)));
        }
        let spi = pick.ok_or_else(|| Error::SpiRangeExhausted { op: op() })?;
        self.larval.insert(
            id_of(spi),
            Larval {
                reqid,
                expires_at: self.now + LARVAL_LIFETIME_SECS,
            },
        );
        Ok(Spi(spi))
    }

    fn add_sa(&mut self, spec: &SaSpec) -> Result<()> {
        self.injected("add_sa")?;
        spec.validate()?;
        if self.sas.contains_key(&spec.id) {
            return Err(Error::Exists {
                op: format!("adding SA {}", spec.id),
                kernel_message: None,
            });
        }
        self.larval.remove(&spec.id);
        self.install(spec);
        Ok(())
    }

    fn update_sa(&mut self, spec: &SaSpec) -> Result<()> {
        self.injected("update_sa")?;
        spec.validate()?;
        if self.larval.remove(&spec.id).is_some() {
            self.install(spec);
            return Ok(());
        }
        let sa = self.sa_mut(&spec.id, "updating")?;
        if sa.spec.encap.is_some() != spec.encap.is_some() {
            // xfrm_state_update: encapsulation may change, not appear or vanish.
            return Err(Error::Kernel {
                op: format!("updating SA {}", spec.id),
                errno: libc::EINVAL,
                kernel_message: None,
            });
        }
        // Like xfrm_state_update: lifetimes and encapsulation change, keys do not.
        sa.spec.lifetime = spec.lifetime;
        sa.spec.encap = spec.encap;
        Ok(())
    }

    fn delete_sa(&mut self, id: &SaId) -> Result<()> {
        self.injected("delete_sa")?;
        if self.larval.remove(id).is_some() {
            return Ok(());
        }
        self.sas
            .remove(id)
            .map(drop)
            .ok_or_else(|| Error::NotFound {
                op: format!("deleting SA {id}"),
                kernel_message: None,
            })
    }

    fn get_sa(&mut self, id: &SaId) -> Result<SaInfo> {
        self.injected("get_sa")?;
        let sa = self.sa_mut(id, "reading")?;
        let mut spec = sa.spec.clone();
        spec.replay_state = Some(sa.state.clone());
        Ok(SaInfo {
            spec,
            counters: sa.counters,
            stats: sa.stats,
        })
    }

    fn list_sas(&mut self) -> Result<Vec<SaInfo>> {
        self.injected("list_sas")?;
        let ids: Vec<SaId> = self.sas.keys().copied().collect();
        ids.iter().map(|id| self.get_sa(id)).collect()
    }

    fn add_policy(&mut self, p: &PolicySpec) -> Result<()> {
        self.injected("add_policy")?;
        p.validate()?;
        if self.policies.contains_key(&p.id()) {
            return Err(Error::Exists {
                op: format!("adding policy {} {:?}", p.selector, p.dir),
                kernel_message: None,
            });
        }
        self.policies.insert(p.id(), p.clone());
        Ok(())
    }

    fn update_policy(&mut self, p: &PolicySpec) -> Result<()> {
        self.injected("update_policy")?;
        p.validate()?;
        self.policies.insert(p.id(), p.clone());
        Ok(())
    }

    fn delete_policy(&mut self, id: &PolicyId) -> Result<()> {
        self.injected("delete_policy")?;
        self.policies
            .remove(id)
            .map(drop)
            .ok_or_else(|| Error::NotFound {
                op: format!("deleting policy {} {:?}", id.selector, id.dir),
                kernel_message: None,
            })
    }

    fn list_policies(&mut self) -> Result<Vec<PolicySpec>> {
        self.injected("list_policies")?;
        Ok(self.policies.values().cloned().collect())
    }

    fn get_replay_state(&mut self, id: &SaId) -> Result<ReplayState> {
        self.injected("get_replay_state")?;
        Ok(self.sa_mut(id, "reading replay state of")?.state.clone())
    }

    fn set_replay_state(&mut self, id: &SaId, state: &ReplayState) -> Result<()> {
        self.injected("set_replay_state")?;
        let sa = self.sa_mut(id, "setting replay state of")?;
        if !sa.spec.esn && (state.oseq > u64::from(u32::MAX) || state.seq > u64::from(u32::MAX)) {
            return Err(Error::invalid(format!(
                "SA {id}: 64-bit sequence numbers for an SA without ESN"
            )));
        }
        let mut s = state.clone();
        s.bitmap
            .resize(replay::window_words(sa.spec.replay_window), 0);
        sa.state = s;
        // NEWAE announces the change to listeners (XFRM_AE_CU).
        self.check_replay_event(id, ReplayEventCause::Update);
        Ok(())
    }

    fn get_counters(&mut self, id: &SaId) -> Result<SaCounters> {
        self.injected("get_counters")?;
        Ok(self.sa_mut(id, "reading counters of")?.counters)
    }

    fn poll_events(&mut self) -> Result<Vec<DataplaneEvent>> {
        let owned = self.owned;
        let evs = std::mem::take(&mut self.events);
        Ok(evs
            .into_iter()
            .filter(|e| e.reqid().is_none_or(|r| owned.contains(r)))
            .collect())
    }

    fn flush_own(&mut self) -> Result<FlushReport> {
        self.injected("flush_own")?;
        let owned = self.owned;
        let before = (self.sas.len(), self.policies.len());
        self.sas.retain(|_, sa| !owned.contains(sa.spec.reqid));
        self.larval.retain(|_, l| !owned.contains(l.reqid));
        self.policies
            .retain(|_, p| !p.templates.iter().any(|t| owned.contains(t.reqid)));
        Ok(FlushReport {
            sas: before.0 - self.sas.len(),
            policies: before.1 - self.policies.len(),
        })
    }
}
