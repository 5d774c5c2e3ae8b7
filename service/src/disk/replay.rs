//! Replay: rebuilds a member's state offline from its folder — the newest valid snapshot
//! (unless told not to) and the log after it — up to any position, reporting how fast it
//! went. It reads through `ordo_log::LogReader` and the snapshot store: it takes no lock and
//! modifies nothing, so it may run beside the member. `ordo replay` and `ordo snapshot
//! verify` use it.
//!
//! The log's tail may hold entries not yet committed when the member stopped (the commit
//! position is not stored); replay applies every entry the log holds up to `to`.

use crate::disk::snapshots::SnapshotStore;
use crate::replica::container::Container;
use crate::replica::snapshot::{SnapshotError, SnapshotInfo};
use ordo_core::machine::StateMachine;
use ordo_core::{LogConfig, LogSource, Position};
use ordo_log::{LogError, LogReader};
use std::path::Path;
use std::time::Instant;

#[derive(Clone, Debug, Default)]
pub struct ReplayOptions {
    /// Stop before the first entry at or after this position (`None`: the log's end).
    pub to: Option<Position>,
    /// Start from nothing, not from the newest snapshot.
    pub no_snapshot: bool,
}

#[derive(Clone, Debug)]
pub struct ReplayReport {
    /// Everything below it was applied.
    pub position: Position,
    /// Entries applied (after the snapshot).
    pub entries: u64,
    pub seconds: f64,
    pub entries_per_sec: f64,
    pub state_hash: u64,
    /// The snapshot it started from.
    pub snapshot: Option<SnapshotInfo>,
    /// Newer snapshots passed over because they did not read back whole.
    pub rejected: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error(transparent)]
    Log(#[from] LogError),
    #[error(transparent)]
    Snapshot(#[from] SnapshotError),
    #[error(
        "snapshot at {position} does not restore: {reason}; replay with the app that wrote it, or with --no-snapshot"
    )]
    Restore { position: Position, reason: String },
    #[error(
        "the log in {dir} starts at {start}, after {from} where replay must begin ({why}); replay from a snapshot at or after {start}"
    )]
    Gap { dir: std::path::PathBuf, start: Position, from: Position, why: &'static str },
}

/// Rebuilds the state of the member whose folder is `dir`; `empty` is the app's state
/// machine before any command; `progress` is told the position reached now and then.
pub fn replay<M: StateMachine>(
    dir: &Path,
    log: &LogConfig,
    empty: M,
    options: &ReplayOptions,
    progress: &mut dyn FnMut(Position),
) -> Result<(Container<M>, ReplayReport), ReplayError> {
    let started = Instant::now();
    let to = options.to.unwrap_or(Position(u64::MAX));
    let mut rejected = Vec::new();
    let mut snapshot = None;
    let snapshots_dir = dir.join("snapshots");
    if !options.no_snapshot && snapshots_dir.is_dir() {
        let store = SnapshotStore::open(&snapshots_dir, log.cluster_id)?;
        for (position, path) in store.list()?.into_iter().rev().filter(|(p, _)| *p <= to) {
            match store.read(&path) {
                Ok(found) => {
                    snapshot = Some(found);
                    break;
                }
                Err(error @ SnapshotError::Io { .. }) => return Err(error.into()),
                Err(error) => rejected.push(format!("{error} (at {position})")),
            }
        }
    }
    let mut container = match &snapshot {
        Some(snapshot) => Container::restore(snapshot.body())
            .map_err(|reason| ReplayError::Restore { position: snapshot.info.position(), reason })?,
        None => Container::new(empty),
    };
    let from = container.applied_position();
    let log_dir = dir.join("log");
    let reader = LogReader::open(&log_dir, log)?;
    if reader.position_start() > from {
        let why = if snapshot.is_some() { "the newest usable snapshot's position" } else { "no snapshot" };
        return Err(ReplayError::Gap { dir: log_dir, start: reader.position_start(), from, why });
    }
    let mut entries = 0u64;
    for entry in reader.entries(from) {
        let entry = entry?;
        if entry.position() >= to {
            break;
        }
        container.apply(&entry, reader.entry_start(entry.next_position()), &mut |_| {});
        container.take_snapshot_due();
        entries += 1;
        if entries.is_multiple_of(1 << 16) {
            progress(container.applied_position());
        }
    }
    progress(container.applied_position());
    let seconds = started.elapsed().as_secs_f64();
    let report = ReplayReport {
        position: container.applied_position(),
        entries,
        seconds,
        entries_per_sec: entries as f64 / seconds.max(1e-9),
        state_hash: container.state_hash(),
        snapshot: snapshot.map(|s| s.info),
        rejected,
    };
    Ok((container, report))
}
