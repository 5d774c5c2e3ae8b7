//! The ordered run of segments that holds the log, and the one step that every reader of
//! it (recovery, verify, the entry iterator) takes: decode the entry at a position and
//! check its link to the one before.

use crate::error::{LogError, Result, io};
use crate::segment::{Segment, parse_segment_file_name};
use ordo_core::entry::{decode_entry, is_unwritten};
use ordo_core::{EntryView, Error, HEADER_BYTES, Position};
use std::collections::VecDeque;
use std::path::{Path, PathBuf};

/// An entry never starts in the last bytes of a segment where its header would not fit
/// (the remainder is less than a header when it is 32 bytes): those bytes stay zero and
/// the entry starts at the next segment's base. Every other position is left as it is.
#[inline]
pub fn entry_start(position: Position, segment_bytes: u64) -> Position {
    let remaining = segment_bytes - offset_in_segment(position, segment_bytes);
    if remaining < HEADER_BYTES as u64 { Position(position.0 + remaining) } else { position }
}

/// Where `position` falls inside its segment. Segment sizes are powers of two, so this is
/// a mask, not a division (a 64-bit divide costs more than the rest of an append).
#[inline]
pub fn offset_in_segment(position: Position, segment_bytes: u64) -> u64 {
    debug_assert!(segment_bytes.is_power_of_two());
    position.0 & (segment_bytes - 1)
}

pub struct SegmentSet {
    pub(crate) segments: VecDeque<Segment>,
    pub(crate) segment_bytes: u64,
}

/// What lies at a position.
pub enum Step<'a> {
    /// A whole entry whose checksum holds and whose chain link matches.
    Entry(EntryView<'a>),
    /// The position is the end of the last segment.
    End,
    /// Nothing was ever written here (a zeroed header).
    Unwritten,
    /// Bytes that are not a valid entry, or break the chain.
    Bad(Error),
}

impl SegmentSet {
    pub fn start(&self) -> Position {
        self.segments.front().map_or(Position::ZERO, Segment::base)
    }

    /// The position just past the last segment's data.
    pub fn end(&self) -> Position {
        self.segments.back().map_or(Position::ZERO, |s| Position(s.base().0 + self.segment_bytes))
    }

    /// Index of the segment holding `position`.
    #[inline]
    pub fn index_of(&self, position: Position) -> Option<usize> {
        let first = self.segments.front()?.base();
        if position < first {
            return None;
        }
        let index = ((position.0 - first.0) >> self.segment_bytes.trailing_zeros()) as usize;
        (index < self.segments.len()).then_some(index)
    }

    /// The segment holding `position` and the bytes from it to the segment's end.
    #[inline]
    pub fn bytes_from(&self, position: Position) -> Option<(&Segment, &[u8])> {
        let segment = &self.segments[self.index_of(position)?];
        Some((segment, &segment.data()[(position.0 - segment.base().0) as usize..]))
    }

    pub fn path_of(&self, position: Position) -> PathBuf {
        let index = self.index_of(position).unwrap_or(self.segments.len().saturating_sub(1));
        self.segments.get(index).map_or_else(PathBuf::new, |s| s.path().to_path_buf())
    }

    /// Decodes what lies at `position` (already passed through [`entry_start`]); when
    /// `prev` is known, the entry's `checksum_prev` must equal it.
    #[inline]
    pub fn step(&self, position: Position, prev: Option<u32>) -> Step<'_> {
        let Some((_, bytes)) = self.bytes_from(position) else { return Step::End };
        if is_unwritten(bytes) {
            return Step::Unwritten;
        }
        match decode_entry(bytes, position) {
            Err(error) => Step::Bad(error),
            Ok(view) => match prev {
                Some(expected) if expected != view.checksum_prev() => {
                    Step::Bad(Error::EntryChainBroken { position, expected, found: view.checksum_prev() })
                }
                _ => Step::Entry(view),
            },
        }
    }

    /// The first 32-byte slot after `position` that holds an entry valid on its own (its
    /// own position and checksum), if any. Evidence that a bad entry at `position` is
    /// corruption in the middle of the log rather than a torn tail.
    pub fn valid_entry_after(&self, position: Position) -> Option<Position> {
        let mut slot = Position(position.0 + 32);
        while let Some((_, bytes)) = self.bytes_from(slot) {
            let claims_this_slot =
                bytes.len() >= HEADER_BYTES && u64::from_le_bytes(bytes[24..32].try_into().unwrap()) == slot.0;
            if claims_this_slot && decode_entry(bytes, slot).is_ok() {
                return Some(slot);
            }
            slot = Position(slot.0 + 32);
        }
        None
    }

    /// Position just past the last non-zero byte at or after `position`, if any.
    pub fn written_end_after(&self, position: Position) -> Option<Position> {
        let first = self.index_of(position)?;
        for index in (first..self.segments.len()).rev() {
            let segment = &self.segments[index];
            let from = position.0.saturating_sub(segment.base().0) as usize;
            if let Some(last) = segment.data()[from..].iter().rposition(|&b| b != 0) {
                return Some(Position(segment.base().0 + (from + last + 1) as u64));
            }
        }
        None
    }
}

/// Lists the segment files in `dir` by base position, removing leftover `.tmp` files of
/// segments whose creation a crash interrupted (they never became part of the log) when
/// `tidy` is set.
pub fn list_segment_files(dir: &Path, tidy: bool) -> Result<Vec<(Position, PathBuf)>> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io("list log folder", dir))? {
        let entry = entry.map_err(io("list log folder", dir))?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if let Some(base) = parse_segment_file_name(&name) {
            found.push((base, entry.path()));
        } else if tidy && name.ends_with(".log.tmp") {
            std::fs::remove_file(entry.path()).map_err(io("remove unfinished segment", &entry.path()))?;
        }
    }
    found.sort();
    Ok(found)
}

/// Checks that segment files follow each other without a gap.
pub fn check_contiguous(dir: &Path, files: &[(Position, PathBuf)], segment_bytes: u64) -> Result<()> {
    for pair in files.windows(2) {
        let expected = Position(pair[0].0.0 + segment_bytes);
        if pair[1].0 != expected {
            let path = dir.join(crate::segment::segment_file_name(expected));
            return Err(LogError::MissingSegment { path });
        }
    }
    for (base, path) in files {
        if offset_in_segment(*base, segment_bytes) != 0 {
            return Err(LogError::NotOurs {
                path: path.clone(),
                reason: format!("its base {base} is not a multiple of log.segment_bytes ({segment_bytes})"),
            });
        }
    }
    Ok(())
}
