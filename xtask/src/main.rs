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
    /// Regenerate summary.json, report.md, runs.csv and charts/ of a results directory from its
    /// raw runs; with --readme, every directory under results/reference/ and the README's
    /// measured figures from them.
    Report {
        #[arg(required_unless_present = "readme")]
        dir: Option<PathBuf>,
        #[arg(long)]
        readme: bool,
    },
    /// Per-group change from a baseline results directory to a new one; exits 1 on a regression.
    Compare { base: PathBuf, new: PathBuf },
    /// A/A check of the machine: runs the same bench twice in this session and compares the two;
    /// exits 1 if anything "regressed", "improved" or "changed" (e.g. `cargo xtask aa --profile ci
    /// --scenario throughput --system asynctasq --repetitions 5 --warmup 0`).
    #[command(trailing_var_arg = true)]
    Aa {
        /// Where the two run directories go (`<results>/aa-<unix time>/{a,b}/<run-id>`).
        #[arg(long, default_value = "results")]
        results: PathBuf,
        /// Arguments for `bench`, used for both runs (not --results).
        #[arg(allow_hyphen_values = true)]
        bench_args: Vec<String>,
    },
}

/// Runs `bench` with `args` into `results`, twice, then compares the two run directories.
fn aa(results: PathBuf, args: Vec<String>) -> anyhow::Result<ExitCode> {
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_secs();
    let root = results.join(format!("aa-{stamp}"));
    let mut dirs = Vec::new();
    for side in ["a", "b"] {
        let out = root.join(side);
        let argv = ["cargo xtask", "bench"]
            .into_iter()
            .map(String::from)
            .chain(args.iter().cloned())
            .chain(["--results".to_string(), out.display().to_string()]);
        let Command::Bench(bench_args) = Cli::try_parse_from(argv)?.command else {
            unreachable!("parsed as bench");
        };
        println!("A/A: run {side} of 2 into {}", out.display());
        bench::run(bench_args)?;
        dirs.push(report::only_run_dir(&out)?);
    }
    report::aa_verdict(dirs.remove(0), dirs.remove(0))
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let outcome = match cli.command {
        Command::Setup => setup::run(),
        Command::Bench(args) => bench::run(args),
        Command::Report { dir, readme } => match (dir, readme) {
            (_, true) => report::regenerate_readme(),
            (Some(dir), false) => report::regenerate(dir),
            (None, false) => unreachable!("clap requires DIR without --readme"),
        },
        Command::Compare { base, new } => report::compare_dirs(base, new),
        Command::Aa {
            results,
            bench_args,
        } => aa(results, bench_args),
    };
    match outcome {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
