#![no_main]
#![allow(dead_code, unused_imports)]

#[path = "../../analytics/tests/fuzz.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    checks::check_spool_file(data);
});
