//! `ordo init`: a cluster's folders, one `ordo.toml` and key file per member; on loopback,
//! or on the hosts given (`--hosts`: copy `node-I` to host I).

use crate::Failure;
use ordo_core::{Durability, LogConfig, MemberId, NodeConfig};
use std::path::{Path, PathBuf};

#[derive(Clone, Debug)]
pub struct Init {
    pub dir: PathBuf,
    pub members: u16,
    pub base_port: u16,
    pub app: String,
    pub durability: Durability,
    /// Member I's IP address is the I-th; none: every member on loopback.
    pub hosts: Vec<std::net::IpAddr>,
}

/// The config file of member `id` in a cluster folder.
pub fn config_path(dir: &Path, id: u16) -> PathBuf {
    dir.join(format!("node-{id}")).join("ordo.toml")
}

/// Writes `DIR/node-1 … node-N`, each with `ordo.toml` and the cluster key; refuses to touch
/// an existing cluster. Returns the config paths.
pub fn init(init: &Init) -> Result<Vec<PathBuf>, Failure> {
    // Any app name: a service of your own runs its members with its own program (see
    // examples/auction); `ordo node` runs only the apps built into it.
    if init.app.is_empty() || !init.app.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') {
        return Err(Failure(format!("--app {:?} is not an app name (letters, digits, - and _)", init.app)));
    }
    if ![1, 3, 5].contains(&init.members) {
        return Err(Failure(format!("--members is {}, a cluster has 1, 3 or 5 members", init.members)));
    }
    if !init.hosts.is_empty() && init.hosts.len() != init.members as usize {
        return Err(Failure(format!(
            "--hosts lists {} addresses for {} members: give one IP address a member, in member order",
            init.hosts.len(),
            init.members
        )));
    }
    if init.dir.join("node-1").exists() {
        return Err(Failure(format!(
            "{} already holds a cluster (node-1 exists); use another --dir or delete it first",
            init.dir.display()
        )));
    }
    let host = |id: u16| init.hosts.get(id as usize - 1).copied().unwrap_or(std::net::Ipv4Addr::LOCALHOST.into());
    let addresses: Vec<std::net::SocketAddr> =
        (1..=init.members).map(|id| (host(id), init.base_port + id).into()).collect();
    let members = NodeConfig::members_at(&addresses);
    let mut key = None;
    let mut paths = Vec::new();
    for id in 1..=init.members {
        let node_dir = init.dir.join(format!("node-{id}"));
        std::fs::create_dir_all(&node_dir)
            .map_err(|e| Failure(format!("cannot create {}: {e}", node_dir.display())))?;
        let key_path = node_dir.join("cluster.key");
        let key = match key {
            None => *key.insert(ordo_service::machinery::node::write_key(&key_path)?),
            Some(key) => {
                ordo_service::machinery::node::write_key_bytes(&key_path, &key)?;
                key
            }
        };
        let log = LogConfig {
            cluster_id: ordo_service::machinery::node::cluster_id_of_key(&key),
            segment_bytes: 16 << 20,
            durability: init.durability,
            ..LogConfig::default()
        };
        let config = NodeConfig {
            snapshot: ordo_core::SnapshotSettings { interval_bytes: 4 << 20, kept: 2 },
            ..NodeConfig::new(MemberId(id), PathBuf::from("data"), &init.app, members.clone(), log)
        };
        let path = config_path(&init.dir, id);
        std::fs::write(&path, config.to_toml())
            .map_err(|e| Failure(format!("cannot write {}: {e}", path.display())))?;
        // A new member: without this, it would take itself for one that lost its state.
        ordo_log::VoteStore::new(&node_dir.join("data"), config.log.cluster_id)
            .format()
            .map_err(|e| Failure(e.to_string()))?;
        paths.push(path);
    }
    // The clients' own key: members accept clients under it, never under the cluster key.
    let cluster_id = ordo_service::machinery::node::cluster_id_of_key(&key.expect("one member at least"));
    let member_files: Vec<PathBuf> =
        (1..=init.members).map(|id| init.dir.join(format!("node-{id}/client-keys"))).collect();
    ordo_service::machinery::node::write_client_keys(&init.dir.join("client.key"), cluster_id, &member_files)?;
    Ok(paths)
}

/// A base port whose next three ports are free on loopback, from a random start (for a
/// cluster made for one run: `ordo demo`, `ordo bench --members 3`).
pub fn free_base_port() -> Result<u16, Failure> {
    for _ in 0..100 {
        let mut bytes = [0u8; 2];
        getrandom::fill(&mut bytes).map_err(|e| Failure(format!("no randomness: {e}")))?;
        // Below 20 000: clear of the kernel's ephemeral ports (32 768 up) and of the fixed
        // bases tests choose (20 000 to 32 000).
        let base = 10_000 + u16::from_le_bytes(bytes) % 10_000;
        // The members' ports (UDP, +1..=3) and the peers' (TCP, +1..=3 and +11..=13).
        let free = (1..=13).all(|i| {
            std::net::UdpSocket::bind(("127.0.0.1", base + i)).is_ok()
                && std::net::TcpListener::bind(("127.0.0.1", base + i)).is_ok()
        });
        if free {
            return Ok(base);
        }
    }
    Err(Failure("found no free ports on loopback; pass --dir of an initialised cluster".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn init_writes_loadable_configs_with_one_key_and_refuses_to_overwrite() {
        let dir = tempfile::tempdir().unwrap();
        let init = Init {
            dir: dir.path().into(),
            members: 3,
            base_port: 19000,
            app: "echo".into(),
            durability: Durability::Fsync,
            hosts: Vec::new(),
        };
        let paths = super::init(&init).unwrap();
        let configs: Vec<NodeConfig> = paths.iter().map(|p| NodeConfig::load(p).unwrap()).collect();
        assert_eq!(configs[2].members[2].address.port(), 19003);
        let keys: Vec<_> =
            configs.iter().map(|c| ordo_service::machinery::node::load_key(&c.key_file).unwrap()).collect();
        assert!(keys.windows(2).all(|w| w[0] == w[1]), "one cluster key");
        assert_eq!(configs[0].cluster_id(), configs[1].cluster_id());
        assert_eq!(
            configs[0].cluster_id(),
            ordo_service::machinery::node::cluster_id_of_key(&keys[0]),
            "known from the key"
        );
        let again = super::init(&init).expect_err("an existing cluster is refused");
        assert!(again.0.contains("already holds a cluster"), "{}", again.0);
        let hosts = vec!["10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap()];
        let bad = super::init(&Init { hosts, ..init.clone() }).expect_err("2 hosts, 3 members");
        assert!(bad.0.contains("--hosts lists 2 addresses for 3 members"), "{}", bad.0);
        let bad = super::init(&Init { app: "chess!".into(), ..init }).expect_err("a bad app name is refused");
        assert!(bad.0.contains("chess!"), "{}", bad.0);
    }
}
