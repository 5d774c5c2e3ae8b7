//! The log's behaviour across reopen, crashes, torn writes, corruption and bad input.

mod common;

use common::*;
use ordo_core::{Durability, EntryKind, MemberId, Position, Term};
use ordo_log::{Log, LogError, Vote, VoteStore};
use std::io::{Seek, SeekFrom, Write};

fn write_at(path: &std::path::Path, offset: u64, bytes: &[u8]) {
    let mut file = std::fs::OpenOptions::new().write(true).open(path).unwrap();
    file.seek(SeekFrom::Start(offset)).unwrap();
    file.write_all(bytes).unwrap();
}

#[test]
fn reopen_after_clean_close_keeps_every_entry() {
    let dir = tempfile::tempdir().unwrap();
    let (mut log, recovery) = open(dir.path());
    assert_eq!(recovery.position_end, Position::ZERO);
    let positions: Vec<_> = (0..100).map(|k| append(&mut log, 1, k)).collect();
    let (end, checksum) = (log.position_append(), log.checksum_last());
    log.close().unwrap();

    let (log, recovery) = open(dir.path());
    assert_eq!(recovery.torn_tail, None);
    assert_eq!(recovery.position_end, end);
    assert_eq!(log.checksum_last(), checksum, "the chain is rebuilt exactly");
    assert_eq!(log.position_durable(), end);
    assert_eq!(commands(&log), positions);
}

#[test]
fn torn_tail_at_every_byte_offset_of_the_last_entry_is_cut_to_the_previous_entry() {
    let original = tempfile::tempdir().unwrap();
    let (mut log, _) = open(original.path());
    for k in 0..5 {
        append(&mut log, 1, k);
    }
    let (end_before_last, checksum_before_last) = (log.position_append(), log.checksum_last());
    let last = append(&mut log, 1, 5);
    let length = log.entry(last).unwrap().header.length_bytes() as u64;
    drop(log); // a crash: no close

    for torn_at in 0..length {
        for filler in [0x00u8, 0xA5] {
            let dir = tempfile::tempdir().unwrap();
            for (name, bytes) in folder_bytes(original.path()) {
                std::fs::write(dir.path().join(name), bytes).unwrap();
            }
            let from = last.0 + torn_at;
            let garbage = vec![filler; (last.0 + length - from) as usize];
            write_at(&segment_path(dir.path(), last), file_offset(Position(from)), &garbage);

            let (log, recovery) = open(dir.path());
            assert_eq!(log.position_append(), end_before_last, "torn at byte {torn_at} with {filler:#x}");
            assert_eq!(log.checksum_last(), checksum_before_last);
            if torn_at == 0 && filler == 0 {
                assert_eq!(recovery.torn_tail, None, "an entry never written at all is no torn tail");
            } else {
                let torn = recovery.torn_tail.expect("a torn tail is reported, never silent");
                assert_eq!(torn.position, last);
            }
            assert_eq!(commands(&log).len(), 5);
            drop(log);
            // The cut tail is gone for good: the next open finds a clean log.
            let (_, again) = open(dir.path());
            assert_eq!(again.torn_tail, None);
            assert_eq!(again.position_end, end_before_last);
        }
    }
}

#[test]
fn flipped_bit_in_the_middle_of_a_segment_is_reported_with_file_and_position() {
    let dir = tempfile::tempdir().unwrap();
    let (mut log, _) = open(dir.path());
    let positions: Vec<_> = (0..40).map(|k| append(&mut log, 1, k)).collect();
    drop(log);
    let victim = positions[positions.len() / 2 + 3];
    let path = segment_path(dir.path(), victim);
    let offset = file_offset(victim) + 70; // a payload byte
    let mut byte = [0u8];
    {
        use std::io::Read;
        let mut file = std::fs::File::open(&path).unwrap();
        file.seek(SeekFrom::Start(offset)).unwrap();
        file.read_exact(&mut byte).unwrap();
    }
    write_at(&path, offset, &[byte[0] ^ 0x10]);
    let before = folder_bytes(dir.path());

    let error = Log::open(dir.path(), config(Durability::Fsync)).err().expect("corruption refuses to open");
    let message = error.to_string();
    assert!(matches!(error, LogError::Corrupt { position, .. } if position == victim), "{message}");
    assert!(message.contains(&path.display().to_string()) && message.contains(&victim.to_string()), "{message}");
    assert_eq!(folder_bytes(dir.path()), before, "a refused open modifies nothing");

    let error = ordo_log::verify(dir.path(), &config(Durability::Fsync)).unwrap_err();
    assert!(matches!(error, LogError::Corrupt { position, .. } if position == victim), "{error}");
}

#[test]
fn verify_reads_a_healthy_log_without_touching_it() {
    let dir = tempfile::tempdir().unwrap();
    let (mut log, _) = open(dir.path());
    for k in 0..300 {
        append(&mut log, 1 + k / 100, k);
    }
    let end = log.position_append();
    // While the member still holds the log: verify needs no lock.
    let verified = ordo_log::verify(dir.path(), &config(Durability::Fsync)).unwrap();
    assert_eq!(verified.position_end, end);
    assert!(verified.entries >= 300);
    assert!(verified.segments > 1);
    assert_eq!(verified.torn_tail, None);
}

#[test]
fn truncate_to_then_append_continues_the_chain() {
    let dir = tempfile::tempdir().unwrap();
    let (mut log, _) = open(dir.path());
    let positions: Vec<_> = (0..200).map(|k| append(&mut log, 1, k)).collect();
    let cut = positions[120];
    let checksum_at_cut = log.entry(cut).unwrap().checksum_prev();
    let segments_before = std::fs::read_dir(dir.path()).unwrap().count();
    log.truncate_to(cut).unwrap();
    assert_eq!(log.position_append(), cut);
    assert_eq!(log.checksum_last(), checksum_at_cut);
    assert!(log.position_durable() <= cut);
    assert!(std::fs::read_dir(dir.path()).unwrap().count() <= segments_before);
    assert!(matches!(log.truncate_to(Position(cut.0 + 32)), Err(LogError::OutOfRange { .. })));
    assert!(matches!(log.truncate_to(Position(positions[3].0 + 32)), Err(LogError::NotAnEntry { .. })));

    // A new term's entries take the place of the dropped ones.
    for k in 120..150 {
        append(&mut log, 2, k);
    }
    assert_eq!(log.terms().first_position(Term(2)), Some(cut));
    drop(log);
    let (log, recovery) = open(dir.path());
    assert_eq!(recovery.torn_tail, None, "truncation zeroed the old tail, so nothing stale is found");
    assert_eq!(commands(&log).len(), 150);
    assert_eq!(log.terms().first_position(Term(2)), Some(cut));
}

#[test]
fn segment_roll_over_across_many_segments() {
    let dir = tempfile::tempdir().unwrap();
    let (mut log, _) = open(dir.path());
    let positions: Vec<_> = (0..2000).map(|k| append(&mut log, 1, k)).collect();
    let segments = (log.position_append().0 / SEGMENT_BYTES) + 1;
    assert!(segments >= 10, "2000 entries of up to 700 B span {segments} segments");
    for entry in log.entries(Position::ZERO) {
        let entry = entry.unwrap();
        let last_byte = entry.position().0 + entry.header.span_bytes() - 1;
        assert_eq!(entry.position().0 / SEGMENT_BYTES, last_byte / SEGMENT_BYTES, "no entry crosses a segment end");
    }
    let paddings = log.entries(Position::ZERO).filter(|e| e.as_ref().unwrap().kind() == EntryKind::Padding).count();
    assert!(paddings > 0);
    assert_eq!(commands(&log), positions);
    drop(log);
    let (log, recovery) = open(dir.path());
    assert!(recovery.scanned_from.0 > 0, "recovery scans from the checkpoint, not the start");
    assert!(recovery.entries_scanned < 2000);
    assert_eq!(commands(&log), positions);
}

#[test]
fn delete_below_removes_whole_segments_and_reopens_from_there() {
    let dir = tempfile::tempdir().unwrap();
    let (mut log, _) = open(dir.path());
    let positions: Vec<_> = (0..1000).map(|k| append(&mut log, 1, k)).collect();
    let snapshot_at = positions[700];
    let deleted = log.delete_below(snapshot_at).unwrap();
    assert!(!deleted.is_empty());
    assert!(deleted.iter().all(|p| !p.exists()));
    let start = log.position_start();
    assert!(start <= snapshot_at && start.0 % SEGMENT_BYTES == 0 && start.0 + SEGMENT_BYTES > snapshot_at.0);
    assert!(matches!(log.entry(Position(0)), Err(LogError::OutOfRange { .. })));
    let kept = positions.iter().filter(|p| **p >= start).count();
    drop(log);

    let (log, recovery) = open(dir.path());
    assert_eq!(recovery.position_start, start);
    let remaining = log.entries(start).filter(|e| e.as_ref().unwrap().kind() == EntryKind::Command).count();
    assert_eq!(remaining, kept);
    assert_eq!(log.terms().first_position(Term(1)), Some(Position(0)), "the term index outlives deleted segments");
}

#[test]
fn term_index_and_vote_survive_a_simulated_crash() {
    let dir = tempfile::tempdir().unwrap();
    let (mut log, _) = open(dir.path());
    let mut starts = Vec::new();
    for term in 1..=4u64 {
        starts.push((Term(term), append(&mut log, term, term * 1000)));
        for k in 0..150 {
            append(&mut log, term, term * 1000 + k + 1);
        }
    }
    VoteStore::new(dir.path(), config(Durability::Fsync).cluster_id)
        .store(&Vote { term: Term(5), voted_for: Some(MemberId(2)) })
        .unwrap();
    assert_eq!(log.terms().rows(), &starts[..]);
    drop(log); // crash

    let (log, _) = open(dir.path());
    assert_eq!(log.terms().rows(), &starts[..]);
    assert_eq!(log.last_term(), Term(4));
    assert_eq!(log.time_max(), ordo_core::ClusterTimeNs(4000), "the latest cluster time survives too");
    let vote = VoteStore::new(dir.path(), config(Durability::Fsync).cluster_id).load().unwrap();
    assert_eq!(vote, Vote { term: Term(5), voted_for: Some(MemberId(2)) });
}

#[test]
fn another_clusters_log_or_another_segment_size_is_refused_and_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let (mut log, _) = open(dir.path());
    for k in 0..10 {
        append(&mut log, 1, k);
    }
    log.close().unwrap();
    let before = folder_bytes(dir.path());

    let other_cluster = ordo_core::LogConfig { cluster_id: ordo_core::ClusterId(7), ..config(Durability::Fsync) };
    let error = Log::open(dir.path(), other_cluster).err().unwrap();
    assert!(matches!(error, LogError::WrongCluster { .. }), "{error}");
    let other_size = ordo_core::LogConfig { segment_bytes: 2 * SEGMENT_BYTES, ..config(Durability::Fsync) };
    let error = Log::open(dir.path(), other_size).err().unwrap();
    assert!(error.to_string().contains("segment_bytes = 65536"), "{error}");
    assert_eq!(folder_bytes(dir.path()), before);
}

#[test]
fn a_foreign_file_posing_as_a_segment_is_refused_and_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let (mut log, _) = open(dir.path());
    for k in 0..500 {
        append(&mut log, 1, k);
    }
    log.close().unwrap();
    let victim = dir.path().join(ordo_log::segment::segment_file_name(Position(SEGMENT_BYTES)));
    std::fs::write(&victim, vec![b'x'; 5000]).unwrap();
    let before = folder_bytes(dir.path());
    let error = Log::open(dir.path(), config(Durability::Fsync)).err().unwrap();
    assert!(matches!(error, LogError::NotOurs { ref path, .. } if *path == victim), "{error}");
    assert_eq!(folder_bytes(dir.path()), before);

    std::fs::remove_file(&victim).unwrap();
    let error = Log::open(dir.path(), config(Durability::Fsync)).err().unwrap();
    assert!(matches!(error, LogError::MissingSegment { ref path } if *path == victim), "{error}");
}

#[test]
fn a_second_open_of_the_same_log_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (_log, _) = open(dir.path());
    let error = Log::open(dir.path(), config(Durability::Fsync)).err().unwrap();
    assert!(matches!(error, LogError::Locked { .. }), "{error}");
}

#[test]
fn durable_position_is_published_by_sync_under_fsync_and_at_once_under_replicated() {
    let dir = tempfile::tempdir().unwrap();
    let (mut log, _) = open(dir.path());
    let durable = log.durable_position();
    append(&mut log, 1, 0);
    assert_eq!(durable.get(), Position::ZERO, "not durable before the sync");
    let end = log.sync().unwrap();
    assert_eq!(durable.get(), end);

    let dir = tempfile::tempdir().unwrap();
    let (mut log, _) = Log::open(dir.path(), config(Durability::Replicated)).unwrap();
    append(&mut log, 1, 0);
    assert_eq!(log.sync().unwrap(), log.position_append());
    assert_eq!(log.position_durable(), log.position_append());
}

#[test]
fn a_payload_over_the_limit_and_a_term_going_backwards_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (mut log, _) = open(dir.path());
    let error = log.append(&meta(1), &vec![1u8; 16 * 1024 + 1]).unwrap_err();
    assert!(matches!(error, LogError::EntryTooLarge { .. }), "{error}");
    append(&mut log, 3, 0);
    assert!(matches!(log.append(&meta(2), b"x"), Err(LogError::TermRegressed { .. })));
    assert_eq!(commands(&log).len(), 1, "a refused append changes nothing");
}

#[test]
fn raw_bytes_from_a_leader_make_a_byte_identical_follower_log() {
    let leader_dir = tempfile::tempdir().unwrap();
    let follower_dir = tempfile::tempdir().unwrap();
    let (mut leader, _) = open(leader_dir.path());
    let (mut follower, _) = open(follower_dir.path());
    for k in 0..600 {
        append(&mut leader, 1 + k / 200, k);
    }
    // Stream in chunks of at most one datagram's worth of whole entries, as the transport
    // will; a padding entry goes as its header alone.
    let mut position = Position::ZERO;
    while position < leader.position_append() {
        let chunk = trim_to_whole_entries(leader.read(position, 1408).unwrap().1);
        assert!(!chunk.is_empty(), "every entry here fits in 1408 bytes");
        position = follower.append_raw(position, chunk).unwrap();
    }
    assert_eq!(follower.position_append(), leader.position_append());
    assert_eq!(follower.checksum_last(), leader.checksum_last());
    assert_eq!(follower.terms(), leader.terms());
    drop((leader, follower));
    let (leader_files, follower_files) = (segment_files(leader_dir.path()), segment_files(follower_dir.path()));
    assert!(leader_files == follower_files, "the follower's segments equal the leader's, byte for byte");
}

/// The longest prefix of `bytes` made of whole entries; a padding entry ends it, as its
/// header alone.
fn trim_to_whole_entries(bytes: &[u8]) -> &[u8] {
    let mut at = 0usize;
    while let Some(header) = ordo_core::entry::read_header(&bytes[at..]) {
        if header.kind() == Some(EntryKind::Padding) {
            return &bytes[..at + ordo_core::HEADER_BYTES];
        }
        if at + header.length_bytes() as usize > bytes.len() {
            break;
        }
        at = (at + header.span_bytes() as usize).min(bytes.len());
    }
    &bytes[..at]
}

#[test]
fn raw_bytes_that_break_the_chain_are_refused() {
    let leader_dir = tempfile::tempdir().unwrap();
    let follower_dir = tempfile::tempdir().unwrap();
    let (mut leader, _) = open(leader_dir.path());
    let (mut follower, _) = open(follower_dir.path());
    append(&mut leader, 1, 0);
    let second = append(&mut leader, 1, 1);
    // The follower missed the first entry: the second one's link does not match.
    let bytes = leader.read(second, 4096).unwrap().1;
    assert!(follower.append_raw(Position::ZERO, bytes).is_err());
    assert_eq!(follower.position_append(), Position::ZERO);
    let mut damaged = leader.read(Position::ZERO, 4096).unwrap().1.to_vec();
    damaged[70] ^= 1; // a payload byte of the first entry
    assert!(matches!(follower.append_raw(Position::ZERO, &damaged), Err(LogError::Entry(_))));
    assert_eq!(follower.position_append(), Position::ZERO, "nothing of a bad frame is kept");
}

/// Found by the simulator on real files (issue 18): under `replicated` nothing was ever
/// fsynced, yet each segment roll wrote a checkpoint telling recovery to trust the sealed
/// segment unscanned; a power cut that lost those pages left an event log claiming zeros
/// as entries. A roll now puts the sealed segment on the disk under either durability, and
/// `position_fsynced` says how far what is on the disk reaches (the simulator's power cut
/// keeps only that).
#[test]
fn under_replicated_a_segment_roll_puts_the_sealed_segment_on_the_disk() {
    let dir = tempfile::tempdir().unwrap();
    let (mut log, _) = Log::open(dir.path(), config(Durability::Replicated)).unwrap();
    append(&mut log, 1, 0);
    log.sync().unwrap();
    assert_eq!(log.position_fsynced(), Position::ZERO, "replicated: a sync only publishes");
    let mut k = 1;
    let segment_bytes = config(Durability::Replicated).segment_bytes;
    while log.position_append() < Position(segment_bytes + 1) {
        append(&mut log, 1, k);
        k += 1;
    }
    assert!(log.position_fsynced() >= Position(segment_bytes - 4096), "{:?}", log.position_fsynced());
    assert!(log.position_fsynced() < log.position_append(), "the open segment's appends are not");
    assert_eq!(log.fsync().unwrap(), log.position_append(), "fsync puts everything on the disk");
    assert_eq!(log.position_fsynced(), log.position_append());
}
