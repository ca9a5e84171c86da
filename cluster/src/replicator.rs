//! A tokio task running a [`ReplicationLog`] over a [`Channel`], with an async
//! handle. This is what the gateway uses; the SA-level cluster layer can also run
//! the log itself inside its own loop if it needs to.
//!
//! Channel messages whose first byte is not a replication message type (see
//! [`crate::replog::wire`]) are handed to the owner as [`ReplicatorEvent::Message`],
//! so higher layers (ownership, transfer) can share the channel; they send with
//! [`Replicator::send`].

use std::collections::{BTreeSet, HashMap};
use std::net::SocketAddr;

use heartbeat::NodeId;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::channel::{Channel, ChannelConfig, ChannelError, ChannelEvent};
use crate::replog::{
    LogStats, PeerStats, Record, RecordKey, ReplConfig, ReplError, ReplEvent, ReplicationLog,
    Token, is_replication_message,
};

/// What the replicator tells its owner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReplicatorEvent {
    /// From the replication log (records changed by peers, acks, resyncs).
    Repl(ReplEvent),
    /// A session with `node` came up.
    PeerConnected {
        /// Peer.
        node: NodeId,
        /// Its incarnation.
        incarnation: u64,
    },
    /// The session with `node` went down.
    PeerDisconnected {
        /// Peer.
        node: NodeId,
    },
    /// A non-replication message from `node`, for higher layers.
    Message {
        /// Peer.
        node: NodeId,
        /// Message (first byte outside `0x01..=0x1f`).
        msg: Vec<u8>,
    },
}

/// How a wait for acks ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AckOutcome {
    /// Every live peer applied the write (or a newer one of ours).
    Acked,
    /// Another node wrote a newer version of the key first ([`ReplEvent::Superseded`]).
    Superseded,
}

/// The replicator task stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("replicator stopped")]
pub struct Stopped;

type Reply<T> = oneshot::Sender<T>;

enum Cmd {
    Publish(RecordKey, Vec<u8>, Reply<Result<Token, ReplError>>),
    PublishBatch(
        Vec<(RecordKey, Vec<u8>)>,
        Reply<Result<Vec<Token>, ReplError>>,
    ),
    Delete(RecordKey, Reply<Token>),
    WaitAcked(Token, Reply<AckOutcome>),
    Get(RecordKey, Reply<Option<Record>>),
    Snapshot(Reply<Vec<(RecordKey, Record)>>),
    Stats(Reply<(LogStats, Vec<(NodeId, PeerStats)>)>),
    SetLive(BTreeSet<NodeId>),
    SyncedWithLive(Reply<bool>),
    Send(NodeId, Vec<u8>, Reply<Result<(), ChannelError>>),
}

/// Handle on a running replicator. Dropping it stops the task and the channel.
#[derive(Debug)]
pub struct Replicator {
    cmd: mpsc::UnboundedSender<Cmd>,
    local_addr: SocketAddr,
    task: JoinHandle<()>,
}

impl Replicator {
    /// Starts the channel and the log. Events arrive on the returned receiver;
    /// drain it (or drop it: events are then discarded).
    pub async fn start(
        channel: ChannelConfig,
        repl: ReplConfig,
    ) -> std::io::Result<(Self, mpsc::UnboundedReceiver<ReplicatorEvent>)> {
        let mut repl = repl;
        repl.counter_floor = repl.counter_floor.max(channel.incarnation);
        let log = ReplicationLog::new(channel.node.clone(), channel.peers.keys().cloned(), repl);
        let (chan, chan_rx) = Channel::start(channel).await?;
        let local_addr = chan.local_addr();
        let (ctx, crx) = mpsc::unbounded_channel();
        let (etx, erx) = mpsc::unbounded_channel();
        let task = tokio::spawn(run(log, chan, chan_rx, crx, etx));
        Ok((
            Self {
                cmd: ctx,
                local_addr,
                task,
            },
            erx,
        ))
    }

    /// The channel's listen address.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    async fn ask<T>(&self, f: impl FnOnce(Reply<T>) -> Cmd) -> Result<T, Stopped> {
        let (tx, rx) = oneshot::channel();
        self.cmd.send(f(tx)).map_err(|_| Stopped)?;
        rx.await.map_err(|_| Stopped)
    }

    /// Writes a record (`sync = "async"`: returns once stored locally and queued).
    pub async fn publish(&self, key: RecordKey, payload: Vec<u8>) -> Result<Token, ReplError> {
        self.ask(|r| Cmd::Publish(key, payload, r))
            .await
            .unwrap_or(Err(ReplError::Stopped))
    }

    /// Writes several records in one round trip to the task; stops at the first
    /// payload that is too large (earlier ones are written).
    pub async fn publish_batch(
        &self,
        records: Vec<(RecordKey, Vec<u8>)>,
    ) -> Result<Vec<Token>, ReplError> {
        self.ask(|r| Cmd::PublishBatch(records, r))
            .await
            .unwrap_or(Err(ReplError::Stopped))
    }

    /// Deletes a record.
    pub async fn delete(&self, key: RecordKey) -> Result<Token, Stopped> {
        self.ask(|r| Cmd::Delete(key, r)).await
    }

    /// Resolves when every live peer has applied the token's write (`sync = "ack"`),
    /// or when another node overwrote the key first. Callers bound the wait with a
    /// timeout of their choice.
    pub async fn wait_acked(&self, token: Token) -> Result<AckOutcome, Stopped> {
        self.ask(|r| Cmd::WaitAcked(token, r)).await
    }

    /// `publish` then `wait_acked`.
    pub async fn publish_acked(
        &self,
        key: RecordKey,
        payload: Vec<u8>,
    ) -> Result<Token, ReplError> {
        let t = self.publish(key, payload).await?;
        self.wait_acked(t.clone())
            .await
            .map_err(|_| ReplError::Stopped)?;
        Ok(t)
    }

    /// The stored record (tombstones included).
    pub async fn get(&self, key: RecordKey) -> Result<Option<Record>, Stopped> {
        self.ask(|r| Cmd::Get(key, r)).await
    }

    /// Every live record.
    pub async fn snapshot(&self) -> Result<Vec<(RecordKey, Record)>, Stopped> {
        self.ask(Cmd::Snapshot).await
    }

    /// Counters.
    pub async fn stats(&self) -> Result<(LogStats, Vec<(NodeId, PeerStats)>), Stopped> {
        self.ask(Cmd::Stats).await
    }

    /// Sets the live membership (from the heartbeat) used for acks.
    pub fn set_live_members(&self, live: BTreeSet<NodeId>) -> Result<(), Stopped> {
        self.cmd.send(Cmd::SetLive(live)).map_err(|_| Stopped)
    }

    /// Whether every live peer is connected and has completed its resync to us.
    pub async fn is_synced_with_live(&self) -> Result<bool, Stopped> {
        self.ask(Cmd::SyncedWithLive).await
    }

    /// Sends a higher-layer message (first byte must be outside `0x01..=0x1f`).
    pub async fn send(
        &self,
        to: NodeId,
        msg: Vec<u8>,
    ) -> Result<Result<(), ChannelError>, Stopped> {
        self.ask(|r| Cmd::Send(to, msg, r)).await
    }
}

impl Drop for Replicator {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn run(
    mut log: ReplicationLog,
    chan: Channel,
    mut chan_rx: mpsc::Receiver<ChannelEvent>,
    mut crx: mpsc::UnboundedReceiver<Cmd>,
    etx: mpsc::UnboundedSender<ReplicatorEvent>,
) {
    let mut waiters: HashMap<Token, Vec<Reply<AckOutcome>>> = HashMap::new();
    let mut prune_at = 1024;
    loop {
        tokio::select! {
            ev = chan_rx.recv() => {
                let Some(ev) = ev else { return };
                on_channel(&mut log, &chan, &etx, ev);
                // Take whatever else is ready before flushing: fewer, fuller batches.
                for _ in 0..256 {
                    match chan_rx.try_recv() {
                        Ok(ev) => on_channel(&mut log, &chan, &etx, ev),
                        Err(_) => break,
                    }
                }
            }
            cmd = crx.recv() => {
                let Some(cmd) = cmd else { return };
                on_cmd(&mut log, &chan, &mut waiters, cmd);
                for _ in 0..256 {
                    match crx.try_recv() {
                        Ok(cmd) => on_cmd(&mut log, &chan, &mut waiters, cmd),
                        Err(_) => break,
                    }
                }
            }
        }
        if waiters.len() >= prune_at {
            // Callers that timed out dropped their receivers: forget those tokens.
            waiters.retain(|t, ws| {
                ws.retain(|w| !w.is_closed());
                if ws.is_empty() {
                    log.untrack(t);
                }
                !ws.is_empty()
            });
            prune_at = (waiters.len() * 2).max(1024);
        }
        while let Some((to, msg)) = log.poll_transmit() {
            // A failure means the session just went; its PeerDisconnected follows.
            let _ = chan.send(&to, msg);
        }
        while let Some(ev) = log.poll_event() {
            let done = match &ev {
                ReplEvent::Acked(t) => Some((t, AckOutcome::Acked)),
                ReplEvent::Superseded(t) => Some((t, AckOutcome::Superseded)),
                _ => None,
            };
            if let Some((t, outcome)) = done
                && let Some(ws) = waiters.remove(t)
            {
                for w in ws {
                    let _ = w.send(outcome);
                }
            }
            let _ = etx.send(ReplicatorEvent::Repl(ev));
        }
    }
}

fn on_channel(
    log: &mut ReplicationLog,
    chan: &Channel,
    etx: &mpsc::UnboundedSender<ReplicatorEvent>,
    ev: ChannelEvent,
) {
    match ev {
        ChannelEvent::PeerConnected { node, incarnation } => {
            if log.peer_connected(&node, incarnation).is_ok() {
                let _ = etx.send(ReplicatorEvent::PeerConnected { node, incarnation });
            }
        }
        ChannelEvent::PeerDisconnected { node } => {
            log.peer_disconnected(&node);
            let _ = etx.send(ReplicatorEvent::PeerDisconnected { node });
        }
        ChannelEvent::Message { node, msg } => {
            if is_replication_message(&msg) {
                if let Err(e) = log.handle_message(&node, &msg) {
                    tracing::warn!(%node, error = %e, "replication: dropping session");
                    chan.disconnect(&node);
                }
            } else {
                let _ = etx.send(ReplicatorEvent::Message { node, msg });
            }
        }
    }
}

fn on_cmd(
    log: &mut ReplicationLog,
    chan: &Channel,
    waiters: &mut HashMap<Token, Vec<Reply<AckOutcome>>>,
    cmd: Cmd,
) {
    match cmd {
        Cmd::Publish(k, v, r) => {
            let _ = r.send(log.publish(k, v));
        }
        Cmd::PublishBatch(recs, r) => {
            let res = recs
                .into_iter()
                .map(|(k, v)| log.publish(k, v))
                .collect::<Result<Vec<_>, _>>();
            let _ = r.send(res);
        }
        Cmd::Delete(k, r) => {
            let _ = r.send(log.delete(k));
        }
        Cmd::WaitAcked(t, r) => {
            if log.is_acked_by_all_live(&t) {
                let _ = r.send(AckOutcome::Acked);
            } else if log.is_superseded(&t) {
                let _ = r.send(AckOutcome::Superseded);
            } else {
                waiters.entry(t.clone()).or_default().push(r);
                log.track(t);
            }
        }
        Cmd::Get(k, r) => {
            let _ = r.send(log.record(&k).cloned());
        }
        Cmd::Snapshot(r) => {
            let _ = r.send(log.iter().map(|(k, v)| (k.clone(), v.clone())).collect());
        }
        Cmd::Stats(r) => {
            let _ = r.send((log.stats().clone(), log.all_peer_stats()));
        }
        Cmd::SetLive(l) => log.set_live_members(&l),
        Cmd::SyncedWithLive(r) => {
            let _ = r.send(log.is_synced_with_live());
        }
        Cmd::Send(to, msg, r) => {
            let res = if is_replication_message(&msg) {
                Err(ChannelError::ReservedType(
                    msg.first().copied().unwrap_or(0),
                ))
            } else {
                chan.send(&to, msg)
            };
            let _ = r.send(res);
        }
    }
}
