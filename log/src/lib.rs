//! `ordo-log` is the memory-mapped, segmented, append-only log every member keeps: appends
//! are copies into a mapped, preallocated segment; reads hand out `&[u8]` slices of the map;
//! durability is a policy (`fsync` group commit or `replicated`); recovery after a crash cuts
//! a torn tail and refuses corruption before it. Beside the log live the term index and the
//! vote metadata that consensus stores before answering a vote.
//!
//! File I/O only: it knows nothing of sockets, elections or state machines. The one `unsafe`
//! is mapping segment files (see `segment.rs`).

pub mod checkpoint;
pub mod counters;
pub mod error;
pub mod log;
mod reaper;
pub mod segment;
pub mod segments;
mod small_file;
pub mod term_index;
#[doc(hidden)]
pub mod testing;
pub mod vote;

pub use error::LogError;
pub use log::{Entries, Log, LogBase, LogReader, Recovery, SharedPosition, TornTail, Verified, verify};
pub use term_index::TermIndex;
pub use vote::{Vote, VoteStore};
