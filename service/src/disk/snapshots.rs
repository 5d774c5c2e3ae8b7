//! The snapshot folder: `snapshot-<position, 20 digits>.ordosnap` files in a member's
//! `snapshots/` folder, written to a temp file, fsynced, renamed, the folder fsynced; so a
//! snapshot file is whole or absent. Loading tries the newest first and reports (never
//! silently skips) any it finds corrupt.

use crate::replica::snapshot::{Snapshot, SnapshotError, io};
use ordo_core::{ClusterId, Position};
use ordo_log::LogBase;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

const FILE_PREFIX: &str = "snapshot-";
const FILE_SUFFIX: &str = ".ordosnap";

/// The snapshot file name for `position`.
pub fn file_name(position: Position) -> String {
    format!("{FILE_PREFIX}{:020}{FILE_SUFFIX}", position.0)
}

fn parse_file_name(name: &str) -> Option<Position> {
    let digits = name.strip_prefix(FILE_PREFIX)?.strip_suffix(FILE_SUFFIX)?;
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok().map(Position)
}

/// A member's snapshot folder.
#[derive(Clone, Debug)]
pub struct SnapshotStore {
    dir: PathBuf,
    cluster_id: ClusterId,
    /// Whether a write is fsynced (file and folder) before it counts: under `fsync`
    /// durability, yes; under `replicated` the log itself is not synced either, and a member
    /// that loses both after a power cut recovers from its peers.
    sync: bool,
}

/// The newest valid snapshot, and every newer one that was not (each reported).
#[derive(Debug, Default)]
pub struct Loaded {
    pub snapshot: Option<Snapshot>,
    pub rejected: Vec<SnapshotError>,
}

impl SnapshotStore {
    pub fn open(dir: &Path, cluster_id: ClusterId) -> Result<SnapshotStore, SnapshotError> {
        std::fs::create_dir_all(dir).map_err(io("create snapshot folder", dir))?;
        Ok(SnapshotStore { dir: dir.to_path_buf(), cluster_id, sync: true })
    }

    /// Writes are not fsynced (the store of a member whose durability is `replicated`).
    pub fn without_sync(mut self) -> SnapshotStore {
        self.sync = false;
        self
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Writes a snapshot atomically (temp file, fsync, rename, fsync the folder; the fsyncs
    /// only if the store syncs).
    pub fn write(&self, base: &LogBase, events: &LogBase, app: &str, body: &[u8]) -> Result<PathBuf, SnapshotError> {
        let mut bytes = Vec::new();
        Snapshot::encode(self.cluster_id, base, events, app, body, &mut bytes);
        self.write_bytes(base.position, &bytes)
    }

    /// Stores a snapshot's whole bytes (as received from the leader, already checked).
    pub fn write_bytes(&self, position: Position, bytes: &[u8]) -> Result<PathBuf, SnapshotError> {
        let path = self.dir.join(file_name(position));
        let temp = self.dir.join(format!("{}.tmp", file_name(position)));
        let mut file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&temp)
            .map_err(io("create snapshot file", &temp))?;
        file.write_all(bytes).map_err(io("write snapshot file", &temp))?;
        if self.sync {
            file.sync_all().map_err(io("fsync snapshot file", &temp))?;
        }
        std::fs::rename(&temp, &path).map_err(io("rename snapshot into place", &path))?;
        if self.sync {
            File::open(&self.dir).and_then(|d| d.sync_all()).map_err(io("fsync snapshot folder", &self.dir))?;
        }
        Ok(path)
    }

    /// Every snapshot file's position and path, oldest first (not checked).
    pub fn list(&self) -> Result<Vec<(Position, PathBuf)>, SnapshotError> {
        let mut found = Vec::new();
        for entry in std::fs::read_dir(&self.dir).map_err(io("list snapshot folder", &self.dir))? {
            let entry = entry.map_err(io("list snapshot folder", &self.dir))?;
            if let Some(position) = parse_file_name(&entry.file_name().to_string_lossy()) {
                found.push((position, entry.path()));
            }
        }
        found.sort();
        Ok(found)
    }

    /// Reads and checks the snapshot at `path`.
    pub fn read(&self, path: &Path) -> Result<Snapshot, SnapshotError> {
        let bytes = std::fs::read(path).map_err(io("read snapshot file", path))?;
        let snapshot = Snapshot::from_bytes(bytes, &path.display().to_string())?;
        if snapshot.info.cluster_id != self.cluster_id {
            let what = path.display().to_string();
            return Err(SnapshotError::WrongCluster {
                what,
                found: snapshot.info.cluster_id,
                expected: self.cluster_id,
            });
        }
        Ok(snapshot)
    }

    /// The newest snapshot that reads back whole, with a report of each newer one that did
    /// not (those files are left for the operator to look at).
    pub fn load_newest(&self) -> Result<Loaded, SnapshotError> {
        let mut loaded = Loaded::default();
        for (_, path) in self.list()?.into_iter().rev() {
            match self.read(&path) {
                Ok(snapshot) => {
                    loaded.snapshot = Some(snapshot);
                    break;
                }
                Err(error @ SnapshotError::Io { .. }) => return Err(error),
                Err(error) => loaded.rejected.push(error),
            }
        }
        Ok(loaded)
    }

    /// Deletes all but the newest `keep` snapshot files; returns the position of the oldest
    /// one kept (the log below it may go) and the files deleted.
    pub fn prune(&self, keep: usize) -> Result<(Option<Position>, Vec<PathBuf>), SnapshotError> {
        let keep = keep.max(1);
        let files = self.list()?;
        let excess = files.len().saturating_sub(keep);
        let mut deleted = Vec::with_capacity(excess);
        for (_, path) in &files[..excess] {
            std::fs::remove_file(path).map_err(io("delete snapshot file", path))?;
            deleted.push(path.clone());
        }
        Ok((files.get(excess).map(|&(position, _)| position), deleted))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::replica::snapshot::base;

    #[test]
    fn the_newest_whole_snapshot_is_loaded_and_a_corrupt_one_reported() {
        let dir = tempfile::tempdir().unwrap();
        let store = SnapshotStore::open(dir.path(), ClusterId(1)).unwrap();
        store.write(&base(1000), &base(100), "kv", b"older").unwrap();
        let newest = store.write(&base(2000), &base(100), "kv", b"newer").unwrap();
        assert_eq!(store.load_newest().unwrap().snapshot.unwrap().body(), b"newer");

        let mut bytes = std::fs::read(&newest).unwrap();
        *bytes.last_mut().unwrap() ^= 1;
        std::fs::write(&newest, bytes).unwrap();
        let loaded = store.load_newest().unwrap();
        assert_eq!(loaded.snapshot.unwrap().body(), b"older", "the previous one is used");
        assert_eq!(loaded.rejected.len(), 1);
        let report = loaded.rejected[0].to_string();
        assert!(report.contains(&file_name(Position(2000))) && report.contains("checksum"), "{report}");

        let other = SnapshotStore::open(dir.path(), ClusterId(2)).unwrap();
        let loaded = other.load_newest().unwrap();
        assert!(loaded.snapshot.is_none());
        assert!(matches!(loaded.rejected[1], SnapshotError::WrongCluster { .. }), "{:?}", loaded.rejected);
    }

    #[test]
    fn pruning_keeps_the_newest() {
        let dir = tempfile::tempdir().unwrap();
        let store = SnapshotStore::open(dir.path(), ClusterId(1)).unwrap();
        for position in [1000, 2000, 3000] {
            store.write(&base(position), &base(100), "kv", b"s").unwrap();
        }
        let (oldest_kept, deleted) = store.prune(2).unwrap();
        assert_eq!(oldest_kept, Some(Position(2000)));
        assert_eq!(deleted.len(), 1);
        assert_eq!(store.list().unwrap().iter().map(|(p, _)| p.0).collect::<Vec<_>>(), [2000, 3000]);
    }
}
