//! The real member's driver and its surroundings: the threads that run the duty cycles
//! (`runtime`), the member itself over a UDP endpoint and its folder (`member`), starting
//! one from an `ordo.toml` (`node`, `embed`), its counters file and metrics, and its client
//! keys file. What runs here and not in the simulator is sockets, files, threads and clocks.

pub(crate) mod client_keys;
pub mod counters;
pub(crate) mod embed;
pub mod member;
pub(crate) mod metrics;
pub mod node;
pub mod runtime;
