//! One configuration to measure (`Case`) and how its load is applied (`Mode`).

use anyhow::{bail, Result};
use serde::Serialize;

use crate::profile::Profile;
use crate::provision::brokers::Driver;
use crate::systems::celery::DEFAULT_PREFETCH as CELERY_DEFAULT_PREFETCH;
use crate::systems::{System, Variant};

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
    pub mix: Option<crate::workloads::mixed::MixSpec>,
    /// Stress ramp: the open-loop steps (tasks/s, tasks) produced back to back.
    pub schedule: Option<Vec<(f64, u64)>>,
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
            schedule: None,
        }
    }

    /// This case paced (open loop) at `rate` tasks per second.
    pub fn paced_at(mut self, rate: f64) -> Case {
        self.mode = Mode::Paced;
        self.rate = Some(rate);
        self
    }

    /// The variant, plus Celery's prefetch multiplier when it is not Celery's default (4),
    /// the rate of a paced run and the step size of a stress run (e.g. `threads-c10-pf1`,
    /// `asyncio-c10-at500`, `asyncio-c20-n10000`).
    pub fn variant_label(&self) -> String {
        let prefetch = if self.variant.system == System::CELERY
            && self.celery_prefetch_multiplier != CELERY_DEFAULT_PREFETCH
        {
            format!("-pf{}", self.celery_prefetch_multiplier)
        } else {
            String::new()
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
