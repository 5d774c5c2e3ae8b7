//! `ordo-apps`: the state machines built into the `ordo` program, written as a user of
//! ordo would write theirs: the bank ledger ([`ledger`]), a mutex with a waiting queue and
//! leases ([`mutex`]), the airlock interlock as nested transition matrices ([`airlock`]), a
//! key-value store ([`kv`]) and a price-time order book ([`book`]).
//!
//! Each implements `ordo_core::machine::StateMachine`: commands, replies, events and
//! snapshots are rkyv archives behind a validating reader ([`codec`]), commands read in
//! place; state in ordered maps only, so iteration order never depends on the process.
//! They are reference code to read and the `ordo` program's apps, not an API to depend on:
//! the crate is internal to the workspace (ARCHITECTURE.md, "Public API").

#![forbid(unsafe_code)]

pub mod airlock;
pub mod app;
pub mod book;
pub mod codec;
pub mod kv;
pub mod ledger;
pub mod mutex;

pub use app::App;
#[cfg(test)]
mod testing;
