//! The real driver of consensus: one member's duty cycle over a real UDP [`Endpoint`] and
//! the mapped log, carrying out effects with the same [`effects::carry_out`] code the
//! simulator uses. One `do_work` call is one duty cycle (Aeron's agent): receive a batch,
//! hand each frame to consensus, make one sync cover the whole batch (group commit), tick,
//! stream Append frames, send everything queued in one batch.
//!
//! It serves clients too: a client's frame is sequenced if this member leads, else answered
//! with a redirect; committed entries are applied to the service container, and the leader
//! answers each client at the address its latest frame came from. Still to come (issue #6):
//! the apply loop on its own thread, snapshots, the event log, the `ordo node` process.

use crate::consensus::{Append, Consensus, ConsensusConfig, Effect, NotLeader, Role};
use crate::container::{Container, Output};
use crate::effects::{self, CarryError, DiskStorage, Outbox, StorageError};
use crate::serving;
use ordo_core::machine::StateMachine;
use ordo_core::{EntryKind, MemberId, Position, SessionId, Term};
use ordo_transport::{Body, Chunk, Endpoint, FrameType};
use std::collections::{BTreeMap, BTreeSet};
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

/// Sessions idle this long are closed by the leader, unless set otherwise.
pub const SESSION_TIMEOUT_NS_DEFAULT: u64 = 10_000_000_000;

pub struct Member<M: StateMachine> {
    consensus: Consensus,
    container: Container<M>,
    /// Where each session's client was last heard from; openings by nonce until applied.
    routes: BTreeMap<SessionId, SocketAddr>,
    openings: BTreeMap<u64, SocketAddr>,
    /// Redirects to send once the received batch is handled.
    redirects: Vec<(SocketAddr, Body<'static>)>,
    duties_proposed: BTreeSet<(EntryKind, u64)>,
    duties: Vec<(EntryKind, SessionId, u64)>,
    session_timeout_ns: u64,
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

impl<M: StateMachine> Member<M> {
    /// A member starting (or restarting) from its storage, with its stored vote. Without
    /// snapshots yet, `machine` starts empty and the committed log is applied from its start.
    pub fn new(
        machine: M,
        config: ConsensusConfig,
        storage: DiskStorage,
        endpoint: Endpoint,
        peers: Vec<(MemberId, SocketAddr)>,
        now_ns: u64,
    ) -> Self {
        let vote = storage.vote();
        Member {
            consensus: Consensus::new(config, vote.term, vote.voted_for, now_ns),
            container: Container::new(machine),
            routes: BTreeMap::new(),
            openings: BTreeMap::new(),
            redirects: Vec::new(),
            duties_proposed: BTreeSet::new(),
            duties: Vec::new(),
            session_timeout_ns: SESSION_TIMEOUT_NS_DEFAULT,
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
        machine: M,
        dir: &std::path::Path,
        log: ordo_core::LogConfig,
        config: ConsensusConfig,
        endpoint: Endpoint,
        peers: Vec<(MemberId, SocketAddr)>,
        now_ns: u64,
    ) -> Result<(Member<M>, ordo_log::Recovery), MemberError> {
        let cluster_id = log.cluster_id;
        let (log, recovery) = ordo_log::Log::open(dir, log).map_err(StorageError::from)?;
        let storage = DiskStorage::new(log, ordo_log::VoteStore::new(dir, cluster_id))?;
        Ok((Member::new(machine, config, storage, endpoint, peers, now_ns), recovery))
    }

    /// Sessions idle this long are closed by the leader.
    pub fn with_session_timeout_ns(mut self, timeout_ns: u64) -> Self {
        self.session_timeout_ns = timeout_ns;
        self
    }

    /// The state machine, as applied up to `applied_position`.
    pub fn machine(&self) -> &M {
        self.container.machine()
    }

    pub fn applied_position(&self) -> Position {
        self.container.applied_position()
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
        let Member {
            consensus,
            storage,
            endpoint,
            pending,
            effects: buffer,
            sync_pending,
            routes,
            openings,
            redirects,
            ..
        } = self;
        let mut sync = std::mem::take(sync_pending);
        let mut failure = None;
        let mut work = endpoint.poll(&mut |source, frame| {
            if failure.is_some() {
                return;
            }
            let (sender, term) = (frame.header.sender(), frame.header.term());
            let mut out = effects::recycle(std::mem::take(buffer));
            match frame.body {
                Body::Append { commit_position, .. } => {
                    let chunk = Chunk::from_body(&frame.body).expect("an Append");
                    consensus.on_append(
                        now_ns,
                        sender,
                        term,
                        Append { chunk, commit_position },
                        &storage.log,
                        &mut out,
                    );
                }
                Body::SessionOpen { client_nonce } => {
                    openings.insert(client_nonce, source);
                    if let Some(redirect) = serving::take_client_frame(consensus, now_ns, &frame.body, &mut out) {
                        redirects.push((source, redirect));
                    }
                }
                Body::ClientRequest { session, .. } => {
                    routes.insert(session, source);
                    if let Some(redirect) = serving::take_client_frame(consensus, now_ns, &frame.body, &mut out) {
                        redirects.push((source, redirect));
                    }
                }
                body => consensus.on_message(now_ns, sender, term, body, &storage.log, &mut out),
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
        if consensus.role() == Role::Leader {
            let (proposed, duties) = (&mut self.duties_proposed, &mut self.duties);
            serving::propose_duties(
                consensus,
                &self.container,
                proposed,
                now_ns,
                self.session_timeout_ns,
                duties,
                &mut out,
            );
        }
        effects::carry_out(consensus, storage, pending, &mut out, &mut no_check).map_err(storage_error)?;
        *buffer = effects::recycle(out);
        work += self.apply()?;
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

    /// Applies what is committed; the leader queues each client's response.
    fn apply(&mut self) -> Result<usize, MemberError> {
        let Member { consensus, storage, container, endpoint, routes, openings, .. } = self;
        let (leads, term) = (consensus.role() == Role::Leader, consensus.term());
        let mut failed = None;
        let mut applied = 0;
        let result = serving::apply_committed(container, &storage.log, consensus.commit_position(), &mut |output| {
            applied += 1;
            if let Output::SessionOpened { session, client_nonce, .. } = output
                && let Some(address) = openings.remove(&client_nonce)
            {
                routes.insert(session, address);
            }
            if let Output::SessionClosed { session, .. } = output {
                routes.remove(&session);
            }
            let mut nonce = [0u8; 8];
            let Some(body) = serving::response(&output, &mut nonce).filter(|_| leads) else { return };
            let Body::ClientResponse { session, .. } = body else { return };
            if let Some(&address) = routes.get(&session)
                && let Err(error) = endpoint.queue(address, term, &body)
            {
                failed = Some(error);
            }
        });
        if let Err(position) = result {
            let error = ordo_core::Error::EntryMalformed { position, reason: "a committed entry cannot be read" };
            return Err(StorageError::Entry(error).into());
        }
        if let Some(error) = failed {
            return Err(error.into());
        }
        Ok(applied)
    }

    /// Queues Append frames and pending messages, and sends them in one batch.
    fn send(&mut self) -> Result<usize, MemberError> {
        let mut queued = 0;
        let mut failed = None;
        let capacity = self.endpoint.codec().capacity_bytes(FrameType::Append);
        for (address, redirect) in self.redirects.drain(..) {
            self.endpoint.queue(address, self.consensus.term(), &redirect)?;
            queued += 1;
        }
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
