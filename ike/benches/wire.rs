//! Wire-format micro-benchmarks: `cargo bench -p ike --bench wire`.
//!
//! Decode and encode of messages captured from strongSwan 5.9.8
//! (testvectors/data/strongswan): an IKE_SA_INIT request, the decrypted inner chain of an
//! IKE_AUTH request (PSK, CP, SA, TS) and of a CREATE_CHILD_SA request (Child SA rekey),
//! plus SK encrypt/decrypt of that IKE_AUTH chain with AES-GCM-16-128.
//! Results are recorded in docs/benchmarks.md ("Wire format").

#![allow(clippy::expect_used, clippy::panic)] // benchmark setup: a broken fixture stops the run

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use ike::crypto::sk_cipher;
use ike::wire::{
    EncrId, IntegId, Message, Payload, PayloadType, decode_chain, decrypt_message, encode_chain,
    encrypt_message,
};

const CAPTURES: &str = "../testvectors/data/strongswan";

fn read(rel: &str) -> Vec<u8> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join(CAPTURES)
        .join(rel);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// (first inner payload type, plaintext) of an encrypted capture.
fn inner(case: &str, stem: &str) -> (PayloadType, Vec<u8>) {
    let outer = read(&format!("{case}/{stem}.bin"));
    let m = Message::decode(&outer).expect("capture decodes");
    let Some(Payload::Sk(sk)) = m.payloads.last() else {
        panic!("{stem} is not an SK message")
    };
    (
        sk.first_inner,
        read(&format!("{case}/{stem}.decrypted.bin")),
    )
}

fn wire(c: &mut Criterion) {
    let init = read("psk-aes128gcm16-x25519/01-IKE_SA_INIT-request.bin");
    let chains = [
        (
            "ike_auth_request_inner",
            inner("psk-aes128gcm16-x25519", "03-IKE_AUTH-request"),
        ),
        (
            "create_child_sa_request_inner",
            inner("psk-rekey-dpd-delete", "05-CREATE_CHILD_SA-request"),
        ),
    ];

    let mut g = c.benchmark_group("decode");
    g.throughput(Throughput::Bytes(init.len() as u64));
    g.bench_function("ike_sa_init_request", |b| {
        b.iter(|| Message::decode(black_box(&init)));
    });
    for (name, (first, bytes)) in &chains {
        g.throughput(Throughput::Bytes(bytes.len() as u64));
        g.bench_function(*name, |b| b.iter(|| decode_chain(*first, black_box(bytes))));
    }
    g.finish();

    let mut g = c.benchmark_group("encode");
    let m = Message::decode(&init).expect("decodes");
    g.throughput(Throughput::Bytes(init.len() as u64));
    g.bench_function("ike_sa_init_request", |b| b.iter(|| black_box(&m).encode()));
    for (name, (first, bytes)) in &chains {
        let p = decode_chain(*first, bytes).expect("decodes");
        g.throughput(Throughput::Bytes(bytes.len() as u64));
        g.bench_function(*name, |b| b.iter(|| encode_chain(black_box(&p))));
    }
    g.finish();

    // SK{} around the IKE_AUTH chain: encode + seal, and open + decode.
    let mut g = c.benchmark_group("sk_aes_gcm_16_128");
    let cipher = sk_cipher(EncrId::AES_GCM_16, 128, IntegId::NONE, &[7; 20], &[]).expect("cipher");
    let (first, bytes) = &chains[0].1;
    let payloads = decode_chain(*first, bytes).expect("decodes");
    let header = m.header;
    let raw = encrypt_message(&header, &payloads, cipher.as_ref()).expect("encrypts");
    g.throughput(Throughput::Bytes(raw.len() as u64));
    g.bench_function("encrypt_ike_auth_request", |b| {
        b.iter(|| encrypt_message(&header, black_box(&payloads), cipher.as_ref()));
    });
    g.bench_function("decrypt_ike_auth_request", |b| {
        b.iter(|| decrypt_message(black_box(&raw), cipher.as_ref()));
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    targets = wire
}
criterion_main!(benches);
