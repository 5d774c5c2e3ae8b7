//! Test helper for `tests/crash.rs`: appends commands to the log in `DIR` under the `fsync`
//! policy, in group-committed batches, and after each sync prints `durable POSITION COUNT`
//! (the durable position and the number of commands below it), until it is killed.
//!
//! Usage: `ordo-log-crash-writer DIR SEGMENT_BYTES`

use ordo_core::{ClusterId, ClusterTimeNs, Durability, EntryKind, EntryMeta, LogConfig, SessionId, Term};
use ordo_log::Log;
use ordo_log::testing::{length_for, payload_for};
use std::io::Write;
use std::path::PathBuf;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (Some(dir), Some(segment_bytes)) = (args.get(1), args.get(2).and_then(|s| s.parse().ok())) else {
        eprintln!("usage: ordo-log-crash-writer DIR SEGMENT_BYTES");
        std::process::exit(2);
    };
    let config = LogConfig {
        cluster_id: ClusterId(42),
        segment_bytes,
        durability: Durability::Fsync,
        entry_payload_bytes_max: 16 * 1024,
    };
    let (mut log, _) = Log::open(&PathBuf::from(dir), config).unwrap_or_else(|e| {
        eprintln!("ordo-log-crash-writer: {e}");
        std::process::exit(1)
    });
    let mut k = 0u64;
    for entry in log.entries(log.position_start()) {
        let entry = entry.expect("the log the writer continues is intact");
        if entry.kind() == EntryKind::Command {
            assert_eq!(entry.payload, payload_for(k, length_for(k)));
            k += 1;
        }
    }
    let term = Term(log.last_term().0 + 1);
    let stdout = std::io::stdout();
    loop {
        for _ in 0..1 + k % 16 {
            let meta = EntryMeta::command(term, ClusterTimeNs(k), SessionId(1), k);
            log.append(&meta, &payload_for(k, length_for(k))).expect("append");
            k += 1;
        }
        let durable = log.sync().expect("sync");
        let mut out = stdout.lock();
        writeln!(out, "durable {} {k}", durable.0).and_then(|_| out.flush()).expect("stdout");
    }
}
