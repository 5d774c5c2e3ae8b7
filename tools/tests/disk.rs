//! Disk faults with real member processes: a byte flipped in a sealed segment, a full disk,
//! a folder that cannot be written. Each is a clear error naming the file, and nothing
//! acknowledged is lost. The mounts (a small tmpfs, a read-only one) need root; without it
//! those tests say so and pass.

mod common;

use common::{Nodes, json_lines, ordo, ordo_with_stdin, start_node, start_nodes};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

/// `ordo init` of a cluster with 1 MiB segments, so a few thousand commands seal some.
fn init_small_segments(dir: &Path, members: u16, base_port: u16, app: &str) -> Vec<PathBuf> {
    let d = dir.to_str().unwrap();
    let args = ["init", "--dir", d, "--members", &members.to_string(), "--base-port", &base_port.to_string()];
    let init = ordo(&[&args[..], &["--app", app]].concat(), Duration::from_secs(20));
    assert!(init.status.success(), "{}", String::from_utf8_lossy(&init.stderr));
    (1..=members)
        .map(|id| {
            let config = dir.join(format!("node-{id}/ordo.toml"));
            let text = std::fs::read_to_string(&config)
                .unwrap()
                .replace("segment_bytes = 16777216", "segment_bytes = 1048576")
                .replace("entry_payload_bytes_max = 1048576", "entry_payload_bytes_max = 65536")
                .replace("interval_bytes = 4194304", "interval_bytes = 524288");
            std::fs::write(&config, text).unwrap();
            config
        })
        .collect()
}

/// `put keyN VALUE` lines, 600-byte values.
fn puts(count: usize) -> String {
    let value = "x".repeat(600);
    (1..=count).map(|i| format!("put key{i} {value}\n")).collect()
}

/// Waits for a child to exit within `limit`; its status.
fn wait_exit(child: &mut std::process::Child, limit: Duration) -> Option<std::process::ExitStatus> {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if let Some(status) = child.try_wait().unwrap() {
            return Some(status);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    None
}

#[test]
fn a_damaged_sealed_segment_stops_the_member_and_a_peers_snapshot_reseeds_it() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = dir.path().join("c");
    let c = cluster.to_str().unwrap();
    let configs = init_small_segments(&cluster, 3, common::base_port(3), "kv");
    let mut nodes = start_nodes(&configs);
    let written = ordo_with_stdin(&["client", "--dir", c, "--stdin"], &puts(3000));
    assert!(written.status.success(), "{}", String::from_utf8_lossy(&written.stderr));
    // Member 3 stops; a byte of its oldest sealed segment is flipped.
    let _ = Command::new("kill").arg(nodes.0[2].id().to_string()).status();
    assert!(wait_exit(&mut nodes.0[2], Duration::from_secs(10)).is_some_and(|s| s.success()));
    let log_dir = cluster.join("node-3/data/log");
    let mut segments: Vec<PathBuf> = std::fs::read_dir(&log_dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .collect();
    segments.sort();
    assert!(segments.len() >= 2, "a sealed segment: {segments:?}");
    let damaged = segments[0].clone();
    let mut bytes = std::fs::read(&damaged).unwrap();
    bytes[4096 + 3000] ^= 0x04;
    std::fs::write(&damaged, bytes).unwrap();
    let name = damaged.file_name().unwrap().to_str().unwrap().to_string();

    // It refuses to start, naming the file and the position; log verify says the same.
    let started = ordo(&["node", "--config", configs[2].to_str().unwrap()], Duration::from_secs(30));
    let said = String::from_utf8_lossy(&started.stderr);
    assert!(!started.status.success(), "{said}");
    assert!(said.contains("refuses to start on a damaged log") && said.contains(&name), "{said}");
    assert!(said.contains("position"), "{said}");
    let verify = ordo(&["log", "verify", "--dir", &format!("{c}/node-3")], Duration::from_secs(30));
    assert!(!verify.status.success() && String::from_utf8_lossy(&verify.stderr).contains(&name));

    // Re-seeded from member 1's newest snapshot, it starts, catches up and agrees.
    let snapshots =
        json_lines(&ordo(&["snapshot", "list", "--dir", &format!("{c}/node-1"), "--json"], Duration::from_secs(20)));
    let newest = snapshots.last().expect("member 1 has snapshots")["path"].as_str().unwrap().to_string();
    std::fs::rename(cluster.join("node-3/data"), dir.path().join("damaged-data")).unwrap();
    let restore =
        ordo(&["snapshot", "restore", "--from", &newest, "--dir", &format!("{c}/node-3")], Duration::from_secs(20));
    assert!(restore.status.success(), "{}", String::from_utf8_lossy(&restore.stderr));
    nodes.0[2] = start_node(&configs[2]);
    let more = ordo_with_stdin(&["client", "--dir", c, "--stdin"], "put after reseed\nget key1\n");
    assert!(more.status.success(), "{}", String::from_utf8_lossy(&more.stderr));
    let last = json_lines(&more)[0]["position"].as_u64().unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let stat = ordo(&["stat", "--dir", &format!("{c}/node-3"), "--json"], Duration::from_secs(20));
        let applied =
            serde_json::from_slice::<serde_json::Value>(&stat.stdout).ok().and_then(|s| s["applied_position"].as_u64());
        if applied.is_some_and(|a| a > last) {
            break;
        }
        assert!(Instant::now() < deadline, "member 3 did not catch up: {applied:?} <= {last}");
        std::thread::sleep(Duration::from_millis(100));
    }
    drop(nodes);
    let hashes: Vec<String> = (1..=3)
        .map(|id| {
            let replay =
                json_lines(&ordo(&["replay", "--dir", &format!("{c}/node-{id}"), "--json"], Duration::from_secs(60)));
            replay[0]["state_hash"].as_str().unwrap().to_string()
        })
        .collect();
    assert!(hashes.windows(2).all(|w| w[0] == w[1]), "{hashes:?}");
}

/// A tmpfs mounted for a test, unmounted when dropped.
struct Mount(PathBuf);

impl Mount {
    fn tmpfs(at: &Path, options: &str) -> Mount {
        std::fs::create_dir_all(at).unwrap();
        let status = Command::new("mount").args(["-t", "tmpfs", "-o", options, "tmpfs", at.to_str().unwrap()]).status();
        assert!(status.is_ok_and(|s| s.success()), "mount a tmpfs at {}", at.display());
        Mount(at.to_path_buf())
    }

    fn remount(&self, options: &str) {
        let status =
            Command::new("mount").args(["-o", &format!("remount,{options}"), self.0.to_str().unwrap()]).status();
        assert!(status.is_ok_and(|s| s.success()));
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

#[test]
fn a_full_disk_stops_the_member_with_a_clear_error_and_loses_nothing_acknowledged() {
    if !is_root() {
        eprintln!("skipped: mounting a small tmpfs needs root");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let cluster = dir.path().join("c");
    let c = cluster.to_str().unwrap();
    let configs = init_small_segments(&cluster, 1, common::base_port(4), "kv");
    let disk = Mount::tmpfs(&cluster.join("node-1/data"), "size=3m");
    // The new volume is a new member's folder: formatted, as `ordo init` formats one.
    ordo_service::machinery::node::format(&ordo_core::NodeConfig::load(&configs[0]).unwrap()).unwrap();
    let mut nodes = Nodes(vec![
        Command::new(env!("CARGO_BIN_EXE_ordo"))
            .args(["node", "--config", configs[0].to_str().unwrap()])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap(),
    ]);
    // More than fits: the member stops on the full disk; the client reports what was not
    // answered and exits non-zero.
    let written = ordo_with_stdin(&["client", "--dir", c, "--stdin"], &puts(6000));
    assert!(!written.status.success());
    let lines: Vec<serde_json::Value> =
        String::from_utf8_lossy(&written.stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 6000, "a line for every command");
    let acknowledged: Vec<u64> =
        lines.iter().filter(|l| l["ok"] == true).map(|l| l["line"].as_u64().unwrap()).collect();
    assert!(acknowledged.len() > 500, "some fit: {}", acknowledged.len());
    assert!(lines.last().unwrap()["error"].as_str().unwrap().contains("no reply"));
    let mut node = nodes.0.pop().unwrap();
    let status = wait_exit(&mut node, Duration::from_secs(10)).expect("the member stops on a full disk");
    assert!(!status.success());
    let mut stderr = String::new();
    std::io::Read::read_to_string(node.stderr.as_mut().unwrap(), &mut stderr).unwrap();
    assert!(stderr.contains("disk full") && stderr.contains("data/log/"), "{stderr}");

    // With room again: the log is intact, and every acknowledged put is there.
    disk.remount("size=64m");
    let verify = ordo(&["log", "verify", "--dir", &format!("{c}/node-1")], Duration::from_secs(30));
    assert!(verify.status.success(), "{}", String::from_utf8_lossy(&verify.stderr));
    let _node = Nodes(vec![start_node(&configs[0])]);
    let gets: String = acknowledged.iter().map(|n| format!("get key{n}\n")).collect();
    let read = ordo_with_stdin(&["client", "--dir", c, "--stdin"], &gets);
    assert!(read.status.success(), "{}", String::from_utf8_lossy(&read.stderr));
    let found = json_lines(&read);
    assert_eq!(found.len(), acknowledged.len());
    assert!(found.iter().all(|l| l["reply"]["Value"].is_object()), "every acknowledged put survived");
}

#[test]
fn a_folder_that_cannot_be_written_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = dir.path().join("c");
    let configs = init_small_segments(&cluster, 1, common::base_port(5), "kv");
    let data = cluster.join("node-1/data");
    // As root a read-only mount (permissions do not stop root); else a file where the folder goes.
    let _mount = if is_root() { Some(Mount::tmpfs(&data, "size=1m,ro")) } else { None };
    if !is_root() {
        std::fs::remove_dir_all(&data).unwrap(); // formatted by init
        std::fs::write(&data, "not a folder").unwrap();
    }
    let started = ordo(&["node", "--config", configs[0].to_str().unwrap()], Duration::from_secs(20));
    let said = String::from_utf8_lossy(&started.stderr);
    assert!(!started.status.success());
    assert!(said.contains(data.to_str().unwrap()), "names the folder: {said}");
    assert!(said.contains("Read-only file system") || said.contains("Not a directory"), "{said}");
}

/// Each member of the cluster in `dir`, as `ordo describe --dir` sees it.
fn describe(dir: &str) -> Vec<serde_json::Value> {
    json_lines(&ordo(&["describe", "--dir", dir, "--json"], Duration::from_secs(20)))
}

/// Waits until one member of `dir` leads, other than `not`; its id and term.
fn await_leader(dir: &str, not: Option<u64>, limit: Duration) -> (u64, u64) {
    let deadline = Instant::now() + limit;
    loop {
        let members = describe(dir);
        if let Some(leader) = members.iter().find(|m| m["role"] == "leader" && m["id"].as_u64() != not) {
            return (leader["id"].as_u64().unwrap(), leader["term"].as_u64().unwrap());
        }
        assert!(Instant::now() < deadline, "no leader in {dir} within {limit:?}: {members:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_whole_cluster_restored_from_a_snapshot_of_a_later_term_serves_and_takes_commands() {
    let dir = tempfile::tempdir().unwrap();
    let (source, restored) = (dir.path().join("source"), dir.path().join("restored"));
    let (s, r) = (source.to_str().unwrap(), restored.to_str().unwrap());
    let configs = init_small_segments(&source, 3, common::base_port(3) + 10, "kv");
    let mut nodes = start_nodes(&configs);
    // Three failovers: the leader SIGKILLed, another elected, the killed one restarted.
    let (mut leader, mut term) = await_leader(s, None, Duration::from_secs(30));
    for round in 0..3 {
        let put = ordo(&["client", "--dir", s, "put", &format!("round{round}"), "done"], Duration::from_secs(60));
        assert!(put.status.success(), "{}", String::from_utf8_lossy(&put.stderr));
        let killed = leader as usize - 1;
        nodes.0[killed].kill().unwrap();
        nodes.0[killed].wait().unwrap();
        (leader, term) = await_leader(s, Some(leader), Duration::from_secs(30));
        nodes.0[killed] = start_node(&configs[killed]);
    }
    assert!(term >= 4, "three failovers: term {term}");
    let put = ordo(&["client", "--dir", s, "put", "before", "snapshot"], Duration::from_secs(60));
    assert!(put.status.success(), "{}", String::from_utf8_lossy(&put.stderr));
    let take = ordo(&["snapshot", "take", "--dir", s], Duration::from_secs(60));
    assert!(take.status.success(), "{}", String::from_utf8_lossy(&take.stderr));
    drop(nodes);
    let leader_dir = format!("{s}/node-{leader}");
    let snapshots = json_lines(&ordo(&["snapshot", "list", "--dir", &leader_dir, "--json"], Duration::from_secs(20)));
    let newest = snapshots.last().expect("the leader has a snapshot");
    assert!(newest["term"].as_u64().unwrap() >= 4, "{newest}");
    let newest = newest["path"].as_str().unwrap().to_string();

    // A fresh cluster, every member restored from that snapshot.
    let configs = init_small_segments(&restored, 3, common::base_port(3) + 20, "kv");
    for id in 1..=3 {
        let restore = ordo(
            &["snapshot", "restore", "--from", &newest, "--dir", &format!("{r}/node-{id}")],
            Duration::from_secs(20),
        );
        assert!(restore.status.success(), "{}", String::from_utf8_lossy(&restore.stderr));
    }
    let mut nodes = start_nodes(&configs);
    let input = "get round0\nget before\nput after restore\nget after\n";
    let output = ordo_with_stdin(&["client", "--dir", r, "--stdin"], input);
    let lines = json_lines(&output);
    assert_eq!(lines.iter().filter(|l| l["ok"] == true).count(), 4, "{lines:?}");
    assert_eq!(lines[1]["reply"], serde_json::json!({"Value": {"value": "snapshot"}}), "{}", lines[1]);
    assert_eq!(lines[3]["reply"], serde_json::json!({"Value": {"value": "restore"}}), "{}", lines[3]);
    for (id, node) in nodes.0.iter_mut().enumerate() {
        assert!(node.try_wait().unwrap().is_none(), "member {} stopped", id + 1);
    }
    let (_, term) = await_leader(r, None, Duration::from_secs(10));
    assert!(term > 4, "the restored cluster's terms go on after the snapshot's: {term}");
}

/// SIGKILLs member `id`'s process and waits for it.
fn kill(nodes: &mut Nodes, id: u64) {
    let child = &mut nodes.0[id as usize - 1];
    let _ = child.kill();
    let _ = child.wait();
}

/// Whether any member of `dir` leads within `limit`.
fn leads_within(dir: &str, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if describe(dir).iter().any(|m| m["role"] == "leader") {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    false
}

/// `get key{count}` through the client: the value it reads.
fn last_value(dir: &str, count: usize) -> serde_json::Value {
    let got = ordo(&["client", "--dir", dir, "get", &format!("key{count}")], Duration::from_secs(60));
    assert!(got.status.success(), "{}", String::from_utf8_lossy(&got.stderr));
    json_lines(&got)[0]["reply"].clone()
}

#[test]
fn a_member_that_lost_its_data_does_not_vote_until_it_has_caught_up() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = dir.path().join("c");
    let c = cluster.to_str().unwrap();
    let configs = init_small_segments(&cluster, 3, common::base_port(3) + 30, "kv");
    let mut nodes = start_nodes(&configs);
    let (leader, _) = await_leader(c, None, Duration::from_secs(30));
    // A follower stops; 500 puts are committed by the other two.
    let stale = if leader == 1 { 2 } else { 1 };
    let other = 6 - leader - stale;
    kill(&mut nodes, stale);
    let written = ordo_with_stdin(&["client", "--dir", c, "--stdin"], &puts(500));
    assert!(json_lines(&written).iter().all(|l| l["ok"] == true));
    // Both stop; one of them comes back with its data folder gone, beside the stale follower.
    kill(&mut nodes, leader);
    kill(&mut nodes, other);
    std::fs::remove_dir_all(cluster.join(format!("node-{leader}/data"))).unwrap();
    nodes.0[leader as usize - 1] = start_node(&configs[leader as usize - 1]);
    nodes.0[stale as usize - 1] = start_node(&configs[stale as usize - 1]);
    // They must not elect a leader: together they lack what was acknowledged.
    assert!(!leads_within(c, Duration::from_secs(3)), "the empty and the stale member elected a leader");
    // The member that kept its data returns: a leader with every put, and the empty one catches up.
    nodes.0[other as usize - 1] = start_node(&configs[other as usize - 1]);
    assert!(leads_within(c, Duration::from_secs(30)), "no leader once a member with the data is back");
    let value = "x".repeat(600);
    assert_eq!(last_value(c, 500), serde_json::json!({"Value": {"value": value}}), "an acknowledged put was lost");
    let deadline = Instant::now() + Duration::from_secs(30);
    let applied = |id: u64| {
        let stat = ordo(&["stat", "--dir", &format!("{c}/node-{id}"), "--json"], Duration::from_secs(20));
        json_lines(&stat)[0]["applied_position"].as_u64().unwrap()
    };
    while applied(leader) < applied(other) {
        assert!(Instant::now() < deadline, "the emptied member did not catch up");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(!cluster.join(format!("node-{leader}/data/recovering")).exists(), "caught up: it votes again");
}

#[test]
fn a_cluster_whose_majority_lost_its_data_waits_and_copies_of_the_survivor_bring_it_back() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = dir.path().join("c");
    let c = cluster.to_str().unwrap();
    let configs = init_small_segments(&cluster, 3, common::base_port(4) + 10, "kv");
    let mut nodes = start_nodes(&configs);
    let written = ordo_with_stdin(&["client", "--dir", c, "--stdin"], &puts(300));
    assert!(json_lines(&written).iter().all(|l| l["ok"] == true));
    let take = ordo(&["snapshot", "take", "--dir", c], Duration::from_secs(60));
    assert!(take.status.success(), "{}", String::from_utf8_lossy(&take.stderr));
    let after_snapshot = ordo_with_stdin(&["client", "--dir", c, "--stdin"], &puts(350));
    assert!(json_lines(&after_snapshot).iter().all(|l| l["ok"] == true));
    let (leader, _) = await_leader(c, None, Duration::from_secs(30));
    // All stop; both followers' folders are deleted; all start.
    for id in 1..=3 {
        kill(&mut nodes, id);
    }
    for id in (1..=3).filter(|&id| id != leader) {
        std::fs::remove_dir_all(cluster.join(format!("node-{id}/data"))).unwrap();
    }
    let leader_dir = format!("{c}/node-{leader}");
    let end = |verify: &std::process::Output| json_lines(verify)[0]["end"].as_u64().unwrap();
    let before = end(&ordo(&["log", "verify", "--dir", &leader_dir, "--json"], Duration::from_secs(30)));
    let mut nodes = start_nodes(&configs);
    // No leader: two members that lost their data must not outvote the one that has it.
    assert!(!leads_within(c, Duration::from_secs(3)), "members without their data elected a leader");
    kill(&mut nodes, leader);
    let after = end(&ordo(&["log", "verify", "--dir", &leader_dir, "--json"], Duration::from_secs(30)));
    assert!(after >= before, "the member with the data lost entries: {before} -> {after}");

    // Restored from the survivor's snapshot, the two would still not vote (they lost their
    // state, and the snapshot is older than what was acknowledged).
    let snapshots = json_lines(&ordo(&["snapshot", "list", "--dir", &leader_dir, "--json"], Duration::from_secs(20)));
    let newest = snapshots.last().expect("a snapshot")["path"].as_str().unwrap().to_string();
    let emptied: Vec<u64> = (1..=3).filter(|&id| id != leader).collect();
    for &id in &emptied {
        kill(&mut nodes, id);
        std::fs::remove_dir_all(cluster.join(format!("node-{id}/data"))).unwrap();
        let restore = ordo(
            &["snapshot", "restore", "--from", &newest, "--dir", &format!("{c}/node-{id}")],
            Duration::from_secs(20),
        );
        assert!(restore.status.success(), "{}", String::from_utf8_lossy(&restore.stderr));
        assert!(cluster.join(format!("node-{id}/data/recovering")).exists(), "restored, it still recovers");
    }
    let mut nodes = start_nodes(&configs);
    assert!(!leads_within(c, Duration::from_secs(3)), "members restored from an old snapshot elected a leader");
    // The operator copies the survivor's whole folder to the two, all stopped: every member
    // then holds everything acknowledged, and whoever leads has it.
    for id in 1..=3 {
        kill(&mut nodes, id);
    }
    for &id in &emptied {
        let data = cluster.join(format!("node-{id}/data"));
        std::fs::remove_dir_all(&data).unwrap();
        let copied = Command::new("cp").arg("-a").arg(cluster.join(format!("node-{leader}/data"))).arg(&data).status();
        assert!(copied.unwrap().success());
    }
    let _nodes = start_nodes(&configs);
    let value = "x".repeat(600);
    assert_eq!(last_value(c, 350), serde_json::json!({"Value": {"value": value}}), "a put after the snapshot");
}

#[test]
fn snapshot_take_reports_each_member_in_json_and_does_not_wait_for_one_that_is_down() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = dir.path().join("c");
    let c = cluster.to_str().unwrap();
    let configs = init_small_segments(&cluster, 3, common::base_port(5) + 10, "kv");
    let mut nodes = start_nodes(&configs);
    let written = ordo_with_stdin(&["client", "--dir", c, "--stdin"], &puts(20));
    assert!(json_lines(&written).iter().all(|l| l["ok"] == true));
    let taken = json_lines(&ordo(&["snapshot", "take", "--dir", c, "--json"], Duration::from_secs(60)));
    let position = taken[0]["position"].as_u64().unwrap();
    assert!(position > 0, "{}", taken[0]);
    let states: Vec<_> = taken[0]["members"].as_array().unwrap().iter().map(|m| m["state"].clone()).collect();
    assert_eq!(states, ["snapshotted", "snapshotted", "snapshotted"], "{}", taken[0]);

    // With a follower down, the others snapshot and the report says so, at once.
    let (leader, _) = await_leader(c, None, Duration::from_secs(30));
    let down = if leader == 3 { 2 } else { 3 };
    kill(&mut nodes, down);
    let started = Instant::now();
    let taken = json_lines(&ordo(&["snapshot", "take", "--dir", c, "--json"], Duration::from_secs(60)));
    assert!(started.elapsed() < Duration::from_secs(10), "it waited for the member that is down");
    let members = taken[0]["members"].as_array().unwrap();
    assert!(taken[0]["position"].as_u64().unwrap() > position);
    for member in members {
        let expected = if member["id"] == down { "not_running" } else { "snapshotted" };
        assert_eq!(member["state"], expected, "{}", taken[0]);
    }
}
