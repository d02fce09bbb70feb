//! From raw runs to conclusions: statistics per group (scenario, system, driver, variant,
//! mode, metric) over repetitions, and comparisons between systems on the same group.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::analysis::stats::{self, Compare, Describe};
use crate::result::RunResult;

/// A metric the summary describes, and which direction is better.
pub struct MetricDef {
    pub name: &'static str,
    pub higher_is_better: bool,
    pub value: fn(&RunResult) -> Option<f64>,
}

pub const METRICS: [MetricDef; 9] = [
    MetricDef {
        name: "throughput_tasks_per_sec",
        higher_is_better: true,
        value: |r| Some(r.metrics.throughput_tasks_per_sec),
    },
    MetricDef {
        name: "enqueue_rate_per_sec",
        higher_is_better: true,
        value: |r| Some(r.metrics.enqueue_rate_per_sec),
    },
    MetricDef {
        name: "latency_mean_ms",
        higher_is_better: false,
        value: |r| Some(r.metrics.latency_mean_ms),
    },
    MetricDef {
        name: "latency_p50_ms",
        higher_is_better: false,
        value: |r| Some(r.metrics.latency_p50_ms),
    },
    MetricDef {
        name: "latency_p95_ms",
        higher_is_better: false,
        value: |r| Some(r.metrics.latency_p95_ms),
    },
    MetricDef {
        name: "latency_p99_ms",
        higher_is_better: false,
        value: |r| Some(r.metrics.latency_p99_ms),
    },
    MetricDef {
        name: "memory_rss_mb",
        higher_is_better: false,
        value: |r| Some(r.metrics.memory_rss_mb),
    },
    MetricDef {
        name: "cpu_percent",
        higher_is_better: false,
        value: |r| Some(r.metrics.cpu_percent),
    },
    // Cold start: spawning the worker to the end of the first task (drain of one task).
    MetricDef {
        name: "processing_time_from_spawn_seconds",
        higher_is_better: false,
        value: |r| Some(r.metrics.processing_time_from_spawn_seconds),
    },
];

/// Whether two variants differ only in their pool: the same concurrency (and rate or stress
/// step), e.g. `asyncio-c50` and `threads-c50`, not `threads-c10`.
pub fn same_sizes(variant_a: &str, variant_b: &str) -> bool {
    let sizes = |variant: &str| variant.split_once('-').map(|(_, rest)| rest.to_string());
    sizes(variant_a) == sizes(variant_b)
}

pub fn metric(name: &str) -> Option<&'static MetricDef> {
    METRICS.iter().find(|m| m.name == name)
}

/// Identifies a group of repetitions.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct GroupKey {
    pub scenario: String,
    pub driver: String,
    pub system: String,
    pub variant: String,
    pub mode: String,
}

impl GroupKey {
    pub fn of(r: &RunResult) -> GroupKey {
        let c = &r.configuration;
        GroupKey {
            scenario: c.scenario.clone(),
            driver: c.driver.clone(),
            system: c.system.clone(),
            variant: c.variant.clone(),
            mode: c.mode.clone(),
        }
    }

    /// e.g. `asynctasq asyncio-c10 drain`.
    pub fn label(&self) -> String {
        format!("{} {} {}", self.system, self.variant, self.mode)
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Group {
    pub scenario: String,
    pub driver: String,
    pub system: String,
    pub variant: String,
    pub mode: String,
    pub metric: String,
    pub n: usize,
    pub mean: f64,
    pub median: f64,
    pub stddev: f64,
    pub min: f64,
    pub max: f64,
    pub p95: f64,
    pub p99: f64,
    pub ci95_low: f64,
    pub ci95_high: f64,
    /// benchmark_ids outside the Tukey fences: flagged, kept in the statistics.
    pub outliers: Vec<String>,
    /// Runs in the group that lost or duplicated tasks (kept out of the statistics).
    pub excluded: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Comparison {
    pub a: String,
    pub b: String,
    pub scenario: String,
    pub driver: String,
    pub mode: String,
    pub variant_a: String,
    pub variant_b: String,
    pub metric: String,
    pub ratio: f64,
    pub ratio_ci95_low: f64,
    pub ratio_ci95_high: f64,
    pub welch_p: f64,
    pub mann_whitney_p: f64,
    pub cohens_d: f64,
    pub verdict: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Summary {
    pub groups: Vec<Group>,
    pub comparisons: Vec<Comparison>,
}

/// Bootstrap resamples for ratio CIs; seeded so a summary recomputes to the same numbers.
pub const BOOTSTRAP_RESAMPLES: usize = 10_000;
pub const BOOTSTRAP_SEED: u64 = 0x7a5c_be9c;

/// Measured runs (warm-ups skipped) grouped by key, in key order.
pub fn grouped(results: &[RunResult]) -> BTreeMap<GroupKey, Vec<&RunResult>> {
    let mut groups: BTreeMap<GroupKey, Vec<&RunResult>> = BTreeMap::new();
    for r in results.iter().filter(|r| !r.configuration.warmup) {
        groups.entry(GroupKey::of(r)).or_default().push(r);
    }
    for runs in groups.values_mut() {
        runs.sort_by(|a, b| a.benchmark_id.cmp(&b.benchmark_id));
    }
    groups
}

/// A run counts only if every task completed exactly once.
fn is_exact(r: &RunResult) -> bool {
    r.metrics.lost == 0 && r.metrics.duplicated == 0
}

pub fn summarize(results: &[RunResult]) -> Summary {
    let groups_by_key = grouped(results);
    let mut groups = Vec::new();
    for (key, runs) in &groups_by_key {
        let (exact, inexact): (Vec<&RunResult>, Vec<&RunResult>) =
            runs.iter().partition(|r| is_exact(r));
        for def in &METRICS {
            let (ids, values): (Vec<&str>, Vec<f64>) = exact
                .iter()
                .filter_map(|r| {
                    (def.value)(r)
                        .filter(|v| v.is_finite())
                        .map(|v| (r.benchmark_id.as_str(), v))
                })
                .unzip();
            if values.is_empty() {
                continue;
            }
            let d: Describe = stats::describe(&values);
            groups.push(Group {
                scenario: key.scenario.clone(),
                driver: key.driver.clone(),
                system: key.system.clone(),
                variant: key.variant.clone(),
                mode: key.mode.clone(),
                metric: def.name.to_string(),
                n: d.n,
                mean: d.mean,
                median: d.median,
                stddev: d.stddev,
                min: d.min,
                max: d.max,
                p95: d.p95,
                p99: d.p99,
                ci95_low: d.ci95_low,
                ci95_high: d.ci95_high,
                outliers: d.outliers.iter().map(|&i| ids[i].to_string()).collect(),
                excluded: inexact.iter().map(|r| r.benchmark_id.clone()).collect(),
            });
        }
    }
    Summary {
        comparisons: comparisons(&groups_by_key),
        groups,
    }
}

/// Every pair of groups on the same scenario, driver and mode: systems against each
/// other, and one system's variants against each other (e.g. Celery threads vs prefork).
fn comparisons(groups: &BTreeMap<GroupKey, Vec<&RunResult>>) -> Vec<Comparison> {
    let keys: Vec<&GroupKey> = groups.keys().collect();
    let mut out = Vec::new();
    for (i, ka) in keys.iter().enumerate() {
        for kb in &keys[i + 1..] {
            let same_place =
                (&ka.scenario, &ka.driver, &ka.mode) == (&kb.scenario, &kb.driver, &kb.mode);
            if !same_place {
                continue;
            }
            for def in &METRICS {
                let values = |k: &GroupKey| -> Vec<f64> {
                    groups[k]
                        .iter()
                        .filter(|r| is_exact(r))
                        .filter_map(|r| (def.value)(r))
                        .filter(|v| v.is_finite())
                        .collect()
                };
                let (a, b) = (values(ka), values(kb));
                if a.is_empty() || b.is_empty() {
                    continue;
                }
                let c: Compare = stats::compare(
                    &a,
                    &b,
                    def.higher_is_better,
                    &ka.label(),
                    &kb.label(),
                    BOOTSTRAP_SEED,
                    BOOTSTRAP_RESAMPLES,
                );
                out.push(Comparison {
                    a: ka.system.clone(),
                    b: kb.system.clone(),
                    scenario: ka.scenario.clone(),
                    driver: ka.driver.clone(),
                    mode: ka.mode.clone(),
                    variant_a: ka.variant.clone(),
                    variant_b: kb.variant.clone(),
                    metric: def.name.to_string(),
                    ratio: c.ratio,
                    ratio_ci95_low: c.ratio_ci95_low,
                    ratio_ci95_high: c.ratio_ci95_high,
                    welch_p: c.welch_p,
                    mann_whitney_p: c.mann_whitney_p,
                    cohens_d: c.cohens_d,
                    verdict: c.verdict,
                });
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn variants_match_on_everything_but_the_pool() {
        assert!(super::same_sizes("asyncio-c50", "threads-c50"));
        assert!(!super::same_sizes("asyncio-c50", "threads-c10"));
        assert!(super::same_sizes("asyncio-c20-n1000", "threads-c20-n1000"));
        assert!(!super::same_sizes(
            "asyncio-c20-n1000",
            "threads-c20-n50000"
        ));
    }
}
