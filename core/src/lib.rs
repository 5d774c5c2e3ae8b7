//! `ordo-core` is the vocabulary every other ordo crate speaks: ids and positions as
//! newtypes, the fixed little-endian log entry header and its chained CRC32C checksum,
//! configuration types, and the error type whose messages say what, where and what to do.
//!
//! It does no I/O and knows nothing of files, sockets, elections or state machines: it is
//! pure data and pure functions, so the log, the transport, consensus and the simulator
//! can all share it.

#![forbid(unsafe_code)]

pub mod checksum;
pub mod config;
pub mod entry;
pub mod error;
pub mod idle;
pub mod ids;
pub mod machine;
pub mod source;

pub use checksum::entry_checksum;
pub use config::{
    ConsensusSettings, Durability, LogConfig, MemberConfig, NetFaults, NodeConfig, RuntimeSettings, Security,
    SnapshotSettings, Threading, TransportBackend, TransportConfig,
};
pub use entry::{EntryHeader, EntryKind, EntryMeta, EntryView, HEADER_BYTES};
pub use error::Error;
pub use idle::{IdleStrategy, Idler};
pub use ids::{ClusterId, ClusterTimeNs, MemberId, Position, SessionId, Term, align32};
pub use machine::{Context, StateMachine, TimerRequest};
pub use source::LogSource;
