//! The client library against three members, each on its own runner thread over loopback
//! UDP: pipelined commands committed and answered, the leader killed under load, the
//! client carrying on with the new leader and no command applied twice; the counters files
//! read from outside the members, as `ordo stat` reads them.

mod common;

use common::*;
use ordo_core::Position;
use ordo_core::Threading;
use ordo_core::idle::IdleStrategy;
use ordo_log::counters::CountersReader;
use ordo_service::machinery::echo::Echo;
use ordo_service::machinery::member::{Member, MemberConfig};
use ordo_service::machinery::runtime::{Runner, RunnerConfig, Stopped};
use ordo_service::{Client, ClientConfig};
use std::collections::BTreeSet;
use std::time::{Duration, Instant};

fn spawn(member: Member<Echo>, started: Instant) -> Runner<Member<Echo>> {
    Runner::spawn(member, RunnerConfig { idle: IdleStrategy::Backoff, core: None }, started).unwrap()
}

fn stopped(runner: Runner<Member<Echo>>) -> Member<Echo> {
    match runner.stop() {
        Stopped::Asked(member) => member,
        Stopped::Failed(_, error) => panic!("a member failed: {error}"),
    }
}

/// The leader, as the members' counters files say (role 2), waiting up to 10 s for one.
fn leader(dirs: &[tempfile::TempDir], alive: &[bool]) -> usize {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        for (i, dir) in dirs.iter().enumerate() {
            if alive[i]
                && let Ok(counters) = CountersReader::open(&dir.path().join("counters"))
                && counters.value("role") == Some(2)
            {
                return i;
            }
        }
        assert!(Instant::now() < deadline, "no leader within 10 s");
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn a_pipelining_client_rides_out_a_leader_crash_and_nothing_applies_twice() {
    ride_out_a_leader_crash(Threading::Shared);
}

#[test]
fn the_same_with_each_members_service_on_its_own_thread() {
    ride_out_a_leader_crash(Threading::Dedicated);
}

fn ride_out_a_leader_crash(threading: Threading) {
    let dirs = fresh_dirs();
    let addresses = reserve_addresses();
    let started = Instant::now();
    let open = |id: u16, now: u64| {
        let tweak = |config: &mut MemberConfig| config.threading = threading;
        open_member_with(id, dirs[id as usize - 1].path(), &addresses, now, Echo::default(), tweak).0
    };
    let mut runners: Vec<Option<_>> = (1..=3u16).map(|id| Some(spawn(open(id, 0), started))).collect();
    let mut alive = [true; 3];
    let first_leader = leader(&dirs, &alive);

    let mut client = Client::new(ClientConfig::new(addresses.clone(), CLUSTER, CLIENT_KEY)).unwrap();
    client.subscribe_events(Position::ZERO);
    let commands: Vec<Vec<u8>> = (0..200u64).map(|k| k.to_le_bytes().to_vec()).collect();
    let replies = client.call_all(commands.iter().map(|c| c.as_slice()), Duration::from_secs(20)).unwrap();
    assert_eq!(replies.len(), 200);
    for (reply, command) in replies.iter().zip(&commands) {
        assert_eq!(&reply.reply, command, "each reply is its own command's");
    }
    assert!(replies.windows(2).all(|w| w[0].position < w[1].position), "committed in order");
    assert_eq!(client.target(), addresses[first_leader], "the client found the leader");

    // The leader crashes with commands in flight; the client goes on with the next leader.
    let tickets: BTreeSet<u64> = (200..400u64).map(|k| client.submit(&k.to_le_bytes())).collect();
    let mut answered = BTreeSet::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut crashed = false;
    while answered.len() < tickets.len() {
        assert!(Instant::now() < deadline, "{} of 200 answered after the crash", answered.len());
        client.poll(client.now_ns()).unwrap();
        while let Some(reply) = client.take_reply() {
            assert!(answered.insert(reply.ticket), "ticket {} answered twice", reply.ticket);
        }
        if !crashed && answered.len() >= 20 {
            crashed = true;
            drop(stopped(runners[first_leader].take().unwrap())); // no close: a crash
            alive[first_leader] = false;
        }
        std::thread::sleep(Duration::from_micros(200));
    }
    assert!(crashed);
    let new_leader = leader(&dirs, &alive);
    assert_ne!(new_leader, first_leader);

    // The crashed member comes back and catches up; every member applied each command once.
    let now = started.elapsed().as_nanos() as u64;
    runners[first_leader] = Some(spawn(open(first_leader as u16 + 1, now), started));
    let reply = client.call(b"last", Duration::from_secs(10)).unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let applied: Vec<u64> = dirs
            .iter()
            .map(|d| CountersReader::open(&d.path().join("counters")).unwrap().value("applied_position").unwrap())
            .collect();
        if applied.iter().all(|&a| a > reply.position.0) {
            break;
        }
        assert!(Instant::now() < deadline, "members applied only to {applied:?}");
        std::thread::sleep(Duration::from_millis(5));
    }
    // Every command's event came once, in order, across the failover.
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut events = Vec::new();
    while events.len() < 401 {
        assert!(Instant::now() < deadline, "{} of 401 events came", events.len());
        client.poll(client.now_ns()).unwrap();
        while let Some(event) = client.take_event() {
            events.push(event);
        }
        std::thread::sleep(Duration::from_micros(200));
    }
    assert_eq!(events.len(), 401);
    assert!(events.windows(2).all(|w| w[0].next <= w[1].position && w[0].source < w[1].source), "in order, once");
    assert_eq!(events[0].bytes, 0u64.to_le_bytes());
    assert_eq!(events.last().unwrap().bytes, b"last");
    assert_eq!(events.last().unwrap().source, reply.position, "tied to the command that emitted it");
    let counters = CountersReader::open(&dirs[new_leader].path().join("counters")).unwrap();
    assert!(counters.value("frames_received").unwrap() > 0 && counters.value("applied_entries").unwrap() > 400);
    let (p50, p99) = (counters.value("apply_ns_p50").unwrap(), counters.value("apply_ns_p99").unwrap());
    assert!(p50 > 0 && p50 <= p99, "apply time percentiles published: {p50} ns, {p99} ns");
    for runner in runners.into_iter().flatten() {
        let mut member = stopped(runner);
        member.join_service().unwrap();
        assert_eq!(member.machine().count, 401, "each command applied exactly once on member {}", member.id().0);
    }
}
