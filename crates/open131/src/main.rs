//! `open131`: the server and its admin, client and benchmark commands.
#![forbid(unsafe_code)]

mod bench;
mod bench_payments;
mod bench_payouts;
mod bench_reports;
mod cli;
mod registry_cli;

use clap::Parser;

/// glibc's allocator showed ~10% of server time under load, much of it waiting
/// on arena locks (perf, status reads at 64 concurrent requests); mimalloc's
/// per-thread heaps remove that wait.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    let args = cli::Args::parse();
    let logs = tracing_subscriber::fmt().with_env_filter(log_filter()).with_writer(std::io::stderr);
    match args.log_format {
        cli::LogFormat::Text => logs.with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr())).init(),
        // One object per line; the request's span fields (request_id, surface, method) ride on each.
        cli::LogFormat::Json => logs.json().with_current_span(true).with_span_list(false).init(),
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(cli::execute(args)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// The log filter: `OPEN131_LOG` (default `info`), except that the PostgreSQL
/// driver never logs below `info`: at `debug` it prints every statement's
/// parameters, which are passport numbers, INNs, keys and tokens.
fn log_filter() -> tracing_subscriber::EnvFilter {
    let filter = tracing_subscriber::EnvFilter::try_from_env("OPEN131_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    match "tokio_postgres=info".parse() {
        Ok(quiet) => filter.add_directive(quiet),
        Err(_) => filter,
    }
}
