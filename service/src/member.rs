//! The real driver of consensus: one member's duty cycle over a real UDP [`Endpoint`] and
//! the mapped log, carrying out effects with the same [`effects::carry_out`] code the
//! simulator uses. One `do_work` call is one duty cycle (Aeron's agent): receive a batch,
//! hand each frame to consensus, make one sync cover the whole batch (group commit), tick,
//! stream Append frames, send everything queued in one batch.
//!
//! It serves clients too: a client's frame is sequenced if this member leads, else answered
//! with a redirect; committed entries are applied to the service container, and the leader
//! answers each client at the address its latest frame came from.
//!
//! Snapshots: a snapshot-request entry makes every member write one at the same position
//! (then the log below the oldest kept is deleted) and tell the others its state hash, so a
//! replica that diverged is named ([`crate::divergence`]). The leader sends its newest
//! snapshot to a follower that needs entries it deleted. On start a member restores the
//! newest valid snapshot, then applies the log after it.
//!
//! Events go to the member's event log ([`crate::events`]), the same on every member.
//!
//! The apply loop is the service agent ([`crate::service_agent`]), inline or on a thread of
//! its own (`threading`).
//!
//! Folder layout: `log/` (segments, checkpoint, lock), `events/` (the same), `vote`,
//! `snapshots/`, `counters`.

use crate::client_keys::ClientKeysFile;
use crate::consensus::{Append, Consensus, ConsensusConfig, Effect, LogView, NotLeader, Role};
use crate::container::Container;
use crate::counters::{Counter, Counters};
use crate::divergence::{Divergence, StateHashes};
use crate::effects::{self, CarryError, DiskStorage, Outbox, Storage, StorageError};
use crate::events;
use crate::peer_watch::PeerWatch;
use crate::records::{self, Record, RecordReader};
use crate::runtime::{Runner, Stopped};
use crate::service_agent::{FromService, ServiceAgent, ServiceError, ServiceParts, Shared, ToService};
use crate::serving;
use crate::snapshot::{SnapshotError, SnapshotInfo, SnapshotStore};
use crossbeam_channel::{Receiver, Sender};
use ordo_core::machine::StateMachine;
use ordo_core::{EntryKind, MemberId, Position, SessionId, Term};
use ordo_transport::{Body, Chunk, Endpoint, FrameType, ResponseStatus};
use std::collections::BTreeMap;
use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;

#[derive(Debug, thiserror::Error)]
pub enum MemberError {
    #[error("the member's storage failed: {0}")]
    Storage(#[from] StorageError),
    #[error("the member's network endpoint failed: {0}")]
    Io(#[from] io::Error),
    #[error("the member's service failed: {0}")]
    Service(#[from] ServiceError),
    #[error("the member's service thread stopped unexpectedly")]
    ServiceStopped,
    #[error(
        "snapshot at {position} does not restore: {reason}; it was written by another app or version: restore with the app that wrote it, or move it away to use the one before"
    )]
    Restore { position: Position, reason: String },
    #[error(
        "the log in {dir} holds position {position} but not the entry snapshot {position} ends with: the log or the snapshot is corrupt; run `ordo log verify` and `ordo snapshot verify`"
    )]
    SnapshotMismatch { dir: std::path::PathBuf, position: Position },
}

impl From<SnapshotError> for MemberError {
    fn from(error: SnapshotError) -> Self {
        MemberError::Storage(StorageError::Snapshot(error))
    }
}

/// What opening a member found: the log's recovery, the snapshot it started from, the newer
/// snapshots it had to pass over (corrupt), and whether the log was reset to continue after
/// the snapshot (a crash while installing one from the leader).
#[derive(Debug)]
pub struct Opened {
    pub recovery: ordo_log::Recovery,
    pub snapshot: Option<SnapshotInfo>,
    pub rejected: Vec<SnapshotError>,
    pub log_reset: bool,
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

/// Everything a member is started with, apart from its state machine and endpoint.
#[derive(Clone, Debug)]
pub struct MemberConfig {
    /// The member's folder: `log/`, `vote`, `snapshots/`.
    pub dir: std::path::PathBuf,
    pub log: ordo_core::LogConfig,
    /// The state machine's name, written into snapshots.
    pub app: String,
    pub consensus: ConsensusConfig,
    /// Every other member's address.
    pub peers: Vec<(MemberId, SocketAddr)>,
    /// Sessions idle this long are closed by the leader.
    pub session_timeout_ns: u64,
    /// The leader asks every member to snapshot each time the log grows this much (`None`:
    /// only when asked).
    pub snapshot_interval_bytes: Option<u64>,
    /// Snapshots kept; the log below the oldest is deleted.
    pub snapshots_kept: usize,
    /// `shared`: the service agent runs inside the member's duty cycle; `dedicated`: on a
    /// thread of its own, run as `service_runner` says.
    pub threading: ordo_core::Threading,
    pub service_runner: crate::runtime::RunnerConfig,
    /// The client keys file (`ID HEX` a line), re-read when it changes; `None`: no client
    /// keys (no client is accepted).
    pub client_keys_file: Option<std::path::PathBuf>,
}

impl MemberConfig {
    /// A member in `dir` with the defaults for everything else.
    pub fn new(
        dir: &std::path::Path,
        log: ordo_core::LogConfig,
        app: &str,
        consensus: ConsensusConfig,
        peers: Vec<(MemberId, SocketAddr)>,
    ) -> Self {
        MemberConfig {
            dir: dir.to_path_buf(),
            log,
            app: app.to_string(),
            consensus,
            peers,
            session_timeout_ns: SESSION_TIMEOUT_NS_DEFAULT,
            snapshot_interval_bytes: None,
            snapshots_kept: crate::effects::SNAPSHOTS_KEPT_DEFAULT,
            threading: ordo_core::Threading::Shared,
            service_runner: crate::runtime::RunnerConfig::default(),
            client_keys_file: None,
        }
    }
}

/// Where the member's service agent runs.
enum ServiceSlot<M: StateMachine> {
    /// Called from the member's own duty cycle (`shared`).
    Inline(Box<ServiceAgent<M>>),
    /// On its own thread (`dedicated`).
    Dedicated(Runner<ServiceAgent<M>>),
    /// Only while moving between the two.
    Moving,
}

/// The consensus agent's end of its links to the service agent.
struct Links {
    shared: Arc<Shared>,
    records: RecordReader,
    control: Sender<ToService>,
    notices: Receiver<FromService>,
}

/// The bytes of the ring from the service to consensus.
const RECORDS_RING_BYTES: usize = 4 << 20;

/// Where a client is answered: the address it was last heard from, and the key it sealed
/// its frame under (its answers are sealed under the same key).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClientRoute {
    pub address: SocketAddr,
    pub key_id: u32,
}

/// Snapshot requests from `ordo snapshot take` a leader holds until they are committed.
const SNAPSHOT_TAKES_MAX: usize = 16;

/// One `ordo snapshot take` request in flight: who asked, its nonce, and where every member
/// will snapshot (right after its request entry).
struct SnapshotTake {
    client: ClientRoute,
    nonce: u64,
    position: Position,
}

pub struct Member<M: StateMachine> {
    consensus: Consensus,
    service: ServiceSlot<M>,
    links: Links,
    /// Where each session's client was last heard from; openings by nonce until applied.
    routes: BTreeMap<SessionId, ClientRoute>,
    openings: BTreeMap<u64, ClientRoute>,
    /// Redirects (and other answers to clients) to send once the received batch is handled.
    redirects: Vec<(ClientRoute, Body<'static>)>,
    /// The client keys file, re-read when it changes.
    client_keys: Option<ClientKeysFile>,
    /// Frames refused for their key: a member's frame not under the cluster key or not from
    /// a member, a client's frame under the cluster key (`Counter::FramesRefused`).
    frames_refused: u64,
    /// `ordo snapshot take` requests sequenced by this leader, answered once committed.
    snapshot_takes: Vec<SnapshotTake>,
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
    /// The leader asks for a snapshot every this many log bytes (`None`: only on request).
    snapshot_interval_bytes: Option<u64>,
    snapshot_requested_at: Position,
    state_hashes: StateHashes,
    /// The counters file `ordo stat` reads (`None` if it could not be created: the member
    /// runs on, reported once).
    counters: Option<Counters>,
    role_seen: Role,
    role_changes: u64,
    /// Responses to clients that could not be queued or sent (`Counter::ClientSendsFailed`).
    client_sends_failed: u64,
    /// Clients subscribed to the event log.
    event_feed: crate::event_feed::EventFeed,
    /// Reports peers silent for long: a wrong or unreachable address says so.
    peer_watch: PeerWatch,
    /// When the counters were last published (idle cycles publish at most every
    /// `COUNTERS_IDLE_INTERVAL_NS`).
    counters_published_ns: u64,
}

/// How stale an idle member's counters may be.
const COUNTERS_IDLE_INTERVAL_NS: u64 = 1_000_000;

/// The event log's configuration: the command log's, without an fsync per append (events
/// are derived state, synced before each snapshot).
fn events_config(log: &ordo_core::LogConfig) -> ordo_core::LogConfig {
    ordo_core::LogConfig { durability: ordo_core::Durability::Replicated, ..log.clone() }
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
    /// A member starting (or restarting) from its storage and event log, with its stored
    /// vote: the service from the storage's newest snapshot if it has one, else from
    /// `machine`, empty; the committed log after that is applied as the commit comes back.
    pub fn new(
        machine: M,
        config: &MemberConfig,
        storage: DiskStorage,
        mut events_log: ordo_log::Log,
        mut endpoint: Endpoint,
        now_ns: u64,
    ) -> Result<Self, MemberError> {
        let mut client_keys = config.client_keys_file.as_deref().map(ClientKeysFile::new);
        let keys = client_keys.as_mut().map(ClientKeysFile::load).unwrap_or_default();
        endpoint.codec_mut().keys_mut().set_clients(&keys);
        let vote = storage.vote();
        let (term, voted_for) = Consensus::starting_vote(vote.term, vote.voted_for, storage.log.last_term());
        let container = match storage.newest_snapshot() {
            Some(snapshot) => crate::service_agent::restore(snapshot)?,
            None => Container::new(machine),
        };
        let snapshot_events = storage.newest_snapshot().map(|s| s.info.events);
        events::recover(&mut events_log, container.applied_position(), snapshot_events.as_ref())?;
        let members = config.consensus.members.len();
        let applied = container.applied_position();
        let shared = Arc::new(Shared::default());
        let (writer, reader) = records::ring(RECORDS_RING_BYTES);
        let (control, control_receiver) = crossbeam_channel::unbounded();
        let (notice_sender, notices) = crossbeam_channel::unbounded();
        let agent = ServiceAgent::new(ServiceParts {
            id: config.consensus.member,
            container,
            log_dir: storage.log.dir().to_path_buf(),
            log_config: config.log.clone(),
            events: events_log,
            snapshots: storage.snapshots().clone(),
            snapshots_kept: storage.snapshots_kept(),
            app: config.app.clone(),
            shared: shared.clone(),
            records: writer,
            control: control_receiver,
            notices: notice_sender,
            session_timeout_ns: config.session_timeout_ns,
            reply_bytes_max: endpoint.codec().capacity_bytes(ordo_transport::FrameType::ClientResponse),
        })?;
        let service = match config.threading {
            ordo_core::Threading::Shared => ServiceSlot::Inline(Box::new(agent)),
            ordo_core::Threading::Dedicated => {
                ServiceSlot::Dedicated(Runner::spawn(agent, config.service_runner, std::time::Instant::now())?)
            }
        };
        let mut consensus = Consensus::new(config.consensus.clone(), term, voted_for, now_ns);
        consensus.set_clock(wall_clock_ns());
        consensus.note_committed(applied); // its snapshot holds only what was committed
        if storage.recovering() {
            tracing::warn!(
                "member {} is recovering (it lost its state, or was restored from a snapshot into a folder that was not a new cluster's), so it will not vote until it has caught up from a leader; if most members are recovering, stop them all and copy the data folder of one that is not over theirs (docs/operations.md)",
                config.consensus.member.0
            );
            consensus.start_recovering();
        }
        Ok(Member {
            consensus,
            snapshot_requested_at: applied,
            service,
            links: Links { shared, records: reader, control, notices },
            routes: BTreeMap::new(),
            openings: BTreeMap::new(),
            redirects: Vec::new(),
            client_keys,
            frames_refused: 0,
            snapshot_takes: Vec::new(),
            storage,
            endpoint,
            peers: config.peers.clone(),
            pending: Pending::default(),
            frames_max: 32,
            effects: Vec::with_capacity(16),
            sync_pending: false,
            snapshot_interval_bytes: config.snapshot_interval_bytes.filter(|&bytes| bytes > 0),
            state_hashes: StateHashes::new(members),
            counters: match Counters::create(&config.dir.join("counters")) {
                Ok(counters) => Some(counters),
                Err(error) => {
                    tracing::error!("no counters file, so `ordo stat` will not see this member: {error}");
                    None
                }
            },
            role_seen: Role::Follower,
            role_changes: 0,
            client_sends_failed: 0,
            event_feed: crate::event_feed::EventFeed::new(config.dir.join("events"), events_config(&config.log)),
            peer_watch: PeerWatch::new(&config.peers, now_ns, crate::peer_watch::SILENCE_REPORTED_NS),
            counters_published_ns: 0,
        })
    }

    /// Opens (recovering after a crash) the member's folder — its log, event log, vote and
    /// snapshots — and starts a member on them, from the newest valid snapshot.
    pub fn open(
        machine: M,
        config: &MemberConfig,
        endpoint: Endpoint,
        now_ns: u64,
    ) -> Result<(Member<M>, Opened), MemberError> {
        let (dir, log) = (config.dir.as_path(), config.log.clone());
        let cluster_id = log.cluster_id;
        let mut snapshots = SnapshotStore::open(&dir.join("snapshots"), cluster_id)?;
        if log.durability == ordo_core::Durability::Replicated {
            snapshots = snapshots.without_sync();
        }
        let loaded = snapshots.load_newest()?;
        for rejected in &loaded.rejected {
            tracing::error!("{rejected}; starting from an older snapshot");
        }
        let log_dir = dir.join("log");
        let (mut log, recovery) = ordo_log::Log::open(&log_dir, log).map_err(StorageError::from)?;
        let mut log_reset = false;
        if let Some(snapshot) = &loaded.snapshot {
            let base = snapshot.info.base;
            let (start, end) = (log.position_start(), log.position_append());
            if base.position > end || base.position < start {
                // Installed from the leader, and the crash came before the log was reset.
                log.reset_to(&base).map_err(StorageError::from)?;
                log_reset = true;
            } else if log.checksum_before(base.position) != Some(base.checksum) {
                return Err(MemberError::SnapshotMismatch { dir: log_dir, position: base.position });
            }
        }
        let info = loaded.snapshot.as_ref().map(|s| s.info.clone());
        let votes = ordo_log::VoteStore::new(dir, cluster_id);
        let (events, _) =
            ordo_log::Log::open(&dir.join("events"), events_config(&config.log)).map_err(StorageError::from)?;
        let storage = DiskStorage::new(log, votes, snapshots, loaded.snapshot, &config.app)?
            .with_snapshots_kept(config.snapshots_kept);
        let member = Member::new(machine, config, storage, events, endpoint, now_ns)?;
        Ok((member, Opened { recovery, snapshot: info, rejected: loaded.rejected, log_reset }))
    }

    /// Asks the cluster to snapshot: a snapshot-request entry, if this member leads; every
    /// member snapshots once it applies it.
    pub fn request_snapshot(&mut self) -> Result<Result<(), NotLeader>, MemberError> {
        self.propose_entry(EntryKind::SnapshotRequest, SessionId(0), 0, &[])
    }

    /// Members whose state hash disagreed with the majority's at a snapshot point.
    pub fn divergences(&self) -> &[Divergence] {
        self.state_hashes.divergences()
    }

    /// The newest snapshot this member holds.
    pub fn snapshot(&self) -> Option<&SnapshotInfo> {
        self.storage.newest_snapshot().map(|s| &s.info)
    }

    /// The service agent, when it runs inside the member (`shared` threading, or after
    /// [`Member::join_service`]).
    fn inline(&self) -> &ServiceAgent<M> {
        match &self.service {
            ServiceSlot::Inline(agent) => agent,
            _ => panic!("the service runs on its own thread: call join_service first to look at its state"),
        }
    }

    /// The state machine, as applied up to `applied_position` (the service inline only).
    pub fn machine(&self) -> &M {
        self.inline().container().machine()
    }

    /// The hash of everything applied (equal on every member at the same applied position;
    /// the service inline only).
    pub fn state_hash(&self) -> u64 {
        self.inline().container().state_hash()
    }

    /// The event log (read it from any position; the service inline only).
    pub fn events(&self) -> &ordo_log::Log {
        self.inline().events()
    }

    pub fn applied_position(&self) -> Position {
        Position(self.links.shared.applied.load(Ordering::Acquire))
    }

    /// Brings a service running on its own thread back inside the member (stopping that
    /// thread), so its state can be looked at; a member whose service runs inline is left as
    /// it is.
    pub fn join_service(&mut self) -> Result<(), MemberError> {
        if let ServiceSlot::Dedicated(_) = self.service {
            let ServiceSlot::Dedicated(runner) = std::mem::replace(&mut self.service, ServiceSlot::Moving) else {
                unreachable!("matched above")
            };
            self.service = match runner.stop() {
                Stopped::Asked(agent) => ServiceSlot::Inline(Box::new(agent)),
                Stopped::Failed(_, error) => return Err(error.into()),
            };
        }
        Ok(())
    }

    pub fn role(&self) -> Role {
        self.consensus.role()
    }
    pub fn id(&self) -> MemberId {
        self.consensus.member()
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

    /// Waits until a datagram arrives or `timeout` passes (the `block` idle strategy).
    pub fn wait_readable(&mut self, timeout: std::time::Duration) -> Result<(), MemberError> {
        Ok(self.endpoint.net_mut().wait_readable(timeout)?)
    }

    /// One duty cycle; returns the work done (0: idle).
    pub fn do_work(&mut self, now_ns: u64) -> Result<usize, MemberError> {
        self.consensus.set_clock(wall_clock_ns());
        if let Some(keys) = self.client_keys.as_mut().and_then(|file| file.poll(now_ns)) {
            self.endpoint.codec_mut().keys_mut().set_clients(&keys);
        }
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
            snapshot_takes,
            state_hashes,
            event_feed,
            peer_watch,
            peers,
            frames_refused,
            ..
        } = self;
        let mut sync = std::mem::take(sync_pending);
        let mut failure = None;
        let mut snapshot_taken = None;
        let mut status_asked = None;
        let mut work = endpoint.poll(&mut |source, frame| {
            if failure.is_some() {
                return;
            }
            let (sender, term) = (frame.header.sender(), frame.header.term());
            // Members' frames only under the cluster key and from a member; clients' only
            // under a client key: a client can never vote, append or send a snapshot.
            let key_id = frame.header.key_id.get();
            if !serving::admits(frame.body.frame_type(), key_id, sender, |m| peers.iter().any(|&(id, _)| id == m)) {
                *frames_refused += 1;
                return;
            }
            let client = ClientRoute { address: source, key_id };
            if let Some(line) = peer_watch.heard(sender, now_ns) {
                tracing::info!("{line}");
            }
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
                    openings.insert(client_nonce, client);
                    if let Some(redirect) = serving::take_client_frame(consensus, &frame.body, &mut out) {
                        redirects.push((client, redirect));
                    }
                }
                Body::ClientRequest { session, .. } => {
                    routes.insert(session, client);
                    if let Some(redirect) = serving::take_client_frame(consensus, &frame.body, &mut out) {
                        redirects.push((client, redirect));
                    }
                }
                Body::StateHash { position, state_hash } => state_hashes.record(sender, position, state_hash),
                Body::EventData { from_position, bytes: [] } => event_feed.on_request(client, from_position, now_ns),
                Body::StatusRequest { nonce } => status_asked = Some((client, nonce)),
                Body::SnapshotTake { nonce } if snapshot_takes.iter().any(|t| t.nonce == nonce) => {
                    // A resend of a request in flight: the same one, answered once committed.
                    snapshot_takes.iter_mut().filter(|t| t.nonce == nonce).for_each(|t| t.client = client);
                }
                Body::SnapshotTake { nonce } => {
                    let request = EntryKind::SnapshotRequest;
                    match consensus.propose_entry(request, SessionId(0), 0, &[], &mut out) {
                        Ok(()) => snapshot_taken = Some((client, nonce)),
                        Err(NotLeader::Redirect(leader)) => redirects.push((client, Body::Redirect { leader })),
                        Err(NotLeader::Unknown) => redirects.push((client, Body::Redirect { leader: MemberId(0) })),
                    }
                }
                body => consensus.on_message(now_ns, sender, term, body, &storage.log, &mut out),
            }
            match effects::carry_out_deferring_sync(consensus, storage, pending, &mut out, &mut no_check) {
                Ok(asked) => sync |= asked,
                Err(error) => failure = Some(storage_error(error)),
            }
            if let Some((client, nonce)) = snapshot_taken.take() {
                // Every member snapshots right after the request entry just appended.
                if snapshot_takes.len() == SNAPSHOT_TAKES_MAX {
                    snapshot_takes.remove(0);
                }
                snapshot_takes.push(SnapshotTake { client, nonce, position: storage.log.position_append() });
            }
            *buffer = effects::recycle(out);
        })?;
        if let Some(failure) = failure {
            return Err(failure);
        }
        peer_watch.check(consensus.member(), now_ns, &mut |line| tracing::warn!("{line}"));
        if sync {
            let mut out = effects::recycle(std::mem::take(buffer));
            effects::sync_and_report(consensus, storage, pending, &mut out, &mut no_check).map_err(storage_error)?;
            *buffer = effects::recycle(out);
        }
        let mut out = effects::recycle(std::mem::take(buffer));
        consensus.on_tick(now_ns, &storage.log, &mut out);
        if consensus.role() == Role::Leader
            && let Some(interval) = self.snapshot_interval_bytes
            && storage.log.position_append().0 >= self.snapshot_requested_at.0 + interval
        {
            self.snapshot_requested_at = storage.log.position_append();
            let _ = consensus.propose_entry(EntryKind::SnapshotRequest, SessionId(0), 0, &[], &mut out);
        }
        effects::carry_out(consensus, storage, pending, &mut out, &mut no_check).map_err(storage_error)?;
        *buffer = effects::recycle(out);
        work += self.serve()?;
        self.answer_snapshot_takes();
        if let Some((client, nonce)) = status_asked {
            let status = self.status(nonce);
            self.redirects.push((client, status));
        }
        work += self.send(now_ns)?;
        // An idle cycle changes nothing worth publishing at once: the spinning phase of an
        // idle strategy would store 21 counters per spin (3% of a leader's CPU under load).
        if work > 0 || now_ns >= self.counters_published_ns + COUNTERS_IDLE_INTERVAL_NS {
            self.counters_published_ns = now_ns;
            self.publish_counters();
        }
        Ok(work)
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
        let commit = ordo_core::LogSource::entry_start(&self.storage.log, self.consensus.commit_position());
        let redirects = &mut self.redirects;
        self.snapshot_takes.retain(|take| {
            if take.position > commit {
                return true;
            }
            let (position, status) = (take.position, ResponseStatus::Applied);
            let sequence = take.nonce;
            let answer = Body::ClientResponse { session: SessionId(0), sequence, position, status, reply: &[] };
            redirects.push((take.client, answer));
            false
        });
    }

    /// The consensus agent's side of the service: tells it what is committed (after any
    /// snapshot installed from the leader), runs it if it is inline, and carries out what it
    /// said: responses and routes, duties to propose, snapshots taken.
    fn serve(&mut self) -> Result<usize, MemberError> {
        let shared = &self.links.shared;
        if let Some(snapshot) = self.storage.take_installed() {
            // Sent before the new commit is published: the service restores before it reads on.
            let _ = self.links.control.send(ToService::Restore(snapshot));
            self.event_feed.reopen();
        }
        let leads = self.consensus.role() == Role::Leader;
        shared.cluster_time_ns.store(self.consensus.cluster_time().0, Ordering::Release);
        shared.leads.store(leads as u64, Ordering::Release);
        shared.commit.store(self.consensus.commit_position().0, Ordering::Release);
        let mut work = match &mut self.service {
            ServiceSlot::Inline(agent) => agent.do_work()?,
            ServiceSlot::Dedicated(runner) if runner.is_finished() => {
                let ServiceSlot::Dedicated(runner) = std::mem::replace(&mut self.service, ServiceSlot::Moving) else {
                    unreachable!("matched above")
                };
                return Err(match runner.stop() {
                    Stopped::Failed(_, error) => error.into(),
                    Stopped::Asked(_) => MemberError::ServiceStopped,
                });
            }
            ServiceSlot::Dedicated(_) | ServiceSlot::Moving => 0,
        };
        while let Ok(FromService::SnapshotTaken { snapshot, oldest_kept }) = self.links.notices.try_recv() {
            let (position, state_hash) = (snapshot.info.position(), snapshot.info.state_hash);
            self.storage.snapshot_taken(snapshot, oldest_kept)?;
            self.state_hashes.record(self.consensus.member(), position, state_hash);
            let message = Body::StateHash { position, state_hash };
            for &(_, address) in &self.peers {
                self.endpoint.queue(address, self.consensus.term(), &message)?;
            }
            work += 1;
        }
        let Member { consensus, storage, endpoint, routes, openings, links, pending, sync_pending, .. } = self;
        let term = consensus.term();
        let client_sends_failed = &mut self.client_sends_failed;
        let mut to_client = |client: ClientRoute, body: &Body<'_>| {
            send_to_client(endpoint, client_sends_failed, client, term, body);
        };
        let mut out = effects::recycle(std::mem::take(&mut self.effects));
        work += links.records.read(&mut |record| match record {
            Record::Opened { session, client_nonce, position } => {
                let Some(address) = openings.remove(&client_nonce) else { return };
                routes.insert(session, address);
                if leads {
                    let nonce = client_nonce.to_le_bytes();
                    let status = ordo_transport::ResponseStatus::SessionOpened;
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
        *sync_pending |= effects::carry_out_deferring_sync(consensus, storage, pending, &mut out, &mut no_check)
            .map_err(storage_error)?;
        self.effects = effects::recycle(out);
        Ok(work)
    }

    /// Stops the member cleanly: its service stopped, its log and event log synced and
    /// closed. (Dropping a member without it is what a crash looks like, and loses nothing
    /// acknowledged.)
    pub fn close(mut self) -> Result<(), MemberError> {
        self.join_service()?;
        let ServiceSlot::Inline(agent) = std::mem::replace(&mut self.service, ServiceSlot::Moving) else {
            unreachable!("joined above")
        };
        agent.close()?;
        let Member { storage, .. } = self;
        let DiskStorage { log, .. } = storage;
        log.close().map_err(StorageError::from)?;
        Ok(())
    }

    fn publish_counters(&mut self) {
        let role = self.consensus.role();
        if role != self.role_seen {
            self.role_seen = role;
            self.role_changes += 1;
        }
        let Some(counters) = &self.counters else { return };
        let log = &self.storage.log;
        let drops = self.endpoint.drops();
        let shared = &self.links.shared;
        let load = |value: &std::sync::atomic::AtomicU64| value.load(Ordering::Relaxed);
        let values = [
            (Counter::Role, role as u64),
            (Counter::Term, self.consensus.term().0),
            (Counter::Leader, self.consensus.leader().map_or(0, |m| m.0 as u64)),
            (Counter::LogStartPosition, log.position_start().0),
            (Counter::AppendPosition, log.position_append().0),
            (Counter::DurablePosition, log.position_durable().0),
            (Counter::CommitPosition, self.consensus.commit_position().0),
            (Counter::AppliedPosition, load(&shared.applied)),
            (Counter::SnapshotPosition, self.storage.newest_snapshot().map_or(0, |s| s.info.position().0)),
            (Counter::EventsPosition, load(&shared.events_position)),
            (Counter::FramesSent, self.endpoint.frames_sent),
            (Counter::FramesReceived, self.endpoint.frames_received),
            (Counter::FramesDropped, drops.total()),
            (Counter::MacFailures, drops.count(&ordo_transport::FrameError::BadMac)),
            (Counter::RoleChanges, self.role_changes),
            (Counter::Divergences, self.state_hashes.divergences_seen()),
            (Counter::AppliedEntries, load(&shared.applied_entries)),
            (Counter::ApplyNsTotal, load(&shared.apply_ns_total)),
            (Counter::ApplyBatchNsMax, load(&shared.apply_batch_ns_max)),
            (Counter::ApplyNsP50, load(&shared.apply_ns_p50)),
            (Counter::ApplyNsP99, load(&shared.apply_ns_p99)),
            (Counter::RepliesTooLarge, load(&shared.replies_too_large)),
            (Counter::ClientSendsFailed, self.client_sends_failed),
            (Counter::FramesRefused, self.frames_refused),
        ];
        for (counter, value) in values {
            counters.set(counter, value);
        }
    }

    /// What this member answers a `StatusRequest` with (`ordo describe --cluster`).
    fn status(&self, nonce: u64) -> Body<'static> {
        Body::Status {
            nonce,
            role: self.consensus.role() as u8,
            term: self.consensus.term(),
            leader: self.consensus.leader().unwrap_or(MemberId(0)),
            append_position: self.storage.log.position_append(),
            commit_position: self.consensus.commit_position(),
            applied_position: Position(self.links.shared.applied.load(Ordering::Relaxed)),
            snapshot_position: self.storage.newest_snapshot().map_or(Position::ZERO, |s| s.info.position()),
        }
    }

    /// The member's live counters (what `ordo stat` reads from its file).
    pub fn counter(&self, counter: Counter) -> Option<u64> {
        self.counters.as_ref().map(|c| c.get(counter))
    }

    /// Proposes a client command; it is appended if this member leads, made durable by the
    /// next duty cycle's one sync (with every other proposal since), then streamed.
    pub fn propose(
        &mut self,
        session: SessionId,
        correlation_id: u64,
        payload: &[u8],
    ) -> Result<Result<(), NotLeader>, MemberError> {
        self.propose_entry(EntryKind::Command, session, correlation_id, payload)
    }

    fn propose_entry(
        &mut self,
        kind: EntryKind,
        session: SessionId,
        correlation_id: u64,
        payload: &[u8],
    ) -> Result<Result<(), NotLeader>, MemberError> {
        let mut out = effects::recycle(std::mem::take(&mut self.effects));
        if let Err(not_leader) = self.consensus.propose_entry(kind, session, correlation_id, payload, &mut out)
        {
            self.effects = effects::recycle(out);
            return Ok(Err(not_leader));
        }
        let Member { consensus, storage, pending, sync_pending, .. } = self;
        *sync_pending |= effects::carry_out_deferring_sync(consensus, storage, pending, &mut out, &mut no_check)
            .map_err(storage_error)?;
        self.effects = effects::recycle(out);
        Ok(Ok(()))
    }

    /// Queues Append frames, snapshot chunks and pending messages, and sends them in one batch.
    fn send(&mut self, now_ns: u64) -> Result<usize, MemberError> {
        let mut queued = 0;
        let mut failed = None;
        let capacity = self.endpoint.codec().capacity_bytes(FrameType::Append);
        let term = self.consensus.term();
        for (client, answer) in self.redirects.drain(..) {
            queued += send_to_client(&mut self.endpoint, &mut self.client_sends_failed, client, term, &answer) as usize;
        }
        let Member { consensus, storage, endpoint, peers, frames_max, .. } = self;
        consensus.poll_appends(&storage.log, capacity, *frames_max, &mut |to, term, append| {
            let Some(&(_, address)) = peers.iter().find(|(id, _)| *id == to) else { return };
            if let Err(error) = endpoint.queue(address, term, &append.chunk.to_body(append.commit_position)) {
                failed = Some(error);
            }
            queued += 1;
        });
        if consensus.installing() {
            let capacity = endpoint.codec().capacity_bytes(FrameType::SnapshotChunk);
            let snapshot = effects::snapshot_to_send(storage);
            queued += consensus.poll_snapshots(now_ns, snapshot, capacity, *frames_max, &mut |to, term, chunk| {
                let Some(&(_, address)) = peers.iter().find(|(id, _)| *id == to) else { return };
                if let Err(error) = endpoint.queue(address, term, &chunk) {
                    failed = Some(error);
                }
            });
        }
        let published = Position(self.links.shared.events_position.load(Ordering::Acquire));
        let capacity = self.endpoint.codec().capacity_bytes(FrameType::EventData);
        let (endpoint, term) = (&mut self.endpoint, self.consensus.term());
        let client_sends_failed = &mut self.client_sends_failed;
        queued += self.event_feed.poll(now_ns, published, capacity, &mut |client, from_position, bytes| {
            send_to_client(endpoint, client_sends_failed, client, term, &Body::EventData { from_position, bytes });
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

/// Queues `body` for `client`, sealed under its key. What a client is sent never stops the
/// member: a frame that cannot go (a key retired meanwhile, an unreachable address) is
/// dropped and counted in `failed` (the client retries, answered from the kept reply).
/// Returns whether it was queued.
fn send_to_client(endpoint: &mut Endpoint, failed: &mut u64, client: ClientRoute, term: Term, body: &Body<'_>) -> bool {
    let Err(error) = endpoint.queue_keyed(client.address, client.key_id, term, body) else { return true };
    if *failed == 0 {
        let address = client.address;
        tracing::warn!("a frame to client {address} could not be sent ({error}); dropped and counted");
    }
    *failed += 1;
    false
}

/// A real member's cluster clock: wall-clock time in nanoseconds since the Unix epoch, as
/// Aeron's cluster clock is (read through the vDSO: no system call). Cluster time is this,
/// never going back ([`Consensus::cluster_time`]), so it goes on across restarts and
/// failovers; elections and timeouts run on the monotonic `now_ns` instead.
fn wall_clock_ns() -> u64 {
    let since_epoch = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
    since_epoch.map_or(0, |elapsed| u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX))
}
