//! The `identifiers` target: `open131_fuzz::identifiers` on each input.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| open131_fuzz::identifiers(data));
