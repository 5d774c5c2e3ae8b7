//! `ordo-transport`: UDP endpoints (io_uring and std backends), frames, batching, loss
//! recovery, authentication, the fault-injecting and in-memory networks. It knows frames
//! and peers, nothing about elections or state machines.
//!
//! Empty until the transport issue lands.

#![forbid(unsafe_code)]
