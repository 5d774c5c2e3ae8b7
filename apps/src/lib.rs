//! `ordo-apps`: the state machines users would write. Today: the bank ledger (`ledger`).
//! Still to come (issue #7): the mutex with a waiting queue, the airlock interlock, the
//! key-value store and the order book.
//!
//! Each app implements `ordo_core::machine::StateMachine`: commands, replies, events and
//! snapshots are rkyv archives, commands read in place; state in ordered maps only.

#![forbid(unsafe_code)]

pub mod airlock;
pub mod book;
pub mod codec;
pub mod kv;
pub mod ledger;
pub mod mutex;
#[cfg(test)]
mod testing;
