//! The replica: one member's whole duty cycle, sans-I/O. The real member ([`crate::run::member`])
//! drives it over a UDP endpoint and its folder on disk; the simulator ([`crate::sim`])
//! drives the same code over its simulated network and in-memory storage. Only sockets,
//! files, threads and clocks differ.
//!
//! A duty cycle is: [`Replica::begin_cycle`] with the time, [`Replica::on_frame`] for each
//! frame received (each handed to consensus or to client serving; what consensus asks of
//! storage is carried out at once, except the sync), then [`Replica::end_cycle`]: one sync
//! for the whole batch (group commit), the tick, the leader's snapshot policy, the service
//! (apply what is committed, its snapshots, the leader's duties, what goes back to
//! clients), and everything queued sent in one batch.
//!
//! It serves clients too: a client's frame is sequenced if this member leads, else answered
//! with a redirect; the leader answers each client at the address its latest frame came
//! from, under the key that frame was sealed with.
//!
//! Snapshots: a snapshot-request entry makes every member write one at the same position
//! (then the log below the oldest kept goes) and tell the others its state hash, so a
//! replica that diverged is named ([`crate::replica::divergence`]). The leader sends its newest
//! snapshot to a follower that needs entries it deleted; a member restores it before it
//! applies anything committed after it.

pub mod consensus;
pub(crate) mod container;
pub(crate) mod divergence;
pub(crate) mod effects;
pub(crate) mod event_feed;
pub(crate) mod events;
#[cfg(test)]
pub(crate) mod mem_log;
pub(crate) mod network;
pub(crate) mod peer_watch;
pub(crate) mod records;
pub(crate) mod recovery;
pub(crate) mod service;
pub(crate) mod serving;
pub mod snapshot;

use crate::replica::consensus::{Append, Consensus, ConsensusConfig, Effect, LogView, NotLeader, Role};
use crate::replica::container::Container;
use crate::replica::divergence::{Divergence, StateHashes};
use crate::replica::event_feed::EventFeed;
use crate::replica::peer_watch::PeerWatch;
use crate::replica::service::FromService;
use crate::replica::service::{
    InPlace, OutputHook, ServiceAgent, ServiceError, ServiceParts, Shared, ThreadedService, ToService,
};
use crate::run::runtime::{Runner, RunnerConfig, Stopped};
use crossbeam_channel::{Receiver, Sender};
use effects::{CarryError, Outbox, Storage, StorageError};
use network::{Address, Network};
use ordo_core::machine::StateMachine;
use ordo_core::{EntryKind, LogSource, MemberId, Position, SessionId, Term};
use ordo_transport::{Body, Chunk, Frame, FrameType, ResponseStatus};
use records::{Record, RecordReader};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;

/// Why a replica stopped. Every one is fatal for the member: what a client or a peer sends
/// never is (it is refused, counted, or answered).
#[derive(Debug, thiserror::Error)]
pub enum ReplicaError {
    #[error("the member's storage failed: {0}")]
    Storage(#[from] StorageError),
    #[error("the member's network endpoint failed: {0}")]
    Io(#[from] std::io::Error),
    #[error("the member's service failed: {0}")]
    Service(#[from] ServiceError),
    #[error("the member's service thread stopped unexpectedly")]
    ServiceStopped,
    /// A simulator's checker refused an effect (it holds the reason).
    #[error("a checker refused an effect")]
    Refused,
}

/// A check run before each effect is carried out (the simulator's checkers; the real member
/// has none); `Err` stops the replica.
pub type EffectHook = Box<dyn FnMut(&Effect<'_>, &dyn LogView) -> Result<(), Refused> + Send>;

/// What an [`EffectHook`] returns to stop the replica.
#[derive(Debug)]
pub struct Refused;

/// The simulator's hooks into a replica: checkers, never behaviour.
#[derive(Default)]
pub struct Hooks {
    pub effects: Option<EffectHook>,
    pub outputs: Option<OutputHook>,
    /// Check that every snapshot restores to the same state (else only the first, in debug
    /// builds).
    pub check_every_snapshot: bool,
    /// A consensus rule to break on purpose (the simulator's tests of its checkers).
    pub deliberate_bug: Option<crate::deliberate::DeliberateBug>,
}

/// The simulator's hooks into the service agent.
struct ServiceHooks {
    outputs: Option<OutputHook>,
    check_every_snapshot: bool,
    deliberate_bug: Option<crate::deliberate::DeliberateBug>,
}

/// Where a client is answered: the address it was last heard from, and the key it sealed
/// its frame under (its answers are sealed under the same key).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClientRoute<A> {
    pub address: A,
    pub key_id: u32,
}

/// Everything a replica is made with, apart from its state machine and storage.
#[derive(Clone, Debug)]
pub struct ReplicaConfig<A> {
    pub consensus: ConsensusConfig,
    /// Every other member's address.
    pub peers: Vec<(MemberId, A)>,
    /// The state machine's name, written into snapshots.
    pub app: String,
    /// Sessions idle this long are closed by the leader.
    pub session_timeout_ns: u64,
    /// The leader asks every member to snapshot each time the log grows this much (`None`:
    /// only when asked).
    pub snapshot_interval_bytes: Option<u64>,
    /// The longest reply one response frame holds.
    pub reply_bytes_max: usize,
}

/// A service agent over storage `S`'s event log and snapshot sink.
type Agent<M, S> = ServiceAgent<M, <S as Storage>::Events, <S as Storage>::Snapshots>;

/// A service agent on a thread of its own, reading through storage `S`'s own mapping.
type Threaded<M, S> = ThreadedService<M, <S as Storage>::Events, <S as Storage>::Snapshots, <S as Storage>::OwnLog>;

/// Where the replica's service agent runs.
enum ServiceSlot<M: StateMachine, S: Storage> {
    /// Called from the duty cycle (`shared` threading; always in the simulator), reading the
    /// log in place.
    Inline(Box<Agent<M, S>>),
    /// On its own thread (`dedicated`), reading the log through its own mapping.
    Dedicated(Runner<Threaded<M, S>>),
    /// Only while moving between the two.
    Moving,
}

/// The consensus side's end of its links to the service agent.
struct Links {
    shared: Arc<Shared>,
    records: RecordReader,
    control: Sender<ToService>,
    notices: Receiver<FromService>,
}

/// The bytes of the ring from the service to consensus.
const RECORDS_RING_BYTES: usize = 4 << 20;

/// Snapshot requests from `ordo snapshot take` a leader holds until they are committed.
const SNAPSHOT_TAKES_MAX: usize = 16;

/// Frames of each kind (Append, snapshot chunk) sent to one follower per cycle at most.
const FRAMES_MAX: usize = 32;

/// One `ordo snapshot take` request in flight: who asked, its nonce, and where every member
/// will snapshot (right after its request entry).
struct SnapshotTake<A> {
    client: ClientRoute<A>,
    nonce: u64,
    position: Position,
}

/// Small messages queued while a received batch is handled, sent after it.
struct Pending(Vec<(MemberId, Term, Body<'static>)>);

impl Outbox for Pending {
    fn send(&mut self, to: MemberId, term: Term, message: Body<'static>) {
        self.0.push((to, term, message));
    }
}

pub struct Replica<M: StateMachine, S: Storage, A: Address> {
    consensus: Consensus,
    service: ServiceSlot<M, S>,
    links: Links,
    storage: S,
    /// Every other member's address.
    peers: Vec<(MemberId, A)>,
    /// Where each session's client was last heard from; openings by nonce until applied.
    routes: BTreeMap<SessionId, ClientRoute<A>>,
    openings: BTreeMap<u64, ClientRoute<A>>,
    /// Redirects and other answers to clients, sent once the received batch is handled.
    answers: Vec<(ClientRoute<A>, Body<'static>)>,
    /// `ordo snapshot take` requests sequenced by this leader, answered once committed.
    snapshot_takes: Vec<SnapshotTake<A>>,
    /// A `StatusRequest` to answer this cycle.
    status_asked: Option<(ClientRoute<A>, u64)>,
    pending: Pending,
    /// One effects buffer for every call, so the duty cycle does not allocate per frame.
    effects: Vec<Effect<'static>>,
    /// Proposals appended since the last sync: the cycle's end syncs once for all of them
    /// (group commit on the leader).
    sync_pending: bool,
    /// The leader asks for a snapshot every this many log bytes (`None`: only on request).
    snapshot_interval_bytes: Option<u64>,
    snapshot_requested_at: Position,
    state_hashes: StateHashes,
    /// Clients subscribed to the event log.
    event_feed: EventFeed<A>,
    /// Reports peers silent for long: a wrong or unreachable address says so.
    peer_watch: PeerWatch<A>,
    effect_hook: Option<EffectHook>,
    /// Frames refused for their key: a member's frame not under the cluster key or not from
    /// a member, a client's frame under the cluster key.
    frames_refused: u64,
    /// Frames to clients that could not be queued or sent.
    client_sends_failed: u64,
    /// Snapshots this member wrote since it started.
    snapshots_taken: u64,
    /// The simulator's tests only.
    deliberate_bug: Option<crate::deliberate::DeliberateBug>,
}

impl<M: StateMachine, S: Storage, A: Address> Replica<M, S, A> {
    /// A replica starting (or restarting) from `storage` and its event log, with its stored
    /// vote: the service from the storage's newest snapshot if it has one, else from
    /// `machine`, empty; the committed log after that is applied as the commit comes back.
    /// `threaded`: run the service on a thread of its own, reading through this mapping.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        machine: M,
        config: &ReplicaConfig<A>,
        storage: S,
        mut events: S::Events,
        snapshots: S::Snapshots,
        hooks: Hooks,
        threaded: Option<(S::OwnLog, RunnerConfig)>,
        now_ns: u64,
        wall_ns: u64,
    ) -> Result<Self, ReplicaError> {
        let vote = storage.vote();
        let (term, voted_for) = Consensus::starting_vote(vote.term, vote.voted_for, storage.view().last_term());
        let container = match storage.newest_snapshot() {
            Some(snapshot) => crate::replica::service::restore(snapshot)?,
            None => Container::new(machine),
        };
        let snapshot_events = storage.newest_snapshot().map(|s| s.info.events);
        events::recover(&mut events, container.applied_position(), snapshot_events.as_ref())?;
        let applied = container.applied_position();
        let Hooks { effects: effect_hook, outputs, check_every_snapshot, deliberate_bug } = hooks;
        let service_hooks = ServiceHooks { outputs, check_every_snapshot, deliberate_bug };
        let (service, links) = start_service(config, container, events, snapshots, service_hooks, threaded)?;
        let mut consensus = Consensus::new(config.consensus.clone(), term, voted_for, now_ns);
        consensus.set_clock(wall_ns);
        consensus.note_committed(applied); // its snapshot holds only what was committed
        consensus.break_deliberately(deliberate_bug);
        if storage.recovering() {
            tracing::warn!(
                "member {} is recovering (it lost its state, or was restored from a snapshot into a folder that was not a new cluster's), so it will not vote until it has caught up from a leader; if most members are recovering, stop them all and copy the data folder of one that is not over theirs (docs/operations.md)",
                config.consensus.member.0
            );
            consensus.start_recovering();
        }
        Ok(Replica {
            consensus,
            service,
            links,
            storage,
            peers: config.peers.clone(),
            routes: BTreeMap::new(),
            openings: BTreeMap::new(),
            answers: Vec::new(),
            snapshot_takes: Vec::new(),
            status_asked: None,
            pending: Pending(Vec::new()),
            effects: Vec::with_capacity(16),
            sync_pending: false,
            snapshot_interval_bytes: config.snapshot_interval_bytes.filter(|&bytes| bytes > 0),
            snapshot_requested_at: applied,
            state_hashes: StateHashes::new(config.consensus.members.len()),
            event_feed: EventFeed::default(),
            peer_watch: PeerWatch::new(&config.peers, now_ns, crate::replica::peer_watch::SILENCE_REPORTED_NS),
            effect_hook,
            frames_refused: 0,
            client_sends_failed: 0,
            snapshots_taken: 0,
            deliberate_bug,
        })
    }

    /// Starts a duty cycle: `wall_ns` is the cluster clock's reading (wall-clock time; the
    /// simulator's virtual one), from which the leader stamps entries.
    pub fn begin_cycle(&mut self, wall_ns: u64) {
        self.consensus.set_clock(wall_ns);
    }

    /// Takes one frame received from `source` at `now_ns` (monotonic): a member's to
    /// consensus, a client's to serving. A frame under the wrong key for its kind is
    /// refused and counted; nothing a frame holds stops the replica (only storage can).
    pub fn on_frame(&mut self, now_ns: u64, source: A, frame: Frame<'_>) -> Result<(), ReplicaError> {
        let (sender, term) = (frame.header.sender(), frame.header.term());
        // Members' frames only under the cluster key and from a member; clients' only under
        // a client key: a client can never vote, append or send a snapshot.
        let key_id = frame.header.key_id.get();
        let peers = &self.peers;
        let admitted =
            serving::admits(frame.body.frame_type(), key_id, sender, |m| peers.iter().any(|&(id, _)| id == m));
        if !admitted && self.deliberate_bug != Some(crate::deliberate::DeliberateBug::ClientFramesAdmitted) {
            self.frames_refused += 1;
            return Ok(());
        }
        let client = ClientRoute { address: source, key_id };
        if frame.body.frame_type().is_between_members()
            && let Some(line) = self.peer_watch.heard(sender, now_ns)
        {
            tracing::info!("{line}");
        }
        let mut out = effects::recycle(std::mem::take(&mut self.effects));
        let mut snapshot_taken = None;
        let consensus = &mut self.consensus;
        match frame.body {
            Body::Append { commit_position, .. } => {
                let chunk = Chunk::from_body(&frame.body).expect("an Append");
                let append = Append { chunk, commit_position };
                consensus.on_append(now_ns, sender, term, append, self.storage.view(), &mut out);
            }
            Body::SessionOpen { client_nonce } => {
                self.openings.insert(client_nonce, client);
                if let Some(redirect) = serving::take_client_frame(consensus, &frame.body, &mut out) {
                    self.answers.push((client, redirect));
                }
            }
            Body::ClientRequest { session, .. } => {
                self.routes.insert(session, client);
                if let Some(redirect) = serving::take_client_frame(consensus, &frame.body, &mut out) {
                    self.answers.push((client, redirect));
                }
            }
            Body::StateHash { position, state_hash } => self.state_hashes.record(sender, position, state_hash),
            Body::EventData { from_position, bytes: [] } => self.event_feed.on_request(client, from_position, now_ns),
            Body::StatusRequest { nonce } => self.status_asked = Some((client, nonce)),
            Body::SnapshotTake { nonce } if self.snapshot_takes.iter().any(|t| t.nonce == nonce) => {
                // A resend of a request in flight: the same one, answered once committed.
                self.snapshot_takes.iter_mut().filter(|t| t.nonce == nonce).for_each(|t| t.client = client);
            }
            Body::SnapshotTake { nonce } => {
                match consensus.propose_entry(EntryKind::SnapshotRequest, SessionId(0), 0, &[], &mut out) {
                    Ok(()) => snapshot_taken = Some((client, nonce)),
                    Err(not_leader) => self.answers.push((client, redirect(not_leader))),
                }
            }
            body => consensus.on_message(now_ns, sender, term, body, self.storage.view(), &mut out),
        }
        let result = self.carry_out_deferring_sync(&mut out);
        self.effects = effects::recycle(out);
        result?;
        if let Some((client, nonce)) = snapshot_taken {
            // Every member snapshots right after the request entry just appended.
            if self.snapshot_takes.len() == SNAPSHOT_TAKES_MAX {
                self.snapshot_takes.remove(0);
            }
            let position = self.storage.view().log_end();
            self.snapshot_takes.push(SnapshotTake { client, nonce, position });
        }
        Ok(())
    }

    /// Ends a duty cycle at `now_ns`: one sync for everything the batch appended, the tick,
    /// the snapshot policy, the service, and everything queued sent through `net`. Returns
    /// the work done (0: idle).
    pub fn end_cycle<N: Network<A>>(&mut self, now_ns: u64, net: &mut N) -> Result<usize, ReplicaError> {
        let me = self.consensus.member();
        self.peer_watch.check(me, now_ns, &mut |line| tracing::warn!("{line}"));
        let mut out = effects::recycle(std::mem::take(&mut self.effects));
        let mut result = Ok(());
        if std::mem::take(&mut self.sync_pending) {
            result = self.sync_and_report(&mut out);
        }
        if result.is_ok() {
            self.consensus.on_tick(now_ns, self.storage.view(), &mut out);
            self.request_snapshot_if_due(&mut out);
            result = self.carry_out(&mut out);
        }
        self.effects = effects::recycle(out);
        result?;
        let mut work = self.serve(net)?;
        self.answer_snapshot_takes();
        if let Some((client, nonce)) = self.status_asked.take() {
            let status = self.status(nonce);
            self.answers.push((client, status));
        }
        work += self.send(now_ns, net)?;
        Ok(work)
    }

    /// The leader asks every member to snapshot each time the log grew by the interval.
    fn request_snapshot_if_due(&mut self, out: &mut Vec<Effect<'_>>) {
        let end = self.storage.view().log_end();
        if self.consensus.role() == Role::Leader
            && let Some(interval) = self.snapshot_interval_bytes
            && end.0 >= self.snapshot_requested_at.0 + interval
        {
            self.snapshot_requested_at = end;
            let _ = self.consensus.propose_entry(EntryKind::SnapshotRequest, SessionId(0), 0, &[], out);
        }
    }

    /// Answers each `ordo snapshot take` whose request entry is committed, with the position
    /// every member snapshots at. A member that no longer leads forgets them: the client asks
    /// again and is redirected.
    fn answer_snapshot_takes(&mut self) {
        if self.consensus.role() != Role::Leader {
            self.snapshot_takes.clear();
            return;
        }
        // Canonical, as the request's position is (followers acknowledge a position in a
        // segment's last bytes as it is).
        let commit = self.storage.view().entry_start(self.consensus.commit_position());
        let answers = &mut self.answers;
        self.snapshot_takes.retain(|take| {
            if take.position > commit {
                return true;
            }
            let (position, status, sequence) = (take.position, ResponseStatus::Applied, take.nonce);
            let answer = Body::ClientResponse { session: SessionId(0), sequence, position, status, reply: &[] };
            answers.push((take.client, answer));
            false
        });
    }

    /// The consensus side of the service: tells it what is committed (after any snapshot
    /// installed from the leader), runs it if it is inline, and carries out what it said:
    /// snapshots taken, responses and routes, duties to propose.
    fn serve<N: Network<A>>(&mut self, net: &mut N) -> Result<usize, ReplicaError> {
        if let Some(snapshot) = self.storage.take_installed() {
            // Sent before the new commit is published: the service restores before it reads on.
            let _ = self.links.control.send(ToService::Restore(snapshot));
            self.storage.events_reset();
        }
        let leads = self.consensus.role() == Role::Leader;
        let shared = &self.links.shared;
        shared.cluster_time_ns.store(self.consensus.cluster_time().0, Ordering::Release);
        shared.leads.store(leads as u64, Ordering::Release);
        shared.commit.store(self.consensus.commit_position().0, Ordering::Release);
        let mut work = self.run_service()?;
        work += self.take_snapshots_taken()?;
        work += self.read_records(leads, net)?;
        Ok(work)
    }

    /// Runs an inline service's cycle (over a mapping of its own where the storage has one,
    /// else over the log in place); checks a dedicated one still runs.
    fn run_service(&mut self) -> Result<usize, ReplicaError> {
        match &mut self.service {
            ServiceSlot::Inline(agent) => match self.storage.inline_log()? {
                Some(own) => Ok(agent.do_work(own)?),
                None => {
                    let log: &dyn LogSource = self.storage.view();
                    Ok(agent.do_work(&mut InPlace(log))?)
                }
            },
            ServiceSlot::Dedicated(runner) if runner.is_finished() => {
                let ServiceSlot::Dedicated(runner) = std::mem::replace(&mut self.service, ServiceSlot::Moving) else {
                    unreachable!("matched above")
                };
                Err(match runner.stop() {
                    Stopped::Failed(_, error) => error.into(),
                    Stopped::Asked(_) => ReplicaError::ServiceStopped,
                })
            }
            ServiceSlot::Dedicated(_) | ServiceSlot::Moving => Ok(0),
        }
    }

    /// Each snapshot the service wrote is the newest (the log below the oldest kept goes),
    /// and its state hash goes to every other member.
    fn take_snapshots_taken(&mut self) -> Result<usize, ReplicaError> {
        let mut work = 0;
        while let Ok(FromService::SnapshotTaken { snapshot, oldest_kept }) = self.links.notices.try_recv() {
            let (position, state_hash) = (snapshot.info.position(), snapshot.info.state_hash);
            self.storage.snapshot_taken(snapshot, oldest_kept)?;
            self.state_hashes.record(self.consensus.member(), position, state_hash);
            let term = self.consensus.term();
            for &(member, _) in &self.peers {
                self.pending.0.push((member, term, Body::StateHash { position, state_hash }));
            }
            self.snapshots_taken += 1;
            work += 1;
        }
        Ok(work)
    }

    /// What the service said: sessions opened and closed (routes), responses (sent straight
    /// from the ring, leader only), duties (proposed).
    fn read_records<N: Network<A>>(&mut self, leads: bool, net: &mut N) -> Result<usize, ReplicaError> {
        let Replica { consensus, routes, openings, links, client_sends_failed, .. } = self;
        let term = consensus.term();
        let mut to_client = |client: ClientRoute<A>, body: &Body<'_>| {
            send_to_client(net, client_sends_failed, client, term, body);
        };
        let mut out = effects::recycle(std::mem::take(&mut self.effects));
        let work = links.records.read(&mut |record| match record {
            Record::Opened { session, client_nonce, position } => {
                let Some(address) = openings.remove(&client_nonce) else { return };
                routes.insert(session, address);
                if leads {
                    let nonce = client_nonce.to_le_bytes();
                    let status = ResponseStatus::SessionOpened;
                    to_client(address, &Body::ClientResponse { session, sequence: 0, position, status, reply: &nonce });
                }
            }
            Record::Closed { session } => {
                routes.remove(&session);
            }
            Record::Response { session, sequence, position, status, reply } => {
                if let Some(&address) = routes.get(&session).filter(|_| leads) {
                    to_client(address, &Body::ClientResponse { session, sequence, position, status, reply });
                }
            }
            Record::Duty { kind, session, correlation } => {
                let _ = consensus.propose_entry(kind, session, correlation, &[], &mut out);
            }
        });
        let result = self.carry_out_deferring_sync(&mut out);
        self.effects = effects::recycle(out);
        result?;
        Ok(work)
    }

    /// Queues the answers, Append frames, snapshot chunks, event frames and pending
    /// messages, and sends them in one batch.
    fn send<N: Network<A>>(&mut self, now_ns: u64, net: &mut N) -> Result<usize, ReplicaError> {
        let mut queued = 0;
        let mut failed = None;
        let term = self.consensus.term();
        for (client, answer) in self.answers.drain(..) {
            queued += send_to_client(net, &mut self.client_sends_failed, client, term, &answer) as usize;
        }
        let Replica { consensus, storage, peers, .. } = self;
        let capacity = net.capacity_bytes(FrameType::Append);
        consensus.poll_appends(storage.view(), capacity, FRAMES_MAX, &mut |to, term, append| {
            let Some(address) = address_of(peers, to) else { return };
            if let Err(error) = net.queue(address, term, &append.chunk.to_body(append.commit_position)) {
                failed = Some(error);
            }
            queued += 1;
        });
        if consensus.installing() {
            let capacity = net.capacity_bytes(FrameType::SnapshotChunk);
            let snapshot = effects::snapshot_to_send(storage);
            queued += consensus.poll_snapshots(now_ns, snapshot, capacity, FRAMES_MAX, &mut |to, term, chunk| {
                let Some(address) = address_of(peers, to) else { return };
                if let Err(error) = net.queue(address, term, &chunk) {
                    failed = Some(error);
                }
            });
        }
        if let Some(error) = failed {
            return Err(error.into());
        }
        queued += self.feed_events(now_ns, net);
        for (to, term, message) in self.pending.0.drain(..) {
            if let Some(address) = address_of(&self.peers, to) {
                net.queue(address, term, &message)?;
                queued += 1;
            }
        }
        net.flush()?;
        Ok(queued)
    }

    /// Streams the event log to its subscribers, up to what the service published.
    fn feed_events<N: Network<A>>(&mut self, now_ns: u64, net: &mut N) -> usize {
        if !self.event_feed.expire(now_ns) {
            return 0;
        }
        let published = Position(self.links.shared.events_position.load(Ordering::Acquire));
        let Some(reader) = self.storage.events_for_feed(published) else { return 0 };
        let capacity = net.capacity_bytes(FrameType::EventData);
        let (term, failed) = (self.consensus.term(), &mut self.client_sends_failed);
        self.event_feed.poll(now_ns, reader, published, capacity, &mut |client, body| {
            send_to_client(net, failed, client, term, body);
        })
    }

    /// What this member answers a `StatusRequest` with (`ordo describe --cluster`).
    fn status(&self, nonce: u64) -> Body<'static> {
        Body::Status {
            nonce,
            role: self.consensus.role() as u8,
            term: self.consensus.term(),
            leader: self.consensus.leader().unwrap_or(MemberId(0)),
            append_position: self.storage.view().log_end(),
            commit_position: self.consensus.commit_position(),
            applied_position: self.applied_position(),
            snapshot_position: self.storage.newest_snapshot().map_or(Position::ZERO, |s| s.info.position()),
        }
    }

    /// Proposes an entry (a client command, a snapshot request) if this member leads; it is
    /// made durable by the next cycle's one sync (with every other proposal since), then
    /// streamed.
    pub fn propose_entry(
        &mut self,
        kind: EntryKind,
        session: SessionId,
        correlation_id: u64,
        payload: &[u8],
    ) -> Result<Result<(), NotLeader>, ReplicaError> {
        let mut out = effects::recycle(std::mem::take(&mut self.effects));
        let proposed = self.consensus.propose_entry(kind, session, correlation_id, payload, &mut out);
        let result = self.carry_out_deferring_sync(&mut out);
        self.effects = effects::recycle(out);
        result?;
        Ok(proposed)
    }

    fn carry_out_deferring_sync(&mut self, out: &mut Vec<Effect<'_>>) -> Result<(), ReplicaError> {
        let Replica { consensus, storage, pending, effect_hook, sync_pending, .. } = self;
        let mut check = checked_by(effect_hook);
        *sync_pending |=
            effects::carry_out_deferring_sync(consensus, storage, pending, out, &mut check).map_err(carry_error)?;
        Ok(())
    }

    fn carry_out(&mut self, out: &mut Vec<Effect<'_>>) -> Result<(), ReplicaError> {
        let Replica { consensus, storage, pending, effect_hook, .. } = self;
        let mut check = checked_by(effect_hook);
        effects::carry_out(consensus, storage, pending, out, &mut check).map_err(carry_error)
    }

    fn sync_and_report(&mut self, out: &mut Vec<Effect<'_>>) -> Result<(), ReplicaError> {
        let Replica { consensus, storage, pending, effect_hook, .. } = self;
        let mut check = checked_by(effect_hook);
        effects::sync_and_report(consensus, storage, pending, out, &mut check).map_err(carry_error)
    }

    /// The service agent, when it runs inside the duty cycle (`shared` threading, or after
    /// [`Replica::join_service`]).
    pub fn inline(&self) -> &Agent<M, S> {
        match &self.service {
            ServiceSlot::Inline(agent) => agent,
            _ => panic!("the service runs on its own thread: call join_service first to look at its state"),
        }
    }

    /// Brings a service running on its own thread back inside the duty cycle (stopping that
    /// thread), so its state can be looked at; an inline service is left as it is.
    pub fn join_service(&mut self) -> Result<(), ReplicaError> {
        if let ServiceSlot::Dedicated(_) = self.service {
            let ServiceSlot::Dedicated(runner) = std::mem::replace(&mut self.service, ServiceSlot::Moving) else {
                unreachable!("matched above")
            };
            self.service = match runner.stop() {
                Stopped::Asked(threaded) => ServiceSlot::Inline(Box::new(threaded.agent)),
                Stopped::Failed(_, error) => return Err(error.into()),
            };
        }
        Ok(())
    }

    /// The storage and the event log, given back: on a clean stop (the driver closes them),
    /// or as a crash leaves them (the simulator).
    pub fn into_storage(mut self) -> Result<(S, S::Events), ReplicaError> {
        self.join_service()?;
        let ServiceSlot::Inline(agent) = std::mem::replace(&mut self.service, ServiceSlot::Moving) else {
            unreachable!("joined above")
        };
        Ok((self.storage, agent.into_events()))
    }

    pub fn consensus(&self) -> &Consensus {
        &self.consensus
    }
    pub fn storage(&self) -> &S {
        &self.storage
    }
    /// The positions and figures the service publishes.
    pub fn shared(&self) -> &Shared {
        &self.links.shared
    }
    pub fn applied_position(&self) -> Position {
        Position(self.links.shared.applied.load(Ordering::Acquire))
    }
    /// Members whose state hash disagreed with the majority's at a snapshot point.
    pub fn divergences(&self) -> &[Divergence] {
        self.state_hashes.divergences()
    }
    pub fn state_hashes(&self) -> &StateHashes {
        &self.state_hashes
    }
    pub fn frames_refused(&self) -> u64 {
        self.frames_refused
    }
    pub fn client_sends_failed(&self) -> u64 {
        self.client_sends_failed
    }
    pub fn snapshots_taken(&self) -> u64 {
        self.snapshots_taken
    }
}

/// The service agent over `container`, inline or on a thread of its own (`threaded`), and
/// the consensus side's links to it.
fn start_service<M: StateMachine, S: Storage, A: Address>(
    config: &ReplicaConfig<A>,
    container: Container<M>,
    events: S::Events,
    snapshots: S::Snapshots,
    hooks: ServiceHooks,
    threaded: Option<(S::OwnLog, RunnerConfig)>,
) -> Result<(ServiceSlot<M, S>, Links), ReplicaError> {
    let shared = Arc::new(Shared::default());
    let (writer, reader) = records::ring(RECORDS_RING_BYTES);
    let (control, control_receiver) = crossbeam_channel::unbounded();
    let (notice_sender, notices) = crossbeam_channel::unbounded();
    let agent = ServiceAgent::new(ServiceParts {
        id: config.consensus.member,
        container,
        events,
        snapshots,
        app: config.app.clone(),
        shared: shared.clone(),
        records: writer,
        control: control_receiver,
        notices: notice_sender,
        session_timeout_ns: config.session_timeout_ns,
        reply_bytes_max: if hooks.deliberate_bug == Some(crate::deliberate::DeliberateBug::ReplyLimitUnchecked) {
            crate::replica::records::REPLY_BYTES_MAX
        } else {
            config.reply_bytes_max
        },
        check_every_snapshot: hooks.check_every_snapshot,
        output_hook: hooks.outputs,
        deliberate_bug: hooks.deliberate_bug,
    });
    let service = match threaded {
        None => ServiceSlot::Inline(Box::new(agent)),
        Some((log, runner)) => {
            let threaded = ThreadedService { agent, log };
            ServiceSlot::Dedicated(Runner::spawn(threaded, runner, std::time::Instant::now())?)
        }
    };
    Ok((service, Links { shared, records: reader, control, notices }))
}

/// The check run before each effect: the simulator's hook, or none.
fn checked_by(hook: &mut Option<EffectHook>) -> impl FnMut(&Effect<'_>, &dyn LogView) -> Result<(), Refused> + '_ {
    move |effect, log| hook.as_mut().map_or(Ok(()), |hook| hook(effect, log))
}

/// Where member `to` is, if it is a peer.
fn address_of<A: Address>(peers: &[(MemberId, A)], to: MemberId) -> Option<A> {
    peers.iter().find(|(id, _)| *id == to).map(|&(_, address)| address)
}

fn redirect(not_leader: NotLeader) -> Body<'static> {
    match not_leader {
        NotLeader::Redirect(leader) => Body::Redirect { leader },
        NotLeader::Unknown => Body::Redirect { leader: MemberId(0) },
    }
}

fn carry_error(error: CarryError<Refused>) -> ReplicaError {
    match error {
        CarryError::Storage(error) => ReplicaError::Storage(error),
        CarryError::Check(Refused) => ReplicaError::Refused,
    }
}

/// Queues `body` for `client`, sealed under its key. What a client is sent never stops the
/// member: a frame that cannot go (a key retired meanwhile, an unreachable address) is
/// dropped and counted in `failed` (the client retries, answered from the kept reply).
/// Returns whether it was queued.
fn send_to_client<A: Address, N: Network<A>>(
    net: &mut N,
    failed: &mut u64,
    client: ClientRoute<A>,
    term: Term,
    body: &Body<'_>,
) -> bool {
    let Err(error) = net.queue_keyed(client.address, client.key_id, term, body) else { return true };
    if *failed == 0 {
        let address = client.address;
        tracing::warn!("a frame to client {address} could not be sent ({error}); dropped and counted");
    }
    *failed += 1;
    false
}
