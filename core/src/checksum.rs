//! CRC32C (Castagnoli, hardware accelerated by `crc-fast`) over an entry's header and
//! payload, chained: the header carries the previous entry's checksum (`checksum_prev`)
//! and the checksum covers it, so equal (position, checksum) on two members means equal
//! log prefixes, and any single entry can still be verified on its own.

use crc_fast::{CrcAlgorithm, Digest};

/// Byte range of the `checksum` field inside the header; it is the one part of an entry
/// the checksum does not cover.
pub const CHECKSUM_FIELD: std::ops::Range<usize> = 8..12;

/// The checksum of one entry: CRC32C over `header[..8] ++ header[12..] ++ payload`.
///
/// `header` is the full encoded header (its checksum field is skipped, whatever it holds);
/// `payload` is empty for padding entries, whose bytes carry no data.
#[inline]
pub fn entry_checksum(header: &[u8], payload: &[u8]) -> u32 {
    debug_assert_eq!(header.len(), crate::entry::HEADER_BYTES);
    let mut digest = Digest::new(CrcAlgorithm::Crc32Iscsi);
    digest.update(&header[..CHECKSUM_FIELD.start]);
    digest.update(&header[CHECKSUM_FIELD.end..]);
    digest.update(payload);
    digest.finalize() as u32
}

/// Plain CRC32C of a buffer, for the small metadata files (segment headers, checkpoint,
/// vote metadata) that are not part of the chain.
#[inline]
pub fn crc32c(bytes: &[u8]) -> u32 {
    crc_fast::crc32_iscsi(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32c_matches_the_standard_check_value() {
        // The CRC-32/ISCSI catalogue check value for "123456789".
        assert_eq!(crc32c(b"123456789"), 0xe306_9283);
    }

    #[test]
    fn entry_checksum_ignores_the_checksum_field_and_covers_the_rest() {
        let mut header = [7u8; crate::entry::HEADER_BYTES];
        let base = entry_checksum(&header, b"payload");
        header[CHECKSUM_FIELD.start] ^= 0xff;
        assert_eq!(entry_checksum(&header, b"payload"), base);
        header[13] ^= 1; // inside checksum_prev: part of the chain
        assert_ne!(entry_checksum(&header, b"payload"), base);
        header[13] ^= 1;
        assert_ne!(entry_checksum(&header, b"paylaod"), base);
    }
}
