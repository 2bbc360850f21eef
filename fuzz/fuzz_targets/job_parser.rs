//! The job parser (one object, an array, NDJSON) on any input: it must never panic, and whatever
//! it accepts must pass validation (the parser promises validated specs).
#![no_main]

use libfuzzer_sys::fuzz_target;
use queuectl::job::{parse_jobs, parse_ndjson};

fuzz_target!(|data: &[u8]| {
    // The CLI refuses input that is not UTF-8 before parsing; the parser only ever sees text.
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    for parsed in [parse_jobs(text), parse_ndjson(text)] {
        if let Ok(specs) = parsed {
            assert!(!specs.is_empty(), "accepted an empty batch: {text:?}");
            for (location, spec) in specs {
                assert!(
                    spec.validate().is_ok(),
                    "accepted an invalid job at {location:?}: {spec:?}"
                );
            }
        }
    }
});
