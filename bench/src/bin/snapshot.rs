//! Snapshot and restore of a large ledger (1 M accounts by default), beside the floors
//! measured in the same run: a `memcpy` of the snapshot's bytes, and writing the same bytes
//! to a file and `fdatasync`ing it. Steps: open the accounts through `apply` (rkyv
//! commands, as a member would), encode the snapshot (`StateMachine::snapshot`), write it as
//! a checked snapshot file (`SnapshotStore::write`: temp file, fsync, rename), read and check
//! it back, restore the ledger from it, and check the restored state encodes to the same
//! bytes.
//!
//! Usage: `ordo-bench-snapshot [--accounts N] [--json]`

use ordo_apps::ledger::{self, Command, Ledger};
use ordo_core::machine::{Context, StateMachine};
use ordo_core::{ClusterId, ClusterTimeNs, Position, SessionId, Term};
use ordo_log::LogBase;
use ordo_service::machinery::snapshots::SnapshotStore;
use std::io::Write;
use std::time::Instant;

fn seconds<T>(work: impl FnOnce() -> T) -> (T, f64) {
    let started = Instant::now();
    let value = work();
    (value, started.elapsed().as_secs_f64())
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let accounts = ordo_bench::args::number("ordo-bench-snapshot", &args, "--accounts", 1_000_000);
    let json = args.iter().any(|a| a == "--json");
    let fail = |what: &str, error: &dyn std::fmt::Display| -> ! {
        eprintln!("ordo-bench-snapshot: {what}: {error}");
        std::process::exit(1)
    };

    // The accounts, opened one command at a time through apply.
    let commands: Vec<rkyv::util::AlignedVec<16>> = (0..accounts)
        .map(|i| {
            let bytes = ledger::encode(&Command::Open { account: format!("account-{i:08}"), limit: 0 });
            let mut aligned = rkyv::util::AlignedVec::new();
            aligned.extend_from_slice(&bytes);
            aligned
        })
        .collect();
    let mut machine = Ledger::default();
    let ((), apply_s) = seconds(|| {
        let (mut reply, mut events, mut timers) = (Vec::new(), Vec::new(), Vec::new());
        for (i, command) in commands.iter().enumerate() {
            reply.clear();
            events.clear();
            let mut ctx =
                Context::new(Position(i as u64), ClusterTimeNs(0), SessionId(1), &mut reply, &mut events, &mut timers);
            machine.apply(&mut ctx, command);
        }
    });
    drop(commands);

    let mut body = Vec::new();
    let ((), encode_s) = seconds(|| machine.snapshot(&mut body));
    let mut copy = vec![0u8; body.len()];
    let ((), memcpy_s) = seconds(|| copy.copy_from_slice(std::hint::black_box(&body)));

    let dir = tempfile::tempdir().unwrap_or_else(|e| fail("no temporary folder", &e));
    let raw = dir.path().join("raw");
    let (written, raw_s) = seconds(|| {
        let mut file = std::fs::File::create(&raw)?;
        file.write_all(&copy)?;
        file.sync_data()
    });
    written.unwrap_or_else(|e| fail("the raw write", &e));

    let store = SnapshotStore::open(&dir.path().join("snapshots"), ClusterId(7))
        .unwrap_or_else(|e| fail("the snapshot folder", &e));
    let base = LogBase {
        position: Position(4096),
        term: Term(1),
        entry_position: Position(4032),
        checksum: 1,
        time_max: ClusterTimeNs(0),
    };
    let (path, write_s) = seconds(|| store.write(&base, &base, "ledger", &body));
    let path = path.unwrap_or_else(|e| fail("the snapshot write", &e));
    let (read, read_s) = seconds(|| store.read(&path));
    let read = read.unwrap_or_else(|e| fail("the snapshot read", &e));
    let (restored, restore_s) = seconds(|| Ledger::restore(read.body()));
    let restored = restored.unwrap_or_else(|e| fail("the restore", &e));
    let mut again = Vec::new();
    restored.snapshot(&mut again);
    if again != body {
        fail("the restored ledger", &"encodes differently from the one snapshotted");
    }

    let mib = body.len() as f64 / (1 << 20) as f64;
    let rows = [
        ("apply: open every account", apply_s),
        ("snapshot: encode the state (rkyv)", encode_s),
        ("snapshot: write the file (checksums, fsync, rename)", write_s),
        ("restore: read and check the file", read_s),
        ("restore: validate and rebuild the state", restore_s),
        ("floor: memcpy of the same bytes", memcpy_s),
        ("floor: write + fdatasync of the same bytes", raw_s),
    ];
    if json {
        let fields: Vec<String> = rows
            .iter()
            .zip(["apply_s", "encode_s", "write_s", "read_s", "restore_s", "memcpy_s", "raw_write_fdatasync_s"])
            .map(|((_, s), name)| format!("\"{name}\": {s:.4}"))
            .collect();
        println!("{{\"accounts\": {accounts}, \"snapshot_bytes\": {}, {}}}", body.len(), fields.join(", "));
    } else {
        println!("| {accounts} ledger accounts, snapshot {mib:.1} MiB | ms |");
        println!("| --- | --- |");
        for (what, s) in rows {
            println!("| {what} | {:.1} |", s * 1e3);
        }
    }
}
