//! The stress ramp's conclusions: per system and pool, each step's figures over its
//! repetitions, and the saturation point — the first step whose queue depth grew linearly
//! while the producer was sending (tasks arrived faster than the pool finished them).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{Case, Mode, Workload};
use crate::profile::Profile;
use crate::provision::brokers::Driver;
use crate::result::RunResult;
use crate::systems::{System, Variant};

pub struct Stress;

impl Workload for Stress {
    fn name(&self) -> &'static str {
        "stress"
    }

    /// A burst of each step's size while the worker runs (live), AsyncTasQ and Celery
    /// threads at the same fixed concurrency; queue depth is read through each step.
    fn cases(&self, profile: &Profile, driver: Driver, _cpus: u32) -> Vec<Case> {
        let sizes = &profile.stress;
        let mut cases = Vec::new();
        for &step in &sizes.steps {
            for variant in [
                Variant::new(System::ASYNCTASQ, "asyncio", sizes.concurrency),
                Variant::new(System::CELERY, "threads", sizes.concurrency),
            ] {
                let mut case = Case::new(self.name(), driver, variant, "noop", step, profile);
                case.mode = Mode::Live;
                cases.push(case);
            }
        }
        cases
    }
}

/// One step of a ramp: medians over its repetitions.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Step {
    pub task_count: u64,
    pub n: usize,
    pub throughput_tasks_per_sec: f64,
    pub enqueue_rate_per_sec: f64,
    pub queue_depth_max: Option<f64>,
    /// Depth growth while the producer sent, tasks/s, and its R² (None: too short to sample).
    pub depth_growth_per_sec: Option<f64>,
    pub depth_growth_r2: Option<f64>,
    /// Repetitions whose depth grew linearly.
    pub linear_runs: usize,
    pub memory_rss_mb: f64,
    /// None when the steps were too short to hold two samples.
    pub memory_growth_mb: Option<f64>,
    /// The worst repetition's (lost + duplicated + failed) / tasks.
    pub error_rate: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Ramp {
    pub driver: String,
    pub system: String,
    /// Pool and concurrency, e.g. `asyncio-c20`.
    pub variant: String,
    pub steps: Vec<Step>,
    /// The smallest step at which most repetitions saw the depth grow linearly.
    pub saturation_step: Option<u64>,
}

fn median(values: Vec<f64>) -> Option<f64> {
    Some(crate::analysis::stats::median(&values)).filter(|m| !m.is_nan())
}

/// The ramps of the stress runs among `results` (other scenarios are ignored).
pub fn ramps(results: &[RunResult]) -> Vec<Ramp> {
    type RampKey = (String, String, String);
    let mut by_ramp: BTreeMap<RampKey, BTreeMap<u64, Vec<&RunResult>>> = BTreeMap::new();
    for r in results
        .iter()
        .filter(|r| r.configuration.scenario == "stress")
    {
        let c = &r.configuration;
        let step_suffix = format!("-n{}", c.task_count);
        let base = c.variant.strip_suffix(&step_suffix).unwrap_or(&c.variant);
        by_ramp
            .entry((c.driver.clone(), c.system.clone(), base.to_string()))
            .or_default()
            .entry(c.task_count)
            .or_default()
            .push(r);
    }
    by_ramp
        .into_iter()
        .map(|((driver, system, variant), steps)| {
            let steps: Vec<Step> = steps
                .into_iter()
                .map(|(task_count, runs)| {
                    let med = |f: fn(&RunResult) -> f64| {
                        median(runs.iter().map(|r| f(r)).collect()).unwrap_or(f64::NAN)
                    };
                    let opt = |f: fn(&RunResult) -> Option<f64>| {
                        median(runs.iter().filter_map(|r| f(r)).collect())
                    };
                    Step {
                        task_count,
                        n: runs.len(),
                        throughput_tasks_per_sec: med(|r| {
                            r.metrics.throughput_tasks_per_sec.unwrap_or(f64::NAN)
                        }),
                        enqueue_rate_per_sec: med(|r| r.metrics.enqueue_rate_per_sec),
                        queue_depth_max: opt(|r| r.metrics.queue_depth_max.map(|d| d as f64)),
                        depth_growth_per_sec: opt(|r| {
                            r.metrics.queue_depth_growth.map(|g| g.per_sec)
                        }),
                        depth_growth_r2: opt(|r| r.metrics.queue_depth_growth.map(|g| g.r2)),
                        linear_runs: runs
                            .iter()
                            .filter(|r| r.metrics.queue_depth_growth.is_some_and(|g| g.linear))
                            .count(),
                        memory_rss_mb: med(|r| r.metrics.memory_rss_mb),
                        memory_growth_mb: opt(|r| r.metrics.memory_growth_mb),
                        error_rate: runs
                            .iter()
                            .map(|r| r.metrics.error_rate)
                            .fold(0.0, f64::max),
                    }
                })
                .collect();
            let saturation_step = steps
                .iter()
                .find(|s| s.linear_runs * 2 > s.n)
                .map(|s| s.task_count);
            Ramp {
                driver,
                system,
                variant,
                steps,
                saturation_step,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::measure::depth::Growth;

    fn run(system: &str, step: u64, linear: Option<bool>, rss_growth: f64) -> RunResult {
        let text = include_str!("../../../fixtures/results/synthetic/runs/asynctasq-redis-throughput-asyncio-c10-drain-r0-synthetic.json");
        let mut r: RunResult = serde_json::from_str(text).unwrap();
        r.configuration.scenario = "stress".into();
        r.configuration.system = system.into();
        r.configuration.task_count = step;
        r.configuration.variant = format!("asyncio-c20-n{step}");
        r.metrics.memory_growth_mb = Some(rss_growth);
        r.metrics.queue_depth_growth = linear.map(|linear| Growth {
            points: 8,
            per_sec: if linear { 900.0 } else { 1.0 },
            r2: if linear { 0.99 } else { 0.1 },
            linear,
        });
        r
    }

    #[test]
    fn saturation_is_the_first_step_where_most_runs_grew_linearly() {
        let results = vec![
            run("asynctasq", 1000, None, 0.5),
            run("asynctasq", 10000, Some(false), 1.0),
            run("asynctasq", 10000, Some(true), 1.5),
            run("asynctasq", 10000, Some(false), 2.0),
            run("asynctasq", 50000, Some(true), 4.0),
            run("asynctasq", 100000, Some(true), 8.0),
        ];
        let ramps = ramps(&results);
        assert_eq!(ramps.len(), 1);
        let ramp = &ramps[0];
        assert_eq!(ramp.variant, "asyncio-c20");
        assert_eq!(
            ramp.steps.iter().map(|s| s.task_count).collect::<Vec<_>>(),
            [1000, 10000, 50000, 100000]
        );
        assert_eq!(ramp.steps[1].linear_runs, 1);
        assert_eq!(ramp.steps[1].memory_growth_mb, Some(1.5));
        assert_eq!(ramp.steps[0].depth_growth_per_sec, None);
        assert_eq!(ramp.saturation_step, Some(50000), "1 of 3 is not most");
    }

    #[test]
    fn a_ramp_that_never_grows_has_no_saturation_point() {
        let results = vec![
            run("celery", 1000, Some(false), 0.0),
            run("celery", 10000, Some(false), 0.0),
        ];
        assert_eq!(ramps(&results)[0].saturation_step, None);
    }
}
