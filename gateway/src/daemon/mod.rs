//! The runtime of `batond`: sockets, the timer, the control socket, signals, and the
//! executor of the protocol core's outputs. Small by design (quinn's driver, DESIGN §1):
//! all protocol decisions are the core's.

pub mod control_server;
pub mod core;
pub mod dataplane;
pub mod endpoint_core;
pub mod udp;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use self::core::{Core, Event, Output};
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
/// data plane.
pub fn default_core(config: &GatewayConfig) -> Result<Box<dyn Core>, DaemonError> {
    let dp = endpoint_core::open_dataplane(config).map_err(|e| DaemonError::Io {
        what: "open the data plane",
        target: format!("{:?}", config.gateway.dataplane),
        source: std::io::Error::other(e),
    })?;
    Ok(Box::new(endpoint_core::EndpointCore::new(
        config,
        dp,
        Instant::now(),
    )))
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
    let core = match core {
        Some(c) => c,
        None => default_core(&config)?,
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
    };
    let main = tokio::spawn(runtime.run(dgram_rx, ctl_rx, hangup, shutdown_rx));
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
}

impl Runtime {
    async fn run(
        mut self,
        mut dgrams: mpsc::Receiver<Datagram>,
        mut control: mpsc::Receiver<control_server::ControlMsg>,
        mut hangup: tokio::signal::unix::Signal,
        mut shutdown: oneshot::Receiver<()>,
    ) {
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
                _ = &mut shutdown => break,
            }
            self.drain().await;
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
        match &self.config.cluster {
            None => Response::err("not in a cluster"),
            Some(c) => Response::err(format!(
                "not in a cluster: [cluster] is configured (node \"{}\") but clustering is not active in this build",
                c.node
            )),
        }
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
            Request::Cluster | Request::Transfer { .. } | Request::Drain { .. } => {
                self.not_clustered()
            }
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
    }
}
