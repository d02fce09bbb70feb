//! Scenario 3, cpu: pbkdf2-HMAC-SHA256 per task at concurrency = cores. AsyncTasQ as an
//! AsyncTask body (blocks the event loop), a SyncTask (thread pool) and a process task
//! (process pool); Celery prefork and threads. Each task's digest is checked.

use std::path::Path;

use anyhow::Result;

use super::{Case, RunPart, Workload};
use crate::profile::Profile;
use crate::provision::brokers::Driver;
use crate::systems::{celery, System, Variant};

pub struct Cpu;

impl Workload for Cpu {
    fn name(&self) -> &'static str {
        "cpu"
    }

    fn cases(&self, profile: &Profile, driver: Driver, cpus: u32) -> Vec<Case> {
        let sizes = &profile.cpu;
        [
            (Variant::new(System::ASYNCTASQ, "async", cpus), "cpu_async"),
            (Variant::new(System::ASYNCTASQ, "sync", cpus), "cpu_sync"),
            (
                Variant::new(System::ASYNCTASQ, "process", cpus),
                "CpuProcess",
            ),
            (celery::acking_late("prefork", cpus), "cpu"),
            (celery::acking_late("threads", cpus), "cpu"),
        ]
        .into_iter()
        .map(|(variant, task)| {
            let mut case = Case::new(
                self.name(),
                driver,
                variant,
                task,
                sizes.task_count,
                profile,
            );
            case.pbkdf2_iterations = Some(sizes.pbkdf2_iterations);
            case
        })
        .collect()
    }

    fn start_run(&self, case: &Case, _dir: &Path) -> Result<Box<dyn RunPart>> {
        Ok(Box::new(Pbkdf2 {
            iterations: case.pbkdf2_iterations,
        }))
    }
}

/// The task env of a CPU run: how many pbkdf2 iterations each task does.
pub struct Pbkdf2 {
    pub iterations: Option<u64>,
}

impl RunPart for Pbkdf2 {
    fn task_env(&self) -> Vec<(String, String)> {
        self.iterations
            .map(|n| ("BENCH_PBKDF2_ITERATIONS".to_string(), n.to_string()))
            .into_iter()
            .collect()
    }
}
