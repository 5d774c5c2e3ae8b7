//! Any text as `ordo.toml`: a config that validates, or an error naming the file; never a
//! panic. A config that loads writes back to TOML that loads to the same config.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ordo_core::NodeConfig;
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    match NodeConfig::parse(text, Path::new("fuzz/ordo.toml")) {
        Ok(config) => {
            let again = NodeConfig::parse(&config.to_toml(), Path::new("again.toml")).expect("written back, it loads");
            assert_eq!(again, config);
        }
        Err(error) => assert!(error.to_string().contains("fuzz/ordo.toml"), "{error}"),
    }
});
