//! The embedding API: run a member with your own state machine from your own `main`
//! ([`Node`] → [`Running`]). A thin, documented layer over [`crate::run::node`], which the
//! `ordo` program uses directly.

use crate::run::member::MemberError;
use crate::run::node::{KEY_BYTES, run};
use ordo_core::machine::StateMachine;
use ordo_core::{IdleStrategy, NodeConfig, Threading};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

/// A member to start: its configuration (from its `ordo.toml`, or built in code), with the
/// runtime choices a program makes itself: idle strategy, threading, cores.
///
/// ```no_run
/// use ordo_service::{Context, IdleStrategy, Node, StateMachine};
///
/// /// Counts commands; replies with the count.
/// #[derive(Default)]
/// struct Count(u64);
///
/// impl StateMachine for Count {
///     fn apply(&mut self, ctx: &mut Context<'_>, _command: &[u8]) {
///         self.0 += 1;
///         ctx.reply(&self.0.to_le_bytes());
///     }
///     fn snapshot(&self, out: &mut Vec<u8>) {
///         out.extend_from_slice(&self.0.to_le_bytes());
///     }
///     fn restore(bytes: &[u8]) -> Result<Self, String> {
///         Ok(Count(u64::from_le_bytes(bytes.try_into().map_err(|_| "8 bytes expected")?)))
///     }
/// }
///
/// let member = Node::from_file("cluster/node-1/ordo.toml")?
///     .idle(IdleStrategy::Backoff)
///     .pin(1)
///     .start(Count::default())?;
/// println!("member {} listening on {}", member.member_id().0, member.address());
/// // … serve until told to stop …
/// member.stop()?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug)]
pub struct Node {
    config: NodeConfig,
}

impl Node {
    /// A member as its `ordo.toml` (written by `ordo init`) describes it; relative paths in
    /// the file are relative to its folder.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Node, NodeError> {
        Ok(Node { config: NodeConfig::load(path.as_ref())? })
    }

    /// A member from a configuration built in code ([`NodeConfig::new`]).
    pub fn from_config(config: NodeConfig) -> Node {
        Node { config }
    }

    /// What an idle duty cycle does (`runtime.idle`): [`IdleStrategy::BusySpin`] for the
    /// lowest latency on a core of its own, [`IdleStrategy::Backoff`] or
    /// [`IdleStrategy::Block`] where members share cores.
    pub fn idle(mut self, idle: IdleStrategy) -> Node {
        self.config.runtime.idle = idle;
        self
    }

    /// Whether the service (the apply loop) gets a thread of its own (`runtime.threading`).
    pub fn threading(mut self, threading: Threading) -> Node {
        self.config.runtime.threading = threading;
        self
    }

    /// Pins the member's thread (consensus and network I/O) to `core` (`runtime.core`).
    pub fn pin(mut self, core: usize) -> Node {
        self.config.runtime.core = Some(core);
        self
    }

    /// With [`Threading::Dedicated`], pins the service thread to `core`
    /// (`runtime.service_core`).
    pub fn pin_service(mut self, core: usize) -> Node {
        self.config.runtime.service_core = Some(core);
        self
    }

    /// The configuration it will start with.
    pub fn config(&self) -> &NodeConfig {
        &self.config
    }

    /// Marks this member's data folder as a new cluster's member (a vote file at term 0),
    /// as `ordo init` does; returns whether it did (a folder that has one is left as it is).
    /// Do it once, when the cluster is made: a member that starts without a vote file, a log
    /// or a snapshot is taken to have lost its state, and does not vote until it has caught
    /// up from a leader (so a cluster whose members all start that way never elects one).
    pub fn format(&self) -> Result<bool, NodeError> {
        crate::run::node::format(&self.config).map_err(|error| NodeError::Failed(Box::new(error)))
    }

    /// Opens the member with `machine` as its empty state (its newest snapshot and log
    /// replace it if it has them) and runs it on a thread of its own. Returns once the
    /// member is open, so a bad key, a damaged log or an address that cannot be bound is an
    /// error here, not later.
    pub fn start<M: StateMachine>(self, machine: M) -> Result<Running, NodeError> {
        start(self.config, machine)
    }
}

/// Why a member could not start, or how it stopped. Each message names what and where, and
/// what to do.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// The member's `ordo.toml` could not be read or is invalid.
    #[error(transparent)]
    Config(#[from] ordo_core::Error),
    /// The cluster key file is missing or malformed.
    #[error("cluster key {}: {reason}; every member needs the same key file (`ordo init` writes one)", path.display())]
    Key {
        /// The key file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    #[error(
        "member {member} cannot listen on {address} (its entry in `members` of ordo.toml): {source}; {}",
        bind_advice(source)
    )]
    /// The member's UDP address could not be bound.
    Bind {
        /// The member.
        member: u16,
        /// Its address, from the members list.
        address: std::net::SocketAddr,
        /// The kernel's reason.
        #[source]
        source: std::io::Error,
    },
    #[error(
        "cannot serve metrics on {address}: {source}; change metrics_addr in ordo.toml, or remove it to serve none"
    )]
    /// The metrics endpoint's TCP address could not be bound.
    Metrics {
        /// `metrics_addr` from the config.
        address: std::net::SocketAddr,
        /// The kernel's reason.
        #[source]
        source: std::io::Error,
    },
    /// The member failed while opening or running: its storage, a snapshot, the service.
    /// The message names the file or position and what to do.
    #[error(transparent)]
    Failed(Box<dyn std::error::Error + Send + Sync>),
    #[error("cannot start member {member}'s thread: {source}")]
    /// The member's thread could not be started.
    Thread {
        /// The member.
        member: u16,
        /// The operating system's reason.
        #[source]
        source: std::io::Error,
    },
    /// The member's thread panicked.
    #[error("member {member}'s thread panicked; see the log above")]
    Panicked {
        /// The member.
        member: u16,
    },
    /// The operating system gave no randomness (for election timeouts, keys).
    #[error("no randomness for the election timeouts: {0}")]
    Random(String),
}

impl From<MemberError> for NodeError {
    fn from(error: MemberError) -> Self {
        NodeError::Failed(Box::new(error))
    }
}

/// What to do about a socket that would not bind, by the reason the kernel gave.
fn bind_advice(error: &std::io::Error) -> &'static str {
    match error.kind() {
        std::io::ErrorKind::AddrInUse => {
            "another process is using it: stop that process or give this member another port"
        }
        std::io::ErrorKind::AddrNotAvailable => {
            "no interface of this host has that IP address: each member must list its own host's address (`ip -brief address` shows them)"
        }
        std::io::ErrorKind::PermissionDenied => "ports below 1024 need privileges: use a port of 1024 or above",
        _ => "check the address in ordo.toml",
    }
}

/// Reads a cluster key file: 64 hex digits (whitespace around them ignored).
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

/// Reads a client key file (`ID HEX` a line: `ordo init` writes `DIR/client.key`, and each
/// member's `client-keys` lists every key its clients may use); of several keys, the newest
/// (the highest id). A member's cluster key is refused: clients never hold it.
pub fn load_client_key(path: &Path) -> Result<ordo_transport::ClientKey, NodeError> {
    Ok(crate::run::node::load_client_key_file(path)?.0)
}

/// A member running on a thread of its own: what a service embedding ordo holds (see
/// [`Node::start`]). Dropping it stops the member cleanly, as [`Running::stop`] does.
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
/// [`Node::start`] is the way in for programs; this is what it calls.
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
    /// The member's id.
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
