//! strongSwan charon instances inside namespaces, each with its own strongswan.conf,
//! vici socket, log and `/run` (a private mount namespace with a tmpfs on `/run`, so
//! pid files of several charons do not clash), driven with `swanctl` and read back over
//! vici.
//!
//! On a host kernel without ESP, charon uses the kernel-libipsec plugin (userspace ESP
//! through a TUN device, Debian package libcharon-extra-plugins) so Child SAs install.
//! libipsec only does UDP-encapsulated ESP, so charon then fakes NAT detection and
//! always moves to port 4500: a responder under test must handle that (RFC 7296 §2.23).

use std::fmt::Write as _;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::time::Duration;

use crate::Error;
use crate::netns::{Netns, run, signal};
use crate::process::{Daemon, WorkDir, tail, wait_for};
use crate::vici::{self, IkeSaInfo};

/// Debian's charon binary.
pub const CHARON: &str = "/usr/lib/ipsec/charon";

/// Which kernel interface charon uses for Child SAs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KernelInterface {
    /// Userspace ESP (kernel-libipsec): works on a kernel without ESP (the host).
    Libipsec,
    /// XFRM (kernel-netlink): needs a kernel with ESP (interop's real-kernel VM).
    Netlink,
}

impl KernelInterface {
    /// `Netlink` if the environment variable `BATON_INTEROP_KERNEL` is `netlink`
    /// (inside interop/vm/run-in-vm, where the kernel has ESP), `Libipsec` otherwise.
    pub fn from_env() -> Self {
        match std::env::var("BATON_INTEROP_KERNEL").as_deref() {
            Ok("netlink") => Self::Netlink,
            _ => Self::Libipsec,
        }
    }
}

/// The plugins charon loads (Debian bookworm 5.9.8 needs `kdf` for the PRF+).
const PLUGINS: &str = "random nonce openssl chapoly kdf x509 pubkey pem pkcs1 pkcs8 curve25519 revocation constraints";

/// A running charon with its own vici socket inside a namespace. Stopped on drop; when
/// a test fails, the tail of its log is printed and its directory kept.
#[derive(Debug)]
pub struct Charon {
    label: String,
    daemon: Daemon,
    // Declared after `daemon`: the process stops before its directory is removed.
    dir: WorkDir,
}

impl Charon {
    /// Starts charon in `ns` with default settings and the kernel interface
    /// [`KernelInterface::from_env`] picks (kernel-libipsec unless
    /// `BATON_INTEROP_KERNEL=netlink`, for runs inside the real-kernel VM).
    pub fn start(ns: &Netns, label: &str) -> Result<Self, Error> {
        Self::start_with(ns, label, KernelInterface::from_env(), "")
    }

    /// Starts charon in `ns`; `extra` is inserted into the `charon { }` section of its
    /// strongswan.conf (e.g. `"fragment_size = 576"`).
    pub fn start_with(
        ns: &Netns,
        label: &str,
        kernel: KernelInterface,
        extra: &str,
    ) -> Result<Self, Error> {
        let dir = WorkDir::new(label)?;
        let d = dir.path().display().to_string();
        let kernel_plugins = match kernel {
            KernelInterface::Libipsec => "kernel-libipsec kernel-netlink",
            KernelInterface::Netlink => "kernel-netlink",
        };
        let conf = format!(
            "charon {{\n  load = {PLUGINS} {kernel_plugins} socket-default vici\n  install_routes = no\n  {extra}\n  plugins {{\n    vici {{ socket = unix://{d}/charon.vici }}\n  }}\n  filelog {{\n    main {{\n      path = {d}/charon.log\n      flush_line = yes\n      time_format = %T\n      default = 1\n      ike = 2\n      cfg = 2\n    }}\n  }}\n}}\n"
        );
        let conf_path = dir.write("strongswan.conf", &conf)?;
        let stdout = dir.path().join("charon.stdout");
        let out = std::fs::File::create(&stdout)
            .map_err(|e| Error::new(format!("create {}: {e}", stdout.display())))?;
        let err = out
            .try_clone()
            .map_err(|e| Error::new(format!("dup: {e}")))?;
        let script = format!(
            "mount -t tmpfs run /run && STRONGSWAN_CONF={} exec {CHARON}",
            conf_path.display()
        );
        let child = ns
            .command("unshare")
            .args(["-m", "sh", "-c", &script])
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .map_err(|e| Error::new(format!("spawn charon in {}: {e}", ns.name())))?;
        let daemon = Daemon::from_child(label, child, dir.path().join("charon.log"));
        let mut charon = Self {
            label: label.to_owned(),
            daemon,
            dir,
        };
        let socket = charon.vici_socket();
        let daemon = &mut charon.daemon;
        wait_for(Duration::from_secs(10), "charon's vici socket", || {
            daemon.check_running()?;
            Ok(vici::Vici::connect(&socket).ok().map(|_| ()))
        })?;
        Ok(charon)
    }

    /// The vici socket's path.
    pub fn vici_socket(&self) -> PathBuf {
        self.dir.path().join("charon.vici")
    }

    /// The instance's directory (configs, log).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The charon log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("charon.log")).unwrap_or_default()
    }

    /// Runs `swanctl args... --uri <this charon>`; a failure carries swanctl's output and
    /// the tail of charon's log.
    pub fn swanctl(&self, args: &[&str]) -> Result<Output, Error> {
        let uri = format!("unix://{}", self.vici_socket().display());
        let mut a = args.to_vec();
        a.extend(["--uri", uri.as_str()]);
        let out = crate::netns::command("swanctl")
            .args(&a)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| Error::new(format!("cannot run swanctl: {e}")))?;
        if out.status.success() {
            Ok(out)
        } else {
            Err(Error::new(format!(
                "`swanctl {}` on {} failed ({}):\n{}{}\n--- charon log tail ---\n{}",
                args.join(" "),
                self.label,
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr),
                tail(&self.dir.path().join("charon.log"), 30)
            )))
        }
    }

    /// Writes `swanctl_conf` as this instance's swanctl.conf and loads it
    /// (`swanctl --load-all`; credentials are read from directories beside it).
    pub fn load(&self, swanctl_conf: &str) -> Result<(), Error> {
        let path = self.dir.write("swanctl.conf", swanctl_conf)?;
        self.swanctl(&["--load-all", "--file", &path.to_string_lossy()])?;
        Ok(())
    }

    /// Loads `conn`: copies its certificate, key and CA (if it uses certificates) to
    /// x509/, private/ and x509ca/ beside swanctl.conf, then [`Self::load`]s it.
    pub fn load_connection(&self, conn: &PskConnection) -> Result<(), Error> {
        if let Some(pk) = &conn.pubkey {
            for (from, sub) in [
                (&pk.local_cert, "x509"),
                (&pk.local_key, "private"),
                (&pk.remote_ca, "x509ca"),
            ] {
                let d = self.dir.path().join(sub);
                std::fs::create_dir_all(&d)
                    .map_err(|e| Error::new(format!("mkdir {}: {e}", d.display())))?;
                let to = d.join(if sub == "x509ca" {
                    "ca.pem"
                } else {
                    "local.pem"
                });
                std::fs::copy(from, &to).map_err(|e| {
                    Error::new(format!("copy {} to {}: {e}", from.display(), to.display()))
                })?;
            }
        }
        self.load(&conn.to_swanctl_conf())
    }

    /// Initiates `child` of connection `ike` and waits (up to 30 s, enough for charon's
    /// retransmissions on a loaded machine) for the outcome.
    pub fn initiate(&self, ike: &str, child: &str) -> Result<(), Error> {
        self.swanctl(&[
            "--initiate",
            "--ike",
            ike,
            "--child",
            child,
            "--timeout",
            "30",
        ])?;
        Ok(())
    }

    /// Rekeys the Child SA(s) of child config `child` (CREATE_CHILD_SA with REKEY_SA).
    pub fn rekey_child(&self, child: &str) -> Result<(), Error> {
        self.swanctl(&["--rekey", "--child", child])?;
        Ok(())
    }

    /// Rekeys the IKE SA(s) of connection `ike` (CREATE_CHILD_SA with a new KE).
    pub fn rekey_ike(&self, ike: &str) -> Result<(), Error> {
        self.swanctl(&["--rekey", "--ike", ike])?;
        Ok(())
    }

    /// Deletes the IKE SA(s) of connection `ike` (INFORMATIONAL with Delete) and waits.
    pub fn terminate_ike(&self, ike: &str) -> Result<(), Error> {
        self.swanctl(&["--terminate", "--ike", ike, "--timeout", "30"])?;
        Ok(())
    }

    /// Deletes the Child SA(s) of child config `child` and waits.
    pub fn terminate_child(&self, child: &str) -> Result<(), Error> {
        self.swanctl(&["--terminate", "--child", child, "--timeout", "30"])?;
        Ok(())
    }

    /// All IKE SAs with their Child SAs, read over vici.
    pub fn list_sas(&self) -> Result<Vec<IkeSaInfo>, Error> {
        vici::list_sas(&self.vici_socket())
    }

    /// Polls [`Self::list_sas`] until `pred` holds (or `timeout`); returns the SAs seen.
    pub fn wait_for_sas(
        &self,
        timeout: Duration,
        what: &str,
        pred: impl Fn(&[IkeSaInfo]) -> bool,
    ) -> Result<Vec<IkeSaInfo>, Error> {
        let mut last = Vec::new();
        let r = wait_for(timeout, what, || {
            let sas = self.list_sas()?;
            if pred(&sas) {
                Ok(Some(sas))
            } else {
                last = sas;
                Ok(None)
            }
        });
        r.map_err(|e| Error::new(format!("{e} (on {}; last seen: {last:#?})", self.label)))
    }

    /// Stops charon (SIGTERM, then SIGKILL after 2 s).
    pub fn stop(&mut self) -> Result<(), Error> {
        self.daemon.stop(Duration::from_secs(2)).map(|_| ())
    }
}

/// A PSK connection as swanctl.conf text: one IKE connection with one child, the shape
/// of DESIGN §5's `[[connection]]` (strongSwan proposal syntax on both sides).
#[derive(Debug, Clone)]
pub struct PskConnection {
    /// Connection name (`swanctl --ike`).
    pub name: String,
    /// Child config name (`swanctl --child`).
    pub child: String,
    /// `local_addrs` (gateway) — `None` for any.
    pub local_addrs: Option<Ipv4Addr>,
    /// `remote_addrs` (client: the gateway to connect to) — `None` for any.
    pub remote_addrs: Option<Ipv4Addr>,
    /// IKE proposals (`aes128gcm16-prfsha256-x25519`).
    pub proposals: Vec<String>,
    /// ESP proposals (`aes128gcm16`).
    pub esp_proposals: Vec<String>,
    /// Our identity.
    pub local_id: String,
    /// The peer's identity.
    pub remote_id: String,
    /// The pre-shared key.
    pub psk: String,
    /// Our traffic selectors (empty: dynamic).
    pub local_ts: Vec<String>,
    /// The peer's traffic selectors (empty: dynamic).
    pub remote_ts: Vec<String>,
    /// Client: ask for a virtual IP (CP payload, `vips = 0.0.0.0`).
    pub request_vip: bool,
    /// Gateway: a pool `(name, cidr)` to hand out virtual IPs from.
    pub pool: Option<(String, String)>,
    /// IKE SA rekey time (`rekey_time`, e.g. `"4h"`); `None`: strongSwan's default.
    pub rekey_time: Option<String>,
    /// Child SA rekey time; `None`: default.
    pub child_rekey_time: Option<String>,
    /// Liveness check interval (`dpd_delay`); `None`: off.
    pub dpd_delay: Option<String>,
    /// Allow IKE fragmentation (RFC 7383).
    pub fragmentation: bool,
    /// Authenticate with certificates (RFC 7427 signatures) instead of the PSK.
    pub pubkey: Option<PubkeyAuth>,
}

/// Certificate authentication for a [`PskConnection`]: PEM files (see
/// [`crate::pki::TestPki`]).
#[derive(Debug, Clone)]
pub struct PubkeyAuth {
    /// Our end-entity certificate.
    pub local_cert: PathBuf,
    /// Its private key.
    pub local_key: PathBuf,
    /// The CA the peer's certificate must chain to.
    pub remote_ca: PathBuf,
}

/// The PSK of DESIGN §5's example.
pub const EXAMPLE_PSK: &str = "0123456789abcdef0123";

impl PskConnection {
    /// A remote-access client (`client.example`) connecting to `gateway`, asking for a
    /// virtual IP and for 10.1.0.0/24; connection `home`, child `net`.
    pub fn client(gateway: Ipv4Addr) -> Self {
        Self {
            name: "home".into(),
            child: "net".into(),
            local_addrs: None,
            remote_addrs: Some(gateway),
            proposals: vec!["aes128gcm16-prfsha256-x25519".into()],
            esp_proposals: vec!["aes128gcm16".into()],
            local_id: "client.example".into(),
            remote_id: "gw.example".into(),
            psk: EXAMPLE_PSK.into(),
            local_ts: vec![],
            remote_ts: vec!["10.1.0.0/24".into()],
            request_vip: true,
            pool: None,
            rekey_time: None,
            child_rekey_time: None,
            dpd_delay: None,
            fragmentation: true,
            pubkey: None,
        }
    }

    /// The matching gateway (`gw.example` on `addr`), protecting 10.1.0.0/24 and handing
    /// out 10.8.0.0/24; connection `rw`, child `net`.
    pub fn gateway(addr: Ipv4Addr) -> Self {
        Self {
            name: "rw".into(),
            local_addrs: Some(addr),
            remote_addrs: None,
            local_id: "gw.example".into(),
            remote_id: "client.example".into(),
            local_ts: vec!["10.1.0.0/24".into()],
            remote_ts: vec![],
            request_vip: false,
            pool: Some(("vpn".into(), "10.8.0.0/24".into())),
            ..Self::client(addr)
        }
    }

    /// The swanctl.conf text.
    pub fn to_swanctl_conf(&self) -> String {
        let mut c = String::new();
        let _ = writeln!(c, "connections {{\n  {} {{\n    version = 2", self.name);
        if let Some(a) = self.local_addrs {
            let _ = writeln!(c, "    local_addrs = {a}");
        }
        if let Some(a) = self.remote_addrs {
            let _ = writeln!(c, "    remote_addrs = {a}");
        }
        let _ = writeln!(c, "    proposals = {}", self.proposals.join(","));
        let _ = writeln!(
            c,
            "    fragmentation = {}",
            if self.fragmentation { "yes" } else { "no" }
        );
        if self.request_vip {
            let _ = writeln!(c, "    vips = 0.0.0.0");
        }
        if let Some((pool, _)) = &self.pool {
            let _ = writeln!(c, "    pools = {pool}");
        }
        if let Some(t) = &self.rekey_time {
            let _ = writeln!(c, "    rekey_time = {t}");
        }
        if let Some(t) = &self.dpd_delay {
            let _ = writeln!(c, "    dpd_delay = {t}");
        }
        if self.pubkey.is_some() {
            // File names inside x509/ and x509ca/ beside swanctl.conf, where
            // `Charon::load_connection` copies them.
            let _ = writeln!(
                c,
                "    local {{\n      auth = pubkey\n      id = {}\n      certs = local.pem\n    }}\n    remote {{\n      auth = pubkey\n      id = {}\n      cacerts = ca.pem\n    }}",
                self.local_id, self.remote_id
            );
        } else {
            let _ = writeln!(
                c,
                "    local {{\n      auth = psk\n      id = {}\n    }}\n    remote {{\n      auth = psk\n      id = {}\n    }}",
                self.local_id, self.remote_id
            );
        }
        let _ = writeln!(c, "    children {{\n      {} {{", self.child);
        if !self.local_ts.is_empty() {
            let _ = writeln!(c, "        local_ts = {}", self.local_ts.join(","));
        }
        if !self.remote_ts.is_empty() {
            let _ = writeln!(c, "        remote_ts = {}", self.remote_ts.join(","));
        }
        let _ = writeln!(
            c,
            "        esp_proposals = {}",
            self.esp_proposals.join(",")
        );
        if let Some(t) = &self.child_rekey_time {
            let _ = writeln!(c, "        rekey_time = {t}");
        }
        let _ = writeln!(c, "      }}\n    }}\n  }}\n}}");
        if self.pubkey.is_none() {
            let _ = writeln!(
                c,
                "secrets {{\n  ike-1 {{\n    id-1 = {}\n    id-2 = {}\n    secret = \"{}\"\n  }}\n}}",
                self.local_id, self.remote_id, self.psk
            );
        }
        if let Some((pool, cidr)) = &self.pool {
            let _ = writeln!(c, "pools {{\n  {pool} {{\n    addrs = {cidr}\n  }}\n}}");
        }
        c
    }
}

/// Deletes stale `baton-*` namespaces left by a killed test process (never those of a
/// live process: the name carries the creator's pid).
pub fn remove_stale_namespaces() {
    let Ok(out) = run("ip", &["netns", "list"]) else {
        return;
    };
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let Some(name) = line.split_whitespace().next() else {
            continue;
        };
        let Some(rest) = name.strip_prefix("baton-") else {
            continue;
        };
        // Only names this crate makes: baton-<pid>-<n>-<role>, pid and n numeric.
        let mut parts = rest.split('-');
        let (Some(pid), Some(n)) = (parts.next(), parts.next()) else {
            continue;
        };
        if pid.parse::<u32>().is_err() || n.parse::<u32>().is_err() {
            continue;
        }
        if !Path::new(&format!("/proc/{pid}")).exists() {
            if let Ok(pids) = run("ip", &["netns", "pids", name]) {
                for p in String::from_utf8_lossy(&pids.stdout).split_whitespace() {
                    if let Ok(p) = p.parse() {
                        let _ = signal(p, "KILL");
                    }
                }
            }
            let _ = run("ip", &["netns", "del", name]);
        }
    }
}
