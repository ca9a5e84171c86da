//! The typed description of the kernel objects baton installs: SAs, policies,
//! replay state, counters and events. Nothing here talks to the kernel.

use std::fmt;
use std::net::IpAddr;

use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use crate::error::{Error, Result};

/// A Security Parameter Index (RFC 4303 §2.1), in host byte order.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Spi(pub u32);

impl fmt::Debug for Spi {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Spi({:#010x})", self.0)
    }
}

impl fmt::Display for Spi {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:#010x}", self.0)
    }
}

/// An inclusive range of SPIs from which `alloc_spi` picks. Cluster nodes are
/// given disjoint ranges so that no two nodes ever hand out the same inbound SPI.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SpiRange {
    min: u32,
    max: u32,
}

impl SpiRange {
    /// SPIs 1..=255 are reserved by IANA and 0 means "no SPI" (RFC 4303 §2.1).
    pub const FIRST_USABLE: u32 = 256;

    /// A range `min..=max`; fails if it is empty or reaches into 0..=255.
    pub fn new(min: u32, max: u32) -> Result<Self> {
        if min < Self::FIRST_USABLE {
            return Err(Error::invalid(format!(
                "SPI range {min:#x}..={max:#x} includes reserved SPIs below 0x100 (RFC 4303 §2.1)"
            )));
        }
        if min > max {
            return Err(Error::invalid(format!(
                "SPI range {min:#x}..={max:#x} is empty"
            )));
        }
        Ok(Self { min, max })
    }

    /// The whole usable space, 0x100..=0xffffffff.
    pub fn full() -> Self {
        Self {
            min: Self::FIRST_USABLE,
            max: u32::MAX,
        }
    }

    /// Lowest SPI in the range.
    pub fn min(&self) -> u32 {
        self.min
    }

    /// Highest SPI in the range.
    pub fn max(&self) -> u32 {
        self.max
    }

    /// Whether `spi` lies in the range.
    pub fn contains(&self, spi: Spi) -> bool {
        (self.min..=self.max).contains(&spi.0)
    }

    /// Number of SPIs in the range.
    pub fn len(&self) -> u64 {
        u64::from(self.max) - u64::from(self.min) + 1
    }

    /// Always false: a range holds at least one SPI.
    pub fn is_empty(&self) -> bool {
        false
    }
}

/// The IPsec protocol of an SA. baton negotiates ESP only (RFC 7296 §3.3.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Protocol {
    /// Encapsulating Security Payload (RFC 4303), IP protocol 50.
    Esp,
}

impl Protocol {
    /// The IP protocol number.
    pub fn number(self) -> u8 {
        match self {
            Self::Esp => 50,
        }
    }
}

/// Identifies one SA in the kernel's SAD: destination, SPI and protocol
/// (RFC 4301 §4.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SaId {
    /// Destination address of the SA (ours for inbound SAs).
    pub dst: IpAddr,
    /// The SPI.
    pub spi: Spi,
    /// The protocol.
    pub proto: Protocol,
}

impl SaId {
    /// An ESP SA identifier.
    pub fn esp(dst: IpAddr, spi: Spi) -> Self {
        Self {
            dst,
            spi,
            proto: Protocol::Esp,
        }
    }
}

impl fmt::Display for SaId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "esp spi {} dst {}", self.spi, self.dst)
    }
}

/// IPsec mode (RFC 4301 §4.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Mode {
    /// Transport mode.
    Transport,
    /// Tunnel mode.
    Tunnel,
}

/// An address prefix, e.g. `10.1.0.0/24`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Prefix {
    addr: IpAddr,
    len: u8,
}

impl Prefix {
    /// `addr/len`; fails if `len` is longer than the address.
    pub fn new(addr: IpAddr, len: u8) -> Result<Self> {
        let max = if addr.is_ipv4() { 32 } else { 128 };
        if len > max {
            return Err(Error::invalid(format!(
                "prefix length /{len} is too long for {addr}"
            )));
        }
        Ok(Self { addr, len })
    }

    /// A single host (/32 or /128).
    pub fn host(addr: IpAddr) -> Self {
        Self {
            addr,
            len: if addr.is_ipv4() { 32 } else { 128 },
        }
    }

    /// The address.
    pub fn addr(&self) -> IpAddr {
        self.addr
    }

    /// The prefix length.
    pub fn len(&self) -> u8 {
        self.len
    }

    /// Whether the prefix length is 0 (matches every address of its family).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl fmt::Display for Prefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.len)
    }
}

/// A traffic selector as the kernel knows it (RFC 4301 §4.4.1): source and
/// destination prefixes, upper-layer protocol and ports (0 = any).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Selector {
    /// Source prefix.
    pub src: Prefix,
    /// Destination prefix.
    pub dst: Prefix,
    /// Upper-layer protocol number, 0 for any.
    pub proto: u8,
    /// Source port, 0 for any.
    pub src_port: u16,
    /// Destination port, 0 for any.
    pub dst_port: u16,
}

impl Selector {
    /// A selector for all traffic from `src` to `dst` (any protocol, any port).
    pub fn new(src: Prefix, dst: Prefix) -> Result<Self> {
        if src.addr.is_ipv4() != dst.addr.is_ipv4() {
            return Err(Error::invalid(format!(
                "selector {src} -> {dst} mixes address families"
            )));
        }
        Ok(Self {
            src,
            dst,
            proto: 0,
            src_port: 0,
            dst_port: 0,
        })
    }
}

impl fmt::Display for Selector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} -> {}", self.src, self.dst)?;
        if self.proto != 0 {
            write!(f, " proto {}", self.proto)?;
        }
        if self.src_port != 0 || self.dst_port != 0 {
            write!(f, " ports {}->{}", self.src_port, self.dst_port)?;
        }
        Ok(())
    }
}

/// Secret key material: zeroized on drop, never printed, compared in constant time.
#[derive(Clone)]
pub struct Key(Zeroizing<Vec<u8>>);

impl Key {
    /// Wraps key bytes.
    pub fn new(bytes: Zeroizing<Vec<u8>>) -> Self {
        Self(bytes)
    }

    /// Copies key bytes from a slice.
    pub fn from_slice(bytes: &[u8]) -> Self {
        Self(Zeroizing::new(bytes.to_vec()))
    }

    /// The key bytes (for handing to the kernel).
    pub fn expose(&self) -> &[u8] {
        &self.0
    }

    /// Key length in bytes.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether the key is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "<{} key bytes redacted>", self.0.len())
    }
}

impl PartialEq for Key {
    fn eq(&self, other: &Self) -> bool {
        self.0.len() == other.0.len() && bool::from(self.0.ct_eq(&other.0))
    }
}

impl Eq for Key {}

/// AEAD transforms for ESP.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AeadAlgorithm {
    /// AES-GCM for ESP (RFC 4106); the key is the AES key (16 or 32 bytes, 24
    /// allowed) followed by the 4-byte salt.
    AesGcm,
    /// ChaCha20-Poly1305 for ESP (RFC 7634); 32-byte key followed by the 4-byte salt.
    ChaCha20Poly1305,
}

impl AeadAlgorithm {
    /// The kernel's crypto API name.
    pub fn kernel_name(self) -> &'static str {
        match self {
            Self::AesGcm => "rfc4106(gcm(aes))",
            Self::ChaCha20Poly1305 => "rfc7539esp(chacha20,poly1305)",
        }
    }

    /// Kernel modules that provide it (named in "algorithm missing" errors).
    pub fn kernel_modules(self) -> &'static str {
        match self {
            Self::AesGcm => "gcm, ghash_generic, aesni_intel or aes_generic, seqiv/echainiv",
            Self::ChaCha20Poly1305 => "chacha20poly1305, chacha_generic, poly1305_generic",
        }
    }

    fn check(self, key_len: usize, icv_bits: u32) -> Result<()> {
        let (keys_ok, icv_ok) = match self {
            Self::AesGcm => (
                matches!(key_len, 20 | 28 | 36),
                matches!(icv_bits, 64 | 96 | 128),
            ),
            Self::ChaCha20Poly1305 => (key_len == 36, icv_bits == 128),
        };
        if !keys_ok {
            return Err(Error::invalid(format!(
                "{}: a {key_len}-byte key is wrong (the key includes the 4-byte salt)",
                self.kernel_name()
            )));
        }
        if !icv_ok {
            return Err(Error::invalid(format!(
                "{}: ICV of {icv_bits} bits is not allowed",
                self.kernel_name()
            )));
        }
        Ok(())
    }
}

/// Encryption transforms used with a separate integrity transform.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EncAlgorithm {
    /// AES-CBC (RFC 3602), 16/24/32-byte key.
    AesCbc,
}

impl EncAlgorithm {
    /// The kernel's crypto API name.
    pub fn kernel_name(self) -> &'static str {
        match self {
            Self::AesCbc => "cbc(aes)",
        }
    }
}

/// Integrity transforms (RFC 4868).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AuthAlgorithm {
    /// HMAC-SHA-256-128: 32-byte key, 128-bit ICV.
    HmacSha256,
    /// HMAC-SHA-384-192: 48-byte key, 192-bit ICV.
    HmacSha384,
    /// HMAC-SHA-512-256: 64-byte key, 256-bit ICV.
    HmacSha512,
}

impl AuthAlgorithm {
    /// The kernel's crypto API name.
    pub fn kernel_name(self) -> &'static str {
        match self {
            Self::HmacSha256 => "hmac(sha256)",
            Self::HmacSha384 => "hmac(sha384)",
            Self::HmacSha512 => "hmac(sha512)",
        }
    }

    /// Key length in bytes and truncation in bits (RFC 4868 §2.1.1, §2.6).
    pub fn key_and_trunc(self) -> (usize, u32) {
        match self {
            Self::HmacSha256 => (32, 128),
            Self::HmacSha384 => (48, 192),
            Self::HmacSha512 => (64, 256),
        }
    }
}

/// The SA's transforms and keys. `Debug` never shows keys.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Crypto {
    /// A combined-mode transform.
    Aead {
        /// The algorithm.
        alg: AeadAlgorithm,
        /// Key followed by the 4-byte salt.
        key: Key,
        /// ICV length in bits.
        icv_bits: u32,
    },
    /// Encryption plus integrity.
    EncAuth {
        /// Encryption algorithm.
        enc: EncAlgorithm,
        /// Encryption key.
        enc_key: Key,
        /// Integrity algorithm.
        auth: AuthAlgorithm,
        /// Integrity key.
        auth_key: Key,
    },
}

impl Crypto {
    /// Checks key and ICV lengths against the algorithms.
    pub fn validate(&self) -> Result<()> {
        match self {
            Self::Aead { alg, key, icv_bits } => alg.check(key.len(), *icv_bits),
            Self::EncAuth {
                enc,
                enc_key,
                auth,
                auth_key,
            } => {
                let EncAlgorithm::AesCbc = enc;
                if !matches!(enc_key.len(), 16 | 24 | 32) {
                    return Err(Error::invalid(format!(
                        "{}: a {}-byte key is wrong",
                        enc.kernel_name(),
                        enc_key.len()
                    )));
                }
                let (len, _) = auth.key_and_trunc();
                if auth_key.len() != len {
                    return Err(Error::invalid(format!(
                        "{}: a {}-byte key is wrong (RFC 4868 wants {len})",
                        auth.kernel_name(),
                        auth_key.len()
                    )));
                }
                Ok(())
            }
        }
    }
}

/// NAT traversal: ESP in UDP (RFC 3948).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct UdpEncap {
    /// UDP source port of the encapsulated packets.
    pub sport: u16,
    /// UDP destination port.
    pub dport: u16,
}

/// Soft and hard limits; `None` is unlimited. When a soft limit is reached
/// the kernel reports [`DataplaneEvent::SoftExpire`]; at a hard limit it
/// deletes the SA and reports [`DataplaneEvent::HardExpire`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Lifetime {
    /// Soft limit on bytes.
    pub soft_bytes: Option<u64>,
    /// Hard limit on bytes.
    pub hard_bytes: Option<u64>,
    /// Soft limit on packets.
    pub soft_packets: Option<u64>,
    /// Hard limit on packets.
    pub hard_packets: Option<u64>,
    /// Soft limit in seconds since the SA was added.
    pub soft_add_secs: Option<u64>,
    /// Hard limit in seconds since the SA was added.
    pub hard_add_secs: Option<u64>,
}

/// Thresholds for the kernel's asynchronous replay events (kernel
/// documentation networking/xfrm_sync): an event is sent when either sequence
/// number moved by `packets` since the last event, or after `timer_jiffies`
/// if anything changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ReplayEventThresholds {
    /// XFRMA_REPLAY_THRESH: packets between events (0: timer only).
    pub packets: u32,
    /// XFRMA_ETIMER_THRESH, in kernel jiffies as the kernel stores it
    /// unconverted (Debian's kernel runs at HZ=250: 250 = 1 s). 0: no timer.
    pub timer_jiffies: u32,
}

/// Replay state of one SA (RFC 4303 §3.3.3, §3.4.3) in a kernel-neutral layout.
///
/// `bitmap` bit `i` (word `i / 32`, bit `i % 32`) is set when the packet with
/// sequence number `seq - i` was received; it has one word per 32 packets of
/// the SA's replay window (one word for windows up to 32). The kernel's own
/// layouts (shifting for small windows, circular for large or ESN ones) are
/// converted on the way in and out.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct ReplayState {
    /// Sequence number of the last packet sent (0: none yet). 64 bits with ESN.
    pub oseq: u64,
    /// Highest sequence number received (0: none yet). 64 bits with ESN.
    pub seq: u64,
    /// Which packets at or below `seq` were received (see above).
    pub bitmap: Vec<u32>,
}

impl ReplayState {
    /// Whether packet `n` is marked received (false outside the bitmap).
    pub fn received(&self, n: u64) -> bool {
        if n == 0 || n > self.seq {
            return false;
        }
        let i = self.seq - n;
        let (word, bit) = ((i / 32) as usize, (i % 32) as u32);
        self.bitmap.get(word).is_some_and(|w| w & (1 << bit) != 0)
    }
}

/// Byte and packet counters and times of an SA (`struct xfrm_lifetime_cur`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct SaCounters {
    /// Bytes processed.
    pub bytes: u64,
    /// Packets processed.
    pub packets: u64,
    /// When the SA was added (seconds since the epoch, kernel clock).
    pub add_time: u64,
    /// When the SA was first used (0: never).
    pub use_time: u64,
}

/// Error counters of an SA (`struct xfrm_stats`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct SaStats {
    /// Packets dropped as outside the replay window.
    pub replay_window: u32,
    /// Packets dropped as replays.
    pub replay: u32,
    /// Packets that failed the integrity check.
    pub integrity_failed: u32,
}

/// Everything needed to install an SA.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SaSpec {
    /// Destination, SPI, protocol.
    pub id: SaId,
    /// Source address.
    pub src: IpAddr,
    /// Transport or tunnel mode.
    pub mode: Mode,
    /// Links the SA to the policies' templates; also marks it as baton's
    /// (see [`OwnedRange`]).
    pub reqid: u32,
    /// Transforms and keys.
    pub crypto: Crypto,
    /// UDP encapsulation for NAT-T, if any.
    pub encap: Option<UdpEncap>,
    /// Extended sequence numbers (RFC 4303 §2.2.1).
    pub esn: bool,
    /// Replay window in packets (0 disables replay checks on inbound SAs;
    /// ESN needs at least 1; at most 4096).
    pub replay_window: u32,
    /// Lifetimes.
    pub lifetime: Lifetime,
    /// Optional selector the SA is bound to (the kernel checks inbound
    /// tunnel-mode packets against it).
    pub selector: Option<Selector>,
    /// Initial replay state, e.g. when a cluster node takes an SA over.
    pub replay_state: Option<ReplayState>,
    /// Asynchronous replay event thresholds (replay checkpoints).
    pub replay_events: Option<ReplayEventThresholds>,
}

impl SaSpec {
    /// Largest replay window the kernel accepts (XFRMA_REPLAY_ESN_MAX bits).
    pub const MAX_REPLAY_WINDOW: u32 = 4096;

    /// A spec with the usual defaults: no encapsulation, no ESN, a 32-packet
    /// replay window, unlimited lifetime, no selector, fresh replay state.
    pub fn new(id: SaId, src: IpAddr, mode: Mode, reqid: u32, crypto: Crypto) -> Self {
        Self {
            id,
            src,
            mode,
            reqid,
            crypto,
            encap: None,
            esn: false,
            replay_window: 32,
            lifetime: Lifetime::default(),
            selector: None,
            replay_state: None,
            replay_events: None,
        }
    }

    /// Checks the spec before anything is sent to the kernel.
    pub fn validate(&self) -> Result<()> {
        if self.id.spi.0 < SpiRange::FIRST_USABLE {
            return Err(Error::invalid(format!(
                "SA {}: SPI below 0x100 is reserved",
                self.id
            )));
        }
        if self.src.is_ipv4() != self.id.dst.is_ipv4() {
            return Err(Error::invalid(format!(
                "SA {}: source {} and destination differ in address family",
                self.id, self.src
            )));
        }
        self.crypto
            .validate()
            .map_err(|e| e.context(format!("SA {}", self.id)))?;
        if self.replay_window > Self::MAX_REPLAY_WINDOW {
            return Err(Error::invalid(format!(
                "SA {}: replay window {} exceeds the kernel's {}",
                self.id,
                self.replay_window,
                Self::MAX_REPLAY_WINDOW
            )));
        }
        if self.esn && self.replay_window == 0 {
            return Err(Error::invalid(format!(
                "SA {}: ESN needs a replay window of at least 1 (the kernel refuses 0)",
                self.id
            )));
        }
        if let Some(state) = &self.replay_state {
            if !self.esn && (state.oseq > u64::from(u32::MAX) || state.seq > u64::from(u32::MAX)) {
                return Err(Error::invalid(format!(
                    "SA {}: replay state has 64-bit sequence numbers but ESN is off",
                    self.id
                )));
            }
            if state.bitmap.len() > crate::replay::window_words(self.replay_window) {
                return Err(Error::invalid(format!(
                    "SA {}: replay bitmap of {} words is larger than the {}-packet window",
                    self.id,
                    state.bitmap.len(),
                    self.replay_window
                )));
            }
        }
        if let Some(sel) = &self.selector
            && sel.src.addr().is_ipv4() != sel.dst.addr().is_ipv4()
        {
            return Err(Error::invalid(format!(
                "SA {}: selector mixes families",
                self.id
            )));
        }
        Ok(())
    }
}

/// An SA as read back from the data plane.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SaInfo {
    /// The SA (keys included, redacted in `Debug`).
    pub spec: SaSpec,
    /// Current counters.
    pub counters: SaCounters,
    /// Error statistics.
    pub stats: SaStats,
}

/// Policy direction (RFC 4301 §4.4.1: the SPD is consulted per direction;
/// Linux adds `Fwd` for forwarded traffic).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Direction {
    /// Traffic delivered to this host.
    In,
    /// Traffic sent by this host.
    Out,
    /// Traffic forwarded by this host.
    Fwd,
}

/// What a policy does with matching traffic.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PolicyAction {
    /// Apply the templates (PROTECT) or pass in the clear if there are none (BYPASS).
    Allow,
    /// Drop (DISCARD). Non-owner cluster nodes hold these for replicated Child SAs.
    Block,
}

/// One IPsec transform a policy requires (`struct xfrm_user_tmpl`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Template {
    /// Protocol.
    pub proto: Protocol,
    /// Mode.
    pub mode: Mode,
    /// Links the template to the SA with the same reqid.
    pub reqid: u32,
    /// Tunnel endpoints (source, destination), required in tunnel mode.
    pub tunnel: Option<(IpAddr, IpAddr)>,
}

/// Identifies a policy: its selector and direction.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PolicyId {
    /// Selector.
    pub selector: Selector,
    /// Direction.
    pub dir: Direction,
}

/// A security policy.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct PolicySpec {
    /// Selector.
    pub selector: Selector,
    /// Direction.
    pub dir: Direction,
    /// Priority: lower values win.
    pub priority: u32,
    /// Allow or block.
    pub action: PolicyAction,
    /// Required transforms (empty for bypass and most block policies).
    pub templates: Vec<Template>,
}

impl PolicySpec {
    /// The policy's identifier.
    pub fn id(&self) -> PolicyId {
        PolicyId {
            selector: self.selector,
            dir: self.dir,
        }
    }

    /// The reqid of the first template, if any.
    pub fn reqid(&self) -> Option<u32> {
        self.templates.first().map(|t| t.reqid)
    }

    /// Checks the spec before anything is sent to the kernel.
    pub fn validate(&self) -> Result<()> {
        for t in &self.templates {
            match (t.mode, t.tunnel) {
                (Mode::Tunnel, None) => {
                    return Err(Error::invalid(format!(
                        "policy {} {:?}: tunnel-mode template without tunnel endpoints",
                        self.selector, self.dir
                    )));
                }
                (Mode::Tunnel, Some((s, d))) if s.is_ipv4() != d.is_ipv4() => {
                    return Err(Error::invalid(format!(
                        "policy {} {:?}: tunnel endpoints {s} and {d} differ in family",
                        self.selector, self.dir
                    )));
                }
                _ => {}
            }
        }
        Ok(())
    }
}

/// The reqids that mark baton's own kernel objects; `flush_own` removes
/// SAs and policies (by their templates) whose reqid lies in this range.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct OwnedRange {
    /// Lowest reqid (inclusive).
    pub min: u32,
    /// Highest reqid (inclusive).
    pub max: u32,
}

impl OwnedRange {
    /// Whether `reqid` is baton's.
    pub fn contains(&self, reqid: u32) -> bool {
        (self.min..=self.max).contains(&reqid)
    }
}

impl Default for OwnedRange {
    /// 0x4241_0000..=0x4241_ffff ("BA").
    fn default() -> Self {
        Self {
            min: 0x4241_0000,
            max: 0x4241_ffff,
        }
    }
}

/// What caused a replay event (the kernel's XFRM_AE_C* flags).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ReplayEventCause {
    /// A sequence number moved past the packet threshold (XFRM_AE_CR).
    Threshold,
    /// The event timer fired with changes pending (XFRM_AE_CE).
    Timer,
    /// Someone set the state with XFRM_MSG_NEWAE (XFRM_AE_CU).
    Update,
    /// Any other flag combination.
    Other(u32),
}

/// Events the data plane reports (kernel: XFRMNLGRP_EXPIRE and XFRMNLGRP_AEVENTS).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DataplaneEvent {
    /// A soft lifetime was reached: time to rekey (RFC 7296 §2.8).
    SoftExpire {
        /// The SA.
        sa: SaId,
        /// Its reqid.
        reqid: u32,
    },
    /// A hard lifetime was reached: the SA is gone.
    HardExpire {
        /// The SA.
        sa: SaId,
        /// Its reqid.
        reqid: u32,
    },
    /// A replay checkpoint.
    Replay {
        /// The SA.
        sa: SaId,
        /// Its reqid.
        reqid: u32,
        /// Replay state at the time of the event.
        state: ReplayState,
        /// Counters at the time of the event.
        counters: SaCounters,
        /// Why the kernel sent it.
        cause: ReplayEventCause,
    },
    /// The event socket overran (ENOBUFS): some events were lost. Read the
    /// replay state of the SAs that matter with `get_replay_state`.
    EventsLost,
}

impl DataplaneEvent {
    /// The SA the event is about (`None` for `EventsLost`).
    pub fn sa(&self) -> Option<&SaId> {
        match self {
            Self::SoftExpire { sa, .. } | Self::HardExpire { sa, .. } | Self::Replay { sa, .. } => {
                Some(sa)
            }
            Self::EventsLost => None,
        }
    }

    /// The reqid of the SA (`None` for `EventsLost`).
    pub fn reqid(&self) -> Option<u32> {
        match self {
            Self::SoftExpire { reqid, .. }
            | Self::HardExpire { reqid, .. }
            | Self::Replay { reqid, .. } => Some(*reqid),
            Self::EventsLost => None,
        }
    }
}

/// What `flush_own` removed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FlushReport {
    /// SAs deleted.
    pub sas: usize,
    /// Policies deleted.
    pub policies: usize,
}
