//! Any bytes as a snapshot file: the reader checks header, checksums and sizes, and each
//! app's restore validates the body; an error or a state, never a panic. A state restored
//! snapshots back to bytes that restore to the same state.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ordo_core::machine::StateMachine;

fn round_trip<M: StateMachine + PartialEq + std::fmt::Debug>(body: &[u8]) {
    if let Ok(machine) = M::restore(body) {
        let mut again = Vec::new();
        machine.snapshot(&mut again);
        let restored = M::restore(&again).expect("a snapshot restores");
        assert_eq!(restored, machine);
        let _ = machine.check_invariants();
    }
}

fuzz_target!(|data: &[u8]| {
    if let Ok(snapshot) = ordo_service::machinery::snapshot::Snapshot::from_bytes(data.to_vec(), "fuzz input") {
        let _ = snapshot.body();
    }
    // The apps' own restore, on the raw bytes (as the container hands a body over).
    let Some((&which, body)) = data.split_first() else { return };
    match ordo_fuzz::APPS[which as usize % ordo_fuzz::APPS.len()] {
        "ledger" => round_trip::<ordo_apps::ledger::Ledger>(body),
        "kv" => round_trip::<ordo_apps::kv::Kv>(body),
        "mutex" => round_trip::<ordo_apps::mutex::Mutex>(body),
        "airlock" => round_trip::<ordo_apps::airlock::Airlock>(body),
        _ => round_trip::<ordo_apps::book::Book>(body),
    }
});
