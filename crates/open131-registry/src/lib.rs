//! Compact, immutable, on-disk indexes of the registries a bank checks
//! identity documents against:
//!
//! * [`passports`]: the Interior Ministry (MVD) list of invalid passports,
//!   ~137 million 10-digit keys, as a blocked Elias–Fano set (local
//!   Elias–Fano, bitmap or sorted array per block of the key space): ~1.15×
//!   the information-theoretic minimum on uniformly scattered keys, less on
//!   the real list's clustered ones, and millions of membership queries per
//!   second per core with two dependent memory accesses each;
//! * [`taxpayers`]: `inn → passports` links from the tax service, ~50 million
//!   pairs, as an Elias–Fano INN column beside a packed passport column
//!   (~6.3 bytes per pair).
//!
//! Both are built by streaming CSV importers ([`import`]; plain or `.bz2`,
//! malformed rows kept verbatim in a side set), saved atomically with a
//! checksum and loaded without `unsafe` in well under a second. [`synth`]
//! generates realistic deterministic inputs and [`mod@bench`] measures it all.
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
pub mod npd;
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
pub use npd::{import_npd_csv, NpdEntry, NpdImportError, NpdRegister, NPD_CSV_HEADER};
pub use passports::{PassportIndex, PassportIndexBuilder, PASSPORT_KEY_UNIVERSE};
pub use synth::{synth_passports, synth_taxpayers, SynthStats, TaxpayerSynthStats};
pub use taxpayers::{TaxpayerIndex, TaxpayerIndexBuilder, INN_UNIVERSE};
