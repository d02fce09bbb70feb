//! `cargo xtask report DIR` and `cargo xtask compare BASE NEW`: from raw runs only.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use bench_tests::{analysis::compare, report};

/// Regenerates summary.json, report.md, runs.csv and charts/ of a run directory.
pub fn regenerate(dir: PathBuf) -> Result<ExitCode> {
    let runs = report::load_runs(&dir)?;
    let profile_name = runs[0].configuration.profile.clone();
    let criteria = report::criteria_of(&dir, &profile_name)?;
    // The order seed and failures live only in the summary the bench wrote: keep them.
    let (order_seed, failures) = report::bench_facts(&dir);
    let ceilings = report::load_ceilings(&dir)?;
    let file = report::write(&dir, &runs, &ceilings, &criteria, order_seed, &failures)?;
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

/// Regenerates every reference directory (results/reference/…) and the README's block of
/// measured figures from their raw runs alone.
pub fn regenerate_readme() -> Result<ExitCode> {
    let root = bench_tests::project_root();
    let reference = root.join("results/reference");
    let dirs = report::readme::reference_dirs(&reference)?;
    if dirs.is_empty() {
        anyhow::bail!(
            "{} holds no run directory (…/runs/*.json)",
            reference.display()
        );
    }
    for dir in &dirs {
        regenerate(dir.clone())?;
    }
    let path = root.join("README.md");
    let readme = std::fs::read_to_string(&path)?;
    let block = report::readme::block(&reference, &dirs)?;
    let spliced = report::readme::splice(&readme, &block)?;
    report::output::write_atomic(&path, spliced.as_bytes())?;
    println!(
        "wrote the measured figures of {} into {}",
        dirs.len(),
        path.display()
    );
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
    let cannot_tell = changes
        .iter()
        .filter(|c| c.status.starts_with("cannot tell"))
        .count();
    println!(
        "{regressed} regression(s) beyond noise ({}% threshold, Holm-corrected p < 0.05); \
         {cannot_tell} of {} comparison(s) could not tell (too few valid runs to reach p < 0.05)",
        compare::NOISE_THRESHOLD * 100.0,
        changes.len()
    );
    Ok(if regressed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// The one run directory `bench` wrote under `root`.
pub fn only_run_dir(root: &std::path::Path) -> Result<PathBuf> {
    let dirs: Vec<PathBuf> = std::fs::read_dir(root)
        .with_context(|| format!("reading {}", root.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_dir())
        .collect();
    match dirs.as_slice() {
        [one] => Ok(one.clone()),
        _ => anyhow::bail!(
            "expected one run directory under {}, found {}",
            root.display(),
            dirs.len()
        ),
    }
}

/// The A/A verdict: the same configuration twice must show no difference in any metric.
pub fn aa_verdict(a: PathBuf, b: PathBuf) -> Result<ExitCode> {
    let (runs_a, runs_b) = (report::load_runs(&a)?, report::load_runs(&b)?);
    let changes = compare::compare(&runs_a, &runs_b);
    print!("{}", compare::render(&changes));
    let differ: Vec<&compare::Change> = changes
        .iter()
        .filter(|c| matches!(c.status.as_str(), "regressed" | "improved" | "changed"))
        .collect();
    let cannot_tell = changes
        .iter()
        .filter(|c| c.status.starts_with("cannot tell"))
        .count();
    let noise = bench_tests::analysis::summary::summarize(&runs_a).noise_floor;
    for n in &noise {
        println!(
            "noise floor {:<36} median CV {:.1}% (largest {:.1}%, {} groups)",
            n.metric,
            n.median_cv * 100.0,
            n.max_cv * 100.0,
            n.groups
        );
    }
    println!(
        "A/A {} vs {}: {} differences, {} comparisons could not tell (too few runs), {} no change",
        a.display(),
        b.display(),
        differ.len(),
        cannot_tell,
        changes.len() - differ.len() - cannot_tell
    );
    Ok(if differ.is_empty() && !changes.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
