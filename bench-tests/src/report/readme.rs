//! The README's measured figures, regenerated from the committed reference runs
//! (`results/reference/<date>-<host>/<run-dir>/runs/*.json`) so every figure it quotes can
//! be checked against its raw data: `cargo xtask report --readme` rewrites the block
//! between the markers, and a test fails when the README and the runs disagree.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use super::{mean_of, DASH};
use crate::analysis::summary;
use crate::result::RunResult;

pub const BEGIN: &str = "<!-- reference-results:begin (cargo xtask report --readme) -->";
pub const END: &str = "<!-- reference-results:end -->";

/// The reference run directories under `root` (`results/reference`), sorted: every
/// directory that holds `runs/`, at any depth.
pub fn reference_dirs(root: &Path) -> Result<Vec<PathBuf>> {
    let mut found = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let entries =
            std::fs::read_dir(&dir).with_context(|| format!("reading {}", dir.display()))?;
        for entry in entries {
            let path = entry?.path();
            if !path.is_dir() {
                continue;
            }
            if path.file_name().is_some_and(|n| n == "runs") {
                found.push(dir.clone());
            } else {
                stack.push(path);
            }
        }
    }
    found.sort();
    found.dedup();
    Ok(found)
}

/// The Markdown block: one section per reference directory (the command that made it,
/// from its `command.txt`, and its host): one row per group of valid runs, then the
/// like-for-like comparisons across systems on each mode's primary metric, then the
/// verdicts of the criteria of the profile the runs were measured with.
pub fn block(root: &Path, dirs: &[PathBuf]) -> Result<String> {
    let mut md = String::new();
    for dir in dirs {
        let runs = crate::report::load_runs(dir)?;
        let measured: Vec<RunResult> = runs
            .into_iter()
            .filter(|r| !r.configuration.warmup)
            .collect();
        let command = std::fs::read_to_string(dir.join("command.txt"))
            .map(|c| c.trim().to_string())
            .unwrap_or_else(|_| "(no command.txt)".into());
        let shown = dir
            .strip_prefix(root.parent().and_then(Path::parent).unwrap_or(root))
            .unwrap_or(dir);
        let env = &measured.first().context("no measured run")?.environment;
        // Each broker's version, as the runs on it recorded it.
        let brokers: std::collections::BTreeMap<&str, &str> = measured
            .iter()
            .map(|r| {
                (
                    r.configuration.driver.as_str(),
                    r.environment.broker_version.as_str(),
                )
            })
            .collect();
        let brokers: Vec<String> = brokers.iter().map(|(d, v)| format!("{d} {v}")).collect();
        let _ = writeln!(
            md,
            "**`{command}`** — raw runs in `{}` (host {}, {} CPUs, Python {}; {}):\n",
            shown.display(),
            env.host,
            env.cpus,
            env.python,
            brokers.join(", ")
        );
        md.push_str(&table(&measured));
        md.push('\n');
        let summary = summary::summarize(&measured);
        md.push_str(&comparisons(&summary));
        let criteria = crate::report::criteria_of(dir, &measured[0].configuration.profile)?;
        md.push_str(&verdicts(&crate::analysis::criteria::evaluate(
            &criteria, &summary,
        )));
    }
    Ok(md)
}

/// Cross-system pairs (same concurrency, rate, mode and delivery semantics) on each mode's
/// primary metric: the ratio A/B with its bootstrap CI, Holm-corrected p and the verdict.
pub fn comparisons(summary: &summary::Summary) -> String {
    let rows: Vec<_> = summary
        .comparisons
        .iter()
        .filter(|c| {
            c.a != c.b && c.metric == crate::run::bench::primary_metric(&c.scenario, &c.mode)
        })
        .collect();
    if rows.is_empty() {
        return String::new();
    }
    let mut md = String::from(
        "| scenario | broker | A | B | metric | A / B (95% CI) | p (Holm) | verdict |\n|---|---|---|---|---|---|---|---|\n",
    );
    for c in rows {
        let _ = writeln!(
            md,
            "| {} | {} | {} {} | {} {} | {} | {} ({}–{}) | {} | {} |",
            c.scenario,
            c.driver,
            c.a,
            c.variant_a,
            c.b,
            c.variant_b,
            c.metric,
            num(Some(c.ratio), 2),
            num(Some(c.ratio_ci95_low), 2),
            num(Some(c.ratio_ci95_high), 2),
            num(Some(c.p_holm), 3),
            c.verdict
        );
    }
    md.push('\n');
    md
}

/// The criteria's verdicts: pass or fail only when the 95% CI clears the threshold.
pub fn verdicts(verdicts: &[crate::analysis::criteria::Verdict]) -> String {
    if verdicts.is_empty() {
        return String::new();
    }
    let mut md =
        String::from("| claim | measured on | value (95% CI) | verdict |\n|---|---|---|---|\n");
    for v in verdicts {
        let _ = writeln!(
            md,
            "| {} | {} | {} ({}–{}) | **{}** |",
            v.claim,
            v.measured_on,
            num(v.value, 2),
            num(v.ci95_low, 2),
            num(v.ci95_high, 2),
            v.status
        );
    }
    md.push('\n');
    md
}

/// One row per group: valid runs, tasks/s as mean with its 95% CI, enqueue/s, latency
/// (paced only: elsewhere a queueing artefact), PSS and RSS, lost and duplicated.
pub fn table(results: &[RunResult]) -> String {
    let s = summary::summarize(results);
    let mut md = String::from(
        "| scenario | system | variant | mode | broker | valid runs | tasks/s (95% CI) | enqueue/s | p50 / p99 ms | PSS / RSS MB | lost / dup |\n|---|---|---|---|---|---|---|---|---|---|---|\n",
    );
    for (key, all) in summary::grouped(results) {
        let get = |metric: &str| mean_of(&s, &key, metric);
        let latency = if key.mode == "paced" {
            format!(
                "{} / {}",
                num(get("latency_p50_ms").map(|g| g.median), 1),
                num(get("latency_p99_ms").map(|g| g.median), 1)
            )
        } else {
            "artefact".to_string()
        };
        let rate = get("throughput_tasks_per_sec").map_or(DASH.to_string(), |g| {
            if g.n >= 2 {
                format!(
                    "{} ({}–{})",
                    num(Some(g.mean), 0),
                    num(Some(g.ci95_low), 0),
                    num(Some(g.ci95_high), 0)
                )
            } else {
                format!("{} (too few runs)", num(Some(g.mean), 0))
            }
        });
        let lost: u64 = all.iter().map(|r| r.metrics.lost).sum();
        let dup: u64 = all.iter().map(|r| r.metrics.duplicated).sum();
        let valid = all.iter().filter(|r| summary::validity(r).is_ok()).count();
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {} | {valid} of {} | {rate} | {} | {latency} | {} / {} | {lost} / {dup} |",
            key.scenario,
            key.system,
            key.variant,
            key.mode,
            key.driver,
            all.len(),
            num(get("enqueue_rate_per_sec").map(|g| g.median), 0),
            num(get("memory_pss_mb").map(|g| g.median), 0),
            num(get("memory_rss_mb").map(|g| g.median), 0),
        );
    }
    md
}

/// Thousands separated, `digits` decimals; "–" for what was not measured.
fn num(value: Option<f64>, digits: usize) -> String {
    match value.filter(|v| v.is_finite()) {
        None => DASH.into(),
        Some(v) => {
            let text = format!("{v:.digits$}");
            let (int, frac) = text
                .split_once('.')
                .map_or((text.as_str(), None), |(i, f)| (i, Some(f)));
            let (sign, int) = int.strip_prefix('-').map_or(("", int), |i| ("-", i));
            let mut grouped = String::new();
            for (i, c) in int.chars().enumerate() {
                if i > 0 && (int.len() - i) % 3 == 0 {
                    grouped.push(',');
                }
                grouped.push(c);
            }
            match frac {
                Some(f) => format!("{sign}{grouped}.{f}"),
                None => format!("{sign}{grouped}"),
            }
        }
    }
}

/// `readme` with the block between the markers replaced by `block`.
pub fn splice(readme: &str, block: &str) -> Result<String> {
    let (Some(a), Some(b)) = (readme.find(BEGIN), readme.find(END)) else {
        bail!("README.md has no reference block; add the lines\n{BEGIN}\n{END}");
    };
    Ok(format!("{}{BEGIN}\n{block}{}", &readme[..a], &readme[b..]))
}

/// The README's block as it stands.
pub fn current(readme: &str) -> Option<&str> {
    let a = readme.find(BEGIN)? + BEGIN.len() + 1;
    let b = readme.find(END)?;
    readme.get(a..b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_grouped_and_missing_ones_dashed() {
        assert_eq!(num(Some(5513.4), 0), "5,513");
        assert_eq!(num(Some(1234567.25), 1), "1,234,567.2");
        assert_eq!(num(Some(-1500.0), 0), "-1,500");
        assert_eq!(num(Some(f64::NAN), 0), "–");
        assert_eq!(num(None, 1), "–");
    }

    #[test]
    fn splice_replaces_only_the_block() {
        let readme = format!("intro\n{BEGIN}\nold\n{END}\noutro\n");
        let new = splice(&readme, "new\n").unwrap();
        assert_eq!(new, format!("intro\n{BEGIN}\nnew\n{END}\noutro\n"));
        assert_eq!(current(&new), Some("new\n"));
        assert!(splice("no markers", "x").is_err());
    }
}
