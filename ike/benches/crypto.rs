//! Crypto micro-benchmarks: `cargo bench -p ike --bench crypto`.
//!
//! Key derivation for one IKE SA, each key exchange method (start + complete), SK seal and
//! open of 200- and 1,400-octet messages for each transform, RSA-2048 sign and verify.
//! Results are recorded in docs/benchmarks.md ("Crypto micro-benchmarks").

use std::hint::black_box;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use ike::crypto::{
    self, KeMethod, KeyLengths, Prf, RsaSigningKey, SignatureScheme, SkCipher, derive_ike_sa_keys,
    skeyseed, verify_rsa,
};
use ike::wire::IkeSpi;
use ike::wire::registry::{EncrId, IntegId};

const RSA_KEY: &str = include_str!("../src/crypto/testdata/rsa2048.pkcs8.pem");
const RSA_SPKI: &[u8] = include_bytes!("../src/crypto/testdata/rsa2048.spki.der");

/// SKEYSEED and the seven keys of an IKE SA with AES-GCM-16-256 (RFC 7296 §2.14).
fn ike_sa_keys(c: &mut Criterion) {
    let mut g = c.benchmark_group("ike_sa_keys");
    let prfs: [(&str, &dyn Prf); 3] = [
        ("hmac_sha2_256", &crypto::HMAC_SHA2_256),
        ("hmac_sha2_384", &crypto::HMAC_SHA2_384),
        ("hmac_sha2_512", &crypto::HMAC_SHA2_512),
    ];
    let (ni, nr, gir) = ([1u8; 32], [2u8; 32], [3u8; 32]);
    for (name, prf) in prfs {
        let lens = KeyLengths {
            encr: 36,
            integ: 0,
            prf: prf.output_len(),
        };
        g.bench_function(name, |b| {
            b.iter(|| {
                let s = skeyseed(prf, &ni, &nr, black_box(&gir));
                derive_ike_sa_keys(prf, s.expose(), &ni, &nr, IkeSpi(1), IkeSpi(2), &lens)
            });
        });
    }
    g.finish();
}

/// One side of a key exchange: fresh private key, public value, shared secret.
fn key_exchange(c: &mut Criterion) {
    let mut g = c.benchmark_group("ke_start_complete");
    g.sample_size(20);
    let methods: [(&str, &dyn KeMethod); 5] = [
        ("x25519", &crypto::X25519),
        ("ecp_256", &crypto::ECP_256),
        ("ecp_384", &crypto::ECP_384),
        ("modp_2048", &crypto::MODP_2048),
        ("modp_3072", &crypto::MODP_3072),
    ];
    for (name, m) in methods {
        let Ok(peer) = m.start() else { return };
        let peer_public = peer.public_value().to_vec();
        g.bench_function(name, |b| {
            b.iter(|| {
                m.start()
                    .and_then(|x| x.complete(black_box(&peer_public)))
                    .map(|s| s.len())
            });
        });
    }
    g.finish();
}

fn sk_ciphers() -> Vec<(&'static str, Box<dyn SkCipher>)> {
    let make = |e, bits, i, ke: &[u8], ka: &[u8]| crypto::sk_cipher(e, bits, i, ke, ka).ok();
    [
        (
            "aes_gcm_16_128",
            make(EncrId::AES_GCM_16, 128, IntegId::NONE, &[1; 20], &[]),
        ),
        (
            "aes_gcm_16_256",
            make(EncrId::AES_GCM_16, 256, IntegId::NONE, &[1; 36], &[]),
        ),
        (
            "chacha20_poly1305",
            make(EncrId::CHACHA20_POLY1305, 0, IntegId::NONE, &[1; 36], &[]),
        ),
        (
            "aes_cbc_128_hmac_sha2_256_128",
            make(
                EncrId::AES_CBC,
                128,
                IntegId::HMAC_SHA2_256_128,
                &[1; 16],
                &[2; 32],
            ),
        ),
        (
            "aes_cbc_256_hmac_sha2_256_128",
            make(
                EncrId::AES_CBC,
                256,
                IntegId::HMAC_SHA2_256_128,
                &[1; 32],
                &[2; 32],
            ),
        ),
        (
            "aes_cbc_256_hmac_sha2_512_256",
            make(
                EncrId::AES_CBC,
                256,
                IntegId::HMAC_SHA2_512_256,
                &[1; 32],
                &[2; 64],
            ),
        ),
    ]
    .into_iter()
    .filter_map(|(n, c)| c.map(|c| (n, c)))
    .collect()
}

/// SK payload seal and open; the prefix stands in for the 28-octet IKE header and the
/// 4-octet SK generic header.
fn sk_payload(c: &mut Criterion) {
    let prefix = [0x5au8; 32];
    for (op, seal) in [("sk_seal", true), ("sk_open", false)] {
        let mut g = c.benchmark_group(op);
        for (name, cipher) in sk_ciphers() {
            for size in [200usize, 1400] {
                let pt = vec![0xa5u8; size];
                let mut sealed = prefix.to_vec();
                if cipher.seal(&pt, &mut sealed).is_err() {
                    continue;
                }
                let body = sealed.split_off(prefix.len());
                g.throughput(Throughput::Bytes(size as u64));
                g.bench_with_input(BenchmarkId::new(name, size), &size, |b, _| {
                    if seal {
                        let mut out = Vec::with_capacity(prefix.len() + body.len());
                        b.iter(|| {
                            out.clear();
                            out.extend_from_slice(&prefix);
                            cipher.seal(black_box(&pt), &mut out)
                        });
                    } else {
                        b.iter(|| cipher.open(&prefix, black_box(&body)));
                    }
                });
            }
        }
        g.finish();
    }
}

/// RSA-2048 signing (ring, constant time) and verification of 100 octets.
fn rsa(c: &mut Criterion) {
    let Ok(key) = RsaSigningKey::from_pem(RSA_KEY) else {
        return;
    };
    let msg = [0x42u8; 100];
    let mut g = c.benchmark_group("rsa2048");
    g.sample_size(30);
    for (name, scheme) in [
        ("pkcs1_sha256", SignatureScheme::RsaPkcs1Sha256),
        ("pss_sha256", SignatureScheme::RsaPssSha256),
    ] {
        let Ok(sig) = key.sign(scheme, &msg) else {
            continue;
        };
        g.bench_function(format!("sign_{name}"), |b| {
            b.iter(|| key.sign(scheme, black_box(&msg)));
        });
        g.bench_function(format!("verify_{name}"), |b| {
            b.iter(|| verify_rsa(RSA_SPKI, scheme, black_box(&msg), &sig));
        });
    }
    g.finish();
}

fn config() -> Criterion {
    // A shared 2-core machine: short runs, enough samples for a stable median.
    Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
}

criterion_group! {
    name = benches;
    config = config();
    targets = ike_sa_keys, key_exchange, sk_payload, rsa
}
criterion_main!(benches);
