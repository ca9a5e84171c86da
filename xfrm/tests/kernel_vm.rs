//! `KernelDataplane` under a real kernel with ESP. On the host this test boots
//! Debian's kernel in qemu (interop/vm/run-in-vm) and runs itself inside with
//! BATON_IN_VM=1; inside, every check runs in its own network namespace:
//! SAs of each algorithm in tunnel/transport mode, with and without NAT-T
//! encapsulation and ESN, read back and compared; SPI allocation; policies;
//! replay state through GETAE/NEWAE; expire and replay events; flush_own; and
//! ESP traffic between two namespaces over veth with counters read back.
//! Needs root (CI is).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests"
)]

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::{
    OWNED, all_cryptos, enter_named_netns, in_fresh_netns, ip, key, require_root, sa, sh,
    udp_encap_socket,
};
use xfrm::{
    AeadAlgorithm, Crypto, Dataplane, DataplaneEvent, Direction, Error, EventMonitor,
    KernelDataplane, Lifetime, Mode, PolicyAction, PolicySpec, Prefix, Protocol, ReplayEventCause,
    ReplayEventThresholds, ReplayState, SaId, SaSpec, Selector, Spi, SpiRange, Template, UdpEncap,
};

const MARKER: &str = "XFRM-VM-CHECKS-PASSED";

#[test]
fn kernel_vm() {
    require_root("the real-kernel VM test");
    if std::env::var_os("BATON_IN_VM").is_some() {
        run_checks_in_vm();
        return;
    }
    let exe = std::env::current_exe().unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../interop/vm/run-in-vm");
    let out = std::process::Command::new(&script)
        .args(["-t", "600", "--", "env", "BATON_IN_VM=1"])
        // BATON_VM_ONLY=NAME runs only the checks whose name contains NAME.
        .arg(format!(
            "BATON_VM_ONLY={}",
            std::env::var("BATON_VM_ONLY").unwrap_or_default()
        ))
        .arg(&exe)
        .args(["--exact", "kernel_vm", "--nocapture", "--test-threads=1"])
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", script.display()));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    println!("{text}");
    assert!(
        out.status.success(),
        "the in-VM run failed ({})",
        out.status
    );
    assert!(
        text.contains(MARKER),
        "the in-VM run did not report its checks"
    );
}

fn run_checks_in_vm() {
    let checks: &[(&str, fn())] = &[
        (
            "sa_round_trip_every_algorithm_mode_encap_esn",
            sa_round_trip,
        ),
        ("alloc_spi_in_range_then_install", alloc_spi),
        ("policies_in_out_fwd_block", policies),
        ("replay_state_get_set", replay_state),
        ("expire_and_replay_events", events),
        ("flush_own_removes_only_ours", flush_own),
        ("esp_traffic_between_namespaces", || data_path(1, false)),
        ("esp_in_udp_traffic_between_namespaces", || {
            data_path(2, true);
        }),
    ];
    let only = std::env::var("BATON_VM_ONLY").unwrap_or_default();
    let mut ran = 0;
    for (name, check) in checks {
        if !name.contains(only.as_str()) {
            continue;
        }
        ran += 1;
        let t = Instant::now();
        let f = *check;
        in_fresh_netns(f);
        println!("vm check {name}: ok ({} ms)", t.elapsed().as_millis());
    }
    assert!(ran > 0, "no check matches BATON_VM_ONLY={only}");
    println!("{MARKER} {ran}");
}

fn sa_round_trip() {
    let mut dp = KernelDataplane::open(OWNED).unwrap();
    let mut installed = Vec::new();
    let mut spi = 0x4241_1000;
    for (name, crypto) in all_cryptos(3) {
        for mode in [Mode::Tunnel, Mode::Transport] {
            for encap in [
                None,
                Some(UdpEncap {
                    sport: 4500,
                    dport: 4500,
                }),
            ] {
                for esn in [false, true] {
                    spi += 1;
                    let mut s = sa(
                        "198.51.100.2",
                        "192.0.2.1",
                        spi,
                        OWNED.min + spi % 7,
                        crypto.clone(),
                    );
                    s.mode = mode;
                    s.encap = encap;
                    s.esn = esn;
                    s.replay_window = if esn {
                        128
                    } else if spi % 2 == 0 {
                        32
                    } else {
                        64
                    };
                    s.lifetime = Lifetime {
                        soft_bytes: Some(1 << 30),
                        hard_bytes: Some(1 << 31),
                        soft_packets: Some(1 << 20),
                        hard_packets: Some(1 << 21),
                        soft_add_secs: Some(3000),
                        hard_add_secs: Some(3600),
                    };
                    if mode == Mode::Transport {
                        s.selector = Some(
                            Selector::new(
                                Prefix::host(ip("192.0.2.1")),
                                Prefix::host(ip("198.51.100.2")),
                            )
                            .unwrap(),
                        );
                    }
                    dp.add_sa(&s)
                        .unwrap_or_else(|e| panic!("{name} {mode:?} {encap:?} esn={esn}: {e}"));
                    installed.push(s);
                }
            }
        }
    }
    // An IPv6 SA too.
    let v6 = sa(
        "2001:db8::2",
        "2001:db8::1",
        0x4241_2000,
        OWNED.min,
        all_cryptos(4).remove(2).1,
    );
    dp.add_sa(&v6).unwrap();
    installed.push(v6);
    assert!(matches!(
        dp.add_sa(&installed[0]),
        Err(Error::Exists { .. })
    ));

    for want in &installed {
        let got = dp.get_sa(&want.id).unwrap();
        let g = &got.spec;
        assert_eq!(g.crypto, want.crypto, "{}: keys/algorithms differ", want.id);
        assert_eq!(
            (
                g.id,
                g.src,
                g.mode,
                g.reqid,
                g.encap,
                g.esn,
                g.replay_window,
                g.lifetime,
                g.selector
            ),
            (
                want.id,
                want.src,
                want.mode,
                want.reqid,
                want.encap,
                want.esn,
                want.replay_window,
                want.lifetime,
                want.selector
            ),
            "{}",
            want.id
        );
        let state = g.replay_state.clone().unwrap();
        assert_eq!((state.oseq, state.seq), (0, 0));
        assert_eq!(got.counters.packets, 0);
        assert!(got.counters.add_time > 0);
    }
    let listed = dp.list_sas().unwrap();
    assert_eq!(listed.len(), installed.len());

    // Update: new lifetime and NAT-T ports (a NAT mapping change).
    let mut upd = installed[2].clone();
    assert!(upd.encap.is_some());
    upd.encap = Some(UdpEncap {
        sport: 4500,
        dport: 31337,
    });
    upd.lifetime.soft_add_secs = Some(1234);
    dp.update_sa(&upd).unwrap();
    let got = dp.get_sa(&upd.id).unwrap().spec;
    assert_eq!((got.encap, got.lifetime), (upd.encap, upd.lifetime));
    // Encapsulation can change ports but cannot be added to an SA without it.
    let mut bad = installed[1].clone();
    assert!(bad.encap.is_none());
    bad.encap = upd.encap;
    let e = dp.update_sa(&bad).unwrap_err();
    assert!(matches!(e, Error::Kernel { errno: 22, .. }), "{e}");

    for s in &installed {
        dp.delete_sa(&s.id).unwrap();
        assert!(dp.get_sa(&s.id).unwrap_err().is_not_found());
    }
    assert!(dp.list_sas().unwrap().is_empty());
}

fn alloc_spi() {
    let mut dp = KernelDataplane::open(OWNED).unwrap();
    // The kernel draws random SPIs in the range, as many draws as the range has
    // values: a 2-value range with one taken fails a quarter of the time. So: two from
    // a wide range, and exhaustion on a single-value range (deterministic).
    let range = SpiRange::new(0x4241_0100, 0x4241_01ff).unwrap();
    let (peer, us) = (ip("198.51.100.2"), ip("192.0.2.1"));
    let a = dp
        .alloc_spi(peer, us, Protocol::Esp, OWNED.min, range)
        .unwrap();
    let b = dp
        .alloc_spi(peer, us, Protocol::Esp, OWNED.min, range)
        .unwrap();
    assert!(range.contains(a) && range.contains(b) && a != b, "{a} {b}");
    let single = SpiRange::new(a.0, a.0).unwrap();
    let e = dp
        .alloc_spi(peer, us, Protocol::Esp, OWNED.min, single)
        .unwrap_err();
    assert!(matches!(e, Error::SpiRangeExhausted { .. }), "{e}");
    // Installing over the larval SA (UPDSA), in transport mode.
    let mut s = SaSpec::new(
        SaId::esp(us, a),
        peer,
        Mode::Transport,
        OWNED.min,
        all_cryptos(5).remove(0).1,
    );
    s.replay_window = 64;
    dp.add_sa(&s).unwrap();
    let got = dp.get_sa(&s.id).unwrap().spec;
    assert_eq!(
        (got.mode, got.crypto, got.replay_window),
        (Mode::Transport, s.crypto.clone(), 64)
    );
}

fn policies() {
    let mut dp = KernelDataplane::open(OWNED).unwrap();
    let sel = Selector::new(
        Prefix::new(ip("10.1.0.0"), 24).unwrap(),
        Prefix::host(ip("10.8.0.5")),
    )
    .unwrap();
    let back = Selector::new(sel.dst, sel.src).unwrap();
    let tmpl = |src: &str, dst: &str| Template {
        proto: Protocol::Esp,
        mode: Mode::Tunnel,
        reqid: OWNED.min + 9,
        tunnel: Some((ip(src), ip(dst))),
    };
    let out = PolicySpec {
        selector: sel,
        dir: Direction::Out,
        priority: 100,
        action: PolicyAction::Allow,
        templates: vec![tmpl("192.0.2.1", "198.51.100.2")],
    };
    let inb = PolicySpec {
        selector: back,
        dir: Direction::In,
        templates: vec![tmpl("198.51.100.2", "192.0.2.1")],
        ..out.clone()
    };
    let fwd = PolicySpec {
        dir: Direction::Fwd,
        action: PolicyAction::Block,
        ..inb.clone()
    };
    let mut transport = out.clone();
    transport.selector.proto = 6;
    transport.selector.dst_port = 443;
    transport.templates = vec![Template {
        mode: Mode::Transport,
        tunnel: None,
        ..out.templates[0]
    }];
    for p in [&out, &inb, &fwd, &transport] {
        dp.add_policy(p).unwrap();
    }
    let listed = dp.list_policies().unwrap();
    assert_eq!(listed.len(), 4);
    for p in [&out, &inb, &fwd, &transport] {
        assert!(listed.contains(p), "{p:#?} not in {listed:#?}");
    }
    let fwd_allow = PolicySpec {
        action: PolicyAction::Allow,
        ..fwd.clone()
    };
    dp.update_policy(&fwd_allow).unwrap();
    assert!(dp.list_policies().unwrap().contains(&fwd_allow));
    for p in [&out, &inb, &fwd_allow, &transport] {
        dp.delete_policy(&p.id()).unwrap();
    }
    assert!(dp.list_policies().unwrap().is_empty());
}

fn pattern(words: usize, bits: &[u32]) -> Vec<u32> {
    let mut v = vec![0u32; words];
    for &b in bits {
        v[(b / 32) as usize] |= 1 << (b % 32);
    }
    v
}

fn replay_state() {
    let mut dp = KernelDataplane::open(OWNED).unwrap();
    let gcm = || Crypto::Aead {
        alg: AeadAlgorithm::AesGcm,
        key: key(20, 9),
        icv_bits: 128,
    };
    let cases = [
        // (esn, window, state)
        (
            true,
            128,
            ReplayState {
                oseq: (5 << 32) | 100,
                seq: (3 << 32) | 1000,
                bitmap: pattern(4, &[0, 1, 5, 64, 127]),
            },
        ),
        (
            false,
            32,
            ReplayState {
                oseq: 77,
                seq: 500,
                bitmap: pattern(1, &[0, 1, 3, 31]),
            },
        ),
        (
            false,
            64,
            ReplayState {
                oseq: 10,
                seq: 40,
                bitmap: pattern(2, &[0, 2, 33, 39]),
            },
        ),
        (
            true,
            32,
            ReplayState {
                oseq: u64::from(u32::MAX) + 7,
                seq: 9,
                bitmap: pattern(1, &[0, 8]),
            },
        ),
    ];
    for (i, (esn, window, state)) in cases.into_iter().enumerate() {
        let mut s = sa(
            "192.0.2.1",
            "198.51.100.2",
            0x4241_3000 + i as u32,
            OWNED.min,
            gcm(),
        );
        s.esn = esn;
        s.replay_window = window;
        dp.add_sa(&s).unwrap();
        let fresh = dp.get_replay_state(&s.id).unwrap();
        assert_eq!((fresh.oseq, fresh.seq), (0, 0));
        dp.set_replay_state(&s.id, &state).unwrap();
        assert_eq!(
            dp.get_replay_state(&s.id).unwrap(),
            state,
            "case {i}: esn={esn} window={window}"
        );
        assert_eq!(
            dp.get_sa(&s.id).unwrap().spec.replay_state.unwrap(),
            state,
            "case {i} via GETSA"
        );
        assert_eq!(dp.get_counters(&s.id).unwrap().packets, 0);
    }
    // 64-bit numbers on a non-ESN SA are refused before reaching the kernel.
    let id = SaId::esp(ip("192.0.2.1"), Spi(0x4241_3001));
    let e = dp
        .set_replay_state(
            &id,
            &ReplayState {
                oseq: 1 << 33,
                seq: 0,
                bitmap: vec![0],
            },
        )
        .unwrap_err();
    assert!(matches!(e, Error::Invalid(_)), "{e}");
    // Initial replay state at installation (what a takeover does).
    let mut s = sa("192.0.2.1", "198.51.100.2", 0x4241_3100, OWNED.min, gcm());
    s.esn = true;
    s.replay_window = 64;
    let init = ReplayState {
        oseq: (1 << 32) | 5,
        seq: (7 << 32) | 9,
        bitmap: pattern(2, &[0, 4, 63]),
    };
    s.replay_state = Some(init.clone());
    dp.add_sa(&s).unwrap();
    assert_eq!(dp.get_replay_state(&s.id).unwrap(), init);
    // An outbound SA moved to a new range (a cluster owner after a partition heals):
    // the next sequence number is the range's start, the hard packet limit its length.
    let mut s = sa("192.0.2.1", "198.51.100.2", 0x4241_3200, OWNED.min, gcm());
    s.lifetime.hard_packets = Some(100);
    s.lifetime.soft_packets = Some(75);
    dp.add_sa(&s).unwrap();
    xfrm::move_outbound_range(&mut dp, &s.id, 100, 5_001, 6_000).unwrap();
    assert_eq!(dp.get_replay_state(&s.id).unwrap().oseq, 5_000);
    let l = dp.get_sa(&s.id).unwrap().spec.lifetime;
    assert_eq!((l.hard_packets, l.soft_packets), (Some(1_000), Some(750)));
    // A transfer's cap: at most 40 more packets (nothing sent yet: hard limit 40), the
    // last usable number handed back, no soft expiry on its way out.
    assert_eq!(
        xfrm::cap_outbound(&mut dp, &s.id, 6_000, 40).unwrap(),
        5_040
    );
    let l = dp.get_sa(&s.id).unwrap().spec.lifetime;
    assert_eq!((l.hard_packets, l.soft_packets), (Some(40), None));
}

fn wait_for(
    mon: &mut EventMonitor,
    secs: u64,
    mut want: impl FnMut(&DataplaneEvent) -> bool,
) -> Vec<DataplaneEvent> {
    let deadline = Instant::now() + Duration::from_secs(secs);
    let mut seen = Vec::new();
    while Instant::now() < deadline {
        let evs = mon.recv_timeout(Duration::from_millis(200)).unwrap();
        let hit = evs.iter().any(&mut want);
        seen.extend(evs);
        if hit {
            return seen;
        }
    }
    panic!("event not seen within {secs} s; got {seen:#?}");
}

fn events() {
    let mut dp = KernelDataplane::open_with_events(OWNED).unwrap();
    let mut mon = EventMonitor::open(Some(OWNED)).unwrap();
    let gcm = Crypto::Aead {
        alg: AeadAlgorithm::AesGcm,
        key: key(20, 11),
        icv_bits: 128,
    };
    let mut s = sa(
        "192.0.2.1",
        "198.51.100.2",
        0x4241_4000,
        OWNED.min + 4,
        gcm.clone(),
    );
    s.lifetime.soft_add_secs = Some(1);
    s.lifetime.hard_add_secs = Some(2);
    dp.add_sa(&s).unwrap();
    let id = s.id;
    let seen = wait_for(
        &mut mon,
        8,
        |e| matches!(e, DataplaneEvent::HardExpire { sa, .. } if *sa == id),
    );
    assert!(
        seen.contains(&DataplaneEvent::SoftExpire {
            sa: id,
            reqid: OWNED.min + 4
        }),
        "soft expire before hard: {seen:#?}"
    );
    assert!(
        dp.get_sa(&id).unwrap_err().is_not_found(),
        "the kernel removes hard-expired SAs"
    );
    // The data plane's own subscription saw them too.
    let mine = dp.poll_events().unwrap();
    assert!(
        mine.iter()
            .any(|e| matches!(e, DataplaneEvent::HardExpire { sa, .. } if *sa == id)),
        "{mine:#?}"
    );

    // A replay event: NEWAE on an SA with event thresholds announces the new state.
    let mut r = sa(
        "192.0.2.1",
        "198.51.100.2",
        0x4241_4001,
        OWNED.min + 5,
        gcm.clone(),
    );
    r.esn = true;
    r.replay_window = 64;
    r.replay_events = Some(ReplayEventThresholds {
        packets: 16,
        timer_jiffies: 250,
    });
    dp.add_sa(&r).unwrap();
    let state = ReplayState {
        oseq: 4096,
        seq: 300,
        bitmap: pattern(2, &[0, 1, 2]),
    };
    dp.set_replay_state(&r.id, &state).unwrap();
    let rid = r.id;
    let seen = wait_for(
        &mut mon,
        5,
        |e| matches!(e, DataplaneEvent::Replay { sa, .. } if *sa == rid),
    );
    let ev = seen
        .iter()
        .find(|e| matches!(e, DataplaneEvent::Replay { sa, .. } if *sa == rid))
        .unwrap();
    let DataplaneEvent::Replay {
        state: got,
        cause,
        reqid,
        ..
    } = ev
    else {
        unreachable!()
    };
    assert_eq!(
        (got, *cause, *reqid),
        (&state, ReplayEventCause::Update, OWNED.min + 5)
    );

    // Events of SAs outside the owned range are filtered out.
    let mut foreign = sa("192.0.2.1", "198.51.100.2", 0x4241_4002, 7, gcm);
    foreign.lifetime.soft_add_secs = Some(1);
    dp.add_sa(&foreign).unwrap();
    std::thread::sleep(Duration::from_millis(2500));
    let evs = mon.try_recv().unwrap();
    assert!(evs.iter().all(|e| e.sa() != Some(&foreign.id)), "{evs:#?}");
    let mut all = EventMonitor::open(None).unwrap();
    dp.set_replay_state(
        &foreign.id,
        &ReplayState {
            oseq: 1,
            seq: 0,
            bitmap: vec![0],
        },
    )
    .unwrap();
    let fid = foreign.id;
    wait_for(&mut all, 5, |e| e.sa() == Some(&fid));
}

fn flush_own() {
    let mut dp = KernelDataplane::open(OWNED).unwrap();
    let c = || all_cryptos(6).remove(0).1;
    let ours = [
        sa("192.0.2.1", "198.51.100.2", 0x4241_5000, OWNED.min, c()),
        sa("198.51.100.2", "192.0.2.1", 0x4241_5001, OWNED.max, c()),
    ];
    let foreign = sa("192.0.2.1", "198.51.100.2", 0x4241_5002, 1, c());
    for s in ours.iter().chain([&foreign]) {
        dp.add_sa(s).unwrap();
    }
    let sel = Selector::new(Prefix::host(ip("10.0.0.1")), Prefix::host(ip("10.0.0.2"))).unwrap();
    let p = |reqid, dir| PolicySpec {
        selector: sel,
        dir,
        priority: 10,
        action: PolicyAction::Allow,
        templates: vec![Template {
            proto: Protocol::Esp,
            mode: Mode::Transport,
            reqid,
            tunnel: None,
        }],
    };
    dp.add_policy(&p(OWNED.min, Direction::Out)).unwrap();
    dp.add_policy(&p(1, Direction::In)).unwrap();
    let report = dp.flush_own().unwrap();
    assert_eq!((report.sas, report.policies), (2, 1));
    let left: Vec<SaId> = dp
        .list_sas()
        .unwrap()
        .into_iter()
        .map(|s| s.spec.id)
        .collect();
    assert_eq!(left, vec![foreign.id]);
    assert_eq!(dp.list_policies().unwrap(), vec![p(1, Direction::In)]);
}

/// Two namespaces joined by veth, an ESP tunnel between them installed
/// through `KernelDataplane` (with `encap`: ESP in UDP 4500, RFC 3948), a
/// ping across, and the counters, replay state and replay events read back.
fn data_path(n: u32, encap: bool) {
    let (na, nb) = (format!("a{n}"), format!("b{n}"));
    sh(&format!(
        "ip netns add {na} && ip netns add {nb} && ip link add va netns {na} type veth peer name vb netns {nb}"
    ));
    let (a, b) = (format!("192.168.7{n}.1"), format!("192.168.7{n}.2"));
    sh(&format!(
        "ip -n {na} addr add {a}/24 dev va && ip -n {na} link set va up && ip -n {na} link set lo up"
    ));
    sh(&format!(
        "ip -n {nb} addr add {b}/24 dev vb && ip -n {nb} link set vb up && ip -n {nb} link set lo up"
    ));
    let k_ab = Crypto::Aead {
        alg: AeadAlgorithm::AesGcm,
        key: key(20, 0xab),
        icv_bits: 128,
    };
    let k_ba = Crypto::Aead {
        alg: AeadAlgorithm::ChaCha20Poly1305,
        key: key(36, 0xba),
        icv_bits: 128,
    };
    let reqid = OWNED.min + n;
    let mut sa_ab = sa(&b, &a, 0x4241_6001 + 16 * n, reqid, k_ab);
    let mut sa_ba = sa(&a, &b, 0x4241_6002 + 16 * n, reqid, k_ba);
    sa_ba.esn = true;
    if encap {
        sa_ab.encap = Some(UdpEncap {
            sport: 4500,
            dport: 4500,
        });
        sa_ba.encap = sa_ab.encap;
    }
    let mut sa_ab_in_b = sa_ab.clone();
    sa_ab_in_b.replay_events = Some(ReplayEventThresholds {
        packets: 4,
        timer_jiffies: 0,
    });
    let policies = move |local: &str, remote: &str| {
        let out = Selector::new(Prefix::host(ip(local)), Prefix::host(ip(remote))).unwrap();
        let inb = Selector::new(Prefix::host(ip(remote)), Prefix::host(ip(local))).unwrap();
        let t = |s: &str, d: &str| Template {
            proto: Protocol::Esp,
            mode: Mode::Tunnel,
            reqid,
            tunnel: Some((ip(s), ip(d))),
        };
        vec![
            PolicySpec {
                selector: out,
                dir: Direction::Out,
                priority: 10,
                action: PolicyAction::Allow,
                templates: vec![t(local, remote)],
            },
            PolicySpec {
                selector: inb,
                dir: Direction::In,
                priority: 10,
                action: PolicyAction::Allow,
                templates: vec![t(remote, local)],
            },
        ]
    };
    let setup = move |ns: String, sas: Vec<SaSpec>, pols: Vec<PolicySpec>| {
        std::thread::spawn(move || {
            enter_named_netns(&ns);
            let mut dp = KernelDataplane::open(OWNED).unwrap();
            let mon = EventMonitor::open(Some(OWNED)).unwrap();
            let udp = encap.then(udp_encap_socket);
            for s in &sas {
                dp.add_sa(s).unwrap();
            }
            for p in &pols {
                dp.add_policy(p).unwrap();
            }
            (dp, mon, udp)
        })
        .join()
        .unwrap()
    };
    let (mut dp_a, _mon_a, _udp_a) = setup(
        na.clone(),
        vec![sa_ab.clone(), sa_ba.clone()],
        policies(&a, &b),
    );
    let (mut dp_b, mut mon_b, _udp_b) = setup(
        nb.clone(),
        vec![sa_ab_in_b, sa_ba.clone()],
        policies(&b, &a),
    );
    assert_eq!(dp_b.get_sa(&sa_ab.id).unwrap().spec.encap, sa_ab.encap);

    let ping = if Path::new("/bin/ping").exists() || Path::new("/usr/bin/ping").exists() {
        "ping"
    } else {
        "busybox ping"
    };
    let cmd = format!("ip netns exec {na} {ping} -c 8 -i 0.2 -W 3 {b}");
    let res = std::process::Command::new("sh")
        .arg("-c")
        .arg(&cmd)
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&res.stdout).into_owned();
    if !(out.contains("8 received") || out.contains("8 packets received")) {
        let diag = sh(&format!(
            "for n in {na} {nb}; do echo == $n; ip netns exec $n cat /proc/net/xfrm_stat | grep -v ' 0$'; \
             ip -n $n -s xfrm state; ip netns exec $n cat /proc/net/udp; ip netns exec $n grep Udp: /proc/net/snmp; done"
        ));
        panic!("`{cmd}` failed:\n{out}\n{diag}");
    }
    // Proof that it went through ESP: the SAs counted the packets.
    let a_out = dp_a.get_counters(&sa_ab.id).unwrap();
    let b_in = dp_b.get_counters(&sa_ab.id).unwrap();
    let b_out = dp_b.get_counters(&sa_ba.id).unwrap();
    let a_in = dp_a.get_counters(&sa_ba.id).unwrap();
    for (what, c) in [
        ("a out", a_out),
        ("b in", b_in),
        ("b out", b_out),
        ("a in", a_in),
    ] {
        assert!(c.packets >= 8 && c.bytes > 0, "{what}: {c:?}");
    }
    let out_state = dp_a.get_replay_state(&sa_ab.id).unwrap();
    let in_state = dp_b.get_replay_state(&sa_ab.id).unwrap();
    assert!(out_state.oseq >= 8, "{out_state:?}");
    assert_eq!(in_state.seq, out_state.oseq, "receiver saw every packet");
    assert!((1..=8).all(|n| in_state.received(n)), "{in_state:?}");
    assert!(dp_b.get_replay_state(&sa_ba.id).unwrap().oseq >= 8);
    // With `encap`, the ping getting through proves the UDP encapsulation: an
    // SA with encapsulation drops plain ESP (XfrmInStateMismatch), and
    // ESP-in-UDP is only decapsulated on the UDP_ENCAP socket.
    // Asynchronous replay events at the 4-packet threshold on b's inbound SA.
    let id = sa_ab.id;
    let seen = wait_for(
        &mut mon_b,
        5,
        |e| matches!(e, DataplaneEvent::Replay { sa, cause: ReplayEventCause::Threshold, .. } if *sa == id),
    );
    let seqs: Vec<u64> = seen
        .iter()
        .filter_map(|e| match e {
            DataplaneEvent::Replay { sa, state, .. } if *sa == id => Some(state.seq),
            _ => None,
        })
        .collect();
    assert!(seqs.iter().all(|&s| s >= 4), "{seqs:?}");
    println!("data path (encap {encap}): a->b {a_out:?}; replay events at inbound seq {seqs:?}");
    sh(&format!("ip netns del {na}; ip netns del {nb}"));
}
