//! A member's storage on disk: the mapped log, the vote file, the snapshot folder and the
//! event log ([`DiskStorage`], what consensus writes), the service's read-only mapping of
//! the log when it runs on a thread of its own ([`MappedLog`]) and its snapshot folder
//! ([`SnapshotFolder`]). Everything here is what the simulator replaces with memory
//! (`crate::replica::mem_log`).

pub mod replay;
pub mod snapshots;

use crate::replica::consensus::LogView;
use crate::replica::effects::{Storage, StorageError};
use crate::replica::events::{EventStore, base_of};
use crate::replica::service::{CommittedLog, SnapshotSink};
use crate::replica::snapshot::{Snapshot, SnapshotError, check_received};
use ordo_core::{ClusterTimeNs, EntryKind, EntryMeta, LogSource, MemberId, Position, Term};
use ordo_log::{Log, LogBase, LogReader, Vote, VoteStore};
use snapshots::SnapshotStore;

/// Snapshots kept on disk unless configured otherwise (the log below the oldest is deleted).
pub const SNAPSHOTS_KEPT_DEFAULT: usize = 2;

/// A member's folder, opened: its storage and event log, and what opening found.
pub struct Folder {
    pub storage: DiskStorage,
    pub events: Log,
    pub opened: Opened,
}

/// What opening a member's folder found: the log's recovery, the snapshot it starts from,
/// the newer snapshots it had to pass over (corrupt), and whether the log was reset to
/// continue after the snapshot.
pub struct Opened {
    pub recovery: ordo_log::Recovery,
    pub snapshot: Option<crate::replica::snapshot::SnapshotInfo>,
    pub rejected: Vec<SnapshotError>,
    pub log_reset: bool,
}

/// Why a member's folder did not open.
#[derive(Debug)]
pub enum OpenError {
    Storage(StorageError),
    /// The log failed verification (`ordo_log::verify`): a damaged entry, named by file and
    /// position, anywhere in it.
    Damaged {
        dir: std::path::PathBuf,
        source: ordo_log::LogError,
    },
    /// The log holds `position` but not the entry the newest snapshot ends with there.
    SnapshotMismatch {
        dir: std::path::PathBuf,
        position: Position,
    },
}

impl<E: Into<StorageError>> From<E> for OpenError {
    fn from(error: E) -> Self {
        OpenError::Storage(error.into())
    }
}

/// Opens (recovering after a crash) a member's folder — its log, event log, vote and
/// snapshots — as a member starts on it: the newest valid snapshot reconciled with the log.
/// The one way a folder is opened, by a real member and by the simulator. Its whole log is
/// checked first (every checksum and the chain, CRC32C at memory speed): a member with a
/// damaged entry anywhere — sealed segments included, which recovery's scan from the
/// checkpoint would not read — refuses to start rather than serve it to a follower or a
/// replay.
pub fn open_folder(
    dir: &std::path::Path,
    config: &ordo_core::LogConfig,
    snapshots_kept: usize,
) -> Result<Folder, OpenError> {
    let log_dir = dir.join("log");
    if log_dir.join("checkpoint").exists() {
        ordo_log::verify(&log_dir, config).map_err(|source| OpenError::Damaged { dir: dir.to_path_buf(), source })?;
    }
    let cluster_id = config.cluster_id;
    let mut snapshots = SnapshotStore::open(&dir.join("snapshots"), cluster_id)?;
    if config.durability == ordo_core::Durability::Replicated {
        snapshots = snapshots.without_sync();
    }
    let loaded = snapshots.load_newest()?;
    let (log, recovery) = Log::open(&log_dir, config.clone())?;
    let snapshot = loaded.snapshot.as_ref().map(|s| s.info.clone());
    // The state is rebuilt from the newest usable snapshot and the log after it: with the
    // log starting past it (newer ones damaged, or removed by hand), it cannot be.
    let usable = snapshot.as_ref().map_or(Position::ZERO, |s| s.base.position);
    if usable < log.position_start() {
        return Err(OpenError::Storage(StorageError::Snapshot(SnapshotError::NoneReachesLog {
            dir: dir.join("snapshots"),
            log_start: log.position_start(),
            usable,
            passed_over: loaded.rejected.len(),
        })));
    }
    let votes = VoteStore::new(dir, cluster_id);
    let (events, _) = Log::open(&dir.join("events"), config.for_events())?;
    let mut storage = DiskStorage::new(log, votes, snapshots, loaded.snapshot)?.with_snapshots_kept(snapshots_kept);
    let log_reset = crate::replica::effects::reconcile_with_snapshot(&mut storage)?
        .map_err(|position| OpenError::SnapshotMismatch { dir: log_dir, position })?;
    Ok(Folder { storage, events, opened: Opened { recovery, snapshot, rejected: loaded.rejected, log_reset } })
}

/// Seeds the member folder `dir` (with no log yet) from `snapshot`, as `ordo snapshot
/// restore` does: the snapshot is taken into cluster `cluster_id` (the state does not
/// depend on it), stored and read back whole, and the vote file goes on from the snapshot's
/// term (or a higher one the folder held). A folder that was not a new cluster's (no vote
/// file, or marked recovering) lost its state: it is marked recovering first, so the member
/// catches up before it votes. Returns the snapshot's file and whether it is recovering.
pub fn restore_snapshot(
    dir: &std::path::Path,
    cluster_id: ordo_core::ClusterId,
    snapshot: &Snapshot,
) -> Result<(std::path::PathBuf, bool), StorageError> {
    let info = &snapshot.info;
    let mut rewritten = Vec::new();
    Snapshot::encode(cluster_id, &info.base, &info.events, &info.app, snapshot.body(), &mut rewritten);
    let store = SnapshotStore::open(&dir.join("snapshots"), cluster_id)?;
    let path = store.write_bytes(info.position(), &rewritten)?;
    store.read(&path)?; // reads back whole
    let votes = VoteStore::new(dir, cluster_id);
    let existing = votes.load_stored()?;
    let lost_state = existing.is_none() || votes.is_recovering()?;
    if lost_state {
        votes.mark_recovering()?;
    }
    let vote = existing.filter(|v| v.term >= info.base.term).unwrap_or(Vote { term: info.base.term, voted_for: None });
    votes.store(&vote)?;
    Ok((path, lost_state))
}

/// A member's storage on disk as consensus writes it: the mapped log, the vote file and the
/// snapshot folder (the service agent writes the snapshots it takes; the ones installed
/// from the leader are written here).
pub struct DiskStorage {
    pub log: Log,
    votes: VoteStore,
    vote: Vote,
    snapshots: SnapshotStore,
    /// The newest snapshot, whole, ready to send (read once, not per follower).
    newest: Option<Snapshot>,
    snapshots_kept: usize,
    /// A snapshot installed from the leader, for the service to restore.
    installed: Option<Snapshot>,
    /// The member lost its state and has not caught up yet (`ordo_log::vote`'s mark).
    recovering: bool,
    /// The event log's folder and configuration, and the feed's read-only mapping of it
    /// (made when the first subscriber comes).
    events_dir: std::path::PathBuf,
    events_config: ordo_core::LogConfig,
    events_reader: Option<LogReader>,
    /// The inline service's read-only mapping of the log.
    inline_log: Option<MappedLog>,
}

impl DiskStorage {
    /// The storage over an opened log, its vote file and its snapshot folder; `newest` is
    /// the newest valid snapshot the folder held (see `SnapshotStore::load_newest`).
    pub fn new(
        log: Log,
        votes: VoteStore,
        snapshots: SnapshotStore,
        newest: Option<Snapshot>,
    ) -> Result<Self, StorageError> {
        let vote = votes.load()?;
        let snapshots_kept = SNAPSHOTS_KEPT_DEFAULT;
        // No vote file, no log entry and no snapshot: not a formatted new member but one that
        // lost its state. The mark goes down before anything else happens.
        let lost = votes.load_stored()?.is_none() && log.position_append() == Position::ZERO && newest.is_none();
        let recovering = lost || votes.is_recovering()?;
        if lost {
            votes.mark_recovering()?;
        }
        let events_dir = log.dir().parent().unwrap_or(log.dir()).join("events");
        let events_config = log.config().for_events();
        Ok(DiskStorage {
            log,
            votes,
            vote,
            snapshots,
            newest,
            snapshots_kept,
            installed: None,
            recovering,
            events_dir,
            events_config,
            events_reader: None,
            inline_log: None,
        })
    }

    /// Where the service writes its snapshots: the same folder.
    pub fn snapshot_folder(&self) -> SnapshotFolder {
        SnapshotFolder { store: self.snapshots.clone(), kept: self.snapshots_kept }
    }

    pub fn with_snapshots_kept(mut self, kept: usize) -> Self {
        self.snapshots_kept = kept.max(1);
        self
    }

    pub fn snapshots(&self) -> &SnapshotStore {
        &self.snapshots
    }

    pub fn snapshots_kept(&self) -> usize {
        self.snapshots_kept
    }
}

impl Storage for DiskStorage {
    type Events = Log;
    type Snapshots = SnapshotFolder;
    type OwnLog = MappedLog;
    fn view(&self) -> &dyn LogView {
        &self.log
    }
    fn append(&mut self, meta: &EntryMeta, payload: &[u8]) -> Result<Position, StorageError> {
        Ok(self.log.append(meta, payload)?)
    }
    fn append_raw(&mut self, position: Position, bytes: &[u8]) -> Result<Position, StorageError> {
        Ok(self.log.append_raw(position, bytes)?)
    }
    fn truncate_to(&mut self, position: Position) -> Result<(), StorageError> {
        Ok(self.log.truncate_to(position)?)
    }
    fn reset_to(&mut self, base: &LogBase) -> Result<(), StorageError> {
        Ok(self.log.reset_to(base)?)
    }
    fn sync(&mut self) -> Result<Position, StorageError> {
        Ok(self.log.sync()?)
    }
    fn store_vote(&mut self, term: Term, voted_for: Option<MemberId>) -> Result<(), StorageError> {
        let vote = Vote { term, voted_for };
        if vote != self.vote {
            self.votes.store(&vote)?;
            self.vote = vote;
        }
        Ok(())
    }
    fn snapshot_taken(&mut self, snapshot: Snapshot, oldest_kept: Option<Position>) -> Result<(), StorageError> {
        self.newest = Some(snapshot);
        if let Some(oldest_kept) = oldest_kept {
            self.log.delete_below(oldest_kept)?;
        }
        Ok(())
    }
    fn take_installed(&mut self) -> Option<Snapshot> {
        self.installed.take()
    }
    fn vote(&self) -> Vote {
        self.vote
    }
    fn recovering(&self) -> bool {
        self.recovering
    }
    fn events_for_feed(&mut self, published: Position) -> Option<&dyn LogSource> {
        if self.events_reader.is_none() {
            match LogReader::open(&self.events_dir, &self.events_config) {
                Ok(reader) => self.events_reader = Some(reader),
                Err(error) => {
                    tracing::warn!("event subscribers wait: the event log cannot be read yet: {error}");
                    return None;
                }
            }
        }
        let reader = self.events_reader.as_mut().expect("opened above");
        if reader.log_end() <= published && reader.refresh_until(published).is_err() {
            return None;
        }
        Some(reader)
    }
    fn events_reset(&mut self) {
        self.events_reader = None;
    }
    fn inline_log(&mut self) -> Result<Option<&mut dyn CommittedLog>, StorageError> {
        // Opened on first use: after any reset of the log at start.
        if self.inline_log.is_none() {
            self.inline_log = Some(MappedLog::open(self.log.dir(), self.log.config())?);
        }
        Ok(self.inline_log.as_mut().map(|log| log as &mut dyn CommittedLog))
    }
    fn install_snapshot(&mut self, bytes: &[u8]) -> Result<Result<(), SnapshotError>, StorageError> {
        let (snapshot, reset) = match check_received(bytes, self.log.config().cluster_id, &self.log) {
            Ok(checked) => checked,
            Err(error) => return Ok(Err(error)),
        };
        // The snapshot is stored before the log is reset: a crash between leaves a snapshot
        // past the log's end, and the next start resets the log to it.
        self.snapshots.write_bytes(snapshot.info.position(), snapshot.bytes())?;
        if reset {
            self.log.reset_to(&snapshot.info.base)?;
        }
        self.installed = Some(snapshot.clone());
        self.newest = Some(snapshot);
        self.snapshots.prune(self.snapshots_kept)?;
        Ok(Ok(()))
    }
    fn newest_snapshot(&self) -> Option<&Snapshot> {
        self.newest.as_ref()
    }
    fn store_recovered(&mut self, term: Term, voted_for: Option<MemberId>) -> Result<(), StorageError> {
        // The vote file first: a member with neither vote file nor mark counts as one that
        // lost its state again.
        self.vote = Vote { term, voted_for };
        self.votes.store(&self.vote)?;
        self.votes.clear_recovering()?;
        self.recovering = false;
        tracing::info!("caught up with everything committed after losing its state: this member votes again");
        Ok(())
    }
}

/// A read-only mapping of the log folder, for a service on a thread of its own.
pub struct MappedLog {
    reader: LogReader,
    dir: std::path::PathBuf,
    config: ordo_core::LogConfig,
}

impl MappedLog {
    pub fn open(dir: &std::path::Path, config: &ordo_core::LogConfig) -> Result<Self, StorageError> {
        let reader = LogReader::open(dir, config)?;
        Ok(MappedLog { reader, dir: dir.to_path_buf(), config: config.clone() })
    }
}

impl LogSource for MappedLog {
    fn read_log(&self, position: Position) -> Option<(Position, &[u8])> {
        self.reader.read_log(position)
    }
    fn log_end(&self) -> Position {
        self.reader.log_end()
    }
    fn start_position(&self) -> Position {
        self.reader.start_position()
    }
    fn entry_start(&self, position: Position) -> Position {
        self.reader.entry_start(position)
    }
}

impl CommittedLog for MappedLog {
    fn refresh_until(&mut self, commit: Position) -> Result<(), StorageError> {
        Ok(self.reader.refresh_until(commit)?)
    }
    fn release_below(&mut self, applied: Position) {
        self.reader.release_below(applied);
    }
    fn reopen(&mut self) -> Result<(), StorageError> {
        self.reader = LogReader::open(&self.dir, &self.config)?;
        Ok(())
    }
}

/// A member's snapshot folder, as the service writes it.
pub struct SnapshotFolder {
    pub store: SnapshotStore,
    pub kept: usize,
}

impl SnapshotSink for SnapshotFolder {
    fn write(
        &mut self,
        base: &LogBase,
        events: &LogBase,
        app: &str,
        body: &[u8],
    ) -> Result<(Snapshot, Option<Position>), StorageError> {
        let path = self.store.write(base, events, app, body)?;
        let snapshot = self.store.read(&path)?;
        let (oldest_kept, _) = self.store.prune(self.kept)?;
        Ok((snapshot, oldest_kept))
    }
}

impl LogView for ordo_log::Log {
    fn log_start(&self) -> Position {
        self.position_start()
    }
    fn last_term(&self) -> Term {
        ordo_log::Log::last_term(self)
    }
    fn term_at(&self, position: Position) -> Option<Term> {
        self.terms().term_at(position)
    }
    fn term_start(&self, term: Term) -> Option<Position> {
        self.terms().first_position(term)
    }
    fn checksum_before(&self, position: Position) -> Option<u32> {
        // The end of an entry 32 bytes short of a segment's end and the next segment's base
        // are one point of the log: the next entry starts at the base.
        let position = ordo_log::segments::entry_start(position, self.config().segment_bytes);
        if position == self.position_append() {
            return Some(self.checksum_last());
        }
        self.entry(position).ok().filter(|e| e.position() == position).map(|e| e.checksum_prev())
    }
    fn checksum_of_entry_at(&self, position: Position) -> Option<u32> {
        self.entry(position).ok().filter(|e| e.position() == position).map(|e| e.checksum())
    }
    fn position_durable(&self) -> Position {
        ordo_log::Log::position_durable(self)
    }
    fn time_max(&self) -> ClusterTimeNs {
        ordo_log::Log::time_max(self)
    }
}

impl EventStore for Log {
    fn events_start(&self) -> Position {
        self.position_start()
    }
    fn events_end(&self) -> Position {
        self.position_append()
    }
    fn event_at(&self, position: Position) -> Option<(Option<Position>, Position)> {
        let entry = self.entry(position).ok()?;
        let source = (entry.kind() == EntryKind::Event).then(|| Position(entry.header.correlation_id.get()));
        Some((source, entry.next_position()))
    }
    fn append_event(&mut self, meta: &EntryMeta, event: &[u8]) -> Result<Position, StorageError> {
        Ok(self.append(meta, event)?)
    }
    fn truncate_events(&mut self, position: Position) -> Result<(), StorageError> {
        Ok(self.truncate_to(position)?)
    }
    fn reset_events(&mut self, base: &LogBase) -> Result<(), StorageError> {
        Ok(self.reset_to(base)?)
    }
    fn sync_events(&mut self) -> Result<Position, StorageError> {
        // The event log's durability is `replicated` (no fsync per append); before a
        // snapshot records where it stands, it goes to the disk.
        Ok(self.fsync()?)
    }
    fn events_base(&self) -> LogBase {
        // Event entries all have term 0, so the term's first entry stands for the last one
        // (the base's entry position only seeds the term index).
        let entry_position = self.terms().first_position(self.last_term()).unwrap_or(Position::ZERO);
        base_of(self.position_append(), self.last_term(), entry_position, self.checksum_last(), self.time_max())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ordo_core::{ClusterId, ClusterTimeNs, Durability, LogConfig, SessionId};

    /// A log of 64 KiB segments, so a test crosses segment ends with a few entries.
    fn small_segments() -> LogConfig {
        LogConfig {
            cluster_id: ClusterId(1),
            segment_bytes: 64 * 1024,
            durability: Durability::Fsync,
            entry_payload_bytes_max: 16 * 1024,
        }
    }

    /// Found by the simulator on real files (issue 18): a commit at the end of an entry 32
    /// bytes short of a segment's end (the next entry starts at the next segment's base) was
    /// not an entry boundary to `checksum_before` once the log had grown past it.
    #[test]
    fn the_end_of_an_entry_32_bytes_short_of_a_segment_end_is_an_entry_boundary() {
        let dir = tempfile::tempdir().unwrap();
        let config = small_segments();
        let (mut log, _) = Log::open(dir.path(), config).unwrap();
        let meta = EntryMeta::command(Term(1), ClusterTimeNs(1), SessionId(1), 0);
        // Entries up to near the segment's end, then one whose raw end is 32 bytes short.
        while log.position_append().0 + 2048 < 64 * 1024 {
            log.append(&meta, &[1; 960]).unwrap();
        }
        let room = 64 * 1024 - 32 - log.position_append().0;
        let payload = room as usize - ordo_core::HEADER_BYTES;
        let at = log.append(&meta, &vec![2; payload]).unwrap();
        let short = Position(at.0 + ordo_core::entry::entry_span_bytes(payload));
        assert_eq!(short, Position(64 * 1024 - 32), "the entry's raw end");
        assert_eq!(log.position_append(), Position(64 * 1024), "the log's canonical end");
        let checksum = log.checksum_last();
        log.append(&meta, &[3; 100]).unwrap();
        assert!(log.position_append() > Position(64 * 1024), "the next entry went to the next segment");
        assert_eq!(LogView::checksum_before(&log, short), Some(checksum));
    }

    /// Found by the simulator on real files (seed 78 of issue 18): a follower truncated an
    /// uncommitted tail across a segment boundary, so the log removed that segment, and the
    /// new leader's entries went into a new file of the same name; the service's own mapping
    /// still showed the old file, zeroed, and the member stopped: "a committed entry cannot
    /// be read". Its mapping must be made again (`CommittedLog::reopen`, which the service
    /// does once when a committed entry does not read).
    #[test]
    fn a_mapping_made_before_a_truncation_across_a_segment_shows_the_new_entries_once_reopened() {
        let dir = tempfile::tempdir().unwrap();
        let config = small_segments();
        let (mut log, _) = Log::open(dir.path(), config.clone()).unwrap();
        let old = EntryMeta::command(Term(1), ClusterTimeNs(1), SessionId(1), 0);
        let mut boundary = Position::ZERO;
        while log.position_append() < Position(64 * 1024 + 4096) {
            let at = log.append(&old, &[1; 1000]).unwrap();
            if at < Position(60 * 1024) {
                boundary = log.position_append();
            }
        }
        log.sync().unwrap();
        let mut mapped = MappedLog::open(dir.path(), &config).unwrap();
        assert!(mapped.log_end() > Position(64 * 1024), "both segments mapped");
        log.truncate_to(boundary).unwrap();
        let new = EntryMeta::command(Term(2), ClusterTimeNs(2), SessionId(1), 0);
        let mut past = None;
        while log.position_append() < Position(64 * 1024 + 4096) {
            let at = log.append(&new, &[2; 1000]).unwrap();
            if at >= Position(64 * 1024) && past.is_none() {
                past = Some(at);
            }
        }
        log.sync().unwrap();
        let past = past.expect("an entry in the second segment");
        let read = |mapped: &MappedLog| {
            let entry =
                mapped.read_log(past).and_then(|(start, bytes)| ordo_core::entry::decode_entry(bytes, start).ok());
            entry.map(|e| e.header.term())
        };
        assert!(read(&mapped).is_none(), "the stale mapping shows the old, zeroed file");
        mapped.reopen().unwrap();
        assert_eq!(read(&mapped), Some(Term(2)), "reopened, it shows the new entries");
    }

    /// Found by the simulator (seeds 56 and 337 of issue 18): a member whose newest snapshot
    /// was damaged at rest, its log starting past every snapshot it could still read, started
    /// from a state its log does not continue. It must refuse to start, saying why and what
    /// to do.
    #[test]
    fn a_folder_whose_log_starts_past_every_readable_snapshot_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let config = small_segments();
        let base = LogBase {
            position: Position(4096),
            term: Term(3),
            entry_position: Position(4000),
            checksum: 77,
            time_max: ClusterTimeNs(5),
        };
        let events = LogBase {
            position: Position::ZERO,
            term: Term(0),
            entry_position: Position::ZERO,
            checksum: 0,
            time_max: ClusterTimeNs(0),
        };
        let mut bytes = Vec::new();
        Snapshot::encode(config.cluster_id, &base, &events, "kv", b"state", &mut bytes);
        let snapshot = Snapshot::from_bytes(bytes, "a test's").unwrap();
        let (path, _) = restore_snapshot(dir.path(), config.cluster_id, &snapshot).unwrap();
        let opened = open_folder(dir.path(), &config, 2).unwrap();
        assert!(opened.opened.log_reset, "the log continues after the restored snapshot");
        assert_eq!(opened.storage.log.position_start(), base.position);
        drop(opened);

        // The snapshot's last byte (its body) flipped at rest: no snapshot reaches the log.
        let mut damaged = std::fs::read(&path).unwrap();
        *damaged.last_mut().unwrap() ^= 1;
        std::fs::write(&path, damaged).unwrap();
        let refused = open_folder(dir.path(), &config, 2).err().expect("refused");
        let OpenError::Storage(StorageError::Snapshot(error @ SnapshotError::NoneReachesLog { .. })) = &refused else {
            panic!("refused for another reason: {refused:?}");
        };
        let SnapshotError::NoneReachesLog { log_start, usable, passed_over, .. } = error else { unreachable!() };
        assert_eq!((*log_start, *usable, *passed_over), (base.position, Position::ZERO, 1));
        let message = error.to_string();
        assert!(message.contains("snapshots"), "the message names the folder: {message}");
    }
}
