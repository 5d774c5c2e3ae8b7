//! `ordo-service`: a cluster member — the sans-I/O consensus module, the service
//! container (apply loop, timers, snapshots, events), the agent runner, the client library
//! and the deterministic simulator. It never depends on `ordo-apps`.
//!
//! Empty until the consensus and member issues land.

#![forbid(unsafe_code)]
