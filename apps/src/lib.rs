//! `ordo-apps`: the state machines users would write — bank ledger, mutex with a waiting
//! queue, airlock interlock, key-value store, order book.
//!
//! Empty until the apps issue lands.

#![forbid(unsafe_code)]
