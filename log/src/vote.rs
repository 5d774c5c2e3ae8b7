//! The vote metadata file: current term and who this member voted for in it. Consensus
//! stores it before a vote is answered, so a member that crashes and restarts never votes
//! twice in one term. Replaced atomically (see `small_file`).
//!
//! Beside it, the recovering mark: a member that starts with no vote file, no log and no
//! snapshot has lost its state (a new member's folder is formatted, with a vote file at
//! term 0, by `ordo init` or `format`). The mark is stored before the member does anything,
//! so that a crash while it catches up does not make it a voter with half its log; it is
//! removed once it holds everything committed.

use crate::error::{LogError, Result};
use crate::small_file::{self, Reader};
use ordo_core::{ClusterId, MemberId, Term};
use std::path::{Path, PathBuf};

const VOTE_FILE: &str = "vote";
const VOTE_MAGIC: &[u8; 8] = b"ORDOVOT1";
const RECOVERING_FILE: &str = "recovering";
const RECOVERING_MAGIC: &[u8; 8] = b"ORDOREC1";

pub use ordo_core::Vote;

/// Reads and writes `DIR/vote` for one cluster.
#[derive(Debug)]
pub struct VoteStore {
    dir: PathBuf,
    cluster_id: ClusterId,
}

impl VoteStore {
    pub fn new(dir: &Path, cluster_id: ClusterId) -> Self {
        VoteStore { dir: dir.to_path_buf(), cluster_id }
    }

    /// The stored vote; term 0 and no vote when the file does not exist yet.
    pub fn load(&self) -> Result<Vote> {
        Ok(self.load_stored()?.unwrap_or_default())
    }

    /// The stored vote, `None` when there is no vote file.
    pub fn load_stored(&self) -> Result<Option<Vote>> {
        let Some(body) = small_file::read(&self.dir, VOTE_FILE, VOTE_MAGIC)? else {
            return Ok(None);
        };
        let path = self.dir.join(VOTE_FILE);
        let mut reader = Reader::new(&body);
        let (Some(cluster), Some(term), Some(voted_for), true) =
            (reader.u64(), reader.u64(), reader.u32(), reader.is_empty())
        else {
            return Err(LogError::BadMetadata { path, reason: "its body has the wrong length".into() });
        };
        if cluster != self.cluster_id.0 {
            return Err(LogError::WrongCluster { path, found: ClusterId(cluster), expected: self.cluster_id });
        }
        let voted_for = u16::try_from(voted_for).map_err(|_| LogError::BadMetadata {
            path,
            reason: format!("it names member {voted_for}, ids are 16-bit"),
        })?;
        Ok(Some(Vote { term: Term(term), voted_for: (voted_for != 0).then_some(MemberId(voted_for)) }))
    }

    /// Formats a new member: a vote file at term 0, unless one is there. Returns whether it
    /// wrote one.
    pub fn format(&self) -> Result<bool> {
        if self.load_stored()?.is_some() {
            return Ok(false);
        }
        std::fs::create_dir_all(&self.dir).map_err(|source| LogError::Io {
            action: "create the member folder",
            path: self.dir.clone(),
            source,
        })?;
        self.store(&Vote::default())?;
        Ok(true)
    }

    /// Whether the recovering mark is set.
    pub fn is_recovering(&self) -> Result<bool> {
        Ok(small_file::read(&self.dir, RECOVERING_FILE, RECOVERING_MAGIC)?.is_some())
    }

    /// Sets the recovering mark durably.
    pub fn mark_recovering(&self) -> Result<()> {
        small_file::write_atomically(&self.dir, RECOVERING_FILE, RECOVERING_MAGIC, &self.cluster_id.0.to_le_bytes())
    }

    /// Removes the recovering mark durably (the member caught up).
    pub fn clear_recovering(&self) -> Result<()> {
        let path = self.dir.join(RECOVERING_FILE);
        match std::fs::remove_file(&path) {
            Ok(()) => small_file::sync_dir(&self.dir),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(source) => Err(LogError::Io { action: "remove", path, source }),
        }
    }

    /// Stores `vote` durably; returns only once it would survive a power loss.
    pub fn store(&self, vote: &Vote) -> Result<()> {
        let mut body = Vec::with_capacity(20);
        body.extend_from_slice(&self.cluster_id.0.to_le_bytes());
        body.extend_from_slice(&vote.term.0.to_le_bytes());
        body.extend_from_slice(&(vote.voted_for.map_or(0, |m| m.0) as u32).to_le_bytes());
        small_file::write_atomically(&self.dir, VOTE_FILE, VOTE_MAGIC, &body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stored_vote_survives_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let store = VoteStore::new(dir.path(), ClusterId(4));
        assert_eq!(store.load().unwrap(), Vote::default());
        store.store(&Vote { term: Term(7), voted_for: Some(MemberId(3)) }).unwrap();
        drop(store);
        let store = VoteStore::new(dir.path(), ClusterId(4));
        assert_eq!(store.load().unwrap(), Vote { term: Term(7), voted_for: Some(MemberId(3)) });
        store.store(&Vote { term: Term(8), voted_for: None }).unwrap();
        assert_eq!(store.load().unwrap(), Vote { term: Term(8), voted_for: None });
    }

    #[test]
    fn another_clusters_vote_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        VoteStore::new(dir.path(), ClusterId(4)).store(&Vote { term: Term(1), voted_for: None }).unwrap();
        assert!(matches!(VoteStore::new(dir.path(), ClusterId(5)).load(), Err(LogError::WrongCluster { .. })));
    }
}

#[cfg(test)]
mod decoder_properties {
    use super::*;
    use crate::checkpoint::Checkpoint;
    use proptest::prelude::*;

    proptest! {
        /// Whatever bytes sit in the vote or checkpoint file, loading gives an error or a
        /// value, never a panic.
        #[test]
        fn any_bytes_in_the_small_files_load_to_an_error_or_a_value(
            body in proptest::collection::vec(any::<u8>(), 0..80),
            magic_ok in any::<bool>(),
        ) {
            let dir = tempfile::tempdir().unwrap();
            for (name, magic) in [("vote", b"ORDOVOT1"), ("checkpoint", b"ORDOCKP1")] {
                let mut bytes = if magic_ok { magic.to_vec() } else { b"NOTMAGIC".to_vec() };
                bytes.extend_from_slice(&(body.len() as u32).to_le_bytes());
                bytes.extend_from_slice(&ordo_core::checksum::crc32c(&body).to_le_bytes());
                bytes.extend_from_slice(&body);
                std::fs::write(dir.path().join(name), &bytes).unwrap();
            }
            let _ = VoteStore::new(dir.path(), ClusterId(1)).load();
            let _ = Checkpoint::load(dir.path(), ClusterId(1));
        }
    }

    #[test]
    fn a_formatted_member_has_a_vote_file_and_the_recovering_mark_comes_and_goes() {
        let dir = tempfile::tempdir().unwrap();
        let store = VoteStore::new(&dir.path().join("data"), ClusterId(4));
        assert_eq!(store.load_stored().unwrap(), None);
        assert!(store.format().unwrap());
        assert_eq!(store.load_stored().unwrap(), Some(Vote::default()));
        assert!(!store.format().unwrap(), "formatted once");
        assert!(!store.is_recovering().unwrap());
        store.mark_recovering().unwrap();
        assert!(store.is_recovering().unwrap());
        store.clear_recovering().unwrap();
        assert!(!store.is_recovering().unwrap());
        store.clear_recovering().unwrap();
    }
}
