//! Scenarios (workloads) and the cases they expand to: system × variant × mode.

pub mod behaviour;
pub mod mix;
pub mod mock_http;
pub mod stress;

use anyhow::{bail, Result};
use serde::Serialize;

use crate::profile::Profile;
use crate::provision::brokers::Driver;
use crate::systems::{System, Variant};

pub const NAMES: [&str; 7] = [
    "throughput",
    "drivers",
    "io",
    "cpu",
    "mixed",
    "stress",
    "coldstart",
];

/// The brokers a scenario runs on when the user names none.
pub fn default_drivers(scenario: &str) -> Vec<Driver> {
    // Every scenario but `drivers` measures on Redis unless told otherwise.
    match scenario {
        "drivers" => Driver::ALL.to_vec(),
        _ => vec![Driver::Redis],
    }
}

pub fn check_name(name: &str) -> Result<&'static str> {
    if let Some(known) = NAMES.iter().find(|n| **n == name) {
        return Ok(known);
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
    /// Start the workers, then produce on a fixed schedule (open loop) at `Case::rate`;
    /// latency is measured from each task's intended send time.
    Paced,
}

impl Mode {
    pub fn name(self) -> &'static str {
        match self {
            Mode::Drain => "drain",
            Mode::Live => "live",
            Mode::Paced => "paced",
        }
    }

    pub fn parse(name: &str) -> Result<Mode> {
        match name {
            "drain" => Ok(Mode::Drain),
            "live" => Ok(Mode::Live),
            "paced" => Ok(Mode::Paced),
            _ => bail!("unknown mode '{name}'; valid modes: drain, live, paced"),
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
    /// Paced mode: tasks per second the producer dispatches at.
    pub rate: Option<f64>,
    /// I/O tasks: the latency the mock HTTP server injects per request.
    pub http_latency_ms: Option<u64>,
    /// CPU tasks: pbkdf2 iterations per task.
    pub pbkdf2_iterations: Option<u64>,
    /// Mixed workload (`task` = "mixed"): the shares of each kind and the seed of their order.
    pub mix: Option<crate::workloads::mix::MixSpec>,
}

impl Case {
    /// A drain case of `task` with the profile's defaults for everything else.
    pub fn new(
        scenario: &'static str,
        driver: Driver,
        variant: Variant,
        task: &'static str,
        task_count: u64,
        profile: &Profile,
    ) -> Case {
        Case {
            scenario,
            driver,
            variant,
            mode: Mode::Drain,
            task_count,
            task,
            worker_processes: 1,
            producer_batch: profile.throughput.producer_batch,
            celery_prefetch_multiplier: profile.throughput.celery_prefetch_multiplier,
            rate: None,
            http_latency_ms: None,
            pbkdf2_iterations: None,
            mix: None,
        }
    }

    /// The variant, plus Celery's prefetch multiplier when it is not Celery's default (4),
    /// the rate of a paced run and the step size of a stress run (e.g. `threads-c10-pf1`,
    /// `asyncio-c10-at500`, `asyncio-c20-n10000`).
    pub fn variant_label(&self) -> String {
        let prefetch = match self.variant.system {
            System::Celery if self.celery_prefetch_multiplier != CELERY_DEFAULT_PREFETCH => {
                format!("-pf{}", self.celery_prefetch_multiplier)
            }
            _ => String::new(),
        };
        let rate = self.rate.map_or(String::new(), |r| format!("-at{r}"));
        let step = if self.scenario == "stress" {
            format!("-n{}", self.task_count)
        } else {
            String::new()
        };
        format!("{}{prefetch}{rate}{step}", self.variant.label())
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
    match scenario {
        "drivers" => return Ok(drivers_cases(profile, driver)),
        "io" => return Ok(io_cases(profile, driver)),
        "cpu" => return Ok(cpu_cases(profile, driver, cpus)),
        "coldstart" => return Ok(coldstart_cases(profile, driver)),
        "mixed" => return Ok(mixed_cases(profile, driver)),
        "stress" => return Ok(stress_cases(profile, driver)),
        _ => {}
    }
    let sizes = &profile.throughput;
    let mut cases = Vec::new();
    for variant in throughput_variants(profile, cpus) {
        for mode in &sizes.modes {
            let mut case = Case::new(
                scenario,
                driver,
                variant.clone(),
                "noop",
                sizes.task_count,
                profile,
            );
            case.mode = Mode::parse(mode)?;
            cases.push(case);
        }
    }
    // Open-loop latency at the profile's rates (none listed: `sweep` finds them).
    for template in paced_templates(profile, driver, cpus) {
        for &rate in &sizes.paced_rates {
            cases.push(crate::run::sweep::paced_case(&template, rate, profile));
        }
    }
    Ok(cases)
}

/// The open-loop cases before a rate is chosen: one variant per system at the same
/// concurrency (AsyncTasQ asyncio, Celery threads).
pub fn paced_templates(profile: &Profile, driver: Driver, cpus: u32) -> Vec<Case> {
    throughput_variants(profile, cpus)
        .into_iter()
        .filter(|v| matches!(v.pool.as_str(), "asyncio" | "threads"))
        .map(|variant| {
            let mut case = Case::new(
                "throughput",
                driver,
                variant,
                "noop",
                profile.throughput.task_count,
                profile,
            );
            case.mode = Mode::Paced;
            case
        })
        .collect()
}

/// Scenario 2: one HTTP GET per task with injected latency, at several concurrencies;
/// AsyncTasQ with a shared async client, Celery threads with a requests.Session per thread.
fn io_cases(profile: &Profile, driver: Driver) -> Vec<Case> {
    let sizes = &profile.io;
    let mut cases = Vec::new();
    for &concurrency in &sizes.concurrency {
        for variant in [
            Variant::new(System::Asynctasq, "asyncio", concurrency),
            Variant::new(System::Celery, "threads", concurrency),
        ] {
            let mut case = Case::new("io", driver, variant, "io_fetch", sizes.task_count, profile);
            case.http_latency_ms = Some(sizes.latency_ms);
            cases.push(case);
        }
    }
    cases
}

/// Scenario 3: pbkdf2 per task at concurrency = cores. AsyncTasQ as an AsyncTask body
/// (blocks the event loop), a SyncTask (thread pool) and a process task (process pool);
/// Celery prefork and threads.
fn cpu_cases(profile: &Profile, driver: Driver, cpus: u32) -> Vec<Case> {
    let sizes = &profile.cpu;
    [
        (Variant::new(System::Asynctasq, "async", cpus), "cpu_async"),
        (Variant::new(System::Asynctasq, "sync", cpus), "cpu_sync"),
        (
            Variant::new(System::Asynctasq, "process", cpus),
            "CpuProcess",
        ),
        (Variant::new(System::Celery, "prefork", cpus), "cpu"),
        (Variant::new(System::Celery, "threads", cpus), "cpu"),
    ]
    .into_iter()
    .map(|(variant, task)| {
        let mut case = Case::new("cpu", driver, variant, task, sizes.task_count, profile);
        case.pbkdf2_iterations = Some(sizes.pbkdf2_iterations);
        case
    })
    .collect()
}

/// Scenario 4: I/O, light and heavy CPU tasks in one seeded order, drained by AsyncTasQ
/// (asyncio), Celery threads and Celery prefork at the same concurrency.
fn mixed_cases(profile: &Profile, driver: Driver) -> Vec<Case> {
    let sizes = &profile.mixed;
    ["asyncio", "threads", "prefork"]
        .into_iter()
        .map(|pool| {
            let system = if pool == "asyncio" {
                System::Asynctasq
            } else {
                System::Celery
            };
            let variant = Variant::new(system, pool, sizes.concurrency);
            let mut case = Case::new("mixed", driver, variant, "mixed", sizes.task_count, profile);
            case.http_latency_ms = Some(profile.io.latency_ms);
            case.pbkdf2_iterations = Some(profile.cpu.pbkdf2_iterations);
            case.mix = Some(sizes.spec());
            case
        })
        .collect()
}

/// Scenario 6: a burst of each step's size while the worker runs (live), AsyncTasQ and
/// Celery threads at the same fixed concurrency; queue depth is read through each step.
fn stress_cases(profile: &Profile, driver: Driver) -> Vec<Case> {
    let sizes = &profile.stress;
    let mut cases = Vec::new();
    for &step in &sizes.steps {
        for variant in [
            Variant::new(System::Asynctasq, "asyncio", sizes.concurrency),
            Variant::new(System::Celery, "threads", sizes.concurrency),
        ] {
            let mut case = Case::new("stress", driver, variant, "noop", step, profile);
            case.mode = Mode::Live;
            cases.push(case);
        }
    }
    cases
}

/// Scenario 8: one task waiting before the worker starts; time from spawning the worker
/// to that task's end, per pool size.
fn coldstart_cases(profile: &Profile, driver: Driver) -> Vec<Case> {
    let mut cases = Vec::new();
    for &size in &profile.coldstart.pool_sizes {
        for variant in [
            Variant::new(System::Asynctasq, "asyncio", size),
            Variant::new(System::Celery, "threads", size),
            Variant::new(System::Celery, "prefork", size),
        ] {
            cases.push(Case::new("coldstart", driver, variant, "noop", 1, profile));
        }
    }
    cases
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
        celery_prefetch_multiplier: prefetch,
        ..Case::new("drivers", driver, variant, "noop", task_count, profile)
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
            "unknown scenario 'latency'; valid scenarios: throughput, drivers, io, cpu, mixed, stress, coldstart"
        );
    }

    #[test]
    fn stress_steps_are_distinct_groups_and_mixed_shares_one_sequence() {
        let profile = Profile::load(&crate::project_root(), "ci").unwrap();
        let stress = cases(&profile, "stress", Driver::Redis, 2).unwrap();
        assert_eq!(stress.len(), profile.stress.steps.len() * 2);
        let labels: Vec<String> = stress.iter().map(Case::label).collect();
        assert!(
            labels.contains(&"asynctasq-redis-stress-asyncio-c20-n500-live".to_string()),
            "{labels:?}"
        );
        let mixed = cases(&profile, "mixed", Driver::Redis, 2).unwrap();
        assert_eq!(mixed.len(), 3);
        assert!(mixed
            .iter()
            .all(|c| c.mix == mixed[0].mix && c.mix.is_some()));
    }

    #[test]
    fn ci_throughput_has_four_variants_in_two_modes() {
        let profile = Profile::load(&crate::project_root(), "ci").unwrap();
        let cases = cases(&profile, "throughput", Driver::Redis, 2).unwrap();
        let labels: Vec<String> = cases.iter().map(Case::label).collect();
        assert_eq!(
            cases.len(),
            8 + 4,
            "4 variants x 2 modes, 2 systems x 2 paced rates: {labels:?}"
        );
        assert!(
            labels.contains(&"asynctasq-redis-throughput-asyncio-c10-at100-paced".to_string()),
            "{labels:?}"
        );
        assert!(labels.contains(&"celery-redis-throughput-prefork-c2-drain".to_string()));
        assert!(labels.contains(&"asynctasq-redis-throughput-asyncio-c10-live".to_string()));
    }
}
