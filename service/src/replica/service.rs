//! The service agent: the apply loop. It reads committed entries straight from the mapped
//! log (its own read-only mapping, [`LogReader`]) up to the commit position the consensus
//! agent publishes, applies them to the service container, appends the events to the event
//! log, writes snapshots where snapshot requests say, and tells the consensus agent what to
//! send (responses, routing changes, the leader's duties) through an SPSC byte ring.
//!
//! The same agent runs inline, called by the member's duty cycle (`shared` threading), or on
//! its own thread (`dedicated`); the two agents share only atomics, the ring and two
//! control channels (rare messages: a snapshot taken, a snapshot to restore), never a lock.
//!
//! Ordering that keeps it safe: the consensus agent publishes the commit position (release)
//! only after the entries below it are in the log, and after sending any `Restore` (a
//! snapshot it installed from the leader, which reset its log); the service loads the
//! commit (acquire) before it drains its control channel, so it never applies entries of a
//! log it was told to leave. It maps only segments up to the one holding the commit:
//! segments past it may be truncated and made again.

use crate::replica::container::{Container, Output};
use crate::replica::effects::StorageError;
use crate::replica::events::{self, EventStore};
use crate::replica::records::{REPLY_BYTES_MAX, Record, RecordWriter};
use crate::replica::serving;
use crate::replica::snapshot::Snapshot;
use crossbeam_channel::{Receiver, Sender};
use ordo_core::LogBase;
use ordo_core::machine::StateMachine;
use ordo_core::{ClusterTimeNs, EntryKind, LogSource, MemberId, Position, SessionId};
use ordo_transport::ResponseStatus;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

/// The committed log as the service reads it: in place (the consensus agent's own log, when
/// the service runs inline: the same thread) or through a read-only mapping of its own (on a
/// thread of its own), which maps new segments as the commit reaches them.
pub trait CommittedLog: LogSource {
    /// Makes everything below `commit` readable.
    fn refresh_until(&mut self, commit: Position) -> Result<(), StorageError>;
    /// Everything below `applied` is applied: what holds only that may go.
    fn release_below(&mut self, applied: Position);
    /// The log was reset (a snapshot installed from the leader): read it afresh.
    fn reopen(&mut self) -> Result<(), StorageError>;
}

/// The consensus agent's log, read in place by a service on the same thread.
pub struct InPlace<'a>(pub &'a dyn LogSource);

impl LogSource for InPlace<'_> {
    fn read_log(&self, position: Position) -> Option<(Position, &[u8])> {
        self.0.read_log(position)
    }
    fn log_end(&self) -> Position {
        self.0.log_end()
    }
    fn start_position(&self) -> Position {
        self.0.start_position()
    }
    fn entry_start(&self, position: Position) -> Position {
        self.0.entry_start(position)
    }
}

impl CommittedLog for InPlace<'_> {
    fn refresh_until(&mut self, _commit: Position) -> Result<(), StorageError> {
        Ok(())
    }
    fn release_below(&mut self, _applied: Position) {}
    fn reopen(&mut self) -> Result<(), StorageError> {
        Ok(())
    }
}

/// Where the service writes the snapshots it takes: a folder of files, or (the simulator)
/// memory. Durable when `write` returns.
pub trait SnapshotSink {
    /// Writes a snapshot of the state at `base` (its encoding `body`, taken when the event
    /// log stood at `events`), keeps the newest few; returns it as stored and the position
    /// of the oldest kept (the log below it may go).
    fn write(
        &mut self,
        base: &LogBase,
        events: &LogBase,
        app: &str,
        body: &[u8],
    ) -> Result<(Snapshot, Option<Position>), StorageError>;
}

/// Entries applied between checks that the ring has room for their responses.
const APPLY_BATCH_ENTRIES: usize = 16;
/// A duty (a timer to fire, a session to close) is proposed again this long after the last
/// time, while it is still pending (its entry lost in a failover).
const DUTY_RETRY_NS: u64 = 100_000_000;

/// What the two agents share: positions and flags, each a single atomic.
#[derive(Debug, Default)]
pub struct Shared {
    /// Everything below is committed (published by consensus).
    pub commit: AtomicU64,
    /// 1 while this member leads (only a leader answers clients and proposes duties).
    pub leads: AtomicU64,
    /// The cluster time an entry sequenced now would carry (the leader's
    /// `Consensus::cluster_time`): the service's duties are judged by it.
    pub cluster_time_ns: AtomicU64,
    /// Everything below is applied (published by the service).
    pub applied: AtomicU64,
    pub applied_entries: AtomicU64,
    pub apply_ns_total: AtomicU64,
    pub apply_batch_ns_max: AtomicU64,
    /// The median and 99th percentile of the time to apply one entry, in ns, over the
    /// service's life (from an HdrHistogram, published every few hundred batches).
    pub apply_ns_p50: AtomicU64,
    pub apply_ns_p99: AtomicU64,
    pub events_position: AtomicU64,
    /// Replies withheld from clients as too large for a response frame (leader only).
    pub replies_too_large: AtomicU64,
}

/// From consensus to the service.
pub enum ToService {
    /// A snapshot installed from the leader: the log was reset to continue after it (or held
    /// it already); the state restarts from it.
    Restore(Snapshot),
}

/// From the service to consensus.
pub enum FromService {
    /// A snapshot was written (send it to followers that need it; delete the log below the
    /// oldest kept).
    SnapshotTaken { snapshot: Snapshot, oldest_kept: Option<Position> },
}

#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error(
        "snapshot at {position} does not restore: {reason}; it was written by another app or version: restore with the app that wrote it, or move it away to use the one before"
    )]
    Restore { position: Position, reason: String },
    #[error("a committed entry at {0} cannot be read from the log")]
    Unreadable(Position),
    #[error("app `{app}`, snapshot at {position}: {reason}")]
    RoundTrip { app: String, position: Position, reason: String },
}

/// Sees every output of every entry applied, with the log it was read from (the
/// simulator's exactly-once checker reads the command's id from its entry).
pub type OutputHook = Box<dyn FnMut(&Output<'_>, &dyn LogSource) + Send>;

pub struct ServiceAgent<M: StateMachine, E: EventStore, K: SnapshotSink> {
    id: MemberId,
    container: Container<M>,
    events: E,
    snapshots: K,
    app: String,
    shared: std::sync::Arc<Shared>,
    records: RecordWriter,
    control: Receiver<ToService>,
    notices: Sender<FromService>,
    session_timeout_ns: u64,
    reply_bytes_max: usize,
    /// Where a reply too large to send is described (`serving::wire_reply`).
    reply_scratch: [u8; 8],
    /// Duties sent to consensus and when, until applied.
    duties_sent: BTreeMap<(EntryKind, u64), u64>,
    duties: Vec<(EntryKind, SessionId, u64)>,
    no_duties: std::collections::BTreeSet<(EntryKind, u64)>,
    /// Per-entry apply time, ns (allocated once: recording never allocates).
    apply_ns: hdrhistogram::Histogram<u64>,
    batches: u64,
    /// Whether the snapshot round trip was checked (debug builds, first snapshot).
    round_trip_checked: bool,
    /// Check the round trip of every snapshot, in any build (the simulator).
    check_every_snapshot: bool,
    output_hook: Option<OutputHook>,
    /// The simulator's tests only: set on every container, restored ones too.
    deliberate_bug: Option<crate::deliberate::DeliberateBug>,
    /// Snapshots written since the start.
    snapshots_taken: u64,
}

/// Apply batches between publications of the apply-time percentiles.
const PERCENTILES_EVERY_BATCHES: u64 = 256;

/// Everything a service agent is made from.
pub struct ServiceParts<M: StateMachine, E: EventStore, K: SnapshotSink> {
    pub id: MemberId,
    pub container: Container<M>,
    pub events: E,
    pub snapshots: K,
    pub app: String,
    pub shared: std::sync::Arc<Shared>,
    pub records: RecordWriter,
    pub control: Receiver<ToService>,
    pub notices: Sender<FromService>,
    pub session_timeout_ns: u64,
    /// The longest reply a response frame holds (`serving::wire_reply`).
    pub reply_bytes_max: usize,
    /// Check the round trip of every snapshot, in any build (the simulator).
    pub check_every_snapshot: bool,
    pub output_hook: Option<OutputHook>,
    pub deliberate_bug: Option<crate::deliberate::DeliberateBug>,
}

pub(crate) fn restore<M: StateMachine>(snapshot: &Snapshot) -> Result<Container<M>, ServiceError> {
    Container::restore(snapshot.body())
        .map_err(|reason| ServiceError::Restore { position: snapshot.info.position(), reason })
}

impl<M: StateMachine, E: EventStore, K: SnapshotSink> ServiceAgent<M, E, K> {
    pub fn new(mut parts: ServiceParts<M, E, K>) -> Self {
        parts.container.break_deliberately(parts.deliberate_bug);
        parts.shared.applied.store(parts.container.applied_position().0, Ordering::Release);
        parts.shared.events_position.store(parts.events.events_end().0, Ordering::Release);
        ServiceAgent {
            id: parts.id,
            container: parts.container,
            events: parts.events,
            snapshots: parts.snapshots,
            app: parts.app,
            shared: parts.shared,
            records: parts.records,
            control: parts.control,
            notices: parts.notices,
            session_timeout_ns: parts.session_timeout_ns,
            reply_bytes_max: parts.reply_bytes_max,
            reply_scratch: [0; 8],
            duties_sent: BTreeMap::new(),
            duties: Vec::new(),
            no_duties: std::collections::BTreeSet::new(),
            apply_ns: hdrhistogram::Histogram::new_with_bounds(1, 60_000_000_000, 2).expect("valid bounds"),
            batches: 0,
            round_trip_checked: false,
            check_every_snapshot: parts.check_every_snapshot,
            output_hook: parts.output_hook,
            deliberate_bug: parts.deliberate_bug,
            snapshots_taken: 0,
        }
    }

    pub fn container(&self) -> &Container<M> {
        &self.container
    }

    pub fn events(&self) -> &E {
        &self.events
    }

    /// The event log, given back (the member is stopping, or crashed in the simulator).
    pub fn into_events(self) -> E {
        self.events
    }

    /// One duty cycle, reading the committed log from `log`: restore if told to, apply what
    /// is committed, propose due duties.
    pub fn do_work(&mut self, log: &mut dyn CommittedLog) -> Result<usize, ServiceError> {
        let commit = Position(self.shared.commit.load(Ordering::Acquire));
        let mut work = 0;
        while let Ok(ToService::Restore(snapshot)) = self.control.try_recv() {
            self.restore_from(&snapshot, log)?;
            work += 1;
        }
        if self.container.applied_position() < commit {
            work += self.apply(commit, log)?;
        }
        if self.shared.leads.load(Ordering::Acquire) == 1 {
            work += self.propose_duties();
        }
        Ok(work)
    }

    fn restore_from(&mut self, snapshot: &Snapshot, log: &mut dyn CommittedLog) -> Result<(), ServiceError> {
        if snapshot.info.position() <= self.container.applied_position() {
            return Ok(()); // already past it: the log after it was kept
        }
        self.container = restore(snapshot)?;
        self.container.break_deliberately(self.deliberate_bug);
        let applied = self.container.applied_position();
        events::recover(&mut self.events, applied, Some(&snapshot.info.events))?;
        log.reopen()?;
        self.shared.applied.store(applied.0, Ordering::Release);
        self.shared.events_position.store(self.events.events_end().0, Ordering::Release);
        tracing::info!("member {} restored the leader's snapshot at {applied}", self.id.0);
        Ok(())
    }

    fn apply(&mut self, commit: Position, log: &mut dyn CommittedLog) -> Result<usize, ServiceError> {
        let started = Instant::now();
        let mut applied = 0;
        let mut remapped = false;
        while self.container.applied_position() < commit && self.records.has_room(APPLY_BATCH_ENTRIES * REPLY_BYTES_MAX)
        {
            if log.log_end() <= commit {
                // The commit is past the mapped segments: map the ones made since.
                log.refresh_until(commit)?;
            }
            let leads = self.shared.leads.load(Ordering::Acquire) == 1;
            let ServiceAgent {
                container, events, records, shared, reply_bytes_max, reply_scratch, output_hook, ..
            } = self;
            let mut failed = None;
            let reader: &dyn LogSource = &*log;
            let result =
                serving::apply_committed_up_to(container, reader, commit, APPLY_BATCH_ENTRIES, &mut |output| {
                    if let Some(hook) = output_hook {
                        hook(&output, reader);
                    }
                    let record = match output {
                        Output::Event { position, session, time, event } => {
                            if let Err(error) = events.append_event(&events::event_meta(position, session, time), event)
                            {
                                failed = Some(error);
                            }
                            return;
                        }
                        Output::SessionOpened { session, client_nonce, position } => {
                            Record::Opened { session, client_nonce, position }
                        }
                        Output::SessionClosed { session, .. } => Record::Closed { session },
                        Output::TimerFired { .. } => return,
                        Output::Reply { .. } if !leads => return,
                        Output::Reply { session, sequence, position, outcome, reply } => {
                            let (status, reply) = serving::wire_reply(outcome, reply, *reply_bytes_max, reply_scratch);
                            if status == ResponseStatus::ReplyTooLarge {
                                shared.replies_too_large.fetch_add(1, Ordering::Relaxed);
                            }
                            debug_assert!(reply.len() <= REPLY_BYTES_MAX, "a response frame holds less");
                            Record::Response { session, sequence, position, status, reply }
                        }
                    };
                    let written = records.write(&record);
                    debug_assert!(written, "room was checked for a whole batch");
                });
            if let Some(error) = failed {
                return Err(error.into());
            }
            match result {
                Ok(0) if self.container.snapshot_due().is_none() => break, // not mapped yet
                Ok(count) => applied += count,
                // A segment mapped before the writer truncated an uncommitted tail across it and
                // made it anew (a new leader's entries): this mapping still shows the old file.
                // Map the log again, once (simulator seed 78 of issue 18).
                Err(_) if !remapped => {
                    remapped = true;
                    log.reopen()?;
                }
                Err(position) => return Err(ServiceError::Unreadable(position)),
            }
            if let Some(position) = self.container.take_snapshot_due() {
                self.take_snapshot(position)?;
            }
        }
        let applied_position = self.container.applied_position();
        log.release_below(applied_position);
        let elapsed_ns = started.elapsed().as_nanos() as u64;
        let shared = &self.shared;
        shared.applied.store(applied_position.0, Ordering::Release);
        shared.applied_entries.fetch_add(applied as u64, Ordering::Relaxed);
        shared.apply_ns_total.fetch_add(elapsed_ns, Ordering::Relaxed);
        shared.apply_batch_ns_max.fetch_max(elapsed_ns, Ordering::Relaxed);
        if applied > 0 {
            let _ = self.apply_ns.record_n((elapsed_ns / applied as u64).max(1), applied as u64);
            self.batches += 1;
            if self.batches.is_multiple_of(PERCENTILES_EVERY_BATCHES) || self.batches < 8 {
                shared.apply_ns_p50.store(self.apply_ns.value_at_quantile(0.5), Ordering::Relaxed);
                shared.apply_ns_p99.store(self.apply_ns.value_at_quantile(0.99), Ordering::Relaxed);
            }
        }
        shared.events_position.store(self.events.events_end().0, Ordering::Release);
        Ok(applied)
    }

    /// Writes the snapshot a snapshot-request entry asked for (the events so far made
    /// durable first: the snapshot says where they stood) and tells consensus.
    fn take_snapshot(&mut self, position: Position) -> Result<(), ServiceError> {
        debug_assert_eq!(position, self.container.applied_position());
        let started = std::time::Instant::now();
        self.events.sync_events()?;
        let mut body = Vec::new();
        self.container.encode(&mut body);
        if (cfg!(debug_assertions) && !self.round_trip_checked) || self.check_every_snapshot {
            self.round_trip_checked = true;
            Container::<M>::check_round_trip(&body).map_err(|reason| ServiceError::RoundTrip {
                app: self.app.clone(),
                position,
                reason,
            })?;
        }
        let (snapshot, oldest_kept) =
            self.snapshots.write(&self.container.log_base(), &self.events.events_base(), &self.app, &body)?;
        self.snapshots_taken += 1;
        tracing::info!(
            "member {} snapshot at {position}, state hash {:#018x}, {} bytes in {:.1} ms",
            self.id.0,
            snapshot.info.state_hash,
            snapshot.bytes().len(),
            started.elapsed().as_secs_f64() * 1e3
        );
        // The consensus agent outlives the service: a send only fails while stopping.
        let _ = self.notices.send(FromService::SnapshotTaken { snapshot, oldest_kept });
        Ok(())
    }

    /// The leader's duties for the service: due timers, idle sessions' closing, each sent
    /// again only after a while if its entry did not come back applied.
    fn propose_duties(&mut self) -> usize {
        let now = self.shared.cluster_time_ns.load(Ordering::Acquire);
        let container = &self.container;
        self.duties_sent.retain(|&(kind, id), _| container.duty_pending(kind, id));
        self.duties.clear();
        container.leader_duties(ClusterTimeNs(now), self.session_timeout_ns, &self.no_duties, &mut self.duties);
        let mut sent = 0;
        for &(kind, session, correlation) in &self.duties {
            let id = if kind == EntryKind::SessionClose { session.0 } else { correlation };
            if self.duties_sent.get(&(kind, id)).is_some_and(|&at| now.saturating_sub(at) < DUTY_RETRY_NS) {
                continue;
            }
            if !self.records.write(&Record::Duty { kind, session, correlation }) {
                break;
            }
            self.duties_sent.insert((kind, id), now);
            sent += 1;
        }
        sent
    }
}

/// A service on a thread of its own, reading the log through its own mapping.
pub struct ThreadedService<M: StateMachine, E: EventStore, K: SnapshotSink, L: CommittedLog> {
    pub agent: ServiceAgent<M, E, K>,
    pub log: L,
}

impl<M, E, K, L> crate::run::runtime::Agent for ThreadedService<M, E, K, L>
where
    M: StateMachine,
    E: EventStore + Send + 'static,
    K: SnapshotSink + Send + 'static,
    L: CommittedLog + Send + 'static,
{
    type Error = ServiceError;
    fn do_work(&mut self, _now_ns: u64) -> Result<usize, ServiceError> {
        self.agent.do_work(&mut self.log)
    }
    fn role_name(&self) -> String {
        format!("ordo-service-{}", self.agent.id.0)
    }
}
