//! Scenario 1, throughput: no-op tasks drained (enqueue all, then start the workers),
//! live (workers up, producer as fast as it can) and paced (open loop at fixed rates, or
//! at fractions of each system's highest sustainable rate found by `run::sweep`).

use std::fmt::Write as _;

use super::{Case, Mode, Workload};
use crate::profile::Profile;
use crate::provision::brokers::Driver;
use crate::systems::{celery, System, Variant};

pub struct Throughput;

impl Workload for Throughput {
    fn name(&self) -> &'static str {
        "throughput"
    }

    /// How each system's highest sustainable rate was found (automatic rate searches).
    fn report_section(&self, place: &crate::report::Place) -> String {
        let mut md = String::new();
        sweeps_report(&mut md, &place.file.sweeps, place.driver);
        md
    }

    fn cases(&self, profile: &Profile, driver: Driver, cpus: u32) -> Vec<Case> {
        let sizes = &profile.throughput;
        let mut cases = Vec::new();
        for variant in variants(profile, cpus) {
            for mode in &sizes.modes {
                let mut case = Case::new(
                    self.name(),
                    driver,
                    variant.clone(),
                    "noop",
                    sizes.task_count,
                    profile,
                );
                // Validated when the profile loaded.
                case.mode = Mode::parse(mode).unwrap_or(Mode::Drain);
                cases.push(case);
            }
        }
        // Open-loop latency at the profile's rates (none listed: `sweep` finds them).
        for template in paced_templates(profile, driver, cpus) {
            for &rate in &sizes.paced_rates {
                cases.push(crate::run::sweep::paced_case(&template, rate, profile));
            }
        }
        cases
    }

    fn rate_search_templates(&self, profile: &Profile, driver: Driver, cpus: u32) -> Vec<Case> {
        if profile.throughput.paced_rates.is_empty() {
            paced_templates(profile, driver, cpus)
        } else {
            Vec::new()
        }
    }
}

/// AsyncTasQ asyncio; Celery with its default early ack (threads, prefork, solo), and at
/// AsyncTasQ's at-least-once (threads, gevent, eventlet, at AsyncTasQ's concurrency).
pub fn variants(profile: &Profile, cpus: u32) -> Vec<Variant> {
    let sizes = &profile.throughput;
    let prefork = if sizes.celery_prefork_concurrency == 0 {
        cpus
    } else {
        sizes.celery_prefork_concurrency
    };
    let threads = sizes.celery_threads_concurrency;
    vec![
        Variant::new(System::ASYNCTASQ, "asyncio", sizes.asynctasq_concurrency),
        Variant::new(System::CELERY, "threads", threads),
        celery::acking_late("threads", threads),
        celery::acking_late("gevent", threads),
        celery::acking_late("eventlet", threads),
        Variant::new(System::CELERY, "prefork", prefork),
        Variant::new(System::CELERY, "solo", 1),
    ]
}

/// The open-loop cases before a rate is chosen: one variant per system at the same
/// concurrency and delivery semantics (AsyncTasQ asyncio, Celery threads acking late).
pub fn paced_templates(profile: &Profile, driver: Driver, cpus: u32) -> Vec<Case> {
    variants(profile, cpus)
        .into_iter()
        .filter(|v| v.pool == "asyncio" || (v.pool == "threads" && v.option("acks").is_some()))
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

/// Automatic rate searches: how each system's highest sustainable rate was found.
fn sweeps_report(md: &mut String, sweeps: &[crate::run::sweep::SweepOutcome], driver: &str) {
    for sweep in sweeps.iter().filter(|s| s.driver == driver) {
        let probes: Vec<String> = sweep
            .probes
            .iter()
            .map(|p| {
                if p.sustainable {
                    format!("{:.0}/s sustained (p99 {:.1} ms)", p.rate, p.latency_p99_ms)
                } else {
                    format!("{:.0}/s not sustained ({})", p.rate, p.why)
                }
            })
            .collect();
        let _ = writeln!(
            md,
            "\n**{} {}: highest sustainable rate {:.0} tasks/s** (unpaced live estimate {:.0}/s; probes: {}). \
             Measured at {}.",
            sweep.system,
            sweep.variant,
            sweep.max_sustainable_rate,
            sweep.live_estimate,
            probes.join("; "),
            sweep
                .rates
                .iter()
                .map(|r| format!("{r:.0}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
}
