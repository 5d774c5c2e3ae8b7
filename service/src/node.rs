//! The node driver: one member run from its `ordo.toml` — the cluster key read from its
//! file, the transport backend opened on the member's address, the member opened from its
//! folder (newest valid snapshot, then the log) — driven on the calling thread until asked
//! to stop (an atomic flag: `ordo node` sets it from SIGINT/SIGTERM), then closed cleanly
//! (log and event log synced). Nothing acknowledged depends on the clean close: under
//! `fsync` every acknowledged entry was synced before it was acknowledged, so a SIGKILL
//! loses none.
//!
//! Threading: `shared` (every agent of the member on this one thread) or `dedicated` (the
//! service agent — the apply loop — on a thread of its own, optionally pinned, talking to
//! this one through an SPSC ring and atomic positions). Consensus and the network I/O stay
//! together on this thread: splitting them would add a copy and a ring hop per frame, which
//! on this 2-core machine costs more than it frees (see ARCHITECTURE.md).

use crate::consensus::ConsensusConfig;
use crate::member::{Member, MemberConfig, MemberError, Opened};
use ordo_core::entry::entry_span_bytes;
use ordo_core::idle::Idler;
use ordo_core::machine::StateMachine;
use ordo_core::{IdleStrategy, NodeConfig, Threading};
use ordo_transport::{Endpoint, FrameCodec, FrameKey, KeyRing, StreamConfig};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

pub const KEY_BYTES: usize = 32;

#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error("cluster key {}: {reason}; every member needs the same key file (`ordo init` writes one)", path.display())]
    Key { path: PathBuf, reason: String },
    #[error(
        "cannot listen on {address}: {source}; another process may be using it: stop it or change this member's address in ordo.toml"
    )]
    Bind {
        address: std::net::SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "cannot serve metrics on {address}: {source}; change metrics_addr in ordo.toml, or remove it to serve none"
    )]
    Metrics {
        address: std::net::SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "member {member} refuses to start on a damaged log: {source} (move {} aside first; `ordo snapshot restore --from FILE --dir MEMBER-DIR` seeds it from a peer's snapshot)",
        data_dir.display()
    )]
    Damaged {
        member: u16,
        data_dir: PathBuf,
        #[source]
        source: ordo_log::LogError,
    },
    #[error(transparent)]
    Member(#[from] MemberError),
    #[error("cannot start member {member}'s thread: {source}")]
    Thread {
        member: u16,
        #[source]
        source: std::io::Error,
    },
    #[error("member {member}'s thread panicked; see the log above")]
    Panicked { member: u16 },
    #[error("no randomness for the election timeouts: {0}")]
    Random(String),
}

/// Reads a cluster key: 64 hex digits (whitespace around them ignored).
pub fn load_key(path: &Path) -> Result<[u8; KEY_BYTES], NodeError> {
    let bad = |reason: String| NodeError::Key { path: path.to_path_buf(), reason };
    let text = std::fs::read_to_string(path).map_err(|e| bad(format!("cannot be read ({e})")))?;
    let hex = text.trim();
    if hex.len() != KEY_BYTES * 2 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(bad(format!("must be {} hex digits, it holds {} characters", KEY_BYTES * 2, hex.len())));
    }
    let mut key = [0u8; KEY_BYTES];
    for (i, byte) in key.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&hex[i * 2..i * 2 + 2], 16).expect("checked hex");
    }
    Ok(key)
}

/// Writes a fresh random cluster key (hex), readable by its owner only.
pub fn write_key(path: &Path) -> Result<[u8; KEY_BYTES], NodeError> {
    let mut key = [0u8; KEY_BYTES];
    getrandom::fill(&mut key).map_err(|e| NodeError::Random(e.to_string()))?;
    write_key_bytes(path, &key)?;
    Ok(key)
}

/// Writes `key` (hex) to a new file readable by its owner only; never overwrites one.
pub fn write_key_bytes(path: &Path, key: &[u8; KEY_BYTES]) -> Result<(), NodeError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let bad = |reason: String| NodeError::Key { path: path.to_path_buf(), reason };
    let hex: String = key.iter().map(|b| format!("{b:02x}")).collect();
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| bad(format!("cannot be created ({e})")))?;
    writeln!(file, "{hex}").and_then(|()| file.sync_all()).map_err(|e| bad(format!("cannot be written ({e})")))
}

/// The cluster id `ordo init` gives a cluster with this key: the key's BLAKE3 hash, so a
/// client given only addresses and the key file (`--cluster … --key-file`) knows it too.
pub fn cluster_id_of_key(key: &[u8; KEY_BYTES]) -> ordo_core::ClusterId {
    let hash = blake3::derive_key("ordo cluster id v1", key);
    ordo_core::ClusterId(u64::from_le_bytes(hash[..8].try_into().expect("8 bytes")) >> 1)
}

/// The member's configuration from its `ordo.toml`.
pub fn member_config(node: &NodeConfig) -> Result<MemberConfig, NodeError> {
    let mut seed = [0u8; 8];
    getrandom::fill(&mut seed).map_err(|e| NodeError::Random(e.to_string()))?;
    let ms = 1_000_000;
    let consensus = ConsensusConfig {
        member: node.member_id,
        members: node.members.iter().map(|m| m.id).collect(),
        election_timeout_ns: node.consensus.election_timeout_ms * ms,
        heartbeat_interval_ns: node.consensus.heartbeat_interval_ms * ms,
        stream: StreamConfig::from(&node.transport),
        entry_bytes_max: entry_span_bytes(node.log.entry_payload_bytes_max as usize) as usize,
        snapshot_bytes_max: node.consensus.snapshot_bytes_max,
        seed: u64::from_le_bytes(seed),
        deliberate_bug: None,
    };
    let peers = node.members.iter().filter(|m| m.id != node.member_id).map(|m| (m.id, m.address)).collect();
    let mut config = MemberConfig::new(&node.data_dir, node.log.clone(), &node.app, consensus, peers);
    config.session_timeout_ns = node.consensus.session_timeout_ms * ms;
    config.snapshot_interval_bytes = Some(node.snapshot.interval_bytes).filter(|&bytes| bytes > 0);
    config.snapshots_kept = node.snapshot.kept;
    config.threading = node.runtime.threading;
    config.service_runner = crate::runtime::RunnerConfig { idle: node.runtime.idle, core: node.runtime.service_core };
    Ok(config)
}

/// This member's address, from the members list.
pub fn own_address(node: &NodeConfig) -> std::net::SocketAddr {
    node.members.iter().find(|m| m.id == node.member_id).expect("validated: the member is listed").address
}

/// The member's endpoint: the configured backend on its address, the cluster key's codec.
pub fn endpoint(node: &NodeConfig, key: &[u8; KEY_BYTES]) -> Result<Endpoint, NodeError> {
    let address = own_address(node);
    let transport = &node.transport;
    let (mut net, fallback) = ordo_transport::backend::open(transport.backend, address, transport.mtu_bytes)
        .map_err(|source| NodeError::Bind { address, source })?;
    if let Some(message) = fallback {
        tracing::warn!("{message}");
    }
    if let Some(faults) = &transport.faults {
        tracing::warn!("member {}: transport.faults is set: it mistreats its datagrams on purpose", node.member_id.0);
        let per_mille = |n: u32| f64::from(n) / 1000.0;
        let config = ordo_transport::FaultConfig {
            loss: per_mille(faults.loss_per_mille),
            duplicate: per_mille(faults.duplicate_per_mille),
            reorder: per_mille(faults.reorder_per_mille),
            reorder_delay_ns: faults.reorder_delay_us * 1000,
            latency_ns: 0,
            jitter_ns: faults.jitter_us * 1000,
        };
        let seed = faults.seed ^ u64::from(node.member_id.0).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        net = Box::new(ordo_transport::FaultyNet::new(net, seed, config));
    }
    let keys = KeyRing::new(FrameKey::new(key));
    let codec = FrameCodec::new(node.cluster_id(), node.member_id, transport.security, keys, transport.mtu_bytes);
    Ok(Endpoint::new(net, codec))
}

/// Opens the member `node` describes, with `machine` as its empty state. Its whole log is
/// checked first (every checksum and the chain, CRC32C at memory speed): a member with a
/// damaged entry anywhere — sealed segments included, which recovery's scan from the
/// checkpoint would not read — refuses to start rather than serve it to a follower or a
/// replay.
pub fn open<M: StateMachine>(node: &NodeConfig, machine: M) -> Result<(Member<M>, Opened), NodeError> {
    let log_dir = node.data_dir.join("log");
    if log_dir.join("checkpoint").exists() {
        ordo_log::verify(&log_dir, &node.log).map_err(|source| NodeError::Damaged {
            member: node.member_id.0,
            data_dir: node.data_dir.clone(),
            source,
        })?;
    }
    let key = load_key(&node.key_file)?;
    let endpoint = endpoint(node, &key)?;
    let config = member_config(node)?;
    Ok(Member::open(machine, &config, endpoint, 0)?)
}

/// Runs the member on this thread until `stop` is set, then closes it cleanly. `ready` is
/// called once it is open (to print where it listens, what recovery found).
pub fn run<M: StateMachine>(
    node: &NodeConfig,
    machine: M,
    stop: &AtomicBool,
    ready: &mut dyn FnMut(&Member<M>, &Opened),
) -> Result<(), NodeError> {
    if let Some(core) = node.runtime.core
        && let Err(error) = crate::runtime::pin_to_core(core)
    {
        tracing::warn!("could not pin member {} to core {core}: {error}; running unpinned", node.member_id.0);
    }
    let started = Instant::now();
    let (mut member, opened) = open(node, machine)?;
    let _metrics = match node.metrics_addr {
        Some(address) => Some(
            crate::metrics::MetricsServer::start(address, node.data_dir.join("counters"), node.member_id.0)
                .map_err(|source| NodeError::Metrics { address, source })?,
        ),
        None => None,
    };
    ready(&member, &opened);
    let mut idle = node.runtime.idle;
    if idle == IdleStrategy::Block && node.runtime.threading == Threading::Dedicated {
        // The service thread's output would wait for the socket's timeout: back off instead.
        tracing::warn!("idle = \"block\" needs threading = \"shared\"; backing off instead");
        idle = IdleStrategy::Backoff;
    }
    crate::runtime::prepare_thread(idle);
    let mut idler = Idler::new(idle);
    while !stop.load(Ordering::Acquire) {
        let work = member.do_work(started.elapsed().as_nanos() as u64)?;
        if idler.idle_or_block(work) {
            member.wait_readable(ordo_core::idle::BLOCK_MAX)?;
        }
    }
    member.close()?;
    Ok(())
}

/// A member running on a thread of its own: what a service embedding ordo holds (see
/// [`start`]). Dropping it stops the member cleanly, as [`Running::stop`] does.
pub struct Running {
    member_id: ordo_core::MemberId,
    address: std::net::SocketAddr,
    counters_path: PathBuf,
    stop: std::sync::Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<Result<(), NodeError>>>,
}

/// Opens the member `node` describes, with `machine` as its empty state, and runs it on a
/// thread of its own (its agents as `node.runtime` says: idle strategy, threading, cores).
/// Returns once the member is open, so a bad key, a damaged log or an address in use is an
/// error here, not later.
///
/// ```no_run
/// use ordo_core::NodeConfig;
/// use ordo_service::echo::Echo;
///
/// let config = NodeConfig::load("cluster/node-1/ordo.toml".as_ref())?;
/// let member = ordo_service::node::start(config, Echo::default())?;
/// println!("member listening on {}", member.address());
/// // … serve until told to stop …
/// member.stop()?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn start<M: StateMachine>(node: NodeConfig, machine: M) -> Result<Running, NodeError> {
    let member = node.member_id.0;
    let counters_path = node.data_dir.join("counters");
    let stop = std::sync::Arc::new(AtomicBool::new(false));
    let (opened, open) = std::sync::mpsc::channel();
    let flag = stop.clone();
    let thread = std::thread::Builder::new()
        .name(format!("ordo-member-{member}"))
        .spawn(move || {
            run(&node, machine, &flag, &mut |m, _| {
                let _ = opened.send(m.local_addr());
            })
        })
        .map_err(|source| NodeError::Thread { member, source })?;
    match open.recv() {
        Ok(address) => {
            Ok(Running { member_id: ordo_core::MemberId(member), address, counters_path, stop, thread: Some(thread) })
        }
        // It ended before it was open: its error says why.
        Err(_) => Err(thread
            .join()
            .map_err(|_| NodeError::Panicked { member })?
            .err()
            .unwrap_or(NodeError::Panicked { member })),
    }
}

impl Running {
    pub fn member_id(&self) -> ordo_core::MemberId {
        self.member_id
    }

    /// The address it listens on.
    pub fn address(&self) -> std::net::SocketAddr {
        self.address
    }

    /// One live counter by name (`role`, `commit_position`, … as `ordo stat` shows them).
    pub fn counter(&self, name: &str) -> Option<u64> {
        ordo_log::counters::CountersReader::open(&self.counters_path).ok()?.value(name)
    }

    /// Every live counter, by name.
    pub fn counters(&self) -> Vec<(String, u64)> {
        ordo_log::counters::CountersReader::open(&self.counters_path)
            .map(|c| c.all().into_iter().map(|(name, value)| (name.to_string(), value)).collect())
            .unwrap_or_default()
    }

    /// Whether it is still running (it stops by itself only on an error).
    pub fn is_running(&self) -> bool {
        self.thread.as_ref().is_some_and(|t| !t.is_finished())
    }

    /// Stops it cleanly (log and event log synced) and says how it ended.
    pub fn stop(mut self) -> Result<(), NodeError> {
        self.finish()
    }

    fn finish(&mut self) -> Result<(), NodeError> {
        self.stop.store(true, Ordering::Release);
        match self.thread.take() {
            Some(thread) => thread.join().map_err(|_| NodeError::Panicked { member: self.member_id.0 })?,
            None => Ok(()),
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Err(error) = self.finish() {
            tracing::error!("member {} stopped with an error: {error}", self.member_id.0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_written_key_reads_back_and_a_bad_one_says_what_is_wrong() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cluster.key");
        let key = write_key(&path).unwrap();
        assert_eq!(load_key(&path).unwrap(), key);
        assert!(write_key(&path).is_err(), "an existing key is never overwritten");
        std::fs::write(&path, "abc\n").unwrap();
        let message = load_key(&path).unwrap_err().to_string();
        assert!(message.contains("64 hex digits") && message.contains("cluster.key"), "{message}");
        let message = load_key(&dir.path().join("missing")).unwrap_err().to_string();
        assert!(message.contains("cannot be read"), "{message}");
    }
}
