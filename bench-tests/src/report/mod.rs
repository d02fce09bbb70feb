//! `report.md`, `summary.json`, `runs.csv` and `charts/*.svg` of a run directory, computed
//! from its raw runs only (so `cargo xtask report DIR` can regenerate them). Pure where it
//! can be: `markdown` and `charts` return text, `write` puts it on disk.

pub mod charts;
pub mod output;
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
    };
    std::fs::create_dir_all(dir.join("charts"))?;
    let chart_files = charts(results, &summary)?;
    for (name, svg) in &chart_files {
        std::fs::write(dir.join("charts").join(name), svg)?;
    }
    let names: Vec<String> = chart_files.into_iter().map(|(name, _)| name).collect();
    std::fs::write(
        dir.join("summary.json"),
        serde_json::to_string_pretty(&file)? + "\n",
    )?;
    std::fs::write(dir.join("report.md"), markdown(results, &file, &names))?;
    std::fs::write(dir.join("runs.csv"), csv(results)?)?;
    Ok(file)
}

/// Where a chart's file name comes from: scenario and driver.
fn place(key: &GroupKey) -> String {
    format!("{}-{}", key.scenario, key.driver)
}

fn mean_of<'a>(summary: &'a Summary, key: &GroupKey, metric: &str) -> Option<&'a Group> {
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
    let groups = summary::grouped(results);
    let mut by_place: BTreeMap<String, Vec<&GroupKey>> = BTreeMap::new();
    for key in groups.keys() {
        by_place.entry(place(key)).or_default().push(key);
    }
    let mut out = Vec::new();
    for (place, keys) in &by_place {
        let place_title = place.replacen('-', " on ", 1);
        let bars: Vec<Bar> = keys
            .iter()
            .filter_map(|k| mean_of(summary, k, "throughput_tasks_per_sec"))
            .map(|g| Bar {
                label: format!("{} {} {}", g.system, g.variant, g.mode),
                value: g.mean,
                ci_low: g.ci95_low,
                ci_high: g.ci95_high,
            })
            .collect();
        out.push((
            format!("throughput-{place}.svg"),
            charts::bars_with_ci(
                &format!("Throughput, {place_title} (mean, 95% CI)"),
                "tasks/s",
                &bars,
            )?,
        ));
        let boxes: Vec<LatencyBox> = keys
            .iter()
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
        out.push((
            format!("latency-{place}.svg"),
            charts::latency_boxes(
                &format!(
                    "End-to-end latency, {place_title} (median run; drain/live: queueing artefact)"
                ),
                "ms",
                &boxes,
            )?,
        ));
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
        out.push((
            format!("rss-{place}.svg"),
            charts::time_series(&format!("Worker RSS over a run, {place_title}"), "MB", &rss)?,
        ));
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

fn fmt_p(p: f64) -> String {
    if p < 0.001 {
        "<0.001".into()
    } else {
        format!("{p:.3}")
    }
}

fn fmt_ci_digits(g: &Group, digits: usize) -> String {
    if g.n < 2 {
        format!("{:.digits$}", g.mean)
    } else {
        format!(
            "{:.digits$} [{:.digits$}, {:.digits$}]",
            g.mean, g.ci95_low, g.ci95_high
        )
    }
}

fn fmt_ci(g: &Group) -> String {
    if g.n < 2 {
        format!("{:.1}", g.mean)
    } else {
        format!("{:.1} [{:.1}, {:.1}]", g.mean, g.ci95_low, g.ci95_high)
    }
}

/// Whether a comparison belongs in the executive summary: between systems at the same
/// concurrency (and stress step), or between each system's standard pools (throughput, drivers). Paced pairs
/// differ in rate and are read from the latency-vs-rate chart instead.
fn headline(c: &summary::Comparison) -> bool {
    // Cold start compares time to first task, in its own table, not throughput.
    c.mode != "paced"
        && c.scenario != "coldstart"
        && (matches!(c.scenario.as_str(), "throughput" | "drivers")
            || summary::same_sizes(&c.variant_a, &c.variant_b))
}

/// The Markdown report.
pub fn markdown(results: &[RunResult], file: &SummaryFile, chart_names: &[String]) -> String {
    let mut md = String::new();
    let groups = summary::grouped(results);
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
        "- Criteria: {} pass, {} fail, {} not measured (table below).",
        count("pass"),
        count("fail"),
        count("not-measured")
    );
    let inexact: Vec<&RunResult> = results
        .iter()
        .filter(|r| r.metrics.lost > 0 || r.metrics.duplicated > 0)
        .collect();
    if inexact.is_empty() {
        let _ = writeln!(
            md,
            "- Every run completed every task exactly once ({} runs).",
            results.len()
        );
    } else {
        for r in &inexact {
            let _ = writeln!(
                md,
                "- **{}**: {} lost, {} duplicated — excluded from statistics.",
                r.benchmark_id, r.metrics.lost, r.metrics.duplicated
            );
        }
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
        let version = |p: &str| env.versions.get(p).map_or("?", String::as_str);
        let _ = writeln!(md, "| | |\n|---|---|");
        let _ = writeln!(
            md,
            "| host | {} ({} CPUs, {} GB, {}) |",
            env.host, env.cpus, env.memory_gb, env.os
        );
        let _ = writeln!(md, "| Python | {} ({}) |", env.python, env.python_source);
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
            env.harness_version, env.git_rev
        );
    }
    let mut brokers: BTreeMap<&str, String> = BTreeMap::new();
    for r in results {
        brokers.entry(&r.configuration.driver).or_insert_with(|| {
            format!(
                "{} ({})",
                r.environment.broker_version, r.configuration.broker_source
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
         (1.5 IQR) flag outliers, which stay in the data. Systems are compared by the ratio of medians with a \
         seeded bootstrap 95% CI ({} resamples), Welch's t-test, Mann-Whitney U and Cohen's d; a difference is \
         called significant when both p-values are below 0.05. Latency is measured from each task's intended \
         enqueue time to its end; in drain and unpaced live runs it is a queueing artefact, not the system's latency.",
        summary::BOOTSTRAP_RESAMPLES
    );

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
        if scenario == "coldstart" {
            let _ = writeln!(md, "| system | variant | n | worker spawn to first task done, s (95% CI) | RSS MB |\n|---|---|---|---|---|");
            let all = Summary {
                groups: file.groups.clone(),
                comparisons: vec![],
            };
            for k in keys {
                if let (Some(t), Some(rss)) = (
                    mean_of(&all, k, "processing_time_from_spawn_seconds"),
                    mean_of(&all, k, "memory_rss_mb"),
                ) {
                    let _ = writeln!(
                        md,
                        "| {} | {} | {} | {} | {:.1} |",
                        k.system,
                        k.variant,
                        t.n,
                        fmt_ci_digits(t, 3),
                        rss.median
                    );
                }
            }
            continue;
        }
        let _ = writeln!(md, "| system | variant | mode | n | tasks/s (95% CI) | enqueue/s (95% CI) | p50 ms | p99 ms | RSS MB | CPU % | outliers |");
        let _ = writeln!(md, "|---|---|---|---|---|---|---|---|---|---|---|");
        for k in keys {
            let g = |m| {
                mean_of(
                    &Summary {
                        groups: file.groups.clone(),
                        comparisons: vec![],
                    },
                    k,
                    m,
                )
                .cloned()
            };
            let (Some(tp), Some(enq)) = (g("throughput_tasks_per_sec"), g("enqueue_rate_per_sec"))
            else {
                continue;
            };
            let med = |m| g(m).map_or(f64::NAN, |x| x.median);
            let _ = writeln!(
                md,
                "| {} | {} | {} | {} | {} | {} | {:.1} | {:.1} | {:.1} | {:.0} | {} |",
                k.system,
                k.variant,
                k.mode,
                tp.n,
                fmt_ci(&tp),
                fmt_ci(&enq),
                med("latency_p50_ms"),
                med("latency_p99_ms"),
                med("memory_rss_mb"),
                med("cpu_percent"),
                if tp.outliers.is_empty() {
                    "-".to_string()
                } else {
                    tp.outliers.join(", ")
                }
            );
        }
        match scenario.as_str() {
            "mixed" => mixed_section(&mut md, keys, &groups),
            "stress" => stress_section(&mut md, &file.stress, driver),
            "throughput" => sweep_section(&mut md, &file.sweeps, driver),
            _ => {}
        }
        let place = format!("{scenario}-{driver}");
        for name in chart_names
            .iter()
            .filter(|n| n.ends_with(&format!("-{place}.svg")))
        {
            let _ = writeln!(md, "\n![{name}](charts/{name})");
        }
        if let Some(ceiling) = file
            .ceilings
            .iter()
            .find(|c| &c.driver == driver && scenario == "drivers")
        {
            let ci = |mean: f64, low: f64, high: f64| {
                if ceiling.n < 2 {
                    format!("{mean:.0}/s")
                } else {
                    format!("{mean:.0}/s [{low:.0}, {high:.0}]")
                }
            };
            let _ = writeln!(
                md,
                "\nThe broker's own ceiling on this machine (Rust reference client, n={}: {}): enqueue {}, dequeue {}.\n",
                ceiling.n,
                ceiling.method,
                ci(ceiling.enqueue_per_sec, ceiling.enqueue_ci95_low, ceiling.enqueue_ci95_high),
                ci(ceiling.dequeue_per_sec, ceiling.dequeue_ci95_low, ceiling.dequeue_ci95_high)
            );
            let _ = writeln!(md, "| system | variant | tasks/s as a fraction of the broker's dequeue ceiling | enqueue/s as a fraction of its enqueue ceiling |\n|---|---|---|---|");
            for (system, variant, _mode, drain, enqueue) in &ceiling.fractions {
                let _ = writeln!(
                    md,
                    "| {system} | {variant} | {:.1}% | {:.1}% |",
                    drain * 100.0,
                    enqueue * 100.0
                );
            }
        }
        let pairs: Vec<&summary::Comparison> = file
            .comparisons
            .iter()
            .filter(|c| {
                &c.scenario == scenario
                    && &c.driver == driver
                    && matches!(
                        c.metric.as_str(),
                        "throughput_tasks_per_sec" | "enqueue_rate_per_sec"
                    )
            })
            .collect();
        if !pairs.is_empty() {
            let _ = writeln!(md, "\n| A | B | mode | metric | ratio A/B (95% CI) | Welch p | Mann-Whitney p | Cohen's d | verdict |");
            let _ = writeln!(md, "|---|---|---|---|---|---|---|---|---|");
            for c in pairs {
                let _ = writeln!(
                    md,
                    "| {} {} | {} {} | {} | {} | {:.2} [{:.2}, {:.2}] | {} | {} | {:.2} | {} |",
                    c.a,
                    c.variant_a,
                    c.b,
                    c.variant_b,
                    c.mode,
                    c.metric,
                    c.ratio,
                    c.ratio_ci95_low,
                    c.ratio_ci95_high,
                    fmt_p(c.welch_p),
                    fmt_p(c.mann_whitney_p),
                    c.cohens_d,
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
            (Some(x), _, _) => format!("{x:.2}"),
            _ => "-".into(),
        };
        let _ = writeln!(
            md,
            "| {} | {} | {} | {value} | **{}** |",
            v.name, v.claim, v.measured_on, v.status
        );
    }

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

/// Mixed runs: whether every system got the same sequence, and each kind's service time.
fn mixed_section(
    md: &mut String,
    keys: &[&GroupKey],
    groups: &BTreeMap<GroupKey, Vec<&RunResult>>,
) {
    let runs: Vec<&RunResult> = keys
        .iter()
        .flat_map(|k| groups[*k].iter().copied())
        .collect();
    let mut fingerprints: Vec<(&str, u64)> = runs
        .iter()
        .filter_map(|r| {
            Some((
                r.configuration.mix_fingerprint.as_deref()?,
                r.configuration.task_count,
            ))
        })
        .collect();
    fingerprints.sort();
    fingerprints.dedup();
    let spec = runs.iter().find_map(|r| r.configuration.mix.as_ref());
    match (fingerprints.as_slice(), spec) {
        ([(print, count)], Some(spec)) => {
            let _ = writeln!(
                md,
                "\nEvery run got the same {count} tasks in the same order: {}% I/O, {}% light CPU, {}% heavy CPU, \
                 seed {} (sequence fingerprint `{print}`).",
                spec.io_percent, spec.light_percent, spec.heavy_percent, spec.seed
            );
        }
        _ => {
            let _ = writeln!(
                md,
                "\n**The runs did not all get the same sequence** ({} fingerprints): compare with care.",
                fingerprints.len()
            );
        }
    }
    let _ = writeln!(
        md,
        "\n| system | variant | kind | tasks per run | service p50 ms | service p99 ms |\n|---|---|---|---|---|---|"
    );
    for k in keys {
        let runs = &groups[*k];
        let kinds: Vec<String> = runs
            .iter()
            .filter_map(|r| r.metrics.by_kind.as_ref())
            .flat_map(|m| m.keys().cloned())
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        for kind in kinds {
            let of = |f: fn(&crate::workloads::mixed::KindMetrics) -> f64| {
                let v: Vec<f64> = runs
                    .iter()
                    .filter_map(|r| r.metrics.by_kind.as_ref()?.get(&kind).map(f))
                    .collect();
                crate::analysis::stats::median(&v)
            };
            let _ = writeln!(
                md,
                "| {} | {} | {kind} | {:.0} | {:.2} | {:.2} |",
                k.system,
                k.variant,
                of(|m| m.expected as f64),
                of(|m| m.service_p50_ms),
                of(|m| m.service_p99_ms)
            );
        }
    }
}

/// Automatic rate searches: how each system's highest sustainable rate was found.
fn sweep_section(md: &mut String, sweeps: &[crate::run::sweep::SweepOutcome], driver: &str) {
    for sweep in sweeps.iter().filter(|s| s.driver == driver) {
        let probes: Vec<String> = sweep
            .probes
            .iter()
            .map(|p| {
                if p.sustainable {
                    format!("{:.0}/s sustained (p99 {:.1} ms)", p.rate, p.latency_p99_ms)
                } else {
                    format!("{:.0}/s not sustained ({})", p.rate, p.why)
                }
            })
            .collect();
        let _ = writeln!(
            md,
            "\n**{} {}: highest sustainable rate {:.0} tasks/s** (unpaced live estimate {:.0}/s; probes: {}). \
             Measured at {}.",
            sweep.system,
            sweep.variant,
            sweep.max_sustainable_rate,
            sweep.live_estimate,
            probes.join("; "),
            sweep
                .rates
                .iter()
                .map(|r| format!("{r:.0}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
}

/// Stress ramps: each step's figures, the saturation point and the highest sustained step.
fn stress_section(md: &mut String, ramps: &[crate::workloads::stress::Ramp], driver: &str) {
    use crate::workloads::stress::{DEPTH_R2_MIN, DEPTH_T_MIN, TOLERANCE};
    let opt = |v: Option<f64>, digits: usize| v.map_or("–".into(), |v| format!("{v:.digits$}"));
    for ramp in ramps.iter().filter(|r| r.driver == driver) {
        let _ = writeln!(
            md,
            "\n### Ramp: {} {} (one worker pool through every step, n = {})\n",
            ramp.system, ramp.variant, ramp.runs
        );
        let _ = writeln!(md, "| target tasks/s | offered tasks/s | completed tasks/s | depth slope tasks/s (R²) | latency p50 / p99 ms | producer lateness p99 ms | RSS MB at step end | RSS growth MB | saturated in | producer short in |");
        let _ = writeln!(md, "|---|---|---|---|---|---|---|---|---|---|");
        for s in &ramp.steps {
            let slope = match (s.depth_per_sec, s.depth_r2) {
                (Some(g), Some(r2)) => format!("{g:+.0} ({r2:.2})"),
                _ => "–".into(),
            };
            let _ = writeln!(
                md,
                "| {:.0} | {:.0} | {:.0} | {slope} | {} / {} | {:.1} | {} | {} | {}/{} | {}/{} |",
                s.target_rate,
                s.offered_rate,
                s.completion_rate,
                opt(s.latency_p50_ms, 1),
                opt(s.latency_p99_ms, 1),
                s.producer_lateness_p99_ms,
                opt(s.rss_mb, 1),
                opt(s.rss_growth_mb, 1),
                s.saturated_runs,
                s.n,
                s.producer_limited_runs,
                s.n,
            );
        }
        let at = |rate: Option<f64>| {
            rate.and_then(|r| ramp.step(r)).map(|s| {
                let short = if s.producer_short() {
                    ", the producer short of its target"
                } else {
                    ""
                };
                format!(
                    "the {:.0} tasks/s step (offered {:.0}/s, completed {:.0}/s{short})",
                    s.target_rate, s.offered_rate, s.completion_rate
                )
            })
        };
        let sustained = at(ramp.highest_sustained_rate)
            .unwrap_or_else(|| "none (the first step already saturated)".into());
        let _ = match (at(ramp.saturation_rate), ramp.producer_short_from) {
            (Some(saturated), _) => writeln!(
                md,
                "\n**Saturation point: {saturated}**. Highest sustained: {sustained}.{}",
                if split_between(ramp) {
                    " The repetitions split on the steps between."
                } else {
                    ""
                }
            ),
            (None, Some(short)) => writeln!(
                md,
                "\n**No saturation within what the producer could offer**: from the {short:.0} tasks/s step it fell short, \
                 offering at most {:.0}/s; the pool kept up, completing up to {:.0}/s. Highest sustained: {sustained}.",
                ramp.max_offered_rate, ramp.max_completion_rate
            ),
            (None, None) => writeln!(
                md,
                "\n**No step saturated**: the pool's capacity lies above the ramp. Highest sustained: {sustained}."
            ),
        };
        let _ = writeln!(
            md,
            "A step is saturated when {} {} completed less than the producer offered in the step's window by more than {:.0}% \
             and the queue depth grew over the step with a slope t-statistic of at least {DEPTH_T_MIN} and R² of at least {DEPTH_R2_MIN} \
             (saturated in most repetitions). \
             \"Offered\" is what the producer achieved; \"producer short\" marks a step it could not offer within {:.0}% of the target.",
            ramp.system,
            ramp.variant,
            TOLERANCE * 100.0,
            TOLERANCE * 100.0
        );
        if ramp.error_rate > 0.0 {
            let _ = writeln!(
                md,
                "The worst repetition lost, duplicated or failed {:.4} of its tasks.",
                ramp.error_rate
            );
        }
    }
}

/// Whether steps between the highest sustained and the saturated one split the repetitions.
fn split_between(ramp: &crate::workloads::stress::Ramp) -> bool {
    let index =
        |rate: Option<f64>| rate.and_then(|r| ramp.steps.iter().position(|s| s.target_rate == r));
    match (
        index(ramp.highest_sustained_rate),
        index(ramp.saturation_rate),
    ) {
        (Some(low), Some(high)) => high > low + 1,
        (None, Some(high)) => high > 0,
        _ => false,
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
        "cpu_percent",
        "completed",
        "lost",
        "duplicated",
        "message_bytes",
    ])?;
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
            m.enqueue_rate_per_sec.to_string(),
            m.throughput_tasks_per_sec.to_string(),
            m.processing_time_seconds.to_string(),
            m.latency_mean_ms.to_string(),
            m.latency_p50_ms.to_string(),
            m.latency_p95_ms.to_string(),
            m.latency_p99_ms.to_string(),
            m.memory_rss_mb.to_string(),
            m.cpu_percent.to_string(),
            m.completed.to_string(),
            m.lost.to_string(),
            m.duplicated.to_string(),
            m.message_bytes.map(|b| b.to_string()).unwrap_or_default(),
        ])?;
    }
    Ok(String::from_utf8(writer.into_inner()?)?)
}
