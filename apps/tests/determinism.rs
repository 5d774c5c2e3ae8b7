//! Every app, on its own workload: the same commands from scratch give the same replies,
//! events and snapshot bytes; and a state restored from a snapshot taken half way goes on
//! exactly as the original (same replies, events, timers and final snapshot).

use ordo_core::machine::{Context, StateMachine, TimerRequest};
use ordo_core::{ClusterTimeNs, Position, SessionId};

/// What applying one command produced.
type Output = (Vec<u8>, Vec<u8>, Vec<TimerRequest>);

fn apply<M: StateMachine>(machine: &mut M, k: u64, command: &[u8]) -> Output {
    let (mut reply, mut events, mut timers) = (Vec::new(), Vec::new(), Vec::new());
    // Sessions and time vary with k, as they would in a log.
    let time = ClusterTimeNs(k * 1_000_000);
    let mut ctx = Context::new(Position(k * 128), time, SessionId(1 + k % 3), &mut reply, &mut events, &mut timers);
    machine.apply(&mut ctx, command);
    (reply, events, timers)
}

fn snapshot<M: StateMachine>(machine: &M) -> Vec<u8> {
    let mut bytes = Vec::new();
    machine.snapshot(&mut bytes);
    bytes
}

fn check<M: StateMachine + Default>(workload: fn(u64, u64) -> Vec<u8>) {
    let commands: Vec<Vec<u8>> = (0..2000).map(|k| workload(1, k)).collect();
    let run = || {
        let mut machine = M::default();
        let outputs: Vec<Output> = commands.iter().enumerate().map(|(k, c)| apply(&mut machine, k as u64, c)).collect();
        machine.check_invariants().unwrap();
        (outputs, snapshot(&machine))
    };
    let (first, first_snapshot) = run();
    let (second, second_snapshot) = run();
    assert!(first == second, "the same commands gave different outputs");
    assert_eq!(first_snapshot, second_snapshot, "the same commands gave different states");

    let mut original = M::default();
    for (k, command) in commands[..1000].iter().enumerate() {
        apply(&mut original, k as u64, command);
    }
    let mut restored = M::restore(&snapshot(&original)).unwrap();
    for (k, command) in commands.iter().enumerate().skip(1000) {
        let expected = apply(&mut original, k as u64, command);
        assert!(apply(&mut restored, k as u64, command) == expected, "a restored state went on otherwise at {k}");
    }
    assert_eq!(snapshot(&restored), snapshot(&original));
}

#[test]
fn every_app_is_deterministic_and_restores_exactly() {
    check::<ordo_apps::ledger::Ledger>(ordo_apps::ledger::workload_command);
    check::<ordo_apps::kv::Kv>(ordo_apps::kv::workload_command);
    check::<ordo_apps::mutex::Mutex>(ordo_apps::mutex::workload_command);
    check::<ordo_apps::airlock::Airlock>(ordo_apps::airlock::workload_command);
    check::<ordo_apps::book::Book>(ordo_apps::book::workload_command);
}
