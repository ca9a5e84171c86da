//! The TOML configuration (DESIGN §5), parsed, validated and turned into the protocol
//! core's configuration types ([`ike::config`]).
//!
//! Every error names the file, the line and column, the key and what is wrong; PSKs
//! never appear in errors or in `Debug` output.

pub mod certs;
mod error;
pub mod policy;
mod raw;
pub mod values;

use std::collections::{BTreeMap, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use ike::config::{
    ConnectionConfig, IdentityPattern, IpsecMode, LocalAuth, PoolConfig, PskEntry, RemoteAuth,
    TsConfig,
};
use ike::crypto::SecretBytes;
use toml::Spanned;
use zeroize::Zeroizing;

pub use certs::RsaSigner;
pub use error::ConfigError;
use error::SourceMap;
use raw::{RawCluster, RawConnection, RawFile, RawGateway, RawSecret};

/// Default IKE proposals when a connection lists none.
pub const DEFAULT_IKE_PROPOSALS: &[&str] = &[
    "aes128gcm16-prfsha256-x25519",
    "aes256gcm16-prfsha384-ecp384",
    "aes256-sha256-modp2048",
];
/// Default ESP proposals when a connection lists none.
pub const DEFAULT_ESP_PROPOSALS: &[&str] = &["aes128gcm16", "aes256gcm16", "chacha20poly1305"];
/// Default control socket.
pub const DEFAULT_CONTROL_SOCKET: &str = "/run/baton/ikectl.sock";

/// Which data plane executes Child SA installs.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum DataplaneKind {
    /// The kernel's XFRM (needs CAP_NET_ADMIN).
    Xfrm,
    /// An in-memory table: no kernel state (tests, IKE-only deployments).
    Memory,
}

/// `[gateway]`, validated.
#[derive(Clone, Debug)]
pub struct GatewaySettings {
    /// Addresses to bind.
    pub listen: Vec<IpAddr>,
    /// IKE port (500).
    pub ike_port: u16,
    /// NAT-T port (4500).
    pub natt_port: u16,
    /// Control socket path.
    pub control_socket: PathBuf,
    /// Prometheus endpoint.
    pub metrics: Option<SocketAddr>,
    /// Data plane.
    pub dataplane: DataplaneKind,
    /// Key log file (Wireshark `ikev2_decryption_table`).
    pub keylog: Option<PathBuf>,
    /// Half-open SAs above which COOKIEs are demanded (RFC 7296 §2.6).
    pub cookie_threshold: usize,
    /// Hard cap on half-open SAs.
    pub half_open_limit: usize,
    /// How long a half-open SA may wait for IKE_AUTH.
    pub half_open_timeout: Duration,
    /// Default log filter when `RUST_LOG` is unset.
    pub log_level: Option<String>,
    /// Largest IKE datagram before fragmenting (RFC 7383), for connections that do not say.
    pub fragment_size: usize,
}

/// How cluster replication waits for peers.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum SyncMode {
    /// Answer the peer only after the other nodes acknowledged the new state.
    Ack,
    /// Answer at once; replicate in the background.
    Async,
}

/// `[cluster]`, validated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClusterSettings {
    /// This node's name.
    pub node: String,
    /// Replication listen address.
    pub listen: SocketAddr,
    /// Other nodes.
    pub peers: BTreeMap<String, SocketAddr>,
    /// The cluster's shared key file.
    pub key_file: PathBuf,
    /// Virtual IPs the owner answers on.
    pub vip: Vec<IpAddr>,
    /// Sync mode.
    pub sync: SyncMode,
    /// Heartbeat interval.
    pub heartbeat_interval: Duration,
    /// Missed heartbeats before a node is declared dead.
    pub heartbeat_multiplier: u32,
    /// RFC 6311 syncs per second after a takeover; `None`: lazily, on the first
    /// datagram of each SA taken over (RFC 6311 §7).
    pub sync_rate: Option<u32>,
    /// SAs per second moved by drain and rebalancing.
    pub transfer_rate: u32,
}

/// A whole configuration file, validated.
#[derive(Clone, Debug)]
pub struct GatewayConfig {
    /// The file it came from.
    pub path: PathBuf,
    /// `[gateway]`.
    pub gateway: GatewaySettings,
    /// `[[connection]]`s, in file order.
    pub connections: Vec<Arc<ConnectionConfig>>,
    /// `[[secret]]`s.
    pub secrets: Vec<PskEntry>,
    /// `[pool.*]`.
    pub pools: Vec<PoolConfig>,
    /// `[cluster]`.
    pub cluster: Option<ClusterSettings>,
}

impl GatewayConfig {
    /// Reads and validates `path`.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = Zeroizing::new(std::fs::read_to_string(path).map_err(|e| ConfigError {
            file: path.to_path_buf(),
            line: None,
            column: None,
            key: None,
            message: format!("cannot read the configuration file: {e}"),
        })?);
        Self::parse(path, &text)
    }

    /// Validates `text` as if read from `path` (relative paths inside are resolved
    /// against `path`'s directory).
    pub fn parse(path: &Path, text: &str) -> Result<Self, ConfigError> {
        let map = SourceMap { file: path, text };
        let raw: RawFile = toml::from_str(text).map_err(|e| map.toml_error(&e))?;
        let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
        Builder { map: &map, base }.build(raw)
    }
}

struct Builder<'a> {
    map: &'a SourceMap<'a>,
    base: PathBuf,
}

type R<T> = Result<T, ConfigError>;

impl Builder<'_> {
    fn err(&self, span: Range<usize>, key: &str, msg: impl Into<String>) -> ConfigError {
        self.map.error(span, key, msg)
    }

    /// Parses a spanned string with `f`, mapping its error to this key and span.
    fn val<T>(
        &self,
        s: &Spanned<String>,
        key: &str,
        f: impl FnOnce(&str) -> Result<T, String>,
    ) -> R<T> {
        f(s.get_ref()).map_err(|m| self.err(s.span(), key, m))
    }

    fn duration(&self, s: &Option<Spanned<String>>, key: &str) -> R<Option<Duration>> {
        let Some(s) = s else { return Ok(None) };
        let d = self.val(s, key, values::parse_duration)?;
        if d.is_zero() {
            return Err(self.err(s.span(), key, "must be greater than zero"));
        }
        Ok(Some(d))
    }

    fn path(&self, s: &str) -> PathBuf {
        let p = Path::new(s);
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            self.base.join(p)
        }
    }

    fn build(&self, raw: RawFile) -> R<GatewayConfig> {
        let gateway = self.gateway(raw.gateway.get_ref())?;
        let mut pools = Vec::new();
        for (name, p) in &raw.pool {
            let key = format!("pool.{name}.addrs");
            let mut dns = Vec::new();
            for d in &p.get_ref().dns {
                let dkey = format!("pool.{name}.dns");
                dns.push(self.val(d, &dkey, |s| {
                    s.parse::<IpAddr>()
                        .map_err(|_| format!("\"{s}\" is not an IP address"))
                })?);
            }
            let addrs = &p.get_ref().addrs;
            pools.push(self.val(addrs, &key, |s| values::parse_pool(name, s, dns))?);
        }
        let secrets = raw
            .secret
            .iter()
            .map(|s| self.secret(s.get_ref()))
            .collect::<R<Vec<_>>>()?;
        let mut names = HashSet::new();
        let mut connections = Vec::new();
        for c in &raw.connection {
            let c = c.get_ref();
            if !names.insert(c.name.get_ref().clone()) {
                return Err(self.err(
                    c.name.span(),
                    "connection.name",
                    format!("duplicate connection name \"{}\"", c.name.get_ref()),
                ));
            }
            connections.push(Arc::new(self.connection(c, &gateway, &pools, &secrets)?));
        }
        let cluster = raw
            .cluster
            .as_ref()
            .map(|c| self.cluster(c.get_ref()))
            .transpose()?;
        if let (Some(c), Some(raw_c)) = (&cluster, &raw.cluster) {
            // Every node answers IKE on the shared VIP, so it must be bound.
            let wildcard = gateway.listen.iter().any(IpAddr::is_unspecified);
            for (v, span) in c
                .vip
                .iter()
                .zip(raw_c.get_ref().vip.iter().map(Spanned::span))
            {
                if !wildcard && !gateway.listen.contains(v) {
                    return Err(self.err(
                        span,
                        "cluster.vip",
                        format!(
                            "{v} is not in gateway.listen: every node must bind the shared VIP"
                        ),
                    ));
                }
            }
        }
        Ok(GatewayConfig {
            path: self.map.file.to_path_buf(),
            gateway,
            connections,
            secrets,
            pools,
            cluster,
        })
    }

    fn gateway(&self, g: &RawGateway) -> R<GatewaySettings> {
        if g.listen.get_ref().is_empty() {
            return Err(self.err(
                g.listen.span(),
                "gateway.listen",
                "needs at least one address",
            ));
        }
        let listen = g
            .listen
            .get_ref()
            .iter()
            .map(|a| {
                self.val(a, "gateway.listen", |s| {
                    s.parse::<IpAddr>()
                        .map_err(|_| format!("\"{s}\" is not an IP address"))
                })
            })
            .collect::<R<Vec<_>>>()?;
        let port = |p: &Option<Spanned<u16>>, key: &str, default: u16| -> R<u16> {
            match p {
                None => Ok(default),
                Some(p) if *p.get_ref() == 0 => Err(self.err(p.span(), key, "port must not be 0")),
                Some(p) => Ok(*p.get_ref()),
            }
        };
        let ike_port = port(&g.ike_port, "gateway.ike_port", 500)?;
        let natt_port = port(&g.natt_port, "gateway.natt_port", 4500)?;
        if ike_port == natt_port {
            let span = g.natt_port.as_ref().map_or(g.listen.span(), Spanned::span);
            return Err(self.err(span, "gateway.natt_port", "must differ from ike_port"));
        }
        let control_socket = g.control_socket.as_ref().map_or_else(
            || PathBuf::from(DEFAULT_CONTROL_SOCKET),
            |s| self.path(s.get_ref()),
        );
        let metrics = g
            .metrics
            .as_ref()
            .map(|m| {
                self.val(m, "gateway.metrics", |s| {
                    s.parse::<SocketAddr>()
                        .map_err(|_| format!("\"{s}\" is not ADDRESS:PORT (e.g. 127.0.0.1:9753)"))
                })
            })
            .transpose()?;
        let dataplane = match &g.dataplane {
            None => DataplaneKind::Xfrm,
            Some(d) => match d.get_ref().as_str() {
                "xfrm" => DataplaneKind::Xfrm,
                "memory" => DataplaneKind::Memory,
                other => {
                    return Err(self.err(
                        d.span(),
                        "gateway.dataplane",
                        format!("unknown data plane \"{other}\" (expected \"xfrm\" or \"memory\")"),
                    ));
                }
            },
        };
        let count = |v: &Option<Spanned<u64>>, key: &str, default: usize| -> R<usize> {
            match v {
                None => Ok(default),
                Some(n) => usize::try_from(*n.get_ref())
                    .ok()
                    .filter(|n| *n > 0)
                    .ok_or_else(|| self.err(n.span(), key, "must be a positive number")),
            }
        };
        let cookie_threshold = count(&g.cookie_threshold, "gateway.cookie_threshold", 1_000)?;
        let half_open_limit = count(&g.half_open_limit, "gateway.half_open_limit", 20_000)?;
        if let (Some(h), true) = (&g.half_open_limit, half_open_limit < cookie_threshold) {
            return Err(self.err(
                h.span(),
                "gateway.half_open_limit",
                "must be at least cookie_threshold",
            ));
        }
        let half_open_timeout = self
            .duration(&g.half_open_timeout, "gateway.half_open_timeout")?
            .unwrap_or(Duration::from_secs(30));
        let fragment_size = self.fragment_size(&g.fragment_size, "gateway.fragment_size")?;
        let log_level = g.log_level.as_ref().map(|l| {
            self.val(l, "gateway.log_level", |s| {
                tracing_subscriber::EnvFilter::try_new(s)
                    .map(|_| s.to_owned())
                    .map_err(|e| format!("invalid log filter \"{s}\": {e}"))
            })
        });
        Ok(GatewaySettings {
            listen,
            ike_port,
            natt_port,
            control_socket,
            metrics,
            dataplane,
            keylog: g.keylog.as_ref().map(|k| self.path(k.get_ref())),
            cookie_threshold,
            half_open_limit,
            half_open_timeout,
            log_level: log_level.transpose()?,
            fragment_size: fragment_size.unwrap_or(ike::DEFAULT_FRAGMENT_SIZE),
        })
    }

    fn fragment_size(&self, v: &Option<Spanned<u64>>, key: &str) -> R<Option<usize>> {
        let Some(v) = v else { return Ok(None) };
        // RFC 7383 §2.5.1: at least 576 (IPv4) and at most what a UDP datagram holds.
        match usize::try_from(*v.get_ref()) {
            Ok(n) if (576..=65_507).contains(&n) => Ok(Some(n)),
            _ => Err(self.err(v.span(), key, "must be between 576 and 65507 octets")),
        }
    }

    fn secret(&self, s: &RawSecret) -> R<PskEntry> {
        if s.ids.get_ref().is_empty() {
            return Err(self.err(s.ids.span(), "secret.ids", "needs at least one identity"));
        }
        let ids = s
            .ids
            .get_ref()
            .iter()
            .map(|i| self.val(i, "secret.ids", policy::parse_identity))
            .collect::<R<Vec<_>>>()?;
        let text: &str = &s.psk.get_ref().0;
        let psk = match text.strip_prefix("0x") {
            Some(h) => SecretBytes::new(hex::decode(h).map_err(|_| {
                self.err(
                    s.psk.span(),
                    "secret.psk",
                    "0x... must be followed by hex digits",
                )
            })?),
            None => SecretBytes::from_slice(text.as_bytes()),
        };
        if psk.is_empty() {
            return Err(self.err(s.psk.span(), "secret.psk", "must not be empty"));
        }
        Ok(PskEntry { ids, psk })
    }

    fn list<T>(
        &self,
        v: &Option<Spanned<Vec<Spanned<String>>>>,
        key: &str,
        default: &[&str],
        f: impl Fn(&str) -> Result<T, String>,
    ) -> R<Vec<T>> {
        match v {
            None => default
                .iter()
                .map(|s| f(s).map_err(|m| self.err(0..0, key, m)))
                .collect(),
            Some(v) if v.get_ref().is_empty() => Err(self.err(v.span(), key, "must not be empty")),
            Some(v) => v.get_ref().iter().map(|s| self.val(s, key, &f)).collect(),
        }
    }

    fn connection(
        &self,
        c: &RawConnection,
        g: &GatewaySettings,
        pools: &[PoolConfig],
        secrets: &[PskEntry],
    ) -> R<ConnectionConfig> {
        let name = c.name.get_ref().clone();
        if name.is_empty() {
            return Err(self.err(c.name.span(), "connection.name", "must not be empty"));
        }
        let ike_proposals = self.list(
            &c.proposals,
            "connection.proposals",
            DEFAULT_IKE_PROPOSALS,
            policy::parse_ike_proposal,
        )?;
        let esp_proposals = self.list(
            &c.esp_proposals,
            "connection.esp_proposals",
            DEFAULT_ESP_PROPOSALS,
            policy::parse_esp_proposal,
        )?;
        let local_id = self.val(&c.local_id, "connection.local_id", policy::parse_identity)?;
        let remote_id = match &c.remote_id {
            None => IdentityPattern::Any,
            Some(r) => self.val(r, "connection.remote_id", policy::parse_identity_pattern)?,
        };
        let local_auth = self.auth_kind(&c.local_auth, "connection.local_auth")?;
        let remote_auth = self.auth_kind(&c.remote_auth, "connection.remote_auth")?;
        let local_auth = if local_auth {
            let cert = c.local_cert.as_ref().ok_or_else(|| {
                self.err(
                    c.name.span(),
                    "connection.local_cert",
                    "local_auth = \"pubkey\" needs local_cert (a PEM file)",
                )
            })?;
            let key = c.local_key.as_ref().ok_or_else(|| {
                self.err(
                    c.name.span(),
                    "connection.local_key",
                    "local_auth = \"pubkey\" needs local_key (a PEM file)",
                )
            })?;
            let cert_chain = self.val(cert, "connection.local_cert", |s| {
                certs::load_certificates(&self.path(s))
            })?;
            let signer = self.val(key, "connection.local_key", |s| {
                certs::load_rsa_key(&self.path(s))
            })?;
            LocalAuth::Pubkey {
                cert_chain,
                key: Arc::new(signer),
            }
        } else {
            for (v, key) in [
                (&c.local_cert, "connection.local_cert"),
                (&c.local_key, "connection.local_key"),
            ] {
                if let Some(v) = v {
                    return Err(self.err(v.span(), key, "only used with local_auth = \"pubkey\""));
                }
            }
            LocalAuth::Psk
        };
        let remote_auth = if remote_auth {
            let ca = c.remote_ca.as_ref().ok_or_else(|| {
                self.err(
                    c.name.span(),
                    "connection.remote_ca",
                    "remote_auth = \"pubkey\" needs remote_ca (PEM file)",
                )
            })?;
            let mut cas = Vec::new();
            if ca.get_ref().0.is_empty() {
                return Err(self.err(ca.span(), "connection.remote_ca", "must not be empty"));
            }
            for f in &ca.get_ref().0 {
                cas.extend(
                    certs::load_certificates(&self.path(f))
                        .map_err(|m| self.err(ca.span(), "connection.remote_ca", m))?,
                );
            }
            RemoteAuth::Pubkey { cas }
        } else {
            if let Some(v) = &c.remote_ca {
                return Err(self.err(
                    v.span(),
                    "connection.remote_ca",
                    "only used with remote_auth = \"pubkey\"",
                ));
            }
            RemoteAuth::Psk
        };
        if matches!(local_auth, LocalAuth::Psk) || matches!(remote_auth, RemoteAuth::Psk) {
            let has_psk = secrets.iter().any(|s| {
                s.ids.contains(&local_id)
                    || matches!(&remote_id, IdentityPattern::Exact(r) if s.ids.contains(r))
            });
            if !has_psk {
                let span = c
                    .local_auth
                    .as_ref()
                    .map_or(c.local_id.span(), Spanned::span);
                return Err(self.err(
                    span,
                    "connection.local_auth",
                    format!(
                        "connection \"{name}\" authenticates with a PSK but no [[secret]] lists \"{}\"",
                        c.local_id.get_ref()
                    ),
                ));
            }
        }
        let local_ts = self.list(
            &c.local_ts,
            "connection.local_ts",
            &["dynamic"],
            values::parse_ts,
        )?;
        let remote_ts = self.list(
            &c.remote_ts,
            "connection.remote_ts",
            &["dynamic"],
            values::parse_ts,
        )?;
        let pool = match &c.pool {
            None => None,
            Some(p) => {
                if !pools.iter().any(|q| &q.name == p.get_ref()) {
                    let defined: Vec<&str> = pools.iter().map(|q| q.name.as_str()).collect();
                    return Err(self.err(
                        p.span(),
                        "connection.pool",
                        format!(
                            "connection \"{name}\" uses pool \"{}\", which is not defined (defined: {})",
                            p.get_ref(),
                            if defined.is_empty() { "none".to_owned() } else { defined.join(", ") }
                        ),
                    ));
                }
                if !remote_ts.contains(&TsConfig::Dynamic) {
                    return Err(self.err(
                        p.span(),
                        "connection.pool",
                        "a pool needs remote_ts = [\"dynamic\"] so the virtual IP becomes the selector",
                    ));
                }
                Some(p.get_ref().clone())
            }
        };
        let mode = match &c.mode {
            None => IpsecMode::Tunnel,
            Some(m) => match m.get_ref().as_str() {
                "tunnel" => IpsecMode::Tunnel,
                "transport" => IpsecMode::Transport,
                other => {
                    return Err(self.err(
                        m.span(),
                        "connection.mode",
                        format!("unknown mode \"{other}\" (expected \"tunnel\" or \"transport\")"),
                    ));
                }
            },
        };
        let fragment_size = self.fragment_size(&c.fragment_size, "connection.fragment_size")?;
        Ok(ConnectionConfig {
            name,
            ike_proposals,
            esp_proposals,
            local_id,
            local_auth,
            remote_id,
            remote_auth,
            local_ts,
            remote_ts,
            pool,
            mode,
            rekey_time: self.duration(&c.rekey_time, "connection.rekey_time")?,
            child_rekey_time: self.duration(&c.child_rekey_time, "connection.child_rekey_time")?,
            child_life_time: self.duration(&c.child_life_time, "connection.child_life_time")?,
            life_time: self.duration(&c.life_time, "connection.life_time")?,
            dpd_delay: self.duration(&c.dpd_delay, "connection.dpd_delay")?,
            fragmentation: c.fragmentation.as_ref().is_none_or(|f| *f.get_ref()),
            fragment_size: fragment_size.unwrap_or(g.fragment_size),
        })
    }

    /// `"psk"` → false, `"pubkey"` → true.
    fn auth_kind(&self, v: &Option<Spanned<String>>, key: &str) -> R<bool> {
        match v.as_ref().map(|s| (s, s.get_ref().as_str())) {
            None | Some((_, "psk")) => Ok(false),
            Some((_, "pubkey")) => Ok(true),
            Some((s, other)) => Err(self.err(
                s.span(),
                key,
                format!("unknown authentication \"{other}\" (expected \"psk\" or \"pubkey\")"),
            )),
        }
    }

    fn cluster(&self, c: &RawCluster) -> R<ClusterSettings> {
        let addr = |s: &Spanned<String>, key: &str| {
            self.val(s, key, |s| {
                s.parse::<SocketAddr>()
                    .map_err(|_| format!("\"{s}\" is not ADDRESS:PORT"))
            })
        };
        if c.node.get_ref().is_empty() {
            return Err(self.err(c.node.span(), "cluster.node", "must not be empty"));
        }
        let mut peers = BTreeMap::new();
        for (name, a) in &c.peers {
            if name == c.node.get_ref() {
                return Err(self.err(
                    a.span(),
                    "cluster.peers",
                    format!("\"{name}\" is this node itself"),
                ));
            }
            peers.insert(name.clone(), addr(a, "cluster.peers")?);
        }
        let vip = c
            .vip
            .iter()
            .map(|v| {
                self.val(v, "cluster.vip", |s| {
                    s.parse::<IpAddr>()
                        .map_err(|_| format!("\"{s}\" is not an IP address"))
                })
            })
            .collect::<R<Vec<_>>>()?;
        let sync = match c.sync.as_ref().map(|s| (s, s.get_ref().as_str())) {
            None | Some((_, "ack")) => SyncMode::Ack,
            Some((_, "async")) => SyncMode::Async,
            Some((s, other)) => {
                return Err(self.err(
                    s.span(),
                    "cluster.sync",
                    format!("unknown sync mode \"{other}\" (expected \"ack\" or \"async\")"),
                ));
            }
        };
        let heartbeat_multiplier = match &c.heartbeat_multiplier {
            None => 3,
            Some(m) => u32::try_from(*m.get_ref())
                .ok()
                .filter(|m| (1..=255).contains(m))
                .ok_or_else(|| {
                    self.err(m.span(), "cluster.heartbeat_multiplier", "must be 1..=255")
                })?,
        };
        let rate = |v: &Option<Spanned<u64>>, key: &str, default: u32, zero_ok: bool| match v {
            None => Ok(default),
            Some(r) => u32::try_from(*r.get_ref())
                .ok()
                .filter(|n| (zero_ok || *n > 0) && *n <= 1_000_000)
                .ok_or_else(|| {
                    self.err(
                        r.span(),
                        key,
                        if zero_ok {
                            "must be 0..=1000000 (0: lazily)"
                        } else {
                            "must be 1..=1000000"
                        },
                    )
                }),
        };
        let sync_rate = rate(&c.sync_rate, "cluster.sync_rate", 2_000, true)?;
        let transfer_rate = rate(&c.transfer_rate, "cluster.transfer_rate", 1_000, false)?;
        Ok(ClusterSettings {
            sync_rate: (sync_rate > 0).then_some(sync_rate),
            transfer_rate,
            node: c.node.get_ref().clone(),
            listen: addr(&c.listen, "cluster.listen")?,
            peers,
            key_file: self.path(c.key_file.get_ref()),
            vip,
            sync,
            heartbeat_interval: self
                .duration(&c.heartbeat_interval, "cluster.heartbeat_interval")?
                .unwrap_or(Duration::from_millis(100)),
            heartbeat_multiplier,
        })
    }
}
