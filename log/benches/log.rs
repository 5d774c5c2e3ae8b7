//! Log throughput, each figure beside its floor measured in the same run:
//! - `append/{replicated,memcpy,crc32c}/N`: appending N-byte payloads vs copying the same
//!   bytes into a buffer of the same size with the same access pattern, and vs the CRC32C
//!   of one entry (the two costs an append cannot avoid);
//! - `group_commit/{fsync,fdatasync_raw}/B`: batches of B appends + one sync vs a raw
//!   `pwrite` + `fdatasync` of one entry's bytes;
//! - `iterate/{entries,memcpy}/N`: reading back every entry (checksum and chain checked)
//!   vs copying the same bytes.
//!
//! Run: `cargo bench -p ordo-log --bench log`. Ratios hold on this noisy 2-core machine;
//! absolute times don't.

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use ordo_core::entry::entry_span_bytes;
use ordo_core::{ClusterId, ClusterTimeNs, Durability, EntryMeta, LogConfig, Position, SessionId, Term};
use ordo_log::Log;
use std::hint::black_box;
use std::os::unix::fs::FileExt;
use std::time::{Duration, Instant};

const SEGMENT_BYTES: u64 = 64 * 1024 * 1024;
/// Appends per round before the log is truncated back (untimed), so the benchmark reuses
/// the same mapped pages instead of filling the disk; stays inside one segment.
const ROUND_BYTES: u64 = SEGMENT_BYTES / 2;

fn config(durability: Durability) -> LogConfig {
    LogConfig { cluster_id: ClusterId(1), segment_bytes: SEGMENT_BYTES, durability, entry_payload_bytes_max: 64 * 1024 }
}

fn meta() -> EntryMeta {
    EntryMeta::command(Term(1), ClusterTimeNs(0), SessionId(1), 0)
}

fn append(c: &mut Criterion) {
    let mut group = c.benchmark_group("append");
    group.warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(3));
    for size in [64usize, 256, 1024] {
        group.throughput(Throughput::Bytes(size as u64));
        let payload = vec![0x5Au8; size];
        let dir = tempfile::tempdir().unwrap();
        let (mut log, _) = Log::open(dir.path(), config(Durability::Replicated)).unwrap();
        group.bench_with_input(BenchmarkId::new("replicated", size), &size, |b, _| {
            b.iter_custom(|iterations| {
                let mut elapsed = Duration::ZERO;
                let mut done = 0;
                while done < iterations {
                    let round = (iterations - done).min(ROUND_BYTES / entry_span_bytes(size));
                    let start = Instant::now();
                    for _ in 0..round {
                        black_box(log.append(&meta(), &payload).unwrap());
                    }
                    elapsed += start.elapsed();
                    log.truncate_to(Position::ZERO).unwrap();
                    done += round;
                }
                elapsed
            })
        });
        let entry = vec![0x5Au8; 64 + size];
        group.bench_with_input(BenchmarkId::new("crc32c", size), &size, |b, _| {
            b.iter(|| ordo_core::checksum::crc32c(black_box(&entry[4..])))
        });
        let mut buffer = vec![0u8; SEGMENT_BYTES as usize];
        group.bench_with_input(BenchmarkId::new("memcpy", size), &size, |b, _| {
            let span = entry_span_bytes(size) as usize;
            let mut offset = 0usize;
            b.iter(|| {
                if offset + span > ROUND_BYTES as usize {
                    offset = 0;
                }
                buffer[offset..offset + size].copy_from_slice(black_box(&payload));
                offset += span;
            })
        });
    }
    group.finish();
}

fn group_commit(c: &mut Criterion) {
    let mut group = c.benchmark_group("group_commit");
    group.sample_size(20).warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(4));
    let size = 256usize;
    let payload = vec![0x5Au8; size];
    let dir = tempfile::tempdir().unwrap();
    let raw = std::fs::File::create(dir.path().join("raw")).unwrap();
    raw.set_len(SEGMENT_BYTES).unwrap();
    let mut offset = 0u64;
    group.throughput(Throughput::Elements(1));
    group.bench_function("fdatasync_raw/1", |b| {
        b.iter(|| {
            offset = (offset + 320) % SEGMENT_BYTES;
            raw.write_all_at(&payload, offset).unwrap();
            raw.sync_data().unwrap();
        })
    });
    for batch in [1u64, 16, 256] {
        let dir = tempfile::tempdir().unwrap();
        let (mut log, _) = Log::open(dir.path(), config(Durability::Fsync)).unwrap();
        group.throughput(Throughput::Elements(batch));
        group.bench_with_input(BenchmarkId::new("fsync", batch), &batch, |b, &batch| {
            b.iter_custom(|iterations| {
                let mut elapsed = Duration::ZERO;
                for _ in 0..iterations {
                    if log.position_append().0 + batch * entry_span_bytes(size) > ROUND_BYTES {
                        log.truncate_to(Position::ZERO).unwrap();
                    }
                    let start = Instant::now();
                    for _ in 0..batch {
                        log.append(&meta(), &payload).unwrap();
                    }
                    black_box(log.sync().unwrap());
                    elapsed += start.elapsed();
                }
                elapsed
            })
        });
    }
    group.finish();
}

fn iterate(c: &mut Criterion) {
    let mut group = c.benchmark_group("iterate");
    group.warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(3));
    for size in [64usize, 256, 1024] {
        let dir = tempfile::tempdir().unwrap();
        let (mut log, _) = Log::open(dir.path(), config(Durability::Replicated)).unwrap();
        let payload = vec![0x5Au8; size];
        let count = (16 * 1024 * 1024) / entry_span_bytes(size);
        for _ in 0..count {
            log.append(&meta(), &payload).unwrap();
        }
        let bytes = log.position_append().0;
        group.throughput(Throughput::Elements(count));
        group.bench_with_input(BenchmarkId::new("entries", size), &size, |b, _| {
            b.iter(|| {
                let mut sum = 0usize;
                for entry in log.entries(Position::ZERO) {
                    sum += entry.unwrap().payload.len();
                }
                black_box(sum)
            })
        });
        let source = log.read(Position::ZERO, bytes as usize).unwrap().1;
        let mut target = vec![0u8; bytes as usize];
        group.bench_with_input(BenchmarkId::new("memcpy", size), &size, |b, _| {
            b.iter(|| {
                target.copy_from_slice(black_box(source));
                black_box(&target);
            })
        });
    }
    group.finish();
}

criterion_group!(benches, append, group_commit, iterate);
criterion_main!(benches);
