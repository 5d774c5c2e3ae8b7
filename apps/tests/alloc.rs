//! Applying a command allocates nothing once warm, for an app whose state does not grow
//! (the airlocks): the command is validated and read in place, the reply and the events are
//! encoded into reused buffers. (Apps whose state grows — a new account, transfer, key,
//! order — allocate for that state.)

use ordo_core::machine::{Context, StateMachine};
use ordo_core::{ClusterTimeNs, Position, SessionId};
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering};

struct Counting;

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);
thread_local! {
    static COUNTING: Cell<bool> = const { Cell::new(false) };
}

// SAFETY: forwards every call to the system allocator unchanged, counting around it.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if COUNTING.with(|c| c.get()) {
            ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
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
    let commands: Vec<rkyv::util::AlignedVec<16>> = (0..4000)
        .map(|k| {
            let mut aligned = rkyv::util::AlignedVec::new();
            aligned.extend_from_slice(&ordo_apps::airlock::workload_command(1, k));
            aligned
        })
        .collect();
    let mut airlock = ordo_apps::airlock::Airlock::default();
    let (mut reply, mut events, mut timers) = (Vec::new(), Vec::new(), Vec::new());
    let mut apply = |airlock: &mut ordo_apps::airlock::Airlock, command: &[u8], counted: bool| {
        reply.clear();
        events.clear();
        COUNTING.with(|c| c.set(counted));
        let mut ctx = Context::new(Position(0), ClusterTimeNs(0), SessionId(1), &mut reply, &mut events, &mut timers);
        airlock.apply(&mut ctx, command);
        COUNTING.with(|c| c.set(false));
    };
    for command in &commands[..2000] {
        apply(&mut airlock, command, false);
    }
    for command in &commands[2000..] {
        apply(&mut airlock, command, true);
    }
    assert_eq!(ALLOCATIONS.load(Ordering::Relaxed), 0, "allocations over 2000 warm commands");
    airlock.check_invariants().unwrap();
}
