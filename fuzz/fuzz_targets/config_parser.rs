//! The config file parser on any text, through to typed settings: never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use queuectl::config::{effective, parse_config_text, Settings};
use std::collections::BTreeMap;
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(file) = parse_config_text(text) {
        let entries = effective(&file, &BTreeMap::new());
        let _ = Settings::from_entries(Path::new("/nonexistent-fuzz-home"), &entries);
    }
});
