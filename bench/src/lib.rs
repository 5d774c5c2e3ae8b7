//! `ordo-bench`: the latency/throughput harness, baselines (UDP ping-pong, fdatasync,
//! memcpy) and peers. The log's criterion benchmarks live in `log/benches` for now.
//!
//! Empty until the benchmark issue lands.

#![forbid(unsafe_code)]
