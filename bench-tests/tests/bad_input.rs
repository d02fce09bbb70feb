//! Bad input gets a clear error that says what to do, quickly; failed runs leave no process.

mod common;

use std::time::{Duration, Instant};

use bench_tests::provision::brokers::redis::RedisBroker;
use bench_tests::run::bench::{BenchPlan, BenchRequest};
use bench_tests::run::run_once;
use bench_tests::systems::System;
use bench_tests::workloads::Mode;
use rstest::rstest;

fn plan_error(profile: &str, scenario: &str, system: &str, driver: &str) -> String {
    let request = BenchRequest {
        profile: profile.into(),
        scenarios: vec![scenario.into()],
        systems: vec![system.into()],
        drivers: vec![driver.into()],
        seed: None,
        rates: None,
        ..Default::default()
    };
    BenchPlan::new(&bench_tests::project_root(), &request, 2)
        .unwrap_err()
        .to_string()
}

#[rstest]
#[case::profile(
    "huge",
    "throughput",
    "celery",
    "redis",
    "unknown profile 'huge'; valid profiles: ci, local, bare-metal, aws, or a path to a TOML file (e.g. a copy of infra/profiles/local.toml)"
)]
#[case::scenario(
    "ci",
    "warp",
    "celery",
    "redis",
    "unknown scenario 'warp'; valid scenarios: throughput, drivers, io, cpu, mixed, stress, coldstart, serialization, pipeline, events, fastapi, api-overhead"
)]
#[case::system(
    "ci",
    "throughput",
    "dramatiq",
    "redis",
    "unknown system 'dramatiq'; valid systems: asynctasq, celery"
)]
#[case::driver(
    "ci",
    "throughput",
    "celery",
    "kafka",
    "unknown driver 'kafka'; valid drivers: redis, postgres, mysql, rabbitmq, sqs"
)]
fn unknown_names_list_the_valid_ones(
    #[case] profile: &str,
    #[case] scenario: &str,
    #[case] system: &str,
    #[case] driver: &str,
    #[case] expected: &str,
) {
    assert_eq!(plan_error(profile, scenario, system, driver), expected);
}

fn filtered(modes: &[&str], variants: &[&str]) -> anyhow::Result<BenchPlan> {
    let request = BenchRequest {
        profile: "ci".into(),
        scenarios: vec!["throughput".into()],
        modes: modes.iter().map(|m| m.to_string()).collect(),
        variants: variants.iter().map(|v| v.to_string()).collect(),
        ..Default::default()
    };
    BenchPlan::new(&bench_tests::project_root(), &request, 2)
}

#[test]
fn unknown_mode_and_variant_list_the_valid_ones() {
    assert_eq!(
        filtered(&["burst"], &[]).unwrap_err().to_string(),
        "unknown mode 'burst'; valid modes: drain, live, paced"
    );
    let err = filtered(&[], &["gevent-c9"]).unwrap_err().to_string();
    assert!(
        err.starts_with("unknown variant 'gevent-c9' for the chosen scenarios; valid variants: ")
            && err.contains("asyncio-c10")
            && err.contains("prefork-c2")
            && err.contains("asyncio-c10-at100"),
        "{err}"
    );
}

/// A user can run only the drain of one variant (and the filters combine).
#[test]
fn mode_and_variant_filters_select_exactly_the_matching_cases() {
    let plan = filtered(&["drain"], &["prefork-c2"]).unwrap();
    let labels: Vec<String> = plan.cases.iter().map(|c| c.label()).collect();
    assert_eq!(labels, ["celery-redis-throughput-prefork-c2-drain"]);
    let paced = filtered(&["paced"], &["asyncio"]).unwrap();
    assert!(
        !paced.cases.is_empty()
            && paced
                .cases
                .iter()
                .all(|c| c.mode == Mode::Paced && c.variant.system == System::ASYNCTASQ),
        "{:?}",
        paced.cases.iter().map(|c| c.label()).collect::<Vec<_>>()
    );
}

#[rstest]
#[case::refused("redis://127.0.0.1:1")]
#[case::blackholed("redis://10.255.255.1:6379")]
fn unreachable_broker_url_fails_fast_and_names_the_url(#[case] url: &str) {
    let start = Instant::now();
    let err = RedisBroker::provide_from(Some(url.to_string()), &mut |_| {})
        .err()
        .expect("an unreachable URL is an error");
    let message = format!("{err:#}");
    assert!(
        start.elapsed() < Duration::from_secs(10),
        "took {:?}",
        start.elapsed()
    );
    assert!(
        message.contains(url) && message.contains("BENCH_REDIS_URL"),
        "{message}"
    );
}

#[rstest]
#[case::asynctasq_bad_setting(
    System::ASYNCTASQ,
    "asyncio",
    "ASYNCTASQ_REDIS_DB",
    "99",
    "db must be between 0 and 15"
)]
#[case::celery_missing_app(
    System::CELERY,
    "threads",
    "PYTHONPATH",
    "/nonexistent",
    "Unable to load celery application"
)]
fn worker_that_exits_at_start_shows_its_stderr(
    #[case] system: System,
    #[case] pool: &str,
    #[case] key: &str,
    #[case] value: &str,
    #[case] expected_in_stderr: &str,
) {
    let h = common::harness();
    let profile = common::ci_profile();
    let case = common::throughput_case(system, pool, Mode::Live);
    let mut request = common::request(&case, &profile);
    request.extra_worker_env = vec![(key.into(), value.into())];
    let start = Instant::now();
    let err = format!(
        "{:#}",
        run_once(h, &request, &mut |_| {})
            .err()
            .expect("the worker cannot start")
    );
    assert!(err.contains("worker exited"), "{err}");
    assert!(err.contains(expected_in_stderr), "{err}");
    assert!(
        start.elapsed() < Duration::from_secs(30),
        "noticed in {:?}",
        start.elapsed()
    );
    assert!(common::processes_of_run(&request.run_id).is_empty());
}

#[test]
fn run_timeout_fails_and_leaves_no_process() {
    let h = common::harness();
    let profile = common::ci_profile();
    let mut case = common::throughput_case(System::CELERY, "prefork", Mode::Live);
    case.task_count = 1_000_000;
    let mut request = common::request(&case, &profile);
    request.timeout = Duration::from_secs(4);
    let start = Instant::now();
    let err = format!(
        "{:#}",
        run_once(h, &request, &mut |_| {})
            .err()
            .expect("a million tasks cannot finish in 4 s")
    );
    assert!(err.contains("timed out after 4s"), "{err}");
    assert!(err.contains("tasks completed; queue depth"), "{err}");
    assert!(
        start.elapsed() < Duration::from_secs(20),
        "returned after {:?}",
        start.elapsed()
    );
    let survivors = common::processes_of_run(&request.run_id);
    assert!(
        survivors.is_empty(),
        "processes of the run still alive: {survivors:?}"
    );
}

#[test]
fn rates_are_numbers_or_auto() {
    assert_eq!(
        bench_tests::run::bench::parse_rates("auto").unwrap(),
        Vec::<f64>::new()
    );
    assert_eq!(
        bench_tests::run::bench::parse_rates("250, 500").unwrap(),
        vec![250.0, 500.0]
    );
    let err = bench_tests::run::bench::parse_rates("250,fast")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("'fast' is not a number") && err.contains("--rates auto"),
        "{err}"
    );
}
