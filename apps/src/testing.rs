//! Test plumbing the apps' unit tests share: one command applied, or one timer fired, with a
//! context of fresh buffers, and what it produced.

use ordo_core::machine::{Context, StateMachine, TimerRequest};
use ordo_core::{ClusterTimeNs, Position, SessionId};

/// What one command (or timer) produced: the reply, each event, the timer requests.
#[derive(Debug, PartialEq, Eq)]
pub struct Applied {
    pub reply: Vec<u8>,
    pub events: Vec<Vec<u8>>,
    pub timers: Vec<TimerRequest>,
}

fn with_context(session: u64, time_ms: u64, act: impl FnOnce(&mut Context<'_>)) -> Applied {
    let (mut reply, mut events, mut timers) = (Vec::new(), Vec::new(), Vec::new());
    let time = ClusterTimeNs(time_ms * 1_000_000);
    let mut ctx = Context::new(Position(0), time, SessionId(session), &mut reply, &mut events, &mut timers);
    act(&mut ctx);
    let events = ordo_core::machine::events(&events).map(<[u8]>::to_vec).collect();
    Applied { reply, events, timers }
}

/// Applies `command` as session `session` at cluster time `time_ms`.
pub fn apply<M: StateMachine>(machine: &mut M, session: u64, time_ms: u64, command: &[u8]) -> Applied {
    with_context(session, time_ms, |ctx| machine.apply(ctx, command))
}

/// Fires timer `timer_id`.
pub fn fire<M: StateMachine>(machine: &mut M, timer_id: u64) -> Applied {
    with_context(0, 0, |ctx| machine.on_timer(ctx, timer_id))
}
