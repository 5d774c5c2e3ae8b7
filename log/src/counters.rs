//! A counters file (Aeron's CnC counters): named 64-bit values in a memory-mapped file that
//! one process writes as it runs and any other reads live, without a call into the writer.
//! `ordo stat` reads a member's this way.
//!
//! Layout: a 4096-byte header — magic `ORDOCTR1`, version, the slot count, the writer's pid,
//! then each slot's name (48 bytes, NUL-padded) — followed by the values, 8 bytes each,
//! little-endian, 8-aligned. The writer stores with release ordering and the reader loads
//! with acquire, one value at a time (a value is never torn; a set of values read together
//! may straddle an update, which is what live counters are).

use crate::error::{LogError, Result, io};
use memmap2::{Mmap, MmapMut, MmapOptions};
use std::fs::OpenOptions;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

const MAGIC: &[u8; 8] = b"ORDOCTR1";
const VERSION: u32 = 1;
const HEADER_BYTES: usize = 4096;
const NAME_BYTES: usize = 48;
const NAMES_OFFSET: usize = 24;
/// The most slots a counters file has (its names fill the header page).
pub const SLOTS_MAX: usize = (HEADER_BYTES - NAMES_OFFSET) / NAME_BYTES;

/// The writer's side: created (replacing any old file) by the process that counts.
pub struct CountersWriter {
    map: MmapMut,
    slots: usize,
}

impl CountersWriter {
    /// Creates `path` with one slot per name, all zero.
    pub fn create(path: &Path, names: &[&str]) -> Result<CountersWriter> {
        assert!(names.len() <= SLOTS_MAX, "at most {SLOTS_MAX} counters");
        let temp = path.with_extension("tmp");
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&temp)
            .map_err(io("create counters file", &temp))?;
        let bytes = HEADER_BYTES + names.len().max(1) * 8;
        file.set_len(bytes as u64).map_err(io("size counters file", &temp))?;
        // SAFETY: the file was just created by this process and is never truncated while
        // mapped; readers map it read-only and only load whole aligned u64 values.
        let mut map = unsafe { MmapOptions::new().map_mut(&file) }.map_err(io("map counters file", &temp))?;
        map[..8].copy_from_slice(MAGIC);
        map[8..12].copy_from_slice(&VERSION.to_le_bytes());
        map[12..16].copy_from_slice(&(names.len() as u32).to_le_bytes());
        map[16..24].copy_from_slice(&(std::process::id() as u64).to_le_bytes());
        for (i, name) in names.iter().enumerate() {
            let at = NAMES_OFFSET + i * NAME_BYTES;
            let name = &name.as_bytes()[..name.len().min(NAME_BYTES)];
            map[at..at + name.len()].copy_from_slice(name);
        }
        std::fs::rename(&temp, path).map_err(io("rename counters file into place", path))?;
        Ok(CountersWriter { map, slots: names.len() })
    }

    fn slot(&self, index: usize) -> &AtomicU64 {
        assert!(index < self.slots, "counter {index} of {}", self.slots);
        let pointer = self.map[HEADER_BYTES + index * 8..].as_ptr() as *mut u64;
        // SAFETY: the map is page-aligned and the offset a multiple of 8, so the pointer is
        // aligned for u64; the bytes lie inside the map, which lives as long as `self`; and
        // the file's values are only ever accessed atomically (here and in the reader).
        unsafe { AtomicU64::from_ptr(pointer) }
    }

    #[inline]
    pub fn set(&self, index: usize, value: u64) {
        self.slot(index).store(value, Ordering::Release);
    }

    #[inline]
    pub fn get(&self, index: usize) -> u64 {
        self.slot(index).load(Ordering::Acquire)
    }
}

/// The reader's side: maps a counters file read-only, from any process.
pub struct CountersReader {
    map: Mmap,
    names: Vec<String>,
    pid: u64,
    path: PathBuf,
}

impl CountersReader {
    pub fn open(path: &Path) -> Result<CountersReader> {
        let file = std::fs::File::open(path).map_err(io("open counters file", path))?;
        // SAFETY: read-only; the writer never truncates the file while it runs (it replaces
        // it whole on start, which leaves this mapping on the old file).
        let map = unsafe { Mmap::map(&file) }.map_err(io("map counters file", path))?;
        let bad = |reason: &str| LogError::BadMetadata { path: path.to_path_buf(), reason: reason.to_string() };
        if map.len() < HEADER_BYTES || &map[..8] != MAGIC {
            return Err(bad("it is not an ordo counters file"));
        }
        if u32::from_le_bytes(map[8..12].try_into().expect("4 bytes")) != VERSION {
            return Err(bad("it is of a counters version this build does not read"));
        }
        let slots = u32::from_le_bytes(map[12..16].try_into().expect("4 bytes")) as usize;
        if slots > SLOTS_MAX || map.len() < HEADER_BYTES + slots * 8 {
            return Err(bad("its slot count does not fit its size"));
        }
        let pid = u64::from_le_bytes(map[16..24].try_into().expect("8 bytes"));
        let names = (0..slots)
            .map(|i| {
                let name = &map[NAMES_OFFSET + i * NAME_BYTES..NAMES_OFFSET + (i + 1) * NAME_BYTES];
                let end = name.iter().position(|&b| b == 0).unwrap_or(NAME_BYTES);
                String::from_utf8_lossy(&name[..end]).into_owned()
            })
            .collect();
        Ok(CountersReader { map, names, pid, path: path.to_path_buf() })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The process that wrote the file.
    pub fn pid(&self) -> u64 {
        self.pid
    }

    pub fn names(&self) -> &[String] {
        &self.names
    }

    pub fn get(&self, index: usize) -> u64 {
        assert!(index < self.names.len());
        let pointer = self.map[HEADER_BYTES + index * 8..].as_ptr() as *mut u64;
        // SAFETY: aligned and in bounds as in the writer; only loaded, atomically, through
        // a shared mapping the writer stores to atomically.
        unsafe { AtomicU64::from_ptr(pointer) }.load(Ordering::Acquire)
    }

    /// The value of the counter named `name`.
    pub fn value(&self, name: &str) -> Option<u64> {
        self.names.iter().position(|n| n == name).map(|i| self.get(i))
    }

    /// Every counter, in slot order.
    pub fn all(&self) -> Vec<(&str, u64)> {
        self.names.iter().enumerate().map(|(i, n)| (n.as_str(), self.get(i))).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn another_mapping_reads_what_the_writer_sets_live() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("counters");
        let writer = CountersWriter::create(&path, &["role", "term", "commit_position"]).unwrap();
        let reader = CountersReader::open(&path).unwrap();
        assert_eq!(reader.names(), ["role", "term", "commit_position"]);
        assert_eq!(reader.pid(), std::process::id() as u64);
        writer.set(1, 7);
        writer.set(2, 4096);
        assert_eq!(reader.value("term"), Some(7));
        assert_eq!(reader.all(), [("role", 0), ("term", 7), ("commit_position", 4096)]);
        assert_eq!(reader.value("nope"), None);
        std::fs::write(dir.path().join("other"), b"not counters").unwrap();
        assert!(CountersReader::open(&dir.path().join("other")).is_err());
    }
}
