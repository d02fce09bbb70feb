//! `cargo xtask compare BASE NEW`: per group and metric, the change from a baseline run
//! directory to a new one, with a 95% CI, flagging regressions beyond noise (as criterion
//! does with saved baselines): worse, significant (Welch and Mann-Whitney p < 0.05), the
//! ratio's CI excluding 1, and larger than the noise threshold.

use std::fmt::Write as _;

use serde::Serialize;

use crate::analysis::stats;
use crate::analysis::summary::{self, GroupKey};
use crate::result::RunResult;

/// Changes smaller than this are noise, whatever the p-values say.
pub const NOISE_THRESHOLD: f64 = 0.02;

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Change {
    pub group: String,
    pub metric: String,
    pub base_median: f64,
    pub new_median: f64,
    /// new / base - 1 (medians), and its bootstrap 95% CI.
    pub change: f64,
    pub change_ci95_low: f64,
    pub change_ci95_high: f64,
    pub welch_p: f64,
    /// regressed, improved, no change, or not enough repetitions.
    pub status: String,
}

pub fn compare(base: &[RunResult], new: &[RunResult]) -> Vec<Change> {
    let (base_groups, new_groups) = (summary::grouped(base), summary::grouped(new));
    let mut changes = Vec::new();
    for (key, new_runs) in &new_groups {
        let Some(base_runs) = base_groups.get(key) else {
            continue;
        };
        for def in &summary::METRICS {
            let values = |runs: &Vec<&RunResult>| -> Vec<f64> {
                runs.iter()
                    .filter_map(|r| (def.value)(r))
                    .filter(|v| v.is_finite())
                    .collect()
            };
            let (b, n) = (values(base_runs), values(new_runs));
            if b.is_empty() || n.is_empty() {
                continue;
            }
            let c = stats::compare(
                &n,
                &b,
                def.higher_is_better,
                "new",
                "base",
                summary::BOOTSTRAP_SEED,
                summary::BOOTSTRAP_RESAMPLES,
            );
            let change = c.ratio - 1.0;
            let worse = if def.higher_is_better {
                change < 0.0
            } else {
                change > 0.0
            };
            let ci_excludes_one = c.ratio_ci95_low > 1.0 || c.ratio_ci95_high < 1.0;
            let status = if b.len() < 2 || n.len() < 2 {
                "not enough repetitions"
            } else if c.significant && ci_excludes_one && change.abs() > NOISE_THRESHOLD {
                if worse {
                    "regressed"
                } else {
                    "improved"
                }
            } else {
                "no change"
            };
            changes.push(Change {
                group: label(key),
                metric: def.name.to_string(),
                base_median: stats::describe(&b).median,
                new_median: stats::describe(&n).median,
                change,
                change_ci95_low: c.ratio_ci95_low - 1.0,
                change_ci95_high: c.ratio_ci95_high - 1.0,
                welch_p: c.welch_p,
                status: status.to_string(),
            });
        }
    }
    changes
}

fn label(key: &GroupKey) -> String {
    format!(
        "{} {} {} {} {}",
        key.scenario, key.driver, key.system, key.variant, key.mode
    )
}

pub fn render(changes: &[Change]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<58} {:<26} {:>12} {:>12} {:>24} {:>8}  status",
        "group", "metric", "base", "new", "change (95% CI)", "p"
    );
    for c in changes {
        let _ = writeln!(
            out,
            "{:<58} {:<26} {:>12.2} {:>12.2} {:>24} {:>8.3}  {}",
            c.group,
            c.metric,
            c.base_median,
            c.new_median,
            format!(
                "{:+.1}% [{:+.1}, {:+.1}]",
                c.change * 100.0,
                c.change_ci95_low * 100.0,
                c.change_ci95_high * 100.0
            ),
            c.welch_p,
            c.status
        );
    }
    out
}
