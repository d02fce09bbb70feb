//! Scenario 9, drivers: the same drain workload on every broker, one variant per system;
//! on RabbitMQ also Celery's prefetch multiplier swept. Beside it, each broker's own
//! ceiling with a Rust reference client.

use std::fmt::Write as _;

use super::{Case, Workload};
use crate::profile::Profile;
use crate::provision::brokers::Driver;
use crate::report;
use crate::systems::celery::DEFAULT_PREFETCH;
use crate::systems::{celery, System, Variant};

pub struct Drivers;

impl Workload for Drivers {
    fn name(&self) -> &'static str {
        "drivers"
    }

    fn default_drivers(&self) -> Vec<Driver> {
        Driver::ALL.to_vec()
    }

    fn measures_broker_ceiling(&self) -> bool {
        true
    }

    /// The broker's own ceiling, and each system as a fraction of it.
    fn report_section(&self, place: &report::Place) -> String {
        let mut md = String::new();
        if let Some(ceiling) = place
            .file
            .ceilings
            .iter()
            .find(|c| c.driver == place.driver)
        {
            let ci = |mean: f64, low: f64, high: f64| {
                if ceiling.n < 2 {
                    format!("{mean:.0}/s")
                } else {
                    format!("{mean:.0}/s [{low:.0}, {high:.0}]")
                }
            };
            let _ = writeln!(
                md,
                "\nThe broker's own ceiling on this machine (Rust reference client, n={}: {}): enqueue {}, dequeue {}.\n",
                ceiling.n,
                ceiling.method,
                ci(ceiling.enqueue_per_sec, ceiling.enqueue_ci95_low, ceiling.enqueue_ci95_high),
                ci(ceiling.dequeue_per_sec, ceiling.dequeue_ci95_low, ceiling.dequeue_ci95_high)
            );
            let _ = writeln!(md, "| system | variant | tasks/s as a fraction of the broker's dequeue ceiling | enqueue/s as a fraction of its enqueue ceiling |\n|---|---|---|---|");
            for (system, variant, _mode, drain, enqueue) in &ceiling.fractions {
                let _ = writeln!(
                    md,
                    "| {system} | {variant} | {}% | {}% |",
                    report::num(drain * 100.0, 1),
                    report::num(enqueue * 100.0, 1)
                );
            }
        }
        md
    }

    fn cases(&self, profile: &Profile, driver: Driver, _cpus: u32) -> Vec<Case> {
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
            ..Case::new(self.name(), driver, variant, "noop", task_count, profile)
        };
        let celery_threads = celery::acking_late("threads", sizes.celery_threads_concurrency);
        let mut cases = vec![
            case(
                Variant::new(System::ASYNCTASQ, "asyncio", sizes.asynctasq_concurrency),
                DEFAULT_PREFETCH,
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
}
