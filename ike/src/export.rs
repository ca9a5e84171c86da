//! Exportable IKE SA context: a versioned, self-contained record of an established IKE
//! SA and its Child SAs, which another [`Endpoint`] imports to carry the session on.
//!
//! The record holds everything the protocol needs — SPIs, keys, negotiated algorithms and
//! extensions, both Message ID counters, the cached last response (so a retransmitted
//! request is answered byte for byte by the new owner, RFC 7296 §2.1), Child SAs with
//! their keys and selectors, the virtual IP — and nothing that is local to a node
//! (requests in flight are not carried: the new owner starts its own).
//!
//! Times are stored relative to the export instant (signed milliseconds), so the record
//! does not depend on either node's clock origin.
//!
//! Layout: `"BKSA"`, format version (u16), then the fields in the order of
//! [`write_sa`]. Integers are big-endian; byte strings carry a u32 length. The decoder is
//! bounded by the record's own length and never panics.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::{Duration, Instant};

use crate::config::{EncrAlg, Identity, IpsecMode};
use crate::crypto::SecretBytes;
use crate::crypto::keys::IkeSaKeys;
use crate::endpoint::Endpoint;
use crate::policy::proposal::{ChildSuite, IkeSuite};
use crate::sa::msgid::{CachedResponse, OutstandingRequest, SyncAttempt};
use crate::sa::{
    ChildSa, ChildSaKeys, ChildSaState, IkeSa, IkeSaId, IkeSaState, MessageIdWindow, SpiPair,
};
use crate::wire::{EncrId, IdType, IkeSpi, IntegId, IpTrafficSelector, KeGroup, PrfId, Reader};

/// Magic at the start of every record.
const MAGIC: &[u8; 4] = b"BKSA";
/// The record format this build writes.
pub const FORMAT_VERSION: u16 = 1;

/// Why a record could not be imported.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ImportError {
    /// Not a record, or truncated, or with trailing bytes.
    #[error("malformed IKE SA record: {0}")]
    Malformed(&'static str),
    /// Written by a newer format.
    #[error("IKE SA record format {0} is not supported (this build reads {FORMAT_VERSION})")]
    UnsupportedVersion(u16),
    /// An SA with the same SPI already exists here.
    #[error("IKE SA {0} already exists on this node")]
    AlreadyExists(IkeSaId),
}

impl From<crate::wire::DecodeError> for ImportError {
    fn from(_: crate::wire::DecodeError) -> Self {
        Self::Malformed("truncated")
    }
}

struct W(Vec<u8>);

impl W {
    fn u8(&mut self, v: u8) {
        self.0.push(v);
    }
    fn u16(&mut self, v: u16) {
        self.0.extend_from_slice(&v.to_be_bytes());
    }
    fn u32(&mut self, v: u32) {
        self.0.extend_from_slice(&v.to_be_bytes());
    }
    fn u64(&mut self, v: u64) {
        self.0.extend_from_slice(&v.to_be_bytes());
    }
    fn bytes(&mut self, b: &[u8]) {
        self.u32(u32::try_from(b.len()).unwrap_or(u32::MAX));
        self.0.extend_from_slice(b);
    }
    fn bool(&mut self, b: bool) {
        self.u8(u8::from(b));
    }
    fn ip(&mut self, ip: IpAddr) {
        match ip {
            IpAddr::V4(a) => {
                self.u8(4);
                self.0.extend_from_slice(&a.octets());
            }
            IpAddr::V6(a) => {
                self.u8(6);
                self.0.extend_from_slice(&a.octets());
            }
        }
    }
    fn sock(&mut self, s: SocketAddr) {
        self.ip(s.ip());
        self.u16(s.port());
    }
    /// An instant as signed milliseconds relative to `now`.
    fn time(&mut self, t: Instant, now: Instant) {
        let ms = if t >= now {
            i64::try_from(t.duration_since(now).as_millis()).unwrap_or(i64::MAX)
        } else {
            -i64::try_from(now.duration_since(t).as_millis()).unwrap_or(i64::MAX)
        };
        self.u64(ms as u64);
    }
    fn opt_time(&mut self, t: Option<Instant>, now: Instant) {
        self.bool(t.is_some());
        if let Some(t) = t {
            self.time(t, now);
        }
    }
    fn ts(&mut self, v: &[IpTrafficSelector]) {
        self.u16(u16::try_from(v.len()).unwrap_or(u16::MAX));
        for t in v {
            self.u8(t.ip_protocol);
            self.u16(t.start_port);
            self.u16(t.end_port);
            self.ip(t.start_addr);
            self.ip(t.end_addr);
        }
    }
    fn datagrams(&mut self, d: &[Vec<u8>]) {
        self.u16(u16::try_from(d.len()).unwrap_or(u16::MAX));
        for x in d {
            self.bytes(x);
        }
    }
}

struct R<'a>(Reader<'a>);

impl R<'_> {
    fn u8(&mut self) -> Result<u8, ImportError> {
        Ok(self.0.u8()?)
    }
    fn u16(&mut self) -> Result<u16, ImportError> {
        Ok(self.0.u16()?)
    }
    fn u32(&mut self) -> Result<u32, ImportError> {
        Ok(self.0.u32()?)
    }
    fn u64(&mut self) -> Result<u64, ImportError> {
        Ok(self.0.u64()?)
    }
    fn bytes(&mut self) -> Result<Vec<u8>, ImportError> {
        let n = self.u32()? as usize;
        Ok(self.0.take(n)?.to_vec())
    }
    fn secret(&mut self) -> Result<SecretBytes, ImportError> {
        let n = self.u32()? as usize;
        Ok(SecretBytes::from_slice(self.0.take(n)?))
    }
    fn string(&mut self) -> Result<String, ImportError> {
        String::from_utf8(self.bytes()?).map_err(|_| ImportError::Malformed("string is not UTF-8"))
    }
    fn bool(&mut self) -> Result<bool, ImportError> {
        match self.u8()? {
            0 => Ok(false),
            1 => Ok(true),
            _ => Err(ImportError::Malformed("bad boolean")),
        }
    }
    fn ip(&mut self) -> Result<IpAddr, ImportError> {
        match self.u8()? {
            4 => Ok(IpAddr::V4(Ipv4Addr::from(self.0.array::<4>()?))),
            6 => Ok(IpAddr::V6(Ipv6Addr::from(self.0.array::<16>()?))),
            _ => Err(ImportError::Malformed("bad address family")),
        }
    }
    fn sock(&mut self) -> Result<SocketAddr, ImportError> {
        let ip = self.ip()?;
        Ok(SocketAddr::new(ip, self.u16()?))
    }
    fn time(&mut self, now: Instant) -> Result<Instant, ImportError> {
        let ms = self.u64()? as i64;
        let d = Duration::from_millis(ms.unsigned_abs());
        // A record comes from another node: a time that does not fit is malformed, never
        // a panic.
        if ms >= 0 {
            now.checked_add(d)
                .ok_or(ImportError::Malformed("time out of range"))
        } else {
            Ok(now.checked_sub(d).unwrap_or(now))
        }
    }
    fn opt_time(&mut self, now: Instant) -> Result<Option<Instant>, ImportError> {
        if self.bool()? {
            Ok(Some(self.time(now)?))
        } else {
            Ok(None)
        }
    }
    fn ts(&mut self) -> Result<Vec<IpTrafficSelector>, ImportError> {
        let n = self.u16()?;
        let mut v = Vec::new();
        for _ in 0..n {
            v.push(IpTrafficSelector {
                ip_protocol: self.u8()?,
                start_port: self.u16()?,
                end_port: self.u16()?,
                start_addr: self.ip()?,
                end_addr: self.ip()?,
            });
        }
        Ok(v)
    }
    fn datagrams(&mut self) -> Result<Vec<Vec<u8>>, ImportError> {
        let n = self.u16()?;
        let mut v = Vec::new();
        for _ in 0..n {
            v.push(self.bytes()?);
        }
        Ok(v)
    }
}

fn write_identity(w: &mut W, id: Option<&Identity>) {
    w.bool(id.is_some());
    if let Some(id) = id {
        w.u8(id.id_type.0);
        w.bytes(&id.data);
    }
}

fn read_identity(r: &mut R<'_>) -> Result<Option<Identity>, ImportError> {
    if !r.bool()? {
        return Ok(None);
    }
    Ok(Some(Identity {
        id_type: IdType(r.u8()?),
        data: r.bytes()?,
    }))
}

fn write_child(w: &mut W, c: &ChildSa, now: Instant) {
    w.bytes(c.name.as_bytes());
    w.u32(c.spi_in);
    w.u32(c.spi_out);
    w.u32(c.reqid);
    w.u16(c.suite.encr.id.0);
    w.u16(c.suite.encr.key_bits);
    w.u16(c.suite.integ.0);
    w.u16(c.suite.ke.map_or(0, |g| g.0));
    w.bool(c.suite.esn);
    w.u8(match c.mode {
        IpsecMode::Tunnel => 0,
        IpsecMode::Transport => 1,
    });
    for k in [
        &c.keys_in.encr,
        &c.keys_in.integ,
        &c.keys_out.encr,
        &c.keys_out.integ,
    ] {
        w.bytes(k.expose());
    }
    w.ts(&c.local_ts);
    w.ts(&c.remote_ts);
    w.u8(match c.state {
        ChildSaState::Installed => 0,
        ChildSaState::Rekeyed => 1,
    });
    w.time(c.installed_at, now);
}

fn read_child(r: &mut R<'_>, now: Instant) -> Result<ChildSa, ImportError> {
    let name = r.string()?;
    let spi_in = r.u32()?;
    let spi_out = r.u32()?;
    let reqid = r.u32()?;
    let encr = EncrAlg {
        id: EncrId(r.u16()?),
        key_bits: r.u16()?,
    };
    let integ = IntegId(r.u16()?);
    let ke = match r.u16()? {
        0 => None,
        g => Some(KeGroup(g)),
    };
    let esn = r.bool()?;
    let mode = match r.u8()? {
        0 => IpsecMode::Tunnel,
        1 => IpsecMode::Transport,
        _ => return Err(ImportError::Malformed("bad mode")),
    };
    let keys_in = ChildSaKeys {
        encr: r.secret()?,
        integ: r.secret()?,
    };
    let keys_out = ChildSaKeys {
        encr: r.secret()?,
        integ: r.secret()?,
    };
    let local_ts = r.ts()?;
    let remote_ts = r.ts()?;
    let state = match r.u8()? {
        0 => ChildSaState::Installed,
        1 => ChildSaState::Rekeyed,
        _ => return Err(ImportError::Malformed("bad child state")),
    };
    Ok(ChildSa {
        name,
        spi_in,
        spi_out,
        reqid,
        suite: ChildSuite {
            encr,
            integ,
            ke,
            esn,
        },
        mode,
        keys_in,
        keys_out,
        local_ts,
        remote_ts,
        state,
        installed_at: r.time(now)?,
    })
}

/// Serialises `sa` at `now`.
pub fn write_sa(sa: &IkeSa, now: Instant) -> Vec<u8> {
    let mut w = W(Vec::with_capacity(1024));
    w.0.extend_from_slice(MAGIC);
    w.u16(FORMAT_VERSION);
    w.u64(sa.spis.spi_i.0);
    w.u64(sa.spis.spi_r.0);
    w.bool(sa.we_are_initiator);
    w.u8(match sa.state {
        IkeSaState::HalfOpen => 0,
        IkeSaState::Established => 1,
        IkeSaState::Rekeyed => 2,
        IkeSaState::Deleting => 3,
    });
    w.bytes(sa.connection.as_bytes());
    w.u16(sa.suite.encr.id.0);
    w.u16(sa.suite.encr.key_bits);
    w.u16(sa.suite.integ.0);
    w.u16(sa.suite.prf.0);
    w.u16(sa.suite.ke.0);
    let k = &sa.keys;
    for s in [
        &k.sk_d, &k.sk_ai, &k.sk_ar, &k.sk_ei, &k.sk_er, &k.sk_pi, &k.sk_pr,
    ] {
        w.bytes(s.expose());
    }
    w.sock(sa.local_addr);
    w.sock(sa.remote_addr);
    write_identity(&mut w, sa.local_id.as_ref());
    write_identity(&mut w, sa.remote_id.as_ref());
    for f in [
        sa.nat_local,
        sa.nat_remote,
        sa.fragmentation,
        sa.mid_sync,
        sa.replay_sync,
    ] {
        w.bool(f);
    }
    let m = &sa.msgids;
    w.u32(m.peer_next_request);
    w.u32(m.our_next_request);
    w.u32(m.peer_window);
    w.bool(m.peer_sync_highest.is_some());
    w.u32(m.peer_sync_highest.unwrap_or(0));
    w.bool(m.last_response.is_some());
    if let Some(c) = &m.last_response {
        w.u32(c.message_id);
        w.0.extend_from_slice(&c.request_hash);
        w.datagrams(&c.datagrams);
    }
    // Our outstanding request travels too, so the new owner does not reuse its
    // Message ID (the peer may already have answered it).
    w.bool(m.outstanding.is_some());
    if let Some(o) = &m.outstanding {
        w.u32(o.message_id);
        w.u32(o.transmissions);
        w.u64(u64::try_from(o.next_retransmit.as_millis()).unwrap_or(u64::MAX));
        w.datagrams(&o.datagrams);
    }
    w.bool(m.sync_pending.is_some());
    if let Some(s) = &m.sync_pending {
        w.u32(s.nonce);
        w.u32(s.m1);
        w.u32(s.p1);
        w.u32(s.transmissions);
        w.datagrams(&s.datagrams);
    }
    w.u16(u16::try_from(sa.children.len()).unwrap_or(u16::MAX));
    for c in &sa.children {
        write_child(&mut w, c, now);
    }
    w.bool(sa.virtual_ip.is_some());
    if let Some(v) = sa.virtual_ip {
        w.ip(v);
    }
    w.time(sa.created_at, now);
    w.opt_time(sa.established_at, now);
    w.time(sa.last_heard, now);
    w.opt_time(sa.retransmit_at, now);
    w.opt_time(sa.rekey_at, now);
    w.opt_time(sa.expire_at, now);
    w.0
}

/// Parses a record written by [`write_sa`], with times relative to `now`.
pub fn read_sa(record: &[u8], now: Instant) -> Result<IkeSa, ImportError> {
    let mut r = R(Reader::new(record, "IKE SA record"));
    if r.0.take(4)? != MAGIC {
        return Err(ImportError::Malformed("bad magic"));
    }
    let v = r.u16()?;
    if v != FORMAT_VERSION {
        return Err(ImportError::UnsupportedVersion(v));
    }
    let spis = SpiPair {
        spi_i: IkeSpi(r.u64()?),
        spi_r: IkeSpi(r.u64()?),
    };
    let we_are_initiator = r.bool()?;
    let state = match r.u8()? {
        0 => IkeSaState::HalfOpen,
        1 => IkeSaState::Established,
        2 => IkeSaState::Rekeyed,
        3 => IkeSaState::Deleting,
        _ => return Err(ImportError::Malformed("bad IKE SA state")),
    };
    let connection = r.string()?;
    let suite = IkeSuite {
        encr: EncrAlg {
            id: EncrId(r.u16()?),
            key_bits: r.u16()?,
        },
        integ: IntegId(r.u16()?),
        prf: PrfId(r.u16()?),
        ke: KeGroup(r.u16()?),
    };
    let keys = IkeSaKeys {
        sk_d: r.secret()?,
        sk_ai: r.secret()?,
        sk_ar: r.secret()?,
        sk_ei: r.secret()?,
        sk_er: r.secret()?,
        sk_pi: r.secret()?,
        sk_pr: r.secret()?,
    };
    let local_addr = r.sock()?;
    let remote_addr = r.sock()?;
    let local_id = read_identity(&mut r)?;
    let remote_id = read_identity(&mut r)?;
    let (nat_local, nat_remote, fragmentation, mid_sync, replay_sync) =
        (r.bool()?, r.bool()?, r.bool()?, r.bool()?, r.bool()?);
    let peer_next_request = r.u32()?;
    let our_next_request = r.u32()?;
    let peer_window = r.u32()?;
    let has_sync = r.bool()?;
    let sync = r.u32()?;
    let last_response = if r.bool()? {
        let message_id = r.u32()?;
        let request_hash = r.0.array::<32>()?;
        Some(CachedResponse {
            message_id,
            request_hash,
            datagrams: r.datagrams()?,
        })
    } else {
        None
    };
    let outstanding = if r.bool()? {
        let message_id = r.u32()?;
        let transmissions = r.u32()?;
        let next_retransmit = Duration::from_millis(r.u64()?);
        Some(OutstandingRequest {
            message_id,
            datagrams: r.datagrams()?,
            transmissions,
            next_retransmit,
        })
    } else {
        None
    };
    let sync_pending = if r.bool()? {
        let (nonce, m1, p1, transmissions) = (r.u32()?, r.u32()?, r.u32()?, r.u32()?);
        Some(SyncAttempt {
            nonce,
            m1,
            p1,
            datagrams: r.datagrams()?,
            transmissions,
        })
    } else {
        None
    };
    let msgids = MessageIdWindow {
        sync_pending,
        peer_next_request,
        our_next_request,
        last_response,
        outstanding,
        peer_window,
        peer_sync_highest: has_sync.then_some(sync),
    };
    let n = r.u16()?;
    let mut children = Vec::new();
    for _ in 0..n {
        children.push(read_child(&mut r, now)?);
    }
    let virtual_ip = if r.bool()? { Some(r.ip()?) } else { None };
    let sa = IkeSa {
        spis,
        we_are_initiator,
        state,
        connection,
        suite,
        keys,
        local_addr,
        remote_addr,
        local_id,
        remote_id,
        nat_local,
        nat_remote,
        fragmentation,
        mid_sync,
        replay_sync,
        msgids,
        children,
        virtual_ip,
        created_at: r.time(now)?,
        established_at: r.opt_time(now)?,
        last_heard: r.time(now)?,
        retransmit_at: r.opt_time(now)?,
        rekey_at: r.opt_time(now)?,
        expire_at: r.opt_time(now)?,
    };
    if !r.0.is_empty() {
        return Err(ImportError::Malformed("trailing bytes"));
    }
    Ok(sa)
}

impl Endpoint {
    /// The record of IKE SA `id` at `now`, for replication or transfer.
    pub fn export(&self, id: IkeSaId, now: Instant) -> Option<Vec<u8>> {
        self.sas.get(&id.0).map(|sa| write_sa(sa, now))
    }

    /// Takes an IKE SA from a record; the SA then answers the peer from this endpoint.
    /// Nothing is installed in the kernel here: the caller decides when the Child SAs
    /// go live (see [`Endpoint::reinstall_children`]).
    pub fn import(&mut self, now: Instant, record: &[u8]) -> Result<IkeSaId, ImportError> {
        let sa = read_sa(record, now)?;
        let id = sa.id();
        if self.sas.contains_key(&id.0) {
            return Err(ImportError::AlreadyExists(id));
        }
        for c in &sa.children {
            self.child_spis.insert(c.spi_in);
            self.note_reqid(c.reqid);
        }
        if let (Some(vip), Some(rid)) = (sa.virtual_ip, sa.remote_id.as_ref()) {
            let conn_pool = self.connection(&sa.connection).and_then(|c| c.pool.clone());
            if let Some(pool) = conn_pool.and_then(|p| self.pools.get_mut(&p)) {
                // A lease that clashes was already replicated to this node: keep the existing one.
                let _ = pool.mark_leased(vip, rid);
            }
        }
        self.put_sa(id.0, sa);
        Ok(id)
    }

    /// Removes IKE SA `id` from this endpoint without deleting anything on the wire or in
    /// the kernel (it has moved to another node). Returns its record.
    pub fn release(&mut self, id: IkeSaId, now: Instant) -> Option<Vec<u8>> {
        let sa = self.sas.remove(&id.0)?;
        for c in &sa.children {
            self.child_spis.remove(&c.spi_in);
        }
        self.pending.remove(&id.0);
        self.reassembly.remove(&id.0);
        Some(write_sa(&sa, now))
    }

    /// Queues kernel installs for every Child SA of `id` (after an import, when this node
    /// becomes the owner).
    pub fn reinstall_children(&mut self, id: IkeSaId) {
        let Some(sa) = self.sas.get(&id.0).cloned() else {
            return;
        };
        for c in &sa.children {
            self.install_child(&sa, c, None);
        }
    }
}
