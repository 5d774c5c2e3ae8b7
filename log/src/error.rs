//! The log's error type: every message names the file (and position) and says what to do.

use ordo_core::{ClusterId, Position};
use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum LogError {
    #[error("cannot {action} {}: {source}; check free disk space and permissions", path.display())]
    Io { action: &'static str, path: PathBuf, source: std::io::Error },

    #[error(
        "disk full: cannot preallocate {bytes} bytes for {}; free disk space (or delete old segments after a snapshot) and start again",
        path.display()
    )]
    DiskFull { path: PathBuf, bytes: u64 },

    #[error(
        "fdatasync of {} failed: {source}; the disk may have dropped writes, so stop this member and let it recover from its peers",
        path.display()
    )]
    SyncFailed { path: PathBuf, source: std::io::Error },

    #[error("{} is not an ordo log file ({reason}); move it out of the log folder", path.display())]
    NotOurs { path: PathBuf, reason: String },

    #[error(
        "{} belongs to {found}, but this member is configured for {expected}; point data_dir at this cluster's folder",
        path.display()
    )]
    WrongCluster { path: PathBuf, found: ClusterId, expected: ClusterId },

    #[error(
        "{} was written with {found}-byte segments, but log.segment_bytes is {expected}; set log.segment_bytes = {found} (it must be the same on every member)",
        path.display()
    )]
    WrongSegmentSize { path: PathBuf, found: u64, expected: u64 },

    #[error("segment {} is missing between the ones before and after it; restore it or rebuild this member from a snapshot", path.display())]
    MissingSegment { path: PathBuf },

    #[error(
        "log is corrupt in {} at {position}: {source}; run `ordo log verify`, then rebuild this member from a snapshot or a peer",
        path.display()
    )]
    Corrupt { path: PathBuf, position: Position, source: ordo_core::Error },

    #[error("{} is corrupt ({reason}); restore it from a backup (it is never rewritten in place)", path.display())]
    BadMetadata { path: PathBuf, reason: String },

    #[error("another process holds the log in {}; stop it first (only one member may open a log)", path.display())]
    Locked { path: PathBuf },

    #[error("bad log config: {0}; fix ordo.toml")]
    Config(String),

    #[error("{position} is not in the log (it holds {start} up to {end}); ask for a position in that range")]
    OutOfRange { position: Position, start: Position, end: Position },

    #[error("{position} is not where an entry starts; positions come from the log, never from arithmetic")]
    NotAnEntry { position: Position },

    #[error(
        "a payload of {payload_bytes} bytes is larger than log.entry_payload_bytes_max ({max_bytes}); send a smaller command"
    )]
    EntryTooLarge { payload_bytes: usize, max_bytes: u32 },

    #[error("an entry of term {term} cannot follow term {last}: terms never go backwards in a log")]
    TermRegressed { term: u64, last: u64 },

    #[error(transparent)]
    Entry(#[from] ordo_core::Error),
}

pub type Result<T, E = LogError> = std::result::Result<T, E>;

pub(crate) fn io<'p>(action: &'static str, path: &'p std::path::Path) -> impl FnOnce(std::io::Error) -> LogError + 'p {
    move |source| LogError::Io { action, path: path.to_path_buf(), source }
}
