//! Helpers shared by the member and client tests: a three-member cluster's configuration on
//! loopback ports reserved for the test.
#![allow(dead_code)]

use ordo_core::machine::StateMachine;
use ordo_core::{
    ClusterId, ConsensusSettings, Durability, LogConfig, MemberId, NodeConfig, Security, SnapshotSettings,
};
use ordo_service::machinery::echo::Echo;
use ordo_service::machinery::member::{Member, MemberConfig, Opened};
use ordo_transport::backend::StdUdp;
use ordo_transport::{ClientKey, Endpoint, FrameCodec, FrameKey, KeyRing};
use std::net::SocketAddr;
use std::path::Path;

pub const KEY: [u8; 32] = [3; 32];
/// The test clients' key (members hold it in their client-keys file; never the cluster key).
pub const CLIENT_KEY: ClientKey = ClientKey { id: 1, secret: [4; 32] };

pub const CLUSTER: ClusterId = ClusterId(21);
pub const MS: u64 = 1_000_000;

pub fn log_config() -> LogConfig {
    LogConfig {
        cluster_id: CLUSTER,
        segment_bytes: 1 << 20,
        durability: Durability::Fsync,
        entry_payload_bytes_max: 16 * 1024,
    }
}

pub fn open_member(id: u16, dir: &Path, addresses: &[SocketAddr], now_ns: u64) -> Member<Echo> {
    open_member_with(id, dir, addresses, now_ns, Echo::default(), |_| {}).0
}

pub fn open_member_with<M: StateMachine>(
    id: u16,
    dir: &Path,
    addresses: &[SocketAddr],
    now_ns: u64,
    machine: M,
    tweak: impl Fn(&mut MemberConfig),
) -> (Member<M>, Opened) {
    let net = StdUdp::bind(addresses[id as usize - 1], 1408).unwrap();
    let codec = FrameCodec::new(CLUSTER, MemberId(id), Security::Mac, KeyRing::new(FrameKey::new(&KEY)), 1408);
    let mut config = ordo_service::machinery::node::member_config(&node_config(id, dir, addresses)).unwrap();
    let client_keys = dir.join("client-keys");
    std::fs::write(&client_keys, CLIENT_KEY.to_line()).unwrap();
    config.client_keys_file = Some(client_keys);
    tweak(&mut config);
    Member::open(machine, &config, Endpoint::new(Box::new(net), codec), now_ns).unwrap()
}

/// Member `id`'s `ordo.toml`, as the node driver would read it: quick elections for tests.
pub fn node_config(id: u16, dir: &Path, addresses: &[SocketAddr]) -> NodeConfig {
    let members = NodeConfig::members_at(addresses);
    NodeConfig {
        consensus: ConsensusSettings { election_timeout_ms: 150, ..ConsensusSettings::default() },
        snapshot: SnapshotSettings { interval_bytes: 0, kept: 2 },
        ..NodeConfig::new(MemberId(id), dir.to_path_buf(), "echo", members, log_config())
    }
}

pub fn reserve_addresses() -> Vec<SocketAddr> {
    (0..3).map(|_| std::net::UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap()).collect()
}

/// Three member folders of a new cluster, formatted as `ordo init` formats them (a member
/// started on an unformatted, empty folder takes itself for one that lost its state).
pub fn fresh_dirs() -> Vec<tempfile::TempDir> {
    (0..3)
        .map(|_| {
            let dir = tempfile::tempdir().unwrap();
            ordo_log::VoteStore::new(dir.path(), CLUSTER).format().unwrap();
            dir
        })
        .collect()
}
