//! `cargo xtask bench`: validate, provision, run, print the table.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use bench_tests::harness::{self, Harness};
use bench_tests::provision::brokers::Driver;
use bench_tests::run::bench::{self, BenchPlan, BenchRequest};
use bench_tests::{systems, workloads};
use clap::Args;

/// `--x` help from the registry it names: what it does and the valid values.
fn list_help(what: &str, valid: &[&str]) -> String {
    list_help_or(what, valid, "all when omitted")
}

fn list_help_or(what: &str, valid: &[&str], default: &str) -> String {
    format!("{what} (repeatable): {}; {default}", valid.join(", "))
}

#[derive(Args)]
pub struct BenchArgs {
    /// Sizes and repetitions: ci, local, bare-metal, aws, or a path to a TOML file of
    /// your own (a copy of infra/profiles/local.toml, say).
    #[arg(long, default_value = "local")]
    profile: String,
    #[arg(long = "scenario", help = list_help("Scenario(s) to run", &workloads::names()))]
    scenarios: Vec<String>,
    #[arg(long = "system", help = list_help("System(s) to run", &systems::names()))]
    systems: Vec<String>,
    #[arg(long = "driver", help = list_help_or("Broker(s) to run on", &Driver::ALL.map(Driver::name), "when omitted, each scenario's own (redis; every broker for drivers)"))]
    drivers: Vec<String>,
    #[arg(long = "mode", help = list_help("Load mode(s)", &["drain", "live", "paced"]))]
    modes: Vec<String>,
    /// Variant(s) to run (repeatable), by label (`asyncio-c10`, `threads-c10-pf1`) or pool
    /// (`prefork`); all when omitted. A wrong one lists the valid ones.
    #[arg(long = "variant")]
    variants: Vec<String>,
    /// Seed for the order of cases (recorded in every result); random when omitted.
    #[arg(long)]
    seed: Option<u64>,
    /// Paced (open-loop) rates in tasks/s, comma-separated, replacing the profile's; `auto`
    /// finds each system's highest sustainable rate and measures at fractions of it.
    #[arg(long)]
    rates: Option<String>,
    /// Measured repetitions per case, replacing the profile's.
    #[arg(long)]
    repetitions: Option<u32>,
    /// Discarded warm-up repetitions, replacing the profile's.
    #[arg(long)]
    warmup: Option<u32>,
    /// Exit non-zero when a criterion of the profile fails.
    #[arg(long)]
    strict: bool,
    /// Where run directories are written.
    #[arg(long, default_value = "results")]
    results: PathBuf,
}

pub fn run(args: BenchArgs) -> Result<ExitCode> {
    let strict = args.strict;
    let request = BenchRequest {
        profile: args.profile,
        scenarios: args.scenarios,
        systems: args.systems,
        drivers: args.drivers,
        modes: args.modes,
        variants: args.variants,
        seed: args.seed,
        rates: args.rates.as_deref().map(bench::parse_rates).transpose()?,
        repetitions: args.repetitions,
        warmup: args.warmup,
    };
    let root = bench_tests::project_root();
    // Validate names before provisioning anything, so a typo fails in milliseconds.
    let plan = BenchPlan::new(&root, &request, harness::cpu_count())?;
    let measured = match plan.profile.adaptive()? {
        Some(a) => format!(
            "{}-{} measured, until the 95% CI is within ±{}% of the mean",
            a.min_repetitions,
            a.max_repetitions,
            a.target_ci_half_width * 100.0
        ),
        None => format!("{} measured", plan.profile.repetitions),
    };
    eprintln!(
        "profile {}: {} cases x ({} warm-up + {measured}) repetitions, order seed {}",
        plan.profile.name,
        plan.cases.len(),
        plan.profile.warmup,
        plan.seed
    );
    let harness = Harness::provision(&mut |line| eprintln!("  {line}"))?;
    eprintln!(
        "python {} ({})",
        harness.python.version, harness.python.source
    );
    // Every broker the plan needs is found (or fails, naming what was tried) before any run.
    for driver in plan.drivers() {
        let info = harness.broker(driver)?.info().clone();
        eprintln!(
            "{driver} {} at {} ({})",
            info.server_version, info.url, info.source
        );
    }
    let results_root = if args.results.is_absolute() {
        args.results
    } else {
        root.join(args.results)
    };
    let outcome = bench::execute(&harness, &plan, &results_root)?;
    print!("{}", bench_tests::report::table::render(&outcome.rows));
    let mut failed_criteria = 0;
    if let Some(summary) = &outcome.summary {
        for v in &summary.criteria {
            let value = v.value.map_or("-".to_string(), |x| format!("{x:.2}"));
            println!(
                "criterion {:<28} {:<13} {:>10}  {}",
                v.name, v.status, value, v.claim
            );
            failed_criteria += usize::from(v.status == "fail");
        }
    }
    println!("results: {} (report.md)", outcome.run_dir.display());
    if strict && failed_criteria > 0 {
        eprintln!("--strict: {failed_criteria} criterion/criteria failed");
        return Ok(ExitCode::FAILURE);
    }
    if outcome.failures.is_empty() {
        Ok(ExitCode::SUCCESS)
    } else {
        eprintln!("{} run(s) failed:", outcome.failures.len());
        for failure in &outcome.failures {
            eprintln!("  {failure}");
        }
        Ok(ExitCode::FAILURE)
    }
}
