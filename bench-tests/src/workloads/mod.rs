//! Workloads (scenarios). Each is one module implementing [`Workload`]: the cases it
//! expands to from the profile, what one run of it needs (services such as the mock HTTP
//! server, files, the environment its tasks get, producer arguments), and the checks and
//! metrics of a finished run. [`REGISTRY`] lists them; the run engine names none.
//!
//! Adding a workload: its module here, one line in [`REGISTRY`], its profile section and
//! its fixture tasks.

pub mod api_overhead;
pub mod behaviour;
pub mod case;
pub mod coldstart;
pub mod cpu;
pub mod drivers;
pub mod events;
pub mod fastapi;
pub mod io;
pub mod mixed;
pub mod mock_http;
pub mod pipeline;
pub mod serialization;
pub mod stress;
pub mod throughput;

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{bail, Result};

pub use case::{Case, Mode};

use crate::harness::Harness;
use crate::measure::collector::Tally;
use crate::profile::Profile;
use crate::provision::brokers::Driver;
use crate::result::{Configuration, DepthPoint, Metrics, TimePoint};
use crate::run::{self, RunOutput, RunRequest};

/// One kind of load and what it measures.
pub trait Workload: Sync {
    /// The `--scenario` name, e.g. `throughput`.
    fn name(&self) -> &'static str;
    /// Brokers it runs on when the user names none.
    fn default_drivers(&self) -> Vec<Driver> {
        vec![Driver::Redis]
    }
    /// Its cases on `driver` at the profile's sizes.
    fn cases(&self, profile: &Profile, driver: Driver, cpus: u32) -> Vec<Case>;
    /// Paced cases whose rates are searched before the repetitions (none: the profile
    /// names the rates, or the workload has no paced mode).
    fn rate_search_templates(&self, _profile: &Profile, _driver: Driver, _cpus: u32) -> Vec<Case> {
        Vec::new()
    }
    /// Whether the broker's own ceiling (Rust reference client) is measured beside it.
    fn measures_broker_ceiling(&self) -> bool {
        false
    }
    /// The metric whose CI decides when its cases have run often enough (None: the mode's,
    /// tasks/s or paced p99; see `run::bench::primary_metric`). A built-in metric or one of
    /// its [`Workload::measures`].
    fn primary_metric(&self) -> Option<&'static str> {
        None
    }
    /// Whether two of its groups put the same load on their systems, so the summary may
    /// compare them: `a` and `b` are their variant options by name (see
    /// `analysis::summary::options`), `same_system` whether both are one system's variants.
    /// For options that describe the load rather than the system: the summary never pairs a
    /// small payload with a complex one. Default: any two (pools, clients and serializers are
    /// what comparisons are about).
    fn comparable(
        &self,
        _a: &BTreeMap<&str, &str>,
        _b: &BTreeMap<&str, &str>,
        _same_system: bool,
    ) -> bool {
        true
    }
    /// Its own figures (in `metrics.measures`), which the summary describes and compares
    /// and criteria may name, like the built-in metrics.
    fn measures(&self) -> &'static [Measure] {
        &[]
    }
    /// Its own part of the report for one broker, after the table of rates and latency
    /// every scenario gets (or instead of it: see [`Workload::common_table`]).
    fn report_section(&self, _place: &crate::report::Place) -> String {
        String::new()
    }

    /// Its own charts for one broker: (file name ending `-{place.name}.svg`, SVG), beside
    /// the common ones (throughput bars, latency boxes, RSS and depth over time).
    fn charts(&self, _place: &crate::report::ChartPlace) -> Result<Vec<(String, String)>> {
        Ok(Vec::new())
    }

    /// Whether the report shows the common table of rates and latency for it.
    fn common_table(&self) -> bool {
        true
    }

    /// Why its profile section cannot be used: an error naming `file`, the key and the
    /// valid range (checked when the profile loads).
    fn validate_profile(&self, _profile: &Profile, _file: &str) -> Result<()> {
        Ok(())
    }

    /// Starts what one run of `case` needs, in the run's directory `dir`.
    fn start_run(&self, _case: &Case, _dir: &Path) -> Result<Box<dyn RunPart>> {
        Ok(Box::new(NothingMore))
    }

    /// One repetition of `req.case`. The default is the run engine ([`run::run_once`]:
    /// producer, workers, collector); a workload whose runs have another shape (a
    /// micro-benchmark in its own process, an HTTP app in front of the queue) runs its own,
    /// built from the same parts, and returns the same kind of result.
    fn run(
        &self,
        h: &Harness,
        req: &RunRequest,
        on_progress: &mut dyn FnMut(u64),
    ) -> Result<RunOutput> {
        run::run_once(h, req, on_progress)
    }
}

/// A figure a workload measures itself: its name in `metrics.measures` (with the unit as
/// its suffix, as the built-in metrics: `_us`, `_ms`, `_bytes`, `_ratio`...), which way is
/// better, and what it is, for the report.
#[derive(Debug, Clone, Copy)]
pub struct Measure {
    pub name: &'static str,
    pub better: crate::analysis::stats::Better,
    pub about: &'static str,
}

/// What a workload adds to one run. Services it started live as long as this value.
pub trait RunPart {
    /// Variables every task process of the run gets.
    fn task_env(&self) -> Vec<(String, String)> {
        Vec::new()
    }
    /// Arguments the producer gets.
    fn producer_args(&self) -> Vec<String> {
        Vec::new()
    }
    /// How many tasks the producer sends, when that is not the number of records the run
    /// waits for (`Case::task_count`): a pipeline's producer sends one task per order, and
    /// each order records one per step it passes. None: `task_count`.
    fn produced(&self) -> Option<u64> {
        None
    }
    /// What the result states about the workload's inputs.
    fn record(&self, _configuration: &mut Configuration) {}
    /// Its own metrics, and the checks that make the run valid: each message returned is
    /// an error of the run (which excludes it from the statistics).
    fn finish(&self, _run: &Finished, _metrics: &mut Metrics) -> Vec<String> {
        Vec::new()
    }
}

/// What a finished run observed, for a workload's checks and metrics.
pub struct Finished<'a> {
    pub tally: &'a Tally,
    /// Queue depth over the run (t_ms from worker spawn).
    pub queue_depth: &'a [DepthPoint],
    pub task_count: u64,
    /// Worker RSS/CPU samples (t_ms from worker spawn, as `queue_depth`).
    pub timeseries: &'a [TimePoint],
    /// Worker spawn, unix ns: the origin of those t_ms (records carry unix ns).
    pub worker_spawn_ns: u64,
}

/// A run that needs nothing beyond the system and the broker.
pub struct NothingMore;
impl RunPart for NothingMore {}

/// Every workload, in the order a full `bench` runs them.
pub static REGISTRY: [&dyn Workload; 12] = [
    &throughput::Throughput,
    &drivers::Drivers,
    &io::Io,
    &cpu::Cpu,
    &mixed::Mixed,
    &stress::Stress,
    &coldstart::Coldstart,
    &serialization::Serialization,
    &pipeline::Pipeline,
    &events::Events,
    &fastapi::Fastapi,
    &api_overhead::ApiOverhead,
];

pub fn names() -> Vec<&'static str> {
    REGISTRY.iter().map(|w| w.name()).collect()
}

/// The workload called `name`, or an error listing the valid names.
pub fn get(name: &str) -> Result<&'static dyn Workload> {
    match REGISTRY.iter().find(|w| w.name() == name) {
        Some(workload) => Ok(*workload),
        None => bail!(
            "unknown scenario '{name}'; valid scenarios: {}",
            names().join(", ")
        ),
    }
}

/// Every case of `scenario` on `driver` for the profile.
pub fn cases(profile: &Profile, scenario: &str, driver: Driver, cpus: u32) -> Result<Vec<Case>> {
    Ok(get(scenario)?.cases(profile, driver, cpus))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_scenario_lists_valid_ones() {
        assert_eq!(
            get("latency").err().unwrap().to_string(),
            "unknown scenario 'latency'; valid scenarios: throughput, drivers, io, cpu, mixed, stress, coldstart, serialization, pipeline, events, fastapi, api-overhead"
        );
    }

    #[test]
    fn every_case_names_a_registered_workload_and_system_it_supports() {
        let profile = Profile::load(&crate::project_root(), "local").unwrap();
        for workload in REGISTRY {
            for driver in workload.default_drivers() {
                for case in workload.cases(&profile, driver, 2) {
                    assert_eq!(case.scenario, workload.name());
                    assert!(case.variant.system.supports(driver), "{}", case.label());
                    assert!(
                        case.variant
                            .system
                            .pools()
                            .contains(&case.variant.pool.as_str()),
                        "{}: pool not offered by {}",
                        case.label(),
                        case.variant.system
                    );
                }
            }
        }
    }

    #[test]
    fn stress_is_one_ramp_per_system_and_mixed_shares_one_sequence() {
        let profile = Profile::load(&crate::project_root(), "ci").unwrap();
        let stress = cases(&profile, "stress", Driver::Redis, 2).unwrap();
        assert_eq!(stress.len(), 2, "one continuous ramp per system");
        let lead_in = (profile.stress.rates[0] * stress::LEAD_IN_SECONDS) as u64;
        let total: u64 = profile.stress.counts().iter().sum::<u64>() + lead_in;
        let labels: Vec<String> = stress.iter().map(Case::label).collect();
        assert!(
            labels.contains(&format!(
                "asynctasq-redis-stress-asyncio-c20-n{total}-paced"
            )),
            "{labels:?}"
        );
        assert!(stress.iter().all(|c| c.task_count == total
            && c.schedule.as_ref().map(Vec::len) == Some(profile.stress.rates.len() + 1)));
        let mixed = cases(&profile, "mixed", Driver::Redis, 2).unwrap();
        assert_eq!(mixed.len(), 3);
        assert!(mixed
            .iter()
            .all(|c| c.mix == mixed[0].mix && c.mix.is_some()));
    }

    #[test]
    fn ci_throughput_has_seven_variants_in_two_modes() {
        let profile = Profile::load(&crate::project_root(), "ci").unwrap();
        let cases = cases(&profile, "throughput", Driver::Redis, 2).unwrap();
        let labels: Vec<String> = cases.iter().map(Case::label).collect();
        assert_eq!(
            cases.len(),
            14 + 4,
            "7 variants x 2 modes, 2 systems x 2 paced rates: {labels:?}"
        );
        for label in [
            "celery-redis-throughput-threads-c10-drain",
            "celery-redis-throughput-threads-c10-acks_late-drain",
            "celery-redis-throughput-gevent-c10-acks_late-live",
            "celery-redis-throughput-eventlet-c10-acks_late-drain",
            // Paced: Celery at AsyncTasQ's delivery semantics only.
            "celery-redis-throughput-threads-c10-acks_late-at100-paced",
        ] {
            assert!(labels.contains(&label.to_string()), "{label}: {labels:?}");
        }
        assert!(!labels.contains(&"celery-redis-throughput-threads-c10-at100-paced".to_string()));
        assert!(
            labels.contains(&"asynctasq-redis-throughput-asyncio-c10-at100-paced".to_string()),
            "{labels:?}"
        );
        assert!(labels.contains(&"celery-redis-throughput-prefork-c2-drain".to_string()));
        assert!(labels.contains(&"asynctasq-redis-throughput-asyncio-c10-live".to_string()));
    }
}
