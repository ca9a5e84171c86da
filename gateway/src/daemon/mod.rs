//! The runtime of `batond`: sockets, the timer, the control socket, signals, and the
//! executor of the protocol core's outputs. Small by design (quinn's driver, DESIGN §1):
//! all protocol decisions are the core's.

mod child_effects;
pub mod cluster_core;
pub mod control_server;
pub mod core;
pub mod dataplane;
pub mod endpoint_core;
mod heartbeat_thread;
pub mod udp;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use cluster::channel::{Channel, ChannelConfig, ChannelEvent};
use cluster::{ClusterKey, NodeId};
use heartbeat::driver::boot_incarnation;
use heartbeat::{Detector, DetectorConfig, MembershipEvent};

use self::core::{ClusterInput, Core, Event, Output};
use self::heartbeat_thread::HeartbeatThread;
use self::udp::{Bound, Datagram};
use crate::config::{ConfigError, DataplaneKind, GatewayConfig};
use crate::control::{IkeSaView, Request, Response, StatusView};
use crate::keylog::KeyLog;
use crate::metrics::{Metrics, ResultLabel};

/// Why the daemon could not start.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    /// The configuration is invalid.
    #[error("{0}")]
    Config(#[from] ConfigError),
    /// `[cluster]` could not be brought up (key file, node names).
    #[error("cluster: {0}")]
    Cluster(String),
    /// A socket or file could not be opened.
    #[error("cannot {what} {target}: {source}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// On what.
        target: String,
        /// The OS error.
        source: std::io::Error,
    },
}

fn io_err(what: &'static str, target: impl ToString) -> impl FnOnce(std::io::Error) -> DaemonError {
    let target = target.to_string();
    move |source| DaemonError::Io {
        what,
        target,
        source,
    }
}

/// The protocol core this build runs for `config`: `ike::endpoint` on the configured
/// data plane, wrapped in a cluster node when `[cluster]` is present. `incarnation` is
/// this boot's (see [`heartbeat::driver::boot_incarnation`]).
pub fn default_core(
    config: &GatewayConfig,
    incarnation: u64,
) -> Result<Box<dyn Core>, DaemonError> {
    let dp = endpoint_core::open_dataplane(config).map_err(|e| DaemonError::Io {
        what: "open the data plane",
        target: format!("{:?}", config.gateway.dataplane),
        source: std::io::Error::other(e),
    })?;
    if config.cluster.is_some() {
        return Ok(Box::new(
            cluster_core::ClusterCore::new(config, dp, Instant::now(), incarnation)
                .map_err(DaemonError::Cluster)?,
        ));
    }
    Ok(Box::new(endpoint_core::EndpointCore::new(
        config,
        dp,
        Instant::now(),
    )))
}

/// The cluster's I/O: the heartbeat task and the replication channel.
struct ClusterIo {
    channel: Channel,
    heartbeat: HeartbeatThread,
    interval: std::time::Duration,
}

/// Receivers of the cluster's I/O, polled by the main loop.
struct ClusterRx {
    channel: mpsc::Receiver<ChannelEvent>,
    membership: mpsc::UnboundedReceiver<MembershipEvent>,
}

/// Starts the heartbeat (UDP) and the replication channel (TCP), both on `[cluster]
/// listen`.
async fn start_cluster(
    config: &GatewayConfig,
    incarnation: u64,
) -> Result<Option<(ClusterIo, ClusterRx)>, DaemonError> {
    let Some(c) = &config.cluster else {
        return Ok(None);
    };
    let key = ClusterKey::load(&c.key_file).map_err(|e| DaemonError::Cluster(e.to_string()))?;
    let (me, _) = cluster_core::cluster_nodes(c).map_err(DaemonError::Cluster)?;
    let mut peers = std::collections::BTreeMap::new();
    for (name, addr) in &c.peers {
        let n = NodeId::new(name).map_err(|e| DaemonError::Cluster(e.to_string()))?;
        peers.insert(n, *addr);
    }
    let sock = std::net::UdpSocket::bind(c.listen)
        .map_err(io_err("bind the heartbeat socket", c.listen))?;
    let mut dcfg = DetectorConfig::new(me.clone(), peers.keys().cloned().collect());
    dcfg.interval = c.heartbeat_interval;
    dcfg.multiplier = u8::try_from(c.heartbeat_multiplier).unwrap_or(u8::MAX);
    let det = Detector::new(dcfg, &key, incarnation, Instant::now());
    // Its own thread: a slow kernel call in the core must not silence it (see
    // heartbeat_thread).
    let (heartbeat, membership) = HeartbeatThread::spawn(sock, det, peers.clone())
        .await
        .map_err(io_err("start the heartbeat on", c.listen))?;
    let ccfg = ChannelConfig::new(me, c.listen, peers, key, incarnation);
    let (channel, chan_rx) = Channel::start(ccfg)
        .await
        .map_err(io_err("listen for replication on", c.listen))?;
    Ok(Some((
        ClusterIo {
            channel,
            heartbeat,
            interval: c.heartbeat_interval,
        },
        ClusterRx {
            channel: chan_rx,
            membership,
        },
    )))
}

async fn recv_channel(rx: &mut Option<mpsc::Receiver<ChannelEvent>>) -> Option<ChannelEvent> {
    match rx {
        Some(r) => r.recv().await,
        None => std::future::pending().await,
    }
}

async fn recv_membership(
    rx: &mut Option<mpsc::UnboundedReceiver<MembershipEvent>>,
) -> Option<MembershipEvent> {
    match rx {
        Some(r) => r.recv().await,
        None => std::future::pending().await,
    }
}

/// A running daemon.
#[derive(Debug)]
pub struct DaemonHandle {
    /// Bound UDP sockets (IKE and NAT-T on each listen address).
    pub udp: Vec<SocketAddr>,
    /// The control socket.
    pub control_socket: PathBuf,
    /// The metrics endpoint, if any.
    pub metrics: Option<SocketAddr>,
    shutdown: Option<oneshot::Sender<()>>,
    main: JoinHandle<()>,
    tasks: Vec<JoinHandle<()>>,
}

impl DaemonHandle {
    /// Stops the daemon and waits for its main loop to finish; removes the control socket.
    pub async fn shutdown(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        let _ = (&mut self.main).await;
        for t in &self.tasks {
            t.abort();
        }
        let _ = std::fs::remove_file(&self.control_socket);
    }
}

/// Loads `config_path` and starts the daemon with `core`. Every socket is bound before
/// this returns, so errors (port in use, no permission) are reported to the caller.
pub async fn start(
    config_path: &Path,
    core: Option<Box<dyn Core>>,
) -> Result<DaemonHandle, DaemonError> {
    // Reloads re-read the same file even if the working directory changes.
    let config_path =
        &std::fs::canonicalize(config_path).unwrap_or_else(|_| config_path.to_path_buf());
    let config = GatewayConfig::load(config_path)?;
    let incarnation = boot_incarnation();
    let mut core = match core {
        Some(c) => c,
        None => default_core(&config, incarnation)?,
    };
    let metrics = Arc::new(Metrics::new());
    let g = &config.gateway;

    let mut bound = Vec::new();
    for addr in &g.listen {
        for (port, natt) in [(g.ike_port, false), (g.natt_port, true)] {
            let local = SocketAddr::new(*addr, port);
            let socket = tokio::net::UdpSocket::bind(local)
                .await
                .map_err(io_err("bind UDP", local))?;
            let local = socket.local_addr().map_err(io_err("bind UDP", local))?;
            if g.dataplane == DataplaneKind::Xfrm {
                // IKE must never be caught by our own IPsec policies, and the kernel only
                // decapsulates ESP-in-UDP (RFC 3948) arriving on a socket that asks for it.
                xfrm::bypass_ipsec(&socket, local.is_ipv6()).map_err(|e| {
                    io_err("exempt the IKE socket from IPsec policies", local)(
                        std::io::Error::other(e.to_string()),
                    )
                })?;
                if natt {
                    xfrm::enable_espinudp(&socket).map_err(|e| {
                        io_err("enable ESP-in-UDP on", local)(std::io::Error::other(e.to_string()))
                    })?;
                }
            }
            bound.push(Bound {
                local,
                socket: Arc::new(socket),
                natt,
            });
        }
    }
    let keylog = match &g.keylog {
        Some(p) => Some(KeyLog::open(p).map_err(io_err("open the key log", p.display()))?),
        None => None,
    };
    let metrics_listener = match g.metrics {
        Some(a) => Some(
            crate::metrics::bind(a)
                .await
                .map_err(io_err("bind the metrics endpoint", a))?,
        ),
        None => None,
    };
    let metrics_addr = metrics_listener.as_ref().and_then(|l| l.local_addr().ok());
    let control = control_server::bind(&g.control_socket)
        .await
        .map_err(io_err(
            "bind the control socket",
            g.control_socket.display(),
        ))?;
    let hangup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        .map_err(io_err("install a handler for", "SIGHUP"))?;
    let (cluster_io, cluster_rx) = match start_cluster(&config, incarnation).await? {
        Some((io, rx)) => {
            core.handle_cluster(
                Instant::now(),
                ClusterInput::Membership(io.heartbeat.membership()),
            );
            tracing::info!(
                node = config.cluster.as_ref().map_or("", |c| c.node.as_str()),
                listen = %io.channel.local_addr(),
                "cluster heartbeat and replication started"
            );
            (Some(io), Some(rx))
        }
        None => (None, None),
    };

    let (dgram_tx, dgram_rx) = mpsc::channel::<Datagram>(1024);
    let (ctl_tx, ctl_rx) = mpsc::channel(64);
    let mut tasks = Vec::new();
    for b in &bound {
        tasks.push(tokio::spawn(udp::receive_loop(
            b.clone(),
            dgram_tx.clone(),
            metrics.clone(),
        )));
    }
    tasks.push(tokio::spawn(control_server::serve(control, ctl_tx)));
    if let Some(l) = metrics_listener {
        tasks.push(tokio::spawn(crate::metrics::serve(l, metrics.clone())));
    }
    let udp_addrs: Vec<SocketAddr> = bound.iter().map(|b| b.local).collect();
    tracing::info!(
        config = %config_path.display(),
        udp = ?udp_addrs,
        control = %g.control_socket.display(),
        metrics = ?metrics_addr,
        core = core.name(),
        "batond started"
    );
    let control_socket = g.control_socket.clone();
    let (shutdown_tx, shutdown_rx) = oneshot::channel();
    let runtime = Runtime {
        config,
        core,
        bound,
        metrics,
        keylog,
        started: Instant::now(),
        reloads: 0,
        cluster: cluster_io,
        sessions: std::collections::HashMap::new(),
    };
    let main = tokio::spawn(runtime.run(dgram_rx, ctl_rx, hangup, shutdown_rx, cluster_rx));
    Ok(DaemonHandle {
        udp: udp_addrs,
        control_socket,
        metrics: metrics_addr,
        shutdown: Some(shutdown_tx),
        main,
        tasks,
    })
}

struct Runtime {
    config: GatewayConfig,
    core: Box<dyn Core>,
    bound: Vec<Bound>,
    metrics: Arc<Metrics>,
    keylog: Option<KeyLog>,
    started: Instant,
    reloads: u64,
    cluster: Option<ClusterIo>,
    /// Per peer, the channel session the replication log's state belongs to (set when
    /// its `PeerConnected` reaches the core): messages go out on that session only.
    sessions: std::collections::HashMap<NodeId, u64>,
}

impl Runtime {
    async fn run(
        mut self,
        mut dgrams: mpsc::Receiver<Datagram>,
        mut control: mpsc::Receiver<control_server::ControlMsg>,
        mut hangup: tokio::signal::unix::Signal,
        mut shutdown: oneshot::Receiver<()>,
        cluster_rx: Option<ClusterRx>,
    ) {
        let (mut chan_rx, mut member_rx) = match cluster_rx {
            Some(r) => (Some(r.channel), Some(r.membership)),
            None => (None, None),
        };
        // Cluster gauges: `ClusterNode::status` walks every record, so once a second
        // rather than after every datagram.
        let mut gauges = tokio::time::interval(std::time::Duration::from_secs(1));
        gauges.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        loop {
            let deadline = self.core.poll_timeout();
            let sleep = tokio::time::sleep_until(
                deadline.map_or_else(tokio::time::Instant::now, tokio::time::Instant::from_std),
            );
            tokio::select! {
                Some(d) = dgrams.recv() => {
                    self.core.handle_datagram(Instant::now(), d.local, d.remote, &d.data);
                }
                Some((req, reply)) = control.recv() => {
                    let resp = self.control(req);
                    let _ = reply.send(resp);
                }
                () = sleep, if deadline.is_some() => {
                    self.core.handle_timeout(Instant::now());
                }
                Some(()) = hangup.recv() => {
                    tracing::info!("SIGHUP: reloading the configuration");
                    let _ = self.reload();
                }
                Some(ev) = recv_channel(&mut chan_rx) => {
                    self.note_session(&ev);
                    self.core.handle_cluster(Instant::now(), ClusterInput::Channel(ev));
                }
                Some(ev) = recv_membership(&mut member_rx) => {
                    let (MembershipEvent::MemberUp { view, .. }
                    | MembershipEvent::MemberDown { view, .. }) = &ev;
                    log_membership(&ev);
                    self.core.handle_cluster(Instant::now(), ClusterInput::Membership(view.clone()));
                }
                _ = gauges.tick(), if self.cluster.is_some() => {
                    if let Some(v) = self.core.cluster_status() {
                        self.metrics.set_cluster(&v);
                    }
                }
                _ = &mut shutdown => break,
            }
            self.drain().await;
        }
        if let Some(c) = &self.cluster {
            // Peers drop us at once instead of after the detection time; the
            // announcement is repeated for a few intervals.
            c.heartbeat.leave();
            tokio::time::sleep(c.interval * 3).await;
            self.core.shutdown();
        }
        tracing::info!("batond stopped");
    }

    /// Executes every pending output of the core, in order.
    async fn drain(&mut self) {
        while let Some(out) = self.core.poll_output() {
            match out {
                Output::Send {
                    local,
                    remote,
                    data,
                } => {
                    send(&self.bound, &self.metrics, local, remote, &data).await;
                }
                Output::NatKeepalive { local, remote } => {
                    send_raw(&self.bound, &self.metrics, local, remote, &[0xff]).await;
                }
                Output::Replicate { to, data } => {
                    if let Some(c) = &self.cluster {
                        let r = match self.sessions.get(&to) {
                            Some(session) => c.channel.send_in_session(&to, *session, data),
                            None => Err(cluster::channel::ChannelError::NotConnected(to.clone())),
                        };
                        if let Err(e) = r {
                            // The session went or was replaced; the log resends on the
                            // next one.
                            tracing::debug!(node = %to, error = %e, "replication message not sent");
                        }
                    }
                }
                Output::DisconnectPeer { node } => {
                    if let Some(c) = &self.cluster {
                        c.channel.disconnect(&node);
                    }
                }
                Output::KeyLog(line) => {
                    if let Some(k) = &mut self.keylog
                        && let Err(e) = k.append(&line)
                    {
                        tracing::warn!(path = %k.path().display(), error = %e, "key log write failed");
                    }
                }
                Output::Event(e) => {
                    log_event(&e);
                    self.metrics.record(&e);
                }
            }
        }
        self.metrics.set_counts(self.core.counts());
    }

    /// Binds the replication log's view of a peer to the channel session it is about:
    /// the session current when the core learns of the connection.
    fn note_session(&mut self, ev: &ChannelEvent) {
        let Some(c) = &self.cluster else {
            return;
        };
        match ev {
            ChannelEvent::PeerConnected { node, .. } => match c.channel.session(node) {
                Some(s) => {
                    self.sessions.insert(node.clone(), s);
                }
                None => {
                    self.sessions.remove(node);
                }
            },
            ChannelEvent::PeerDisconnected { node } => {
                self.sessions.remove(node);
            }
            ChannelEvent::Message { .. } => {}
        }
    }

    fn views(&self) -> Vec<IkeSaView> {
        let owner = self
            .config
            .cluster
            .as_ref()
            .map_or("local".to_owned(), |c| c.node.clone());
        let mut v = self.core.list(Instant::now());
        for sa in &mut v {
            sa.owner.clone_from(&owner);
        }
        v
    }

    fn find(&self, sa: &str) -> Result<IkeSaView, String> {
        let key = sa.trim().to_ascii_lowercase();
        let views = self.views();
        if let Some(exact) = views.iter().find(|v| v.id == key) {
            return Ok(exact.clone());
        }
        let matches: Vec<&IkeSaView> = views
            .iter()
            .filter(|v| key.len() >= 4 && v.id.starts_with(&key))
            .collect();
        match matches.as_slice() {
            [one] => Ok((*one).clone()),
            [] => Err(format!("no IKE SA \"{sa}\" (see ikectl list-sas)")),
            _ => Err(format!(
                "\"{sa}\" matches {} IKE SAs; give more digits",
                matches.len()
            )),
        }
    }

    fn not_clustered(&self) -> Response {
        Response::err("not in a cluster (no [cluster] section in the configuration)")
    }

    fn control(&mut self, req: Request) -> Response {
        match req {
            Request::Status => {
                let counts = self.core.counts();
                Response::ok(&StatusView {
                    version: env!("CARGO_PKG_VERSION").to_owned(),
                    pid: std::process::id(),
                    uptime_secs: self.started.elapsed().as_secs(),
                    config: self.config.path.display().to_string(),
                    listen: self
                        .bound
                        .iter()
                        .map(|b| format!("{}{}", b.local, if b.natt { " (nat-t)" } else { "" }))
                        .collect(),
                    dataplane: match self.config.gateway.dataplane {
                        DataplaneKind::Xfrm => "xfrm",
                        DataplaneKind::Memory => "memory",
                    }
                    .to_owned(),
                    protocol_core: self.core.name().to_owned(),
                    connections: self
                        .config
                        .connections
                        .iter()
                        .map(|c| c.name.clone())
                        .collect(),
                    ike_sas: counts.ike_sas,
                    half_open: counts.half_open,
                    child_sas: counts.child_sas,
                    dataplane_sas: self.core.dataplane_sas(),
                    node: self
                        .config
                        .cluster
                        .as_ref()
                        .map_or("local".to_owned(), |c| c.node.clone()),
                    reloads: self.reloads,
                })
            }
            Request::ListSas => Response::ok(&self.views()),
            Request::Show { sa } => match self.find(&sa) {
                Ok(v) => Response::ok(&v),
                Err(e) => Response::err(e),
            },
            Request::Terminate { sa } => match self.find(&sa) {
                Ok(v) => {
                    if self.core.terminate(Instant::now(), &v.id) {
                        tracing::info!(sa = %v.id, "terminate requested by the operator");
                        Response::ok(&serde_json::json!({ "terminating": v.id }))
                    } else {
                        Response::err(format!("no IKE SA \"{sa}\""))
                    }
                }
                Err(e) => Response::err(e),
            },
            Request::Reload => match self.reload() {
                Ok(v) => Response::ok(&v),
                Err(e) => Response::err(e),
            },
            Request::Cluster => match self.core.cluster_status() {
                Some(v) => Response::ok(&v),
                None => self.not_clustered(),
            },
            Request::Transfer { sa, to } => {
                if self.config.cluster.is_none() {
                    return self.not_clustered();
                }
                match self.find(&sa) {
                    Ok(v) => match self.core.transfer(Instant::now(), &v.id, &to) {
                        Ok(()) => {
                            tracing::info!(sa = %v.id, %to, "transfer requested by the operator");
                            Response::ok(&serde_json::json!({ "transferring": v.id, "to": to }))
                        }
                        Err(e) => Response::err(e),
                    },
                    Err(e) => Response::err(format!("{e} on this node (ask the SA's owner)")),
                }
            }
            Request::Drain { node } => match self.core.drain(Instant::now(), &node, true) {
                Ok(()) => {
                    tracing::info!(%node, "drain requested by the operator");
                    Response::ok(&serde_json::json!({ "draining": node }))
                }
                Err(e) => Response::err(e),
            },
            Request::Undrain { node } => match self.core.drain(Instant::now(), &node, false) {
                Ok(()) => {
                    tracing::info!(%node, "drain ended by the operator");
                    Response::ok(&serde_json::json!({ "undrained": node }))
                }
                Err(e) => Response::err(e),
            },
        }
    }

    /// Re-reads the configuration. On error the running configuration stays.
    fn reload(&mut self) -> Result<serde_json::Value, String> {
        let new = match GatewayConfig::load(&self.config.path) {
            Ok(c) => c,
            Err(e) => {
                self.metrics
                    .reloads
                    .get_or_create(&ResultLabel {
                        result: "error".into(),
                    })
                    .inc();
                tracing::error!(error = %e, "reload failed; keeping the running configuration");
                return Err(format!(
                    "reload failed, keeping the running configuration: {e}"
                ));
            }
        };
        let (old, fresh) = (&self.config.gateway, &new.gateway);
        let mut restart_needed = Vec::new();
        if old.listen != fresh.listen
            || old.ike_port != fresh.ike_port
            || old.natt_port != fresh.natt_port
        {
            restart_needed.push("gateway.listen/ike_port/natt_port");
        }
        if old.control_socket != fresh.control_socket {
            restart_needed.push("gateway.control_socket");
        }
        if old.metrics != fresh.metrics {
            restart_needed.push("gateway.metrics");
        }
        if old.dataplane != fresh.dataplane {
            restart_needed.push("gateway.dataplane");
        }
        if self.config.cluster != new.cluster {
            restart_needed.push("cluster");
        }
        if old.keylog != fresh.keylog {
            self.keylog = match &fresh.keylog {
                None => None,
                Some(p) => match KeyLog::open(p) {
                    Ok(k) => Some(k),
                    Err(e) => {
                        tracing::warn!(path = %p.display(), error = %e, "cannot open the new key log");
                        None
                    }
                },
            };
        }
        for k in &restart_needed {
            tracing::warn!(
                key = k,
                "changed in the configuration; takes effect on restart"
            );
        }
        self.core.reconfigure(&new);
        // The running cluster is the one the daemon started with.
        let mut new = new;
        new.cluster.clone_from(&self.config.cluster);
        let connections: Vec<String> = new.connections.iter().map(|c| c.name.clone()).collect();
        self.config = new;
        self.reloads += 1;
        self.metrics
            .reloads
            .get_or_create(&ResultLabel {
                result: "ok".into(),
            })
            .inc();
        tracing::info!(?connections, "configuration reloaded");
        Ok(serde_json::json!({ "connections": connections, "restart_needed": restart_needed }))
    }
}

async fn send(
    bound: &[Bound],
    metrics: &Metrics,
    local: SocketAddr,
    remote: SocketAddr,
    data: &[u8],
) {
    send_datagram(bound, metrics, local, remote, data, true).await;
}

/// Sends `data` as is (no non-ESP marker even on the NAT-T port): NAT-keepalives.
async fn send_raw(
    bound: &[Bound],
    metrics: &Metrics,
    local: SocketAddr,
    remote: SocketAddr,
    data: &[u8],
) {
    send_datagram(bound, metrics, local, remote, data, false).await;
}

async fn send_datagram(
    bound: &[Bound],
    metrics: &Metrics,
    local: SocketAddr,
    remote: SocketAddr,
    data: &[u8],
    framed: bool,
) {
    // The socket bound to exactly `local`, else one on the same port and family
    // (answers must leave from the address and port the request came to, §2.11).
    let b = bound.iter().find(|b| b.local == local).or_else(|| {
        bound
            .iter()
            .find(|b| b.local.port() == local.port() && b.local.is_ipv4() == remote.is_ipv4())
    });
    let Some(b) = b else {
        tracing::warn!(%local, %remote, "no socket for this local address; datagram not sent");
        return;
    };
    let buf = if framed {
        udp::frame(b.natt, data)
    } else {
        data.to_vec()
    };
    match b.socket.send_to(&buf, remote).await {
        Ok(_) => metrics
            .datagrams_out
            .get_or_create(&udp::port_label(b.natt))
            .inc(),
        Err(e) => {
            tracing::debug!(%local, %remote, error = %e, "send failed");
            0
        }
    };
}

fn log_event(e: &Event) {
    match e {
        Event::IkeUp {
            id,
            connection,
            remote,
        } => {
            tracing::info!(sa = %id, %connection, %remote, "IKE SA established");
        }
        Event::IkeDown { id, reason } => tracing::info!(sa = %id, %reason, "IKE SA deleted"),
        Event::IkeRekeyed { old, new } => tracing::info!(%old, %new, "IKE SA rekeyed"),
        Event::ChildUp {
            ike_sa,
            spi_in,
            rekey,
        } => {
            tracing::info!(sa = %ike_sa, spi_in = format_args!("{spi_in:08x}"), rekey, "Child SA installed");
        }
        Event::ChildDown { ike_sa, spi_in } => {
            tracing::info!(sa = %ike_sa, spi_in = format_args!("{spi_in:08x}"), "Child SA deleted");
        }
        Event::Exchange { exchange } => tracing::debug!(%exchange, "request answered"),
        Event::RetransmitAnswered => tracing::debug!("retransmitted request answered from cache"),
        Event::Dropped { reason } => tracing::debug!(%reason, "message dropped"),
        Event::AuthFailed { remote } => tracing::warn!(%remote, "IKE_AUTH failed"),
        Event::MessageIdsSynced { id } => {
            tracing::info!(sa = %id, "Message IDs synchronised (RFC 6311)");
        }
        Event::DataplaneError { message } => tracing::error!(%message, "data plane error"),
        Event::Cluster { kind, sa, detail } => {
            if *kind == "ack_timeout" {
                tracing::warn!(%detail, "cluster: ack timeout");
            } else {
                tracing::info!(event = kind, sa = sa.as_deref().unwrap_or("-"), %detail, "cluster");
            }
        }
    }
}

fn log_membership(ev: &MembershipEvent) {
    match ev {
        MembershipEvent::MemberUp { node, view } => {
            tracing::info!(%node, epoch = view.epoch, live = view.live.len(), "cluster member up");
        }
        MembershipEvent::MemberDown { node, reason, view } => {
            tracing::warn!(%node, ?reason, epoch = view.epoch, live = view.live.len(), "cluster member down");
        }
    }
}
