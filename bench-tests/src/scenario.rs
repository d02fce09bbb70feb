//! Scenarios (workloads) and the cases they expand to: system × variant × mode.

use anyhow::{bail, Result};
use serde::Serialize;

use crate::brokers::Driver;
use crate::profile::Profile;
use crate::systems::{System, Variant};

pub const NAMES: [&str; 2] = ["throughput", "drivers"];
/// Scenarios of the design that are not implemented yet.
pub const PLANNED: [&str; 5] = ["io", "cpu", "mixed", "stress", "coldstart"];

/// The brokers a scenario runs on when the user names none.
pub fn default_drivers(scenario: &str) -> Vec<Driver> {
    match scenario {
        "drivers" => Driver::ALL.to_vec(),
        _ => vec![Driver::Redis],
    }
}

pub fn check_name(name: &str) -> Result<&'static str> {
    if let Some(known) = NAMES.iter().find(|n| **n == name) {
        return Ok(known);
    }
    if PLANNED.contains(&name) {
        bail!(
            "scenario '{name}' is not implemented yet (planned); valid scenarios: {}",
            NAMES.join(", ")
        );
    }
    bail!(
        "unknown scenario '{name}'; valid scenarios: {}",
        NAMES.join(", ")
    )
}

/// Celery's own default `worker_prefetch_multiplier`.
pub const CELERY_DEFAULT_PREFETCH: u32 = 4;

/// How load is applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Enqueue all N, then start the workers: throughput and enqueue rate.
    Drain,
    /// Start the workers, then produce as fast as the producer can.
    Live,
}

impl Mode {
    pub fn name(self) -> &'static str {
        match self {
            Mode::Drain => "drain",
            Mode::Live => "live",
        }
    }

    pub fn parse(name: &str) -> Result<Mode> {
        match name {
            "drain" => Ok(Mode::Drain),
            "live" => Ok(Mode::Live),
            _ => bail!("unknown mode '{name}'; valid modes: drain, live"),
        }
    }
}

/// One configuration to measure.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Case {
    pub scenario: &'static str,
    pub driver: Driver,
    pub variant: Variant,
    pub mode: Mode,
    pub task_count: u64,
    /// The fixture task each produced message runs (`noop` unless a behaviour needs another).
    pub task: &'static str,
    /// Worker processes consuming the same queue (2+ checks that they never share a task).
    pub worker_processes: u32,
    pub producer_batch: u32,
    pub celery_prefetch_multiplier: u32,
}

impl Case {
    /// The variant, plus Celery's prefetch multiplier when it is not Celery's default (4).
    pub fn variant_label(&self) -> String {
        match self.variant.system {
            System::Celery if self.celery_prefetch_multiplier != CELERY_DEFAULT_PREFETCH => {
                format!(
                    "{}-pf{}",
                    self.variant.label(),
                    self.celery_prefetch_multiplier
                )
            }
            _ => self.variant.label(),
        }
    }

    /// e.g. `asynctasq-redis-throughput-asyncio-c10-drain`.
    pub fn label(&self) -> String {
        format!(
            "{}-{}-{}-{}-{}",
            self.variant.system,
            self.driver,
            self.scenario,
            self.variant_label(),
            self.mode.name()
        )
    }
}

/// The variants of the throughput scenario: AsyncTasQ asyncio; Celery threads, prefork, solo.
pub fn throughput_variants(profile: &Profile, cpus: u32) -> Vec<Variant> {
    let sizes = &profile.throughput;
    let prefork = if sizes.celery_prefork_concurrency == 0 {
        cpus
    } else {
        sizes.celery_prefork_concurrency
    };
    vec![
        Variant::new(System::Asynctasq, "asyncio", sizes.asynctasq_concurrency),
        Variant::new(System::Celery, "threads", sizes.celery_threads_concurrency),
        Variant::new(System::Celery, "prefork", prefork),
        Variant::new(System::Celery, "solo", 1),
    ]
}

/// Every case of `scenario` on `driver` for the profile.
pub fn cases(profile: &Profile, scenario: &str, driver: Driver, cpus: u32) -> Result<Vec<Case>> {
    let scenario = check_name(scenario)?;
    if scenario == "drivers" {
        return Ok(drivers_cases(profile, driver));
    }
    let sizes = &profile.throughput;
    let mut cases = Vec::new();
    for variant in throughput_variants(profile, cpus) {
        for mode in &sizes.modes {
            cases.push(Case {
                scenario,
                driver,
                variant: variant.clone(),
                mode: Mode::parse(mode)?,
                task_count: sizes.task_count,
                task: "noop",
                worker_processes: 1,
                producer_batch: sizes.producer_batch,
                celery_prefetch_multiplier: sizes.celery_prefetch_multiplier,
            });
        }
    }
    Ok(cases)
}

/// Scenario 9: the same drain workload on every broker, one variant per system; on
/// RabbitMQ also Celery's prefetch multiplier swept (1, 4, 16).
fn drivers_cases(profile: &Profile, driver: Driver) -> Vec<Case> {
    let sizes = &profile.drivers;
    // moto slows down sharply as a queue gets deep: keep SQS runs small enough that the
    // emulator's own slowdown is not what is measured.
    let task_count = if driver == Driver::Sqs {
        sizes.sqs_task_count
    } else {
        sizes.task_count
    };
    let case = |variant: Variant, prefetch: u32| Case {
        scenario: "drivers",
        driver,
        variant,
        mode: Mode::Drain,
        task_count,
        task: "noop",
        worker_processes: 1,
        producer_batch: profile.throughput.producer_batch,
        celery_prefetch_multiplier: prefetch,
    };
    let celery_threads = Variant::new(System::Celery, "threads", sizes.celery_threads_concurrency);
    let mut cases = vec![
        case(
            Variant::new(System::Asynctasq, "asyncio", sizes.asynctasq_concurrency),
            CELERY_DEFAULT_PREFETCH,
        ),
        case(
            celery_threads.clone(),
            profile.throughput.celery_prefetch_multiplier,
        ),
    ];
    if driver == Driver::Rabbitmq {
        for prefetch in &sizes.rabbitmq_celery_prefetch_sweep {
            if *prefetch != profile.throughput.celery_prefetch_multiplier {
                cases.push(case(celery_threads.clone(), *prefetch));
            }
        }
    }
    cases
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_scenario_lists_valid_ones() {
        assert_eq!(
            check_name("latency").unwrap_err().to_string(),
            "unknown scenario 'latency'; valid scenarios: throughput, drivers"
        );
        assert!(check_name("io")
            .unwrap_err()
            .to_string()
            .contains("not implemented yet"));
    }

    #[test]
    fn ci_throughput_has_four_variants_in_two_modes() {
        let profile = Profile::load(&crate::project_root(), "ci").unwrap();
        let cases = cases(&profile, "throughput", Driver::Redis, 2).unwrap();
        let labels: Vec<String> = cases.iter().map(Case::label).collect();
        assert_eq!(cases.len(), 8, "{labels:?}");
        assert!(labels.contains(&"celery-redis-throughput-prefork-c2-drain".to_string()));
        assert!(labels.contains(&"asynctasq-redis-throughput-asyncio-c10-live".to_string()));
    }
}
