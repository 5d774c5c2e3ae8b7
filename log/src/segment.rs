//! One segment file: a 4 KiB header page, then `segment_bytes` of log data, preallocated
//! (so a full disk fails when the segment is created, never as a SIGBUS on a mapped write)
//! and memory-mapped. The data area starts on a page boundary, so it maps on its own and
//! byte `i` of the map is log position `base + i`.

use crate::error::{LogError, Result, io};
use crate::small_file::sync_dir;
use memmap2::{Mmap, MmapMut, MmapOptions};
use ordo_core::checksum::crc32c;
use ordo_core::{ClusterId, Durability, LogConfig, Position};
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use zerocopy::little_endian::{U32, U64};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout, Unaligned};

pub const SEGMENT_HEADER_BYTES: u64 = 4096;
const SEGMENT_MAGIC: [u8; 8] = *b"ORDOSEG\0";
const SEGMENT_VERSION: u32 = 1;
const SEGMENT_SUFFIX: &str = ".log";

#[derive(FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned, Clone, Copy, Debug)]
#[repr(C)]
struct SegmentHeader {
    magic: [u8; 8],
    version: U32,
    header_bytes: U32,
    cluster_id: U64,
    segment_bytes: U64,
    base_position: U64,
    reserved: U32,
    /// CRC32C of the bytes before it.
    crc: U32,
}

impl SegmentHeader {
    fn new(cluster_id: ClusterId, segment_bytes: u64, base: Position) -> Self {
        let mut header = SegmentHeader {
            magic: SEGMENT_MAGIC,
            version: U32::new(SEGMENT_VERSION),
            header_bytes: U32::new(SEGMENT_HEADER_BYTES as u32),
            cluster_id: U64::new(cluster_id.0),
            segment_bytes: U64::new(segment_bytes),
            base_position: U64::new(base.0),
            reserved: U32::ZERO,
            crc: U32::ZERO,
        };
        header.crc = U32::new(header.computed_crc());
        header
    }

    fn computed_crc(&self) -> u32 {
        let bytes = self.as_bytes();
        crc32c(&bytes[..bytes.len() - 4])
    }
}

/// The file name of the segment whose data starts at `base`: sortable by name.
pub fn segment_file_name(base: Position) -> String {
    format!("{:020}{SEGMENT_SUFFIX}", base.0)
}

/// The base position a segment file name stands for, if it is one.
pub fn parse_segment_file_name(name: &str) -> Option<Position> {
    let digits = name.strip_suffix(SEGMENT_SUFFIX)?;
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok().map(Position)
}

enum Map {
    Write(MmapMut),
    Read(Mmap),
}

pub struct Segment {
    base: Position,
    path: PathBuf,
    file: File,
    map: Map,
}

impl std::fmt::Debug for Segment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Segment").field("base", &self.base).field("path", &self.path).finish()
    }
}

impl Segment {
    /// Creates, preallocates and maps a new segment. It appears under its real name only
    /// once complete (temp file, fsync, rename, fsync folder; the fsyncs under `fsync`
    /// durability only), so a crash never leaves a half-made segment that looks real.
    pub fn create(dir: &Path, config: &LogConfig, base: Position) -> Result<Segment> {
        debug_assert_eq!(base.0 % config.segment_bytes, 0);
        let path = dir.join(segment_file_name(base));
        let temp = dir.join(format!("{}.tmp", segment_file_name(base)));
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&temp)
            .map_err(io("create segment", &temp))?;
        let total_bytes = SEGMENT_HEADER_BYTES + config.segment_bytes;
        preallocate(&file, &temp, total_bytes)?;
        let header = SegmentHeader::new(config.cluster_id, config.segment_bytes, base);
        file.write_all(header.as_bytes()).map_err(io("write segment header", &temp))?;
        // Under `replicated` nothing is synced (a power cut's damage is repaired from peers).
        let durable = config.durability == Durability::Fsync;
        if durable {
            file.sync_all().map_err(io("fsync segment", &temp))?;
        }
        std::fs::rename(&temp, &path).map_err(io("rename segment into place", &path))?;
        if durable {
            sync_dir(dir)?;
        }
        let map = map_data(&file, &path, config.segment_bytes, true)?;
        Ok(Segment { base, path, file, map })
    }

    /// Opens an existing segment, refusing (before touching anything) a file that isn't
    /// ours, is from another cluster, has another segment size or another base.
    pub fn open(path: &Path, config: &LogConfig, base: Position, writable: bool) -> Result<Segment> {
        let mut file = OpenOptions::new().read(true).write(writable).open(path).map_err(io("open segment", path))?;
        let not_ours = |reason: String| LogError::NotOurs { path: path.to_path_buf(), reason };
        let mut header_bytes = [0u8; size_of::<SegmentHeader>()];
        file.read_exact(&mut header_bytes).map_err(|_| not_ours("it is shorter than a segment header".into()))?;
        let header = SegmentHeader::read_from_bytes(&header_bytes).expect("sized to the header");
        if header.magic != SEGMENT_MAGIC {
            return Err(not_ours("its first bytes are not the segment magic".into()));
        }
        if header.crc.get() != header.computed_crc() {
            return Err(not_ours("its header checksum does not match".into()));
        }
        if header.version.get() != SEGMENT_VERSION || header.header_bytes.get() as u64 != SEGMENT_HEADER_BYTES {
            return Err(not_ours(format!(
                "it is segment format version {}, this ordo reads version 1",
                header.version.get()
            )));
        }
        if header.cluster_id.get() != config.cluster_id.0 {
            return Err(LogError::WrongCluster {
                path: path.to_path_buf(),
                found: ClusterId(header.cluster_id.get()),
                expected: config.cluster_id,
            });
        }
        if header.segment_bytes.get() != config.segment_bytes {
            return Err(LogError::WrongSegmentSize {
                path: path.to_path_buf(),
                found: header.segment_bytes.get(),
                expected: config.segment_bytes,
            });
        }
        if header.base_position.get() != base.0 {
            return Err(not_ours(format!(
                "its header says it starts at {} but its name says {base}",
                header.base_position.get()
            )));
        }
        let length = file.metadata().map_err(io("stat segment", path))?.len();
        if length != SEGMENT_HEADER_BYTES + config.segment_bytes {
            return Err(not_ours(format!(
                "it is {length} bytes long, a segment is {} bytes",
                SEGMENT_HEADER_BYTES + config.segment_bytes
            )));
        }
        let map = map_data(&file, path, config.segment_bytes, writable)?;
        Ok(Segment { base, path: path.to_path_buf(), file, map })
    }

    pub fn base(&self) -> Position {
        self.base
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The whole data area, zero copy.
    #[inline]
    pub fn data(&self) -> &[u8] {
        match &self.map {
            Map::Write(map) => map,
            Map::Read(map) => map,
        }
    }

    #[inline]
    pub fn data_mut(&mut self) -> &mut [u8] {
        match &mut self.map {
            Map::Write(map) => map,
            Map::Read(_) => unreachable!("read-only segments are never written"),
        }
    }

    /// `fdatasync` of the file: covers the mapped writes (they dirty the file's page-cache
    /// pages). Never `msync`: measured slower and not needed on Linux.
    pub fn sync_data(&self) -> Result<()> {
        self.file.sync_data().map_err(|source| LogError::SyncFailed { path: self.path.clone(), source })
    }

    /// Unlinks the file; the map stays valid until the segment is dropped.
    pub fn remove_file(&self) -> Result<()> {
        std::fs::remove_file(&self.path).map_err(io("delete segment", &self.path))
    }
}

fn preallocate(file: &File, path: &Path, bytes: u64) -> Result<()> {
    use rustix::fs::{FallocateFlags, fallocate};
    match fallocate(file, FallocateFlags::empty(), 0, bytes) {
        Ok(()) => Ok(()),
        Err(rustix::io::Errno::NOSPC) => Err(LogError::DiskFull { path: path.to_path_buf(), bytes }),
        // A file system without fallocate: a sparse file still maps; space is then claimed
        // on first write, which is why fallocate is preferred.
        Err(rustix::io::Errno::OPNOTSUPP) => file.set_len(bytes).map_err(io("size segment", path)),
        Err(e) => Err(io("preallocate segment", path)(e.into())),
    }
}

fn map_data(file: &File, path: &Path, segment_bytes: u64, writable: bool) -> Result<Map> {
    let mut options = MmapOptions::new();
    options.offset(SEGMENT_HEADER_BYTES).len(segment_bytes as usize);
    if writable {
        // SAFETY: the file is ours (the flock on the log folder keeps other ordo processes
        // out) and is never truncated while mapped: segments are only deleted whole.
        let map = unsafe { options.map_mut(file) }.map_err(io("map segment", path))?;
        Ok(Map::Write(map))
    } else {
        // SAFETY: a read-only view for verification and tools. A live member may append to
        // the same file, but appends only fill bytes past the log's end, which a reader
        // treats as not yet written; the file is never truncated while mapped.
        let map = unsafe { options.map(file) }.map_err(io("map segment", path))?;
        Ok(Map::Read(map))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> LogConfig {
        LogConfig { cluster_id: ClusterId(9), segment_bytes: 64 * 1024, ..LogConfig::default() }
    }

    #[test]
    fn file_names_sort_by_position_and_parse_back() {
        assert_eq!(segment_file_name(Position(65536)), "00000000000000065536.log");
        assert_eq!(parse_segment_file_name("00000000000000065536.log"), Some(Position(65536)));
        assert_eq!(parse_segment_file_name("65536.log"), None);
        assert_eq!(parse_segment_file_name("00000000000000065536.log.tmp"), None);
    }

    #[test]
    fn a_created_segment_is_zeroed_and_reopens() {
        let dir = tempfile::tempdir().unwrap();
        let mut segment = Segment::create(dir.path(), &config(), Position(0)).unwrap();
        assert!(segment.data().iter().all(|&b| b == 0));
        segment.data_mut()[10] = 7;
        drop(segment);
        let path = dir.path().join(segment_file_name(Position(0)));
        let segment = Segment::open(&path, &config(), Position(0), false).unwrap();
        assert_eq!(segment.data()[10], 7);
        assert_eq!(segment.data().len(), 64 * 1024);
    }

    #[test]
    fn another_clusters_or_sizes_segment_is_refused_and_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        drop(Segment::create(dir.path(), &config(), Position(0)).unwrap());
        let path = dir.path().join(segment_file_name(Position(0)));
        let before = std::fs::read(&path).unwrap();
        let other_cluster = LogConfig { cluster_id: ClusterId(10), ..config() };
        assert!(matches!(Segment::open(&path, &other_cluster, Position(0), true), Err(LogError::WrongCluster { .. })));
        let other_size = LogConfig { segment_bytes: 128 * 1024, ..config() };
        assert!(matches!(Segment::open(&path, &other_size, Position(0), true), Err(LogError::WrongSegmentSize { .. })));
        assert!(matches!(Segment::open(&path, &config(), Position(65536), true), Err(LogError::NotOurs { .. })));
        assert_eq!(std::fs::read(&path).unwrap(), before, "nothing was modified");
    }

    #[test]
    fn a_file_that_is_not_a_segment_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(segment_file_name(Position(0)));
        std::fs::write(&path, b"hello, I am a text file, not a segment of an ordo log at all").unwrap();
        let error = Segment::open(&path, &config(), Position(0), true).unwrap_err();
        assert!(matches!(error, LogError::NotOurs { .. }), "{error}");
        std::fs::write(&path, b"tiny").unwrap();
        assert!(matches!(Segment::open(&path, &config(), Position(0), true), Err(LogError::NotOurs { .. })));
    }
}
