//! Applying a command allocates nothing once warm, for an app whose state does not grow
//! (the airlocks): the command is validated and read in place, the reply and the events are
//! encoded into reused buffers. (Apps whose state grows — a new account, transfer, key,
//! order — allocate for that state.)

use ordo_core::machine::{Context, StateMachine};
use ordo_core::{ClusterTimeNs, Position, SessionId};
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

struct Counting;

thread_local! {
    // Per thread, so tests running side by side count only their own allocations.
    static COUNTING: Cell<bool> = const { Cell::new(false) };
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

// SAFETY: forwards every call to the system allocator unchanged, counting around it.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if COUNTING.with(|c| c.get()) {
            ALLOCATIONS.with(|a| a.set(a.get() + 1));
        }
        // SAFETY: the caller upholds `alloc`'s contract, passed on as is.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, pointer: *mut u8, layout: Layout) {
        // SAFETY: as above.
        unsafe { System.dealloc(pointer, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

#[test]
fn the_airlocks_apply_commands_without_allocating_once_warm() {
    let allocations = allocations_when_warm::<ordo_apps::airlock::Airlock>(ordo_apps::airlock::workload_command, 4000);
    assert_eq!(allocations, 0, "allocations over 2000 warm commands");
}

/// Applies `commands` to a fresh `M`, the first half uncounted; returns the allocations
/// counted over the second half.
fn allocations_when_warm<M: StateMachine + Default>(workload: fn(u64, u64) -> Vec<u8>, count: u64) -> u64 {
    let commands: Vec<rkyv::util::AlignedVec<16>> = (0..count)
        .map(|k| {
            let mut aligned = rkyv::util::AlignedVec::new();
            aligned.extend_from_slice(&workload(1, k));
            aligned
        })
        .collect();
    let mut machine = M::default();
    let (mut reply, mut events, mut timers) = (Vec::new(), Vec::new(), Vec::new());
    let before = ALLOCATIONS.with(|a| a.get());
    for (k, command) in commands.iter().enumerate() {
        reply.clear();
        events.clear();
        COUNTING.with(|c| c.set(k as u64 >= count / 2));
        let mut ctx = Context::new(Position(0), ClusterTimeNs(0), SessionId(1), &mut reply, &mut events, &mut timers);
        machine.apply(&mut ctx, command);
        COUNTING.with(|c| c.set(false));
    }
    machine.check_invariants().unwrap();
    ALLOCATIONS.with(|a| a.get()) - before
}

#[test]
fn a_ledger_transfer_allocates_only_for_the_transfer_it_records() {
    // A posted transfer is a new entry in the transfers map (a tree node now and then); the
    // names in its event and reply are borrowed, not copied.
    let allocations = allocations_when_warm::<ordo_apps::ledger::Ledger>(ordo_apps::ledger::workload_command, 8000);
    eprintln!("ledger: {allocations} allocations over 4000 warm commands");
    assert!(allocations < 4000 / 4, "{allocations} allocations over 4000 warm commands");
}

#[test]
fn the_kv_store_allocates_only_for_keys_it_creates_again() {
    // Puts into an existing key reuse its value's allocation; gets and events borrow. What
    // allocates is a key made again after a delete (its name and its value).
    let allocations = allocations_when_warm::<ordo_apps::kv::Kv>(ordo_apps::kv::workload_command, 8000);
    // The workload deletes one command in eight (500 of 4000), and each key made again costs
    // its name and its value: about 1 000, plus a tree node now and then.
    eprintln!("kv: {allocations} allocations over 4000 warm commands");
    assert!(allocations < 4000 / 3, "{allocations} allocations over 4000 warm commands");
}
