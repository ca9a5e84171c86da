//! One TCP connection: the sans-IO [`Session`] on a socket.

use std::sync::Arc;

use heartbeat::NodeId;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::{ChannelConfig, Internal};
use crate::transport::{Hello, PROTOCOL_VERSION, Role, Session, SessionEvent};

/// Runs one connection to completion. Reports `Established`, every message, and
/// `Closed` to the mesh.
pub(super) async fn run(
    stream: TcpStream,
    role: Role,
    expected: Option<NodeId>,
    conn_id: u64,
    cfg: Arc<ChannelConfig>,
    itx: mpsc::UnboundedSender<Internal>,
) {
    let node = drive(stream, role, expected, conn_id, &cfg, &itx).await;
    let _ = itx.send(Internal::Closed { conn_id, node });
}

async fn drive(
    stream: TcpStream,
    role: Role,
    expected: Option<NodeId>,
    conn_id: u64,
    cfg: &ChannelConfig,
    itx: &mpsc::UnboundedSender<Internal>,
) -> Option<NodeId> {
    let _ = stream.set_nodelay(true);
    let local = Hello {
        node: cfg.node.clone(),
        incarnation: cfg.incarnation,
        version: PROTOCOL_VERSION,
    };
    let mut session = match Session::new(role, local, &cfg.key) {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(error = %e, "cluster channel: cannot start session");
            return None;
        }
    };
    let (mut rd, mut wr) = stream.into_split();
    // Writes go through their own task so a slow peer never stops us reading
    // (two nodes both blocked on writing to each other would deadlock).
    let (raw_tx, mut raw_rx) = mpsc::unbounded_channel::<Vec<u8>>();
    let writer = tokio::spawn(async move {
        while let Some(buf) = raw_rx.recv().await {
            if wr.write_all(&buf).await.is_err() {
                break;
            }
        }
        let _ = wr.shutdown().await;
    });
    let (app_tx, mut app_rx) = mpsc::unbounded_channel::<Vec<u8>>();
    let mut app_tx = Some(app_tx);
    let mut peer: Option<NodeId> = None;
    let mut buf = vec![0u8; 64 * 1024];
    let mut deadline = Instant::now() + cfg.handshake_timeout;
    let mut keepalive = tokio::time::interval(cfg.keepalive);
    keepalive.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let flush = |s: &mut Session| {
        let out = s.take_output();
        if out.is_empty() {
            Ok(())
        } else {
            raw_tx.send(out).map_err(|_| ())
        }
    };
    if flush(&mut session).is_err() {
        return None;
    }
    'conn: loop {
        tokio::select! {
            r = rd.read(&mut buf) => {
                let n = match r {
                    Ok(0) | Err(_) => break 'conn,
                    Ok(n) => n,
                };
                let data = buf.get(..n).unwrap_or_default();
                if let Err(e) = session.handle_input(data) {
                    tracing::debug!(conn = conn_id, peer = ?peer, error = %e, "cluster channel: dropping connection");
                    break 'conn;
                }
                if peer.is_some() {
                    deadline = Instant::now() + cfg.idle_timeout;
                }
                while let Some(ev) = session.poll_event() {
                    match ev {
                        SessionEvent::Established(h) => {
                            if expected.as_ref().is_some_and(|e| *e != h.node) {
                                tracing::warn!(conn = conn_id, expected = ?expected, got = %h.node, "cluster channel: peer has an unexpected name");
                                break 'conn;
                            }
                            let Some(tx) = app_tx.take() else { break 'conn };
                            peer = Some(h.node.clone());
                            deadline = Instant::now() + cfg.idle_timeout;
                            let _ = itx.send(Internal::Established {
                                conn_id,
                                node: h.node,
                                incarnation: h.incarnation,
                                dialed: role == Role::Initiator,
                                tx,
                            });
                        }
                        SessionEvent::Message(msg) => {
                            if let Some(node) = &peer {
                                let _ = itx.send(Internal::Message { conn_id, node: node.clone(), msg });
                            }
                        }
                    }
                }
                if flush(&mut session).is_err() {
                    break 'conn;
                }
            }
            m = app_rx.recv(), if peer.is_some() => {
                // None: the mesh dropped this session (replaced or refused).
                let Some(first) = m else { break 'conn };
                let mut msg = Some(first);
                // Encrypt everything already queued, then write it in one go.
                while let Some(m) = msg {
                    if session.send(&m).is_err() {
                        break 'conn;
                    }
                    msg = app_rx.try_recv().ok();
                }
                if flush(&mut session).is_err() {
                    break 'conn;
                }
            }
            _ = keepalive.tick(), if peer.is_some() => {
                if session.send_keepalive().is_err() || flush(&mut session).is_err() {
                    break 'conn;
                }
            }
            () = tokio::time::sleep_until(deadline) => {
                tracing::debug!(conn = conn_id, peer = ?peer, "cluster channel: timed out");
                break 'conn;
            }
        }
    }
    drop(raw_tx);
    // Let queued bytes go out, but do not wait long for a dead peer.
    let _ = tokio::time::timeout(std::time::Duration::from_millis(200), writer).await;
    peer
}
