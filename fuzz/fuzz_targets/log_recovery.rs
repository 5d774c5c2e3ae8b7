//! A valid log with bytes of the input written over it at an offset the input chooses (a
//! torn write, a flipped bit, garbage): `Log::open` recovers or refuses with an error, and
//! `verify` agrees with it; never a panic. What it recovers is a chain of valid entries.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ordo_core::entry::EntryMeta;
use ordo_core::{ClusterTimeNs, SessionId, Term};
use ordo_log::Log;

fuzz_target!(|data: &[u8]| {
    if data.len() < 4 {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let config = ordo_fuzz::log_config();
    {
        let (mut log, _) = Log::open(dir.path(), config.clone()).unwrap();
        for k in 0..200u64 {
            let meta = EntryMeta::command(Term(1 + k / 100), ClusterTimeNs(k), SessionId(1), k);
            log.append(&meta, &k.to_le_bytes().repeat(1 + (k % 40) as usize)).unwrap();
        }
        log.sync().unwrap();
    }
    let mut segments: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .collect();
    segments.sort();
    let which = data[0] as usize % segments.len();
    let mut bytes = std::fs::read(&segments[which]).unwrap();
    let offset = u16::from_le_bytes([data[1], data[2]]) as usize * 4 % bytes.len();
    let patch = &data[3..];
    let end = (offset + patch.len()).min(bytes.len());
    bytes[offset..end].copy_from_slice(&patch[..end - offset]);
    std::fs::write(&segments[which], bytes).unwrap();

    let verified = ordo_log::verify(dir.path(), &config);
    match Log::open(dir.path(), config) {
        Ok((log, recovery)) => {
            let count = log.entries(recovery.position_start).take_while(Result::is_ok).count();
            assert!(count as u64 <= 200);
            assert!(verified.is_ok(), "open recovered what verify refused: {:?}", verified.err());
        }
        Err(_) => {}
    }
});
