//! Commit latency of a 3-member loopback cluster (all on one thread), beside the UDP
//! ping-pong of the same run, for each durability policy; then committed commands per
//! second with batching.
//!
//! Usage: `ordo-bench-cluster [--seconds S] [--rate R] [--size B]`

use ordo_bench::cluster::{self, ClusterRun};
use ordo_bench::pingpong::{self, Load, PingPong, Wait};
use ordo_core::{Durability, IdleStrategy};
use ordo_transport::backend::BackendKind;
use std::time::Duration;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let value = |flag: &str, default: u64| ordo_bench::args::number("ordo-bench-cluster", &args, flag, default);
    let (seconds, rate, size) = (value("--seconds", 5), value("--rate", 2000), value("--size", 64) as usize);
    let fail = |what: &str, error: std::io::Error| -> ! {
        eprintln!("ordo-bench-cluster: {what} failed: {error}");
        std::process::exit(1)
    };
    println!("| what | p50 µs | p90 µs | p99 µs | p99.9 µs | max µs | completed |");
    println!("| --- | --- | --- | --- | --- | --- | --- |");
    let floor = pingpong::run(PingPong {
        backend: BackendKind::Std,
        wait: Wait::Idle(IdleStrategy::BusySpin),
        load: Load::OpenLoop { rate_per_s: rate },
        size_bytes: size,
        warmup: Duration::from_secs(1),
        duration: Duration::from_secs(seconds),
    })
    .unwrap_or_else(|e| fail("the UDP ping-pong", e));
    let row = |name: &str, r: &ordo_bench::latency::LatencyReport| {
        println!(
            "| {name} | {:.1} | {:.1} | {:.1} | {:.1} | {:.1} | {}/{} |",
            r.p50_us, r.p90_us, r.p99_us, r.p999_us, r.max_us, r.completed, r.sent
        )
    };
    row(&format!("UDP ping-pong, busy-spin, open {rate}/s"), &floor);
    for durability in [Durability::Replicated, Durability::Fsync] {
        let run = ClusterRun {
            durability,
            rate_per_s: rate,
            size_bytes: size,
            warmup: Duration::from_secs(1),
            duration: Duration::from_secs(seconds),
        };
        let report = cluster::run(run).unwrap_or_else(|e| fail("the cluster", e));
        row(&format!("commit, 3 members on 1 thread, {}, open {rate}/s", durability.name()), &report);
    }
    println!();
    println!("| throughput, {size} B commands, up to 1024 in flight | committed/s |");
    println!("| --- | --- |");
    for durability in [Durability::Replicated, Durability::Fsync] {
        let (committed, seconds) = cluster::throughput(durability, size, 1024, Duration::from_secs(seconds))
            .unwrap_or_else(|e| fail("the throughput run", e));
        println!("| 3 members on 1 thread, {} | {:.0} |", durability.name(), committed as f64 / seconds);
    }
}
