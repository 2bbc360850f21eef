//! Duration and time parsing on any text: never a panic, and no duration over the limit.
#![no_main]

use libfuzzer_sys::fuzz_target;
use queuectl::time::{format_duration, format_ms, parse_duration, parse_rfc3339, MAX_DURATION};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    if let Ok(duration) = parse_duration(&text) {
        assert!(duration <= MAX_DURATION, "{text:?} gave {duration:?}");
        let _ = format_duration(duration);
    }
    if let Ok(ms) = parse_rfc3339(&text) {
        let _ = format_ms(ms);
    }
});
