#![no_main]
#![allow(dead_code, unused_imports)]

#[path = "../../shared/tests/fuzz.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Ok(s) = std::str::from_utf8(data) {
        checks::check_code(s);
    }
});
