//! `ordo-load`: the open-loop load `ordo demo`, `ordo bench` and the benchmarks drive
//! ([`open_loop`]: command k due at start + k/rate, latency measured from the due time, so
//! coordinated omission is corrected), its latency report in HdrHistogram percentiles
//! ([`latency`]), and saved runs ([`hgrm`]). The peers, the UDP floor and the charts stay in
//! `ordo-bench`.

#![forbid(unsafe_code)]

pub mod hgrm;
pub mod latency;
pub mod open_loop;
