//! `report.md`, `summary.json`, `runs.csv` and `charts/*.svg` of a run directory, computed
//! from its raw runs only (so `cargo xtask report DIR` can regenerate them). Pure where it
//! can be: `markdown` and `charts` return text, `write` puts it on disk.

pub mod charts;
pub mod output;
pub mod readme;
pub mod table;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use crate::analysis::criteria::{self, Verdict};
use crate::analysis::summary::{self, Group, GroupKey, Summary};
use crate::measure::ceiling::Ceiling;
use crate::result::RunResult;
use charts::{Bar, LatencyBox, Series};
use output::write_atomic;

/// Everything `summary.json` holds.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SummaryFile {
    pub run_id: String,
    pub profile: String,
    pub order_seed: Option<u64>,
    pub groups: Vec<Group>,
    pub comparisons: Vec<summary::Comparison>,
    pub criteria: Vec<Verdict>,
    /// Each broker's own ceiling (Rust reference client) and each system as a fraction of it.
    pub ceilings: Vec<CeilingSummary>,
    /// Runs that failed (no result file); from the bench that wrote the directory.
    pub failures: Vec<String>,
    /// Stress ramps: each step's figures and the saturation point.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub stress: Vec<crate::workloads::stress::Ramp>,
    /// Automatic rate searches: probes and the highest sustainable rate per system.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sweeps: Vec<crate::run::sweep::SweepOutcome>,
    /// Runs left out of the statistics, each with its reason (`summary::validity`).
    #[serde(default)]
    pub excluded: Vec<summary::Excluded>,
    /// The machine's run-to-run spread per metric (coefficient of variation over
    /// repetitions, median and largest across groups).
    #[serde(default)]
    pub noise_floor: Vec<summary::NoiseFloor>,
}

impl SummaryFile {
    /// The statistics part, for lookups by group.
    fn summary(&self) -> Summary {
        Summary {
            groups: self.groups.clone(),
            comparisons: self.comparisons.clone(),
            ..Summary::default()
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CeilingSummary {
    pub driver: String,
    pub method: String,
    pub n: usize,
    pub enqueue_per_sec: f64,
    pub enqueue_ci95_low: f64,
    pub enqueue_ci95_high: f64,
    pub dequeue_per_sec: f64,
    pub dequeue_ci95_low: f64,
    pub dequeue_ci95_high: f64,
    /// (system, variant, mode, throughput mean / ceiling dequeue mean, enqueue mean / ceiling enqueue mean).
    pub fractions: Vec<(String, String, String, f64, f64)>,
}

/// The `summary.json` a directory already has, if readable.
pub fn read_summary(dir: &Path) -> Option<SummaryFile> {
    serde_json::from_str(&std::fs::read_to_string(dir.join("summary.json")).ok()?).ok()
}

/// What only the bench that wrote a directory knows (its order seed and failed runs), from
/// its `summary.json`. Read field by field: statistics that do not exist are written as
/// `null` and would make the whole file unreadable as a [`SummaryFile`].
pub fn bench_facts(dir: &Path) -> (Option<u64>, Vec<String>) {
    let value: Option<serde_json::Value> = std::fs::read_to_string(dir.join("summary.json"))
        .ok()
        .and_then(|text| serde_json::from_str(&text).ok());
    let Some(value) = value else {
        return (None, Vec::new());
    };
    let seed = value.get("order_seed").and_then(serde_json::Value::as_u64);
    let failures = value
        .get("failures")
        .and_then(serde_json::Value::as_array)
        .map(|list| {
            list.iter()
                .filter_map(|f| f.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default();
    (seed, failures)
}

/// Reads `dir/sweeps/*.json` (none when the paced rates were given, not searched).
pub fn load_sweeps(dir: &Path) -> Result<Vec<crate::run::sweep::SweepOutcome>> {
    let Ok(entries) = std::fs::read_dir(dir.join("sweeps")) else {
        return Ok(Vec::new());
    };
    let mut sweeps = Vec::new();
    for entry in entries {
        let path = entry?.path();
        let text = std::fs::read_to_string(&path)?;
        sweeps.push(
            serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))?,
        );
    }
    sweeps.sort_by(|a: &crate::run::sweep::SweepOutcome, b| {
        (&a.driver, &a.system, &a.variant).cmp(&(&b.driver, &b.system, &b.variant))
    });
    Ok(sweeps)
}

/// Reads `dir/ceilings/*.json` (none when the drivers scenario did not run).
pub fn load_ceilings(dir: &Path) -> Result<Vec<Ceiling>> {
    let Ok(entries) = std::fs::read_dir(dir.join("ceilings")) else {
        return Ok(Vec::new());
    };
    let mut ceilings = Vec::new();
    for entry in entries {
        let path = entry?.path();
        let text = std::fs::read_to_string(&path)?;
        ceilings.push(
            serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))?,
        );
    }
    Ok(ceilings)
}

fn ceiling_summaries(ceilings: &[Ceiling], summary: &Summary) -> Vec<CeilingSummary> {
    let mut by_driver: BTreeMap<&str, Vec<&Ceiling>> = BTreeMap::new();
    for c in ceilings {
        by_driver.entry(&c.driver).or_default().push(c);
    }
    by_driver
        .into_iter()
        .map(|(driver, list)| {
            let enqueue = crate::analysis::stats::describe(
                &list.iter().map(|c| c.enqueue_per_sec).collect::<Vec<_>>(),
            );
            let dequeue = crate::analysis::stats::describe(
                &list.iter().map(|c| c.dequeue_per_sec).collect::<Vec<_>>(),
            );
            let fractions = summary
                .groups
                .iter()
                .filter(|g| {
                    g.scenario == "drivers"
                        && g.driver == driver
                        && g.metric == "throughput_tasks_per_sec"
                })
                .map(|g| {
                    let enq = summary
                        .groups
                        .iter()
                        .find(|e| {
                            e.metric == "enqueue_rate_per_sec"
                                && (&e.driver, &e.system, &e.variant, &e.mode, &e.scenario)
                                    == (&g.driver, &g.system, &g.variant, &g.mode, &g.scenario)
                        })
                        .map_or(f64::NAN, |e| e.mean);
                    (
                        g.system.clone(),
                        g.variant.clone(),
                        g.mode.clone(),
                        g.mean / dequeue.mean,
                        enq / enqueue.mean,
                    )
                })
                .collect();
            CeilingSummary {
                driver: driver.to_string(),
                method: list[0].method.clone(),
                n: list.len(),
                enqueue_per_sec: enqueue.mean,
                enqueue_ci95_low: enqueue.ci95_low,
                enqueue_ci95_high: enqueue.ci95_high,
                dequeue_per_sec: dequeue.mean,
                dequeue_ci95_low: dequeue.ci95_low,
                dequeue_ci95_high: dequeue.ci95_high,
                fractions,
            }
        })
        .collect()
}

/// The criteria a run directory is judged by: those of its `profile.toml` (written by
/// `bench`), else of the built-in profile the runs name. Only the criteria are read from a
/// written profile, so one written before a workload (and its profile section) existed
/// still loads.
pub fn criteria_of(dir: &Path, name: &str) -> Result<Vec<crate::analysis::criteria::Criterion>> {
    let written = dir.join(output::PROFILE_FILE);
    let context = || {
        format!(
            "loading the criteria of profile '{name}', which the runs in {} name",
            dir.display()
        )
    };
    if !written.exists() {
        let profile =
            crate::profile::Profile::load(&crate::project_root(), name).with_context(context)?;
        return Ok(profile.criteria);
    }
    #[derive(serde::Deserialize)]
    struct OnlyCriteria {
        #[serde(default)]
        criteria: Vec<crate::analysis::criteria::Criterion>,
    }
    let text = std::fs::read_to_string(&written).with_context(context)?;
    let parsed: OnlyCriteria = toml::from_str(&text)
        .with_context(|| format!("parsing {}", written.display()))
        .with_context(context)?;
    for criterion in &parsed.criteria {
        criterion
            .validate()
            .with_context(|| format!("in {}", written.display()))?;
    }
    Ok(parsed.criteria)
}

/// Reads `dir/runs/*.json` (not warm-ups), sorted by benchmark id.
pub fn load_runs(dir: &Path) -> Result<Vec<RunResult>> {
    let runs_dir = dir.join("runs");
    let mut results = Vec::new();
    for entry in
        std::fs::read_dir(&runs_dir).with_context(|| format!("reading {}", runs_dir.display()))?
    {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "json") {
            let text = std::fs::read_to_string(&path)?;
            results.push(
                serde_json::from_str::<RunResult>(&text)
                    .with_context(|| format!("parsing {}", path.display()))?,
            );
        }
    }
    if results.is_empty() {
        anyhow::bail!("{} holds no run results (runs/*.json)", runs_dir.display());
    }
    results.sort_by(|a, b| a.benchmark_id.cmp(&b.benchmark_id));
    Ok(results)
}

/// Computes the summary and verdicts, and writes summary.json, report.md, runs.csv and charts.
pub fn write(
    dir: &Path,
    results: &[RunResult],
    ceilings: &[Ceiling],
    criteria_list: &[criteria::Criterion],
    order_seed: Option<u64>,
    failures: &[String],
) -> Result<SummaryFile> {
    let summary = summary::summarize(results);
    let verdicts = criteria::evaluate(criteria_list, &summary);
    let run_id = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let file = SummaryFile {
        run_id,
        profile: results
            .first()
            .map(|r| r.configuration.profile.clone())
            .unwrap_or_default(),
        order_seed,
        groups: summary.groups.clone(),
        comparisons: summary.comparisons.clone(),
        criteria: verdicts,
        ceilings: ceiling_summaries(ceilings, &summary),
        failures: failures.to_vec(),
        stress: crate::workloads::stress::ramps(results),
        sweeps: load_sweeps(dir)?,
        excluded: summary.excluded.clone(),
        noise_floor: summary.noise_floor.clone(),
    };
    std::fs::create_dir_all(dir.join("charts"))?;
    let chart_files = charts(results, &summary)?;
    for (name, svg) in &chart_files {
        write_atomic(&dir.join("charts").join(name), svg.as_bytes())?;
    }
    let names: Vec<String> = chart_files.into_iter().map(|(name, _)| name).collect();
    let summary_json = serde_json::to_string_pretty(&file)? + "\n";
    write_atomic(&dir.join("summary.json"), summary_json.as_bytes())?;
    write_atomic(
        &dir.join("report.md"),
        markdown(results, &file, &names).as_bytes(),
    )?;
    write_atomic(&dir.join("runs.csv"), csv(results)?.as_bytes())?;
    Ok(file)
}

/// Where a chart's file name comes from: scenario and driver.
fn place(key: &GroupKey) -> String {
    format!("{}-{}", key.scenario, key.driver)
}

pub(crate) fn mean_of<'a>(summary: &'a Summary, key: &GroupKey, metric: &str) -> Option<&'a Group> {
    summary.groups.iter().find(|g| {
        g.metric == metric
            && (&g.scenario, &g.driver, &g.system, &g.variant, &g.mode)
                == (
                    &key.scenario,
                    &key.driver,
                    &key.system,
                    &key.variant,
                    &key.mode,
                )
    })
}

/// The charts of a run directory: (file name, SVG).
pub fn charts(results: &[RunResult], summary: &Summary) -> Result<Vec<(String, String)>> {
    let groups = summary::grouped_valid(results);
    let mut by_place: BTreeMap<String, Vec<&GroupKey>> = BTreeMap::new();
    for key in groups.keys() {
        by_place.entry(place(key)).or_default().push(key);
    }
    let mut out = Vec::new();
    for (place, keys) in &by_place {
        let place_title = place.replacen('-', " on ", 1);
        if let Some(workload) = keys
            .first()
            .and_then(|k| crate::workloads::get(&k.scenario).ok())
        {
            let own = ChartPlace {
                name: place,
                keys,
                groups: &groups,
                stats: summary,
            };
            out.extend(workload.charts(&own)?);
        }
        // One chart per mode: a paced run's throughput is its offered rate, not a capacity,
        // and does not belong beside a drain.
        let mut modes: Vec<&str> = keys.iter().map(|k| k.mode.as_str()).collect();
        modes.dedup();
        modes.sort();
        modes.dedup();
        for mode in modes {
            let bars: Vec<Bar> = keys
                .iter()
                .filter(|k| k.mode == mode)
                .filter_map(|k| mean_of(summary, k, "throughput_tasks_per_sec"))
                .map(|g| Bar {
                    label: format!("{} {} {}", g.system, g.variant, g.mode),
                    key: g.system.clone(),
                    value: g.mean,
                    ci_low: g.ci95_low,
                    ci_high: g.ci95_high,
                })
                .collect();
            if bars.is_empty() {
                continue;
            }
            out.push((
                format!("throughput-{mode}-{place}.svg"),
                charts::bars_with_ci(
                    &format!("Throughput, {place_title}, {mode} (mean, 95% CI)"),
                    "tasks/s",
                    &bars,
                )?,
            ));
        }
        // Latency only where it is the system's: paced (open-loop) runs.
        let boxes: Vec<LatencyBox> = keys
            .iter()
            .filter(|k| k.mode == "paced")
            .filter_map(|k| {
                let m = |metric| mean_of(summary, k, metric).map(|g| g.median);
                let max = groups[*k]
                    .iter()
                    .map(|r| r.metrics.latency_max_ms)
                    .fold(f64::NAN, f64::max);
                Some(LatencyBox {
                    label: k.label(),
                    p50: m("latency_p50_ms")?,
                    p95: m("latency_p95_ms")?,
                    p99: m("latency_p99_ms")?,
                    max,
                })
            })
            .collect();
        if !boxes.is_empty() {
            out.push((
                format!("latency-{place}.svg"),
                charts::latency_boxes(
                    &format!("End-to-end latency, {place_title}, paced runs (median run)"),
                    "ms",
                    &boxes,
                )?,
            ));
        }
        // Memory over time: each group's first measured run, from worker spawn.
        let rss: Vec<Series> = keys
            .iter()
            .filter_map(|k| groups[*k].first().map(|r| (k, r)))
            .map(|(k, r)| Series {
                name: k.label(),
                points: r
                    .timeseries
                    .iter()
                    .map(|p| (p.t_ms / 1000.0, p.rss_mb))
                    .collect(),
            })
            .collect();
        if rss.iter().any(|series| !series.points.is_empty()) {
            out.push((
                format!("rss-{place}.svg"),
                charts::time_series(&format!("Worker RSS over a run, {place_title}"), "MB", &rss)?,
            ));
        }
        let depth: Vec<Series> = keys
            .iter()
            .filter_map(|k| groups[*k].first().map(|r| (k, r)))
            .filter(|(_, r)| !r.queue_depth.is_empty())
            .map(|(k, r)| Series {
                name: k.label(),
                points: r
                    .queue_depth
                    .iter()
                    .map(|p| (p.t_ms / 1000.0, p.depth as f64))
                    .collect(),
            })
            .collect();
        if !depth.is_empty() {
            out.push((
                format!("depth-{place}.svg"),
                charts::time_series(
                    &format!("Queue depth over a run, {place_title}"),
                    "tasks waiting",
                    &depth,
                )?,
            ));
        }
        // Scaling: a system and pool measured at two or more concurrencies.
        let mut scaling: BTreeMap<String, Vec<(f64, f64)>> = BTreeMap::new();
        for k in keys
            .iter()
            .filter(|k| k.mode != "paced" && k.scenario != "stress")
        {
            if let (Some(g), Some(first)) = (
                mean_of(summary, k, "throughput_tasks_per_sec"),
                groups[*k].first(),
            ) {
                let name = format!("{} {} {}", k.system, first.configuration.pool, k.mode);
                scaling
                    .entry(name)
                    .or_default()
                    .push((f64::from(first.configuration.workers), g.mean));
            }
        }
        let mut series: Vec<Series> = scaling
            .into_iter()
            .filter(|(_, points)| points.len() >= 2)
            .map(|(name, mut points)| {
                points.sort_by(|a, b| a.0.total_cmp(&b.0));
                Series { name, points }
            })
            .collect();
        // I/O: what a pool of N waiting on L ms per task can do at best, N / L.
        let ideal: Vec<(f64, f64)> = keys
            .iter()
            .filter_map(|k| groups[*k].first())
            .filter_map(|r| {
                r.configuration.http_latency_ms.map(|ms| {
                    (
                        f64::from(r.configuration.workers),
                        f64::from(r.configuration.workers) * 1000.0 / ms as f64,
                    )
                })
            })
            .collect();
        if !series.is_empty() && !ideal.is_empty() {
            let mut points = ideal;
            points.sort_by(|a, b| a.0.total_cmp(&b.0));
            points.dedup();
            series.push(Series {
                name: "ideal (concurrency / latency)".into(),
                points,
            });
        }
        if !series.is_empty() {
            out.push((
                format!("scaling-{place}.svg"),
                charts::lines(
                    &format!("Throughput vs concurrency, {place_title}"),
                    "concurrency",
                    "tasks/s",
                    &series,
                )?,
            ));
        }
        // Stress: throughput and memory growth per step of each ramp.
        let ramps: Vec<crate::workloads::stress::Ramp> = crate::workloads::stress::ramps(
            &keys
                .iter()
                .flat_map(|k| groups[*k].iter().map(|r| (*r).clone()))
                .collect::<Vec<_>>(),
        );
        if !ramps.is_empty() {
            // x: the rate the producer achieved (median), so a producer-limited step
            // sits where it really was.
            let series = |f: fn(&crate::workloads::stress::Step) -> Option<f64>| -> Vec<Series> {
                ramps
                    .iter()
                    .map(|r| Series {
                        name: format!("{} {}", r.system, r.variant),
                        points: r
                            .steps
                            .iter()
                            .filter_map(|s| Some((s.offered_rate, f(s)?)))
                            .collect(),
                    })
                    .collect()
            };
            let mut completion = series(|s| Some(s.completion_rate));
            let top = ramps
                .iter()
                .flat_map(|r| r.steps.iter().map(|s| s.offered_rate))
                .fold(0.0, f64::max);
            completion.push(Series {
                name: "completion = offered (keeps up)".into(),
                points: vec![(0.0, 0.0), (top, top)],
            });
            out.push((
                format!("stress-completion-{place}.svg"),
                charts::lines(
                    &format!("Completion vs offered rate per ramp step, {place_title} (median)"),
                    "offered rate (tasks/s)",
                    "completion rate (tasks/s)",
                    &completion,
                )?,
            ));
            out.push((
                format!("stress-memory-{place}.svg"),
                charts::lines(
                    &format!("Worker RSS at the end of each ramp step, {place_title} (median)"),
                    "offered rate (tasks/s)",
                    "MB",
                    &series(|s| s.rss_mb),
                )?,
            ));
        }
        // Open loop: latency against the offered rate, per system and variant.
        let mut paced: BTreeMap<String, Vec<(f64, f64)>> = BTreeMap::new();
        for k in keys.iter().filter(|k| k.mode == "paced") {
            let (Some(first), Some(p50), Some(p99)) = (
                groups[*k].first(),
                mean_of(summary, k, "latency_p50_ms"),
                mean_of(summary, k, "latency_p99_ms"),
            ) else {
                continue;
            };
            let Some(rate) = first.metrics.paced_target_rate else {
                continue;
            };
            let base = format!(
                "{} {}-c{}",
                k.system, first.configuration.pool, first.configuration.workers
            );
            paced
                .entry(format!("{base} p50"))
                .or_default()
                .push((rate, p50.median));
            paced
                .entry(format!("{base} p99"))
                .or_default()
                .push((rate, p99.median));
        }
        if !paced.is_empty() {
            let series: Vec<Series> = paced
                .into_iter()
                .map(|(name, points)| Series { name, points })
                .collect();
            out.push((
                format!("paced-latency-{place}.svg"),
                charts::lines(
                    &format!("Open-loop latency vs offered rate, {place_title}"),
                    "offered rate (tasks/s)",
                    "latency (ms)",
                    &series,
                )?,
            ));
        }
    }
    Ok(out)
}

/// A number, or "–" where the statistic does not exist.
pub(crate) fn num(x: f64, digits: usize) -> String {
    if x.is_finite() {
        format!("{x:.digits$}")
    } else {
        DASH.to_string()
    }
}

/// What a report writes where a statistic does not exist or was not measured.
pub(crate) const DASH: &str = "–";

fn or_dash(text: &str) -> &str {
    if text.is_empty() {
        DASH
    } else {
        text
    }
}

fn fmt_p(p: f64) -> String {
    if p.is_nan() {
        DASH.into()
    } else if p < 0.001 {
        "<0.001".into()
    } else {
        format!("{p:.3}")
    }
}

/// Mean and 95% CI ("–" for a metric not measured; the mean alone with one run).
pub(crate) fn fmt_ci_digits(g: Option<&Group>, digits: usize) -> String {
    match g {
        None => DASH.into(),
        Some(g) if g.n < 2 || !(g.ci95_low.is_finite() && g.ci95_high.is_finite()) => {
            num(g.mean, digits)
        }
        Some(g) => format!(
            "{} [{}, {}]",
            num(g.mean, digits),
            num(g.ci95_low, digits),
            num(g.ci95_high, digits)
        ),
    }
}

fn fmt_ci(g: Option<&Group>) -> String {
    fmt_ci_digits(g, 1)
}

/// A ratio and its CI, or "–".
fn fmt_ratio(c: &summary::Comparison) -> String {
    if !c.ratio.is_finite() {
        return DASH.into();
    }
    if c.ratio_ci95_low.is_finite() && c.ratio_ci95_high.is_finite() {
        format!(
            "{:.2} [{:.2}, {:.2}]",
            c.ratio, c.ratio_ci95_low, c.ratio_ci95_high
        )
    } else {
        format!("{:.2}", c.ratio)
    }
}

/// Whether a comparison belongs in the executive summary: every comparison is like for
/// like now; paced throughput is the offered rate (read latency there instead), and cold
/// start compares time to first task in its own table.
fn headline(c: &summary::Comparison) -> bool {
    let own_table = crate::workloads::get(&c.scenario).is_ok_and(|w| !w.common_table());
    c.mode != "paced" && !own_table
}

/// What a workload's own charts read: its groups on one broker (`name` is the place,
/// `scenario-driver`: each chart's file name ends with `-{name}.svg`, which puts it under
/// that place's section of the report).
pub struct ChartPlace<'a> {
    pub name: &'a str,
    pub keys: &'a [&'a GroupKey],
    pub groups: &'a BTreeMap<GroupKey, Vec<&'a RunResult>>,
    pub stats: &'a Summary,
}

/// What a workload's own report section reads: its groups on one broker, and the run's
/// summary file (ceilings, ramps, sweeps).
pub struct Place<'a> {
    pub driver: &'a str,
    pub keys: &'a [&'a GroupKey],
    pub groups: &'a BTreeMap<GroupKey, Vec<&'a RunResult>>,
    pub stats: &'a Summary,
    pub file: &'a SummaryFile,
}

/// Links the charts of one place (`scenario-driver`) into the report.
fn embed_charts(md: &mut String, chart_names: &[String], place: &str) {
    for name in chart_names
        .iter()
        .filter(|n| n.ends_with(&format!("-{place}.svg")))
    {
        let _ = writeln!(md, "\n![{name}](charts/{name})");
    }
}

/// The Markdown report.
pub fn markdown(results: &[RunResult], file: &SummaryFile, chart_names: &[String]) -> String {
    let mut md = String::new();
    let groups = summary::grouped(results);
    let stats = file.summary();
    let env = results.first().map(|r| &r.environment);
    let _ = writeln!(md, "# tasq-bench report `{}`\n", file.run_id);

    // Executive summary: throughput verdicts between systems, criteria counts, exactness.
    let _ = writeln!(md, "## Executive summary\n");
    for c in file
        .comparisons
        .iter()
        .filter(|c| c.metric == "throughput_tasks_per_sec" && c.a != c.b && headline(c))
    {
        let _ = writeln!(
            md,
            "- {} on {} ({}): {} {} vs {} {} — {}",
            c.scenario, c.driver, c.mode, c.a, c.variant_a, c.b, c.variant_b, c.verdict
        );
    }
    let count = |s: &str| file.criteria.iter().filter(|v| v.status == s).count();
    let _ = writeln!(
        md,
        "- Criteria: {} pass, {} fail, {} inconclusive (95% CI across the threshold), {} too few runs, {} not measured (table below).",
        count(criteria::PASS),
        count(criteria::FAIL),
        count(criteria::INCONCLUSIVE),
        count(criteria::TOO_FEW_RUNS),
        count(criteria::NOT_MEASURED)
    );
    if file.excluded.is_empty() {
        let _ = writeln!(
            md,
            "- Every run was valid: every task completed exactly once, none failed, every workload check and configuration check passed ({} runs).",
            results.len()
        );
    } else {
        let _ = writeln!(
            md,
            "- **{} of {} runs excluded** from the statistics as invalid (reasons under \"Excluded runs\").",
            file.excluded.len(),
            results.len()
        );
    }
    if let Some(noise) = file
        .noise_floor
        .iter()
        .find(|n| n.metric == "throughput_tasks_per_sec")
    {
        let _ = writeln!(
            md,
            "- Noise floor: throughput varies by {:.1}% run to run (median coefficient of variation over {} groups; largest {:.1}%).",
            noise.median_cv * 100.0,
            noise.groups,
            noise.max_cv * 100.0
        );
    }
    if !file.failures.is_empty() {
        let _ = writeln!(
            md,
            "- {} run(s) failed and have no result: see the end of this report.",
            file.failures.len()
        );
    }

    let _ = writeln!(md, "\n## Method\n");
    if let Some(env) = env {
        let version = |p: &str| env.versions.get(p).map_or(DASH, String::as_str);
        let _ = writeln!(md, "| | |\n|---|---|");
        let _ = writeln!(
            md,
            "| host | {} ({} CPUs, {} GB, {}) |",
            env.host,
            env.cpus,
            num(env.memory_gb, 1),
            or_dash(&env.os)
        );
        let _ = writeln!(
            md,
            "| Python | {} ({}) |",
            env.python,
            or_dash(&env.python_source)
        );
        let _ = writeln!(
            md,
            "| packages | asynctasq {}, celery {}, kombu {}, redis-py {} |",
            version("asynctasq"),
            version("celery"),
            version("kombu"),
            version("redis")
        );
        let _ = writeln!(
            md,
            "| harness | tasq-bench {} at {} |",
            or_dash(&env.harness_version),
            env.git_rev
        );
    }
    let mut brokers: BTreeMap<&str, String> = BTreeMap::new();
    for r in results {
        brokers.entry(&r.configuration.driver).or_insert_with(|| {
            format!(
                "{} ({})",
                or_dash(&r.environment.broker_version),
                or_dash(&r.configuration.broker_source)
            )
        });
    }
    for (driver, what) in &brokers {
        let _ = writeln!(md, "| broker {driver} | {what} |");
    }
    let reps = groups.values().map(Vec::len).max().unwrap_or(0);
    let _ = writeln!(
        md,
        "| profile | {} ({} measured repetitions per case, warm-ups discarded) |",
        file.profile, reps
    );
    if let Some(seed) = file.order_seed {
        let _ = writeln!(
            md,
            "| order seed | {seed} (cases shuffled per repetition) |"
        );
    }
    let _ = writeln!(
        md,
        "\nStatistics over repetitions: mean with a 95% confidence interval (Student t), median, Tukey fences \
         (1.5 IQR) flag outliers, which stay in the data. Only valid runs count: exact (no task lost or duplicated), \
         no failed task, every workload and configuration check passed; the others are listed under \"Excluded runs\". \
         Like configurations only (same scenario, broker, mode, concurrency, rate and size) are compared, by the ratio of \
         medians with a seeded bootstrap 95% CI ({} resamples), Welch's t-test, Mann-Whitney U and Cohen's d; a \
         difference is called significant when Welch's p after Holm's correction over every comparison of this report ({} here) \
         and Mann-Whitney's p are both below 0.05 (a verdict's p is the larger of the two). When the run counts cannot reach p < 0.05 at all (e.g. 3 vs 3) \
         the verdict is \"cannot tell\". CPU% has no better direction (less CPU is cheaper, more is a pool using the \
         cores): its comparisons state the ratio only. A criterion passes only when its whole 95% CI lies on the passing \
         side of the threshold, fails only when the whole CI lies on the other side, and is otherwise inconclusive; \
         with one run it is \"too few runs\". Latency is measured from each task's intended enqueue time to its end; \
         only paced (open-loop) runs give the system's latency, so only they are compared, judged and charted; in drain \
         and unpaced live runs it is a queueing artefact and is shown marked as such.",
        summary::BOOTSTRAP_RESAMPLES,
        file.comparisons.len()
    );
    noise_section(&mut md, &file.noise_floor);

    // One section per scenario and driver.
    let mut places: BTreeMap<(String, String), Vec<&GroupKey>> = BTreeMap::new();
    for key in groups.keys() {
        places
            .entry((key.scenario.clone(), key.driver.clone()))
            .or_default()
            .push(key);
    }
    for ((scenario, driver), keys) in &places {
        let _ = writeln!(md, "\n## Scenario `{scenario}` on {driver}\n");
        let caveats: Vec<&String> = keys
            .iter()
            .flat_map(|k| groups[*k].iter().flat_map(|r| &r.configuration.caveats))
            .collect();
        let mut caveats: Vec<&String> = caveats.into_iter().collect();
        caveats.sort();
        caveats.dedup();
        for caveat in caveats {
            let _ = writeln!(md, "> {caveat}\n");
        }
        let workload = crate::workloads::get(scenario).ok();
        let place = Place {
            driver,
            keys,
            groups: &groups,
            stats: &stats,
            file,
        };
        if let Some(w) = workload.filter(|w| !w.common_table()) {
            md.push_str(&w.report_section(&place));
            embed_charts(&mut md, chart_names, &format!("{scenario}-{driver}"));
            continue;
        }
        let _ = writeln!(md, "| system | variant | mode | n | tasks/s (95% CI) | enqueue/s (95% CI) | p50 ms | p99 ms | RSS MB | PSS MB | CPU % | outliers |");
        let _ = writeln!(md, "|---|---|---|---|---|---|---|---|---|---|---|---|");
        for k in keys {
            let g = |m| mean_of(&stats, k, m);
            let measured: Vec<&Group> = summary::all_metrics()
                .iter()
                .filter_map(|d| g(d.name))
                .collect();
            let Some(n) = measured.iter().map(|x| x.n).max() else {
                continue; // every run of the group was excluded
            };
            let med = |m, digits| num(g(m).map_or(f64::NAN, |x| x.median), digits);
            // Drain/live latency is the queue's backlog, not the system's latency.
            let latency = |m| match (k.mode == "paced", g(m)) {
                (_, None) => DASH.to_string(),
                (true, Some(x)) => num(x.median, 1),
                (false, Some(x)) => format!("{} (artefact)", num(x.median, 1)),
            };
            let tp = g("throughput_tasks_per_sec");
            let _ = writeln!(
                md,
                "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                k.system,
                k.variant,
                k.mode,
                n,
                fmt_ci(tp),
                fmt_ci(g("enqueue_rate_per_sec")),
                latency("latency_p50_ms"),
                latency("latency_p99_ms"),
                med("memory_rss_mb", 1),
                med("memory_pss_mb", 1),
                med("cpu_percent", 0),
                match tp {
                    Some(tp) if !tp.outliers.is_empty() => tp.outliers.join(", "),
                    _ => DASH.to_string(),
                }
            );
        }
        if let Some(w) = workload {
            md.push_str(&w.report_section(&place));
        }
        embed_charts(&mut md, chart_names, &format!("{scenario}-{driver}"));
        let pairs: Vec<&summary::Comparison> = file
            .comparisons
            .iter()
            .filter(|c| {
                &c.scenario == scenario
                    && &c.driver == driver
                    && matches!(
                        c.metric.as_str(),
                        "throughput_tasks_per_sec" | "enqueue_rate_per_sec" | "latency_p99_ms"
                    )
            })
            .collect();
        if !pairs.is_empty() {
            let _ = writeln!(md, "\n| A | B | mode | metric | n | ratio A/B (95% CI) | Welch p | Holm p | Mann-Whitney p | Cohen's d | verdict |");
            let _ = writeln!(md, "|---|---|---|---|---|---|---|---|---|---|---|");
            for c in pairs {
                let _ = writeln!(
                    md,
                    "| {} {} | {} {} | {} | {} | {} vs {} | {} | {} | {} | {} | {} | {} |",
                    c.a,
                    c.variant_a,
                    c.b,
                    c.variant_b,
                    c.mode,
                    c.metric,
                    c.n_a,
                    c.n_b,
                    fmt_ratio(c),
                    fmt_p(c.welch_p),
                    fmt_p(c.p_holm),
                    fmt_p(c.mann_whitney_p),
                    num(c.cohens_d, 2),
                    c.verdict
                );
            }
        }
    }

    let _ = writeln!(md, "\n## Criteria\n");
    let _ = writeln!(
        md,
        "| criterion | claim | measured on | value (95% CI) | verdict |\n|---|---|---|---|---|"
    );
    for v in &file.criteria {
        let value = match (v.value, v.ci95_low, v.ci95_high) {
            (Some(x), Some(l), Some(h))
                if l.is_finite() && h.is_finite() && (h - l).abs() > 0.0 =>
            {
                format!("{x:.2} [{l:.2}, {h:.2}]")
            }
            (Some(x), _, _) => num(x, 2),
            _ => DASH.into(),
        };
        let _ = writeln!(
            md,
            "| {} | {} | {} | {value} | **{}** |",
            v.name, v.claim, v.measured_on, v.status
        );
    }

    excluded_section(&mut md, &file.excluded);

    let _ = writeln!(md, "\n## Raw data\n");
    let _ = writeln!(md, "- `runs/*.json`: {} measured runs, one file per repetition (`runs/warmup/`: discarded warm-ups)", results.len());
    let _ = writeln!(
        md,
        "- `runs.csv`: the same runs, one row each, for spreadsheets"
    );
    let _ = writeln!(
        md,
        "- `histograms/*.hgrm`: end-to-end latency per run, HdrHistogram percentile format (ms)"
    );
    let _ = writeln!(
        md,
        "- `summary.json`: every group's statistics, every comparison, every criterion"
    );
    for failure in &file.failures {
        let _ = writeln!(md, "- failed: `{}`", failure.lines().next().unwrap_or(""));
    }
    md
}

/// The run-to-run spread per metric: what a difference must exceed to mean something here.
fn noise_section(md: &mut String, noise: &[summary::NoiseFloor]) {
    if noise.is_empty() {
        let _ = writeln!(
            md,
            "\nNoise floor: not measured (no group has two valid runs)."
        );
        return;
    }
    let _ = writeln!(
        md,
        "\nNoise floor of this machine: each group's coefficient of variation (stddev / mean) over its repetitions, \
         across the groups with two or more valid runs.\n\n| metric | groups | median CV | largest CV |\n|---|---|---|---|"
    );
    for n in noise {
        let _ = writeln!(
            md,
            "| {} | {} | {}% | {}% |",
            n.metric,
            n.groups,
            num(n.median_cv * 100.0, 1),
            num(n.max_cv * 100.0, 1)
        );
    }
}

/// Every invalid run and why it was left out.
fn excluded_section(md: &mut String, excluded: &[summary::Excluded]) {
    if excluded.is_empty() {
        return;
    }
    let _ = writeln!(
        md,
        "\n## Excluded runs\n\nLeft out of every statistic, comparison and criterion:\n"
    );
    for e in excluded {
        let _ = writeln!(md, "- `{}` ({}): {}", e.benchmark_id, e.group, e.reason);
    }
}

/// One row per run: configuration and metrics, flat.
pub fn csv(results: &[RunResult]) -> Result<String> {
    let mut writer = ::csv::Writer::from_writer(Vec::new());
    writer.write_record([
        "benchmark_id",
        "scenario",
        "driver",
        "system",
        "variant",
        "mode",
        "workers",
        "task_count",
        "repetition",
        "enqueue_rate_per_sec",
        "throughput_tasks_per_sec",
        "processing_time_seconds",
        "latency_mean_ms",
        "latency_p50_ms",
        "latency_p95_ms",
        "latency_p99_ms",
        "memory_rss_mb",
        "memory_pss_mb",
        "cpu_percent",
        "completed",
        "lost",
        "duplicated",
        "failed",
        "message_bytes",
        "excluded_because",
    ])?;
    // Empty cell: not measured.
    let cell = |x: Option<f64>| {
        x.filter(|v| v.is_finite())
            .map_or(String::new(), |v| v.to_string())
    };
    for r in results {
        let (c, m) = (&r.configuration, &r.metrics);
        writer.write_record([
            r.benchmark_id.clone(),
            c.scenario.clone(),
            c.driver.clone(),
            c.system.clone(),
            c.variant.clone(),
            c.mode.clone(),
            c.workers.to_string(),
            c.task_count.to_string(),
            c.repetition.to_string(),
            cell(Some(m.enqueue_rate_per_sec)),
            cell(m.throughput_tasks_per_sec),
            cell(Some(m.processing_time_seconds)),
            cell(Some(m.latency_mean_ms)),
            cell(Some(m.latency_p50_ms)),
            cell(Some(m.latency_p95_ms)),
            cell(Some(m.latency_p99_ms)),
            cell(Some(m.memory_rss_mb)),
            cell(m.memory_pss_mb),
            cell(m.cpu_percent),
            m.completed.to_string(),
            m.lost.to_string(),
            m.duplicated.to_string(),
            m.failed.to_string(),
            m.message_bytes.map(|b| b.to_string()).unwrap_or_default(),
            summary::validity(r).err().unwrap_or_default(),
        ])?;
    }
    Ok(String::from_utf8(writer.into_inner()?)?)
}
