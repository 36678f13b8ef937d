//! Benchmark of the passport index; see `open131_registry::bench`.
//!
//! ```text
//! cargo run --release --example bench -- --rows 137000000 --dir /tmp/registry-bench
//! ```
//!
//! Options: `--rows N`, `--seed S`, `--compare-rows M` (0 skips the
//! comparison), `--bz2-rows K` (0 skips the bzip2 import), `--taxpayer-rows T`
//! (0 skips the taxpayer index; default `N × 50 / 137`), `--lookups L`,
//! `--dir D`, `--keep` (keep the generated files).

#![forbid(unsafe_code)]

use std::process::ExitCode;

use open131_registry::bench::{run, BenchOptions};

const USAGE: &str =
    "usage: bench [--rows N] [--seed S] [--compare-rows M] [--bz2-rows K] [--taxpayer-rows T] [--lookups L] [--dir D] [--keep]";

fn parse_args(args: impl Iterator<Item = String>) -> Result<BenchOptions, String> {
    let mut opts = BenchOptions::default();
    let mut args = args.peekable();
    while let Some(flag) = args.next() {
        if flag == "--keep" {
            opts.keep_files = true;
            continue;
        }
        if flag == "--help" || flag == "-h" {
            return Err(USAGE.to_string());
        }
        let value = args.next().ok_or_else(|| format!("{flag} needs a value\n{USAGE}"))?;
        let number = || value.replace('_', "").parse::<u64>().map_err(|e| format!("{flag} {value}: {e}"));
        match flag.as_str() {
            "--rows" => opts.rows = number()?,
            "--seed" => opts.seed = number()?,
            "--compare-rows" => opts.compare_rows = number()?,
            "--bz2-rows" => opts.bz2_rows = number()?,
            "--taxpayer-rows" => opts.taxpayer_rows = Some(number()?),
            "--lookups" => opts.lookups = number()?.max(1),
            "--dir" => opts.dir = value.into(),
            _ => return Err(format!("unknown option {flag}\n{USAGE}")),
        }
    }
    Ok(opts)
}

fn main() -> ExitCode {
    let opts = match parse_args(std::env::args().skip(1)) {
        Ok(o) => o,
        Err(msg) => {
            eprintln!("{msg}");
            return ExitCode::from(2);
        }
    };
    let mut stdout = std::io::stdout();
    match run(&opts, &mut stdout) {
        Ok(_) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bench failed: {e}");
            ExitCode::FAILURE
        }
    }
}
