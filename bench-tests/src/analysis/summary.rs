//! From raw runs to conclusions: statistics per group (scenario, system, driver, variant,
//! mode, metric) over repetitions, and comparisons between systems on the same group.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::analysis::stats::{self, Better, Compare, Describe, Outcome};
use crate::result::RunResult;

/// A metric the summary describes, and which direction is better.
pub struct MetricDef {
    pub name: &'static str,
    pub better: Better,
    /// Latency: measured only in paced (open-loop) runs; in drain and live runs it is the
    /// queue's own backlog (a queueing artefact), so no verdict or comparison uses it there.
    pub paced_only: bool,
    pub source: Source,
}

/// Where a metric's value is read from.
pub enum Source {
    /// A field of every run's metrics.
    Field(fn(&RunResult) -> Option<f64>),
    /// A workload's own figure, in `metrics.measures` under the metric's name.
    Measure,
}

impl MetricDef {
    /// Whether a verdict or comparison may use this metric in runs of `mode`.
    pub fn judged_in(&self, mode: &str) -> bool {
        !self.paced_only || mode == "paced"
    }

    /// Its value in run `r` (None: not measured there).
    pub fn value(&self, r: &RunResult) -> Option<f64> {
        match self.source {
            Source::Field(read) => read(r),
            Source::Measure => r.metrics.measures.get(self.name).copied(),
        }
    }
}

/// The built-in metrics, then every workload's own measures (in registry order): what the
/// summary describes and compares, and what criteria may name.
pub fn all_metrics() -> &'static [MetricDef] {
    static ALL: std::sync::OnceLock<Vec<MetricDef>> = std::sync::OnceLock::new();
    ALL.get_or_init(|| {
        let mut all: Vec<MetricDef> = METRICS.into_iter().collect();
        for workload in crate::workloads::REGISTRY {
            for m in workload.measures() {
                if !all.iter().any(|d| d.name == m.name) {
                    all.push(MetricDef {
                        name: m.name,
                        better: m.better,
                        paced_only: false,
                        source: Source::Measure,
                    });
                }
            }
        }
        all
    })
}

pub const METRICS: [MetricDef; 10] = [
    MetricDef {
        name: "throughput_tasks_per_sec",
        better: Better::Higher,
        paced_only: false,
        source: Source::Field(|r| r.metrics.throughput_tasks_per_sec),
    },
    MetricDef {
        name: "enqueue_rate_per_sec",
        better: Better::Higher,
        paced_only: false,
        source: Source::Field(|r| Some(r.metrics.enqueue_rate_per_sec)),
    },
    MetricDef {
        name: "latency_mean_ms",
        better: Better::Lower,
        paced_only: true,
        source: Source::Field(|r| Some(r.metrics.latency_mean_ms)),
    },
    MetricDef {
        name: "latency_p50_ms",
        better: Better::Lower,
        paced_only: true,
        source: Source::Field(|r| Some(r.metrics.latency_p50_ms)),
    },
    MetricDef {
        name: "latency_p95_ms",
        better: Better::Lower,
        paced_only: true,
        source: Source::Field(|r| Some(r.metrics.latency_p95_ms)),
    },
    MetricDef {
        name: "latency_p99_ms",
        better: Better::Lower,
        paced_only: true,
        source: Source::Field(|r| Some(r.metrics.latency_p99_ms)),
    },
    MetricDef {
        name: "memory_rss_mb",
        better: Better::Lower,
        paced_only: false,
        source: Source::Field(|r| Some(r.metrics.memory_rss_mb)),
    },
    // PSS splits prefork's shared pages between the children: the fair memory figure.
    MetricDef {
        name: "memory_pss_mb",
        better: Better::Lower,
        paced_only: false,
        source: Source::Field(|r| r.metrics.memory_pss_mb),
    },
    // No better direction: less CPU for the same work is cheaper, but a pool that uses more
    // of the cores on a CPU-bound workload is doing its job. Comparisons report the ratio only.
    MetricDef {
        name: "cpu_percent",
        better: Better::Neither,
        paced_only: false,
        source: Source::Field(|r| r.metrics.cpu_percent),
    },
    // Cold start: spawning the worker to the end of the first task (drain of one task).
    MetricDef {
        name: "processing_time_from_spawn_seconds",
        better: Better::Lower,
        paced_only: false,
        source: Source::Field(|r| Some(r.metrics.processing_time_from_spawn_seconds)),
    },
];

/// A run counts only when it is exact (every task completed once: none lost, none
/// duplicated), no task failed, and its `errors` list is empty (workload checks such as the
/// HTTP request count, and the configuration-verified check, write there). The one rule
/// used by the summary, `compare` and the report; `Err` says why a run is excluded.
pub fn validity(r: &RunResult) -> Result<(), String> {
    let m = &r.metrics;
    let mut reasons = Vec::new();
    for (count, what) in [
        (m.lost, "lost"),
        (m.duplicated, "duplicated"),
        (m.failed, "failed"),
    ] {
        if count > 0 {
            reasons.push(format!("{count} {what}"));
        }
    }
    if !r.errors.is_empty() {
        reasons.push(format!("errors: {}", r.errors.join("; ")));
    }
    if reasons.is_empty() {
        Ok(())
    } else {
        Err(reasons.join(", "))
    }
}

fn is_valid(r: &RunResult) -> bool {
    validity(r).is_ok()
}

/// The size tokens of a variant label: concurrency `c10`, rate `at500`, stress step `n1000`
/// (the pool and client names are what a comparison is about; these must match).
fn size_tokens(variant: &str) -> Vec<&str> {
    let sized = |t: &str, prefix: &str| {
        t.strip_prefix(prefix).is_some_and(|rest| {
            !rest.is_empty() && rest.chars().all(|c| c.is_ascii_digit() || c == '.')
        })
    };
    variant
        .split('-')
        .filter(|t| sized(t, "c") || sized(t, "at") || sized(t, "n"))
        .collect()
}

/// Whether two variants differ only in their pool (or client): the same concurrency, rate
/// and stress step, e.g. `asyncio-c50` and `threads-c50`, not `threads-c10`.
pub fn same_sizes(variant_a: &str, variant_b: &str) -> bool {
    size_tokens(variant_a) == size_tokens(variant_b)
}

/// What must match for two groups to be compared, read from their runs' configuration so
/// runs whose labels carry no sizes (the plan's `"variant": "asyncio"`) pair correctly too.
#[derive(Debug, PartialEq)]
struct Sizes {
    workers: u32,
    task_count: u64,
    /// Paced rate in milli-tasks/s (None: drain or live).
    rate_milli: Option<i64>,
}

fn sizes(runs: &[&RunResult]) -> Option<Sizes> {
    let r = runs.first()?;
    Some(Sizes {
        workers: r.configuration.workers,
        task_count: r.configuration.task_count,
        rate_milli: r
            .metrics
            .paced_target_rate
            .map(|rate| (rate * 1000.0).round() as i64),
    })
}

/// The delivery semantics the runs state (None: not stated, as in the plan's format).
fn delivery<'a>(runs: &[&'a RunResult]) -> Option<&'a str> {
    runs.first()?.configuration.delivery.as_deref()
}

/// Like with like: same scenario, driver and mode, same concurrency, rate and size; and
/// across systems the same delivery semantics (AsyncTasQ's ack after the task is compared
/// with Celery's `acks_late`, not with its early ack). One system's variants may differ in
/// it: that pair shows what the guarantee costs.
fn like_for_like((ka, a): (&GroupKey, &[&RunResult]), (kb, b): (&GroupKey, &[&RunResult])) -> bool {
    let same_delivery = ka.system == kb.system
        || match (delivery(a), delivery(b)) {
            (Some(x), Some(y)) => x == y,
            _ => true,
        };
    (&ka.scenario, &ka.driver, &ka.mode) == (&kb.scenario, &kb.driver, &kb.mode)
        && same_sizes(&ka.variant, &kb.variant)
        && sizes(a) == sizes(b)
        && same_delivery
        && same_load(ka, kb)
}

/// The options of a variant label (`payload_orm_dict` in `threads-c10-payload_orm_dict`), by
/// name: the tokens holding `_` (pools and sizes hold none).
pub fn options(variant: &str) -> BTreeMap<&str, &str> {
    variant
        .split('-')
        .filter_map(|token| token.split_once('_'))
        .collect()
}

/// Whether two groups put the same load on their systems, as their workload judges it (a
/// payload: small against complex is no comparison; events on against off only within one
/// system, where the pair is their cost).
fn same_load(ka: &GroupKey, kb: &GroupKey) -> bool {
    crate::workloads::get(&ka.scenario).map_or(true, |workload| {
        workload.comparable(
            &options(&ka.variant),
            &options(&kb.variant),
            ka.system == kb.system,
        )
    })
}

pub fn metric(name: &str) -> Option<&'static MetricDef> {
    all_metrics().iter().find(|m| m.name == name)
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
    /// Invalid runs of the group (see [`validity`]), kept out of the statistics.
    pub excluded: Vec<String>,
}

impl Group {
    /// Run-to-run spread: stddev / mean (None with fewer than two runs or a zero mean).
    pub fn cv(&self) -> Option<f64> {
        (self.n >= 2 && self.mean != 0.0 && self.stddev.is_finite())
            .then(|| self.stddev / self.mean.abs())
    }
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
    /// Valid runs on each side.
    #[serde(default)]
    pub n_a: usize,
    #[serde(default)]
    pub n_b: usize,
    pub ratio: f64,
    pub ratio_ci95_low: f64,
    pub ratio_ci95_high: f64,
    pub welch_p: f64,
    pub mann_whitney_p: f64,
    /// Welch's p after Holm's correction over every comparison of the summary. Significant:
    /// this below 0.05 and Mann-Whitney's p below 0.05 too.
    #[serde(default)]
    pub p_holm: f64,
    #[serde(default)]
    pub significant: bool,
    pub cohens_d: f64,
    pub verdict: String,
}

/// A run left out of the statistics, and why.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Excluded {
    pub benchmark_id: String,
    pub group: String,
    pub reason: String,
}

/// The machine's run-to-run spread on one metric: the coefficient of variation
/// (stddev / mean) of each group over its repetitions, summarised across groups.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct NoiseFloor {
    pub metric: String,
    /// Groups with at least two valid runs.
    pub groups: usize,
    pub median_cv: f64,
    pub max_cv: f64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Summary {
    pub groups: Vec<Group>,
    pub comparisons: Vec<Comparison>,
    #[serde(default)]
    pub excluded: Vec<Excluded>,
    #[serde(default)]
    pub noise_floor: Vec<NoiseFloor>,
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

/// [`grouped`], valid runs only (groups with none left are dropped).
pub fn grouped_valid(results: &[RunResult]) -> BTreeMap<GroupKey, Vec<&RunResult>> {
    grouped(results)
        .into_iter()
        .map(|(k, runs)| (k, runs.into_iter().filter(|r| is_valid(r)).collect()))
        .filter(|(_, runs): &(GroupKey, Vec<&RunResult>)| !runs.is_empty())
        .collect()
}

/// Every measured run that fails [`validity`], with its reason.
pub fn excluded(results: &[RunResult]) -> Vec<Excluded> {
    grouped(results)
        .iter()
        .flat_map(|(key, runs)| {
            runs.iter().filter_map(move |r| {
                validity(r).err().map(|reason| Excluded {
                    benchmark_id: r.benchmark_id.clone(),
                    group: format!("{} {} {}", key.scenario, key.driver, key.label()),
                    reason,
                })
            })
        })
        .collect()
}

/// A metric's finite values over runs.
pub fn values(def: &MetricDef, runs: &[&RunResult]) -> Vec<f64> {
    runs.iter()
        .filter_map(|r| def.value(r))
        .filter(|v| v.is_finite())
        .collect()
}

pub fn summarize(results: &[RunResult]) -> Summary {
    let all = grouped(results);
    let valid = grouped_valid(results);
    let mut groups = Vec::new();
    for (key, runs) in &valid {
        let invalid: Vec<String> = all[key]
            .iter()
            .filter(|r| !is_valid(r))
            .map(|r| r.benchmark_id.clone())
            .collect();
        for def in all_metrics() {
            let (ids, values): (Vec<&str>, Vec<f64>) = runs
                .iter()
                .filter_map(|r| {
                    def.value(r)
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
                excluded: invalid.clone(),
            });
        }
    }
    Summary {
        comparisons: comparisons(&valid),
        noise_floor: noise_floor(&groups),
        excluded: excluded(results),
        groups,
    }
}

/// Per metric, the median and largest coefficient of variation over groups of two or more
/// runs: what differences smaller than this are worth on this machine (latency: paced
/// groups only, as everywhere it is judged).
pub fn noise_floor(groups: &[Group]) -> Vec<NoiseFloor> {
    all_metrics()
        .iter()
        .filter_map(|def| {
            let cvs: Vec<f64> = groups
                .iter()
                .filter(|g| g.metric == def.name && def.judged_in(&g.mode))
                .filter_map(Group::cv)
                .collect();
            (!cvs.is_empty()).then(|| NoiseFloor {
                metric: def.name.to_string(),
                groups: cvs.len(),
                median_cv: stats::median(&cvs),
                max_cv: cvs.iter().copied().fold(f64::NAN, f64::max),
            })
        })
        .collect()
}

/// Every like-for-like pair of groups (see [`like_for_like`]): systems against each other,
/// and one system's variants against each other (e.g. Celery threads vs solo at c1).
/// Latency only between paced groups. Significance is decided after Holm's correction
/// over the whole family.
fn comparisons(groups: &BTreeMap<GroupKey, Vec<&RunResult>>) -> Vec<Comparison> {
    let keys: Vec<&GroupKey> = groups.keys().collect();
    let mut out = Vec::new();
    let mut outcomes = Vec::new();
    for (i, ka) in keys.iter().enumerate() {
        for kb in &keys[i + 1..] {
            if !like_for_like((ka, &groups[*ka]), (kb, &groups[*kb])) {
                continue;
            }
            for def in all_metrics().iter().filter(|d| d.judged_in(&ka.mode)) {
                let (a, b) = (values(def, &groups[*ka]), values(def, &groups[*kb]));
                if a.is_empty() || b.is_empty() {
                    continue;
                }
                let c: Compare = stats::compare(
                    &a,
                    &b,
                    def.better,
                    &ka.label(),
                    &kb.label(),
                    BOOTSTRAP_SEED,
                    BOOTSTRAP_RESAMPLES,
                );
                outcomes.push((def.better, stats::a_ahead(&a, &b)));
                out.push(Comparison {
                    a: ka.system.clone(),
                    b: kb.system.clone(),
                    scenario: ka.scenario.clone(),
                    driver: ka.driver.clone(),
                    mode: ka.mode.clone(),
                    variant_a: ka.variant.clone(),
                    variant_b: kb.variant.clone(),
                    metric: def.name.to_string(),
                    n_a: a.len(),
                    n_b: b.len(),
                    ratio: c.ratio,
                    ratio_ci95_low: c.ratio_ci95_low,
                    ratio_ci95_high: c.ratio_ci95_high,
                    welch_p: c.welch_p,
                    mann_whitney_p: c.mann_whitney_p,
                    p_holm: f64::NAN,
                    significant: false,
                    cohens_d: c.cohens_d,
                    verdict: c.verdict,
                });
            }
        }
    }
    // Holm over the family's Welch p-values controls the family-wise error; Mann-Whitney
    // must agree at the raw level (a further filter, so the control still holds). Holm on
    // Mann-Whitney itself could never pass at 5 vs 5 in a family of more than four: its
    // smallest attainable p there is 0.012.
    let welch: Vec<f64> = out.iter().map(|c| c.welch_p).collect();
    for ((c, p_holm), (better, a_ahead)) in out.iter_mut().zip(stats::holm(&welch)).zip(outcomes) {
        c.p_holm = p_holm;
        c.significant = p_holm < stats::ALPHA && c.mann_whitney_p < stats::ALPHA;
        let outcome = Outcome {
            ratio: c.ratio,
            p: p_holm.max(c.mann_whitney_p),
            significant: c.significant,
            a_ahead,
            na: c.n_a,
            nb: c.n_b,
        };
        let (la, lb) = (
            format!("{} {} {}", c.a, c.variant_a, c.mode),
            format!("{} {} {}", c.b, c.variant_b, c.mode),
        );
        // The verdict's p: the larger of Holm-adjusted Welch and raw Mann-Whitney.
        c.verdict = stats::verdict(&outcome, better, &la, &lb);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A run in DESIGN.md's documented format (only its keys), with the given figures.
    fn run(id: &str, system: &str, variant: &str, mode: &str, workers: u32, tp: f64) -> RunResult {
        serde_json::from_value(serde_json::json!({
            "benchmark_id": id,
            "timestamp": "2026-11-27T10:00:00Z",
            "configuration": {"system": system, "driver": "redis", "workers": workers,
                "task_count": 2000, "scenario": "throughput", "mode": mode,
                "variant": variant, "profile": "ci"},
            "metrics": {"enqueue_time_seconds": 0.2, "processing_time_seconds": 2000.0 / tp,
                "throughput_tasks_per_sec": tp, "latency_mean_ms": tp / 10.0,
                "latency_p50_ms": tp / 10.0, "latency_p95_ms": tp / 5.0, "latency_p99_ms": tp / 2.0,
                "memory_rss_mb": 80.0, "cpu_percent": 70.0},
            "errors": [],
            "environment": {"host": "h", "cpus": 2, "python": "3.13.0",
                "versions": {}, "git_rev": "abc"}
        }))
        .unwrap()
    }

    /// The distinct (variant A, variant B) pairs the summary compared, in order.
    fn paired_variants(s: &Summary) -> Vec<(String, String)> {
        let pairs: std::collections::BTreeSet<(String, String)> = s
            .comparisons
            .iter()
            .map(|c| (c.variant_a.clone(), c.variant_b.clone()))
            .collect();
        pairs.into_iter().collect()
    }

    fn reps(system: &str, variant: &str, mode: &str, workers: u32, base: f64) -> Vec<RunResult> {
        (0..5)
            .map(|i| {
                let id = format!("{system}-{variant}-{mode}-r{i}");
                run(&id, system, variant, mode, workers, base + 7.0 * i as f64)
            })
            .collect()
    }

    #[test]
    fn groups_are_paired_only_at_the_same_load() {
        let key = |scenario: &str, system: &str, variant: &str| GroupKey {
            scenario: scenario.into(),
            driver: "redis".into(),
            system: system.into(),
            variant: variant.into(),
            mode: "drain".into(),
        };
        let ser = |system, variant| key("serialization", system, variant);
        // One payload through two serializers, or two systems: a comparison.
        assert!(same_load(
            &ser("celery", "threads-c10-payload_small-serializer_json"),
            &ser("celery", "threads-c10-payload_small-serializer_pickle")
        ));
        assert!(same_load(
            &ser("asynctasq", "asyncio-c10-payload_orm_dict"),
            &ser("celery", "threads-c10-payload_orm_dict-serializer_json")
        ));
        // Two payloads are not, even with every size equal (an option value holds `_`).
        assert!(!same_load(
            &ser("asynctasq", "asyncio-c10-payload_small"),
            &ser("asynctasq", "asyncio-c10-payload_complex")
        ));
        // One ORM model is one load however it travels (by AsyncTasQ's hook, by id, by value).
        assert!(same_load(
            &ser("asynctasq", "asyncio-c10-payload_orm"),
            &ser("celery", "threads-c10-payload_orm_dict-serializer_json")
        ));
        assert!(!same_load(
            &ser("asynctasq", "asyncio-c10-payload_orm"),
            &ser("celery", "threads-c10-payload_django_dict-serializer_json")
        ));
        assert!(!same_load(
            &ser("asynctasq", "asyncio-c1-micro_on-serializer_msgspec"),
            &ser("asynctasq", "asyncio-c10-payload_small")
        ));
        // Events: on against off within one system (their cost), never across systems.
        let ev = |system, variant| key("events", system, variant);
        assert!(same_load(
            &ev("celery", "threads-c10"),
            &ev("celery", "threads-c10-events_on")
        ));
        assert!(!same_load(
            &ev("asynctasq", "asyncio-c10"),
            &ev("celery", "threads-c10-events_on")
        ));
        // Workloads that name no option pair as before.
        assert!(same_load(
            &key("io", "asynctasq", "asyncio-c10-http_aiohttp"),
            &key("io", "celery", "threads-c10-http_requests")
        ));
    }

    #[test]
    fn variants_match_on_everything_but_the_pool() {
        assert!(same_sizes("asyncio-c50", "threads-c50"));
        assert!(!same_sizes("asyncio-c50", "threads-c10"));
        assert!(same_sizes("asyncio-c20-n1000", "threads-c20-n1000"));
        assert!(!same_sizes("asyncio-c20-n1000", "threads-c20-n50000"));
        assert!(same_sizes("asyncio-c10-at500", "threads-c10-at500"));
        assert!(!same_sizes("asyncio-c10-at500", "threads-c10-at300"));
        // A client or acks suffix is part of what is compared, not a size.
        assert!(same_sizes("asyncio-aiohttp-c10", "threads-requests-c10"));
    }

    #[test]
    fn validity_needs_exact_no_failed_and_no_errors() {
        let good = run("a", "asynctasq", "asyncio-c10", "drain", 10, 1000.0);
        assert_eq!(validity(&good), Ok(()));
        let mut failed = good.clone();
        failed.metrics.failed = 2;
        // The old is_exact looked at lost and duplicated only: this run counted.
        assert_eq!(validity(&failed), Err("2 failed".to_string()));
        let mut checked = good.clone();
        checked.errors = vec!["mock HTTP server answered 299 requests, expected 300".into()];
        assert!(validity(&checked).unwrap_err().contains("299 requests"));
        let mut lossy = good;
        (lossy.metrics.lost, lossy.metrics.duplicated) = (1, 3);
        assert_eq!(validity(&lossy), Err("1 lost, 3 duplicated".to_string()));
    }

    #[test]
    fn invalid_runs_are_excluded_with_their_reason() {
        let mut runs = reps("asynctasq", "asyncio-c10", "drain", 10, 1000.0);
        runs[0].metrics.failed = 1;
        runs[0].metrics.throughput_tasks_per_sec = Some(1e9);
        runs[1].errors = vec!["configuration not verified: concurrency".into()];
        let s = summarize(&runs);
        let tp = s
            .groups
            .iter()
            .find(|g| g.metric == "throughput_tasks_per_sec")
            .unwrap();
        assert_eq!(tp.n, 3, "two invalid runs left out");
        assert!(
            tp.max < 1e6,
            "the failed run's figure is not in the statistics"
        );
        assert_eq!(tp.excluded.len(), 2);
        let reasons: Vec<&str> = s.excluded.iter().map(|e| e.reason.as_str()).collect();
        assert_eq!(
            reasons,
            [
                "1 failed",
                "errors: configuration not verified: concurrency"
            ]
        );
    }

    #[test]
    fn only_like_configurations_are_paired() {
        let mut runs = reps("asynctasq", "asyncio-c10", "drain", 10, 3000.0);
        runs.extend(reps("celery", "threads-c10", "drain", 10, 800.0));
        runs.extend(reps("celery", "prefork-c2", "drain", 2, 600.0));
        runs.extend(reps("asynctasq", "asyncio-c10-at100", "paced", 10, 100.0));
        runs.extend(reps("celery", "threads-c10-at300", "paced", 10, 300.0));
        // Labels without sizes (the plan's format): the configuration's workers decide.
        runs.extend(reps("asynctasq", "asyncio", "live", 10, 2000.0));
        runs.extend(reps("celery", "threads", "live", 4, 700.0));
        let s = summarize(&runs);
        let pairs = paired_variants(&s);
        // Before: every pair on the same scenario, driver and mode (prefork-c2 against
        // asyncio-c10, asyncio vs threads at other concurrencies, 100/s against 300/s paced).
        assert_eq!(
            pairs,
            [("asyncio-c10".to_string(), "threads-c10".to_string())]
        );
    }

    #[test]
    fn systems_pair_only_at_the_same_delivery_semantics() {
        let stated = |mut runs: Vec<RunResult>, delivery: &str| {
            for r in &mut runs {
                r.configuration.delivery = Some(delivery.into());
            }
            runs
        };
        let mut runs = stated(
            reps("asynctasq", "asyncio-c10", "drain", 10, 3000.0),
            "at-least-once",
        );
        runs.extend(stated(
            reps("celery", "threads-c10", "drain", 10, 800.0),
            "at-most-once",
        ));
        runs.extend(stated(
            reps("celery", "threads-c10-acks_late", "drain", 10, 700.0),
            "at-least-once",
        ));
        let s = summarize(&runs);
        let pairs = paired_variants(&s);
        // Before: AsyncTasQ (ack after the task) was also paired with Celery's early ack.
        assert_eq!(
            pairs,
            [
                (
                    "asyncio-c10".to_string(),
                    "threads-c10-acks_late".to_string()
                ),
                (
                    "threads-c10".to_string(),
                    "threads-c10-acks_late".to_string()
                ),
            ]
        );
    }

    #[test]
    fn latency_is_compared_in_paced_runs_only_and_cpu_names_no_winner() {
        let mut runs = reps("asynctasq", "asyncio-c10", "drain", 10, 3000.0);
        runs.extend(reps("celery", "threads-c10", "drain", 10, 800.0));
        runs.extend(reps("asynctasq", "asyncio-c10-at300", "paced", 10, 300.0));
        let mut celery_paced = reps("celery", "threads-c10-at300", "paced", 10, 300.0);
        for r in &mut celery_paced {
            r.metrics.latency_p99_ms *= 3.0;
            r.metrics.cpu_percent = Some(90.0 + r.metrics.latency_p99_ms / 100.0);
        }
        runs.extend(celery_paced);
        let s = summarize(&runs);
        let metrics = |mode: &str| -> Vec<&str> {
            s.comparisons
                .iter()
                .filter(|c| c.mode == mode)
                .map(|c| c.metric.as_str())
                .collect()
        };
        assert!(!metrics("drain").iter().any(|m| m.starts_with("latency")));
        assert!(metrics("paced").contains(&"latency_p99_ms"));
        let p99 = s
            .comparisons
            .iter()
            .find(|c| c.mode == "paced" && c.metric == "latency_p99_ms")
            .unwrap();
        assert!(
            p99.verdict
                .starts_with("asynctasq asyncio-c10-at300 paced better than"),
            "{}",
            p99.verdict
        );
        let cpu = s
            .comparisons
            .iter()
            .find(|c| c.mode == "paced" && c.metric == "cpu_percent")
            .unwrap();
        assert!(cpu.significant, "{cpu:?}");
        assert!(
            !cpu.verdict.contains("better") || cpu.verdict.contains("neither direction"),
            "{}",
            cpu.verdict
        );
    }

    #[test]
    fn holm_decides_significance_over_the_whole_summary() {
        let mut runs = Vec::new();
        // Welch p just under 0.05 for one pair; many unrelated pairs make the family large.
        for (i, variant) in ["c1", "c2", "c3", "c4", "c5", "c6"].iter().enumerate() {
            let workers = i as u32 + 1;
            let a: Vec<RunResult> = [100.0, 104.0, 98.0, 103.0, 101.0]
                .iter()
                .enumerate()
                .map(|(j, tp)| {
                    run(
                        &format!("a{variant}{j}"),
                        "asynctasq",
                        &format!("asyncio-{variant}"),
                        "drain",
                        workers,
                        *tp,
                    )
                })
                .collect();
            let b: Vec<RunResult> = [104.0, 108.0, 102.0, 107.0, 106.0]
                .iter()
                .enumerate()
                .map(|(j, tp)| {
                    run(
                        &format!("b{variant}{j}"),
                        "celery",
                        &format!("threads-{variant}"),
                        "drain",
                        workers,
                        *tp,
                    )
                })
                .collect();
            runs.extend(a);
            runs.extend(b);
        }
        let s = summarize(&runs);
        let tp: Vec<&Comparison> = s
            .comparisons
            .iter()
            .filter(|c| c.metric == "throughput_tasks_per_sec")
            .collect();
        assert_eq!(tp.len(), 6);
        for c in &tp {
            assert!(
                c.welch_p < 0.05 && c.mann_whitney_p < 0.05,
                "raw: significant {c:?}"
            );
            assert!(c.p_holm > c.welch_p);
            assert_eq!(c.significant, c.p_holm < 0.05 && c.mann_whitney_p < 0.05);
        }
        // Without the correction each pair was "faster"; with it, none.
        assert!(
            tp.iter()
                .all(|c| !c.significant && c.verdict.starts_with("no significant difference")),
            "{tp:?}"
        );
    }

    #[test]
    fn the_noise_floor_is_the_median_cv_over_groups() {
        let mut runs = reps("asynctasq", "asyncio-c10", "drain", 10, 1000.0);
        runs.extend(reps("celery", "threads-c10", "drain", 10, 100.0));
        let s = summarize(&runs);
        let tp = s
            .noise_floor
            .iter()
            .find(|n| n.metric == "throughput_tasks_per_sec")
            .unwrap();
        let cv = |g: &Group| g.stddev / g.mean;
        let cvs: Vec<f64> = s
            .groups
            .iter()
            .filter(|g| g.metric == "throughput_tasks_per_sec")
            .map(cv)
            .collect();
        assert_eq!(tp.groups, 2);
        assert!((tp.median_cv - (cvs[0] + cvs[1]) / 2.0).abs() < 1e-12);
        assert!((tp.max_cv - cvs[0].max(cvs[1])).abs() < 1e-12);
    }
}
