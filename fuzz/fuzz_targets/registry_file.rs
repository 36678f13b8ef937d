//! The `registry_file` target: `open131_fuzz::registry_file` on each input.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| open131_fuzz::registry_file(data));
