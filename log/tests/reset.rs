//! Resetting a log to start after a snapshot: the chain, terms and time continue from the
//! base, the leader's bytes link onto it, and an interrupted reset is finished on open.

mod common;

use common::*;
use ordo_core::{ClusterTimeNs, EntryKind, Position, Term};
use ordo_log::checkpoint::Checkpoint;
use ordo_log::{Log, LogBase, TermIndex};

/// The base a log reset to just after the entry at `position` of `log` starts from.
fn base_after(log: &Log, position: Position) -> LogBase {
    let entry = log.entry(position).unwrap();
    LogBase {
        position: entry.next_position(),
        term: entry.header.term(),
        entry_position: position,
        checksum: entry.checksum(),
        time_max: entry.header.timestamp(),
    }
}

#[test]
fn a_reset_log_continues_the_leaders_chain_and_survives_reopen() {
    let leader_dir = tempfile::tempdir().unwrap();
    let (mut leader, _) = open(leader_dir.path());
    let positions: Vec<_> = (0..400).map(|k| append(&mut leader, 1 + k / 100, k)).collect();
    leader.sync().unwrap();
    assert!(leader.position_append().0 > 2 * SEGMENT_BYTES, "the log spans several segments");
    let base = base_after(&leader, positions[250]);

    // A follower whose log is something else entirely.
    let follower_dir = tempfile::tempdir().unwrap();
    let (mut follower, _) = open(follower_dir.path());
    for k in 0..50 {
        append(&mut follower, 9, 1000 + k);
    }
    follower.reset_to(&base).unwrap();
    assert_eq!((follower.position_start(), follower.position_append()), (base.position, base.position));
    assert_eq!(follower.position_durable(), base.position);
    assert_eq!(follower.last_term(), Term(3));
    assert_eq!(follower.checksum_last(), base.checksum);
    assert_eq!(follower.time_max(), ClusterTimeNs(3000));
    assert!(follower.entry(positions[10]).is_err(), "nothing below the base is readable");

    // The leader's bytes from the base on link onto it.
    let mut position = base.position;
    while position < leader.position_append() {
        let entry = leader.entry(position).unwrap();
        let span = (entry.next_position().0 - entry.position().0) as usize;
        let (start, bytes) = leader.read(entry.position(), span).unwrap();
        let bytes = bytes.to_vec();
        position = follower.append_raw(start, &bytes).unwrap();
    }
    follower.sync().unwrap();
    assert_eq!(follower.checksum_last(), leader.checksum_last());
    let tail: Vec<_> = follower.entries(base.position).map(|e| e.unwrap().position()).collect();
    assert_eq!(tail.iter().filter(|p| positions.contains(p)).count(), 149, "entries 251..400");
    follower.close().unwrap();

    let (follower, recovery) = open(follower_dir.path());
    assert_eq!(recovery.torn_tail, None);
    assert_eq!((recovery.position_start, recovery.position_end), (base.position, leader.position_append()));
    assert_eq!(follower.checksum_last(), leader.checksum_last());
    assert_eq!(follower.terms().term_at(base.entry_position), Some(Term(3)));
    assert_eq!(follower.terms().last_term(), Term(4));
    assert!(ordo_log::verify(follower_dir.path(), &config(ordo_core::Durability::Fsync)).unwrap().torn_tail.is_none());
}

#[test]
fn a_reset_cut_short_by_a_crash_is_finished_on_open() {
    let dir = tempfile::tempdir().unwrap();
    let (mut log, _) = open(dir.path());
    let positions: Vec<_> = (0..300).map(|k| append(&mut log, 2, k)).collect();
    log.sync().unwrap();
    let base = base_after(&log, positions[120]);
    drop(log); // a crash just after the reset's first step: the marked checkpoint is written
    let mut terms = TermIndex::default();
    terms.observe(base.term, base.entry_position);
    let marked = Checkpoint {
        position_start: base.position,
        position_scan: base.position,
        checksum_prev: base.checksum,
        time_max: base.time_max,
        terms,
        reset: true,
    };
    marked.store(dir.path(), config(ordo_core::Durability::Fsync).cluster_id, true).unwrap();

    let (mut log, recovery) = open(dir.path());
    assert_eq!(recovery.segments_removed.len(), 2, "every old segment is gone: {recovery:?}");
    assert_eq!((log.position_start(), log.position_append()), (base.position, base.position));
    assert_eq!(segment_files(dir.path()).len(), 1);
    let next = log.append(&meta(3), b"after the snapshot").unwrap();
    assert_eq!(log.entry(next).unwrap().checksum_prev(), base.checksum);
    assert_eq!(log.entry(next).unwrap().kind(), EntryKind::Command);
    log.close().unwrap();
    let (log, _) = open(dir.path());
    assert_eq!(log.position_start(), base.position);
    assert_eq!(log.entries(base.position).count(), 1);
}
