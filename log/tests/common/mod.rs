//! Helpers shared by the log's integration tests.
#![allow(dead_code)]

use ordo_core::{ClusterId, ClusterTimeNs, Durability, EntryMeta, LogConfig, Position, SessionId, Term};
use ordo_log::{Log, Recovery};
use std::path::Path;

pub const SEGMENT_BYTES: u64 = 64 * 1024;

pub fn config(durability: Durability) -> LogConfig {
    LogConfig {
        cluster_id: ClusterId(42),
        segment_bytes: SEGMENT_BYTES,
        durability,
        entry_payload_bytes_max: 16 * 1024,
    }
}

pub fn open(dir: &Path) -> (Log, Recovery) {
    Log::open(dir, config(Durability::Fsync)).expect("log opens")
}

#[allow(unused_imports)] // each test file uses its own part
pub use ordo_log::testing::{length_for, payload_for, segment_files};

pub fn meta(term: u64) -> EntryMeta {
    EntryMeta::command(Term(term), ClusterTimeNs(term * 1000), SessionId(1), 0)
}

/// Appends the `k`-th command; returns its position.
pub fn append(log: &mut Log, term: u64, k: u64) -> Position {
    log.append(&meta(term), &payload_for(k, length_for(k))).expect("append")
}

/// Every command in the log, each payload checked against the `k`-th one's.
pub fn commands(log: &Log) -> Vec<Position> {
    log.entries(log.position_start())
        .map(|entry| entry.expect("intact entry"))
        .filter(|entry| entry.kind() != ordo_core::EntryKind::Padding)
        .enumerate()
        .map(|(k, entry)| {
            let k = k as u64;
            assert_eq!(entry.payload, payload_for(k, length_for(k)), "payload of command {k} at {}", entry.position());
            entry.position()
        })
        .collect()
}

/// Byte offset of log position `position` inside its segment file.
pub fn file_offset(position: Position) -> u64 {
    ordo_log::segment::SEGMENT_HEADER_BYTES + position.0 % SEGMENT_BYTES
}

pub fn segment_path(dir: &Path, position: Position) -> std::path::PathBuf {
    dir.join(ordo_log::segment::segment_file_name(Position(position.0 - position.0 % SEGMENT_BYTES)))
}

/// A snapshot of every file in a folder, to show that a refused open modified nothing.
pub fn folder_bytes(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| e.file_type().unwrap().is_file())
        .map(|e| (e.file_name().to_string_lossy().into_owned(), std::fs::read(e.path()).unwrap()))
        .collect();
    files.sort();
    files
}
