//! `open131 registry …`, `open131 taxpayers …` and `open131 npd import`:
//! building the indexes the server verifies against, with a progress bar,
//! and the registry benchmark.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context as _;
use clap::Subcommand;
use indicatif::{ProgressBar, ProgressStyle};
use open131_registry::{ImportStats, Progress};
use open131_server::registries::{passports_path, taxpayers_path};

#[derive(Subcommand, Debug)]
pub enum RegistryCommand {
    /// Build the invalid-passports index from the MVD list (`list_of_expired_passports.csv`,
    /// plain or .bz2). A running server on the same data directory swaps to it within a second.
    Import { file: PathBuf },
    /// Write a deterministic synthetic MVD list (see the registry crate's `synth` docs).
    Synth {
        #[arg(long)]
        rows: u64,
        #[arg(long, default_value_t = 1)]
        seed: u64,
        out: PathBuf,
    },
    /// Size, build and lookup benchmark of the passport index (prints a table).
    Bench {
        #[arg(long, default_value_t = 137_000_000)]
        rows: u64,
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Rows of the side-by-side HashSet / sorted Vec comparison (0 skips it).
        #[arg(long, default_value_t = 20_000_000)]
        compare_rows: u64,
        /// Where the generated files go (deleted afterwards unless --keep).
        #[arg(long)]
        dir: Option<PathBuf>,
        #[arg(long)]
        keep: bool,
    },
    /// What the index files in the data directory hold.
    Info,
}

#[derive(Subcommand, Debug)]
pub enum TaxpayersCommand {
    /// Build the taxpayer index from `inn,passport_number` CSV (plain or .bz2).
    Import { file: PathBuf },
    /// Write a deterministic synthetic taxpayer list.
    Synth {
        #[arg(long)]
        rows: u64,
        #[arg(long, default_value_t = 1)]
        seed: u64,
        out: PathBuf,
    },
}

/// `open131 npd import <file>`: the self-employed register, every row
/// checked, written to the data directory (a running server swaps to it
/// within a second); a bad row fails it, naming its line, and the register
/// in use stays.
pub async fn npd_import(data_dir: &Path, file: PathBuf) -> anyhow::Result<()> {
    let target = open131_store::layout::DataDir::new(data_dir).npd_register();
    let t = target.clone();
    let people = tokio::task::spawn_blocking(move || -> anyhow::Result<u64> {
        let (bar, mut update) = progress_bar(&file);
        let input = std::fs::File::open(&file).with_context(|| format!("opening {}", file.display()))?;
        let size = input.metadata().ok().map(|m| m.len());
        let register = open131_registry::import_npd_csv(std::io::BufReader::new(input), size, &mut update);
        bar.finish_and_clear();
        let register = register?;
        std::fs::create_dir_all(t.parent().context("no parent")?)?;
        register.save(&t)?;
        Ok(register.len())
    })
    .await??;
    println!("npd: {people} people -> {}", target.display());
    Ok(())
}

/// Draws import progress: bytes, rows/s, malformed rows, ETA.
fn progress_bar(file: &Path) -> (ProgressBar, impl FnMut(&Progress)) {
    let size = std::fs::metadata(file).map(|m| m.len()).unwrap_or(0);
    let bar = ProgressBar::new(size);
    bar.set_style(
        ProgressStyle::with_template("{spinner} [{elapsed_precise}] {bar:30} {bytes}/{total_bytes} ETA {eta} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar.enable_steady_tick(Duration::from_millis(200));
    let b = bar.clone();
    let update = move |p: &Progress| {
        b.set_position(p.bytes_read);
        let rate = p.rows as f64 / p.elapsed.as_secs_f64().max(1e-9);
        b.set_message(format!("{:?}: {} rows ({:.1}M rows/s), {} malformed", p.phase, p.rows, rate / 1e6, p.malformed));
    };
    (bar, update)
}

fn report(what: &str, stats: &ImportStats, path: &Path) {
    println!(
        "{what}: {} rows read, {} distinct indexed, {} duplicates, {} malformed ({} distinct, kept for exact match), \
         read {:.1}s + build {:.1}s -> {}",
        stats.rows,
        stats.distinct,
        stats.duplicate_rows,
        stats.malformed_rows,
        stats.malformed_distinct,
        stats.read_time.as_secs_f64(),
        stats.build_time.as_secs_f64(),
        path.display()
    );
}

pub async fn registry(data_dir: &Path, cmd: RegistryCommand) -> anyhow::Result<()> {
    match cmd {
        RegistryCommand::Import { file } => {
            let target = passports_path(data_dir);
            let (f, t) = (file.clone(), target.clone());
            let (index_stats, size) = tokio::task::spawn_blocking(move || -> anyhow::Result<_> {
                let (bar, mut update) = progress_bar(&f);
                let (index, stats) = open131_registry::import_passports_file(&f, &mut update)?;
                bar.finish_and_clear();
                std::fs::create_dir_all(t.parent().context("no parent")?)?;
                // `save` writes a temporary file and renames it over the old one.
                index.save(&t)?;
                Ok((stats, index.size_bytes()))
            })
            .await??;
            report("passports", &index_stats, &target);
            println!("index: {size} bytes in memory; a running server swaps to it within a second");
        }
        RegistryCommand::Synth { rows, seed, out } => {
            let file = std::fs::File::create(&out).with_context(|| format!("creating {}", out.display()))?;
            let stats = open131_registry::synth_passports(rows, seed, std::io::BufWriter::new(file))?;
            println!("{stats:?}");
        }
        RegistryCommand::Bench { rows, seed, compare_rows, dir, keep } => {
            let mut opts = open131_registry::bench::BenchOptions {
                rows,
                seed,
                compare_rows,
                keep_files: keep,
                ..Default::default()
            };
            if let Some(d) = dir {
                opts.dir = d;
            }
            tokio::task::spawn_blocking(move || open131_registry::bench::run(&opts, &mut std::io::stdout()))
                .await?
                .map_err(|e| anyhow::anyhow!("{e}"))?;
        }
        RegistryCommand::Info => {
            for (name, path) in [("passports", passports_path(data_dir)), ("taxpayers", taxpayers_path(data_dir))] {
                if !path.exists() {
                    println!("{name}: not loaded ({} does not exist)", path.display());
                    continue;
                }
                let p = path.clone();
                let line = tokio::task::spawn_blocking(move || -> anyhow::Result<String> {
                    Ok(if name == "passports" {
                        let i = open131_registry::PassportIndex::load(&p)?;
                        format!("{} passports, {} malformed rows, {} bytes", i.len(), i.malformed_len(), i.size_bytes())
                    } else {
                        let i = open131_registry::TaxpayerIndex::load(&p)?;
                        format!("{} pairs, {} malformed rows", i.len(), i.malformed_len())
                    })
                })
                .await?;
                match line {
                    Ok(l) => println!("{name}: {l} ({})", path.display()),
                    Err(e) => println!("{name}: UNUSABLE: {e:#} ({})", path.display()),
                }
            }
        }
    }
    Ok(())
}

pub async fn taxpayers(data_dir: &Path, cmd: TaxpayersCommand) -> anyhow::Result<()> {
    match cmd {
        TaxpayersCommand::Import { file } => {
            let target = taxpayers_path(data_dir);
            let (f, t) = (file.clone(), target.clone());
            let stats = tokio::task::spawn_blocking(move || -> anyhow::Result<_> {
                let (bar, mut update) = progress_bar(&f);
                let (index, stats) = open131_registry::import_taxpayers_file(&f, &mut update)?;
                bar.finish_and_clear();
                std::fs::create_dir_all(t.parent().context("no parent")?)?;
                index.save(&t)?;
                Ok(stats)
            })
            .await??;
            report("taxpayers", &stats, &target);
        }
        TaxpayersCommand::Synth { rows, seed, out } => {
            let file = std::fs::File::create(&out).with_context(|| format!("creating {}", out.display()))?;
            let stats = open131_registry::synth_taxpayers(rows, seed, std::io::BufWriter::new(file))?;
            println!("{stats:?}");
        }
    }
    Ok(())
}
