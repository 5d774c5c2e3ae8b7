//! No allocation on the hot path after warm-up: three members serve a pipelining client
//! over loopback UDP; once warm, thousands more commands go through — appended, replicated,
//! group-committed, applied, answered — and a counting global allocator sees the members
//! allocate nothing. (The client is not counted: it runs between the members' duty cycles.)

mod common;

use common::*;
use ordo_service::machinery::echo::Echo;
use ordo_service::machinery::member::Member;
use ordo_service::{Client, ClientConfig};
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

struct Counting;

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);
static FIRST: Mutex<Option<String>> = Mutex::new(None);
thread_local! {
    static COUNTING: Cell<bool> = const { Cell::new(false) };
}

// SAFETY: every call is forwarded to the system allocator unchanged; the counting around
// it only touches an atomic, a const thread-local and (once, with counting off) a mutex.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note_allocation();
        // SAFETY: the caller upholds `alloc`'s contract, passed on as is.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, pointer: *mut u8, layout: Layout) {
        // SAFETY: as above.
        unsafe { System.dealloc(pointer, layout) }
    }
    unsafe fn realloc(&self, pointer: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note_allocation();
        // SAFETY: as above.
        unsafe { System.realloc(pointer, layout, new_size) }
    }
}

fn note_allocation() {
    if COUNTING.with(|c| c.get()) {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        COUNTING.with(|c| c.set(false)); // the backtrace allocates: not counted
        let mut first = FIRST.lock().unwrap();
        if first.is_none() {
            *first = Some(std::backtrace::Backtrace::force_capture().to_string());
        }
        drop(first);
        COUNTING.with(|c| c.set(true));
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

#[test]
fn members_allocate_nothing_per_command_once_warm() {
    let dirs = fresh_dirs();
    let addresses = reserve_addresses();
    let started = Instant::now();
    let mut members: Vec<_> =
        (1..=3u16).map(|id| open_member(id, dirs[id as usize - 1].path(), &addresses, 0)).collect();
    let mut client = Client::new(ClientConfig::new(addresses.clone(), CLUSTER, CLIENT_KEY)).unwrap();
    let mut run = |members: &mut Vec<Member<Echo>>, commands: u64, counted: bool| {
        let mut answered = 0;
        let mut submitted = 0;
        let deadline = Instant::now() + Duration::from_secs(30);
        while answered < commands {
            assert!(Instant::now() < deadline, "{answered} of {commands} answered");
            while submitted < commands && client.outstanding() < 32 {
                client.submit(&submitted.to_le_bytes());
                submitted += 1;
            }
            let now = started.elapsed().as_nanos() as u64;
            COUNTING.with(|c| c.set(counted));
            for member in members.iter_mut() {
                member.do_work(now).unwrap();
            }
            COUNTING.with(|c| c.set(false));
            client.poll(started.elapsed().as_nanos() as u64).unwrap();
            while client.take_reply().is_some() {
                answered += 1;
            }
        }
    };
    run(&mut members, 3000, false); // warm-up: buffers grow to their working size
    run(&mut members, 3000, true);
    let allocations = ALLOCATIONS.load(Ordering::Relaxed);
    let first = FIRST.lock().unwrap().take().unwrap_or_default();
    assert_eq!(allocations, 0, "the members allocated {allocations} times for 3000 commands; the first:\n{first}");
    let deadline = Instant::now() + Duration::from_secs(10);
    while members.iter().any(|m| m.machine().count < 6000) {
        assert!(Instant::now() < deadline, "followers apply everything");
        for member in members.iter_mut() {
            member.do_work(started.elapsed().as_nanos() as u64).unwrap();
        }
    }
    assert!(members.iter().all(|m| m.machine().count == 6000), "each command applied once");
}
