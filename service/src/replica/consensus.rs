//! The consensus module: election, sequencing, replication and quorum commit, sans-I/O.
//!
//! It owns no socket, file, thread or clock. The driver (the real member, or the simulator)
//! hands it time and messages; it reads the log through [`LogView`] and writes nothing
//! itself: every change comes out as an [`Effect`] (store the vote, append, append the
//! leader's bytes, truncate, sync, send, commit) that the driver carries out, in order,
//! before it calls in again. After a `Sync` the driver reports the new durable position
//! with [`Consensus::on_durable`].
//!
//! The rules are Raft's, in Aeron Cluster's shape: positions are byte offsets, the leader
//! streams raw log bytes (via `ordo_transport::PeerStream`), and a follower's log is
//! byte-identical to the leader's.
//! - Election: randomized timeouts; a pre-vote round first (a member cut off and rejoining
//!   does not depose a healthy leader: nobody who heard from the leader lately grants it);
//!   one vote per term, stored before it is answered; granted only to a candidate whose
//!   (last term, end position) is at least the voter's.
//! - The new leader appends a new-leadership-term entry; commit = the highest position
//!   durable on a majority (leader included), counted only past that entry, so entries of
//!   older terms commit only under one of the leader's own.
//! - A follower accepts bytes only where its log agrees with the leader's (the chunk's
//!   `checksum_prev` equals the checksum of its own entry before it); an entry that differs
//!   is where its tail diverges, and is truncated; disagreement before the chunk is answered
//!   with a NAK hinting where its last term began, and the leader restarts from there.
//! - A leader that has not heard from a majority for an election timeout steps down.
//! - A follower that needs entries the leader no longer holds (deleted below its oldest
//!   snapshot) is sent the leader's newest snapshot instead: SnapshotChunk frames, a window
//!   of them in flight, go-back-N on a timeout, the follower acknowledging the bytes it holds
//!   in order. Once whole, the follower installs it (`Effect::InstallSnapshot`: the driver
//!   checks, stores, and resets its log to continue after it unless the log already holds
//!   that position, Raft's rule) and the leader streams the log from the snapshot's position.

use crate::replica::recovery::Recovery;
use ordo_core::entry::read_header;
use ordo_core::{ClusterTimeNs, EntryKind, EntryMeta, LogSource, MemberId, Position, SessionId, Term};
use ordo_transport::{Body, Chunk, PeerStream, Received, StreamConfig, StreamReceiver};

/// What consensus reads of the log. Implemented by the mapped log (`crate::disk`) and the
/// simulator's in-memory one.
pub trait LogView: LogSource {
    /// The first position the log holds (everything below is in a snapshot).
    fn log_start(&self) -> Position;
    /// The term of the last entry (0 for an empty log).
    fn last_term(&self) -> Term;
    /// The term of the entry holding `position`.
    fn term_at(&self, position: Position) -> Option<Term>;
    /// The first position of `term` in the log.
    fn term_start(&self, term: Term) -> Option<Position>;
    /// The checksum an entry starting at `position` must name as its previous one: the
    /// checksum of the entry before it. `None` if no entry starts (or the log ends) there.
    fn checksum_before(&self, position: Position) -> Option<u32>;
    /// The checksum of the entry starting at `position`.
    fn checksum_of_entry_at(&self, position: Position) -> Option<u32>;
    fn position_durable(&self) -> Position;
    /// The latest cluster time of any entry the log has held.
    fn time_max(&self) -> ClusterTimeNs;
}

/// The most members a cluster has (1, 3 or 5 in practice).
pub const MEMBERS_MAX: usize = 7;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    Follower,
    Candidate,
    Leader,
}

/// What an Append frame carried, as consensus sees it.
#[derive(Clone, Copy, Debug)]
pub struct Append<'a> {
    pub chunk: Chunk<'a>,
    pub commit_position: Position,
}

/// Where the bytes of an `AppendRaw` are.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AppendBytes<'a> {
    /// In the frame just handed in.
    Frame(&'a [u8]),
    /// Reassembled from fragments: [`Consensus::reassembled`].
    Reassembled,
}

/// A change for the driver to carry out, in order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Effect<'a> {
    /// Store (term, vote) durably before carrying out anything after it.
    StoreVote {
        term: Term,
        voted_for: Option<MemberId>,
    },
    /// The leader appends an entry of its own.
    Append {
        meta: EntryMeta,
        payload: &'a [u8],
    },
    /// A follower appends the leader's bytes at `position` (its log's end).
    AppendRaw {
        position: Position,
        bytes: AppendBytes<'a>,
    },
    /// Drop everything at and after `position` (a divergent, uncommitted tail).
    Truncate {
        position: Position,
    },
    /// Make the appends durable, then call `on_durable`.
    Sync,
    /// Send one of consensus' small messages (votes, acks, NAKs, heartbeats); Append
    /// frames go out through [`Consensus::poll_appends`].
    Send {
        to: MemberId,
        term: Term,
        message: Body<'static>,
    },
    /// Everything below `position` is committed (it only grows).
    Commit {
        position: Position,
    },
    RoleChanged {
        role: Role,
        term: Term,
        leader: Option<MemberId>,
    },
    /// The leader's snapshot at `position` has arrived whole ([`Consensus::snapshot_received`]):
    /// check and store it, make the log continue after it, then call
    /// [`Consensus::on_snapshot_installed`].
    InstallSnapshot {
        position: Position,
    },
    /// A recovering member ([`Consensus::start_recovering`]) holds everything its leader has
    /// committed: store this vote (it counts as having voted for its leader in this term,
    /// the one vote it may have given before the loss) and record durably that it is a full
    /// member again (it votes from now on).
    Recovered {
        term: Term,
        voted_for: Option<MemberId>,
    },
}

#[derive(Clone, Debug)]
pub struct ConsensusConfig {
    pub member: MemberId,
    /// Every member, this one included.
    pub members: Vec<MemberId>,
    /// Election timeouts are drawn from `[election_timeout_ns, 2 × election_timeout_ns)`.
    pub election_timeout_ns: u64,
    pub heartbeat_interval_ns: u64,
    pub stream: StreamConfig,
    /// The largest entry, header included (bounds fragment reassembly).
    pub entry_bytes_max: usize,
    /// The largest snapshot a follower accepts from its leader (bounds the receive buffer).
    pub snapshot_bytes_max: u64,
    /// Seeds the election-timeout randomness (deterministic in the simulator).
    pub seed: u64,
}

pub use crate::deliberate::DeliberateBug;

/// Why a proposal was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NotLeader {
    /// Try this member.
    Redirect(MemberId),
    /// No leader is known yet: retry later.
    Unknown,
}

#[derive(Clone, Debug)]
struct Peer {
    id: MemberId,
    stream: PeerStream,
    durable: Position,
    heard_ns: u64,
    /// Set while the follower is being sent a snapshot (it needs entries this log no
    /// longer holds); the log stream waits until it is installed.
    install: Option<InstallSend>,
}

/// A snapshot on its way to one follower.
#[derive(Clone, Debug, Default)]
struct InstallSend {
    /// The snapshot being sent (`None` until the first poll picks the newest).
    position: Option<Position>,
    total_bytes: u64,
    acked_bytes: u64,
    sent_bytes: u64,
    sent_ns: u64,
}

/// A snapshot arriving from the leader.
#[derive(Clone, Debug)]
struct InstallReceive {
    position: Position,
    total_bytes: u64,
    bytes: Vec<u8>,
    /// The term of the leader sending it.
    term: Term,
}

#[derive(Clone, Debug)]
pub struct Consensus {
    config: ConsensusConfig,
    role: Role,
    term: Term,
    voted_for: Option<MemberId>,
    leader: Option<MemberId>,
    rng: fastrand::Rng,
    election_deadline_ns: u64,
    leader_heard_ns: Option<u64>,
    /// Pre-votes or votes granted to this member in the current round.
    granted: Vec<MemberId>,
    pre_voting: bool,
    peers: Vec<Peer>,
    /// Where this leader's first entry of its term went: commit counts only past it.
    term_start: Position,
    heartbeat_due_ns: u64,
    commit: Position,
    receiver: StreamReceiver,
    /// How far this follower's log is known to match the current leader's.
    matched: Position,
    /// The cluster time this leader last stamped: it stamps `max(now, this)`, and starts
    /// from the latest time in its log, so cluster time never goes backwards, not even
    /// across a failover to a member whose clock runs behind.
    time_stamped: ClusterTimeNs,
    /// The cluster clock's last reading ([`Consensus::set_clock`]): wall-clock time in
    /// nanoseconds since the Unix epoch in a real member, the virtual clock in the simulator.
    clock_ns: u64,
    incoming: Option<InstallReceive>,
    /// While this member has lost its state (no vote, log or snapshot in a cluster that has
    /// run): it neither stands nor votes until it holds everything committed, or its vote
    /// could elect a member missing entries it had acknowledged before the loss.
    recovery: Option<Recovery>,
    /// A rule broken on purpose: set only by the simulator's hooks, never in a member.
    deliberate_bug: Option<DeliberateBug>,
}

impl Consensus {
    /// A member starting (or restarting) with the vote it stored and its log.
    pub fn new(config: ConsensusConfig, term: Term, voted_for: Option<MemberId>, now_ns: u64) -> Self {
        assert!(config.members.contains(&config.member), "a member is one of the members");
        assert!(config.members.len() <= MEMBERS_MAX);
        let receiver = StreamReceiver::new(config.stream, config.entry_bytes_max);
        let mut consensus = Consensus {
            rng: fastrand::Rng::with_seed(config.seed),
            role: Role::Follower,
            term,
            voted_for,
            leader: None,
            election_deadline_ns: 0,
            leader_heard_ns: None,
            granted: Vec::with_capacity(config.members.len()),
            pre_voting: false,
            peers: Vec::new(),
            term_start: Position::ZERO,
            heartbeat_due_ns: 0,
            commit: Position::ZERO,
            receiver,
            matched: Position::ZERO,
            time_stamped: ClusterTimeNs::ZERO,
            clock_ns: 0,
            incoming: None,
            recovery: None,
            deliberate_bug: None,
            config,
        };
        consensus.reset_election_deadline(now_ns);
        consensus
    }

    /// Breaks a rule on purpose from now on: the simulator's hook, to show its checkers
    /// catch each broken rule. A member never calls it.
    pub fn break_deliberately(&mut self, bug: Option<DeliberateBug>) {
        self.deliberate_bug = bug;
    }

    /// The term and vote a member starts with, from its stored vote and its log's last term:
    /// never a term below the log's (a log reset to a snapshot carries the snapshot's term,
    /// and the vote file may be older or missing; starting lower, the member would win an
    /// election and append entries of a term older than its log's last).
    pub fn starting_vote(
        stored_term: Term,
        voted_for: Option<MemberId>,
        log_last_term: Term,
    ) -> (Term, Option<MemberId>) {
        if log_last_term > stored_term { (log_last_term, None) } else { (stored_term, voted_for) }
    }

    /// This member starts without its state (see `recovering`): it follows a leader and
    /// catches up, and stands and votes only once it holds everything committed.
    pub fn start_recovering(&mut self) {
        if self.deliberate_bug != Some(DeliberateBug::RecoveringVotes) {
            // The nonce of this incarnation's queries: from its seed (random in a member).
            self.recovery = Some(Recovery::new(self.config.seed ^ 0x7265_636f_7665_7279));
        }
    }

    /// Whether this member is still catching up after losing its state.
    pub fn recovering(&self) -> bool {
        self.recovery.is_some()
    }

    /// Everything below `position` is known committed: this member applied it before it
    /// restarted (its newest snapshot stands there).
    pub fn note_committed(&mut self, position: Position) {
        self.commit = self.commit.max(position);
    }

    pub fn role(&self) -> Role {
        self.role
    }
    pub fn term(&self) -> Term {
        self.term
    }
    pub fn leader(&self) -> Option<MemberId> {
        self.leader
    }
    pub fn commit_position(&self) -> Position {
        self.commit
    }
    pub fn member(&self) -> MemberId {
        self.config.member
    }

    fn majority(&self) -> usize {
        self.config.members.len() / 2 + 1
    }

    fn send_all(&self, term: Term, message: Body<'static>, out: &mut Vec<Effect<'_>>) {
        for &to in &self.config.members {
            if to != self.config.member {
                out.push(Effect::Send { to, term, message });
            }
        }
    }

    fn reset_election_deadline(&mut self, now_ns: u64) {
        let timeout = self.config.election_timeout_ns;
        self.election_deadline_ns = now_ns + timeout + self.rng.u64(0..timeout.max(1));
    }

    fn up_to_date(log: &dyn LogView, last_term: Term, last_position: Position) -> bool {
        (last_term, last_position) >= (log.last_term(), log.log_end())
    }

    /// Moves to `term` as a follower (a newer term was seen), forgetting any vote.
    fn become_follower(&mut self, term: Term, leader: Option<MemberId>, out: &mut Vec<Effect<'_>>) {
        if term > self.term {
            self.term = term;
            self.voted_for = None;
            out.push(Effect::StoreVote { term, voted_for: None });
        }
        let changed = self.role != Role::Follower || self.leader != leader;
        self.role = Role::Follower;
        self.leader = leader;
        self.pre_voting = false;
        self.peers.clear();
        if changed {
            self.matched = Position::ZERO;
            // Fragments of the old leader's entry are not the new leader's entry.
            self.receiver.reset();
            out.push(Effect::RoleChanged { role: Role::Follower, term: self.term, leader });
        }
    }

    /// Time passes: elections start, heartbeats go out, a cut-off leader steps down.
    pub fn on_tick(&mut self, now_ns: u64, log: &dyn LogView, out: &mut Vec<Effect<'_>>) {
        match self.role {
            Role::Leader => {
                let timeout = self.config.election_timeout_ns;
                let heard = 1 + self.peers.iter().filter(|p| now_ns.saturating_sub(p.heard_ns) < timeout).count();
                if heard < self.majority() {
                    self.become_follower(self.term, None, out);
                    self.reset_election_deadline(now_ns);
                    return;
                }
                for peer in &mut self.peers {
                    peer.stream.on_tick(now_ns);
                }
                if now_ns >= self.heartbeat_due_ns {
                    self.heartbeat_due_ns = now_ns + self.config.heartbeat_interval_ns;
                    let message = Body::Heartbeat { position_commit: self.commit, position_append: log.log_end() };
                    self.send_all(self.term, message, out);
                }
            }
            Role::Follower | Role::Candidate => {
                if let Some(recovery) = &mut self.recovery
                    && recovery.query_due(now_ns, self.config.heartbeat_interval_ns)
                {
                    let message = Body::RecoveryQuery { nonce: recovery.nonce() };
                    self.send_all(self.term, message, out);
                }
                if now_ns >= self.election_deadline_ns {
                    if self.recovering() {
                        self.reset_election_deadline(now_ns); // it waits for a leader
                    } else {
                        self.start_pre_vote(now_ns, log, out);
                    }
                }
            }
        }
    }

    fn start_pre_vote(&mut self, now_ns: u64, log: &dyn LogView, out: &mut Vec<Effect<'_>>) {
        self.reset_election_deadline(now_ns);
        self.pre_voting = true;
        self.leader = None;
        self.granted.clear();
        self.granted.push(self.config.member);
        if self.granted.len() >= self.majority() {
            return self.start_election(now_ns, log, out); // a cluster of one
        }
        // A pre-vote asks about the next term without moving to it.
        let message = Body::VoteRequest { pre_vote: true, last_term: log.last_term(), last_position: log.log_end() };
        self.send_all(Term(self.term.0 + 1), message, out);
    }

    fn start_election(&mut self, now_ns: u64, log: &dyn LogView, out: &mut Vec<Effect<'_>>) {
        self.pre_voting = false;
        self.role = Role::Candidate;
        self.term = Term(self.term.0 + 1);
        self.voted_for = Some(self.config.member);
        self.leader = None;
        out.push(Effect::StoreVote { term: self.term, voted_for: self.voted_for });
        out.push(Effect::RoleChanged { role: Role::Candidate, term: self.term, leader: None });
        self.reset_election_deadline(now_ns);
        self.granted.clear();
        self.granted.push(self.config.member);
        if self.granted.len() >= self.majority() {
            return self.become_leader(now_ns, log, out);
        }
        let message = Body::VoteRequest { pre_vote: false, last_term: log.last_term(), last_position: log.log_end() };
        self.send_all(self.term, message, out);
    }

    /// The cluster clock reads `epoch_ns` now. Stamps follow it, never going back; the
    /// driver sets it every duty cycle (elections and timeouts run on `now_ns`, a monotonic
    /// clock, so a stepped wall clock moves no deadline).
    pub fn set_clock(&mut self, epoch_ns: u64) {
        self.clock_ns = epoch_ns;
    }

    /// The cluster time an entry sequenced now would carry: the clock, or the latest stamp
    /// if the clock is behind it. What the leader judges its duties by (timers due, sessions
    /// idle), so they are judged in the time the log carries.
    pub fn cluster_time(&self) -> ClusterTimeNs {
        self.time_stamped.max(ClusterTimeNs(self.clock_ns))
    }

    /// The cluster time for an entry stamped now: never before an earlier stamp.
    fn stamp(&mut self) -> ClusterTimeNs {
        self.time_stamped = self.cluster_time();
        self.time_stamped
    }

    fn become_leader(&mut self, now_ns: u64, log: &dyn LogView, out: &mut Vec<Effect<'_>>) {
        self.role = Role::Leader;
        self.time_stamped = self.time_stamped.max(log.time_max());
        self.leader = Some(self.config.member);
        let end = log.log_end();
        self.term_start = end;
        let me = self.config.member;
        self.peers = (self.config.members.iter().copied().filter(|&m| m != me))
            .map(|id| Peer {
                id,
                stream: PeerStream::new(end, now_ns, self.config.stream),
                durable: Position::ZERO,
                heard_ns: now_ns,
                install: None,
            })
            .collect();
        self.heartbeat_due_ns = now_ns;
        out.push(Effect::RoleChanged { role: Role::Leader, term: self.term, leader: self.leader });
        let meta = EntryMeta {
            kind: EntryKind::NewLeadershipTerm,
            flags: 0,
            term: self.term,
            timestamp: self.stamp(),
            session: SessionId(0),
            correlation_id: 0,
        };
        out.push(Effect::Append { meta, payload: &[] });
        out.push(Effect::Sync);
    }

    /// A client command, sequenced if this member leads: appended with the leader's time.
    pub fn propose<'a>(
        &mut self,
        session: SessionId,
        correlation_id: u64,
        payload: &'a [u8],
        out: &mut Vec<Effect<'a>>,
    ) -> Result<(), NotLeader> {
        self.propose_entry(EntryKind::Command, session, correlation_id, payload, out)
    }

    /// Any entry the leader sequences for the service: a command, a session opening or
    /// closing, a timer firing.
    pub fn propose_entry<'a>(
        &mut self,
        kind: EntryKind,
        session: SessionId,
        correlation_id: u64,
        payload: &'a [u8],
        out: &mut Vec<Effect<'a>>,
    ) -> Result<(), NotLeader> {
        if self.role != Role::Leader {
            return Err(self.leader.map_or(NotLeader::Unknown, NotLeader::Redirect));
        }
        debug_assert!(matches!(
            kind,
            EntryKind::Command
                | EntryKind::SessionOpen
                | EntryKind::SessionClose
                | EntryKind::Timer
                | EntryKind::SnapshotRequest
        ));
        let meta = EntryMeta { kind, flags: 0, term: self.term, timestamp: self.stamp(), session, correlation_id };
        out.push(Effect::Append { meta, payload });
        out.push(Effect::Sync);
        Ok(())
    }

    /// A small message from another member.
    pub fn on_message(
        &mut self,
        now_ns: u64,
        from: MemberId,
        term: Term,
        message: Body<'_>,
        log: &dyn LogView,
        out: &mut Vec<Effect<'_>>,
    ) {
        if !self.config.members.contains(&from) || from == self.config.member {
            return;
        }
        match message {
            Body::VoteRequest { pre_vote: true, last_term, last_position } => {
                self.answer_pre_vote(now_ns, from, term, (last_term, last_position), log, out)
            }
            Body::VoteRequest { pre_vote: false, last_term, last_position } => {
                self.answer_vote(now_ns, from, term, (last_term, last_position), log, out)
            }
            Body::VoteResponse { pre_vote, granted } => {
                self.on_vote_response(now_ns, from, term, pre_vote, granted, log, out)
            }
            Body::AppendAck { position_append, position_durable } if self.leader_hears(term, out) => {
                if let Some(peer) = self.peers.iter_mut().find(|p| p.id == from) {
                    peer.heard_ns = now_ns;
                    peer.stream.on_ack(position_append, now_ns);
                    peer.durable = peer.durable.max(position_durable);
                }
                self.advance_commit(log, out);
            }
            Body::Nak { position } if self.leader_hears(term, out) => self.on_nak(now_ns, from, position, log),
            Body::SnapshotAck { snapshot_position, offset } if self.leader_hears(term, out) => {
                self.on_snapshot_ack(now_ns, from, snapshot_position, offset)
            }
            Body::Heartbeat { position_commit, .. } => {
                if !self.accept_leader(now_ns, from, term, out) {
                    return;
                }
                self.follow_commit(position_commit, log, out);
                self.ack(from, log, out);
            }
            Body::SnapshotChunk { snapshot_position, offset, total_bytes, bytes } => {
                if !self.accept_leader(now_ns, from, term, out) {
                    return;
                }
                self.on_snapshot_chunk(from, snapshot_position, offset, total_bytes, bytes, out);
            }
            Body::RecoveryQuery { nonce } => {
                let (last_term, log_end, recovering) = (log.last_term(), log.log_end(), self.recovering());
                let message = Body::RecoveryReport { nonce, term: self.term, last_term, log_end, recovering };
                out.push(Effect::Send { to: from, term: self.term, message });
            }
            Body::RecoveryReport { nonce, term: reported, last_term, log_end, recovering } => {
                if let Some(recovery) = &mut self.recovery {
                    recovery.on_report(from, nonce, (reported, last_term, log_end), recovering);
                    self.check_recovered(log, out);
                }
            }
            // Appends come through on_append; client frames are not consensus' business.
            _ => {}
        }
    }

    /// Whether a follower's answer in `term` is for this member as the leader of its
    /// current term; a newer term makes it a follower first.
    fn leader_hears(&mut self, term: Term, out: &mut Vec<Effect<'_>>) -> bool {
        if term > self.term {
            self.become_follower(term, None, out);
            return false;
        }
        self.role == Role::Leader && term == self.term
    }

    /// Whether a candidate's log, ending with an entry of `last_term` at `last_position`, is
    /// at least as up to date as this one (or a deliberate bug says not to look).
    fn log_ok(&self, log: &dyn LogView, (last_term, last_position): (Term, Position)) -> bool {
        Self::up_to_date(log, last_term, last_position)
            || self.deliberate_bug == Some(DeliberateBug::VoteWithoutLogCheck)
    }

    fn answer_pre_vote(
        &mut self,
        now_ns: u64,
        from: MemberId,
        term: Term,
        last: (Term, Position),
        log: &dyn LogView,
        out: &mut Vec<Effect<'_>>,
    ) {
        let leader_fresh = self.role == Role::Leader
            || self.leader_heard_ns.is_some_and(|t| now_ns.saturating_sub(t) < self.config.election_timeout_ns);
        let granted = term > self.term && !leader_fresh && self.log_ok(log, last) && !self.recovering();
        // A refusal carries this member's term: a candidate behind it adopts it (etcd's
        // rule), or two members, one with the newer term and one with the longer log, would
        // refuse each other forever.
        let answer_term = if granted { term } else { self.term };
        let message = Body::VoteResponse { pre_vote: true, granted };
        out.push(Effect::Send { to: from, term: answer_term, message });
    }

    fn answer_vote(
        &mut self,
        now_ns: u64,
        from: MemberId,
        term: Term,
        last: (Term, Position),
        log: &dyn LogView,
        out: &mut Vec<Effect<'_>>,
    ) {
        if term > self.term {
            self.become_follower(term, None, out);
        }
        let granted = term == self.term
            && self.role == Role::Follower
            && self.voted_for.is_none_or(|v| v == from)
            && self.log_ok(log, last)
            && !self.recovering();
        if granted {
            self.voted_for = Some(from);
            out.push(Effect::StoreVote { term, voted_for: Some(from) });
            self.reset_election_deadline(now_ns);
        }
        let message = Body::VoteResponse { pre_vote: false, granted };
        out.push(Effect::Send { to: from, term: self.term, message });
    }

    #[allow(clippy::too_many_arguments)]
    fn on_vote_response(
        &mut self,
        now_ns: u64,
        from: MemberId,
        term: Term,
        pre_vote: bool,
        granted: bool,
        log: &dyn LogView,
        out: &mut Vec<Effect<'_>>,
    ) {
        if pre_vote {
            if granted && self.pre_voting && term == Term(self.term.0 + 1) && !self.granted.contains(&from) {
                self.granted.push(from);
                if self.granted.len() >= self.majority() {
                    self.start_election(now_ns, log, out);
                }
            } else if !granted && term > self.term && self.deliberate_bug != Some(DeliberateBug::RefusalTermIgnored) {
                // The voter is in a newer term: catch up with it, then stand again from there.
                self.become_follower(term, None, out);
            }
            return;
        }
        if term > self.term {
            self.become_follower(term, None, out);
        } else if self.role == Role::Candidate
            // `granted` holds the pre-votes of the next round
            && (!self.pre_voting || self.deliberate_bug == Some(DeliberateBug::LateVoteCounted))
            && term == self.term
            && granted
            && !self.granted.contains(&from)
        {
            self.granted.push(from);
            if self.granted.len() >= self.majority() {
                self.become_leader(now_ns, log, out);
            }
        }
    }

    /// A follower asks for the log from `position`: resent from there, from the start of the
    /// term holding it, or, if that was deleted after a snapshot, the snapshot.
    fn on_nak(&mut self, now_ns: u64, from: MemberId, position: Position, log: &dyn LogView) {
        let restart = self.restart_point(log, position);
        let Some(peer) = self.peers.iter_mut().find(|p| p.id == from) else { return };
        peer.heard_ns = now_ns;
        if restart < log.log_start() {
            // What it needs was deleted after a snapshot: it gets the snapshot.
            peer.install.get_or_insert_with(InstallSend::default);
        } else if restart < peer.stream.position_acked() {
            peer.stream.restart_at(restart, now_ns); // the follower diverges earlier
        } else {
            peer.stream.on_nak(restart, now_ns);
        }
    }

    /// A follower holds `offset` bytes of the snapshot at `snapshot_position`; all of them:
    /// it installed it, and the log streams on from its position.
    fn on_snapshot_ack(&mut self, now_ns: u64, from: MemberId, snapshot_position: Position, offset: u64) {
        let Some(peer) = self.peers.iter_mut().find(|p| p.id == from) else { return };
        peer.heard_ns = now_ns;
        let Some(install) = peer.install.as_mut().filter(|i| i.position == Some(snapshot_position)) else {
            return;
        };
        if offset < install.acked_bytes {
            install.sent_bytes = offset; // the follower started over
        }
        install.acked_bytes = offset;
        install.sent_bytes = install.sent_bytes.max(offset);
        if offset >= install.total_bytes {
            peer.install = None;
            peer.stream.restart_at(snapshot_position, now_ns);
        }
    }

    /// The position to resend from for a follower whose NAK says `hint`: the hint itself
    /// when an entry of this log starts there, else the start of the term holding it.
    fn restart_point(&self, log: &dyn LogView, hint: Position) -> Position {
        let end = log.log_end();
        if hint >= end {
            return end;
        }
        if log.checksum_before(hint).is_some() {
            return hint;
        }
        log.term_at(hint).and_then(|t| log.term_start(t)).unwrap_or(Position::ZERO)
    }

    /// A message from `from` claiming leadership of `term`: true if it is this member's leader.
    fn accept_leader(&mut self, now_ns: u64, from: MemberId, term: Term, out: &mut Vec<Effect<'_>>) -> bool {
        if term < self.term {
            // A stale leader: tell it the current term so it steps down.
            out.push(Effect::Send {
                to: from,
                term: self.term,
                message: Body::AppendAck { position_append: Position::ZERO, position_durable: Position::ZERO },
            });
            return false;
        }
        if term > self.term || self.role != Role::Follower || self.leader != Some(from) {
            self.become_follower(term, Some(from), out);
        }
        self.leader_heard_ns = Some(now_ns);
        self.reset_election_deadline(now_ns);
        true
    }

    fn follow_commit(&mut self, leader_commit: Position, log: &dyn LogView, out: &mut Vec<Effect<'_>>) {
        let commit = leader_commit.min(self.matched);
        if commit > self.commit {
            self.commit = commit;
            out.push(Effect::Commit { position: commit });
        }
        self.check_recovered(log, out);
    }

    /// A recovering member is caught up once its durable log is at least as up to date as
    /// what enough others reported holding since its loss ([`Recovery`]). It then takes the
    /// highest term they reported and counts as having voted in it (it may have, before the
    /// loss), so it never votes twice in one term.
    fn check_recovered(&mut self, log: &dyn LogView, out: &mut Vec<Effect<'_>>) {
        let Some(recovery) = &self.recovery else { return };
        let others = self.config.members.len() - 1;
        let holding = self.config.members.len() - self.majority() + 1;
        let durable = log.position_durable() == log.log_end();
        let mine = (log.last_term(), log.log_end());
        let Some(term) = recovery.covered(mine, others, holding).filter(|_| durable) else {
            return;
        };
        self.recovery = None;
        if term > self.term {
            self.become_follower(term, None, out);
        }
        if self.voted_for.is_none() {
            self.voted_for = Some(self.leader.unwrap_or(self.config.member));
        }
        out.push(Effect::Recovered { term: self.term, voted_for: self.voted_for });
    }

    fn ack(&self, leader: MemberId, log: &dyn LogView, out: &mut Vec<Effect<'_>>) {
        // A recovering member says it holds nothing durably: its acks pace the stream but
        // never count toward a commit (having lost its term, it may be following a stale
        // leader, which its acks must not let commit).
        let durable = if self.recovering() { Position::ZERO } else { log.position_durable().min(self.matched) };
        let message = Body::AppendAck { position_append: self.matched, position_durable: durable };
        out.push(Effect::Send { to: leader, term: self.term, message });
    }

    /// An Append frame from the leader: accept what agrees with this log, truncate where
    /// it diverges, NAK a gap or an earlier disagreement.
    pub fn on_append<'a>(
        &mut self,
        now_ns: u64,
        from: MemberId,
        term: Term,
        append: Append<'a>,
        log: &dyn LogView,
        out: &mut Vec<Effect<'a>>,
    ) {
        if !self.config.members.contains(&from) || from == self.config.member {
            return; // only another member leads (the driver also checks the key it came under)
        }
        if !self.accept_leader(now_ns, from, term, out) {
            return;
        }
        let chunk = append.chunk;
        let end = log.log_end();
        let nak = |position: Position, out: &mut Vec<Effect<'a>>, term: Term| {
            out.push(Effect::Send { to: from, term, message: Body::Nak { position } });
        };
        if chunk.fragment_offset == 0 && chunk.from_position <= end {
            // Does this log agree with the leader's up to the chunk?
            match log.checksum_before(chunk.from_position) {
                Some(checksum) if checksum == chunk.checksum_prev => {}
                _ => {
                    // It diverges earlier: hint where this log's last term before the chunk began.
                    let before = Position(chunk.from_position.0.saturating_sub(1));
                    let hint = log.term_at(before).and_then(|t| log.term_start(t)).unwrap_or(Position::ZERO);
                    // Never below this log's start: what lies below it was committed and
                    // snapshotted here, and pointing there would make the leader send a snapshot.
                    return nak(hint.max(log.log_start()).min(end), out, self.term);
                }
            }
            self.matched = self.matched.max(chunk.from_position);
            // Skip the entries this log already has; truncate at the first that differs.
            let (mut position, mut offset) = (chunk.from_position, 0usize);
            while position < end {
                let Some(header) = chunk.bytes.get(offset..).and_then(read_header) else { break };
                if log.checksum_of_entry_at(position) != Some(header.checksum.get()) {
                    out.push(Effect::Truncate { position });
                    self.matched = self.matched.min(position);
                    break;
                }
                position = Position(position.0 + header.span_bytes());
                offset = (offset + header.span_bytes() as usize).min(chunk.bytes.len());
                self.matched = self.matched.max(position);
            }
            let rest = &chunk.bytes[offset.min(chunk.bytes.len())..];
            if rest.is_empty() {
                self.follow_commit(append.commit_position, log, out);
                return self.ack(from, log, out);
            }
            // `position` is where this log ends once any Truncate above is carried out.
            let first_is_partial = read_header(rest)
                .is_some_and(|h| h.kind() != Some(EntryKind::Padding) && h.length_bytes() as usize > rest.len());
            if first_is_partial {
                let first = Chunk { from_position: position, checksum_prev: 0, fragment_offset: 0, bytes: rest };
                let _ = self.receiver.on_append(position, first, self.term, now_ns); // kept until whole
            } else {
                out.push(Effect::AppendRaw { position, bytes: AppendBytes::Frame(rest) });
                self.matched = self.matched.max(Position(position.0 + whole_entries_span(rest)));
                out.push(Effect::Sync);
            }
            return self.follow_commit(append.commit_position, log, out);
        }
        let outcome = match self.receiver.on_append(end, chunk, self.term, now_ns) {
            Received::Entries { position, bytes } => Ok(Some((position, whole_entries_span(bytes)))),
            Received::Gap { nak } => Err(nak),
            Received::Duplicate => Ok(None),
            Received::Fragment => Err(None),
        };
        match outcome {
            Ok(Some((position, span))) => {
                out.push(Effect::AppendRaw { position, bytes: AppendBytes::Reassembled });
                self.matched = self.matched.max(Position(position.0 + span));
                out.push(Effect::Sync);
                self.follow_commit(append.commit_position, log, out);
            }
            Ok(None) => self.ack(from, log, out),
            Err(Some(position)) => nak(position, out, self.term),
            Err(None) => {}
        }
    }

    /// A piece of the leader's snapshot: kept if it is the next one in order; the bytes held
    /// so far are acknowledged, until the snapshot is whole and must be installed.
    fn on_snapshot_chunk(
        &mut self,
        leader: MemberId,
        position: Position,
        offset: u64,
        total_bytes: u64,
        bytes: &[u8],
        out: &mut Vec<Effect<'_>>,
    ) {
        let ack = |offset: u64, out: &mut Vec<Effect<'_>>, term: Term| {
            let message = Body::SnapshotAck { snapshot_position: position, offset };
            out.push(Effect::Send { to: leader, term, message });
        };
        let below_commit = position <= self.commit && self.deliberate_bug != Some(DeliberateBug::SnapshotBelowCommit);
        if self.matched >= position || below_commit {
            // This log already matches past it, or this member committed past it: an older
            // snapshot must not reset a log holding committed entries after it.
            return ack(total_bytes, out, self.term);
        }
        if total_bytes > self.config.snapshot_bytes_max {
            return; // refused: larger than this member accepts (a config mismatch to fix)
        }
        match &self.incoming {
            // A stale chunk of this leader's. (A newer snapshot begun under an older leader is
            // dropped: that leader is gone, and this one may never have taken it.)
            Some(incoming) if incoming.position > position && incoming.term == self.term => return,
            Some(incoming) if incoming.position == position && incoming.total_bytes == total_bytes => {}
            _ => {
                let capacity = usize::try_from(total_bytes).unwrap_or(usize::MAX);
                let bytes = Vec::with_capacity(capacity);
                self.incoming = Some(InstallReceive { position, total_bytes, bytes, term: self.term });
            }
        }
        let incoming = self.incoming.as_mut().expect("set above");
        let received = incoming.bytes.len() as u64;
        if received == total_bytes {
            return; // whole, being installed: acknowledged once installed
        }
        if offset == received && received + bytes.len() as u64 <= total_bytes {
            incoming.bytes.extend_from_slice(bytes);
        }
        let received = incoming.bytes.len() as u64;
        if received == total_bytes {
            out.push(Effect::InstallSnapshot { position });
        } else {
            ack(received, out, self.term);
        }
    }

    /// The bytes of the snapshot an `InstallSnapshot` effect asks to install.
    pub fn snapshot_received(&self) -> &[u8] {
        self.incoming.as_ref().map_or(&[], |incoming| &incoming.bytes)
    }

    /// The driver installed the received snapshot (`Ok`: the log now continues after its
    /// position, or already held it) or refused it (corrupt: it is asked for again).
    pub fn on_snapshot_installed(&mut self, installed: bool, log: &dyn LogView, out: &mut Vec<Effect<'_>>) {
        let Some(incoming) = self.incoming.take() else { return };
        let Some(leader) = self.leader else { return };
        let offset = if installed { incoming.total_bytes } else { 0 };
        if installed {
            debug_assert!(log.log_start() <= incoming.position && incoming.position <= log.log_end());
            self.matched = self.matched.max(incoming.position);
            // The leader only sends what it applied, which it had committed.
            if incoming.position > self.commit {
                self.commit = incoming.position;
                out.push(Effect::Commit { position: incoming.position });
            }
        }
        let message = Body::SnapshotAck { snapshot_position: incoming.position, offset };
        out.push(Effect::Send { to: leader, term: self.term, message });
        if installed {
            self.ack(leader, log, out);
            self.check_recovered(log, out);
        }
    }

    /// Hands `emit` the snapshot chunks due to followers being sent `snapshot` (its position
    /// and whole bytes: the leader's newest). Leader only.
    pub fn poll_snapshots(
        &mut self,
        now_ns: u64,
        snapshot: Option<(Position, &[u8])>,
        capacity_bytes: usize,
        frames_max: usize,
        emit: &mut dyn FnMut(MemberId, Term, Body<'_>),
    ) -> usize {
        let Some((position, bytes)) = snapshot.filter(|_| self.role == Role::Leader) else { return 0 };
        let (term, window, timeout) =
            (self.term, self.config.stream.window_bytes, self.config.stream.retransmit_timeout_ns);
        let total_bytes = bytes.len() as u64;
        let mut frames = 0;
        for peer in &mut self.peers {
            let Some(install) = peer.install.as_mut() else { continue };
            if install.position != Some(position) {
                // The first poll, or a newer snapshot was taken: send that one from its start.
                *install = InstallSend { position: Some(position), total_bytes, ..InstallSend::default() };
            }
            if install.sent_bytes > install.acked_bytes && now_ns.saturating_sub(install.sent_ns) >= timeout {
                install.sent_bytes = install.acked_bytes; // go back: acks stalled
            }
            let mut sent_now = 0;
            while install.sent_bytes < total_bytes
                && install.sent_bytes - install.acked_bytes < window
                && sent_now < frames_max
            {
                let from = install.sent_bytes as usize;
                let to = (from + capacity_bytes).min(bytes.len());
                let chunk = &bytes[from..to];
                let body = Body::SnapshotChunk {
                    snapshot_position: position,
                    offset: install.sent_bytes,
                    total_bytes,
                    bytes: chunk,
                };
                emit(peer.id, term, body);
                install.sent_bytes = to as u64;
                install.sent_ns = now_ns;
                sent_now += 1;
            }
            frames += sent_now;
        }
        frames
    }

    /// Whether any follower is being sent a snapshot.
    pub fn installing(&self) -> bool {
        self.peers.iter().any(|p| p.install.is_some())
    }

    /// The entry reassembled from fragments, for an `AppendRaw` with `Reassembled` bytes.
    pub fn reassembled(&self) -> &[u8] {
        self.receiver.reassembled()
    }

    /// The driver made the log durable up to `log.position_durable()`.
    pub fn on_durable(&mut self, log: &dyn LogView, out: &mut Vec<Effect<'_>>) {
        match (self.role, self.leader) {
            (Role::Leader, _) => self.advance_commit(log, out),
            (Role::Follower, Some(leader)) => {
                self.ack(leader, log, out);
                self.check_recovered(log, out);
            }
            _ => {}
        }
    }

    fn advance_commit(&mut self, log: &dyn LogView, out: &mut Vec<Effect<'_>>) {
        // At most MEMBERS_MAX members: sorted on the stack, no allocation on the commit path.
        let mut durable = [Position::ZERO; MEMBERS_MAX];
        durable[0] = log.position_durable();
        for (slot, peer) in durable[1..].iter_mut().zip(&self.peers) {
            *slot = peer.durable;
        }
        let members = self.peers.len() + 1;
        durable[..members].sort_unstable_by(|a, b| b.cmp(a));
        let quorum =
            if self.deliberate_bug == Some(DeliberateBug::CommitWithoutMajority) { 1 } else { self.majority() };
        let candidate = durable[quorum - 1];
        // Only past this leader's first entry: an older term's entry commits under ours.
        let past_term_start =
            candidate > self.term_start || self.deliberate_bug == Some(DeliberateBug::CommitOlderTermByCount);
        if past_term_start && candidate > self.commit {
            self.commit = candidate;
            out.push(Effect::Commit { position: candidate });
        }
    }

    /// Hands `emit` the Append chunks due to each follower (leader only).
    pub fn poll_appends<'a>(
        &mut self,
        log: &'a dyn LogView,
        capacity_bytes: usize,
        frames_max: usize,
        emit: &mut dyn FnMut(MemberId, Term, Append<'a>),
    ) -> usize {
        if self.role != Role::Leader {
            return 0;
        }
        let (term, commit_position) = (self.term, self.commit);
        let mut frames = 0;
        let start = log.log_start();
        for peer in self.peers.iter_mut() {
            if peer.install.is_none() && peer.stream.position_next() < start {
                // The stream would resend what this log deleted after a snapshot.
                peer.install = Some(InstallSend::default());
            }
            if peer.install.is_some() {
                continue;
            }
            let id = peer.id;
            frames += peer
                .stream
                .poll(log, capacity_bytes, frames_max, &mut |chunk| emit(id, term, Append { chunk, commit_position }));
        }
        frames
    }
}

/// The log positions covered by a run of whole entries (padding spans to its segment end).
fn whole_entries_span(bytes: &[u8]) -> u64 {
    let (mut span, mut offset) = (0u64, 0usize);
    while let Some(header) = bytes.get(offset..).and_then(read_header) {
        span += header.span_bytes();
        if header.kind() == Some(EntryKind::Padding) {
            break;
        }
        offset += header.span_bytes() as usize;
    }
    span
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::replica::mem_log::MemLog;

    const TIMEOUT: u64 = 100;

    fn config(member: u16) -> ConsensusConfig {
        ConsensusConfig {
            member: MemberId(member),
            members: vec![MemberId(1), MemberId(2), MemberId(3)],
            election_timeout_ns: TIMEOUT,
            heartbeat_interval_ns: 10,
            stream: StreamConfig { window_bytes: 1 << 20, retransmit_timeout_ns: 50, nak_interval_ns: 5 },
            entry_bytes_max: 4096,
            snapshot_bytes_max: 1 << 20,
            seed: 1,
        }
    }

    fn config_of(member: u16, members: u16) -> ConsensusConfig {
        ConsensusConfig { members: (1..=members).map(MemberId).collect(), ..config(member) }
    }

    fn follower(member: u16) -> Consensus {
        Consensus::new(config(member), Term::ZERO, None, 0)
    }

    fn command(term: u64, k: u8) -> (EntryMeta, Vec<u8>) {
        (EntryMeta::command(Term(term), ClusterTimeNs(0), SessionId(1), k as u64), vec![k; 20])
    }

    fn log_of(terms: &[u64]) -> MemLog {
        let mut log = MemLog::new();
        for (k, &term) in terms.iter().enumerate() {
            let (meta, payload) = command(term, k as u8);
            log.append(&meta, &payload).unwrap();
        }
        log.sync();
        log
    }

    fn sends(out: &[Effect<'_>]) -> Vec<(MemberId, Term, Body<'static>)> {
        out.iter()
            .filter_map(|e| match *e {
                Effect::Send { to, term, message } => Some((to, term, message)),
                _ => None,
            })
            .collect()
    }

    /// Drives member 1 from follower to leader of term 1 with votes from 2 and 3.
    fn leader(log: &MemLog) -> (Consensus, u64) {
        // A member whose stored term is that of its log's last entry, as after a restart.
        let mut node = Consensus::new(config(1), log.last_term(), None, 0);
        let mut out = Vec::new();
        let now = 3 * TIMEOUT;
        node.on_tick(now, log, &mut out);
        let granted = |pre_vote| Body::VoteResponse { pre_vote, granted: true };
        let next = Term(node.term().0 + 1);
        node.on_message(now, MemberId(2), next, granted(true), log, &mut out);
        node.on_message(now, MemberId(2), node.term(), granted(false), log, &mut out);
        assert_eq!(node.role(), Role::Leader);
        (node, now)
    }

    #[test]
    fn a_follower_pre_votes_after_its_timeout_without_moving_its_term() {
        let log = MemLog::new();
        let mut node = follower(1);
        let mut out = Vec::new();
        node.on_tick(TIMEOUT - 1, &log, &mut out);
        assert!(out.is_empty(), "not before the timeout");
        node.on_tick(2 * TIMEOUT, &log, &mut out);
        let sent = sends(&out);
        assert_eq!(sent.len(), 2);
        assert!(
            sent.iter().all(|(_, term, m)| *term == Term(1) && matches!(m, Body::VoteRequest { pre_vote: true, .. }))
        );
        assert_eq!(node.term(), Term::ZERO);
        assert!(!out.iter().any(|e| matches!(e, Effect::StoreVote { .. })), "a pre-vote stores nothing");
    }

    #[test]
    fn a_won_pre_vote_starts_an_election_whose_vote_is_stored_before_any_request() {
        let log = MemLog::new();
        let mut node = follower(1);
        let mut out = Vec::new();
        node.on_tick(2 * TIMEOUT, &log, &mut out);
        out.clear();
        node.on_message(
            2 * TIMEOUT,
            MemberId(3),
            Term(1),
            Body::VoteResponse { pre_vote: true, granted: true },
            &log,
            &mut out,
        );
        assert_eq!((node.role(), node.term()), (Role::Candidate, Term(1)));
        let store = out.iter().position(|e| *e == Effect::StoreVote { term: Term(1), voted_for: Some(MemberId(1)) });
        let first_send = out.iter().position(|e| matches!(e, Effect::Send { .. }));
        assert!(store.unwrap() < first_send.unwrap(), "{out:?}");
    }

    #[test]
    fn one_vote_per_term_stored_before_the_answer() {
        let log = MemLog::new();
        let mut node = follower(1);
        let mut out = Vec::new();
        let request = Body::VoteRequest { pre_vote: false, last_term: Term::ZERO, last_position: Position::ZERO };
        node.on_message(5, MemberId(2), Term(1), request, &log, &mut out);
        assert_eq!(out[0], Effect::StoreVote { term: Term(1), voted_for: None });
        assert_eq!(out[1], Effect::StoreVote { term: Term(1), voted_for: Some(MemberId(2)) });
        assert_eq!(sends(&out), vec![(MemberId(2), Term(1), Body::VoteResponse { pre_vote: false, granted: true })]);
        out.clear();
        node.on_message(6, MemberId(3), Term(1), request, &log, &mut out);
        assert_eq!(sends(&out), vec![(MemberId(3), Term(1), Body::VoteResponse { pre_vote: false, granted: false })]);
        // A restarted member keeps its vote.
        let mut restarted = Consensus::new(config(1), Term(1), Some(MemberId(2)), 10);
        out.clear();
        restarted.on_message(11, MemberId(3), Term(1), request, &log, &mut out);
        assert_eq!(sends(&out)[0].2, Body::VoteResponse { pre_vote: false, granted: false });
    }

    #[test]
    fn a_vote_is_refused_to_a_candidate_whose_log_is_behind() {
        let log = log_of(&[1, 2]);
        let mut node = Consensus::new(config(1), Term(2), None, 0);
        let mut out = Vec::new();
        let behind = Body::VoteRequest { pre_vote: false, last_term: Term(1), last_position: Position(9999) };
        node.on_message(1, MemberId(2), Term(3), behind, &log, &mut out);
        assert_eq!(sends(&out)[0].2, Body::VoteResponse { pre_vote: false, granted: false });
        let shorter = Body::VoteRequest { pre_vote: false, last_term: Term(2), last_position: Position(64) };
        out.clear();
        node.on_message(2, MemberId(3), Term(3), shorter, &log, &mut out);
        assert_eq!(sends(&out)[0].2, Body::VoteResponse { pre_vote: false, granted: false });
        let equal = Body::VoteRequest { pre_vote: false, last_term: Term(2), last_position: log.end() };
        out.clear();
        node.on_message(3, MemberId(3), Term(3), equal, &log, &mut out);
        assert_eq!(sends(&out)[0].2, Body::VoteResponse { pre_vote: false, granted: true });
    }

    #[test]
    fn a_pre_vote_is_refused_while_the_leader_is_heard_from() {
        let log = MemLog::new();
        let mut node = follower(1);
        let mut out = Vec::new();
        let heartbeat = Body::Heartbeat { position_commit: Position::ZERO, position_append: Position::ZERO };
        node.on_message(1000, MemberId(2), Term(1), heartbeat, &log, &mut out);
        assert_eq!(node.leader(), Some(MemberId(2)));
        let pre_vote = Body::VoteRequest { pre_vote: true, last_term: Term::ZERO, last_position: Position::ZERO };
        out.clear();
        node.on_message(1000 + TIMEOUT / 2, MemberId(3), Term(2), pre_vote, &log, &mut out);
        assert_eq!(sends(&out)[0].2, Body::VoteResponse { pre_vote: true, granted: false }, "the leader is fresh");
        out.clear();
        node.on_message(1000 + TIMEOUT, MemberId(3), Term(2), pre_vote, &log, &mut out);
        assert_eq!(sends(&out)[0].2, Body::VoteResponse { pre_vote: true, granted: true });
        assert_eq!(node.term(), Term(1), "granting a pre-vote moves no term");
    }

    #[test]
    fn a_new_leader_appends_a_new_leadership_term_entry_and_syncs() {
        let log = log_of(&[1, 1]);
        let mut node = follower(1);
        let mut out = Vec::new();
        node.on_tick(3 * TIMEOUT, &log, &mut out);
        node.on_message(
            3 * TIMEOUT,
            MemberId(2),
            Term(1),
            Body::VoteResponse { pre_vote: true, granted: true },
            &log,
            &mut out,
        );
        out.clear();
        node.on_message(
            3 * TIMEOUT,
            MemberId(2),
            Term(1),
            Body::VoteResponse { pre_vote: false, granted: true },
            &log,
            &mut out,
        );
        assert_eq!(node.role(), Role::Leader);
        let append = out.iter().find_map(|e| match e {
            Effect::Append { meta, .. } => Some(*meta),
            _ => None,
        });
        assert_eq!(append.map(|m| (m.kind, m.term)), Some((EntryKind::NewLeadershipTerm, Term(1))));
        assert_eq!(out.last(), Some(&Effect::Sync));
    }

    #[test]
    fn the_leader_commits_only_past_its_own_first_entry() {
        let mut log = log_of(&[1, 1, 1]); // entries of an older term
        let (mut node, now) = leader(&log);
        let old_end = log.end();
        let meta = EntryMeta {
            kind: EntryKind::NewLeadershipTerm,
            flags: 0,
            term: node.term(),
            timestamp: ClusterTimeNs(0),
            session: SessionId(0),
            correlation_id: 0,
        };
        log.append(&meta, &[]).unwrap();
        log.sync();
        let mut out = Vec::new();
        let ack = |position| Body::AppendAck { position_append: position, position_durable: position };
        node.on_message(now, MemberId(2), node.term(), ack(old_end), &log, &mut out);
        assert!(
            !out.iter().any(|e| matches!(e, Effect::Commit { .. })),
            "old-term entries alone do not commit: {out:?}"
        );
        node.on_message(now, MemberId(2), node.term(), ack(log.end()), &log, &mut out);
        assert_eq!(out.last(), Some(&Effect::Commit { position: log.end() }));
    }

    /// Member 2, a follower in term 2, receives `chunk` from member 1, leader of term 3.
    fn append_from_leader<'a>(chunk: Chunk<'a>, log: &MemLog) -> Vec<Effect<'a>> {
        let mut node = Consensus::new(config(2), Term(2), None, 0);
        let mut out = Vec::new();
        node.on_append(1, MemberId(1), Term(3), Append { chunk, commit_position: Position::ZERO }, log, &mut out);
        out
    }

    #[test]
    fn a_follower_truncates_a_divergent_tail_and_takes_the_leaders_entries() {
        let mut follower_log = log_of(&[1, 1]);
        let shared_end = follower_log.end();
        let (stale, payload) = command(2, 9);
        follower_log.append(&stale, &payload).unwrap(); // never committed: from a leader that lost
        let mut leader_log = log_of(&[1, 1]);
        let (fresh, payload) = command(3, 7);
        leader_log.append(&fresh, &payload).unwrap();
        let bytes = &leader_log.bytes().1[shared_end.0 as usize..];
        let chunk = Chunk {
            from_position: shared_end,
            checksum_prev: leader_log.checksum_before(shared_end).unwrap(),
            fragment_offset: 0,
            bytes,
        };
        let out = append_from_leader(chunk, &follower_log);
        let changes: Vec<_> =
            out.iter().filter(|e| matches!(e, Effect::Truncate { .. } | Effect::AppendRaw { .. })).collect();
        assert_eq!(
            changes,
            vec![
                &Effect::Truncate { position: shared_end },
                &Effect::AppendRaw { position: shared_end, bytes: AppendBytes::Frame(bytes) }
            ]
        );
    }

    #[test]
    fn a_follower_that_disagrees_before_the_chunk_naks_where_its_last_term_began() {
        let follower_log = log_of(&[1, 2, 2, 2]);
        let term2_start = follower_log.term_start(Term(2)).unwrap();
        let chunk = Chunk { from_position: follower_log.end(), checksum_prev: 0xdead, fragment_offset: 0, bytes: &[] };
        let out = append_from_leader(chunk, &follower_log);
        assert_eq!(sends(&out), vec![(MemberId(1), Term(3), Body::Nak { position: term2_start })]);
        assert!(!out.iter().any(|e| matches!(e, Effect::Truncate { .. })), "no truncation on a hint alone");
    }

    #[test]
    fn a_follower_needing_deleted_entries_is_sent_the_snapshot_then_the_log_after_it() {
        let mut log = log_of(&[1, 1, 1, 1, 1, 1]);
        let (mut leader, now) = leader(&log);
        let snapshot_at = Position(log.end().0 / 2 / 96 * 96); // an entry boundary (96-byte entries)
        let last = log.entry(Position(snapshot_at.0 - 96)).unwrap();
        let base = ordo_core::LogBase {
            position: snapshot_at,
            term: last.header.term(),
            entry_position: last.position(),
            checksum: last.checksum(),
            time_max: ClusterTimeNs(0),
        };
        log.delete_below(snapshot_at);
        let snapshot: Vec<u8> = (0..2500u32).map(|i| i as u8).collect();
        let term = leader.term();

        // Member 2's log is empty: it NAKs position 0, which the leader no longer holds.
        let mut out = Vec::new();
        leader.on_message(now, MemberId(2), term, Body::Nak { position: Position::ZERO }, &log, &mut out);
        let mut appends_to_2 = 0;
        leader.poll_appends(&log, 1000, 16, &mut |to, _, _| appends_to_2 += (to == MemberId(2)) as usize);
        assert_eq!(appends_to_2, 0, "no log bytes while it needs the snapshot");
        assert!(leader.installing());
        let mut chunks = Vec::new();
        leader.poll_snapshots(now, Some((snapshot_at, &snapshot)), 1000, 16, &mut |to, _, body| {
            if let Body::SnapshotChunk { snapshot_position, offset, total_bytes, bytes } = body {
                chunks.push((to, snapshot_position, offset, total_bytes, bytes.to_vec()));
            }
        });
        assert_eq!(
            chunks.iter().map(|c| (c.0, c.2, c.4.len())).collect::<Vec<_>>(),
            [(MemberId(2), 0, 1000), (MemberId(2), 1000, 1000), (MemberId(2), 2000, 500)]
        );

        // The follower keeps chunks in order only, acknowledging what it holds.
        let mut follower = follower(2);
        let mut follower_log = MemLog::new();
        let chunk_body = |k: usize| Body::SnapshotChunk {
            snapshot_position: chunks[k].1,
            offset: chunks[k].2,
            total_bytes: chunks[k].3,
            bytes: &chunks[k].4,
        };
        let mut acks = Vec::new();
        for k in [0, 2, 1] {
            let mut out = Vec::new();
            follower.on_message(now, MemberId(1), term, chunk_body(k), &follower_log, &mut out);
            acks.extend(sends(&out).into_iter().map(|(_, _, m)| m));
        }
        let ack = |offset| Body::SnapshotAck { snapshot_position: snapshot_at, offset };
        assert_eq!(acks, [ack(1000), ack(1000), ack(2000)], "chunk 3 before chunk 2 is not kept");
        let mut out = Vec::new();
        follower.on_message(now, MemberId(1), term, chunk_body(2), &follower_log, &mut out);
        assert_eq!(out, [Effect::InstallSnapshot { position: snapshot_at }], "whole: install, ack after");
        assert_eq!(follower.snapshot_received(), snapshot);

        // Installed: the log continues after the snapshot, committed to its position.
        follower_log.reset_to(&base);
        let mut out = Vec::new();
        follower.on_snapshot_installed(true, &follower_log, &mut out);
        assert_eq!(out[0], Effect::Commit { position: snapshot_at });
        assert_eq!(sends(&out)[0].2, ack(2500));
        leader.on_message(now, MemberId(2), term, ack(2500), &log, &mut out);
        assert!(!leader.installing());
        let mut from = None;
        leader.poll_appends(&log, 100_000, 16, &mut |to, _, append| {
            if to == MemberId(2) {
                from = Some(append.chunk.from_position);
            }
        });
        assert_eq!(from, Some(snapshot_at), "the log is streamed from the snapshot's position");
    }

    #[test]
    fn a_snapshot_half_received_from_a_deposed_leader_does_not_block_an_older_one_from_the_next() {
        // Found by the simulator (seed 151 once it ran the real replica): the leader of term 1
        // sent part of its snapshot at 2000 and lost its disk; the leader of term 2 has only
        // taken one at 1000. The follower waited for the rest of the first forever.
        let mut follower = follower(2);
        let log = MemLog::new();
        let chunk = |position: u64, bytes: &'static [u8], total_bytes: u64| Body::SnapshotChunk {
            snapshot_position: Position(position),
            offset: 0,
            total_bytes,
            bytes,
        };
        let mut out = Vec::new();
        follower.on_message(0, MemberId(1), Term(1), chunk(2000, b"first half", 20), &log, &mut out);
        assert!(!out.iter().any(|e| matches!(e, Effect::InstallSnapshot { .. })), "half of it: {out:?}");
        let mut out = Vec::new();
        follower.on_message(1, MemberId(3), Term(2), chunk(1000, b"whole", 5), &log, &mut out);
        assert!(out.contains(&Effect::InstallSnapshot { position: Position(1000) }), "{out:?}");
        assert_eq!(follower.snapshot_received(), b"whole");
        // While one leader's own older chunk, late, is still stale.
        let mut follower = self::follower(2);
        let mut out = Vec::new();
        follower.on_message(0, MemberId(1), Term(1), chunk(2000, b"first half", 20), &log, &mut out);
        let mut out = Vec::new();
        follower.on_message(1, MemberId(1), Term(1), chunk(1000, b"whole", 5), &log, &mut out);
        assert!(!out.iter().any(|e| matches!(e, Effect::InstallSnapshot { .. })), "{out:?}");
    }

    #[test]
    fn a_new_leader_whose_clock_is_behind_never_stamps_earlier_than_its_log() {
        let mut log = MemLog::new();
        let late = EntryMeta::command(Term(1), ClusterTimeNs(1_000_000), SessionId(1), 0);
        log.append(&late, b"from a leader with a fast clock").unwrap();
        let (mut node, _) = leader(&log); // its clock reads 0, far below 1_000_000
        let mut out = Vec::new();
        node.propose(SessionId(1), 1, b"x", &mut out).unwrap();
        let stamps: Vec<_> = out
            .iter()
            .filter_map(|e| if let Effect::Append { meta, .. } = e { Some(meta.timestamp) } else { None })
            .collect();
        assert!(!stamps.is_empty() && stamps.iter().all(|&t| t >= ClusterTimeNs(1_000_000)), "{stamps:?}");
    }

    #[test]
    fn a_leader_that_hears_from_no_majority_steps_down() {
        let log = log_of(&[1]);
        let (mut node, now) = leader(&log);
        let mut out = Vec::new();
        node.on_tick(now + TIMEOUT / 2, &log, &mut out);
        assert_eq!(node.role(), Role::Leader);
        node.on_tick(now + TIMEOUT, &log, &mut out);
        assert_eq!(node.role(), Role::Follower);
        assert_eq!(node.leader(), None);
    }

    #[test]
    fn a_higher_term_makes_a_leader_step_down_and_a_stale_leader_is_told() {
        let log = log_of(&[1]);
        let (mut node, now) = leader(&log);
        let mut out = Vec::new();
        let ack = Body::AppendAck { position_append: Position::ZERO, position_durable: Position::ZERO };
        node.on_message(now, MemberId(3), Term(9), ack, &log, &mut out);
        assert_eq!((node.role(), node.term()), (Role::Follower, Term(9)));
        out.clear();
        let heartbeat = Body::Heartbeat { position_commit: Position::ZERO, position_append: Position::ZERO };
        node.on_message(now, MemberId(2), Term(4), heartbeat, &log, &mut out);
        assert_eq!(sends(&out)[0].1, Term(9), "the stale leader learns the current term");
        assert_eq!(node.leader(), None);
    }

    #[test]
    fn a_proposal_to_a_follower_is_redirected_to_the_leader() {
        let log = MemLog::new();
        let mut node = follower(1);
        let mut out = Vec::new();
        assert_eq!(node.propose(SessionId(1), 1, b"x", &mut out), Err(NotLeader::Unknown));
        let heartbeat = Body::Heartbeat { position_commit: Position::ZERO, position_append: Position::ZERO };
        node.on_message(1, MemberId(3), Term(1), heartbeat, &log, &mut out);
        assert_eq!(node.propose(SessionId(1), 1, b"x", &mut out), Err(NotLeader::Redirect(MemberId(3))));
    }

    #[test]
    fn a_late_vote_of_an_old_round_is_not_counted_with_pre_votes_of_the_next() {
        // Five members: member 1 wins a pre-vote and stands in term 1.
        let log = MemLog::new();
        let mut node = Consensus::new(config_of(1, 5), Term::ZERO, None, 0);
        let mut out = Vec::new();
        let now = 2 * TIMEOUT;
        node.on_tick(now, &log, &mut out);
        let pre_vote = Body::VoteResponse { pre_vote: true, granted: true };
        for voter in [2, 3] {
            node.on_message(now, MemberId(voter), Term(1), pre_vote, &log, &mut out);
        }
        assert_eq!((node.role(), node.term()), (Role::Candidate, Term(1)));
        // Its election times out unanswered: a pre-vote round for term 2 begins.
        let later = now + 3 * TIMEOUT;
        node.on_tick(later, &log, &mut out);
        // One pre-vote for term 2, then a late real vote for term 1.
        node.on_message(later, MemberId(2), Term(2), pre_vote, &log, &mut out);
        let vote = Body::VoteResponse { pre_vote: false, granted: true };
        node.on_message(later, MemberId(3), Term(1), vote, &log, &mut out);
        // Two real votes of five (its own and member 3's): another candidate may hold three.
        assert_ne!(node.role(), Role::Leader, "led term {} on two real votes of five", node.term().0);
    }

    /// Delivers every message among `nodes` (index i is member i + 1) at each step of
    /// `TIMEOUT / 10` until one leads; its index, or `None` after `steps` steps.
    fn elect(nodes: &mut [Consensus], logs: &[MemLog], steps: u64) -> Option<usize> {
        for step in 1..=steps {
            let now = step * TIMEOUT / 10;
            let mut queue = Vec::new();
            for (i, node) in nodes.iter_mut().enumerate() {
                let mut out = Vec::new();
                node.on_tick(now, &logs[i], &mut out);
                queue.extend(sends(&out).into_iter().map(|send| (MemberId(i as u16 + 1), send)));
            }
            while let Some((from, (to, term, message))) = queue.pop() {
                let Some(i) = (to.0 as usize).checked_sub(1).filter(|&i| i < nodes.len()) else { continue };
                let mut out = Vec::new();
                nodes[i].on_message(now, from, term, message, &logs[i], &mut out);
                queue.extend(sends(&out).into_iter().map(|send| (to, send)));
            }
            if let Some(leader) = nodes.iter().position(|n| n.role() == Role::Leader) {
                return Some(leader);
            }
        }
        None
    }

    #[test]
    fn a_longer_log_with_an_older_term_and_a_newer_term_with_a_shorter_log_elect_a_leader() {
        // After a partition heals, with member 3 down: member 1 holds the longer log but
        // stored term 3; member 2 stood in elections up to term 5 but its log is shorter.
        let logs = [log_of(&[1, 1, 3]), log_of(&[1, 1])];
        let mut nodes = [Consensus::new(config(1), Term(3), None, 0), Consensus::new(config(2), Term(5), None, 0)];
        let leader = elect(&mut nodes, &logs, 500);
        assert_eq!(
            leader,
            Some(0),
            "no leader in 50 election timeouts: terms {}, {}",
            nodes[0].term().0,
            nodes[1].term().0
        );
    }

    /// A follower that committed the six entries of `log` under member 1 in term 1.
    fn follower_that_committed(log: &MemLog) -> Consensus {
        let mut node = follower(2);
        let chunk =
            Chunk { from_position: log.end(), checksum_prev: log.checksum_last(), fragment_offset: 0, bytes: &[] };
        let mut out = Vec::new();
        node.on_append(1, MemberId(1), Term(1), Append { chunk, commit_position: log.end() }, log, &mut out);
        assert_eq!(node.commit_position(), log.end());
        node
    }

    #[test]
    fn a_snapshot_at_or_below_the_followers_commit_is_never_installed() {
        let mut log = log_of(&[1, 1, 1, 1, 1, 1]);
        let mut node = follower_that_committed(&log);
        log.delete_below(Position(4 * 96)); // it snapshotted 4 entries in
        // Member 3 leads term 2 and sends its own, older snapshot, 2 entries in.
        let mut out = Vec::new();
        let heartbeat = Body::Heartbeat { position_commit: log.end(), position_append: log.end() };
        node.on_message(2, MemberId(3), Term(2), heartbeat, &log, &mut out);
        out.clear();
        let old = Position(2 * 96);
        let chunk = Body::SnapshotChunk { snapshot_position: old, offset: 0, total_bytes: 100, bytes: &[7; 100] };
        node.on_message(3, MemberId(3), Term(2), chunk, &log, &mut out);
        assert!(!out.iter().any(|e| matches!(e, Effect::InstallSnapshot { .. })), "installed: {out:?}");
        let done = Body::SnapshotAck { snapshot_position: old, offset: 100 };
        assert_eq!(sends(&out), vec![(MemberId(3), Term(2), done)], "the leader is told it has it");
    }

    #[test]
    fn a_restarted_member_ignores_a_snapshot_below_its_own() {
        let mut log = log_of(&[1, 1, 1, 1, 1, 1]);
        log.delete_below(Position(4 * 96));
        let mut node = Consensus::new(config(2), Term(1), None, 0);
        node.note_committed(Position(4 * 96)); // its newest snapshot
        let mut out = Vec::new();
        let old = Position(2 * 96);
        let chunk = Body::SnapshotChunk { snapshot_position: old, offset: 0, total_bytes: 100, bytes: &[7; 100] };
        node.on_message(3, MemberId(3), Term(2), chunk, &log, &mut out);
        assert!(!out.iter().any(|e| matches!(e, Effect::InstallSnapshot { .. })), "installed: {out:?}");
    }

    #[test]
    fn a_follower_asked_to_agree_below_its_log_start_naks_at_its_log_start() {
        let mut log = log_of(&[1, 1, 1, 1, 1, 1]);
        log.delete_below(Position(4 * 96)); // it snapshotted 4 entries in
        let chunk = Chunk { from_position: Position(2 * 96), checksum_prev: 0x1234, fragment_offset: 0, bytes: &[] };
        let out = append_from_leader(chunk, &log);
        assert_eq!(sends(&out), vec![(MemberId(1), Term(3), Body::Nak { position: Position(4 * 96) })]);
    }

    #[test]
    fn a_recovering_member_neither_stands_nor_votes_until_it_holds_what_every_other_member_reported() {
        let mut log = MemLog::new();
        let mut node = follower(2);
        node.start_recovering();
        let mut out = Vec::new();
        node.on_tick(10 * TIMEOUT, &log, &mut out);
        let queries: Vec<_> = sends(&out).into_iter().filter(|s| matches!(s.2, Body::RecoveryQuery { .. })).collect();
        assert_eq!(queries.iter().map(|s| s.0).collect::<Vec<_>>(), vec![MemberId(1), MemberId(3)], "{out:?}");
        let Body::RecoveryQuery { nonce } = queries[0].2 else { unreachable!() };
        assert!(!sends(&out).iter().any(|s| matches!(s.2, Body::VoteRequest { .. })), "it stood: {out:?}");
        for pre_vote in [true, false] {
            let request = Body::VoteRequest { pre_vote, last_term: Term::ZERO, last_position: Position::ZERO };
            out.clear();
            node.on_message(10 * TIMEOUT, MemberId(3), Term(1), request, &log, &mut out);
            assert_eq!(sends(&out)[0].2, Body::VoteResponse { pre_vote, granted: false });
        }
        // Member 1 leads term 2 (its log: term-1 entries, then its own first entry) and says
        // it committed all of it: a leader's word, perhaps held in the network from before
        // the loss (seed 796), is not enough.
        let leaders = log_of(&[1, 1, 2]);
        let (start, end) = (Position::ZERO, leaders.end());
        let bytes = leaders.bytes_between(start, end);
        let chunk = Chunk { from_position: start, checksum_prev: 0, fragment_offset: 0, bytes };
        out.clear();
        node.on_append(11 * TIMEOUT, MemberId(1), Term(2), Append { chunk, commit_position: end }, &log, &mut out);
        log.append_raw(start, bytes).unwrap();
        log.sync();
        out.clear();
        node.on_durable(&log, &mut out);
        assert!(node.recovering(), "recovered on a leader's word: {out:?}");
        let durable_acked = |out: &[Effect<'_>]| {
            sends(out).iter().find_map(|(_, _, m)| match m {
                Body::AppendAck { position_durable, .. } => Some(*position_durable),
                _ => None,
            })
        };
        assert_eq!(durable_acked(&out), Some(Position::ZERO), "while recovering its acks count for no commit");
        // The others answer: member 3 holds one entry more, in term 3 (it voted there).
        let report = |nonce, term, log_end| Body::RecoveryReport {
            nonce,
            term: Term(term),
            last_term: Term(2),
            log_end,
            recovering: false,
        };
        let longer = Position(end.0 + 96);
        for (from, answer) in
            [(1, report(nonce ^ 1, 2, end)), (1, report(nonce, 2, end)), (3, report(nonce, 3, longer))]
        {
            out.clear();
            node.on_message(12 * TIMEOUT, MemberId(from), Term(2), answer, &log, &mut out);
            assert!(node.recovering(), "member 3's log is longer, or an answer was of another incarnation: {out:?}");
        }
        let more = log_of(&[1, 1, 2, 2]);
        let chunk = Chunk {
            from_position: end,
            checksum_prev: log.checksum_last(),
            fragment_offset: 0,
            bytes: more.bytes_between(end, more.end()),
        };
        out.clear();
        node.on_append(13 * TIMEOUT, MemberId(1), Term(2), Append { chunk, commit_position: end }, &log, &mut out);
        log.append_raw(end, more.bytes_between(end, more.end())).unwrap();
        log.sync();
        out.clear();
        node.on_durable(&log, &mut out);
        assert!(!node.recovering(), "{out:?}");
        assert!(out.contains(&Effect::Recovered { term: Term(3), voted_for: Some(MemberId(2)) }), "{out:?}");
        let request = Body::VoteRequest { pre_vote: false, last_term: Term(2), last_position: more.end() };
        out.clear();
        node.on_message(14 * TIMEOUT, MemberId(3), Term(3), request, &log, &mut out);
        assert_eq!(sends(&out)[0].2, Body::VoteResponse { pre_vote: false, granted: false }, "term 3 counts as voted");
    }

    #[test]
    fn an_append_from_anyone_but_another_member_changes_nothing() {
        let log = log_of(&[1]);
        let chunk =
            Chunk { from_position: log.end(), checksum_prev: log.checksum_last(), fragment_offset: 0, bytes: &[] };
        for impostor in [0, 2, 9] {
            let mut node = follower(2);
            let mut out = Vec::new();
            node.on_append(
                1,
                MemberId(impostor),
                Term(7),
                Append { chunk, commit_position: log.end() },
                &log,
                &mut out,
            );
            assert!(out.is_empty(), "member {impostor}: {out:?}");
            assert_eq!((node.term(), node.leader()), (Term::ZERO, None));
        }
    }
}
