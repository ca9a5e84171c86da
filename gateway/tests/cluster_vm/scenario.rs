//! The guest side: the baseline, the cluster checks (failover, transfer, the wire) and
//! the measurement (many kills, many transfers) on the network of rig.rs.

use std::path::PathBuf;
use std::process::Child;
use std::time::{Duration, Instant};

use serde_json::Value as Json;

use super::esp_pcap::Wire;
use super::rig::{CLIENT, Node, Rig, SERVER};
use super::traffic::{Rx, now_us, outage, read_records, spawn_tool, tool_result, totals};

/// Datagrams per second each way.
const PPS: u64 = 1000;
const UP_PORT: u16 = 7100;
const DOWN_PORT: u16 = 7101;

/// A progress line with the guest's uptime, to see where the time goes under TCG.
fn step(what: &str) {
    let up = std::fs::read_to_string("/proc/uptime").unwrap_or_default();
    println!("[{} s] {what}", up.split_whitespace().next().unwrap_or("?"));
}

/// Polls `cond` every 100 ms until it gives a value or `timeout` passes. Not faster:
/// most conditions run `ikectl`, a process start that costs the emulated guest CPU time
/// batond needs for its heartbeats.
fn poll<T>(timeout: Duration, mut cond: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = cond() {
            return Some(v);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Both streams (client -> server and server -> client's virtual IP) with their sinks.
#[derive(Debug)]
pub(crate) struct Streams {
    up: Option<(Child, Child)>,
    down: Option<(Child, Child)>,
    up_rec: PathBuf,
    down_rec: PathBuf,
    stop: PathBuf,
    /// When the sources started (µs).
    pub(crate) started_us: u64,
}

/// What the streams did, once stopped.
#[derive(Debug)]
pub(crate) struct StreamEnd {
    up: Vec<Rx>,
    down: Vec<Rx>,
    up_source: String,
    down_source: String,
}

impl Streams {
    fn start(rig: &Rig, pps: u64) -> Self {
        let d = rig.dir.path();
        let (up_rec, down_rec, stop) = (d.join("up.rec"), d.join("down.rec"), d.join("stop"));
        let _ = std::fs::remove_file(&stop);
        let up_sink = spawn_tool(
            &rig.server,
            &format!(
                "rec-sink 0.0.0.0:{UP_PORT} {} {}",
                up_rec.display(),
                stop.display()
            ),
        );
        let down_sink = spawn_tool(
            &rig.client,
            &format!(
                "rec-sink 0.0.0.0:{DOWN_PORT} {} {}",
                down_rec.display(),
                stop.display()
            ),
        );
        for (ns, port) in [(&rig.server, UP_PORT), (&rig.client, DOWN_PORT)] {
            interop::wait_for(Duration::from_secs(20), "a sink to bind", || {
                Ok(interop::udp_port_bound(ns, port)?.then_some(()))
            })
            .expect("sink bound");
        }
        let started_us = now_us();
        let up_src = spawn_tool(
            &rig.client,
            &format!("rec-source {SERVER}:{UP_PORT} {pps} {}", stop.display()),
        );
        let down_src = spawn_tool(
            &rig.server,
            &format!(
                "rec-source {}:{DOWN_PORT} {pps} {}",
                rig.client_vip,
                stop.display()
            ),
        );
        Self {
            up: Some((up_src, up_sink)),
            down: Some((down_src, down_sink)),
            up_rec,
            down_rec,
            stop,
            started_us,
        }
    }

    /// The records both sinks wrote so far: (up, down).
    fn records(&self) -> (Vec<Rx>, Vec<Rx>) {
        (read_records(&self.up_rec), read_records(&self.down_rec))
    }

    /// Waits until both directions delivered `n` datagrams after `since_us`.
    fn wait_flowing(&self, since_us: u64, n: usize, timeout: Duration) -> Result<(), String> {
        let count = |rx: &[Rx]| rx.iter().filter(|r| r.t_us > since_us).count();
        let mut last = (0, 0);
        poll(timeout, || {
            let (u, d) = self.records();
            last = (count(&u), count(&d));
            (last.0 >= n && last.1 >= n).then_some(())
        })
        .ok_or_else(|| {
            format!(
                "traffic did not flow: after {:.3} s, {} datagrams client -> server and {} server -> client in {timeout:?} (wanted {n} each)",
                since_us.saturating_sub(self.started_us) as f64 / 1e6,
                last.0,
                last.1
            )
        })
    }

    fn stop(&mut self) -> StreamEnd {
        std::fs::write(&self.stop, b"").expect("stop file");
        let (up_src, up_sink) = self.up.take().expect("streams running");
        let (down_src, down_sink) = self.down.take().expect("streams running");
        let up_source = tool_result(up_src, "up source");
        let down_source = tool_result(down_src, "down source");
        tool_result(up_sink, "up sink");
        tool_result(down_sink, "down sink");
        let (up, down) = self.records();
        StreamEnd {
            up,
            down,
            up_source,
            down_source,
        }
    }
}

impl StreamEnd {
    fn describe(&self) -> String {
        let (ur, ul, ud) = totals(&self.up);
        let (dr, dl, dd) = totals(&self.down);
        // The rate the source held: its highest sequence number over the time between
        // the first and the last datagram received.
        let rate = |rx: &[Rx]| {
            let (t0, t1) = (
                rx.iter().map(|r| r.t_us).min(),
                rx.iter().map(|r| r.t_us).max(),
            );
            let top = rx.iter().map(|r| r.seq).max().unwrap_or(0);
            match (t0, t1) {
                (Some(a), Some(b)) if b > a => {
                    format!("{:.0}", top as f64 / ((b - a) as f64 / 1e6))
                }
                _ => "-".to_owned(),
            }
        };
        format!(
            "client->server received {ur} lost {ul} dups {ud} at {}/s (source {}); server->client received {dr} lost {dl} dups {dd} at {}/s (source {})",
            rate(&self.up),
            self.up_source,
            rate(&self.down),
            self.down_source
        )
    }
}

fn only_sa(sas: &[interop::IkeSaInfo]) -> Result<&interop::IkeSaInfo, String> {
    interop::checks::only_ike_sa(sas).map_err(|e| e.to_string())
}

/// The wire check: no (SPI, sequence) pair twice, `ike_sa_inits` IKE_SA_INIT requests.
fn check_wire(wire: &Wire, counters: &str, ike_sa_inits: usize) -> Result<String, String> {
    let rep = wire.repeated_pairs();
    if !rep.is_empty() {
        return Err(format!(
            "ESP (SPI, sequence) pairs seen more than once on the client's side: {:?}",
            rep.iter()
                .map(|(s, q, n)| format!("{s:08x}/{q} x{n}"))
                .collect::<Vec<_>>()
        ));
    }
    if wire.ike_sa_init_requests.len() != ike_sa_inits {
        return Err(format!(
            "{} IKE_SA_INIT requests on the wire, expected {ike_sa_inits} (a renegotiation?)",
            wire.ike_sa_init_requests.len()
        ));
    }
    if wire.esp.is_empty() {
        return Err("no ESP captured".into());
    }
    // "N packets dropped by kernel": a capture that missed packets cannot vouch.
    let dropped = counters
        .split(';')
        .find(|p| p.contains("dropped by kernel"))
        .and_then(|p| p.split_whitespace().next())
        .and_then(|n| n.parse::<u64>().ok())
        .unwrap_or(0);
    if dropped > 0 {
        return Err(format!("tcpdump dropped packets ({counters})"));
    }
    let per_spi: Vec<String> = wire
        .per_spi()
        .iter()
        .map(|(s, n)| format!("{s:08x}:{n}"))
        .collect();
    Ok(format!(
        "{} ESP packets, no (SPI, seq) pair twice; per SPI {}; {} IKE messages, {} IKE_SA_INIT request(s); tcpdump: {counters}",
        wire.esp.len(),
        per_spi.join(" "),
        wire.ike_messages,
        wire.ike_sa_init_requests.len()
    ))
}

/// One batond without `[cluster]` on the shared-VIP network: everything but the cluster.
pub(crate) fn baseline_case() -> String {
    let mut rig = Rig::new(1);
    rig.start_capture();
    rig.start_nodes(false);
    step("baseline: batond started");
    let c = rig.connect_client();
    step("baseline: tunnel up");
    let g = rig.nodes[0].sas();
    let agree =
        only_sa(&g).and_then(|g| interop::checks::views_agree(&c, g).map_err(|e| e.to_string()));
    if let Err(e) = agree {
        panic!("{e}\n{}", rig.logs());
    }
    let mut streams = Streams::start(&rig, PPS);
    let flowed = streams.wait_flowing(
        streams.started_us,
        3 * PPS as usize,
        Duration::from_secs(60),
    );
    let end = streams.stop();
    step("baseline: streams stopped");
    rig.keep("baseline");
    if let Err(e) = flowed {
        panic!("{e}; {}\n{}", end.describe(), rig.logs());
    }
    let (ur, ul, _) = totals(&end.up);
    let (dr, dl, _) = totals(&end.down);
    let gaps: Vec<String> = [&end.up, &end.down]
        .iter()
        .map(|rx| {
            outage(rx, streams.started_us + 500_000, u64::MAX)
                .map_or("-".into(), |o| format!("{:.1}", o.gap_ms))
        })
        .collect();
    // The emulated guest's ESP crypto runs partly asynchronously and reorders; a packet
    // reordered beyond a replay window (batond's inbound SA, strongSwan's) is dropped
    // and counted as XfrmInStateSeqError. Every loss must be such a drop: the shared-VIP
    // network itself loses nothing.
    let seq_drops = xfrm_stat(&rig.nodes[0].ns, "XfrmInStateSeqError")
        + xfrm_stat(&rig.client, "XfrmInStateSeqError");
    assert!(
        ul + dl <= seq_drops,
        "datagrams lost through one gateway beyond the {seq_drops} replay-window drops: {}\n{}",
        end.describe(),
        rig.logs()
    );
    let (wire, counters) = rig.finish_capture();
    let w = check_wire(&wire, &counters, 1).unwrap_or_else(|e| panic!("{e}"));
    let esp_min = (ur + dr) as usize;
    assert!(
        wire.esp.len() >= esp_min,
        "{} ESP packets captured for {esp_min} datagrams delivered (tcpdump: {counters})",
        wire.esp.len()
    );
    format!(
        "{ur} up / {dr} down datagrams at {PPS}/s, lost {ul} / {dl}, all replay-window drops of reordered packets ({seq_drops} counted); longest gap up {} ms / down {} ms; wire: {w}",
        gaps[0], gaps[1]
    )
}

/// A counter of `/proc/net/xfrm_stat` in `ns` (0 if unreadable).
fn xfrm_stat(ns: &interop::Netns, name: &str) -> u64 {
    ns.exec("cat", &["/proc/net/xfrm_stat"])
        .ok()
        .and_then(|o| {
            String::from_utf8_lossy(&o.stdout).lines().find_map(|l| {
                let mut w = l.split_whitespace();
                (w.next() == Some(name)).then(|| w.next()?.parse().ok())?
            })
        })
        .unwrap_or(0)
}

/// A cluster counter of `n` (`ikectl cluster --json`), 0 if unreadable.
fn counter(n: &Node, k: &str) -> u64 {
    n.cluster()
        .ok()
        .and_then(|j| j.get("counters")?.get(k)?.as_u64())
        .unwrap_or(0)
}

/// Whether `n` sees every node named in `others` live.
fn sees_live(n: &Node, others: &[String]) -> bool {
    let Ok(j) = n.cluster() else { return false };
    let Some(Json::Array(members)) = j.get("members") else {
        return false;
    };
    others.iter().all(|o| {
        members.iter().any(|m| {
            m.get("node").and_then(Json::as_str) == Some(o.as_str())
                && m.get("live").and_then(Json::as_bool) == Some(true)
        })
    })
}

/// Waits until every node sees every other one live.
fn wait_all_live(rig: &Rig) -> Result<(), String> {
    let names: Vec<String> = rig.nodes.iter().map(|n| n.name.clone()).collect();
    poll(Duration::from_secs(30), || {
        rig.nodes
            .iter()
            .all(|n| {
                let others: Vec<String> = names.iter().filter(|o| **o != n.name).cloned().collect();
                sees_live(n, &others)
            })
            .then_some(())
    })
    .ok_or_else(|| {
        let views: Vec<String> = rig
            .nodes
            .iter()
            .map(|n| format!("{}: {:?}", n.name, n.cluster()))
            .collect();
        format!(
            "the nodes do not all see each other live: {}",
            views.join("; ")
        )
    })
}

/// The cluster, its tunnel and the streams, kept across the checks.
#[derive(Debug)]
pub(crate) struct Cluster {
    streams: Option<Streams>,
    rig: Rig,
    /// strongSwan's IKE SA when the tunnel came up.
    first: interop::IkeSaInfo,
}

/// Starts two nodes, the capture, the tunnel and the streams.
fn cluster_up() -> Cluster {
    let mut rig = Rig::new(2);
    rig.start_capture();
    rig.start_nodes(true);
    step("cluster: both batonds started");
    if let Err(e) = wait_all_live(&rig) {
        panic!("{e}\n{}", rig.logs());
    }
    let first = rig.connect_client();
    step("cluster: tunnel up");
    let owner = poll(Duration::from_secs(10), || rig.owner())
        .unwrap_or_else(|| panic!("no single node lists the SA\n{}", rig.logs()));
    let g = rig.nodes[owner].sas();
    if let Err(e) =
        only_sa(&g).and_then(|g| interop::checks::views_agree(&first, g).map_err(|e| e.to_string()))
    {
        panic!("{e}\n{}", rig.logs());
    }
    let streams = Streams::start(&rig, PPS);
    if let Err(e) = streams.wait_flowing(streams.started_us, 500, Duration::from_secs(30)) {
        panic!("{e}\n{}", rig.logs());
    }
    step("cluster: streams flowing");
    Cluster {
        streams: Some(streams),
        rig,
        first,
    }
}

impl Cluster {
    fn streams(&self) -> &Streams {
        self.streams.as_ref().expect("streams running")
    }

    /// strongSwan still has its first IKE SA (same SPIs, established).
    fn same_ike_sa(&self) -> Result<(), String> {
        let now = self.rig.client_sa();
        if now.initiator_spi != self.first.initiator_spi
            || now.responder_spi != self.first.responder_spi
            || now.state != "ESTABLISHED"
        {
            return Err(format!(
                "strongSwan's IKE SA changed: first {} / {}, now {} / {} ({})",
                self.first.initiator_spi,
                self.first.responder_spi,
                now.initiator_spi,
                now.responder_spi,
                now.state
            ));
        }
        Ok(())
    }

    fn fail(&self, what: &str) -> String {
        format!("{what}\n{}", self.rig.logs())
    }

    /// Kills the owner's machine; returns (kill time, survivor index, summary figures).
    fn failover(&mut self) -> Result<Failover, String> {
        let owner = poll(Duration::from_secs(10), || self.rig.owner())
            .ok_or_else(|| self.fail("no single owner before the kill"))?;
        let survivor = 1 - owner;
        let takeovers = counter(&self.rig.nodes[survivor], "takeovers");
        self.streams()
            .wait_flowing(
                now_us().saturating_sub(300_000),
                200,
                Duration::from_secs(20),
            )
            .map_err(|e| self.fail(&e))?;
        let (t_kill, rest_ms) = self.rig.nodes[owner].die();
        step(&format!("{} died", self.rig.nodes[owner].name));
        let spi_i = self.first.initiator_spi.clone();
        let taken = poll(Duration::from_secs(15), || {
            let s = &self.rig.nodes[survivor];
            (counter(s, "takeovers") > takeovers
                && s.sas().iter().any(|a| a.initiator_spi == spi_i))
            .then(now_us)
        })
        .ok_or_else(|| {
            self.fail(&format!(
                "{} did not take the SA over within 15 s (takeovers {} -> {})",
                self.rig.nodes[survivor].name,
                takeovers,
                counter(&self.rig.nodes[survivor], "takeovers")
            ))
        })?;
        let after = t_kill + (rest_ms * 1000.0) as u64;
        self.streams()
            .wait_flowing(after, 300, Duration::from_secs(20))
            .map_err(|e| self.fail(&format!("after the takeover: {e}")))?;
        let (up, down) = self.streams().records();
        let end = now_us();
        let o_up = outage(&up, t_kill, end).ok_or("no datagrams client -> server")?;
        let o_down = outage(&down, t_kill, end).ok_or("no datagrams server -> client")?;
        Ok(Failover {
            owner,
            survivor,
            t_kill,
            taken_ms: (taken - t_kill) as f64 / 1000.0,
            rest_ms,
            up: o_up,
            down: o_down,
        })
    }

    /// Moves the SA to the other node with `ikectl transfer`.
    fn transfer(&mut self) -> Result<Transfer, String> {
        self.streams()
            .wait_flowing(
                now_us().saturating_sub(300_000),
                200,
                Duration::from_secs(20),
            )
            .map_err(|e| self.fail(&e))?;
        // The owner right before the command (ownership may have moved meanwhile).
        let from = poll(Duration::from_secs(10), || self.rig.owner())
            .ok_or_else(|| self.fail("no single owner before the transfer"))?;
        let to = 1 - from;
        let id = self.rig.nodes[from]
            .sas()
            .first()
            .map(|s| s.uniqueid.clone())
            .ok_or("the owner lists no SA")?;
        let target = self.rig.nodes[to].name.clone();
        let t0 = now_us();
        let answer = self.rig.nodes[from]
            .ikectl(&["transfer", &id, "--to", &target])
            .map_err(|e| self.fail(&e))?;
        let spi_i = self.first.initiator_spi.clone();
        let t1 = poll(Duration::from_secs(15), || {
            let there = self.rig.nodes[to]
                .sas()
                .iter()
                .any(|a| a.initiator_spi == spi_i);
            (there && self.rig.nodes[from].sas().is_empty()).then(now_us)
        })
        .ok_or_else(|| {
            self.fail(&format!(
                "SA {id} not on {target} (alone) within 15 s of `ikectl transfer` ({answer})"
            ))
        })?;
        self.streams()
            .wait_flowing(t1, 300, Duration::from_secs(20))
            .map_err(|e| self.fail(&format!("after the transfer: {e}")))?;
        let (up, down) = self.streams().records();
        let end = now_us();
        // Control: the same measurement over a window as long, just before the command
        // (no event in it): the emulated guest's own jitter.
        let q_end = t0.saturating_sub(50_000);
        let q_event = q_end.saturating_sub(end - t0);
        let quiet = |rx: &[Rx]| outage(rx, q_event, q_end).map_or(0.0, |o| o.gap_ms);
        Ok(Transfer {
            from,
            to,
            done_ms: (t1 - t0) as f64 / 1000.0,
            up: outage(&up, t0, end).ok_or("no datagrams client -> server")?,
            down: outage(&down, t0, end).ok_or("no datagrams server -> client")?,
            quiet_gap_ms: quiet(&up).max(quiet(&down)),
        })
    }

    /// Brings a dead node back and waits until both nodes see each other.
    fn revive(&mut self, i: usize) -> Result<(), String> {
        self.rig.nodes[i].revive();
        wait_all_live(&self.rig).map_err(|e| self.fail(&e))
    }
}

/// One kill's figures.
#[derive(Debug)]
struct Failover {
    owner: usize,
    survivor: usize,
    #[allow(dead_code)] // kept for a reader of the Debug output
    t_kill: u64,
    taken_ms: f64,
    rest_ms: f64,
    up: super::traffic::Outage,
    down: super::traffic::Outage,
}

impl Failover {
    /// The longest silence around the kill, the worse direction: the last datagram
    /// through the old owner to the first through the new one.
    fn interruption_ms(&self) -> f64 {
        self.up.gap_ms.max(self.down.gap_ms)
    }

    /// Kill to the first datagram after that silence, the later direction.
    fn kill_to_first_ms(&self) -> f64 {
        self.up.event_to_first_ms.max(self.down.event_to_first_ms)
    }
}

/// One transfer's figures.
#[derive(Debug)]
struct Transfer {
    from: usize,
    to: usize,
    done_ms: f64,
    up: super::traffic::Outage,
    down: super::traffic::Outage,
    /// The longest gap, the worse direction, in a window as long right before the
    /// command (no event in it): the guest's own jitter, for comparison.
    quiet_gap_ms: f64,
}

/// The verdicts of the three cluster checks.
#[derive(Debug)]
pub(crate) struct ClusterResults {
    pub(crate) failover: Result<String, String>,
    pub(crate) transfer: Result<String, String>,
    pub(crate) wire: Result<String, String>,
}

fn catch<T>(f: impl FnOnce() -> Result<T, String>) -> Result<T, String> {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
        Ok(r) => r,
        Err(p) => Err(super::panic_text(&*p)),
    }
}

/// Failover, then transfer, then the wire, on one cluster.
pub(crate) fn cluster_case() -> ClusterResults {
    let mut cl: Option<Cluster> = None;
    let failover = catch(|| {
        let c = cl.insert(cluster_up());
        let f = c.failover()?;
        c.same_ike_sa().map_err(|e| c.fail(&e))?;
        let s = &c.rig.nodes[f.survivor];
        let synced = poll(Duration::from_secs(10), || {
            s.current_log()
                .contains("Message IDs synchronised")
                .then_some(())
        });
        if synced.is_none() {
            return Err(c.fail(&format!(
                "{} took over but did not log \"Message IDs synchronised (RFC 6311)\"",
                s.name
            )));
        }
        Ok(format!(
            "{} killed, {} took over in {:.0} ms (links down + XFRM flush {:.0} ms after the kill); kill to first datagram through {}: client->server {:.1} ms, server->client {:.1} ms; longest gap {:.1} / {:.1} ms; lost {} / {}; RFC 6311 Message ID sync logged; strongSwan's IKE SA unchanged",
            c.rig.nodes[f.owner].name,
            s.name,
            f.taken_ms,
            f.rest_ms,
            s.name,
            f.up.event_to_first_ms,
            f.down.event_to_first_ms,
            f.up.gap_ms,
            f.down.gap_ms,
            f.up.lost,
            f.down.lost
        ))
    });
    let transfer = match (&failover, cl.as_mut()) {
        (Ok(_), Some(c)) => catch(|| {
            let dead = (0..2)
                .find(|&i| !c.rig.nodes[i].running())
                .ok_or("no dead node to revive")?;
            c.revive(dead)?;
            step("dead node back");
            let t = c.transfer()?;
            c.same_ike_sa().map_err(|e| c.fail(&e))?;
            Ok(format!(
                "{} -> {} in {:.0} ms (command to target listing it); interruption (longest gap) client->server {:.1} ms, server->client {:.1} ms; lost {} / {}; strongSwan's IKE SA unchanged",
                c.rig.nodes[t.from].name,
                c.rig.nodes[t.to].name,
                t.done_ms,
                t.up.gap_ms,
                t.down.gap_ms,
                t.up.lost,
                t.down.lost
            ))
        }),
        _ => Err("not run: the failover check failed".into()),
    };
    let wire = match cl.as_mut() {
        Some(c) => catch(|| {
            let end = c.streams.as_mut().map(Streams::stop);
            let (wire, counters) = c.rig.finish_capture();
            let w = check_wire(&wire, &counters, 1)?;
            // Both nodes encrypted towards the client (failover, then transfer): the
            // capture saw ESP from two source MACs, and still no pair twice.
            let client: [u8; 4] = CLIENT.parse::<std::net::Ipv4Addr>().expect("addr").octets();
            let mut macs: Vec<[u8; 6]> = wire
                .esp
                .iter()
                .filter(|p| p.dst == client)
                .map(|p| p.src_mac)
                .collect();
            macs.sort_unstable();
            macs.dedup();
            if transfer.is_ok() && macs.len() < 2 {
                return Err(format!(
                    "ESP towards the client came from {} node(s), expected both: {w}",
                    macs.len()
                ));
            }
            Ok(format!(
                "{w}; ESP to the client from {} node MACs; streams: {}",
                macs.len(),
                end.map_or("-".into(), |e| e.describe())
            ))
        }),
        None => Err("not run: the cluster did not come up".into()),
    };
    if let Some(c) = &cl {
        c.rig.keep("cluster");
    }
    ClusterResults {
        failover,
        transfer,
        wire,
    }
}

fn env_n(key: &str, default: usize) -> usize {
    std::env::var(key)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The measurement: `BATON_CLUSTER_BENCH_KILLS` failovers (the dead node comes back
/// between kills) and `BATON_CLUSTER_BENCH_TRANSFERS` transfers at 1,000 datagrams per
/// second each way; prints `CLUSTER-BENCH` lines.
pub(crate) fn bench_main() {
    let kills = env_n("BATON_CLUSTER_BENCH_KILLS", 20);
    let transfers = env_n("BATON_CLUSTER_BENCH_TRANSFERS", 20);
    let mut c = cluster_up();
    let mut fo = Vec::new();
    // A failed step ends that series (the tunnel may be gone): the summary then covers
    // the kills and transfers that completed and says how many were asked for.
    let first_line = |e: &str| e.lines().next().unwrap_or("").to_owned();
    for k in 1..=kills {
        let f = match catch(|| {
            let f = c.failover()?;
            c.same_ike_sa()?;
            Ok(f)
        }) {
            Ok(f) => f,
            Err(e) => {
                println!("CLUSTER-BENCH-KILL {k} FAILED: {}", first_line(&e));
                eprintln!("{e}");
                break;
            }
        };
        println!(
            "CLUSTER-BENCH-KILL {k} {}->{} kill_to_first_ms up={:.1} down={:.1} gap_ms up={:.1} down={:.1} lost up={} down={} takeover_seen_ms={:.0} links_down_ms={:.0}",
            c.rig.nodes[f.owner].name,
            c.rig.nodes[f.survivor].name,
            f.up.event_to_first_ms,
            f.down.event_to_first_ms,
            f.up.gap_ms,
            f.down.gap_ms,
            f.up.lost,
            f.down.lost,
            f.taken_ms,
            f.rest_ms
        );
        let owner = f.owner;
        fo.push(f);
        if let Err(e) = catch(|| c.revive(owner)) {
            println!(
                "CLUSTER-BENCH-KILL {k} FAILED to revive: {}",
                first_line(&e)
            );
            eprintln!("{e}");
            break;
        }
        // The node that joined may receive the SA (a fair share): let that finish
        // before the next kill.
        std::thread::sleep(Duration::from_secs(3));
    }
    let mut tr = Vec::new();
    for k in 1..=transfers {
        let t = match catch(|| {
            let t = c.transfer()?;
            c.same_ike_sa()?;
            Ok(t)
        }) {
            Ok(t) => t,
            Err(e) => {
                println!("CLUSTER-BENCH-TRANSFER {k} FAILED: {}", first_line(&e));
                eprintln!("{e}");
                break;
            }
        };
        println!(
            "CLUSTER-BENCH-TRANSFER {k} {}->{} gap_ms up={:.1} down={:.1} lost up={} down={} done_ms={:.0} quiet_gap_ms={:.1}",
            c.rig.nodes[t.from].name,
            c.rig.nodes[t.to].name,
            t.up.gap_ms,
            t.down.gap_ms,
            t.up.lost,
            t.down.lost,
            t.done_ms,
            t.quiet_gap_ms
        );
        tr.push(t);
    }
    let end = c.streams.as_mut().map(Streams::stop);
    let (wire, counters) = c.rig.finish_capture();
    let fi: Vec<f64> = fo.iter().map(Failover::interruption_ms).collect();
    let (fmed, fmax) = super::traffic::median_max(&fi);
    let fk: Vec<f64> = fo.iter().map(Failover::kill_to_first_ms).collect();
    let (kmed, kmax) = super::traffic::median_max(&fk);
    let ti: Vec<f64> = tr.iter().map(|t| t.up.gap_ms.max(t.down.gap_ms)).collect();
    let (tmed, tmax) = super::traffic::median_max(&ti);
    let tq: Vec<f64> = tr.iter().map(|t| t.quiet_gap_ms).collect();
    let (qmed, qmax) = super::traffic::median_max(&tq);
    let lost: u64 = tr.iter().map(|t| t.up.lost + t.down.lost).sum();
    let fo_lost: u64 = fo.iter().map(|f| f.up.lost + f.down.lost).sum();
    println!(
        "CLUSTER-BENCH failover kills={} of {kills} interruption_ms median={fmed:.1} worst={fmax:.1} (longest silence around the kill: last datagram through the old owner to the first through the new one, the worse direction) kill_to_first_ms median={kmed:.1} worst={kmax:.1} ({PPS}/s each way) datagrams_lost={fo_lost}",
        fo.len()
    );
    println!(
        "CLUSTER-BENCH transfer transfers={} of {transfers} interruption_ms median={tmed:.1} worst={tmax:.1} (longest gap, the worse direction, {PPS}/s each way) datagrams_lost={lost}; the same over an equal window just before each command (no event): median={qmed:.1} worst={qmax:.1}",
        tr.len()
    );
    println!(
        "CLUSTER-BENCH renegotiated={} repeated_esp_pairs={} esp_packets={} tcpdump: {counters}",
        wire.ike_sa_init_requests.len().saturating_sub(1),
        wire.repeated_pairs().len(),
        wire.esp.len()
    );
    if let Some(e) = end {
        println!("CLUSTER-BENCH streams: {}", e.describe());
    }
    c.rig.keep("bench");
    println!("CLUSTER-BENCH-DONE");
}
