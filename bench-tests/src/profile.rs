//! Profiles: presets of sizes, repetitions and bounds, from `infra/profiles/NAME.toml`.

use std::path::Path;

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

pub const NAMES: [&str; 4] = ["ci", "local", "bare-metal", "aws"];

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    pub name: String,
    pub description: String,
    /// Measured repetitions per case.
    pub repetitions: u32,
    /// Repetitions run first and discarded (written under runs/warmup/).
    pub warmup: u32,
    /// Adaptive repetitions (all three or none): each case runs at least `min_repetitions`
    /// and at most `max_repetitions` times, and stops once the 95% CI half-width of its
    /// primary metric is within `target_ci_half_width` of its mean (0.05 = 5%). Absent:
    /// every case runs `repetitions` times.
    pub min_repetitions: Option<u32>,
    pub max_repetitions: Option<u32>,
    pub target_ci_half_width: Option<f64>,
    /// Seed for the order of cases in each repetition; random (and recorded) when absent.
    pub seed: Option<u64>,
    /// Upper bound for one repetition, from first enqueue to last task.
    pub run_timeout_secs: u64,
    /// A run fails when no task completes for this long.
    pub stall_timeout_secs: u64,
    /// Sampler interval for worker RSS/CPU.
    pub sample_interval_ms: u64,
    pub throughput: ThroughputSizes,
    pub drivers: DriverSizes,
    pub io: IoSizes,
    pub cpu: CpuSizes,
    pub coldstart: ColdstartSizes,
    pub mixed: MixedSizes,
    pub stress: StressSizes,
    pub serialization: crate::workloads::serialization::Sizes,
    pub pipeline: crate::workloads::pipeline::Sizes,
    pub events: crate::workloads::events::Sizes,
    pub fastapi: crate::workloads::fastapi::Sizes,
    pub api_overhead: crate::workloads::api_overhead::Sizes,
    /// Targets and claims checked against the summary (see `criteria`).
    #[serde(default)]
    pub criteria: Vec<crate::analysis::criteria::Criterion>,
}

/// Scenario `drivers`: one drain workload on every broker.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DriverSizes {
    pub task_count: u64,
    /// Smaller for SQS: an emulator slows down as its queue gets deep.
    pub sqs_task_count: u64,
    pub asynctasq_concurrency: u32,
    pub celery_threads_concurrency: u32,
    /// Celery prefetch multipliers measured on RabbitMQ, beside the default run.
    pub rabbitmq_celery_prefetch_sweep: Vec<u32>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ThroughputSizes {
    pub task_count: u64,
    /// `drain` (enqueue all, then start workers) and/or `live` (workers up, then produce).
    pub modes: Vec<String>,
    pub asynctasq_concurrency: u32,
    pub celery_threads_concurrency: u32,
    /// 0 means one per CPU core.
    pub celery_prefork_concurrency: u32,
    pub celery_prefetch_multiplier: u32,
    /// AsyncTasQ producer: dispatches awaited together with asyncio.gather (1 = one at a time).
    pub producer_batch: u32,
    /// Open-loop runs: tasks per second, each for `paced_seconds`. Empty: search each
    /// system's highest sustainable rate and measure at `paced_fractions` of it (`sweep`).
    pub paced_rates: Vec<f64>,
    pub paced_seconds: f64,
    /// Automatic sweep: the fractions of the highest sustainable rate to measure.
    pub paced_fractions: Vec<f64>,
}

/// Scenario `io`: one HTTP GET per task with injected latency.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct IoSizes {
    pub task_count: u64,
    pub concurrency: Vec<u32>,
    pub latency_ms: u64,
}

/// Scenario `cpu`: pbkdf2-HMAC-SHA256 per task.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct CpuSizes {
    pub task_count: u64,
    pub pbkdf2_iterations: u64,
}

/// Scenario `coldstart`: worker spawn to first task done.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ColdstartSizes {
    pub pool_sizes: Vec<u32>,
}

/// Scenario `mixed`: I/O, light CPU and heavy CPU tasks in a seeded order. I/O tasks use
/// `io.latency_ms`, heavy ones `cpu.pbkdf2_iterations`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct MixedSizes {
    pub task_count: u64,
    /// Concurrency of every variant (AsyncTasQ asyncio, Celery threads and prefork).
    pub concurrency: u32,
    pub io_percent: u32,
    pub light_percent: u32,
    pub heavy_percent: u32,
    /// Seed of the order of kinds (recorded in each result with the sequence's fingerprint).
    pub seed: u64,
}

impl MixedSizes {
    pub fn spec(&self) -> crate::workloads::mixed::MixSpec {
        crate::workloads::mixed::MixSpec {
            io_percent: self.io_percent,
            light_percent: self.light_percent,
            heavy_percent: self.heavy_percent,
            seed: self.seed,
        }
    }
}

/// Scenario `stress`: one worker pool through a ramp of offered rates, each step produced
/// open loop for `step_seconds`, back to back; queue depth read through the ramp and its drain.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct StressSizes {
    /// Offered rate of each step, tasks/s, increasing.
    pub rates: Vec<f64>,
    /// How long each step offers its rate.
    pub step_seconds: f64,
    pub concurrency: u32,
}

/// Shortest step: the depth fit needs about four readings at the 250 ms depth interval.
pub const STRESS_MIN_STEP_SECONDS: f64 = 1.0;
pub const STRESS_MAX_STEP_SECONDS: f64 = 600.0;

impl StressSizes {
    /// Tasks each step sends: its rate times `step_seconds`, at least one.
    pub fn counts(&self) -> Vec<u64> {
        self.rates
            .iter()
            .map(|r| ((r * self.step_seconds).round() as u64).max(1))
            .collect()
    }

    /// Why the section cannot be used (the error names `file`, the key and the valid range).
    pub fn validate(&self, file: &str, run_timeout_secs: u64) -> Result<()> {
        let increasing = self.rates.windows(2).all(|w| w[0] < w[1]);
        if self.rates.is_empty()
            || !increasing
            || self.rates.iter().any(|r| !(r.is_finite() && *r > 0.0))
        {
            bail!(
                "{file}: stress.rates is {:?}; give offered rates in tasks/s, above 0 and increasing, e.g. [200.0, 1000.0, 3000.0]",
                self.rates
            );
        }
        if !(STRESS_MIN_STEP_SECONDS..=STRESS_MAX_STEP_SECONDS).contains(&self.step_seconds) {
            bail!(
                "{file}: stress.step_seconds is {}; give seconds in [{STRESS_MIN_STEP_SECONDS}, {STRESS_MAX_STEP_SECONDS}] (each step needs a few queue-depth readings)",
                self.step_seconds
            );
        }
        let ramp = self.rates.len() as f64 * self.step_seconds;
        if ramp >= run_timeout_secs as f64 {
            bail!(
                "{file}: the stress ramp lasts {ramp} s (stress.rates × stress.step_seconds), beyond run_timeout_secs = {run_timeout_secs}; shorten the ramp or raise run_timeout_secs"
            );
        }
        if self.concurrency == 0 {
            bail!("{file}: stress.concurrency is 0; give a pool size of 1 or more");
        }
        Ok(())
    }
}

impl Profile {
    /// Loads a built-in profile, `infra/profiles/<name>.toml` under `root`, or a profile
    /// of the user's own: a path to a TOML file of the same shape (e.g. a copy of
    /// `local.toml` with other sizes).
    pub fn load(root: &Path, name_or_path: &str) -> Result<Profile> {
        let (path, builtin) = if NAMES.contains(&name_or_path) {
            let file = format!("{name_or_path}.toml");
            (root.join("infra/profiles").join(file), true)
        } else if name_or_path.ends_with(".toml") || name_or_path.contains('/') {
            (std::path::PathBuf::from(name_or_path), false)
        } else {
            bail!(
                "unknown profile '{name_or_path}'; valid profiles: {}, or a path to a TOML file (e.g. a copy of infra/profiles/local.toml)",
                NAMES.join(", ")
            );
        };
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading profile {}", path.display()))?;
        let profile: Profile =
            toml::from_str(&text).with_context(|| format!("parsing profile {}", path.display()))?;
        if builtin && profile.name != name_or_path {
            bail!(
                "{} says name = '{}', expected '{name_or_path}'",
                path.display(),
                profile.name
            );
        }
        for criterion in &profile.criteria {
            criterion
                .validate()
                .with_context(|| format!("in {}", path.display()))?;
        }
        profile
            .mixed
            .spec()
            .validate()
            .with_context(|| format!("in {}", path.display()))?;
        profile
            .stress
            .validate(&path.display().to_string(), profile.run_timeout_secs)?;
        if let Some(bad) = profile
            .throughput
            .paced_fractions
            .iter()
            .find(|f| !(**f > 0.0 && **f <= 1.0))
        {
            bail!(
                "{}: throughput.paced_fractions holds {bad}; give fractions in (0, 1], e.g. [0.1, 0.5, 1.0]",
                path.display()
            );
        }
        for mode in &profile.throughput.modes {
            crate::workloads::Mode::parse(mode)
                .with_context(|| format!("in {}", path.display()))?;
        }
        profile
            .adaptive()
            .with_context(|| format!("in {}", path.display()))?;
        for workload in crate::workloads::REGISTRY {
            workload.validate_profile(&profile, &path.display().to_string())?;
        }
        Ok(profile)
    }

    /// The adaptive-repetition rule, checked: None when the profile sets none of its keys.
    pub fn adaptive(&self) -> Result<Option<Adaptive>> {
        let (min, max, target) = match (
            self.min_repetitions,
            self.max_repetitions,
            self.target_ci_half_width,
        ) {
            (None, None, None) => return Ok(None),
            (Some(min), Some(max), Some(target)) => (min, max, target),
            _ => bail!(
                "min_repetitions, max_repetitions and target_ci_half_width go together: set all three (e.g. 4, 10, 0.05) or none (fixed `repetitions`)"
            ),
        };
        // A CI needs two runs; a comparison can reach significance only from four on each side.
        if min < 2 {
            bail!("min_repetitions = {min} is out of range; give at least 2 (a CI needs two runs; 4 lets comparisons reach significance)");
        }
        if max < min || max > MAX_REPETITIONS_LIMIT {
            bail!(
                "max_repetitions = {max} is out of range; give from min_repetitions ({min}) to {MAX_REPETITIONS_LIMIT}"
            );
        }
        if !(target > 0.0 && target <= 1.0) {
            bail!(
                "target_ci_half_width = {target} is out of range; give a share of the mean in (0, 1], e.g. 0.05 for 5%"
            );
        }
        Ok(Some(Adaptive {
            min_repetitions: min,
            max_repetitions: max,
            target_ci_half_width: target,
        }))
    }

    /// Fixed repetitions (`--repetitions`): sets `repetitions` and drops any adaptive rule.
    pub fn fix_repetitions(&mut self, repetitions: u32) {
        self.repetitions = repetitions;
        self.min_repetitions = None;
        self.max_repetitions = None;
        self.target_ci_half_width = None;
    }
}

/// A sanity bound on `max_repetitions`: beyond it a typo (1000 for 10) would run for days.
pub const MAX_REPETITIONS_LIMIT: u32 = 100;

/// When `bench` stops repeating a case (see [`Profile::adaptive`]).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Adaptive {
    pub min_repetitions: u32,
    pub max_repetitions: u32,
    /// The 95% CI half-width as a share of the mean.
    pub target_ci_half_width: f64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_profile_loads() {
        let root = crate::project_root();
        for name in NAMES {
            let profile = Profile::load(&root, name).unwrap();
            assert!(
                profile.repetitions >= 1 && profile.throughput.task_count > 0,
                "{name}"
            );
        }
    }

    #[test]
    fn unknown_profile_lists_valid_ones() {
        let err = Profile::load(&crate::project_root(), "huge")
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "unknown profile 'huge'; valid profiles: ci, local, bare-metal, aws, or a path to a TOML file (e.g. a copy of infra/profiles/local.toml)"
        );
    }

    #[test]
    fn a_profile_of_the_users_own_loads_from_a_path() {
        let root = crate::project_root();
        let text = std::fs::read_to_string(root.join("infra/profiles/ci.toml"))
            .unwrap()
            .replace("name = \"ci\"", "name = \"mine\"")
            .replace("task_count = 2000", "task_count = 123");
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("mine.toml");
        std::fs::write(&path, text).unwrap();
        let profile = Profile::load(&root, path.to_str().unwrap()).unwrap();
        assert_eq!(
            (profile.name.as_str(), profile.throughput.task_count),
            ("mine", 123)
        );
        let missing = Profile::load(&root, "/nonexistent/p.toml").unwrap_err();
        assert!(format!("{missing:#}").contains("reading profile /nonexistent/p.toml"));
    }

    fn ci_with(min: Option<u32>, max: Option<u32>, target: Option<f64>) -> Profile {
        let mut profile = Profile::load(&crate::project_root(), "ci").unwrap();
        profile.min_repetitions = min;
        profile.max_repetitions = max;
        profile.target_ci_half_width = target;
        profile
    }

    #[test]
    fn no_adaptive_keys_means_fixed_repetitions() {
        assert_eq!(ci_with(None, None, None).adaptive().unwrap(), None);
        let rule = ci_with(Some(4), Some(10), Some(0.05)).adaptive().unwrap();
        assert_eq!(
            rule,
            Some(Adaptive {
                min_repetitions: 4,
                max_repetitions: 10,
                target_ci_half_width: 0.05
            })
        );
    }

    #[test]
    fn adaptive_keys_out_of_range_name_the_key_and_the_range() {
        let error = |min, max, target| {
            ci_with(min, max, target)
                .adaptive()
                .unwrap_err()
                .to_string()
        };
        assert!(error(Some(4), None, Some(0.05)).contains("set all three"));
        assert!(error(Some(1), Some(5), Some(0.05))
            .starts_with("min_repetitions = 1 is out of range; give at least 2"));
        assert_eq!(
            error(Some(4), Some(3), Some(0.05)),
            "max_repetitions = 3 is out of range; give from min_repetitions (4) to 100"
        );
        assert!(error(Some(4), Some(500), Some(0.05)).starts_with("max_repetitions = 500"));
        for bad in [0.0, -0.1, 1.5, f64::NAN] {
            assert!(
                error(Some(4), Some(10), Some(bad)).starts_with(&format!(
                    "target_ci_half_width = {bad} is out of range; give a share of the mean in (0, 1]"
                )),
                "{bad}"
            );
        }
    }

    #[test]
    fn fixed_repetitions_drop_the_adaptive_rule() {
        let mut profile = ci_with(Some(4), Some(10), Some(0.05));
        profile.fix_repetitions(2);
        assert_eq!(
            (profile.repetitions, profile.adaptive().unwrap()),
            (2, None)
        );
    }

    fn stress(rates: &[f64], step_seconds: f64) -> StressSizes {
        StressSizes {
            rates: rates.to_vec(),
            step_seconds,
            concurrency: 20,
        }
    }

    #[test]
    fn stress_sections_are_validated_with_the_file_key_and_range() {
        let err = |s: StressSizes| s.validate("p.toml", 180).unwrap_err().to_string();
        assert!(stress(&[100.0, 500.0], 3.0).validate("p.toml", 180).is_ok());
        for bad in [&[][..], &[500.0, 100.0], &[0.0, 100.0], &[f64::NAN]] {
            let e = err(stress(bad, 3.0));
            assert!(e.starts_with("p.toml: stress.rates is"), "{e}");
            assert!(e.contains("above 0 and increasing"), "{e}");
        }
        assert_eq!(
            err(stress(&[100.0], 0.5)),
            "p.toml: stress.step_seconds is 0.5; give seconds in [1, 600] (each step needs a few queue-depth readings)"
        );
        assert!(err(stress(&[1.0, 2.0, 3.0], 60.0)).contains("beyond run_timeout_secs = 180"));
        assert_eq!(stress(&[100.0, 2500.5], 2.0).counts(), [200, 5001]);
    }

    /// The adaptive rule may end early, but never below the runs a comparison needs.
    #[test]
    fn adaptive_profiles_keep_enough_runs_for_a_verdict() {
        let root = crate::project_root();
        let local = Profile::load(&root, "local").unwrap().adaptive().unwrap();
        assert!(local.is_some(), "local repeats adaptively");
        for name in NAMES {
            if let Some(rule) = Profile::load(&root, name).unwrap().adaptive().unwrap() {
                assert!(
                    rule.min_repetitions as usize
                        >= crate::analysis::stats::MIN_RUNS_FOR_SIGNIFICANCE,
                    "{name}: {rule:?}"
                );
            }
        }
    }
}
