//! `cargo xtask report DIR` and `cargo xtask compare BASE NEW`: from raw runs only.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use bench_tests::profile::Profile;
use bench_tests::{analysis::compare, report};

/// Regenerates summary.json, report.md, runs.csv and charts/ of a run directory.
pub fn regenerate(dir: PathBuf) -> Result<ExitCode> {
    let runs = report::load_runs(&dir)?;
    let profile_name = runs[0].configuration.profile.clone();
    let profile =
        Profile::load(&bench_tests::project_root(), &profile_name).with_context(|| {
            format!("loading the criteria of profile '{profile_name}', which the runs name")
        })?;
    // The order seed and failures live only in the summary the bench wrote: keep them.
    let previous = report::read_summary(&dir);
    let ceilings = report::load_ceilings(&dir)?;
    let file = report::write(
        &dir,
        &runs,
        &ceilings,
        &profile.criteria,
        previous.as_ref().and_then(|p| p.order_seed),
        &previous.map(|p| p.failures).unwrap_or_default(),
    )?;
    println!(
        "{}: {} runs, {} groups, {} comparisons",
        dir.display(),
        runs.len(),
        file.groups.len(),
        file.comparisons.len()
    );
    for v in &file.criteria {
        println!("  {:<28} {:<13} {}", v.name, v.status, v.claim);
    }
    println!("wrote {}", dir.join("report.md").display());
    Ok(ExitCode::SUCCESS)
}

/// Prints per-group changes; exits non-zero when something regressed.
pub fn compare_dirs(base: PathBuf, new: PathBuf) -> Result<ExitCode> {
    let changes = compare::compare(&report::load_runs(&base)?, &report::load_runs(&new)?);
    if changes.is_empty() {
        anyhow::bail!(
            "{} and {} have no group in common (scenario, driver, system, variant, mode)",
            base.display(),
            new.display()
        );
    }
    print!("{}", compare::render(&changes));
    let regressed = changes.iter().filter(|c| c.status == "regressed").count();
    println!(
        "{regressed} regression(s) beyond noise ({}% threshold, p < 0.05)",
        compare::NOISE_THRESHOLD * 100.0
    );
    Ok(if regressed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
