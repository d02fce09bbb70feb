//! Scenario 2 (I/O-bound) at ci size: each task makes one GET with 100 ms injected latency
//! to the harness's mock server; both systems at each concurrency of the profile.

mod common;

use rstest::rstest;

#[rstest]
fn every_task_makes_its_call_and_waits_for_it(#[values(0, 1, 2, 3)] index: usize) {
    let case = &common::scenario_cases("io").remove(index);
    let out = common::run_ci(case);
    let m = &out.result.metrics;
    common::assert_exact(case, &out);
    assert_eq!(
        m.http_requests,
        Some(case.task_count),
        "the server saw every task's request"
    );
    let latency_us = case.http_latency_ms.unwrap() as f64 * 1000.0;
    assert!(
        out.histograms.service.min() as f64 / 1000.0 >= latency_us,
        "no task finished before its injected latency"
    );
    // Throughput can never beat concurrency / latency.
    let ideal = f64::from(case.variant.concurrency) * 1000.0 / case.http_latency_ms.unwrap() as f64;
    let throughput = m.throughput_tasks_per_sec.expect("many tasks: a rate");
    assert!(throughput <= ideal * 1.05, "{throughput} > ideal {ideal}");
}

/// The mock server's own cost at the highest concurrency used must be negligible against
/// the 100 ms it injects.
#[test]
fn mock_server_overhead_is_negligible_at_the_highest_concurrency() {
    let local = bench_tests::profile::Profile::load(&bench_tests::project_root(), "local").unwrap();
    let highest = *local.io.concurrency.iter().max().unwrap() as usize;
    // A timing: nothing else of the harness runs beside it.
    let _exclusive =
        bench_tests::run::bench::measurement_lock(true, std::time::Duration::from_secs(1800))
            .unwrap();
    let server = bench_tests::workloads::mock_http::MockHttpServer::start().unwrap();
    let overhead_us =
        bench_tests::workloads::mock_http::overhead_us(&server, highest, 5, local.io.latency_ms)
            .unwrap();
    eprintln!(
        "mock server overhead at concurrency {highest}: {overhead_us:.0} us per request (median)"
    );
    assert_eq!(server.requests(), highest as u64 * 5);
    assert!(
        overhead_us < 0.05 * local.io.latency_ms as f64 * 1000.0,
        "{overhead_us} us is not negligible"
    );
}
