//! Crypto micro-benchmarks: `cargo bench -p ike --bench crypto`.

use criterion::{Criterion, criterion_group, criterion_main};

fn prf_plus(c: &mut Criterion) {
    c.bench_function("prf+ 256", |b| {
        b.iter(|| ike::crypto::prf_plus(&ike::crypto::HMAC_SHA2_256, &[1; 32], &[2; 80], 200))
    });
}

criterion_group!(benches, prf_plus);
criterion_main!(benches);
