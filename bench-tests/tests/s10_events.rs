//! Scenario 10 (events) at ci size: with events on, every event type arrives as often as
//! the run's tasks and workers must emit it, for both systems; with events off the run's
//! channel stays silent, so the counts are the systems' events and nothing else.

mod common;

use bench_tests::systems::System;
use bench_tests::workloads::{Case, Mode};
use rstest::rstest;

fn case(system: System, mode: Mode, on: bool) -> Case {
    common::scenario_cases("events")
        .into_iter()
        .filter(|c| c.variant.system == system && c.mode == mode)
        .find(|c| (c.variant.option("events") == Some("on")) == on)
        .unwrap_or_else(|| panic!("no ci events case for {system} {mode:?} on={on}"))
}

fn measure(out: &bench_tests::run::RunOutput, name: &str) -> f64 {
    *out.result
        .metrics
        .measures
        .get(name)
        .unwrap_or_else(|| panic!("{name} not measured: {:?}", out.result.metrics.measures))
}

#[rstest]
fn event_count_matches_the_tasks_run(#[values(System::ASYNCTASQ, System::CELERY)] system: System) {
    let case = case(system, Mode::Drain, true);
    let out = common::run_ci(&case);
    common::assert_exact(&case, &out);
    let n = case.task_count as f64;
    let task_types: &[&str] = if system == System::CELERY {
        &[
            "task_sent",
            "task_received",
            "task_started",
            "task_succeeded",
        ]
    } else {
        &["task_enqueued", "task_started", "task_completed"]
    };
    for kind in task_types {
        assert_eq!(
            measure(&out, &format!("events_expected_{kind}")),
            n,
            "{kind}"
        );
        assert_eq!(
            measure(&out, &format!("events_received_{kind}")),
            n,
            "{kind}"
        );
    }
    // One worker process: one online and one offline event (proof the settings took
    // effect; Celery's come from its heartbeat), and every heartbeat its interval owed.
    assert_eq!(measure(&out, "events_received_worker_online"), 1.0);
    assert_eq!(measure(&out, "events_received_worker_offline"), 1.0);
    assert_eq!(
        measure(&out, "events_received_worker_heartbeat"),
        measure(&out, "events_expected_worker_heartbeat")
    );
    assert_eq!(
        (
            measure(&out, "events_lost"),
            measure(&out, "events_unexpected")
        ),
        (0.0, 0.0)
    );
    assert_eq!(
        measure(&out, "events_received"),
        measure(&out, "events_expected")
    );
    // Same host, one clock: a delivery takes more than nothing and far less than a minute.
    let p50 = measure(&out, "event_latency_p50_ms");
    assert!(p50 > 0.0 && p50 < 60_000.0, "p50 {p50} ms");
    assert!(measure(&out, "event_latency_p99_ms") >= p50);
    let emit = measure(&out, "event_emit_ms");
    assert!(emit > 0.0 && emit < 1000.0, "emit {emit} ms");
}

#[rstest]
fn events_off_leave_the_channel_silent(
    #[values(System::ASYNCTASQ, System::CELERY)] system: System,
) {
    let case = case(system, Mode::Drain, false);
    let out = common::run_ci(&case);
    common::assert_exact(&case, &out);
    assert_eq!(measure(&out, "events_received"), 0.0);
    assert_eq!(measure(&out, "events_expected"), 0.0);
    assert!(!out.result.metrics.measures.contains_key("event_emit_ms"));
}

#[rstest]
fn paced_events_are_counted_against_the_rate(
    #[values(System::ASYNCTASQ, System::CELERY)] system: System,
) {
    let case = case(system, Mode::Paced, true);
    let out = common::run_ci(&case);
    common::assert_exact(&case, &out);
    // Losses are a finding at high rates, not an error; the count must still add up.
    let (expected, received, lost, extra) = (
        measure(&out, "events_expected"),
        measure(&out, "events_received"),
        measure(&out, "events_lost"),
        measure(&out, "events_unexpected"),
    );
    assert_eq!(
        received,
        expected - lost + extra,
        "{:?}",
        out.result.metrics.measures
    );
    assert!(measure(&out, "events_within_10ms_ratio") <= 1.0);
    assert!(measure(&out, "event_rate_per_sec") > 0.0);
}

/// Celery's worker heartbeats (every 2 s, the `freq` it states) over a paced run long
/// enough to owe some: each arrives, and the count owed follows the interval.
#[test]
fn celery_heartbeats_arrive_by_their_interval() {
    let mut case = case(System::CELERY, Mode::Paced, true);
    let rate = case.rate.expect("a paced case has a rate");
    // About 5 s of tasks at the case's rate: two or more heartbeats are due.
    case.task_count = (rate * 5.0).round() as u64;
    let out = common::run_ci(&case);
    common::assert_exact(&case, &out);
    assert_eq!(measure(&out, "events_received_worker_online"), 1.0);
    assert_eq!(measure(&out, "events_received_worker_offline"), 1.0);
    let due = measure(&out, "events_expected_worker_heartbeat");
    assert!(due >= 2.0, "{:?}", out.result.metrics.measures);
    assert_eq!(measure(&out, "events_received_worker_heartbeat"), due);
    assert_eq!(measure(&out, "events_lost"), 0.0);
}
