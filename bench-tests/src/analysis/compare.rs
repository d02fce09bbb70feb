//! `cargo xtask compare BASE NEW`: per group and metric, the change from a baseline run
//! directory to a new one, with a 95% CI, flagging regressions beyond noise (as criterion
//! does with saved baselines): worse, significant (Welch's p after Holm's correction over all
//! the changes, and Mann-Whitney's p, below 0.05), the ratio's CI excluding 1, and larger than
//! the noise threshold.
//!
//! Only valid runs count (`summary::validity`, as in the summary). Latency is compared in
//! paced groups only. When the sample sizes cannot reach p < 0.05 (fewer than two runs on a
//! side, or too few for Mann-Whitney: 3 vs 3 cannot go below 0.081) the status is "cannot
//! tell (n = a vs b)", never "no change". CPU% has no better direction: a significant change
//! is "changed". The A/A check of the machine: run the same configuration twice and compare,
//!
//! ```text
//! cargo xtask bench --profile ci --scenario throughput --system asynctasq --repetitions 5 --warmup 0 --results /tmp/aa1
//! cargo xtask bench --profile ci --scenario throughput --system asynctasq --repetitions 5 --warmup 0 --results /tmp/aa2
//! cargo xtask compare /tmp/aa1/<run-id> /tmp/aa2/<run-id>
//! ```
//!
//! (or `cargo xtask aa`, which does the three steps); it must report no regression and no
//! improvement.

use std::fmt::Write as _;

use serde::Serialize;

use crate::analysis::stats::{self, Better};
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
    /// Welch's p after Holm's correction over every change of this comparison; significant
    /// means this and Mann-Whitney's p both below 0.05.
    pub p_holm: f64,
    /// Valid runs on each side.
    pub base_n: usize,
    pub new_n: usize,
    /// regressed, improved, changed (no better direction), no change, or
    /// "cannot tell (n = base vs new)".
    pub status: String,
}

pub fn compare(base: &[RunResult], new: &[RunResult]) -> Vec<Change> {
    let (base_groups, new_groups) = (summary::grouped_valid(base), summary::grouped_valid(new));
    let mut tested = Vec::new();
    for (key, new_runs) in &new_groups {
        let Some(base_runs) = base_groups.get(key) else {
            continue;
        };
        for def in summary::all_metrics()
            .iter()
            .filter(|d| d.judged_in(&key.mode))
        {
            let (b, n) = (
                summary::values(def, base_runs),
                summary::values(def, new_runs),
            );
            if b.is_empty() || n.is_empty() {
                continue;
            }
            let c = stats::compare(
                &n,
                &b,
                def.better,
                "new",
                "base",
                summary::BOOTSTRAP_SEED,
                summary::BOOTSTRAP_RESAMPLES,
            );
            let change = Change {
                group: label(key),
                metric: def.name.to_string(),
                base_median: stats::describe(&b).median,
                new_median: stats::describe(&n).median,
                change: c.ratio - 1.0,
                change_ci95_low: c.ratio_ci95_low - 1.0,
                change_ci95_high: c.ratio_ci95_high - 1.0,
                welch_p: c.welch_p,
                p_holm: f64::NAN,
                base_n: b.len(),
                new_n: n.len(),
                status: String::new(),
            };
            tested.push((change, c, def.better));
        }
    }
    // As in the summary: Holm over every Welch p of the comparison, Mann-Whitney raw.
    let welch: Vec<f64> = tested.iter().map(|(_, c, _)| c.welch_p).collect();
    tested
        .into_iter()
        .zip(stats::holm(&welch))
        .map(|((mut change, mut c, better), p_holm)| {
            change.p_holm = p_holm;
            c.significant = p_holm < stats::ALPHA && c.mann_whitney_p < stats::ALPHA;
            change.status = status(&c, better, change.base_n, change.new_n);
            change
        })
        .collect()
}

/// Beyond noise: significant, the ratio's CI excluding 1 and the change above the threshold.
fn status(c: &stats::Compare, better: Better, base_n: usize, new_n: usize) -> String {
    let change = c.ratio - 1.0;
    let ci_excludes_one = c.ratio_ci95_low > 1.0 || c.ratio_ci95_high < 1.0;
    let beyond_noise = c.significant && ci_excludes_one && change.abs() > NOISE_THRESHOLD;
    if !beyond_noise && !stats::can_reach_significance(base_n, new_n) {
        return format!("cannot tell (n = {base_n} vs {new_n})");
    }
    let status = match (beyond_noise, better) {
        (false, _) => "no change",
        (true, Better::Neither) => "changed",
        (true, Better::Higher) if change < 0.0 => "regressed",
        (true, Better::Lower) if change > 0.0 => "regressed",
        (true, _) => "improved",
    };
    status.to_string()
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
        "group", "metric", "base", "new", "change (95% CI)", "Holm p"
    );
    let num = |x: f64| {
        if x.is_finite() {
            format!("{x:.2}")
        } else {
            "–".to_string()
        }
    };
    for c in changes {
        let _ = writeln!(
            out,
            "{:<58} {:<26} {:>12} {:>12} {:>24} {:>8}  {}",
            c.group,
            c.metric,
            num(c.base_median),
            num(c.new_median),
            if c.change_ci95_low.is_finite() && c.change_ci95_high.is_finite() {
                format!(
                    "{:+.1}% [{:+.1}, {:+.1}]",
                    c.change * 100.0,
                    c.change_ci95_low * 100.0,
                    c.change_ci95_high * 100.0
                )
            } else {
                format!("{:+.1}%", c.change * 100.0)
            },
            if c.p_holm.is_finite() {
                format!("{:.3}", c.p_holm)
            } else {
                "–".to_string()
            },
            c.status
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A valid run in DESIGN.md's format: throughput `tp` and CPU `cpu` at concurrency `c`.
    fn run(id: &str, c: u32, tp: f64, cpu: f64) -> RunResult {
        serde_json::from_value(serde_json::json!({
            "benchmark_id": id, "timestamp": "t",
            "configuration": {"system": "asynctasq", "driver": "redis", "workers": c,
                "task_count": 1000, "scenario": "throughput", "mode": "drain",
                "variant": format!("asyncio-c{c}"), "profile": "ci"},
            "metrics": {"enqueue_time_seconds": 0.1, "processing_time_seconds": 1000.0 / tp,
                "throughput_tasks_per_sec": tp, "latency_mean_ms": 1.0, "latency_p50_ms": 1.0,
                "latency_p95_ms": 1.0, "latency_p99_ms": 1.0, "memory_rss_mb": 70.0,
                "cpu_percent": cpu},
            "errors": [],
            "environment": {"host": "h", "cpus": 2, "python": "3", "versions": {}, "git_rev": "r"}
        }))
        .unwrap()
    }

    fn side(name: &str, groups: u32, tps: [f64; 5], cpus: [f64; 5]) -> Vec<RunResult> {
        (1..=groups)
            .flat_map(|c| {
                (0..5).map(move |i| run(&format!("{name}-c{c}-r{i}"), c, tps[i], cpus[i]))
            })
            .collect()
    }

    #[test]
    fn holm_keeps_many_marginal_changes_from_reading_as_improvements() {
        let base = side("base", 6, [100.0, 104.0, 98.0, 103.0, 101.0], [50.0; 5]);
        // +6%: beyond the 2% threshold, the ratio's CI clear of 1, Welch p about 0.005 each.
        let new = side("new", 6, [106.0, 110.0, 104.0, 109.0, 107.0], [50.0; 5]);
        let changes = compare(&base, &new);
        let tp: Vec<&Change> = changes
            .iter()
            .filter(|c| c.metric == "throughput_tasks_per_sec")
            .collect();
        assert_eq!(tp.len(), 6);
        for c in tp {
            // Each alone is significant (the old status: "improved"); not after Holm.
            assert!(c.welch_p < 0.05 && c.change > NOISE_THRESHOLD, "{c:?}");
            assert!(c.change_ci95_low > 0.0, "{c:?}");
            assert!(c.p_holm > 0.05, "{c:?}");
            assert_eq!(c.status, "no change", "{c:?}");
        }
    }

    #[test]
    fn a_cpu_change_is_a_change_not_a_regression() {
        let base = side("base", 1, [100.0; 5], [40.0, 41.0, 42.0, 40.5, 41.5]);
        let new = side("new", 1, [100.0; 5], [60.0, 61.0, 62.0, 60.5, 61.5]);
        let changes = compare(&base, &new);
        let cpu = changes.iter().find(|c| c.metric == "cpu_percent").unwrap();
        // Before: "regressed" (lower CPU was taken as better).
        assert_eq!(cpu.status, "changed", "{cpu:?}");
    }
}
