//! The state machine a cluster runs, and the context it is applied in.
//!
//! A state machine is applied, on every member, to the same committed commands in the same
//! order, so it must be deterministic: no wall clock (the cluster time is in the context),
//! no randomness, no iteration over unordered maps, no I/O. What it says goes out through
//! the context: a reply to the client (sent by the leader only), events (identical on
//! every member), and timers (fired by the leader as log entries, so they fire at the same
//! position everywhere).
//!
//! ```
//! use ordo_core::machine::{Context, StateMachine};
//!
//! /// Adds each command's first byte; replies with the running total; wakes every second.
//! #[derive(Default)]
//! struct Counter {
//!     total: u64,
//! }
//!
//! impl StateMachine for Counter {
//!     fn apply(&mut self, ctx: &mut Context<'_>, command: &[u8]) {
//!         self.total += command.first().copied().unwrap_or(0) as u64;
//!         ctx.reply(&self.total.to_le_bytes());
//!         ctx.emit(b"added");
//!         ctx.schedule_timer(1, ctx.time().0 + 1_000_000_000);
//!     }
//!     fn on_timer(&mut self, _ctx: &mut Context<'_>, _timer_id: u64) {}
//!     fn snapshot(&self, out: &mut Vec<u8>) {
//!         out.extend_from_slice(&self.total.to_le_bytes());
//!     }
//!     fn restore(bytes: &[u8]) -> Result<Self, String> {
//!         let total = bytes.try_into().map_err(|_| "a counter snapshot is 8 bytes".to_string())?;
//!         Ok(Counter { total: u64::from_le_bytes(total) })
//!     }
//! }
//! ```

use crate::ids::{ClusterTimeNs, Position, SessionId};

/// An application's state machine.
pub trait StateMachine: Send + 'static {
    /// Applies one committed command. Deterministic: see the module documentation.
    fn apply(&mut self, ctx: &mut Context<'_>, command: &[u8]);

    /// A timer scheduled with [`Context::schedule_timer`] fired.
    fn on_timer(&mut self, ctx: &mut Context<'_>, timer_id: u64) {
        let _ = (ctx, timer_id);
    }

    /// Writes the whole state; `restore` must rebuild exactly it.
    fn snapshot(&self, out: &mut Vec<u8>);

    /// Rebuilds a state from `snapshot`'s bytes; the message says what is wrong with them.
    fn restore(bytes: &[u8]) -> Result<Self, String>
    where
        Self: Sized;

    /// The app's invariants (the ledger: money is conserved, no balance below its limit),
    /// checked by the simulator after every command on every member and by the apps' tests.
    /// `Err` says which one broke.
    fn check_invariants(&self) -> Result<(), String> {
        Ok(())
    }
}

/// A timer change a state machine asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TimerRequest {
    /// Fire `timer_id` once the cluster time reaches `deadline` (replacing one of that id).
    Schedule {
        /// The app's id for the timer.
        timer_id: u64,
        /// When it fires, in cluster time.
        deadline: ClusterTimeNs,
    },
    /// Forget `timer_id` if it has not fired.
    Cancel {
        /// The app's id for the timer.
        timer_id: u64,
    },
}

/// What a state machine sees while it applies one entry, and where it says things.
pub struct Context<'a> {
    position: Position,
    time: ClusterTimeNs,
    session: SessionId,
    reply: &'a mut Vec<u8>,
    /// Events, each prefixed with its length (u32 LE).
    events: &'a mut Vec<u8>,
    timers: &'a mut Vec<TimerRequest>,
}

impl<'a> Context<'a> {
    /// A context writing into the given buffers (the service container's).
    pub fn new(
        position: Position,
        time: ClusterTimeNs,
        session: SessionId,
        reply: &'a mut Vec<u8>,
        events: &'a mut Vec<u8>,
        timers: &'a mut Vec<TimerRequest>,
    ) -> Self {
        Context { position, time, session, reply, events, timers }
    }

    /// The log position of the entry being applied.
    pub fn position(&self) -> Position {
        self.position
    }

    /// The cluster time the leader stamped on the entry: the only clock there is.
    pub fn time(&self) -> ClusterTimeNs {
        self.time
    }

    /// The client session the command came from (0 for timers).
    pub fn session(&self) -> SessionId {
        self.session
    }

    /// Appends bytes to the reply for this command's client.
    pub fn reply(&mut self, bytes: &[u8]) {
        self.reply.extend_from_slice(bytes);
    }

    /// Emits an event onto the service's event stream.
    pub fn emit(&mut self, event: &[u8]) {
        self.events.extend_from_slice(&(event.len() as u32).to_le_bytes());
        self.events.extend_from_slice(event);
    }

    /// Asks for `on_timer(timer_id)` once the cluster time reaches `deadline_ns`; a timer of
    /// the same id is replaced.
    pub fn schedule_timer(&mut self, timer_id: u64, deadline_ns: u64) {
        self.timers.push(TimerRequest::Schedule { timer_id, deadline: ClusterTimeNs(deadline_ns) });
    }

    /// Cancels timer `timer_id` if it has not fired yet.
    pub fn cancel_timer(&mut self, timer_id: u64) {
        self.timers.push(TimerRequest::Cancel { timer_id });
    }
}

/// Splits an event buffer written by [`Context::emit`] into its events.
pub fn events(buffer: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut rest = buffer;
    std::iter::from_fn(move || {
        let (length, tail) = rest.split_first_chunk::<4>()?;
        let length = u32::from_le_bytes(*length) as usize;
        let event = tail.get(..length)?;
        rest = &tail[length..];
        Some(event)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_context_collects_replies_events_and_timers() {
        let (mut reply, mut events, mut timers) = (Vec::new(), Vec::new(), Vec::new());
        let mut ctx = Context::new(Position(64), ClusterTimeNs(5), SessionId(3), &mut reply, &mut events, &mut timers);
        assert_eq!((ctx.position(), ctx.time(), ctx.session()), (Position(64), ClusterTimeNs(5), SessionId(3)));
        ctx.reply(b"ok");
        ctx.emit(b"one");
        ctx.emit(b"");
        ctx.emit(b"three");
        ctx.schedule_timer(7, 100);
        ctx.cancel_timer(8);
        assert_eq!(reply, b"ok");
        assert_eq!(super::events(&events).collect::<Vec<_>>(), vec![&b"one"[..], b"", b"three"]);
        assert_eq!(
            timers,
            vec![
                TimerRequest::Schedule { timer_id: 7, deadline: ClusterTimeNs(100) },
                TimerRequest::Cancel { timer_id: 8 }
            ]
        );
    }
}
