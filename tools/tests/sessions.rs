//! Sessions that expire while their client is paused, on a lossy network, with real member
//! processes: nothing is applied twice, and every command whose outcome the client cannot
//! know is reported as such, never answered ok.

mod common;

use common::start_nodes;
use std::collections::BTreeMap;
use std::io::{BufRead, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Every payload in a member's event log (echo emits each command it applies), with the
/// number of times it is there.
fn applied_commands(member_dir: &std::path::Path) -> BTreeMap<Vec<u8>, usize> {
    let node = ordo_core::NodeConfig::load(&member_dir.join("ordo.toml")).unwrap();
    let config = ordo_core::LogConfig { durability: ordo_core::Durability::Replicated, ..node.log.clone() };
    let reader = ordo_log::LogReader::open(&node.data_dir.join("events"), &config).unwrap();
    let mut applied = BTreeMap::new();
    for entry in reader.entries(reader.position_start()) {
        let entry = entry.unwrap();
        if entry.kind() == ordo_core::EntryKind::Event {
            *applied.entry(entry.payload.to_vec()).or_insert(0) += 1;
        }
    }
    applied
}

#[test]
fn sessions_expiring_under_a_paused_client_on_a_lossy_network_apply_nothing_twice() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = dir.path().join("c");
    let c = cluster.to_str().unwrap().to_string();
    let base = common::base_port(0);
    let configs = common::init(&cluster, "echo", base);
    for config in &configs {
        let text =
            std::fs::read_to_string(config).unwrap().replace("session_timeout_ms = 10000", "session_timeout_ms = 1000");
        std::fs::write(config, text + "\n[transport.faults]\nloss_per_mille = 300\n").unwrap();
    }
    let mut nodes = start_nodes(&configs);

    // 5 000 distinct commands through one client, paused (SIGSTOP) past the session
    // timeout four times while they flow.
    let commands: Vec<String> = (1..=5000).map(|k| format!("command-{k}")).collect();
    let mut client = Command::new(env!("CARGO_BIN_EXE_ordo"))
        .args(["client", "--dir", &c, "--stdin"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdin = client.stdin.take().unwrap();
    let input = commands.join("\n") + "\n";
    let writer = std::thread::spawn(move || stdin.write_all(input.as_bytes()));
    let stdout = client.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        std::io::BufReader::new(stdout)
            .lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(&l.unwrap()).unwrap())
            .collect::<Vec<_>>()
    });
    let pid = client.id().to_string();
    for _ in 0..4 {
        std::thread::sleep(Duration::from_millis(700));
        let _ = Command::new("kill").args(["-STOP", &pid]).status();
        std::thread::sleep(Duration::from_millis(2500));
        let _ = Command::new("kill").args(["-CONT", &pid]).status();
    }
    let deadline = Instant::now() + Duration::from_secs(180);
    while client.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = client.kill();
            panic!("the client did not finish within 180 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    writer.join().unwrap().unwrap();
    let lines = reader.join().unwrap();
    assert_eq!(lines.len(), commands.len());
    let ok: Vec<&String> = lines.iter().zip(&commands).filter(|(l, _)| l["ok"] == true).map(|(_, c)| c).collect();
    let unknown = lines.iter().filter(|l| l["error"].as_str().is_some_and(|e| e.contains("outcome unknown"))).count();
    let other: Vec<_> = lines
        .iter()
        .filter(|l| l["ok"] != true && !l["error"].as_str().is_some_and(|e| e.contains("outcome unknown")))
        .collect();
    assert!(other.is_empty(), "failed for another reason: {:?}", &other[..other.len().min(3)]);

    // Let the followers apply what the leader did, then read every member's event log.
    std::thread::sleep(Duration::from_secs(2));
    for node in &mut nodes.0 {
        let _ = node.kill();
        let _ = node.wait();
    }
    let applied: Vec<_> = (1..=3).map(|id| applied_commands(&cluster.join(format!("node-{id}")))).collect();
    for (id, commands) in applied.iter().enumerate() {
        let twice: Vec<_> = commands.iter().filter(|(_, n)| **n > 1).map(|(c, _)| String::from_utf8_lossy(c)).collect();
        assert!(
            twice.is_empty(),
            "member {} applied {} commands twice: {:?}",
            id + 1,
            twice.len(),
            &twice[..twice.len().min(5)]
        );
    }
    let most = applied.iter().max_by_key(|a| a.len()).unwrap();
    let missing: Vec<_> = ok.iter().filter(|c| !most.contains_key(c.as_bytes())).collect();
    assert!(
        missing.is_empty(),
        "{} commands answered ok were not applied: {:?}",
        missing.len(),
        &missing[..missing.len().min(5)]
    );
    assert!(most.len() <= ok.len() + unknown, "applied {} > ok {} + unknown {unknown}", most.len(), ok.len());
    eprintln!("{} ok, {unknown} outcome unknown, {} applied", ok.len(), most.len());
}
