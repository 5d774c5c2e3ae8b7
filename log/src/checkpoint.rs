//! The checkpoint: where recovery starts scanning, so opening a log reads the active
//! segment, not the whole history. Everything before `position_scan` was verified when the
//! checkpoint was written. It also carries the log's first retained position and the term
//! index rows before `position_scan` (the rest is rebuilt by the scan).
//!
//! Written (atomically, see `small_file`) when a segment is sealed, when the log is
//! truncated below it, when old segments are deleted, and when the log is reset to start
//! after a snapshot (`reset` marks that half done: open finishes it).

use crate::error::{LogError, Result};
use crate::small_file::{self, Reader};
use crate::term_index::TermIndex;
use ordo_core::{ClusterId, ClusterTimeNs, Position, Term};
use std::path::Path;

const CHECKPOINT_FILE: &str = "checkpoint";
const CHECKPOINT_MAGIC: &[u8; 8] = b"ORDOCKP2";
const FLAG_RESET: u32 = 1;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Checkpoint {
    /// The first position the log still holds (segments below it were deleted).
    pub position_start: Position,
    /// Recovery scans from here.
    pub position_scan: Position,
    /// The checksum of the entry before `position_scan` (the chain's seed there).
    pub checksum_prev: u32,
    /// The latest cluster time of the entries before `position_scan`.
    pub time_max: ClusterTimeNs,
    /// Term index rows for entries before `position_scan`.
    pub terms: TermIndex,
    /// The log is being reset to start empty at `position_start`: every segment file is
    /// stale. Open removes them all and starts over.
    pub reset: bool,
}

impl Checkpoint {
    pub fn genesis() -> Self {
        Checkpoint {
            position_start: Position::ZERO,
            position_scan: Position::ZERO,
            checksum_prev: 0,
            time_max: ClusterTimeNs::ZERO,
            terms: TermIndex::default(),
            reset: false,
        }
    }

    pub fn load(dir: &Path, cluster_id: ClusterId) -> Result<Option<Checkpoint>> {
        let Some(body) = small_file::read(dir, CHECKPOINT_FILE, CHECKPOINT_MAGIC)? else { return Ok(None) };
        let path = dir.join(CHECKPOINT_FILE);
        let bad = |reason: &str| LogError::BadMetadata { path: path.clone(), reason: reason.to_string() };
        let mut reader = Reader::new(&body);
        let (Some(cluster), Some(start), Some(scan), Some(time_max), Some(prev), Some(flags), Some(rows)) =
            (reader.u64(), reader.u64(), reader.u64(), reader.u64(), reader.u32(), reader.u32(), reader.u32())
        else {
            return Err(bad("its body is too short"));
        };
        if cluster != cluster_id.0 {
            return Err(LogError::WrongCluster { path, found: ClusterId(cluster), expected: cluster_id });
        }
        let mut terms = Vec::with_capacity(rows.min(1 << 16) as usize);
        for _ in 0..rows {
            let (Some(term), Some(position)) = (reader.u64(), reader.u64()) else {
                return Err(bad("its term index is cut short"));
            };
            terms.push((Term(term), Position(position)));
        }
        if !reader.is_empty() {
            return Err(bad("it has bytes after its term index"));
        }
        let terms = TermIndex::from_rows(terms).ok_or_else(|| bad("its term index does not increase"))?;
        if start > scan || terms.rows().last().is_some_and(|&(_, p)| p >= Position(scan)) {
            return Err(bad("its positions are out of order"));
        }
        if flags & !FLAG_RESET != 0 {
            return Err(bad("it has flags this version does not know"));
        }
        Ok(Some(Checkpoint {
            position_start: Position(start),
            position_scan: Position(scan),
            checksum_prev: prev,
            time_max: ClusterTimeNs(time_max),
            terms,
            reset: flags & FLAG_RESET != 0,
        }))
    }

    /// Replaces the checkpoint file; durably (fsyncs) if `durable` (the log's `fsync`).
    pub fn store(&self, dir: &Path, cluster_id: ClusterId, durable: bool) -> Result<()> {
        debug_assert!(self.position_start <= self.position_scan);
        let rows = self.terms.rows();
        let mut body = Vec::with_capacity(32 + rows.len() * 16);
        body.extend_from_slice(&cluster_id.0.to_le_bytes());
        body.extend_from_slice(&self.position_start.0.to_le_bytes());
        body.extend_from_slice(&self.position_scan.0.to_le_bytes());
        body.extend_from_slice(&self.time_max.0.to_le_bytes());
        body.extend_from_slice(&self.checksum_prev.to_le_bytes());
        body.extend_from_slice(&(if self.reset { FLAG_RESET } else { 0 }).to_le_bytes());
        body.extend_from_slice(&(rows.len() as u32).to_le_bytes());
        for (term, position) in rows {
            body.extend_from_slice(&term.0.to_le_bytes());
            body.extend_from_slice(&position.0.to_le_bytes());
        }
        small_file::write_replacing(dir, CHECKPOINT_FILE, CHECKPOINT_MAGIC, &body, durable)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_checkpoint_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let mut terms = TermIndex::default();
        terms.observe(Term(1), Position(0));
        terms.observe(Term(4), Position(4096));
        let checkpoint = Checkpoint {
            position_start: Position(0),
            position_scan: Position(65536),
            checksum_prev: 99,
            time_max: ClusterTimeNs(12345),
            terms,
            reset: true,
        };
        checkpoint.store(dir.path(), ClusterId(3), true).unwrap();
        assert_eq!(Checkpoint::load(dir.path(), ClusterId(3)).unwrap(), Some(checkpoint));
        assert!(matches!(Checkpoint::load(dir.path(), ClusterId(2)), Err(LogError::WrongCluster { .. })));
    }
}
