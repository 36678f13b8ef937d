//! The `signature` target: `open131_fuzz::signature` on each input.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| open131_fuzz::signature(data));
