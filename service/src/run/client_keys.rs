//! The client keys a member accepts clients under: its client-keys file (`ID HEX` a line),
//! read when the member opens and again whenever the file changes (looked at once a second,
//! a `stat`, on the consensus thread), so keys are added and retired without a restart. A
//! file that cannot be read or parsed is reported, and the keys held stay as they were.

use ordo_transport::ClientKey;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// How often the file is looked at.
const CHECK_INTERVAL_NS: u64 = 1_000_000_000;

pub struct ClientKeysFile {
    path: PathBuf,
    /// The file's modification time and length when last read (`None`: missing).
    seen: Option<(SystemTime, u64)>,
    checked_ns: u64,
}

impl ClientKeysFile {
    pub fn new(path: &Path) -> Self {
        ClientKeysFile { path: path.to_path_buf(), seen: None, checked_ns: 0 }
    }

    /// The keys in the file now; none (said once, in the log) if it is missing or bad.
    pub fn load(&mut self) -> Vec<ClientKey> {
        self.seen = stamp(&self.path);
        if self.seen.is_none() {
            tracing::warn!(
                "no client keys file at {}: no client can reach this member until one is there (`ordo init` writes it)",
                self.path.display()
            );
            return Vec::new();
        }
        self.read().unwrap_or_default()
    }

    /// The new keys, if the file changed since it was last read (looked at once a second).
    pub fn poll(&mut self, now_ns: u64) -> Option<Vec<ClientKey>> {
        if now_ns.saturating_sub(self.checked_ns) < CHECK_INTERVAL_NS {
            return None;
        }
        self.checked_ns = now_ns;
        let now = stamp(&self.path);
        if now == self.seen {
            return None;
        }
        self.seen = now;
        match now {
            None => {
                tracing::warn!("client keys file {} is gone: every client key is retired", self.path.display());
                Some(Vec::new())
            }
            Some(_) => {
                let keys = self.read()?;
                let ids: Vec<u32> = keys.iter().map(|k| k.id).collect();
                tracing::info!("client keys reloaded from {}: ids {ids:?}", self.path.display());
                Some(keys)
            }
        }
    }

    fn read(&self) -> Option<Vec<ClientKey>> {
        let parsed = std::fs::read_to_string(&self.path)
            .map_err(|error| error.to_string())
            .and_then(|text| ClientKey::parse_all(&text));
        match parsed {
            Ok(keys) => Some(keys),
            Err(reason) => {
                tracing::error!("client keys file {}: {reason}; the keys held stay as they were", self.path.display());
                None
            }
        }
    }
}

fn stamp(path: &Path) -> Option<(SystemTime, u64)> {
    let metadata = std::fs::metadata(path).ok()?;
    Some((metadata.modified().ok()?, metadata.len()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_read_at_once_and_again_when_the_file_changes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("client-keys");
        let mut file = ClientKeysFile::new(&path);
        assert!(file.load().is_empty(), "missing: none");
        let (a, b) = (ClientKey::generate(1), ClientKey::generate(2));
        std::fs::write(&path, a.to_line()).unwrap();
        assert_eq!(file.poll(super::CHECK_INTERVAL_NS), Some(vec![a]));
        assert_eq!(file.poll(2 * super::CHECK_INTERVAL_NS), None, "unchanged");
        std::fs::write(&path, format!("{}\n{}\n", a.to_line(), b.to_line())).unwrap();
        assert_eq!(file.poll(2 * super::CHECK_INTERVAL_NS + 1), None, "not looked at again so soon");
        assert_eq!(file.poll(3 * super::CHECK_INTERVAL_NS), Some(vec![a, b]));
        std::fs::write(&path, "garbage that is longer than before\n").unwrap();
        assert_eq!(file.poll(4 * super::CHECK_INTERVAL_NS), None, "a bad file changes nothing");
    }
}
