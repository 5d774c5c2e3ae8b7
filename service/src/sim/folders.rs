//! The simulated members' folders: the real storage a member keeps (`DiskStorage`: the
//! mapped, segmented log with its checkpoint, the vote file and recovering mark, the snapshot
//! folder, the event log) on real files, in memory where the machine has a tmpfs
//! (`/dev/shm`), opened by the member's own `disk::open_folder`. A crash damages them as a
//! disk would: a killed process leaves everything written (and perhaps a write cut short);
//! a power cut keeps of what was never fsynced only a prefix, perhaps with a bit flipped and
//! torn bytes after it; a lost disk leaves no folder at all.

use ordo_core::{ClusterId, Durability, LogConfig, Position};
use ordo_log::segment::{SEGMENT_HEADER_BYTES, segment_file_name};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// Segments of 64 KiB (the least a log takes): a run of a few megabytes crosses dozens of
/// segment ends, so padding, rolls, checkpoints and deletions happen in every run.
const SEGMENT_BYTES: u64 = 64 * 1024;
/// The largest command payload (an entry must fit in a segment).
pub(crate) const ENTRY_PAYLOAD_BYTES_MAX: u32 = 16 * 1024;

/// How every simulated member's log is configured.
pub(crate) fn log_config(cluster_id: ClusterId) -> LogConfig {
    LogConfig {
        cluster_id,
        segment_bytes: SEGMENT_BYTES,
        durability: Durability::Fsync,
        entry_payload_bytes_max: ENTRY_PAYLOAD_BYTES_MAX,
    }
}

/// The folder of a run's members, removed when the run ends.
pub(crate) struct Folders {
    root: PathBuf,
}

impl Folders {
    /// A fresh folder for seed `seed`'s members (in `/dev/shm` if there is one).
    pub(crate) fn new(seed: u64) -> std::io::Result<Folders> {
        static RUNS: AtomicU64 = AtomicU64::new(0);
        let shm = Path::new("/dev/shm");
        let parent = if shm.is_dir() { shm.to_path_buf() } else { std::env::temp_dir() };
        let run = RUNS.fetch_add(1, Ordering::Relaxed);
        let root = parent.join(format!("ordo-sim-{}-{seed}-{run}", std::process::id()));
        if root.exists() {
            std::fs::remove_dir_all(&root)?;
        }
        std::fs::create_dir_all(&root)?;
        Ok(Folders { root })
    }

    /// Member `index`'s folder.
    pub(crate) fn member(&self, index: usize) -> PathBuf {
        self.root.join(format!("member-{}", index + 1))
    }

    /// Formats member `index`'s folder as `ordo init` does (a vote file at term 0): a new
    /// member, not one that lost its state.
    pub(crate) fn format(&self, index: usize, cluster_id: ClusterId) -> Result<(), ordo_log::LogError> {
        let dir = self.member(index);
        std::fs::create_dir_all(&dir).map_err(|source| ordo_log::LogError::Io {
            action: "create member folder",
            path: dir.clone(),
            source,
        })?;
        ordo_log::VoteStore::new(&dir, cluster_id).format().map(drop)
    }
}

impl Drop for Folders {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

/// What a power cut does to the bytes of a log in `dir` that were never fsynced, `[durable,
/// end)`: the first `keep` survive (written back before the power went), with the bit
/// `flip` of them flipped (a disk that lied), then `torn` bytes of garbage (a write half
/// done), then zeros (pages never written back).
pub(crate) struct PowerCut<'a> {
    pub(crate) durable: Position,
    pub(crate) end: Position,
    pub(crate) keep: u64,
    pub(crate) flip: Option<u64>,
    pub(crate) torn: &'a [u8],
    /// Pages written back out of order: what follows a flipped bit is kept too.
    pub(crate) out_of_order: bool,
}

impl PowerCut<'_> {
    /// Damages the log in `dir` so; whether a bit was flipped.
    pub(crate) fn apply(&self, dir: &Path) -> std::io::Result<bool> {
        let keep = self.keep.min(self.end.0.saturating_sub(self.durable.0));
        let span = (self.end.0.saturating_sub(self.durable.0)).max(keep + self.torn.len() as u64);
        let mut bytes = read_span(dir, self.durable, span)?;
        for byte in &mut bytes[keep as usize..] {
            *byte = 0;
        }
        // Written back in order, what it damaged ends what it wrote: a flipped bit cuts the
        // write short there. Out of order, whole entries may follow the damage, and recovery
        // refuses the log as corrupt (the member is then rebuilt).
        let mut keep = keep;
        let flipped = self.flip.is_some() && keep > 0;
        if let Some(bit) = self.flip.filter(|_| keep > 0) {
            let bit = bit % (keep * 8);
            bytes[(bit / 8) as usize] ^= 1 << (bit % 8);
            if !self.out_of_order {
                keep = bit / 8 + 1;
                for byte in &mut bytes[keep as usize..] {
                    *byte = 0;
                }
            }
        }
        let torn_at = keep as usize;
        bytes[torn_at..torn_at + self.torn.len()].copy_from_slice(self.torn);
        write_span(dir, self.durable, &bytes)?;
        Ok(flipped)
    }
}

/// Flips bit `bit` (modulo the file's bits) of the file at `path`, as a disk that lied would:
/// the byte's offset in the file, or `None` if there is no such file or it is empty.
pub(crate) fn flip_bit(path: &Path, bit: u64) -> std::io::Result<Option<u64>> {
    let Ok(mut bytes) = std::fs::read(path) else { return Ok(None) };
    if bytes.is_empty() {
        return Ok(None);
    }
    let bit = bit % (bytes.len() as u64 * 8);
    bytes[(bit / 8) as usize] ^= 1 << (bit % 8);
    let mut file = std::fs::OpenOptions::new().write(true).open(path)?;
    file.write_all(&bytes)?;
    Ok(Some(bit / 8))
}

/// The files in `dir` whose names end with `suffix`, in name order.
pub(crate) fn files(dir: &Path, suffix: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|path| path.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.ends_with(suffix)))
        .collect();
    files.sort();
    files
}

/// The newest snapshot in member folder `dir` that reads back whole (one a disk lied about
/// is passed over), as an operator picks a backup.
pub(crate) fn newest_readable_snapshot(dir: &Path) -> Option<crate::replica::snapshot::Snapshot> {
    files(&dir.join("snapshots"), ".ordosnap").iter().rev().find_map(|file| {
        let bytes = std::fs::read(file).ok()?;
        crate::replica::snapshot::Snapshot::from_bytes(bytes, &file.display().to_string()).ok()
    })
}

/// Where `position` lies: its segment file in `dir` and the offset in that file.
fn locate(dir: &Path, position: Position) -> (PathBuf, u64, u64) {
    let base = position.0 - position.0 % SEGMENT_BYTES;
    let path = dir.join(segment_file_name(Position(base)));
    let room = base + SEGMENT_BYTES - position.0;
    (path, SEGMENT_HEADER_BYTES + position.0 - base, room)
}

/// `length` bytes of the log in `dir` from `from` (zeros where no segment file holds them).
fn read_span(dir: &Path, from: Position, length: u64) -> std::io::Result<Vec<u8>> {
    let mut bytes = vec![0u8; length as usize];
    let mut done = 0u64;
    while done < length {
        let (path, offset, room) = locate(dir, Position(from.0 + done));
        let take = room.min(length - done);
        if let Ok(mut file) = std::fs::File::open(&path) {
            file.seek(SeekFrom::Start(offset))?;
            let chunk = &mut bytes[done as usize..(done + take) as usize];
            let mut read = 0;
            while read < chunk.len() {
                match file.read(&mut chunk[read..])? {
                    0 => break,
                    n => read += n,
                }
            }
        }
        done += take;
    }
    Ok(bytes)
}

/// Writes `bytes` over the log in `dir` from `from`, into the segment files that exist.
fn write_span(dir: &Path, from: Position, bytes: &[u8]) -> std::io::Result<()> {
    let mut done = 0u64;
    while done < bytes.len() as u64 {
        let (path, offset, room) = locate(dir, Position(from.0 + done));
        let take = room.min(bytes.len() as u64 - done);
        if let Ok(mut file) = std::fs::OpenOptions::new().write(true).open(&path) {
            file.seek(SeekFrom::Start(offset))?;
            file.write_all(&bytes[done as usize..(done + take) as usize])?;
        }
        done += take;
    }
    Ok(())
}

/// What the entries of `[from, to)` of a log hold (`from` an entry's start): each entry's
/// header and payload, across segments. Not the alignment after a payload nor a padding
/// entry's body: they carry no data and no checksum, so a bit a disk flips there changes
/// nothing a member reads, sends or applies. Bytes that are no entry are taken whole, to
/// differ from any entry.
pub(crate) fn entries_between(log: &dyn ordo_core::LogSource, from: Position, to: Position) -> Vec<u8> {
    let mut bytes = Vec::with_capacity((to.0 - from.0) as usize);
    let mut position = from;
    while position < to {
        let Some((start, chunk)) = log.read_log(position) else { break };
        let chunk = &chunk[..chunk.len().min((to.0 - start.0) as usize)];
        let Ok(entry) = ordo_core::entry::decode_entry(chunk, start) else {
            bytes.extend_from_slice(chunk);
            break;
        };
        let kept = match entry.kind() {
            ordo_core::EntryKind::Padding => ordo_core::HEADER_BYTES,
            _ => entry.header.length_bytes() as usize,
        };
        bytes.extend_from_slice(&chunk[..kept.min(chunk.len())]);
        position = entry.next_position();
    }
    bytes
}

#[cfg(test)]
mod tests {
    use super::*;
    use ordo_core::{ClusterTimeNs, EntryMeta, SessionId, Term};

    #[test]
    fn a_power_cut_keeps_the_fsynced_log_and_recovery_cuts_what_was_not() {
        let folders = Folders::new(1).unwrap();
        let dir = folders.member(0).join("log");
        let (mut log, _) = ordo_log::Log::open(&dir, log_config(ClusterId(1))).unwrap();
        let meta = EntryMeta::command(Term(1), ClusterTimeNs(1), SessionId(1), 0);
        for _ in 0..100 {
            log.append(&meta, &[7; 1000]).unwrap();
        }
        log.sync().unwrap();
        for _ in 0..100 {
            log.append(&meta, &[8; 1000]).unwrap();
        }
        // What is durable now: the last sync, or the last segment roll (which syncs).
        let (durable, end) = (log.position_durable(), log.position_append());
        drop(log); // a crash
        let torn = [0xAB; 50];
        PowerCut { durable, end, keep: 3000, flip: None, torn: &torn, out_of_order: false }.apply(&dir).unwrap();
        let (log, recovery) = ordo_log::Log::open(&dir, log_config(ClusterId(1))).unwrap();
        assert!(log.position_append() >= durable && log.position_append() < end, "{recovery:?}");
        assert!(recovery.torn_tail.is_some(), "the torn write was cut: {recovery:?}");
    }

    #[test]
    fn a_log_reset_to_a_base_whose_entries_were_all_lost_opens_at_the_base() {
        let folders = Folders::new(2).unwrap();
        let dir = folders.member(0).join("events");
        let config = log_config(ClusterId(1)).for_events();
        let (mut log, _) = ordo_log::Log::open(&dir, config.clone()).unwrap();
        let base = ordo_log::LogBase {
            position: Position(61920),
            term: Term(0),
            entry_position: Position(61824),
            checksum: 77,
            time_max: ClusterTimeNs(5),
        };
        log.reset_to(&base).unwrap();
        let meta = EntryMeta::command(Term(0), ClusterTimeNs(6), SessionId(1), 0);
        for _ in 0..10 {
            log.append(&meta, &[9; 40]).unwrap();
        }
        let end = log.position_append();
        log.sync().unwrap();
        drop(log);
        PowerCut { durable: base.position, end, keep: 0, flip: None, torn: &[], out_of_order: false }
            .apply(&dir)
            .unwrap();
        let (log, recovery) = ordo_log::Log::open(&dir, config).unwrap();
        assert_eq!((log.position_start(), log.position_append()), (base.position, base.position), "{recovery:?}");
    }
}
