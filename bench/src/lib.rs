//! `ordo-bench`: the latency/throughput harness and its baselines. Today: the transport's
//! UDP ping-pong (the floor the cluster's latency is read against; it becomes
//! `ordo bench --baseline udp`) and log-stream throughput. Figures are printed, never
//! asserted: this machine is noisy, so read ratios against the baseline of the same run.

#![forbid(unsafe_code)]

pub mod args;
pub mod cluster;
pub mod hgrm;
pub mod latency;
pub mod open_loop;
pub mod peers;
pub mod pingpong;
pub mod plot;
pub mod stream;
