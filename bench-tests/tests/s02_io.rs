//! Scenario 2 (I/O-bound) at ci size: each task makes one GET with 100 ms injected latency
//! to the harness's mock server; both systems at each concurrency of the profile.

mod common;

use rstest::rstest;

#[rstest]
fn every_task_makes_its_call_and_waits_for_it(
    #[values(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11)] index: usize,
) {
    let case = &common::scenario_cases("io").remove(index);
    let out = common::run_ci(case);
    let m = &out.result.metrics;
    common::assert_exact(case, &out);
    // The client is the variant's, recorded with its installed version.
    let client = case.variant.option("http").expect("an http option");
    let recorded = out
        .result
        .configuration
        .http_client
        .as_deref()
        .unwrap_or("");
    let version = &out.result.environment.versions[client];
    assert_eq!(recorded, format!("{client} {version}"));
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

/// Each system is measured with each of its clients, and Celery with its green pools, so
/// neither the client nor the pool is confounded with the queue.
#[test]
fn io_variants_cover_every_client_and_green_pool() {
    let cases = common::scenario_cases("io");
    let profile = common::ci_profile();
    assert_eq!(
        cases.len(),
        6 * profile.io.concurrency.len(),
        "the test above runs each"
    );
    let labels: Vec<String> = cases
        .iter()
        .filter(|c| c.variant.concurrency == profile.io.concurrency[0])
        .map(|c| {
            format!(
                "{} {}",
                c.variant.system,
                common::pool_and_options(&c.variant)
            )
        })
        .collect();
    assert_eq!(
        labels,
        [
            "asynctasq asyncio-http_aiohttp",
            "asynctasq asyncio-http_httpx",
            "celery threads-acks_late-http_requests",
            "celery threads-acks_late-http_httpx",
            "celery gevent-acks_late-http_requests",
            "celery eventlet-acks_late-http_requests",
        ]
    );
}

/// A finding, kept: Celery's green pools acking late on Redis ack from every green thread,
/// and kombu's Redis transport pools 10 connections, so with many green threads some acks
/// fail with MaxConnectionsError. Celery logs "Couldn't ack" and runs on; those tasks would
/// be delivered again. The harness makes such a run invalid, and green pools on Redis get a
/// pool of concurrency + 10 connections (celery/celery#1350).
///
/// It is a race (seen in 2 of 5 runs of 1,000 tasks at 100 green threads, and in 1 of 3 at
/// 50), so this tries up to 8 runs and is not part of CI; run it with
/// `cargo test -p bench-tests --test s02_io -- --ignored celery_green`.
#[test]
#[ignore = "a race: up to 8 runs of 1,000 tasks; run on demand"]
fn celery_green_threads_beyond_kombus_redis_pool_fail_their_acks() {
    let mut case = common::scenario_cases("io")
        .into_iter()
        .find(|c| c.variant.pool == "eventlet")
        .expect("an eventlet io case");
    case.variant.concurrency = 100;
    case.task_count = 1000;
    let profile = common::ci_profile();
    let _shared =
        bench_tests::run::bench::measurement_lock(false, std::time::Duration::from_secs(1800))
            .unwrap();
    for attempt in 1..=8 {
        let mut request = common::request(&case, &profile);
        // kombu's default pool: the options the harness would set, left out.
        request.extra_worker_env = vec![("BENCH_CELERY_TRANSPORT_OPTIONS".into(), "{}".into())];
        let out = bench_tests::run::run_once(common::harness(), &request, &mut |_| {}).unwrap();
        let errors = out.result.errors.join("\n");
        eprintln!("attempt {attempt}: {errors}");
        assert!(
            errors.contains("redis_max_connections"),
            "the default pool was used"
        );
        if errors.contains("contains 'Couldn't ack'") {
            assert!(bench_tests::analysis::summary::validity(&out.result).is_err());
            return;
        }
    }
    panic!("no ack failed in 8 runs at 100 green threads on kombu's default Redis pool");
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
