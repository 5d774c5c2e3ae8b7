//! Transport figures, each beside the UDP floor measured in the same run:
//! UDP ping-pong RTT per backend and wait strategy (closed loop, and open loop at a fixed
//! rate, coordinated-omission corrected), then log-stream throughput per backend with and
//! without 1% loss. Prints a Markdown table (or one JSON object a line with `--json`).
//!
//! Usage: `ordo-bench-transport [--seconds S] [--rate R] [--entries N] [--json]`

use ordo_bench::pingpong::{self, Load, PingPong, Wait};
use ordo_bench::stream::{self, StreamRun};
use ordo_core::IdleStrategy;
use ordo_transport::Security;
use ordo_transport::backend::BackendKind;
use std::time::Duration;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let value = |flag: &str, default: u64| ordo_bench::args::number("ordo-bench-transport", &args, flag, default);
    let seconds = value("--seconds", 3);
    let rate = value("--rate", 10_000);
    let entries = value("--entries", 500_000);
    let json = args.iter().any(|a| a == "--json");
    let backends = [("std", BackendKind::Std), ("io_uring", BackendKind::IoUring)];

    if !json {
        println!("| backend | wait | load | p50 µs | p90 µs | p99 µs | p99.9 µs | p99.99 µs | max µs | completed |");
        println!("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |");
    }
    for (name, backend) in backends {
        for wait in [Wait::Idle(IdleStrategy::BusySpin), Wait::Idle(IdleStrategy::Backoff), Wait::Blocking] {
            for load in [Load::ClosedLoop, Load::OpenLoop { rate_per_s: rate }] {
                let config = PingPong {
                    backend,
                    wait,
                    load,
                    size_bytes: 64,
                    warmup: Duration::from_secs(1),
                    duration: Duration::from_secs(seconds),
                };
                let report = match pingpong::run(config) {
                    Ok(report) => report,
                    Err(error) => {
                        eprintln!("ordo-bench-transport: ping-pong on {name} failed: {error}");
                        std::process::exit(1)
                    }
                };
                let load_name = match load {
                    Load::ClosedLoop => "closed".to_string(),
                    Load::OpenLoop { rate_per_s } => format!("open {rate_per_s}/s"),
                };
                if json {
                    let body = report.to_json();
                    println!(
                        "{{\"bench\": \"udp-pingpong\", \"backend\": \"{name}\", \"wait\": \"{}\", \"load\": \"{load_name}\", {}",
                        wait.name(),
                        &body[1..]
                    );
                } else {
                    println!(
                        "| {name} | {} | {load_name} | {:.1} | {:.1} | {:.1} | {:.1} | {:.1} | {:.1} | {}/{} |",
                        wait.name(),
                        report.p50_us,
                        report.p90_us,
                        report.p99_us,
                        report.p999_us,
                        report.p9999_us,
                        report.max_us,
                        report.completed,
                        report.sent
                    );
                }
            }
        }
    }

    if !json {
        println!();
        println!("| backend | security | loss | entries (64 B) | seconds | entries/s | datagrams/s |");
        println!("| --- | --- | --- | --- | --- | --- | --- |");
    }
    for (name, backend) in backends {
        for (security_name, security) in [("mac", Security::Mac), ("aead", Security::Aead)] {
            for loss in [0.0, 0.01] {
                let config = StreamRun { backend, security, entries, payload_bytes: 64, loss };
                let report = match stream::run(config) {
                    Ok(report) => report,
                    Err(error) => {
                        eprintln!("ordo-bench-transport: stream on {name} failed: {error}");
                        std::process::exit(1)
                    }
                };
                if json {
                    println!(
                        "{{\"bench\": \"log-stream\", \"backend\": \"{name}\", \"security\": \"{security_name}\", \"loss\": {loss}, \"entries\": {}, \"seconds\": {:.3}, \"entries_per_s\": {:.0}, \"datagrams_per_s\": {:.0}}}",
                        report.entries, report.seconds, report.entries_per_s, report.datagrams_per_s
                    );
                } else {
                    println!(
                        "| {name} | {security_name} | {:.0}% | {} | {:.2} | {:.0} | {:.0} |",
                        loss * 100.0,
                        report.entries,
                        report.seconds,
                        report.entries_per_s,
                        report.datagrams_per_s
                    );
                }
            }
        }
    }
}
