//! A small tokio driver: one UDP socket, one task, the [`Detector`] inside.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokio::net::UdpSocket;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use crate::detector::{Detector, Membership, MembershipEvent, Stats};
use crate::node::NodeId;

/// An incarnation for this boot: the wall-clock time in microseconds since the Unix
/// epoch. Larger than any earlier boot's as long as the clock does not step back
/// across a restart.
pub fn boot_incarnation() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
        .unwrap_or(1)
        .max(1)
}

/// Handle on a running heartbeat task. Dropping it stops the task.
#[derive(Debug)]
pub struct Heartbeat {
    membership: watch::Receiver<Membership>,
    stats: watch::Receiver<Stats>,
    local_addr: SocketAddr,
    leave: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl Heartbeat {
    /// Starts the detector on `socket`. `peers` maps every configured peer to its
    /// heartbeat address. Membership changes arrive on the returned receiver (also
    /// readable at any time through [`Heartbeat::membership`]).
    pub fn spawn(
        socket: UdpSocket,
        detector: Detector,
        peers: BTreeMap<NodeId, SocketAddr>,
    ) -> std::io::Result<(Self, mpsc::UnboundedReceiver<MembershipEvent>)> {
        let local_addr = socket.local_addr()?;
        let (mtx, mrx) = watch::channel(detector.membership().clone());
        let (stx, srx) = watch::channel(detector.stats().clone());
        let (etx, erx) = mpsc::unbounded_channel();
        let (ltx, lrx) = watch::channel(false);
        let task = tokio::spawn(run(socket, detector, peers, mtx, stx, etx, lrx));
        Ok((
            Self {
                membership: mrx,
                stats: srx,
                local_addr,
                leave: ltx,
                task,
            },
            erx,
        ))
    }

    /// The current membership view.
    pub fn membership(&self) -> Membership {
        self.membership.borrow().clone()
    }

    /// A watch on the membership view, for tasks that wait on changes.
    pub fn watch_membership(&self) -> watch::Receiver<Membership> {
        self.membership.clone()
    }

    /// Counters (updated after every datagram and timer).
    pub fn stats(&self) -> Stats {
        self.stats.borrow().clone()
    }

    /// Announces that this node leaves the cluster (shutdown, drain): peers drop it
    /// at once (see [`Detector::leave`]). Keep the handle alive for a few intervals
    /// afterwards so the announcement is repeated.
    pub fn leave(&self) {
        self.leave.send_replace(true);
    }

    /// Address the socket is bound to.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }
}

impl Drop for Heartbeat {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn run(
    socket: UdpSocket,
    mut det: Detector,
    peers: BTreeMap<NodeId, SocketAddr>,
    membership: watch::Sender<Membership>,
    stats: watch::Sender<Stats>,
    events: mpsc::UnboundedSender<MembershipEvent>,
    mut leave: watch::Receiver<bool>,
) {
    let mut buf = vec![0u8; 2048];
    loop {
        // Read what already arrived before running timers: after a stall of this
        // process (VM pause, overload) the peers' heartbeats are sitting in the
        // socket buffer, and they must count before any detection timer fires.
        while let Ok((n, from)) = socket.try_recv_from(&mut buf) {
            let data = buf.get(..n).unwrap_or_default();
            if let Err(reason) = det.handle_datagram(Instant::now(), data) {
                tracing::debug!(%from, %reason, "heartbeat dropped");
            }
        }
        let now = Instant::now();
        det.handle_timeout(now);
        while let Some(t) = det.poll_transmit(now) {
            if let Some(addr) = peers.get(&t.to)
                && let Err(e) = socket.send_to(&t.payload, addr).await
            {
                tracing::debug!(peer = %t.to, %addr, error = %e, "heartbeat send failed");
            }
        }
        while let Some(ev) = det.poll_event() {
            match &ev {
                MembershipEvent::MemberUp { node, view } => {
                    tracing::info!(%node, epoch = view.epoch, "cluster member up");
                    membership.send_replace(view.clone());
                }
                MembershipEvent::MemberDown { node, reason, view } => {
                    tracing::warn!(%node, ?reason, epoch = view.epoch, "cluster member down");
                    membership.send_replace(view.clone());
                }
            }
            // The owner may have gone away; the watch still works.
            let _ = events.send(ev);
        }
        stats.send_replace(det.stats().clone());
        let deadline = det
            .poll_timeout()
            .unwrap_or_else(|| now + Duration::from_secs(1));
        tokio::select! {
            r = socket.recv_from(&mut buf) => match r {
                Ok((n, from)) => {
                    let data = buf.get(..n).unwrap_or_default();
                    if let Err(reason) = det.handle_datagram(Instant::now(), data) {
                        tracing::debug!(%from, %reason, "heartbeat dropped");
                    }
                }
                Err(e) => {
                    // ICMP errors surface here on Linux; they are not fatal.
                    tracing::trace!(error = %e, "heartbeat recv error");
                }
            },
            () = tokio::time::sleep_until(tokio::time::Instant::from_std(deadline)) => {}
            r = leave.changed(), if !det.is_leaving() => {
                if r.is_ok() && *leave.borrow() {
                    det.leave();
                }
            }
        }
    }
}
