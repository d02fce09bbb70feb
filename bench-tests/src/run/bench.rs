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
use crate::workloads::{self, Case};

/// What the user asked for, unvalidated (names as typed).
#[derive(Debug, Clone, Default)]
pub struct BenchRequest {
    pub profile: String,
    pub scenarios: Vec<String>,
    pub systems: Vec<String>,
    pub drivers: Vec<String>,
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
            profile.repetitions = repetitions;
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
        let scenarios: Vec<&str> = match request.scenarios.is_empty() {
            true => workloads::NAMES.to_vec(),
            false => request
                .scenarios
                .iter()
                .map(|s| workloads::check_name(s))
                .collect::<Result<Vec<_>>>()?,
        };
        let mut cases = Vec::new();
        let mut sweeps = Vec::new();
        for name in scenarios {
            let drivers = if chosen_drivers.is_empty() {
                workloads::default_drivers(name)
            } else {
                chosen_drivers.clone()
            };
            let chosen = |c: &Case| systems.is_empty() || systems.contains(&c.variant.system);
            for driver in drivers {
                cases.extend(
                    workloads::cases(&profile, name, driver, cpus)?
                        .into_iter()
                        .filter(chosen),
                );
                if name == "throughput" && profile.throughput.paced_rates.is_empty() {
                    sweeps.extend(
                        workloads::paced_templates(&profile, driver, cpus)
                            .into_iter()
                            .filter(chosen),
                    );
                }
            }
        }
        if cases.is_empty() {
            bail!("the selection matches no case");
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

    /// The brokers the plan's cases of `scenario` use, in order.
    pub fn drivers_of(&self, scenario: &str) -> Vec<Driver> {
        let mut drivers: Vec<Driver> = self
            .cases
            .iter()
            .filter(|c| c.scenario == scenario)
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

    /// Runs of the repetitions (the rate searches come on top).
    pub fn total_runs(&self) -> u64 {
        self.cases.len() as u64 * u64::from(self.profile.warmup + self.profile.repetitions)
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
pub fn execute(h: &Harness, plan: &BenchPlan, results_root: &Path) -> Result<BenchOutcome> {
    let _measuring = measurement_lock(true, Duration::from_secs(3600))?;
    let stamp = time::OffsetDateTime::now_utc().format(time::macros::format_description!(
        "[year][month][day]-[hour][minute][second]"
    ))?;
    let dir_id = format!("{stamp}-{}", plan.profile.name);
    let run_dir = RunDir::create(results_root, &dir_id)?;

    let bar = ProgressBar::new(plan.total_runs());
    bar.set_style(
        ProgressStyle::with_template("{elapsed_precise} [{bar:30}] {pos}/{len} runs  {msg}")
            .expect("valid template")
            .progress_chars("=> "),
    );
    let mut results = Vec::new();
    let mut failures = Vec::new();
    let rounds = plan.profile.warmup + plan.profile.repetitions;
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
    for round in 0..rounds {
        let warmup = round < plan.profile.warmup;
        let repetition = if warmup {
            round
        } else {
            round - plan.profile.warmup
        };
        let mut order: Vec<&Case> = cases.iter().collect();
        order.shuffle(&mut rand::rngs::StdRng::seed_from_u64(
            plan.seed.wrapping_add(u64::from(round)),
        ));
        if !warmup {
            measure_ceilings(h, plan, &run_dir, repetition, &bar, &mut failures);
        }
        for (position, case) in order.into_iter().enumerate() {
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
            match run::run_once(h, &request, &mut show) {
                Ok(out) => {
                    run_dir.write_run(&out.result)?;
                    if !warmup {
                        run_dir.write_histogram(
                            &out.result.benchmark_id,
                            &out.histograms.end_to_end,
                        )?;
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
    }
    bar.finish_and_clear();
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
    let drivers: Vec<Driver> = plan.drivers_of("drivers");
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
