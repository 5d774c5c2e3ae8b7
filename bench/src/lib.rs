//! `ordo-bench`: the latency/throughput harness `ordo bench` drives (the open-loop load,
//! coordinated omission corrected), its floor (the UDP ping-pong), its peers (etcd and NATS
//! JetStream clusters and their clients), `.hgrm` files and SVG charts; and the benchmark
//! binaries (transport, in-process cluster, snapshot, the BENCHMARKS.md report). Figures are
//! printed, never asserted: this machine is noisy, so read ratios against the baseline of
//! the same run.

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
