//! The core error type. Every message says what went wrong, where (position, file, field)
//! and what to do about it, so the binary can print it as one sentence.

use crate::ids::Position;
use std::path::PathBuf;

/// What went wrong reading an entry or a config file.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An entry's bytes end before the entry does.
    #[error(
        "entry at {position} is cut short: it needs {needed_bytes} bytes but only {available_bytes} are there; the log tail is torn or the buffer is incomplete"
    )]
    EntryTruncated {
        /// Where the entry is.
        position: Position,
        /// Bytes the entry needs.
        needed_bytes: u64,
        /// Bytes there are.
        available_bytes: u64,
    },

    /// An entry's header is not one ordo writes.
    #[error("entry at {position} is malformed: {reason}; the bytes are not an ordo entry or are corrupt")]
    EntryMalformed {
        /// Where the entry is.
        position: Position,
        /// What is wrong.
        reason: &'static str,
    },

    /// An entry's header names another position than where it was read.
    #[error(
        "entry read at {position} says it belongs at {recorded}; the bytes were written to the wrong place or the log is corrupt"
    )]
    EntryMisplaced {
        /// Where the entry is.
        position: Position,
        /// The position its header names.
        recorded: Position,
    },

    /// An entry's checksum does not match its bytes.
    #[error(
        "entry at {position} fails its checksum (stored {stored:#010x}, computed {computed:#010x}); the bytes are corrupt"
    )]
    EntryChecksum {
        /// Where the entry is.
        position: Position,
        /// The checksum stored in the entry.
        stored: u32,
        /// The checksum of its bytes.
        computed: u32,
    },

    /// An entry does not continue the previous entry's checksum chain.
    #[error(
        "entry at {position} breaks the checksum chain (it names {found:#010x} as the previous checksum, the previous entry has {expected:#010x}); the logs diverge or the log is corrupt"
    )]
    EntryChainBroken {
        /// Where the entry is.
        position: Position,
        /// The previous entry's checksum.
        expected: u32,
        /// The previous checksum the entry names.
        found: u32,
    },

    /// An entry is larger than the space it must go in.
    #[error(
        "entry at {position} needs {needed_bytes} bytes but only {available_bytes} are available; raise entry_bytes_max or send a smaller command"
    )]
    EntryDoesNotFit {
        /// Where the entry is.
        position: Position,
        /// Bytes the entry needs.
        needed_bytes: u64,
        /// Bytes there are.
        available_bytes: u64,
    },

    /// A config file could not be read.
    #[error("cannot read config file {}: {source}; check the path and its permissions", path.display())]
    ConfigRead {
        /// The file.
        path: PathBuf,
        /// Why it could not be read.
        source: std::io::Error,
    },

    /// A config file is not valid: `message` names the line or field and what is allowed.
    #[error("bad config in {}: {message}; fix the file and start again", path.display())]
    Config {
        /// The file.
        path: PathBuf,
        /// What is wrong and where.
        message: String,
    },
}
