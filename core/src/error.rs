//! The core error type. Every message says what went wrong, where (position, file, field)
//! and what to do about it, so the binary can print it as one sentence.

use crate::ids::Position;
use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(
        "entry at {position} is cut short: it needs {needed_bytes} bytes but only {available_bytes} are there; the log tail is torn or the buffer is incomplete"
    )]
    EntryTruncated { position: Position, needed_bytes: u64, available_bytes: u64 },

    #[error("entry at {position} is malformed: {reason}; the bytes are not an ordo entry or are corrupt")]
    EntryMalformed { position: Position, reason: &'static str },

    #[error(
        "entry read at {position} says it belongs at {recorded}; the bytes were written to the wrong place or the log is corrupt"
    )]
    EntryMisplaced { position: Position, recorded: Position },

    #[error(
        "entry at {position} fails its checksum (stored {stored:#010x}, computed {computed:#010x}); the bytes are corrupt"
    )]
    EntryChecksum { position: Position, stored: u32, computed: u32 },

    #[error(
        "entry at {position} breaks the checksum chain (it names {found:#010x} as the previous checksum, the previous entry has {expected:#010x}); the logs diverge or the log is corrupt"
    )]
    EntryChainBroken { position: Position, expected: u32, found: u32 },

    #[error(
        "entry at {position} needs {needed_bytes} bytes but only {available_bytes} are available; raise entry_bytes_max or send a smaller command"
    )]
    EntryDoesNotFit { position: Position, needed_bytes: u64, available_bytes: u64 },

    #[error("cannot read config file {}: {source}; check the path and its permissions", path.display())]
    ConfigRead { path: PathBuf, source: std::io::Error },

    #[error("bad config in {}: {message}; fix the file and start again", path.display())]
    Config { path: PathBuf, message: String },
}
