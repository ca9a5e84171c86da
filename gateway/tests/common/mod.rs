//! Shared helpers for the daemon tests: temporary directories, free loopback ports,
//! config files, and a scripted protocol core.
#![allow(
    dead_code,
    unreachable_pub,
    missing_debug_implementations,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]

use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use gateway::config::GatewayConfig;
use gateway::control::{self, ChildSaView, IkeSaView, Request};
use gateway::daemon::core::{Core, Counts, Event, Output};

/// A fresh directory under the system temp dir, removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> Self {
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let p = std::env::temp_dir().join(format!("baton-{tag}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        Self(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Two distinct free UDP ports on 127.0.0.1 (released again; a race is unlikely).
pub fn free_udp_ports() -> (u16, u16) {
    let a = UdpSocket::bind("127.0.0.1:0").unwrap();
    let b = UdpSocket::bind("127.0.0.1:0").unwrap();
    (
        a.local_addr().unwrap().port(),
        b.local_addr().unwrap().port(),
    )
}

/// A free TCP port on 127.0.0.1.
pub fn free_tcp_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Writes a gateway config into `dir` and returns its path.
pub fn write_config(dir: &Path, extra_connection: bool) -> PathBuf {
    let (ike, natt) = free_udp_ports();
    let metrics = free_tcp_port();
    let text = config_text(dir, ike, natt, metrics, extra_connection);
    let path = dir.join("batond.toml");
    std::fs::write(&path, text).unwrap();
    path
}

pub fn config_text(
    dir: &Path,
    ike: u16,
    natt: u16,
    metrics: u16,
    extra_connection: bool,
) -> String {
    let mut text = format!(
        r#"[gateway]
listen = ["127.0.0.1"]
ike_port = {ike}
natt_port = {natt}
control_socket = "{sock}"
metrics = "127.0.0.1:{metrics}"
dataplane = "memory"
keylog = "ike.keys"

[[connection]]
name = "rw"
local_id = "gw.example"
local_ts = ["10.1.0.0/24"]
remote_ts = ["dynamic"]
pool = "vpn"

[[secret]]
ids = ["gw.example"]
psk = "test-psk-0123456789"

[pool.vpn]
addrs = "10.8.0.0/24"
"#,
        sock = dir.join("ctl.sock").display()
    );
    if extra_connection {
        text.push_str(
            "\n[[connection]]\nname = \"site\"\nlocal_id = \"gw.example\"\nremote_id = \"site.example\"\n",
        );
    }
    text
}

/// What the scripted core saw.
#[derive(Default, Debug)]
pub struct Seen {
    pub datagrams: Vec<(SocketAddr, SocketAddr, Vec<u8>)>,
    pub reconfigured: Vec<Vec<String>>,
    pub terminated: Vec<String>,
}

/// A scripted core: holds a fixed list of IKE SAs, echoes every datagram back (so the
/// effect executor's framing can be observed), writes one key log line per datagram,
/// and records what it was asked to do.
pub struct ScriptedCore {
    pub sas: Vec<IkeSaView>,
    pub seen: Arc<Mutex<Seen>>,
    out: std::collections::VecDeque<Output>,
}

impl ScriptedCore {
    pub fn new(sas: Vec<IkeSaView>) -> (Self, Arc<Mutex<Seen>>) {
        let seen = Arc::new(Mutex::new(Seen::default()));
        (
            Self {
                sas,
                seen: seen.clone(),
                out: Default::default(),
            },
            seen,
        )
    }
}

impl Core for ScriptedCore {
    fn name(&self) -> &'static str {
        "scripted test core"
    }
    fn handle_datagram(
        &mut self,
        _now: Instant,
        local: SocketAddr,
        remote: SocketAddr,
        data: &[u8],
    ) {
        self.seen
            .lock()
            .unwrap()
            .datagrams
            .push((local, remote, data.to_vec()));
        if data == b"garbage" {
            self.out.push_back(Output::Event(Event::Dropped {
                reason: "invalid_syntax".into(),
            }));
            return;
        }
        self.out.push_back(Output::Send {
            local,
            remote,
            data: data.to_vec(),
        });
        self.out
            .push_back(Output::KeyLog(format!("{} key line", hex::encode(data))));
        self.out.push_back(Output::Event(Event::Exchange {
            exchange: "IKE_SA_INIT".into(),
        }));
    }
    fn handle_timeout(&mut self, _now: Instant) {}
    fn poll_timeout(&self) -> Option<Instant> {
        None
    }
    fn poll_output(&mut self) -> Option<Output> {
        self.out.pop_front()
    }
    fn terminate(&mut self, _now: Instant, id: &str) -> bool {
        let known = self.sas.iter().any(|s| s.id == id);
        if known {
            self.seen.lock().unwrap().terminated.push(id.to_owned());
        }
        known
    }
    fn list(&self, _now: Instant) -> Vec<IkeSaView> {
        self.sas.clone()
    }
    fn reconfigure(&mut self, config: &GatewayConfig) {
        let names = config.connections.iter().map(|c| c.name.clone()).collect();
        self.seen.lock().unwrap().reconfigured.push(names);
    }
    fn counts(&self) -> Counts {
        Counts {
            ike_sas: self.sas.len(),
            half_open: 0,
            child_sas: self.sas.iter().map(|s| s.children.len()).sum(),
        }
    }
}

/// One IKE SA with one Child SA, as an endpoint would report it.
pub fn sample_sa(id: &str) -> IkeSaView {
    IkeSaView {
        id: id.to_owned(),
        connection: "rw".into(),
        state: "established".into(),
        local_id: "gw.example".into(),
        remote_id: "client.example".into(),
        local_addr: "127.0.0.1:500".into(),
        remote_addr: "127.0.0.1:40000".into(),
        spi_i: "0102030405060708".into(),
        spi_r: id.to_owned(),
        owner: String::new(),
        proposal: "AES_GCM_16_128/PRF_HMAC_SHA2_256/CURVE25519".into(),
        virtual_ip: Some("10.8.0.1".into()),
        remote_vips: vec!["10.8.0.1".into()],
        nat_remote: false,
        established_secs: Some(3),
        children: vec![ChildSaView {
            name: "rw".into(),
            spi_in: "c0000001".into(),
            spi_out: "0badcafe".into(),
            local_ts: vec!["10.1.0.0/24".into()],
            remote_ts: vec!["10.8.0.1/32".into()],
            state: "installed".into(),
            proposal: "AES_GCM_16_128".into(),
        }],
    }
}

/// Sends a control request from a blocking thread.
pub async fn ctl(socket: &Path, req: Request) -> Result<serde_json::Value, String> {
    let socket = socket.to_path_buf();
    tokio::task::spawn_blocking(move || {
        control::request(&socket, &req, Duration::from_secs(5)).map_err(|e| e.to_string())
    })
    .await
    .unwrap()
}

/// Runs the client until `done` says so, exchanging datagrams with batond over `sock`.
pub async fn drive(
    client: &mut ike::endpoint::Endpoint,
    sock: &tokio::net::UdpSocket,
    mut done: impl FnMut(&ike::endpoint::SaEvent) -> bool,
) -> Vec<ike::endpoint::SaEvent> {
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut events = Vec::new();
    let mut buf = vec![0u8; 65_535];
    loop {
        while let Some(e) = client.poll_effect() {
            match e {
                ike::endpoint::Effect::Send { remote, data, .. } => {
                    sock.send_to(&data, remote).await.unwrap();
                }
                ike::endpoint::Effect::Event(ev) => {
                    let stop = done(&ev);
                    events.push(ev);
                    if stop {
                        return events;
                    }
                }
                _ => {}
            }
        }
        assert!(
            Instant::now() < deadline,
            "no result within 20 s; events: {events:?}"
        );
        let wait = client
            .poll_timeout()
            .map_or(Duration::from_millis(200), |t| {
                t.saturating_duration_since(Instant::now())
            })
            .min(Duration::from_millis(200));
        match tokio::time::timeout(wait, sock.recv_from(&mut buf)).await {
            Ok(Ok((n, from))) => {
                let local: SocketAddr = sock.local_addr().unwrap();
                client.handle_datagram(Instant::now(), local, from, &buf[..n]);
            }
            _ => client.handle_timeout(Instant::now()),
        }
    }
}

/// The client side of the PSK connection in [`write_config`]'s gateway.
pub const CLIENT_TOML: &str = r#"
[gateway]
listen = ["127.0.0.1"]
dataplane = "memory"

[[connection]]
name = "home"
proposals = ["aes128gcm16-prfsha256-x25519"]
esp_proposals = ["aes128gcm16"]
local_id = "client.example"
remote_id = "gw.example"
local_ts = ["dynamic"]
remote_ts = ["10.1.0.0/24"]

[[secret]]
ids = ["client.example", "gw.example"]
psk = "test-psk-0123456789"
"#;

/// An initiator endpoint for [`CLIENT_TOML`].
pub fn psk_client(now: Instant) -> ike::endpoint::Endpoint {
    let c = GatewayConfig::parse(Path::new("client.toml"), CLIENT_TOML).unwrap();
    let mut ec = ike::endpoint::EndpointConfig::new(&ike::crypto::DEFAULT_PROVIDER);
    ec.connections = c.connections.clone();
    ec.secrets = c.secrets.clone();
    ike::endpoint::Endpoint::new(ec, now)
}
