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
//! on this 2-core machine costs more than it frees (see docs/internals.md, "Two agents, not three").

use crate::replica::consensus::ConsensusConfig;
use crate::run::member::{Member, MemberConfig, Opened};
use ordo_core::ClusterId;
use ordo_core::entry::entry_span_bytes;
use ordo_core::idle::Idler;
use ordo_core::machine::StateMachine;
use ordo_core::{IdleStrategy, NodeConfig, Threading};
use ordo_transport::{ClientKey, Endpoint, FrameCodec, FrameKey, KeyRing, StreamConfig};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

/// A cluster key's length.
pub const KEY_BYTES: usize = 32;

pub use crate::run::embed::{NodeError, Running, load_key, start};

/// Writes a fresh random cluster key (hex), readable by its owner only.
pub fn write_key(path: &Path) -> Result<[u8; KEY_BYTES], NodeError> {
    let mut key = [0u8; KEY_BYTES];
    getrandom::fill(&mut key).map_err(|e| NodeError::Random(e.to_string()))?;
    write_key_bytes(path, &key)?;
    Ok(key)
}

/// Writes `key` (hex) to a new file readable by its owner only; never overwrites one.
pub fn write_key_bytes(path: &Path, key: &[u8; KEY_BYTES]) -> Result<(), NodeError> {
    let hex: String = key.iter().map(|b| format!("{b:02x}")).collect();
    write_secret_file(path, &hex)
}

/// Writes `text` and a newline to a new file readable by its owner only; never overwrites
/// one (a key file, or a client-keys file).
pub fn write_secret_file(path: &Path, text: &str) -> Result<(), NodeError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let bad = |reason: String| NodeError::Key { path: path.to_path_buf(), reason };
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| bad(format!("cannot be created ({e})")))?;
    writeln!(file, "{text}").and_then(|()| file.sync_all()).map_err(|e| bad(format!("cannot be written ({e})")))
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
    };
    let peers = node.members.iter().filter(|m| m.id != node.member_id).map(|m| (m.id, m.address)).collect();
    let mut config = MemberConfig::new(&node.data_dir, node.log.clone(), &node.app, consensus, peers);
    config.session_timeout_ns = node.consensus.session_timeout_ms * ms;
    config.snapshot_interval_bytes = Some(node.snapshot.interval_bytes).filter(|&bytes| bytes > 0);
    config.snapshots_kept = node.snapshot.kept;
    config.threading = node.runtime.threading;
    config.service_runner =
        crate::run::runtime::RunnerConfig { idle: node.runtime.idle, core: node.runtime.service_core };
    config.client_keys_file = Some(node.client_keys_file.clone());
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
        .map_err(|source| NodeError::Bind { member: node.member_id.0, address, source })?;
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
            ..ordo_transport::FaultConfig::NONE
        };
        let seed = faults.seed ^ u64::from(node.member_id.0).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        net = Box::new(ordo_transport::FaultyNet::new(net, seed, config));
    }
    let keys = KeyRing::new(FrameKey::new(key));
    let codec = FrameCodec::new(node.cluster_id(), node.member_id, transport.security, keys, transport.mtu_bytes);
    Ok(Endpoint::new(net, codec))
}

/// Opens the member `node` describes, with `machine` as its empty state (its whole log
/// verified first: see `disk::open_folder`).
pub fn open<M: StateMachine>(node: &NodeConfig, machine: M) -> Result<(Member<M>, Opened), NodeError> {
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
        && let Err(error) = crate::run::runtime::pin_to_core(core)
    {
        tracing::warn!("could not pin member {} to core {core}: {error}; running unpinned", node.member_id.0);
    }
    let started = Instant::now();
    let (mut member, opened) = open(node, machine)?;
    let _metrics = match node.metrics_addr {
        Some(address) => {
            let server =
                crate::run::metrics::MetricsServer::start(address, node.data_dir.join("counters"), node.member_id.0)
                    .map_err(|source| NodeError::Metrics { address, source })?;
            tracing::info!("member {} serves metrics at http://{}/metrics", node.member_id.0, server.address());
            Some(server)
        }
        None => None,
    };
    ready(&member, &opened);
    let mut idle = node.runtime.idle;
    if idle == IdleStrategy::Block && node.runtime.threading == Threading::Dedicated {
        // The service thread's output would wait for the socket's timeout: back off instead.
        tracing::warn!("idle = \"block\" needs threading = \"shared\"; backing off instead");
        idle = IdleStrategy::Backoff;
    }
    crate::run::runtime::prepare_thread(idle);
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

/// A client key file's newest key (the highest id) and the cluster it names (a line
/// `cluster ID`), if it names one: see [`crate::load_client_key`].
pub fn load_client_key_file(path: &Path) -> Result<(ClientKey, Option<ClusterId>), NodeError> {
    let bad = |reason: String| NodeError::Key { path: path.to_path_buf(), reason };
    let text = std::fs::read_to_string(path).map_err(|e| bad(format!("cannot be read ({e})")))?;
    let keys = ClientKey::parse_all(&text).map_err(bad)?;
    let key =
        keys.into_iter().max_by_key(|k| k.id).ok_or_else(|| bad("holds no client key (a line `ID HEX`)".into()))?;
    Ok((key, ClientKey::parse_cluster(&text).map(ClusterId)))
}

/// Writes a new cluster's first client key: `dir/client.key` (for clients: the cluster's id
/// and the key) and each member's client-keys file (the key alone) at `members`.
pub fn write_client_keys(
    client_file: &Path,
    cluster_id: ClusterId,
    members: &[std::path::PathBuf],
) -> Result<ClientKey, NodeError> {
    let mut secret = [0u8; KEY_BYTES];
    getrandom::fill(&mut secret).map_err(|e| NodeError::Random(e.to_string()))?;
    let key = ClientKey { id: 1, secret };
    let header = "# An ordo client key: `--key-file` takes this file. Members accept it while their\n\
                  # client-keys file lists its line; add a line there to add a key, remove one to retire it.";
    write_secret_file(client_file, &format!("{header}\ncluster {}\n{}", cluster_id.0, key.to_line()))?;
    for path in members {
        let header = "# The client keys this member accepts, `ID HEX` a line; re-read when it changes.";
        write_secret_file(path, &format!("{header}\n{}", key.to_line()))?;
    }
    Ok(key)
}

/// Formats a new member's data folder (a vote file at term 0) unless it has one: see
/// `Node::format`. Returns whether it wrote one.
pub fn format(node: &NodeConfig) -> Result<bool, ordo_log::LogError> {
    ordo_log::VoteStore::new(&node.data_dir, node.cluster_id()).format()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A one-member cluster at `address` in a fresh folder, with its key written.
    fn one_member(dir: &Path, address: std::net::SocketAddr) -> NodeConfig {
        let members = NodeConfig::members_at(&[address]);
        let mut node = NodeConfig::new(ordo_core::MemberId(1), dir.join("data"), "echo", members, Default::default());
        node.key_file = dir.join("cluster.key");
        write_key(&node.key_file).unwrap();
        node
    }

    #[test]
    fn an_address_that_cannot_be_bound_is_named_with_what_to_do() {
        let dir = tempfile::tempdir().unwrap();
        let taken = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let node = one_member(dir.path(), taken.local_addr().unwrap());
        let message = start(node, crate::echo::Echo::default()).err().expect("the port is taken").to_string();
        let address = taken.local_addr().unwrap().to_string();
        assert!(message.contains(&address) && message.contains("another process is using it"), "{message}");

        // 192.0.2.1 is TEST-NET-1: on no interface of this host (binding sends nothing).
        let elsewhere = tempfile::tempdir().unwrap();
        let node = one_member(elsewhere.path(), "192.0.2.1:9000".parse().unwrap());
        let message = start(node, crate::echo::Echo::default()).err().expect("not this host's address").to_string();
        assert!(message.contains("192.0.2.1:9000") && message.contains("no interface of this host"), "{message}");
    }

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
