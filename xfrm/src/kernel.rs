//! `KernelDataplane`: the Linux kernel's XFRM over a NETLINK_XFRM socket, and
//! `EventMonitor`, a second socket subscribed to the kernel's expire and
//! replay events.

use std::collections::HashMap;
use std::io;
use std::net::IpAddr;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::time::{Duration, Instant};

use netlink_packet_xfrm::XfrmMessage;
use netlink_sys::{Socket, SocketAddr, protocols::NETLINK_XFRM};
use zeroize::{Zeroize, Zeroizing};

use crate::dataplane::Dataplane;
use crate::error::{Error, Result};
use crate::types::{
    Crypto, DataplaneEvent, FlushReport, OwnedRange, PolicyId, PolicySpec, Protocol, ReplayState,
    SaCounters, SaId, SaInfo, SaSpec, Spi, SpiRange,
};
use crate::wire::{self, Exchange, Expect, Nack, Progress, ae, policy, sa, scrub};

/// Most events [`EventMonitor::try_recv`] returns per call (plus the rest of the last
/// datagram read).
pub const MAX_EVENTS_PER_POLL: usize = 4096;

const RECV_BUF: usize = 64 * 1024;
const NLM_F_REPLACE: u16 = 0x100;
/// `enum xfrm_nlgroups` in include/uapi/linux/xfrm.h.
const XFRMNLGRP_EXPIRE: u32 = 2;
const XFRMNLGRP_AEVENTS: u32 = 5;

/// Answer messages, scrubbed of key copies when dropped.
struct Answers(Vec<XfrmMessage>);

impl Drop for Answers {
    fn drop(&mut self) {
        self.0.iter_mut().for_each(scrub);
    }
}

/// Why an exchange failed, before the operation's context is added.
enum Failure {
    Refused(Nack),
    Io(io::Error),
    Malformed(String),
}

/// What the refused request was about, to name the missing piece precisely.
enum About<'a> {
    Sa(&'a SaSpec),
    Other,
}

fn io_err(op: &str, source: io::Error) -> Error {
    Error::Io {
        op: op.to_owned(),
        source,
    }
}

fn refused(op: String, nack: Nack, about: About<'_>) -> Error {
    let kernel_message = nack.message;
    match (nack.errno, about) {
        (libc::EPROTONOSUPPORT, About::Sa(s)) => {
            let v4 = s.id.dst.is_ipv4();
            Error::EspNotSupported {
                op,
                family: if v4 { "IPv4" } else { "IPv6" },
                module: if v4 { "esp4" } else { "esp6" },
                kernel_message,
            }
        }
        (libc::ENOSYS, About::Sa(s)) => {
            let (algorithm, modules) = match &s.crypto {
                Crypto::Aead { alg, .. } => (
                    alg.kernel_name().to_owned(),
                    alg.kernel_modules().to_owned(),
                ),
                Crypto::EncAuth { enc, auth, .. } => (
                    format!("{} + {}", enc.kernel_name(), auth.kernel_name()),
                    "cbc, aesni_intel or aes_generic, hmac, sha256_generic/sha512_generic"
                        .to_owned(),
                ),
            };
            Error::AlgorithmNotSupported {
                op,
                algorithm,
                modules,
                kernel_message,
            }
        }
        (libc::EEXIST, _) => Error::Exists { op, kernel_message },
        (libc::ESRCH | libc::ENOENT, _) => Error::NotFound { op, kernel_message },
        (libc::EPERM, _) => Error::PermissionDenied { op },
        (errno, _) => Error::Kernel {
            op,
            errno,
            kernel_message,
        },
    }
}

/// Opens a NETLINK_XFRM socket with extended ACKs on and capped ACKs (so
/// error answers do not echo requests, which may hold keys).
fn open_socket(op: &str) -> Result<Socket> {
    let mut sock = Socket::new(NETLINK_XFRM).map_err(|e| io_err(op, e))?;
    sock.bind_auto().map_err(|e| io_err(op, e))?;
    sock.set_ext_ack(true).map_err(|e| io_err(op, e))?;
    sock.set_cap_ack(true).map_err(|e| io_err(op, e))?;
    sock.connect(&SocketAddr::new(0, 0))
        .map_err(|e| io_err(op, e))?;
    Ok(sock)
}

/// Receives one datagram from the kernel into `buf` (cleared first).
fn recv_datagram(sock: &Socket, buf: &mut Zeroizing<Vec<u8>>, flags: i32) -> io::Result<usize> {
    buf.zeroize();
    if buf.capacity() < RECV_BUF {
        buf.reserve(RECV_BUF);
    }
    let cap = buf.capacity();
    let (n, from) = sock.recv_from(&mut **buf, flags | libc::MSG_TRUNC)?;
    if n > cap {
        return Err(io::Error::other(format!(
            "netlink datagram of {n} bytes truncated to {cap}"
        )));
    }
    if from.port_number() != 0 {
        // Only the kernel (port 0) speaks XFRM; ignore anything else.
        buf.zeroize();
        return Ok(0);
    }
    Ok(n)
}

/// The kernel data plane.
pub struct KernelDataplane {
    sock: Socket,
    seq: u32,
    buf: Zeroizing<Vec<u8>>,
    owned: OwnedRange,
    /// SPIs this data plane allocated whose larval SA is still to be
    /// replaced, with when they were allocated.
    larval: HashMap<SaId, Instant>,
    events: Option<EventMonitor>,
}

impl std::fmt::Debug for KernelDataplane {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // No buffers: they may have held keys.
        f.debug_struct("KernelDataplane")
            .field("fd", &self.sock.as_raw_fd())
            .field("owned", &self.owned)
            .field("larval", &self.larval.len())
            .field("events", &self.events.is_some())
            .finish()
    }
}

/// The kernel drops larval SAs after `net.core.xfrm_acq_expires` (30 s by
/// default); entries older than this are forgotten.
const LARVAL_MEMORY: Duration = Duration::from_secs(120);

impl KernelDataplane {
    /// Opens the data plane in the caller's network namespace. `owned` marks
    /// baton's objects for [`Dataplane::flush_own`].
    pub fn open(owned: OwnedRange) -> Result<Self> {
        let sock = open_socket("opening the XFRM netlink socket")?;
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.subsec_nanos() | 1);
        Ok(Self {
            sock,
            seq: seed,
            buf: Zeroizing::new(Vec::with_capacity(RECV_BUF)),
            owned,
            larval: HashMap::new(),
            events: None,
        })
    }

    /// Like [`KernelDataplane::open`], and subscribes to the kernel's events
    /// (delivered by [`Dataplane::poll_events`]).
    pub fn open_with_events(owned: OwnedRange) -> Result<Self> {
        let mut dp = Self::open(owned)?;
        dp.events = Some(EventMonitor::open(Some(owned))?);
        Ok(dp)
    }

    /// The event socket, if subscribed, for readiness polling (e.g. tokio's `AsyncFd`).
    pub fn event_monitor(&self) -> Option<&EventMonitor> {
        self.events.as_ref()
    }

    fn transact(
        &mut self,
        msg: XfrmMessage,
        expect: Expect,
        extra_flags: u16,
    ) -> Result<Answers, Failure> {
        self.seq = self.seq.wrapping_add(1);
        let seq = self.seq;
        let mut req = wire::encode(msg, seq, expect);
        if extra_flags != 0
            && let Some(f) = req.bytes.get_mut(6..8)
        {
            let v = u16::from_ne_bytes([f[0], f[1]]) | extra_flags;
            f.copy_from_slice(&v.to_ne_bytes());
        }
        let sent = self.sock.send(&req.bytes, 0);
        drop(req);
        sent.map_err(Failure::Io)?;
        let mut ex = Exchange::new(seq, expect);
        loop {
            let n = match recv_datagram(&self.sock, &mut self.buf, 0) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(Failure::Io(e)),
            };
            let progress = ex.on_datagram(self.buf.get(..n).unwrap_or_default());
            self.buf.zeroize();
            match progress {
                Ok(Progress::Pending) => {}
                Ok(Progress::Done(v)) => return Ok(Answers(v)),
                Ok(Progress::Refused(n)) => return Err(Failure::Refused(n)),
                Err(detail) => return Err(Failure::Malformed(detail)),
            }
        }
    }

    fn run(
        &mut self,
        op: impl FnOnce() -> String,
        msg: XfrmMessage,
        expect: Expect,
        about: About<'_>,
    ) -> Result<Answers> {
        self.transact_flags(op, msg, expect, 0, about)
    }

    fn transact_flags(
        &mut self,
        op: impl FnOnce() -> String,
        msg: XfrmMessage,
        expect: Expect,
        extra: u16,
        about: About<'_>,
    ) -> Result<Answers> {
        self.transact(msg, expect, extra).map_err(|f| match f {
            Failure::Refused(n) => refused(op(), n, about),
            Failure::Io(source) => Error::Io { op: op(), source },
            Failure::Malformed(detail) => Error::Malformed { op: op(), detail },
        })
    }

    fn get_ae(&mut self, id: &SaId) -> Result<ae::AeAnswer> {
        let op = || format!("reading replay state of SA {id} (XFRM_MSG_GETAE)");
        let answers = self.run(op, ae::get(id), Expect::Reply, About::Other)?;
        for m in &answers.0 {
            if let XfrmMessage::NewAsyncEvent(m) = m {
                return ae::decode(m).map_err(|detail| Error::Malformed { op: op(), detail });
            }
        }
        Err(Error::Malformed {
            op: op(),
            detail: "no XFRM_MSG_NEWAE in the answer".into(),
        })
    }
}

impl Dataplane for KernelDataplane {
    fn alloc_spi(
        &mut self,
        src: IpAddr,
        dst: IpAddr,
        proto: Protocol,
        reqid: u32,
        range: SpiRange,
    ) -> Result<Spi> {
        if src.is_ipv4() != dst.is_ipv4() {
            return Err(Error::invalid(format!(
                "alloc_spi: {src} and {dst} differ in family"
            )));
        }
        let op = || {
            format!(
                "allocating an SPI in {:#x}..={:#x} for {src} -> {dst} (XFRM_MSG_ALLOCSPI)",
                range.min(),
                range.max()
            )
        };
        let msg = sa::alloc_spi(src, dst, proto, reqid, range);
        let answers = match self.run(op, msg, Expect::Reply, About::Other) {
            Err(Error::NotFound { op, .. }) => return Err(Error::SpiRangeExhausted { op }),
            other => other?,
        };
        for m in &answers.0 {
            if let XfrmMessage::AddSa(m) = m {
                let spi = Spi(m.user_sa_info.id.spi);
                if !range.contains(spi) {
                    return Err(Error::Malformed {
                        op: op(),
                        detail: format!("kernel chose SPI {spi} outside the range"),
                    });
                }
                let now = Instant::now();
                self.larval
                    .retain(|_, at| now.duration_since(*at) < LARVAL_MEMORY);
                self.larval.insert(SaId { dst, spi, proto }, now);
                return Ok(spi);
            }
        }
        Err(Error::Malformed {
            op: op(),
            detail: "no SA in the answer".into(),
        })
    }

    fn add_sa(&mut self, spec: &SaSpec) -> Result<()> {
        spec.validate()?;
        let larval = self.larval.contains_key(&spec.id);
        let op = || {
            format!(
                "adding SA {} ({})",
                spec.id,
                if larval {
                    "XFRM_MSG_UPDSA over the allocated SPI"
                } else {
                    "XFRM_MSG_NEWSA"
                }
            )
        };
        let result = match self.run(op, sa::add(spec, larval), Expect::Ack, About::Sa(spec)) {
            // The larval SA expired in the kernel meanwhile: install afresh.
            Err(e) if larval && e.is_not_found() => {
                let op = || format!("adding SA {} (XFRM_MSG_NEWSA)", spec.id);
                self.run(op, sa::add(spec, false), Expect::Ack, About::Sa(spec))
            }
            other => other,
        };
        self.larval.remove(&spec.id);
        result.map(drop)
    }

    fn update_sa(&mut self, spec: &SaSpec) -> Result<()> {
        spec.validate()?;
        let op = || format!("updating SA {} (XFRM_MSG_UPDSA)", spec.id);
        self.run(op, sa::add(spec, true), Expect::Ack, About::Sa(spec))?;
        self.larval.remove(&spec.id);
        Ok(())
    }

    fn delete_sa(&mut self, id: &SaId) -> Result<()> {
        let op = || format!("deleting SA {id} (XFRM_MSG_DELSA)");
        self.run(op, sa::delete(id), Expect::Ack, About::Other)?;
        self.larval.remove(id);
        Ok(())
    }

    fn get_sa(&mut self, id: &SaId) -> Result<SaInfo> {
        let op = || format!("reading SA {id} (XFRM_MSG_GETSA)");
        let answers = self.run(op, sa::get(id), Expect::Reply, About::Other)?;
        for m in &answers.0 {
            if let XfrmMessage::AddSa(m) = m {
                return sa::decode(&m.user_sa_info, &m.nlas)
                    .map_err(|detail| Error::Malformed { op: op(), detail });
            }
        }
        Err(Error::Malformed {
            op: op(),
            detail: "no SA in the answer".into(),
        })
    }

    fn list_sas(&mut self) -> Result<Vec<SaInfo>> {
        let op = || "listing SAs (XFRM_MSG_GETSA dump)".to_owned();
        let answers = self.run(op, sa::dump(), Expect::Dump, About::Other)?;
        // SAs baton cannot describe (other protocols, algorithms) are skipped.
        Ok(answers
            .0
            .iter()
            .filter_map(|m| match m {
                XfrmMessage::AddSa(m) => sa::decode(&m.user_sa_info, &m.nlas).ok(),
                _ => None,
            })
            .collect())
    }

    fn add_policy(&mut self, p: &PolicySpec) -> Result<()> {
        p.validate()?;
        let op = || {
            format!(
                "adding policy {} {:?} (XFRM_MSG_NEWPOLICY)",
                p.selector, p.dir
            )
        };
        self.run(op, policy::add(p, false), Expect::Ack, About::Other)
            .map(drop)
    }

    fn update_policy(&mut self, p: &PolicySpec) -> Result<()> {
        p.validate()?;
        let op = || {
            format!(
                "updating policy {} {:?} (XFRM_MSG_UPDPOLICY)",
                p.selector, p.dir
            )
        };
        self.run(op, policy::add(p, true), Expect::Ack, About::Other)
            .map(drop)
    }

    fn delete_policy(&mut self, id: &PolicyId) -> Result<()> {
        let op = || {
            format!(
                "deleting policy {} {:?} (XFRM_MSG_DELPOLICY)",
                id.selector, id.dir
            )
        };
        self.run(op, policy::delete(id), Expect::Ack, About::Other)
            .map(drop)
    }

    fn list_policies(&mut self) -> Result<Vec<PolicySpec>> {
        let op = || "listing policies (XFRM_MSG_GETPOLICY dump)".to_owned();
        let answers = self.run(op, policy::dump(), Expect::Dump, About::Other)?;
        Ok(answers
            .0
            .iter()
            .filter_map(|m| match m {
                XfrmMessage::AddPolicy(m) => policy::decode(m).ok(),
                _ => None,
            })
            .collect())
    }

    fn get_replay_state(&mut self, id: &SaId) -> Result<ReplayState> {
        Ok(self.get_ae(id)?.state)
    }

    fn set_replay_state(&mut self, id: &SaId, state: &ReplayState) -> Result<()> {
        // The kernel wants the state in the SA's own layout and bitmap size.
        let layout = self.get_ae(id)?.layout;
        if layout == ae::KernelReplay::Legacy
            && (state.oseq > u64::from(u32::MAX) || state.seq > u64::from(u32::MAX))
        {
            return Err(Error::invalid(format!(
                "SA {id}: 64-bit sequence numbers for an SA without ESN"
            )));
        }
        let op = || format!("setting replay state of SA {id} (XFRM_MSG_NEWAE)");
        self.transact_flags(
            op,
            ae::set(id, layout, state),
            Expect::Ack,
            NLM_F_REPLACE,
            About::Other,
        )
        .map(drop)
    }

    fn get_counters(&mut self, id: &SaId) -> Result<SaCounters> {
        Ok(self.get_ae(id)?.counters)
    }

    fn poll_events(&mut self) -> Result<Vec<DataplaneEvent>> {
        match &mut self.events {
            Some(m) => m.try_recv(),
            None => Ok(Vec::new()),
        }
    }

    fn flush_own(&mut self) -> Result<FlushReport> {
        let mut report = FlushReport::default();
        let owned = self.owned;
        for p in self.list_policies()? {
            if p.templates.iter().any(|t| owned.contains(t.reqid)) {
                match self.delete_policy(&p.id()) {
                    Ok(()) => report.policies += 1,
                    Err(e) if e.is_not_found() => {}
                    Err(e) => return Err(e),
                }
            }
        }
        let op = || "listing SAs for flush_own (XFRM_MSG_GETSA dump)".to_owned();
        let answers = self.run(op, sa::dump(), Expect::Dump, About::Other)?;
        let ids: Vec<SaId> = answers
            .0
            .iter()
            .filter_map(|m| match m {
                XfrmMessage::AddSa(m) => sa::brief(&m.user_sa_info).ok(),
                _ => None,
            })
            .filter(|(_, reqid)| owned.contains(*reqid))
            .map(|(id, _)| id)
            .collect();
        drop(answers);
        for id in ids {
            match self.delete_sa(&id) {
                Ok(()) => report.sas += 1,
                Err(e) if e.is_not_found() => {}
                Err(e) => return Err(e),
            }
        }
        Ok(report)
    }
}

/// A netlink socket subscribed to XFRMNLGRP_EXPIRE and XFRMNLGRP_AEVENTS.
/// Non-blocking: poll its file descriptor for readiness, then call
/// [`EventMonitor::try_recv`].
pub struct EventMonitor {
    sock: Socket,
    buf: Zeroizing<Vec<u8>>,
    owned: Option<OwnedRange>,
}

impl std::fmt::Debug for EventMonitor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventMonitor")
            .field("fd", &self.sock.as_raw_fd())
            .field("owned", &self.owned)
            .finish()
    }
}

/// Receive buffer of the event socket: room for bursts of replay events
/// from many SAs before the kernel reports an overrun (ENOBUFS).
const EVENT_RCVBUF: usize = 4 << 20;

impl EventMonitor {
    /// Subscribes in the caller's network namespace; with `owned`, only
    /// events of SAs whose reqid is in that range are delivered.
    pub fn open(owned: Option<OwnedRange>) -> Result<Self> {
        let op = "opening the XFRM event socket";
        let mut sock = Socket::new(NETLINK_XFRM).map_err(|e| io_err(op, e))?;
        sock.bind(&SocketAddr::new(0, 0))
            .map_err(|e| io_err(op, e))?;
        for g in [XFRMNLGRP_EXPIRE, XFRMNLGRP_AEVENTS] {
            sock.add_membership(g).map_err(|e| io_err(op, e))?;
        }
        sock.set_non_blocking(true).map_err(|e| io_err(op, e))?;
        // Best effort: without CAP_NET_ADMIN the kernel caps it at rmem_max.
        let _ = sock.set_rx_buf_sz(EVENT_RCVBUF);
        Ok(Self {
            sock,
            buf: Zeroizing::new(Vec::with_capacity(RECV_BUF)),
            owned,
        })
    }

    /// Returns the events queued now, without blocking.
    /// At most about [`MAX_EVENTS_PER_POLL`] events are returned per call.
    pub fn try_recv(&mut self) -> Result<Vec<DataplaneEvent>> {
        let mut out = Vec::new();
        loop {
            let n = match recv_datagram(&self.sock, &mut self.buf, libc::MSG_DONTWAIT) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(out),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) => {
                    out.push(DataplaneEvent::EventsLost);
                    continue;
                }
                Err(e) => return Err(io_err("receiving XFRM events", e)),
            };
            for item in wire::split(self.buf.get(..n).unwrap_or_default()) {
                let Ok((h, payload)) = item else { break };
                let Ok(Some(mut msg)) = wire::parse_xfrm(h.ty, payload) else {
                    continue;
                };
                let ev = ae::event(&msg);
                scrub(&mut msg);
                if let Ok(Some(ev)) = ev
                    && self
                        .owned
                        .is_none_or(|r| ev.reqid().is_none_or(|q| r.contains(q)))
                {
                    out.push(ev);
                }
            }
            self.buf.zeroize();
            // Bounded per call: under heavy replay-event load the caller still gets
            // back to IKE between batches; the rest stays queued in the socket.
            if out.len() >= MAX_EVENTS_PER_POLL {
                return Ok(out);
            }
        }
    }

    /// Waits up to `timeout` for at least one event (polling every 10 ms).
    pub fn recv_timeout(&mut self, timeout: Duration) -> Result<Vec<DataplaneEvent>> {
        let deadline = Instant::now() + timeout;
        loop {
            let evs = self.try_recv()?;
            if !evs.is_empty() || Instant::now() >= deadline {
                return Ok(evs);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl AsRawFd for EventMonitor {
    fn as_raw_fd(&self) -> RawFd {
        self.sock.as_raw_fd()
    }
}

impl AsFd for EventMonitor {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.sock.as_fd()
    }
}
