//! Instruction counts of the hot paths under callgrind (gungraun): stable figures, unlike
//! times on this noisy 2-core VM, so a change that adds work to a path shows as a number.
//! Each function does one unit of the work the path does per command.
//!
//! `cargo install gungraun-runner --version 0.20.0`, then
//! `cargo bench -p ordo-bench --bench instructions`.

use gungraun::{library_benchmark, library_benchmark_group, main};
use ordo_core::entry::{EntryMeta, decode_entry, encode_entry, entry_span_bytes};
use ordo_core::machine::{Context, StateMachine};
use ordo_core::{ClusterId, ClusterTimeNs, MemberId, Position, Security, SessionId, Term};
use ordo_transport::{Body, FrameCodec, FrameKey, KeyRing};
use std::hint::black_box;

const COMMAND: &[u8; 64] = &[0x5A; 64];

fn codec(security: Security) -> FrameCodec {
    FrameCodec::new(ClusterId(1), MemberId(1), security, KeyRing::new(FrameKey::new(&[3; 32])), 1408)
}

fn mac_codec() -> FrameCodec {
    codec(Security::Mac)
}

fn aead_codec() -> FrameCodec {
    codec(Security::Aead)
}

// A client request of 64 bytes sealed and opened again: the wire's cost per command (the
// codec, its keys derived, made beforehand).
#[library_benchmark]
#[bench::mac(setup = mac_codec)]
#[bench::aead(setup = aead_codec)]
fn frame_seal_and_open(mut codec: FrameCodec) -> usize {
    let mut out = [0u8; 1408];
    let body = Body::ClientRequest { session: SessionId(1), sequence: 7, command: COMMAND };
    let length = codec.encode(&mut out, Term(1), black_box(&body)).unwrap();
    let frame = codec.decode(&mut out[..length]).unwrap();
    black_box(frame.body.frame_type() as usize + length)
}

// A 64-byte command encoded as a log entry (header, CRC32C, chain) and decoded back.
#[library_benchmark]
fn entry_encode_and_decode() -> u32 {
    let mut out = [0u8; 256];
    let span = entry_span_bytes(COMMAND.len()) as usize;
    let meta = EntryMeta::command(Term(1), ClusterTimeNs(9), SessionId(1), 7);
    let checksum = encode_entry(&mut out[..span], Position(4096), 0xABCD, &meta, black_box(COMMAND)).unwrap();
    let entry = decode_entry(&out[..span], Position(4096)).unwrap();
    black_box(checksum ^ entry.payload.len() as u32)
}

fn ledger_with_accounts() -> (ordo_apps::ledger::Ledger, rkyv::util::AlignedVec<16>) {
    let mut ledger = ordo_apps::ledger::Ledger::default();
    let (mut reply, mut events, mut timers) = (Vec::new(), Vec::new(), Vec::new());
    for k in 0..64 {
        let mut aligned = rkyv::util::AlignedVec::<16>::new();
        aligned.extend_from_slice(&ordo_apps::ledger::workload_command(0, k));
        let mut ctx =
            Context::new(Position(k * 64), ClusterTimeNs(0), SessionId(1), &mut reply, &mut events, &mut timers);
        ledger.apply(&mut ctx, &aligned);
    }
    let mut transfer = rkyv::util::AlignedVec::<16>::new();
    transfer.extend_from_slice(&ordo_apps::ledger::workload_command(0, 1000));
    (ledger, transfer)
}

// One ledger transfer applied: validated in place, posted, reply and event encoded.
#[library_benchmark]
#[bench::transfer(setup = ledger_with_accounts)]
fn ledger_apply_transfer(input: (ordo_apps::ledger::Ledger, rkyv::util::AlignedVec<16>)) -> usize {
    let (mut ledger, command) = input;
    let (mut reply, mut events, mut timers) = (Vec::with_capacity(256), Vec::with_capacity(256), Vec::new());
    let mut ctx = Context::new(Position(1 << 20), ClusterTimeNs(1), SessionId(1), &mut reply, &mut events, &mut timers);
    ledger.apply(&mut ctx, black_box(&command));
    black_box(reply.len() + events.len())
}

library_benchmark_group!(
    name = hot_paths;
    benchmarks = frame_seal_and_open, entry_encode_and_decode, ledger_apply_transfer
);

main!(library_benchmark_groups = hot_paths);
