//! A read-only reader beside a writer: it sees appends as they land, maps new segments on
//! refresh, and never modifies or locks anything.

mod common;

use common::*;
use ordo_core::Durability;
use ordo_log::LogReader;

#[test]
fn a_reader_follows_a_growing_log_without_touching_it() {
    let dir = tempfile::tempdir().unwrap();
    let (mut log, _) = open(dir.path());
    let first: Vec<_> = (0..10).map(|k| append(&mut log, 1, k)).collect();
    log.sync().unwrap();
    let mut reader = LogReader::open(dir.path(), &config(Durability::Fsync)).unwrap();
    let seen: Vec<_> = reader.entries(first[0]).map(|e| e.unwrap().position()).collect();
    assert_eq!(seen, first);

    // More appends land in the shared mapping; a roll-over needs a refresh.
    let more: Vec<_> = (10..400).map(|k| append(&mut log, 1, k)).collect();
    assert!(more.last().unwrap().0 > 2 * SEGMENT_BYTES);
    let in_first_segment = reader.entries(first[0]).filter_map(|e| e.ok()).count();
    assert!(in_first_segment > 10 && in_first_segment < 400, "appends show through: {in_first_segment}");
    reader.refresh().unwrap();
    let commands =
        reader.entries(first[0]).map(|e| e.unwrap()).filter(|e| e.kind() != ordo_core::EntryKind::Padding).count();
    assert_eq!(commands, 400, "every entry, across segments");
    let before = folder_bytes(dir.path());
    drop(reader);
    assert_eq!(folder_bytes(dir.path()), before, "the reader changed nothing");
    log.close().unwrap();
}
