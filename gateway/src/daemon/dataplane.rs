//! Child SA installs and deletes from the protocol core, executed on an
//! [`xfrm::Dataplane`]: two SAs per Child SA (RFC 4301 §4.1: SAs are unidirectional) and,
//! for each pair of traffic selectors, the out/in/fwd policies that steer traffic into
//! them (RFC 4301 §4.4.1).

use std::net::IpAddr;

use ike::config::IpsecMode;
use ike::endpoint::{ChildDelete, ChildInstall, ChildSaHalf};
use ike::policy::proposal::ChildSuite;
use ike::policy::ts::range_to_subnets;
use ike::wire::IpTrafficSelector;
use ike::wire::registry::{EncrId, IntegId};
use xfrm::{
    AeadAlgorithm, AuthAlgorithm, Crypto, Dataplane, Direction, EncAlgorithm, Key, Lifetime, Mode,
    OwnedRange, PolicyAction, PolicyId, PolicySpec, Prefix, ReplayEventThresholds, ReplayState,
    SaId, SaSpec, Selector, Spi, Template, UdpEncap,
};

/// Priority of our policies (lower is preferred by the kernel); leaves room above and
/// below for operator policies.
const POLICY_PRIORITY: u32 = 2000;

/// Maps the core's reqids into the range that marks baton's kernel objects, so
/// `flush_own` finds them after a crash.
pub fn kernel_reqid(owned: OwnedRange, reqid: u32) -> u32 {
    let span = owned.max.saturating_sub(owned.min).saturating_add(1).max(1);
    owned.min + reqid % span
}

fn crypto(suite: &ChildSuite, half: &ChildSaHalf) -> Result<Crypto, String> {
    let encr = Key::from_slice(half.keys.encr.expose());
    let aead = |alg, icv_bits| {
        Ok(Crypto::Aead {
            alg,
            key: encr.clone(),
            icv_bits,
        })
    };
    match suite.encr.id {
        EncrId::AES_GCM_16 => aead(AeadAlgorithm::AesGcm, 128),
        EncrId::AES_GCM_12 => aead(AeadAlgorithm::AesGcm, 96),
        EncrId::AES_GCM_8 => aead(AeadAlgorithm::AesGcm, 64),
        EncrId::CHACHA20_POLY1305 => aead(AeadAlgorithm::ChaCha20Poly1305, 128),
        EncrId::AES_CBC => {
            let auth = match suite.integ {
                IntegId::HMAC_SHA2_256_128 => AuthAlgorithm::HmacSha256,
                IntegId::HMAC_SHA2_384_192 => AuthAlgorithm::HmacSha384,
                IntegId::HMAC_SHA2_512_256 => AuthAlgorithm::HmacSha512,
                other => {
                    return Err(format!(
                        "integrity algorithm {other} has no data plane mapping"
                    ));
                }
            };
            Ok(Crypto::EncAuth {
                enc: EncAlgorithm::AesCbc,
                enc_key: encr.clone(),
                auth,
                auth_key: Key::from_slice(half.keys.integ.expose()),
            })
        }
        other => Err(format!(
            "encryption algorithm {other} has no data plane mapping"
        )),
    }
}

fn mode(m: IpsecMode) -> Mode {
    match m {
        IpsecMode::Tunnel => Mode::Tunnel,
        IpsecMode::Transport => Mode::Transport,
    }
}

/// What a cluster adds to a Child SA install (see `cluster::sa::ClusterInstall`); the
/// default is a standalone gateway's install.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct InstallOptions {
    /// Initial replay state of the inbound SA (takeover, transfer).
    pub inbound_replay: Option<ReplayState>,
    /// Initial replay state of the outbound SA: `oseq` is the last number used.
    pub outbound_replay: Option<ReplayState>,
    /// (soft, hard) packet lifetimes of the outbound SA: the sequence number lease.
    pub outbound_packets: Option<(u64, u64)>,
    /// Asynchronous replay events (checkpoints for replication); `None`: none.
    pub replay_events: Option<ReplayEventThresholds>,
    /// Replace an SA with the same SPI left by an earlier ownership of the same Child
    /// SA on this node (a cluster takeover or transfer back); a standalone gateway's
    /// SPIs are fresh, so there an existing SA is an error.
    pub replace_existing: bool,
}

fn sa_spec(
    ci: &ChildInstall,
    half: &ChildSaHalf,
    inbound: bool,
    reqid: u32,
    opts: &InstallOptions,
) -> Result<SaSpec, String> {
    let mut spec = SaSpec::new(
        SaId::esp(half.dst, Spi(half.spi)),
        half.src,
        mode(ci.mode),
        reqid,
        crypto(&ci.suite, half)?,
    );
    spec.esn = ci.suite.esn;
    // No asynchronous replay events (XFRMA_REPLAY_THRESH = XFRMA_ETIMER_THRESH = 0).
    // Left unset, the kernel applies net.core.xfrm_aevent_rseqth (default: one
    // XFRM_MSG_NEWAE per 2 packets per SA), and under traffic that flood keeps the
    // daemon's event drain busy and starves IKE (tests/esp_vm.rs: a Child SA rekey
    // under 200 packets/s went unanswered). Nothing consumes replay events yet.
    // A cluster asks for rate-limited events instead (`InstallOptions::replay_events`).
    spec.replay_events = Some(opts.replay_events.unwrap_or(ReplayEventThresholds {
        packets: 0,
        timer_jiffies: 0,
    }));
    spec.replay_window = if inbound { 128 } else { 0 };
    if ci.suite.esn {
        spec.replay_window = spec.replay_window.max(1);
    }
    // (ours, peer's): inbound ESP-in-UDP comes from the peer's port to ours.
    spec.encap = ci.encap.map(|(ours, peer)| {
        if inbound {
            UdpEncap {
                sport: peer,
                dport: ours,
            }
        } else {
            UdpEncap {
                sport: ours,
                dport: peer,
            }
        }
    });
    spec.lifetime = Lifetime {
        soft_add_secs: ci.soft_lifetime.map(|d| d.as_secs().max(1)),
        hard_add_secs: ci.hard_lifetime.map(|d| d.as_secs().max(1)),
        ..Lifetime::default()
    };
    if inbound {
        spec.replay_state.clone_from(&opts.inbound_replay);
    } else {
        spec.replay_state.clone_from(&opts.outbound_replay);
        if let Some((soft, hard)) = opts.outbound_packets {
            spec.lifetime.soft_packets = Some(soft);
            spec.lifetime.hard_packets = Some(hard);
        }
    }
    Ok(spec)
}

/// Kernel selectors for a local/remote selector pair: every prefix of each range, same
/// family only. A single port is kept; a port range becomes "any port".
fn selectors(local: &[IpTrafficSelector], remote: &[IpTrafficSelector]) -> Vec<Selector> {
    let prefixes = |ts: &IpTrafficSelector| -> Vec<Prefix> {
        range_to_subnets(ts.start_addr, ts.end_addr)
            .into_iter()
            .filter_map(|(a, l)| Prefix::new(a, l).ok())
            .collect()
    };
    let port = |ts: &IpTrafficSelector| {
        if ts.start_port == ts.end_port {
            ts.start_port
        } else {
            0
        }
    };
    let mut out = Vec::new();
    for l in local {
        for r in remote {
            if l.start_addr.is_ipv4() != r.start_addr.is_ipv4() {
                continue;
            }
            let proto = if l.ip_protocol == r.ip_protocol || r.ip_protocol == 0 {
                l.ip_protocol
            } else if l.ip_protocol == 0 {
                r.ip_protocol
            } else {
                continue;
            };
            for lp in prefixes(l) {
                for rp in prefixes(r) {
                    if let Ok(mut s) = Selector::new(lp, rp) {
                        s.proto = proto;
                        s.src_port = port(l);
                        s.dst_port = port(r);
                        out.push(s);
                    }
                }
            }
        }
    }
    out
}

fn reversed(s: &Selector) -> Selector {
    Selector {
        src: s.dst,
        dst: s.src,
        proto: s.proto,
        src_port: s.dst_port,
        dst_port: s.src_port,
    }
}

fn policies(
    sels: &[Selector],
    m: IpsecMode,
    reqid: u32,
    local: IpAddr,
    remote: IpAddr,
) -> Vec<PolicySpec> {
    let tunnel = |src, dst| match m {
        IpsecMode::Tunnel => Some((src, dst)),
        IpsecMode::Transport => None,
    };
    let mut out = Vec::new();
    for s in sels {
        let t_out = Template {
            proto: xfrm::Protocol::Esp,
            mode: mode(m),
            reqid,
            tunnel: tunnel(local, remote),
        };
        let t_in = Template {
            tunnel: tunnel(remote, local),
            ..t_out
        };
        let spec = |selector, dir, t| PolicySpec {
            selector,
            dir,
            priority: POLICY_PRIORITY,
            action: PolicyAction::Allow,
            templates: vec![t],
        };
        out.push(spec(*s, Direction::Out, t_out));
        out.push(spec(reversed(s), Direction::In, t_in));
        if m == IpsecMode::Tunnel {
            out.push(spec(reversed(s), Direction::Fwd, t_in));
        }
    }
    out
}

/// Installs a Child SA: both SAs, then (unless it replaces one whose policies stay) the
/// policies. On failure nothing of it is left behind.
///
/// A Child SA that replaces another (a rekey) gets only its inbound SA here; its
/// outbound SA follows with [`install_outbound`] once the replaced Child SA is deleted.
/// The kernel sends on the newest outbound SA of a reqid, and the peer may not have
/// installed its inbound SA yet when our CREATE_CHILD_SA response leaves (RFC 7296
/// §2.8: the peer is ready once it deletes the replaced SA). Installing both at once
/// lost ~140 ms of gateway-to-client packets per rekey (tests/esp_vm.rs).
pub fn install(dp: &mut dyn Dataplane, owned: OwnedRange, ci: &ChildInstall) -> Result<(), String> {
    install_with(dp, owned, ci, &InstallOptions::default())
}

/// [`install`] with a cluster's replay states, lease and replay events.
pub fn install_with(
    dp: &mut dyn Dataplane,
    owned: OwnedRange,
    ci: &ChildInstall,
    opts: &InstallOptions,
) -> Result<(), String> {
    let reqid = kernel_reqid(owned, ci.reqid);
    let sa_in = sa_spec(ci, &ci.inbound, true, reqid, opts)?;
    add_sa(dp, &sa_in, opts.replace_existing)?;
    if ci.replaces.is_some() {
        return Ok(());
    }
    let sa_out = sa_spec(ci, &ci.outbound, false, reqid, opts)?;
    if let Err(e) = add_sa(dp, &sa_out, opts.replace_existing) {
        let _ = dp.delete_sa(&sa_in.id);
        return Err(e);
    }
    install_policies(dp, ci, reqid, &sa_in, &sa_out, opts.replace_existing)
}

fn add_sa(dp: &mut dyn Dataplane, spec: &SaSpec, replace: bool) -> Result<(), String> {
    match dp.add_sa(spec) {
        Ok(()) => Ok(()),
        Err(e) if replace && e.is_exists() => {
            dp.delete_sa(&spec.id).map_err(|e| e.to_string())?;
            dp.add_sa(spec).map_err(|e| e.to_string())
        }
        Err(e) => Err(e.to_string()),
    }
}

fn install_policies(
    dp: &mut dyn Dataplane,
    ci: &ChildInstall,
    reqid: u32,
    sa_in: &SaSpec,
    sa_out: &SaSpec,
    upsert: bool,
) -> Result<(), String> {
    let sels = selectors(&ci.local_ts, &ci.remote_ts);
    let local = ci.inbound.dst;
    let remote = ci.outbound.dst;
    let specs = policies(&sels, ci.mode, reqid, local, remote);
    for (i, p) in specs.iter().enumerate() {
        // An existing policy with the same selector (a block policy a cluster node held
        // while another owned the Child SA) is switched over. A cluster node expects
        // one and upserts at once (XFRM_MSG_UPDPOLICY inserts or replaces): one netlink
        // round trip instead of a refused add and an update, per policy, which
        // matters in a takeover of many SAs.
        let r = if upsert {
            dp.update_policy(p)
        } else {
            dp.add_policy(p).or_else(|e| {
                if e.is_exists() {
                    dp.update_policy(p)
                } else {
                    Err(e)
                }
            })
        };
        if let Err(e) = r {
            for done in specs.iter().take(i) {
                let _ = dp.delete_policy(&done.id());
            }
            let _ = dp.delete_sa(&sa_in.id);
            let _ = dp.delete_sa(&sa_out.id);
            return Err(e.to_string());
        }
    }
    Ok(())
}

/// Installs the outbound SA of a rekeyed Child SA whose inbound SA [`install`] put in.
pub fn install_outbound(
    dp: &mut dyn Dataplane,
    owned: OwnedRange,
    ci: &ChildInstall,
) -> Result<(), String> {
    install_outbound_with(dp, owned, ci, &InstallOptions::default())
}

/// [`install_outbound`] with a cluster's replay state and lease.
pub fn install_outbound_with(
    dp: &mut dyn Dataplane,
    owned: OwnedRange,
    ci: &ChildInstall,
    opts: &InstallOptions,
) -> Result<(), String> {
    let reqid = kernel_reqid(owned, ci.reqid);
    let sa_out = sa_spec(ci, &ci.outbound, false, reqid, opts)?;
    add_sa(dp, &sa_out, opts.replace_existing)
}

/// Removes a Child SA and, unless a newer one keeps them, its policies. Objects already
/// gone (e.g. after a hard expiry) are not errors.
pub fn delete(dp: &mut dyn Dataplane, owned: OwnedRange, cd: &ChildDelete) -> Result<(), String> {
    let mut first_err = None;
    let mut note = |r: xfrm::Result<()>| {
        if let Err(e) = r
            && !e.is_not_found()
            && first_err.is_none()
        {
            first_err = Some(e.to_string());
        }
    };
    note(dp.delete_sa(&SaId::esp(cd.local_addr, Spi(cd.spi_in))));
    note(dp.delete_sa(&SaId::esp(cd.remote_addr, Spi(cd.spi_out))));
    if !cd.keep_policies {
        let reqid = kernel_reqid(owned, cd.reqid);
        let sels = selectors(&cd.local_ts, &cd.remote_ts);
        for m in [IpsecMode::Tunnel] {
            for p in policies(&sels, m, reqid, cd.local_addr, cd.remote_addr) {
                let id: PolicyId = p.id();
                note(dp.delete_policy(&id));
            }
        }
    }
    first_err.map_or(Ok(()), Err)
}

/// A cluster non-owner's policies for a Child SA another node owns: the same selectors
/// as the owner's IPsec policies, action block, so the tunnel's traffic is never
/// forwarded in the clear here (DESIGN §4). Existing policies (ours, on a transfer
/// out) are switched to block.
pub fn block(
    dp: &mut dyn Dataplane,
    owned: OwnedRange,
    reqid: u32,
    mode: IpsecMode,
    (local, remote): (IpAddr, IpAddr),
    (local_ts, remote_ts): (&[IpTrafficSelector], &[IpTrafficSelector]),
) -> Result<(), String> {
    let reqid = kernel_reqid(owned, reqid);
    let sels = selectors(local_ts, remote_ts);
    for mut p in policies(&sels, mode, reqid, local, remote) {
        p.action = PolicyAction::Block;
        p.templates.clear();
        // Upsert (XFRM_MSG_UPDPOLICY inserts or replaces).
        dp.update_policy(&p).map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// Removes the policies [`block`] installed (missing ones are not errors).
pub fn unblock(
    dp: &mut dyn Dataplane,
    owned: OwnedRange,
    reqid: u32,
    mode: IpsecMode,
    (local, remote): (IpAddr, IpAddr),
    (local_ts, remote_ts): (&[IpTrafficSelector], &[IpTrafficSelector]),
) -> Result<(), String> {
    let reqid = kernel_reqid(owned, reqid);
    let sels = selectors(local_ts, remote_ts);
    let mut first_err = None;
    for p in policies(&sels, mode, reqid, local, remote) {
        if let Err(e) = dp.delete_policy(&p.id())
            && !e.is_not_found()
            && first_err.is_none()
        {
            first_err = Some(e.to_string());
        }
    }
    first_err.map_or(Ok(()), Err)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use ike::config::EncrAlg;
    use ike::crypto::SecretBytes;
    use ike::sa::{ChildSaKeys, IkeSaId};

    fn child(spi_in: u32, spi_out: u32, replaces: Option<(u32, u32)>) -> ChildInstall {
        let (gw, client): (IpAddr, IpAddr) = (
            "198.51.100.1".parse().unwrap(),
            "198.51.100.2".parse().unwrap(),
        );
        let keys = || ChildSaKeys {
            encr: SecretBytes::new(vec![7; 20]),
            integ: SecretBytes::new(Vec::new()),
        };
        let ts = |a: &str| IpTrafficSelector {
            ip_protocol: 0,
            start_port: 0,
            end_port: 65535,
            start_addr: a.parse().unwrap(),
            end_addr: a.parse().unwrap(),
        };
        ChildInstall {
            ike_sa: IkeSaId(1),
            name: "net".into(),
            reqid: 1,
            suite: ChildSuite {
                encr: EncrAlg {
                    id: EncrId::AES_GCM_16,
                    key_bits: 128,
                },
                integ: IntegId::NONE,
                ke: None,
                esn: false,
            },
            mode: IpsecMode::Tunnel,
            inbound: ChildSaHalf {
                spi: spi_in,
                src: client,
                dst: gw,
                keys: keys(),
            },
            outbound: ChildSaHalf {
                spi: spi_out,
                src: gw,
                dst: client,
                keys: keys(),
            },
            encap: None,
            local_ts: vec![ts("10.1.0.1")],
            remote_ts: vec![ts("10.8.0.1")],
            soft_lifetime: None,
            hard_lifetime: None,
            replaces,
        }
    }

    fn spis(dp: &mut dyn Dataplane) -> Vec<u32> {
        let mut v: Vec<u32> = dp
            .list_sas()
            .unwrap()
            .into_iter()
            .map(|s| s.spec.id.spi.0)
            .collect();
        v.sort_unstable();
        v
    }

    /// A rekeyed Child SA gets its inbound SA at once and its outbound SA only with
    /// `install_outbound` (when the replaced one goes); SAs carry no replay events.
    #[test]
    fn rekeyed_child_outbound_waits() {
        let owned = OwnedRange::default();
        let mut dp = xfrm::MemoryDataplane::new(owned, 1);
        install(&mut dp, owned, &child(0x1010, 0x1020, None)).unwrap();
        assert_eq!(spis(&mut dp), vec![0x1010, 0x1020]);
        let new = child(0x1011, 0x1021, Some((0x1010, 0x1020)));
        install(&mut dp, owned, &new).unwrap();
        assert_eq!(spis(&mut dp), vec![0x1010, 0x1011, 0x1020]);
        install_outbound(&mut dp, owned, &new).unwrap();
        assert_eq!(spis(&mut dp), vec![0x1010, 0x1011, 0x1020, 0x1021]);
        for s in dp.list_sas().unwrap() {
            assert_eq!(
                s.spec.replay_events,
                Some(ReplayEventThresholds {
                    packets: 0,
                    timer_jiffies: 0
                })
            );
        }
    }
}
