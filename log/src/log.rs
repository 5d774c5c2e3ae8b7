//! The log itself: append, group-commit sync, zero-copy reads, truncation, deletion of old
//! segments, and recovery on open.
//!
//! Invariants (asserted where they are cheap):
//! - Every byte at or after `position_append` in every mapped segment is zero. Segments are
//!   preallocated zeroed, truncation zeroes what it drops, recovery zeroes a torn tail. So
//!   the end of the log is where the first zeroed header is, and nothing stale survives.
//! - `position_start <= checkpoint.position_scan <= position_append`, and
//!   `position_durable <= position_append`; the durable position is published only after
//!   the `fdatasync` that makes it true has returned.
//! - `checksum_last` is the checksum of the entry just before `position_append`.
//!
//! Budget (the hot path, `append` + `sync`): an append is one header encode, one memcpy of
//! the payload into the map and one CRC32C pass (hardware, ~10+ GB/s): ~50 ns for a 64 B
//! command. A sync is one `fdatasync` (~0.1–1 ms here) however many appends it covers: at
//! 256 entries a batch that is a few µs an entry. No allocation, no lock, no syscall per entry.

use crate::checkpoint::Checkpoint;
use crate::error::{LogError, Result, io};
use crate::segment::Segment;
use crate::segments::{SegmentSet, Step, check_contiguous, entry_start, list_segment_files, offset_in_segment};
use crate::small_file::sync_dir;
use crate::term_index::TermIndex;
use ordo_core::entry::{encode_entry, encode_padding, entry_span_bytes};
use ordo_core::{
    ClusterTimeNs, Durability, EntryKind, EntryMeta, EntryView, Error, HEADER_BYTES, LogConfig, Position, Term,
};
use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// A position published by one thread and read by others (Aeron's position counter): the
/// log publishes its durable position here after each sync.
#[derive(Clone, Debug, Default)]
pub struct SharedPosition(Arc<AtomicU64>);

impl SharedPosition {
    #[inline]
    pub fn get(&self) -> Position {
        Position(self.0.load(Ordering::Acquire))
    }
    #[inline]
    fn set(&self, position: Position) {
        self.0.store(position.0, Ordering::Release);
    }
}

/// What recovery found and did when the log was opened.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Recovery {
    pub position_start: Position,
    pub position_end: Position,
    /// Where the scan started (the checkpoint) and how many entries it read.
    pub scanned_from: Position,
    pub entries_scanned: u64,
    /// A torn write at the end of the log that was cut off, if there was one.
    pub torn_tail: Option<TornTail>,
    /// Segment files removed: below the start (an interrupted deletion) or past the end
    /// (created just before a crash, never written).
    pub segments_removed: Vec<PathBuf>,
}

/// The end of the log was a partly written entry (a crash mid-write): it was truncated.
/// Nothing before it was touched. Reported, never silent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TornTail {
    pub path: PathBuf,
    pub position: Position,
    pub bytes_discarded: u64,
    pub reason: String,
}

/// What `verify` found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verified {
    pub position_start: Position,
    pub position_end: Position,
    pub entries: u64,
    pub segments: usize,
    /// A torn tail the next open would cut off (or a member still writing it).
    pub torn_tail: Option<TornTail>,
}

pub struct Log {
    dir: PathBuf,
    config: LogConfig,
    set: SegmentSet,
    position_start: Position,
    position_append: Position,
    position_synced: Position,
    /// Everything below is on the disk (fdatasync'ed): under `fsync` what `sync` reached,
    /// under `replicated` the last segment roll or [`Log::fsync`].
    position_fsynced: Position,
    durable: SharedPosition,
    checksum_last: u32,
    /// The latest cluster time of any entry this log has held: a new leader stamps no
    /// earlier, so cluster time never goes backwards across a failover.
    time_max: ClusterTimeNs,
    terms: TermIndex,
    checkpoint: Checkpoint,
    /// Held for the log's lifetime: an exclusive flock on `DIR/lock`.
    _lock: File,
}

impl Log {
    /// Opens the log in `dir` (creating it if the folder has none), recovering from a
    /// crash: scans from the checkpoint, cuts off and reports a torn tail, and refuses
    /// (naming file and position) corruption before the tail. Files that are not ours,
    /// another cluster's or of another segment size are refused before anything is modified.
    pub fn open(dir: &Path, config: LogConfig) -> Result<(Log, Recovery)> {
        config.validate().map_err(LogError::Config)?;
        std::fs::create_dir_all(dir).map_err(io("create log folder", dir))?;
        let lock = lock_dir(dir)?;
        let files = list_segment_files(dir, true)?;
        check_contiguous(dir, &files, config.segment_bytes)?;
        let mut checkpoint = Checkpoint::load(dir, config.cluster_id)?;
        let mut removed = Vec::new();
        if let Some(reset) = checkpoint.as_mut().filter(|c| c.reset) {
            // A reset after a snapshot was cut short: finish it.
            finish_reset(dir, &config, &files, reset)?;
            removed.extend(files.iter().map(|(_, path)| path.clone()));
        }
        let files = if removed.is_empty() { files } else { list_segment_files(dir, true)? };
        let mut segments = Vec::with_capacity(files.len());
        for (base, path) in &files {
            segments.push(Segment::open(path, &config, *base, true)?);
        }
        // Everything has been checked; from here on, recovery may modify files.
        let (checkpoint, trust_first_link) = match checkpoint {
            Some(checkpoint) => (checkpoint, false),
            None if segments.is_empty() => {
                segments.push(Segment::create(dir, &config, Position::ZERO)?);
                let genesis = Checkpoint::genesis();
                genesis.store(dir, config.cluster_id, config.durability == Durability::Fsync)?;
                (genesis, false)
            }
            // A crash between creating the first segment and its checkpoint, or a
            // checkpoint lost by hand: scan everything, trusting the first link unless the
            // log starts at its very beginning.
            None => {
                let base = segments[0].base();
                (
                    Checkpoint { position_start: base, position_scan: base, ..Checkpoint::genesis() },
                    base != Position::ZERO,
                )
            }
        };
        // Segments wholly below the start are leftovers of an interrupted deletion.
        while segments.len() > 1 && segments[0].base().0 + config.segment_bytes <= checkpoint.position_start.0 {
            let segment = segments.remove(0);
            segment.remove_file()?;
            removed.push(segment.path().to_path_buf());
        }
        let set = SegmentSet { segments: segments.into(), segment_bytes: config.segment_bytes };
        if set.index_of(checkpoint.position_scan).is_none() && checkpoint.position_scan != set.end() {
            let path = dir.join(crate::segment::segment_file_name(checkpoint.position_scan));
            return Err(LogError::MissingSegment { path });
        }

        let mut log = Log {
            dir: dir.to_path_buf(),
            position_start: checkpoint.position_start,
            position_append: checkpoint.position_scan,
            position_synced: Position::ZERO,
            position_fsynced: Position::ZERO,
            durable: SharedPosition::default(),
            checksum_last: checkpoint.checksum_prev,
            time_max: checkpoint.time_max,
            terms: checkpoint.terms.clone(),
            checkpoint,
            config,
            set,
            _lock: lock,
        };
        let (entries_scanned, torn_tail) = log.recover_tail(trust_first_link)?;
        removed.extend(log.remove_segments_past_end()?);
        // What survived a process crash sits in the page cache; make it durable before
        // anyone is told it is.
        log.position_synced = log.set.start();
        log.position_fsynced = log.set.start();
        log.fsync()?;
        let recovery = Recovery {
            position_start: log.position_start,
            position_end: log.position_append,
            scanned_from: log.checkpoint.position_scan,
            entries_scanned,
            torn_tail,
            segments_removed: removed,
        };
        Ok((log, recovery))
    }

    /// Scans from the checkpoint to the end, rebuilding the tail state; cuts a torn tail.
    fn recover_tail(&mut self, trust_first_link: bool) -> Result<(u64, Option<TornTail>)> {
        let mut position = self.position_append;
        let mut prev = (!trust_first_link).then_some(self.checksum_last);
        let mut entries = 0;
        let stop = loop {
            position = entry_start(position, self.config.segment_bytes);
            match self.set.step(position, prev) {
                Step::Entry(view) => {
                    self.terms.observe(view.header.term(), position);
                    self.time_max = self.time_max.max(view.header.timestamp());
                    prev = Some(view.checksum());
                    position = view.next_position();
                    entries += 1;
                }
                Step::End => break None,
                Step::Unwritten => break None,
                Step::Bad(error) => break Some(error),
            }
        };
        self.position_append = position;
        self.checksum_last = prev.unwrap_or(self.checksum_last);
        let torn = torn_tail(&self.set, position, stop)?;
        if let Some(torn) = &torn {
            self.zero_range(position, Position(position.0 + torn.bytes_discarded))?;
        }
        Ok((entries, torn))
    }

    /// Removes segments that start after the end of the log (created just before a crash,
    /// never written), keeping the one the end sits at the base of.
    fn remove_segments_past_end(&mut self) -> Result<Vec<PathBuf>> {
        let mut removed = Vec::new();
        while self.set.segments.len() > 1 && self.set.segments.back().is_some_and(|s| s.base() > self.position_append) {
            let segment = self.set.segments.pop_back().expect("checked non-empty");
            segment.remove_file()?;
            removed.push(segment.path().to_path_buf());
        }
        if !removed.is_empty() {
            sync_dir(&self.dir)?;
        }
        Ok(removed)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }
    pub fn config(&self) -> &LogConfig {
        &self.config
    }
    /// The first position the log holds (older segments were deleted after a snapshot).
    pub fn position_start(&self) -> Position {
        self.position_start
    }
    /// Where the next entry will be appended: the end of the log.
    pub fn position_append(&self) -> Position {
        self.position_append
    }
    /// Everything below it survives a crash under the configured durability policy.
    pub fn position_durable(&self) -> Position {
        self.durable.get()
    }
    /// A handle other threads can read the durable position from.
    pub fn durable_position(&self) -> SharedPosition {
        self.durable.clone()
    }
    /// The checksum of the last entry: with the end position it identifies the whole log.
    pub fn checksum_last(&self) -> u32 {
        self.checksum_last
    }
    pub fn terms(&self) -> &TermIndex {
        &self.terms
    }
    /// The latest cluster time of any entry this log has held.
    pub fn time_max(&self) -> ClusterTimeNs {
        self.time_max
    }

    pub fn last_term(&self) -> Term {
        self.terms.last_term()
    }

    /// Appends one entry and returns its position. It is in the map (readable, and safe
    /// from a process crash) at once; it is durable under `fsync` after the next [`sync`].
    ///
    /// [`sync`]: Log::sync
    pub fn append(&mut self, meta: &EntryMeta, payload: &[u8]) -> Result<Position> {
        if payload.len() > self.config.entry_payload_bytes_max as usize {
            return Err(LogError::EntryTooLarge {
                payload_bytes: payload.len(),
                max_bytes: self.config.entry_payload_bytes_max,
            });
        }
        self.check_term(meta.term)?;
        let segment_bytes = self.config.segment_bytes;
        let span = entry_span_bytes(payload.len());
        if offset_in_segment(self.position_append, segment_bytes) + span > segment_bytes {
            self.pad_segment(meta.term);
        }
        let position = self.position_append;
        let index = self.segment_for(position)?;
        let offset = offset_in_segment(position, segment_bytes) as usize;
        let out = &mut self.set.segments[index].data_mut()[offset..offset + span as usize];
        debug_assert!(out[..HEADER_BYTES].iter().all(|&b| b == 0), "appending over written bytes at {position}");
        let checksum = encode_entry(out, position, self.checksum_last, meta, payload)?;
        self.time_max = self.time_max.max(meta.timestamp);
        self.advance(position, span, checksum, meta.term);
        Ok(position)
    }

    /// Appends log bytes exactly as another member's log holds them (a follower receiving
    /// the leader's stream), after checking every entry in them: position, checksum, chain,
    /// term, and that it ends inside its segment. `position` must be this log's end. A
    /// padding entry may arrive as its header alone. Entries before a bad one are kept;
    /// returns the new end.
    pub fn append_raw(&mut self, position: Position, bytes: &[u8]) -> Result<Position> {
        let segment_bytes = self.config.segment_bytes;
        if entry_start(position, segment_bytes) != self.position_append {
            return Err(LogError::OutOfRange { position, start: self.position_append, end: self.position_append });
        }
        let mut cursor = 0usize;
        while cursor < bytes.len() {
            let position = self.position_append;
            let view = ordo_core::entry::decode_entry(&bytes[cursor..], position)?;
            if view.checksum_prev() != self.checksum_last {
                let (expected, found) = (self.checksum_last, view.checksum_prev());
                return Err(Error::EntryChainBroken { position, expected, found }.into());
            }
            let term = view.header.term();
            self.check_term(term)?;
            let span = view.header.span_bytes();
            let offset = offset_in_segment(position, segment_bytes);
            let (fits, to_copy) = if view.kind() == EntryKind::Padding {
                (span == segment_bytes - offset, HEADER_BYTES)
            } else {
                (offset + span <= segment_bytes, view.header.length_bytes() as usize)
            };
            if !fits {
                let reason = "it does not end where its segment does (padding) or inside it (any other entry)";
                return Err(Error::EntryMalformed { position, reason }.into());
            }
            let index = self.segment_for(position)?;
            let checksum = view.checksum();
            self.time_max = self.time_max.max(view.header.timestamp());
            let offset = offset as usize;
            self.set.segments[index].data_mut()[offset..offset + to_copy]
                .copy_from_slice(&bytes[cursor..cursor + to_copy]);
            self.advance(position, span, checksum, term);
            cursor += (span as usize).min(bytes.len() - cursor);
        }
        Ok(self.position_append)
    }

    fn check_term(&self, term: Term) -> Result<()> {
        let last = self.terms.last_term();
        if term < last {
            return Err(LogError::TermRegressed { term: term.0, last: last.0 });
        }
        Ok(())
    }

    #[inline]
    fn advance(&mut self, position: Position, span: u64, checksum: u32, term: Term) {
        self.terms.observe(term, position);
        self.checksum_last = checksum;
        // The end is kept canonical: never in the few bytes at a segment's end where no
        // header fits, so the same log has the same end before and after a reopen.
        self.position_append = entry_start(Position(position.0 + span), self.config.segment_bytes);
        debug_assert!(self.position_append.0 <= self.set.end().0);
    }

    /// Fills the rest of the current segment with a padding entry: the next entry does
    /// not fit in it.
    fn pad_segment(&mut self, term: Term) {
        let segment_bytes = self.config.segment_bytes;
        let position = self.position_append;
        let offset = offset_in_segment(position, segment_bytes);
        let index = self.set.index_of(position).expect("a partly filled segment exists");
        let out = &mut self.set.segments[index].data_mut()[offset as usize..];
        let checksum = encode_padding(out, position, self.checksum_last, term);
        self.advance(position, segment_bytes - offset, checksum, term);
    }

    /// Index of the segment `position` is in, starting a new segment when `position` is the
    /// end of the last one.
    #[inline]
    fn segment_for(&mut self, position: Position) -> Result<usize> {
        match self.set.index_of(position) {
            Some(index) => Ok(index),
            None => {
                self.roll(position)?;
                Ok(self.set.segments.len() - 1)
            }
        }
    }

    /// Seals the last segment and starts a new one at `base`. Under `fsync` the sealed
    /// segment is synced first, so the checkpoint never points past durable bytes.
    // TODO(perf): create the next segment ahead of time, off the append path: today a roll
    // costs a preallocation and three fsyncs once every segment_bytes, which is the p99 of
    // `ordo bench` at 20 000 commands/s (12.7 ms; 0.6 ms with no roll in the run). Under
    // `replicated` the roll now also fdatasyncs the sealed segment (what the page cache has
    // not written back of it, up to a segment): a stall to move off this thread with the
    // rest (issue 20), not measured yet.
    fn roll(&mut self, base: Position) -> Result<()> {
        debug_assert_eq!(base, self.set.end());
        // Under either durability: the checkpoint written next tells recovery to trust the
        // sealed segment without scanning it, so it must be on the disk (under `replicated`
        // a power cut would otherwise leave the log claiming zeros as entries: simulator).
        self.fsync()?;
        self.set.segments.push_back(Segment::create(&self.dir, &self.config, base)?);
        self.store_checkpoint(self.position_start, base, self.checksum_last)
    }

    fn store_checkpoint(&mut self, start: Position, scan: Position, checksum_prev: u32) -> Result<()> {
        let mut terms = self.terms.clone();
        terms.truncate(scan);
        let checkpoint = Checkpoint {
            position_start: start,
            position_scan: scan,
            checksum_prev,
            time_max: self.time_max,
            terms,
            reset: false,
        };
        checkpoint.store(&self.dir, self.config.cluster_id, self.config.durability == Durability::Fsync)?;
        self.checkpoint = checkpoint;
        Ok(())
    }

    /// Makes every append so far durable and publishes the durable position. Under `fsync`
    /// this is one `fdatasync` per segment written since the last sync (group commit: call
    /// it once per batch, not per entry); under `replicated` it only publishes.
    pub fn sync(&mut self) -> Result<Position> {
        let end = self.position_append;
        if self.config.durability == Durability::Fsync && self.position_synced < end {
            let first = self.set.index_of(self.position_synced).unwrap_or(0);
            let last = self.set.index_of(Position(end.0.saturating_sub(1))).unwrap_or(first);
            for segment in self.set.segments.range(first..=last) {
                segment.sync_data()?;
            }
        }
        self.position_synced = end;
        if self.config.durability == Durability::Fsync {
            self.position_fsynced = end;
        }
        debug_assert!(self.durable.get() <= end || self.durable.get() == Position::ZERO);
        self.durable.set(end);
        Ok(end)
    }

    /// Puts every append so far on the disk, whatever the durability (`fdatasync` of each
    /// segment written since the last), and publishes it as [`Log::sync`] does: a
    /// `replicated` log's segment roll, and the event log before each snapshot.
    pub fn fsync(&mut self) -> Result<Position> {
        let end = self.position_append;
        if self.position_fsynced < end {
            let first = self.set.index_of(self.position_fsynced).unwrap_or(0);
            let last = self.set.index_of(Position(end.0.saturating_sub(1))).unwrap_or(first);
            for segment in self.set.segments.range(first..=last) {
                segment.sync_data()?;
            }
        }
        self.position_fsynced = end;
        self.position_synced = end;
        self.durable.set(end);
        Ok(end)
    }

    /// Where what is on the disk ends (see `position_fsynced`); what lies after it a power
    /// cut may take.
    pub fn position_fsynced(&self) -> Position {
        self.position_fsynced
    }

    /// Syncs and closes the log. Dropping a log without `close` is what a crash looks like.
    pub fn close(mut self) -> Result<()> {
        self.sync().map(|_| ())
    }

    /// Up to `max_bytes` of raw log bytes from `position`, zero copy, stopping at the end
    /// of the log or of the segment (call again for the next one): what a leader sends a
    /// follower. Returns where the bytes really start: `position` itself, or the next
    /// segment's base when `position` is in the unused bytes at a segment's end.
    pub fn read(&self, position: Position, max_bytes: usize) -> Result<(Position, &[u8])> {
        let position = entry_start(position, self.config.segment_bytes);
        self.check_range(position)?;
        if position == self.position_append {
            return Ok((position, &[]));
        }
        let (segment, bytes) = self.set.bytes_from(position).ok_or_else(|| self.out_of_range(position))?;
        let segment_end = segment.base().0 + self.config.segment_bytes;
        let until = self.position_append.0.min(segment_end).min(position.0.saturating_add(max_bytes as u64));
        Ok((position, &bytes[..(until - position.0) as usize]))
    }

    /// The entry at `position`, checked against its own checksum, zero copy.
    pub fn entry(&self, position: Position) -> Result<EntryView<'_>> {
        let position = entry_start(position, self.config.segment_bytes);
        if position >= self.position_append {
            return Err(self.out_of_range(position));
        }
        self.check_range(position)?;
        match self.set.step(position, None) {
            Step::Entry(view) => Ok(view),
            _ => Err(LogError::NotAnEntry { position }),
        }
    }

    /// Every entry from `position` to the end of the log, padding included, each checked
    /// against its checksum and its link to the one before. Zero copy.
    pub fn entries(&self, position: Position) -> Entries<'_> {
        Entries { set: &self.set, position, end: self.position_append, prev: None, done: false }
    }

    fn check_range(&self, position: Position) -> Result<()> {
        if position < self.position_start || position > self.position_append {
            return Err(self.out_of_range(position));
        }
        Ok(())
    }

    fn out_of_range(&self, position: Position) -> LogError {
        LogError::OutOfRange { position, start: self.position_start, end: self.position_append }
    }

    /// Drops every entry at or after `position` (a follower discarding an uncommitted
    /// tail that diverges from the new leader's log). `position` must be where an entry
    /// starts. The caller guarantees nothing at or after it was committed.
    pub fn truncate_to(&mut self, position: Position) -> Result<()> {
        let position = entry_start(position, self.config.segment_bytes);
        if position == self.position_append {
            return Ok(());
        }
        let checksum_prev = self.entry(position)?.checksum_prev();
        // The checkpoint moves first: a crash part way then finds the old tail intact past
        // the checkpoint, as if the truncation had not begun, never a gap.
        if self.checkpoint.position_scan > position {
            self.store_checkpoint(self.position_start, position, checksum_prev)?;
        }
        self.zero_range(position, self.position_append)?;
        let mut removed = false;
        while self.set.segments.back().is_some_and(|s| s.base() > position) && self.set.segments.len() > 1 {
            self.set.segments.pop_back().expect("checked").remove_file()?;
            removed = true;
        }
        if removed {
            sync_dir(&self.dir)?;
        }
        self.terms.truncate(position);
        self.position_append = position;
        self.checksum_last = checksum_prev;
        self.position_synced = self.position_synced.min(position);
        self.position_fsynced = self.position_fsynced.min(position);
        if self.durable.get() > position {
            self.durable.set(position);
        }
        Ok(())
    }

    /// Zeroes `[from, to)` and, under `fsync`, makes that durable.
    fn zero_range(&mut self, from: Position, to: Position) -> Result<()> {
        let Some(first) = self.set.index_of(from) else { return Ok(()) };
        let last = self.set.index_of(Position(to.0 - 1)).unwrap_or(self.set.segments.len() - 1);
        for index in first..=last {
            let segment = &mut self.set.segments[index];
            let base = segment.base().0;
            let start = from.0.saturating_sub(base) as usize;
            let end = ((to.0 - base) as usize).min(segment.data().len());
            segment.data_mut()[start..end].fill(0);
            if self.config.durability == Durability::Fsync {
                segment.sync_data()?;
            }
        }
        Ok(())
    }

    /// Deletes every whole segment that ends at or below `position` (everything there is
    /// covered by a snapshot), never the segment the log's end is in. Returns the files
    /// deleted.
    pub fn delete_below(&mut self, position: Position) -> Result<Vec<PathBuf>> {
        let segment_bytes = self.config.segment_bytes;
        let keep_from = self.set.index_of(self.position_append).unwrap_or(self.set.segments.len() - 1);
        let deletable =
            self.set.segments.iter().take(keep_from).take_while(|s| s.base().0 + segment_bytes <= position.0).count();
        if deletable == 0 {
            return Ok(Vec::new());
        }
        let start = self.set.segments[deletable].base();
        // The checkpoint moves first: after a crash, open removes the leftovers below it.
        let (scan, checksum_prev) = if self.checkpoint.position_scan < start {
            let prev =
                if start < self.position_append { self.entry(start)?.checksum_prev() } else { self.checksum_last };
            (start, prev)
        } else {
            (self.checkpoint.position_scan, self.checkpoint.checksum_prev)
        };
        self.store_checkpoint(start, scan, checksum_prev)?;
        let mut deleted = Vec::with_capacity(deletable);
        for _ in 0..deletable {
            let segment = self.set.segments.pop_front().expect("counted");
            segment.remove_file()?;
            deleted.push(segment.path().to_path_buf());
            // Unmapping and the last close cost milliseconds: not on this thread.
            crate::reaper::drop_later(segment);
        }
        // Not needed for safety (an unlink a crash undoes leaves a segment below the start,
        // which open removes), only to make the space's return durable: under `fsync` only.
        if self.config.durability == Durability::Fsync {
            sync_dir(&self.dir)?;
        }
        self.position_start = start;
        if self.position_synced < start {
            self.position_synced = start;
        }
        self.position_fsynced = self.position_fsynced.max(start);
        Ok(deleted)
    }
}

impl Log {
    /// Discards every entry and starts the log over, empty, at `base.position`: a member
    /// that installed a snapshot from the leader (its log was behind the leader's oldest
    /// retained entry, or diverged below the snapshot) continues from the snapshot. The
    /// chain, the term index and the cluster time continue from `base`, so the next entry
    /// the leader sends links onto it. Crash-safe: a checkpoint marked `reset` is written
    /// first, and an interrupted reset is finished by the next open.
    pub fn reset_to(&mut self, base: &LogBase) -> Result<()> {
        let mut checkpoint = checkpoint_of(base, true);
        checkpoint.store(&self.dir, self.config.cluster_id, self.config.durability == Durability::Fsync)?;
        let files: Vec<(Position, PathBuf)> =
            self.set.segments.iter().map(|s| (s.base(), s.path().to_path_buf())).collect();
        self.set.segments.clear(); // unmapped before their files go
        finish_reset(&self.dir, &self.config, &files, &mut checkpoint)?;
        let files = list_segment_files(&self.dir, true)?;
        for (segment_base, path) in &files {
            self.set.segments.push_back(Segment::open(path, &self.config, *segment_base, true)?);
        }
        self.position_start = base.position;
        self.position_append = base.position;
        self.position_synced = base.position;
        self.position_fsynced = base.position;
        self.checksum_last = base.checksum;
        self.time_max = base.time_max;
        self.terms = checkpoint.terms.clone();
        self.checkpoint = checkpoint;
        self.durable.set(base.position);
        Ok(())
    }
}

pub use ordo_core::LogBase;

/// The checkpoint of a log starting over at `base` (`reset`: marked as a reset in progress).
fn checkpoint_of(base: &LogBase, reset: bool) -> Checkpoint {
    let mut terms = TermIndex::default();
    if base.position > Position::ZERO {
        debug_assert!(base.entry_position < base.position);
        terms.observe(base.term, base.entry_position);
    }
    Checkpoint {
        position_start: base.position,
        position_scan: base.position,
        checksum_prev: base.checksum,
        time_max: base.time_max,
        terms,
        reset,
    }
}

/// The second half of a reset: removes every old segment file, creates the segment holding
/// the new start and clears the checkpoint's `reset` mark.
fn finish_reset(
    dir: &Path,
    config: &LogConfig,
    files: &[(Position, PathBuf)],
    checkpoint: &mut Checkpoint,
) -> Result<()> {
    for (_, path) in files.iter().rev() {
        std::fs::remove_file(path).map_err(io("delete segment", path))?;
    }
    sync_dir(dir)?;
    let start = checkpoint.position_start;
    let segment_base = Position(start.0 - offset_in_segment(start, config.segment_bytes));
    drop(Segment::create(dir, config, segment_base)?);
    checkpoint.reset = false;
    checkpoint.store(dir, config.cluster_id, config.durability == Durability::Fsync)
}

impl ordo_core::LogSource for Log {
    fn read_log(&self, position: Position) -> Option<(Position, &[u8])> {
        self.read(position, usize::MAX).ok()
    }

    fn log_end(&self) -> Position {
        self.position_append
    }

    fn start_position(&self) -> Position {
        self.position_start()
    }

    fn entry_start(&self, position: Position) -> Position {
        entry_start(position, self.config.segment_bytes)
    }
}

/// A read-only view of a log folder, for readers beside (or after) the member that writes
/// it: `ordo log dump`, `replay`, `events tail`, `verify`. It maps segments read-only, never
/// takes the lock and never modifies a file. A writer's appends show through the shared
/// mapping; [`LogReader::refresh`] maps the segments it added since.
pub struct LogReader {
    dir: PathBuf,
    config: LogConfig,
    set: SegmentSet,
    start: Position,
}

impl LogReader {
    pub fn open(dir: &Path, config: &LogConfig) -> Result<LogReader> {
        config.validate().map_err(LogError::Config)?;
        let files = list_segment_files(dir, false)?;
        check_contiguous(dir, &files, config.segment_bytes)?;
        let checkpoint = Checkpoint::load(dir, config.cluster_id)?;
        let mut segments = std::collections::VecDeque::with_capacity(files.len());
        for (base, path) in &files {
            segments.push_back(Segment::open(path, config, *base, false)?);
        }
        let set = SegmentSet { segments, segment_bytes: config.segment_bytes };
        let start = checkpoint.map_or(set.start(), |c| c.position_start).max(set.start());
        Ok(LogReader { dir: dir.to_path_buf(), config: config.clone(), set, start })
    }

    /// The first position the log held when the reader was opened.
    pub fn position_start(&self) -> Position {
        self.start
    }

    /// Maps segment files the writer created since (a reader following a growing log).
    pub fn refresh(&mut self) -> Result<()> {
        self.refresh_until(Position(u64::MAX))
    }

    /// Maps the segments the writer created since, up to the one holding `position`. A
    /// reader of committed entries stops there: segments past the commit may still be
    /// removed by a truncation and made again, and a mapping of the removed file would go
    /// on showing its old bytes.
    pub fn refresh_until(&mut self, position: Position) -> Result<()> {
        for (base, path) in list_segment_files(&self.dir, false)? {
            if base == self.set.end() && base <= position {
                self.set.segments.push_back(Segment::open(&path, &self.config, base, false)?);
            }
        }
        Ok(())
    }

    /// Unmaps segments wholly below `position` (the reader is past them; the writer may
    /// have deleted their files, whose space returns once unmapped).
    pub fn release_below(&mut self, position: Position) {
        let segment_bytes = self.config.segment_bytes;
        while self.set.segments.len() > 1
            && self.set.segments.front().is_some_and(|s| s.base().0 + segment_bytes <= position.0)
        {
            crate::reaper::drop_later(self.set.segments.pop_front().expect("checked"));
        }
        self.start = self.start.max(self.set.start());
    }

    /// Every entry from `position` (where one starts, at or after the start), each checked
    /// against its checksum, and its link to the one before from the second on (from the
    /// first too when reading from the log's very beginning). Stops at the first unwritten
    /// header; an entry a writer is writing at that moment may read as an error: retry.
    pub fn entries(&self, position: Position) -> Entries<'_> {
        Entries {
            set: &self.set,
            position: position.max(self.start),
            end: self.set.end(),
            prev: (position == Position::ZERO).then_some(0),
            done: false,
        }
    }
}

impl ordo_core::LogSource for LogReader {
    /// The bytes from `position` to the end of its segment (the caller knows how far they
    /// are written: a reader of committed entries reads below the commit position).
    fn read_log(&self, position: Position) -> Option<(Position, &[u8])> {
        let position = entry_start(position, self.config.segment_bytes);
        if position < self.start {
            return None;
        }
        if position == self.set.end() {
            return Some((position, &[])); // the end of what is mapped
        }
        self.set.bytes_from(position).map(|(_, bytes)| (position, bytes))
    }

    /// The end of the mapped segments (not of the written entries).
    fn log_end(&self) -> Position {
        self.set.end()
    }

    fn start_position(&self) -> Position {
        self.start
    }

    fn entry_start(&self, position: Position) -> Position {
        entry_start(position, self.config.segment_bytes)
    }
}

/// Checks a log folder without modifying it (it may belong to a running member): every
/// segment header, every entry's checksum and the whole chain from the first retained
/// entry. Corruption is an error naming the file and position of the first bad entry.
pub fn verify(dir: &Path, config: &LogConfig) -> Result<Verified> {
    let reader = LogReader::open(dir, config)?;
    let start = reader.start;
    let mut entries = reader.entries(start);
    let mut count = 0u64;
    let mut failure = None;
    for entry in entries.by_ref() {
        match entry {
            Ok(_) => count += 1,
            Err(error) => failure = Some(error),
        }
    }
    let end = entries.position;
    let stop = match failure {
        None => None,
        Some(LogError::Corrupt { source, .. }) => Some(source),
        Some(other) => return Err(other),
    };
    let torn_tail = torn_tail(&reader.set, end, stop)?;
    let segments = reader.set.segments.len();
    Ok(Verified { position_start: start, position_end: end, entries: count, segments, torn_tail })
}

/// Iterator over entries; see [`Log::entries`]. After an error it yields nothing more.
pub struct Entries<'a> {
    set: &'a SegmentSet,
    position: Position,
    end: Position,
    prev: Option<u32>,
    done: bool,
}

impl<'a> Entries<'a> {
    /// Where the next entry would be read.
    pub fn position(&self) -> Position {
        self.position
    }
}

impl<'a> Iterator for Entries<'a> {
    type Item = Result<EntryView<'a>>;

    #[inline]
    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        self.position = entry_start(self.position, self.set.segment_bytes);
        if self.position >= self.end {
            self.done = true;
            return None;
        }
        match self.set.step(self.position, self.prev) {
            Step::Entry(view) => {
                self.prev = Some(view.checksum());
                self.position = view.next_position();
                Some(Ok(view))
            }
            Step::End | Step::Unwritten => {
                self.done = true;
                None
            }
            Step::Bad(source) => {
                self.done = true;
                Some(Err(LogError::Corrupt { path: self.set.path_of(self.position), position: self.position, source }))
            }
        }
    }
}

/// Decides what the bytes at and after `end` (where reading stopped, for `stop`, or at a
/// zeroed header) are: nothing (a clean end), a torn tail (a partly written last entry,
/// with no valid entry after it), or corruption in the middle of the log (a valid entry
/// follows, or an entry that is whole by its own checksum breaks the chain), which is an
/// error naming the file and position.
fn torn_tail(set: &SegmentSet, end: Position, stop: Option<Error>) -> Result<Option<TornTail>> {
    let Some(written_end) = set.written_end_after(end) else {
        return match stop {
            None => Ok(None),
            // Not even a header's worth of bytes (the end of the last segment): the chain
            // or the entry is broken with nothing after, still corruption.
            Some(source) => Err(LogError::Corrupt { path: set.path_of(end), position: end, source }),
        };
    };
    let reason =
        stop.unwrap_or(Error::EntryMalformed { position: end, reason: "its header is zeroed but bytes follow it" });
    if matches!(reason, Error::EntryChainBroken { .. }) || set.valid_entry_after(end).is_some() {
        return Err(LogError::Corrupt { path: set.path_of(end), position: end, source: reason });
    }
    Ok(Some(TornTail {
        path: set.path_of(end),
        position: end,
        bytes_discarded: written_end.0 - end.0,
        reason: reason.to_string(),
    }))
}

fn lock_dir(dir: &Path) -> Result<File> {
    use rustix::fs::{FlockOperation, flock};
    let path = dir.join("lock");
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(io("create lock file", &path))?;
    match flock(&file, FlockOperation::NonBlockingLockExclusive) {
        Ok(()) => Ok(file),
        Err(rustix::io::Errno::WOULDBLOCK) => Err(LogError::Locked { path: dir.to_path_buf() }),
        Err(e) => Err(io("lock", &path)(e.into())),
    }
}
