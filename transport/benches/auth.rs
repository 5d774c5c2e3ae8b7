//! Cost of protecting a frame, per body size: encode (seal) and decode (open) under `mac`
//! (keyed BLAKE3) and `aead` (AES-256-GCM), beside a memcpy of the same bytes measured in
//! the same run. Run: `cargo bench -p ordo-transport --bench auth`.

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use ordo_core::{ClusterId, MemberId, SessionId, Term};
use ordo_transport::{Body, FrameCodec, FrameKey, KeyRing, MTU_BYTES_DEFAULT, Security};
use std::hint::black_box;
use std::time::Duration;

fn codec(security: Security) -> FrameCodec {
    FrameCodec::new(ClusterId(1), MemberId(1), security, KeyRing::new(FrameKey::new(&[7; 32])), MTU_BYTES_DEFAULT)
}

fn auth(c: &mut Criterion) {
    let mut group = c.benchmark_group("frame");
    group.warm_up_time(Duration::from_millis(500)).measurement_time(Duration::from_secs(2));
    for size in [64usize, 256, 1024, 1328] {
        let command = vec![0x5Au8; size];
        let body = Body::ClientRequest { session: SessionId(1), sequence: 1, command: &command };
        group.throughput(Throughput::Bytes(size as u64));
        let mut out = [0u8; MTU_BYTES_DEFAULT];
        let mut target = vec![0u8; size];
        group.bench_with_input(BenchmarkId::new("memcpy", size), &size, |b, _| {
            b.iter(|| target.copy_from_slice(black_box(&command)))
        });
        for (name, security) in [("mac", Security::Mac), ("aead", Security::Aead)] {
            let mut sender = codec(security);
            group.bench_with_input(BenchmarkId::new(format!("{name}_encode"), size), &size, |b, _| {
                b.iter(|| black_box(sender.encode(&mut out, Term(1), &body).unwrap()))
            });
            let length = sender.encode(&mut out, Term(1), &body).unwrap();
            let receiver = codec(security);
            let encoded = out;
            let mut scratch = out;
            group.bench_with_input(BenchmarkId::new(format!("{name}_decode"), size), &size, |b, _| {
                b.iter(|| {
                    // Decoding an encrypted frame decrypts in place: start from the sealed bytes.
                    scratch[..length].copy_from_slice(&encoded[..length]);
                    black_box(receiver.decode(&mut scratch[..length]).unwrap().header.sequence.get())
                })
            });
        }
    }
    group.finish();
}

criterion_group!(benches, auth);
criterion_main!(benches);
