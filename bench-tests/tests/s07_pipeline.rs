//! Scenario 7 (pipeline) at ci size: 300 orders through validate → charge → email →
//! inventory on each system at each ci rate, checked step by step against the seed; and the
//! checks themselves, on real data: the Python tasks' plan equals the harness's, and the
//! inventory check flags an order applied twice, one never applied and a failed order applied.

mod common;

use std::time::Duration;

use bench_tests::provision::brokers::{block_on, Driver};
use bench_tests::workloads::pipeline::{self, check_inventory, InventoryDb, Plan};
use rstest::rstest;
use sqlx::{Connection, PgConnection};

/// Whether a database called `name` exists on the server of `url`.
fn database_exists(url: &str, name: &str) -> bool {
    let admin = bench_tests::provision::brokers::sql::with_database(url, "postgres");
    let name = name.to_string();
    block_on(Duration::from_secs(10), async move {
        let mut conn = PgConnection::connect(&admin).await?;
        let found: Option<i32> = sqlx::query_scalar("SELECT 1 FROM pg_database WHERE datname = $1")
            .bind(name)
            .fetch_optional(&mut conn)
            .await?;
        Ok(found.is_some())
    })
    .expect("querying pg_database")
}

#[rstest]
fn every_order_passes_each_step_exactly_as_the_seed_says(#[values(0, 1, 2, 3)] index: usize) {
    let cases = common::scenario_cases("pipeline");
    assert_eq!(cases.len(), 4, "2 systems x 2 ci rates: the values above");
    let case = &cases[index];
    let profile = common::ci_profile();
    let plan = Plan::of(profile.pipeline.orders);
    assert_eq!(case.task_count, plan.records());
    let out = common::run_ci(case);
    // Every record the seed foresees, once; none failed; every check passed (the inventory
    // table among them: each charged order applied exactly once, the failed one never).
    common::assert_exact(case, &out);
    let m = &out.result.metrics;
    let measure = |name: &str| m.measures[name];
    assert_eq!(
        plan.failed,
        vec![50],
        "the ci size holds a permanent failure"
    );
    assert_eq!(measure("orders_failed_permanently"), 1.0);
    assert_eq!(measure("orders_failed_predicted"), 1.0);
    assert_eq!(measure("charge_retries"), plan.retries() as f64);
    assert_eq!(measure("charge_retries_predicted"), plan.retries() as f64);
    assert_eq!(
        m.http_requests,
        Some(plan.charged.len() as u64),
        "one email per charged order"
    );
    // The producer sent orders, not records, and its rate is in orders.
    let rate = case.rate.unwrap();
    assert_eq!(m.paced_target_rate, Some(rate));
    assert!(
        m.enqueue_rate_per_sec < rate * 1.1,
        "{} orders/s sent at {rate}",
        m.enqueue_rate_per_sec
    );
    // An order cannot finish before its email's injected latency, nor a retry before its delay.
    let email_ms = profile.pipeline.email_latency_ms as f64;
    assert!(measure("email_latency_p50_ms") >= email_ms);
    assert!(measure("order_latency_p50_ms") >= email_ms);
    assert!(measure("order_latency_p99_ms") >= measure("order_latency_p50_ms"));
    assert!(measure("charge_retry_wait_p50_ms") >= pipeline::RETRY_DELAY_S as f64 * 1000.0);
    assert_eq!(m.latency_p50_ms, measure("order_latency_p50_ms"));
    // The settings behind the figures are stated, and the run's database is gone.
    let settings = &out.result.configuration.settings;
    assert_eq!(settings["pipeline.seed"], pipeline::SEED.to_string());
    assert_eq!(settings["pipeline.predicted_failed_orders"], "[50]");
    let db = &settings["pipeline.inventory_database"];
    assert!(db.starts_with("tasq_bench_pipe"), "{db}");
    let broker = common::harness().broker(Driver::Postgres).unwrap();
    assert!(
        !database_exists(&broker.info().url, db),
        "the run's database {db} outlived it"
    );
}

/// The tasks compute their sequence numbers from the Python twin of the plan: it must be
/// the harness's, or records land in the wrong slots.
#[test]
fn the_python_plan_is_the_harness_plan() {
    let h = common::harness();
    let orders = 10_000;
    let output = std::process::Command::new(&h.python.python)
        .args(["-m", "tasq_fixtures.pipeline_plan"])
        .args([
            pipeline::SEED.to_string(),
            orders.to_string(),
            pipeline::CHARGE_FAILURE_BP.to_string(),
            pipeline::MAX_ATTEMPTS.to_string(),
        ])
        .env("PYTHONPATH", h.fixtures())
        .output()
        .expect("running the Python plan");
    assert!(output.status.success(), "{output:?}");
    let python: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let plan = Plan::of(orders);
    assert_eq!(python["records"], plan.records());
    assert_eq!(python["attempts"], plan.total_attempts);
    assert_eq!(python["retries"], plan.retries());
    assert_eq!(python["failed"], serde_json::json!(plan.failed));
    // Enough to tell two hashes apart: 520 retries, two permanent failures.
    assert_eq!((plan.retries(), plan.failed.len()), (520, 2));
}

/// The inventory check, against a real table: clean when each charged order is applied
/// once, and it names an order applied twice, one never applied and a failed one applied.
#[test]
fn the_inventory_check_flags_an_order_applied_twice() {
    let h = common::harness();
    let plan = Plan::of(60);
    assert_eq!(plan.failed, vec![50]);
    let db = InventoryDb::create(h, plan.orders).unwrap();
    let apply = |order: u64| {
        pipeline::execute(
            &db.url,
            format!("UPDATE inventory SET applied = applied + 1 WHERE order_id = {order}"),
        )
        .unwrap()
    };
    let check = || check_inventory(&db.url, &plan).unwrap();
    let untouched = check();
    assert_eq!(untouched.applied_once, 0);
    assert_eq!(
        untouched.problems,
        ["inventory: 59 (0, 1, 2, 3, 4, 5, 6, 7, 8, 9, ...) charged orders never applied"]
    );
    for &order in &plan.charged {
        apply(order);
    }
    assert_eq!(check().applied_once, 59);
    assert!(check().problems.is_empty(), "{:?}", check().problems);

    apply(7);
    let doubled = check();
    assert_eq!(doubled.applied_once, 58);
    assert_eq!(
        doubled.problems,
        ["inventory: 1 (7) charged orders applied more than once"]
    );
    apply(50);
    pipeline::execute(
        &db.url,
        "UPDATE inventory SET applied = 0 WHERE order_id = 3".into(),
    )
    .unwrap();
    assert_eq!(
        check().problems,
        [
            "inventory: 1 (7) charged orders applied more than once",
            "inventory: 1 (3) charged orders never applied",
            "inventory: 1 (50) permanently failed orders applied",
        ]
    );
    pipeline::execute(&db.url, "DELETE FROM inventory WHERE order_id = 12".into()).unwrap();
    assert!(check()
        .problems
        .contains(&"inventory: 1 (12) orders missing from the inventory table".to_string()));

    // The database lives as long as its value.
    let (url, name) = (db.url.clone(), db.name.clone());
    assert!(database_exists(&url, &name));
    drop(db);
    assert!(
        !database_exists(&url, &name),
        "{name} outlived its InventoryDb"
    );
}

/// Bad profile values are refused with the file, the key and what to give.
#[test]
fn a_bad_pipeline_section_says_what_to_give() {
    use bench_tests::workloads::Workload;
    let mut profile = common::ci_profile();
    profile.pipeline.rates = vec![0.0];
    let err = pipeline::Pipeline
        .validate_profile(&profile, "ci.toml")
        .unwrap_err()
        .to_string();
    assert!(err.contains("ci.toml: pipeline.rates holds 0"), "{err}");
    let mut profile = common::ci_profile();
    profile.pipeline.orders = 100_000;
    let err = pipeline::Pipeline
        .validate_profile(&profile, "ci.toml")
        .unwrap_err()
        .to_string();
    assert!(err.contains("more than run_timeout_secs"), "{err}");
}
