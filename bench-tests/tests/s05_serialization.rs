//! Scenario 5 (serialization) at ci size: every payload kind through every serializer
//! completes exactly, each task receiving exactly what was sent; bytes per task are read
//! back from the broker; the fresh-data check fails a run whose worker used stale data; the
//! micro-benchmark measures every supported payload.

mod common;

use bench_tests::workloads::Case;

fn case(system: &str, payload: &str, serializer: Option<&str>) -> Case {
    common::scenario_cases("serialization")
        .into_iter()
        .find(|c| {
            c.variant.system.name() == system
                && c.variant.option("payload") == Some(payload)
                && c.variant.option("serializer") == serializer
        })
        .unwrap_or_else(|| panic!("no ci serialization case {system} {payload} {serializer:?}"))
}

fn measure(out: &bench_tests::run::RunOutput, name: &str) -> f64 {
    *out.result
        .metrics
        .measures
        .get(name)
        .unwrap_or_else(|| panic!("{name} not measured: {:?}", out.result.metrics.measures))
}

/// The Django and Tortoise payloads (their cases are run by
/// `django_and_tortoise_models_travel_by_pk_and_by_value`).
fn is_other_orm(case: &Case) -> bool {
    case.variant
        .option("payload")
        .is_some_and(|p| p.starts_with("django") || p.starts_with("tortoise"))
}

/// Every drain case but the Django and Tortoise ones completes exactly; bytes per task come
/// from the broker; ORM cases that re-fetch saw the new value and timed their fetch.
#[test]
fn every_drain_completes_exactly_and_reads_its_bytes_back() {
    let cases: Vec<Case> = common::scenario_cases("serialization")
        .into_iter()
        .filter(|c| c.variant.option("micro").is_none() && !is_other_orm(c))
        .collect();
    assert_eq!(cases.len(), 22);
    let mut bytes = std::collections::BTreeMap::new();
    for case in &cases {
        let out = common::run_ci(case);
        common::assert_exact(case, &out);
        let m = &out.result.metrics;
        let read = m
            .message_bytes
            .expect("a message size read from the broker") as f64;
        assert_eq!(measure(&out, "bytes_per_task"), read);
        let payload = case.variant.option("payload").unwrap().to_string();
        let serializer = case
            .variant
            .option("serializer")
            .unwrap_or("msgspec")
            .to_string();
        let payload_bytes = measure(&out, "payload_bytes");
        assert!(
            payload_bytes > 0.0 && payload_bytes < read,
            "{}",
            case.label()
        );
        if payload == "binary" {
            // 1 MiB of random bytes cannot be stored in fewer.
            assert!(
                payload_bytes >= 1_048_576.0,
                "{}: {payload_bytes}",
                case.label()
            );
        }
        if payload == "orm" || payload == "orm_id" {
            assert_eq!(measure(&out, "orm_fresh_fraction"), 1.0, "{}", case.label());
            assert!(measure(&out, "orm_refetch_p50_ms") > 0.0);
        }
        if payload == "orm_dict" {
            // By value, the worker sees the row as it was at dispatch: a finding, recorded.
            assert_eq!(measure(&out, "orm_fresh_fraction"), 0.0, "{}", case.label());
        }
        if case.variant.system.name() == "asynctasq" {
            assert!(measure(&out, "file_path_bytes") > 0.0);
            assert!(measure(&out, "class_path_bytes") > 0.0);
        }
        eprintln!(
            "{}: {read} bytes/task, payload {payload_bytes}, {:.0} tasks/s, measures {:?}",
            case.label(),
            m.throughput_tasks_per_sec.unwrap_or(f64::NAN),
            m.measures
        );
        bytes.insert((serializer, payload), read);
    }
    // Read from the broker, so it follows what was sent: larger payloads, larger messages,
    // and the PK-only ORM reference far below the model by value.
    for serializer in ["msgspec", "json", "pickle", "msgpack"] {
        let b = |p: &str| bytes[&(serializer.to_string(), p.to_string())];
        assert!(
            b("small") < b("medium") && b("medium") < b("binary"),
            "{serializer}"
        );
    }
    let pk = bytes[&("msgspec".to_string(), "orm".to_string())];
    let by_value = bytes[&("json".to_string(), "orm_dict".to_string())];
    assert!(pk < by_value, "{pk} vs {by_value}");
    // Celery json stores the body base64-encoded, and the binary payload base64 inside it.
    let json_binary = bytes[&("json".to_string(), "binary".to_string())];
    assert!(
        json_binary > 1_048_576.0 * 4.0 / 3.0 * 4.0 / 3.0,
        "{json_binary}"
    );
}

/// Django's and Tortoise's models through AsyncTasQ's hook for each (its message names that
/// ORM's model class), and Celery's json id and by-value dict: every run completes exactly,
/// the re-fetching ones see the row's new value and time their fetch, the by-value one sees
/// the value at dispatch, and the PK reference is far smaller than the model by value.
#[test]
fn django_and_tortoise_models_travel_by_pk_and_by_value() {
    for (orm, model) in [
        ("django", "serialization_django.DjUser"),
        ("tortoise", "serialization_tortoise.TtUser"),
    ] {
        let mut payload_bytes = std::collections::BTreeMap::new();
        for (system, payload, serializer) in [
            ("asynctasq", orm.to_string(), None),
            ("celery", format!("{orm}_id"), Some("json")),
            ("celery", format!("{orm}_dict"), Some("json")),
        ] {
            let case = case(system, &payload, serializer);
            let out = common::run_ci(&case);
            common::assert_exact(&case, &out);
            let read = out
                .result
                .metrics
                .message_bytes
                .expect("read from the broker") as f64;
            assert_eq!(measure(&out, "bytes_per_task"), read);
            if payload.ends_with("_dict") {
                assert_eq!(measure(&out, "orm_fresh_fraction"), 0.0, "{}", case.label());
                assert!(!out
                    .result
                    .metrics
                    .measures
                    .contains_key("orm_refetch_p50_ms"));
            } else {
                assert_eq!(measure(&out, "orm_fresh_fraction"), 1.0, "{}", case.label());
                let (p50, p99) = (
                    measure(&out, "orm_refetch_p50_ms"),
                    measure(&out, "orm_refetch_p99_ms"),
                );
                assert!(p50 > 0.0 && p99 >= p50, "{}: {p50} {p99}", case.label());
            }
            let settings = &out.result.configuration.settings;
            assert!(
                settings["orm"].to_lowercase().starts_with(orm),
                "{}",
                settings["orm"]
            );
            if system == "asynctasq" {
                // AsyncTasQ's hook for this ORM stored the model's class and file.
                let paths = &settings["message_paths"];
                assert!(paths.contains(model), "{paths}");
                assert!(measure(&out, "file_path_bytes") > 0.0);
            }
            eprintln!(
                "{}: {read} bytes/task, {:.0} tasks/s, measures {:?}",
                case.label(),
                out.result
                    .metrics
                    .throughput_tasks_per_sec
                    .unwrap_or(f64::NAN),
                out.result.metrics.measures
            );
            payload_bytes.insert(payload, measure(&out, "payload_bytes"));
        }
        let (pk, by_value) = (&payload_bytes[orm], &payload_bytes[&format!("{orm}_dict")]);
        assert!(pk * 10.0 < *by_value, "{orm}: {pk} vs {by_value}");
    }
}

/// The fresh-data check can fail: the by-value case, whose worker sees the row as it was
/// at dispatch, run with the re-fetching cases' expectation is flagged and invalid.
#[test]
fn the_fresh_data_check_fails_a_worker_that_used_stale_data() {
    let mut case = case("celery", "orm_dict", Some("json"));
    case.variant = case.variant.with("expect", "new");
    let profile = common::ci_profile();
    let request = common::request(&case, &profile);
    let _shared =
        bench_tests::run::bench::measurement_lock(false, std::time::Duration::from_secs(1800))
            .unwrap();
    let out = bench_tests::run::run(common::harness(), &request, &mut |_| {}).unwrap();
    assert!(common::processes_of_run(&request.run_id).is_empty());
    let m = &out.result.metrics;
    assert_eq!(m.failed, case.task_count, "every task reported stale data");
    let errors = out.result.errors.join("\n");
    assert!(errors.contains("fresh-data check"), "{errors}");
    assert!(bench_tests::analysis::summary::validity(&out.result).is_err());
}

/// The micro-benchmark measures every payload each serializer can carry, states the GC,
/// and says why it skipped the one it cannot.
#[test]
fn micro_benchmarks_measure_every_supported_payload() {
    let cases: Vec<Case> = common::scenario_cases("serialization")
        .into_iter()
        .filter(|c| c.variant.option("micro") == Some("on"))
        .collect();
    assert_eq!(cases.len(), 4);
    for case in &cases {
        let out = common::run_ci(case);
        assert!(out.result.errors.is_empty(), "{:?}", out.result.errors);
        let settings = &out.result.configuration.settings;
        assert_eq!(settings["gc"], "enabled");
        let serializer = case.variant.option("serializer").unwrap();
        for kind in ["small", "medium", "complex", "binary", "orm"] {
            if serializer == "msgpack" && kind == "complex" {
                assert!(settings["skipped_complex"].contains("cannot encode"));
                assert!(!out
                    .result
                    .metrics
                    .measures
                    .contains_key("encode_complex_p50_us"));
                continue;
            }
            let (p50, p99) = (
                measure(&out, &format!("encode_{kind}_p50_us")),
                measure(&out, &format!("encode_{kind}_p99_us")),
            );
            assert!(
                p50 > 0.0 && p99 >= p50,
                "{} {kind}: {p50} {p99}",
                case.label()
            );
        }
        if serializer == "msgspec" || serializer == "msgpack" {
            assert!(measure(&out, "msgpack_vs_json_ratio") > 0.0);
        }
        if serializer == "msgspec" {
            assert!(measure(&out, "hook_registration_us") > 0.0);
        }
        eprintln!("{}: {:?}", case.label(), out.result.metrics.measures);
    }
}
