//! Carrying out consensus' effects: one function for the real member and the simulator, so
//! both run the same code between `Consensus` and the outside world. Only the storage (the
//! mapped log and vote file, or the in-memory log) and the outbox (an `Endpoint`, or
//! `SimNet`) differ.

use crate::consensus::{AppendBytes, Consensus, Effect, LogView};
use ordo_core::{EntryMeta, MemberId, Position, Term};
use ordo_log::{Log, LogError, Vote, VoteStore};
use ordo_transport::Body;

/// Why storage refused an effect. Either is fatal for the member: its log or vote file can no
/// longer be trusted to say what it acknowledged.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error(transparent)]
    Log(#[from] LogError),
    #[error(transparent)]
    Entry(#[from] ordo_core::Error),
}

/// What consensus writes: the log and the vote.
pub trait Storage {
    /// The log, as consensus reads it.
    fn view(&self) -> &dyn LogView;
    fn append(&mut self, meta: &EntryMeta, payload: &[u8]) -> Result<Position, StorageError>;
    fn append_raw(&mut self, position: Position, bytes: &[u8]) -> Result<Position, StorageError>;
    fn truncate_to(&mut self, position: Position) -> Result<(), StorageError>;
    /// Makes every append durable; returns the durable position.
    fn sync(&mut self) -> Result<Position, StorageError>;
    /// Stores the vote durably before returning.
    fn store_vote(&mut self, term: Term, voted_for: Option<MemberId>) -> Result<(), StorageError>;
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
        sync_and_report(consensus, storage, outbox, check)?;
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
            Effect::Commit { .. } | Effect::RoleChanged { .. } => Ok(()),
        };
        done.map_err(CarryError::Storage)?;
    }
    Ok(sync)
}

/// Syncs the log, tells consensus, and carries out what that causes (acks, commits).
pub fn sync_and_report<S: Storage + ?Sized, E>(
    consensus: &mut Consensus,
    storage: &mut S,
    outbox: &mut dyn Outbox,
    check: &mut Check<'_, E>,
) -> Result<(), CarryError<E>> {
    storage.sync().map_err(CarryError::Storage)?;
    let mut out = Vec::new();
    consensus.on_durable(storage.view(), &mut out);
    carry_out(consensus, storage, outbox, &mut out, check)
}

/// An empty vector of effects of any lifetime that reuses `effects`' allocation, so a driver
/// keeps one buffer across frames whose borrows differ (the elements are dropped first; the
/// standard library collects a `Vec` into itself in place when the layouts match).
pub fn recycle<'b>(mut effects: Vec<Effect<'_>>) -> Vec<Effect<'b>> {
    effects.clear();
    effects.into_iter().map(|_| unreachable!("the vector was cleared")).collect()
}

/// A member's storage on disk: the mapped log and the vote file beside it.
pub struct DiskStorage {
    pub log: Log,
    votes: VoteStore,
    vote: Vote,
}

impl DiskStorage {
    pub fn new(log: Log, votes: VoteStore) -> Result<Self, StorageError> {
        let vote = votes.load()?;
        Ok(DiskStorage { log, votes, vote })
    }

    pub fn vote(&self) -> Vote {
        self.vote
    }
}

impl Storage for DiskStorage {
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
