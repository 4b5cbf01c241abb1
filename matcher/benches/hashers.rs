//! The matcher's interning hash against rustc-hash's `FxHasher`, on the keys it hashes (rule
//! index lists and address keys): the decision record for keeping one or the other.
// criterion's macros generate undocumented functions.
#![allow(missing_docs)]

use std::hash::{BuildHasher, BuildHasherDefault, Hash, Hasher};

use criterion::{black_box, criterion_group, criterion_main, Criterion};

/// The matcher's former hand-written hasher, kept here as the measured baseline.
#[derive(Default, Clone, Copy)]
struct Handwritten(u64);

impl Hasher for Handwritten {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut buf = [0u8; 8];
            for (b, c) in buf.iter_mut().zip(chunk) {
                *b = *c;
            }
            self.write_u64(u64::from_le_bytes(buf));
        }
    }
    fn write_u32(&mut self, n: u32) {
        self.write_u64(u64::from(n));
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0.rotate_left(5) ^ n).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
    fn write_usize(&mut self, n: usize) {
        self.write_u64(n as u64);
    }
}

fn keys() -> Vec<Vec<u32>> {
    // Rule-index lists as interning sees them: sorted, lengths 1..64.
    let mut state = 0x2545_f491_4f6c_dd1du64;
    (0..10_000)
        .map(|i| {
            let len = 1 + (i % 64);
            (0..len)
                .map(|_| {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    (state % 100_000) as u32
                })
                .collect()
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let keys = keys();
    let mut group = c.benchmark_group("hashers");
    let hand = BuildHasherDefault::<Handwritten>::default();
    group.bench_function("handwritten", |b| {
        b.iter(|| {
            keys.iter()
                .fold(0u64, |acc, k| acc ^ hand.hash_one(black_box(k)))
        })
    });
    let fx = rustc_hash::FxBuildHasher;
    group.bench_function("rustc-hash", |b| {
        b.iter(|| {
            keys.iter()
                .fold(0u64, |acc, k| acc ^ fx.hash_one(black_box(k)))
        })
    });
    let _ = Handwritten::default().finish();
    let _unused = |h: &mut Handwritten| 0u32.hash(h);
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
