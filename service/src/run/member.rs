//! The real member: the `Replica` (`crate::replica`) driven over a real UDP [`Endpoint`] and
//! the member's folder (`crate::disk`). What only a real member does is here: opening the
//! folder (recovery, the newest valid snapshot reconciled with the log), the wall clock, the
//! client keys file, the socket's poll loop, and the counters file `ordo stat` reads. One
//! `do_work` call is one duty cycle (Aeron's agent): `begin_cycle`, a batch of frames into
//! `on_frame`, `end_cycle`, counters.
//!
//! Folder layout: `log/` (segments, checkpoint, lock), `events/` (the same), `vote`,
//! `snapshots/`, `counters`.

use crate::disk::DiskStorage;
use crate::disk::MappedLog;
use crate::replica::consensus::{ConsensusConfig, NotLeader, Role};
use crate::replica::divergence::Divergence;
use crate::replica::effects::{Storage, StorageError};
use crate::replica::snapshot::{SnapshotError, SnapshotInfo};
use crate::replica::{Hooks, Replica, ReplicaConfig, ReplicaError};
use crate::run::client_keys::ClientKeysFile;
use crate::run::counters::{Counter, Counters};
use ordo_core::machine::StateMachine;
use ordo_core::{EntryKind, MemberId, Position, SessionId, Term};
use ordo_transport::{Endpoint, FrameType};
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;

/// Why a member stopped: its replica did (a storage, socket or service failure), or its
/// folder could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum MemberError {
    #[error(transparent)]
    Replica(#[from] ReplicaError),
    #[error("the member's storage failed: {0}")]
    Storage(#[from] StorageError),
    #[error("the member's network endpoint failed: {0}")]
    Io(#[from] io::Error),
    #[error(
        "the log in {dir} holds position {position} but not the entry snapshot {position} ends with: the log or the snapshot is corrupt; run `ordo log verify` and `ordo snapshot verify`"
    )]
    SnapshotMismatch { dir: std::path::PathBuf, position: Position },
    #[error(
        "member {member} refuses to start on a damaged log: {source} (move {} aside first; `ordo snapshot restore --from FILE --dir MEMBER-DIR` seeds it from a peer's snapshot)",
        dir.display()
    )]
    /// The member's log failed verification before it started.
    Damaged {
        member: u16,
        dir: std::path::PathBuf,
        #[source]
        source: ordo_log::LogError,
    },
}

impl From<SnapshotError> for MemberError {
    fn from(error: SnapshotError) -> Self {
        MemberError::Storage(StorageError::Snapshot(error))
    }
}

pub use crate::disk::Opened;

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
    pub service_runner: crate::run::runtime::RunnerConfig,
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
            snapshots_kept: crate::disk::SNAPSHOTS_KEPT_DEFAULT,
            threading: ordo_core::Threading::Shared,
            service_runner: crate::run::runtime::RunnerConfig::default(),
            client_keys_file: None,
        }
    }
}

/// A real member: the `Replica` over a UDP endpoint and its folder, with its counters
/// file and its client keys file.
pub struct Member<M: StateMachine> {
    replica: Replica<M, DiskStorage, SocketAddr>,
    endpoint: Endpoint,
    /// The client keys file, re-read when it changes.
    client_keys: Option<ClientKeysFile>,
    /// The counters file `ordo stat` reads (`None` if it could not be created: the member
    /// runs on, reported once).
    counters: Option<Counters>,
    role_seen: Role,
    role_changes: u64,
    /// When the counters were last published (idle cycles publish at most every
    /// `COUNTERS_IDLE_INTERVAL_NS`).
    counters_published_ns: u64,
}

/// How stale an idle member's counters may be.
const COUNTERS_IDLE_INTERVAL_NS: u64 = 1_000_000;

impl<M: StateMachine> Member<M> {
    /// A member starting (or restarting) from its storage and event log, with its stored
    /// vote: the service from the storage's newest snapshot if it has one, else from
    /// `machine`, empty; the committed log after that is applied as the commit comes back.
    pub fn new(
        machine: M,
        config: &MemberConfig,
        storage: DiskStorage,
        events_log: ordo_log::Log,
        mut endpoint: Endpoint,
        now_ns: u64,
    ) -> Result<Self, MemberError> {
        let mut client_keys = config.client_keys_file.as_deref().map(ClientKeysFile::new);
        let keys = client_keys.as_mut().map(ClientKeysFile::load).unwrap_or_default();
        endpoint.codec_mut().keys_mut().set_clients(&keys);
        let replica_config = ReplicaConfig {
            consensus: config.consensus.clone(),
            peers: config.peers.clone(),
            app: config.app.clone(),
            session_timeout_ns: config.session_timeout_ns,
            snapshot_interval_bytes: config.snapshot_interval_bytes,
            reply_bytes_max: endpoint.codec().capacity_bytes(FrameType::ClientResponse),
        };
        let threaded = match config.threading {
            ordo_core::Threading::Shared => None,
            ordo_core::Threading::Dedicated => {
                Some((MappedLog::open(storage.log.dir(), &config.log)?, config.service_runner))
            }
        };
        let snapshots = storage.snapshot_folder();
        let hooks = Hooks::default();
        let replica = Replica::new(
            machine,
            &replica_config,
            storage,
            events_log,
            snapshots,
            hooks,
            threaded,
            now_ns,
            wall_clock_ns(),
        )?;
        Ok(Member {
            replica,
            endpoint,
            client_keys,
            counters: match Counters::create(&config.dir.join("counters")) {
                Ok(counters) => Some(counters),
                Err(error) => {
                    tracing::error!("no counters file, so `ordo stat` will not see this member: {error}");
                    None
                }
            },
            role_seen: Role::Follower,
            role_changes: 0,
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
        let folder =
            crate::disk::open_folder(&config.dir, &config.log, config.snapshots_kept).map_err(|error| match error {
                crate::disk::OpenError::Storage(error) => MemberError::Storage(error),
                crate::disk::OpenError::SnapshotMismatch { dir, position } => {
                    MemberError::SnapshotMismatch { dir, position }
                }
                crate::disk::OpenError::Damaged { dir, source } => {
                    MemberError::Damaged { member: config.consensus.member.0, dir, source }
                }
            })?;
        for rejected in &folder.opened.rejected {
            tracing::error!("{rejected}; starting from an older snapshot");
        }
        let member = Member::new(machine, config, folder.storage, folder.events, endpoint, now_ns)?;
        Ok((member, folder.opened))
    }

    /// Asks the cluster to snapshot: a snapshot-request entry, if this member leads; every
    /// member snapshots once it applies it.
    pub fn request_snapshot(&mut self) -> Result<Result<(), NotLeader>, MemberError> {
        Ok(self.replica.propose_entry(EntryKind::SnapshotRequest, SessionId(0), 0, &[])?)
    }

    /// Proposes a client command; it is appended if this member leads, made durable by the
    /// next duty cycle's one sync (with every other proposal since), then streamed.
    pub fn propose(
        &mut self,
        session: SessionId,
        correlation_id: u64,
        payload: &[u8],
    ) -> Result<Result<(), NotLeader>, MemberError> {
        Ok(self.replica.propose_entry(EntryKind::Command, session, correlation_id, payload)?)
    }

    /// Members whose state hash disagreed with the majority's at a snapshot point.
    pub fn divergences(&self) -> &[Divergence] {
        self.replica.divergences()
    }

    /// The newest snapshot this member holds.
    pub fn snapshot(&self) -> Option<&SnapshotInfo> {
        self.replica.storage().newest_snapshot().map(|s| &s.info)
    }

    /// The state machine, as applied up to `applied_position` (the service inline only).
    pub fn machine(&self) -> &M {
        self.replica.inline().container().machine()
    }

    /// The hash of everything applied (equal on every member at the same applied position;
    /// the service inline only).
    pub fn state_hash(&self) -> u64 {
        self.replica.inline().container().state_hash()
    }

    /// The event log (read it from any position; the service inline only).
    pub fn events(&self) -> &ordo_log::Log {
        self.replica.inline().events()
    }

    pub fn applied_position(&self) -> Position {
        self.replica.applied_position()
    }

    /// Brings a service running on its own thread back inside the member (stopping that
    /// thread), so its state can be looked at; a member whose service runs inline is left as
    /// it is.
    pub fn join_service(&mut self) -> Result<(), MemberError> {
        Ok(self.replica.join_service()?)
    }

    pub fn role(&self) -> Role {
        self.replica.consensus().role()
    }
    pub fn id(&self) -> MemberId {
        self.replica.consensus().member()
    }
    pub fn term(&self) -> Term {
        self.replica.consensus().term()
    }
    pub fn leader(&self) -> Option<MemberId> {
        self.replica.consensus().leader()
    }
    pub fn commit_position(&self) -> Position {
        self.replica.consensus().commit_position()
    }
    pub fn storage(&self) -> &DiskStorage {
        self.replica.storage()
    }
    pub fn local_addr(&self) -> SocketAddr {
        self.endpoint.local_addr()
    }

    /// Waits until a datagram arrives or `timeout` passes (the `block` idle strategy).
    pub fn wait_readable(&mut self, timeout: std::time::Duration) -> Result<(), MemberError> {
        Ok(self.endpoint.net_mut().wait_readable(timeout)?)
    }

    /// One duty cycle; returns the work done (0: idle). What only the real member does is
    /// here: the clocks, the socket, the client keys file, the counters file.
    pub fn do_work(&mut self, now_ns: u64) -> Result<usize, MemberError> {
        if let Some(keys) = self.client_keys.as_mut().and_then(|file| file.poll(now_ns)) {
            self.endpoint.codec_mut().keys_mut().set_clients(&keys);
        }
        let replica = &mut self.replica;
        replica.begin_cycle(wall_clock_ns());
        let mut failure = None;
        let mut work = self.endpoint.poll(&mut |source, frame| {
            if failure.is_none()
                && let Err(error) = replica.on_frame(now_ns, source, frame)
            {
                failure = Some(error);
            }
        })?;
        if let Some(failure) = failure {
            return Err(failure.into());
        }
        work += self.replica.end_cycle(now_ns, &mut self.endpoint)?;
        // An idle cycle changes nothing worth publishing at once: the spinning phase of an
        // idle strategy would store 21 counters per spin (3% of a leader's CPU under load).
        if work > 0 || now_ns >= self.counters_published_ns + COUNTERS_IDLE_INTERVAL_NS {
            self.counters_published_ns = now_ns;
            self.publish_counters();
        }
        Ok(work)
    }

    /// Stops the member cleanly: its service stopped, its log and event log synced and
    /// closed. (Dropping a member without it is what a crash looks like, and loses nothing
    /// acknowledged.)
    pub fn close(self) -> Result<(), MemberError> {
        let (storage, events) = self.replica.into_storage()?;
        events.close().map_err(StorageError::from)?;
        let DiskStorage { log, .. } = storage;
        log.close().map_err(StorageError::from)?;
        Ok(())
    }

    fn publish_counters(&mut self) {
        let consensus = self.replica.consensus();
        let role = consensus.role();
        if role != self.role_seen {
            self.role_seen = role;
            self.role_changes += 1;
        }
        let Some(counters) = &self.counters else { return };
        let log = &self.replica.storage().log;
        let drops = self.endpoint.drops();
        let shared = self.replica.shared();
        let load = |value: &std::sync::atomic::AtomicU64| value.load(Ordering::Relaxed);
        let snapshot = self.replica.storage().newest_snapshot();
        let values = [
            (Counter::Role, role as u64),
            (Counter::Term, consensus.term().0),
            (Counter::Leader, consensus.leader().map_or(0, |m| m.0 as u64)),
            (Counter::LogStartPosition, log.position_start().0),
            (Counter::AppendPosition, log.position_append().0),
            (Counter::DurablePosition, log.position_durable().0),
            (Counter::CommitPosition, consensus.commit_position().0),
            (Counter::AppliedPosition, load(&shared.applied)),
            (Counter::SnapshotPosition, snapshot.map_or(0, |s| s.info.position().0)),
            (Counter::EventsPosition, load(&shared.events_position)),
            (Counter::FramesSent, self.endpoint.frames_sent),
            (Counter::FramesReceived, self.endpoint.frames_received),
            (Counter::FramesDropped, drops.total()),
            (Counter::MacFailures, drops.count(&ordo_transport::FrameError::BadMac)),
            (Counter::RoleChanges, self.role_changes),
            (Counter::Divergences, self.replica.state_hashes().divergences_seen()),
            (Counter::AppliedEntries, load(&shared.applied_entries)),
            (Counter::ApplyNsTotal, load(&shared.apply_ns_total)),
            (Counter::ApplyBatchNsMax, load(&shared.apply_batch_ns_max)),
            (Counter::ApplyNsP50, load(&shared.apply_ns_p50)),
            (Counter::ApplyNsP99, load(&shared.apply_ns_p99)),
            (Counter::RepliesTooLarge, load(&shared.replies_too_large)),
            (Counter::ClientSendsFailed, self.replica.client_sends_failed()),
            (Counter::FramesRefused, self.replica.frames_refused()),
        ];
        for (counter, value) in values {
            counters.set(counter, value);
        }
    }

    /// The member's live counters (what `ordo stat` reads from its file).
    pub fn counter(&self, counter: Counter) -> Option<u64> {
        self.counters.as_ref().map(|c| c.get(counter))
    }
}

/// A real member's cluster clock: wall-clock time in nanoseconds since the Unix epoch, as
/// Aeron's cluster clock is (read through the vDSO: no system call). Cluster time is this,
/// never going back ([`Consensus::cluster_time`]), so it goes on across restarts and
/// failovers; elections and timeouts run on the monotonic `now_ns` instead.
fn wall_clock_ns() -> u64 {
    let since_epoch = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
    since_epoch.map_or(0, |elapsed| u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX))
}
