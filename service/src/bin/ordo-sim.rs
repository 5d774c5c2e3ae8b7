//! Runs the deterministic simulator (until `ordo sim` wraps it).
//!
//! Usage: `ordo-sim [--seeds N | --seed S] [--first F] [--members M] [--faults all|none|LIST] [--json]
//! [--deliberate-bug NAME]` (the names: `DeliberateBug::name`; for showing the checkers
//! catch each, never for real runs)

use ordo_service::machinery::sim::{self, DeliberateBug, Faults, SimConfig};
use std::time::Instant;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let value = |flag: &str| args.iter().position(|a| a == flag).and_then(|i| args.get(i + 1)).cloned();
    let number = |flag: &str, default: u64| {
        value(flag).map_or(default, |v| {
            v.parse().unwrap_or_else(|_| {
                eprintln!("ordo-sim: {flag} takes a whole number, not {v:?}");
                std::process::exit(2)
            })
        })
    };
    let (first, count) = match value("--seed") {
        Some(_) => (number("--seed", 0), 1),
        None => (number("--first", 0), number("--seeds", 100)),
    };
    let members = number("--members", 3) as u16;
    let faults = Faults::parse(value("--faults").as_deref().unwrap_or("all")).unwrap_or_else(|error| {
        eprintln!("ordo-sim: --faults: {error}");
        std::process::exit(2)
    });
    let json = args.iter().any(|a| a == "--json");
    // For showing the checkers catch a broken rule; never for real runs.
    let deliberate_bug = value("--deliberate-bug").map(|name| {
        DeliberateBug::parse(&name).unwrap_or_else(|error| {
            eprintln!("ordo-sim: --deliberate-bug: {error}");
            std::process::exit(2)
        })
    });
    let start = Instant::now();
    let (mut failures, mut ticks, mut commits, mut snapshots, mut installs) = (0u64, 0u64, 0u64, 0u64, 0u64);
    let (mut undecided, mut events) = (0u64, 0u64);
    let mut faults_seen = [0u64; 11];
    for seed in first..first + count {
        match sim::run(SimConfig { members, faults, deliberate_bug, ..SimConfig::new(seed) }) {
            Ok(stats) => {
                ticks += stats.ticks;
                commits += stats.acked;
                snapshots += stats.snapshots;
                installs += stats.snapshots_installed;
                undecided += stats.linearizability_undecided;
                events += stats.events_received;
                let seen = [
                    stats.crashes,
                    stats.outages,
                    stats.partitions,
                    stats.pauses,
                    stats.clock_steps,
                    stats.corruptions,
                    stats.rebuilds,
                    stats.reseeds,
                    stats.crashes_inside,
                    stats.restores,
                    stats.events_gaps,
                ];
                for (total, count) in faults_seen.iter_mut().zip(seen) {
                    *total += count;
                }
            }
            Err(failure) => {
                failures += 1;
                eprintln!("{failure}\n");
            }
        }
    }
    let seconds = start.elapsed().as_secs_f64();
    if json {
        println!(
            "{{\"seeds\": {count}, \"failures\": {failures}, \"ticks\": {ticks}, \"commits\": {commits}, \"seconds\": {seconds:.3}, \"snapshots\": {snapshots}, \"snapshots_installed\": {installs}, \"linearizability_undecided\": {undecided}}}"
        );
    } else {
        println!(
            "{count} seeds from {first} (faults: {faults}): {failures} failed; {ticks} ticks ({:.0}/s), {commits} client commands acknowledged ({:.0}/s), {snapshots} snapshots taken, {installs} installed from a leader, {undecided} histories too long to decide linearizability, {events} events received by a subscriber, {seconds:.1} s",
            ticks as f64 / seconds,
            commits as f64 / seconds
        );
        let [crashes, outages, partitions, pauses, steps, corruptions, rebuilds, reseeds, inside, restores, gaps] =
            faults_seen;
        println!(
            "faults injected in the seeds that passed: {crashes} crashes ({inside} between two effects of a cycle), {outages} power cuts of several members, {partitions} partitions, {pauses} members frozen, {steps} wall-clock steps, {corruptions} disks that lied ({rebuilds} members refused to start and were rebuilt, {reseeds} of them from a peer's snapshot), {restores} whole clusters restored from a snapshot; {gaps} gaps in the event feed (events no member held any more)"
        );
    }
    if failures > 0 {
        std::process::exit(1);
    }
}
