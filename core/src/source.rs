//! The one thing the transport needs from a log: its raw bytes from a position. Defined
//! here so that `ordo-log` implements it and `ordo-transport` uses it without either
//! depending on the other.

use crate::ids::Position;

/// Where a log stream reads log bytes from (a leader's log).
pub trait LogSource {
    /// Raw log bytes from `position`, zero copy: where they really start (a position in a
    /// segment's unused last bytes moves to the next segment) and as many as are there, up
    /// to the end of the log or of the segment. `None` when `position` is no longer in the
    /// log (deleted after a snapshot) or not yet: the reader needs a snapshot, or waits.
    fn read_log(&self, position: Position) -> Option<(Position, &[u8])>;

    /// Where the next entry will be appended.
    fn log_end(&self) -> Position;

    /// Where an entry at or after `position` starts: `position` itself, or the next
    /// segment's start when `position` lies in a segment's last bytes, where no header fits
    /// (the log's canonical form of a position). Positions a member records (what it applied,
    /// where a snapshot stands) go through it, so that the log finds an entry at each.
    fn entry_start(&self, position: Position) -> Position {
        position
    }
}
