//! `cargo xtask <command>`: the tasq-bench command line. Thin: parsing and printing only;
//! the work lives in the `bench-tests` library.

mod bench;
mod setup;

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
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let outcome = match cli.command {
        Command::Setup => setup::run(),
        Command::Bench(args) => bench::run(args),
    };
    match outcome {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
