//! An in-memory log for the unit tests of consensus, the container and the event log: the
//! same entry format, checksums and chain as the mapped log (it uses core's codec), one
//! contiguous buffer instead of segments. The simulator runs the real log on files
//! (`sim/folders.rs`); this one only stands in where a test needs a `LogView` by hand.

use crate::replica::consensus::LogView;
use crate::replica::effects::StorageError;
use crate::replica::events::{EventStore, base_of};
use ordo_core::entry::{decode_entry, encode_entry, entry_span_bytes};
use ordo_core::{ClusterTimeNs, EntryMeta, Error, LogSource, Position, Term};
use ordo_core::{EntryKind, LogBase};
use ordo_log::TermIndex;

#[derive(Clone, Debug, Default)]
pub struct MemLog {
    /// Position p is at index p; nothing below `start` is readable (deleted after a
    /// snapshot, or never held by a log reset to start after one).
    bytes: Vec<u8>,
    start: Position,
    /// Entry start positions, in order.
    starts: Vec<Position>,
    checksum_last: u32,
    terms: TermIndex,
    durable: Position,
    /// The latest cluster time of any entry held (a disk keeps it in the checkpoint).
    time_max: ClusterTimeNs,
}

impl MemLog {
    pub fn new() -> Self {
        MemLog::default()
    }

    pub fn end(&self) -> Position {
        Position(self.bytes.len() as u64)
    }

    /// The bytes from the log's start to its end, and that start.
    #[cfg(test)]
    pub fn bytes(&self) -> (Position, &[u8]) {
        (self.start, &self.bytes[self.start.0 as usize..])
    }

    pub fn start(&self) -> Position {
        self.start
    }

    /// The checksum of the last entry (what the next one links to).
    pub fn checksum_last(&self) -> u32 {
        self.checksum_last
    }

    /// The bytes of `[from, to)`, which must lie within the log.
    pub fn bytes_between(&self, from: Position, to: Position) -> &[u8] {
        debug_assert!(self.start <= from && from <= to && to <= self.end());
        &self.bytes[from.0 as usize..to.0 as usize]
    }

    /// What `Log::delete_below` does (without freeing memory: runs are short).
    pub fn delete_below(&mut self, position: Position) {
        let position = position.min(self.end());
        if position > self.start {
            debug_assert!(position == self.end() || self.starts.binary_search(&position).is_ok());
            self.start = position;
        }
    }

    /// What `Log::reset_to` does: empty, starting at `base.position`, the chain, terms and
    /// time continuing from it.
    pub fn reset_to(&mut self, base: &ordo_log::LogBase) {
        self.bytes.clear();
        self.bytes.resize(base.position.0 as usize, 0);
        self.start = base.position;
        self.starts.clear();
        self.checksum_last = base.checksum;
        self.terms = TermIndex::default();
        if base.position > Position::ZERO {
            self.terms.observe(base.term, base.entry_position);
        }
        self.durable = base.position;
        self.time_max = base.time_max;
    }

    pub fn append(&mut self, meta: &EntryMeta, payload: &[u8]) -> Result<Position, Error> {
        let position = self.end();
        let span = entry_span_bytes(payload.len()) as usize;
        self.bytes.resize(self.bytes.len() + span, 0);
        let checksum =
            encode_entry(&mut self.bytes[position.0 as usize..], position, self.checksum_last, meta, payload)?;
        self.time_max = self.time_max.max(meta.timestamp);
        self.note(position, meta.term, checksum);
        Ok(position)
    }

    /// Appends another log's bytes at the end, each entry checked (position, checksum, chain).
    pub fn append_raw(&mut self, position: Position, bytes: &[u8]) -> Result<Position, Error> {
        if position != self.end() {
            return Err(Error::EntryMisplaced { position: self.end(), recorded: position });
        }
        let mut offset = 0;
        while offset < bytes.len() {
            let position = self.end();
            let view = decode_entry(&bytes[offset..], position)?;
            if view.checksum_prev() != self.checksum_last {
                return Err(Error::EntryChainBroken {
                    position,
                    expected: self.checksum_last,
                    found: view.checksum_prev(),
                });
            }
            let length = view.header.length_bytes() as usize;
            let span = view.header.span_bytes() as usize;
            let (term, checksum) = (view.header.term(), view.checksum());
            self.time_max = self.time_max.max(view.header.timestamp());
            self.bytes.extend_from_slice(&bytes[offset..offset + length]);
            self.bytes.resize(position.0 as usize + span, 0);
            self.note(position, term, checksum);
            offset += span.min(bytes.len() - offset);
        }
        Ok(self.end())
    }

    fn note(&mut self, position: Position, term: Term, checksum: u32) {
        self.starts.push(position);
        self.terms.observe(term, position);
        self.checksum_last = checksum;
    }

    pub fn truncate_to(&mut self, position: Position) {
        let keep = self.starts.partition_point(|&p| p < position);
        assert!(keep == self.starts.len() || self.starts[keep] == position, "truncation at an entry start");
        if keep < self.starts.len() {
            self.checksum_last = self.checksum_prev_at(position).expect("an entry starts there");
        }
        self.starts.truncate(keep);
        self.bytes.truncate(position.0 as usize);
        self.terms.truncate(position);
        self.durable = self.durable.min(position);
    }

    pub fn sync(&mut self) -> Position {
        self.durable = self.end();
        self.durable
    }

    fn checksum_prev_at(&self, position: Position) -> Option<u32> {
        decode_entry(&self.bytes[position.0 as usize..], position).ok().map(|v| v.checksum_prev())
    }

    /// The entry starting at `position`, checked.
    pub fn entry(&self, position: Position) -> Option<ordo_core::EntryView<'_>> {
        if position < self.start {
            return None;
        }
        decode_entry(self.bytes.get(position.0 as usize..)?, position).ok()
    }

    pub fn terms(&self) -> &TermIndex {
        &self.terms
    }
}

impl LogSource for MemLog {
    fn read_log(&self, position: Position) -> Option<(Position, &[u8])> {
        if position < self.start {
            return None;
        }
        self.bytes.get(position.0 as usize..).map(|bytes| (position, bytes))
    }

    fn log_end(&self) -> Position {
        self.end()
    }

    fn start_position(&self) -> Position {
        self.start
    }
}

impl LogView for MemLog {
    fn log_start(&self) -> Position {
        self.start
    }

    fn last_term(&self) -> Term {
        self.terms.last_term()
    }

    fn term_at(&self, position: Position) -> Option<Term> {
        self.terms.term_at(position)
    }

    fn term_start(&self, term: Term) -> Option<Position> {
        self.terms.first_position(term)
    }

    fn checksum_before(&self, position: Position) -> Option<u32> {
        if position == self.end() {
            return Some(self.checksum_last);
        }
        if position < self.start {
            return None;
        }
        self.starts.binary_search(&position).ok()?;
        self.checksum_prev_at(position)
    }

    fn checksum_of_entry_at(&self, position: Position) -> Option<u32> {
        self.starts.binary_search(&position).ok()?;
        decode_entry(&self.bytes[position.0 as usize..], position).ok().map(|v| v.checksum())
    }

    fn position_durable(&self) -> Position {
        self.durable
    }

    fn time_max(&self) -> ClusterTimeNs {
        self.time_max
    }
}

impl EventStore for MemLog {
    fn events_start(&self) -> Position {
        self.start()
    }
    fn events_end(&self) -> Position {
        self.end()
    }
    fn event_at(&self, position: Position) -> Option<(Option<Position>, Position)> {
        let entry = self.entry(position)?;
        let source = (entry.kind() == EntryKind::Event).then(|| Position(entry.header.correlation_id.get()));
        Some((source, entry.next_position()))
    }
    fn append_event(&mut self, meta: &EntryMeta, event: &[u8]) -> Result<Position, StorageError> {
        Ok(self.append(meta, event)?)
    }
    fn truncate_events(&mut self, position: Position) -> Result<(), StorageError> {
        self.truncate_to(position);
        Ok(())
    }
    fn reset_events(&mut self, base: &LogBase) -> Result<(), StorageError> {
        self.reset_to(base);
        Ok(())
    }
    fn sync_events(&mut self) -> Result<Position, StorageError> {
        Ok(self.sync())
    }
    fn events_base(&self) -> LogBase {
        let terms = self.terms();
        let entry_position = terms.first_position(terms.last_term()).unwrap_or(Position::ZERO);
        use crate::replica::consensus::LogView;
        base_of(self.log_end(), terms.last_term(), entry_position, self.checksum_last(), LogView::time_max(self))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ordo_core::{ClusterTimeNs, SessionId};

    fn meta(term: u64) -> EntryMeta {
        EntryMeta::command(Term(term), ClusterTimeNs(0), SessionId(1), 0)
    }

    #[test]
    fn raw_bytes_copy_a_log_exactly_and_truncation_restores_the_chain() {
        let mut leader = MemLog::new();
        for k in 0..10u8 {
            leader.append(&meta(1 + k as u64 / 5), &[k; 50]).unwrap();
        }
        let mut follower = MemLog::new();
        follower.append_raw(Position::ZERO, leader.bytes().1).unwrap();
        assert_eq!(follower.bytes(), leader.bytes());
        assert_eq!(follower.terms(), leader.terms());
        let cut = leader.starts[4];
        let before = leader.checksum_before(cut);
        follower.truncate_to(cut);
        assert_eq!(follower.checksum_last, before.unwrap());
        assert!(follower.append_raw(cut, &leader.bytes().1[cut.0 as usize..]).is_ok());
    }

    #[test]
    fn a_reset_log_takes_the_leaders_bytes_after_the_base() {
        let mut leader = MemLog::new();
        for k in 0..10u8 {
            leader.append(&meta(1 + k as u64 / 5), &[k; 50]).unwrap();
        }
        let last = leader.entry(leader.starts[5]).unwrap();
        let base = ordo_log::LogBase {
            position: last.next_position(),
            term: last.header.term(),
            entry_position: last.position(),
            checksum: last.checksum(),
            time_max: ClusterTimeNs(0),
        };
        leader.delete_below(base.position);
        assert_eq!(leader.log_start(), base.position);
        assert_eq!(leader.entry(Position::ZERO).map(|e| e.position()), None, "deleted");
        let mut follower = MemLog::new();
        follower.append(&meta(9), b"something else").unwrap();
        follower.reset_to(&base);
        assert_eq!(follower.checksum_before(base.position), leader.checksum_before(base.position));
        assert_eq!(follower.last_term(), Term(2));
        follower.append_raw(base.position, leader.bytes().1).unwrap();
        assert_eq!(follower.bytes(), leader.bytes());
    }
}
