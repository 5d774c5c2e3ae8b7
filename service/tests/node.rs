//! Members run by the node driver from their `ordo.toml` files (member 2 with its service on
//! a thread of its own), each on its own thread until
//! its stop flag is set (what SIGINT/SIGTERM do in `ordo node`), serving a client; stopped
//! cleanly, a member's folder replays to the state it had.

use ordo_core::NodeConfig;
use ordo_service::machinery::echo::Echo;
use ordo_service::machinery::node;
use ordo_service::machinery::replay::{ReplayOptions, replay};
use ordo_service::{Client, ClientConfig};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

fn write_configs(dir: &Path, ports: &[u16]) -> Vec<std::path::PathBuf> {
    node::write_key(&dir.join("cluster.key")).unwrap();
    node::write_client_keys(&dir.join("client.key"), ordo_core::ClusterId(5), &[dir.join("client-keys")]).unwrap();
    (1..=3)
        .map(|id| {
            let members: String = ports
                .iter()
                .enumerate()
                .map(|(i, port)| format!("[[members]]\nid = {}\naddress = \"127.0.0.1:{port}\"\n\n", i + 1))
                .collect();
            let runtime = if id == 2 { "\n[runtime]\nthreading = \"dedicated\"\n" } else { "" };
            let text = format!(
                "member_id = {id}\ndata_dir = \"node-{id}\"\napp = \"echo\"\nkey_file = \"cluster.key\"\n\n{members}[log]\ncluster_id = 5\nsegment_bytes = 1048576\nentry_payload_bytes_max = 65536\n\n[snapshot]\ninterval_bytes = 65536\n{runtime}"
            );
            let path = dir.join(format!("node-{id}.toml"));
            std::fs::write(&path, text).unwrap();
            node::format(&NodeConfig::load(&path).unwrap()).unwrap(); // a new cluster's member
            path
        })
        .collect()
}

/// Three members' configs in `dir`, on free loopback ports, loaded.
fn three_members(dir: &Path) -> Vec<NodeConfig> {
    let ports: Vec<u16> =
        (0..3).map(|_| std::net::UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()).collect();
    write_configs(dir, &ports).iter().map(|path| NodeConfig::load(path).unwrap()).collect()
}

#[test]
fn nodes_run_from_their_config_files_serve_a_client_and_stop_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let configs = three_members(dir.path());
    let stop = Arc::new(AtomicBool::new(false));
    let threads: Vec<_> = configs
        .iter()
        .cloned()
        .map(|config| {
            let stop = stop.clone();
            std::thread::spawn(move || node::run(&config, Echo::default(), &stop, &mut |_, _| {}))
        })
        .collect();

    let addresses = configs[0].members.iter().map(|m| m.address).collect();
    let key = ordo_service::load_client_key(&dir.path().join("client.key")).unwrap();
    let mut client = Client::new(ClientConfig::new(addresses, configs[0].cluster_id(), key)).unwrap();
    let commands: Vec<Vec<u8>> = (0..2000u64).map(|k| k.to_le_bytes().repeat(8)).collect();
    let replies = client.call_all(commands.iter().map(|c| c.as_slice()), Duration::from_secs(30)).unwrap();
    assert_eq!(replies.len(), 2000);
    let last = replies.last().unwrap().position;
    std::thread::sleep(Duration::from_millis(300)); // followers learn the last commit

    stop.store(true, Ordering::Release);
    for thread in threads {
        thread.join().unwrap().unwrap();
    }
    for config in &configs {
        let (machine, report) =
            replay(&config.data_dir, &config.log, Echo::default(), &ReplayOptions::default(), &mut |_| {}).unwrap();
        assert!(report.position > last, "member {} holds every command", config.member_id.0);
        assert_eq!(machine.machine().count, 2000);
        assert!(report.snapshot.is_some(), "snapshots were taken every 64 KiB of log");
    }
    let wrong_key = dir.path().join("wrong.key");
    std::fs::write(&wrong_key, "xyz").unwrap();
    let config = NodeConfig { key_file: wrong_key, ..configs[0].clone() };
    let error = node::open(&config, Echo::default()).err().expect("a bad key is refused");
    assert!(error.to_string().contains("wrong.key"), "{error}");

    // A metrics address another process holds: the member says which and stops.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = taken.local_addr().unwrap();
    let config = NodeConfig { metrics_addr: Some(address), ..configs[0].clone() };
    let error = node::run(&config, Echo::default(), &AtomicBool::new(false), &mut |_, _| {}).unwrap_err().to_string();
    assert!(error.contains(&format!("cannot serve metrics on {address}")) && error.contains("metrics_addr"), "{error}");
}

/// The embedding API: a member started from code runs on its own thread, serves a client,
/// shows its counters through the handle, and stops cleanly with it; a member that cannot
/// open is an error from `start` itself.
#[test]
fn a_member_started_from_code_serves_and_stops_through_its_handle() {
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let config = NodeConfig::load(&write_configs(dir.path(), &[port, port + 1, port + 2])[0]).unwrap();
    let config = NodeConfig { members: config.members[..1].to_vec(), ..config }; // a cluster of one
    let member = node::start(config.clone(), Echo::default()).unwrap();
    assert_eq!(member.address().port(), port);
    let key = ordo_service::load_client_key(&dir.path().join("client.key")).unwrap();
    let mut client = Client::new(ClientConfig::new(vec![member.address()], config.cluster_id(), key)).unwrap();
    let reply = client.call(b"hello", Duration::from_secs(10)).unwrap();
    assert_eq!(reply.reply, b"hello");
    assert!(member.is_running());
    assert!(member.counter("applied_position").is_some_and(|p| p >= reply.position.0));
    assert!(member.counters().iter().any(|(name, _)| name == "commit_position"));
    member.stop().unwrap();

    let broken = NodeConfig { key_file: dir.path().join("missing.key"), ..config };
    let error = node::start(broken, Echo::default()).err().expect("a missing key stops start");
    assert!(error.to_string().contains("missing.key"), "{error}");
}

/// `ordo snapshot take` is answered with the snapshot's position only once the request entry
/// is committed: a leader cut off from its followers never answers it.
#[test]
fn a_snapshot_request_is_answered_once_committed_and_not_before() {
    let dir = tempfile::tempdir().unwrap();
    let configs = three_members(dir.path());
    let mut members: Vec<Option<_>> =
        configs.iter().map(|c| Some(node::start(c.clone(), Echo::default()).unwrap())).collect();
    let addresses: Vec<_> = configs[0].members.iter().map(|m| m.address).collect();
    let key = ordo_service::load_client_key(&dir.path().join("client.key")).unwrap();
    let mut client = Client::new(ClientConfig::new(addresses.clone(), configs[0].cluster_id(), key)).unwrap();
    client.call(b"first", Duration::from_secs(10)).unwrap();
    let leads = |m: &Option<ordo_service::Running>| m.as_ref().is_some_and(|m| m.counter("role") == Some(2));
    let leader = members.iter().position(leads).expect("a leader");
    // The followers stop: the leader still leads for an election timeout, but commits nothing.
    for (index, member) in members.iter_mut().enumerate() {
        if index != leader {
            member.take().unwrap().stop().unwrap();
        }
    }
    let mut asker = Client::new(ClientConfig::new(vec![addresses[leader]], configs[0].cluster_id(), key)).unwrap();
    let answer = asker.request_snapshot(Duration::from_millis(500));
    assert!(answer.is_err(), "answered before the request was committed: {answer:?}");
    // The followers return: the same request (resent) is committed and answered.
    for (index, member) in members.iter_mut().enumerate() {
        if index != leader {
            *member = Some(node::start(configs[index].clone(), Echo::default()).unwrap());
        }
    }
    let position = client.request_snapshot(Duration::from_secs(10)).unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !members.iter().flatten().all(|m| m.counter("snapshot_position").is_some_and(|p| p >= position.0)) {
        assert!(std::time::Instant::now() < deadline, "every member snapshots at {position}");
        std::thread::sleep(Duration::from_millis(20));
    }
}
