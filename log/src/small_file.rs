//! Small checksummed files (checkpoint, vote metadata), always replaced atomically:
//! write a temp file, fsync it, rename it over the old one, fsync the folder. A reader sees
//! the old file or the new one, never a mix; a bad checksum means the disk lied, and is an
//! error, never a silent reset (a reset vote could elect two leaders in one term).
//!
//! Layout: magic (8) · body length (u32 LE) · CRC32C of body (u32 LE) · body.

use crate::error::{LogError, Result, io};
use ordo_core::checksum::crc32c;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::Path;

const PREFIX_BYTES: usize = 16;

/// Replaces `dir/name` with `magic ++ body` atomically and durably.
pub(crate) fn write_atomically(dir: &Path, name: &str, magic: &[u8; 8], body: &[u8]) -> Result<()> {
    write_replacing(dir, name, magic, body, true)
}

/// Replaces `dir/name` atomically; durably (the fsyncs) only if `durable`. Atomic either way
/// against a process crash (the rename); without the fsyncs a power cut may leave the old
/// file, or a damaged new one that its checksum then refuses.
pub(crate) fn write_replacing(dir: &Path, name: &str, magic: &[u8; 8], body: &[u8], durable: bool) -> Result<()> {
    let path = dir.join(name);
    let temp = dir.join(format!("{name}.tmp"));
    let mut bytes = Vec::with_capacity(PREFIX_BYTES + body.len());
    bytes.extend_from_slice(magic);
    bytes.extend_from_slice(&(body.len() as u32).to_le_bytes());
    bytes.extend_from_slice(&crc32c(body).to_le_bytes());
    bytes.extend_from_slice(body);
    let mut file =
        OpenOptions::new().write(true).create(true).truncate(true).open(&temp).map_err(io("create", &temp))?;
    file.write_all(&bytes).map_err(io("write", &temp))?;
    if durable {
        file.sync_all().map_err(io("fsync", &temp))?;
    }
    std::fs::rename(&temp, &path).map_err(io("rename into place", &path))?;
    if durable { sync_dir(dir) } else { Ok(()) }
}

/// Reads `dir/name`; `Ok(None)` if it does not exist.
pub(crate) fn read(dir: &Path, name: &str, magic: &[u8; 8]) -> Result<Option<Vec<u8>>> {
    let path = dir.join(name);
    let bytes = match std::fs::read(&path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io("read", &path)(e)),
    };
    if bytes.len() < PREFIX_BYTES || &bytes[..8] != magic {
        return Err(LogError::NotOurs {
            path,
            reason: format!("it does not start with {:?}", String::from_utf8_lossy(magic)),
        });
    }
    let length = u32::from_le_bytes(bytes[8..12].try_into().unwrap()) as usize;
    let crc = u32::from_le_bytes(bytes[12..16].try_into().unwrap());
    let body = &bytes[PREFIX_BYTES..];
    if body.len() != length {
        return Err(LogError::BadMetadata { path, reason: format!("it says {length} bytes but holds {}", body.len()) });
    }
    if crc32c(body) != crc {
        return Err(LogError::BadMetadata { path, reason: "its checksum does not match".to_string() });
    }
    Ok(Some(body.to_vec()))
}

/// fsync a folder so that a rename or unlink in it is durable.
pub(crate) fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir).and_then(|d| d.sync_all()).map_err(io("fsync folder", dir))
}

/// A little-endian cursor over a body, total: running out of bytes is an error.
pub(crate) struct Reader<'a> {
    bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    pub(crate) fn new(bytes: &'a [u8]) -> Self {
        Reader { bytes }
    }
    pub(crate) fn u64(&mut self) -> Option<u64> {
        let (head, rest) = self.bytes.split_first_chunk::<8>()?;
        self.bytes = rest;
        Some(u64::from_le_bytes(*head))
    }
    pub(crate) fn u32(&mut self) -> Option<u32> {
        let (head, rest) = self.bytes.split_first_chunk::<4>()?;
        self.bytes = rest;
        Some(u32::from_le_bytes(*head))
    }
    pub(crate) fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_written_file_reads_back_and_a_missing_one_is_none() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(read(dir.path(), "f", b"TESTMAG1").unwrap(), None);
        write_atomically(dir.path(), "f", b"TESTMAG1", b"body").unwrap();
        assert_eq!(read(dir.path(), "f", b"TESTMAG1").unwrap().as_deref(), Some(&b"body"[..]));
        assert!(!dir.path().join("f.tmp").exists());
    }

    #[test]
    fn a_flipped_bit_or_wrong_magic_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        write_atomically(dir.path(), "f", b"TESTMAG1", b"body").unwrap();
        let path = dir.path().join("f");
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[17] ^= 4;
        std::fs::write(&path, &bytes).unwrap();
        assert!(matches!(read(dir.path(), "f", b"TESTMAG1"), Err(LogError::BadMetadata { .. })));
        assert!(matches!(read(dir.path(), "f", b"OTHERMAG"), Err(LogError::NotOurs { .. })));
    }
}
