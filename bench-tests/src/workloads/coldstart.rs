//! Scenario 8, coldstart: one task waiting before the worker starts; time from spawning
//! the worker to that task's end, per pool size.

use super::{Case, Workload};
use crate::profile::Profile;
use crate::provision::brokers::Driver;
use crate::run::bench::PrimaryMetric;
use crate::systems::{celery, System, Variant};

pub struct Coldstart;

impl Workload for Coldstart {
    fn name(&self) -> &'static str {
        "coldstart"
    }

    /// The time from worker spawn to the task's end: the only figure of a one-task run.
    fn primary_metric(&self) -> Option<PrimaryMetric> {
        Some(PrimaryMetric {
            name: "processing_time_from_spawn_seconds",
            value: |r| r.metrics.processing_time_from_spawn_seconds,
        })
    }

    fn cases(&self, profile: &Profile, driver: Driver, _cpus: u32) -> Vec<Case> {
        let mut cases = Vec::new();
        for &size in &profile.coldstart.pool_sizes {
            for variant in [
                Variant::new(System::ASYNCTASQ, "asyncio", size),
                celery::acking_late("threads", size),
                celery::acking_late("prefork", size),
            ] {
                cases.push(Case::new(self.name(), driver, variant, "noop", 1, profile));
            }
        }
        cases
    }
}
