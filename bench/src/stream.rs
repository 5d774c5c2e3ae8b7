//! Log-stream throughput: one leader streams a log of small entries to two followers over
//! loopback (leader on one thread, both followers on the other: this machine has 2 cores),
//! each follower appending what arrives to its own mapped log.

use ordo_core::{ClusterId, ClusterTimeNs, Durability, EntryMeta, LogConfig, MemberId, Position, SessionId, Term};
use ordo_log::Log;
use ordo_transport::backend::{self, BackendKind};
use ordo_transport::{
    Body, Chunk, Endpoint, FaultConfig, FaultyNet, FrameCodec, FrameKey, FrameType, KeyRing, PeerStream, Received,
    Security, StreamConfig, StreamReceiver,
};
use std::io;
use std::time::{Duration, Instant};

#[derive(Clone, Copy, Debug)]
pub struct StreamRun {
    pub backend: BackendKind,
    pub security: Security,
    pub entries: u64,
    pub payload_bytes: usize,
    /// Loss injected on every endpoint's sends (FaultyNet).
    pub loss: f64,
}

#[derive(Clone, Copy, Debug)]
pub struct StreamReport {
    pub entries: u64,
    pub log_bytes: u64,
    pub seconds: f64,
    pub entries_per_s: f64,
    pub datagrams_per_s: f64,
}

const CLUSTER: ClusterId = ClusterId(7);

fn log_config() -> LogConfig {
    LogConfig {
        cluster_id: CLUSTER,
        segment_bytes: 64 << 20,
        durability: Durability::Replicated,
        entry_payload_bytes_max: 1 << 16,
    }
}

fn endpoint(kind: BackendKind, member: u16, security: Security, loss: f64, seed: u64) -> io::Result<Endpoint> {
    let (net, _) = backend::open(kind, "127.0.0.1:0".parse().unwrap(), 1408)?;
    let faults = FaultConfig { loss, ..FaultConfig::NONE };
    let codec = FrameCodec::new(CLUSTER, MemberId(member), security, KeyRing::new(FrameKey::new(&[9; 32])), 1408);
    Ok(Endpoint::new(Box::new(FaultyNet::new(net, seed, faults)), codec))
}

pub fn run(config: StreamRun) -> io::Result<StreamReport> {
    let dirs = [tempfile::tempdir()?, tempfile::tempdir()?, tempfile::tempdir()?];
    let open = |i: usize| Log::open(dirs[i].path(), log_config()).map(|(log, _)| log).map_err(io::Error::other);
    let mut leader_log = open(0)?;
    let payload = vec![0x5Au8; config.payload_bytes];
    for k in 0..config.entries {
        leader_log
            .append(&EntryMeta::command(Term(1), ClusterTimeNs(k), SessionId(1), k), &payload)
            .map_err(io::Error::other)?;
    }
    let end = leader_log.position_append();
    let mut leader = endpoint(config.backend, 1, config.security, config.loss, 1)?;
    let mut followers = Vec::new();
    for i in 0..2u16 {
        let endpoint = endpoint(config.backend, 2 + i, config.security, config.loss, 2 + i as u64)?;
        followers.push((endpoint, open(1 + i as usize)?, StreamReceiver::new(StreamConfig::default(), 1 << 17)));
    }
    let addresses: Vec<_> = followers.iter().map(|f| f.0.local_addr()).collect();
    let leader_addr = leader.local_addr();
    let stream_config =
        StreamConfig { window_bytes: 4 << 20, retransmit_timeout_ns: 2_000_000, nak_interval_ns: 500_000 };
    let start = Instant::now();
    let deadline = Duration::from_secs(120);

    let follower_thread = std::thread::spawn(move || -> io::Result<()> {
        let mut appends: Vec<(Position, u32, Vec<u8>)> = Vec::new();
        while followers.iter().any(|f| f.1.position_append() < end) && start.elapsed() < deadline {
            let mut work = 0;
            for (endpoint, log, receiver) in &mut followers {
                appends.clear();
                work += endpoint.poll(&mut |_, frame| {
                    if let Body::Append { from_position, fragment_offset, bytes, .. } = frame.body {
                        appends.push((from_position, fragment_offset, bytes.to_vec()));
                    }
                })?;
                let now_ns = start.elapsed().as_nanos() as u64;
                let mut ack = false;
                for (from_position, fragment_offset, bytes) in &appends {
                    let chunk = Chunk {
                        from_position: *from_position,
                        checksum_prev: 0,
                        fragment_offset: *fragment_offset,
                        bytes,
                    };
                    match receiver.on_append(log.position_append(), chunk, Term(1), now_ns) {
                        Received::Entries { position, bytes } => {
                            log.append_raw(position, bytes).map_err(io::Error::other)?;
                            ack = true;
                        }
                        Received::Duplicate => ack = true,
                        Received::Gap { nak: Some(position) } => {
                            endpoint.queue(leader_addr, Term(1), &Body::Nak { position })?;
                        }
                        Received::Gap { nak: None } | Received::Fragment => {}
                    }
                }
                // One ack per batch: acks are cumulative.
                if ack {
                    let position = log.position_append();
                    endpoint.queue(
                        leader_addr,
                        Term(1),
                        &Body::AppendAck { position_append: position, position_durable: position },
                    )?;
                }
                endpoint.flush()?;
            }
            if work == 0 {
                std::thread::yield_now();
            }
        }
        Ok(())
    });

    let mut peers =
        [PeerStream::new(Position::ZERO, 0, stream_config), PeerStream::new(Position::ZERO, 0, stream_config)];
    let capacity = leader.codec().capacity_bytes(FrameType::Append);
    let mut replies = Vec::new();
    while peers.iter().any(|p| p.position_acked() < end) && start.elapsed() < deadline {
        let now_ns = start.elapsed().as_nanos() as u64;
        replies.clear();
        let mut work = leader.poll(&mut |from, frame| match frame.body {
            Body::AppendAck { position_append, .. } => replies.push((from, false, position_append)),
            Body::Nak { position } => replies.push((from, true, position)),
            _ => {}
        })?;
        for &(from, is_nak, position) in &replies {
            let peer = addresses.iter().position(|a| *a == from).unwrap_or(0);
            if is_nak {
                peers[peer].on_nak(position, now_ns);
            } else {
                peers[peer].on_ack(position, now_ns);
            }
        }
        for (peer, stream) in peers.iter_mut().enumerate() {
            stream.on_tick(now_ns);
            let mut chunks = Vec::new();
            work += stream.poll(&leader_log, capacity, 64, &mut |chunk| chunks.push(chunk));
            for chunk in chunks {
                let body = chunk.to_body(Position::ZERO);
                leader.queue(addresses[peer], Term(1), &body)?;
            }
        }
        leader.flush()?;
        if work == 0 {
            std::thread::yield_now();
        }
    }
    let seconds = start.elapsed().as_secs_f64();
    follower_thread.join().expect("follower thread")?;
    if peers.iter().any(|p| p.position_acked() < end) {
        return Err(io::Error::new(io::ErrorKind::TimedOut, "the stream did not finish in 120 s"));
    }
    Ok(StreamReport {
        entries: config.entries,
        log_bytes: end.0,
        seconds,
        entries_per_s: config.entries as f64 / seconds,
        datagrams_per_s: leader.frames_sent as f64 / seconds,
    })
}
