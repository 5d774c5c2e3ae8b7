//! The airlocks and the launch bay: four airlocks A–D between the ship and a launch bay whose
//! big door E opens to space. Nested state machines, each written as an explicit transition
//! matrix — state × event → next state, under a guard on the enclosing machine, or a
//! refusal — so the rules are data that can be printed ([`matrices`]) and tested
//! exhaustively, every (state, event, context) cell.
//!
//! An airlock: inner door (to the ship), outer door (to the bay), chamber pressure. The bay:
//! its pressure, its door E. Safety, checked as invariants:
//! - never both doors of an airlock open;
//! - door E never open while the bay is pressurized or any airlock's inner door is open;
//! - an airlock's outer door is open only when its chamber's pressure is the bay's.
//!
//! CLI commands: `cycle LOCK`, `open LOCK inner|outer`, `close LOCK inner|outer`,
//! `bay pressurize|depressurize`, `door open|close`, `status`.

use crate::codec::{self, emit, reply, with_archived};
use ordo_core::machine::{Context, StateMachine};
use rkyv::{Archive, Deserialize, Serialize};

pub const LOCKS: usize = 4;
pub const LOCK_NAMES: [char; LOCKS] = ['A', 'B', 'C', 'D'];

/// An airlock's state, as an index: bit 0 inner door open, bit 1 outer door open, bit 2 the
/// chamber depressurized. States 3 and 7 (both doors open) are unreachable by the matrix.
pub type LockState = u8;
const INNER_OPEN: u8 = 1;
const OUTER_OPEN: u8 = 2;
const CHAMBER_VACUUM: u8 = 4;

/// The bay's state, as an index: bit 0 depressurized, bit 1 door E open. State 2 (door open
/// while pressurized) is unreachable by the matrix.
pub type BayState = u8;
const BAY_VACUUM: u8 = 1;
const DOOR_OPEN: u8 = 2;

#[derive(Archive, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum LockEvent {
    OpenInner,
    CloseInner,
    OpenOuter,
    CloseOuter,
    /// Pressurize a depressurized chamber, or depressurize a pressurized one.
    Cycle,
}

#[derive(Archive, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum BayEvent {
    Pressurize,
    Depressurize,
    OpenDoor,
    CloseDoor,
}

pub const LOCK_EVENTS: [LockEvent; 5] =
    [LockEvent::OpenInner, LockEvent::CloseInner, LockEvent::OpenOuter, LockEvent::CloseOuter, LockEvent::Cycle];
pub const BAY_EVENTS: [BayEvent; 4] =
    [BayEvent::Pressurize, BayEvent::Depressurize, BayEvent::OpenDoor, BayEvent::CloseDoor];

/// What the enclosing machine must allow for a move.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Guard {
    Always,
    /// The ship side is pressurized, and door E is closed (so no inner door opens while E is).
    BayDoorClosed,
    /// The chamber's pressure equals the bay's.
    ChamberMatchesBay,
    /// Every airlock's outer door is closed (the bay's pressure may change).
    OuterDoorsClosed,
    /// The bay is depressurized and every inner door closed (door E may open).
    BayDoorMayOpen,
}

/// One cell of a matrix.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cell {
    To(u8, Guard),
    Refuse(&'static str),
}

use Cell::{Refuse, To};
use Guard::*;

/// The airlock's matrix: rows are states 0–7, columns `LOCK_EVENTS`.
pub const LOCK_MATRIX: [[Cell; 5]; 8] = [
    // 0: both closed, chamber pressurized
    [
        To(1, BayDoorClosed),
        Refuse("inner door is closed"),
        To(2, ChamberMatchesBay),
        Refuse("outer door is closed"),
        To(4, Always),
    ],
    // 1: inner open, pressurized
    [
        Refuse("inner door is open"),
        To(0, Always),
        Refuse("inner door is open"),
        Refuse("outer door is closed"),
        Refuse("a door is open"),
    ],
    // 2: outer open, pressurized (the bay is pressurized)
    [
        Refuse("outer door is open"),
        Refuse("inner door is closed"),
        Refuse("outer door is open"),
        To(0, Always),
        Refuse("a door is open"),
    ],
    // 3: both open: never reached
    [Refuse("unreachable"); 5],
    // 4: both closed, chamber depressurized
    [
        Refuse("the chamber is depressurized"),
        Refuse("inner door is closed"),
        To(6, ChamberMatchesBay),
        Refuse("outer door is closed"),
        To(0, Always),
    ],
    // 5: inner open, depressurized: never reached (the inner door opens only pressurized)
    [Refuse("unreachable"); 5],
    // 6: outer open, depressurized (the bay is depressurized)
    [
        Refuse("outer door is open"),
        Refuse("inner door is closed"),
        Refuse("outer door is open"),
        To(4, Always),
        Refuse("a door is open"),
    ],
    // 7: both open: never reached
    [Refuse("unreachable"); 5],
];

/// The bay's matrix: rows are states 0–3, columns `BAY_EVENTS`.
pub const BAY_MATRIX: [[Cell; 4]; 4] = [
    // 0: pressurized, door closed
    [
        Refuse("already pressurized"),
        To(1, OuterDoorsClosed),
        Refuse("the bay is pressurized"),
        Refuse("door is closed"),
    ],
    // 1: depressurized, door closed
    [To(0, OuterDoorsClosed), Refuse("already depressurized"), To(3, BayDoorMayOpen), Refuse("door is closed")],
    // 2: pressurized, door open: never reached
    [Refuse("unreachable"); 4],
    // 3: depressurized, door open
    [Refuse("door E is open"), Refuse("already depressurized"), Refuse("door is open"), To(1, Always)],
];

#[derive(Archive, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub enum Command {
    Lock { lock: u8, event: LockEvent },
    Bay { event: BayEvent },
    Status,
}

#[derive(Archive, Serialize, Deserialize, Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub enum Reply {
    Done {
        status: Status,
    },
    /// Refused: `reason` indexes [`REFUSALS`].
    Refused {
        reason: u8,
        status: Status,
    },
    Malformed,
}

#[derive(Archive, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub struct Status {
    pub locks: [u8; LOCKS],
    pub bay: u8,
}

/// An airlock's states by number (the rows of `LOCK_MATRIX`).
pub const LOCK_STATE_NAMES: [&str; 8] = [
    "closed, pressurized",
    "inner open, pressurized",
    "outer open, pressurized",
    "both open, pressurized",
    "closed, depressurized",
    "inner open, depressurized",
    "outer open, depressurized",
    "both open, depressurized",
];

/// The bay's states by number (the rows of `BAY_MATRIX`).
pub const BAY_STATE_NAMES: [&str; 4] =
    ["pressurized, door closed", "depressurized, door closed", "pressurized, door open", "depressurized, door open"];

/// Shown by name: `{"locks": {"A": "closed, pressurized", …}, "bay": "…"}`.
impl serde::Serialize for Status {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let name = |names: &[&'static str], state: u8| names.get(state as usize).copied().unwrap_or("unknown");
        let locks: std::collections::BTreeMap<char, &str> =
            LOCK_NAMES.iter().zip(self.locks).map(|(&lock, state)| (lock, name(&LOCK_STATE_NAMES, state))).collect();
        let mut status = serializer.serialize_struct("Status", 2)?;
        status.serialize_field("locks", &locks)?;
        status.serialize_field("bay", name(&BAY_STATE_NAMES, self.bay))?;
        status.end()
    }
}

#[derive(Archive, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub enum Event {
    LockMoved { lock: u8, from: u8, to: u8 },
    BayMoved { from: u8, to: u8 },
    Refused { reason: u8 },
}

/// The whole system's state.
#[derive(Archive, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
pub struct Airlock {
    locks: [u8; LOCKS],
    bay: u8,
}

pub fn encode(command: &Command) -> Vec<u8> {
    codec::encode(command)
}

pub fn decode_reply(bytes: &[u8]) -> Result<Reply, String> {
    codec::decode(bytes, "airlock reply")
}

pub fn decode_event(bytes: &[u8]) -> Result<Event, String> {
    codec::decode(bytes, "airlock event")
}

/// Whether `guard` holds for airlock `lock` (or the bay, `None`) in the system `status`.
fn allowed(guard: Guard, status: &Status, lock: Option<usize>) -> bool {
    let bay_vacuum = status.bay & BAY_VACUUM != 0;
    match guard {
        Always => true,
        BayDoorClosed => status.bay & DOOR_OPEN == 0,
        ChamberMatchesBay => {
            let chamber_vacuum = lock.is_some_and(|i| status.locks[i] & CHAMBER_VACUUM != 0);
            chamber_vacuum == bay_vacuum
        }
        OuterDoorsClosed => status.locks.iter().all(|l| l & OUTER_OPEN == 0),
        BayDoorMayOpen => bay_vacuum && status.locks.iter().all(|l| l & INNER_OPEN == 0),
    }
}

/// The next state of airlock `lock` on `event`, or why not.
pub fn step_lock(status: &Status, lock: usize, event: LockEvent) -> Result<u8, &'static str> {
    let column = LOCK_EVENTS.iter().position(|&e| e == event).expect("every event has a column");
    match LOCK_MATRIX[status.locks[lock] as usize][column] {
        To(next, guard) if allowed(guard, status, Some(lock)) => Ok(next),
        To(_, guard) => Err(refusal(guard)),
        Refuse(reason) => Err(reason),
    }
}

/// The bay's next state on `event`, or why not.
pub fn step_bay(status: &Status, event: BayEvent) -> Result<u8, &'static str> {
    let column = BAY_EVENTS.iter().position(|&e| e == event).expect("every event has a column");
    match BAY_MATRIX[status.bay as usize][column] {
        To(next, guard) if allowed(guard, status, None) => Ok(next),
        To(_, guard) => Err(refusal(guard)),
        Refuse(reason) => Err(reason),
    }
}

fn refusal(guard: Guard) -> &'static str {
    match guard {
        Always => "refused",
        BayDoorClosed => "door E is open",
        ChamberMatchesBay => "the chamber's pressure is not the bay's: cycle it first",
        OuterDoorsClosed => "an airlock's outer door is open",
        BayDoorMayOpen => "the bay is pressurized or an inner door is open",
    }
}

/// Every refusal's text; replies and events carry its index (no text is allocated per
/// command).
pub const REFUSALS: [&str; 19] = [
    "refused",
    "unreachable",
    "inner door is closed",
    "inner door is open",
    "outer door is closed",
    "outer door is open",
    "a door is open",
    "the chamber is depressurized",
    "already pressurized",
    "already depressurized",
    "the bay is pressurized",
    "door is closed",
    "door is open",
    "door E is open",
    "the chamber's pressure is not the bay's: cycle it first",
    "an airlock's outer door is open",
    "the bay is pressurized or an inner door is open",
    "there are airlocks A to D only",
    "not an airlock command",
];

/// The index of a refusal's text in [`REFUSALS`].
pub fn refusal_code(reason: &str) -> u8 {
    REFUSALS.iter().position(|&r| r == reason).unwrap_or(0) as u8
}

/// The text of a refusal code.
pub fn refusal_text(code: u8) -> &'static str {
    REFUSALS.get(code as usize).copied().unwrap_or("refused")
}

/// The safety rules, over a whole system state.
pub fn check(status: &Status) -> Result<(), String> {
    let bay_vacuum = status.bay & BAY_VACUUM != 0;
    for (i, &lock) in status.locks.iter().enumerate() {
        let name = LOCK_NAMES[i];
        if lock & INNER_OPEN != 0 && lock & OUTER_OPEN != 0 {
            return Err(format!("airlock {name} has both doors open"));
        }
        if lock & OUTER_OPEN != 0 && (lock & CHAMBER_VACUUM != 0) != bay_vacuum {
            return Err(format!("airlock {name}'s outer door is open to a bay of another pressure"));
        }
        if lock & INNER_OPEN != 0 && lock & CHAMBER_VACUUM != 0 {
            return Err(format!("airlock {name}'s inner door is open on a depressurized chamber"));
        }
    }
    if status.bay & DOOR_OPEN != 0 {
        if !bay_vacuum {
            return Err("door E is open while the bay is pressurized".into());
        }
        if status.locks.iter().any(|l| l & INNER_OPEN != 0) {
            return Err("door E is open while an inner door is open".into());
        }
    }
    Ok(())
}

/// The matrices as text, a row per state, a column per event.
pub fn matrices() -> String {
    let cell = |c: &Cell| match c {
        To(next, Always) => format!("→{next}"),
        To(next, guard) => format!("→{next} if {guard:?}"),
        Refuse(_) => "refused".to_string(),
    };
    let mut text = format!("airlock  {:?}\n", LOCK_EVENTS);
    for (state, row) in LOCK_MATRIX.iter().enumerate() {
        text += &format!("{state}: {}\n", row.iter().map(cell).collect::<Vec<_>>().join(" | "));
    }
    text += &format!("bay  {:?}\n", BAY_EVENTS);
    for (state, row) in BAY_MATRIX.iter().enumerate() {
        text += &format!("{state}: {}\n", row.iter().map(cell).collect::<Vec<_>>().join(" | "));
    }
    text
}

impl Airlock {
    pub fn status(&self) -> Status {
        Status { locks: self.locks, bay: self.bay }
    }
}

impl StateMachine for Airlock {
    fn apply(&mut self, ctx: &mut Context<'_>, command: &[u8]) {
        let mut scratch = rkyv::util::AlignedVec::<16>::new();
        let decoded = with_archived::<ArchivedCommand, _>(command, &mut scratch, |archived| {
            archived.map(|a| rkyv::deserialize::<Command, rkyv::rancor::Error>(a).expect("validated"))
        });
        let status = self.status();
        let result = match decoded {
            None => return reply(ctx, &Reply::Malformed),
            Some(Command::Status) => Ok(()),
            Some(Command::Lock { lock, .. }) if lock as usize >= LOCKS => Err("there are airlocks A to D only"),
            Some(Command::Lock { lock, event }) => step_lock(&status, lock as usize, event).map(|next| {
                emit(ctx, &Event::LockMoved { lock, from: self.locks[lock as usize], to: next });
                self.locks[lock as usize] = next;
            }),
            Some(Command::Bay { event }) => step_bay(&status, event).map(|next| {
                emit(ctx, &Event::BayMoved { from: self.bay, to: next });
                self.bay = next;
            }),
        };
        let status = self.status();
        match result {
            Ok(()) => reply(ctx, &Reply::Done { status }),
            Err(reason) => {
                let reason = refusal_code(reason);
                emit(ctx, &Event::Refused { reason });
                reply(ctx, &Reply::Refused { reason, status });
            }
        }
    }

    fn snapshot(&self, out: &mut Vec<u8>) {
        codec::snapshot(self, out);
    }

    fn restore(bytes: &[u8]) -> Result<Self, String> {
        codec::restore(bytes, "airlock")
    }

    fn check_invariants(&self) -> Result<(), String> {
        if self.locks.iter().any(|&l| l as usize >= LOCK_MATRIX.len()) || self.bay as usize >= BAY_MATRIX.len() {
            return Err("a state index is out of range".into());
        }
        check(&self.status())
    }
}

/// The simulator's airlock load: random events on random airlocks and the bay.
pub fn workload_command(client: u64, k: u64) -> Vec<u8> {
    let mix = k.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ client.rotate_left(13);
    let command = match mix % 10 {
        0 | 1 => Command::Bay { event: BAY_EVENTS[((mix >> 8) % 4) as usize] },
        2 => Command::Status,
        _ => Command::Lock { lock: ((mix >> 8) % LOCKS as u64) as u8, event: LOCK_EVENTS[((mix >> 16) % 5) as usize] },
    };
    encode(&command)
}

/// A command from its words: `cycle LOCK`, `open LOCK inner|outer`, `close LOCK
/// inner|outer`, `bay pressurize|depressurize`, `door open|close`, `status`.
pub fn parse(words: &[&str]) -> Result<Command, String> {
    let lock = || {
        let word = words.get(1).ok_or("the airlock (A to D) is missing")?;
        LOCK_NAMES
            .iter()
            .position(|&c| word.eq_ignore_ascii_case(&c.to_string()))
            .map(|i| i as u8)
            .ok_or(format!("the airlocks are A to D, not {word:?}"))
    };
    let side = |open: bool| match (words.get(2).copied(), open) {
        (Some("inner"), true) => Ok(LockEvent::OpenInner),
        (Some("inner"), false) => Ok(LockEvent::CloseInner),
        (Some("outer"), true) => Ok(LockEvent::OpenOuter),
        (Some("outer"), false) => Ok(LockEvent::CloseOuter),
        _ => Err("say which door: inner or outer".to_string()),
    };
    match (words.first().copied(), words.get(1).copied()) {
        (Some("cycle"), _) => Ok(Command::Lock { lock: lock()?, event: LockEvent::Cycle }),
        (Some("open"), _) => Ok(Command::Lock { lock: lock()?, event: side(true)? }),
        (Some("close"), _) => Ok(Command::Lock { lock: lock()?, event: side(false)? }),
        (Some("bay"), Some("pressurize")) => Ok(Command::Bay { event: BayEvent::Pressurize }),
        (Some("bay"), Some("depressurize")) => Ok(Command::Bay { event: BayEvent::Depressurize }),
        (Some("door"), Some("open")) => Ok(Command::Bay { event: BayEvent::OpenDoor }),
        (Some("door"), Some("close")) => Ok(Command::Bay { event: BayEvent::CloseDoor }),
        (Some("status"), _) => Ok(Command::Status),
        _ => Err("an airlock command is cycle, open, close, bay, door or status".into()),
    }
}

impl Reply {
    /// Why the command changed nothing, if it did not.
    pub fn error(&self) -> Option<String> {
        match self {
            Reply::Refused { reason, .. } => Some(refusal_text(*reason).to_string()),
            Reply::Malformed => Some("malformed".into()),
            Reply::Done { .. } => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every system state the matrices can reach from the start, by breadth-first search.
    fn reachable() -> Vec<Status> {
        let mut seen = vec![Status { locks: [0; LOCKS], bay: 0 }];
        let mut next = 0;
        while next < seen.len() {
            let status = seen[next];
            next += 1;
            let mut successors = Vec::new();
            for lock in 0..LOCKS {
                for event in LOCK_EVENTS {
                    if let Ok(to) = step_lock(&status, lock, event) {
                        let mut moved = status;
                        moved.locks[lock] = to;
                        successors.push(moved);
                    }
                }
            }
            for event in BAY_EVENTS {
                if let Ok(to) = step_bay(&status, event) {
                    successors.push(Status { bay: to, ..status });
                }
            }
            for successor in successors {
                if !seen.contains(&successor) {
                    seen.push(successor);
                }
            }
        }
        seen
    }

    #[test]
    fn every_reachable_state_is_safe_and_every_cell_was_tried() {
        let states = reachable();
        // 4 airlocks × their reachable states × bay states, bounded by 5^4 × 3.
        assert!(states.len() > 100, "{} states reached", states.len());
        for status in &states {
            check(status).unwrap_or_else(|e| panic!("{status:?}: {e}"));
        }
        // Every (airlock state, event, bay state) cell from any reachable system state stays safe.
        for status in &states {
            for lock in 0..LOCKS {
                for event in LOCK_EVENTS {
                    if let Ok(to) = step_lock(status, lock, event) {
                        let mut moved = *status;
                        moved.locks[lock] = to;
                        assert!(check(&moved).is_ok(), "{status:?} {event:?} on {lock} breaks safety");
                    }
                }
            }
        }
        // The unreachable rows really are unreachable.
        assert!(states.iter().all(|s| s.locks.iter().all(|&l| ![3, 5, 7].contains(&l)) && s.bay != 2));
    }

    fn run(airlock: &mut Airlock, command: &[u8]) -> (Vec<u8>, Vec<Vec<u8>>) {
        let applied = crate::testing::apply(airlock, 1, 0, command);
        (applied.reply, applied.events)
    }

    #[test]
    fn commands_through_the_state_machine_stay_safe_and_a_snapshot_goes_on_alike() {
        let mut airlock = Airlock::default();
        let commands: Vec<Vec<u8>> = (0..600).map(|k| workload_command(1, k)).collect();
        let mut outputs = Vec::new();
        for command in &commands[..300] {
            outputs.push(run(&mut airlock, command));
            airlock.check_invariants().unwrap();
        }
        let mut bytes = Vec::new();
        airlock.snapshot(&mut bytes);
        let mut restored = Airlock::restore(&bytes).unwrap();
        for command in &commands[300..] {
            let original = run(&mut airlock, command);
            assert_eq!(run(&mut restored, command), original);
            outputs.push(original);
            airlock.check_invariants().unwrap();
        }
        let mut again = Airlock::default();
        let replayed: Vec<_> = commands.iter().map(|c| run(&mut again, c)).collect();
        assert_eq!(replayed, outputs, "the same commands give the same replies and events");
        let moved = outputs.iter().filter(|(reply, _)| matches!(decode_reply(reply), Ok(Reply::Done { .. }))).count();
        assert!(moved > 100, "the load moves doors and pressures: {moved}");
    }

    #[test]
    fn the_launch_sequence_is_allowed_and_a_careless_one_refused() {
        let mut status = Status { locks: [0; LOCKS], bay: 0 };
        assert_eq!(step_bay(&status, BayEvent::OpenDoor), Err("the bay is pressurized"));
        status.locks[0] = step_lock(&status, 0, LockEvent::OpenInner).unwrap();
        assert_eq!(step_lock(&status, 0, LockEvent::OpenOuter), Err("inner door is open"));
        status.locks[0] = step_lock(&status, 0, LockEvent::CloseInner).unwrap();
        status.bay = step_bay(&status, BayEvent::Depressurize).unwrap();
        assert!(step_lock(&status, 0, LockEvent::OpenOuter).unwrap_err().contains("cycle it first"));
        status.locks[0] = step_lock(&status, 0, LockEvent::Cycle).unwrap();
        status.locks[0] = step_lock(&status, 0, LockEvent::OpenOuter).unwrap();
        assert_eq!(step_bay(&status, BayEvent::Pressurize), Err("an airlock's outer door is open"));
        status.bay = step_bay(&status, BayEvent::OpenDoor).unwrap();
        check(&status).unwrap();
        assert!(
            LOCK_MATRIX.iter().flatten().chain(BAY_MATRIX.iter().flatten()).all(|cell| match cell {
                Refuse(reason) => refusal_code(reason) != 0 || *reason == "refused",
                To(..) => true,
            }),
            "every refusal in the matrices has its code"
        );
        for guard in [BayDoorClosed, ChamberMatchesBay, OuterDoorsClosed, BayDoorMayOpen] {
            assert_ne!(refusal_code(refusal(guard)), 0, "{guard:?}");
        }
        let shown = matrices();
        assert!(shown.contains("→1 if BayDoorClosed") && shown.lines().count() == 14, "{shown}");
    }
}
