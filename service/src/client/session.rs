//! The client protocol as a sans-I/O state machine: session opening, redirects, the
//! window of commands in flight, resends under the same (session, sequence), session
//! expiry, and the event subscription. [`crate::Client`] drives it over a UDP endpoint;
//! the simulator's clients drive the same type over the simulated network. Members are
//! named by their index in the client's list of addresses.
//!
//! Two choices, and why:
//!
//! - At most [`SEQUENCE_WINDOW`] commands are in flight at once, and a new sequence stays
//!   within the window of the oldest unanswered one, so a retry is never older than the
//!   window the cluster remembers (which would leave it unsure whether the command was
//!   applied).
//! - Events come from whichever member the client talks to ([`crate::replica::event_feed`]): every
//!   member's event log is the same where they overlap, so after a failover the client asks
//!   the next member from the position it reached. A member whose event log begins past it
//!   says so (`EventsGone`); the client then asks the members that have not said so, and
//!   only when every member has, takes the gap ([`EventsGap`]: those events are gone) and
//!   goes on from the nearest start.

use crate::client::{Event, EventsGap, Reply, ReplyStatus};
use crate::deliberate::DeliberateBug;
use crate::replica::container::SEQUENCE_WINDOW;
use ordo_core::entry::decode_entry;
use ordo_core::{EntryKind, HEADER_BYTES, Position, SessionId};
use ordo_transport::{Body, Frame, ResponseStatus};
use std::collections::{BTreeMap, VecDeque};

struct InFlight {
    ticket: u64,
    command: Vec<u8>,
    /// When it was last sent (0: send it now).
    sent_ns: u64,
}

/// One client's session with a cluster of `members` members.
pub struct ClientSession {
    members: usize,
    retry_interval_ns: u64,
    in_flight_max: usize,
    /// The member commands go to.
    target: usize,
    nonce: u64,
    session: Option<SessionId>,
    opening_sent_ns: Option<u64>,
    next_sequence: u64,
    next_ticket: u64,
    /// By sequence in the current session.
    in_flight: BTreeMap<u64, InFlight>,
    /// Submitted, not yet sent (the window was full, or no session yet).
    waiting: VecDeque<(u64, Vec<u8>)>,
    replies: VecDeque<Reply>,
    /// Command buffers of answered commands, reused.
    spare: Vec<Vec<u8>>,
    /// Whether any member answered since the last resend.
    heard: bool,
    /// The next event position wanted, once subscribed.
    events_next: Option<Position>,
    events_ack_due: bool,
    events_requested_ns: u64,
    events: VecDeque<Event>,
    /// Where each member said its event log begins, past `events_next` (`None`: it has not).
    events_gone: Vec<Option<Position>>,
    /// The member asked for events instead of `target`, which said they were gone there.
    events_target: Option<usize>,
    /// Whether the member asked for events answered since the last request.
    events_heard: bool,
    gaps: VecDeque<EventsGap>,
    /// The simulator's tests only.
    deliberate_bug: Option<DeliberateBug>,
}

impl ClientSession {
    /// A session to open with a cluster of `members` members, under `nonce` (random: it
    /// tells this client's opening from another's; each later opening takes the next of a
    /// sequence that starts there); at most `in_flight_max` commands in
    /// flight (capped at the cluster's window), resent after `retry_interval_ns` unanswered.
    pub fn new(members: usize, nonce: u64, retry_interval_ns: u64, in_flight_max: usize) -> Self {
        debug_assert!(members > 0, "a client needs a member");
        ClientSession {
            members,
            retry_interval_ns,
            in_flight_max: in_flight_max.clamp(1, SEQUENCE_WINDOW as usize),
            target: 0,
            nonce,
            session: None,
            opening_sent_ns: None,
            next_sequence: 1,
            next_ticket: 1,
            in_flight: BTreeMap::new(),
            waiting: VecDeque::new(),
            replies: VecDeque::new(),
            spare: Vec::new(),
            heard: true,
            events_next: None,
            events_ack_due: false,
            events_requested_ns: 0,
            events: VecDeque::new(),
            events_gone: vec![None; members],
            events_target: None,
            events_heard: true,
            gaps: VecDeque::new(),
            deliberate_bug: None,
        }
    }

    /// Switches a defect back on (the simulator's tests only).
    pub(crate) fn break_deliberately(&mut self, bug: Option<DeliberateBug>) {
        self.deliberate_bug = bug;
    }

    pub fn nonce(&self) -> u64 {
        self.nonce
    }

    /// The session the cluster opened, once open.
    pub fn session(&self) -> Option<SessionId> {
        self.session
    }

    /// The member it sends to now (the leader, once it found it).
    pub fn target(&self) -> usize {
        self.target
    }

    /// Commands submitted and not yet answered.
    pub fn outstanding(&self) -> usize {
        self.in_flight.len() + self.waiting.len()
    }

    /// Queues a command; its reply will carry the ticket returned. Sent by the next `poll`.
    pub fn submit(&mut self, command: &[u8]) -> u64 {
        let ticket = self.next_ticket;
        self.next_ticket += 1;
        let mut buffer = self.spare.pop().unwrap_or_default();
        buffer.clear();
        buffer.extend_from_slice(command);
        self.waiting.push_back((ticket, buffer));
        ticket
    }

    /// The next reply that came in, in arrival order.
    pub fn take_reply(&mut self) -> Option<Reply> {
        self.replies.pop_front()
    }

    /// Asks for the events from `from` on; they arrive through `take_event`.
    pub fn subscribe_events(&mut self, from: Position) {
        self.events_next = Some(from);
        self.events_ack_due = true;
        self.events_gone.fill(None);
    }

    /// The next event, in event-log order.
    pub fn take_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// The next gap in the feed: events no member holds any more (each member's event log
    /// began anew past them), in order with the events ([`Event::next`] of the event before
    /// it is its `from`).
    pub fn take_events_gap(&mut self) -> Option<EventsGap> {
        self.gaps.pop_front()
    }

    /// The member events are asked of.
    fn events_member(&self) -> usize {
        self.events_target.unwrap_or(self.target)
    }

    /// Sends what is due at `now_ns` through `send(member, frame)`: the event subscription
    /// (and acknowledgement), a session opening, resends, new commands within the window.
    pub fn poll<E>(&mut self, now_ns: u64, send: &mut dyn FnMut(usize, &Body<'_>) -> Result<(), E>) -> Result<(), E> {
        let retry = self.retry_interval_ns;
        if let Some(next) = self.events_next
            && (self.events_ack_due || now_ns.saturating_sub(self.events_requested_ns) >= retry)
        {
            // Both the subscription and the acknowledgement of what came.
            if !self.events_ack_due && !std::mem::take(&mut self.events_heard) {
                self.events_target = None; // the member tried instead is silent
            }
            self.events_ack_due = false;
            self.events_requested_ns = now_ns;
            send(self.events_member(), &Body::EventData { from_position: next, bytes: &[] })?;
        }
        let Some(session) = self.session else {
            if self.opening_sent_ns.is_none_or(|at| now_ns.saturating_sub(at) >= retry) {
                if self.opening_sent_ns.is_some() {
                    self.move_on_if_unheard(); // no answer: try another member
                }
                self.opening_sent_ns = Some(now_ns);
                send(self.target, &Body::SessionOpen { client_nonce: self.nonce })?;
            }
            return Ok(());
        };
        let due = |flight: &InFlight| flight.sent_ns == 0 || now_ns.saturating_sub(flight.sent_ns) >= retry;
        if self.in_flight.values().any(due) {
            self.move_on_if_unheard(); // silence: the member may be down
            for (&sequence, flight) in self.in_flight.iter_mut() {
                if due(flight) {
                    flight.sent_ns = now_ns;
                    send(self.target, &Body::ClientRequest { session, sequence, command: &flight.command })?;
                }
            }
        }
        // A new sequence stays within the window of the oldest unanswered one, so a retry is
        // never too old for the cluster to know whether it was applied.
        let oldest = self.in_flight.keys().next().copied().unwrap_or(self.next_sequence);
        while self.in_flight.len() < self.in_flight_max
            && self.next_sequence < oldest + SEQUENCE_WINDOW
            && let Some((ticket, command)) = self.waiting.pop_front()
        {
            let sequence = self.next_sequence;
            self.next_sequence += 1;
            send(self.target, &Body::ClientRequest { session, sequence, command: &command })?;
            self.in_flight.insert(sequence, InFlight { ticket, command, sent_ns: now_ns });
        }
        Ok(())
    }

    /// Tries the next member if none answered since the last time it asked.
    pub fn move_on_if_unheard(&mut self) {
        if !std::mem::take(&mut self.heard) {
            self.target = (self.target + 1) % self.members;
        }
    }

    /// A redirect to `leader` (member ids count from 1; 0: no leader known yet): go there
    /// now, not after the retry interval.
    pub fn on_redirect(&mut self, leader: ordo_core::MemberId) {
        self.heard = true;
        if let Some(index) = (leader.0 as usize).checked_sub(1).filter(|&i| i < self.members)
            && self.target != index
        {
            self.target = index;
            self.opening_sent_ns = None;
            for flight in self.in_flight.values_mut() {
                flight.sent_ns = 0;
            }
        }
    }

    /// A frame from member `from` (`None`: from an address not in the client's list).
    pub fn on_frame(&mut self, from: Option<usize>, frame: &Frame<'_>) {
        match frame.body {
            Body::EventData { from_position, bytes } if self.continues_events(from_position) && !bytes.is_empty() => {
                self.on_events(from_position, bytes);
            }
            Body::EventsGone { from_position, start }
                if Some(from_position) == self.events_next && start > from_position =>
            {
                if let Some(member) = from {
                    self.on_events_gone(member, start);
                }
            }
            Body::Redirect { leader } => self.on_redirect(leader),
            Body::ClientResponse { session, sequence: 0, status: ResponseStatus::SessionOpened, reply, .. }
                if self.session.is_none() && reply == self.nonce.to_le_bytes() =>
            {
                self.session = Some(session);
                self.heard = true;
                if let Some(index) = from {
                    self.target = index;
                }
            }
            Body::ClientResponse { session, sequence, position, status, reply } if self.is_ours(session, status) => {
                self.heard = true;
                if status == ResponseStatus::UnknownSession {
                    self.expired(); // the cluster closed the session
                    return;
                }
                if let Some(flight) = self.in_flight.remove(&sequence) {
                    let status = ReplyStatus::of(status, reply);
                    let reply = if let ReplyStatus::ReplyTooLarge { .. } = status { &[][..] } else { reply };
                    let ticket = flight.ticket;
                    self.replies.push_back(Reply {
                        ticket,
                        session,
                        sequence,
                        position,
                        status,
                        reply: reply.to_vec(),
                    });
                    self.spare.push(flight.command);
                }
            }
            _ => {}
        }
    }

    /// Whether events sent from `from_position` continue the feed where it is (a late or
    /// duplicated frame of events already taken does not).
    fn continues_events(&self, from_position: Position) -> bool {
        let bug = self.deliberate_bug == Some(DeliberateBug::EventsTakenFromAnywhere);
        Some(from_position) == self.events_next || (bug && self.events_next.is_some())
    }

    /// Whether a response under `session` answers this session's commands.
    fn is_ours(&self, session: SessionId, status: ResponseStatus) -> bool {
        let bug = self.deliberate_bug == Some(DeliberateBug::ReplyMatchedBySequence);
        Some(session) == self.session || (bug && self.session.is_some() && status != ResponseStatus::UnknownSession)
    }

    /// Member `member` holds no events below `start`, past the next one wanted: ask one that
    /// has not said so, or if every member has, take the gap to the nearest start and go on
    /// from there, at the member whose log begins there.
    fn on_events_gone(&mut self, member: usize, start: Position) {
        let next = self.events_next.expect("only a subscriber is told");
        self.events_heard = true;
        self.events_gone[member] = Some(start);
        self.events_ack_due = true;
        let untried = (1..self.members).map(|k| (member + k) % self.members).find(|&m| self.events_gone[m].is_none());
        if untried.is_some() {
            self.events_target = untried;
            return;
        }
        let (nearest, to) = (0..self.members)
            .filter_map(|m| Some((m, self.events_gone[m]?)))
            .min_by_key(|&(_, start)| start)
            .expect("every member said");
        self.gaps.push_back(EventsGap { from: next, to });
        self.events_next = Some(to);
        self.events_gone.fill(None);
        self.events_target = Some(nearest);
    }

    fn on_events(&mut self, from_position: Position, bytes: &[u8]) {
        let (mut position, mut offset) = (from_position, 0usize);
        while offset < bytes.len() {
            let Ok(view) = decode_entry(&bytes[offset..], position) else { break };
            let header = view.header;
            if view.kind() == EntryKind::Event {
                self.events.push_back(Event {
                    position,
                    next: view.next_position(),
                    source: Position(header.correlation_id.get()),
                    session: header.session(),
                    time: header.timestamp(),
                    bytes: view.payload.to_vec(),
                });
            }
            offset += if view.kind() == EntryKind::Padding { HEADER_BYTES } else { header.span_bytes() as usize };
            position = view.next_position();
        }
        self.events_next = Some(position);
        self.events_ack_due = true;
        self.events_heard = true;
        self.events_gone.fill(None);
    }

    /// The session was closed by the cluster: what was sent under it and not answered may
    /// or may not have been applied (its reply may be what was lost), so each is answered
    /// [`ReplyStatus::SessionExpired`], never resent; what was never sent goes under a new
    /// session.
    fn expired(&mut self) {
        let Some(session) = self.session.take() else { return };
        self.opening_sent_ns = None;
        // The next opening has a nonce of its own: a late or duplicated answer to an earlier
        // one must not be taken for it (that session is closed, and its stored replies would
        // answer new commands as duplicates).
        self.nonce = next_nonce(self.nonce);
        self.next_sequence = 1;
        if self.deliberate_bug == Some(DeliberateBug::ResendAfterExpiry) {
            // The defect: "nothing of it was applied", so it goes again under a new session.
            for (_, flight) in std::mem::take(&mut self.in_flight).into_iter().rev() {
                self.waiting.push_front((flight.ticket, flight.command));
            }
        }
        for (sequence, flight) in std::mem::take(&mut self.in_flight) {
            let (ticket, position, status) = (flight.ticket, Position::ZERO, ReplyStatus::SessionExpired);
            self.replies.push_back(Reply { ticket, session, sequence, position, status, reply: Vec::new() });
            self.spare.push(flight.command);
        }
    }
}

/// The nonce of the opening after one under `nonce`: a step of SplitMix64, so a client's
/// openings take a pseudo-random sequence from its random start, and a repeat is as unlikely
/// as two random nonces colliding.
fn next_nonce(nonce: u64) -> u64 {
    let mut z = nonce.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ordo_core::{ClusterId, MemberId, Security, Term};
    use ordo_transport::{ClientKey, FrameCodec, KeyRing};

    /// Hands `client` the frame a member sends with `body`, through the real codec.
    fn receive(client: &mut ClientSession, from: usize, body: Body<'_>) {
        let key = ClientKey { id: 1, secret: [3; 32] };
        let keys = KeyRing::for_client(&key);
        let mut codec =
            FrameCodec::new(ClusterId(1), MemberId(from as u16 + 1), Security::Mac, keys, 1408).with_key_id(1);
        let mut buffer = [0u8; 1408];
        let length = codec.encode(&mut buffer, Term::ZERO, &body).unwrap();
        client.on_frame(Some(from), &codec.decode(&mut buffer[..length]).unwrap());
    }

    fn sent(session: &mut ClientSession, now_ns: u64) -> Vec<(usize, String)> {
        let mut frames = Vec::new();
        let result: Result<(), ()> = session.poll(now_ns, &mut |to, body| {
            frames.push((to, format!("{body:?}")));
            Ok(())
        });
        result.unwrap();
        frames
    }

    #[test]
    fn a_session_opens_follows_a_redirect_and_resends_under_the_same_sequence() {
        let mut client = ClientSession::new(3, 7, 100, 64);
        client.submit(b"one");
        let first = sent(&mut client, 0);
        assert_eq!(first.len(), 1, "only the opening, no command before the session: {first:?}");
        assert!(first[0].1.contains("SessionOpen"));
        receive(&mut client, 0, Body::Redirect { leader: MemberId(3) });
        assert_eq!(client.target(), 2, "straight to the leader it was told of");
        let again = sent(&mut client, 1);
        assert_eq!(again.iter().map(|f| f.0).collect::<Vec<_>>(), vec![2], "the opening again, at once: {again:?}");
        let nonce = 7u64.to_le_bytes();
        let status = ResponseStatus::SessionOpened;
        let opened =
            Body::ClientResponse { session: SessionId(9), sequence: 0, position: Position(64), status, reply: &nonce };
        receive(&mut client, 2, opened);
        assert_eq!(client.session(), Some(SessionId(9)));
        let command = sent(&mut client, 2);
        assert!(command[0].1.contains("sequence: 1"), "{command:?}");
        assert!(sent(&mut client, 50).is_empty(), "nothing due before the retry interval");
        let resend = sent(&mut client, 102);
        assert!(resend[0].1.contains("sequence: 1"), "the same sequence: {resend:?}");
    }

    #[test]
    fn a_late_answer_to_an_earlier_opening_is_not_taken_for_the_next_session() {
        // Found by the simulator (seed 176 of the fault classes of issue 18): a duplicated
        // answer to the first opening arrived after the session expired and the client asked
        // for a new one; taken as the new session, the old session's stored reply answered a
        // new command as a duplicate, and that command was never applied.
        let mut client = ClientSession::new(1, 1, 100, 1);
        let first_nonce = client.nonce().to_le_bytes();
        sent(&mut client, 0);
        fn opened(reply: &[u8; 8]) -> Body<'_> {
            let (session, status) = (SessionId(4), ResponseStatus::SessionOpened);
            Body::ClientResponse { session, sequence: 0, position: Position(0), status, reply: &reply[..] }
        }
        receive(&mut client, 0, opened(&first_nonce));
        assert_eq!(client.session(), Some(SessionId(4)));
        let closed = Body::ClientResponse {
            session: SessionId(4),
            sequence: 1,
            position: Position(0),
            status: ResponseStatus::UnknownSession,
            reply: &[],
        };
        receive(&mut client, 0, closed);
        assert!(sent(&mut client, 1)[0].1.contains("SessionOpen"), "it asks for a new session");
        receive(&mut client, 0, opened(&first_nonce));
        assert_eq!(client.session(), None, "the first opening's answer, late, is not the new session");
        let second_nonce = client.nonce().to_le_bytes();
        assert_ne!(second_nonce, first_nonce, "each opening has a nonce of its own");
        let reopened = Body::ClientResponse {
            session: SessionId(9),
            sequence: 0,
            position: Position(96),
            status: ResponseStatus::SessionOpened,
            reply: &second_nonce,
        };
        receive(&mut client, 0, reopened);
        assert_eq!(client.session(), Some(SessionId(9)));
    }

    #[test]
    fn an_expired_session_answers_what_was_in_flight_as_unknown_and_sends_the_rest_under_a_new_one() {
        let mut client = ClientSession::new(1, 1, 100, 1);
        let nonce = 1u64.to_le_bytes();
        let status = ResponseStatus::SessionOpened;
        sent(&mut client, 0);
        let opened =
            Body::ClientResponse { session: SessionId(4), sequence: 0, position: Position(0), status, reply: &nonce };
        receive(&mut client, 0, opened);
        let (sent_first, waiting) = (client.submit(b"a"), client.submit(b"b"));
        assert_eq!(sent(&mut client, 1).len(), 1, "a window of one");
        let status = ResponseStatus::UnknownSession;
        let closed =
            Body::ClientResponse { session: SessionId(4), sequence: 1, position: Position(0), status, reply: &[] };
        receive(&mut client, 0, closed);
        let reply = client.take_reply().expect("the one in flight is answered");
        assert_eq!((reply.ticket, reply.status), (sent_first, ReplyStatus::SessionExpired));
        assert_eq!(client.session(), None);
        assert_eq!(client.outstanding(), 1, "ticket {waiting} waits for the new session");
        assert!(sent(&mut client, 2)[0].1.contains("SessionOpen"));
    }

    /// Found by the simulator (seeds 369 and 822 of issue 18): a subscriber whose next event
    /// lay below its member's event log waited for ever. Told so, it asks the members that
    /// have not said so; when every member has, it takes the gap to the nearest start.
    #[test]
    fn events_gone_at_one_member_are_asked_of_the_others_and_a_gap_taken_only_when_all_say_so() {
        let mut client = ClientSession::new(3, 7, 100, 64);
        client.subscribe_events(Position(64));
        let asked_of = |frames: Vec<(usize, String)>| {
            frames.into_iter().filter(|(_, f)| f.contains("EventData")).map(|(to, _)| to).collect::<Vec<_>>()
        };
        assert_eq!(asked_of(sent(&mut client, 0)), [0], "the member commands go to");
        receive(&mut client, 0, Body::EventsGone { from_position: Position(64), start: Position(4096) });
        assert_eq!(asked_of(sent(&mut client, 1)), [1], "another, at once");
        assert_eq!(client.take_events_gap(), None);
        receive(&mut client, 1, Body::EventsGone { from_position: Position(64), start: Position(2048) });
        assert_eq!(asked_of(sent(&mut client, 2)), [2]);
        // A late answer for another position changes nothing.
        receive(&mut client, 2, Body::EventsGone { from_position: Position(32), start: Position(1024) });
        assert_eq!(client.take_events_gap(), None);
        receive(&mut client, 2, Body::EventsGone { from_position: Position(64), start: Position(8192) });
        let gap = EventsGap { from: Position(64), to: Position(2048) };
        assert_eq!(client.take_events_gap(), Some(gap), "every member said so: the nearest start");
        let next = sent(&mut client, 3);
        assert_eq!(asked_of(next.clone()), [1], "from the member whose log begins there: {next:?}");
        assert!(next[0].1.contains("2048"), "{next:?}");
    }
}
