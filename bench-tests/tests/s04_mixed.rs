//! Scenario 4 (mixed) at ci size: 60% I/O, 30% light CPU, 10% heavy CPU in one seeded order,
//! drained by AsyncTasQ, Celery threads and Celery prefork at the same concurrency.

mod common;

use bench_tests::workloads::mixed as mix;
use rstest::rstest;

#[rstest]
fn every_kind_runs_exactly_and_does_its_work(#[values(0, 1, 2)] index: usize) {
    let case = common::scenario_cases("mixed").remove(index);
    let out = common::run_ci(&case);
    let m = &out.result.metrics;
    common::assert_exact(&case, &out);

    // The same sequence the harness generated from the profile's seed, whatever the system.
    let kinds = case.mix.as_ref().unwrap().sequence(case.task_count);
    assert_eq!(
        out.result.configuration.mix_fingerprint.as_deref(),
        Some(mix::fingerprint(&kinds).as_str())
    );
    let counts = mix::counts(&kinds);
    assert_eq!(
        m.http_requests,
        Some(counts[&mix::Kind::Io]),
        "one request per I/O task, none for the others"
    );
    let by_kind = m.by_kind.as_ref().expect("per-kind metrics");
    for (kind, expected) in &counts {
        let k = &by_kind[kind.name()];
        assert_eq!(
            (k.expected, k.completed),
            (*expected, *expected),
            "{kind:?}"
        );
    }
    // Each kind took the time its work takes: I/O at least the injected latency, heavy
    // pbkdf2 milliseconds, light JSON parsing far less than either.
    let latency_ms = case.http_latency_ms.unwrap() as f64;
    let (io, light, heavy) = (&by_kind["io"], &by_kind["light_cpu"], &by_kind["heavy_cpu"]);
    assert!(io.service_p50_ms >= latency_ms, "{io:?}");
    assert!(heavy.service_p50_ms > 5.0, "{heavy:?}");
    assert!(
        light.service_p50_ms < heavy.service_p50_ms / 5.0,
        "{light:?} vs {heavy:?}"
    );
}
