//! Any bytes into the entry decoder at any aligned position: an error or an entry whose
//! length, checksum and position check, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ordo_core::Position;
use ordo_core::entry::decode_entry;

fuzz_target!(|data: &[u8]| {
    if data.len() < 8 {
        return;
    }
    let position = Position(u64::from_le_bytes(data[..8].try_into().unwrap()) & !31);
    if let Ok(entry) = decode_entry(&data[8..], position) {
        assert!(entry.payload.len() <= data.len() - 8);
        assert_eq!(entry.position(), position);
    }
});
