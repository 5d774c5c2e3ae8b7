//! Commit latency of a 3-member cluster on loopback, all three members' duty cycles and the
//! load on one thread (the "shared" threading mode): an open-loop load proposes commands at
//! a fixed rate to the leader, and each command's latency runs from its intended send time
//! (coordinated omission corrected) to the moment the leader's commit position passes it.
//! Printed beside the UDP ping-pong of the same run. Also committed commands per second with
//! batching ([`throughput`]).

use crate::latency::{LatencyReport, histogram};
use ordo_core::{
    ClusterId, Durability, LogConfig, MemberId, NodeConfig, Position, Security, SessionId, SnapshotSettings,
};
use ordo_service::machinery::consensus::Role;
use ordo_service::machinery::echo::Echo;
use ordo_service::machinery::member::Member;
use ordo_transport::backend::StdUdp;
use ordo_transport::{Endpoint, FrameCodec, FrameKey, KeyRing};
use std::collections::VecDeque;
use std::io;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

#[derive(Clone, Copy, Debug)]
pub struct ClusterRun {
    pub durability: Durability,
    pub rate_per_s: u64,
    pub size_bytes: usize,
    pub warmup: Duration,
    pub duration: Duration,
}

fn member(
    id: u16,
    dir: &std::path::Path,
    addresses: &[SocketAddr],
    durability: Durability,
) -> io::Result<Member<Echo>> {
    let cluster = ClusterId(99);
    let config =
        LogConfig { cluster_id: cluster, segment_bytes: 64 << 20, durability, entry_payload_bytes_max: 1 << 16 };
    let net = StdUdp::bind(addresses[id as usize - 1], 1408)?;
    let codec = FrameCodec::new(cluster, MemberId(id), Security::Mac, KeyRing::new(FrameKey::new(&[1; 32])), 1408);
    let members = NodeConfig::members_at(addresses);
    let node = NodeConfig {
        snapshot: SnapshotSettings { interval_bytes: 0, kept: 2 },
        ..NodeConfig::new(MemberId(id), dir.to_path_buf(), "echo", members, config)
    };
    let endpoint = Endpoint::new(Box::new(net), codec);
    // A new cluster's member (unformatted, it would wait to recover from a leader).
    ordo_service::machinery::node::format(&node).map_err(io::Error::other)?;
    let config = ordo_service::machinery::node::member_config(&node).map_err(io::Error::other)?;
    Member::open(Echo::default(), &config, endpoint, 0).map(|(member, _)| member).map_err(io::Error::other)
}

/// Three members on loopback with their leader elected, driven on this thread.
struct Cluster {
    _dirs: [tempfile::TempDir; 3],
    members: Vec<Member<Echo>>,
    leader: usize,
    start: Instant,
}

impl Cluster {
    fn start(durability: Durability) -> io::Result<Cluster> {
        let dirs = [tempfile::tempdir()?, tempfile::tempdir()?, tempfile::tempdir()?];

        let addresses: Vec<SocketAddr> = (0..3)
            .map(|_| std::net::UdpSocket::bind("127.0.0.1:0").and_then(|s| s.local_addr()))
            .collect::<Result<_, _>>()?;
        let mut members = Vec::new();
        for id in 1..=3u16 {
            members.push(member(id, dirs[id as usize - 1].path(), &addresses, durability)?);
        }
        let mut cluster = Cluster { _dirs: dirs, members, leader: 0, start: Instant::now() };
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            cluster.step()?;
            if let Some(leader) = cluster.members.iter().position(|m| m.role() == Role::Leader) {
                cluster.leader = leader;
                return Ok(cluster);
            }
            if Instant::now() > deadline {
                return Err(io::Error::new(io::ErrorKind::TimedOut, "no leader elected in 10 s"));
            }
        }
    }

    fn now(&self) -> u64 {
        self.start.elapsed().as_nanos() as u64
    }

    fn step(&mut self) -> io::Result<usize> {
        let t = self.now();
        let mut work = 0;
        for member in self.members.iter_mut() {
            work += member.do_work(t).map_err(io::Error::other)?;
        }
        Ok(work)
    }

    /// Proposes to the leader; returns the position its entry ends at.
    fn propose(&mut self, sequence: u64, payload: &[u8]) -> io::Result<Position> {
        let leader = &mut self.members[self.leader];
        match leader.propose(SessionId(1), sequence, payload).map_err(io::Error::other)? {
            Ok(()) => Ok(leader.storage().log.position_append()),
            Err(_) => Err(io::Error::other("the leader lost its leadership during the run")),
        }
    }

    fn commit(&self) -> Position {
        self.members[self.leader].commit_position()
    }
}

pub fn run(config: ClusterRun) -> io::Result<LatencyReport> {
    let mut cluster = Cluster::start(config.durability)?;
    let payload = vec![0x5Au8; config.size_bytes];
    let mut latencies = histogram();
    let interval_ns = 1_000_000_000 / config.rate_per_s.max(1);
    let load_start = cluster.now();
    let warmup_end = load_start + config.warmup.as_nanos() as u64;
    let end = warmup_end + config.duration.as_nanos() as u64;
    let (mut sequence, mut sent) = (0u64, 0u64);
    let mut in_flight: VecDeque<(Position, u64)> = VecDeque::new();
    loop {
        let t = cluster.now();
        while t < end && load_start + sequence * interval_ns <= t {
            let due = load_start + sequence * interval_ns;
            sequence += 1;
            let position = cluster.propose(sequence, &payload)?;
            in_flight.push_back((position, due));
            if due >= warmup_end {
                sent += 1;
            }
        }
        cluster.step()?;
        let commit = cluster.commit();
        let t = cluster.now();
        while in_flight.front().is_some_and(|&(position, _)| position <= commit) {
            let (_, due) = in_flight.pop_front().expect("checked");
            if due >= warmup_end {
                let _ = latencies.record(t.saturating_sub(due).max(1));
            }
        }
        if t >= end && (in_flight.is_empty() || t > end + 2_000_000_000) {
            break;
        }
    }
    Ok(LatencyReport::from_histogram(&latencies, sent))
}

/// Committed commands per second with the leader kept busy: commands proposed in batches
/// while fewer than `in_flight_max` are uncommitted, so each sync and each Append frame
/// carries many. Returns (commands committed, seconds).
pub fn throughput(
    durability: Durability,
    size_bytes: usize,
    in_flight_max: usize,
    duration: Duration,
) -> io::Result<(u64, f64)> {
    let mut cluster = Cluster::start(durability)?;
    let payload = vec![0x5Au8; size_bytes];
    let mut in_flight: VecDeque<Position> = VecDeque::with_capacity(in_flight_max);
    let (mut sequence, mut committed) = (0u64, 0u64);
    let started = Instant::now();
    while started.elapsed() < duration {
        while in_flight.len() < in_flight_max {
            sequence += 1;
            in_flight.push_back(cluster.propose(sequence, &payload)?);
        }
        cluster.step()?;
        let commit = cluster.commit();
        while in_flight.front().is_some_and(|&position| position <= commit) {
            in_flight.pop_front();
            committed += 1;
        }
    }
    Ok((committed, started.elapsed().as_secs_f64()))
}
