//! The `ordo` program as users run it: real member processes on loopback, killed and
//! restarted, always cleaned up (the demo kills its children on every exit path; these
//! tests bound every run with a timeout).

mod common;

use common::{Nodes, json_lines, ordo, ordo_with_stdin};
use std::process::Command;
use std::time::{Duration, Instant};

#[test]
fn the_demo_survives_its_leader_being_killed_and_every_member_ends_alike() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = dir.path().join("cluster");
    let output = ordo(
        &["demo", "--dir", cluster.to_str().unwrap(), "--app", "echo", "--seconds", "4"],
        Duration::from_secs(120),
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "ordo demo failed:\n{stdout}\n{stderr}");
    for expected in [
        "killed the leader",
        "leads after",
        "each applied exactly once on every member",
        "state hashes equal on all members",
    ] {
        assert!(stdout.contains(expected), "no {expected:?} in:\n{stdout}");
    }
    // The members wrote their logs, snapshots' folders and counters where init put them.
    for id in 1..=3 {
        let node = cluster.join(format!("node-{id}"));
        assert!(
            node.join("ordo.toml").exists() && node.join("data/log").is_dir() && node.join("data/counters").exists()
        );
    }
    // The folders, offline: every log intact, every member replays to the same state, the
    // counters readable, the log dumped with its commands.
    let node = |id: u32| cluster.join(format!("node-{id}"));
    let node_dir = |id: u32| node(id).to_str().unwrap().to_string();
    let verify = ordo(&["log", "verify", "--dir", &node_dir(1), "--json"], Duration::from_secs(30));
    assert!(verify.status.success(), "{}", String::from_utf8_lossy(&verify.stderr));
    let verified: serde_json::Value = serde_json::from_slice(&verify.stdout).unwrap();
    assert!(verified["entries"].as_u64().unwrap() > 8000);
    let hashes: Vec<String> = (1..=3)
        .map(|id| {
            let replay = ordo(&["replay", "--dir", &node_dir(id), "--json"], Duration::from_secs(30));
            let report: serde_json::Value = serde_json::from_slice(&replay.stdout).unwrap();
            report["state_hash"].as_str().unwrap().to_string()
        })
        .collect();
    assert!(hashes.windows(2).all(|w| w[0] == w[1]), "{hashes:?}");
    let stat = ordo(&["stat", "--dir", &node_dir(2), "--json"], Duration::from_secs(30));
    let counters: serde_json::Value = serde_json::from_slice(&stat.stdout).unwrap();
    assert!(counters["applied_position"].as_u64().unwrap() > 0, "{counters}");
    let dump = ordo(&["log", "dump", "--dir", &node_dir(3), "--to", "2000", "--json"], Duration::from_secs(30));
    let lines: Vec<serde_json::Value> =
        String::from_utf8_lossy(&dump.stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines[0]["kind"], "new-leadership-term");
    assert!(lines.iter().any(|l| l["kind"] == "command"));

    // A bit flipped in a member's log: verify names the file and the position.
    let segment = node(3).join("data/log/00000000000000000000.log");
    let mut bytes = std::fs::read(&segment).unwrap();
    bytes[4096 + 200] ^= 0x10;
    std::fs::write(&segment, bytes).unwrap();
    let corrupt = ordo(&["log", "verify", "--dir", &node_dir(3)], Duration::from_secs(30));
    assert!(!corrupt.status.success());
    let stderr = String::from_utf8_lossy(&corrupt.stderr);
    assert!(stderr.contains("00000000000000000000.log") && stderr.contains("position"), "{stderr}");
    std::fs::remove_dir_all(node(3).join("data")).unwrap(); // it will catch up from the others

    // A second demo on the same folder reuses the cluster and its logs.
    let output = ordo(&["demo", "--dir", cluster.to_str().unwrap(), "--seconds", "2"], Duration::from_secs(120));
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
}

#[test]
fn the_default_demo_runs_the_ledger_and_money_is_conserved_on_every_member() {
    let output = ordo(&["demo", "--seconds", "4"], Duration::from_secs(120));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "ordo demo failed:\n{stdout}\n{}", String::from_utf8_lossy(&output.stderr));
    assert_eq!(stdout.matches("money conserved").count(), 3, "{stdout}");
    assert!(stdout.contains("state hashes equal on all members"), "{stdout}");
}

#[test]
fn bad_input_gets_one_sentence_and_a_failing_exit() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = dir.path().join("c");
    let base = common::base_port(0).to_string();
    let init = ["init", "--dir", cluster.to_str().unwrap(), "--base-port", &base];
    assert!(ordo(&init, Duration::from_secs(20)).status.success());
    let again = ordo(&init, Duration::from_secs(20));
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("already holds a cluster"));

    let config = cluster.join("node-1/ordo.toml");
    let text = std::fs::read_to_string(&config).unwrap().replace("member_id = 1", "member_id = 9");
    std::fs::write(&config, text).unwrap();
    let node = ordo(&["node", "--config", config.to_str().unwrap()], Duration::from_secs(20));
    assert!(!node.status.success());
    let stderr = String::from_utf8_lossy(&node.stderr);
    assert!(stderr.contains("ordo.toml") && stderr.contains("member_id 9"), "{stderr}");

    for (args, said) in [
        (&["bench", "--baseline", "tcp"][..], "--baseline takes udp"),
        (&["bench", "--baseline", "udp", "--idle", "fast"], "--idle is busy-spin"),
        (&["bench"], "name the cluster"),
        (&["bench", "--cluster", "127.0.0.1:1"], "--key-file"),
        (&["bench", "--plot", "/nonexistent/x.svg", "--inputs", "/nonexistent/a.hgrm"], "/nonexistent/a.hgrm"),
    ] {
        let output = ordo(args, Duration::from_secs(20));
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success() && stderr.contains(said), "{args:?}: {stderr}");
    }
}

#[test]
fn the_simulator_runs_each_app_from_the_command_line() {
    for app in ["ledger", "kv", "mutex", "airlock", "book"] {
        let output = ordo(&["sim", "--seeds", "3", "--app", app, "--json"], Duration::from_secs(120));
        assert!(output.status.success(), "{app}: {}", String::from_utf8_lossy(&output.stderr));
        let summary: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
        assert_eq!((summary["seeds"].as_u64(), summary["failures"].as_u64()), (Some(3), Some(0)), "{app}");
    }
}

#[test]
fn a_client_sends_ledger_commands_and_gets_json_replies_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = dir.path().join("c");
    let base = common::base_port(1);
    let init =
        ordo(&["init", "--dir", cluster.to_str().unwrap(), "--base-port", &base.to_string()], Duration::from_secs(20));
    assert!(init.status.success(), "{}", String::from_utf8_lossy(&init.stderr));
    // Snapshots every few entries, so the session leaves some to look at.
    for id in 1..=3 {
        let config = cluster.join(format!("node-{id}/ordo.toml"));
        let text =
            std::fs::read_to_string(&config).unwrap().replace("interval_bytes = 4194304", "interval_bytes = 512");
        // Member 1 serves its counters to Prometheus.
        let metrics = if id == 1 { format!("metrics_addr = \"127.0.0.1:{}\"\n", base + 20) } else { String::new() };
        std::fs::write(&config, metrics + &text).unwrap();
    }
    let configs: Vec<_> = (1..=3).map(|id| cluster.join(format!("node-{id}/ordo.toml"))).collect();
    let nodes = common::start_nodes(&configs);
    let c = cluster.to_str().unwrap();
    let opened = ordo(&["client", "--dir", c, "open", "alice"], Duration::from_secs(60));
    assert!(opened.status.success(), "{}", String::from_utf8_lossy(&opened.stderr));
    let input = "open bob --limit 50\ndeposit alice 100\ntransfer 1 alice bob 70\ntransfer 1 alice bob 70\n\
                 transfer 2 alice bob 500\nfly away\nbalance bob\ntotal\n";
    let output = ordo_with_stdin(&["client", "--dir", c, "--stdin"], input);
    assert!(!output.status.success(), "one line was refused, so the exit says so");
    let lines: Vec<serde_json::Value> =
        String::from_utf8_lossy(&output.stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.iter().map(|l| l["line"].as_u64().unwrap()).collect::<Vec<_>>(), [1, 2, 3, 4, 5, 6, 7, 8]);
    assert_eq!(lines[2]["reply"], serde_json::json!({"Posted": {"id": 1}}));
    assert_eq!(lines[3]["reply"], serde_json::json!({"Exists": {"id": 1}}), "a repeated id is not applied twice");
    assert_eq!((lines[4]["ok"].as_bool(), lines[4]["error"].as_str()), (Some(false), Some("InsufficientFunds")));
    assert!(lines[5]["error"].as_str().unwrap().contains("open, deposit, transfer"), "{}", lines[5]);
    assert_eq!(lines[6]["reply"], serde_json::json!({"Balance": {"balance": 70, "limit": 50}}));
    assert_eq!(lines[7]["reply"], serde_json::json!({"Total": {"total": 100, "deposits": 100}}));
    assert!(lines[7]["position"].as_u64().unwrap() > lines[0]["position"].as_u64().unwrap());

    // The same cluster named by its addresses and key file, as from another host.
    let addresses = (1..=3).map(|i| format!("127.0.0.1:{}", base + i)).collect::<Vec<_>>().join(",");
    let key = format!("{c}/client.key");
    let by_address =
        ordo(&["client", "--cluster", &addresses, "--key-file", &key, "balance", "bob"], Duration::from_secs(60));
    let reply: serde_json::Value = serde_json::from_slice(&by_address.stdout).unwrap();
    assert_eq!(reply["reply"], serde_json::json!({"Balance": {"balance": 70, "limit": 50}}));

    // One leader, and (once the followers hear the last commit) equal commit positions.
    let deadline = Instant::now() + Duration::from_secs(10);
    let members = loop {
        let describe = ordo(&["describe", "--dir", c, "--json"], Duration::from_secs(20));
        let members = json_lines(&describe);
        let commits: Vec<_> = members.iter().map(|m| m["commit_position"].as_u64()).collect();
        if commits.iter().all(|p| p.is_some_and(|p| p > 0) && *p == commits[0]) || Instant::now() > deadline {
            break members;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(members.len(), 3);
    assert_eq!(members.iter().filter(|m| m["role"] == "leader").count(), 1, "{members:?}");
    let commit = &members[0]["commit_position"];
    assert!(members.iter().all(|m| &m["commit_position"] == commit && commit.as_u64() > Some(0)), "{members:?}");
    // The same over the network, as from another host.
    let remote = ordo(&["describe", "--cluster", &addresses, "--key-file", &key, "--json"], Duration::from_secs(20));
    let remote: Vec<serde_json::Value> =
        String::from_utf8_lossy(&remote.stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(remote.iter().map(|m| m["id"].as_u64().unwrap()).collect::<Vec<_>>(), [1, 2, 3], "{remote:?}");
    assert_eq!(remote.iter().filter(|m| m["role"] == "leader").count(), 1, "{remote:?}");
    let leader_id = remote.iter().find(|m| m["role"] == "leader").unwrap()["id"].clone();
    assert!(
        remote.iter().all(|m| m["leader"] == leader_id && m["commit_position"].as_u64().unwrap() > 0),
        "{remote:?}"
    );

    // The counters, from the file and over HTTP.
    let stat = ordo(&["stat", "--dir", &format!("{c}/node-1"), "--json"], Duration::from_secs(20));
    let counters: serde_json::Value = serde_json::from_slice(&stat.stdout).unwrap();
    assert!(counters["applied_position"].as_u64().unwrap() > 0, "{counters}");
    let scrape = {
        use std::io::{Read, Write};
        let mut stream = std::net::TcpStream::connect(("127.0.0.1", base + 20)).unwrap();
        stream.write_all(b"GET /metrics HTTP/1.1\r\n\r\n").unwrap();
        let mut text = String::new();
        stream.read_to_string(&mut text).unwrap();
        text
    };
    assert!(scrape.starts_with("HTTP/1.1 200") && scrape.contains("ordo_commit_position{member=\"1\"} "), "{scrape}");
    assert!(scrape.contains("# TYPE ordo_frames_sent_total counter"), "{scrape}");

    // An operator's snapshot: every member takes it at the same position.
    let take = ordo(&["snapshot", "take", "--dir", c], Duration::from_secs(60));
    let said = String::from_utf8_lossy(&take.stdout);
    assert!(take.status.success(), "{said}{}", String::from_utf8_lossy(&take.stderr));
    assert_eq!(said.matches("has snapshotted at").count(), 3, "{said}");

    // Offline: the snapshots, each checked against a replay of the log; the event stream.
    drop(nodes);
    let member = format!("{c}/node-1");
    let list = ordo(&["snapshot", "list", "--dir", &member, "--json"], Duration::from_secs(20));
    assert!(list.status.success(), "{}", String::from_utf8_lossy(&list.stderr));
    assert!(!list.stdout.is_empty(), "snapshots were taken");
    let verify = ordo(&["snapshot", "verify", "--dir", &member], Duration::from_secs(20));
    let verdict = String::from_utf8_lossy(&verify.stdout);
    assert!(verify.status.success() && verdict.contains("matches a replay"), "{verdict}");
    let mut tail = Command::new(env!("CARGO_BIN_EXE_ordo"))
        .args(["events", "tail", "--dir", &member, "--json"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    let _ = Command::new("kill").arg(tail.id().to_string()).status(); // SIGTERM: it stops following
    let deadline = Instant::now() + Duration::from_secs(10);
    while tail.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "events tail did not stop on SIGTERM");
        std::thread::sleep(Duration::from_millis(20));
    }
    let events = String::from_utf8_lossy(&tail.wait_with_output().unwrap().stdout).into_owned();
    assert!(events.contains("TransferPosted") && events.contains("AccountOpened"), "{events}");

    // The newest snapshot seeds a fresh one-member cluster, which answers from its state.
    let newest: serde_json::Value =
        serde_json::from_str(String::from_utf8_lossy(&list.stdout).lines().last().unwrap()).unwrap();
    let fresh = dir.path().join("fresh");
    let f = fresh.to_str().unwrap();
    let fresh_port = (base + 30).to_string();
    assert!(
        ordo(&["init", "--dir", f, "--members", "1", "--base-port", &fresh_port], Duration::from_secs(20))
            .status
            .success()
    );
    let member = format!("{f}/node-1");
    let restore = ordo(
        &["snapshot", "restore", "--from", newest["path"].as_str().unwrap(), "--dir", &member],
        Duration::from_secs(20),
    );
    assert!(restore.status.success(), "{}", String::from_utf8_lossy(&restore.stderr));
    let _fresh_node = Nodes(vec![common::start_node(std::path::Path::new(&format!("{member}/ordo.toml")))]);
    let balance = ordo(&["client", "--dir", f, "balance", "alice"], Duration::from_secs(60));
    let reply: serde_json::Value = serde_json::from_slice(&balance.stdout).unwrap();
    assert!(reply["reply"]["Balance"].is_object(), "the restored state knows alice: {reply}");
    let again = ordo(
        &["snapshot", "restore", "--from", newest["path"].as_str().unwrap(), "--dir", &member],
        Duration::from_secs(20),
    );
    assert!(!again.status.success(), "a member with a log is not restored over");
}

#[test]
fn ordo_cluster_runs_every_member_and_stops_them_all_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = dir.path().join("c");
    let c = cluster.to_str().unwrap().to_string();
    let base = common::base_port(2);
    let mut running = Command::new(env!("CARGO_BIN_EXE_ordo"))
        .args(["cluster", "--dir", &c, "--base-port", &base.to_string()])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let _guard = Nodes(Vec::new());
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let describe = ordo(&["describe", "--dir", &c, "--json"], Duration::from_secs(20));
        if String::from_utf8_lossy(&describe.stdout).contains("\"leader\"") {
            break;
        }
        if Instant::now() > deadline {
            let _ = running.kill();
            panic!("no leader in 30 s");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = Command::new("kill").arg(running.id().to_string()).status(); // SIGTERM
    let deadline = Instant::now() + Duration::from_secs(20);
    while running.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "ordo cluster did not stop on SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(running.wait().unwrap().success());
    let describe = ordo(&["describe", "--dir", &c, "--json"], Duration::from_secs(20));
    let stopped = String::from_utf8_lossy(&describe.stdout).matches("\"stopped\"").count();
    assert_eq!(stopped, 3, "every member stopped: {}", String::from_utf8_lossy(&describe.stdout));
}

/// The CI smoke of `ordo bench`: a short run against a 3-member cluster it starts, and the
/// UDP floor, each one JSON object with the contract's fields, every command answered; the
/// distribution and the chart are written.
#[test]
fn ordo_bench_measures_a_cluster_it_starts_and_the_udp_floor() {
    let dir = tempfile::tempdir().unwrap();
    let hgrm = dir.path().join("ordo.hgrm");
    let svg = dir.path().join("ordo.svg");
    let short = ["--duration", "2", "--warmup", "0.5", "--rate", "2000", "--json"];
    let mut args = vec!["bench", "--members", "3", "--durability", "replicated", "--idle", "block"];
    args.extend(short);
    args.extend(["--out", hgrm.to_str().unwrap(), "--plot", svg.to_str().unwrap()]);
    let cluster = json_lines(&ordo(&args, Duration::from_secs(60)));
    let floor = json_lines(&ordo(&[&["bench", "--baseline", "udp"], &short[..]].concat(), Duration::from_secs(30)));
    for run in [&cluster[0], &floor[0]] {
        for field in [
            "rate",
            "size",
            "sent",
            "completed",
            "p50_us",
            "p90_us",
            "p99_us",
            "p999_us",
            "p9999_us",
            "max_us",
            "throughput",
        ] {
            assert!(run[field].is_number(), "{field} in {run}");
        }
        assert_eq!(run["sent"], run["completed"], "every command answered: {run}");
        assert!(run["sent"].as_u64().unwrap() >= 3900, "2 s at 2000/s: {run}");
        assert!(run["p50_us"].as_f64().unwrap() <= run["max_us"].as_f64().unwrap());
    }
    assert_eq!(cluster[0]["bench"], "ordo echo replicated");
    assert!(std::fs::read_to_string(&hgrm).unwrap().contains("#[Max"));
    assert!(std::fs::read_to_string(&svg).unwrap().starts_with("<svg"));

    let both = dir.path().join("both.svg");
    let floor_file = dir.path().join("floor.hgrm");
    let mut args = vec!["bench", "--baseline", "udp", "--out", floor_file.to_str().unwrap()];
    args.extend(short);
    json_lines(&ordo(&args, Duration::from_secs(30)));
    let inputs = format!("{},{}", hgrm.display(), floor_file.display());
    let plotted = ordo(&["bench", "--plot", both.to_str().unwrap(), "--inputs", &inputs], Duration::from_secs(20));
    assert!(plotted.status.success(), "{}", String::from_utf8_lossy(&plotted.stderr));
    let chart = std::fs::read_to_string(&both).unwrap();
    assert!(chart.contains("\nordo\n</text>") && chart.contains("\nfloor\n</text>"), "both runs are labelled");
}

/// The peers through the same harness: a short run against etcd and NATS JetStream clusters
/// the command starts on loopback. Needs Debian's etcd-server and nats-server (`.ci/run`
/// installs them and sets ORDO_REQUIRE_PEERS=1, so there a missing one fails the test).
#[test]
fn ordo_bench_measures_etcd_and_nats_jetstream_through_the_same_harness() {
    let have = |program: &str| Command::new(program).arg("--version").output().is_ok_and(|o| o.status.success());
    if !have("etcd") || !have("nats-server") {
        assert!(std::env::var_os("ORDO_REQUIRE_PEERS").is_none(), "etcd and nats-server must be installed here");
        eprintln!("skipped: etcd or nats-server is not installed (apt-get install etcd-server nats-server)");
        return;
    }
    for peer in ["etcd", "nats"] {
        let args = ["bench", "--peer", peer, "--duration", "1", "--warmup", "0.5", "--rate", "200", "--json"];
        let run = json_lines(&ordo(&args, Duration::from_secs(90)));
        assert_eq!(run[0]["sent"], run[0]["completed"], "{peer}: every request answered: {}", run[0]);
        assert!(run[0]["sent"].as_u64().unwrap() >= 190, "{}", run[0]);
    }
}

/// The CI version of the Jepsen-style bank test: real members SIGKILLed (the leader, a
/// follower, all three) under a stream of transfers; every check must find nothing.
#[test]
fn the_bank_test_loses_nothing_through_kills() {
    let args = ["bank", "--seconds", "10", "--rate", "300", "--fault-interval", "1.5", "--json"];
    let report = &json_lines(&ordo(&args, Duration::from_secs(180)))[0];
    assert!(report["kills"].as_u64().unwrap() >= 4, "{report}");
    assert_eq!(report["acknowledged"], report["transfers"], "{report}");
    for check in ["lost", "unexplained", "divergences", "not_linearizable", "corrupt"] {
        assert_eq!(report[check], 0, "{check}: {report}");
    }
    assert!(report["posted"].as_u64().unwrap() > 1000, "{report}");
}

/// The same through a lossy network: every member loses, duplicates and reorders datagrams.
#[test]
fn the_bank_test_loses_nothing_through_kills_on_a_lossy_network() {
    let args = ["bank", "--lossy", "--seconds", "8", "--rate", "300", "--fault-interval", "2", "--json"];
    let report = &json_lines(&ordo(&args, Duration::from_secs(180)))[0];
    assert_eq!(report["acknowledged"], report["transfers"], "{report}");
    for check in ["lost", "unexplained", "divergences", "not_linearizable", "corrupt"] {
        assert_eq!(report[check], 0, "{check}: {report}");
    }
}

/// The same with partitions between members in network namespaces (root only).
#[test]
fn the_bank_test_loses_nothing_through_partitions() {
    if !rustix::process::geteuid().is_root() {
        eprintln!("skipped: network namespaces need root");
        return;
    }
    let args = ["bank", "--partitions", "--seconds", "12", "--rate", "300", "--fault-interval", "2", "--json"];
    let report = &json_lines(&ordo(&args, Duration::from_secs(180)))[0];
    assert!(report["partitions"].as_u64().unwrap() >= 3, "{report}");
    assert_eq!(report["acknowledged"], report["transfers"], "{report}");
    for check in ["lost", "unexplained", "divergences", "not_linearizable", "corrupt", "stale_leaders"] {
        assert_eq!(report[check], 0, "{check}: {report}");
    }
}

/// Every app through `ordo client`, each on a one-member cluster of its own: its commands
/// parsed from words, applied, and answered in JSON.
#[test]
fn every_app_answers_its_commands_through_the_client() {
    let dir = tempfile::tempdir().unwrap();
    let cases: [(&str, &str, &[serde_json::Value]); 4] = [
        (
            "kv",
            "put colour blue\nget colour\ncas colour blue green\nget colour\ndelete colour\nget colour\n",
            &[
                serde_json::json!("Stored"),
                serde_json::json!({"Value": {"value": "blue"}}),
                serde_json::json!("Stored"),
                serde_json::json!({"Value": {"value": "green"}}),
                serde_json::json!({"Deleted": {"existed": true}}),
                serde_json::json!({"Value": {"value": null}}),
            ],
        ),
        (
            "mutex",
            "acquire printer\nholder printer\nrelease printer\nholder printer\n",
            &[
                serde_json::json!("Granted"),
                serde_json::Value::Null, // the holder is this client's session
                serde_json::json!("Released"),
                serde_json::json!({"Holder": {"holder": null, "queue": []}}),
            ],
        ),
        (
            "airlock",
            "status\nbay depressurize\ncycle A\nopen A outer\ndoor open\n",
            &[
                serde_json::Value::Null,
                serde_json::Value::Null,
                serde_json::Value::Null,
                serde_json::Value::Null,
                serde_json::json!({"Done": {"status": {
                    "locks": {"A": "outer open, depressurized", "B": "closed, pressurized",
                              "C": "closed, pressurized", "D": "closed, pressurized"},
                    "bay": "depressurized, door open"}}}),
            ],
        ),
        (
            "book",
            "order 1 buy 100 5\norder 2 sell 101 3\norder 3 sell 100 2\ndepth\ncancel 1\n",
            &[
                serde_json::json!({"Accepted": {"filled": 0, "resting": 5}}),
                serde_json::json!({"Accepted": {"filled": 0, "resting": 3}}),
                serde_json::json!({"Accepted": {"filled": 2, "resting": 0}}),
                serde_json::json!({"Depth": {"bids": [[100, 3]], "asks": [[101, 3]]}}),
                serde_json::json!({"Cancelled": {"remaining": 3}}),
            ],
        ),
    ];
    for (index, (app, input, expected)) in cases.iter().enumerate() {
        let cluster = dir.path().join(app);
        let c = cluster.to_str().unwrap();
        let base = (common::base_port(0) + 10 + 2 * index as u16).to_string();
        let init =
            ordo(&["init", "--dir", c, "--members", "1", "--app", app, "--base-port", &base], Duration::from_secs(20));
        assert!(init.status.success(), "{}", String::from_utf8_lossy(&init.stderr));
        let _node = Nodes(vec![common::start_node(&cluster.join("node-1/ordo.toml"))]);
        let replies = json_lines(&ordo_with_stdin(&["client", "--dir", c, "--stdin"], input));
        assert_eq!(replies.len(), expected.len(), "{app}: {replies:?}");
        for (reply, expected) in replies.iter().zip(expected.iter()) {
            assert_eq!(reply["ok"], true, "{app}: {reply}");
            if !expected.is_null() {
                assert_eq!(&reply["reply"], expected, "{app}");
            }
        }
    }
}
