//! Scenario 12 (api-overhead) at ci size: the micro-benchmark script runs for both systems,
//! its figures are finite and positive, a round trip costs more than building the same
//! dispatch, the idle worker's commands were seen by the MONITOR, and no key of the run's
//! queue is left in any Redis database afterwards.

mod common;

use rstest::rstest;

use bench_tests::systems::System;
use bench_tests::workloads::{self, api_overhead, Workload};

#[rstest]
fn builds_sends_pools_and_idle_worker_are_measured(#[values(0, 1)] index: usize) {
    let case = common::scenario_cases("api-overhead").remove(index);
    let system = case.variant.system;
    let out = common::run_ci(&case);
    let r = &out.result;
    assert!(r.errors.is_empty(), "{}: {:?}", case.label(), r.errors);
    let m = &r.metrics.measures;
    let get = |name: &str| {
        *m.get(name)
            .unwrap_or_else(|| panic!("{}: no {name} in {m:?}", case.label()))
    };

    let (builds, sends): (&[&str], &[&str]) = if system == System::ASYNCTASQ {
        (
            &["direct", "delay", "delay_queue", "driver_override"],
            &["direct", "delay", "delay_queue", "driver_override"],
        )
    } else {
        (
            &["direct", "delay", "delay_queue", "set"],
            &["direct", "delay", "delay_queue", "set"],
        )
    };
    let mut positive = vec![
        "build_loop_ns".to_string(),
        "broker_ping_us".into(),
        "broker_push_us".into(),
        "message_bytes".into(),
        "idle_cpu_seconds_per_min".into(),
        "idle_broker_commands_per_min".into(),
    ];
    positive.extend(builds.iter().map(|b| format!("build_{b}_ns")));
    positive.extend(builds.iter().map(|b| format!("build_{b}_p99_ns")));
    positive.extend(sends.iter().map(|s| format!("send_{s}_us")));
    if system == System::ASYNCTASQ {
        positive.extend([
            "prepare_direct_ns".into(),
            "prepare_driver_override_ns".into(),
        ]);
        // Brokers the harness reaches here; SQS (moto) only when it could be provided.
        for driver in ["redis", "postgres", "mysql", "rabbitmq"] {
            positive.push(format!("pool_init_{driver}_ms"));
        }
    } else {
        assert!(!m.contains_key("pool_init_redis_ms"), "{m:?}");
    }
    for name in &positive {
        let v = get(name);
        assert!(v.is_finite() && v > 0.0, "{}: {name} = {v}", case.label());
    }
    for name in ["chaining_overhead_us", "send_overhead_us"] {
        assert!(get(name).is_finite(), "{name}");
    }
    if system == System::ASYNCTASQ {
        assert!(get("driver_override_overhead_us").is_finite());
    }
    // Every declared measure the run wrote is one the summary knows.
    let declared: Vec<&str> = api_overhead::ApiOverhead
        .measures()
        .iter()
        .map(|d| d.name)
        .collect();
    for name in m.keys().filter(|k| !k.starts_with("idle_cmd_")) {
        assert!(
            declared.contains(&name.as_str()),
            "undeclared measure {name}"
        );
    }

    // A round trip does at least what the build does, plus a broker round trip.
    for s in sends {
        let build_ns = get(&format!("build_{s}_ns"));
        let send_ns = get(&format!("send_{s}_us")) * 1000.0;
        assert!(
            send_ns > build_ns,
            "{}: round trip {s} ({send_ns} ns) not slower than its build ({build_ns} ns)",
            case.label()
        );
    }
    // A message as read back from the broker holds at least the task's name and arguments.
    assert!(get("message_bytes") > 100.0, "{m:?}");

    // Nothing of the run's queue is left, in any database of the server.
    let queue = &r.configuration.settings["api_overhead.queue"];
    assert!(queue.starts_with("bench_"), "{queue}");
    for db in 0..16 {
        let url = format!("redis://127.0.0.1:6379/{db}");
        let left = api_overhead::queue_keys(&url, queue).expect("reading Redis");
        assert!(left.is_empty(), "db {db} still holds {left:?}");
    }
    assert_eq!(r.configuration.scenario, "api-overhead");
    assert!(r.metrics.worker_stopped_gracefully);
}

#[test]
fn one_case_per_system_on_redis_only() {
    let profile = common::ci_profile();
    let w = workloads::get("api-overhead").unwrap();
    let redis = w.cases(&profile, bench_tests::provision::brokers::Driver::Redis, 2);
    let systems: Vec<System> = redis.iter().map(|c| c.variant.system).collect();
    assert_eq!(systems, [System::ASYNCTASQ, System::CELERY]);
    assert!(w
        .cases(
            &profile,
            bench_tests::provision::brokers::Driver::Postgres,
            2
        )
        .is_empty());
}
