//! Three members of the real consensus over real UDP sockets on loopback, each with its own
//! mapped log (fsync policy), vote file and snapshots: they elect a leader, commit commands,
//! survive the leader's crash (its member dropped without a sync), and the restarted member
//! catches up until all three logs are byte-identical; a member restarts from its snapshot,
//! a wiped member is sent the leader's, and a faulty replica is named by the other two.

use ordo_core::machine::{Context, StateMachine};
mod common;

use common::*;
use ordo_core::{MemberId, Position, Security, SessionId, Term};
use ordo_service::machinery::consensus::Role;
use ordo_service::machinery::echo::Echo;
use ordo_service::machinery::member::{Member, MemberConfig};
use ordo_service::machinery::replay::{ReplayOptions, replay};
use ordo_transport::backend::StdUdp;
use ordo_transport::{Body, Endpoint, FrameCodec, KeyRing};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

struct Cluster<M: StateMachine = Echo> {
    start: Instant,
    members: Vec<Option<Member<M>>>,
}

impl<M: StateMachine> Cluster<M> {
    fn now_ns(&self) -> u64 {
        self.start.elapsed().as_nanos() as u64
    }

    fn step(&mut self) -> usize {
        let now = self.now_ns();
        let mut work = 0;
        for member in self.members.iter_mut().flatten() {
            work += member.do_work(now).expect("the member works");
        }
        if work == 0 {
            std::thread::sleep(Duration::from_micros(200));
        }
        work
    }

    fn until(&mut self, what: &str, limit: Duration, done: impl Fn(&Cluster<M>) -> bool) {
        let deadline = Instant::now() + limit;
        while !done(self) {
            if Instant::now() >= deadline {
                for (i, m) in self.members.iter().enumerate() {
                    if let Some(m) = m {
                        eprintln!(
                            "member {}: {:?} term {} commit {} applied {} log {}..{} snapshot {:?}",
                            i + 1,
                            m.role(),
                            m.term(),
                            m.commit_position(),
                            m.applied_position(),
                            m.storage().log.position_start(),
                            m.storage().log.position_append(),
                            m.snapshot().map(|s| s.position())
                        );
                    }
                }
            }
            assert!(Instant::now() < deadline, "timed out waiting until {what}");
            self.step();
        }
    }

    fn leader(&self) -> Option<usize> {
        self.members.iter().position(|m| m.as_ref().is_some_and(|m| m.role() == Role::Leader))
    }

    /// Proposes `count` commands to the leader, stepping between them.
    fn propose(&mut self, first: u64, count: u64) {
        let mut k = first;
        while k < first + count {
            let leader = self.leader().expect("a leader");
            let payload = k.to_le_bytes().repeat(1 + (k % 40) as usize);
            let member = self.members[leader].as_mut().unwrap();
            if member.propose(SessionId(1), k, &payload).unwrap().is_ok() {
                k += 1;
            }
            if k.is_multiple_of(16) {
                self.step();
            }
        }
    }

    fn all_committed(&self, position: Position) -> bool {
        self.members.iter().flatten().all(|m| m.commit_position() >= position)
    }
}

#[test]
fn three_members_elect_commit_fail_over_and_converge_byte_for_byte() {
    let dirs = fresh_dirs();
    // Reserve three loopback ports.
    let addresses: Vec<SocketAddr> =
        (0..3).map(|_| std::net::UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap()).collect();
    let start = Instant::now();
    let members = (1..=3u16).map(|id| Some(open_member(id, dirs[id as usize - 1].path(), &addresses, 0))).collect();
    let mut cluster = Cluster { start, members };

    cluster.until("a leader is elected", Duration::from_secs(10), |c| c.leader().is_some());
    cluster.propose(0, 500);
    let leader = cluster.leader().unwrap();
    let end = cluster.members[leader].as_ref().unwrap().storage().log.position_append();
    cluster.until("500 commands commit on every member", Duration::from_secs(20), |c| c.all_committed(end));

    // The leader crashes: dropped without a sync or a goodbye.
    let old_leader = cluster.members[leader].take().unwrap();
    let old_term = old_leader.term();
    drop(old_leader);
    cluster.until("a new leader is elected", Duration::from_secs(10), |c| c.leader().is_some());
    let new_leader = cluster.leader().unwrap();
    assert_ne!(new_leader, leader);
    assert!(cluster.members[new_leader].as_ref().unwrap().term() > old_term);
    cluster.propose(500, 500);
    let end = cluster.members[new_leader].as_ref().unwrap().storage().log.position_append();
    cluster.until("500 more commit on the two survivors", Duration::from_secs(20), |c| c.all_committed(end));

    // The old leader restarts from its files and catches up.
    let now = cluster.now_ns();
    cluster.members[leader] = Some(open_member(leader as u16 + 1, dirs[leader].path(), &addresses, now));
    cluster.until("the restarted member catches up", Duration::from_secs(20), |c| c.all_committed(end));
    cluster.propose(1000, 100);
    let end = cluster.members[cluster.leader().unwrap()].as_ref().unwrap().storage().log.position_append();
    cluster.until("the last 100 commit everywhere", Duration::from_secs(20), |c| {
        c.all_committed(end) && c.members.iter().flatten().all(|m| m.storage().log.position_append() == end)
    });

    let checksums: Vec<u32> = cluster.members.iter().flatten().map(|m| m.storage().log.checksum_last()).collect();
    assert!(checksums.windows(2).all(|w| w[0] == w[1]), "{checksums:?}");
    cluster.until("everything is applied", Duration::from_secs(10), |c| {
        c.members.iter().flatten().all(|m| m.applied_position() == end)
    });
    let live = cluster.members[0].as_ref().unwrap().state_hash();
    drop(cluster);
    for dir in &dirs {
        let options = ReplayOptions { no_snapshot: true, ..ReplayOptions::default() };
        let (_, report) = replay(dir.path(), &log_config(), Echo::default(), &options, &mut |_| {}).unwrap();
        assert_eq!((report.position, report.state_hash), (end, live), "replaying the log rebuilds the state");
    }
    let expected = ordo_log::testing::segment_files(&dirs[0].path().join("log"));
    assert!(!expected.is_empty());
    for dir in &dirs[1..] {
        assert!(
            ordo_log::testing::segment_files(&dir.path().join("log")) == expected,
            "every member's segment files are byte-identical"
        );
    }
}

/// A test client: one session, commands resent with the same sequence until answered,
/// redirects followed.
struct Client {
    endpoint: Endpoint,
    addresses: Vec<SocketAddr>,
    target: usize,
    session: Option<SessionId>,
    answered: std::collections::BTreeMap<u64, bool>,
    /// Whether any member answered since the last send.
    heard: bool,
}

impl Client {
    fn new(addresses: &[SocketAddr]) -> Client {
        let net = StdUdp::bind("127.0.0.1:0".parse().unwrap(), 1408).unwrap();
        let codec = FrameCodec::new(CLUSTER, MemberId(0), Security::Mac, KeyRing::for_client(&CLIENT_KEY), 1408)
            .with_key_id(CLIENT_KEY.id);
        Client {
            endpoint: Endpoint::new(Box::new(net), codec),
            addresses: addresses.to_vec(),
            target: 0,
            session: None,
            answered: Default::default(),
            heard: true,
        }
    }

    fn take_replies(&mut self) {
        enum Reply {
            Redirect(u16),
            Response { session: SessionId, sequence: u64, ok: bool, reply: Vec<u8> },
        }
        let mut replies = Vec::new();
        self.endpoint
            .poll(&mut |_, frame| match frame.body {
                Body::Redirect { leader } => replies.push(Reply::Redirect(leader.0)),
                Body::ClientResponse { session, sequence, status, reply, .. } => {
                    replies.push(Reply::Response { session, sequence, ok: status.is_ok(), reply: reply.to_vec() })
                }
                _ => {}
            })
            .unwrap();
        for reply in replies {
            match reply {
                Reply::Redirect(leader) if leader > 0 => {
                    self.target = leader as usize - 1;
                    self.heard = true;
                }
                Reply::Response { session, sequence: 0, reply, .. }
                    if self.session.is_none() && reply == 7u64.to_le_bytes() =>
                {
                    self.session = Some(session);
                }
                Reply::Response { session, sequence, ok, reply } if Some(session) == self.session => {
                    assert_eq!(reply, sequence.to_le_bytes(), "the echo replies with the command");
                    self.answered.insert(sequence, ok);
                    self.heard = true;
                }
                _ => {}
            }
        }
    }

    /// Opens the session (following redirects) or sends `sequences` until each is answered.
    fn run<M: StateMachine>(&mut self, cluster: &mut Cluster<M>, sequences: std::ops::RangeInclusive<u64>) {
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut last_send = Instant::now() - Duration::from_secs(1);
        self.heard = true;
        loop {
            let done = match self.session {
                None => false,
                Some(_) => sequences.clone().all(|s| self.answered.contains_key(&s)),
            };
            if done {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the client got no answer in 20 s: session {:?}, target {}, answered {}",
                self.session,
                self.target,
                self.answered.len()
            );
            if last_send.elapsed() > Duration::from_millis(50) {
                last_send = Instant::now();
                if !std::mem::take(&mut self.heard) {
                    self.target = (self.target + 1) % self.addresses.len(); // silence: try another member
                }
                let to = self.addresses[self.target];
                match self.session {
                    None => self.endpoint.queue(to, Term::ZERO, &Body::SessionOpen { client_nonce: 7 }).unwrap(),
                    Some(session) => {
                        for sequence in sequences.clone().filter(|s| !self.answered.contains_key(s)) {
                            let command = sequence.to_le_bytes();
                            let body = Body::ClientRequest { session, sequence, command: &command };
                            self.endpoint.queue(to, Term::ZERO, &body).unwrap();
                        }
                    }
                }
                self.endpoint.flush().unwrap();
            }
            cluster.step();
            self.take_replies();
        }
    }
}

#[test]
fn a_client_opens_a_session_anywhere_and_no_command_applies_twice_across_a_failover() {
    let dirs = fresh_dirs();
    let addresses: Vec<SocketAddr> =
        (0..3).map(|_| std::net::UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap()).collect();
    let members = (1..=3u16).map(|id| Some(open_member(id, dirs[id as usize - 1].path(), &addresses, 0))).collect();
    let mut cluster = Cluster { start: Instant::now(), members };
    cluster.until("a leader is elected", Duration::from_secs(10), |c| c.leader().is_some());

    let mut client = Client::new(&addresses);
    client.target = (cluster.leader().unwrap() + 1) % 3; // start at a follower: it redirects
    client.run(&mut cluster, 1..=100);
    assert!(client.answered.values().all(|&ok| ok));

    let leader = cluster.leader().unwrap();
    drop(cluster.members[leader].take()); // the leader crashes
    cluster.until("a new leader is elected", Duration::from_secs(10), |c| c.leader().is_some());
    // Retries of answered commands (as after a lost reply) and new ones, to the old leader
    // first: the client must find the new one.
    client.answered.retain(|&s, _| s <= 90);
    client.run(&mut cluster, 91..=110);

    let now = cluster.now_ns();
    cluster.members[leader] = Some(open_member(leader as u16 + 1, dirs[leader].path(), &addresses, now));
    let commit = cluster.members[cluster.leader().unwrap()].as_ref().unwrap().commit_position();
    cluster.until("every member applies everything", Duration::from_secs(20), |c| {
        c.members.iter().flatten().all(|m| m.applied_position() >= commit)
    });
    for member in cluster.members.iter().flatten() {
        assert_eq!(member.machine().count, 110, "each of the 110 commands applied exactly once on every member");
    }
}

/// Small segments and a snapshot every 16 KiB, so old segments are deleted as the log grows.
fn snapshot_often(config: &mut MemberConfig) {
    config.log.segment_bytes = 64 * 1024;
    config.snapshot_interval_bytes = Some(16 * 1024);
}

#[test]
fn a_member_restarts_from_its_snapshot_and_a_wiped_member_is_sent_the_leaders() {
    let dirs = fresh_dirs();
    let addresses = reserve_addresses();
    let open = |id: u16, now: u64| {
        open_member_with(id, dirs[id as usize - 1].path(), &addresses, now, Summer::default(), snapshot_often)
    };
    let members = (1..=3u16).map(|id| Some(open(id, 0).0)).collect();
    let mut cluster = Cluster { start: Instant::now(), members };
    cluster.until("a leader is elected", Duration::from_secs(10), |c| c.leader().is_some());
    let mut client = Client::new(&addresses);
    client.run(&mut cluster, 1..=100);

    // A follower stops; the log grows by several segments and the leader deletes the old ones.
    let wiped = (cluster.leader().unwrap() + 1) % 3;
    drop(cluster.members[wiped].take());
    cluster.propose(0, 3000);
    client.run(&mut cluster, 101..=200);
    let leader = cluster.leader().unwrap();
    let leader_start = cluster.members[leader].as_ref().unwrap().storage().log.position_start();
    assert!(leader_start > Position::ZERO, "the leader deleted its oldest segments after snapshotting");

    // Wiped clean, it restarts empty and is sent the leader's snapshot, then the log after it.
    std::fs::remove_dir_all(dirs[wiped].path()).unwrap();
    std::fs::create_dir_all(dirs[wiped].path()).unwrap();
    let (member, opened) = open(wiped as u16 + 1, cluster.now_ns());
    assert!(opened.snapshot.is_none());
    cluster.members[wiped] = Some(member);
    client.run(&mut cluster, 201..=250);
    let commit = cluster.members[cluster.leader().unwrap()].as_ref().unwrap().commit_position();
    cluster.until("every member applies everything", Duration::from_secs(30), |c| {
        c.members.iter().flatten().all(|m| m.applied_position() >= commit)
    });
    let caught_up = cluster.members[wiped].as_ref().unwrap();
    assert!(caught_up.storage().log.position_start() > Position::ZERO, "it started from a snapshot");
    assert!(caught_up.snapshot().is_some());
    assert_eq!(caught_up.machine().sum, 250 * 8, "the snapshot carried the state");

    // Another follower restarts from its own snapshot and the log after it.
    let restarted = (0..3).find(|&i| i != wiped && Some(i) != cluster.leader()).unwrap();
    drop(cluster.members[restarted].take());
    let (member, opened) = open(restarted as u16 + 1, cluster.now_ns());
    let snapshot = opened.snapshot.expect("it had snapshots");
    assert!(opened.rejected.is_empty() && !opened.log_reset);
    assert_eq!(member.applied_position(), snapshot.position(), "restored, before applying the log after it");
    cluster.members[restarted] = Some(member);
    client.run(&mut cluster, 251..=260);
    let commit = cluster.members[cluster.leader().unwrap()].as_ref().unwrap().commit_position();
    cluster.until("every member applies everything again", Duration::from_secs(30), |c| {
        c.members.iter().flatten().all(|m| m.applied_position() == commit)
    });
    let hashes: Vec<u64> = cluster.members.iter().flatten().map(|m| m.state_hash()).collect();
    assert!(hashes.windows(2).all(|w| w[0] == w[1]), "same state everywhere: {hashes:x?}");
    for member in cluster.members.iter().flatten() {
        assert_eq!(member.machine().sum, 260 * 8);
        assert!(member.divergences().is_empty());
    }
    // Every member's event log holds the same events at the same positions (the wiped one's
    // starts where the leader's stood at the snapshot it was sent).
    let logs: Vec<_> = cluster.members.iter().flatten().map(|m| event_bytes(m.events())).collect();
    let end = logs[0].0 + logs[0].1.len() as u64;
    assert!(logs.iter().all(|(start, bytes)| start + bytes.len() as u64 == end), "event logs end alike");
    let from = logs.iter().map(|(start, _)| *start).max().unwrap();
    assert!(from < end, "the members share events to compare");
    for (start, bytes) in &logs {
        assert!(bytes[(from - start) as usize..] == logs[0].1[(from - logs[0].0) as usize..]);
    }
    let events = cluster.members[wiped].as_ref().unwrap().events();
    let last = events.entries(Position(from)).filter_map(|e| e.ok()).last().expect("events");
    assert_eq!(last.kind(), ordo_core::EntryKind::Event);
    assert_eq!(last.payload, 260u64.to_le_bytes(), "the last command's event, tied to it");

    // Offline, replaying each member's snapshot and log rebuilds the same state.
    let live = (commit, hashes[0]);
    drop(cluster);
    let mut config = log_config();
    config.segment_bytes = 64 * 1024;
    for dir in &dirs {
        let (container, report) =
            replay(dir.path(), &config, Summer::default(), &ReplayOptions::default(), &mut |_| {}).unwrap();
        assert_eq!((report.position, report.state_hash), live, "{report:?}");
        assert!(report.snapshot.is_some() && report.entries > 0);
        assert_eq!(container.machine().sum, 260 * 8);
        // From nothing, there is nothing to start from: the log's beginning was deleted.
        let options = ReplayOptions { no_snapshot: true, ..ReplayOptions::default() };
        let Err(error) = replay(dir.path(), &config, Summer::default(), &options, &mut |_| {}) else {
            panic!("a replay from nothing needs the log's beginning");
        };
        assert!(error.to_string().contains("no snapshot"), "{error}");
    }
}

/// The whole event log of a member: its start and its bytes.
fn event_bytes(log: &ordo_log::Log) -> (u64, Vec<u8>) {
    let mut bytes = Vec::new();
    let mut position = log.position_start();
    while position < log.position_append() {
        let (at, chunk) = log.read(position, usize::MAX).unwrap();
        bytes.resize((at.0 - log.position_start().0) as usize, 0);
        bytes.extend_from_slice(chunk);
        position = Position(at.0 + chunk.len() as u64);
    }
    (log.position_start().0, bytes)
}

/// Replies with the command and emits it as an event; sums command lengths — wrongly on a
/// faulty replica.
#[derive(Default)]
struct Summer {
    sum: u64,
    faulty: bool,
}

impl StateMachine for Summer {
    fn apply(&mut self, ctx: &mut Context<'_>, command: &[u8]) {
        self.sum += command.len() as u64 + self.faulty as u64;
        ctx.reply(command);
        ctx.emit(command);
    }
    fn snapshot(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.sum.to_le_bytes());
    }
    fn restore(bytes: &[u8]) -> Result<Self, String> {
        let sum = bytes.try_into().map_err(|_| "a sum is 8 bytes".to_string())?;
        Ok(Summer { sum: u64::from_le_bytes(sum), faulty: false })
    }
}

#[test]
fn the_replica_whose_state_hash_disagrees_is_named_by_the_other_two() {
    let dirs = fresh_dirs();
    let addresses = reserve_addresses();
    let members = (1..=3u16)
        .map(|id| {
            let machine = Summer { sum: 0, faulty: id == 3 };
            Some(open_member_with(id, dirs[id as usize - 1].path(), &addresses, 0, machine, |_| {}).0)
        })
        .collect();
    let mut cluster = Cluster { start: Instant::now(), members };
    cluster.until("a leader is elected", Duration::from_secs(10), |c| c.leader().is_some());
    let mut client = Client::new(&addresses);
    client.run(&mut cluster, 1..=20);
    let leader = cluster.leader().unwrap();
    cluster.members[leader].as_mut().unwrap().request_snapshot().unwrap().unwrap();
    cluster.until("every member has snapshotted and heard the others' hashes", Duration::from_secs(10), |c| {
        c.members.iter().flatten().all(|m| m.snapshot().is_some())
            && c.members.iter().flatten().take(2).all(|m| !m.divergences().is_empty())
    });
    for member in cluster.members.iter().flatten().take(2) {
        let divergence = member.divergences()[0];
        assert_eq!(divergence.member, MemberId(3), "the faulty replica is named");
        assert_eq!(divergence.position, member.snapshot().unwrap().position());
    }
}

/// Member `id` with 64 KiB segments and no snapshot but those asked for.
fn small_segments(config: &mut MemberConfig) {
    config.log.segment_bytes = 64 * 1024;
    config.snapshot_interval_bytes = None;
}

#[test]
fn a_snapshot_taken_32_bytes_before_a_segment_end_restarts() {
    // Fewer than a header's 64 bytes are left at a segment's end: the next entry starts the
    // next segment. A snapshot-request entry ending 32 bytes short puts the snapshot there.
    let dirs = fresh_dirs();
    let addresses = reserve_addresses();
    let open = |id: u16, now: u64| {
        open_member_with(id, dirs[id as usize - 1].path(), &addresses, now, Echo::default(), small_segments).0
    };
    let members = (1..=3u16).map(|id| Some(open(id, 0))).collect();
    let mut cluster = Cluster { start: Instant::now(), members };
    cluster.until("a leader is elected", Duration::from_secs(10), |c| c.leader().is_some());
    let leader = cluster.leader().unwrap();
    let snapshot_request_at = Position(64 * 1024 - 96); // a header alone: 64 bytes, ending 32 short
    // An operator's `ordo snapshot take`, as a raw SnapshotTake frame under the client key.
    let mut operator = Client::new(&addresses).endpoint;
    let nonce = 99;
    let mut k = 0;
    loop {
        let member = cluster.members[leader].as_mut().unwrap();
        let end = member.storage().log.position_append();
        let remaining = (snapshot_request_at.0 - end.0) as usize;
        if remaining == 0 {
            operator.queue(addresses[leader], Term::ZERO, &Body::SnapshotTake { nonce }).unwrap();
            operator.flush().unwrap();
            break;
        }
        let payload_bytes = if remaining <= 64 + 8000 { remaining - 64 } else { 4000 };
        member.propose(SessionId(1), k, &vec![7; payload_bytes]).unwrap().unwrap();
        k += 1;
        cluster.step();
    }
    cluster.until("every member has snapshotted", Duration::from_secs(10), |c| {
        c.members.iter().flatten().all(|m| m.snapshot().is_some())
    });
    let snapshot = cluster.members[leader].as_ref().unwrap().snapshot().unwrap().position();
    // The request's entry ended 32 bytes short; the snapshot stands where the log goes on.
    assert_eq!(snapshot, Position(64 * 1024), "the snapshot is at the next segment's start");
    // The operator is told that position once the request is committed, though followers
    // acknowledge the position 32 bytes short of it.
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut answer = None;
    while answer.is_none() {
        assert!(Instant::now() < deadline, "the snapshot request was never answered");
        cluster.step();
        operator
            .poll(&mut |_, frame| {
                if let Body::ClientResponse { sequence, position, .. } = frame.body
                    && sequence == nonce
                {
                    answer = Some(position);
                }
            })
            .unwrap();
    }
    assert_eq!(answer, Some(snapshot));

    // The log below it is deleted: a follower wiped clean is sent it, and its log starts there.
    let wiped = (leader + 1) % 3;
    drop(cluster.members[wiped].take());
    std::fs::remove_dir_all(dirs[wiped].path()).unwrap();
    std::fs::create_dir_all(dirs[wiped].path()).unwrap();
    cluster.members[wiped] = Some(open(wiped as u16 + 1, cluster.now_ns()));
    cluster.propose(500, 20);
    let end = cluster.members[leader].as_ref().unwrap().storage().log.position_append();
    cluster.until("the wiped member catches up", Duration::from_secs(10), |c| {
        c.members[wiped].as_ref().unwrap().applied_position() >= end
    });
    drop(cluster.members[wiped].take());
    cluster.members[wiped] = Some(open(wiped as u16 + 1, cluster.now_ns()));

    // A later snapshot makes that one the oldest kept.
    cluster.members[leader].as_mut().unwrap().request_snapshot().unwrap().unwrap();
    cluster.until("every member has snapshotted again", Duration::from_secs(10), |c| {
        c.members.iter().flatten().all(|m| m.snapshot().is_some_and(|s| s.position() > snapshot))
    });

    // Every member restarts from its snapshots, and the cluster goes on.
    let now = cluster.now_ns();
    for index in 0..3 {
        drop(cluster.members[index].take());
        cluster.members[index] = Some(open(index as u16 + 1, now));
    }
    cluster.until("a leader is elected again", Duration::from_secs(10), |c| c.leader().is_some());
    cluster.propose(1000, 20);
    let leader = cluster.leader().unwrap();
    let end = cluster.members[leader].as_ref().unwrap().storage().log.position_append();
    cluster.until("every member applies the new commands", Duration::from_secs(10), |c| {
        c.members.iter().flatten().all(|m| m.applied_position() >= end)
    });
}

/// Each command (echoed back) schedules a timer half a second of cluster time after it;
/// counts those fired.
#[derive(Default)]
struct Lease {
    leases: u64,
    ended: u64,
}

impl StateMachine for Lease {
    fn apply(&mut self, ctx: &mut Context<'_>, command: &[u8]) {
        ctx.reply(command);
        self.leases += 1;
        ctx.schedule_timer(self.leases, ctx.time().0 + 500 * MS);
    }
    fn on_timer(&mut self, _ctx: &mut Context<'_>, _timer_id: u64) {
        self.ended += 1;
    }
    fn snapshot(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.leases.to_le_bytes());
        out.extend_from_slice(&self.ended.to_le_bytes());
    }
    fn restore(bytes: &[u8]) -> Result<Self, String> {
        let word = |at: usize| bytes.get(at..at + 8).map(|b| u64::from_le_bytes(b.try_into().unwrap()));
        Ok(Lease { leases: word(0).ok_or("16 bytes")?, ended: word(8).ok_or("16 bytes")? })
    }
}

#[test]
fn cluster_time_is_wall_clock_time_and_goes_on_across_a_restart_of_every_member() {
    let dirs = fresh_dirs();
    let addresses = reserve_addresses();
    let open = |id: u16| open_member_with(id, dirs[id as usize - 1].path(), &addresses, 0, Lease::default(), |_| {}).0;
    let epoch_ns = || std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64;
    // The first incarnation's processes have run for ten minutes (their monotonic clocks say).
    let members = (1..=3u16).map(|id| Some(open(id))).collect();
    let mut cluster = Cluster { start: Instant::now() - Duration::from_secs(600), members };
    cluster.until("a leader is elected", Duration::from_secs(10), |c| c.leader().is_some());
    let before = epoch_ns();
    let mut client = Client::new(&addresses);
    client.run(&mut cluster, 1..=5);
    let leader = cluster.leader().unwrap();
    let stamped = cluster.members[leader].as_ref().unwrap().storage().log.time_max().0;
    assert!(stamped >= before && stamped <= epoch_ns(), "entries carry wall-clock time: {stamped} vs {before}");
    cluster.until("every lease ends", Duration::from_secs(5), |c| {
        c.members.iter().flatten().all(|m| m.machine().ended == 5)
    });

    // Every member stops; a second later they start again, new processes (clocks from 0).
    drop(cluster);
    std::thread::sleep(Duration::from_secs(1));
    let members = (1..=3u16).map(|id| Some(open(id))).collect();
    let mut cluster = Cluster { start: Instant::now(), members };
    cluster.until("a leader is elected again", Duration::from_secs(10), |c| c.leader().is_some());
    let mut client = Client::new(&addresses);
    client.run(&mut cluster, 6..=6);
    let leader = cluster.leader().unwrap();
    let restamped = cluster.members[leader].as_ref().unwrap().storage().log.time_max().0;
    assert!(restamped >= stamped + 1_000 * MS, "cluster time stood still across the restart: {restamped} vs {stamped}");
    // The new lease ends half a second later, not when the new processes' uptime catches up.
    cluster.until("the new lease ends", Duration::from_secs(5), |c| {
        c.members.iter().flatten().all(|m| m.machine().ended == 6)
    });
}
