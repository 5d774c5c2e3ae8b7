//! `ordo-core`: the vocabulary every ordo crate speaks, and what a state machine is
//! written against.
//!
//! - [`StateMachine`] and its [`Context`] (the cluster time, replies, events, timers):
//!   what you implement to run your logic on an ordo cluster (see [`machine`]).
//! - [`NodeConfig`] and its parts: a member's `ordo.toml`, every field documented with its
//!   default; [`IdleStrategy`] for the duty-cycle loops.
//! - Ids and positions as newtypes ([`Position`], [`ClusterTimeNs`], [`SessionId`], …)
//!   and the [`Error`] whose messages say what, where and what to do.
//!
//! It does no I/O: pure data and pure functions, so the log, the transport, consensus and
//! the simulator share it. (The log entry codec and its checksums live here too, hidden
//! from these docs: they are the other crates' business, not a state machine's.) To run a
//! member or a client, see the `ordo-service` crate.

#![forbid(unsafe_code)]
#![deny(missing_docs)]

#[doc(hidden)]
pub mod checksum;
pub mod config;
#[doc(hidden)]
pub mod entry;
pub mod error;
pub mod idle;
pub mod ids;
pub mod machine;
#[doc(hidden)]
pub mod source;

#[doc(hidden)]
pub use checksum::entry_checksum;
pub use config::{
    ConsensusSettings, Durability, LogConfig, MemberConfig, NetFaults, NodeConfig, RuntimeSettings, Security,
    SnapshotSettings, Threading, TransportBackend, TransportConfig,
};
#[doc(hidden)]
pub use entry::{EntryHeader, EntryKind, EntryMeta, EntryView, HEADER_BYTES};
pub use error::Error;
pub use idle::{IdleStrategy, Idler};
pub use ids::{ClusterId, ClusterTimeNs, MemberId, Position, SessionId, Term, align32};
pub use machine::{Context, StateMachine, TimerRequest};
#[doc(hidden)]
pub use source::{LogBase, LogSource, Vote};
