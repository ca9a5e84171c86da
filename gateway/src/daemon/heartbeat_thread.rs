//! The cluster heartbeat on a thread of its own, with its own single-threaded runtime.
//!
//! Why: batond's core runs on the main tokio runtime and calls the kernel synchronously
//! (XFRM netlink). While a call is slow, the worker running it cannot poll the runtime's
//! timer and I/O driver, and the other worker may sit parked on its condition variable
//! with nothing to wake it: the heartbeat task is then never polled, this node sends no
//! heartbeat, and its peers declare it down after `interval x multiplier` and take its
//! SAs over while it still owns them (a split brain, both nodes decrypting the same ESP).
//! Seen in the VM benchmark (docs/benchmarks.md, 2026-11-21): the first
//! `rfc4106(gcm(aes))` SA in a fresh emulated kernel took 2 to 4.5 s (the kernel's crypto
//! self-tests), and with the default 100 ms x 3 the peer declared the installing node
//! down 300 ms into it, at every cluster start. A runtime on a dedicated OS thread keeps
//! the heartbeat's timers and socket served whatever the core is doing.
//!
//! The heartbeat therefore says "this batond process runs", not "its core is
//! responsive"; it never reliably said the latter (a worker holding the driver kept
//! beating while the other one was stuck).

use std::collections::BTreeMap;
use std::net::SocketAddr;

use heartbeat::driver::Heartbeat;
use heartbeat::{Detector, Membership, MembershipEvent, NodeId};
use tokio::sync::{mpsc, oneshot};

/// A running heartbeat on its thread. Dropping it stops the heartbeat and ends the
/// thread.
#[derive(Debug)]
pub(super) struct HeartbeatThread {
    heartbeat: Heartbeat,
    /// Dropped with `self`: the thread's `block_on` returns and its runtime, with the
    /// heartbeat task, goes away.
    _stop: oneshot::Sender<()>,
}

impl HeartbeatThread {
    /// Starts `detector` on `socket` (bound; made non-blocking here) in a new thread.
    /// `peers` maps every configured peer to its heartbeat address. Membership changes
    /// arrive on the returned receiver, as from [`Heartbeat::spawn`].
    pub(super) async fn spawn(
        socket: std::net::UdpSocket,
        detector: Detector,
        peers: BTreeMap<NodeId, SocketAddr>,
    ) -> std::io::Result<(Self, mpsc::UnboundedReceiver<MembershipEvent>)> {
        socket.set_nonblocking(true)?;
        let (ready_tx, ready_rx) = oneshot::channel();
        let (stop_tx, stop_rx) = oneshot::channel::<()>();
        std::thread::Builder::new()
            .name("batond-heartbeat".into())
            .spawn(move || {
                let rt = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(r) => r,
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                        return;
                    }
                };
                rt.block_on(async move {
                    // The socket registers with the runtime that creates it: this one.
                    let started = tokio::net::UdpSocket::from_std(socket)
                        .and_then(|s| Heartbeat::spawn(s, detector, peers));
                    let ok = started.is_ok();
                    if ready_tx.send(started).is_err() || !ok {
                        return;
                    }
                    // Serves the heartbeat task until the handle is dropped.
                    let _ = stop_rx.await;
                });
            })?;
        let (heartbeat, events) = ready_rx
            .await
            .map_err(|_| std::io::Error::other("the heartbeat thread ended before starting"))??;
        Ok((
            Self {
                heartbeat,
                _stop: stop_tx,
            },
            events,
        ))
    }

    /// The current membership view ([`Heartbeat::membership`]).
    pub(super) fn membership(&self) -> Membership {
        self.heartbeat.membership()
    }

    /// Announces that this node leaves the cluster ([`Heartbeat::leave`]).
    pub(super) fn leave(&self) {
        self.heartbeat.leave();
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use heartbeat::driver::boot_incarnation;
    use heartbeat::{ClusterKey, DetectorConfig};

    use super::*;

    fn detector(me: &NodeId, peer: &NodeId, key: &ClusterKey) -> Detector {
        let mut c = DetectorConfig::new(me.clone(), vec![peer.clone()]);
        c.interval = Duration::from_millis(50);
        c.multiplier = 3;
        Detector::new(c, key, boot_incarnation(), Instant::now())
    }

    /// Node a starts its heartbeat from a current-thread runtime that then makes no
    /// progress for 1.5 s (as batond's runtime inside a slow netlink call). Node b, on a
    /// runtime of its own, must keep seeing a live: 30 times its 150 ms detection time.
    /// With `Heartbeat::spawn` on a's runtime instead, b declares a down.
    #[test]
    fn heartbeat_goes_on_while_the_daemon_runtime_is_blocked() {
        let key = ClusterKey::from_bytes([7; heartbeat::key::CLUSTER_KEY_LEN]);
        let (a, b) = (NodeId::new("a").unwrap(), NodeId::new("b").unwrap());
        let sock_a = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let sock_b = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let (addr_a, addr_b) = (sock_a.local_addr().unwrap(), sock_b.local_addr().unwrap());

        let rt_b = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let (hb_b, mut events_b) = rt_b.block_on(async {
            sock_b.set_nonblocking(true).unwrap();
            let s = tokio::net::UdpSocket::from_std(sock_b).unwrap();
            Heartbeat::spawn(
                s,
                detector(&b, &a, &key),
                BTreeMap::from([(a.clone(), addr_a)]),
            )
            .unwrap()
        });

        let rt_a = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let (hb_a, _events_a) = rt_a
            .block_on(HeartbeatThread::spawn(
                sock_a,
                detector(&a, &b, &key),
                BTreeMap::from([(b.clone(), addr_b)]),
            ))
            .unwrap();

        let deadline = Instant::now() + Duration::from_secs(10);
        while !(hb_b.membership().live.contains(&a) && hb_a.membership().live.contains(&b)) {
            assert!(Instant::now() < deadline, "a and b never saw each other");
            // Drives rt_a meanwhile, as batond's runtime runs when its core is idle.
            rt_a.block_on(async { tokio::time::sleep(Duration::from_millis(10)).await });
        }
        while events_b.try_recv().is_ok() {}

        // rt_a is not driven at all now: nothing spawned on it runs.
        std::thread::sleep(Duration::from_millis(1500));

        let mut downs = Vec::new();
        while let Ok(ev) = events_b.try_recv() {
            if let MembershipEvent::MemberDown { node, reason, .. } = ev {
                downs.push((node, reason));
            }
        }
        assert!(downs.is_empty(), "b declared a down: {downs:?}");
        assert!(hb_b.membership().live.contains(&a));
        let beats = hb_b.stats();

        // Dropping the handle stops a's heartbeat: b then declares a down.
        drop(hb_a);
        let deadline = Instant::now() + Duration::from_secs(5);
        while hb_b.membership().live.contains(&a) {
            assert!(
                Instant::now() < deadline,
                "a's heartbeat went on after its handle was dropped ({beats:?})"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}
