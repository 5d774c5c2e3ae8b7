//! An in-memory log for the simulator: the same entry format, checksums and chain as the
//! mapped log (it uses core's codec), one contiguous buffer instead of segments, and a
//! durable position that a simulated crash falls back to, possibly leaving a torn tail.

use crate::consensus::LogView;
use ordo_core::entry::{decode_entry, encode_entry, entry_span_bytes};
use ordo_core::{ClusterTimeNs, EntryMeta, Error, LogSource, Position, Term};
use ordo_log::TermIndex;

#[derive(Clone, Debug, Default)]
pub struct MemLog {
    bytes: Vec<u8>,
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

    pub fn bytes(&self) -> &[u8] {
        &self.bytes
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

    /// A crash. What was synced survives; of the unsynced tail, the first `keep_unsynced`
    /// bytes survive too (the page cache was partly written back), with one bit flipped if
    /// `flip_bit` says so (a disk that lied), followed by `torn_bytes` of garbage (a torn
    /// write). Recovery then keeps the entries that check out and cuts the rest.
    pub fn crash(&mut self, keep_unsynced: usize, flip_bit: Option<u64>, torn_bytes: &[u8]) {
        let durable = self.durable.0 as usize;
        let mut kept = self.bytes[durable..].to_vec();
        kept.truncate(keep_unsynced);
        if let Some(bit) = flip_bit.filter(|_| !kept.is_empty()) {
            let bit = bit % (kept.len() as u64 * 8);
            kept[(bit / 8) as usize] ^= 1 << (bit % 8);
        }
        self.truncate_to(self.durable);
        self.bytes.extend_from_slice(&kept);
        self.bytes.extend_from_slice(torn_bytes);
        self.recover();
    }

    /// What `Log::open` does: keep the entries that check out, cut the rest.
    fn recover(&mut self) {
        let mut position = self.starts.last().map_or(Position::ZERO, |&p| {
            decode_entry(&self.bytes[p.0 as usize..], p).map(|v| v.next_position()).unwrap_or(p)
        });
        while let Ok(view) = decode_entry(self.bytes.get(position.0 as usize..).unwrap_or(&[]), position) {
            if view.checksum_prev() != self.checksum_last {
                break;
            }
            let (term, checksum, next) = (view.header.term(), view.checksum(), view.next_position());
            self.time_max = self.time_max.max(view.header.timestamp());
            self.note(position, term, checksum);
            position = next;
        }
        self.bytes.truncate(position.0 as usize);
        self.durable = self.durable.min(position);
    }

    fn checksum_prev_at(&self, position: Position) -> Option<u32> {
        decode_entry(&self.bytes[position.0 as usize..], position).ok().map(|v| v.checksum_prev())
    }

    /// The entry starting at `position`, checked.
    pub fn entry(&self, position: Position) -> Option<ordo_core::EntryView<'_>> {
        decode_entry(self.bytes.get(position.0 as usize..)?, position).ok()
    }

    pub fn terms(&self) -> &TermIndex {
        &self.terms
    }
}

impl LogSource for MemLog {
    fn read_log(&self, position: Position) -> Option<(Position, &[u8])> {
        self.bytes.get(position.0 as usize..).map(|bytes| (position, bytes))
    }

    fn log_end(&self) -> Position {
        self.end()
    }
}

impl LogView for MemLog {
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

#[cfg(test)]
mod tests {
    use super::*;
    use ordo_core::{ClusterTimeNs, SessionId};

    fn meta(term: u64) -> EntryMeta {
        EntryMeta::command(Term(term), ClusterTimeNs(0), SessionId(1), 0)
    }

    #[test]
    fn a_crash_keeps_the_durable_prefix_and_cuts_a_torn_tail() {
        let mut log = MemLog::new();
        log.append(&meta(1), b"one").unwrap();
        let durable = log.sync();
        let two = log.append(&meta(1), b"two").unwrap();
        let mut survivor = log.clone();
        log.crash(0, None, &[0xAB; 40]);
        assert_eq!(log.end(), durable);
        // The unsynced entry survives whole when its bytes were written back...
        let mut whole = survivor.clone();
        whole.crash(usize::MAX, None, &[]);
        assert_eq!(whole.end(), Position(two.0 + 96));
        // ...and is cut when a bit of it flipped or only part of it made it.
        survivor.crash(usize::MAX, Some(200), &[]);
        assert_eq!(survivor.end(), durable);
        let mut part = whole.clone();
        part.durable = durable;
        part.crash(50, None, &[]);
        assert_eq!(part.end(), durable);
        assert_eq!(log.checksum_before(durable), Some(log.checksum_last));
        log.append(&meta(2), b"three").unwrap();
        assert_eq!(log.last_term(), Term(2));
    }

    #[test]
    fn raw_bytes_copy_a_log_exactly_and_truncation_restores_the_chain() {
        let mut leader = MemLog::new();
        for k in 0..10u8 {
            leader.append(&meta(1 + k as u64 / 5), &[k; 50]).unwrap();
        }
        let mut follower = MemLog::new();
        follower.append_raw(Position::ZERO, leader.bytes()).unwrap();
        assert_eq!(follower.bytes(), leader.bytes());
        assert_eq!(follower.terms(), leader.terms());
        let cut = leader.starts[4];
        let before = leader.checksum_before(cut);
        follower.truncate_to(cut);
        assert_eq!(follower.checksum_last, before.unwrap());
        assert!(follower.append_raw(cut, &leader.bytes()[cut.0 as usize..]).is_ok());
    }
}

/// The simulator's storage: the in-memory log and the vote, both kept across a crash the
/// way a disk keeps them (the vote is stored synchronously, the log up to its last sync).
#[derive(Clone, Debug, Default)]
pub struct MemStorage {
    pub log: MemLog,
    pub vote: ordo_log::Vote,
}

impl crate::effects::Storage for MemStorage {
    fn view(&self) -> &dyn LogView {
        &self.log
    }
    fn append(&mut self, meta: &EntryMeta, payload: &[u8]) -> Result<Position, crate::effects::StorageError> {
        Ok(self.log.append(meta, payload)?)
    }
    fn append_raw(&mut self, position: Position, bytes: &[u8]) -> Result<Position, crate::effects::StorageError> {
        Ok(self.log.append_raw(position, bytes)?)
    }
    fn truncate_to(&mut self, position: Position) -> Result<(), crate::effects::StorageError> {
        self.log.truncate_to(position);
        Ok(())
    }
    fn sync(&mut self) -> Result<Position, crate::effects::StorageError> {
        Ok(self.log.sync())
    }
    fn store_vote(
        &mut self,
        term: Term,
        voted_for: Option<ordo_core::MemberId>,
    ) -> Result<(), crate::effects::StorageError> {
        self.vote = ordo_log::Vote { term, voted_for };
        Ok(())
    }
}
