//! The responder entry point, `Endpoint::handle_datagram`, with real crypto.
//!
//! - mode 0: the input, cut into datagrams, goes to a fresh responder (IKE_SA_INIT
//!   parsing, proposal selection, KE, cookies, routing of stray datagrams).
//! - mode 1: a responder holding one established IKE SA (imported from a record made
//!   once by a real handshake); each datagram's plaintext is sealed with the initiator's
//!   real SK keys, so the integrity check passes and IKE_AUTH retransmission handling,
//!   CREATE_CHILD_SA, INFORMATIONAL and RFC 6311 paths see fuzz-chosen payload chains.
//!
//! Invariants: no panic; every effect can be drained; at most a bounded number of SAs.

#![no_main]

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use ike::config::*;
use ike::crypto::{DEFAULT_PROVIDER, SecretBytes, SkCipher};
use ike::endpoint::{Endpoint, EndpointConfig};
use ike::initiator::InitiatorOptions;
use ike::sa::IkeSa;
use ike::wire::*;
use libfuzzer_sys::fuzz_target;

const GW: &str = "198.51.100.1:500";
const CLIENT: &str = "192.0.2.2:500";

fn addr(s: &str) -> SocketAddr {
    s.parse().expect("literal address")
}

fn id(s: &str) -> Identity {
    Identity {
        id_type: IdType::FQDN,
        data: s.as_bytes().to_vec(),
    }
}

fn conn(
    name: &str,
    local: &str,
    remote: IdentityPattern,
    local_ts: TsConfig,
    remote_ts: TsConfig,
) -> ConnectionConfig {
    ConnectionConfig {
        name: name.into(),
        ike_proposals: vec![IkeProposalConfig {
            encr: vec![EncrAlg {
                id: EncrId::AES_GCM_16,
                key_bits: 128,
            }],
            integ: vec![],
            prf: vec![PrfId::HMAC_SHA2_256],
            ke: vec![KeGroup::CURVE25519],
        }],
        esp_proposals: vec![EspProposalConfig {
            encr: vec![EncrAlg {
                id: EncrId::AES_GCM_16,
                key_bits: 128,
            }],
            integ: vec![],
            ke: vec![],
            esn: vec![EsnId::NO_ESN],
        }],
        local_id: id(local),
        local_auth: LocalAuth::Psk,
        remote_id: remote,
        remote_auth: RemoteAuth::Psk,
        local_ts: vec![local_ts],
        remote_ts: vec![remote_ts],
        pool: None,
        mode: IpsecMode::Tunnel,
        rekey_time: None,
        child_rekey_time: None,
        child_life_time: None,
        life_time: None,
        dpd_delay: None,
        fragmentation: true,
        fragment_size: 1280,
    }
}

fn config(c: ConnectionConfig) -> EndpointConfig {
    let mut cfg = EndpointConfig::new(&DEFAULT_PROVIDER);
    cfg.connections = vec![Arc::new(c)];
    cfg.secrets = vec![PskEntry {
        ids: vec![id("gw.example"), id("client.example")],
        psk: SecretBytes::from_slice(b"0123456789abcdef0123"),
    }];
    cfg.cookie_threshold = 64;
    cfg.half_open_limit = 256;
    cfg
}

fn gateway_config() -> EndpointConfig {
    let subnet = TsConfig::Subnet {
        addr: "10.1.0.0".parse().expect("literal"),
        prefix_len: 24,
        ip_protocol: 0,
        ports: (0, 65535),
    };
    config(conn(
        "rw",
        "gw.example",
        IdentityPattern::Any,
        subnet,
        TsConfig::Dynamic,
    ))
}

/// One real handshake, made once: the gateway's record and the client's SA.
fn established() -> &'static (Vec<u8>, IkeSa, Instant) {
    static E: OnceLock<(Vec<u8>, IkeSa, Instant)> = OnceLock::new();
    E.get_or_init(|| {
        let now = Instant::now();
        let subnet = TsConfig::Subnet {
            addr: "10.1.0.0".parse().expect("literal"),
            prefix_len: 24,
            ip_protocol: 0,
            ports: (0, 65535),
        };
        let mut client = Endpoint::new(
            config(conn(
                "home",
                "client.example",
                IdentityPattern::Exact(id("gw.example")),
                TsConfig::Dynamic,
                subnet,
            )),
            now,
        );
        let mut gw = Endpoint::new(gateway_config(), now);
        let opts = InitiatorOptions {
            mid_sync: true,
            replay_sync: true,
            ..Default::default()
        };
        let cid = client
            .initiate(now, "home", addr(CLIENT), addr(GW), opts)
            .expect("initiate");
        for _ in 0..8 {
            while let Some(e) = client.poll_effect() {
                if let ike::endpoint::Effect::Send { data, .. } = e {
                    gw.handle_datagram(now, addr(GW), addr(CLIENT), &data);
                }
            }
            while let Some(e) = gw.poll_effect() {
                if let ike::endpoint::Effect::Send { data, .. } = e {
                    client.handle_datagram(now, addr(CLIENT), addr(GW), &data);
                }
            }
        }
        let gid = gw.list(now).first().expect("gateway SA").id;
        let record = gw.export(gid, now).expect("record");
        let sa = client.ike_sa(cid).expect("client SA").clone();
        (record, sa, now)
    })
}

fn cipher(sa: &IkeSa) -> Box<dyn SkCipher> {
    (DEFAULT_PROVIDER.sk_cipher)(
        sa.suite.encr.id,
        sa.suite.encr.key_bits,
        sa.suite.integ,
        sa.keys.sk_ei.expose(),
        sa.keys.sk_ai.expose(),
    )
    .expect("cipher")
}

/// Splits `data` into datagrams: a 1-octet length before each (0 = the rest).
fn datagrams(mut data: &[u8]) -> Vec<&[u8]> {
    let mut out = Vec::new();
    while let Some((&n, rest)) = data.split_first() {
        let n = if n == 0 {
            rest.len()
        } else {
            usize::from(n).min(rest.len())
        };
        let (d, r) = rest.split_at(n);
        out.push(d);
        data = r;
        if out.len() >= 16 {
            break;
        }
    }
    out
}

fn drain(ep: &mut Endpoint) {
    let mut n = 0;
    while ep.poll_effect().is_some() {
        n += 1;
        assert!(n < 100_000, "effects never end");
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let (record, client_sa, t0) = established();
    let now = *t0;
    if mode % 2 == 0 {
        let mut ep = Endpoint::new(gateway_config(), now);
        for d in datagrams(rest) {
            ep.handle_datagram(now, addr(GW), addr(CLIENT), d);
            drain(&mut ep);
        }
        ep.handle_timeout(now + Duration::from_secs(60));
        drain(&mut ep);
        assert!(ep.half_open_count() <= 256);
        return;
    }
    let mut ep = Endpoint::new(gateway_config(), now);
    ep.import(now, record).expect("own record imports");
    let c = cipher(client_sa);
    for d in datagrams(rest) {
        // d = exchange selector, first inner payload type, Message ID offset, plaintext.
        let [x, first, mid, plaintext @ ..] = d else {
            continue;
        };
        let exchange = match x % 4 {
            0 => ExchangeType::INFORMATIONAL,
            1 => ExchangeType::CREATE_CHILD_SA,
            2 => ExchangeType::IKE_AUTH,
            _ => ExchangeType(*x),
        };
        let message_id = ep
            .ike_sa(ep.list(now)[0].id)
            .map_or(0, |s| s.msgids.peer_next_request)
            .wrapping_add(u32::from(*mid % 3))
            .wrapping_sub(1);
        let sealed = c.sealed_len(plaintext.len());
        let total = 28 + 4 + sealed;
        let Ok(total32) = u32::try_from(total) else {
            continue;
        };
        let Ok(sk_len) = u16::try_from(4 + sealed) else {
            continue;
        };
        let mut m = Vec::with_capacity(total);
        m.extend_from_slice(&client_sa.spis.spi_i.to_bytes());
        m.extend_from_slice(&client_sa.spis.spi_r.to_bytes());
        m.extend_from_slice(&[PayloadType::SK.0, 0x20, exchange.0, Flags::INITIATOR]);
        m.extend_from_slice(&message_id.to_be_bytes());
        m.extend_from_slice(&total32.to_be_bytes());
        m.extend_from_slice(&[*first, 0]);
        m.extend_from_slice(&sk_len.to_be_bytes());
        if c.seal(plaintext, &mut m).is_err() {
            continue;
        }
        ep.handle_datagram(now, addr(GW), addr(CLIENT), &m);
        drain(&mut ep);
    }
    ep.handle_timeout(now + Duration::from_secs(3600));
    drain(&mut ep);
    assert!(ep.ike_sa_count() <= 32);
});
