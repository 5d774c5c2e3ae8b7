//! `ordo-bench`: the latency/throughput harness `ordo bench` drives (the open-loop load,
//! coordinated omission corrected), its floor (the UDP ping-pong), its peers (etcd and NATS
//! JetStream clusters and their clients), `.hgrm` files and SVG charts; and the benchmark
//! binaries (transport, in-process cluster, snapshot, the BENCHMARKS.md report). Figures are
//! printed, never asserted: this machine is noisy, so read ratios against the baseline of
//! the same run.

#![forbid(unsafe_code)]

pub mod args;
pub mod cluster;
pub mod peers;
pub mod pingpong;
pub mod plot;
pub mod stream;

/// The open-loop load and its report live in `ordo-load`, which the `ordo` program uses too.
pub use ordo_load::{hgrm, latency, open_loop};
