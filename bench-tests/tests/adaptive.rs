//! Adaptive repetitions end to end: `bench` stops a case at its CI target or its maximum,
//! keeps interleaving the cases still running, and writes why each stopped.

mod common;

use bench_tests::run::bench::{self, BenchPlan, BenchRequest};
use bench_tests::workloads::Mode;

/// The ci throughput plan cut to AsyncTasQ's drain and live at 500 tasks, no warm-up.
fn small_plan() -> BenchPlan {
    let h = common::harness();
    let request = BenchRequest {
        profile: "ci".into(),
        scenarios: vec!["throughput".into()],
        systems: vec!["asynctasq".into()],
        drivers: vec!["redis".into()],
        seed: Some(11),
        ..Default::default()
    };
    let mut plan = BenchPlan::new(&h.root, &request, h.cpus()).unwrap();
    plan.cases.retain(|c| c.mode != Mode::Paced);
    plan.sweeps.clear();
    for case in &mut plan.cases {
        case.task_count = 500;
    }
    plan.profile.warmup = 0;
    plan
}

fn run(plan: &BenchPlan, root: &tempfile::TempDir) -> (bench::BenchOutcome, serde_json::Value) {
    let outcome = bench::execute(common::harness(), plan, root.path()).unwrap();
    assert!(outcome.failures.is_empty(), "{:?}", outcome.failures);
    let stopping: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(outcome.run_dir.join("stopping.json")).unwrap(),
    )
    .unwrap();
    (outcome, stopping)
}

#[test]
fn adaptive_repetitions_stop_at_the_target_or_at_the_maximum() {
    let mut plan = small_plan();
    let root = tempfile::tempdir().unwrap();
    assert_eq!(plan.cases.len(), 2, "{:?}", plan.cases);

    // A target no run-to-run spread can meet: every case runs to the maximum.
    (plan.profile.min_repetitions, plan.profile.max_repetitions) = (Some(2), Some(3));
    plan.profile.target_ci_half_width = Some(1e-9);
    let (outcome, stopping) = run(&plan, &root);
    assert_eq!(outcome.results.len(), 6, "2 cases x the maximum of 3");
    for entry in stopping["cases"].as_array().unwrap() {
        assert_eq!(entry["stop"]["reason"], "maximum-reached", "{stopping:#}");
        assert_eq!(entry["stop"]["runs"], 3);
        assert_eq!(entry["metric"], "throughput_tasks_per_sec");
        assert!(entry["stop"]["relative_half_width"].as_f64().unwrap() > 1e-9);
    }
    // Interleaved: each round holds one run of each case.
    for repetition in 0..3 {
        let in_round = outcome
            .results
            .iter()
            .filter(|r| r.configuration.repetition == repetition)
            .count();
        assert_eq!(in_round, 2, "round {repetition}");
    }

    // A target any spread meets (±100% of the mean, the widest a profile may ask): every
    // case stops at the minimum of 4, before the maximum of 6. With 4 runs the half-width is
    // 1.6 times the coefficient of variation, so this holds up to a CV of 63%; with 3 runs
    // (2.5 times) it was missed once, at a CV above 40%, while the other tests loaded both cores.
    (plan.profile.min_repetitions, plan.profile.max_repetitions) = (Some(4), Some(6));
    plan.profile.target_ci_half_width = Some(1.0);
    let (outcome, stopping) = run(&plan, &root);
    assert_eq!(outcome.results.len(), 8, "2 cases x the minimum of 4");
    assert_eq!(stopping["rule"]["max_repetitions"], 6);
    for entry in stopping["cases"].as_array().unwrap() {
        assert_eq!(entry["stop"]["reason"], "target-reached", "{stopping:#}");
        assert_eq!(entry["stop"]["runs"], 4);
        assert!(entry["stop"]["relative_half_width"].as_f64().unwrap() <= 1.0);
    }
}

/// Without the adaptive keys nothing changes: `repetitions` runs of every case, no
/// stopping.json.
#[test]
fn fixed_repetitions_write_no_stopping_file() {
    let mut plan = small_plan();
    plan.cases.retain(|c| c.mode == Mode::Drain);
    plan.profile.repetitions = 2;
    let root = tempfile::tempdir().unwrap();
    let outcome = bench::execute(common::harness(), &plan, root.path()).unwrap();
    assert_eq!(outcome.results.len(), 2);
    assert!(!outcome.run_dir.join("stopping.json").exists());
}
