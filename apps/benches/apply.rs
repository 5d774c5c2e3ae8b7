//! Apply throughput per app on one thread: commands through `StateMachine::apply` (rkyv
//! validated and read in place, reply and events encoded), beside a plain in-memory loop
//! doing the same state changes on native structs, measured in the same run.
//!
//! `cargo bench -p ordo-apps --bench apply`

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use ordo_core::machine::{Context, StateMachine};
use ordo_core::{ClusterTimeNs, Position, SessionId};
use std::collections::BTreeMap;
use std::hint::black_box;

const COMMANDS: u64 = 10_000;

/// The workload's commands, each in an aligned buffer (as payloads are in the mapped log).
fn commands(workload: fn(u64, u64) -> Vec<u8>) -> Vec<rkyv::util::AlignedVec<16>> {
    (0..COMMANDS)
        .map(|k| {
            let mut aligned = rkyv::util::AlignedVec::new();
            aligned.extend_from_slice(&workload(1, k));
            aligned
        })
        .collect()
}

fn apply_all<M: StateMachine + Default>(commands: &[rkyv::util::AlignedVec<16>]) -> M {
    let mut machine = M::default();
    let (mut reply, mut events, mut timers) = (Vec::new(), Vec::new(), Vec::new());
    for command in commands {
        reply.clear();
        events.clear();
        timers.clear();
        let mut ctx = Context::new(Position(0), ClusterTimeNs(0), SessionId(1), &mut reply, &mut events, &mut timers);
        machine.apply(&mut ctx, command);
    }
    machine
}

fn bench_app<M: StateMachine + Default>(c: &mut Criterion, name: &str, workload: fn(u64, u64) -> Vec<u8>) {
    let commands = commands(workload);
    let mut group = c.benchmark_group(format!("apply/{name}"));
    group.throughput(Throughput::Elements(COMMANDS));
    group.bench_function("state machine", |b| b.iter(|| black_box(apply_all::<M>(&commands))));
    group.finish();
}

/// The ledger's work on native structs: the same transfers between the same accounts.
fn ledger_native(c: &mut Criterion) {
    use ordo_apps::ledger::Command;
    let decoded: Vec<Command> = (0..COMMANDS)
        .map(|k| {
            let bytes = ordo_apps::ledger::workload_command(1, k);
            let mut aligned = rkyv::util::AlignedVec::<16>::new();
            aligned.extend_from_slice(&bytes);
            rkyv::from_bytes::<Command, rkyv::rancor::Error>(&aligned).unwrap()
        })
        .collect();
    let mut group = c.benchmark_group("apply/ledger");
    group.throughput(Throughput::Elements(COMMANDS));
    group.bench_function("native loop", |b| {
        b.iter(|| {
            let mut balances: BTreeMap<String, (i64, u64)> = BTreeMap::new();
            let mut transfers: BTreeMap<u64, (String, String, u64)> = BTreeMap::new();
            for command in &decoded {
                match command {
                    Command::Open { account, limit } => {
                        balances.entry(account.clone()).or_insert((0, *limit));
                    }
                    Command::Deposit { account, amount } => {
                        if let Some(b) = balances.get_mut(account) {
                            b.0 += *amount as i64;
                        }
                    }
                    Command::Transfer { id, from, to, amount } => {
                        let ok = !transfers.contains_key(id)
                            && from != to
                            && balances.get(from).is_some_and(|b| b.0 - *amount as i64 >= -(b.1 as i64))
                            && balances.contains_key(to);
                        if ok {
                            balances.get_mut(from).unwrap().0 -= *amount as i64;
                            balances.get_mut(to).unwrap().0 += *amount as i64;
                            transfers.insert(*id, (from.clone(), to.clone(), *amount));
                        }
                    }
                    _ => {}
                }
            }
            black_box((balances, transfers))
        })
    });
    group.finish();
}

/// The kv store's work on a native map.
fn kv_native(c: &mut Criterion) {
    use ordo_apps::kv::Command;
    let decoded: Vec<Command> = (0..COMMANDS)
        .map(|k| {
            let mut aligned = rkyv::util::AlignedVec::<16>::new();
            aligned.extend_from_slice(&ordo_apps::kv::workload_command(1, k));
            rkyv::from_bytes::<Command, rkyv::rancor::Error>(&aligned).unwrap()
        })
        .collect();
    let mut group = c.benchmark_group("apply/kv");
    group.throughput(Throughput::Elements(COMMANDS));
    group.bench_function("native loop", |b| {
        b.iter(|| {
            let mut map: BTreeMap<String, Vec<u8>> = BTreeMap::new();
            for command in &decoded {
                match command {
                    Command::Put { key, value } => {
                        map.insert(key.clone(), value.clone());
                    }
                    Command::Get { key } => {
                        black_box(map.get(key));
                    }
                    Command::Delete { key } => {
                        map.remove(key);
                    }
                    Command::Cas { key, old, new } => {
                        if map.get(key) == old.as_ref() {
                            map.insert(key.clone(), new.clone());
                        }
                    }
                }
            }
            black_box(map)
        })
    });
    group.finish();
}

fn decoded<T>(workload: fn(u64, u64) -> Vec<u8>) -> Vec<T>
where
    T: rkyv::Archive,
    T::Archived: for<'a> rkyv::bytecheck::CheckBytes<rkyv::api::high::HighValidator<'a, rkyv::rancor::Error>>
        + rkyv::Deserialize<T, rkyv::api::high::HighDeserializer<rkyv::rancor::Error>>,
{
    (0..COMMANDS)
        .map(|k| {
            let mut aligned = rkyv::util::AlignedVec::<16>::new();
            aligned.extend_from_slice(&workload(1, k));
            rkyv::from_bytes::<T, rkyv::rancor::Error>(&aligned).unwrap()
        })
        .collect()
}

/// The mutex's work on native maps and queues.
fn mutex_native(c: &mut Criterion) {
    use ordo_apps::mutex::Command;
    let decoded: Vec<Command> = decoded(ordo_apps::mutex::workload_command);
    let mut group = c.benchmark_group("apply/mutex");
    group.throughput(Throughput::Elements(COMMANDS));
    group.bench_function("native loop", |b| {
        b.iter(|| {
            let mut locks: BTreeMap<String, (u64, std::collections::VecDeque<u64>)> = BTreeMap::new();
            for (k, command) in decoded.iter().enumerate() {
                let session = k as u64 % 5;
                match command {
                    Command::Acquire { name, .. } => match locks.get_mut(name) {
                        None => {
                            locks.insert(name.clone(), (session, Default::default()));
                        }
                        Some((holder, queue)) if *holder != session && !queue.contains(&session) => {
                            queue.push_back(session)
                        }
                        Some(_) => {}
                    },
                    Command::Release { name } => {
                        if let Some((holder, queue)) = locks.get_mut(name)
                            && *holder == session
                        {
                            match queue.pop_front() {
                                Some(next) => *holder = next,
                                None => {
                                    locks.remove(name);
                                }
                            }
                        }
                    }
                    Command::Holder { name } => {
                        black_box(locks.get(name));
                    }
                }
            }
            black_box(locks)
        })
    });
    group.finish();
}

/// The airlocks' work: the same matrices stepped on a native status, no archives.
fn airlock_native(c: &mut Criterion) {
    use ordo_apps::airlock::{Command, Status, step_bay, step_lock};
    let decoded: Vec<Command> = decoded(ordo_apps::airlock::workload_command);
    let mut group = c.benchmark_group("apply/airlock");
    group.throughput(Throughput::Elements(COMMANDS));
    group.bench_function("native loop", |b| {
        b.iter(|| {
            let mut status = Status { locks: [0; 4], bay: 0 };
            for command in &decoded {
                match *command {
                    Command::Lock { lock, event } => {
                        if let Ok(next) = step_lock(&status, lock as usize, event) {
                            status.locks[lock as usize] = next;
                        }
                    }
                    Command::Bay { event } => {
                        if let Ok(next) = step_bay(&status, event) {
                            status.bay = next;
                        }
                    }
                    Command::Status => {}
                }
            }
            black_box(status)
        })
    });
    group.finish();
}

/// The book's matching on its native structs: the same `Book` methods, commands pre-decoded,
/// events counted instead of encoded, no reply encoded.
fn book_native(c: &mut Criterion) {
    use ordo_apps::book::{Book, Command};
    let decoded: Vec<Command> = decoded(ordo_apps::book::workload_command);
    let mut group = c.benchmark_group("apply/book");
    group.throughput(Throughput::Elements(COMMANDS));
    group.bench_function("native loop", |b| {
        b.iter(|| {
            let mut book = Book::default();
            let mut events = 0u64;
            for command in &decoded {
                let mut count = |_| events += 1;
                match *command {
                    Command::Order { id, side, price, quantity } => {
                        let _ = black_box(book.order(&mut count, id, side, price, quantity));
                    }
                    Command::Cancel { id } => {
                        black_box(book.cancel(&mut count, id));
                    }
                    Command::Depth => {
                        black_box(book.depth());
                    }
                }
            }
            black_box((book, events))
        })
    });
    group.finish();
}

fn apps(c: &mut Criterion) {
    bench_app::<ordo_apps::ledger::Ledger>(c, "ledger", ordo_apps::ledger::workload_command);
    ledger_native(c);
    bench_app::<ordo_apps::kv::Kv>(c, "kv", ordo_apps::kv::workload_command);
    kv_native(c);
    bench_app::<ordo_apps::mutex::Mutex>(c, "mutex", ordo_apps::mutex::workload_command);
    mutex_native(c);
    bench_app::<ordo_apps::airlock::Airlock>(c, "airlock", ordo_apps::airlock::workload_command);
    airlock_native(c);
    bench_app::<ordo_apps::book::Book>(c, "book", ordo_apps::book::workload_command);
    book_native(c);
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(10).measurement_time(std::time::Duration::from_secs(2));
    targets = apps
}
criterion_main!(benches);
