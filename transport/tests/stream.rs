//! The log stream over real loopback sockets, on both backends, through FaultyNet: a
//! leader's log reaches two followers byte for byte despite loss, duplication and
//! reordering; a stalled follower holds the sender to its window; bad datagrams are dropped
//! and counted.

use ordo_core::{ClusterId, ClusterTimeNs, Durability, EntryMeta, LogConfig, MemberId, Position, SessionId, Term};
use ordo_log::Log;
use ordo_transport::backend::{Datagrams, StdUdp, UringUdp};
use ordo_transport::{
    Body, Chunk, Endpoint, FaultConfig, FaultyNet, FrameCodec, FrameError, FrameKey, FrameType, KeyRing, PeerStream,
    Received, Security, StreamConfig, StreamReceiver,
};
use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

const SEGMENT_BYTES: u64 = 64 * 1024;
const CLUSTER: ClusterId = ClusterId(11);

fn log_config() -> LogConfig {
    LogConfig {
        cluster_id: CLUSTER,
        segment_bytes: SEGMENT_BYTES,
        durability: Durability::Replicated,
        entry_payload_bytes_max: 8192,
    }
}

type Open = fn() -> Box<dyn Datagrams>;

fn backends() -> [(&'static str, Open); 2] {
    [
        ("std", || Box::new(StdUdp::bind("127.0.0.1:0".parse().unwrap(), 1408).unwrap())),
        ("io_uring", || Box::new(UringUdp::bind("127.0.0.1:0".parse().unwrap(), 1408).unwrap())),
    ]
}

fn endpoint(net: Box<dyn Datagrams>, member: u16, security: Security) -> Endpoint {
    let keys = KeyRing::new(FrameKey::new(&[42; 32]));
    Endpoint::new(net, FrameCodec::new(CLUSTER, MemberId(member), security, keys, 1408))
}

/// A leader log of at least `bytes` bytes: payloads from 1 B to 3000 B (larger than a
/// frame: fragmented), across many 64 KiB segments (padding entries).
fn leader_log(dir: &Path, bytes: u64) -> Log {
    let (mut log, _) = Log::open(dir, log_config()).unwrap();
    let sizes = [1usize, 64, 100, 700, 3000, 64, 64, 250, 1300, 5];
    let mut k = 0u64;
    while log.position_append().0 < bytes {
        let payload: Vec<u8> = (0..sizes[k as usize % sizes.len()]).map(|i| (k as usize + i) as u8 | 1).collect();
        log.append(&EntryMeta::command(Term(1 + k / 2000), ClusterTimeNs(k), SessionId(1), k), &payload).unwrap();
        k += 1;
    }
    log
}

struct Follower {
    endpoint: Endpoint,
    log: Log,
    receiver: StreamReceiver,
    stalled: bool,
}

impl Follower {
    /// Receives and handles one batch; returns the frames handled.
    fn step(&mut self, leader: SocketAddr, now_ns: u64) -> usize {
        if self.stalled {
            return 0;
        }
        let mut appends: Vec<(Position, u32, Vec<u8>)> = Vec::new();
        let frames = self
            .endpoint
            .poll(&mut |_, frame| {
                if let Body::Append { from_position, fragment_offset, bytes, .. } = frame.body {
                    appends.push((from_position, fragment_offset, bytes.to_vec()));
                }
            })
            .unwrap();
        for (from_position, fragment_offset, bytes) in appends {
            let chunk = Chunk { from_position, checksum_prev: 0, fragment_offset, bytes: &bytes };
            let reply = match self.receiver.on_append(self.log.position_append(), chunk, Term(1), now_ns) {
                Received::Entries { position, bytes } => {
                    self.log.append_raw(position, bytes).expect("the leader's bytes check out");
                    Some(self.ack())
                }
                Received::Duplicate => Some(self.ack()),
                Received::Gap { nak: Some(position) } => Some(Body::Nak { position }),
                Received::Gap { nak: None } | Received::Fragment => None,
            };
            if let Some(reply) = reply {
                self.endpoint.queue(leader, Term(1), &reply).unwrap();
            }
        }
        self.endpoint.flush().unwrap();
        frames
    }

    fn ack(&self) -> Body<'static> {
        Body::AppendAck { position_append: self.log.position_append(), position_durable: self.log.position_append() }
    }
}

struct Run {
    leader: Endpoint,
    followers: Vec<Follower>,
    peers: Vec<PeerStream>,
    max_ahead_bytes: u64,
}

impl Run {
    /// One round: the leader takes acks and NAKs and sends what each stream allows, then
    /// each follower takes what arrived. Returns the work done (0: idle).
    fn step(&mut self, log: &Log, start: Instant) -> usize {
        let now_ns = start.elapsed().as_nanos() as u64;
        let addresses: Vec<SocketAddr> = self.followers.iter().map(|f| f.endpoint.local_addr()).collect();
        let mut replies = Vec::new();
        let mut work = self
            .leader
            .poll(&mut |from, frame| match frame.body {
                Body::AppendAck { position_append, .. } => replies.push((from, false, position_append)),
                Body::Nak { position } => replies.push((from, true, position)),
                _ => {}
            })
            .unwrap();
        for (from, is_nak, position) in replies {
            let peer = addresses.iter().position(|a| *a == from).unwrap();
            if is_nak {
                self.peers[peer].on_nak(position, now_ns);
            } else {
                self.peers[peer].on_ack(position, now_ns);
            }
        }
        let capacity = self.leader.codec().capacity_bytes(FrameType::Append);
        for (peer, stream) in self.peers.iter_mut().enumerate() {
            stream.on_tick(now_ns);
            let mut chunks = Vec::new();
            work += stream.poll(log, capacity, 32, &mut |chunk| chunks.push(chunk));
            for chunk in chunks {
                let body = chunk.to_body(Position::ZERO);
                self.leader.queue(addresses[peer], Term(1), &body).unwrap();
            }
            let ahead = stream.position_next().0.saturating_sub(stream.position_acked().0);
            self.max_ahead_bytes = self.max_ahead_bytes.max(ahead);
        }
        self.leader.flush().unwrap();
        let leader_addr = self.leader.local_addr();
        for follower in &mut self.followers {
            work += follower.step(leader_addr, now_ns);
        }
        work
    }

    fn caught_up(&self, end: Position) -> bool {
        self.followers.iter().all(|f| f.log.position_append() == end)
    }

    fn run_until(&mut self, log: &Log, start: Instant, limit: Duration, done: impl Fn(&Run) -> bool) {
        while !done(self) {
            assert!(start.elapsed() < limit, "stuck: {:?}", self.peers);
            if self.step(log, start) == 0 {
                std::thread::sleep(Duration::from_micros(100));
            }
        }
    }
}

fn new_run(
    open: Open,
    dirs: &[tempfile::TempDir],
    faults: FaultConfig,
    security: Security,
    config: StreamConfig,
) -> Run {
    let leader = endpoint(Box::new(FaultyNet::new(open(), 1, faults)), 1, security);
    let followers = (0..2u16)
        .map(|i| Follower {
            endpoint: endpoint(Box::new(FaultyNet::new(open(), 2 + i as u64, faults)), 2 + i, security),
            log: Log::open(dirs[i as usize].path(), log_config()).unwrap().0,
            receiver: StreamReceiver::new(config, 8192 + 64),
            stalled: false,
        })
        .collect();
    let peers = (0..2).map(|_| PeerStream::new(Position::ZERO, 0, config)).collect();
    Run { leader, followers, peers, max_ahead_bytes: 0 }
}

#[test]
fn a_million_log_bytes_reach_two_followers_byte_identical_through_loss_duplication_and_reordering() {
    let faults = FaultConfig {
        loss: 0.05,
        duplicate: 0.05,
        reorder: 0.05,
        reorder_delay_ns: 300_000,
        latency_ns: 0,
        jitter_ns: 0,
        ..FaultConfig::NONE
    };
    for (name, open) in backends() {
        for security in [Security::Mac, Security::Aead] {
            let leader_dir = tempfile::tempdir().unwrap();
            let log = leader_log(leader_dir.path(), 1_000_000);
            let dirs = [tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()];
            let config =
                StreamConfig { window_bytes: 256 * 1024, retransmit_timeout_ns: 5_000_000, nak_interval_ns: 1_000_000 };
            let mut run = new_run(open, &dirs, faults, security, config);
            let start = Instant::now();
            let end = log.position_append();
            run.run_until(&log, start, Duration::from_secs(60), |run| run.caught_up(end));
            for follower in &run.followers {
                assert_eq!(follower.log.checksum_last(), log.checksum_last());
                assert_eq!(follower.endpoint.drops().total(), 0, "{name}: no datagram was refused");
            }
            eprintln!(
                "{name} {security:?}: {} log bytes to 2 followers in {:?}; leader sent {} frames, received {}; followers received {:?}",
                end.0,
                start.elapsed(),
                run.leader.frames_sent,
                run.leader.frames_received,
                run.followers.iter().map(|f| f.endpoint.frames_received).collect::<Vec<_>>()
            );
            drop(run);
            let expected = ordo_log::testing::segment_files(leader_dir.path());
            for dir in &dirs {
                assert!(
                    ordo_log::testing::segment_files(dir.path()) == expected,
                    "{name}: follower segments equal the leader's, byte for byte"
                );
            }
        }
    }
}

#[test]
fn flow_control_holds_the_window_under_a_stalled_follower_and_resumes() {
    for (name, open) in backends() {
        let leader_dir = tempfile::tempdir().unwrap();
        let log = leader_log(leader_dir.path(), 400_000);
        let dirs = [tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()];
        let window_bytes = 32 * 1024;
        let config = StreamConfig { window_bytes, retransmit_timeout_ns: 5_000_000, nak_interval_ns: 1_000_000 };
        let mut run = new_run(open, &dirs, FaultConfig::NONE, Security::Mac, config);
        run.followers[1].stalled = true;
        let start = Instant::now();
        let end = log.position_append();
        run.run_until(&log, start, Duration::from_secs(30), |run| run.followers[0].log.position_append() == end);
        assert_eq!(run.followers[1].log.position_append(), Position::ZERO, "{name}");
        let capacity = run.leader.codec().capacity_bytes(FrameType::Append) as u64;
        assert!(run.max_ahead_bytes <= window_bytes + capacity, "{name}: ran {} bytes ahead", run.max_ahead_bytes);

        run.followers[1].stalled = false;
        run.run_until(&log, start, Duration::from_secs(60), |run| run.caught_up(end));
        assert!(run.max_ahead_bytes <= window_bytes + capacity, "{name}");
    }
}

#[test]
fn bad_datagrams_are_dropped_and_counted_never_handed_up() {
    for (name, open) in backends() {
        let mut member = endpoint(open(), 2, Security::Mac);
        let to = member.local_addr();
        let mut good = endpoint(open(), 1, Security::Mac);
        let stranger_keys = KeyRing::new(FrameKey::new(&[1; 32]));
        let mut stranger =
            Endpoint::new(open(), FrameCodec::new(CLUSTER, MemberId(9), Security::Mac, stranger_keys, 1408));
        let other_keys = KeyRing::new(FrameKey::new(&[42; 32]));
        let mut other_cluster =
            Endpoint::new(open(), FrameCodec::new(ClusterId(12), MemberId(3), Security::Mac, other_keys, 1408));
        let nak = Body::Nak { position: Position(64) };
        stranger.queue(to, Term(1), &nak).unwrap();
        stranger.flush().unwrap();
        other_cluster.queue(to, Term(1), &nak).unwrap();
        other_cluster.flush().unwrap();
        let raw = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        raw.send_to(b"short", to).unwrap();
        raw.send_to(&[0xAB; 1500], to).unwrap();
        raw.send_to(&[0u8; 200], to).unwrap();
        good.queue(to, Term(1), &nak).unwrap();
        good.flush().unwrap();

        let mut handed_up = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(5);
        while (member.drops().total() < 5 || handed_up.is_empty()) && Instant::now() < deadline {
            member.poll(&mut |_, frame| handed_up.push(frame.body.frame_type())).unwrap();
            std::thread::sleep(Duration::from_millis(1));
        }
        let drops = member.drops();
        assert_eq!(drops.count(&FrameError::BadMac), 1, "{name}: {drops:?}");
        assert_eq!(drops.count(&FrameError::WrongCluster { found: ClusterId(0), expected: ClusterId(0) }), 1, "{name}");
        assert_eq!(drops.count(&FrameError::TooShort { bytes: 0 }), 1, "{name}");
        assert_eq!(drops.count(&FrameError::TooLong { bytes: 0, mtu_bytes: 0 }), 1, "{name}");
        assert_eq!(drops.count(&FrameError::BadMagic), 1, "{name}");
        assert_eq!(handed_up, vec![FrameType::Nak], "{name}: only the good frame is handed up");
    }
}
