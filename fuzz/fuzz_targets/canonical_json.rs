//! The `canonical_json` target: `open131_fuzz::canonical_json` on each input.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| open131_fuzz::canonical_json(data));
