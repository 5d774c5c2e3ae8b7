//! What the layers above need from a log and its files, as plain data and one trait:
//! its raw bytes from a position ([`LogSource`]: `ordo-log` implements it, the transport and
//! consensus read through it), where a log starts over after a snapshot ([`LogBase`]), and
//! a member's vote ([`Vote`]). Defined here so that consensus and the service container
//! name no file-backed type.

use crate::ids::{ClusterTimeNs, MemberId, Position, Term};

/// Where a log reset after a snapshot starts: the snapshot's position and what the log must
/// know of the entry just before it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LogBase {
    /// The first position of the new log (the snapshot covers everything below).
    pub position: Position,
    /// The term, position and checksum of the last entry below `position` (zero when
    /// `position` is zero).
    pub term: Term,
    pub entry_position: Position,
    pub checksum: u32,
    /// The latest cluster time below `position`.
    pub time_max: ClusterTimeNs,
}

/// A member's vote: its current term and whom it voted for in it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Vote {
    pub term: Term,
    /// Who this member voted for in `term`, if anyone.
    pub voted_for: Option<MemberId>,
}

/// Where a log stream reads log bytes from (a leader's log).
pub trait LogSource {
    /// Raw log bytes from `position`, zero copy: where they really start (a position in a
    /// segment's unused last bytes moves to the next segment) and as many as are there, up
    /// to the end of the log or of the segment. `None` when `position` is no longer in the
    /// log (deleted after a snapshot) or not yet: the reader needs a snapshot, or waits.
    fn read_log(&self, position: Position) -> Option<(Position, &[u8])>;

    /// Where the next entry will be appended.
    fn log_end(&self) -> Position;

    /// The first position it holds: below it the log was deleted after a snapshot, or lies
    /// before a reset (an event subscriber asking for less is told so).
    fn start_position(&self) -> Position;

    /// Where an entry at or after `position` starts: `position` itself, or the next
    /// segment's start when `position` lies in a segment's last bytes, where no header fits
    /// (the log's canonical form of a position). Positions a member records (what it applied,
    /// where a snapshot stands) go through it, so that the log finds an entry at each.
    fn entry_start(&self, position: Position) -> Position {
        position
    }
}
