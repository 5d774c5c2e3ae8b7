//! The client library. What it promises a user is on [`Client`] (the module is private;
//! its types are re-exported at the crate root). The protocol itself (sessions, the
//! window, resends, expiry, events) is [`crate::client::session`], sans-I/O, which the
//! simulator's clients run too; this is its driver over a UDP socket and a clock.

pub(crate) mod session;

use crate::replica::container::SEQUENCE_WINDOW;
use ordo_core::{ClusterId, ClusterTimeNs, MemberId, NodeConfig, Position, Security, SessionId, Term};
use ordo_transport::backend::StdUdp;
use ordo_transport::{Body, ClientKey, Endpoint, FrameCodec, KeyRing, ResponseStatus};
use session::ClientSession;
use std::collections::BTreeMap;
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
        let key = crate::run::embed::load_client_key(&node.client_keys_file)
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
    /// The session it was sent under.
    pub session: SessionId,
    /// Its sequence number in that session.
    pub sequence: u64,
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

    pub(crate) fn of(status: ResponseStatus, reply: &[u8]) -> ReplyStatus {
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

/// Events the feed skipped because no member holds them any more (each member's event log
/// began anew past them, at a snapshot or a lost disk): the events from `from` to `to`.
/// Rebuild what depended on them from a snapshot, or accept the loss.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EventsGap {
    pub from: Position,
    pub to: Position,
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
    session: ClientSession,
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
        let session = ClientSession::new(
            config.members.len(),
            u64::from_le_bytes(nonce),
            config.retry_interval_ns,
            in_flight_max,
        );
        Ok(Client {
            endpoint: Endpoint::new(Box::new(net), codec),
            config: ClientConfig { in_flight_max, ..config },
            started: Instant::now(),
            session,
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
        self.session.session()
    }

    /// The member the client sends to now (the leader, once it found it).
    pub fn target(&self) -> SocketAddr {
        self.config.members[self.session.target()]
    }

    /// Waits until a datagram arrives or `timeout` passes (a loop's `block` idle strategy).
    pub fn wait_readable(&mut self, timeout: Duration) -> io::Result<()> {
        self.endpoint.net_mut().wait_readable(timeout)
    }

    /// Commands submitted and not yet answered.
    pub fn outstanding(&self) -> usize {
        self.session.outstanding()
    }

    /// Queues a command; its reply will carry the ticket returned. Sent by the next `poll`.
    pub fn submit(&mut self, command: &[u8]) -> u64 {
        self.session.submit(command)
    }

    /// The next reply that came in, in arrival order.
    pub fn take_reply(&mut self) -> Option<Reply> {
        self.session.take_reply()
    }

    /// Asks for the events from `from` on (0: all the member holds); they arrive through
    /// [`Client::take_event`] as `poll` receives them.
    pub fn subscribe_events(&mut self, from: Position) {
        self.session.subscribe_events(from);
    }

    /// The next event, in event-log order.
    pub fn take_event(&mut self) -> Option<Event> {
        self.session.take_event()
    }

    /// The next gap in the event feed (events no member holds any more), in order with the
    /// events: [`Client::take_event`] gives the events before it first.
    pub fn take_events_gap(&mut self) -> Option<EventsGap> {
        self.session.take_events_gap()
    }

    /// Receives what came, sends what is due (a session opening, new commands, resends);
    /// returns the frames received.
    pub fn poll(&mut self, now_ns: u64) -> io::Result<usize> {
        let Client { endpoint, config, session, .. } = self;
        let members = &config.members;
        let received = endpoint.poll(&mut |source, frame| {
            session.on_frame(members.iter().position(|&m| m == source), &frame);
        })?;
        session.poll(now_ns, &mut |to, body| endpoint.queue(members[to], Term::ZERO, body))?;
        endpoint.flush()?;
        Ok(received)
    }

    /// Asks the cluster to snapshot (following redirects to the leader); returns the position
    /// every member snapshots at.
    pub fn request_snapshot(&mut self, timeout: Duration) -> Result<Position, ClientError> {
        let nonce = self.session.nonce() ^ 0x5A5A_5A5A;
        let deadline = Instant::now() + timeout;
        let mut sent: Option<Instant> = None;
        loop {
            if Instant::now() >= deadline {
                let tried = self.config.members.iter().map(|m| m.to_string()).collect::<Vec<_>>().join(", ");
                return Err(ClientError::Timeout(timeout, tried));
            }
            if sent.is_none_or(|at| at.elapsed() >= Duration::from_nanos(self.config.retry_interval_ns)) {
                if sent.is_some() {
                    self.session.move_on_if_unheard();
                }
                sent = Some(Instant::now());
                let to = self.config.members[self.session.target()];
                self.endpoint.queue(to, Term::ZERO, &Body::SnapshotTake { nonce })?;
                self.endpoint.flush()?;
            }
            let mut answer = None;
            let session = &mut self.session;
            self.endpoint.poll(&mut |_, frame| match frame.body {
                Body::ClientResponse { session: SessionId(0), sequence, position, .. } if sequence == nonce => {
                    answer = Some(position);
                }
                Body::Redirect { leader } => session.on_redirect(leader),
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
        let nonce = self.session.nonce().wrapping_add(index as u64 + 1) ^ 0x5A7A_7A5A;
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
