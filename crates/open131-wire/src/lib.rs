//! Wire-level vocabulary of the Bank 131 partner API.
//!
//! Everything that is byte-exact on the wire lives here: the canonical JSON the KYC
//! API signs ([`canonical`]), RSA signing and verification ([`sign`]), the KYC
//! response envelope and its error codes ([`kyc`]), the header names ([`headers`]). Only this crate derives serde
//! shapes of the public API; the domain and the store have their own types.
#![forbid(unsafe_code)]

pub mod answers;
pub mod api;
pub mod canonical;
pub mod headers;
pub mod kyc;
pub mod sign;
