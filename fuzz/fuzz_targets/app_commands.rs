//! Any bytes as commands to an app (the first byte picks the app; the rest is split into
//! commands by a length byte each), after a few valid ones: each is applied or refused,
//! never a panic, and the app's invariants hold after every one.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ordo_core::machine::{Context, StateMachine};
use ordo_core::{ClusterTimeNs, Position, SessionId};

fn run<M: StateMachine + Default>(workload: fn(u64, u64) -> Vec<u8>, mut data: &[u8]) {
    let mut machine = M::default();
    let (mut reply, mut events, mut timers) = (Vec::new(), Vec::new(), Vec::new());
    let mut apply = |machine: &mut M, command: &[u8], k: u64| {
        reply.clear();
        events.clear();
        let mut aligned = rkyv::util::AlignedVec::<16>::new();
        aligned.extend_from_slice(command);
        let mut ctx = Context::new(
            Position(k * 64),
            ClusterTimeNs(k),
            SessionId(1 + k % 3),
            &mut reply,
            &mut events,
            &mut timers,
        );
        machine.apply(&mut ctx, &aligned);
        machine.check_invariants().expect("invariants hold after any command");
    };
    for k in 0..8 {
        apply(&mut machine, &workload(0, k), k);
    }
    let mut k = 8;
    while let Some((&length, rest)) = data.split_first() {
        let take = (length as usize).min(rest.len());
        apply(&mut machine, &rest[..take], k);
        data = &rest[take..];
        k += 1;
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&which, commands)) = data.split_first() else { return };
    match ordo_fuzz::APPS[which as usize % ordo_fuzz::APPS.len()] {
        "ledger" => run::<ordo_apps::ledger::Ledger>(ordo_apps::ledger::workload_command, commands),
        "kv" => run::<ordo_apps::kv::Kv>(ordo_apps::kv::workload_command, commands),
        "mutex" => run::<ordo_apps::mutex::Mutex>(ordo_apps::mutex::workload_command, commands),
        "airlock" => run::<ordo_apps::airlock::Airlock>(ordo_apps::airlock::workload_command, commands),
        _ => run::<ordo_apps::book::Book>(ordo_apps::book::workload_command, commands),
    }
});
