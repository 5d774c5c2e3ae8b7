//! The cluster a client-side command (`client`, `describe`, `bench`) talks to: named by the
//! folder `ordo init` wrote (`--dir`), or by its addresses and client key file
//! (`--cluster HOST:PORT,… --key-file FILE`, for a cluster on other hosts). The client key
//! file names the cluster (a line `cluster ID`), so nothing else is needed.

use crate::Failure;
use ordo_core::NodeConfig;
use ordo_service::{Client, ClientConfig};
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};

/// The `--dir | --cluster --key-file [--app]` flags, as clap fills them.
#[derive(clap::Args, Clone, Debug, Default)]
pub struct TargetArgs {
    /// The cluster folder `ordo init` made (or one member's folder).
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// The members' addresses, HOST:PORT,HOST:PORT,… (instead of --dir).
    #[arg(long, value_delimiter = ',', requires = "key_file", conflicts_with = "dir")]
    pub cluster: Vec<String>,
    /// The client key file (`ordo init` writes DIR/client.key), with --cluster.
    #[arg(long)]
    pub key_file: Option<PathBuf>,
}

#[derive(Clone, Debug)]
pub struct Target {
    /// Addresses, cluster id, key, and (from the members' config) security and MTU.
    pub config: ClientConfig,
    /// The app, from the members' config (`--dir`), else as the caller was told.
    pub app: Option<String>,
    /// The cluster folder, when named by one.
    pub dir: Option<PathBuf>,
}

impl Target {
    /// The cluster a member's config names: what its clients need, and its app.
    pub fn of_node(node: &NodeConfig, dir: Option<PathBuf>) -> Result<Target, Failure> {
        Ok(Target { config: ClientConfig::of_node(node)?, app: Some(node.app.clone()), dir })
    }

    /// The members' addresses.
    pub fn addresses(&self) -> &[SocketAddr] {
        &self.config.members
    }

    pub fn client(&self) -> Result<Client, Failure> {
        Ok(Client::new(self.config.clone())?)
    }
}

/// The cluster a `--dir` names: a cluster folder (its `node-1/ordo.toml`) or a member's.
pub fn cluster_config(dir: &Path) -> Result<NodeConfig, Failure> {
    let member = dir.join("ordo.toml");
    let first = dir.join("node-1").join("ordo.toml");
    let path = if member.exists() { member } else { first };
    if !path.exists() {
        return Err(Failure(format!(
            "{} holds no cluster (no node-1/ordo.toml): run `ordo init` first",
            dir.display()
        )));
    }
    Ok(NodeConfig::load(&path)?)
}

fn address(text: &str) -> Result<SocketAddr, Failure> {
    let bad = |why: String| Failure(format!("--cluster address {text:?} {why}; give HOST:PORT,HOST:PORT,…"));
    let mut found = text.to_socket_addrs().map_err(|e| bad(format!("does not resolve ({e})")))?;
    found.next().ok_or_else(|| bad("resolves to no address".into()))
}

/// Resolves the flags to a cluster; exactly one of `--dir` and `--cluster` must be given.
pub fn resolve(args: &TargetArgs) -> Result<Target, Failure> {
    match (&args.dir, args.cluster.is_empty()) {
        (Some(dir), true) => Target::of_node(&cluster_config(dir)?, Some(dir.clone())),
        (None, false) => {
            let key_file = args.key_file.as_ref().ok_or_else(|| Failure("--cluster needs --key-file".into()))?;
            let (key, cluster_id) = ordo_service::machinery::node::load_client_key_file(key_file)?;
            let cluster_id = cluster_id.ok_or_else(|| {
                Failure(format!(
                    "{} names no cluster (a line `cluster ID`, which `ordo init` writes in DIR/client.key)",
                    key_file.display()
                ))
            })?;
            let addresses = args.cluster.iter().map(|a| address(a)).collect::<Result<Vec<_>, _>>()?;
            let config = ClientConfig::new(addresses, cluster_id, key);
            Ok(Target { config, app: None, dir: None })
        }
        (Some(_), false) => Err(Failure("give --dir or --cluster, not both".into())),
        (None, true) => Err(Failure("name the cluster: --dir DIR, or --cluster HOST:PORT,… with --key-file".into())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cluster_is_named_by_its_folder_or_by_addresses_and_key() {
        let dir = tempfile::tempdir().unwrap();
        let init = crate::init::Init {
            dir: dir.path().into(),
            members: 3,
            base_port: 19100,
            app: "kv".into(),
            durability: ordo_core::Durability::Fsync,
            hosts: Vec::new(),
        };
        crate::init::init(&init).unwrap();
        let by_dir = resolve(&TargetArgs { dir: Some(dir.path().into()), ..Default::default() }).unwrap();
        assert_eq!(by_dir.app.as_deref(), Some("kv"));
        let by_addresses = resolve(&TargetArgs {
            cluster: vec!["127.0.0.1:19101".into(), "127.0.0.1:19102".into(), "localhost:19103".into()],
            key_file: Some(dir.path().join("client.key")),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(
            (by_addresses.config.cluster_id, by_addresses.config.key),
            (by_dir.config.cluster_id, by_dir.config.key)
        );
        assert_eq!(by_addresses.addresses(), by_dir.addresses());
        // The members' transport settings reach their clients (an `aead` cluster refuses `mac`).
        let mut node = cluster_config(dir.path()).unwrap();
        node.transport.security = ordo_core::Security::Aead;
        node.transport.mtu_bytes = 1200;
        let target = Target::of_node(&node, None).unwrap();
        assert_eq!((target.config.security, target.config.mtu_bytes), (ordo_core::Security::Aead, 1200));

        let no_key = resolve(&TargetArgs { cluster: vec!["127.0.0.1:1".into()], ..Default::default() });
        assert!(no_key.unwrap_err().0.contains("--key-file"));
        let bad = resolve(&TargetArgs {
            cluster: vec!["127.0.0.1".into()],
            key_file: Some(dir.path().join("client.key")),
            ..Default::default()
        });
        assert!(bad.unwrap_err().0.contains("\"127.0.0.1\""));
        assert!(resolve(&TargetArgs::default()).unwrap_err().0.contains("--dir"));
    }
}
