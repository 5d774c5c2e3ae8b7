//! The real driver of consensus: one member's duty cycle over a real UDP [`Endpoint`] and
//! the mapped log, carrying out effects with the same [`effects::carry_out`] code the
//! simulator uses. One `do_work` call is one duty cycle (Aeron's agent): receive a batch,
//! hand each frame to consensus, make one sync cover the whole batch (group commit), tick,
//! stream Append frames, send everything queued in one batch.
//!
//! Today it is the consensus agent alone, on the caller's thread; the service container,
//! client sessions, the runner threads and the `ordo node` process come with issue #6.

use crate::consensus::{Append, Consensus, ConsensusConfig, Effect, NotLeader, Role};
use crate::effects::{self, CarryError, DiskStorage, Outbox, StorageError};
use ordo_core::{MemberId, Position, SessionId, Term};
use ordo_transport::{Body, Chunk, Endpoint, FrameType};
use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;

#[derive(Debug, thiserror::Error)]
pub enum MemberError {
    #[error("the member's storage failed: {0}; stop it and let it recover from its log and its peers")]
    Storage(#[from] StorageError),
    #[error("the member's network endpoint failed: {0}")]
    Io(#[from] io::Error),
}

/// Small messages queued while a received batch is handled, sent after it.
#[derive(Default)]
struct Pending(Vec<(MemberId, Term, Body<'static>)>);

impl Outbox for Pending {
    fn send(&mut self, to: MemberId, term: Term, message: Body<'static>) {
        self.0.push((to, term, message));
    }
}

pub struct Member {
    consensus: Consensus,
    storage: DiskStorage,
    endpoint: Endpoint,
    /// Every other member's address.
    peers: Vec<(MemberId, SocketAddr)>,
    pending: Pending,
    frames_max: usize,
    /// One effects buffer for every call, so the duty cycle does not allocate per frame.
    effects: Vec<Effect<'static>>,
    /// Proposals appended since the last sync: the next duty cycle syncs once for all of
    /// them (group commit on the leader).
    sync_pending: bool,
}

fn no_check(_: &Effect<'_>, _: &dyn crate::consensus::LogView) -> Result<(), Infallible> {
    Ok(())
}

fn storage_error(error: CarryError<Infallible>) -> MemberError {
    match error {
        CarryError::Storage(error) => MemberError::Storage(error),
        CarryError::Check(never) => match never {},
    }
}

impl Member {
    /// A member starting (or restarting) from its storage, with its stored vote.
    pub fn new(
        config: ConsensusConfig,
        storage: DiskStorage,
        endpoint: Endpoint,
        peers: Vec<(MemberId, SocketAddr)>,
        now_ns: u64,
    ) -> Self {
        let vote = storage.vote();
        Member {
            consensus: Consensus::new(config, vote.term, vote.voted_for, now_ns),
            storage,
            endpoint,
            peers,
            pending: Pending::default(),
            frames_max: 32,
            effects: Vec::with_capacity(16),
            sync_pending: false,
        }
    }

    /// Opens (recovering after a crash) the log and vote file in `dir`, cluster id from
    /// `log`, and starts a member on them; the recovery report says what was found.
    pub fn open(
        dir: &std::path::Path,
        log: ordo_core::LogConfig,
        config: ConsensusConfig,
        endpoint: Endpoint,
        peers: Vec<(MemberId, SocketAddr)>,
        now_ns: u64,
    ) -> Result<(Member, ordo_log::Recovery), MemberError> {
        let cluster_id = log.cluster_id;
        let (log, recovery) = ordo_log::Log::open(dir, log).map_err(StorageError::from)?;
        let storage = DiskStorage::new(log, ordo_log::VoteStore::new(dir, cluster_id))?;
        Ok((Member::new(config, storage, endpoint, peers, now_ns), recovery))
    }

    pub fn role(&self) -> Role {
        self.consensus.role()
    }
    pub fn term(&self) -> Term {
        self.consensus.term()
    }
    pub fn leader(&self) -> Option<MemberId> {
        self.consensus.leader()
    }
    pub fn commit_position(&self) -> Position {
        self.consensus.commit_position()
    }
    pub fn storage(&self) -> &DiskStorage {
        &self.storage
    }
    pub fn local_addr(&self) -> SocketAddr {
        self.endpoint.local_addr()
    }

    fn address_of(&self, member: MemberId) -> Option<SocketAddr> {
        self.peers.iter().find(|(id, _)| *id == member).map(|&(_, address)| address)
    }

    /// One duty cycle; returns the work done (0: idle).
    pub fn do_work(&mut self, now_ns: u64) -> Result<usize, MemberError> {
        let Member { consensus, storage, endpoint, pending, effects: buffer, sync_pending, .. } = self;
        let mut sync = std::mem::take(sync_pending);
        let mut failure = None;
        let mut work = endpoint.poll(&mut |_, frame| {
            if failure.is_some() {
                return;
            }
            let (sender, term) = (frame.header.sender(), frame.header.term());
            let mut out = effects::recycle(std::mem::take(buffer));
            if let Body::Append { commit_position, .. } = frame.body {
                let chunk = Chunk::from_body(&frame.body).expect("an Append");
                consensus.on_append(now_ns, sender, term, Append { chunk, commit_position }, &storage.log, &mut out);
            } else {
                consensus.on_message(now_ns, sender, term, frame.body, &storage.log, &mut out);
            }
            match effects::carry_out_deferring_sync(consensus, storage, pending, &mut out, &mut no_check) {
                Ok(asked) => sync |= asked,
                Err(error) => failure = Some(storage_error(error)),
            }
            *buffer = effects::recycle(out);
        })?;
        if let Some(failure) = failure {
            return Err(failure);
        }
        if sync {
            effects::sync_and_report(consensus, storage, pending, &mut no_check).map_err(storage_error)?;
        }
        let mut out = effects::recycle(std::mem::take(buffer));
        consensus.on_tick(now_ns, &storage.log, &mut out);
        effects::carry_out(consensus, storage, pending, &mut out, &mut no_check).map_err(storage_error)?;
        *buffer = effects::recycle(out);
        work += self.send()?;
        Ok(work)
    }

    /// Proposes a client command; it is appended if this member leads, made durable by the
    /// next duty cycle's one sync (with every other proposal since), then streamed.
    pub fn propose(
        &mut self,
        now_ns: u64,
        session: SessionId,
        correlation_id: u64,
        payload: &[u8],
    ) -> Result<Result<(), NotLeader>, MemberError> {
        let mut out = effects::recycle(std::mem::take(&mut self.effects));
        if let Err(not_leader) = self.consensus.propose(now_ns, session, correlation_id, payload, &mut out) {
            self.effects = effects::recycle(out);
            return Ok(Err(not_leader));
        }
        let Member { consensus, storage, pending, sync_pending, .. } = self;
        *sync_pending |= effects::carry_out_deferring_sync(consensus, storage, pending, &mut out, &mut no_check)
            .map_err(storage_error)?;
        self.effects = effects::recycle(out);
        Ok(Ok(()))
    }

    /// Queues Append frames and pending messages, and sends them in one batch.
    fn send(&mut self) -> Result<usize, MemberError> {
        let mut queued = 0;
        let mut failed = None;
        let capacity = self.endpoint.codec().capacity_bytes(FrameType::Append);
        let Member { consensus, storage, endpoint, peers, frames_max, .. } = self;
        consensus.poll_appends(&storage.log, capacity, *frames_max, &mut |to, term, append| {
            let Some(&(_, address)) = peers.iter().find(|(id, _)| *id == to) else { return };
            if let Err(error) = endpoint.queue(address, term, &append.chunk.to_body(append.commit_position)) {
                failed = Some(error);
            }
            queued += 1;
        });
        if let Some(error) = failed {
            return Err(error.into());
        }
        // Taken out and put back so the queue's allocation is reused.
        let mut pending = std::mem::take(&mut self.pending.0);
        for (to, term, message) in pending.drain(..) {
            if let Some(address) = self.address_of(to) {
                self.endpoint.queue(address, term, &message)?;
                queued += 1;
            }
        }
        self.pending.0 = pending;
        self.endpoint.flush()?;
        Ok(queued)
    }
}
