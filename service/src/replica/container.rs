//! The service container: applies committed log entries, in order, to an application's
//! [`StateMachine`], around it the state every member keeps alike: client sessions (a
//! command's (session, sequence) is applied at most once, however often a client retries it)
//! and timers. Deterministic: ordered maps only, time only from the log.
//!
//! - A session-open entry opens session id = its own log position (unique, and the same on
//!   every member); its correlation id is the client's nonce, so the client knows the reply.
//! - A command entry carries (session, sequence). Sequences may arrive out of order after a
//!   failover (a client pipelines), so each session keeps the highest applied sequence and a
//!   64-wide window of which ones below it were applied: a sequence inside the window is
//!   applied once, a repeat is answered `Duplicate` (with the reply it got, while that is
//!   among the last 64 kept), one older than the window `TooOld`. An unknown session is
//!   answered `UnknownSession`.
//! - A session-close entry (the leader's decision that a session idled out, or the client's
//!   own close) removes the session.
//! - A timer entry fires timer id = its correlation id, if it is still scheduled and due at
//!   the entry's cluster time; a repeat finds it gone and does nothing.
//!
//! - A snapshot-request entry asks every member to snapshot right after it: the container
//!   stops there (`snapshot_due`) so the driver writes [`Container::encode`] at exactly that
//!   position, the same on every member; [`Container::restore`] reads it back.

use crate::deliberate::DeliberateBug;
use ordo_core::LogBase;
use ordo_core::checksum::crc64;
use ordo_core::machine::{Context, StateMachine, TimerRequest};
use ordo_core::{ClusterTimeNs, EntryKind, EntryView, Position, SessionId, Term};
use std::collections::{BTreeMap, VecDeque};

/// Sequences remembered per session below the highest applied one.
pub const SEQUENCE_WINDOW: u64 = 64;
/// Replies kept per session for answering retries.
pub const REPLIES_KEPT: usize = 64;

#[derive(Clone, Debug, PartialEq, Eq)]
struct Session {
    client_nonce: u64,
    last_active: ClusterTimeNs,
    /// The highest applied sequence, and bit `i` set when `max - i` was applied.
    max_sequence: u64,
    window: u64,
    replies: VecDeque<(u64, Vec<u8>)>,
}

impl Session {
    /// Whether it has been idle for `timeout_ns` at `now`.
    fn idle_at(&self, now: ClusterTimeNs, timeout_ns: u64) -> bool {
        self.last_active.0.saturating_add(timeout_ns) <= now.0
    }

    /// Records `sequence` as applied; `Err` says why it must not be.
    fn admit(&mut self, sequence: u64) -> Result<(), Outcome> {
        if sequence > self.max_sequence {
            let shift = sequence - self.max_sequence;
            self.window = if shift >= 64 { 0 } else { self.window << shift };
            self.window |= 1;
            self.max_sequence = sequence;
            return Ok(());
        }
        let age = self.max_sequence - sequence;
        if age >= SEQUENCE_WINDOW {
            return Err(Outcome::TooOld);
        }
        if self.window & (1 << age) != 0 {
            return Err(Outcome::Duplicate);
        }
        self.window |= 1 << age;
        Ok(())
    }
}

/// How a command fared.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    Applied,
    /// Applied before: not again.
    Duplicate,
    /// Older than the session's window: it may or may not have been applied; not now.
    TooOld,
    UnknownSession,
}

/// What applying an entry produced, for the driver to send (replies: leader only) or record.
#[derive(Debug, PartialEq, Eq)]
pub enum Output<'a> {
    SessionOpened {
        session: SessionId,
        client_nonce: u64,
        position: Position,
    },
    SessionClosed {
        session: SessionId,
        position: Position,
    },
    Reply {
        session: SessionId,
        sequence: u64,
        position: Position,
        outcome: Outcome,
        reply: &'a [u8],
    },
    /// Timer `timer_id`, due at `deadline`, fired by the entry at `position`.
    TimerFired {
        timer_id: u64,
        deadline: ClusterTimeNs,
        position: Position,
    },
    /// An event emitted by the entry at `position` (its session and cluster time given).
    Event {
        position: Position,
        session: SessionId,
        time: ClusterTimeNs,
        event: &'a [u8],
    },
}

pub struct Container<M: StateMachine> {
    machine: M,
    sessions: BTreeMap<SessionId, Session>,
    timers: BTreeMap<u64, ClusterTimeNs>,
    applied: Position,
    /// The term, position and checksum of the last entry applied, and the latest cluster
    /// time applied: what a log restarted after a snapshot of this state continues from.
    last_entry: (Term, Position, u32),
    time_max: ClusterTimeNs,
    /// Set by a snapshot-request entry, taken by the driver.
    snapshot_due: Option<Position>,
    /// Timers fired since this container was made (a statistic, not state: not encoded).
    timers_fired: u64,
    reply: Vec<u8>,
    events: Vec<u8>,
    timer_requests: Vec<TimerRequest>,
    /// The simulator's tests only (not state: not encoded).
    deliberate_bug: Option<DeliberateBug>,
}

impl<M: StateMachine> Container<M> {
    pub fn new(machine: M) -> Self {
        Container {
            machine,
            sessions: BTreeMap::new(),
            timers: BTreeMap::new(),
            applied: Position::ZERO,
            last_entry: (Term::ZERO, Position::ZERO, 0),
            time_max: ClusterTimeNs::ZERO,
            snapshot_due: None,
            timers_fired: 0,
            reply: Vec::new(),
            events: Vec::new(),
            timer_requests: Vec::new(),
            deliberate_bug: None,
        }
    }

    /// Switches a defect back on (the simulator's tests only).
    pub fn break_deliberately(&mut self, bug: Option<DeliberateBug>) {
        self.deliberate_bug = bug;
    }

    /// Timers fired since this container was made or restored.
    pub fn timers_fired(&self) -> u64 {
        self.timers_fired
    }

    pub fn machine(&self) -> &M {
        &self.machine
    }

    /// Everything below this position has been applied.
    pub fn applied_position(&self) -> Position {
        self.applied
    }

    pub fn session_count(&self) -> usize {
        self.sessions.len()
    }

    pub fn has_session(&self, session: SessionId) -> bool {
        self.sessions.contains_key(&session)
    }

    /// The defect the simulator's tests switched on, if any.
    pub(crate) fn deliberate_bug(&self) -> Option<DeliberateBug> {
        self.deliberate_bug
    }

    /// The nonce of the client that opened `session`.
    pub fn session_nonce(&self, session: SessionId) -> Option<u64> {
        self.sessions.get(&session).map(|s| s.client_nonce)
    }

    /// Applies one committed entry (the next one: entries are applied in log order); `next`
    /// is where the log puts the entry after it (`LogSource::entry_start` of its end), the
    /// position recorded as applied.
    pub fn apply(&mut self, entry: &EntryView<'_>, next: Position, out: &mut dyn FnMut(Output<'_>)) {
        debug_assert!(next >= entry.next_position(), "the next entry starts after this one");
        let position = entry.position();
        debug_assert!(position >= self.applied, "entries are applied in order");
        let header = entry.header;
        let time = header.timestamp();
        match entry.kind() {
            EntryKind::SessionOpen => {
                let session = SessionId(position.0);
                let client_nonce = header.correlation_id.get();
                let fresh =
                    Session { client_nonce, last_active: time, max_sequence: 0, window: 0, replies: VecDeque::new() };
                self.sessions.insert(session, fresh);
                out(Output::SessionOpened { session, client_nonce, position });
            }
            EntryKind::SessionClose => {
                // The leader proposed it for a session idle past the timeout the entry
                // carries; it takes effect only if the session is idle still, at the
                // entry's own time (a command of the session may have been applied since).
                let session = header.session();
                let ignores_activity = self.deliberate_bug == Some(DeliberateBug::CloseIgnoresActivity);
                if self.session_idle(session, time, header.correlation_id.get())
                    || (ignores_activity && self.sessions.contains_key(&session))
                {
                    self.sessions.remove(&session);
                    out(Output::SessionClosed { session, position });
                }
            }
            EntryKind::Command => self.apply_command(entry, out),
            EntryKind::Timer => {
                let timer_id = header.correlation_id.get();
                if let Some(&deadline) = self.timers.get(&timer_id).filter(|&&deadline| deadline <= time) {
                    self.timers.remove(&timer_id);
                    self.timers_fired += 1;
                    out(Output::TimerFired { timer_id, deadline, position });
                    self.reply.clear();
                    self.events.clear();
                    let mut ctx = Context::new(
                        position,
                        time,
                        SessionId(0),
                        &mut self.reply,
                        &mut self.events,
                        &mut self.timer_requests,
                    );
                    self.machine.on_timer(&mut ctx, timer_id);
                    self.after_apply(position, SessionId(0), time, out);
                }
            }
            EntryKind::SnapshotRequest => self.snapshot_due = Some(next),
            EntryKind::NewLeadershipTerm
            | EntryKind::MembershipChange
            | EntryKind::NoOp
            | EntryKind::Padding
            | EntryKind::Event => {}
        }
        self.applied = next;
        self.last_entry = (header.term(), position, entry.checksum());
        self.time_max = self.time_max.max(time);
    }

    /// Whether a snapshot-request entry was just applied: the driver snapshots before
    /// applying anything more.
    pub fn snapshot_due(&self) -> Option<Position> {
        self.snapshot_due
    }

    /// The position a snapshot-request entry asked for a snapshot at, once.
    pub fn take_snapshot_due(&mut self) -> Option<Position> {
        self.snapshot_due.take()
    }

    /// Where a log restarted from a snapshot of this state continues.
    pub fn log_base(&self) -> LogBase {
        let (term, entry_position, checksum) = self.last_entry;
        LogBase { position: self.applied, term, entry_position, checksum, time_max: self.time_max }
    }

    fn apply_command(&mut self, entry: &EntryView<'_>, out: &mut dyn FnMut(Output<'_>)) {
        let (position, header) = (entry.position(), entry.header);
        let (session_id, sequence, time) = (header.session(), header.correlation_id.get(), header.timestamp());
        let Some(session) = self.sessions.get_mut(&session_id) else {
            let outcome = Outcome::UnknownSession;
            return out(Output::Reply { session: session_id, sequence, position, outcome, reply: &[] });
        };
        session.last_active = time;
        if let Err(outcome) = session.admit(sequence) {
            let kept = session.replies.iter().find(|(s, _)| *s == sequence).map_or(&[][..], |(_, r)| &r[..]);
            return out(Output::Reply { session: session_id, sequence, position, outcome, reply: kept });
        }
        self.reply.clear();
        self.events.clear();
        let mut ctx =
            Context::new(position, time, session_id, &mut self.reply, &mut self.events, &mut self.timer_requests);
        self.machine.apply(&mut ctx, entry.payload);
        let session = self.sessions.get_mut(&session_id).expect("looked up above");
        // Keep the reply of every sequence in the window, where a retry is answered
        // `Duplicate`: a reply is dropped when its sequence leaves the window, not by apply
        // order (out-of-order applies would drop one still in it). The window holds 64
        // sequences, this one among them, so at most 63 others are kept. A dropped reply's
        // buffer is reused: no allocation once a session is warm.
        let oldest_in_window = session.max_sequence.saturating_sub(SEQUENCE_WINDOW - 1);
        let mut spare = None;
        while let Some(index) = session.replies.iter().position(|&(kept, _)| kept < oldest_in_window) {
            let (_, buffer) = session.replies.remove(index).expect("found above");
            spare.get_or_insert(buffer);
        }
        debug_assert!(session.replies.len() < REPLIES_KEPT, "more replies kept than the window holds");
        let mut kept = spare.unwrap_or_else(|| Vec::with_capacity(self.reply.len()));
        kept.clear();
        kept.extend_from_slice(&self.reply);
        session.replies.push_back((sequence, kept));
        out(Output::Reply { session: session_id, sequence, position, outcome: Outcome::Applied, reply: &self.reply });
        self.after_apply(position, session_id, time, out);
    }

    /// Hands out the events of the entry just applied and takes its timer requests.
    fn after_apply(
        &mut self,
        position: Position,
        session: SessionId,
        time: ClusterTimeNs,
        out: &mut dyn FnMut(Output<'_>),
    ) {
        for event in ordo_core::machine::events(&self.events) {
            out(Output::Event { position, session, time, event });
        }
        for request in self.timer_requests.drain(..) {
            match request {
                TimerRequest::Schedule { timer_id, deadline } => {
                    self.timers.insert(timer_id, deadline);
                }
                TimerRequest::Cancel { timer_id } => {
                    self.timers.remove(&timer_id);
                }
            }
        }
    }

    /// What the leader must sequence for the service at `now`, given what it already has in
    /// flight (`proposed`): a timer entry for each due timer, a session-close entry for each
    /// session idle for `session_timeout_ns`. Deterministic order: timers, then sessions, by id.
    pub fn leader_duties(
        &self,
        now: ClusterTimeNs,
        session_timeout_ns: u64,
        proposed: &std::collections::BTreeSet<(EntryKind, u64)>,
        duties: &mut Vec<(EntryKind, SessionId, u64)>,
    ) {
        for timer_id in self.due_timers(now) {
            if !proposed.contains(&(EntryKind::Timer, timer_id)) {
                duties.push((EntryKind::Timer, SessionId(0), timer_id));
            }
        }
        for session in self.idle_sessions(now, session_timeout_ns) {
            if !proposed.contains(&(EntryKind::SessionClose, session.0)) {
                // The timeout travels in the entry: its apply checks the session by it.
                duties.push((EntryKind::SessionClose, session, session_timeout_ns));
            }
        }
    }

    /// Whether a duty from `leader_duties` is still pending on the applied state (so the
    /// leader keeps it in flight) or done (so it can forget it).
    pub fn duty_pending(&self, kind: EntryKind, id: u64) -> bool {
        match kind {
            EntryKind::Timer => self.timers.contains_key(&id),
            EntryKind::SessionClose => self.sessions.contains_key(&SessionId(id)),
            _ => false,
        }
    }

    /// Timers due at `now` (the leader proposes a timer entry for each), in id order.
    pub fn due_timers(&self, now: ClusterTimeNs) -> impl Iterator<Item = u64> + '_ {
        self.timers.iter().filter(move |(_, deadline)| **deadline <= now).map(|(&id, _)| id)
    }

    /// Whether `session` is open and has been idle for `timeout_ns` at `now`.
    pub fn session_idle(&self, session: SessionId, now: ClusterTimeNs, timeout_ns: u64) -> bool {
        self.sessions.get(&session).is_some_and(|s| s.idle_at(now, timeout_ns))
    }

    /// Sessions idle since before `now - timeout_ns` (the leader proposes closing them).
    pub fn idle_sessions(&self, now: ClusterTimeNs, timeout_ns: u64) -> impl Iterator<Item = SessionId> + '_ {
        self.sessions.iter().filter(move |(_, s)| s.idle_at(now, timeout_ns)).map(|(&id, _)| id)
    }

    /// A hash of everything applied: the machine's state, the sessions and the timers.
    /// Members at the same applied position must have the same hash.
    pub fn state_hash(&self) -> u64 {
        let mut bytes = Vec::new();
        self.encode(&mut bytes);
        crc64(&bytes)
    }

    /// The container's whole state: the body of a snapshot.
    pub fn encode(&self, out: &mut Vec<u8>) {
        let (term, entry_position, checksum) = self.last_entry;
        for value in [self.applied.0, term.0, entry_position.0, checksum as u64, self.time_max.0] {
            out.extend_from_slice(&value.to_le_bytes());
        }
        out.extend_from_slice(&(self.sessions.len() as u64).to_le_bytes());
        for (id, session) in &self.sessions {
            for value in [id.0, session.client_nonce, session.last_active.0, session.max_sequence, session.window] {
                out.extend_from_slice(&value.to_le_bytes());
            }
            out.extend_from_slice(&(session.replies.len() as u64).to_le_bytes());
            for (sequence, reply) in &session.replies {
                out.extend_from_slice(&sequence.to_le_bytes());
                out.extend_from_slice(&(reply.len() as u64).to_le_bytes());
                out.extend_from_slice(reply);
            }
        }
        out.extend_from_slice(&(self.timers.len() as u64).to_le_bytes());
        for (id, deadline) in &self.timers {
            out.extend_from_slice(&id.to_le_bytes());
            out.extend_from_slice(&deadline.0.to_le_bytes());
        }
        self.machine.snapshot(out);
    }

    /// The container whose [`encode`](Container::encode) gave `body`; the machine restored
    /// with `M::restore`. An error says what part did not read.
    pub fn restore(body: &[u8]) -> Result<Container<M>, String> {
        let mut reader = Reader(body);
        let truncated = |what: &str| format!("the container state is cut short in its {what}");
        let [applied, term, entry_position, checksum, time_max] =
            reader.u64s().ok_or_else(|| truncated("positions"))?;
        let sessions_count = reader.u64().ok_or_else(|| truncated("sessions"))?;
        let mut sessions = BTreeMap::new();
        for _ in 0..sessions_count {
            let [id, client_nonce, last_active, max_sequence, window] =
                reader.u64s().ok_or_else(|| truncated("sessions"))?;
            let replies_count = reader.u64().ok_or_else(|| truncated("replies"))?;
            if replies_count > REPLIES_KEPT as u64 {
                return Err(format!("session {id} keeps {replies_count} replies, more than {REPLIES_KEPT}"));
            }
            let mut replies = VecDeque::with_capacity(replies_count as usize);
            for _ in 0..replies_count {
                let sequence = reader.u64().ok_or_else(|| truncated("replies"))?;
                let length = reader.u64().ok_or_else(|| truncated("replies"))?;
                let reply = reader.bytes(length).ok_or_else(|| truncated("replies"))?;
                replies.push_back((sequence, reply.to_vec()));
            }
            let session =
                Session { client_nonce, last_active: ClusterTimeNs(last_active), max_sequence, window, replies };
            sessions.insert(SessionId(id), session);
        }
        let timers_count = reader.u64().ok_or_else(|| truncated("timers"))?;
        let mut timers = BTreeMap::new();
        for _ in 0..timers_count {
            let [id, deadline] = reader.u64s().ok_or_else(|| truncated("timers"))?;
            timers.insert(id, ClusterTimeNs(deadline));
        }
        let machine = M::restore(reader.0).map_err(|error| format!("the app's state does not restore: {error}"))?;
        let checksum = u32::try_from(checksum).map_err(|_| "the last entry's checksum is out of range".to_string())?;
        Ok(Container {
            machine,
            sessions,
            timers,
            applied: Position(applied),
            last_entry: (Term(term), Position(entry_position), checksum),
            time_max: ClusterTimeNs(time_max),
            snapshot_due: None,
            timers_fired: 0,
            reply: Vec::new(),
            events: Vec::new(),
            timer_requests: Vec::new(),
            deliberate_bug: None,
        })
    }
}

impl<M: StateMachine> Container<M> {
    /// Checks that `body`, this container's [`encode`](Container::encode), restores to a
    /// state that encodes to the same bytes. A machine whose `snapshot` and `restore` disagree
    /// (a field left out, a `HashMap` written in its own order) would otherwise show up only
    /// as a state-hash divergence after some member restarts from its snapshot. The member
    /// runs it at its first snapshot in debug builds; the simulator at every snapshot.
    pub fn check_round_trip(body: &[u8]) -> Result<(), String> {
        let restored = Container::<M>::restore(body)?;
        let mut again = Vec::with_capacity(body.len());
        restored.encode(&mut again);
        if again == body {
            return Ok(());
        }
        let first_difference = body.iter().zip(&again).position(|(a, b)| a != b).unwrap_or(body.len().min(again.len()));
        Err(format!(
            "the app's snapshot does not restore to the same state: snapshot() wrote {} bytes (hash {:#018x}), \
             restore() then snapshot() gives {} bytes (hash {:#018x}), first different at byte {first_difference}; \
             snapshot() must write every field restore() reads, in a deterministic order (docs/state-machines.md, \
             \"Snapshots\")",
            body.len(),
            crc64(body),
            again.len(),
            crc64(&again),
        ))
    }
}

/// Reads the little-endian fields of [`Container::encode`].
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn bytes(&mut self, length: u64) -> Option<&'a [u8]> {
        let length = usize::try_from(length).ok().filter(|&l| l <= self.0.len())?;
        let (head, rest) = self.0.split_at(length);
        self.0 = rest;
        Some(head)
    }
    fn u64(&mut self) -> Option<u64> {
        self.bytes(8).map(|b| u64::from_le_bytes(b.try_into().expect("8 bytes")))
    }
    fn u64s<const N: usize>(&mut self) -> Option<[u64; N]> {
        let mut values = [0; N];
        for value in &mut values {
            *value = self.u64()?;
        }
        Some(values)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::replica::mem_log::MemLog;
    use ordo_core::{EntryMeta, LogSource, Term};

    /// Sums the first byte of each command, replies with the sum, schedules timer 9.
    #[derive(Default)]
    struct Sum {
        total: u64,
        fired: u64,
    }

    impl StateMachine for Sum {
        fn apply(&mut self, ctx: &mut Context<'_>, command: &[u8]) {
            self.total += command[0] as u64;
            ctx.reply(&self.total.to_le_bytes());
            ctx.emit(b"summed");
            if command[0] == 9 {
                ctx.schedule_timer(9, ctx.time().0 + 100);
            }
        }
        fn on_timer(&mut self, _ctx: &mut Context<'_>, timer_id: u64) {
            self.fired += timer_id;
        }
        fn snapshot(&self, out: &mut Vec<u8>) {
            out.extend_from_slice(&self.total.to_le_bytes());
            out.extend_from_slice(&self.fired.to_le_bytes());
        }
        fn restore(bytes: &[u8]) -> Result<Self, String> {
            let value = |i: usize| bytes.get(i * 8..i * 8 + 8).map(|b| u64::from_le_bytes(b.try_into().unwrap()));
            match (value(0), value(1), bytes.len()) {
                (Some(total), Some(fired), 16) => Ok(Sum { total, fired }),
                _ => Err(format!("a sum is 16 bytes, not {}", bytes.len())),
            }
        }
    }

    fn entry(kind: EntryKind, session: u64, correlation: u64, time: u64) -> EntryMeta {
        EntryMeta {
            kind,
            flags: 0,
            term: Term(1),
            timestamp: ClusterTimeNs(time),
            session: SessionId(session),
            correlation_id: correlation,
        }
    }

    /// Appends the entries to a log and applies them all; returns the outputs, simplified.
    fn run(entries: &[(EntryMeta, &[u8])]) -> (Container<Sum>, Vec<String>) {
        let mut log = MemLog::new();
        for (meta, payload) in entries {
            log.append(meta, payload).unwrap();
        }
        let mut container = Container::new(Sum::default());
        let mut outputs = Vec::new();
        let mut position = Position::ZERO;
        while position < log.log_end() {
            let bytes = &log.read_log(position).unwrap().1;
            let view = ordo_core::entry::decode_entry(bytes, position).unwrap();
            container.apply(&view, view.next_position(), &mut |output| outputs.push(format!("{output:?}")));
            position = view.next_position();
        }
        (container, outputs)
    }

    /// A machine whose `restore` forgets a field its `snapshot` wrote: the mistake the round
    /// trip check is for.
    #[derive(Default)]
    struct Forgetful(Sum);

    impl StateMachine for Forgetful {
        fn apply(&mut self, ctx: &mut Context<'_>, command: &[u8]) {
            self.0.apply(ctx, command);
        }
        fn snapshot(&self, out: &mut Vec<u8>) {
            self.0.snapshot(out);
        }
        fn restore(bytes: &[u8]) -> Result<Self, String> {
            let total = Sum::restore(bytes)?.total;
            Ok(Forgetful(Sum { total, fired: 0 }))
        }
    }

    #[test]
    fn a_snapshot_that_restores_to_another_state_is_caught_by_the_round_trip_check() {
        let (container, _) = run(&[
            (entry(EntryKind::SessionOpen, 0, 77, 1), b""),
            (entry(EntryKind::Command, 0, 1, 2), &[9]),
            (entry(EntryKind::Timer, 0, 9, 500), b""),
        ]);
        assert_eq!(container.machine().fired, 9);
        let mut body = Vec::new();
        container.encode(&mut body);
        Container::<Sum>::check_round_trip(&body).expect("Sum's snapshot and restore agree");
        let message = Container::<Forgetful>::check_round_trip(&body).unwrap_err();
        assert!(message.contains("does not restore to the same state") && message.contains("first different at byte"));
        let message = Container::<Sum>::check_round_trip(&body[..body.len() - 1]).unwrap_err();
        assert!(message.contains("the app's state does not restore"), "{message}");
    }

    #[test]
    fn a_session_opens_at_its_entrys_position_and_commands_apply_once() {
        let open = entry(EntryKind::SessionOpen, 0, 77, 1);
        let (container, outputs) = run(&[
            (open, b""),
            (entry(EntryKind::Command, 0, 1, 2), &[5]),
            (entry(EntryKind::Command, 0, 2, 3), &[6]),
            (entry(EntryKind::Command, 0, 1, 4), &[5]), // a retry of sequence 1
        ]);
        assert_eq!(container.machine().total, 11, "the retry was not applied again");
        assert!(outputs[0].contains("SessionOpened { session: SessionId(0), client_nonce: 77"), "{outputs:?}");
        assert!(outputs.last().unwrap().contains("outcome: Duplicate"), "{outputs:?}");
        assert!(outputs.last().unwrap().contains("reply: [5, 0, 0, 0, 0, 0, 0, 0]"), "a retry gets its original reply");
    }

    #[test]
    fn a_retry_anywhere_in_the_window_gets_its_reply_even_after_out_of_order_applies() {
        // 2 applies before 1 (a reordered retry), then 3..=65: 65 replies were made, and the
        // window (2..=65) still holds 2, so a late retry of 2 must get 2's reply. (Keeping
        // the last 64 replies in apply order dropped 2's and answered it with none: the bank
        // test on a lossy network read an empty ledger reply.)
        let mut entries = vec![(entry(EntryKind::SessionOpen, 0, 77, 1), vec![])];
        entries.push((entry(EntryKind::Command, 0, 2, 2), vec![7]));
        entries.push((entry(EntryKind::Command, 0, 1, 3), vec![1]));
        for sequence in 3..=65 {
            entries.push((entry(EntryKind::Command, 0, sequence, 3 + sequence), vec![1]));
        }
        entries.push((entry(EntryKind::Command, 0, 2, 100), vec![7]));
        let borrowed: Vec<(EntryMeta, &[u8])> = entries.iter().map(|(meta, p)| (*meta, &p[..])).collect();
        let (container, outputs) = run(&borrowed);
        assert_eq!(container.machine().total, 7 + 1 + 63, "the retry was not applied again");
        let last = outputs.last().unwrap();
        assert!(last.contains("outcome: Duplicate") && last.contains("reply: [7, 0, 0, 0, 0, 0, 0, 0]"), "{last}");
        let kept = container.sessions.values().map(|s| s.replies.len()).max().unwrap();
        assert!(kept <= REPLIES_KEPT, "{kept}");
    }

    #[test]
    fn sequences_out_of_order_apply_once_each_within_the_window() {
        let mut session = Session {
            client_nonce: 0,
            last_active: ClusterTimeNs(0),
            max_sequence: 0,
            window: 0,
            replies: VecDeque::new(),
        };
        assert_eq!(session.admit(5), Ok(()));
        assert_eq!(session.admit(3), Ok(()), "an earlier one arriving late still applies");
        assert_eq!(session.admit(3), Err(Outcome::Duplicate));
        assert_eq!(session.admit(5), Err(Outcome::Duplicate));
        assert_eq!(session.admit(100), Ok(()));
        assert_eq!(session.admit(36), Err(Outcome::TooOld));
        assert_eq!(session.admit(37), Ok(()));
        assert_eq!(session.admit(37), Err(Outcome::Duplicate));
    }

    #[test]
    fn an_unknown_or_closed_session_is_refused() {
        let (container, outputs) = run(&[
            (entry(EntryKind::Command, 96, 1, 1), &[5]), // at 0: session 96 is not open yet
            (entry(EntryKind::SessionOpen, 0, 1, 2), b""), // at 96: opens session 96
            (entry(EntryKind::SessionClose, 96, 0, 3), b""),
            (entry(EntryKind::Command, 96, 2, 4), &[5]),
        ]);
        assert_eq!(container.machine().total, 0);
        assert!(
            outputs[0].contains("UnknownSession") && outputs.last().unwrap().contains("UnknownSession"),
            "{outputs:?}"
        );
        assert!(outputs.iter().any(|o| o.contains("SessionClosed")));
    }

    #[test]
    fn a_timer_fires_once_when_its_entry_comes_at_or_after_its_deadline() {
        let (container, _) = run(&[
            (entry(EntryKind::SessionOpen, 0, 1, 0), b""),
            (entry(EntryKind::Command, 0, 1, 10), &[9]), // schedules timer 9 for t=110
            (entry(EntryKind::Timer, 0, 9, 50), b""),    // too early: ignored
            (entry(EntryKind::Timer, 0, 9, 120), b""),
            (entry(EntryKind::Timer, 0, 9, 130), b""), // a repeat: the timer is gone
        ]);
        assert_eq!(container.machine().fired, 9);
        assert_eq!(container.due_timers(ClusterTimeNs(u64::MAX)).count(), 0);
    }

    #[test]
    fn equal_histories_hash_equal_and_any_difference_shows() {
        let history =
            [(entry(EntryKind::SessionOpen, 0, 1, 0), &b""[..]), (entry(EntryKind::Command, 0, 1, 5), &[3][..])];
        let (a, _) = run(&history);
        let (b, _) = run(&history);
        assert_eq!(a.state_hash(), b.state_hash());
        let (c, _) = run(&[history[0], (entry(EntryKind::Command, 0, 1, 5), &[4][..])]);
        assert_ne!(a.state_hash(), c.state_hash());
    }

    /// An entry of a random history: sessions 0 and 96 (opened by the first two entries),
    /// commands with small sequences (repeats and reordering included), timers, closings.
    fn arbitrary_entry() -> impl proptest::strategy::Strategy<Value = (EntryMeta, Vec<u8>)> {
        use proptest::prelude::*;
        (0u8..10, 0u64..2, 1u64..80, 1u8..12, 1u64..50).prop_map(|(kind, session, sequence, byte, time)| {
            let session = session * 96;
            match kind {
                0 => (entry(EntryKind::SessionClose, session, 0, time * 10), vec![]),
                1 => (entry(EntryKind::Timer, 0, 9, time * 10), vec![]),
                2 => (entry(EntryKind::SnapshotRequest, 0, 0, time * 10), vec![]),
                _ => (entry(EntryKind::Command, session, sequence, time * 10), vec![byte]),
            }
        })
    }

    proptest::proptest! {
        /// A container restored from its encoding at any point goes on exactly as the
        /// original: same outputs, same hash. A cut-short encoding is refused, not misread.
        #[test]
        fn restore_continues_exactly_as_the_original(
            history in proptest::collection::vec(arbitrary_entry(), 0..60),
            split in 0usize..64,
        ) {
            let mut entries = vec![
                (entry(EntryKind::SessionOpen, 0, 1, 0), vec![]),
                (entry(EntryKind::SessionOpen, 0, 2, 0), vec![]),
            ];
            entries.extend(history);
            let mut log = MemLog::new();
            let positions: Vec<Position> =
                entries.iter().map(|(meta, payload)| log.append(meta, payload).unwrap()).collect();
            let split = split.min(positions.len());
            let mut original = Container::new(Sum::default());
            let apply = |container: &mut Container<Sum>, from: usize, to: usize| {
                let mut outputs = Vec::new();
                for &position in &positions[from..to] {
                    let view = log.entry(position).unwrap();
                    container.apply(&view, view.next_position(), &mut |output| outputs.push(format!("{output:?}")));
                }
                outputs
            };
            apply(&mut original, 0, split);
            let mut body = Vec::new();
            original.encode(&mut body);
            let mut restored = Container::<Sum>::restore(&body).unwrap();
            proptest::prop_assert_eq!(restored.state_hash(), original.state_hash());
            proptest::prop_assert_eq!(restored.log_base(), original.log_base());
            for cut in [0, 1, body.len() / 2, body.len().saturating_sub(1)] {
                if cut < body.len() {
                    proptest::prop_assert!(Container::<Sum>::restore(&body[..cut]).is_err());
                }
            }
            let ahead = apply(&mut original, split, positions.len());
            let behind = apply(&mut restored, split, positions.len());
            proptest::prop_assert_eq!(ahead, behind);
            proptest::prop_assert_eq!(restored.state_hash(), original.state_hash());
        }
    }

    #[test]
    fn a_snapshot_request_marks_the_position_after_it() {
        let mut log = MemLog::new();
        log.append(&entry(EntryKind::SessionOpen, 0, 1, 0), b"").unwrap();
        let request = log.append(&entry(EntryKind::SnapshotRequest, 0, 0, 5), b"").unwrap();
        let mut container = Container::new(Sum::default());
        for position in [Position::ZERO, request] {
            let entry = log.entry(position).unwrap();
            container.apply(&entry, entry.next_position(), &mut |_| {});
        }
        let after = log.entry(request).unwrap().next_position();
        assert_eq!(container.take_snapshot_due(), Some(after));
        assert_eq!(container.take_snapshot_due(), None);
        let base = container.log_base();
        assert_eq!((base.position, base.entry_position, base.time_max), (after, request, ClusterTimeNs(5)));
        assert_eq!(base.checksum, log.entry(request).unwrap().checksum());
    }

    #[test]
    fn the_leader_is_told_to_fire_due_timers_and_close_idle_sessions_once() {
        let (container, _) = run(&[
            (entry(EntryKind::SessionOpen, 0, 1, 100), b""),
            (entry(EntryKind::Command, 0, 1, 100), &[9]), // timer 9 due at 200
        ]);
        let mut proposed = std::collections::BTreeSet::new();
        let mut duties = Vec::new();
        container.leader_duties(ClusterTimeNs(150), 100, &proposed, &mut duties);
        assert!(duties.is_empty());
        container.leader_duties(ClusterTimeNs(250), 100, &proposed, &mut duties);
        let close = (EntryKind::SessionClose, SessionId(0), 100); // the timeout travels with it
        assert_eq!(duties, vec![(EntryKind::Timer, SessionId(0), 9), close]);
        proposed.insert((EntryKind::Timer, 9));
        proposed.insert((EntryKind::SessionClose, 0));
        duties.clear();
        container.leader_duties(ClusterTimeNs(250), 100, &proposed, &mut duties);
        assert!(duties.is_empty(), "nothing twice while in flight");
        assert!(container.duty_pending(EntryKind::Timer, 9) && container.duty_pending(EntryKind::SessionClose, 0));
    }

    #[test]
    fn a_session_close_takes_effect_only_if_the_session_is_still_idle_at_its_time() {
        // The leader judged session 0 idle (timeout 100) at 250 and proposed its close; a
        // command of the session was sequenced before the close, at 240.
        let (container, outputs) = run(&[
            (entry(EntryKind::SessionOpen, 0, 1, 100), b""),
            (entry(EntryKind::Command, 0, 1, 240), &[1]),
            (entry(EntryKind::SessionClose, 0, 100, 260), b""),
        ]);
        assert!(container.has_session(SessionId(0)), "closed though active 20 ns before: {outputs:?}");
        assert!(!outputs.iter().any(|o| o.contains("SessionClosed")), "{outputs:?}");
        // Idle for the whole timeout at the close's own time: closed.
        let (container, outputs) = run(&[
            (entry(EntryKind::SessionOpen, 0, 1, 100), b""),
            (entry(EntryKind::Command, 0, 1, 140), &[1]),
            (entry(EntryKind::SessionClose, 0, 100, 240), b""),
        ]);
        assert!(!container.has_session(SessionId(0)), "{outputs:?}");
    }
}
