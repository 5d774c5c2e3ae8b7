//! `ordo-service`: run your own deterministic state machine as a member of an ordo
//! cluster, from your own `main`, and talk to the cluster from your own programs.
//!
//! A cluster is three (or one, or five) members. Clients send commands; the elected leader
//! stamps each with its log position and the cluster time and streams the log to the
//! followers; once a majority holds a command, every member applies it, in log order, to its
//! copy of your [`StateMachine`]. So every member reaches the same state, and replaying the
//! log (from a snapshot) rebuilds it exactly.
//!
//! What you write, and what you call:
//!
//! - a [`StateMachine`]: `apply` each command through a [`Context`] (the cluster time,
//!   replies, events, timers), `snapshot` and `restore` the whole state. It must be
//!   deterministic: `docs/state-machines.md` in the repository has the rules, the mistakes
//!   that break them and how ordo catches them.
//! - a member: [`Node::from_file`] (the `ordo.toml` that `ordo init` writes) or
//!   [`Node::from_config`], runtime choices ([`Node::idle`], [`Node::threading`],
//!   [`Node::pin`]), then [`Node::start`] → a [`Running`] member: its address, live
//!   counters, [`Running::stop`].
//! - a client: [`Client::connect`] (from a member's config) or [`Client::new`]; blocking
//!   [`Client::call`] / [`Client::call_all`], or [`Client::submit`] + [`Client::poll`] +
//!   [`Client::take_reply`] in your own loop; events with [`Client::subscribe_events`] and
//!   [`Client::take_event`]. A command is answered once it is committed and applied, and is
//!   applied exactly once across retries and failovers.
//!
//! ```no_run
//! use ordo_service::{Client, Context, Node, NodeConfig, StateMachine};
//! use std::time::Duration;
//!
//! /// Keeps the highest number it was sent, and says so when it changes.
//! #[derive(Default)]
//! struct Highest(u64);
//!
//! impl StateMachine for Highest {
//!     fn apply(&mut self, ctx: &mut Context<'_>, command: &[u8]) {
//!         let number = std::str::from_utf8(command).ok().and_then(|t| t.trim().parse().ok());
//!         match number {
//!             Some(n) if n > self.0 => {
//!                 self.0 = n;
//!                 ctx.emit(format!("new high {n}").as_bytes());
//!                 ctx.reply(b"higher");
//!             }
//!             Some(_) => ctx.reply(b"not higher"),
//!             None => ctx.reply(b"error: send a number"),
//!         }
//!     }
//!     fn snapshot(&self, out: &mut Vec<u8>) {
//!         out.extend_from_slice(&self.0.to_le_bytes());
//!     }
//!     fn restore(bytes: &[u8]) -> Result<Self, String> {
//!         let bytes = bytes.try_into().map_err(|_| format!("8 bytes expected, got {}", bytes.len()))?;
//!         Ok(Highest(u64::from_le_bytes(bytes)))
//!     }
//! }
//!
//! // In each member's process (`ordo init --dir cluster --app highest` wrote the files):
//! let member = Node::from_file("cluster/node-1/ordo.toml")?.start(Highest::default())?;
//!
//! // In a client's:
//! let config = NodeConfig::load("cluster/node-1/ordo.toml".as_ref())?;
//! let mut client = Client::connect(&config)?;
//! let reply = client.call(b"42", Duration::from_secs(5))?;
//! assert_eq!(reply.reply, b"higher");
//!
//! member.stop()?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Test a machine before it runs anywhere with [`simulation::run`]: seeded clusters of it
//! through crashes, partitions and loss, checked at every step.
//!
//! `examples/auction` in the repository is a whole service built this way (an auction
//! house whose lots close on timers), with a README that runs it as three processes.
//!
//! Only the items shown here are the API. The crate's other modules are the member's
//! machinery (consensus, service container, simulator, snapshots), public only so that the
//! `ordo` program and the benchmarks in this workspace can reach them; they are hidden
//! from the documentation and may change at any time.

#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod client;
mod deliberate;
// The machinery's own items are documented where a reader of the code needs it, not as API.
#[allow(missing_docs)]
mod disk;
#[allow(missing_docs)]
mod replica;
#[allow(missing_docs)]
mod run;
#[allow(missing_docs)]
mod sim;
pub mod simulation;

pub use client::{Client, ClientConfig, ClientError, Event, Reply, ReplyStatus};
pub use ordo_core::{
    ClusterId, ClusterTimeNs, Context, Durability, IdleStrategy, MemberId, NodeConfig, Position, Security, SessionId,
    StateMachine, Threading,
};
pub use ordo_transport::ClientKey;
pub use run::embed::{Node, NodeError, Running, load_client_key, load_key};

#[doc(hidden)]
pub use client::MemberStatus;

/// The member's machinery: public for the `ordo` program, the benchmarks and the tests in
/// this workspace, hidden from the documentation, no stability promised. Everything else is
/// private to the crate.
#[doc(hidden)]
pub mod machinery {
    pub use crate::disk::{replay, snapshots};
    /// Seeding a member's folder from a snapshot (`ordo snapshot restore`).
    pub mod disk {
        pub use crate::disk::restore_snapshot;
    }
    pub use crate::replica::{consensus, snapshot};
    pub use crate::run::{counters, member, node, runtime};
    /// The simulator, as `ordo sim` runs it.
    pub mod sim {
        pub use crate::deliberate::DeliberateBug;
        pub use crate::sim::{Fault, Faults, SimConfig, SimFailure, SimStats, run, run_app, tally_command};
    }
    /// The echo machine the benchmarks run.
    pub mod echo {
        pub use crate::echo::Echo;
    }
}

#[allow(missing_docs)]
mod echo;
