//! `cargo xtask bench`: validates the request, then runs warm-up and measured
//! repetitions of every case (order shuffled per repetition with a recorded seed),
//! writing each result as it lands, and returns the summary.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};

use crate::harness::Harness;
use crate::profile::Profile;
use crate::provision::brokers::Driver;
use crate::report;
use crate::report::output::RunDir;
use crate::report::table::{self, SummaryRow};
use crate::result::RunResult;
use crate::run::{self, RunRequest};
use crate::systems::System;
use crate::workloads::{self, Case, Mode, Workload};

/// What the user asked for, unvalidated (names as typed).
#[derive(Debug, Clone, Default)]
pub struct BenchRequest {
    pub profile: String,
    pub scenarios: Vec<String>,
    pub systems: Vec<String>,
    pub drivers: Vec<String>,
    /// `drain`, `live`, `paced`: only cases of these modes.
    pub modes: Vec<String>,
    /// Variant labels (`asyncio-c10`, `prefork-c2`, ...) or pools (`prefork`): only cases
    /// whose variant is one of them.
    pub variants: Vec<String>,
    pub seed: Option<u64>,
    /// Paced (open-loop) rates, tasks/s, replacing the profile's; an empty list searches
    /// each system's highest sustainable rate instead (`--rates auto`).
    pub rates: Option<Vec<f64>>,
    /// Measured and warm-up repetitions, replacing the profile's.
    pub repetitions: Option<u32>,
    pub warmup: Option<u32>,
}

/// `--rates`: `auto` (an empty list: search) or tasks per second, comma-separated.
pub fn parse_rates(text: &str) -> Result<Vec<f64>> {
    if text.trim() == "auto" {
        return Ok(Vec::new());
    }
    text.split(',')
        .map(|part| {
            part.trim().parse::<f64>().map_err(|_| {
                anyhow::anyhow!(
                    "--rates: '{part}' is not a number; give tasks per second, e.g. --rates 250,500, or --rates auto"
                )
            })
        })
        .collect()
}

/// Whether `case`'s workload measures the broker's own ceiling beside it.
fn measures_ceiling(case: &Case) -> bool {
    workloads::get(case.scenario).is_ok_and(|w| w.measures_broker_ceiling())
}

/// `--variant` matches a case's variant label (`threads-c10`, `asyncio-c10-at500`), its
/// variant without rate or step (`asyncio-c10`), or its pool (`prefork`).
fn variant_matches(filter: &str, case: &Case) -> bool {
    filter == case.variant_label() || filter == case.variant.label() || filter == case.variant.pool
}

/// A validated request: the profile and the cases to run.
#[derive(Debug, Clone)]
pub struct BenchPlan {
    pub profile: Profile,
    pub cases: Vec<Case>,
    /// Paced cases whose rates are searched before the repetitions (`sweep`).
    pub sweeps: Vec<Case>,
    pub seed: u64,
}

impl BenchPlan {
    /// Checks every name (clear errors listing valid ones) before anything is provisioned.
    pub fn new(root: &Path, request: &BenchRequest, cpus: u32) -> Result<BenchPlan> {
        let mut profile = Profile::load(root, &request.profile)?;
        if let Some(repetitions) = request.repetitions {
            if repetitions == 0 {
                bail!("--repetitions must be at least 1");
            }
            profile.fix_repetitions(repetitions);
        }
        if let Some(warmup) = request.warmup {
            profile.warmup = warmup;
        }
        if let Some(rates) = &request.rates {
            if let Some(bad) = rates.iter().find(|r| !(r.is_finite() && **r > 0.0)) {
                bail!("--rates: {bad} is not a rate; give tasks per second above 0, e.g. --rates 250,500, or --rates auto");
            }
            profile.throughput.paced_rates = rates.clone();
        }
        let systems = request
            .systems
            .iter()
            .map(|s| System::parse(s))
            .collect::<Result<Vec<_>>>()?;
        let chosen_drivers = request
            .drivers
            .iter()
            .map(|d| Driver::parse(d))
            .collect::<Result<Vec<_>>>()?;
        let modes = request
            .modes
            .iter()
            .map(|m| Mode::parse(m))
            .collect::<Result<Vec<_>>>()?;
        let scenarios: Vec<&dyn Workload> = match request.scenarios.is_empty() {
            true => workloads::REGISTRY.to_vec(),
            false => request
                .scenarios
                .iter()
                .map(|s| workloads::get(s))
                .collect::<Result<Vec<_>>>()?,
        };
        let chosen = |c: &Case| {
            (systems.is_empty() || systems.contains(&c.variant.system))
                && (modes.is_empty() || modes.contains(&c.mode))
                && (request.variants.is_empty()
                    || request.variants.iter().any(|v| variant_matches(v, c)))
        };
        let mut every = Vec::new();
        let mut cases = Vec::new();
        let mut sweeps = Vec::new();
        for workload in scenarios {
            let drivers = if chosen_drivers.is_empty() {
                workload.default_drivers()
            } else {
                chosen_drivers.clone()
            };
            for driver in drivers {
                let found = workload.cases(&profile, driver, cpus);
                every.extend(found.iter().cloned());
                cases.extend(found.into_iter().filter(&chosen));
                sweeps.extend(
                    workload
                        .rate_search_templates(&profile, driver, cpus)
                        .into_iter()
                        .filter(&chosen),
                );
            }
        }
        if let Some(unknown) = request
            .variants
            .iter()
            .find(|v| !every.iter().any(|c| variant_matches(v, c)))
        {
            let mut valid: Vec<String> = every.iter().map(|c| c.variant_label()).collect();
            valid.extend(every.iter().map(|c| c.variant.pool.clone()));
            valid.sort();
            valid.dedup();
            bail!(
                "unknown variant '{unknown}' for the chosen scenarios; valid variants: {}",
                valid.join(", ")
            );
        }
        if cases.is_empty() && sweeps.is_empty() {
            bail!("the selection matches no case; drop a --system, --driver, --mode or --variant filter");
        }
        let seed = request
            .seed
            .or(profile.seed)
            .unwrap_or_else(|| rand::thread_rng().gen());
        Ok(BenchPlan {
            profile,
            cases,
            sweeps,
            seed,
        })
    }

    /// The brokers whose own ceiling is measured: those of workloads that ask for it.
    pub fn ceiling_drivers(&self) -> Vec<Driver> {
        let mut drivers: Vec<Driver> = self
            .cases
            .iter()
            .filter(|c| measures_ceiling(c))
            .map(|c| c.driver)
            .collect();
        drivers.sort();
        drivers.dedup();
        drivers
    }

    /// The brokers the plan's cases use, in order.
    pub fn drivers(&self) -> Vec<Driver> {
        let mut drivers: Vec<Driver> = self.cases.iter().map(|c| c.driver).collect();
        drivers.sort();
        drivers.dedup();
        drivers
    }

    /// Runs of the repetitions at most (adaptive profiles: each case's maximum; the rate
    /// searches come on top).
    pub fn total_runs(&self) -> u64 {
        let measured = match self.profile.adaptive() {
            Ok(Some(a)) => a.max_repetitions,
            _ => self.profile.repetitions,
        };
        self.cases.len() as u64 * u64::from(self.profile.warmup + measured)
    }
}

pub struct BenchOutcome {
    pub run_dir: PathBuf,
    pub results: Vec<RunResult>,
    pub rows: Vec<SummaryRow>,
    pub failures: Vec<String>,
    /// summary.json's content (statistics, comparisons, criteria); None if no run succeeded.
    pub summary: Option<report::SummaryFile>,
}

/// Runs the plan, writing into `results_root/<timestamp>-<profile>/`.
///
/// Rounds interleave the cases (order shuffled per round with the recorded seed). With a
/// fixed `repetitions` every case runs in every round; with the profile's adaptive rule a
/// case leaves the rounds once its primary metric's CI is narrow enough or it reached the
/// maximum (`stopping.json` says which, per case).
pub fn execute(h: &Harness, plan: &BenchPlan, results_root: &Path) -> Result<BenchOutcome> {
    let _measuring = measurement_lock(true, Duration::from_secs(3600))?;
    let stamp = time::OffsetDateTime::now_utc().format(time::macros::format_description!(
        "[year][month][day]-[hour][minute][second]"
    ))?;
    let dir_id = format!("{stamp}-{}", plan.profile.name);
    let run_dir = RunDir::create(results_root, &dir_id)?;
    run_dir.write_profile(&plan.profile)?;
    let adaptive = plan.profile.adaptive()?;
    let measured_rounds = adaptive.map_or(plan.profile.repetitions, |a| a.max_repetitions);

    let bar = ProgressBar::new(plan.total_runs());
    bar.set_style(
        ProgressStyle::with_template("{elapsed_precise} [{bar:30}] {pos}/{len} runs  {msg}")
            .expect("valid template")
            .progress_chars("=> "),
    );
    let mut results = Vec::new();
    let mut failures = Vec::new();
    let rounds = plan.profile.warmup + measured_rounds;
    let mut cases = plan.cases.clone();
    for template in &plan.sweeps {
        cases.extend(search_rates(
            h,
            plan,
            template,
            &run_dir,
            &bar,
            &mut failures,
        )?);
    }
    bar.set_length(cases.len() as u64 * u64::from(rounds));
    if let Some(rule) = adaptive {
        say(
            &bar,
            format!(
                "adaptive repetitions: each case {} to {} times, until the 95% CI of its primary metric is within ±{:.1}% of its mean",
                rule.min_repetitions,
                rule.max_repetitions,
                rule.target_ci_half_width * 100.0
            ),
        );
    }
    let mut progress: Vec<CaseProgress> = cases.iter().map(|_| CaseProgress::default()).collect();
    for round in 0..rounds {
        let warmup = round < plan.profile.warmup;
        let repetition = if warmup {
            round
        } else {
            round - plan.profile.warmup
        };
        // In a fixed plan every case stays active, so the order is the one it always was.
        let mut order: Vec<usize> = (0..cases.len())
            .filter(|&i| progress[i].stopped.is_none())
            .collect();
        if order.is_empty() {
            break;
        }
        order.shuffle(&mut rand::rngs::StdRng::seed_from_u64(
            plan.seed.wrapping_add(u64::from(round)),
        ));
        if !warmup && order.iter().any(|&i| measures_ceiling(&cases[i])) {
            measure_ceilings(h, plan, &run_dir, repetition, &bar, &mut failures);
        }
        for (position, &index) in order.iter().enumerate() {
            let case = &cases[index];
            let label = format!(
                "{}{} rep {repetition}",
                case.label(),
                if warmup { " (warm-up)" } else { "" }
            );
            let request = RunRequest {
                case,
                profile_name: &plan.profile.name,
                run_id: RunRequest::new_run_id(case, repetition)
                    + if warmup { "-warmup" } else { "" },
                repetition,
                warmup,
                order_seed: plan.seed,
                position: position as u32,
                timeout: Duration::from_secs(plan.profile.run_timeout_secs),
                stall: Duration::from_secs(plan.profile.stall_timeout_secs),
                sample_interval: Duration::from_millis(plan.profile.sample_interval_ms),
                extra_worker_env: Vec::new(),
            };
            let started = Instant::now();
            let mut show =
                |done: u64| bar.set_message(format!("{label}: {done}/{} tasks", case.task_count));
            let outcome = run::run(h, &request, &mut show);
            if !warmup {
                progress[index].attempts += 1;
            }
            match outcome {
                Ok(out) => {
                    run_dir.write_run(&out.result)?;
                    if !warmup {
                        run_dir.write_histogram(
                            &out.result.benchmark_id,
                            &out.histograms.end_to_end,
                        )?;
                        // Only valid runs count towards the precision, as in the summary.
                        let value = primary_value(case, &out.result);
                        if crate::analysis::summary::validity(&out.result).is_ok()
                            && value.is_finite()
                        {
                            progress[index].values.push(value);
                        }
                    }
                    say(
                        &bar,
                        format!(
                            "{label}: {:.0} tasks/s, enqueue {:.0}/s, {:.1}s{}",
                            out.result
                                .metrics
                                .throughput_tasks_per_sec
                                .unwrap_or(f64::NAN),
                            out.result.metrics.enqueue_rate_per_sec,
                            started.elapsed().as_secs_f64(),
                            if out.result.errors.is_empty() {
                                String::new()
                            } else {
                                format!(" — {}", out.result.errors.join("; "))
                            }
                        ),
                    );
                    results.push(out.result);
                }
                Err(e) => {
                    say(&bar, format!("{label}: FAILED: {e:#}"));
                    failures.push(format!("{label}: {e:#}"));
                }
            }
            bar.inc(1);
        }
        if let (Some(rule), false) = (adaptive, warmup) {
            for &index in &order {
                let p = &mut progress[index];
                if let Decision::Stop(stop) = decide(&p.values, p.attempts, &rule) {
                    say(
                        &bar,
                        format!(
                            "{}: {}",
                            cases[index].label(),
                            stop.describe(primary_metric(
                                cases[index].scenario,
                                cases[index].mode.name()
                            ))
                        ),
                    );
                    p.stopped = Some(stop);
                }
            }
            let active = progress.iter().filter(|p| p.stopped.is_none()).count() as u64;
            bar.set_length(bar.position() + active * u64::from(rounds - round - 1));
        }
    }
    bar.finish_and_clear();
    if let Some(rule) = adaptive {
        write_stopping(&run_dir.path, &rule, &cases, &progress)?;
    }
    let rows = table::summarize(&results);
    let summary = if results.is_empty() {
        None
    } else {
        let ceilings = report::load_ceilings(&run_dir.path)?;
        Some(report::write(
            &run_dir.path,
            &results,
            &ceilings,
            &plan.profile.criteria,
            Some(plan.seed),
            &failures,
        )?)
    };
    Ok(BenchOutcome {
        run_dir: run_dir.path,
        results,
        rows,
        failures,
        summary,
    })
}

/// One case's measured repetitions so far, under the adaptive rule.
#[derive(Debug, Default)]
struct CaseProgress {
    /// Its primary metric, one value per successful measured run.
    values: Vec<f64>,
    /// Measured runs tried, failed ones included (they count toward the maximum).
    attempts: u32,
    stopped: Option<Stop>,
}

/// The metric whose CI decides when a case has run often enough, and the one the README's
/// comparisons show: a workload's own (cold start: spawn to the task's end; a
/// micro-benchmark: its headline figure), else the mode's. Drain and live: throughput, the
/// number those runs exist for. Paced: the offered rate fixes the throughput, so latency
/// decides; p99, the noisiest of the latency figures the criteria check (mean, p95, p99), so
/// when it is precise the others are too.
pub fn primary_metric(scenario: &str, mode: &str) -> &'static str {
    if let Some(own) = workloads::get(scenario)
        .ok()
        .and_then(|w| w.primary_metric())
    {
        return own;
    }
    match mode {
        "paced" => "latency_p99_ms",
        _ => "throughput_tasks_per_sec",
    }
}

/// Run `r`'s value of the primary metric of its case (NaN: not measured).
fn primary_value(case: &Case, r: &RunResult) -> f64 {
    crate::analysis::summary::metric(primary_metric(case.scenario, case.mode.name()))
        .and_then(|m| m.value(r))
        .unwrap_or(f64::NAN)
}

/// Whether a case runs again.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    Continue,
    Stop(Stop),
}

/// Why a case stopped repeating, with the precision it stopped at.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Stop {
    /// `target-reached` or `maximum-reached`.
    pub reason: &'static str,
    /// Successful measured runs.
    pub runs: usize,
    pub mean: Option<f64>,
    /// The 95% CI half-width over the mean; None with fewer than two runs (no CI).
    pub relative_half_width: Option<f64>,
}

impl Stop {
    pub fn describe(&self, metric: &str) -> String {
        let width = self.relative_half_width.map_or("no CI".to_string(), |w| {
            format!("95% CI ±{:.1}% of the mean", w * 100.0)
        });
        match self.reason {
            "target-reached" => format!(
                "stopped after {} runs: target reached, {metric} {width}",
                self.runs
            ),
            _ => format!(
                "stopped after {} runs: maximum reached, {metric} {width}",
                self.runs
            ),
        }
    }
}

/// The stopping rule. A case runs at least `min_repetitions` times; it stops once the 95%
/// CI (Student t) of its values has a half-width within `target_ci_half_width` of their
/// mean, or once `attempts` (failed runs included) reaches `max_repetitions`.
pub fn decide(values: &[f64], attempts: u32, rule: &crate::profile::Adaptive) -> Decision {
    let runs = values.len();
    let d = (runs >= 2).then(|| crate::analysis::stats::describe(values));
    let mean = d.as_ref().map(|d| d.mean).or(values.first().copied());
    let relative_half_width = d.as_ref().map(|d| {
        let half = (d.ci95_high - d.ci95_low) / 2.0;
        // A mean of zero has no relative precision: never "reached".
        if d.mean.abs() > 0.0 && half.is_finite() {
            half / d.mean.abs()
        } else {
            f64::INFINITY
        }
    });
    let stop = |reason| {
        Decision::Stop(Stop {
            reason,
            runs,
            mean,
            relative_half_width,
        })
    };
    let reached = relative_half_width.is_some_and(|w| w <= rule.target_ci_half_width);
    if runs >= rule.min_repetitions as usize && reached {
        stop("target-reached")
    } else if attempts >= rule.max_repetitions {
        stop("maximum-reached")
    } else {
        Decision::Continue
    }
}

/// `stopping.json`: the rule and, per case, why it stopped (beside the raw runs, whose
/// schema stays as it is).
fn write_stopping(
    dir: &Path,
    rule: &crate::profile::Adaptive,
    cases: &[Case],
    progress: &[CaseProgress],
) -> Result<()> {
    let entries: Vec<serde_json::Value> = cases
        .iter()
        .zip(progress)
        .map(|(case, p)| {
            serde_json::json!({
                "case": case.label(),
                "metric": primary_metric(case.scenario, case.mode.name()),
                "attempts": p.attempts,
                "stop": p.stopped,
            })
        })
        .collect();
    let file = dir.join("stopping.json");
    let text = serde_json::to_string_pretty(&serde_json::json!({
        "rule": rule,
        "cases": entries,
    }))?;
    crate::report::output::write_atomic(&file, (text + "\n").as_bytes())
}

/// Finds `template`'s highest sustainable rate (its runs go to `runs/warmup/`, the search
/// to `sweeps/`) and returns the paced cases at the profile's fractions of it.
fn search_rates(
    h: &Harness,
    plan: &BenchPlan,
    template: &Case,
    run_dir: &RunDir,
    bar: &ProgressBar,
    failures: &mut Vec<String>,
) -> Result<Vec<Case>> {
    let label = format!(
        "{} {} rate search",
        template.variant.system,
        template.variant.label()
    );
    bar.set_message(label.clone());
    let mut written = Ok(());
    let mut on_run = |what: &str, result: &RunResult| {
        say(
            bar,
            format!(
                "{label}, {what}: {:.0} tasks/s, p99 {:.1} ms",
                result.metrics.throughput_tasks_per_sec.unwrap_or(f64::NAN),
                result.metrics.latency_p99_ms
            ),
        );
        if written.is_ok() {
            written = run_dir.write_run(result).map(|_| ());
        }
    };
    match crate::run::sweep::find_max(h, template, &plan.profile, &mut on_run) {
        Ok(outcome) => {
            written?;
            run_dir.write_sweep(&outcome)?;
            say(
                bar,
                format!(
                    "{label}: highest sustainable rate {:.0} tasks/s; measuring at {:?}",
                    outcome.max_sustainable_rate, outcome.rates
                ),
            );
            Ok(outcome
                .rates
                .iter()
                .map(|&rate| crate::run::sweep::paced_case(template, rate, &plan.profile))
                .collect())
        }
        Err(e) => {
            say(bar, format!("{label}: FAILED: {e:#}"));
            failures.push(format!("{label}: {e:#}"));
            Ok(Vec::new())
        }
    }
}

/// The broker's own ceiling, once per measured repetition, for every broker the drivers
/// scenario runs on: `ceilings/<driver>-r<rep>.json`.
fn measure_ceilings(
    h: &Harness,
    plan: &BenchPlan,
    run_dir: &RunDir,
    repetition: u32,
    bar: &ProgressBar,
    failures: &mut Vec<String>,
) {
    let sizes = &plan.profile.drivers;
    let drivers: Vec<Driver> = plan.ceiling_drivers();
    for driver in drivers {
        let messages = if driver == Driver::Sqs {
            sizes.sqs_task_count
        } else {
            sizes.task_count
        };
        bar.set_message(format!(
            "{driver} ceiling (Rust reference client), rep {repetition}"
        ));
        match crate::measure::ceiling::measure(h, driver, messages, sizes.asynctasq_concurrency) {
            Ok(ceiling) => {
                say(
                    bar,
                    format!(
                        "{driver} ceiling rep {repetition}: enqueue {:.0}/s, dequeue {:.0}/s",
                        ceiling.enqueue_per_sec, ceiling.dequeue_per_sec
                    ),
                );
                if let Err(e) = run_dir.write_ceiling(&ceiling, repetition) {
                    failures.push(format!("{driver} ceiling rep {repetition}: writing: {e:#}"));
                }
            }
            Err(e) => {
                say(
                    bar,
                    format!("{driver} ceiling rep {repetition}: FAILED: {e:#}"),
                );
                failures.push(format!("{driver} ceiling rep {repetition}: {e:#}"));
            }
        }
    }
}

/// A line above the progress bar, or on stderr when the bar is hidden (not a terminal).
fn say(bar: &ProgressBar, line: String) {
    if bar.is_hidden() {
        eprintln!("{line}");
    } else {
        bar.println(line);
    }
}

/// Measuring runs take the lock exclusively so they never overlap on a small machine;
/// correctness-only runs take it shared. Waits at most `limit`.
pub fn measurement_lock(exclusive: bool, limit: Duration) -> Result<File> {
    let dir = std::env::temp_dir().join("tasq-bench-locks");
    std::fs::create_dir_all(&dir)?;
    let path = dir.join("measurement.lock");
    let file = File::create(&path).with_context(|| format!("creating {}", path.display()))?;
    let deadline = Instant::now() + limit;
    loop {
        let got = if exclusive {
            file.try_lock()
        } else {
            file.try_lock_shared()
        };
        if got.is_ok() {
            return Ok(file);
        }
        if Instant::now() > deadline {
            bail!(
                "another benchmark held {} for {limit:?}; wait for it to finish",
                path.display()
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::profile::Adaptive;

    const RULE: Adaptive = Adaptive {
        min_repetitions: 3,
        max_repetitions: 6,
        target_ci_half_width: 0.05,
    };

    fn reason(d: &Decision) -> Option<&'static str> {
        match d {
            Decision::Continue => None,
            Decision::Stop(s) => Some(s.reason),
        }
    }

    #[test]
    fn a_case_runs_at_least_the_minimum_even_when_precise() {
        // Two identical values: a CI of zero width, yet below the minimum of 3.
        assert_eq!(decide(&[100.0, 100.0], 2, &RULE), Decision::Continue);
        assert_eq!(decide(&[], 0, &RULE), Decision::Continue);
    }

    #[test]
    fn a_case_stops_once_its_ci_is_within_the_target() {
        // mean 100, sd 1, n 3: half-width t(0.975, 2) * 1 / sqrt(3) = 4.303 / 1.732 = 2.48%.
        let d = decide(&[99.0, 100.0, 101.0], 3, &RULE);
        let Decision::Stop(stop) = d else {
            panic!("{d:?}")
        };
        assert_eq!((stop.reason, stop.runs), ("target-reached", 3));
        assert!((stop.relative_half_width.unwrap() - 0.024_843).abs() < 1e-5);
        assert_eq!(stop.mean, Some(100.0));
    }

    #[test]
    fn a_wide_ci_continues_until_the_maximum() {
        // mean 100, sd 10, n 3: ±24.8%, far from 5%.
        let wide = [90.0, 100.0, 110.0];
        assert_eq!(decide(&wide, 3, &RULE), Decision::Continue);
        let noisier = [90.0, 100.0, 110.0, 90.0, 100.0, 110.0];
        let d = decide(&noisier, 6, &RULE);
        assert_eq!(reason(&d), Some("maximum-reached"), "{d:?}");
        let Decision::Stop(stop) = d else {
            unreachable!()
        };
        assert!(stop.relative_half_width.unwrap() > 0.05);
    }

    #[test]
    fn failed_runs_count_toward_the_maximum() {
        // Six attempts, two of them failed: stop, even though only four values exist.
        let d = decide(&[90.0, 110.0, 90.0, 110.0], 6, &RULE);
        assert_eq!(reason(&d), Some("maximum-reached"));
        // One value only and the maximum reached: no CI to report.
        let Decision::Stop(stop) = decide(&[5.0], 6, &RULE) else {
            panic!()
        };
        assert_eq!((stop.runs, stop.relative_half_width), (1, None));
    }

    #[test]
    fn a_zero_mean_never_reaches_a_relative_target() {
        let d = decide(&[0.0, 0.0, 0.0], 3, &RULE);
        assert_eq!(d, Decision::Continue);
    }

    #[test]
    fn the_stop_says_why() {
        let Decision::Stop(stop) = decide(&[99.0, 100.0, 101.0], 3, &RULE) else {
            panic!()
        };
        assert_eq!(
            stop.describe("throughput_tasks_per_sec"),
            "stopped after 3 runs: target reached, throughput_tasks_per_sec 95% CI ±2.5% of the mean"
        );
    }
}
