//! Scenario 1 (throughput) at ci size, for real: every system × variant × mode on Redis.

mod common;

use std::collections::BTreeSet;

use bench_tests::analysis::criteria::Criterion;
use bench_tests::analysis::summary::metric;
use bench_tests::result::RunResult;
use bench_tests::run::bench::{self, BenchPlan, BenchRequest};
use bench_tests::systems::System;
use bench_tests::workloads::{Case, Mode};
use rstest::rstest;

#[rstest]
#[case::asynctasq_asyncio(System::ASYNCTASQ, "asyncio")]
#[case::celery_threads(System::CELERY, "threads")]
#[case::celery_threads_acks_late(System::CELERY, "threads-acks_late")]
#[case::celery_gevent(System::CELERY, "gevent-acks_late")]
#[case::celery_eventlet(System::CELERY, "eventlet-acks_late")]
#[case::celery_prefork(System::CELERY, "prefork")]
#[case::celery_solo(System::CELERY, "solo")]
fn throughput_completes_exactly(
    #[case] system: System,
    #[case] pool: &str,
    #[values(Mode::Drain, Mode::Live)] mode: Mode,
) {
    let case = common::throughput_case(system, pool, mode);
    let out = common::run_ci(&case);
    let m = &out.result.metrics;
    let n = case.task_count;

    assert_eq!(m.completed, n, "every task completes exactly once");
    assert_eq!(
        (m.lost, m.duplicated, m.failed, m.foreign_records),
        (0, 0, 0, 0)
    );
    assert_eq!(
        out.histograms.end_to_end.len(),
        n,
        "one latency sample per distinct task"
    );
    assert!(m.throughput_tasks_per_sec.is_some_and(|t| t > 0.0) && m.enqueue_rate_per_sec > 0.0);
    assert!(m.processing_time_from_spawn_seconds >= m.processing_time_seconds);
    assert!(
        m.latency_p50_ms > 0.0
            && m.latency_p50_ms <= m.latency_p95_ms
            && m.latency_p95_ms <= m.latency_p99_ms
    );
    assert!(m.latency_p99_ms <= m.latency_max_ms * 1.001);
    assert!(m.memory_rss_mb > 0.0 && m.cpu_percent.is_some_and(|c| c > 0.0));
    assert!(out.result.errors.is_empty(), "{:?}", out.result.errors);
    assert!(m.worker_stopped_gracefully, "SIGTERM stopped the worker");
    // The producer's connection was open before its timed window (the old Celery producer
    // opened two sockets inside it, on its first send).
    assert_eq!(m.producer_sockets_opened, Some(0));
    let c = &out.result.configuration;
    let late = system == System::ASYNCTASQ || case.variant.option("acks") == Some("late");
    let delivery = if late {
        "at-least-once"
    } else {
        "at-most-once"
    };
    assert_eq!(c.delivery.as_deref(), Some(delivery));
    assert_eq!(c.worker_log_level.as_deref(), Some("WARNING"));
    // Prefork spreads tasks over its children; the others run them in one process.
    let expected_pids = if case.variant.pool == "prefork" {
        2..=case.variant.concurrency
    } else {
        1..=1
    };
    assert!(
        expected_pids.contains(&m.task_pids),
        "{} task pids",
        m.task_pids
    );
    assert_eq!(
        out.result
            .environment
            .versions
            .get(system.packages()[0])
            .map(String::as_str),
        Some(expected_version(system))
    );
    // The broker's queue depth was sampled: in a drain it starts at N, read before the
    // worker has taken anything, and never exceeds N.
    let depths: Vec<u64> = out.result.queue_depth.iter().map(|p| p.depth).collect();
    assert!(
        !depths.is_empty() && depths.iter().all(|d| *d <= n),
        "{depths:?}"
    );
    if mode == Mode::Drain {
        assert_eq!(depths[0], n, "{depths:?}");
    }
    assert_ci_floors(&case, &out.result);
}

/// The ci profile's criteria that apply to `case` on their own (no ratio to another
/// system): its floors and ceilings.
fn ci_floors_of(case: &Case) -> Vec<Criterion> {
    // An absent filter matches anything; a present one the value or its leading part, as
    // the criteria do (`threads` matches `threads-c10`).
    let matches = |filter: &Option<String>, value: &str| {
        filter
            .as_deref()
            .is_none_or(|f| value == f || value.starts_with(&format!("{f}-")))
    };
    common::ci_profile()
        .criteria
        .into_iter()
        .filter(|c| {
            c.versus.is_none()
                && c.scenario == case.scenario
                && c.system == case.variant.system.name()
                && matches(&c.variant, &case.variant_label())
                && matches(&c.driver, case.driver.name())
                && matches(&c.mode, case.mode.name())
        })
        .collect()
}

/// Every ci floor and ceiling that applies to the case holds for this run: each system's,
/// Celery's included (a bench restricted to one system never judged the other's).
fn assert_ci_floors(case: &Case, result: &RunResult) {
    for c in ci_floors_of(case) {
        let value = metric(&c.metric)
            .expect("a known metric")
            .value(result)
            .unwrap_or_else(|| panic!("{}: {} not measured", c.name, c.metric));
        eprintln!(
            "{}: {} = {value:.1} ({} {} {})",
            case.label(),
            c.metric,
            c.name,
            c.op,
            c.threshold
        );
        let holds = match c.op.as_str() {
            ">" => value > c.threshold,
            ">=" => value >= c.threshold,
            "<" => value < c.threshold,
            "<=" => value <= c.threshold,
            other => panic!("{}: op {other} is not a floor or a ceiling", c.name),
        };
        assert!(
            holds,
            "{}: {} = {value:.1}, the ci profile wants {} {} ({})",
            case.label(),
            c.metric,
            c.op,
            c.threshold,
            c.claim
        );
    }
}

/// No ci criterion goes unchecked: each one applies to at least one case the test above runs.
#[test]
fn every_ci_criterion_is_checked_by_a_throughput_case() {
    let cases = common::scenario_cases("throughput");
    let checked: BTreeSet<String> = cases
        .iter()
        .filter(|c| c.mode != Mode::Paced)
        .flat_map(ci_floors_of)
        .map(|c| c.name)
        .collect();
    let all: BTreeSet<String> = common::ci_profile()
        .criteria
        .into_iter()
        .map(|c| c.name)
        .collect();
    assert_eq!(checked, all);
    assert!(checked.contains("celery-throughput-floor"));
}

fn expected_version(system: System) -> &'static str {
    if system == System::ASYNCTASQ {
        "1.7.0"
    } else {
        "5.7.0"
    }
}

/// The full pipeline as `cargo xtask bench` runs it: warm-up, measured repetition,
/// files on disk, schema keys, and the shape of one result (numbers redacted).
#[test]
fn bench_writes_results_with_the_schema() {
    let h = common::harness();
    let request = BenchRequest {
        profile: "ci".into(),
        scenarios: vec!["throughput".into()],
        systems: vec!["asynctasq".into()],
        drivers: vec!["redis".into()],
        seed: Some(7),
        rates: None,
        ..Default::default()
    };
    let plan = BenchPlan::new(&h.root, &request, h.cpus()).unwrap();
    let results_root = tempfile::tempdir().unwrap();
    let outcome = bench::execute(h, &plan, results_root.path()).unwrap();
    assert!(outcome.failures.is_empty(), "{:?}", outcome.failures);
    assert_eq!(outcome.rows.len(), 4, "drain, live and paced at two rates");

    let runs = std::fs::read_dir(outcome.run_dir.join("runs"))
        .unwrap()
        .flatten();
    let run_files: Vec<_> = runs
        .filter(|e| e.path().extension().is_some_and(|x| x == "json"))
        .collect();
    let warmups = std::fs::read_dir(outcome.run_dir.join("runs/warmup"))
        .unwrap()
        .count();
    assert_eq!((run_files.len(), warmups), (4, 4));
    for file in &run_files {
        let text = std::fs::read_to_string(file.path()).unwrap();
        let value: serde_json::Value = serde_json::from_str(&text).unwrap();
        for key in [
            "benchmark_id",
            "timestamp",
            "configuration",
            "metrics",
            "errors",
            "environment",
        ] {
            assert!(value.get(key).is_some(), "{key} missing");
        }
        for key in [
            "system",
            "driver",
            "workers",
            "task_count",
            "scenario",
            "mode",
            "variant",
            "profile",
        ] {
            assert!(
                value["configuration"].get(key).is_some(),
                "configuration.{key} missing"
            );
        }
        for key in [
            "enqueue_time_seconds",
            "processing_time_seconds",
            "throughput_tasks_per_sec",
            "latency_mean_ms",
            "latency_p50_ms",
            "latency_p95_ms",
            "latency_p99_ms",
            "memory_rss_mb",
            "cpu_percent",
        ] {
            assert!(
                value["metrics"][key].as_f64().is_some_and(|v| v > 0.0),
                "metrics.{key} is not a positive number"
            );
        }
        for key in ["host", "cpus", "python", "versions", "git_rev"] {
            assert!(
                value["environment"].get(key).is_some(),
                "environment.{key} missing"
            );
        }
        let typed: RunResult = serde_json::from_value(value.clone()).unwrap();
        assert_eq!(typed.configuration.order_seed, 7);
        let histogram = outcome
            .run_dir
            .join("histograms")
            .join(format!("{}.hgrm", typed.benchmark_id));
        let total = format!("Total count    = {:>12}]", typed.configuration.task_count);
        assert!(
            std::fs::read_to_string(histogram).unwrap().contains(&total),
            "{total}"
        );
    }
    let summary: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(outcome.run_dir.join("summary.json")).unwrap(),
    )
    .unwrap();
    assert!(
        summary["groups"].as_array().is_some_and(|g| g.len() >= 2),
        "one group per mode and metric"
    );
    for file in [
        "report.md",
        "runs.csv",
        "charts/throughput-drain-throughput-redis.svg",
    ] {
        assert!(outcome.run_dir.join(file).exists(), "{file} missing");
    }
    // The profile as it ran, so a report regenerates its criteria from the directory alone
    // (before, a run made with a profile file of the user's could not be re-reported).
    let written = bench_tests::report::criteria_of(&outcome.run_dir, "no-such-profile").unwrap();
    assert_eq!(written, common::ci_profile().criteria);
    // No temporary file of an atomic write is left behind.
    let leftovers: Vec<_> = std::fs::read_dir(&outcome.run_dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    // The ci profile's criteria are sized for this machine: none may fail.
    let verdicts = &outcome.summary.as_ref().unwrap().criteria;
    assert!(verdicts.iter().all(|v| v.status != "fail"), "{verdicts:#?}");
    // One repetition per case gives no CI: a measured criterion says "too few runs", never pass.
    assert!(
        verdicts.iter().any(|v| v.status == "too few runs")
            && verdicts.iter().all(|v| v.status != "pass"),
        "{verdicts:#?}"
    );

    let drain = run_files
        .iter()
        .find(|f| f.file_name().to_string_lossy().contains("-drain-"))
        .unwrap();
    let value: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(drain.path()).unwrap()).unwrap();
    insta::with_settings!({ snapshot_path => "../../snapshots", prepend_module_to_snapshot => false }, {
        insta::assert_json_snapshot!("throughput_run_shape", shape(&value));
    });
    // Recomputable: regenerating from the raw runs alone gives the same statistics.
    let again = tempfile::tempdir().unwrap();
    let copy = again.path().join("copy");
    std::fs::create_dir_all(copy.join("runs")).unwrap();
    for file in &run_files {
        std::fs::copy(file.path(), copy.join("runs").join(file.file_name())).unwrap();
    }
    let regenerated = bench_tests::report::write(
        &copy,
        &bench_tests::report::load_runs(&copy).unwrap(),
        &[],
        &plan.profile.criteria,
        Some(7),
        &[],
    )
    .unwrap();
    let original = outcome.summary.as_ref().unwrap();
    // Compared as JSON, as summary.json holds them (NaN, e.g. the stddev of one run, is null).
    let json = |file: &bench_tests::report::SummaryFile| {
        serde_json::json!([file.groups, file.comparisons, file.criteria])
    };
    assert_eq!(json(&regenerated), json(original));
    let modes: BTreeSet<String> = outcome
        .results
        .iter()
        .map(|r| r.configuration.mode.clone())
        .collect();
    assert_eq!(
        modes.into_iter().collect::<Vec<_>>(),
        ["drain", "live", "paced"]
    );
}

/// The result with every number and every machine- or time-dependent string replaced by
/// a placeholder, and arrays cut to their first element: what the snapshot pins is shape.
fn shape(value: &serde_json::Value) -> serde_json::Value {
    use serde_json::Value;
    match value {
        Value::Number(_) => Value::String("<number>".into()),
        Value::Array(items) => Value::Array(items.iter().take(1).map(shape).collect()),
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| {
                    let redacted = match k.as_str() {
                        "benchmark_id" | "timestamp" | "host" | "git_rev" | "os" | "python"
                        | "python_source" | "broker_version" | "broker_source" => {
                            Value::String(format!("<{k}>"))
                        }
                        "versions" => Value::String("<package versions>".into()),
                        _ => shape(v),
                    };
                    (k.clone(), redacted)
                })
                .collect(),
        ),
        other => other.clone(),
    }
}

/// Paced (open-loop) mode holds its rate well below capacity, and latency is measured
/// from each task's intended time (so it includes any lateness of the producer).
#[rstest]
#[case::asynctasq(System::ASYNCTASQ, "asyncio")]
#[case::celery(System::CELERY, "threads-acks_late")]
fn paced_mode_holds_its_rate(#[case] system: System, #[case] pool: &str) {
    let case = common::scenario_cases("throughput")
        .into_iter()
        .find(|c| {
            c.variant.system == system
                && common::pool_and_options(&c.variant) == pool
                && c.mode == Mode::Paced
        })
        .expect("a paced case");
    let rate = case.rate.unwrap();
    let out = common::run_ci(&case);
    let m = &out.result.metrics;
    assert_eq!((m.completed, m.lost, m.duplicated), (case.task_count, 0, 0));
    assert_eq!(m.latency_kind, "open-loop-from-intended-time");
    // The schedule spans (N-1)/rate; the producer must keep to it within 10%.
    let scheduled = (case.task_count - 1) as f64 / rate;
    assert!(
        (m.enqueue_time_seconds - scheduled).abs() <= 0.1 * scheduled,
        "{} s for a {scheduled} s schedule",
        m.enqueue_time_seconds
    );
    assert!(
        m.producer_lateness_p99_ms.unwrap() < 100.0,
        "producer lateness p99 {:?} ms",
        m.producer_lateness_p99_ms
    );
    assert_eq!(m.paced_target_rate, Some(rate));
    assert_ci_floors(&case, &out.result);
}

/// The automatic sweep: the search starts from an unpaced live run, brackets the highest
/// rate a paced probe keeps up with, and hands back rates at the profile's fractions of it.
#[rstest]
#[case::asynctasq(System::ASYNCTASQ)]
#[case::celery(System::CELERY)]
fn rate_search_finds_a_sustainable_maximum(#[case] system: System) {
    let profile = common::ci_profile();
    let h = common::harness();
    let template = bench_tests::workloads::throughput::paced_templates(
        &profile,
        bench_tests::provision::brokers::Driver::Redis,
        h.cpus(),
    )
    .into_iter()
    .find(|c| c.variant.system == system)
    .expect("a paced template");
    let _shared = bench::measurement_lock(false, std::time::Duration::from_secs(1800)).unwrap();
    let mut runs = Vec::new();
    let outcome = bench_tests::run::sweep::find_max(h, &template, &profile, &mut |what, r| {
        runs.push((
            what.to_string(),
            r.benchmark_id.clone(),
            r.metrics.completed,
        ))
    })
    .unwrap();
    eprintln!("{outcome:#?}");
    for (what, run_id, completed) in &runs {
        assert!(*completed > 0, "{what}");
        assert!(common::processes_of_run(run_id).is_empty(), "{what}");
    }
    assert_eq!(
        runs.len(),
        outcome.probes.len() + 1,
        "the live estimate, then the probes"
    );
    let best = outcome.max_sustainable_rate;
    assert!(best > 0.0);
    // The maximum is a probe that was sustained, bracketed by a higher one that was not;
    // every probe above it failed with a reason.
    assert!(
        outcome.probes.iter().any(|p| p.rate > best),
        "bracketed from above"
    );
    assert!(outcome
        .probes
        .iter()
        .any(|p| p.rate == best && p.sustainable));
    for p in outcome.probes.iter().filter(|p| p.rate > best) {
        assert!(!p.sustainable && !p.why.is_empty(), "{p:?}");
    }
    let expected = bench_tests::run::sweep::rates_at(best, &profile.throughput.paced_fractions);
    assert_eq!(outcome.rates, expected);
    assert_eq!(outcome.rates.last(), Some(&best));
}
