//! Replication throughput over loopback TCP.
//!
//! ```text
//! cargo run --profile bench -p cluster --example repl_bench -- [records] [payload_bytes] [nodes]
//! ```
//!
//! Starts `nodes` replicators on 127.0.0.1 (each in its own single-worker tokio
//! runtime), has the first publish `records` records of `payload_bytes` each in
//! batches of 1,000, and measures the time until the last record is acked by every
//! other node (i.e. applied there). Then the `sync = "ack"` latency of single
//! writes, then coalescing: 1,000,000 updates to
//! 1,000 keys, and how many records that puts on the wire.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use cluster::channel::ChannelConfig;
use cluster::replicator::Replicator;
use cluster::replog::{RecordKey, ReplConfig};
use cluster::{ClusterKey, NodeId};

/// The log alone, no IO: two in-process logs exchanging messages directly.
fn sans_io(records: u64, payload: usize) {
    use cluster::replog::ReplicationLog;
    let a = NodeId::new("a").unwrap();
    let b = NodeId::new("b").unwrap();
    let mut la = ReplicationLog::new(a.clone(), [b.clone()], ReplConfig::default());
    let mut lb = ReplicationLog::new(b.clone(), [a.clone()], ReplConfig::default());
    la.peer_connected(&b, 1).unwrap();
    lb.peer_connected(&a, 1).unwrap();
    let body = vec![0xa5u8; payload];
    let start = Instant::now();
    let mut last = None;
    for k in 0..records {
        last = Some(
            la.publish(RecordKey::from_u128(u128::from(k)), body.clone())
                .unwrap(),
        );
    }
    let last = last.unwrap();
    while !la.is_acked_by_all_live(&last) {
        while let Some((_, m)) = la.poll_transmit() {
            lb.handle_message(&a, &m).unwrap();
        }
        while let Some((_, m)) = lb.poll_transmit() {
            la.handle_message(&b, &m).unwrap();
        }
        while lb.poll_event().is_some() {}
    }
    println!(
        "sans-IO log only: {:.0} records/s ({records} records of {payload} B, no encryption, no sockets)",
        records as f64 / start.elapsed().as_secs_f64()
    );
}

fn main() {
    let args: Vec<u64> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let records = args.first().copied().unwrap_or(200_000);
    let payload = usize::try_from(args.get(1).copied().unwrap_or(100)).unwrap();
    let nodes = usize::try_from(args.get(2).copied().unwrap_or(2))
        .unwrap()
        .max(2);

    sans_io(records, payload);

    let key = ClusterKey::generate();
    let addrs: BTreeMap<NodeId, std::net::SocketAddr> = (0..nodes)
        .map(|i| {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            (
                NodeId::new(&format!("n{i}")).unwrap(),
                l.local_addr().unwrap(),
            )
        })
        .collect();
    let mut running = Vec::new();
    for name in addrs.keys() {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let peers = addrs
            .iter()
            .filter(|(n, _)| *n != name)
            .map(|(n, a)| (n.clone(), *a))
            .collect();
        let cfg = ChannelConfig::new(name.clone(), addrs[name], peers, key.clone(), 1);
        let (rep, _events) = rt
            .block_on(Replicator::start(cfg, ReplConfig::default()))
            .unwrap();
        running.push((rt, rep));
    }
    let (rt, rep) = &running[0];
    let deadline = Instant::now() + Duration::from_secs(10);
    while rt
        .block_on(rep.stats())
        .unwrap()
        .1
        .iter()
        .any(|(_, s)| !s.connected)
    {
        assert!(Instant::now() < deadline, "mesh did not form");
        std::thread::sleep(Duration::from_millis(10));
    }

    let body = vec![0xa5u8; payload];
    let start = Instant::now();
    let mut last = None;
    let mut i = 0u64;
    while i < records {
        let n = (records - i).min(1000);
        let batch = (i..i + n)
            .map(|k| (RecordKey::from_u128(u128::from(k)), body.clone()))
            .collect();
        last = rt.block_on(rep.publish_batch(batch)).unwrap().pop();
        i += n;
    }
    rt.block_on(rep.wait_acked(last.unwrap())).unwrap();
    let elapsed = start.elapsed();
    let (_, peers) = rt.block_on(rep.stats()).unwrap();
    let bytes = peers[0].1.bytes_sent;
    println!(
        "nodes={nodes} records={records} payload={payload}B: {:.0} records/s to all peers acked, {:.1} MB/s per peer, {:.1} bytes/record on the wire (replication framing; +19 B Noise/TCP framing per ~60 KB message), {:.3} s",
        records as f64 / elapsed.as_secs_f64(),
        bytes as f64 / elapsed.as_secs_f64() / 1e6,
        bytes as f64 / records as f64,
        elapsed.as_secs_f64()
    );

    // sync = "ack" latency: one record at a time, wait until every peer applied it.
    let mut lat: Vec<Duration> = (0..2000u64)
        .map(|k| {
            let t0 = Instant::now();
            rt.block_on(rep.publish_acked(
                RecordKey::from_u128(u128::from(500_000_000 + k)),
                body.clone(),
            ))
            .unwrap();
            t0.elapsed()
        })
        .collect();
    lat.sort();
    let us = |d: Duration| d.as_secs_f64() * 1e6;
    println!(
        "sync=ack latency (publish until every peer applied it), 2000 sequential writes: p50 {:.0} us, p99 {:.0} us, max {:.0} us",
        us(lat[lat.len() / 2]),
        us(lat[lat.len() * 99 / 100]),
        us(lat[lat.len() - 1])
    );

    // Coalescing: 1,000,000 updates of 1,000 keys.
    let (_, peers) = rt.block_on(rep.stats()).unwrap();
    let before: u64 = peers[0].1.records_sent;
    let start = Instant::now();
    let mut last = None;
    for round in 0..1000u64 {
        let batch = (0..1000u64)
            .map(|k| {
                let mut v = body.clone();
                v[..8.min(payload)].copy_from_slice(&round.to_be_bytes()[..8.min(payload)]);
                (RecordKey::from_u128(u128::from(1_000_000_000 + k)), v)
            })
            .collect();
        last = rt.block_on(rep.publish_batch(batch)).unwrap().pop();
    }
    rt.block_on(rep.wait_acked(last.unwrap())).unwrap();
    let (_, peers) = rt.block_on(rep.stats()).unwrap();
    let sent = peers[0].1.records_sent - before;
    println!(
        "coalescing: 1000000 updates of 1000 keys in {:.3} s put {sent} records on the wire to each peer",
        start.elapsed().as_secs_f64()
    );
}
