//! The `kyc_request` target: `open131_fuzz::kyc_request` on each input.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| open131_fuzz::kyc_request(data));
