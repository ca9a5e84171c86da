//! The responder under test, behind one interface whether it is strongSwan's charon
//! (the stand-in that validates the harness) or baton's `batond` (read back with
//! `ikectl --json list-sas`, DESIGN §5), so the same test body runs against both.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use serde_json::Value as Json;

use crate::Error;
use crate::netns::Netns;
use crate::process::{Daemon, WorkDir, wait_for};
use crate::strongswan::{Charon, PskConnection};
use crate::vici::{ChildSaInfo, IkeSaInfo, Section};

/// A responder whose SAs a test can read.
pub trait Responder {
    /// All IKE SAs with their Child SAs, in the form charon's vici gives them.
    fn list_sas(&self) -> Result<Vec<IkeSaInfo>, Error>;
    /// The responder's log so far (for failure messages).
    fn log(&self) -> String;
}

impl Responder for Charon {
    fn list_sas(&self) -> Result<Vec<IkeSaInfo>, Error> {
        Self::list_sas(self)
    }
    fn log(&self) -> String {
        Self::log(self)
    }
}

/// `batond --config <dir>/batond.toml` running in a namespace, with its `ikectl`.
#[derive(Debug)]
pub struct Batond {
    daemon: Daemon,
    ikectl: PathBuf,
    socket: PathBuf,
    // After `daemon`: the process stops before its directory goes.
    dir: WorkDir,
}

impl Batond {
    /// Writes `config_toml` (its `control_socket` must be [`Batond::socket_path`] of
    /// `dir`, as [`PskConnection::to_batond_toml`] writes it), starts `batond` in `ns`
    /// and waits (10 s) until it has bound UDP `ike_port` there.
    pub fn start(
        ns: &Netns,
        dir: WorkDir,
        batond: &str,
        ikectl: &str,
        config_toml: &str,
        ike_port: u16,
    ) -> Result<Self, Error> {
        let config = dir.write("batond.toml", config_toml)?;
        let config = config.to_string_lossy().into_owned();
        let mut daemon = Daemon::spawn(ns, dir.path(), "batond", batond, &["--config", &config])?;
        wait_for(
            Duration::from_secs(10),
            "batond to bind its IKE port",
            || {
                daemon.check_running()?;
                Ok(crate::process::udp_port_bound(ns, ike_port)?.then_some(()))
            },
        )?;
        let socket = Self::socket_path(&dir);
        Ok(Self {
            daemon,
            ikectl: PathBuf::from(ikectl),
            socket,
            dir,
        })
    }

    /// Where batond's control socket goes inside `dir`.
    pub fn socket_path(dir: &WorkDir) -> PathBuf {
        dir.path().join("ikectl.sock")
    }

    /// The instance's directory (config, log, key log).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Runs `ikectl --socket <sock> args...` and returns its stdout.
    pub fn ikectl(&self, args: &[&str]) -> Result<String, Error> {
        let socket = self.socket.to_string_lossy().into_owned();
        let mut a = vec!["--socket", socket.as_str()];
        a.extend_from_slice(args);
        let out = crate::netns::command(&self.ikectl)
            .args(&a)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| Error::new(format!("cannot run {}: {e}", self.ikectl.display())))?;
        if !out.status.success() {
            return Err(Error::new(format!(
                "`ikectl {}` failed ({}): {}",
                a.join(" "),
                out.status,
                String::from_utf8_lossy(&out.stderr)
            )));
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Stops batond (SIGTERM, then SIGKILL after 2 s).
    pub fn stop(&mut self) -> Result<(), Error> {
        self.daemon.stop(Duration::from_secs(2)).map(|_| ())
    }
}

impl Responder for Batond {
    fn list_sas(&self) -> Result<Vec<IkeSaInfo>, Error> {
        parse_ikectl_list_sas(&self.ikectl(&["list-sas", "--json"])?)
    }
    fn log(&self) -> String {
        self.daemon.log()
    }
}

/// Lower-case hex without `0x`, left-padded to `width` digits: the form charon prints
/// SPIs in (`initiator-spi` 16 digits, Child SA `spi-in` 8), so views compare directly.
pub fn normalize_spi(v: &Json, width: usize) -> String {
    let s = match v {
        Json::String(s) => s.trim_start_matches("0x").to_ascii_lowercase(),
        Json::Number(n) => n.as_u64().map(|n| format!("{n:x}")).unwrap_or_default(),
        _ => String::new(),
    };
    format!("{s:0>width$}")
}

fn str_of(v: &Json, key: &str) -> String {
    match v.get(key) {
        Some(Json::String(s)) => s.clone(),
        Some(Json::Number(n)) => n.to_string(),
        _ => String::new(),
    }
}

fn strs_of(v: &Json, key: &str) -> Vec<String> {
    match v.get(key) {
        Some(Json::Array(a)) => a
            .iter()
            .filter_map(|x| x.as_str().map(str::to_owned))
            .collect(),
        Some(Json::String(s)) => vec![s.clone()],
        _ => Vec::new(),
    }
}

/// Splits `"198.51.100.2[4500]"` / `"198.51.100.2:4500"` / `"198.51.100.2"` into host and port.
fn host_port(s: &str) -> (String, String) {
    if let Some((h, p)) = s.strip_suffix(']').and_then(|x| x.split_once('[')) {
        return (h.to_owned(), p.to_owned());
    }
    match s.rsplit_once(':') {
        Some((h, p)) if !h.contains(':') && p.parse::<u16>().is_ok() => {
            (h.to_owned(), p.to_owned())
        }
        _ => (s.to_owned(), String::new()),
    }
}

/// Parses `ikectl --json list-sas` (DESIGN §5: an array of IKE SAs with `id`,
/// `connection`, `state`, `local_id`, `remote_id`, `local_addr`, `remote_addr`, `spi_i`,
/// `spi_r`, `owner`, `children` with `name`, `spi_in`, `spi_out`, `local_ts`,
/// `remote_ts`, `state`) into the same records charon gives. Optional extras it reads:
/// `initiator` (bool), `nat_local`, `nat_remote` (bool), `remote_vips` (list).
pub fn parse_ikectl_list_sas(text: &str) -> Result<Vec<IkeSaInfo>, Error> {
    let doc: Json =
        serde_json::from_str(text).map_err(|e| Error::new(format!("ikectl JSON: {e}: {text}")))?;
    let Json::Array(sas) = doc else {
        return Err(Error::new(format!(
            "ikectl list-sas --json: not an array: {text}"
        )));
    };
    let mut out = Vec::with_capacity(sas.len());
    for sa in &sas {
        let (local_host, local_port) = host_port(&str_of(sa, "local_addr"));
        let (remote_host, remote_port) = host_port(&str_of(sa, "remote_addr"));
        let children = match sa.get("children") {
            Some(Json::Array(cs)) => cs
                .iter()
                .map(|c| ChildSaInfo {
                    name: str_of(c, "name"),
                    uniqueid: str_of(c, "id"),
                    state: str_of(c, "state"),
                    spi_in: c
                        .get("spi_in")
                        .map(|v| normalize_spi(v, 8))
                        .unwrap_or_default(),
                    spi_out: c
                        .get("spi_out")
                        .map(|v| normalize_spi(v, 8))
                        .unwrap_or_default(),
                    encr_alg: c.get("encr_alg").and_then(Json::as_str).map(str::to_owned),
                    local_ts: strs_of(c, "local_ts"),
                    remote_ts: strs_of(c, "remote_ts"),
                })
                .collect(),
            _ => Vec::new(),
        };
        let flag = |k: &str| sa.get(k).and_then(Json::as_bool).unwrap_or(false);
        out.push(IkeSaInfo {
            name: str_of(sa, "connection"),
            uniqueid: str_of(sa, "id"),
            state: str_of(sa, "state"),
            local_host,
            local_port,
            remote_host,
            remote_port,
            local_id: str_of(sa, "local_id"),
            remote_id: str_of(sa, "remote_id"),
            initiator_spi: sa
                .get("spi_i")
                .map(|v| normalize_spi(v, 16))
                .unwrap_or_default(),
            responder_spi: sa
                .get("spi_r")
                .map(|v| normalize_spi(v, 16))
                .unwrap_or_default(),
            initiator: flag("initiator"),
            nat_local: flag("nat_local"),
            nat_remote: flag("nat_remote"),
            local_vips: strs_of(sa, "local_vips"),
            remote_vips: strs_of(sa, "remote_vips"),
            children,
            raw: Section::default(),
        });
    }
    Ok(out)
}

impl PskConnection {
    /// This connection as a batond configuration (DESIGN §5 keys), listening on
    /// `listen`, with its control socket at `control_socket`, the given `dataplane`
    /// (`"memory"` on the host) and a key log beside the socket (Wireshark
    /// ikev2_decryption_table lines).
    pub fn to_batond_toml(&self, listen: &str, control_socket: &Path, dataplane: &str) -> String {
        let list = |v: &[String]| {
            let items: Vec<String> = v.iter().map(|s| format!("{s:?}")).collect();
            format!("[{}]", items.join(", "))
        };
        let keylog = control_socket.with_file_name("ike.keys");
        let remote_ts = if self.remote_ts.is_empty() {
            vec!["dynamic".to_owned()]
        } else {
            self.remote_ts.clone()
        };
        let mut t = format!(
            "[gateway]\nlisten = [{listen:?}]\ncontrol_socket = {:?}\ndataplane = {dataplane:?}\nkeylog = {:?}\n\n",
            control_socket.to_string_lossy(),
            keylog.to_string_lossy()
        );
        t += &format!(
            "[[connection]]\nname = {:?}\nproposals = {}\nesp_proposals = {}\nlocal_id = {:?}\nremote_id = {:?}\nlocal_ts = {}\nremote_ts = {}\nfragmentation = {}\n",
            self.name,
            list(&self.proposals),
            list(&self.esp_proposals),
            self.local_id,
            self.remote_id,
            list(&self.local_ts),
            list(&remote_ts),
            self.fragmentation
        );
        match &self.pubkey {
            None => t += "local_auth = \"psk\"\nremote_auth = \"psk\"\n",
            Some(pk) => {
                t += &format!(
                    "local_auth = \"pubkey\"\nlocal_cert = {:?}\nlocal_key = {:?}\nremote_auth = \"pubkey\"\nremote_ca = {:?}\n",
                    pk.local_cert.to_string_lossy(),
                    pk.local_key.to_string_lossy(),
                    pk.remote_ca.to_string_lossy()
                );
            }
        }
        if let Some((pool, _)) = &self.pool {
            t += &format!("pool = {pool:?}\n");
        }
        for (key, v) in [
            ("rekey_time", &self.rekey_time),
            ("child_rekey_time", &self.child_rekey_time),
            ("dpd_delay", &self.dpd_delay),
        ] {
            if let Some(v) = v {
                t += &format!("{key} = {v:?}\n");
            }
        }
        if self.pubkey.is_none() {
            t += &format!(
                "\n[[secret]]\nids = [{:?}, {:?}]\npsk = {:?}\n",
                self.local_id, self.remote_id, self.psk
            );
        }
        if let Some((pool, cidr)) = &self.pool {
            t += &format!("\n[pool.{pool}]\naddrs = {cidr:?}\ndns = [\"10.1.0.53\"]\n");
        }
        t
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_design_list_sas_json() {
        let text = r#"[{"id": 7, "connection": "rw", "state": "ESTABLISHED",
            "local_id": "gw.example", "remote_id": "client.example",
            "local_addr": "198.51.100.1:4500", "remote_addr": "198.51.100.254[61234]",
            "spi_i": "0xD3E2FBCB3C568B42", "spi_r": "9547f1e16d9f85e6", "owner": "gw1",
            "remote_vips": ["10.8.0.1"],
            "children": [{"name": "net", "spi_in": "c1a2b3", "spi_out": 3735928559,
              "local_ts": ["10.1.0.0/24"], "remote_ts": ["10.8.0.1/32"], "state": "INSTALLED"}]}]"#;
        let sas = parse_ikectl_list_sas(text).unwrap();
        assert_eq!(sas.len(), 1);
        let sa = &sas[0];
        assert_eq!(sa.name, "rw");
        assert_eq!(sa.uniqueid, "7");
        assert_eq!(
            (sa.local_host.as_str(), sa.local_port.as_str()),
            ("198.51.100.1", "4500")
        );
        assert_eq!(
            (sa.remote_host.as_str(), sa.remote_port.as_str()),
            ("198.51.100.254", "61234")
        );
        assert_eq!(sa.initiator_spi, "d3e2fbcb3c568b42");
        assert_eq!(sa.responder_spi, "9547f1e16d9f85e6");
        assert_eq!(sa.remote_vips, vec!["10.8.0.1".to_owned()]);
        assert_eq!(sa.children[0].spi_in, "00c1a2b3");
        assert_eq!(sa.children[0].spi_out, "deadbeef");
        assert_eq!(sa.children[0].remote_ts, vec!["10.8.0.1/32".to_owned()]);
    }

    #[test]
    fn rejects_non_array() {
        assert!(parse_ikectl_list_sas("{}").is_err());
        assert!(parse_ikectl_list_sas("not json").is_err());
    }

    #[test]
    fn batond_toml_has_the_design_keys() {
        let c = PskConnection::gateway(std::net::Ipv4Addr::new(198, 51, 100, 1));
        let t = c.to_batond_toml("198.51.100.1", Path::new("/tmp/x/ikectl.sock"), "memory");
        for line in [
            "listen = [\"198.51.100.1\"]",
            "control_socket = \"/tmp/x/ikectl.sock\"",
            "keylog = \"/tmp/x/ike.keys\"",
            "dataplane = \"memory\"",
            "proposals = [\"aes128gcm16-prfsha256-x25519\"]",
            "esp_proposals = [\"aes128gcm16\"]",
            "local_ts = [\"10.1.0.0/24\"]",
            "remote_ts = [\"dynamic\"]",
            "pool = \"vpn\"",
            "ids = [\"gw.example\", \"client.example\"]",
            "psk = \"0123456789abcdef0123\"",
            "[pool.vpn]",
            "addrs = \"10.8.0.0/24\"",
        ] {
            assert!(t.contains(line), "missing {line:?} in:\n{t}");
        }
    }
}
