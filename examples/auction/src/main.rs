//! `auction`: the auction house as a program of its own, built on ordo.
//!
//! ```text
//! auction node --config DIR/node-I/ordo.toml             run one member until Ctrl-C
//! auction client --config DIR/node-1/ordo.toml COMMAND…  one command, its reply printed
//! auction watch --config DIR/node-1/ordo.toml [--count N] the event stream, as it comes
//! ```
//!
//! The cluster's folders come from `ordo init --dir DIR --app auction` (see README.md).

use ordo_example_auction::Auction;
use ordo_service::{Client, Node, NodeConfig, Position};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

fn fail(message: String) -> ! {
    eprintln!("auction: {message}");
    std::process::exit(1)
}

/// Set by Ctrl-C or SIGTERM.
fn stop_flag() -> Arc<AtomicBool> {
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(signal, stop.clone()).unwrap_or_else(|e| fail(e.to_string()));
    }
    stop
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let config_at = args.iter().position(|a| a == "--config").map(|i| i + 1);
    let config =
        config_at.and_then(|i| args.get(i)).unwrap_or_else(|| fail("give --config DIR/node-I/ordo.toml".into()));
    match args.first().map(String::as_str) {
        Some("node") => {
            // The member runs on its own thread; this one waits for Ctrl-C or SIGTERM.
            let stop = stop_flag();
            let member = Node::from_file(config)
                .and_then(|node| node.start(Auction::default()))
                .unwrap_or_else(|e| fail(e.to_string()));
            println!("auction member {} listening on {}", member.member_id().0, member.address());
            while !stop.load(Ordering::Acquire) && member.is_running() {
                std::thread::sleep(Duration::from_millis(50));
            }
            member.stop().unwrap_or_else(|e| fail(e.to_string()));
        }
        Some("client") => {
            let node = NodeConfig::load(Path::new(config)).unwrap_or_else(|e| fail(e.to_string()));
            let command = args[config_at.expect("given") + 1..].join(" ");
            let mut client = Client::connect(&node).unwrap_or_else(|e| fail(e.to_string()));
            let reply =
                client.call(command.as_bytes(), Duration::from_secs(10)).unwrap_or_else(|e| fail(e.to_string()));
            println!("{}", String::from_utf8_lossy(&reply.reply));
        }
        Some("watch") => {
            let node = NodeConfig::load(Path::new(config)).unwrap_or_else(|e| fail(e.to_string()));
            let count = args.iter().position(|a| a == "--count").map(|i| {
                args.get(i + 1)
                    .and_then(|n| n.parse::<u64>().ok())
                    .unwrap_or_else(|| fail("--count takes a number".into()))
            });
            watch(&node, count);
        }
        _ => fail("usage: auction node|watch --config FILE, or auction client --config FILE COMMAND…".into()),
    }
}

/// Prints the event stream from its start, each event as it comes, until `count` were
/// printed or Ctrl-C. The events follow the client to another member after a failover.
fn watch(node: &NodeConfig, count: Option<u64>) {
    let stop = stop_flag();
    let mut client = Client::connect(node).unwrap_or_else(|e| fail(e.to_string()));
    client.subscribe_events(Position::ZERO);
    let mut printed = 0;
    while !stop.load(Ordering::Acquire) && count.is_none_or(|count| printed < count) {
        client.poll(client.now_ns()).unwrap_or_else(|e| fail(e.to_string()));
        while let Some(event) = client.take_event() {
            println!("{} {}", event.source.0, String::from_utf8_lossy(&event.bytes));
            printed += 1;
        }
        client.wait_readable(Duration::from_millis(10)).unwrap_or_else(|e| fail(e.to_string()));
    }
}
