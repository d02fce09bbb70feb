//! Shared by the scenario tests: one provisioned harness per test binary, the `ci`
//! profile, and a look at the process table.
#![allow(dead_code)]

use std::sync::OnceLock;
use std::time::Duration;

use bench_tests::harness::Harness;
use bench_tests::profile::Profile;
use bench_tests::run::RunRequest;
use bench_tests::systems::System;
use bench_tests::workloads::{self, Case, Mode};

pub fn harness() -> &'static Harness {
    static HARNESS: OnceLock<Harness> = OnceLock::new();
    HARNESS.get_or_init(|| {
        Harness::provision(&mut |line| eprintln!("{line}")).expect("provisioning the harness")
    })
}

pub fn ci_profile() -> Profile {
    Profile::load(&bench_tests::project_root(), "ci").expect("the ci profile loads")
}

/// The ci-profile throughput case of a system, pool and mode.
/// A variant without its sizes: the pool and its options, e.g. `threads-acks_late`.
pub fn pool_and_options(variant: &bench_tests::systems::Variant) -> String {
    format!("{}{}", variant.pool, variant.options_label())
}

/// The ci throughput case of `system` whose pool and options are `pool` (see
/// [`pool_and_options`]) in `mode`.
pub fn throughput_case(system: System, pool: &str, mode: Mode) -> Case {
    let profile = ci_profile();
    workloads::cases(
        &profile,
        "throughput",
        bench_tests::provision::brokers::Driver::Redis,
        harness().cpus(),
    )
    .expect("throughput cases")
    .into_iter()
    .find(|c| c.variant.system == system && pool_and_options(&c.variant) == pool && c.mode == mode)
    .unwrap_or_else(|| panic!("no ci case for {system} {pool} {mode:?}"))
}

/// Every ci-profile case of a scenario on Redis.
pub fn scenario_cases(scenario: &str) -> Vec<Case> {
    workloads::cases(
        &ci_profile(),
        scenario,
        bench_tests::provision::brokers::Driver::Redis,
        harness().cpus(),
    )
    .expect("scenario cases")
}

/// The ci-profile `drivers` case of a system on a broker.
pub fn drivers_case(system: System, driver: bench_tests::provision::brokers::Driver) -> Case {
    workloads::cases(&ci_profile(), "drivers", driver, harness().cpus())
        .expect("drivers cases")
        .into_iter()
        .find(|c| c.variant.system == system)
        .unwrap_or_else(|| panic!("no ci drivers case for {system} on {driver}"))
}

/// A measured (non-warm-up) request with the ci profile's bounds.
pub fn request<'a>(case: &'a Case, profile: &'a Profile) -> RunRequest<'a> {
    RunRequest {
        case,
        profile_name: &profile.name,
        run_id: RunRequest::new_run_id(case, 0),
        repetition: 0,
        warmup: false,
        order_seed: 0,
        position: 0,
        timeout: Duration::from_secs(profile.run_timeout_secs),
        stall: Duration::from_secs(profile.stall_timeout_secs),
        sample_interval: Duration::from_millis(profile.sample_interval_ms),
        extra_worker_env: Vec::new(),
    }
}

/// Runs `case` once with the ci profile's bounds (beside other correctness tests, never
/// beside a measuring bench), panicking with the case and the error if it fails, or if a
/// process of the run survives it.
pub fn run_ci(case: &Case) -> bench_tests::run::RunOutput {
    try_run_ci(case).unwrap_or_else(|e| panic!("{}: {e:#}", case.label()))
}

/// `run_ci` that hands back the run's error instead of panicking (a survivor still panics).
pub fn try_run_ci(case: &Case) -> anyhow::Result<bench_tests::run::RunOutput> {
    let profile = ci_profile();
    let request = request(case, &profile);
    let _shared = bench_tests::run::bench::measurement_lock(false, Duration::from_secs(1800))
        .expect("the measurement lock");
    let out = bench_tests::run::run(harness(), &request, &mut |_| {});
    let survivors = processes_of_run(&request.run_id);
    assert!(
        survivors.is_empty(),
        "{}: processes {survivors:?} outlived the run",
        case.label()
    );
    out
}

/// Every task of `case` ran exactly once, none reported a failure, the run noted no error.
pub fn assert_exact(case: &Case, out: &bench_tests::run::RunOutput) {
    let m = &out.result.metrics;
    assert_eq!(
        (m.completed, m.lost, m.duplicated, m.failed),
        (case.task_count, 0, 0, 0),
        "{}: completed, lost, duplicated, failed",
        case.label()
    );
    assert!(
        out.result.errors.is_empty(),
        "{}: {:?}",
        case.label(),
        out.result.errors
    );
}

/// Pids of live processes whose environment carries `BENCH_RUN_ID=<run_id>`.
pub fn processes_of_run(run_id: &str) -> Vec<i32> {
    let needle = format!("BENCH_RUN_ID={run_id}");
    procfs::process::all_processes()
        .expect("reading /proc")
        .flatten()
        .filter(|p| p.stat().map(|s| s.state != 'Z').unwrap_or(false))
        .filter(|p| {
            p.environ()
                .map(|env| {
                    env.iter().any(|(k, v)| {
                        format!("{}={}", k.to_string_lossy(), v.to_string_lossy()) == needle
                    })
                })
                .unwrap_or(false)
        })
        .map(|p| p.pid)
        .collect()
}
