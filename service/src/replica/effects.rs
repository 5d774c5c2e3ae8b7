//! Carrying out consensus' effects: one function for the real member and the simulator, so
//! both run the same code between `Consensus` and the outside world. Only the storage (the
//! mapped log and vote file, or the in-memory log) and the outbox (an `Endpoint`, or
//! `SimNet`) differ.

use crate::replica::consensus::{AppendBytes, Consensus, Effect, LogView};
use crate::replica::events::EventStore;
use crate::replica::service::{CommittedLog, SnapshotSink};
use crate::replica::snapshot::{Snapshot, SnapshotError};
use ordo_core::{EntryMeta, LogSource, MemberId, Position, Term};
use ordo_core::{LogBase, Vote};
use ordo_log::LogError;
use ordo_transport::Body;

/// Why storage refused an effect. Either is fatal for the member: its log or vote file can no
/// longer be trusted to say what it acknowledged.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error(transparent)]
    Log(#[from] LogError),
    #[error(transparent)]
    Entry(#[from] ordo_core::Error),
    #[error(transparent)]
    Snapshot(#[from] SnapshotError),
}

/// A member's storage: what consensus writes (the log, the vote, snapshots installed from
/// the leader) and, as types, what the service writes (the event log, its snapshots).
pub trait Storage {
    /// The event log the service appends to.
    type Events: EventStore + Send + 'static;
    /// Where the service writes the snapshots it takes.
    type Snapshots: SnapshotSink + Send + 'static;
    /// How a service on a thread of its own reads the committed log.
    type OwnLog: CommittedLog + Send + 'static;
    /// The log, as consensus reads it.
    fn view(&self) -> &dyn LogView;
    fn append(&mut self, meta: &EntryMeta, payload: &[u8]) -> Result<Position, StorageError>;
    fn append_raw(&mut self, position: Position, bytes: &[u8]) -> Result<Position, StorageError>;
    fn truncate_to(&mut self, position: Position) -> Result<(), StorageError>;
    /// Empties the log, to continue from `base` (a snapshot's).
    fn reset_to(&mut self, base: &LogBase) -> Result<(), StorageError>;
    /// Makes every append durable; returns the durable position.
    fn sync(&mut self) -> Result<Position, StorageError>;
    /// Stores the vote durably before returning.
    fn store_vote(&mut self, term: Term, voted_for: Option<MemberId>) -> Result<(), StorageError>;
    /// The service wrote `snapshot` (durably, through its [`Storage::Snapshots`]): it is the
    /// newest, and the log below the oldest kept goes.
    fn snapshot_taken(&mut self, snapshot: Snapshot, oldest_kept: Option<Position>) -> Result<(), StorageError>;
    /// The snapshot installed from the leader since the last call, for the service.
    fn take_installed(&mut self) -> Option<Snapshot>;
    /// The vote stored when the member started.
    fn vote(&self) -> Vote;
    /// Whether this member lost its state and has not caught up yet: it does not vote.
    fn recovering(&self) -> bool;
    /// The event log as event subscribers are fed from it, readable below `published`
    /// (`None`: not readable yet).
    fn events_for_feed(&mut self, published: Position) -> Option<&dyn LogSource>;
    /// The event log was reset (a snapshot installed): the feed reads it afresh.
    fn events_reset(&mut self);
    /// How an inline service reads the committed log: a mapping of its own (`Some`), or the
    /// log in place (`None`: the simulator's memory). A mapping of its own measured 3.5% more
    /// commits a second than reading the writer's `Log` in place (the in-process cluster).
    fn inline_log(&mut self) -> Result<Option<&mut dyn CommittedLog>, StorageError>;
    /// Checks a whole snapshot received from the leader, stores it durably, and makes the
    /// log continue after it. `Ok(Err)`: refused (corrupt, another cluster's), with why.
    fn install_snapshot(&mut self, bytes: &[u8]) -> Result<Result<(), SnapshotError>, StorageError>;
    /// The newest snapshot (sent to followers that need it; restored on start).
    fn newest_snapshot(&self) -> Option<&Snapshot>;
    /// Records durably that this member, which had lost its state, caught up (with its
    /// vote): it votes again.
    fn store_recovered(&mut self, term: Term, voted_for: Option<MemberId>) -> Result<(), StorageError>;
}

/// What a member starting on `storage` does with its newest snapshot before anything else
/// (`disk::open_folder`, for real members and the simulator's): a snapshot past the log's
/// end (installed from the leader, or taken from applied entries the crash then cut from the
/// log) resets the log to continue after it; one inside the log must end with the entry the
/// log holds there. One below the log's start was refused before (`NoneReachesLog`).
/// `Ok(Ok(reset))`: whether the log was reset; `Ok(Err(position))`: the log and the
/// snapshot disagree at `position`.
pub fn reconcile_with_snapshot<S: Storage + ?Sized>(storage: &mut S) -> Result<Result<bool, Position>, StorageError> {
    let Some(base) = storage.newest_snapshot().map(|s| s.info.base) else { return Ok(Ok(false)) };
    let log = storage.view();
    debug_assert!(base.position >= log.log_start(), "a snapshot below the log's start is refused first");
    if base.position > log.log_end() {
        storage.reset_to(&base)?;
        return Ok(Ok(true));
    }
    if log.checksum_before(base.position) != Some(base.checksum) {
        return Ok(Err(base.position));
    }
    Ok(Ok(false))
}

/// The newest snapshot's position and bytes, as `Consensus::poll_snapshots` takes them.
pub fn snapshot_to_send<S: Storage + ?Sized>(storage: &S) -> Option<(Position, &[u8])> {
    storage.newest_snapshot().map(|s| (s.info.position(), s.bytes()))
}

/// Where consensus' small messages go (Append frames go through `poll_appends`).
pub trait Outbox {
    fn send(&mut self, to: MemberId, term: Term, message: Body<'static>);
}

/// A check run before each effect is carried out (the simulator's checkers); `Err` stops.
pub type Check<'c, E> = dyn FnMut(&Effect<'_>, &dyn LogView) -> Result<(), E> + 'c;

/// Failure while carrying out effects: storage refused, or a check stopped it.
#[derive(Debug)]
pub enum CarryError<E> {
    Storage(StorageError),
    Check(E),
}

/// Carries out (and empties) `effects` in order; a `Sync` anywhere in them is done once, after the rest
/// (group commit), and its outcome reported to consensus with `on_durable`, whose effects are
/// carried out in turn.
pub fn carry_out<S: Storage + ?Sized, E>(
    consensus: &mut Consensus,
    storage: &mut S,
    outbox: &mut dyn Outbox,
    effects: &mut Vec<Effect<'_>>,
    check: &mut Check<'_, E>,
) -> Result<(), CarryError<E>> {
    if carry_out_deferring_sync(consensus, storage, outbox, effects, check)? {
        // `effects` is empty now: it holds what the sync causes, without allocating.
        sync_and_report(consensus, storage, outbox, effects, check)?;
    }
    Ok(())
}

/// Carries out `effects` in order except `Sync`: returns whether one was asked for, so a
/// driver can make one sync cover a whole batch of messages (group commit) with
/// [`sync_and_report`].
pub fn carry_out_deferring_sync<S: Storage + ?Sized, E>(
    consensus: &mut Consensus,
    storage: &mut S,
    outbox: &mut dyn Outbox,
    effects: &mut Vec<Effect<'_>>,
    check: &mut Check<'_, E>,
) -> Result<bool, CarryError<E>> {
    let mut sync = false;
    for effect in effects.drain(..) {
        check(&effect, storage.view()).map_err(CarryError::Check)?;
        let done = match effect {
            Effect::StoreVote { term, voted_for } => storage.store_vote(term, voted_for),
            Effect::Append { meta, payload } => storage.append(&meta, payload).map(drop),
            Effect::AppendRaw { position, bytes } => {
                let bytes = match bytes {
                    AppendBytes::Frame(bytes) => bytes,
                    AppendBytes::Reassembled => consensus.reassembled(),
                };
                storage.append_raw(position, bytes).map(drop)
            }
            Effect::Truncate { position } => storage.truncate_to(position),
            Effect::Sync => {
                sync = true;
                Ok(())
            }
            Effect::Send { to, term, message } => {
                outbox.send(to, term, message);
                Ok(())
            }
            Effect::InstallSnapshot { .. } => {
                let installed = storage.install_snapshot(consensus.snapshot_received()).map_err(CarryError::Storage)?;
                if let Err(error) = &installed {
                    tracing::warn!("refused a snapshot from the leader: {error}");
                }
                let mut more = Vec::new();
                consensus.on_snapshot_installed(installed.is_ok(), storage.view(), &mut more);
                sync |= carry_out_deferring_sync(consensus, storage, outbox, &mut more, check)?;
                Ok(())
            }
            Effect::Recovered { term, voted_for } => storage.store_recovered(term, voted_for),
            Effect::Commit { .. } | Effect::RoleChanged { .. } => Ok(()),
        };
        done.map_err(CarryError::Storage)?;
    }
    Ok(sync)
}

/// Syncs the log, tells consensus, and carries out what that causes (acks, commits), in
/// `buffer` (empty; lent so the hot path does not allocate).
pub fn sync_and_report<S: Storage + ?Sized, E>(
    consensus: &mut Consensus,
    storage: &mut S,
    outbox: &mut dyn Outbox,
    buffer: &mut Vec<Effect<'_>>,
    check: &mut Check<'_, E>,
) -> Result<(), CarryError<E>> {
    debug_assert!(buffer.is_empty());
    storage.sync().map_err(CarryError::Storage)?;
    consensus.on_durable(storage.view(), buffer);
    carry_out(consensus, storage, outbox, buffer, check)
}

/// An empty vector of effects of any lifetime that reuses `effects`' allocation, so a driver
/// keeps one buffer across frames whose borrows differ (the elements are dropped first; the
/// standard library collects a `Vec` into itself in place when the layouts match).
pub fn recycle<'b>(mut effects: Vec<Effect<'_>>) -> Vec<Effect<'b>> {
    effects.clear();
    effects.into_iter().map(|_| unreachable!("the vector was cleared")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recycling_keeps_the_allocation() {
        let mut effects: Vec<Effect<'static>> = Vec::with_capacity(16);
        effects.push(Effect::Sync);
        let (pointer, capacity) = (effects.as_ptr() as usize, effects.capacity());
        let bytes = vec![1u8; 4];
        let mut borrowed: Vec<Effect<'_>> = recycle(effects);
        borrowed.push(Effect::AppendRaw { position: Position::ZERO, bytes: AppendBytes::Frame(&bytes) });
        assert_eq!((borrowed.as_ptr() as usize, borrowed.capacity()), (pointer, capacity));
        let back: Vec<Effect<'static>> = recycle(borrowed);
        assert!(back.is_empty());
        assert_eq!((back.as_ptr() as usize, back.capacity()), (pointer, capacity));
    }
}
