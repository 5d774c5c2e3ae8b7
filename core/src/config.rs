//! Configuration types. This is the one place defaults live; every field is documented.
//! A member reads a [`NodeConfig`] from its `ordo.toml`; the log takes the [`LogConfig`]
//! part of it.

use crate::entry::entry_span_bytes;
use crate::error::Error;
use crate::ids::{ClusterId, MemberId};
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// When an appended entry counts as durable.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Durability {
    /// Group commit: one `fdatasync` covers every append since the last one, and the durable
    /// position is published only after it returns. Survives power loss on this member.
    #[default]
    Fsync,
    /// No sync on the append path: durable once in the page cache of a majority (Aeron
    /// Cluster's default). Survives process crashes, not a power loss of a majority.
    Replicated,
}

impl Durability {
    /// Its name in `ordo.toml`.
    pub const fn name(self) -> &'static str {
        match self {
            Durability::Fsync => "fsync",
            Durability::Replicated => "replicated",
        }
    }
}

/// `log.segment_bytes` unless set.
pub const SEGMENT_BYTES_DEFAULT: u64 = 64 * 1024 * 1024;
/// The smallest `log.segment_bytes`.
pub const SEGMENT_BYTES_MIN: u64 = 64 * 1024;
/// The largest `log.segment_bytes`.
pub const SEGMENT_BYTES_MAX: u64 = 1024 * 1024 * 1024;
/// `log.entry_payload_bytes_max` unless set.
pub const ENTRY_PAYLOAD_BYTES_MAX_DEFAULT: u32 = 1024 * 1024;

/// The log's part of the configuration.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// Written into every segment header; a segment from another cluster is refused.
    pub cluster_id: ClusterId,
    /// Size of each preallocated segment file's data area: a power of two between 64 KiB
    /// and 1 GiB (so positions split into segment and offset with a mask, as Aeron's term
    /// lengths do); the same on every member, since logs are byte-identical.
    pub segment_bytes: u64,
    /// When an append counts as durable.
    pub durability: Durability,
    /// Largest payload one entry may carry; its entry must fit in one segment.
    pub entry_payload_bytes_max: u32,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            cluster_id: ClusterId(0),
            segment_bytes: SEGMENT_BYTES_DEFAULT,
            durability: Durability::Fsync,
            entry_payload_bytes_max: ENTRY_PAYLOAD_BYTES_MAX_DEFAULT,
        }
    }
}

impl LogConfig {
    /// The configuration of a member's event log: this log's, without an fsync per append
    /// (events are derived state, synced before each snapshot).
    pub fn for_events(&self) -> LogConfig {
        LogConfig { durability: Durability::Replicated, ..self.clone() }
    }

    /// Checks the limits; the message names the field and the allowed range.
    pub fn validate(&self) -> Result<(), String> {
        if !self.segment_bytes.is_multiple_of(4096)
            || !(SEGMENT_BYTES_MIN..=SEGMENT_BYTES_MAX).contains(&self.segment_bytes)
        {
            return Err(format!(
                "log.segment_bytes is {}, it must be a multiple of 4096 between {SEGMENT_BYTES_MIN} and {SEGMENT_BYTES_MAX}",
                self.segment_bytes
            ));
        }
        if entry_span_bytes(self.entry_payload_bytes_max as usize) > self.segment_bytes {
            return Err(format!(
                "log.entry_payload_bytes_max is {}, an entry that large does not fit in a segment of {} bytes",
                self.entry_payload_bytes_max, self.segment_bytes
            ));
        }
        Ok(())
    }
}

/// How frames are protected on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Security {
    /// A 16-byte keyed-BLAKE3 tag on every frame: authenticated, not hidden.
    #[default]
    Mac,
    /// AES-256-GCM: frame bodies encrypted, the header authenticated.
    Aead,
}

/// Which datagram backend carries the frames.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum TransportBackend {
    /// Non-blocking sockets with sendmmsg/recvmmsg: measured faster here (ARCHITECTURE.md).
    #[default]
    Std,
    /// io_uring; falls back to `std`, saying so, where the kernel refuses it.
    IoUring,
}

/// The transport's part of the configuration.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TransportConfig {
    /// Which datagram backend carries the frames.
    pub backend: TransportBackend,
    /// How frames are protected: the same on every member and client.
    pub security: Security,
    /// UDP payload bytes per datagram, frame header and tag included.
    pub mtu_bytes: usize,
    /// A leader never streams more than this far ahead of a follower's acknowledged position.
    pub window_bytes: u64,
    /// Resend from the last ack when acks stall this long with bytes outstanding.
    pub retransmit_timeout_ms: u64,
    /// The same NAK is not repeated more often than this.
    pub nak_interval_us: u64,
    /// Testing only: this member's outgoing datagrams are lost, duplicated, reordered and
    /// delayed on purpose (ordo's `FaultyNet`), for fault tests without root.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub faults: Option<NetFaults>,
}

/// Deliberate network faults (`[transport.faults]`), per thousand datagrams.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct NetFaults {
    /// Datagrams dropped.
    pub loss_per_mille: u32,
    /// Datagrams sent twice.
    pub duplicate_per_mille: u32,
    /// Datagrams held back behind later ones.
    pub reorder_per_mille: u32,
    /// A reordered datagram is held back up to this long.
    pub reorder_delay_us: u64,
    /// Every datagram is held back up to this long.
    pub jitter_us: u64,
    /// The fault dice's seed (each member mixes in its id).
    pub seed: u64,
}

impl Default for TransportConfig {
    fn default() -> Self {
        TransportConfig {
            backend: TransportBackend::Std,
            security: Security::Mac,
            mtu_bytes: 1408,
            window_bytes: 4 << 20,
            retransmit_timeout_ms: 20,
            nak_interval_us: 2000,
            faults: None,
        }
    }
}

impl TransportConfig {
    /// Checks the limits; the message names the field and the allowed range.
    pub fn validate(&self, entry_payload_bytes_max: u32) -> Result<(), String> {
        if !(256..=65000).contains(&self.mtu_bytes) {
            return Err(format!("transport.mtu_bytes is {}, it must be between 256 and 65000", self.mtu_bytes));
        }
        let entry_span = entry_span_bytes(entry_payload_bytes_max as usize);
        if self.window_bytes < entry_span {
            return Err(format!(
                "transport.window_bytes is {}, it must hold at least one largest entry ({entry_span} bytes)",
                self.window_bytes
            ));
        }
        if self.retransmit_timeout_ms == 0 {
            return Err("transport.retransmit_timeout_ms must be at least 1".to_string());
        }
        if let Some(faults) = &self.faults {
            let rates = [faults.loss_per_mille, faults.duplicate_per_mille, faults.reorder_per_mille];
            if rates.iter().any(|&rate| rate > 1000) {
                return Err("transport.faults rates are per thousand: 0 to 1000".to_string());
            }
        }
        Ok(())
    }
}

/// The consensus part of the configuration: timing, sessions, snapshot transfer limits.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ConsensusSettings {
    /// A follower that hears no leader for this long (randomized up to twice it) starts an
    /// election; a leader that hears no majority for this long steps down.
    pub election_timeout_ms: u64,
    /// The leader's heartbeat; well under the election timeout.
    pub heartbeat_interval_ms: u64,
    /// Client sessions idle this long are closed by the leader.
    pub session_timeout_ms: u64,
    /// The largest snapshot a follower accepts from its leader.
    pub snapshot_bytes_max: u64,
}

impl Default for ConsensusSettings {
    fn default() -> Self {
        ConsensusSettings {
            election_timeout_ms: 300,
            heartbeat_interval_ms: 20,
            session_timeout_ms: 10_000,
            snapshot_bytes_max: 1 << 30,
        }
    }
}

impl ConsensusSettings {
    /// Checks the limits; the message names the field and the allowed range.
    pub fn validate(&self) -> Result<(), String> {
        if self.heartbeat_interval_ms == 0 || self.heartbeat_interval_ms * 3 > self.election_timeout_ms {
            return Err(format!(
                "consensus.heartbeat_interval_ms is {}, it must be at least 1 and at most a third of consensus.election_timeout_ms ({})",
                self.heartbeat_interval_ms, self.election_timeout_ms
            ));
        }
        if self.session_timeout_ms < self.election_timeout_ms {
            return Err(format!(
                "consensus.session_timeout_ms is {}, it must be at least consensus.election_timeout_ms ({}) so a failover does not close every session",
                self.session_timeout_ms, self.election_timeout_ms
            ));
        }
        Ok(())
    }
}

/// When members snapshot and how many snapshots they keep.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SnapshotSettings {
    /// The leader asks every member to snapshot each time the log grows this much (0: only
    /// when asked, by `ordo snapshot take`).
    pub interval_bytes: u64,
    /// Snapshots kept; the log below the oldest is deleted.
    pub kept: usize,
}

impl Default for SnapshotSettings {
    fn default() -> Self {
        SnapshotSettings { interval_bytes: 256 << 20, kept: 2 }
    }
}

/// How a member's work is put on threads.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Threading {
    /// Every agent of the member on one thread: small machines and tests.
    #[default]
    Shared,
    /// The service (the apply loop) on a thread of its own beside consensus and I/O.
    Dedicated,
}

/// The member's threads.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct RuntimeSettings {
    /// How the member's agents are put on threads.
    pub threading: Threading,
    /// What an idle duty cycle does: `busy-spin`, `yield`, `backoff` or `sleep`.
    pub idle: crate::idle::IdleStrategy,
    /// Pin the member's thread to this core (none: the scheduler places it).
    pub core: Option<usize>,
    /// With `dedicated` threading, pin the service thread to this core.
    pub service_core: Option<usize>,
}

/// One member of the cluster as every member's config lists it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MemberConfig {
    /// Its id, 1 or more, unique in the cluster.
    pub id: MemberId,
    /// UDP address the member's consensus and client traffic arrives on.
    pub address: SocketAddr,
}

/// A member's `ordo.toml`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeConfig {
    /// This member's id; must be one of `members`.
    pub member_id: MemberId,
    /// Where the log, snapshots, metadata and counters live. Relative paths are relative to
    /// the config file's folder.
    pub data_dir: PathBuf,
    /// The state machine this cluster runs (`ledger`, `mutex`, `kv`, `airlock`, `book`).
    #[serde(default = "default_app")]
    pub app: String,
    /// File holding the cluster key (hex), relative like `data_dir`. Members only: the key
    /// elections and the log stream travel under.
    #[serde(default = "default_key_file")]
    pub key_file: PathBuf,
    /// File of the client keys this member accepts clients under, one `ID HEX` a line,
    /// relative like `data_dir`; re-read when it changes, so keys are added and retired
    /// without a restart. Missing: no client is accepted until it appears.
    #[serde(default = "default_client_keys_file")]
    pub client_keys_file: PathBuf,
    /// Where to serve the counters as Prometheus text (`GET /metrics`); off when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metrics_addr: Option<SocketAddr>,
    /// Every member, this one included; 1, 3 or 5 members.
    pub members: Vec<MemberConfig>,
    /// `[log]`: cluster id, segment size, durability, largest entry.
    #[serde(default)]
    pub log: LogConfig,
    /// `[transport]`: backend, security, MTU, flow control.
    #[serde(default)]
    pub transport: TransportConfig,
    /// `[consensus]`: election and heartbeat timing, sessions.
    #[serde(default)]
    pub consensus: ConsensusSettings,
    /// `[snapshot]`: how often, how many kept.
    #[serde(default)]
    pub snapshot: SnapshotSettings,
    /// `[runtime]`: threads, idle strategy, cores.
    #[serde(default)]
    pub runtime: RuntimeSettings,
}

fn default_app() -> String {
    "ledger".to_string()
}

fn default_key_file() -> PathBuf {
    PathBuf::from("cluster.key")
}

fn default_client_keys_file() -> PathBuf {
    PathBuf::from("client-keys")
}

impl NodeConfig {
    /// Member `member_id` of a cluster of `members` whose files are in `data_dir`, with
    /// every other setting at its default.
    pub fn new(member_id: MemberId, data_dir: PathBuf, app: &str, members: Vec<MemberConfig>, log: LogConfig) -> Self {
        NodeConfig {
            member_id,
            data_dir,
            app: app.to_string(),
            key_file: default_key_file(),
            client_keys_file: default_client_keys_file(),
            metrics_addr: None,
            members,
            log,
            transport: TransportConfig::default(),
            consensus: ConsensusSettings::default(),
            snapshot: SnapshotSettings::default(),
            runtime: RuntimeSettings::default(),
        }
    }

    /// Members 1, 2, … at `addresses`, in order.
    pub fn members_at(addresses: &[SocketAddr]) -> Vec<MemberConfig> {
        (1..).zip(addresses).map(|(id, &address)| MemberConfig { id: MemberId(id), address }).collect()
    }

    /// Reads, parses and validates `path`; relative paths in it are resolved against the
    /// file's folder.
    pub fn load(path: &Path) -> Result<NodeConfig, Error> {
        let text =
            std::fs::read_to_string(path).map_err(|source| Error::ConfigRead { path: path.to_path_buf(), source })?;
        let mut config = NodeConfig::parse(&text, path)?;
        let base = path.parent().unwrap_or(Path::new("."));
        config.data_dir = base.join(&config.data_dir);
        config.key_file = base.join(&config.key_file);
        config.client_keys_file = base.join(&config.client_keys_file);
        Ok(config)
    }

    /// Parses and validates TOML text; `path` is only used in error messages.
    pub fn parse(text: &str, path: &Path) -> Result<NodeConfig, Error> {
        let bad = |message: String| Error::Config { path: path.to_path_buf(), message };
        let config: NodeConfig = toml::from_str(text).map_err(|e| {
            // Name the line, and show it: "line 12 (`segment_bytes = "big"`): invalid type …".
            let line = e.span().map(|span| {
                let number = text[..span.start.min(text.len())].matches('\n').count() + 1;
                let shown = text.lines().nth(number - 1).unwrap_or("").trim();
                format!("line {number} (`{shown}`): ")
            });
            bad(format!("{}{}", line.unwrap_or_default(), e.message()))
        })?;
        config.validate().map_err(bad)?;
        Ok(config)
    }

    /// The config as `ordo.toml` text (what `ordo init` writes).
    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).expect("a NodeConfig always serializes")
    }

    fn validate(&self) -> Result<(), String> {
        if ![1, 3, 5].contains(&self.members.len()) {
            return Err(format!("members lists {} members, a cluster has 1, 3 or 5", self.members.len()));
        }
        let mut ids: Vec<u16> = self.members.iter().map(|m| m.id.0).collect();
        ids.sort_unstable();
        ids.dedup();
        if ids.len() != self.members.len() || ids.contains(&0) {
            return Err("members must have distinct ids of 1 or more".to_string());
        }
        if !ids.contains(&self.member_id.0) {
            return Err(format!("member_id {} is not one of the members' ids {ids:?}", self.member_id.0));
        }
        if self.snapshot.kept == 0 {
            return Err("snapshot.kept is 0, it must be at least 1".to_string());
        }
        self.log.validate()?;
        self.consensus.validate()?;
        self.transport.validate(self.log.entry_payload_bytes_max)
    }

    /// The cluster's id (`log.cluster_id`).
    pub fn cluster_id(&self) -> ClusterId {
        self.log.cluster_id
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
member_id = 2
data_dir = "data"

[[members]]
id = 1
address = "127.0.0.1:9001"

[[members]]
id = 2
address = "127.0.0.1:9002"

[[members]]
id = 3
address = "127.0.0.1:9003"

[log]
cluster_id = 77
segment_bytes = 4194304
durability = "replicated"

[transport]
security = "aead"
backend = "io_uring"

[snapshot]
interval_bytes = 1048576

[runtime]
idle = "busy-spin"
core = 1
"#;

    fn parse(text: &str) -> Result<NodeConfig, Error> {
        NodeConfig::parse(text, Path::new("node-2/ordo.toml"))
    }

    #[test]
    fn a_good_config_parses_with_defaults_filled_in() {
        let config = parse(GOOD).unwrap();
        assert_eq!(config.member_id, MemberId(2));
        assert_eq!(config.app, "ledger");
        assert_eq!(config.log.durability, Durability::Replicated);
        assert_eq!(config.log.segment_bytes, 4 << 20);
        assert_eq!(config.log.entry_payload_bytes_max, ENTRY_PAYLOAD_BYTES_MAX_DEFAULT);
        assert_eq!(config.cluster_id(), ClusterId(77));
        assert_eq!((config.transport.security, config.transport.backend), (Security::Aead, TransportBackend::IoUring));
        assert_eq!(config.transport.mtu_bytes, 1408);
        assert_eq!((config.snapshot.interval_bytes, config.snapshot.kept), (1 << 20, 2));
        assert_eq!((config.runtime.idle, config.runtime.core), (crate::idle::IdleStrategy::BusySpin, Some(1)));
        assert_eq!(config.consensus, ConsensusSettings::default());
    }

    #[test]
    fn config_round_trips_through_toml() {
        let config = parse(GOOD).unwrap();
        assert_eq!(parse(&config.to_toml()).unwrap(), config);
    }

    #[test]
    fn errors_name_the_file_and_the_field() {
        let message = parse(&GOOD.replace("member_id = 2", "member_id = 9")).unwrap_err().to_string();
        assert!(message.contains("node-2/ordo.toml") && message.contains("member_id 9"), "{message}");

        let message = parse(&GOOD.replace("4194304", "1000")).unwrap_err().to_string();
        assert!(message.contains("log.segment_bytes is 1000"), "{message}");

        let message = parse(&GOOD.replace("replicated", "sometimes")).unwrap_err().to_string();
        assert!(message.contains("sometimes"), "{message}");

        let message = parse(&GOOD.replace("\"aead\"", "\"rot13\"")).unwrap_err().to_string();
        assert!(message.contains("rot13"), "{message}");

        let message = parse(&format!("{GOOD}\n[consensus]\nheartbeat_interval_ms = 500")).unwrap_err().to_string();
        assert!(message.contains("consensus.heartbeat_interval_ms is 500"), "{message}");

        let message = parse(&format!("{GOOD}\nsegmnet_bytes = 4")).unwrap_err().to_string();
        assert!(message.contains("segmnet_bytes"), "a misspelt field is refused: {message}");

        // A parse error names the line and shows it.
        let bad = GOOD.replace("4194304", "\"big\"");
        let line = bad.lines().position(|l| l.contains("\"big\"")).unwrap() + 1;
        let message = parse(&bad).unwrap_err().to_string();
        assert!(message.contains(&format!("line {line} (`segment_bytes = \"big\"`)")), "{message}");
    }

    #[test]
    fn an_entry_larger_than_a_segment_is_refused() {
        let config = LogConfig { segment_bytes: 65536, entry_payload_bytes_max: 65536, ..LogConfig::default() };
        assert!(config.validate().unwrap_err().contains("entry_payload_bytes_max"));
    }
}
