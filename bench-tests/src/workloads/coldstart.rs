//! Scenario 8, coldstart: one task waiting before the worker starts; time from spawning
//! the worker to that task's end, per pool size.

use std::fmt::Write as _;

use super::{Case, Workload};
use crate::profile::Profile;
use crate::provision::brokers::Driver;
use crate::report;
use crate::systems::{celery, System, Variant};

pub struct Coldstart;

impl Workload for Coldstart {
    fn name(&self) -> &'static str {
        "coldstart"
    }

    /// The time from worker spawn to the task's end: the only figure of a one-task run.
    fn primary_metric(&self) -> Option<&'static str> {
        Some("processing_time_from_spawn_seconds")
    }

    /// One task per run, so no rate: time from spawn to that task's end, and memory.
    fn report_section(&self, place: &report::Place) -> String {
        let mut md = String::new();
        let _ = writeln!(
            md, "| system | variant | n | worker spawn to first task done, s (95% CI) | RSS MB |\n|---|---|---|---|---|");
        for k in place.keys {
            if let Some(t) = report::mean_of(place.stats, k, "processing_time_from_spawn_seconds") {
                let rss =
                    report::mean_of(place.stats, k, "memory_rss_mb").map_or(f64::NAN, |g| g.median);
                let _ = writeln!(
                    md,
                    "| {} | {} | {} | {} | {} |",
                    k.system,
                    k.variant,
                    t.n,
                    report::fmt_ci_digits(Some(t), 3),
                    report::num(rss, 1)
                );
            }
        }
        md
    }

    fn common_table(&self) -> bool {
        false
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
