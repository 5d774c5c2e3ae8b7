//! The event log: the events the service emits, in a log of their own (the same segment
//! format as the command log), identical on every member: events come only from applying
//! committed entries, so every member appends the same events with the same metadata in
//! the same order, and the chained checksums agree. Each event entry carries the session and
//! cluster time of the entry that emitted it, and that entry's log position as its
//! correlation id, so a reader can tie an event to its command and a member can tell which
//! events a restart must emit again.
//!
//! Durability: events are derived state (replaying the log makes them again), so appends
//! are not fsynced one by one; the event log is synced before each snapshot, and a snapshot
//! records where the event log stood (its [`LogBase`]). On restart ([`recover`]) events from
//! entries at or after the restored position are cut, and applying the log after it emits
//! them again; a member that installed a snapshot from the leader starts its event log at
//! the snapshot's event position, as the leader's stood.

use crate::replica::effects::StorageError;
use ordo_core::LogBase;
use ordo_core::{ClusterTimeNs, EntryKind, EntryMeta, Position, SessionId, Term};

/// What a member does with its event log; implemented by the mapped log and the simulator's
/// in-memory one.
pub trait EventStore {
    fn events_start(&self) -> Position;
    fn events_end(&self) -> Position;
    /// For the entry at `position`: the log position of the command that emitted it (`None`
    /// for padding), and where the next entry starts.
    fn event_at(&self, position: Position) -> Option<(Option<Position>, Position)>;
    fn append_event(&mut self, meta: &EntryMeta, event: &[u8]) -> Result<Position, StorageError>;
    fn truncate_events(&mut self, position: Position) -> Result<(), StorageError>;
    fn reset_events(&mut self, base: &LogBase) -> Result<(), StorageError>;
    fn sync_events(&mut self) -> Result<Position, StorageError>;
    /// Where an event log reset to stand as this one does now would start.
    fn events_base(&self) -> LogBase;
}

/// The event-log entry for an event emitted by the command at `source`.
pub fn event_meta(source: Position, session: SessionId, time: ClusterTimeNs) -> EntryMeta {
    EntryMeta { kind: EntryKind::Event, flags: 0, term: Term::ZERO, timestamp: time, session, correlation_id: source.0 }
}

/// Brings the event log in line with a container restored at `applied` (from a snapshot
/// whose event log stood at `snapshot_events`, or from nothing): events of entries at or
/// after `applied` are cut (they will be emitted again); an event log that ends before the
/// snapshot's (lost, wiped, or never had it) restarts where the snapshot's stood.
pub fn recover(
    store: &mut dyn EventStore,
    applied: Position,
    snapshot_events: Option<&LogBase>,
) -> Result<(), StorageError> {
    if let Some(base) = snapshot_events
        && (store.events_end() < base.position || store.events_start() > base.position)
    {
        store.reset_events(base)?;
    }
    let mut position = snapshot_events.map_or(store.events_start(), |b| b.position.max(store.events_start()));
    while position < store.events_end() {
        let Some((source, next)) = store.event_at(position) else { break };
        if source.is_some_and(|source| source >= applied) {
            break;
        }
        position = next;
    }
    if position < store.events_end() {
        store.truncate_events(position)?;
    }
    Ok(())
}

pub(crate) fn base_of(
    position: Position,
    term: Term,
    entry_position: Position,
    checksum: u32,
    time: ClusterTimeNs,
) -> LogBase {
    LogBase { position, term, entry_position, checksum, time_max: time }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::replica::mem_log::MemLog;

    fn emit(store: &mut dyn EventStore, source: u64) {
        let meta = event_meta(Position(source), SessionId(1), ClusterTimeNs(source));
        store.append_event(&meta, &source.to_le_bytes()).unwrap();
    }

    #[test]
    fn recovery_cuts_the_events_of_entries_that_will_be_applied_again() {
        let mut store = MemLog::new();
        for source in [0, 100, 100, 200, 300] {
            emit(&mut store, source);
        }
        let before_200 = store.event_at(Position::ZERO).unwrap().1;
        let before_200 = store.event_at(before_200).unwrap().1;
        let before_200 = store.event_at(before_200).unwrap().1;
        recover(&mut store, Position(200), None).unwrap();
        assert_eq!(store.events_end(), before_200, "the events of 200 and 300 are cut");
        recover(&mut store, Position::ZERO, None).unwrap();
        assert_eq!(store.events_end(), Position::ZERO);
    }

    #[test]
    fn an_event_log_behind_the_snapshot_restarts_where_the_snapshots_stood() {
        let mut leader = MemLog::new();
        for source in [0, 100, 200] {
            emit(&mut leader, source);
        }
        let base = leader.events_base();
        emit(&mut leader, 300);
        let mut wiped = MemLog::new();
        recover(&mut wiped, Position(250), Some(&base)).unwrap();
        assert_eq!((wiped.events_start(), wiped.events_end()), (base.position, base.position));
        emit(&mut wiped, 300);
        let tail = leader.bytes_between(base.position, leader.end());
        assert_eq!(wiped.bytes(), (base.position, tail), "the same event at the same position, the same bytes");
    }
}
