//! Reports, summaries, charts and comparisons from the fixed synthetic runs under
//! fixtures/results/ (made by fixtures/results/make_synthetic.py; not measurements).

use std::path::PathBuf;

use bench_tests::analysis::compare;
use bench_tests::profile::Profile;
use bench_tests::report::{self, SummaryFile};

fn synthetic(name: &str) -> PathBuf {
    bench_tests::project_root()
        .join("fixtures/results")
        .join(name)
}

fn regenerate() -> (tempfile::TempDir, SummaryFile) {
    let runs = report::load_runs(&synthetic("synthetic")).unwrap();
    let out = tempfile::Builder::new()
        .prefix("synthetic-")
        .tempdir()
        .unwrap();
    let dir = out.path().join("synthetic");
    std::fs::create_dir_all(&dir).unwrap();
    let criteria = Profile::load(&bench_tests::project_root(), "local")
        .unwrap()
        .criteria;
    let file = report::write(&dir, &runs, &[], &criteria, Some(42), &[]).unwrap();
    (out, file)
}

#[test]
fn report_and_summary_match_their_snapshots() {
    let (out, _) = regenerate();
    let dir = out.path().join("synthetic");
    let report_md = std::fs::read_to_string(dir.join("report.md")).unwrap();
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("summary.json")).unwrap()).unwrap();
    insta::with_settings!({ snapshot_path => "../../snapshots", prepend_module_to_snapshot => false }, {
        insta::assert_snapshot!("synthetic_report_md", report_md);
        insta::assert_json_snapshot!("synthetic_summary_json", summary);
    });
}

#[test]
fn summary_has_the_documented_keys_and_flags_the_outlier() {
    let (_out, file) = regenerate();
    let value = serde_json::to_value(&file).unwrap();
    for key in [
        "system",
        "driver",
        "scenario",
        "variant",
        "metric",
        "n",
        "mean",
        "median",
        "stddev",
        "ci95_low",
        "ci95_high",
        "outliers",
    ] {
        assert!(value["groups"][0].get(key).is_some(), "groups[].{key}");
    }
    for key in [
        "a",
        "b",
        "scenario",
        "driver",
        "variant_a",
        "variant_b",
        "metric",
        "ratio",
        "ratio_ci95_low",
        "ratio_ci95_high",
        "welch_p",
        "mann_whitney_p",
        "cohens_d",
        "verdict",
    ] {
        assert!(
            value["comparisons"][0].get(key).is_some(),
            "comparisons[].{key}"
        );
    }
    let celery = file
        .groups
        .iter()
        .find(|g| g.system == "celery" && g.metric == "throughput_tasks_per_sec")
        .unwrap();
    assert_eq!(
        celery.outliers,
        ["celery-redis-throughput-threads-c10-drain-r3-synthetic"]
    );
    let cmp = file
        .comparisons
        .iter()
        .find(|c| c.metric == "throughput_tasks_per_sec")
        .unwrap();
    assert!(cmp.ratio > 3.0 && cmp.ratio_ci95_low <= cmp.ratio && cmp.ratio <= cmp.ratio_ci95_high);
    assert!(
        cmp.verdict
            .starts_with("asynctasq asyncio-c10 drain faster than celery threads-c10 drain"),
        "{}",
        cmp.verdict
    );
    // The seed's targets: 3,800 tasks/s fails "> 5,000"; latency needs paced runs.
    let status = |name: &str| {
        file.criteria
            .iter()
            .find(|v| v.name == name)
            .map(|v| v.status.clone())
            .unwrap()
    };
    assert_eq!(status("throughput"), "fail");
    assert_eq!(status("rss-per-worker"), "pass");
    assert_eq!(status("latency-p99"), "not-measured");
    assert_eq!(status("faster-than-celery"), "pass");
}

#[test]
fn charts_are_svg_and_hold_every_series() {
    let (out, _) = regenerate();
    let charts = out.path().join("synthetic/charts");
    for name in [
        "throughput-throughput-redis.svg",
        "latency-throughput-redis.svg",
        "rss-throughput-redis.svg",
    ] {
        let svg =
            std::fs::read_to_string(charts.join(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(
            svg.trim_start().starts_with("<svg") && svg.trim_end().ends_with("</svg>"),
            "{name}"
        );
        assert!(
            svg.contains("asynctasq asyncio-c10 drain") && svg.contains("celery threads-c10 drain"),
            "{name} lacks a series"
        );
    }
}

#[test]
fn runs_csv_has_one_row_per_run() {
    let (out, _) = regenerate();
    let csv = std::fs::read_to_string(out.path().join("synthetic/runs.csv")).unwrap();
    assert_eq!(csv.lines().count(), 1 + 10);
    assert!(csv.starts_with("benchmark_id,scenario,driver,system"));
}

#[test]
fn compare_flags_an_injected_regression_and_ignores_noise() {
    let base = report::load_runs(&synthetic("synthetic")).unwrap();
    let regressed = compare::compare(
        &base,
        &report::load_runs(&synthetic("synthetic-regressed")).unwrap(),
    );
    let status = |changes: &[compare::Change], system: &str, metric: &str| {
        changes
            .iter()
            .find(|c| c.group.contains(system) && c.metric == metric)
            .map(|c| c.status.clone())
            .unwrap()
    };
    assert_eq!(
        status(&regressed, "asynctasq", "throughput_tasks_per_sec"),
        "regressed"
    );
    assert_eq!(
        status(&regressed, "celery", "throughput_tasks_per_sec"),
        "no change"
    );
    let noise = compare::compare(
        &base,
        &report::load_runs(&synthetic("synthetic-noise")).unwrap(),
    );
    assert!(
        noise.iter().all(|c| c.status == "no change"),
        "{}",
        compare::render(&noise)
    );
}
