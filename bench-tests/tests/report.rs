//! Reports, summaries, charts and comparisons from the fixed runs under fixtures/results/:
//! synthetic*/ (made by fixtures/results/make_synthetic.py; not measurements),
//! design-format/ (DESIGN.md's documented keys only) and aa/{a,b}/ (real runs of one
//! configuration recorded twice in one session: the A/A check).

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
    // Drain runs only: no latency chart (drain latency is a queueing artefact).
    assert!(!charts.join("latency-throughput-redis.svg").exists());
    for name in [
        "throughput-drain-throughput-redis.svg",
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

/// Writes the report of `runs` into a temporary directory; returns it and report.md.
fn report_of(runs: &[bench_tests::result::RunResult]) -> (tempfile::TempDir, String) {
    let out = tempfile::Builder::new()
        .prefix("report-")
        .tempdir()
        .unwrap();
    let dir = out.path().join("run");
    std::fs::create_dir_all(&dir).unwrap();
    report::write(&dir, runs, &[], &[], None, &[]).unwrap();
    let md = std::fs::read_to_string(dir.join("report.md")).unwrap();
    (out, md)
}

#[test]
fn runs_in_the_documented_format_are_reported_and_compared() {
    // Before: "missing field `worker_processes`" (and every other harness-only field).
    let runs = report::load_runs(&synthetic("design-format")).unwrap();
    assert_eq!(runs.len(), 10);
    let (out, md) = report_of(&runs);
    assert!(!md.contains("NaN"), "{md}");
    // Measured: throughput and its comparison; not measured (enqueue rate, PSS): "–".
    assert!(
        md.contains("| asynctasq | asyncio | drain | 5 | 1277.5 ["),
        "{md}"
    );
    assert!(md.contains("| – |"), "{md}");
    assert!(
        md.contains("asynctasq asyncio drain faster than celery threads drain"),
        "{md}"
    );
    let csv = std::fs::read_to_string(out.path().join("run/runs.csv")).unwrap();
    assert!(!csv.contains("NaN"), "{csv}");
    let changes = compare::compare(&runs, &runs);
    assert!(
        changes.iter().all(|c| c.status == "no change"),
        "{}",
        compare::render(&changes)
    );
    assert!(!compare::render(&changes).contains("NaN"));
}

#[test]
fn the_report_lists_each_excluded_run_with_its_reason() {
    let mut runs = report::load_runs(&synthetic("synthetic")).unwrap();
    runs[0].metrics.failed = 3;
    runs[1].errors = vec!["mock HTTP server answered 290 requests, expected 300".into()];
    let (_out, md) = report_of(&runs);
    assert!(md.contains("**2 of 10 runs excluded**"), "{md}");
    assert!(md.contains("## Excluded runs"), "{md}");
    let line = |id: &str| {
        md.lines()
            .find(|l| l.starts_with(&format!("- `{id}`")))
            .map(String::from)
    };
    assert!(line(&runs[0].benchmark_id).unwrap().ends_with(": 3 failed"));
    assert!(line(&runs[1].benchmark_id)
        .unwrap()
        .ends_with("errors: mock HTTP server answered 290 requests, expected 300"));
}

#[test]
fn compare_excludes_invalid_runs_and_says_when_it_cannot_tell() {
    let base = report::load_runs(&synthetic("synthetic")).unwrap();
    let mut new = report::load_runs(&synthetic("synthetic-regressed")).unwrap();
    // Three of AsyncTasQ's five new runs failed a workload check: 5 vs 2 left.
    for r in new
        .iter_mut()
        .filter(|r| r.configuration.system == "asynctasq")
        .take(3)
    {
        r.errors = vec!["configuration not verified".into()];
    }
    let changes = compare::compare(&base, &new);
    let tp = changes
        .iter()
        .find(|c| c.group.contains("asynctasq") && c.metric == "throughput_tasks_per_sec")
        .unwrap();
    assert_eq!((tp.base_n, tp.new_n), (5, 2));
    // 5 vs 2 cannot give Mann-Whitney p < 0.05: before, this read "regressed" on the
    // strength of runs that should not count, or "no change" when too few.
    assert_eq!(tp.status, "cannot tell (n = 5 vs 2)");
}

#[test]
fn throughput_charts_hold_one_mode_each_coloured_by_system() {
    let runs = report::load_runs(&synthetic("aa/a")).unwrap();
    let (out, _md) = report_of(&runs);
    let charts = out.path().join("run/charts");
    let drain =
        std::fs::read_to_string(charts.join("throughput-drain-throughput-redis.svg")).unwrap();
    // Before, paced runs (their offered rate) stood beside the drain in one chart.
    assert!(
        drain.contains("asyncio-c10 drain") && !drain.contains("paced"),
        "{drain}"
    );
    let paced =
        std::fs::read_to_string(charts.join("throughput-paced-throughput-redis.svg")).unwrap();
    assert!(paced.contains("asyncio-c10-at100 paced") && !paced.contains(" drain"));
    // The legend names the system once.
    assert_eq!(paced.matches(">\nasynctasq\n</text>").count(), 1, "{paced}");
    // Latency is charted from paced runs only.
    let latency = std::fs::read_to_string(charts.join("latency-throughput-redis.svg")).unwrap();
    assert!(latency.contains("paced") && !latency.contains("drain") && !latency.contains(" live"));
}

/// The A/A check: one configuration (AsyncTasQ, Redis, ci throughput: drain, live, paced at
/// 100 and 300 tasks/s) recorded twice in one session, 5 repetitions each. Comparing the two
/// must find no regression and no improvement.
#[test]
fn a_a_runs_of_one_configuration_show_no_difference() {
    let a = report::load_runs(&synthetic("aa/a")).unwrap();
    let b = report::load_runs(&synthetic("aa/b")).unwrap();
    let changes = compare::compare(&a, &b);
    let rendered = compare::render(&changes);
    assert!(changes.len() >= 4 * 4, "{rendered}");
    for c in &changes {
        assert!(
            !matches!(c.status.as_str(), "regressed" | "improved" | "changed"),
            "A/A: {} {} is {}\n{rendered}",
            c.group,
            c.metric,
            c.status
        );
    }
    // 5 vs 5 can reach significance: the check has power, it is not "cannot tell".
    assert!(
        changes.iter().all(|c| c.status == "no change"),
        "{rendered}"
    );
    // The report states the noise floor it measured.
    let summary = bench_tests::analysis::summary::summarize(&a);
    let tp = summary
        .noise_floor
        .iter()
        .find(|n| n.metric == "throughput_tasks_per_sec")
        .unwrap();
    assert_eq!(tp.groups, 4);
    assert!(tp.median_cv > 0.0 && tp.median_cv < 0.5, "{tp:?}");
    let (_out, md) = report_of(&a);
    assert!(md.contains("- Noise floor: throughput varies by"), "{md}");
}

#[test]
fn regenerating_keeps_the_seed_and_failures_when_a_statistic_is_null() {
    // One run per group: stddev and p-values do not exist and are written as null.
    let runs: Vec<_> = report::load_runs(&synthetic("synthetic"))
        .unwrap()
        .into_iter()
        .filter(|r| r.benchmark_id.contains("-r0-"))
        .collect();
    let out = tempfile::Builder::new().prefix("facts-").tempdir().unwrap();
    report::write(
        out.path(),
        &runs,
        &[],
        &[],
        Some(7),
        &["a run failed".into()],
    )
    .unwrap();
    let text = std::fs::read_to_string(out.path().join("summary.json")).unwrap();
    assert!(text.contains("null"));
    // Before, `report` read them through the whole SummaryFile, which null made unreadable.
    assert!(report::read_summary(out.path()).is_none());
    assert_eq!(
        report::bench_facts(out.path()),
        (Some(7), vec!["a run failed".to_string()])
    );
    let md = std::fs::read_to_string(out.path().join("report.md")).unwrap();
    assert!(!md.contains("NaN"), "{md}");
}

/// Every figure in the README's reference block is regenerated from the raw runs committed
/// under results/reference/: the block as it stands must be what those runs give.
#[test]
fn the_readme_block_is_what_the_committed_reference_runs_give() {
    let root = bench_tests::project_root();
    let reference = root.join("results/reference");
    let dirs = report::readme::reference_dirs(&reference).unwrap();
    assert!(
        !dirs.is_empty(),
        "no reference runs under {}",
        reference.display()
    );
    let block = report::readme::block(&reference, &dirs).unwrap();
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let current = report::readme::current(&readme).expect("README has the reference markers");
    assert!(
        current == block,
        "README.md's reference block is not what results/reference/ gives: run `cargo xtask report --readme`"
    );
    // The block quotes valid runs, comparisons at equal delivery semantics, and verdicts.
    assert!(block.contains("| throughput | asynctasq | asyncio-c10 | drain | redis |"));
    assert!(block.contains("threads-c10-acks_late"));
}
