//! Data plane benchmark: SAs installed per second through netlink, the cost
//! of one rekey swap (new SA pair + policy updates + old pair deleted), the
//! cost of reading replay state (GETAE), and MemoryDataplane operations per
//! second. Medians over several runs, after one uncounted warm-up run.
//!
//! The kernel part needs root and a kernel with ESP; on this project's
//! machines run it in the VM (it enters a fresh network namespace first):
//!
//! ```text
//! cargo build --release -p xfrm --example bench_install
//! interop/vm/run-in-vm -- target/release/examples/bench_install
//! ```
//!
//! `bench_install --memory` runs only the MemoryDataplane part (no root).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "benchmark tool"
)]

use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use xfrm::{
    AeadAlgorithm, Crypto, Dataplane, Direction, Error, KernelDataplane, Key, MemoryDataplane,
    Mode, OwnedRange, PolicyAction, PolicySpec, Prefix, Protocol, SaId, SaSpec, Selector, Spi,
    Template,
};

const RUNS: usize = 5;
const SAS_PER_RUN: u32 = 2000;
const SWAPS_PER_RUN: u32 = 200;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn v4(a: u32) -> IpAddr {
    IpAddr::V4(Ipv4Addr::from(a))
}

fn spec(i: u32, dst: IpAddr, src: IpAddr, reqid: u32) -> SaSpec {
    let key = Key::from_slice(&[(i % 251) as u8; 20]);
    SaSpec::new(
        SaId::esp(dst, Spi(0x4242_0000 + i)),
        src,
        Mode::Tunnel,
        reqid,
        Crypto::Aead {
            alg: AeadAlgorithm::AesGcm,
            key,
            icv_bits: 128,
        },
    )
}

fn policies(child: u32, reqid: u32, gw: IpAddr, peer: IpAddr) -> Vec<PolicySpec> {
    let local = Prefix::new(v4(0x0a01_0000), 24).unwrap();
    let remote = Prefix::host(v4(0x0a08_0000 + child));
    let t = |s, d| Template {
        proto: Protocol::Esp,
        mode: Mode::Tunnel,
        reqid,
        tunnel: Some((s, d)),
    };
    let out = Selector::new(local, remote).unwrap();
    let back = Selector::new(remote, local).unwrap();
    vec![
        PolicySpec {
            selector: out,
            dir: Direction::Out,
            priority: 100,
            action: PolicyAction::Allow,
            templates: vec![t(gw, peer)],
        },
        PolicySpec {
            selector: back,
            dir: Direction::In,
            priority: 100,
            action: PolicyAction::Allow,
            templates: vec![t(peer, gw)],
        },
        PolicySpec {
            selector: back,
            dir: Direction::Fwd,
            priority: 100,
            action: PolicyAction::Allow,
            templates: vec![t(peer, gw)],
        },
    ]
}

/// Installs and removes `SAS_PER_RUN` SAs; returns (installs/s, deletes/s).
fn install_rate(dp: &mut dyn Dataplane, run: u32) -> Result<(f64, f64), Error> {
    let (gw, peer) = (v4(0xc000_0201), v4(0xc633_6402));
    let specs: Vec<SaSpec> = (0..SAS_PER_RUN)
        .map(|i| spec(run * SAS_PER_RUN + i, gw, peer, 0x4241_0000 + i))
        .collect();
    let t = Instant::now();
    for s in &specs {
        dp.add_sa(s)?;
    }
    let add = t.elapsed();
    let t = Instant::now();
    for s in &specs {
        dp.delete_sa(&s.id)?;
    }
    let del = t.elapsed();
    let n = f64::from(SAS_PER_RUN);
    Ok((n / add.as_secs_f64(), n / del.as_secs_f64()))
}

/// One Child SA rekey as the gateway does it: add the new inbound and
/// outbound SAs, point the three policies at the new reqid, delete the old pair.
fn rekey_swap_cost(dp: &mut dyn Dataplane, run: u32) -> Result<Duration, Error> {
    let (gw, peer) = (v4(0xc000_0201), v4(0xc633_6402));
    let base = 0x10_0000 + run * 4 * SWAPS_PER_RUN;
    let mut old = (
        spec(base, gw, peer, 0x4241_1000),
        spec(base + 1, peer, gw, 0x4241_1000),
    );
    dp.add_sa(&old.0)?;
    dp.add_sa(&old.1)?;
    for p in policies(1, 0x4241_1000, gw, peer) {
        dp.add_policy(&p)?;
    }
    let mut total = Duration::ZERO;
    for k in 1..=SWAPS_PER_RUN {
        let reqid = 0x4241_1000 + k;
        let new = (
            spec(base + 2 * k, gw, peer, reqid),
            spec(base + 2 * k + 1, peer, gw, reqid),
        );
        let t = Instant::now();
        dp.add_sa(&new.0)?;
        dp.add_sa(&new.1)?;
        for p in policies(1, reqid, gw, peer) {
            dp.update_policy(&p)?;
        }
        dp.delete_sa(&old.0.id)?;
        dp.delete_sa(&old.1.id)?;
        total += t.elapsed();
        old = new;
    }
    dp.delete_sa(&old.0.id)?;
    dp.delete_sa(&old.1.id)?;
    for p in policies(1, 0, gw, peer) {
        dp.delete_policy(&p.id())?;
    }
    Ok(total / SWAPS_PER_RUN)
}

/// GETAE round trips per second on one SA.
fn replay_read_rate(dp: &mut dyn Dataplane) -> Result<f64, Error> {
    let s = spec(0xf_0000, v4(0xc000_0201), v4(0xc633_6402), 0x4241_2000);
    dp.add_sa(&s)?;
    let n = 5000;
    let t = Instant::now();
    for _ in 0..n {
        dp.get_replay_state(&s.id)?;
    }
    let rate = f64::from(n) / t.elapsed().as_secs_f64();
    dp.delete_sa(&s.id)?;
    Ok(rate)
}

fn report(name: &str, runs: Vec<(f64, f64)>, swaps: Vec<Duration>, reads: Vec<f64>) {
    let adds: Vec<f64> = runs.iter().map(|r| r.0).collect();
    let dels: Vec<f64> = runs.iter().map(|r| r.1).collect();
    let swap_us: Vec<f64> = swaps.iter().map(|d| d.as_secs_f64() * 1e6).collect();
    println!(
        "{name}: SA install      median {:>10.0} SAs/s   runs {:?}",
        median(adds.clone()),
        adds.iter().map(|x| x.round()).collect::<Vec<_>>()
    );
    println!(
        "{name}: SA delete       median {:>10.0} SAs/s   runs {:?}",
        median(dels.clone()),
        dels.iter().map(|x| x.round()).collect::<Vec<_>>()
    );
    println!(
        "{name}: rekey swap      median {:>10.1} us/swap (2 NEWSA + 3 UPDPOLICY + 2 DELSA)   runs {:?}",
        median(swap_us.clone()),
        swap_us.iter().map(|x| x.round()).collect::<Vec<_>>()
    );
    println!(
        "{name}: replay read     median {:>10.0} GETAE/s   runs {:?}",
        median(reads.clone()),
        reads.iter().map(|x| x.round()).collect::<Vec<_>>()
    );
}

fn bench(name: &str, dp: &mut dyn Dataplane) -> Result<(), Error> {
    let mut runs = Vec::new();
    let mut swaps = Vec::new();
    let mut reads = Vec::new();
    // Warm-up run, not counted: the kernel instantiates and self-tests the
    // crypto transforms on first use.
    install_rate(dp, RUNS as u32 + 1)?;
    for run in 0..RUNS as u32 {
        runs.push(install_rate(dp, run)?);
        swaps.push(rekey_swap_cost(dp, run)?);
        reads.push(replay_read_rate(dp)?);
    }
    report(name, runs, swaps, reads);
    Ok(())
}

#[allow(
    unsafe_code,
    reason = "unshare(2) into a throwaway network namespace; see SAFETY"
)]
fn enter_fresh_netns() {
    // SAFETY: unshare(CLONE_NEWNET) moves this (single) thread into a new,
    // empty network namespace; no memory is involved.
    let rc = unsafe { libc::unshare(libc::CLONE_NEWNET) };
    assert_eq!(
        rc,
        0,
        "unshare(CLONE_NEWNET) (needs root): {}",
        std::io::Error::last_os_error()
    );
}

fn main() {
    let memory_only = std::env::args().any(|a| a == "--memory");
    println!(
        "bench_install: {RUNS} runs; {SAS_PER_RUN} SAs (AES-GCM-128 tunnel) per install run; {SWAPS_PER_RUN} rekey swaps per run"
    );
    let mut mem = MemoryDataplane::new(OwnedRange::default(), 1);
    bench("memory", &mut mem).unwrap();
    if memory_only {
        return;
    }
    enter_fresh_netns();
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    println!("kernel {}", kernel.trim());
    let mut dp = KernelDataplane::open(OwnedRange::default()).unwrap();
    match bench("kernel", &mut dp) {
        Ok(()) => {}
        Err(e @ (Error::EspNotSupported { .. } | Error::AlgorithmNotSupported { .. })) => {
            eprintln!(
                "kernel part skipped: {e}\nrun it in the VM: interop/vm/run-in-vm -- target/release/examples/bench_install"
            );
            std::process::exit(2);
        }
        Err(e) => panic!("{e}"),
    }
}
