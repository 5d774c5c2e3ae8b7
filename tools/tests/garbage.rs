//! Garbage at live members: while a client commits commands, a raw UDP socket sends every
//! member random bytes, frames sealed with the wrong key, frames of another cluster, frames
//! of a future version, truncated and oversized frames. Each is dropped and counted (the
//! counters say so), none is applied: every member's state counts exactly the client's
//! commands.

mod common;

use common::{json_lines, ordo, ordo_with_stdin, start_nodes};
use ordo_core::{ClusterId, MemberId, Security, SessionId, Term};
use ordo_transport::{Body, FrameCodec, FrameKey, KeyRing};
use std::net::{SocketAddr, UdpSocket};
use std::time::Duration;

#[test]
fn garbage_at_live_members_is_dropped_counted_and_never_applied() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = dir.path().join("c");
    let c = cluster.to_str().unwrap().to_string();
    let base = common::base_port(0) + 20; // the cli tests' block 0 is used only up to +3
    let configs = common::init(&cluster, "echo", base);
    let _nodes = start_nodes(&configs);
    let node = ordo_core::NodeConfig::load(&configs[0]).unwrap();
    let key = ordo_service::machinery::node::load_key(&node.key_file).unwrap();
    let members: Vec<SocketAddr> = node.members.iter().map(|m| m.address).collect();

    // The garbage, made once.
    let frame = |cluster_id: ClusterId, frame_key: [u8; 32]| {
        let mut codec =
            FrameCodec::new(cluster_id, MemberId(0), Security::Mac, KeyRing::new(FrameKey::new(&frame_key)), 1408);
        let mut out = vec![0u8; 1408];
        let body = Body::ClientRequest { session: SessionId(1), sequence: 1, command: b"EVIL-EVIL-EVIL-EVIL" };
        let length = codec.encode(&mut out, Term(1), &body).unwrap();
        out.truncate(length);
        out
    };
    let good = frame(node.cluster_id(), key);
    let mut wrong_key = key;
    wrong_key[0] ^= 1;
    let mut future = good.clone();
    future[2] = future[2].wrapping_add(1); // the version byte, after the 2-byte magic
    let mut random = fastrand::Rng::with_seed(7);
    let mut garbage: Vec<Vec<u8>> = vec![
        frame(node.cluster_id(), wrong_key),
        frame(ClusterId(node.cluster_id().0 ^ 1), key),
        future,
        good[..good.len() - 5].to_vec(),
        good[..40].to_vec(),
        [good.clone(), vec![0; 600]].concat(),
        Vec::new(),
        vec![0xFF; 1],
    ];
    for length in [8, 40, 41, 100, 1400, 1472] {
        garbage.push((0..length).map(|_| random.u8(..)).collect());
    }
    let garbage_sent_each = garbage.len() * 40;

    // The client's commands and the garbage at the same time.
    let commands: String = (0..3000).map(|k| format!("command-{k}\n")).collect();
    let client = {
        let c = c.clone();
        std::thread::spawn(move || ordo_with_stdin(&["client", "--dir", &c, "--stdin"], &commands))
    };
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    for _ in 0..40 {
        for datagram in &garbage {
            for member in &members {
                socket.send_to(datagram, member).unwrap();
            }
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let replies = json_lines(&client.join().unwrap());
    assert_eq!(replies.len(), 3000);
    assert!(replies.iter().all(|r| r["ok"] == true), "every command answered while the garbage came");

    for id in 1..=3 {
        let stat = ordo(&["stat", "--dir", &format!("{c}/node-{id}"), "--json"], Duration::from_secs(20));
        let counters: serde_json::Value = serde_json::from_slice(&stat.stdout).unwrap();
        let dropped = counters["frames_dropped"].as_u64().unwrap();
        // Counted as dropped, less the few the kernel may drop when the socket's buffer is full.
        assert!(dropped >= (garbage_sent_each * 9 / 10) as u64, "member {id}: {dropped} dropped: {counters}");
        assert!(counters["mac_failures"].as_u64().unwrap() >= 30, "member {id}: {counters}");
    }
    drop(_nodes);
    for id in 1..=3 {
        let replay =
            json_lines(&ordo(&["replay", "--dir", &format!("{c}/node-{id}"), "--json"], Duration::from_secs(60)));
        let dump = ordo(&["log", "dump", "--dir", &format!("{c}/node-{id}")], Duration::from_secs(60));
        assert!(!String::from_utf8_lossy(&dump.stdout).contains("EVIL"), "member {id} logged garbage");
        assert!(replay[0]["entries"].as_u64().unwrap() >= 3000, "{}", replay[0]);
    }
}

#[test]
fn a_reply_too_large_for_a_datagram_is_answered_as_such_and_stops_no_member() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = dir.path().join("c");
    let c = cluster.to_str().unwrap().to_string();
    let base = common::base_port(1);
    let configs = common::init(&cluster, "echo", base);
    let mut nodes = start_nodes(&configs);
    // Echo replies with the command: the largest command that fits a request frame has a
    // reply that does not fit a response frame (whose fixed part is larger).
    let codec = FrameCodec::new(ClusterId(1), MemberId(0), Security::Mac, KeyRing::new(FrameKey::new(&[0; 32])), 1408);
    let largest = codec.capacity_bytes(ordo_transport::FrameType::ClientRequest);
    let limit = codec.capacity_bytes(ordo_transport::FrameType::ClientResponse);
    assert!(largest > limit);
    let input = format!("{}\nsmall\n", "x".repeat(largest));
    let output = ordo_with_stdin(&["client", "--dir", &c, "--stdin"], &input);
    let lines: Vec<serde_json::Value> =
        String::from_utf8_lossy(&output.stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 2, "{}", String::from_utf8_lossy(&output.stderr));
    let error = lines[0]["error"].as_str().unwrap_or_default();
    let said = format!("reply of {largest} bytes is over the limit of {limit}");
    assert!(error.contains(&said), "{}", lines[0]);
    assert_eq!(lines[1]["ok"], true, "{}", lines[1]);
    for (id, node) in nodes.0.iter_mut().enumerate() {
        assert!(node.try_wait().unwrap().is_none(), "member {} exited", id + 1);
    }
    // The leader counted it.
    let withheld: u64 = (1..=3).map(|id| counter(&c, id, "replies_too_large")).sum();
    assert!(withheld >= 1, "replies_too_large counted {withheld}");
}

/// Each member's counter `name`, from `ordo stat`. A member may still be starting on a loaded
/// machine, two being enough to answer: its counters file comes once it has opened its folder,
/// so a missing file is asked again for up to 20 s.
fn counter(c: &str, id: u16, name: &str) -> u64 {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let dir = format!("{c}/node-{id}");
    let stat = loop {
        let stat = ordo(&["stat", "--dir", &dir, "--json"], Duration::from_secs(20));
        if stat.status.success() || std::time::Instant::now() > deadline {
            break stat;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    json_lines(&stat)[0][name].as_u64().unwrap()
}

#[test]
fn a_client_cannot_act_as_a_member_and_client_keys_are_added_and_retired_live() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = dir.path().join("c");
    let c = cluster.to_str().unwrap().to_string();
    let base = common::base_port(2);
    let configs = common::init(&cluster, "echo", base);
    let _nodes = start_nodes(&configs);
    let one = ordo(&["client", "--dir", &c, "first"], Duration::from_secs(60));
    assert!(one.status.success(), "{}", String::from_utf8_lossy(&one.stderr));
    let node = ordo_core::NodeConfig::load(&configs[0]).unwrap();
    let members: Vec<SocketAddr> = node.members.iter().map(|m| m.address).collect();
    let term_before = (1..=3).map(|id| counter(&c, id, "term")).max().unwrap();

    // A client holds its own key only: whatever it claims, its frames are not members'.
    let client_key = ordo_service::load_client_key(&cluster.join("client.key")).unwrap();
    let mut forger =
        FrameCodec::new(node.cluster_id(), MemberId(1), Security::Mac, KeyRing::for_client(&client_key), 1408)
            .with_key_id(client_key.id);
    // And the cluster key, even if a client had it, does not carry a client's frames.
    let cluster_key = ordo_service::machinery::node::load_key(&node.key_file).unwrap();
    let mut as_member =
        FrameCodec::new(node.cluster_id(), MemberId(2), Security::Mac, KeyRing::new(FrameKey::new(&cluster_key)), 1408);
    let seal = |codec: &mut FrameCodec, body: Body<'_>| {
        let mut out = vec![0u8; 1408];
        let length = codec.encode(&mut out, Term(99), &body).unwrap();
        out.truncate(length);
        out
    };
    let far = ordo_core::Position(1 << 40);
    let forged = vec![
        seal(&mut forger, Body::VoteRequest { pre_vote: false, last_term: Term(90), last_position: far }),
        seal(&mut forger, Body::Heartbeat { position_commit: far, position_append: far }),
        seal(&mut as_member, Body::ClientRequest { session: SessionId(1), sequence: 1, command: b"EVIL" }),
        seal(&mut as_member, Body::SessionOpen { client_nonce: 77 }),
    ];
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    for _ in 0..10 {
        for datagram in &forged {
            for member in &members {
                socket.send_to(datagram, member).unwrap();
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let after = ordo(&["client", "--dir", &c, "second"], Duration::from_secs(60));
    assert!(after.status.success(), "{}", String::from_utf8_lossy(&after.stderr));
    for id in 1..=3 {
        assert!(counter(&c, id, "term") < 90, "member {id} took a forged term");
        assert!(counter(&c, id, "frames_refused") >= 30, "member {id} did not refuse the forged frames");
    }
    assert_eq!((1..=3).map(|id| counter(&c, id, "term")).max().unwrap(), term_before, "no election was forced");

    // A second client key, added to every member's client-keys file while they run, works;
    // the first, removed, no longer does.
    let second = ordo_service::ClientKey::generate(2);
    let second_file = dir.path().join("second.key");
    std::fs::write(&second_file, format!("cluster {}\n{}\n", node.cluster_id().0, second.to_line())).unwrap();
    for id in 1..=3 {
        std::fs::write(cluster.join(format!("node-{id}/client-keys")), format!("{}\n", second.to_line())).unwrap();
    }
    std::thread::sleep(Duration::from_millis(2500)); // members look at the file once a second
    let addresses = members.iter().map(|a| a.to_string()).collect::<Vec<_>>().join(",");
    let with_key = |file: &std::path::Path, word: &str| {
        let args = ["client", "--cluster", &addresses, "--key-file", file.to_str().unwrap(), "--app", "echo", word];
        ordo(&args, Duration::from_secs(60))
    };
    let third = with_key(&second_file, "third");
    assert!(third.status.success(), "{}", String::from_utf8_lossy(&third.stderr));
    let retired = with_key(&cluster.join("client.key"), "fourth");
    assert!(!retired.status.success(), "a retired key still works");
}
