//! CRC32C (Castagnoli, hardware accelerated by `crc-fast`) over an entry's header and
//! payload, chained: the header carries the previous entry's checksum (`checksum_prev`)
//! and the checksum covers it, so equal (position, checksum) on two members means equal
//! log prefixes, and any single entry can still be verified on its own.
//!
//! The checksum is the entry's first field and covers every byte after it, so it is one
//! CRC pass over one contiguous slice of the map (as in TigerBeetle's headers).

/// Byte range of the `checksum` field: the one part of an entry its checksum does not cover.
pub const CHECKSUM_FIELD: std::ops::Range<usize> = 0..4;

/// The checksum of one entry from its bytes: CRC32C of `entry[4..]`, where `entry` is the
/// entry up to its length (header and payload), or just the header for padding, whose
/// zero bytes carry no data.
#[inline]
pub fn entry_checksum(entry: &[u8]) -> u32 {
    debug_assert!(entry.len() >= crate::entry::HEADER_BYTES);
    crc32c(&entry[CHECKSUM_FIELD.end..])
}

/// Plain CRC32C of a buffer (also used for the small metadata files that are not part of
/// the chain: segment headers, checkpoint, vote).
#[inline]
pub fn crc32c(bytes: &[u8]) -> u32 {
    crc_fast::crc32_iscsi(bytes)
}

/// CRC-64/NVME of a buffer: the state hash members compare (64 bits, so two different
/// states colliding by chance is not a worry at any realistic count).
#[inline]
pub fn crc64(bytes: &[u8]) -> u64 {
    crc_fast::checksum(crc_fast::CrcAlgorithm::Crc64Nvme, bytes)
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
        let mut entry = [7u8; crate::entry::HEADER_BYTES + 8];
        let base = entry_checksum(&entry);
        entry[CHECKSUM_FIELD.start] ^= 0xff;
        assert_eq!(entry_checksum(&entry), base);
        entry[13] ^= 1; // inside checksum_prev: part of the chain
        assert_ne!(entry_checksum(&entry), base);
        entry[13] ^= 1;
        entry[70] ^= 1; // the payload
        assert_ne!(entry_checksum(&entry), base);
    }
}
