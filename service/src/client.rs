//! The client library. What it promises a user is on [`Client`] (the module is private;
//! its types are re-exported at the crate root). Here, the reasons behind two choices:
//!
//! - At most [`crate::container::SEQUENCE_WINDOW`] commands are in flight at once, so a
//!   retry is never older than the window the cluster remembers (which would leave it unsure
//!   whether the command was applied).
//! - Events come from whichever member the client talks to ([`crate::event_feed`]): every
//!   member's event log is the same, so after a failover the client asks the next member from
//!   the position it reached.

use crate::container::SEQUENCE_WINDOW;
use ordo_core::entry::decode_entry;
use ordo_core::{
    ClusterId, ClusterTimeNs, EntryKind, HEADER_BYTES, MemberId, NodeConfig, Position, Security, SessionId, Term,
};
use ordo_transport::backend::StdUdp;
use ordo_transport::{Body, ClientKey, Endpoint, FrameCodec, KeyRing, ResponseStatus};
use std::collections::{BTreeMap, VecDeque};
use std::io;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// How a [`Client`] reaches a cluster: [`ClientConfig::new`] for the essentials, the other
/// fields at their defaults; or [`Client::connect`] from a member's `ordo.toml`.
#[derive(Clone, Debug)]
pub struct ClientConfig {
    /// Every member's address; the client finds the leader among them.
    pub members: Vec<SocketAddr>,
    /// The cluster's id (`log.cluster_id` in the members' `ordo.toml`): frames of another
    /// cluster are refused both ways.
    pub cluster_id: ClusterId,
    /// This client's key: one the members list in their `client_keys_file` (`ordo init`
    /// writes `DIR/client.key`). Never the members' cluster key, which members refuse from
    /// clients.
    pub key: ClientKey,
    /// How frames are protected: the members' `transport.security`.
    pub security: Security,
    /// Largest datagram, frame header and tag included: the members' `transport.mtu_bytes`.
    pub mtu_bytes: usize,
    /// Resend what is unanswered after this long.
    pub retry_interval_ns: u64,
    /// Commands in flight at most (capped at the session's sequence window).
    pub in_flight_max: usize,
}

impl ClientConfig {
    /// A client of the cluster at `members` with this id and key; the other settings at
    /// their defaults (the members' too).
    pub fn new(members: Vec<SocketAddr>, cluster_id: ClusterId, key: ClientKey) -> Self {
        ClientConfig {
            members,
            cluster_id,
            key,
            security: Security::Mac,
            mtu_bytes: ordo_transport::MTU_BYTES_DEFAULT,
            retry_interval_ns: 50_000_000,
            in_flight_max: SEQUENCE_WINDOW as usize,
        }
    }

    /// The cluster a member's config describes: its members' addresses, cluster id, the
    /// newest key of its client keys file, and the transport's security and MTU (a client
    /// must use the members' own).
    pub fn of_node(node: &NodeConfig) -> Result<ClientConfig, ClientError> {
        let key = crate::embed::load_client_key(&node.client_keys_file)
            .map_err(|error| ClientError::Key(error.to_string()))?;
        let mut config = ClientConfig::new(node.members.iter().map(|m| m.address).collect(), node.cluster_id(), key);
        config.security = node.transport.security;
        config.mtu_bytes = node.transport.mtu_bytes;
        Ok(config)
    }
}

/// The cluster's answer to one command.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reply {
    /// What [`Client::submit`] returned for the command.
    pub ticket: u64,
    /// The command's log position.
    pub position: Position,
    /// Whether the command took effect.
    pub status: ReplyStatus,
    /// The app's reply.
    pub reply: Vec<u8>,
}

/// Whether a command took effect.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReplyStatus {
    /// Applied now; the reply is the app's.
    Applied,
    /// A resend of a command applied before: not applied again; the reply is the first one's.
    Duplicate,
    /// Older than the session's window: the cluster cannot tell whether it was applied.
    /// (This client never waits that long; a client that did gets this.)
    TooOld,
    /// The cluster closed the session (idle past its timeout) before this command's answer
    /// came: it may or may not have been applied, and it is not resent (under a new session
    /// it could apply twice). Check the state before sending it again.
    SessionExpired,
    /// Applied, but the app's reply (`reply_bytes` long) is over the `limit_bytes` one
    /// response datagram holds: the reply is empty. The same on every member and on a
    /// resend; [`ReplyStatus::describe`] says it in a sentence.
    ReplyTooLarge {
        /// The reply's length.
        reply_bytes: u32,
        /// The longest reply a response datagram holds at the cluster's MTU.
        limit_bytes: u32,
    },
}

impl ReplyStatus {
    /// Whether the command took effect (now or before).
    pub fn is_ok(self) -> bool {
        matches!(self, ReplyStatus::Applied | ReplyStatus::Duplicate | ReplyStatus::ReplyTooLarge { .. })
    }

    /// One sentence for a status that is not a plain reply, `None` for one that is.
    pub fn describe(self) -> Option<String> {
        match self {
            ReplyStatus::Applied | ReplyStatus::Duplicate => None,
            ReplyStatus::SessionExpired => Some(
                "outcome unknown: the session expired before this command was answered, so it may or may not have \
                 been applied; check the state before sending it again"
                    .to_string(),
            ),
            ReplyStatus::TooOld => Some(
                "too old: the cluster no longer knows whether this command was applied; check the state before resending"
                    .to_string(),
            ),
            ReplyStatus::ReplyTooLarge { reply_bytes, limit_bytes } => Some(format!(
                "applied, but its reply of {reply_bytes} bytes is over the limit of {limit_bytes} bytes one response \
                 datagram holds, so it was not sent; read the state with a command whose reply is smaller"
            )),
        }
    }

    fn of(status: ResponseStatus, reply: &[u8]) -> ReplyStatus {
        match status {
            ResponseStatus::Applied | ResponseStatus::SessionOpened => ReplyStatus::Applied,
            ResponseStatus::Duplicate => ReplyStatus::Duplicate,
            ResponseStatus::TooOld | ResponseStatus::UnknownSession => ReplyStatus::TooOld,
            ResponseStatus::ReplyTooLarge => {
                let word =
                    |at: usize| reply.get(at..at + 4).map_or(0, |b| u32::from_le_bytes(b.try_into().expect("4")));
                ReplyStatus::ReplyTooLarge { reply_bytes: word(0), limit_bytes: word(4) }
            }
        }
    }
}

/// An event from the cluster's event log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    /// Its position in the event log.
    pub position: Position,
    /// The position after it: subscribe from here to go on after it.
    pub next: Position,
    /// The log position of the command (or timer) that emitted it.
    pub source: Position,
    /// The session of the command that emitted it (0 for a timer).
    pub session: SessionId,
    /// The cluster time of the command that emitted it.
    pub time: ClusterTimeNs,
    /// What the state machine emitted.
    pub bytes: Vec<u8>,
}

/// Why a client call failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The client's own socket failed.
    #[error("the client's socket failed: {0}")]
    Io(#[from] io::Error),
    /// No member answered in time; the text lists the addresses tried.
    #[error(
        "no reply from the cluster within {0:?} (tried {1}); check that the members run and the addresses and key are right"
    )]
    Timeout(Duration, String),
    /// The cluster key file could not be read.
    #[error("{0}")]
    Key(String),
}

struct InFlight {
    ticket: u64,
    command: Vec<u8>,
    sent_ns: u64,
}

/// A member's answer to [`Client::status_of`] (`ordo describe --cluster`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MemberStatus {
    /// The member that answered.
    pub member: MemberId,
    /// 0 follower, 1 candidate, 2 leader.
    pub role: u8,
    /// Its current term.
    pub term: Term,
    /// The leader it knows of.
    pub leader: Option<MemberId>,
    /// End of its log.
    pub append_position: Position,
    /// What it knows to be committed.
    pub commit_position: Position,
    /// What its state machine has applied.
    pub applied_position: Position,
    /// Its newest snapshot's position.
    pub snapshot_position: Position,
}

/// A connection to a cluster: sessions, pipelined exactly-once commands, replies, events.
///
/// It opens a session with whichever member it reaches (a follower redirects it to the
/// leader), then sends commands pipelined, each under (session, sequence). What is not
/// answered in time is resent with the same (session, sequence), to the same member or,
/// after silence or a redirect, to another; the cluster applies a (session, sequence) at
/// most once and answers a repeat with the first reply, so a failover never applies a
/// command twice. At most 64 commands are in flight; more wait in the client. A session the
/// cluster closed (idle past `consensus.session_timeout_ms`: the client was silent that
/// long, paused or cut off) ends exactly-once for what was in flight: each such command is
/// answered [`ReplyStatus::SessionExpired`] (it may or may not have been applied; it is never
/// resent), and the client goes on under a new session with the commands not yet sent.
///
/// Two ways to drive it: blocking [`Client::call`] / [`Client::call_all`], or, in your own
/// loop, [`Client::submit`], [`Client::poll`] with the time and [`Client::take_reply`].
/// Events: [`Client::subscribe_events`], then [`Client::take_event`] as `poll` receives
/// them, in order, each once, following the client to another member after a failover.
///
/// ```no_run
/// use ordo_service::{Client, NodeConfig};
/// use std::time::Duration;
///
/// let config = NodeConfig::load("cluster/node-1/ordo.toml".as_ref())?;
/// let mut client = Client::connect(&config)?;
/// let reply = client.call(b"bid lamp 120", Duration::from_secs(5))?;
/// println!("{}", String::from_utf8_lossy(&reply.reply));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Client {
    endpoint: Endpoint,
    config: ClientConfig,
    started: Instant,
    /// The member commands go to (index into `members`).
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
}

impl Client {
    /// A client on an ephemeral loopback or wildcard port (matching the members' family).
    pub fn new(config: ClientConfig) -> io::Result<Client> {
        let first = config.members.first().ok_or_else(|| io::Error::other("a client needs a member address"))?;
        let bind: SocketAddr = if first.ip().is_loopback() {
            (first.ip(), 0).into()
        } else if first.is_ipv4() {
            "0.0.0.0:0".parse().expect("an address")
        } else {
            "[::]:0".parse().expect("an address")
        };
        let net = StdUdp::bind(bind, config.mtu_bytes)?;
        let keys = KeyRing::for_client(&config.key);
        let codec = FrameCodec::new(config.cluster_id, MemberId(0), config.security, keys, config.mtu_bytes)
            .with_key_id(config.key.id);
        let mut nonce = [0u8; 8];
        getrandom::fill(&mut nonce).map_err(|e| io::Error::other(format!("no randomness for a session nonce: {e}")))?;
        let in_flight_max = config.in_flight_max.clamp(1, SEQUENCE_WINDOW as usize);
        Ok(Client {
            endpoint: Endpoint::new(Box::new(net), codec),
            config: ClientConfig { in_flight_max, ..config },
            started: Instant::now(),
            target: 0,
            nonce: u64::from_le_bytes(nonce),
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
        })
    }

    /// A client of the cluster a member's config describes (its members, cluster id, key
    /// file, security and MTU): the usual way in for a program beside the cluster's files.
    pub fn connect(node: &NodeConfig) -> Result<Client, ClientError> {
        Ok(Client::new(ClientConfig::of_node(node)?)?)
    }

    /// Nanoseconds since the client was made: the clock `poll` takes in `call`.
    pub fn now_ns(&self) -> u64 {
        self.started.elapsed().as_nanos() as u64
    }

    /// The session the cluster opened for it, once open.
    pub fn session(&self) -> Option<SessionId> {
        self.session
    }

    /// The member the client sends to now (the leader, once it found it).
    pub fn target(&self) -> SocketAddr {
        self.config.members[self.target]
    }

    /// Waits until a datagram arrives or `timeout` passes (a loop's `block` idle strategy).
    pub fn wait_readable(&mut self, timeout: Duration) -> io::Result<()> {
        self.endpoint.net_mut().wait_readable(timeout)
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

    /// Asks for the events from `from` on (0: all the member holds); they arrive through
    /// [`Client::take_event`] as `poll` receives them.
    pub fn subscribe_events(&mut self, from: Position) {
        self.events_next = Some(from);
        self.events_ack_due = true;
    }

    /// The next event, in event-log order.
    pub fn take_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// Receives what came, sends what is due (a session opening, new commands, resends);
    /// returns the frames received.
    pub fn poll(&mut self, now_ns: u64) -> io::Result<usize> {
        let received = self.receive()?;
        let retry = self.config.retry_interval_ns;
        let to = self.config.members[self.target];
        if let Some(next) = self.events_next
            && (self.events_ack_due || now_ns.saturating_sub(self.events_requested_ns) >= retry)
        {
            // Both the subscription and the acknowledgement of what came.
            self.events_ack_due = false;
            self.events_requested_ns = now_ns;
            self.endpoint.queue(to, Term::ZERO, &Body::EventData { from_position: next, bytes: &[] })?;
            self.endpoint.flush()?;
        }
        let Some(session) = self.session else {
            if self.opening_sent_ns.is_none_or(|at| now_ns.saturating_sub(at) >= retry) {
                if self.opening_sent_ns.is_some() && !std::mem::take(&mut self.heard) {
                    self.next_target(); // no answer: try another member
                }
                self.opening_sent_ns = Some(now_ns);
                let to = self.config.members[self.target];
                self.endpoint.queue(to, Term::ZERO, &Body::SessionOpen { client_nonce: self.nonce })?;
                self.endpoint.flush()?;
            }
            return Ok(received);
        };
        let stale = self.in_flight.values().any(|f| f.sent_ns == 0 || now_ns.saturating_sub(f.sent_ns) >= retry);
        if stale {
            if !std::mem::take(&mut self.heard) {
                self.next_target(); // silence: the member may be down
            }
            let to = self.config.members[self.target];
            for (&sequence, flight) in self.in_flight.iter_mut() {
                if flight.sent_ns == 0 || now_ns.saturating_sub(flight.sent_ns) >= retry {
                    flight.sent_ns = now_ns;
                    let body = Body::ClientRequest { session, sequence, command: &flight.command };
                    self.endpoint.queue(to, Term::ZERO, &body)?;
                }
            }
        }
        // A new sequence stays within the window of the oldest unanswered one, so a retry is
        // never too old for the cluster to know whether it was applied.
        let oldest = self.in_flight.keys().next().copied().unwrap_or(self.next_sequence);
        while self.in_flight.len() < self.config.in_flight_max
            && self.next_sequence < oldest + SEQUENCE_WINDOW
            && let Some((ticket, command)) = self.waiting.pop_front()
        {
            let sequence = self.next_sequence;
            self.next_sequence += 1;
            let body = Body::ClientRequest { session, sequence, command: &command };
            self.endpoint.queue(to, Term::ZERO, &body)?;
            self.in_flight.insert(sequence, InFlight { ticket, command, sent_ns: now_ns });
        }
        self.endpoint.flush()?;
        Ok(received)
    }

    fn next_target(&mut self) {
        self.target = (self.target + 1) % self.config.members.len();
    }

    fn receive(&mut self) -> io::Result<usize> {
        let Client {
            endpoint,
            session,
            nonce,
            in_flight,
            replies,
            spare,
            target,
            config,
            heard,
            opening_sent_ns,
            events_next,
            events_ack_due,
            events,
            ..
        } = self;
        let mut reopen = false;
        let frames = endpoint.poll(&mut |source, frame| match frame.body {
            Body::EventData { from_position, bytes } if Some(from_position) == *events_next && !bytes.is_empty() => {
                let (mut position, mut offset) = (from_position, 0usize);
                while offset < bytes.len() {
                    let Ok(view) = decode_entry(&bytes[offset..], position) else { break };
                    let header = view.header;
                    if view.kind() == EntryKind::Event {
                        events.push_back(Event {
                            position,
                            next: view.next_position(),
                            source: Position(header.correlation_id.get()),
                            session: header.session(),
                            time: header.timestamp(),
                            bytes: view.payload.to_vec(),
                        });
                    }
                    let sent =
                        if view.kind() == EntryKind::Padding { HEADER_BYTES } else { header.span_bytes() as usize };
                    offset += sent;
                    position = view.next_position();
                }
                *events_next = Some(position);
                *events_ack_due = true;
            }
            Body::Redirect { leader } => {
                *heard = true;
                if let Some(index) = (leader.0 as usize).checked_sub(1).filter(|&i| i < config.members.len())
                    && *target != index
                {
                    // Told where the leader is: go there now, not after the retry interval.
                    *target = index;
                    *opening_sent_ns = None;
                    for flight in in_flight.values_mut() {
                        flight.sent_ns = 0;
                    }
                }
            }
            Body::ClientResponse {
                session: answered,
                sequence: 0,
                status: ResponseStatus::SessionOpened,
                reply,
                ..
            } if session.is_none() && reply == nonce.to_le_bytes() => {
                *session = Some(answered);
                *heard = true;
                if let Some(index) = config.members.iter().position(|&m| m == source) {
                    *target = index;
                }
            }
            Body::ClientResponse { session: answered, sequence, position, status, reply }
                if Some(answered) == *session =>
            {
                *heard = true;
                if status == ResponseStatus::UnknownSession {
                    reopen = true; // the cluster closed the session
                    return;
                }
                if let Some(flight) = in_flight.remove(&sequence) {
                    let status = ReplyStatus::of(status, reply);
                    let reply = if let ReplyStatus::ReplyTooLarge { .. } = status { &[][..] } else { reply };
                    replies.push_back(Reply { ticket: flight.ticket, position, status, reply: reply.to_vec() });
                    spare.push(flight.command);
                }
            }
            _ => {}
        })?;
        if reopen {
            self.reopen();
        }
        Ok(frames)
    }

    /// The session was closed by the cluster: what was sent under it and not answered may
    /// or may not have been applied (its reply may be what was lost), so each is answered
    /// [`ReplyStatus::SessionExpired`], never resent; what was never sent goes under a new
    /// session.
    fn reopen(&mut self) {
        self.session = None;
        self.opening_sent_ns = None;
        self.next_sequence = 1;
        for flight in std::mem::take(&mut self.in_flight).into_values() {
            let reply = Reply {
                ticket: flight.ticket,
                position: Position::ZERO,
                status: ReplyStatus::SessionExpired,
                reply: Vec::new(),
            };
            self.replies.push_back(reply);
            self.spare.push(flight.command);
        }
    }

    /// Asks the cluster to snapshot (following redirects to the leader); returns the position
    /// every member snapshots at.
    pub fn request_snapshot(&mut self, timeout: Duration) -> Result<Position, ClientError> {
        let nonce = self.nonce ^ 0x5A5A_5A5A;
        let deadline = Instant::now() + timeout;
        let mut sent: Option<Instant> = None;
        loop {
            if Instant::now() >= deadline {
                let tried = self.config.members.iter().map(|m| m.to_string()).collect::<Vec<_>>().join(", ");
                return Err(ClientError::Timeout(timeout, tried));
            }
            if sent.is_none_or(|at| at.elapsed() >= Duration::from_nanos(self.config.retry_interval_ns)) {
                if sent.is_some() && !std::mem::take(&mut self.heard) {
                    self.next_target();
                }
                sent = Some(Instant::now());
                let to = self.config.members[self.target];
                self.endpoint.queue(to, Term::ZERO, &Body::SnapshotTake { nonce })?;
                self.endpoint.flush()?;
            }
            let mut answer = None;
            let (members, target, heard) = (&self.config.members, &mut self.target, &mut self.heard);
            self.endpoint.poll(&mut |_, frame| match frame.body {
                Body::ClientResponse { session: SessionId(0), sequence, position, .. } if sequence == nonce => {
                    answer = Some(position);
                }
                Body::Redirect { leader } => {
                    *heard = true;
                    if let Some(index) = (leader.0 as usize).checked_sub(1).filter(|&i| i < members.len()) {
                        *target = index;
                    }
                }
                _ => {}
            })?;
            if let Some(position) = answer {
                return Ok(position);
            }
            self.endpoint.net_mut().wait_readable(Duration::from_millis(1))?;
        }
    }

    /// Asks member `index` (of the configured addresses) how it is; `None` if it does not
    /// answer within `timeout` (down, partitioned, or not of this cluster).
    #[doc(hidden)]
    pub fn status_of(&mut self, index: usize, timeout: Duration) -> io::Result<Option<MemberStatus>> {
        let to = self.config.members[index];
        let nonce = self.nonce.wrapping_add(index as u64 + 1) ^ 0x5A7A_7A5A;
        let deadline = Instant::now() + timeout;
        let mut sent: Option<Instant> = None;
        while Instant::now() < deadline {
            if sent.is_none_or(|at| at.elapsed() >= Duration::from_nanos(self.config.retry_interval_ns)) {
                sent = Some(Instant::now());
                self.endpoint.queue(to, Term::ZERO, &Body::StatusRequest { nonce })?;
                self.endpoint.flush()?;
            }
            let mut answer = None;
            self.endpoint.poll(&mut |source, frame| {
                if let Body::Status {
                    nonce: n,
                    role,
                    term,
                    leader,
                    append_position,
                    commit_position,
                    applied_position,
                    snapshot_position,
                } = frame.body
                    && n == nonce
                    && source == to
                {
                    answer = Some(MemberStatus {
                        member: frame.header.sender(),
                        role,
                        term,
                        leader: (leader.0 != 0).then_some(leader),
                        append_position,
                        commit_position,
                        applied_position,
                        snapshot_position,
                    });
                }
            })?;
            if answer.is_some() {
                return Ok(answer);
            }
            self.endpoint.net_mut().wait_readable(Duration::from_millis(1))?;
        }
        Ok(None)
    }

    /// Sends one command and waits for its reply.
    pub fn call(&mut self, command: &[u8], timeout: Duration) -> Result<Reply, ClientError> {
        let mut replies = self.call_all(std::iter::once(command), timeout)?;
        Ok(replies.pop().expect("one reply for one command"))
    }

    /// Sends commands pipelined and waits for every reply; returns them in submission order.
    pub fn call_all<'c>(
        &mut self,
        commands: impl IntoIterator<Item = &'c [u8]>,
        timeout: Duration,
    ) -> Result<Vec<Reply>, ClientError> {
        let tickets: Vec<u64> = commands.into_iter().map(|c| self.submit(c)).collect();
        let mut answered: BTreeMap<u64, Reply> = BTreeMap::new();
        let deadline = Instant::now() + timeout;
        while answered.len() < tickets.len() {
            if Instant::now() >= deadline {
                let tried = self.config.members.iter().map(|m| m.to_string()).collect::<Vec<_>>().join(", ");
                return Err(ClientError::Timeout(timeout, tried));
            }
            let now = self.now_ns();
            self.poll(now)?;
            while let Some(reply) = self.take_reply() {
                answered.insert(reply.ticket, reply);
            }
            if answered.len() < tickets.len() {
                self.endpoint.net_mut().wait_readable(Duration::from_millis(1))?;
            }
        }
        Ok(tickets.iter().filter_map(|t| answered.remove(t)).collect())
    }
}
