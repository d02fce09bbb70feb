//! `cargo xtask <command>`: the tasq-bench command line. Thin: parsing and printing only;
//! the work lives in the `bench-tests` library.

mod bench;
mod report;
mod setup;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "cargo xtask",
    about = "tasq-bench: measure Python task queues on real brokers",
    arg_required_else_help = true
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Find or build Python >= 3.12, create the pinned venv, find or start the brokers; print what was found.
    Setup,
    /// Run scenarios and write results/<run-id>/ (raw runs, histograms, summary).
    Bench(bench::BenchArgs),
    /// Regenerate summary.json, report.md, runs.csv and charts/ of a results directory from its raw runs.
    Report { dir: PathBuf },
    /// Per-group change from a baseline results directory to a new one; exits 1 on a regression.
    Compare { base: PathBuf, new: PathBuf },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let outcome = match cli.command {
        Command::Setup => setup::run(),
        Command::Bench(args) => bench::run(args),
        Command::Report { dir } => report::regenerate(dir),
        Command::Compare { base, new } => report::compare_dirs(base, new),
    };
    match outcome {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
