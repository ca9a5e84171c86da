//! Tokio driver for the node-to-node channel: one encrypted TCP connection per pair
//! of nodes, kept up for as long as the [`Channel`] lives.
//!
//! - **Who dials**: of two nodes, the one whose name sorts lower dials, the other
//!   accepts. There is never a simultaneous-open race, so there is exactly one
//!   connection per pair. The dialer retries with exponential backoff
//!   (`backoff_min` doubling up to `backoff_max`, reset after a connection that
//!   lived at least a second).
//! - **Which session wins**: a new authenticated session from a node replaces the
//!   current one if its Hello carries the same or a newer incarnation (the dialer
//!   only redials when it believes the old connection is dead, and a newer
//!   incarnation means the node restarted); a session with an older incarnation
//!   than the current one is refused. The owner sees `PeerDisconnected` for the old
//!   session before `PeerConnected` for the new one, and no message of the old
//!   session after that.
//! - **Liveness**: an established connection sends a keepalive every `keepalive`
//!   when idle and is dropped after `idle_timeout` without any frame; a handshake
//!   must complete within `handshake_timeout`.
//! - **Hostile input**: anything that fails the Noise handshake, decryption, framing
//!   or Hello rules closes that connection only (logged at debug level); it never
//!   panics and never affects other connections. At most [`MAX_ACCEPTED`] accepted
//!   connections exist at once (each costs about 200 KiB of buffers); further ones
//!   are closed on accept, so a flood of junk connections cannot exhaust memory, and
//!   each lasts at most `handshake_timeout` unless it authenticates.
//! - **Order**: messages from one peer reach the owner in the order sent, within a
//!   session. Across sessions nothing is promised: the replication log resyncs.

mod conn;

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use heartbeat::{ClusterKey, NodeId};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::transport::{MAX_MESSAGE, Role};

/// Most accepted (inbound) connections alive at once, authenticated or not.
pub const MAX_ACCEPTED: usize = 64;

/// Channel settings (`[cluster] node`, `listen`, `peers`, `key_file`).
#[derive(Debug, Clone)]
pub struct ChannelConfig {
    /// This node.
    pub node: NodeId,
    /// Address to listen on.
    pub listen: SocketAddr,
    /// Every other node and its channel address.
    pub peers: BTreeMap<NodeId, SocketAddr>,
    /// The cluster key.
    pub key: ClusterKey,
    /// This boot's incarnation (the heartbeat's).
    pub incarnation: u64,
    /// Idle keepalive interval (default 1 s).
    pub keepalive: Duration,
    /// Drop a connection silent for this long (default 5 s).
    pub idle_timeout: Duration,
    /// Handshake + Hello deadline (default 5 s).
    pub handshake_timeout: Duration,
    /// First redial delay (default 50 ms).
    pub backoff_min: Duration,
    /// Longest redial delay (default 2 s).
    pub backoff_max: Duration,
}

impl ChannelConfig {
    /// Settings with default timers.
    pub fn new(
        node: NodeId,
        listen: SocketAddr,
        peers: BTreeMap<NodeId, SocketAddr>,
        key: ClusterKey,
        incarnation: u64,
    ) -> Self {
        Self {
            node,
            listen,
            peers,
            key,
            incarnation,
            keepalive: Duration::from_secs(1),
            idle_timeout: Duration::from_secs(5),
            handshake_timeout: Duration::from_secs(5),
            backoff_min: Duration::from_millis(50),
            backoff_max: Duration::from_secs(2),
        }
    }
}

/// What the channel tells its owner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChannelEvent {
    /// An authenticated session with `node` is up.
    PeerConnected {
        /// The peer.
        node: NodeId,
        /// The incarnation its Hello carried.
        incarnation: u64,
    },
    /// The session with `node` is gone.
    PeerDisconnected {
        /// The peer.
        node: NodeId,
    },
    /// A message from `node`.
    Message {
        /// The peer.
        node: NodeId,
        /// The message.
        msg: Vec<u8>,
    },
}

/// Why a send failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChannelError {
    /// No session with that node right now.
    #[error("not connected to {0}")]
    NotConnected(NodeId),
    /// Message over [`MAX_MESSAGE`].
    #[error("message of {0} bytes exceeds {MAX_MESSAGE}")]
    TooLarge(usize),
    /// Message type reserved for the replication log (first byte `0x01..=0x1f`).
    #[error("message type {0:#04x} is reserved for the replication log")]
    ReservedType(u8),
}

pub(crate) enum Internal {
    Established {
        conn_id: u64,
        node: NodeId,
        incarnation: u64,
        dialed: bool,
        tx: mpsc::UnboundedSender<Vec<u8>>,
    },
    Message {
        conn_id: u64,
        node: NodeId,
        msg: Vec<u8>,
    },
    Closed {
        conn_id: u64,
        node: Option<NodeId>,
    },
}

/// The current session's writer per node, with the session's id.
type Writers = Arc<Mutex<HashMap<NodeId, (u64, mpsc::UnboundedSender<Vec<u8>>)>>>;

/// A running channel. Dropping it closes every connection.
#[derive(Debug)]
pub struct Channel {
    writers: Writers,
    local_addr: SocketAddr,
    tasks: Vec<JoinHandle<()>>,
}

impl Channel {
    /// Binds `cfg.listen`, starts accepting and dialing, and returns the channel and
    /// the receiver of its events. Must be called inside a tokio runtime.
    pub async fn start(
        cfg: ChannelConfig,
    ) -> std::io::Result<(Self, mpsc::Receiver<ChannelEvent>)> {
        let listener = TcpListener::bind(cfg.listen).await?;
        let local_addr = listener.local_addr()?;
        let cfg = Arc::new(cfg);
        let writers: Writers = Arc::default();
        let next_id = Arc::new(AtomicU64::new(1));
        let (itx, irx) = mpsc::unbounded_channel();
        let (etx, erx) = mpsc::channel(4096);
        let mut tasks = Vec::new();
        tasks.push(tokio::spawn(mesh(cfg.clone(), irx, etx, writers.clone())));
        tasks.push(tokio::spawn(accept_loop(
            listener,
            cfg.clone(),
            itx.clone(),
            next_id.clone(),
        )));
        for (peer, addr) in &cfg.peers {
            if *peer > cfg.node {
                tasks.push(tokio::spawn(dial_loop(
                    peer.clone(),
                    *addr,
                    cfg.clone(),
                    itx.clone(),
                    next_id.clone(),
                )));
            }
        }
        Ok((
            Self {
                writers,
                local_addr,
                tasks,
            },
            erx,
        ))
    }

    /// The bound listen address.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Queues a message to `to` on the current session.
    pub fn send(&self, to: &NodeId, msg: Vec<u8>) -> Result<(), ChannelError> {
        if msg.len() > MAX_MESSAGE {
            return Err(ChannelError::TooLarge(msg.len()));
        }
        let w = self.writers.lock().unwrap_or_else(|e| e.into_inner());
        match w.get(to) {
            Some((_, tx)) => tx
                .send(msg)
                .map_err(|_| ChannelError::NotConnected(to.clone())),
            None => Err(ChannelError::NotConnected(to.clone())),
        }
    }

    /// The id of the current session with `node`, if any. Read it when handling that
    /// session's [`ChannelEvent::PeerConnected`] and pass it to
    /// [`Channel::send_in_session`].
    pub fn session(&self, node: &NodeId) -> Option<u64> {
        let w = self.writers.lock().unwrap_or_else(|e| e.into_inner());
        w.get(node).map(|(id, _)| *id)
    }

    /// Queues a message to `to` only if `session` is still the current one: a message
    /// built for a session that a reconnection replaced (its sequence numbers belong to
    /// the old session) must not reach the new one, whose peer would see a protocol
    /// violation. The replication log resends everything on the new session anyway.
    pub fn send_in_session(
        &self,
        to: &NodeId,
        session: u64,
        msg: Vec<u8>,
    ) -> Result<(), ChannelError> {
        if msg.len() > MAX_MESSAGE {
            return Err(ChannelError::TooLarge(msg.len()));
        }
        let w = self.writers.lock().unwrap_or_else(|e| e.into_inner());
        match w.get(to) {
            Some((id, tx)) if *id == session => tx
                .send(msg)
                .map_err(|_| ChannelError::NotConnected(to.clone())),
            _ => Err(ChannelError::NotConnected(to.clone())),
        }
    }

    /// Drops the current session with `node` (e.g. after it broke a higher-level
    /// protocol); it will be re-established as usual.
    pub fn disconnect(&self, node: &NodeId) {
        let mut w = self.writers.lock().unwrap_or_else(|e| e.into_inner());
        w.remove(node);
    }

    /// Nodes with a session right now.
    pub fn connected(&self) -> Vec<NodeId> {
        let w = self.writers.lock().unwrap_or_else(|e| e.into_inner());
        let mut v: Vec<NodeId> = w.keys().cloned().collect();
        v.sort();
        v
    }
}

impl Drop for Channel {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
        self.writers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
    }
}

async fn accept_loop(
    listener: TcpListener,
    cfg: Arc<ChannelConfig>,
    itx: mpsc::UnboundedSender<Internal>,
    next_id: Arc<AtomicU64>,
) {
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_ACCEPTED));
    loop {
        match listener.accept().await {
            Ok((stream, from)) => {
                let Ok(permit) = slots.clone().try_acquire_owned() else {
                    tracing::warn!(%from, "cluster channel: too many inbound connections, closing");
                    drop(stream);
                    continue;
                };
                let id = next_id.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(%from, conn = id, "cluster channel: accepted");
                let cfg = cfg.clone();
                let itx = itx.clone();
                tokio::spawn(async move {
                    conn::run(stream, Role::Responder, None, id, cfg, itx).await;
                    drop(permit);
                });
            }
            Err(e) => {
                tracing::warn!(error = %e, "cluster channel: accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

async fn dial_loop(
    peer: NodeId,
    addr: SocketAddr,
    cfg: Arc<ChannelConfig>,
    itx: mpsc::UnboundedSender<Internal>,
    next_id: Arc<AtomicU64>,
) {
    let mut backoff = cfg.backoff_min;
    loop {
        let attempt = tokio::time::timeout(cfg.handshake_timeout, TcpStream::connect(addr)).await;
        match attempt {
            Ok(Ok(stream)) => {
                let id = next_id.fetch_add(1, Ordering::Relaxed);
                let started = tokio::time::Instant::now();
                conn::run(
                    stream,
                    Role::Initiator,
                    Some(peer.clone()),
                    id,
                    cfg.clone(),
                    itx.clone(),
                )
                .await;
                if started.elapsed() >= Duration::from_secs(1) {
                    backoff = cfg.backoff_min;
                }
            }
            Ok(Err(e)) => tracing::trace!(%peer, %addr, error = %e, "cluster channel: dial failed"),
            Err(_) => tracing::debug!(%peer, %addr, "cluster channel: dial timed out"),
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(cfg.backoff_max);
    }
}

struct Current {
    conn_id: u64,
    incarnation: u64,
}

async fn mesh(
    cfg: Arc<ChannelConfig>,
    mut irx: mpsc::UnboundedReceiver<Internal>,
    etx: mpsc::Sender<ChannelEvent>,
    writers: Writers,
) {
    let mut current: HashMap<NodeId, Current> = HashMap::new();
    while let Some(ev) = irx.recv().await {
        let out = match ev {
            Internal::Established {
                conn_id,
                node,
                incarnation,
                dialed,
                tx,
            } => {
                let allowed = cfg.peers.contains_key(&node)
                    && node != cfg.node
                    && (dialed || node < cfg.node);
                if !allowed {
                    tracing::warn!(%node, dialed, "cluster channel: session refused (not a peer that dials us)");
                    continue; // dropping tx closes the connection
                }
                let mut out = Vec::new();
                if let Some(cur) = current.get(&node) {
                    if incarnation < cur.incarnation {
                        tracing::warn!(%node, incarnation, current = cur.incarnation, "cluster channel: stale incarnation refused");
                        continue;
                    }
                    // The new session replaces the old one.
                    out.push(ChannelEvent::PeerDisconnected { node: node.clone() });
                }
                current.insert(
                    node.clone(),
                    Current {
                        conn_id,
                        incarnation,
                    },
                );
                writers
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(node.clone(), (conn_id, tx));
                tracing::info!(%node, incarnation, "cluster channel: peer connected");
                out.push(ChannelEvent::PeerConnected { node, incarnation });
                out
            }
            Internal::Message { conn_id, node, msg } => {
                if current.get(&node).is_some_and(|c| c.conn_id == conn_id) {
                    vec![ChannelEvent::Message { node, msg }]
                } else {
                    continue;
                }
            }
            Internal::Closed { conn_id, node } => {
                let Some(node) = node else { continue };
                if current.get(&node).is_some_and(|c| c.conn_id == conn_id) {
                    current.remove(&node);
                    writers
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .remove(&node);
                    tracing::info!(%node, "cluster channel: peer disconnected");
                    vec![ChannelEvent::PeerDisconnected { node }]
                } else {
                    continue;
                }
            }
        };
        for e in out {
            if etx.send(e).await.is_err() {
                return; // owner gone
            }
        }
    }
}
