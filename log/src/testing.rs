//! Deterministic test data shared by the log's tests, its crash-writer helper binary and
//! its benchmarks. Not part of the log's API.

/// The payload of the `k`-th command: never a zero byte, different for every `k`, so a
/// torn, misplaced or reordered payload is always noticed.
pub fn payload_for(k: u64, length: usize) -> Vec<u8> {
    (0..length).map(|i| 1 + ((k as usize * 31 + i * 7) % 255) as u8).collect()
}

/// A payload length that varies with `k`, so entries end at every offset of a segment.
pub fn length_for(k: u64) -> usize {
    8 + (k as usize * 37) % 700
}

/// Every segment file in `dir` with its bytes, sorted by name: two logs are byte-identical
/// when these are equal.
pub fn segment_files(dir: &std::path::Path) -> Vec<(String, Vec<u8>)> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .expect("a readable log folder")
        .map(|entry| entry.expect("a readable folder entry"))
        .filter(|entry| crate::segment::parse_segment_file_name(&entry.file_name().to_string_lossy()).is_some())
        .map(|entry| {
            (entry.file_name().to_string_lossy().into_owned(), std::fs::read(entry.path()).expect("a readable segment"))
        })
        .collect();
    files.sort();
    files
}
