//! The auction in the deterministic simulator: seeded 3-member clusters of it with clients
//! opening lots and bidding, through crashes, partitions, loss and clock drift; every
//! member's state hash, the snapshots' round trip and the auction's invariants checked at
//! every step. A failure prints its seed and the last events.

use ordo_example_auction::Auction;
use ordo_service::simulation::{self, SimConfig};

/// Client `client`'s command `sequence`: every fifth opens a lot that closes a second later
/// (in cluster time), the others bid on the client's newest lot, some too low.
fn workload(client: u64, sequence: u64) -> Vec<u8> {
    let lot = format!("lot-{client}-{}", sequence / 5);
    let command = match sequence % 5 {
        0 => format!("open {lot} 10 1"),
        4 => format!("show {lot}"),
        step => format!("bid {lot} {}", 8 + step * 3 + client % 3),
    };
    command.into_bytes()
}

#[test]
fn the_auction_survives_faults_in_the_simulator() {
    let seeds = std::env::var("AUCTION_SIM_SEEDS").ok().and_then(|n| n.parse().ok()).unwrap_or(20u64);
    let mut timers = 0;
    for seed in 0..seeds {
        match simulation::run::<Auction>(SimConfig::new(seed), workload) {
            Ok(stats) => timers += stats.timers_fired,
            Err(failure) => panic!("{failure}"),
        }
    }
    assert!(timers > 0, "lots closed on their timers in {seeds} seeds");
}
