//! Scenario 11 (fastapi) at ci size: each app under uvicorn, open-loop HTTP load from the
//! harness, SIGTERM with requests still coming. Every request before SIGTERM is answered,
//! the tasks that ran are exactly the dispatches the app answered (each once, none lost at
//! shutdown), and the app's own figures (lifespan, event-loop lag) arrive.

mod common;

use rstest::rstest;

#[rstest]
fn every_answered_dispatch_runs_once_and_shutdown_loses_none(
    #[values(0, 1, 2, 3, 4, 5)] index: usize,
) {
    let case = common::scenario_cases("fastapi").remove(index);
    let out = common::run_ci(&case);
    let label = case.label();
    let r = &out.result;
    let m = &r.metrics;
    let measure = |name: &str| {
        *m.measures
            .get(name)
            .unwrap_or_else(|| panic!("{label}: no measure {name}: {:?}", m.measures))
    };
    eprintln!(
        "{label}: {} tasks, task p50 {:.2} ms; {:?}",
        m.completed, m.latency_p50_ms, m.measures
    );
    assert!(r.errors.is_empty(), "{label}: {:?}", r.errors);
    assert_eq!(
        (m.lost, m.duplicated, m.failed, m.records_unsent),
        (0, 0, 0, 0),
        "{label}"
    );

    // The load generator's count: 2 × task_count requests before SIGTERM, all answered
    // (half of them dispatching), then the tail, each either answered or refused.
    assert_eq!(measure("http_dropped"), 0.0, "{label}");
    let rate = case.rate.unwrap();
    let tail = bench_tests::workloads::fastapi::tail_slots(rate) as f64;
    let answered_after = measure("http_answered_after_sigterm");
    assert_eq!(
        answered_after + measure("http_refused_after_sigterm"),
        tail,
        "{label}: every request of the tail is accounted for"
    );
    // Tasks dispatched = dispatching requests answered: task_count before SIGTERM, and
    // those of the tail the app still answered (every other request of the tail).
    assert!(
        m.completed >= case.task_count && m.completed <= case.task_count + tail as u64 / 2,
        "{label}: {} tasks for {} dispatching requests before SIGTERM",
        m.completed,
        case.task_count
    );
    assert_eq!(measure("tasks_lost_at_shutdown"), 0.0, "{label}");
    // The first request of the tail is sent just before SIGTERM and is in flight at it:
    // uvicorn finishes it (so the shutdown check above had a dispatch to lose).
    assert!(
        answered_after >= 1.0,
        "{label}: nothing answered after SIGTERM"
    );

    // The app's own figures: a lifespan that connected to the broker, a lag monitor that
    // ran through the load, a shutdown after SIGTERM; none of them zero or absurd.
    let lifespan = measure("lifespan_startup_ms");
    assert!(lifespan > 0.0 && lifespan < 10_000.0, "{label}: {lifespan}");
    let lag = measure("event_loop_lag_p99_ms");
    assert!(lag.is_finite() && lag >= 0.0, "{label}: {lag}");
    let shutdown = measure("shutdown_ms");
    assert!(shutdown > 0.0 && shutdown < 30_000.0, "{label}: {shutdown}");
    let p50 = measure("http_latency_p50_ms");
    let p99 = measure("http_latency_p99_ms");
    assert!(p50 > 0.0 && p50 <= p99, "{label}: p50 {p50}, p99 {p99}");
    assert!(measure("http_baseline_p50_ms") > 0.0, "{label}");
    // The tasks carry the HTTP request's intended time: their end-to-end latency from it
    // is at least the part of it that the request itself took to reach the dispatch.
    assert!(m.latency_p50_ms > 0.0, "{label}: {m:?}");
    let sent = measure("http_sent_rate_per_sec");
    assert!(
        sent > rate * 0.5 && sent < rate * 2.0,
        "{label}: sent {sent}/s at {rate}/s"
    );
    assert_eq!(m.paced_target_rate, Some(rate));
    assert_eq!(
        r.configuration
            .settings
            .get("fastapi.app")
            .map(String::as_str),
        Some(match case.variant.option("app") {
            Some("integration") => "asynctasq",
            Some("direct") => "celery_direct",
            _ => "celery_threadpool",
        }),
        "{label}"
    );
}
