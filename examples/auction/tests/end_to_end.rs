//! The README's steps with real processes: a 3-member cluster of the auction, a lamp put on
//! sale for 2 s, bids through the client, the timer's sale in every member's event log and
//! in the event stream `auction watch` reads over the network.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

struct Members(Vec<Child>);

impl Drop for Members {
    fn drop(&mut self) {
        for child in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Runs `auction WHAT --config CONFIG ARGS…` to its end (killed after 30 s) and returns
/// what it printed.
fn auction(what: &str, config: &std::path::Path, args: &str) -> String {
    let mut child = Command::new(env!("CARGO_BIN_EXE_auction"))
        .args([what, "--config", config.to_str().unwrap()])
        .args(args.split(' '))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success(), "auction {what} {args}: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8(output.stdout).unwrap().trim().to_string()
}

fn client(config: &std::path::Path, command: &str) -> String {
    auction("client", config, command)
}

#[test]
fn a_lamp_is_sold_by_its_timer_on_every_member() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = dir.path().join("auction-cluster");
    let base_port = ordo_tools::init::free_base_port().unwrap();
    let init = ordo_tools::init::Init {
        dir: cluster.clone(),
        members: 3,
        base_port,
        app: "auction".into(),
        durability: ordo_core::Durability::Fsync,
        hosts: Vec::new(),
    };
    let configs = ordo_tools::init::init(&init).unwrap();
    let _members = Members(
        configs
            .iter()
            .map(|config| {
                Command::new(env!("CARGO_BIN_EXE_auction"))
                    .args(["node", "--config", config.to_str().unwrap()])
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .spawn()
                    .unwrap()
            })
            .collect(),
    );
    assert_eq!(client(&configs[0], "open lamp 10 2"), "opened lamp, reserve 10, closes in 2 s");
    assert_eq!(client(&configs[1], "bid lamp 12"), "leading lamp at 12");
    assert!(client(&configs[2], "bid lamp 11").contains("at least 13"));
    assert_eq!(client(&configs[0], "bid lamp 15"), "leading lamp at 15");

    // The timer closes it at the same position on every member: the sale is in each event log.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let shown = client(&configs[0], "show lamp");
        if shown.starts_with("lamp: closed") {
            assert!(shown.contains("best 15"), "{shown}");
            break;
        }
        assert!(Instant::now() < deadline, "the lamp did not close: {shown}");
        std::thread::sleep(Duration::from_millis(200));
    }
    for config in &configs {
        let node = ordo_core::NodeConfig::load(config).unwrap();
        let events = ordo_core::LogConfig { durability: ordo_core::Durability::Replicated, ..node.log.clone() };
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let reader = ordo_log::LogReader::open(&node.data_dir.join("events"), &events).unwrap();
            let sold = reader
                .entries(reader.position_start())
                .filter_map(Result::ok)
                .any(|entry| entry.payload.starts_with(b"sold lamp to session"));
            if sold {
                break;
            }
            assert!(Instant::now() < deadline, "member {} has no sale in its event log", node.member_id.0);
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    // The same stream over the network, from its start: the sale is its first event.
    let watched = auction("watch", &configs[2], "--count 1");
    assert!(watched.contains("sold lamp to session"), "{watched}");
}
