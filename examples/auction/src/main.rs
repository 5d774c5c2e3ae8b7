//! `auction`: the auction house as a program of its own, built on ordo.
//!
//! ```text
//! auction node --config DIR/node-I/ordo.toml     run one member until Ctrl-C
//! auction client --config DIR/node-1/ordo.toml COMMAND…
//! ```
//!
//! The cluster's folders come from `ordo init --dir DIR --app auction` (see README.md).

use ordo_core::NodeConfig;
use ordo_example_auction::Auction;
use ordo_service::client::{Client, ClientConfig};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

fn fail(message: String) -> ! {
    eprintln!("auction: {message}");
    std::process::exit(1)
}

fn config(path: Option<&String>) -> NodeConfig {
    let path = path.unwrap_or_else(|| fail("give --config DIR/node-I/ordo.toml".into()));
    NodeConfig::load(Path::new(path)).unwrap_or_else(|e| fail(e.to_string()))
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let config_at = args.iter().position(|a| a == "--config").map(|i| i + 1);
    match args.first().map(String::as_str) {
        Some("node") => {
            let node = config(config_at.and_then(|i| args.get(i)));
            // The member runs on its own thread; this one waits for Ctrl-C or SIGTERM.
            let stop = Arc::new(AtomicBool::new(false));
            for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
                signal_hook::flag::register(signal, stop.clone()).unwrap_or_else(|e| fail(e.to_string()));
            }
            let member = ordo_service::node::start(node, Auction::default()).unwrap_or_else(|e| fail(e.to_string()));
            println!("auction member {} listening on {}", member.member_id().0, member.address());
            while !stop.load(Ordering::Acquire) && member.is_running() {
                std::thread::sleep(Duration::from_millis(50));
            }
            member.stop().unwrap_or_else(|e| fail(e.to_string()));
        }
        Some("client") => {
            let index = config_at.unwrap_or_else(|| fail("give --config DIR/node-1/ordo.toml".into()));
            let node = config(args.get(index));
            let command = args[index + 1..].join(" ");
            let key = ordo_service::node::load_key(&node.key_file).unwrap_or_else(|e| fail(e.to_string()));
            let addresses = node.members.iter().map(|m| m.address).collect();
            let mut client = Client::new(ClientConfig::new(addresses, node.cluster_id(), key))
                .unwrap_or_else(|e| fail(e.to_string()));
            let reply =
                client.call(command.as_bytes(), Duration::from_secs(10)).unwrap_or_else(|e| fail(e.to_string()));
            println!("{}", String::from_utf8_lossy(&reply.reply));
        }
        _ => fail("usage: auction node --config FILE | auction client --config FILE COMMAND…".into()),
    }
}
