//! Numbered UDP streams through the tunnel at a fixed packet rate, with each datagram's
//! receive time recorded, and what the records say about an event (a kill, a transfer):
//! how long nothing arrived and how many datagrams never did.
//!
//! The tools are this test binary re-run inside a namespace with [`TOOL_ENV`] set (no
//! extra packages in the guest). Times are the guest's wall clock in microseconds, which
//! every namespace shares, so a sink's receive times compare with the orchestrator's
//! event times.

use std::fs::File;
use std::io::Write;
use std::net::{SocketAddr, UdpSocket};
use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use interop::Netns;

/// Set on a traffic-tool child process: `<tool> <args...>`.
pub(crate) const TOOL_ENV: &str = "BATON_CLUSTER_TOOL";
/// Bytes per datagram (a sequence number, then filler).
const DATAGRAM: usize = 200;
/// Bytes per sink record: sequence number, receive time (µs), both big-endian u64.
const RECORD: usize = 16;

/// The guest's wall clock in microseconds since the epoch.
pub(crate) fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
}

/// Runs tool `spec` (this process is a tool child) and prints its `TOOL-RESULT` line.
pub(crate) fn run_tool(spec: &str) {
    let args: Vec<&str> = spec.split_whitespace().collect();
    let arg = |i: usize| {
        *args
            .get(i)
            .unwrap_or_else(|| panic!("tool {spec}: arg {i}"))
    };
    let addr = |i: usize| arg(i).parse::<SocketAddr>().expect("address");
    let result = match arg(0) {
        "rec-source" => rec_source(
            addr(1),
            arg(2).parse().expect("packets per second"),
            Path::new(arg(3)),
        ),
        "rec-sink" => rec_sink(addr(1), Path::new(arg(2)), Path::new(arg(3))),
        other => panic!("unknown tool {other}"),
    };
    // On a line of its own: libtest has printed "test cluster_vm_guest ... " before.
    println!("\nTOOL-RESULT {result}");
}

/// Sends numbered datagrams at `pps` until `stop` exists. Paced against the start, so a
/// stall of the (emulated) machine is followed by a catch-up burst, not a slower stream.
/// A send the local kernel refuses is not retried: that sequence number is lost.
fn rec_source(dst: SocketAddr, pps: u64, stop: &Path) -> String {
    let sock = UdpSocket::bind("0.0.0.0:0").expect("bind");
    let start = Instant::now();
    let interval = Duration::from_secs(1) / u32::try_from(pps.max(1)).expect("rate");
    let (mut sent, mut errors) = (0u64, 0u64);
    let mut last_error = "-".to_owned();
    let mut buf = [0x5au8; DATAGRAM];
    let mut seq = 0u64;
    while !(seq.is_multiple_of(16) && stop.exists()) {
        let due = start + interval * u32::try_from(seq).expect("sequence");
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        buf[..8].copy_from_slice(&seq.to_be_bytes());
        match sock.send_to(&buf, dst) {
            Ok(_) => sent += 1,
            Err(e) => {
                errors += 1;
                last_error = format!("seq{seq}:{}", e.kind()).replace(' ', "_");
            }
        }
        seq += 1;
    }
    format!("sent={sent} errors={errors} last_error={last_error}")
}

/// Receives numbered datagrams and appends (sequence, receive time) records to `out`
/// (written out every 50 ms, so a reader sees progress) until `stop` exists.
fn rec_sink(bind: SocketAddr, out: &Path, stop: &Path) -> String {
    let sock = UdpSocket::bind(bind).expect("bind");
    sock.set_read_timeout(Some(Duration::from_millis(20)))
        .expect("timeout");
    let mut file = File::create(out).expect("record file");
    let mut pending: Vec<u8> = Vec::with_capacity(64 * RECORD);
    let mut last_write = Instant::now();
    let mut received = 0u64;
    let mut buf = [0u8; 2048];
    let mut stop_seen: Option<Instant> = None;
    loop {
        if let Ok(len) = sock.recv(&mut buf) {
            let t = now_us();
            if let Some(seq) = buf.get(..8).filter(|_| len >= 8) {
                pending.extend_from_slice(seq);
                pending.extend_from_slice(&t.to_be_bytes());
                received += 1;
            }
        }
        if last_write.elapsed() >= Duration::from_millis(50) {
            file.write_all(&pending).expect("write records");
            pending.clear();
            last_write = Instant::now();
            match stop_seen {
                // Datagrams still in flight when the sources stopped.
                Some(s) if s.elapsed() > Duration::from_millis(500) => break,
                Some(_) => {}
                None if stop.exists() => stop_seen = Some(Instant::now()),
                None => {}
            }
        }
    }
    file.write_all(&pending).expect("write records");
    format!("received={received}")
}

/// A stream's datagram as its sink saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Rx {
    /// Sequence number.
    pub(crate) seq: u64,
    /// Receive time, µs since the epoch.
    pub(crate) t_us: u64,
}

/// The records a sink has written so far (a trailing partial record is left out).
pub(crate) fn read_records(path: &Path) -> Vec<Rx> {
    let bytes = std::fs::read(path).unwrap_or_default();
    bytes
        .chunks_exact(RECORD)
        .filter_map(|r| {
            let (s, t) = r.split_at_checked(8)?;
            Some(Rx {
                seq: u64::from_be_bytes(s.try_into().ok()?),
                t_us: u64::from_be_bytes(t.try_into().ok()?),
            })
        })
        .collect()
}

/// What one direction of a stream did around an event at `event_us`, looking at the
/// datagrams received from 50 ms before the event until `until_us`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Outage {
    /// The longest time without a datagram in the window (ms): the interruption.
    pub(crate) gap_ms: f64,
    /// From the event to the datagram that ended that gap (ms): for a kill, "kill to
    /// first packet through the new owner". 0 if the gap ended before the event.
    pub(crate) event_to_first_ms: f64,
    /// Sequence numbers missing between the first and the last datagram of the window.
    pub(crate) lost: u64,
    /// Datagrams received in the window.
    pub(crate) received: u64,
}

/// The outage of one direction around `event_us`; `None` if the window holds fewer than
/// two datagrams (nothing flowed: the caller's check fails on that).
pub(crate) fn outage(rx: &[Rx], event_us: u64, until_us: u64) -> Option<Outage> {
    let from = event_us.saturating_sub(50_000);
    let mut w: Vec<Rx> = rx
        .iter()
        .copied()
        .filter(|r| r.t_us >= from && r.t_us <= until_us)
        .collect();
    if w.len() < 2 {
        return None;
    }
    w.sort_by_key(|r| r.t_us);
    let (mut gap, mut end) = (0u64, 0u64);
    for pair in w.windows(2) {
        if let [a, b] = pair {
            let g = b.t_us.saturating_sub(a.t_us);
            if g > gap {
                (gap, end) = (g, b.t_us);
            }
        }
    }
    let mut seqs: Vec<u64> = w.iter().map(|r| r.seq).collect();
    seqs.sort_unstable();
    seqs.dedup();
    let (lo, hi) = (seqs.first().copied()?, seqs.last().copied()?);
    let lost = (hi - lo + 1).saturating_sub(seqs.len() as u64);
    Some(Outage {
        gap_ms: gap as f64 / 1000.0,
        event_to_first_ms: end.saturating_sub(event_us) as f64 / 1000.0,
        lost,
        received: w.len() as u64,
    })
}

/// Sequence numbers never received below the highest one received, and duplicates.
pub(crate) fn totals(rx: &[Rx]) -> (u64, u64, u64) {
    let mut seqs: Vec<u64> = rx.iter().map(|r| r.seq).collect();
    seqs.sort_unstable();
    let n = seqs.len() as u64;
    seqs.dedup();
    let dups = n - seqs.len() as u64;
    let top = seqs.last().map_or(0, |s| s + 1);
    (seqs.len() as u64, top - seqs.len() as u64, dups)
}

/// Median and maximum.
pub(crate) fn median_max(v: &[f64]) -> (f64, f64) {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let med = match s.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => s[n / 2],
        n => (s[n / 2 - 1] + s[n / 2]) / 2.0,
    };
    (med, s.last().copied().unwrap_or(f64::NAN))
}

/// Starts this binary as traffic tool `tool` inside `ns`.
pub(crate) fn spawn_tool(ns: &Netns, tool: &str) -> Child {
    let exe = std::env::current_exe().expect("own path");
    ns.command(&exe.to_string_lossy())
        .args([
            "--exact",
            "cluster_vm_guest",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(TOOL_ENV, tool)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn tool {tool}: {e}"))
}

/// Waits for a tool and returns its `TOOL-RESULT` line.
pub(crate) fn tool_result(child: Child, what: &str) -> String {
    let out = child.wait_with_output().expect("wait for tool");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    text.lines()
        .find_map(|l| l.split_once("TOOL-RESULT ").map(|(_, r)| r.to_owned()))
        .unwrap_or_else(|| panic!("{what}: no result ({}):\n{text}", out.status))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stream(times_ms: &[(u64, u64)]) -> Vec<Rx> {
        times_ms
            .iter()
            .map(|&(seq, t)| Rx {
                seq,
                t_us: 1_000_000_000 + t * 1000,
            })
            .collect()
    }

    #[test]
    fn outage_finds_the_gap_the_kill_made_and_the_loss() {
        // 1 ms apart, then nothing from 100 ms to 350 ms (seq 100..=348 lost).
        let mut pts: Vec<(u64, u64)> = (0..100).map(|i| (i, i)).collect();
        pts.extend((349..400).map(|i| (i, i + 1)));
        let rx = stream(&pts);
        let kill = 1_000_000_000 + 100_500;
        let o = outage(&rx, kill, u64::MAX).unwrap();
        assert!((o.gap_ms - 251.0).abs() < 1e-9, "{o:?}");
        assert!((o.event_to_first_ms - 249.5).abs() < 1e-9, "{o:?}");
        assert_eq!(o.lost, 249);
        assert_eq!(totals(&rx), (151, 249, 0));
    }

    #[test]
    fn no_traffic_is_no_outage_figure() {
        let rx = stream(&[(0, 0), (1, 1)]);
        assert_eq!(outage(&rx, 1_000_000_000 + 500_000, u64::MAX), None);
    }

    #[test]
    fn median_and_worst() {
        assert_eq!(median_max(&[3.0, 1.0, 2.0]), (2.0, 3.0));
        assert_eq!(median_max(&[4.0, 1.0, 2.0, 3.0]), (2.5, 4.0));
    }
}
