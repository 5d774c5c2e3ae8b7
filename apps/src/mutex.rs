//! The mutex with a waiting queue: named locks held by client sessions. `acquire` grants a
//! free lock or queues the session (first come, first served); `release` by the holder hands
//! the lock to the next in the queue, who is told by an event; an optional lease makes the
//! cluster take a lock back from a holder that went quiet, by a timer fired through the log
//! (so every member expires it at the same position). At most one holder per name, always.
//!
//! A holder is a session: the command's session id (what `ctx.session()` says), so a client
//! that fails over keeps its locks, and a retried acquire is answered without queueing twice.
//!
//! CLI commands: `acquire NAME [--lease-ms MS]`, `release NAME`, `holder NAME`.

use crate::codec::{self, emit, number, reply, with_archived};
use ordo_core::machine::{Context, StateMachine};
use rkyv::with::AsOwned;
use rkyv::{Archive, Deserialize, Serialize};
use std::borrow::Cow;
use std::collections::{BTreeMap, VecDeque};

pub const NAME_BYTES_MAX: usize = 128;

#[derive(Archive, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub enum Command {
    /// Take the lock, or wait in its queue; with a lease (ms) the lock is taken back if the
    /// holder keeps it longer.
    Acquire {
        name: String,
        lease_ms: u64,
    },
    Release {
        name: String,
    },
    Holder {
        name: String,
    },
}

#[derive(Archive, Serialize, Deserialize, Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub enum Reply {
    Granted,
    /// Waiting, this many ahead.
    Queued {
        ahead: u64,
    },
    Released,
    NotHolder,
    Holder {
        holder: Option<u64>,
        queue: Vec<u64>,
    },
    Malformed,
}

/// Lock names in events borrow from the command or the state while they are encoded, and
/// are owned once decoded.
#[derive(Archive, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub enum Event<'a> {
    Granted {
        #[rkyv(with = AsOwned)]
        name: Cow<'a, str>,
        session: u64,
    },
    Released {
        #[rkyv(with = AsOwned)]
        name: Cow<'a, str>,
        session: u64,
    },
    /// The holder's lease ran out.
    Expired {
        #[rkyv(with = AsOwned)]
        name: Cow<'a, str>,
        session: u64,
    },
}

#[derive(Archive, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
struct Lock {
    holder: Option<u64>,
    /// Waiting sessions with the lease each asked for.
    queue: VecDeque<(u64, u64)>,
    /// The timer that ends the current holder's lease.
    lease_timer: Option<u64>,
}

#[derive(Archive, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
pub struct Mutex {
    locks: BTreeMap<String, Lock>,
    /// Lease timers by id, to the lock they end.
    timers: BTreeMap<u64, String>,
    next_timer: u64,
}

pub fn encode(command: &Command) -> Vec<u8> {
    codec::encode(command)
}

pub fn decode_reply(bytes: &[u8]) -> Result<Reply, String> {
    codec::decode(bytes, "mutex reply")
}

pub fn decode_event(bytes: &[u8]) -> Result<Event<'static>, String> {
    codec::decode(bytes, "mutex event")
}

impl Mutex {
    pub fn holder(&self, name: &str) -> Option<u64> {
        self.locks.get(name).and_then(|l| l.holder)
    }

    /// Makes `session` the holder of `name`, with its lease's timer.
    fn grant(&mut self, ctx: &mut Context<'_>, name: &str, session: u64, lease_ms: u64) {
        let lease_timer = (lease_ms > 0).then(|| {
            let id = self.next_timer;
            self.next_timer += 1;
            ctx.schedule_timer(id, ctx.time().0.saturating_add(lease_ms.saturating_mul(1_000_000)));
            self.timers.insert(id, name.to_string());
            id
        });
        let lock = self.locks.entry(name.to_string()).or_default();
        lock.holder = Some(session);
        lock.lease_timer = lease_timer;
        emit(ctx, &Event::Granted { name: Cow::Borrowed(name), session });
    }

    /// The holder of `name` is gone (released or expired): the next in line gets it.
    fn hand_on(&mut self, ctx: &mut Context<'_>, name: &str) {
        let lock = self.locks.get_mut(name).expect("a held lock");
        lock.holder = None;
        if let Some(timer) = lock.lease_timer.take() {
            ctx.cancel_timer(timer);
            self.timers.remove(&timer);
        }
        match lock.queue.pop_front() {
            Some((next, lease_ms)) => self.grant(ctx, name, next, lease_ms),
            None => {
                self.locks.remove(name);
            }
        }
    }

    fn acquire(&mut self, ctx: &mut Context<'_>, name: &str, lease_ms: u64) -> Reply {
        let session = ctx.session().0;
        if name.len() > NAME_BYTES_MAX {
            return Reply::Malformed;
        }
        match self.locks.get_mut(name) {
            None => {
                self.grant(ctx, name, session, lease_ms);
                Reply::Granted
            }
            Some(lock) if lock.holder == Some(session) => Reply::Granted,
            Some(lock) => {
                let ahead = match lock.queue.iter().position(|&(s, _)| s == session) {
                    Some(index) => index,
                    None => {
                        lock.queue.push_back((session, lease_ms));
                        lock.queue.len() - 1
                    }
                };
                Reply::Queued { ahead: ahead as u64 + 1 }
            }
        }
    }
}

impl StateMachine for Mutex {
    fn apply(&mut self, ctx: &mut Context<'_>, command: &[u8]) {
        let mut scratch = rkyv::util::AlignedVec::<16>::new();
        with_archived::<ArchivedCommand, _>(command, &mut scratch, |archived| {
            let answer = match archived {
                None => Reply::Malformed,
                Some(ArchivedCommand::Acquire { name, lease_ms }) => self.acquire(ctx, name, lease_ms.to_native()),
                Some(ArchivedCommand::Release { name }) => {
                    let session = ctx.session().0;
                    if self.holder(name) == Some(session) {
                        emit(ctx, &Event::Released { name: Cow::Borrowed(name), session });
                        self.hand_on(ctx, name);
                        Reply::Released
                    } else {
                        Reply::NotHolder
                    }
                }
                Some(ArchivedCommand::Holder { name }) => match self.locks.get(name.as_str()) {
                    Some(lock) => {
                        Reply::Holder { holder: lock.holder, queue: lock.queue.iter().map(|&(s, _)| s).collect() }
                    }
                    None => Reply::Holder { holder: None, queue: Vec::new() },
                },
            };
            reply(ctx, &answer);
        });
    }

    fn on_timer(&mut self, ctx: &mut Context<'_>, timer_id: u64) {
        let Some(name) = self.timers.remove(&timer_id) else { return };
        let Some(lock) = self.locks.get_mut(&name).filter(|l| l.lease_timer == Some(timer_id)) else { return };
        lock.lease_timer = None;
        if let Some(session) = lock.holder {
            emit(ctx, &Event::Expired { name: Cow::Borrowed(&name), session });
            self.hand_on(ctx, &name);
        }
    }

    fn snapshot(&self, out: &mut Vec<u8>) {
        codec::snapshot(self, out);
    }

    fn restore(bytes: &[u8]) -> Result<Self, String> {
        codec::restore(bytes, "mutex")
    }

    fn check_invariants(&self) -> Result<(), String> {
        for (name, lock) in &self.locks {
            let Some(holder) = lock.holder else {
                return Err(format!("lock {name} is kept with no holder"));
            };
            if lock.queue.iter().any(|&(s, _)| s == holder) {
                return Err(format!("lock {name}'s holder {holder} also waits for it"));
            }
            let mut waiting: Vec<u64> = lock.queue.iter().map(|&(s, _)| s).collect();
            waiting.sort_unstable();
            if waiting.windows(2).any(|w| w[0] == w[1]) {
                return Err(format!("lock {name} has a session queued twice"));
            }
        }
        Ok(())
    }
}

/// The simulator's mutex load: acquires (some with leases) and releases over a few locks.
pub fn workload_command(client: u64, k: u64) -> Vec<u8> {
    let mix = k.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ client.rotate_left(17);
    let name = format!("lock-{}", mix % 4);
    let command = match (mix >> 8) % 5 {
        0 | 1 => Command::Acquire { name, lease_ms: if mix.is_multiple_of(3) { 20 } else { 0 } },
        2 | 3 => Command::Release { name },
        _ => Command::Holder { name },
    };
    encode(&command)
}

/// A command from its words: `acquire NAME [--lease-ms MS]`, `release NAME`, `holder NAME`.
pub fn parse(words: &[&str]) -> Result<Command, String> {
    let name = words.get(1).map(|w| w.to_string()).ok_or("the lock's name is missing".to_string());
    match words.first().copied() {
        Some("acquire") => {
            let lease_ms = match words.get(2).copied() {
                Some("--lease-ms") => number(words.get(3), "the lease")?,
                Some(other) => return Err(format!("acquire takes NAME [--lease-ms MS], not {other:?}")),
                None => 0,
            };
            Ok(Command::Acquire { name: name?, lease_ms })
        }
        Some("release") => Ok(Command::Release { name: name? }),
        Some("holder") => Ok(Command::Holder { name: name? }),
        _ => Err("a mutex command is acquire, release or holder".into()),
    }
}

impl Reply {
    /// Why the command changed nothing, if it did not.
    pub fn error(&self) -> Option<String> {
        match self {
            Reply::NotHolder => Some("not the holder".into()),
            Reply::Malformed => Some("malformed".into()),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ordo_core::ClusterTimeNs;
    use ordo_core::machine::TimerRequest;
    use proptest::prelude::*;

    struct Run {
        reply: Reply,
        events: Vec<Event<'static>>,
        timers: Vec<TimerRequest>,
    }

    fn run(mutex: &mut Mutex, session: u64, time_ms: u64, command: &Command) -> Run {
        let applied = crate::testing::apply(mutex, session, time_ms, &encode(command));
        let events = applied.events.iter().map(|e| decode_event(e).unwrap()).collect();
        Run { reply: decode_reply(&applied.reply).unwrap(), events, timers: applied.timers }
    }

    fn fire(mutex: &mut Mutex, timer_id: u64) -> Vec<Event<'static>> {
        crate::testing::fire(mutex, timer_id).events.iter().map(|e| decode_event(e).unwrap()).collect()
    }

    fn acquire(name: &str, lease_ms: u64) -> Command {
        Command::Acquire { name: name.into(), lease_ms }
    }

    #[test]
    fn waiters_get_the_lock_in_order_and_are_told() {
        let mut mutex = Mutex::default();
        assert_eq!(run(&mut mutex, 1, 0, &acquire("a", 0)).reply, Reply::Granted);
        assert_eq!(run(&mut mutex, 2, 0, &acquire("a", 0)).reply, Reply::Queued { ahead: 1 });
        assert_eq!(run(&mut mutex, 3, 0, &acquire("a", 0)).reply, Reply::Queued { ahead: 2 });
        assert_eq!(run(&mut mutex, 2, 0, &acquire("a", 0)).reply, Reply::Queued { ahead: 1 }, "a retry");
        assert_eq!(run(&mut mutex, 3, 0, &Command::Release { name: "a".into() }).reply, Reply::NotHolder);
        let released = run(&mut mutex, 1, 0, &Command::Release { name: "a".into() });
        assert_eq!(released.reply, Reply::Released);
        assert_eq!(
            released.events,
            [Event::Released { name: "a".into(), session: 1 }, Event::Granted { name: "a".into(), session: 2 }]
        );
        assert_eq!(
            run(&mut mutex, 9, 0, &Command::Holder { name: "a".into() }).reply,
            Reply::Holder { holder: Some(2), queue: vec![3] }
        );
        mutex.check_invariants().unwrap();
    }

    #[test]
    fn a_lease_runs_out_by_a_timer_and_the_next_waiter_gets_the_lock() {
        let mut mutex = Mutex::default();
        let granted = run(&mut mutex, 1, 100, &acquire("a", 50));
        assert_eq!(granted.timers, [TimerRequest::Schedule { timer_id: 0, deadline: ClusterTimeNs(150_000_000) }]);
        run(&mut mutex, 2, 110, &acquire("a", 0));
        assert_eq!(
            fire(&mut mutex, 0),
            [Event::Expired { name: "a".into(), session: 1 }, Event::Granted { name: "a".into(), session: 2 }]
        );
        assert_eq!(mutex.holder("a"), Some(2));
        assert!(fire(&mut mutex, 0).is_empty(), "a timer fires once");
    }

    fn any_step() -> impl Strategy<Value = (u64, Command, Option<u64>)> {
        let name = (0u8..3).prop_map(|i| format!("l{i}"));
        (
            1u64..5,
            prop_oneof![
                (name.clone(), prop_oneof![Just(0u64), Just(10)]).prop_map(|(n, l)| acquire(&n, l)),
                name.clone().prop_map(|name| Command::Release { name }),
                name.prop_map(|name| Command::Holder { name }),
            ],
            proptest::option::of(0u64..20),
        )
    }

    proptest! {
        /// At most one holder per lock, no one waiting twice or for what they hold, whatever
        /// the commands and timers; a snapshot restores to the same state, which goes on
        /// exactly as the original.
        #[test]
        fn one_holder_per_lock_and_snapshots_restore_exactly(
            steps in proptest::collection::vec(any_step(), 0..80),
            split in 0usize..80,
        ) {
            let mut mutex = Mutex::default();
            let split = split.min(steps.len());
            for (session, command, timer) in &steps[..split] {
                run(&mut mutex, *session, 0, command);
                if let Some(timer) = timer {
                    fire(&mut mutex, *timer);
                }
                prop_assert!(mutex.check_invariants().is_ok(), "{:?}", mutex.check_invariants());
            }
            let mut bytes = Vec::new();
            mutex.snapshot(&mut bytes);
            let mut restored = Mutex::restore(&bytes).unwrap();
            for (session, command, timer) in &steps[split..] {
                let a = run(&mut mutex, *session, 0, command);
                let b = run(&mut restored, *session, 0, command);
                prop_assert_eq!((a.reply, a.events, a.timers), (b.reply, b.events, b.timers));
                if let Some(timer) = timer {
                    prop_assert_eq!(fire(&mut mutex, *timer), fire(&mut restored, *timer));
                }
                prop_assert!(mutex.check_invariants().is_ok());
            }
            prop_assert_eq!(restored, mutex);
        }
    }
}
