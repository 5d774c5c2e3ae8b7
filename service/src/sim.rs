//! The deterministic simulator: N members running the real consensus module over `SimNet`
//! (every message encoded and decoded by the real frame codec), each with an in-memory log
//! and a stored vote, on one virtual clock, with seeded faults: crashes that lose the
//! unsynced tail (and may leave a torn write), partitions, loss, duplication, reordering and
//! delay, and clocks that drift. Same seed, same run.
//!
//! Checkers run after every event: at most one leader per term; cluster time never goes
//! back; a new leader holds every entry committed in an earlier term; a member never commits an entry other than the one committed at that
//! position, and never truncates below its commit; logs that agree at a committed position
//! are byte-identical up to it; and once faults stop, a leader is elected and new commands
//! commit.
//!
//! Not yet here (issue #5 continues): client sessions and timers, the service container's
//! state hashes, snapshots and catch-up from a snapshot.

use crate::consensus::{Append, Consensus, ConsensusConfig, Effect, LogView, Role};
use crate::container::{Container, Outcome, Output};
use crate::divergence::StateHashes;
use crate::effects::{self, CarryError, Outbox, Storage};
use crate::events::{self, EventStore};
use crate::mem_log::MemStorage;
use crate::serving;
use ordo_core::machine::{Context, StateMachine};
use ordo_core::{ClusterId, EntryKind, MemberId, Position, SessionId, Term};
use ordo_log::Vote;
use ordo_transport::{
    Body, Chunk, FaultConfig, FrameCodec, FrameKey, FrameType, KeyRing, ResponseStatus, SimNet, StreamConfig,
};
use std::collections::{BTreeMap, BTreeSet, VecDeque};

const TICK_NS: u64 = 1_000_000;
const MTU_BYTES: usize = 1408;
const TRACE_EVENTS: usize = 40;

const CLIENTS: u16 = 2;
const CLIENT_OUTSTANDING_MAX: usize = 2;
const CLIENT_RETRY_NS: u64 = 30 * TICK_NS;
/// Sessions idle this long are closed by the leader (one client goes quiet half way, so its
/// session times out during every run).
const SESSION_TIMEOUT_NS: u64 = 500 * TICK_NS;
/// The leader asks for a snapshot each time the log grows this much; two are kept and the
/// log below the older is deleted, so a member down a while is sent a snapshot.
const SNAPSHOT_INTERVAL_BYTES: u64 = 32 * 1024;

/// The simulator's state machine: counts commands, folds each (session, sequence) into a
/// rolling hash, emits up to two events a command, and every 50 commands schedules a timer
/// 10 ms ahead (which emits one when it fires).
#[derive(Default)]
pub struct Tally {
    count: u64,
    rolling: u64,
    timers_fired: u64,
}

impl StateMachine for Tally {
    fn apply(&mut self, ctx: &mut Context<'_>, command: &[u8]) {
        let sequence = command.get(..8).map_or(0, |b| u64::from_le_bytes(b.try_into().unwrap()));
        self.count += 1;
        let mut bytes = [0u8; 24];
        bytes[..8].copy_from_slice(&self.rolling.to_le_bytes());
        bytes[8..16].copy_from_slice(&ctx.session().0.to_le_bytes());
        bytes[16..].copy_from_slice(&sequence.to_le_bytes());
        self.rolling = ordo_core::checksum::crc64(&bytes);
        ctx.reply(&self.count.to_le_bytes());
        // Events: one for most commands, two for some, none for others.
        for k in 0..self.rolling % 3 {
            ctx.emit(&(self.count * 4 + k).to_le_bytes());
        }
        if self.count.is_multiple_of(50) {
            ctx.schedule_timer(self.count, ctx.time().0 + 10 * TICK_NS);
        }
    }
    fn on_timer(&mut self, ctx: &mut Context<'_>, timer_id: u64) {
        ctx.emit(b"timer");
        self.timers_fired += 1;
        self.rolling ^= timer_id.rotate_left(17);
    }
    fn snapshot(&self, out: &mut Vec<u8>) {
        for value in [self.count, self.rolling, self.timers_fired] {
            out.extend_from_slice(&value.to_le_bytes());
        }
    }
    fn restore(bytes: &[u8]) -> Result<Self, String> {
        let value = |i: usize| bytes.get(i * 8..i * 8 + 8).map(|b| u64::from_le_bytes(b.try_into().unwrap()));
        match (value(0), value(1), value(2), bytes.len()) {
            (Some(count), Some(rolling), Some(timers_fired), 24) => Ok(Tally { count, rolling, timers_fired }),
            _ => Err(format!("a tally snapshot is 24 bytes, not {}", bytes.len())),
        }
    }
}

/// A client: opens a session with whichever member it thinks leads, keeps a few commands
/// outstanding, follows redirects, and resends what is not answered in time with the same
/// (session, sequence).
struct Client {
    net_id: u16,
    nonce: u64,
    codec: FrameCodec,
    session: Option<SessionId>,
    leader_hint: u16,
    next_sequence: u64,
    /// Sequence → when it was last sent.
    outstanding: BTreeMap<u64, u64>,
    acked: BTreeSet<u64>,
    open_sent_ns: Option<u64>,
}

pub use crate::simulation::{Faults, SimConfig, SimFailure, SimStats};

struct Node<M: StateMachine> {
    id: MemberId,
    /// How far this member's clock runs fast (+) or slow (−), in parts per million.
    drift_ppm: i64,
    consensus: Consensus,
    storage: MemStorage,
    container: Container<M>,
    /// Service duties (timer firings, session closings) this member, as leader, proposed
    /// and has not yet seen applied.
    duties_proposed: BTreeSet<(EntryKind, u64)>,
    snapshot_requested_at: Position,
    state_hashes: StateHashes,
    codec: FrameCodec,
    alive: bool,
    restart_at_ns: u64,
}

/// The checkers' state, apart from the members so effects can be checked while a member
/// carries them out.
struct Checks {
    seed: u64,
    members: u16,
    now_ns: u64,
    elections: u64,
    installs: u64,
    leaders: BTreeMap<Term, MemberId>,
    /// Committed positions: the checksum of the entry ending at each, and the earliest term
    /// a member committed it in.
    committed: BTreeMap<Position, (u32, Term)>,
    /// Each member's commit position and stored vote, as its effects said.
    commits: Vec<Position>,
    votes: Vec<Vote>,
    /// Every vote each member granted, by term: kept when its disk is lost (what it forgot
    /// it did, it did), so a second vote in one term is caught however it comes about.
    granted: Vec<BTreeMap<Term, MemberId>>,
    /// The state hash every member had at each applied position seen.
    hashes: BTreeMap<Position, u64>,
    /// Where each (session, sequence) was applied (exactly once: never at two positions).
    applied_at: BTreeMap<(u64, u64), Position>,
    trace: VecDeque<String>,
}

/// The simulated clients' key (members hold it; clients never hold the cluster key).
const CLIENT_KEY: ordo_transport::ClientKey = ordo_transport::ClientKey { id: 1, secret: [6; 32] };

struct Sim<M: StateMachine> {
    /// Command `k` of client `c`: the app's workload (the same bytes every time it is sent).
    command: fn(u64, u64) -> Vec<u8>,
    config: SimConfig,
    rng: fastrand::Rng,
    net: SimNet,
    nodes: Vec<Node<M>>,
    clients: Vec<Client>,
    now_ns: u64,
    stats: SimStats,
    checks: Checks,
    isolated: Option<u16>,
    heal_at_ns: u64,
    faults_end_ns: u64,
    commit_at_faults_end: Position,
}

fn consensus_config(config: &SimConfig, member: MemberId, incarnation: u64) -> ConsensusConfig {
    ConsensusConfig {
        member,
        members: (1..=config.members).map(MemberId).collect(),
        election_timeout_ns: 150 * TICK_NS,
        heartbeat_interval_ns: 20 * TICK_NS,
        stream: StreamConfig {
            window_bytes: 256 * 1024,
            retransmit_timeout_ns: 30 * TICK_NS,
            nak_interval_ns: 5 * TICK_NS,
        },
        entry_bytes_max: 64 * 1024,
        snapshot_bytes_max: 1 << 20,
        seed: config.seed.wrapping_mul(31).wrapping_add(member.0 as u64).wrapping_add(incarnation << 16),
        deliberate_bug: config.deliberate_bug,
    }
}

/// The `Tally` workload: command `k` is `k` itself.
pub fn tally_command(_client: u64, sequence: u64) -> Vec<u8> {
    sequence.to_le_bytes().to_vec()
}

/// Runs one seed with the `Tally` machine; `Ok` with its statistics, or the first checker
/// that failed.
pub fn run(config: SimConfig) -> Result<SimStats, SimFailure> {
    run_app::<Tally>(config, tally_command)
}

/// Runs one seed with app `M` and its workload `command` (command `k` of client `c`); the
/// app's own invariants (`StateMachine::check_invariants`) are checked on every member after
/// every batch it applies.
pub fn run_app<M: StateMachine + Default>(
    config: SimConfig,
    command: fn(u64, u64) -> Vec<u8>,
) -> Result<SimStats, SimFailure> {
    let mut rng = fastrand::Rng::with_seed(config.seed);
    let network = if config.faults.network {
        FaultConfig {
            loss: 0.02,
            duplicate: 0.02,
            reorder: 0.05,
            reorder_delay_ns: 5 * TICK_NS,
            latency_ns: 100_000,
            jitter_ns: 400_000,
        }
    } else {
        FaultConfig { latency_ns: 100_000, ..FaultConfig::NONE }
    };
    let mut keys = KeyRing::new(FrameKey::new(&[5; 32]));
    // Odd seeds encrypt (AES-GCM under per-incarnation keys), even ones authenticate only:
    // both codecs run under every fault.
    let security = if config.seed % 2 == 1 { ordo_core::Security::Aead } else { ordo_core::Security::Mac };
    keys.add_client(CLIENT_KEY.id, FrameKey::new(&CLIENT_KEY.secret));
    let nodes = (1..=config.members)
        .map(|m| {
            let id = MemberId(m);
            Node {
                id,
                drift_ppm: if config.faults.clock_drift { rng.i64(-20_000..=20_000) } else { 0 },
                consensus: Consensus::new(consensus_config(&config, id, 0), Term::ZERO, None, 0),
                storage: MemStorage::default(),
                container: Container::new(M::default()),
                duties_proposed: BTreeSet::new(),
                snapshot_requested_at: Position::ZERO,
                state_hashes: StateHashes::new(config.members as usize),
                codec: FrameCodec::new(ClusterId(1), id, security, keys.clone(), MTU_BYTES),
                alive: true,
                restart_at_ns: 0,
            }
        })
        .collect();
    let members = config.members as usize;
    let clients = (0..CLIENTS)
        .map(|c| Client {
            net_id: config.members + c,
            nonce: c as u64,
            codec: FrameCodec::new(
                ClusterId(1),
                MemberId(100 + c),
                security,
                KeyRing::for_client(&CLIENT_KEY),
                MTU_BYTES,
            )
            .with_key_id(CLIENT_KEY.id),
            session: None,
            leader_hint: c % config.members,
            next_sequence: 1,
            outstanding: BTreeMap::new(),
            acked: BTreeSet::new(),
            open_sent_ns: None,
        })
        .collect();
    let mut sim = Sim {
        command,
        clients,
        net: SimNet::new(rng.u64(..), network),
        rng: fastrand::Rng::with_seed(rng.u64(..)),
        nodes,
        now_ns: 0,
        stats: SimStats::default(),
        checks: Checks {
            seed: config.seed,
            members: config.members,
            now_ns: 0,
            elections: 0,
            installs: 0,
            leaders: BTreeMap::new(),
            committed: BTreeMap::new(),
            commits: vec![Position::ZERO; members],
            votes: vec![Vote::default(); members],
            granted: vec![BTreeMap::new(); members],
            hashes: BTreeMap::new(),
            applied_at: BTreeMap::new(),
            trace: VecDeque::with_capacity(TRACE_EVENTS),
        },
        isolated: None,
        heal_at_ns: 0,
        faults_end_ns: config.duration_ns * 7 / 10,
        commit_at_faults_end: Position::ZERO,
        config,
    };
    let result = sim.run();
    sim.stats.elections = sim.checks.elections;
    sim.stats.snapshots_installed = sim.checks.installs;
    sim.stats.events_bytes = sim.nodes.iter().map(|n| n.storage.events.end().0).max().unwrap_or(0);
    sim.stats.acked = sim.clients.iter().map(|c| c.acked.len() as u64).sum();
    if let Some(most) = sim.nodes.iter().max_by_key(|n| n.container.applied_position()) {
        sim.stats.sessions_open = most.container.session_count() as u64;
        sim.stats.timers_fired = most.container.timers_fired();
    }
    result?;
    Ok(sim.stats)
}

/// Sends a member's messages through SimNet, encoded by its real frame codec.
struct SimOutbox<'a> {
    net: &'a mut SimNet,
    codec: &'a mut FrameCodec,
    from: u16,
}

impl SimOutbox<'_> {
    fn send_frame(&mut self, to: MemberId, term: Term, body: &Body<'_>) {
        self.send_keyed(to, self.codec.key_id(), term, body);
    }

    /// A member's answer to a client, sealed under the client's key.
    fn send_to_client(&mut self, to: MemberId, term: Term, body: &Body<'_>) {
        self.send_keyed(to, CLIENT_KEY.id, term, body);
    }

    fn send_keyed(&mut self, to: MemberId, key_id: u32, term: Term, body: &Body<'_>) {
        let mut buffer = [0u8; MTU_BYTES];
        let length = self.codec.encode_keyed(&mut buffer, term, body, key_id).expect("a frame fits the MTU");
        self.net.send(self.from, to.0 - 1, &buffer[..length]);
    }
}

impl Outbox for SimOutbox<'_> {
    fn send(&mut self, to: MemberId, term: Term, message: Body<'static>) {
        self.send_frame(to, term, &message);
    }
}

impl Checks {
    fn fail(&self, checker: &'static str, message: String) -> SimFailure {
        let trace = self.trace.iter().cloned().collect();
        let members = if self.members == 3 { String::new() } else { format!(" --members {}", self.members) };
        let reproduce = format!("cargo run --release -p ordo-service --bin ordo-sim -- --seed {}{members}", self.seed);
        SimFailure { seed: self.seed, checker, message, trace, reproduce }
    }

    fn note(&mut self, event: String) {
        if self.trace.len() == TRACE_EVENTS {
            self.trace.pop_front();
        }
        self.trace.push_back(format!("{:>8.3} ms  {event}", self.now_ns as f64 / 1e6));
    }

    /// Checks one effect of member `index` before it is carried out against `log`.
    fn before(&mut self, index: usize, effect: &Effect<'_>, log: &dyn LogView) -> Result<(), SimFailure> {
        let member = index + 1;
        match *effect {
            Effect::StoreVote { term, voted_for } => {
                let stored = self.votes[index];
                let changes_vote = term == stored.term
                    && stored.voted_for.is_some()
                    && voted_for.is_some()
                    && voted_for != stored.voted_for;
                if term < stored.term || changes_vote {
                    return Err(self.fail(
                        "one vote per term",
                        format!("member {member} changed its vote in {term}: {stored:?} -> {voted_for:?}"),
                    ));
                }
                if let Some(candidate) = voted_for {
                    let earlier = *self.granted[index].entry(term).or_insert(candidate);
                    if earlier != candidate {
                        let message = format!("member {member} voted for {candidate:?} in {term}, having voted for {earlier:?}");
                        return Err(self.fail("one vote per term", message));
                    }
                }
                self.votes[index] = Vote { term, voted_for };
            }
            Effect::Truncate { position } => {
                if position < self.commits[index] {
                    let message =
                        format!("member {member} truncates to {position} below its commit {}", self.commits[index]);
                    return Err(self.fail("never truncate committed", message));
                }
                if let Some((&committed, &(checksum, _))) = self.committed.range(..=log.log_end()).next_back()
                    && position < committed
                    && log.checksum_before(committed) == Some(checksum)
                {
                    let message =
                        format!("member {member} truncates to {position}, below committed {committed} that it holds");
                    return Err(self.fail("committed never lost", message));
                }
                self.note(format!("member {member} truncates to {position}"));
            }
            Effect::Commit { position } => self.check_commit(index, position, log)?,
            Effect::InstallSnapshot { position } => {
                self.installs += 1;
                self.note(format!("member {member} installs the leader's snapshot at {position}"));
            }
            Effect::Recovered { term, voted_for } => {
                // Not a vote granted: the member records the leader it follows as its vote.
                self.votes[index] = Vote { term, voted_for };
                self.note(format!("member {member} caught up after losing its disk: it votes again"));
            }
            Effect::Append { meta, .. } if meta.timestamp < log.time_max() => {
                let message =
                    format!("member {member} stamps {} after its log reached {}", meta.timestamp, log.time_max());
                return Err(self.fail("cluster time never goes back", message));
            }
            Effect::RoleChanged { role, term, leader } => {
                self.note(format!("member {member} is {role:?} in {term} (leader {leader:?})"));
                if role == Role::Leader {
                    self.check_new_leader(index, term, log)?;
                }
            }
            _ => {}
        }
        Ok(())
    }

    fn check_new_leader(&mut self, index: usize, term: Term, log: &dyn LogView) -> Result<(), SimFailure> {
        self.elections += 1;
        let id = MemberId(index as u16 + 1);
        if let Some(&other) = self.leaders.get(&term)
            && other != id
        {
            return Err(self.fail("one leader per term", format!("members {} and {} both lead {term}", other.0, id.0)));
        }
        self.leaders.insert(term, id);
        // Leader completeness: a leader of term L holds every entry committed in a term
        // before L. (A stale leader of an older term, elected while a newer one commits,
        // need not hold the newer term's commits; it will step down when it hears of it.)
        // Commits form a prefix, so the highest committed before L vouches for the rest.
        let committed_before = self.committed.iter().rev().find(|(_, (_, committed_in))| *committed_in < term);
        if let Some((&position, &(checksum, committed_in))) = committed_before
            && position >= log.log_start()
            && log.checksum_before(position) != Some(checksum)
        {
            let message = format!(
                "member {} leads {term} without the entry ending at {position}, committed in {committed_in} (its log ends at {})",
                id.0,
                log.log_end()
            );
            return Err(self.fail("committed never lost", message));
        }
        Ok(())
    }

    fn check_commit(&mut self, index: usize, position: Position, log: &dyn LogView) -> Result<(), SimFailure> {
        let member = index + 1;
        if position < self.commits[index] {
            return Err(self.fail("commit only grows", format!("member {member} moved its commit back to {position}")));
        }
        if position < log.log_start() {
            // Below its snapshot (a restarted member's commit climbing back): nothing to check.
            self.commits[index] = position;
            return Ok(());
        }
        let Some(checksum) = log.checksum_before(position) else {
            let message = format!(
                "member {member} commits {position}, not an entry boundary of its log {}..{}",
                log.log_start(),
                log.log_end()
            );
            return Err(self.fail("commit within the log", message));
        };
        if self.committed.get(&position).is_some_and(|&(expected, _)| expected != checksum) {
            return Err(self
                .fail("committed never changed", format!("member {member} commits a different entry at {position}")));
        }
        // Everything committed below must be in this member's log too (or in its snapshot).
        if let Some((&below, &(expected, _))) = self.committed.range(..position).next_back()
            && below >= log.log_start()
            && log.checksum_before(below) != Some(expected)
        {
            return Err(self.fail(
                "committed never changed",
                format!("member {member} commits {position} but differs at committed {below}"),
            ));
        }
        self.commits[index] = position;
        // The member's current term is the one it last stored.
        let term = self.votes[index].term;
        self.committed.entry(position).and_modify(|(_, t)| *t = (*t).min(term)).or_insert((checksum, term));
        Ok(())
    }
}

impl<M: StateMachine + Default> Sim<M> {
    /// The time on member `index`'s own clock.
    fn local_now(&self, index: usize) -> u64 {
        let drift = (self.now_ns / 1_000_000) as i64 * self.nodes[index].drift_ppm / 1_000;
        self.now_ns.saturating_add_signed(drift)
    }

    fn note(&mut self, event: String) {
        self.checks.now_ns = self.now_ns;
        self.checks.note(event);
    }

    fn run(&mut self) -> Result<(), SimFailure> {
        let mut next_tick_ns = 0;
        let mut next_clients_ns = 0;
        let mut faults_stopped = false;
        while self.now_ns < self.config.duration_ns {
            self.checks.now_ns = self.now_ns;
            // Deliver everything due, then tick.
            while let Some((from, to, bytes)) = self.net.deliver() {
                self.stats.messages += 1;
                self.deliver(from, to, bytes)?;
            }
            if self.now_ns >= next_tick_ns {
                next_tick_ns += TICK_NS;
                self.stats.ticks += 1;
                if self.now_ns < self.faults_end_ns {
                    self.inject_faults();
                } else if !faults_stopped {
                    faults_stopped = true;
                    self.stop_faults();
                }
                self.restart_due();
                for index in 0..self.nodes.len() {
                    if self.nodes[index].alive {
                        let mut out = Vec::new();
                        let now = self.local_now(index);
                        let node = &mut self.nodes[index];
                        // One drifting clock a member, for its timeouts and its stamps alike.
                        node.consensus.set_clock(now);
                        node.consensus.on_tick(now, &node.storage.log, &mut out);
                        self.carry_out(index, out)?;
                    }
                }
                if self.now_ns >= next_clients_ns {
                    next_clients_ns += self.config.client_interval_ns;
                    self.step_clients();
                }
                self.propose_duties()?;
                for index in 0..self.nodes.len() {
                    self.send_appends(index);
                }
                if self.stats.ticks.is_multiple_of(50) {
                    self.check_logs_match()?;
                }
            }
            let next_due = self.net.next_due_ns().unwrap_or(u64::MAX);
            self.now_ns = next_due.min(next_tick_ns).max(self.now_ns);
            self.net.advance_to(self.now_ns);
        }
        self.check_logs_match()?;
        self.check_exactly_once()?;
        let commit_now = self.checks.commits.iter().copied().max().unwrap_or_default();
        self.stats.commit_position = commit_now.0;
        if commit_now <= self.commit_at_faults_end {
            let message = format!(
                "no new command committed in the {} ms after faults stopped (commit stuck at {})",
                (self.config.duration_ns - self.faults_end_ns) / 1_000_000,
                commit_now
            );
            return Err(self.checks.fail("liveness", message));
        }
        // Every member catches up with what was committed when faults stopped.
        if let Some(behind) = self.nodes.iter().find(|n| n.container.applied_position() < self.commit_at_faults_end) {
            let message = format!(
                "member {} applied only to {} of the {} committed when faults stopped (its log {}..{})",
                behind.id.0,
                behind.container.applied_position(),
                self.commit_at_faults_end,
                behind.storage.log.start(),
                behind.storage.log.end()
            );
            return Err(self.checks.fail("liveness", message));
        }
        Ok(())
    }

    fn inject_faults(&mut self) {
        let faults = self.config.faults;
        let members = self.config.members;
        if faults.crashes && self.rng.u32(..1000) < 4 {
            let alive = self.nodes.iter().filter(|n| n.alive).count();
            let index = self.rng.usize(..self.nodes.len());
            // Crash at most a minority at once, so the cluster can still make progress.
            if self.nodes[index].alive && alive > (members as usize / 2) + 1 {
                let torn: Vec<u8> = (0..self.rng.usize(..100)).map(|_| self.rng.u8(..)).collect();
                let keep_unsynced = if self.rng.bool() { 0 } else { self.rng.usize(..4096) };
                let flip_bit = (self.rng.u32(..10) < 3).then(|| self.rng.u64(..));
                // One member at a time loses its disk: with a second, the cluster would
                // rightly wait for an operator (a majority may be what lost the data).
                let recovering = self.nodes.iter().any(|n| n.storage.recovering || n.consensus.recovering());
                let lose_disk = faults.disk_loss && !recovering && self.rng.u32(..5) == 0;
                let node = &mut self.nodes[index];
                node.alive = false;
                node.storage.log.crash(keep_unsynced, flip_bit, &torn);
                node.storage.events.crash(0, None, &[]);
                if lose_disk {
                    // What `DiskStorage` finds on a folder with no vote, log or snapshot.
                    node.storage = MemStorage { recovering: true, ..MemStorage::default() };
                    self.checks.votes[index] = Vote::default();
                    self.stats.disks_lost += 1;
                }
                node.restart_at_ns = self.now_ns + self.rng.u64(10..500) * TICK_NS;
                self.stats.crashes += 1;
                let lost = if lose_disk { ", its disk lost" } else { "" };
                let note = format!("crash member {}{lost} (log back to {})", index + 1, self.nodes[index].storage.log.end());
                self.note(note);
            }
        }
        if faults.partitions {
            if self.isolated.is_none() && self.rng.u32(..1000) < 3 {
                let victim = self.rng.u16(..members);
                if self.rng.bool() {
                    self.net.isolate(victim, members);
                    self.note(format!("isolate member {}", victim + 1));
                } else {
                    let other = (victim + 1 + self.rng.u16(..members - 1)) % members;
                    self.net.cut(victim, other);
                    self.note(format!("cut member {} -> member {}", victim + 1, other + 1));
                }
                self.isolated = Some(victim);
                self.heal_at_ns = self.now_ns + self.rng.u64(50..800) * TICK_NS;
            } else if self.isolated.is_some() && self.now_ns >= self.heal_at_ns {
                self.net.heal();
                self.isolated = None;
                self.note("heal the network".to_string());
            }
        }
    }

    fn stop_faults(&mut self) {
        self.net.heal();
        self.net.set_faults(FaultConfig { latency_ns: 100_000, ..FaultConfig::NONE });
        self.isolated = None;
        for node in &mut self.nodes {
            if !node.alive {
                node.restart_at_ns = self.now_ns;
            }
        }
        self.commit_at_faults_end = self.checks.commits.iter().copied().max().unwrap_or_default();
        self.note(format!("faults stop; commit at {}", self.commit_at_faults_end));
    }

    fn restart_due(&mut self) {
        for index in 0..self.nodes.len() {
            let now = self.local_now(index);
            let node = &mut self.nodes[index];
            if !node.alive && self.now_ns >= node.restart_at_ns {
                node.alive = true;
                let config = consensus_config(&self.config, node.id, self.stats.crashes);
                let vote = node.storage.vote;
                let (term, voted_for) =
                    Consensus::starting_vote(vote.term, vote.voted_for, node.storage.log.last_term());
                node.consensus = Consensus::new(config, term, voted_for, now);
                if let Some(snapshot) = node.storage.snapshots.last() {
                    node.consensus.note_committed(snapshot.info.position()); // as the real member
                }
                if node.storage.recovering {
                    node.consensus.start_recovering();
                }
                // A restarted member starts from its newest snapshot (or empty) and applies
                // its log after it as the commit position comes back.
                node.container = Container::new(M::default());
                let events = &mut node.storage.events;
                if let Err(error) = events::recover(events, Position::ZERO, None) {
                    unreachable!("the in-memory event log cannot fail: {error}");
                }
                node.duties_proposed.clear();
                node.snapshot_requested_at = Position::ZERO;
                self.checks.commits[index] = Position::ZERO;
                let note = format!("restart member {} at {} (term {})", index + 1, node.storage.log.end(), vote.term);
                self.note(note);
            }
        }
    }

    /// Each client sends what it may: a session opening, new commands, resends.
    fn step_clients(&mut self) {
        let now = self.now_ns;
        let quiet_after_ns = self.config.duration_ns / 2;
        let command_of = self.command;
        for client in &mut self.clients {
            if client.nonce == 1 && now >= quiet_after_ns && client.outstanding.is_empty() {
                continue; // this client goes quiet: the leader will close its session
            }
            let to = client.leader_hint;
            let mut outbox = SimOutbox { net: &mut self.net, codec: &mut client.codec, from: client.net_id };
            let Some(session) = client.session else {
                if client.open_sent_ns.is_none_or(|at| now - at >= CLIENT_RETRY_NS) {
                    client.open_sent_ns = Some(now);
                    outbox.send_frame(MemberId(to + 1), Term::ZERO, &Body::SessionOpen { client_nonce: client.nonce });
                    client.leader_hint = (client.leader_hint + 1) % self.config.members; // try another next time
                }
                continue;
            };
            let mut resent = false;
            for (&sequence, sent_at) in client.outstanding.iter_mut() {
                if now - *sent_at >= CLIENT_RETRY_NS {
                    *sent_at = now;
                    resent = true;
                    let command = command_of(client.nonce, sequence);
                    outbox.send_frame(
                        MemberId(to + 1),
                        Term::ZERO,
                        &Body::ClientRequest { session, sequence, command: &command },
                    );
                }
            }
            if resent {
                // No answer in time: the hint may be stale; the next member will redirect.
                client.leader_hint = (client.leader_hint + 1) % self.config.members;
            }
            while client.outstanding.len() < CLIENT_OUTSTANDING_MAX {
                let sequence = client.next_sequence;
                client.next_sequence += 1;
                client.outstanding.insert(sequence, now);
                let command = command_of(client.nonce, sequence);
                outbox.send_frame(
                    MemberId(to + 1),
                    Term::ZERO,
                    &Body::ClientRequest { session, sequence, command: &command },
                );
            }
        }
    }

    fn client_receives(&mut self, client: usize, mut bytes: Vec<u8>) -> Result<(), SimFailure> {
        let client = &mut self.clients[client];
        let frame = match client.codec.decode(&mut bytes) {
            Ok(frame) => frame,
            Err(error) => {
                return Err(self.checks.fail("codec", format!("a frame to a client did not decode: {error}")));
            }
        };
        match frame.body {
            Body::Redirect { leader } if leader.0 >= 1 => client.leader_hint = leader.0 - 1,
            Body::ClientResponse { session, sequence: 0, status: ResponseStatus::SessionOpened, reply, .. }
                if client.session.is_none() && reply == client.nonce.to_le_bytes() =>
            {
                client.session = Some(session);
                client.leader_hint = frame.header.sender().0 - 1;
            }
            Body::ClientResponse { session, sequence, status, .. } if Some(session) == client.session => {
                let ok = status.is_ok();
                if client.outstanding.remove(&sequence).is_some() && ok {
                    client.acked.insert(sequence);
                }
                client.leader_hint = frame.header.sender().0 - 1;
            }
            _ => {}
        }
        Ok(())
    }

    /// A client's frame at a member: sequenced if it leads, else answered with a redirect.
    fn member_takes_client_frame(&mut self, index: usize, from: u16, body: Body<'_>) -> Result<(), SimFailure> {
        let node = &mut self.nodes[index];
        let mut out = Vec::new();
        match serving::take_client_frame(&mut node.consensus, &body, &mut out) {
            None => self.carry_out(index, out),
            Some(redirect) => {
                let mut outbox = SimOutbox { net: &mut self.net, codec: &mut node.codec, from: index as u16 };
                outbox.send_to_client(MemberId(from + 1), node.consensus.term(), &redirect);
                Ok(())
            }
        }
    }

    /// The leader sequences the service's duties: due timers, idle sessions' closing.
    fn propose_duties(&mut self) -> Result<(), SimFailure> {
        let mut duties = Vec::new();
        for index in 0..self.nodes.len() {
            let node = &mut self.nodes[index];
            if !node.alive || node.consensus.role() != Role::Leader {
                continue;
            }
            let mut out = Vec::new();
            let end = node.storage.log.end();
            if end.0 >= node.snapshot_requested_at.0 + SNAPSHOT_INTERVAL_BYTES {
                node.snapshot_requested_at = end;
                let _ = node.consensus.propose_entry(EntryKind::SnapshotRequest, SessionId(0), 0, &[], &mut out);
            }
            let (consensus, container) = (&mut node.consensus, &node.container);
            serving::propose_duties(
                consensus,
                container,
                &mut node.duties_proposed,
                SESSION_TIMEOUT_NS,
                &mut duties,
                &mut out,
            );
            if !out.is_empty() {
                self.note(format!("member {} proposes {duties:?}", index + 1));
                self.carry_out(index, out)?;
            }
        }
        Ok(())
    }

    /// Applies what member `index` has committed (from its newest snapshot, when that is
    /// ahead: installed from the leader, or after a restart), snapshotting where asked; the
    /// leader answers the clients. Checks that every member has the same state hash at the
    /// same applied position, and that no command is applied at two positions.
    fn apply_committed(&mut self, index: usize) -> Result<(), SimFailure> {
        let node = &mut self.nodes[index];
        if let Some(snapshot) = node.storage.newest_snapshot()
            && snapshot.info.position() > node.container.applied_position()
        {
            let position = snapshot.info.position();
            node.container = match Container::restore(snapshot.body()) {
                Ok(container) => container,
                Err(reason) => {
                    let message = format!("member {} cannot restore its snapshot at {position}: {reason}", index + 1);
                    return Err(self.checks.fail("snapshot", message));
                }
            };
            let snapshot_events = snapshot.info.events;
            let applied = node.container.applied_position();
            if let Err(error) = events::recover(&mut node.storage.events, applied, Some(&snapshot_events)) {
                return Err(self.checks.fail("snapshot", format!("member {}: {error}", index + 1)));
            }
            self.note(format!("member {} restores its snapshot at {position}", index + 1));
            self.check_hash(index)?;
        }
        loop {
            self.apply_some(index)?;
            let node = &mut self.nodes[index];
            let Some(position) = node.container.take_snapshot_due() else { return Ok(()) };
            let mut body = Vec::new();
            node.container.encode(&mut body);
            if let Err(reason) = Container::<M>::check_round_trip(&body) {
                return Err(self.checks.fail("snapshot", format!("member {} at {position}: {reason}", index + 1)));
            }
            node.storage.events.sync();
            let events = node.storage.events.events_base();
            if let Err(error) = node.storage.store_snapshot(&node.container.log_base(), &events, &body) {
                return Err(self.checks.fail("snapshot", format!("member {} could not snapshot: {error}", index + 1)));
            }
            self.stats.snapshots += 1;
            let state_hash = ordo_core::checksum::crc64(&body);
            node.state_hashes.record(node.id, position, state_hash);
            let mut outbox = SimOutbox { net: &mut self.net, codec: &mut node.codec, from: index as u16 };
            for member in (1..=self.config.members).map(MemberId).filter(|&m| m != node.id) {
                outbox.send_frame(member, node.consensus.term(), &Body::StateHash { position, state_hash });
            }
        }
    }

    fn apply_some(&mut self, index: usize) -> Result<(), SimFailure> {
        let members = self.config.members;
        let node = &mut self.nodes[index];
        let commit = node.consensus.commit_position();
        let leads = node.consensus.role() == Role::Leader;
        let term = node.consensus.term();
        let reply_bytes_max = node.codec.capacity_bytes(ordo_transport::FrameType::ClientResponse);
        let Node { container, storage, .. } = node;
        let applied_at = &mut self.checks.applied_at;
        let events = &mut storage.events;
        let mut twice = None;
        // (session, nonce of an opening, response): routed once the container is free.
        let mut responses: Vec<(SessionId, Option<u64>, Body<'static>, Vec<u8>)> = Vec::new();
        let applied = serving::apply_committed(container, &storage.log, commit, &mut |output| {
            if let Output::Event { position, session, time, event } = output {
                events.append(&events::event_meta(position, session, time), event).expect("an event fits");
                return;
            }
            if let Output::Reply { session, sequence, position, outcome: Outcome::Applied, .. } = output {
                let first = *applied_at.entry((session.0, sequence)).or_insert(position);
                if first != position {
                    twice = Some((session, sequence, first, position));
                }
            }
            let mut nonce = [0u8; 8];
            let Some(body) = serving::response(&output, reply_bytes_max, &mut nonce).filter(|_| leads) else { return };
            let opening =
                if let Output::SessionOpened { client_nonce, .. } = output { Some(client_nonce) } else { None };
            if let Body::ClientResponse { session, sequence, position, status, reply } = body {
                let owned = Body::ClientResponse { session, sequence, position, status, reply: &[] };
                responses.push((session, opening, owned, reply.to_vec()));
            }
        });
        if let Some((session, sequence, first, again)) = twice {
            let message = format!(
                "member {} applied session {} sequence {sequence} at {again}, already applied at {first}",
                index + 1,
                session.0
            );
            return Err(self.checks.fail("exactly once", message));
        }
        let node = &mut self.nodes[index];
        for (session, opening, body, reply) in responses {
            // A client's net id follows from its nonce here (the real member routes by address).
            let Some(client_nonce) = opening.or_else(|| node.container.session_nonce(session)) else { continue };
            let Body::ClientResponse { session, sequence, position, status, .. } = body else { continue };
            let body = Body::ClientResponse { session, sequence, position, status, reply: &reply };
            let mut outbox = SimOutbox { net: &mut self.net, codec: &mut node.codec, from: index as u16 };
            outbox.send_to_client(MemberId(members + client_nonce as u16 + 1), term, &body);
        }
        if let Err(message) = self.nodes[index].container.machine().check_invariants() {
            return Err(self.checks.fail("app invariant", format!("member {}: {message}", index + 1)));
        }
        match applied {
            Ok(0) => Ok(()),
            Ok(_) => self.check_hash(index),
            Err(position) => {
                let message = format!("member {} has no entry at {position} below its commit {commit}", index + 1);
                Err(self.checks.fail("apply", message))
            }
        }
    }

    /// Members at the same applied position have the same state hash.
    fn check_hash(&mut self, index: usize) -> Result<(), SimFailure> {
        let node = &self.nodes[index];
        let hash = node.container.state_hash();
        let position = node.container.applied_position();
        match self.checks.hashes.get(&position) {
            Some(&expected) if expected != hash => {
                let message = format!(
                    "member {} has state hash {hash:#018x} at {position}, another had {expected:#018x}",
                    index + 1
                );
                Err(self.checks.fail("state machine safety", message))
            }
            Some(_) => Ok(()),
            None => {
                self.checks.hashes.insert(position, hash);
                Ok(())
            }
        }
    }

    /// Every command a client saw acknowledged was applied (at one position: `apply_some`
    /// checks it is never applied at two), and no member reported a diverging replica.
    fn check_exactly_once(&self) -> Result<(), SimFailure> {
        for client in &self.clients {
            let Some(session) = client.session else { continue };
            for &sequence in &client.acked {
                if !self.checks.applied_at.contains_key(&(session.0, sequence)) {
                    let message =
                        format!("session {} sequence {sequence} was acknowledged but never applied", session.0);
                    return Err(self.checks.fail("exactly once", message));
                }
            }
        }
        for node in &self.nodes {
            if let Some(divergence) = node.state_hashes.divergences().first() {
                let message = format!("member {} saw a divergence: {divergence:?}", node.id.0);
                return Err(self.checks.fail("state machine safety", message));
            }
        }
        Ok(())
    }

    fn send_appends(&mut self, index: usize) {
        let now = self.local_now(index);
        let Node { consensus, storage, codec, alive, .. } = &mut self.nodes[index];
        if !*alive {
            return;
        }
        let capacity = codec.capacity_bytes(FrameType::Append);
        let snapshot_capacity = codec.capacity_bytes(FrameType::SnapshotChunk);
        let mut outbox = SimOutbox { net: &mut self.net, codec, from: index as u16 };
        consensus.poll_appends(&storage.log, capacity, 16, &mut |to, term, append| {
            outbox.send_frame(to, term, &append.chunk.to_body(append.commit_position));
        });
        if consensus.installing() {
            let snapshot = effects::snapshot_to_send(storage);
            consensus.poll_snapshots(now, snapshot, snapshot_capacity, 16, &mut |to, term, chunk| {
                outbox.send_frame(to, term, &chunk);
            });
        }
    }

    fn deliver(&mut self, from: u16, to: u16, mut bytes: Vec<u8>) -> Result<(), SimFailure> {
        if to >= self.config.members {
            return self.client_receives((to - self.config.members) as usize, bytes);
        }
        let index = to as usize;
        if !self.nodes[index].alive {
            return Ok(());
        }
        let frame = match self.nodes[index].codec.decode(&mut bytes) {
            Ok(frame) => frame,
            Err(error) => {
                return Err(self
                    .checks
                    .fail("codec", format!("a frame from member {} did not decode: {error}", from + 1)));
            }
        };
        let (sender, term) = (frame.header.sender(), frame.header.term());
        let members = self.config.members;
        let is_peer = |m: MemberId| m.0 >= 1 && m.0 <= members && m.0 != to + 1;
        if !serving::admits(frame.body.frame_type(), frame.header.key_id.get(), sender, is_peer) {
            let message = format!("member {} refused a frame from {} it should take", to + 1, from + 1);
            return Err(self.checks.fail("codec", message));
        }
        let mut out = Vec::new();
        let now = self.local_now(index);
        let node = &mut self.nodes[index];
        match frame.body {
            Body::Append { commit_position, .. } => {
                let chunk = Chunk::from_body(&frame.body).expect("an Append");
                node.consensus.on_append(
                    now,
                    sender,
                    term,
                    Append { chunk, commit_position },
                    &node.storage.log,
                    &mut out,
                );
            }
            Body::SessionOpen { .. } | Body::ClientRequest { .. } => {
                return self.member_takes_client_frame(index, from, frame.body);
            }
            Body::StateHash { position, state_hash } => {
                node.state_hashes.record(sender, position, state_hash);
                return Ok(());
            }
            body => node.consensus.on_message(now, sender, term, body, &node.storage.log, &mut out),
        }
        self.carry_out(index, out)
    }

    /// Carries out a member's effects with the same code the real member uses, each checked
    /// first.
    fn carry_out(&mut self, index: usize, mut out: Vec<Effect<'_>>) -> Result<(), SimFailure> {
        let node = &mut self.nodes[index];
        let mut outbox = SimOutbox { net: &mut self.net, codec: &mut node.codec, from: index as u16 };
        let checks = &mut self.checks;
        let result =
            effects::carry_out(&mut node.consensus, &mut node.storage, &mut outbox, &mut out, &mut |effect, log| {
                checks.before(index, effect, log)
            });
        match result {
            Ok(()) => self.apply_committed(index),
            Err(CarryError::Check(failure)) => Err(failure),
            Err(CarryError::Storage(error)) => {
                Err(self.checks.fail("storage", format!("member {} could not carry out an effect: {error}", index + 1)))
            }
        }
    }

    /// Logs that agree at the highest committed position are byte-identical below it, and
    /// a majority holds it (less those that lost their disk and have not caught up: what a
    /// lost disk held is gone, which is why such a member does not vote).
    fn check_logs_match(&self) -> Result<(), SimFailure> {
        let Some((&position, &(checksum, _))) = self.checks.committed.iter().next_back() else { return Ok(()) };
        let holders: Vec<&Node<M>> =
            self.nodes.iter().filter(|n| n.storage.log.checksum_before(position) == Some(checksum)).collect();
        let recovering = self.nodes.iter().filter(|n| n.storage.recovering).count();
        if holders.len() + recovering < self.nodes.len() / 2 + 1 {
            let message = format!(
                "only {} members hold the committed prefix up to {position} ({recovering} lost their disk)",
                holders.len()
            );
            return Err(self.checks.fail("committed never lost", message));
        }
        // Event logs are identical wherever two members both hold events.
        for pair in self.nodes.windows(2) {
            let (a, b) = (&pair[0].storage.events, &pair[1].storage.events);
            let (from, to) = (a.start().max(b.start()), a.end().min(b.end()));
            if from < to && a.bytes_between(from, to) != b.bytes_between(from, to) {
                let message =
                    format!("members {} and {} have different events in {from}..{to}", pair[0].id.0, pair[1].id.0);
                return Err(self.checks.fail("events identical", message));
            }
        }
        for pair in holders.windows(2) {
            let (a, b) = (&pair[0].storage.log, &pair[1].storage.log);
            let from = a.start().max(b.start()).min(position);
            if a.bytes_between(from, position) != b.bytes_between(from, position) {
                let message =
                    format!("members {} and {} agree at {position} but differ below", pair[0].id.0, pair[1].id.0);
                return Err(self.checks.fail("log matching", message));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::consensus::DeliberateBug;

    #[test]
    fn a_run_elects_commits_and_survives_faults() {
        let stats = run(SimConfig::new(1)).unwrap();
        eprintln!("{stats:?}");
        assert!(stats.elections >= 1 && stats.commit_position > 0);
    }

    #[test]
    fn clients_get_through_timers_fire_and_an_idle_session_is_closed() {
        let stats = run(SimConfig { faults: Faults::NONE, ..SimConfig::new(3) }).unwrap();
        assert!(stats.acked > 1000, "{stats:?}");
        assert!(stats.timers_fired > 10, "{stats:?}");
        assert_eq!(stats.sessions_open, 1, "the quiet client's session was closed by the leader: {stats:?}");
        assert!(stats.snapshots > 10 && stats.events_bytes > 10_000, "snapshots and events: {stats:?}");
    }

    #[test]
    fn the_same_seed_runs_the_same_way() {
        let a = run(SimConfig::new(7)).unwrap();
        let b = run(SimConfig::new(7)).unwrap();
        assert_eq!(a, b);
    }

    fn first_failure(bug: DeliberateBug, seeds: u64) -> Option<SimFailure> {
        (0..seeds).find_map(|seed| run(SimConfig { deliberate_bug: Some(bug), ..SimConfig::new(seed) }).err())
    }

    #[test]
    fn the_simulator_catches_votes_granted_without_comparing_logs() {
        let failure = first_failure(DeliberateBug::VoteWithoutLogCheck, 300).expect("caught within 300 seeds");
        eprintln!("{failure}");
        assert!(
            failure.to_string().contains("reproduce: cargo run --release -p ordo-service --bin ordo-sim -- --seed")
        );
    }

    #[test]
    fn the_simulator_catches_a_member_that_votes_after_losing_its_disk() {
        let failure = first_failure(DeliberateBug::RecoveringVotes, 1000).expect("caught within 1000 seeds");
        eprintln!("{failure}");
    }

    #[test]
    fn the_simulator_catches_a_commit_without_a_majority() {
        let failure = first_failure(DeliberateBug::CommitWithoutMajority, 300).expect("caught within 300 seeds");
        assert_eq!(failure.checker, "committed never lost", "{failure}");
    }
}
