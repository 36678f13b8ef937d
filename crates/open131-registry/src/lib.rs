//! Compact, immutable, on-disk indexes of the registries a bank checks
//! identity documents against:
//!
//! * [`passports`]: the Interior Ministry (MVD) list of invalid passports,
//!   ~137 million 10-digit keys, as an Elias–Fano set within ~1.1× of the
//!   information-theoretic minimum size, answering millions of membership
//!   queries per second per core;
//! * [`taxpayers`]: `inn → passports` links from the tax service, ~50 million
//!   pairs.
//!
//! Both are built by streaming CSV importers ([`import`]; plain or `.bz2`,
//! malformed rows kept verbatim in a side set), saved atomically with a
//! checksum and loaded without `unsafe` in well under a second. [`synth`]
//! generates realistic deterministic inputs and [`bench`] measures it all.
//!
//! The server loads the index files at start and consults them on every
//! verification; nothing here does I/O after `load`.

#![forbid(unsafe_code)]

mod bits;
mod blocked;
mod ef;
mod format;
mod malformed;
mod radix;
mod rng;

pub mod bench;
pub mod import;
pub mod passports;
pub mod synth;
pub mod taxpayers;

pub use blocked::SetLayout;
pub use ef::EfLayout;
pub use format::{IndexFileError, FORMAT_VERSION};
pub use import::{
    import_passports_csv, import_passports_file, import_taxpayers_csv, import_taxpayers_file, ImportError,
    ImportFileError, ImportStats, Phase, Progress,
};
pub use passports::{PassportIndex, PassportIndexBuilder, PASSPORT_KEY_UNIVERSE};
pub use synth::{synth_passports, synth_taxpayers, SynthStats, TaxpayerSynthStats};
pub use taxpayers::{TaxpayerIndex, TaxpayerIndexBuilder, INN_UNIVERSE};
