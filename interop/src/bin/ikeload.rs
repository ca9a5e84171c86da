//! `ikeload`: many concurrent IKEv2 handshakes from baton's own initiator
//! (`ike::endpoint::Endpoint::initiate`) against a responder, in a closed loop with a
//! bounded number of half-open IKE SAs, over non-blocking UDP from one or more client
//! source addresses/ports. Prints established IKE SAs per second and, given the
//! responder's pid, the responder's CPU time per established SA (utime + stime from
//! `/proc/<pid>/stat`, before and after the run).
//!
//! ```text
//! ikeload --target 198.51.100.1:500 --source 198.51.100.2 --count 5000 --half-open 64 \
//!         --id client.example --remote-id gw.example --psk 0123456789abcdef0123 \
//!         --proposal aes128gcm16-prfsha256-x25519 --esp aes128gcm16 --responder-pid 1234
//! ```
//!
//! All clients use one identity; INITIAL_CONTACT is left out (RFC 7296 §2.4) so the
//! responder keeps every IKE SA instead of replacing the previous one.

use std::collections::HashMap;
use std::io::ErrorKind;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use ike::config::{
    ConnectionConfig, Identity, IdentityPattern, IpsecMode, LocalAuth, LocalSigner, PskEntry,
    RemoteAuth, TsConfig,
};
use ike::crypto::CryptoError;
use ike::crypto::auth::{RsaSigningKey, SignatureScheme};
use ike::endpoint::{Effect, Endpoint, EndpointConfig, SaEvent};
use ike::initiator::InitiatorOptions;
use ike::policy::proposal::{parse_esp_proposal, parse_ike_proposal};
use ike::wire::registry::HashAlgorithm;

const USAGE: &str = "usage: ikeload --target ADDR:PORT --source IP[,IP...] [--ports-per-source N]
       [--count N] [--half-open N] [--timeout SECS]
       [--proposal P] [--esp P] [--id ID] [--remote-id ID] [--remote-ts CIDR]
       (--psk KEY | --cert PEM --key PEM --ca PEM)
       [--virtual-ip] [--responder-pid PID] [--json]";

/// What the command line asks for.
struct Args {
    target: SocketAddr,
    sources: Vec<IpAddr>,
    ports_per_source: usize,
    count: usize,
    half_open: usize,
    timeout: Duration,
    proposal: String,
    esp: String,
    id: String,
    remote_id: String,
    remote_ts: String,
    psk: Option<String>,
    cert: Option<(String, String, String)>,
    responder_pid: Option<u32>,
    json: bool,
    virtual_ip: bool,
}

fn parse_args() -> Result<Args, String> {
    let mut a = Args {
        target: SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 500),
        sources: Vec::new(),
        ports_per_source: 1,
        count: 1000,
        half_open: 64,
        timeout: Duration::from_secs(120),
        proposal: "aes128gcm16-prfsha256-x25519".into(),
        esp: "aes128gcm16".into(),
        id: "client.example".into(),
        remote_id: "gw.example".into(),
        remote_ts: "0.0.0.0/0".into(),
        psk: None,
        cert: None,
        responder_pid: None,
        json: false,
        virtual_ip: false,
    };
    let (mut cert, mut key, mut ca) = (None, None, None);
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        if flag == "--json" {
            a.json = true;
            continue;
        }
        if flag == "--virtual-ip" {
            a.virtual_ip = true;
            continue;
        }
        if flag == "-h" || flag == "--help" {
            return Err(USAGE.into());
        }
        let v = it
            .next()
            .ok_or_else(|| format!("{flag} needs a value\n{USAGE}"))?;
        let num = |v: &str| v.parse::<usize>().map_err(|e| format!("{flag} {v}: {e}"));
        match flag.as_str() {
            "--target" => a.target = v.parse().map_err(|e| format!("--target {v}: {e}"))?,
            "--source" => {
                for s in v.split(',') {
                    a.sources
                        .push(s.parse().map_err(|e| format!("--source {s}: {e}"))?);
                }
            }
            "--ports-per-source" => a.ports_per_source = num(&v)?.max(1),
            "--count" => a.count = num(&v)?,
            "--half-open" => a.half_open = num(&v)?.max(1),
            "--timeout" => a.timeout = Duration::from_secs(num(&v)? as u64),
            "--proposal" => a.proposal = v,
            "--esp" => a.esp = v,
            "--id" => a.id = v,
            "--remote-id" => a.remote_id = v,
            "--remote-ts" => a.remote_ts = v,
            "--psk" => a.psk = Some(v),
            "--cert" => cert = Some(v),
            "--key" => key = Some(v),
            "--ca" => ca = Some(v),
            "--responder-pid" => {
                a.responder_pid = Some(v.parse().map_err(|e| format!("--responder-pid {v}: {e}"))?);
            }
            _ => return Err(format!("unknown option {flag}\n{USAGE}")),
        }
    }
    match (cert, key, ca) {
        (Some(c), Some(k), Some(ca)) => a.cert = Some((c, k, ca)),
        (None, None, None) => {}
        _ => return Err("--cert, --key and --ca go together".into()),
    }
    if a.psk.is_none() == a.cert.is_none() {
        return Err(format!("give either --psk or --cert/--key/--ca\n{USAGE}"));
    }
    if a.sources.is_empty() {
        return Err(format!(
            "--source is required (the client's own address)\n{USAGE}"
        ));
    }
    Ok(a)
}

/// Our RSA key as the initiator's signer (RFC 7427 with PKCS#1 v1.5).
struct Signer(RsaSigningKey);

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Signer([redacted])")
    }
}

impl LocalSigner for Signer {
    fn sign(&self, hash: HashAlgorithm, octets: &[u8]) -> Result<Vec<u8>, CryptoError> {
        let scheme = match hash {
            HashAlgorithm::SHA2_256 => SignatureScheme::RsaPkcs1Sha256,
            HashAlgorithm::SHA2_384 => SignatureScheme::RsaPkcs1Sha384,
            HashAlgorithm::SHA2_512 => SignatureScheme::RsaPkcs1Sha512,
            _ => return Err(CryptoError::Unsupported("RSA signature hash")),
        };
        self.0.sign(scheme, octets)
    }
}

/// The DER of every `CERTIFICATE` block in a PEM file.
fn certificates(path: &str) -> Result<Vec<Vec<u8>>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{path}: {e}"))?;
    let mut out = Vec::new();
    let end = "-----END CERTIFICATE-----";
    let mut rest = text.as_str();
    while let Some(s) = rest.find("-----BEGIN CERTIFICATE-----") {
        let block = rest.get(s..).unwrap_or_default();
        let e = block
            .find(end)
            .ok_or_else(|| format!("{path}: unterminated PEM"))?;
        let pem = block.get(..e + end.len()).unwrap_or_default();
        let (_, der) =
            pem_rfc7468::decode_vec(pem.as_bytes()).map_err(|e| format!("{path}: {e}"))?;
        out.push(der);
        rest = block.get(e + end.len()..).unwrap_or_default();
    }
    if out.is_empty() {
        return Err(format!("{path}: no CERTIFICATE"));
    }
    Ok(out)
}

fn subnet(cidr: &str) -> Result<TsConfig, String> {
    let (a, l) = cidr.split_once('/').unwrap_or((cidr, "32"));
    Ok(TsConfig::Subnet {
        addr: a.parse().map_err(|e| format!("{cidr}: {e}"))?,
        prefix_len: l.parse().map_err(|e| format!("{cidr}: {e}"))?,
        ip_protocol: 0,
        ports: (0, 65535),
    })
}

fn endpoint_config(a: &Args) -> Result<EndpointConfig, String> {
    let local_id = Identity::parse(&a.id).map_err(|e| format!("--id: {e}"))?;
    let remote_id =
        IdentityPattern::parse(&a.remote_id).map_err(|e| format!("--remote-id: {e}"))?;
    let (local_auth, remote_auth) = match &a.cert {
        Some((cert, key, ca)) => {
            let pem = zeroize::Zeroizing::new(
                std::fs::read_to_string(key).map_err(|e| format!("{key}: {e}"))?,
            );
            let key = RsaSigningKey::from_pem(&pem).map_err(|e| format!("{key}: {e}"))?;
            (
                LocalAuth::Pubkey {
                    cert_chain: certificates(cert)?,
                    key: Arc::new(Signer(key)),
                },
                RemoteAuth::Pubkey {
                    cas: certificates(ca)?,
                },
            )
        }
        None => (LocalAuth::Psk, RemoteAuth::Psk),
    };
    let conn = ConnectionConfig {
        name: "load".into(),
        ike_proposals: vec![
            parse_ike_proposal(&a.proposal).map_err(|e| format!("--proposal: {e}"))?,
        ],
        esp_proposals: vec![parse_esp_proposal(&a.esp).map_err(|e| format!("--esp: {e}"))?],
        local_id: local_id.clone(),
        local_auth,
        remote_id: remote_id.clone(),
        remote_auth,
        local_ts: vec![TsConfig::Dynamic],
        remote_ts: vec![subnet(&a.remote_ts)?],
        pool: None,
        mode: IpsecMode::Tunnel,
        rekey_time: None,
        child_rekey_time: None,
        child_life_time: None,
        life_time: None,
        dpd_delay: None,
        fragmentation: true,
        fragment_size: 1280,
    };
    let mut c = EndpointConfig::new(&ike::crypto::DEFAULT_PROVIDER);
    c.connections = vec![Arc::new(conn)];
    if let Some(psk) = &a.psk {
        let mut ids = vec![local_id];
        if let IdentityPattern::Exact(r) = remote_id {
            ids.push(r);
        }
        c.secrets = vec![PskEntry {
            ids,
            psk: ike::crypto::SecretBytes::new(psk.as_bytes().to_vec()),
        }];
    }
    Ok(c)
}

/// utime + stime of a process, in seconds.
fn cpu_seconds(pid: u32) -> Result<f64, String> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map_err(|e| format!("/proc/{pid}/stat: {e}"))?;
    // Fields after the command name (which may hold spaces) start after the last ')'.
    let rest = stat
        .rsplit_once(')')
        .map(|(_, r)| r)
        .ok_or("malformed stat")?;
    let f: Vec<&str> = rest.split_whitespace().collect();
    // rest starts at field 3 (state); utime is field 14, stime 15.
    let get = |i: usize| -> Result<f64, String> {
        f.get(i - 3)
            .and_then(|v| v.parse::<f64>().ok())
            .ok_or_else(|| format!("no field {i} in /proc/{pid}/stat"))
    };
    Ok((get(14)? + get(15)?) / clock_ticks())
}

fn clock_ticks() -> f64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(100.0)
}

fn rss_kib(pid: u32) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    s.lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
}

/// The result of one run.
struct Outcome {
    established: usize,
    children: usize,
    failed: usize,
    elapsed: Duration,
    datagrams_out: u64,
    datagrams_in: u64,
}

fn run(a: &Args) -> Result<Outcome, String> {
    const NON_ESP_MARKER: [u8; 4] = [0; 4];
    let mut sockets: Vec<UdpSocket> = Vec::new();
    let mut by_local: HashMap<SocketAddr, usize> = HashMap::new();
    for ip in &a.sources {
        for _ in 0..a.ports_per_source {
            let s =
                UdpSocket::bind(SocketAddr::new(*ip, 0)).map_err(|e| format!("bind {ip}: {e}"))?;
            s.set_nonblocking(true)
                .map_err(|e| format!("nonblocking: {e}"))?;
            let l = s.local_addr().map_err(|e| format!("local_addr: {e}"))?;
            by_local.insert(l, sockets.len());
            sockets.push(s);
        }
    }
    // RFC 3948: after NAT detection the initiator may float to 4500; bind it per
    // source address so such a move still has a socket.
    for ip in &a.sources {
        if let Ok(s) = UdpSocket::bind(SocketAddr::new(*ip, 4500)) {
            s.set_nonblocking(true)
                .map_err(|e| format!("nonblocking: {e}"))?;
            by_local.insert(SocketAddr::new(*ip, 4500), sockets.len());
            sockets.push(s);
        }
    }
    let initiating_sockets = a.sources.len() * a.ports_per_source;
    let start = Instant::now();
    let mut ep = Endpoint::new(endpoint_config(a)?, start);
    ep.set_wall_clock(start, SystemTime::now());
    let opts = InitiatorOptions {
        omit_initial_contact: true,
        request_virtual_ip: a.virtual_ip,
        ..Default::default()
    };
    let (mut started, mut established, mut failed) = (0usize, 0usize, 0usize);
    let (mut out_n, mut in_n) = (0u64, 0u64);
    let mut children = 0usize;
    let mut buf = vec![0u8; 65536];
    let deadline = start + a.timeout;
    let mut last_report = start;
    while established + failed < a.count {
        let now = Instant::now();
        if now > deadline {
            eprintln!(
                "ikeload: timeout with {} half-open",
                started - established - failed
            );
            break;
        }
        // Closed loop: keep at most `half_open` handshakes in flight.
        while started < a.count && started - established - failed < a.half_open {
            let i = started % initiating_sockets;
            let local = sockets
                .get(i)
                .and_then(|s| s.local_addr().ok())
                .ok_or("socket")?;
            if ep.initiate(now, "load", local, a.target, opts).is_none() {
                return Err("initiate refused (configuration?)".into());
            }
            started += 1;
        }
        let mut busy = false;
        for (i, s) in sockets.iter().enumerate() {
            loop {
                match s.recv_from(&mut buf) {
                    Ok((n, from)) => {
                        busy = true;
                        in_n += 1;
                        let local = s.local_addr().map_err(|e| e.to_string())?;
                        let d = buf.get(..n).unwrap_or_default();
                        let d = if local.port() == 4500 || from.port() == 4500 {
                            // Only IKE (behind the non-ESP marker) matters here.
                            match d.strip_prefix(&NON_ESP_MARKER) {
                                Some(ike) => ike,
                                None => continue,
                            }
                        } else {
                            d
                        };
                        ep.handle_datagram(Instant::now(), local, from, d);
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == ErrorKind::ConnectionRefused => break,
                    Err(e) => return Err(format!("recv on socket {i}: {e}")),
                }
            }
        }
        let now = Instant::now();
        if ep.poll_timeout().is_some_and(|t| t <= now) {
            ep.handle_timeout(now);
        }
        while let Some(e) = ep.poll_effect() {
            match e {
                Effect::Send {
                    local,
                    remote,
                    data,
                } => {
                    let Some(s) = by_local.get(&local).and_then(|i| sockets.get(*i)) else {
                        return Err(format!("no socket for {local}"));
                    };
                    let sent = if local.port() == 4500 || remote.port() == 4500 {
                        let mut d = NON_ESP_MARKER.to_vec();
                        d.extend_from_slice(&data);
                        s.send_to(&d, remote)
                    } else {
                        s.send_to(&data, remote)
                    };
                    match sent {
                        Ok(_) => out_n += 1,
                        // A full socket buffer: the initiator's retransmission covers it.
                        Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                        Err(e) => return Err(format!("send to {remote}: {e}")),
                    }
                }
                Effect::Event(SaEvent::IkeUp { .. }) => established += 1,
                // An IKE SA can come up without its Child SA (TS_UNACCEPTABLE etc.):
                // count both, a run is only good when every IKE SA has its Child SA.
                Effect::InstallChild(c) if c.replaces.is_none() => children += 1,
                Effect::Event(
                    ev @ (SaEvent::InitiationFailed { .. } | SaEvent::AuthFailed { .. }),
                ) => {
                    if failed == 0 {
                        eprintln!("ikeload: first failure: {ev:?}");
                    }
                    failed += 1;
                }
                _ => {}
            }
        }
        if now.duration_since(last_report) >= Duration::from_secs(1) {
            last_report = now;
            eprintln!(
                "ikeload: {:.1}s established {established} failed {failed} half-open {}",
                now.duration_since(start).as_secs_f64(),
                started - established - failed
            );
        }
        if !busy {
            std::thread::sleep(Duration::from_micros(50));
        }
    }
    Ok(Outcome {
        established,
        children,
        failed,
        elapsed: start.elapsed(),
        datagrams_out: out_n,
        datagrams_in: in_n,
    })
}

fn main() -> ExitCode {
    let a = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let before = a.responder_pid.map(|p| (cpu_seconds(p), rss_kib(p)));
    let o = match run(&a) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("ikeload: {e}");
            return ExitCode::FAILURE;
        }
    };
    let rate = o.established as f64 / o.elapsed.as_secs_f64().max(1e-9);
    let mut cpu_per_sa_ms = None;
    let mut rss_growth = None;
    if let (Some(pid), Some((Ok(c0), r0))) = (a.responder_pid, before) {
        match cpu_seconds(pid) {
            Ok(c1) if o.established > 0 => {
                cpu_per_sa_ms = Some((c1 - c0) * 1000.0 / o.established as f64);
            }
            Ok(_) => {}
            Err(e) => eprintln!("ikeload: responder CPU: {e}"),
        }
        if let (Some(r0), Some(r1)) = (r0, rss_kib(pid)) {
            rss_growth = Some(r1 as i64 - r0 as i64);
        }
    }
    if a.json {
        println!(
            "{{\"established\":{},\"children\":{},\"failed\":{},\"seconds\":{:.3},\"rate\":{:.1},\"responder_cpu_ms_per_sa\":{},\"responder_rss_growth_kib\":{},\"datagrams_out\":{},\"datagrams_in\":{}}}",
            o.established,
            o.children,
            o.failed,
            o.elapsed.as_secs_f64(),
            rate,
            cpu_per_sa_ms.map_or("null".into(), |v| format!("{v:.4}")),
            rss_growth.map_or("null".into(), |v| v.to_string()),
            o.datagrams_out,
            o.datagrams_in
        );
    } else {
        println!(
            "established {} (Child SAs {}) failed {} in {:.3} s: {rate:.1} IKE SA/s",
            o.established,
            o.children,
            o.failed,
            o.elapsed.as_secs_f64()
        );
        if let Some(c) = cpu_per_sa_ms {
            println!("responder CPU per established SA: {c:.4} ms");
        }
        if let Some(r) = rss_growth {
            println!("responder RSS growth: {r} KiB");
        }
    }
    if o.established == a.count && o.children == a.count {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
