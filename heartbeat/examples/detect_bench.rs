//! Failure-detection time over loopback UDP with the real driver.
//!
//! ```text
//! cargo run --profile bench -p heartbeat --example detect_bench -- [trials] [interval_ms] [multiplier]
//! ```
//!
//! Each trial starts two nodes, waits until both see each other Up, then either
//! kills one (drops its task and socket) or has it leave (AdminDown), and measures
//! the time until the survivor reports it Down. Prints min / median / max.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use heartbeat::driver::{Heartbeat, boot_incarnation};
use heartbeat::{ClusterKey, Detector, DetectorConfig, MembershipEvent, NodeId};
use tokio::net::UdpSocket;

async fn trial(interval: Duration, mult: u8, leave: bool) -> Duration {
    let key = ClusterKey::generate();
    let names = [NodeId::new("a").unwrap(), NodeId::new("b").unwrap()];
    let sa = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let sb = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let (aa, ab) = (sa.local_addr().unwrap(), sb.local_addr().unwrap());
    let mk = |me: usize, sock: UdpSocket, peer_addr| {
        let other = names[1 - me].clone();
        let mut cfg = DetectorConfig::new(names[me].clone(), vec![other.clone()]);
        cfg.interval = interval;
        cfg.multiplier = mult;
        let det = Detector::new(cfg, &key, boot_incarnation(), Instant::now());
        Heartbeat::spawn(sock, det, BTreeMap::from([(other, peer_addr)])).unwrap()
    };
    let (a, mut aev) = mk(0, sa, ab);
    let (b, _bev) = mk(1, sb, aa);
    while b.membership().live.len() < 2 || a.membership().live.len() < 2 {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    while aev.try_recv().is_ok() {}
    // Random phase relative to the heartbeat schedule.
    let jitter = boot_incarnation() % 1000;
    tokio::time::sleep(interval * 3 + Duration::from_micros(jitter * 97)).await;
    let t0 = Instant::now();
    if leave {
        b.leave();
    } else {
        drop(b);
    }
    loop {
        if let Some(MembershipEvent::MemberDown { .. }) = aev.recv().await {
            return t0.elapsed();
        }
    }
}

fn main() {
    let args: Vec<u64> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let trials = args.first().copied().unwrap_or(20);
    let interval = Duration::from_millis(args.get(1).copied().unwrap_or(100));
    let mult = u8::try_from(args.get(2).copied().unwrap_or(3)).unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    for leave in [false, true] {
        let mut v: Vec<Duration> = (0..trials)
            .map(|_| rt.block_on(trial(interval, mult, leave)))
            .collect();
        v.sort();
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        println!(
            "{}: interval {} ms x {mult}, {trials} trials: min {:.1} ms, median {:.1} ms, max {:.1} ms",
            if leave {
                "planned leave (AdminDown)"
            } else {
                "node killed"
            },
            interval.as_millis(),
            ms(v[0]),
            ms(v[v.len() / 2]),
            ms(v[v.len() - 1]),
        );
    }
}
