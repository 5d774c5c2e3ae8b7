//! Snapshots: the container's whole state at a log position, in a file that says what it is.
//!
//! A snapshot file is a 160-byte header and a body. The header holds the position (the state
//! covers every entry below it), what the log must know to continue after it (the last
//! entry's term, position and checksum, the latest cluster time: a [`LogBase`]), where the
//! event log stood (its own `LogBase`: see `crate::replica::events`), the state
//! hash (CRC-64 of the body, which is the container's encoding, so it equals
//! `Container::state_hash` at that position on every member), the app's name, the body's
//! length and CRC32C, and the header's own CRC32C. The same bytes are the file on disk and
//! what a leader streams to a follower that is too far behind.
//!
//! On disk (`crate::disk::snapshots::SnapshotStore`): `snapshot-<position, 20 digits>.ordosnap` in the member's
//! `snapshots/` folder, written to a temp file, fsynced, renamed, the folder fsynced; so a
//! snapshot file is whole or absent. Loading tries the newest first and reports (never
//! silently skips) any it finds corrupt.

use ordo_core::LogBase;
use ordo_core::checksum::{crc32c, crc64};
use ordo_core::{ClusterId, ClusterTimeNs, Position, Term};
use std::path::{Path, PathBuf};
use zerocopy::little_endian::{U32, U64};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout, Unaligned};

pub const SNAPSHOT_MAGIC: [u8; 8] = *b"ORDOSNAP";
pub const SNAPSHOT_VERSION: u32 = 1;
pub const SNAPSHOT_HEADER_BYTES: usize = 160;
pub const APP_NAME_BYTES_MAX: usize = 32;

#[derive(FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned, Clone, Copy, Debug)]
#[repr(C)]
struct Header {
    magic: [u8; 8],
    version: U32,
    header_bytes: U32,
    cluster_id: U64,
    position: U64,
    term: U64,
    entry_position: U64,
    entry_checksum: U32,
    reserved: U32,
    time_max: U64,
    state_hash: U64,
    body_bytes: U64,
    body_checksum: U32,
    app_name: [u8; APP_NAME_BYTES_MAX],
    events_position: U64,
    events_term: U64,
    events_entry_position: U64,
    events_checksum: U32,
    events_time_max: U64,
    padding: [u8; 4],
    /// CRC32C of every header byte before it.
    header_checksum: U32,
}

const _: () = assert!(size_of::<Header>() == SNAPSHOT_HEADER_BYTES);

/// What a snapshot's header says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SnapshotInfo {
    pub cluster_id: ClusterId,
    /// Where the log continues after the snapshot: `base.position` is the snapshot's position.
    pub base: LogBase,
    /// Where the event log stood when the snapshot was taken.
    pub events: LogBase,
    pub state_hash: u64,
    pub app: String,
    pub body_bytes: u64,
}

impl SnapshotInfo {
    pub fn position(&self) -> Position {
        self.base.position
    }
}

/// A snapshot that was read whole and checked: header, body checksum and state hash.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Snapshot {
    pub info: SnapshotInfo,
    bytes: Vec<u8>,
}

#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error("snapshot {what} is unusable: {reason}; it was left as it is: delete it, or restore another snapshot")]
    Bad { what: String, reason: String },
    #[error(
        "snapshot {what} belongs to cluster {found}, this member to cluster {expected}; point the member at its own data folder"
    )]
    WrongCluster { what: String, found: ClusterId, expected: ClusterId },
    #[error(
        "{} holds no usable snapshot at or past the log's start {log_start} (the newest usable is at {usable}; {passed_over} passed over as damaged): the state before {log_start} cannot be rebuilt from this folder; move the member's folder aside and start it empty to catch up from its peers, or seed it with `ordo snapshot restore`",
        dir.display()
    )]
    /// The log starts past every usable snapshot: what was applied below its start is gone.
    NoneReachesLog { dir: PathBuf, log_start: Position, usable: Position, passed_over: usize },
    #[error("cannot {action} {path}: {source}; check the disk and the folder's permissions")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

pub(crate) fn io(action: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> SnapshotError {
    let path = path.to_path_buf();
    move |source| SnapshotError::Io { action, path, source }
}

impl Snapshot {
    /// Encodes the snapshot of a state whose body (`Container::encode`) is `body`.
    pub fn encode(cluster_id: ClusterId, base: &LogBase, events: &LogBase, app: &str, body: &[u8], out: &mut Vec<u8>) {
        let mut app_name = [0u8; APP_NAME_BYTES_MAX];
        let name = &app.as_bytes()[..app.len().min(APP_NAME_BYTES_MAX)];
        app_name[..name.len()].copy_from_slice(name);
        let mut header = Header {
            magic: SNAPSHOT_MAGIC,
            version: SNAPSHOT_VERSION.into(),
            header_bytes: (SNAPSHOT_HEADER_BYTES as u32).into(),
            cluster_id: cluster_id.0.into(),
            position: base.position.0.into(),
            term: base.term.0.into(),
            entry_position: base.entry_position.0.into(),
            entry_checksum: base.checksum.into(),
            reserved: 0.into(),
            time_max: base.time_max.0.into(),
            state_hash: crc64(body).into(),
            body_bytes: (body.len() as u64).into(),
            body_checksum: crc32c(body).into(),
            app_name,
            events_position: events.position.0.into(),
            events_term: events.term.0.into(),
            events_entry_position: events.entry_position.0.into(),
            events_checksum: events.checksum.into(),
            events_time_max: events.time_max.0.into(),
            padding: [0; 4],
            header_checksum: 0.into(),
        };
        header.header_checksum = crc32c(&header.as_bytes()[..SNAPSHOT_HEADER_BYTES - 4]).into();
        out.reserve(SNAPSHOT_HEADER_BYTES + body.len());
        out.extend_from_slice(header.as_bytes());
        out.extend_from_slice(body);
    }

    /// Checks and takes a whole snapshot's bytes; `what` names them in errors (a path, or
    /// "from member 2").
    pub fn from_bytes(bytes: Vec<u8>, what: &str) -> Result<Snapshot, SnapshotError> {
        let info = read_info(&bytes, what)?;
        let body = &bytes[SNAPSHOT_HEADER_BYTES..];
        let bad = |reason: String| SnapshotError::Bad { what: what.to_string(), reason };
        if body.len() as u64 != info.body_bytes {
            return Err(bad(format!("its body is {} bytes, its header says {}", body.len(), info.body_bytes)));
        }
        let header = Header::read_from_bytes(&bytes[..SNAPSHOT_HEADER_BYTES]).expect("sized");
        if crc32c(body) != header.body_checksum.get() {
            return Err(bad("its body's checksum does not match (the file is corrupt)".into()));
        }
        if crc64(body) != info.state_hash {
            return Err(bad("its state hash does not match its body".into()));
        }
        Ok(Snapshot { info, bytes })
    }

    /// The container's encoded state.
    pub fn body(&self) -> &[u8] {
        &self.bytes[SNAPSHOT_HEADER_BYTES..]
    }

    /// The whole snapshot, header and body, as stored and as sent.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }
}

/// Checks a snapshot received from the leader for installing on `log`: whole and of this
/// cluster. Returns it, and whether the log must be reset to continue after it (Raft's rule:
/// a log that already holds the snapshot's last entry keeps what follows it).
pub fn check_received(
    bytes: &[u8],
    cluster_id: ClusterId,
    log: &dyn crate::replica::consensus::LogView,
) -> Result<(Snapshot, bool), SnapshotError> {
    let snapshot = Snapshot::from_bytes(bytes.to_vec(), "received from the leader")?;
    if snapshot.info.cluster_id != cluster_id {
        let (what, found) = ("received from the leader".to_string(), snapshot.info.cluster_id);
        return Err(SnapshotError::WrongCluster { what, found, expected: cluster_id });
    }
    let base = snapshot.info.base;
    let holds = log.log_start() <= base.position
        && base.position <= log.log_end()
        && log.checksum_before(base.position) == Some(base.checksum);
    Ok((snapshot, !holds))
}

/// Reads and checks a snapshot's header (not its body).
pub fn read_info(bytes: &[u8], what: &str) -> Result<SnapshotInfo, SnapshotError> {
    let bad = |reason: &str| SnapshotError::Bad { what: what.to_string(), reason: reason.to_string() };
    let Some(header_bytes) = bytes.get(..SNAPSHOT_HEADER_BYTES) else {
        return Err(bad("it is shorter than a snapshot header"));
    };
    let header = Header::read_from_bytes(header_bytes).expect("sized");
    if header.magic != SNAPSHOT_MAGIC {
        return Err(bad("its first bytes are not the snapshot magic (it is not an ordo snapshot)"));
    }
    if header.header_checksum.get() != crc32c(&header_bytes[..SNAPSHOT_HEADER_BYTES - 4]) {
        return Err(bad("its header's checksum does not match (the file is corrupt)"));
    }
    if header.version.get() != SNAPSHOT_VERSION || header.header_bytes.get() as usize != SNAPSHOT_HEADER_BYTES {
        return Err(bad("it is of a snapshot version this build does not read"));
    }
    let (position, entry_position) = (header.position.get(), header.entry_position.get());
    if position > 0 && entry_position >= position {
        return Err(bad("its last entry lies past its position"));
    }
    let events_position = header.events_position.get();
    if events_position > 0 && header.events_entry_position.get() >= events_position {
        return Err(bad("its last event lies past its event position"));
    }
    let name_end = header.app_name.iter().position(|&b| b == 0).unwrap_or(APP_NAME_BYTES_MAX);
    let app = std::str::from_utf8(&header.app_name[..name_end]).map_err(|_| bad("its app name is not UTF-8"))?;
    Ok(SnapshotInfo {
        cluster_id: ClusterId(header.cluster_id.get()),
        base: LogBase {
            position: Position(position),
            term: Term(header.term.get()),
            entry_position: Position(entry_position),
            checksum: header.entry_checksum.get(),
            time_max: ClusterTimeNs(header.time_max.get()),
        },
        events: LogBase {
            position: Position(events_position),
            term: Term(header.events_term.get()),
            entry_position: Position(header.events_entry_position.get()),
            checksum: header.events_checksum.get(),
            time_max: ClusterTimeNs(header.events_time_max.get()),
        },
        state_hash: header.state_hash.get(),
        app: app.to_string(),
        body_bytes: header.body_bytes.get(),
    })
}

/// A log base at `position` for tests: term 3, the last entry 64 bytes before.
#[cfg(test)]
pub(crate) fn base(position: u64) -> LogBase {
    LogBase {
        position: Position(position),
        term: Term(3),
        entry_position: Position(position - 64),
        checksum: 0xABCD,
        time_max: ClusterTimeNs(777),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_snapshot_round_trips_and_any_flipped_bit_is_refused() {
        let mut bytes = Vec::new();
        Snapshot::encode(ClusterId(9), &base(4096), &base(2048), "ledger", b"the state", &mut bytes);
        let snapshot = Snapshot::from_bytes(bytes.clone(), "test").unwrap();
        assert_eq!(snapshot.info.base, base(4096));
        assert_eq!(snapshot.info.events, base(2048));
        assert_eq!(snapshot.info.app, "ledger");
        assert_eq!(snapshot.body(), b"the state");
        assert_eq!(snapshot.info.state_hash, crc64(b"the state"));
        for bit in 0..bytes.len() * 8 {
            let mut flipped = bytes.clone();
            flipped[bit / 8] ^= 1 << (bit % 8);
            let error = Snapshot::from_bytes(flipped, "test").expect_err("a flipped bit is caught");
            assert!(error.to_string().starts_with("snapshot test is unusable: "), "{error}");
        }
        assert!(Snapshot::from_bytes(bytes[..100].to_vec(), "test").is_err());
        assert!(Snapshot::from_bytes(bytes[..bytes.len() - 1].to_vec(), "test").is_err());
    }
}
